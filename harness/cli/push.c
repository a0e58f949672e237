/*
 * push.c - `poolbench push RUN... --to STORE`: copies runs from the local store (--store) into another
 * store (SQLite to PostgreSQL, or between any two), for CI jobs that run into a local file and send the
 * result to the team's server at the end, so that a network failure costs only a retry.
 *
 * Idempotent by the run's uuid: a run the target holds already is reported and skipped (the target's
 * INSERT ... ON CONFLICT (uuid) DO NOTHING decides, so two pushes racing each other store it once too).
 * Each run is copied in one transaction of the target; the local store is only read. A push killed at any
 * point leaves every run either wholly in the target or not at all, and repeating it completes the copy.
 * The target is opened first: an unreachable server or refused login fails before anything is read.
 * Pairs and calibrations stay local (docs/stores.md): a pair's link names executables on this machine,
 * a calibration this machine's noise; the two runs of a pair are pushed as ordinary runs.
 */
#include "cli.h"
#include "store_sql.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: poolbench push RUN... --to STORE [--store PATH]\n"
    "       poolbench push --all --to STORE [--store PATH]\n"
    "Copies runs (RUN: a run id, a uuid, a label, or 'latest') from the local store into STORE (a path or a\n"
    "postgresql:// URI). A run already there (same uuid) is skipped: pushing twice stores it once.\n"
    "The link of an A/B pair (run --against) and calibrations stay in the local store.\n";

/* Pushes one run of src; prints what happened. Exit code. */
static int push_one(pbh_store *src, pbh_store *dst, const char *dst_name, int64_t id) {
    char err[1024];
    pbh_run *run = NULL;
    int rc = pbh_store_load_run(src, id, &run, err, sizeof err);
    if (rc != PBH_OK) {
        pbh_cli_error("%s", err);
        return pbh_cli_exit_for(rc);
    }
    if (!pbh_uuid_valid(run->uuid)) {
        pbh_cli_error("run %lld has no uuid (a store older than schema 3): open it for writing once, e.g. "
                      "`poolbench store init --store PATH`, to give its runs one",
                      (long long)id);
        pbh_run_free(run);
        return PBH_EXIT_USAGE;
    }
    rc = pbh_store_insert_run(dst, run, err, sizeof err);
    if (rc == PBH_OK)
        printf("pushed run %lld (%s) to %s as run %lld\n", (long long)id, run->uuid, dst_name, (long long)run->id);
    else if (rc == PBH_EEXIST)
        printf("run %lld (%s) is already in %s as run %lld\n", (long long)id, run->uuid, dst_name,
               (long long)run->id);
    else
        pbh_cli_error("%s", err);
    pbh_run_free(run);
    return rc == PBH_OK || rc == PBH_EEXIST ? PBH_EXIT_OK : pbh_cli_exit_for(rc);
}

int pbh_cmd_push(int argc, char **argv) {
    static const struct option opts[] = {{"to", required_argument, 0, 't'},
                                         {"store", required_argument, 0, 's'},
                                         {"all", no_argument, 0, 'a'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *to = NULL, *store = NULL;
    int all = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': to = optarg; break;
        case 's': store = optarg; break;
        case 'a': all = 1; break;
        case 'h': fputs(usage, stdout); return PBH_EXIT_OK;
        default: return pbh_cli_usage_error("push", "unknown option");
        }
    }
    if (!to || !*to)
        return pbh_cli_usage_error("push", "--to STORE is required (a path or a postgresql:// URI)");
    if (all == (optind < argc))
        return pbh_cli_usage_error("push", all ? "--all takes no RUN" : "push needs a RUN or --all");
    char buf[4096], redacted[4096];
    const char *from = pbh_cli_store_path(store, 0, buf, sizeof buf);
    if (strcmp(from, to) == 0)
        return pbh_cli_usage_error("push", "--to names the local store itself (%s)",
                                   pbh_redact_password(to, redacted, sizeof redacted));
    pbh_store *dst = NULL, *src = NULL;
    int ec = pbh_cli_open_store(to, PBH_STORE_WRITE, &dst);
    if (ec != PBH_EXIT_OK)
        return ec;
    if ((ec = pbh_cli_open_store(store, PBH_STORE_READ, &src)) != PBH_EXIT_OK) {
        pbh_store_close(dst);
        return ec;
    }
    pbh_redact_password(to, redacted, sizeof redacted);
    char err[1024];
    int64_t *ids = NULL;
    size_t nids = 0;
    if (all) {
        pbh_run_info *infos = NULL;
        int rc = pbh_store_list_runs(src, NULL, &infos, &nids, err, sizeof err);
        if (rc != PBH_OK) {
            pbh_cli_error("%s", err);
            ec = pbh_cli_exit_for(rc);
        } else if ((ids = calloc(nids + 1, sizeof *ids)) != NULL) {
            for (size_t i = 0; i < nids; i++)
                ids[nids - 1 - i] = infos[i].id; /* oldest first: the target's ids keep their order */
        } else {
            ec = PBH_EXIT_FAILED;
        }
        pbh_run_infos_free(infos, nids);
    } else {
        /* resolve every reference before copying anything: a typo pushes nothing */
        nids = (size_t)(argc - optind);
        ids = calloc(nids + 1, sizeof *ids);
        for (size_t i = 0; ids && i < nids && ec == PBH_EXIT_OK; i++) {
            int rc = pbh_store_resolve(src, argv[optind + (int)i], &ids[i], err, sizeof err);
            if (rc != PBH_OK) {
                pbh_cli_error("%s", err);
                ec = pbh_cli_exit_for(rc);
            }
        }
        if (!ids)
            ec = PBH_EXIT_FAILED;
    }
    for (size_t i = 0; i < nids && ec == PBH_EXIT_OK; i++)
        ec = push_one(src, dst, redacted, ids[i]);
    free(ids);
    pbh_store_close(src);
    pbh_store_close(dst);
    return ec;
}
