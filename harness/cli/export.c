/*
 * export.c - `poolbench export RUN --format json|gbench [--output FILE]`: one run as poolbench's own JSON
 * document (every raw sample) or as Google Benchmark JSON. The store is opened read-only.
 */
#include "cli.h"
#include "format.h"

#include <getopt.h> /* optind */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: poolbench export RUN --format json|gbench [--output FILE] [--store PATH]\n"
    "Exports one run: 'json' is poolbench's own document with every raw sample, 'gbench' is Google Benchmark\n"
    "JSON (readable by its tools/compare.py). Writes to stdout unless --output is given.\n";

int pbh_cmd_export(int argc, char **argv) {
    const char *store_flag = NULL, *format = NULL, *output = NULL;
    int ec = pbh_cli_read_flags(argc, argv, "export", usage, &store_flag, &format, &output);
    if (ec >= 0)
        return ec;
    if (optind >= argc)
        return pbh_cli_usage_error("export", "export needs a RUN (a run id, a label, or 'latest')");
    if (optind + 1 < argc)
        return pbh_cli_usage_error("export", "unexpected argument '%s'", argv[optind + 1]);
    if (!format)
        return pbh_cli_usage_error("export", "export needs --format json or --format gbench");
    if (strcmp(format, "json") != 0 && strcmp(format, "gbench") != 0)
        return pbh_cli_usage_error("export", "unknown --format '%s' (json or gbench)", format);
    pbh_run *run;
    ec = pbh_cli_load_stored_run(store_flag, argv[optind], &run);
    if (ec != PBH_EXIT_OK)
        return ec;
    char *text = strcmp(format, "gbench") == 0 ? pbh_format_run_gbench(run) : pbh_format_run_json(run);
    pbh_run_free(run);
    ec = pbh_cli_write_output(output, text);
    free(text);
    return ec;
}
