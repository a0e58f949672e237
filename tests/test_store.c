/*
 * test_store.c - the results store, the plan expansion and the runner machinery, without timing anything.
 *
 * Store: schema creation, reopening, migration of a version-1 store, an exact round trip of a run with
 * awkward doubles, refusal of a newer schema / a non-SQLite file / another program's database with the
 * file left byte-identical, RUN references. Runner: plan expansion (matrix, sweeps, serial collapsing,
 * bad input), a fake executor (hyperfine's MockExecutor idea) that lets the run machinery and the
 * summary be checked against exact numbers, every suite expanding and `quick` covering every scenario,
 * and the real child executor running one tiny case with no fd or child left behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "format.h"
#include "runner.h"
#include "scenario.h"
#include "store.h"
#include "suites.h"
#include "store_fixture.h"
#include "testutil.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    return tu_make_tmpdir(tmpdir, sizeof tmpdir, "pb_test_store");
}

static int teardown(void **state) {
    (void)state;
    return tu_remove_tmpdir(tmpdir);
}

static void path_in_tmp(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static int sql_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

static const char *sql_text(sqlite3 *db, const char *sql, char *buf, size_t len) {
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    snprintf(buf, len, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return buf;
}

/* A run with two cases, awkward doubles and every context field set (store_fixture.h). */
static pbh_run *make_run(const char *label) {
    return tf_make_run(label, NULL);
}

/* ---- store ---- */

static void test_create_and_reopen(void **state) {
    (void)state;
    char path[512], err[512];
    path_in_tmp(path, sizeof path, "fresh.db");
    pbh_store *st;
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    assert_int_equal(pbh_store_schema_version(st), PBH_SCHEMA_VERSION);
    sqlite3 *db = pbh_store_db(st);
    assert_int_equal(sql_int(db, "PRAGMA user_version"), PBH_SCHEMA_VERSION);
    assert_int_equal(sql_int(db, "PRAGMA application_id"), PBH_APPLICATION_ID);
    char buf[64];
    assert_string_equal(sql_text(db, "PRAGMA journal_mode", buf, sizeof buf), "wal");
    assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                                 "('runs', 'cases', 'samples', 'floors')"),
                     4);
    pbh_store_close(st);
    /* reopen for writing: nothing to migrate, same version; and read-only */
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    assert_int_equal(pbh_store_schema_version(st), PBH_SCHEMA_VERSION);
    pbh_store_close(st);
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_READ, err, sizeof err), PBH_OK);
    pbh_run_info *infos;
    size_t n;
    assert_int_equal(pbh_store_list_runs(st, NULL, &infos, &n, err, sizeof err), PBH_OK);
    assert_int_equal(n, 0);
    pbh_run_infos_free(infos, n);
    pbh_store_close(st);
}

/* A VFS whose files have no shared-memory methods (like some network filesystems' VFS): SQLite cannot
 * use WAL there and `PRAGMA journal_mode = WAL` silently keeps the old mode. The store must notice and
 * say so instead of running without the guarantees it relies on. */
static sqlite3_vfs nowal_vfs;
static sqlite3_vfs *real_vfs;
static sqlite3_io_methods nowal_methods;

static int nowal_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags) {
    (void)vfs;
    int rc = real_vfs->xOpen(real_vfs, name, file, flags, out_flags);
    if (rc == SQLITE_OK && file->pMethods) {
        nowal_methods = *file->pMethods;
        nowal_methods.iVersion = 1; /* no xShmMap & co: no WAL */
        nowal_methods.xShmMap = NULL;
        nowal_methods.xShmLock = NULL;
        nowal_methods.xShmBarrier = NULL;
        nowal_methods.xShmUnmap = NULL;
        file->pMethods = &nowal_methods;
    }
    return rc;
}

