/*
 * import.c - `poolbench import --format gbench|hyperfine|json FILE`: another tool's results (or a
 * poolbench run export) stored as a run. The file is parsed and checked completely before the store is
 * opened for writing, so a malformed file leaves the store byte-identical (exit 2).
 */
#include "cli.h"
#include "import.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: poolbench import --format gbench|hyperfine|json FILE [--label L] [--store PATH]\n"
    "                        [--machine NAME]\n"
    "Stores a Google Benchmark JSON file (NaN and Infinity accepted), a hyperfine --export-json file, or a\n"
    "poolbench run export as a run that show, compare, history and the report treat like a native one.\n";

int pbh_cmd_import(int argc, char **argv) {
    static const struct option opts[] = {{"format", required_argument, 0, 'f'},
                                         {"label", required_argument, 0, 'l'},
                                         {"store", required_argument, 0, 's'},
                                         {"machine", required_argument, 0, 'M'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *format = NULL, *label = NULL, *store = NULL, *machine = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'l': label = optarg; break;
        case 's': store = optarg; break;
        case 'M':
            if (!pbh_machine_name_valid(optarg))
                return pbh_cli_bad_machine("import", optarg);
            machine = optarg;
            break;
        case 'h': fputs(usage, stdout); return PBH_EXIT_OK;
        default: return pbh_cli_usage_error("import", "unknown option");
        }
    }
    if (!format) return pbh_cli_usage_error("import", "--format gbench|hyperfine|json is required");
    if (argc - optind != 1) return pbh_cli_usage_error("import", "expected one FILE, got %d argument(s)", argc - optind);

    pbh_context here = {0};
    if (pbh_context_collect(&here, argc, argv) != 0) {
        pbh_cli_error("out of memory");
        return PBH_EXIT_FAILED;
    }
    pbh_run *run = NULL;
    char err[1024];
    int rc = pbh_import_file(format, argv[optind], &here, &run, err, sizeof err);
    /* --machine, else the machine the file names (a poolbench export), else this one */
    if (rc == PBH_OK && (machine || !run->ctx.machine))
        pbh_set_str(&run->ctx.machine, machine ? machine : here.machine);
    pbh_context_clear(&here);
    if (rc != PBH_OK) {
        pbh_cli_error("%s", err);
        return pbh_cli_exit_for(rc);
    }
    if (label) pbh_set_str(&run->label, label);
    pbh_store *st;
    int exit_code = pbh_cli_open_store(store, PBH_STORE_WRITE, &st);
    if (exit_code == PBH_EXIT_OK) {
        rc = pbh_store_insert_run(st, run, err, sizeof err);
        pbh_store_close(st);
        if (rc == PBH_EEXIST) {
            printf("%s holds run %s, already stored as run %lld: nothing imported\n", argv[optind], run->uuid,
                   (long long)run->id);
        } else if (rc != PBH_OK) {
            pbh_cli_error("%s", err);
            exit_code = pbh_cli_exit_for(rc);
        } else {
            printf("imported %s as run %lld (%zu case%s)%s%s\n", argv[optind], (long long)run->id, run->ncases,
                   run->ncases == 1 ? "" : "s", label ? ", label " : "", label ? label : "");
        }
    }
    pbh_run_free(run);
    return exit_code;
}
