/*
 * store.c - `poolbench store init` and `poolbench store check`: the store itself rather than its runs.
 *
 * init creates the schema in an empty database (or file), migrates an older one, and refuses anything
 * that is not a poolbench store (another program's tables, a newer schema), leaving it untouched. It is
 * what a team runs once against its PostgreSQL server; `run` and `push` would create the schema on first
 * write anyway, but an explicit step makes a wrong URI fail loudly before any CI job depends on it.
 * check runs the consistency checks (pbh_store_check) read-only; exit 1 when it finds a problem.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store_pg.h"

static const char usage[] =
    "usage: poolbench store init [--store NAME]\n"
    "       poolbench store check [--store NAME]\n"
    "init: creates the poolbench schema in an empty store (an SQLite path or a postgresql:// URI) or migrates\n"
    "an older one; refuses a database that holds tables of another program or a newer schema.\n"
    "check: consistency checks (no orphan rows, no run stored twice, no partly written run); exit 1 on a\n"
    "problem.\n";

int pbh_cmd_store(int argc, char **argv) {
    static const struct option opts[] = {{"store", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *store = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': store = optarg; break;
        case 'h': fputs(usage, stdout); return PBH_EXIT_OK;
        default: return pbh_cli_usage_error("store", "unknown option");
        }
    }
    if (optind + 1 != argc || (strcmp(argv[optind], "init") && strcmp(argv[optind], "check")))
        return pbh_cli_usage_error("store", "expected one action: init or check");
    char buf[4096], shown[4096];
    const char *name = pbh_cli_store_path(store, strcmp(argv[optind], "init") == 0, buf, sizeof buf);
    pbh_redact_password(name, shown, sizeof shown);
    pbh_store *st;
    int ec;
    if (strcmp(argv[optind], "check") == 0) {
        if ((ec = pbh_cli_open_store(store, PBH_STORE_READ, &st)) != PBH_EXIT_OK)
            return ec;
        char report[4096];
        int problems = pbh_store_check(st, report, sizeof report);
        pbh_store_close(st);
        if (problems < 0) {
            pbh_cli_error("%s", report);
            return PBH_EXIT_FAILED;
        }
        printf("%s%s%s", problems ? "" : "store ", problems ? "" : shown, problems ? "" : ": ");
        printf("%s%s", report, problems ? "" : "\n");
        return problems ? PBH_EXIT_REGRESSION : PBH_EXIT_OK;
    }
    /* the version before: a missing SQLite file is an empty store here, not an error */
    int before = 0;
    struct stat sb;
    if (pbh_store_is_postgres(name) || stat(name, &sb) == 0) {
        if ((ec = pbh_cli_open_store(store, PBH_STORE_READ, &st)) != PBH_EXIT_OK)
            return ec;
        before = pbh_store_schema_version(st);
        pbh_store_close(st);
    }
    if ((ec = pbh_cli_open_store(store, PBH_STORE_WRITE, &st)) != PBH_EXIT_OK)
        return ec;
    int after = pbh_store_schema_version(st);
    pbh_store_close(st);
    if (before == 0)
        printf("store %s: created the poolbench schema, version %d\n", shown, after);
    else if (before < after)
        printf("store %s: migrated from schema %d to %d\n", shown, before, after);
    else
        printf("store %s: already a poolbench store, schema %d\n", shown, after);
    return PBH_EXIT_OK;
}