static void test_wal_must_take_effect(void **state) {
    (void)state;
    char path[512], err[512];
    path_in_tmp(path, sizeof path, "nowal.db");
    real_vfs = sqlite3_vfs_find(NULL);
    assert_non_null(real_vfs);
    nowal_vfs = *real_vfs;
    nowal_vfs.zName = "poolbench-test-nowal";
    nowal_vfs.xOpen = nowal_open;
    assert_int_equal(sqlite3_vfs_register(&nowal_vfs, 1), SQLITE_OK); /* the default from now on */
    pbh_store *st = NULL;
    int rc = pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err);
    sqlite3_vfs_unregister(&nowal_vfs);
    sqlite3_vfs_register(real_vfs, 1);
    if (rc == PBH_OK) {
        pbh_store_close(st);
        fail_msg("a store that could not switch to WAL was opened for writing");
    }
    assert_null(st);
    assert_non_null(strstr(err, "WAL"));
    assert_non_null(strstr(err, path));
    /* the same path opens normally once WAL works */
    unlink(path);
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    pbh_store_close(st);
}

static void test_read_missing_store(void **state) {
    (void)state;
    char path[512], err[512];
    path_in_tmp(path, sizeof path, "missing.db");
    pbh_store *st;
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_READ, err, sizeof err), PBH_EINPUT);
    assert_non_null(strstr(err, "no store"));
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0); /* reading never creates it */
}

static void test_migrate_v1(void **state) {
    (void)state;
    char path[512], err[512];
    path_in_tmp(path, sizeof path, "v1.db");
    assert_int_equal(pbh_store_create_at_version(path, 1, err, sizeof err), PBH_OK);
    /* a run as a version-1 poolbench wrote it */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sql_int(db, "PRAGMA user_version"), 1);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO runs (id, label, status, started_at, started_unix) VALUES "
                                  "(1, 'old', 'ok', '2026-01-01T00:00:00Z', 1767225600);"
                                  "INSERT INTO cases (id, run_id, ord, name, scenario, backend, workers, params, status)"
                                  " VALUES (1, 1, 0, 'sleep/fork/w2/items=4,ms=20', 'sleep', 'fork', 2, 'items=4,ms=20', 'ok');"
                                  "INSERT INTO samples (case_id, rep, wall_s, ideal_s, tasks) VALUES (1, 0, 0.0405, 0.04, 4);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    /* a reader of the new binary understands the old schema without migrating it */
    pbh_store *st;
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_READ, err, sizeof err), PBH_OK);
    assert_int_equal(pbh_store_schema_version(st), 1);
    pbh_run *run;
    assert_int_equal(pbh_store_load_run(st, 1, &run, err, sizeof err), PBH_OK);
    assert_string_equal(run->source, "native");
    assert_int_equal(run->nfloors, 0);
    pbh_run_free(run);
    pbh_store_close(st);

    /* a writer migrates it to the current schema, keeping the old run */
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    assert_int_equal(pbh_store_schema_version(st), PBH_SCHEMA_VERSION);
    db = pbh_store_db(st);
    assert_int_equal(sql_int(db, "PRAGMA user_version"), PBH_SCHEMA_VERSION);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'floors'"), 1);
    char buf[64];
    assert_string_equal(sql_text(db, "SELECT source FROM runs WHERE id = 1", buf, sizeof buf), "native");
    assert_int_equal(pbh_store_load_run(st, 1, &run, err, sizeof err), PBH_OK);
    assert_string_equal(run->label, "old");
    assert_int_equal(run->ncases, 1);
    assert_int_equal(run->cases[0].nsamples, 1);
    assert_true(run->cases[0].samples[0].wall_s == 0.0405);
    pbh_run_free(run);
    /* and a new run goes in beside it */
    pbh_run *fresh = make_run("new");
    assert_int_equal(pbh_store_insert_run(st, fresh, err, sizeof err), PBH_OK);
    assert_int_equal(fresh->id, 2);
    pbh_run_free(fresh);
    pbh_store_close(st);
}

static void test_round_trip(void **state) {
    (void)state;
    char path[512], err[512];
    path_in_tmp(path, sizeof path, "rt.db");
    pbh_store *st;
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    pbh_run *in = make_run("rt");
    assert_int_equal(pbh_store_insert_run(st, in, err, sizeof err), PBH_OK);
    assert_true(in->id > 0);
    pbh_store_close(st);

    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_READ, err, sizeof err), PBH_OK);
    pbh_run *out;
    assert_int_equal(pbh_store_load_run(st, in->id, &out, err, sizeof err), PBH_OK);
    pbh_store_close(st);

    tf_assert_same_run(in, out);
    pbh_run_free(in);
    pbh_run_free(out);
}

