/*
 * show.c - `poolbench show RUN [--format table|json|markdown]`: one stored run with its case summaries.
 * RUN is a run id, a label (the latest run with it) or `latest`; the store is opened read-only.
 */
#include "cli.h"
#include "format.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] = "usage: poolbench show RUN [--store PATH] [--format table|json|markdown]\n"
                                 "Shows one run (RUN: a run id, a label, or 'latest').\n";

int pbh_cmd_show(int argc, char **argv) {
    static const struct option opts[] = {{"store", required_argument, NULL, 'd'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *store_flag = NULL, *format = "table";
    int c;
    while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            store_flag = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return PBH_EXIT_OK;
        default:
            return pbh_cli_usage_error("show", "bad arguments to show");
        }
    }
    if (optind >= argc)
        return pbh_cli_usage_error("show", "show needs a RUN (a run id, a label, or 'latest')");
    if (optind + 1 < argc)
        return pbh_cli_usage_error("show", "unexpected argument '%s'", argv[optind + 1]);
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0 && strcmp(format, "markdown") != 0)
        return pbh_cli_usage_error("show", "unknown --format '%s' (table, json or markdown)", format);
    pbh_store *st;
    int ec = pbh_cli_open_store(store_flag, PBH_STORE_READ, &st);
    if (ec != PBH_EXIT_OK)
        return ec;
    pbh_run *run = NULL;
    ec = pbh_cli_load_run(st, argv[optind], &run);
    pbh_store_close(st);
    if (ec != PBH_EXIT_OK)
        return ec;
    char *text = strcmp(format, "json") == 0       ? pbh_format_run_json(run)
                 : strcmp(format, "markdown") == 0 ? pbh_format_run_markdown(run)
                                                   : pbh_format_run_table(run);
    pbh_run_free(run);
    ec = pbh_cli_write_output(NULL, text);
    free(text);
    return ec;
}
