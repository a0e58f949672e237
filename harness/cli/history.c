/*
 * history.c - `poolbench history`: change points per case over every run in the store (history.h),
 * as a table or JSON (the JSON is what scripts/report marks on its history charts). Read-only.
 */
#include "cli.h"
#include "history.h"
#include "format.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: poolbench history [--machine NAME] [--case NAME] [--scenario S] [--backend B]\n"
    "                         [--pvalue P] [--min-segment N]\n"
    "                         [--format table|json] [--output FILE] [--store PATH]\n"
    "Per machine and case (two machines are never one series), the median of each stored run in time order and its change points (E-Divisive means with\n"
    "a permutation test, p <= 0.05 by default), each naming the run and commit where the new level starts.\n";

int pbh_cmd_history(int argc, char **argv) {
    static const struct option opts[] = {{"scenario", required_argument, 0, 'S'},
                                         {"backend", required_argument, 0, 'b'},
                                         {"machine", required_argument, 0, 'M'},
                                         {"case", required_argument, 0, 'c'},
                                         {"pvalue", required_argument, 0, 'p'},
                                         {"min-segment", required_argument, 0, 'm'},
                                         {"format", required_argument, 0, 'f'},
                                         {"output", required_argument, 0, 'o'},
                                         {"store", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    pbs_cp_opts cp;
    pbs_cp_opts_default(&cp);
    pbh_history_filter filter = {0};
    const char *format = "table", *output = NULL, *store = NULL;
    long min_segment;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'S': filter.scenario = optarg; break;
        case 'b': filter.backend = optarg; break;
        case 'c': filter.case_name = optarg; break;
        case 'M':
            if (!pbh_machine_name_valid(optarg))
                return pbh_cli_bad_machine("history", optarg);
            filter.machine = optarg;
            break;
        case 'p':
            if (pbh_cli_parse_double(optarg, 1e-6, 0.5, &cp.pvalue))
                return pbh_cli_usage_error("history", "--pvalue must be a number in (0, 0.5], got '%s'", optarg);
            break;
        case 'm':
            if (pbh_cli_parse_int(optarg, 2, 1000, &min_segment))
                return pbh_cli_usage_error("history", "--min-segment must be an integer >= 2, got '%s'", optarg);
            cp.min_segment = (size_t)min_segment;
            break;
        case 'f':
            if (strcmp(optarg, "table") && strcmp(optarg, "json"))
                return pbh_cli_usage_error("history", "--format must be table or json, got '%s'", optarg);
            format = optarg;
            break;
        case 'o': output = optarg; break;
        case 's': store = optarg; break;
        case 'h': fputs(usage, stdout); return PBH_EXIT_OK;
        default: return pbh_cli_usage_error("history", "unknown option");
        }
    }
    if (optind < argc) return pbh_cli_usage_error("history", "unexpected argument '%s'", argv[optind]);
    pbh_store *st;
    int rc = pbh_cli_open_store(store, PBH_STORE_READ, &st);
    if (rc != PBH_EXIT_OK) return rc;
    pbh_history h;
    char err[1024];
    int hrc = pbh_history_build(st, &filter, &cp, &h, err, sizeof err);
    pbh_store_close(st);
    if (hrc != PBH_OK) {
        pbh_cli_error("%s", err);
        return pbh_cli_exit_for(hrc);
    }
    char *text = strcmp(format, "json") == 0 ? pbh_history_format_json(&h) : pbh_history_format_table(&h);
    rc = pbh_cli_write_output(output, text);
    free(text);
    pbh_history_free(&h);
    return rc;
}