static void test_newer_schema_rejected(void **state) {
    (void)state;
    char path[512], err[512];
    path_in_tmp(path, sizeof path, "newer.db");
    pbh_store *st;
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    pbh_run *run = make_run("x");
    assert_int_equal(pbh_store_insert_run(st, run, err, sizeof err), PBH_OK);
    pbh_run_free(run);
    assert_int_equal(sqlite3_exec(pbh_store_db(st), "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    pbh_store_close(st);

    size_t n0, n1;
    char *before = tu_slurp(path, &n0);
    assert_non_null(before);
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_ESCHEMA);
    assert_non_null(strstr(err, "99"));
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_READ, err, sizeof err), PBH_ESCHEMA);
    char *after = tu_slurp(path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);
}

static void test_foreign_files_rejected(void **state) {
    (void)state;
    char path[512], err[512];
    pbh_store *st;
    /* not SQLite: short and long text */
    const char *texts[] = {"hello\n", "this is a text file that is longer than one hundred bytes, so the header check "
                                      "reads a full header and still finds no SQLite magic in it at all.\n"};
    for (size_t i = 0; i < 2; i++) {
        path_in_tmp(path, sizeof path, i ? "long.txt" : "short.txt");
        write_file(path, texts[i], strlen(texts[i]));
        for (int mode = 0; mode < 2; mode++) {
            assert_int_equal(pbh_store_open(&st, path, mode ? PBH_STORE_WRITE : PBH_STORE_READ, err, sizeof err),
                             PBH_EINPUT);
            assert_non_null(strstr(err, "not a poolbench store"));
        }
        size_t n;
        char *after = tu_slurp(path, &n);
        assert_int_equal(n, strlen(texts[i]));
        assert_memory_equal(after, texts[i], n);
        free(after);
    }
    /* another program's SQLite database */
    path_in_tmp(path, sizeof path, "foreign.db");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x); INSERT INTO t VALUES (1);", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    size_t n0, n1;
    char *before = tu_slurp(path, &n0);
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_EINPUT);
    assert_non_null(strstr(err, "another program"));
    char *after = tu_slurp(path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);
    /* a directory */
    assert_int_equal(pbh_store_open(&st, tmpdir, PBH_STORE_READ, err, sizeof err), PBH_EINPUT);
    /* an empty file is an empty store: writable */
    path_in_tmp(path, sizeof path, "empty.db");
    write_file(path, "", 0);
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_READ, err, sizeof err), PBH_OK);
    pbh_store_close(st);
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    assert_int_equal(pbh_store_schema_version(st), PBH_SCHEMA_VERSION);
    pbh_store_close(st);
}

static void test_resolve(void **state) {
    (void)state;
    char path[512], err[512];
    path_in_tmp(path, sizeof path, "resolve.db");
    pbh_store *st;
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    const char *labels[] = {"base", "new", "base", NULL};
    for (int i = 0; i < 4; i++) {
        pbh_run *r = make_run(labels[i]);
        assert_int_equal(pbh_store_insert_run(st, r, err, sizeof err), PBH_OK);
        assert_int_equal(r->id, i + 1);
        pbh_run_free(r);
    }
    int64_t id;
    assert_int_equal(pbh_store_resolve(st, "latest", &id, err, sizeof err), PBH_OK);
    assert_int_equal(id, 4);
    assert_int_equal(pbh_store_resolve(st, "base", &id, err, sizeof err), PBH_OK);
    assert_int_equal(id, 3);
    assert_int_equal(pbh_store_resolve(st, "new", &id, err, sizeof err), PBH_OK);
    assert_int_equal(id, 2);
    assert_int_equal(pbh_store_resolve(st, "1", &id, err, sizeof err), PBH_OK);
    assert_int_equal(id, 1);
    assert_int_equal(pbh_store_resolve(st, "77", &id, err, sizeof err), PBH_ENOTFOUND);
    assert_int_equal(pbh_store_resolve(st, "nope", &id, err, sizeof err), PBH_ENOTFOUND);
    assert_non_null(strstr(err, "nope"));
    pbh_run_info *infos;
    size_t n;
    assert_int_equal(pbh_store_list_runs(st, NULL, &infos, &n, err, sizeof err), PBH_OK);
    assert_int_equal(n, 4);
    assert_int_equal(infos[0].id, 4); /* newest first */
    assert_int_equal(infos[0].ncases, 2);
    pbh_run_infos_free(infos, n);
    pbh_store_close(st);
}

