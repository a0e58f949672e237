/*
 * main.c - the poolbench CLI entry point: finds the verb and hands it its arguments. Nothing else lives
 * here; each verb is in harness/cli/<verb>.c (see cli.h for how to add one).
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct verb {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} verbs[] = {
    {"list", pbh_cmd_list, "list scenarios, backends, suites and floor probes"},
    {"exec", pbh_cmd_exec, "run one execution of a scenario on a backend; nothing stored"},
    {"run", pbh_cmd_run, "run a suite or a matrix of cases and store every raw sample"},
    {"runs", pbh_cmd_runs, "list the stored runs"},
    {"show", pbh_cmd_show, "show one stored run as a table, JSON or Markdown"},
    {"compare", pbh_cmd_compare, "compare two runs: Mann-Whitney U + bootstrap CI per case; exit 1 on a regression"},
    {"history", pbh_cmd_history, "change points per case over the stored runs"},
    {"import", pbh_cmd_import, "store a Google Benchmark or hyperfine JSON file as a run"},
    {"export", pbh_cmd_export, "export one run as JSON or Google Benchmark JSON"},
    {"push", pbh_cmd_push, "copy runs into another store (e.g. a team's PostgreSQL); pushing twice stores once"},
    {"store", pbh_cmd_store, "store init (create the schema) or store check (consistency checks)"},
    {"calibrate", pbh_cmd_calibrate, "measure this machine's false alarms and detectable slowdown per case"},
    {"version", pbh_cmd_version, "this build: version, store schema, exec protocol, commit"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: poolbench VERB [options]   (poolbench VERB --help for a verb's options)\n\nverbs:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(f, "\nexit codes: 0 ok, 1 regression found, 2 usage or input error, 3 a run failed\n"
               "store: --store PATH|postgresql://URI, else $POOLBENCH_STORE, else results/poolbench.db\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return PBH_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return PBH_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].fn(argc - 1, argv + 1);
    return pbh_cli_usage_error(NULL, "unknown verb '%s'", argv[1]);
}
