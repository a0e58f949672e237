/*
 * cli_results.c - the read verbs over the store: `runs` (list), `show RUN` (one run as a table, JSON or
 * Markdown) and `export RUN --format json|gbench [--output FILE]`.
 *
 * All three open the store read-only, so they can never change it, and take RUN as a run id, a label
 * (the latest run with it) or `latest`.
 */
#include "cli.h"
#include "format.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char runs_usage[] = "usage: poolbench runs [--machine NAME] [--store PATH] [--format table|json]\n"
                                 "Lists the stored runs, newest first (--machine: only that machine's).\n";
static const char show_usage[] = "usage: poolbench show RUN [--store PATH] [--format table|json|markdown]\n"
                                 "Shows one run (RUN: a run id, a label, or 'latest').\n";
static const char export_usage[] =
    "usage: poolbench export RUN --format json|gbench [--output FILE] [--store PATH]\n"
    "Exports one run: 'json' is poolbench's own document with every raw sample, 'gbench' is Google Benchmark\n"
    "JSON (readable by its tools/compare.py). Writes to stdout unless --output is given.\n";

int pbh_cmd_runs(int argc, char **argv) {
    static const struct option opts[] = {{"store", required_argument, NULL, 'd'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"machine", required_argument, NULL, 'M'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *store_flag = NULL, *format = "table", *machine = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            store_flag = optarg;
            break;
        case 'M':
            if (!pbh_machine_name_valid(optarg))
                return pbh_cli_usage_error("runs", "--machine must be 1 to 128 printable characters without blanks, got '%s'",
                                           optarg);
            machine = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 'h':
            fputs(runs_usage, stdout);
            return PBH_EXIT_OK;
        default:
            return pbh_cli_usage_error("runs", "bad arguments to runs");
        }
    }
    if (optind < argc)
        return pbh_cli_usage_error("runs", "unexpected argument '%s'", argv[optind]);
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
        return pbh_cli_usage_error("runs", "unknown --format '%s' (table or json)", format);
    pbh_store *st;
    int ec = pbh_cli_open_store(store_flag, PBH_STORE_READ, &st);
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
            fputs(show_usage, stdout);
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
            fputs(export_usage, stdout);
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