/* ---- summary ---- */

static void test_summary_exact(void **state) {
    (void)state;
    pbh_run *run = pbh_run_new();
    pbh_run_add_floor(run, "pipe_rtt", 0.001, 10);
    pbh_case *k = pbh_run_add_case(run);
    k->floor = strdup("pipe_rtt");
    const double walls[] = {2.5, 2.0, 3.0, 2.25, 2.75}; /* median 2.5, MAD 0.25 */
    for (int i = 0; i < 5; i++) {
        pbh_sample *s = pbh_case_add_sample(k);
        s->wall_s = walls[i];
        s->user_s = 0.5;
        s->sys_s = 0.25;
        s->ideal_s = 2.0;
        s->tasks = 10;
        s->peak_rss_kb = 100 + i;
    }
    pbh_case_summary sum;
    assert_int_equal(pbh_case_summarize(run, k, &sum), PBH_OK);
    assert_int_equal(sum.n, 5);
    assert_true(sum.median_s == 2.5);
    assert_true(sum.mad_s == 0.25);
    assert_true(fabs(sum.mad_pct - 10.0) < 1e-12);
    assert_true(sum.efficiency == 0.8);
    assert_true(sum.cpu_median_s == 0.75);
    assert_true(sum.tasks_per_s == 4.0);
    assert_true(fabs(sum.overhead_per_task_s - 0.05) < 1e-15); /* (2.5 - 2) / 10 */
    assert_true(fabs(sum.overhead_x_floor - 50.0) < 1e-9);     /* 0.05 / 0.001 */
    assert_int_equal(sum.peak_rss_kb, 104);
    /* formats carry the same numbers */
    char *t = pbh_format_run_table(run);
    assert_non_null(strstr(t, "2.5000 s"));
    assert_non_null(strstr(t, "50.0x"));
    free(t);
    pbh_run_free(run);
}

/* ---- plan ---- */

static void test_plan_matrix(void **state) {
    (void)state;
    pbh_request rq;
    pbh_request_init(&rq);
    rq.scenarios[rq.nscenarios++] = "sleep";
    rq.backends[rq.nbackends++] = "serial";
    rq.backends[rq.nbackends++] = "fork";
    rq.workers[rq.nworkers++] = 2;
    rq.workers[rq.nworkers++] = 4;
    rq.params[rq.nparams++] = "ms=1,2";
    rq.params[rq.nparams++] = "items=3";
    rq.reps = 3;
    pbh_plan plan;
    char err[512];
    assert_int_equal(pbh_plan_build(&rq, &plan, err, sizeof err), PBH_OK);
    /* serial: once (workers=1) x 2 sweeps; fork: 2 workers x 2 sweeps */
    assert_int_equal(plan.n, 6);
    assert_string_equal(plan.cases[0].name, "sleep/serial/w1/items=3,ms=1");
    assert_string_equal(plan.cases[1].name, "sleep/serial/w1/items=3,ms=2");
    assert_string_equal(plan.cases[2].name, "sleep/fork/w2/items=3,ms=1");
    assert_string_equal(plan.cases[5].name, "sleep/fork/w4/items=3,ms=2");
    assert_int_equal(plan.cases[0].reps, 3);
    assert_int_equal(plan.cases[0].warmup, PBH_DEFAULT_WARMUP);
    assert_null(plan.suite);
    pbh_plan_free(&plan);
}

static void expect_bad(pbh_request *rq, const char *needle) {
    pbh_plan plan;
    char err[512];
    assert_int_equal(pbh_plan_build(rq, &plan, err, sizeof err), PBH_EINPUT);
    if (!strstr(err, needle))
        fail_msg("message '%s' does not mention '%s'", err, needle);
}

