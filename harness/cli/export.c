/*
 * export.c - `poolbench export RUN --format json|gbench [--output FILE]`: one run as poolbench's own JSON
 * document (every raw sample) or as Google Benchmark JSON. The store is opened read-only.
 */
#include "cli.h"
#include "format.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: poolbench export RUN --format json|gbench [--output FILE] [--store PATH]\n"
    "Exports one run: 'json' is poolbench's own document with every raw sample, 'gbench' is Google Benchmark\n"
    "JSON (readable by its tools/compare.py). Writes to stdout unless --output is given.\n";

int pbh_cmd_export(int argc, char **argv) {
    static const struct option opts[] = {{"store", required_argument, NULL, 'd'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *store_flag = NULL, *format = NULL, *output = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            store_flag = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return PBH_EXIT_OK;
        default:
            return pbh_cli_usage_error("export", "bad arguments to export");
        }
    }
    if (optind >= argc)
        return pbh_cli_usage_error("export", "export needs a RUN (a run id, a label, or 'latest')");
    if (optind + 1 < argc)
        return pbh_cli_usage_error("export", "unexpected argument '%s'", argv[optind + 1]);
    if (!format)
        return pbh_cli_usage_error("export", "export needs --format json or --format gbench");
    if (strcmp(format, "json") != 0 && strcmp(format, "gbench") != 0)
        return pbh_cli_usage_error("export", "unknown --format '%s' (json or gbench)", format);
    pbh_store *st;
    int ec = pbh_cli_open_store(store_flag, PBH_STORE_READ, &st);
    if (ec != PBH_EXIT_OK)
        return ec;
    pbh_run *run = NULL;
    ec = pbh_cli_load_run(st, argv[optind], &run);
    pbh_store_close(st);
    if (ec != PBH_EXIT_OK)
        return ec;
    char *text = strcmp(format, "gbench") == 0 ? pbh_format_run_gbench(run) : pbh_format_run_json(run);
    pbh_run_free(run);
    ec = pbh_cli_write_output(output, text);
    free(text);
    return ec;
}
