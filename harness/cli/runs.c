/*
 * runs.c - `poolbench runs [--machine NAME] [--store PATH] [--format table|json]`: the stored runs,
 * newest first; --machine keeps one machine's (the store filters, with its index on machine).
 * Opens the store read-only: a read verb can never change it.
 */
#include "cli.h"
#include "format.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: poolbench runs [--machine NAME] [--store PATH] [--format table|json]\n"
    "Lists the stored runs, newest first (--machine: only that machine's).\n";

int pbh_cmd_runs(int argc, char **argv) {
    static const struct option opts[] = {{"store", required_argument, NULL, 'd'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"machine", required_argument, NULL, 'M'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *store_flag = NULL, *format = "table", *machine = NULL;
    int c, ec;
    while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': store_flag = optarg; break;
        case 'f': format = optarg; break;
        case 'M':
            if (!pbh_machine_name_valid(optarg))
                return pbh_cli_bad_machine("runs", optarg);
            machine = optarg;
            break;
        case 'h': fputs(usage, stdout); return PBH_EXIT_OK;
        default: return pbh_cli_usage_error("runs", "bad arguments to runs");
        }
    }
    if (optind < argc)
        return pbh_cli_usage_error("runs", "unexpected argument '%s'", argv[optind]);
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
        return pbh_cli_usage_error("runs", "unknown --format '%s' (table or json)", format);
    pbh_store *st;
    ec = pbh_cli_open_store(store_flag, PBH_STORE_READ, &st);
    if (ec != PBH_EXIT_OK)
        return ec;
    pbh_run_info *infos;
    size_t n;
    char err[1024];
    int rc = pbh_store_list_runs(st, machine, &infos, &n, err, sizeof err);
    pbh_store_close(st);
    if (rc != PBH_OK) {
        pbh_cli_error("%s", err);
        return pbh_cli_exit_for(rc);
    }
    char *text = strcmp(format, "json") == 0 ? pbh_format_runs_json(infos, n) : pbh_format_runs_table(infos, n);
    pbh_run_infos_free(infos, n);
    ec = pbh_cli_write_output(NULL, text);
    free(text);
    return ec;
}