static void test_plan_bad_input(void **state) {
    (void)state;
    pbh_request rq;
    pbh_request_init(&rq);
    rq.scenarios[rq.nscenarios++] = "sleeep";
    expect_bad(&rq, "unknown scenario 'sleeep'");

    pbh_request_init(&rq);
    rq.scenarios[rq.nscenarios++] = "sleep";
    rq.backends[rq.nbackends++] = "forkk";
    expect_bad(&rq, "unknown backend 'forkk'");

    pbh_request_init(&rq);
    rq.scenarios[rq.nscenarios++] = "sleep";
    rq.params[rq.nparams++] = "ms";
    expect_bad(&rq, "malformed --param 'ms'");

    pbh_request_init(&rq);
    rq.scenarios[rq.nscenarios++] = "sleep";
    rq.params[rq.nparams++] = "itemz=3";
    expect_bad(&rq, "itemz");

    pbh_request_init(&rq);
    rq.scenarios[rq.nscenarios++] = "sleep";
    rq.params[rq.nparams++] = "ms=abc";
    expect_bad(&rq, "ms");

    pbh_request_init(&rq);
    rq.suite = "quik";
    expect_bad(&rq, "unknown suite 'quik'");
}

static void test_suites_expand(void **state) {
    (void)state;
    for (size_t i = 0; i < pbh_suite_count(); i++) {
        pbh_request rq;
        pbh_request_init(&rq);
        rq.suite = pbh_suite_at(i)->name;
        pbh_plan plan;
        char err[512];
        if (pbh_plan_build(&rq, &plan, err, sizeof err) != PBH_OK)
            fail_msg("suite %s: %s", rq.suite, err);
        assert_true(plan.n > 0);
        pbh_plan_free(&plan);
    }
    /* quick covers every registered scenario on every backend */
    pbh_request rq;
    pbh_request_init(&rq);
    rq.suite = "quick";
    pbh_plan plan;
    char err[512];
    assert_int_equal(pbh_plan_build(&rq, &plan, err, sizeof err), PBH_OK);
    for (size_t s = 0; s < pb_scenario_count(); s++) {
        for (size_t b = 0; b < pb_backend_count(); b++) {
            int found = 0;
            for (size_t i = 0; i < plan.n; i++)
                found |= plan.cases[i].scenario == pb_scenario_at(s) &&
                         strcmp(plan.cases[i].backend, pb_backend_name_at(b)) == 0;
            if (!found)
                fail_msg("quick misses %s on %s", pb_scenario_at(s)->name, pb_backend_name_at(b));
        }
    }
    pbh_plan_free(&plan);
    /* the default suite has the seed at 4 and 8 workers on every parallel backend */
    pbh_request_init(&rq);
    rq.suite = "default";
    rq.scenarios[rq.nscenarios++] = "sleep";
    assert_int_equal(pbh_plan_build(&rq, &plan, err, sizeof err), PBH_OK);
    int seen = 0;
    for (size_t i = 0; i < plan.n; i++)
        seen += strstr(plan.cases[i].name, "items=4,ms=2000") != NULL;
    int parallel = 0; /* every backend with workers (the reference ones too, when built in) x {4, 8} + serial once */
    for (size_t b = 0; b < pb_backend_count(); b++)
        parallel += (pb_backend_caps(pb_backend_name_at(b)) & PB_CAP_ASYNC) != 0;
    assert_int_equal(seen, 2 * parallel + 1);
    pbh_plan_free(&plan);
}

/* An A/B pair measures the suite's pair repetitions per side (quick: 15 of its 20, docs/verdicts.md); a
 * suite item's own repetitions and --reps still win; a suite without pair_reps keeps its reps. */
