/*
 * show.c - `poolbench show RUN [--format table|json|markdown]`: one stored run with its case summaries.
 * RUN is a run id, a label (the latest run with it) or `latest`; the store is opened read-only.
 */
#include "cli.h"
#include "format.h"

#include <getopt.h> /* optind */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: poolbench show RUN [--store PATH] [--format table|json|markdown]\n"
    "Shows one run (RUN: a run id, a label, or 'latest').\n";

int pbh_cmd_show(int argc, char **argv) {
    const char *store_flag = NULL, *format = "table";
    int ec = pbh_cli_read_flags(argc, argv, "show", usage, &store_flag, &format, NULL);
    if (ec >= 0)
        return ec;
    if (optind >= argc)
        return pbh_cli_usage_error("show", "show needs a RUN (a run id, a label, or 'latest')");
    if (optind + 1 < argc)
        return pbh_cli_usage_error("show", "unexpected argument '%s'", argv[optind + 1]);
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0 && strcmp(format, "markdown") != 0)
        return pbh_cli_usage_error("show", "unknown --format '%s' (table, json or markdown)", format);
    pbh_run *run;
    ec = pbh_cli_load_stored_run(store_flag, argv[optind], &run);
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