static void test_pair_repetitions(void **state) {
    (void)state;
    char err[512];
    pbh_plan plan;
    int expect[][3] = {/* pair, --reps, expected reps per case */ {0, -1, 20}, {1, -1, 15}, {1, 9, 9}};
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++) {
        pbh_request rq;
        pbh_request_init(&rq);
        rq.suite = "quick";
        rq.pair = expect[k][0];
        rq.reps = expect[k][1];
        assert_int_equal(pbh_plan_build(&rq, &plan, err, sizeof err), PBH_OK);
        for (size_t i = 0; i < plan.n; i++)
            if (plan.cases[i].reps != expect[k][2])
                fail_msg("quick, pair %d, --reps %d: %s has %d repetitions, expected %d", expect[k][0], expect[k][1],
                         plan.cases[i].name, plan.cases[i].reps, expect[k][2]);
        pbh_plan_free(&plan);
    }
    /* default: its seed items carry their own 5 (serial 3); the others take the suite's 10, pair or not */
    pbh_request rq;
    pbh_request_init(&rq);
    rq.suite = "default";
    rq.pair = 1;
    assert_int_equal(pbh_plan_build(&rq, &plan, err, sizeof err), PBH_OK);
    for (size_t i = 0; i < plan.n; i++) {
        int seed = strstr(plan.cases[i].name, "items=4,ms=2000") != NULL;
        int want = !seed ? 10 : strcmp(plan.cases[i].backend, "serial") == 0 ? 3 : 5;
        if (plan.cases[i].reps != want)
            fail_msg("default as a pair: %s has %d repetitions, expected %d", plan.cases[i].name, plan.cases[i].reps, want);
    }
    pbh_plan_free(&plan);
}

/* ---- runner with a fake executor ---- */

typedef struct fake {
    int cases_run, floors_run;
} fake;

static void fake_case(void *ud, const pbh_case_spec *spec, pbh_case *c) {
    fake *f = ud;
    f->cases_run++;
    if (strcmp(spec->backend, "spawn") == 0) {
        c->status = strdup(PBH_STATUS_FAILED);
        c->reason = strdup("case process killed by signal 11");
        return;
    }
    for (int i = 0; i < spec->reps; i++) {
        pbh_sample *s = pbh_case_add_sample(c);
        s->rep = i;
        s->wall_s = 1.0 + 0.125 * i;
        s->ideal_s = 1.0;
        s->tasks = 8;
    }
    c->status = strdup(PBH_STATUS_OK);
}

static void fake_floors(void *ud, pbh_run *run) {
    fake *f = ud;
    f->floors_run++;
    pbh_run_add_floor(run, "nanosleep_overshoot", 0.0625, 1);
}

static int progress_calls;
static void count_progress(void *ud, size_t i, size_t n, const pbh_case *c, double elapsed) {
    (void)ud, (void)c, (void)elapsed;
    assert_true(i >= 1 && i <= n);
    if (c->status) /* finished (the call before the case has no status yet) */
        progress_calls++;
}

static void test_runner_fake(void **state) {
    (void)state;
    pbh_request rq;
    pbh_request_init(&rq);
    rq.scenarios[rq.nscenarios++] = "sleep";
    rq.scenarios[rq.nscenarios++] = "crash";
    rq.workers[rq.nworkers++] = 2;
    rq.reps = 5;
    pbh_plan plan;
    char err[512];
    assert_int_equal(pbh_plan_build(&rq, &plan, err, sizeof err), PBH_OK);
    fake f = {0};
    pbh_executor ex = {fake_case, fake_floors, &f};
    pbh_run *run = pbh_run_new();
    progress_calls = 0;
    assert_int_equal(pbh_runner_run(&plan, &ex, run, count_progress, NULL), PBH_OK);
    assert_int_equal(f.floors_run, 1);
    assert_int_equal((size_t)progress_calls, plan.n);
    assert_int_equal(run->ncases, plan.n);
    assert_string_equal(run->status, "failed"); /* the spawn cases failed */
    int unsupported = 0, failed = 0, ok = 0;
    for (size_t i = 0; i < run->ncases; i++) {
        const pbh_case *c = &run->cases[i];
        if (strcmp(c->status, PBH_STATUS_UNSUPPORTED) == 0) {
            unsupported++;
            assert_string_equal(c->scenario, "crash");
            assert_int_equal(c->nsamples, 0);
        } else if (strcmp(c->status, PBH_STATUS_FAILED) == 0) {
            failed++;
            assert_string_equal(c->backend, "spawn");
            assert_non_null(strstr(c->reason, "signal 11"));
        } else {
            ok++;
            assert_int_equal(c->nsamples, 5);
            pbh_case_summary s;
            assert_int_equal(pbh_case_summarize(run, c, &s), PBH_OK);
            assert_true(s.median_s == 1.25);                  /* 1, 1.125, 1.25, 1.375, 1.5 */
            assert_true(s.efficiency == 0.8);                 /* 1 / 1.25 */
            assert_true(s.overhead_per_task_s == 0.25 / 8);   /* exact in binary */
            if (strcmp(c->scenario, "sleep") == 0)
                assert_true(s.overhead_x_floor == 0.5);       /* 0.03125 / 0.0625 */
        }
    }
    int no_isolation = 0; /* serial, threads and the reference backends, when built in */
    for (size_t b = 0; b < pb_backend_count(); b++)
        no_isolation += (pb_backend_caps(pb_backend_name_at(b)) & PB_CAP_CRASH_ISOLATION) == 0;
    assert_true(no_isolation >= 2);
    assert_int_equal(unsupported, no_isolation); /* crash on each of those: recorded, not run */
    assert_int_equal(failed, 2);                 /* sleep and crash on spawn */
    assert_int_equal(f.cases_run, (int)plan.n - no_isolation);
    assert_int_equal(ok, (int)plan.n - no_isolation - 2);
    pbh_run_free(run);
    pbh_plan_free(&plan);
}

/* ---- the real child executor: one tiny case, nothing leaked ---- */

static void test_child_executor(void **state) {
    (void)state;
    const char *bin = getenv("POOLBENCH_BINARY_DIR");
    if (!bin)
        skip();
    pbh_child_executor ce;
    pbh_executor ex;
    pbh_child_executor_init(&ce, &ex);
    snprintf(ce.self_exe, sizeof ce.self_exe, "%s/poolbench", bin);
    if (access(ce.self_exe, X_OK) != 0)
        skip();
    pbh_request rq;
    pbh_request_init(&rq);
    rq.scenarios[rq.nscenarios++] = "sleep";
    rq.backends[rq.nbackends++] = "threads";
    rq.backends[rq.nbackends++] = "fork";
    rq.workers[rq.nworkers++] = 2;
    rq.params[rq.nparams++] = "items=2";
    rq.params[rq.nparams++] = "ms=1";
    rq.reps = 3;
    rq.warmup = 0;
    pbh_plan plan;
    char err[512];
    assert_int_equal(pbh_plan_build(&rq, &plan, err, sizeof err), PBH_OK);
    int fds0 = tu_count_fds(), kids0 = tu_count_children();
    pbh_run *run = pbh_run_new();
    assert_int_equal(pbh_runner_run(&plan, &ex, run, NULL, NULL), PBH_OK);
    assert_int_equal(tu_count_fds(), fds0);
    assert_int_equal(tu_count_children(), kids0);
    assert_string_equal(run->status, "ok");
    assert_true(run->nfloors > 0);
    for (size_t i = 0; i < run->ncases; i++) {
        assert_string_equal(run->cases[i].status, "ok");
        assert_int_equal(run->cases[i].nsamples, 3);
        for (size_t j = 0; j < 3; j++) {
            assert_true(run->cases[i].samples[j].wall_s > 0);
            assert_int_equal(run->cases[i].samples[j].tasks, 2);
            assert_true(run->cases[i].samples[j].peak_rss_kb > 0);
        }
    }
    pbh_run_free(run);
    pbh_plan_free(&plan);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_reopen),
        cmocka_unit_test(test_read_missing_store),
        cmocka_unit_test(test_wal_must_take_effect),
        cmocka_unit_test(test_migrate_v1),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_newer_schema_rejected),
        cmocka_unit_test(test_foreign_files_rejected),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_summary_exact),
        cmocka_unit_test(test_plan_matrix),
        cmocka_unit_test(test_plan_bad_input),
        cmocka_unit_test(test_suites_expand),
        cmocka_unit_test(test_pair_repetitions),
        cmocka_unit_test(test_runner_fake),
        cmocka_unit_test(test_child_executor),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
