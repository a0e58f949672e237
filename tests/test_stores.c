/*
 * test_stores.c - one table of store tests run against every store implementation: SQLite (a file in a
 * temporary folder) and PostgreSQL (a fresh database per test in the throwaway cluster that tests/with-pg
 * starts; ctest runs this program under it). The libuv way: a store is tested the moment it exists.
 *
 * Each test gets a store name from its backend and checks the storage contract through store.h only:
 * schema creation and reopening, an exact round trip (uuid, machine, awkward doubles), RUN references
 * (id, label, latest, uuid), inserting a run twice stores it once, the machine filter, a newer schema and
 * another program's database refused and left as they were, eight processes writing into one store at
 * once (every run complete, none interleaved), and the consistency check. PostgreSQL-only: an unreachable
 * server and a refused login fail quickly with a message that never shows the password; a URI's password
 * is redacted wherever it is shown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "context.h"
#include "history.h"
#include "store.h"
#include "store_pg.h"
#include "store_sql.h"
#include "util.h"
#include "store_fixture.h"
#include "testutil.h"

#include <float.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];
static int dbcounter;

/* ---- the backends ---------------------------------------------------------------------------------- */

typedef struct backend {
    const char *name;
    /* a fresh, empty store; its name into buf */
    void (*fresh)(char *buf, size_t len);
    /* runs SQL against the store behind name as its owner would (test set-up only) */
    void (*exec)(const char *name, const char *sql);
} backend;

static void sqlite_fresh(char *buf, size_t len) {
    snprintf(buf, len, "%s/store%d.db", tmpdir, ++dbcounter);
}

static void sqlite_exec(const char *name, const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(name, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "sqlite: %s\n", msg);
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

static void pg_exec(const char *uri, const char *sql) {
    PGconn *c = PQconnectdb(uri);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "pg: %s\n", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    assert_true(ok);
}

static void pg_fresh(char *buf, size_t len) {
    const char *admin = getenv("POOLBENCH_TEST_PG_ADMIN"), *sock = getenv("POOLBENCH_TEST_PG_SOCKET");
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE pbt_%d_%d", (int)getpid(), ++dbcounter);
    pg_exec(admin, sql);
    snprintf(buf, len, "postgresql://postgres@/pbt_%d_%d?host=%s", (int)getpid(), dbcounter, sock);
}

static const backend backends[] = {
    {"sqlite", sqlite_fresh, sqlite_exec},
    {"postgresql", pg_fresh, pg_exec},
};

/* ---- helpers ------------------------------------------------------------------------------------------ */

static pbh_store *open_ok(const char *name, enum pbh_store_mode mode) {
    pbh_store *st = NULL;
    char err[1024];
    int rc = pbh_store_open(&st, name, mode, err, sizeof err);
    if (rc != PBH_OK)
        fprintf(stderr, "open %s: %s\n", name, err);
    assert_int_equal(rc, PBH_OK);
    return st;
}

static size_t count_runs(const char *name, const char *machine) {
    pbh_store *st = open_ok(name, PBH_STORE_READ);
    pbh_run_info *infos;
    size_t n;
    char err[512];
    assert_int_equal(pbh_store_list_runs(st, machine, &infos, &n, err, sizeof err), PBH_OK);
    pbh_run_infos_free(infos, n);
    pbh_store_close(st);
    return n;
}

static void assert_check_ok(const char *name) {
    pbh_store *st = open_ok(name, PBH_STORE_READ);
    char report[2048];
    int problems = pbh_store_check(st, report, sizeof report);
    if (problems)
        fprintf(stderr, "check %s: %s\n", name, report);
    assert_int_equal(problems, 0);
    pbh_store_close(st);
}

/* ---- the table ---------------------------------------------------------------------------------------- */

static void t_create_reopen(const backend *b) {
    char name[512];
    b->fresh(name, sizeof name);
    pbh_store *st = open_ok(name, PBH_STORE_WRITE);
    assert_int_equal(pbh_store_schema_version(st), PBH_SCHEMA_VERSION);
    pbh_store_close(st);
    st = open_ok(name, PBH_STORE_WRITE);
    assert_int_equal(pbh_store_schema_version(st), PBH_SCHEMA_VERSION);
    pbh_store_close(st);
    assert_int_equal(count_runs(name, NULL), 0);
    assert_check_ok(name);
}

static void t_round_trip(const backend *b) {
    char name[512], err[1024];
    b->fresh(name, sizeof name);
    pbh_store *st = open_ok(name, PBH_STORE_WRITE);
    pbh_run *in = tf_make_run("rt", "runner-7");
    assert_null(in->uuid);
    assert_int_equal(pbh_store_insert_run(st, in, err, sizeof err), PBH_OK);
    assert_true(in->id > 0);
    assert_true(pbh_uuid_valid(in->uuid)); /* given at first store */
    pbh_store_close(st);

    st = open_ok(name, PBH_STORE_READ);
    pbh_run *out;
    assert_int_equal(pbh_store_load_run(st, in->id, &out, err, sizeof err), PBH_OK);
    pbh_store_close(st);
    tf_assert_same_run(in, out);
    assert_string_equal(out->uuid, in->uuid);
    assert_string_equal(out->ctx.machine, "runner-7");
    assert_string_equal(out->ctx.extra_json, in->ctx.extra_json);
    pbh_run_free(in);
    pbh_run_free(out);
}

static void t_resolve(const backend *b) {
    char name[512], err[1024];
    b->fresh(name, sizeof name);
    pbh_store *st = open_ok(name, PBH_STORE_WRITE);
    const char *labels[] = {"base", "new", "base", NULL};
    char uuid2[37] = "";
    for (int i = 0; i < 4; i++) {
        pbh_run *r = tf_make_run(labels[i], NULL);
        assert_int_equal(pbh_store_insert_run(st, r, err, sizeof err), PBH_OK);
        assert_int_equal(r->id, i + 1);
        if (i == 1)
            snprintf(uuid2, sizeof uuid2, "%s", r->uuid);
        pbh_run_free(r);
    }
    int64_t id;
    assert_int_equal(pbh_store_resolve(st, "latest", &id, err, sizeof err), PBH_OK);
    assert_int_equal(id, 4);
    assert_int_equal(pbh_store_resolve(st, "base", &id, err, sizeof err), PBH_OK);
    assert_int_equal(id, 3);
    assert_int_equal(pbh_store_resolve(st, "1", &id, err, sizeof err), PBH_OK);
    assert_int_equal(id, 1);
    assert_int_equal(pbh_store_resolve(st, uuid2, &id, err, sizeof err), PBH_OK);
    assert_int_equal(id, 2);
    for (char *p = uuid2; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(pbh_store_resolve(st, uuid2, &id, err, sizeof err), PBH_OK);
    assert_int_equal(id, 2);
    assert_int_equal(pbh_store_resolve(st, "77", &id, err, sizeof err), PBH_ENOTFOUND);
    assert_int_equal(pbh_store_resolve(st, "nope", &id, err, sizeof err), PBH_ENOTFOUND);
    assert_non_null(strstr(err, "nope"));
    pbh_store_close(st);
}

static void t_insert_twice_stores_once(const backend *b) {
    char name[512], err[1024];
    b->fresh(name, sizeof name);
    pbh_store *st = open_ok(name, PBH_STORE_WRITE);
    pbh_run *r = tf_make_run("once", NULL);
    assert_int_equal(pbh_store_insert_run(st, r, err, sizeof err), PBH_OK);
    int64_t first = r->id;
    r->id = 0;
    assert_int_equal(pbh_store_insert_run(st, r, err, sizeof err), PBH_EEXIST);
    assert_int_equal(r->id, first); /* the id of the run already there */
    pbh_run *other = tf_make_run("other", NULL);
    assert_int_equal(pbh_store_insert_run(st, other, err, sizeof err), PBH_OK);
    assert_true(other->id > first); /* (PostgreSQL's identity may skip the number the refused insert drew) */
    pbh_run_free(r);
    pbh_run_free(other);
    pbh_store_close(st);
    assert_int_equal(count_runs(name, NULL), 2);
    assert_check_ok(name);
}

static void t_machine_filter(const backend *b) {
    char name[512], err[1024];
    b->fresh(name, sizeof name);
    pbh_store *st = open_ok(name, PBH_STORE_WRITE);
    const char *machines[] = {"ci-a", "ci-b", "ci-a", "ci-a"};
    for (int i = 0; i < 4; i++) {
        pbh_run *r = tf_make_run(NULL, machines[i]);
        assert_int_equal(pbh_store_insert_run(st, r, err, sizeof err), PBH_OK);
        pbh_run_free(r);
    }
    pbh_store_close(st);
    assert_int_equal(count_runs(name, NULL), 4);
    assert_int_equal(count_runs(name, "ci-a"), 3);
    assert_int_equal(count_runs(name, "ci-b"), 1);
    assert_int_equal(count_runs(name, "ci-c"), 0);
    st = open_ok(name, PBH_STORE_READ);
    pbh_run_info *infos;
    size_t n;
    assert_int_equal(pbh_store_list_runs(st, "ci-b", &infos, &n, err, sizeof err), PBH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(infos[0].id, 2);
    assert_string_equal(infos[0].machine, "ci-b");
    assert_true(pbh_uuid_valid(infos[0].uuid));
    pbh_run_infos_free(infos, n);
    pbh_store_close(st);
}

/* history never mixes machines: one series per (machine, case); the store narrows by machine and case */
static void t_history_by_machine(const backend *b) {
    char name[512], err[1024];
    b->fresh(name, sizeof name);
    pbh_store *st = open_ok(name, PBH_STORE_WRITE);
    const char *machines[] = {"ci-a", "ci-b", "ci-a", "ci-b", "ci-a"};
    for (int i = 0; i < 5; i++) {
        pbh_run *r = tf_make_run(NULL, machines[i]);
        r->ctx.started_unix += i; /* time order = insertion order */
        r->cases[0].samples[0].wall_s = 1.0 + i;
        assert_int_equal(pbh_store_insert_run(st, r, err, sizeof err), PBH_OK);
        pbh_run_free(r);
    }
    pbh_history h;
    assert_int_equal(pbh_history_build(st, NULL, NULL, &h, err, sizeof err), PBH_OK);
    assert_int_equal(h.ncases, 2); /* the one ok case, once per machine */
    for (size_t i = 0; i < h.ncases; i++) {
        const pbh_history_case *hc = &h.cases[i];
        assert_int_equal(hc->npoints, strcmp(hc->machine, "ci-a") == 0 ? 3 : 2);
        for (size_t k = 0; k < hc->npoints; k++)
            assert_string_equal(hc->points[k].run->ctx.machine, hc->machine);
        for (size_t k = 1; k < hc->npoints; k++) /* time order */
            assert_true(hc->points[k - 1].run->ctx.started_unix < hc->points[k].run->ctx.started_unix);
    }
    pbh_history_free(&h);
    pbh_history_filter f = {.machine = "ci-b", .case_name = "sleep/fork/w4/items=4,ms=2000"};
    assert_int_equal(pbh_history_build(st, &f, NULL, &h, err, sizeof err), PBH_OK);
    assert_int_equal(h.ncases, 1);
    assert_string_equal(h.cases[0].machine, "ci-b");
    assert_int_equal(h.cases[0].npoints, 2);
    assert_int_equal(h.nruns, 2);
    for (size_t r = 0; r < h.nruns; r++)
        assert_int_equal(h.runs[r]->ncases, 1); /* only the matching case was loaded */
    pbh_history_free(&h);
    f = (pbh_history_filter){.machine = "ci-c"};
    assert_int_equal(pbh_history_build(st, &f, NULL, &h, err, sizeof err), PBH_OK);
    assert_int_equal(h.ncases, 0);
    pbh_history_free(&h);
    pbh_store_close(st);
}

/* An interleaved A/B pair (schema 4): both runs and the link in one transaction, found from either run;
 * a pair whose head cannot be stored leaves neither run behind. Calibrations found by machine key. */
static void t_pairs_and_calibrations(const backend *b) {
    char name[512], err[1024];
    b->fresh(name, sizeof name);
    pbh_store *st = open_ok(name, PBH_STORE_WRITE);
    pbh_run *base = tf_make_run("base", "runner-7"), *head = tf_make_run("head", "runner-7");
    pbh_pair pair;
    memset(&pair, 0, sizeof pair);
    pair.seed = UINT64_C(0xfedcba9876543210); /* the top bit set: stored as its 64 bits */
    pair.block_reps = 5;
    snprintf(pair.base_exe, sizeof pair.base_exe, "/opt/base/poolbench");
    snprintf(pair.head_exe, sizeof pair.head_exe, "/opt/head/poolbench");
    assert_int_equal(pbh_store_insert_pair(st, base, head, &pair, err, sizeof err), PBH_OK);
    assert_true(pair.id > 0 && base->id > 0 && head->id > 0 && base->id != head->id);
    pbh_store_close(st);

    st = open_ok(name, PBH_STORE_READ);
    for (int side = 0; side < 2; side++) {
        pbh_pair p;
        assert_int_equal(pbh_store_find_pair(st, side ? head->id : base->id, &p, err, sizeof err), PBH_OK);
        assert_int_equal(p.id, pair.id);
        assert_int_equal(p.base_run_id, base->id);
        assert_int_equal(p.head_run_id, head->id);
        assert_true(p.seed == pair.seed);
        assert_int_equal(p.block_reps, 5);
        assert_string_equal(p.base_exe, "/opt/base/poolbench");
        assert_string_equal(p.head_exe, "/opt/head/poolbench");
        assert_string_equal(p.injected, "");
    }
    pbh_run *out;
    assert_int_equal(pbh_store_load_run(st, head->id, &out, err, sizeof err), PBH_OK);
    tf_assert_same_run(head, out);
    pbh_run_free(out);
    pbh_pair none;
    assert_int_equal(pbh_store_find_pair(st, head->id + 1000, &none, err, sizeof err), PBH_ENOTFOUND);
    pbh_store_close(st);
    assert_int_equal(count_runs(name, NULL), 2);

    /* the head's uuid is taken (by its own base): the whole pair is rolled back */
    pbh_run *b2 = tf_make_run("base2", "runner-7"), *h2 = tf_make_run("head2", "runner-7");
    char u[37];
    assert_int_equal(pbh_uuid_new(u), 0);
    b2->uuid = strdup(u);
    h2->uuid = strdup(u);
    st = open_ok(name, PBH_STORE_WRITE);
    assert_int_not_equal(pbh_store_insert_pair(st, b2, h2, &pair, err, sizeof err), PBH_OK);

    /* calibrations: the latest of this machine key (and suite) */
    int64_t c1, c2, got;
    char *json;
    assert_int_equal(pbh_store_insert_calibration(st, &base->ctx, "quick", "{\"n\": 1}", &c1, err, sizeof err),
                     PBH_OK);
    assert_int_equal(pbh_store_insert_calibration(st, &base->ctx, "quick", "{\"n\": 2}", &c2, err, sizeof err),
                     PBH_OK);
    assert_true(c2 > c1);
    assert_int_equal(pbh_store_latest_calibration(st, &head->ctx, "quick", &json, &got, err, sizeof err), PBH_OK);
    assert_int_equal(got, c2);
    assert_string_equal(json, "{\"n\": 2}");
    free(json);
    assert_int_equal(pbh_store_latest_calibration(st, &head->ctx, "default", &json, &got, err, sizeof err),
                     PBH_ENOTFOUND);
    pbh_set_str(&h2->ctx.machine, "runner-8");
    assert_int_equal(pbh_store_latest_calibration(st, &h2->ctx, NULL, &json, &got, err, sizeof err), PBH_ENOTFOUND);
    pbh_store_close(st);
    assert_int_equal(count_runs(name, NULL), 2);
    assert_check_ok(name);
    pbh_run_free(b2);
    pbh_run_free(h2);
    pbh_run_free(base);
    pbh_run_free(head);
}

static void t_newer_schema_refused(const backend *b) {
    char name[512], err[1024];
    b->fresh(name, sizeof name);
    pbh_store *st = open_ok(name, PBH_STORE_WRITE);
    pbh_run *r = tf_make_run("x", NULL);
    assert_int_equal(pbh_store_insert_run(st, r, err, sizeof err), PBH_OK);
    pbh_run_free(r);
    pbh_store_close(st);
    b->exec(name, strcmp(b->name, "sqlite") == 0 ? "PRAGMA user_version = 99"
                                                 : "UPDATE poolbench_meta SET value = '99' WHERE key = 'schema_version'");
    assert_int_equal(pbh_store_open(&st, name, PBH_STORE_WRITE, err, sizeof err), PBH_ESCHEMA);
    assert_non_null(strstr(err, "99"));
    assert_int_equal(pbh_store_open(&st, name, PBH_STORE_READ, err, sizeof err), PBH_ESCHEMA);
}

static void t_foreign_refused(const backend *b) {
    char name[512], err[1024];
    b->fresh(name, sizeof name);
    b->exec(name, "CREATE TABLE accounts (x INTEGER); INSERT INTO accounts VALUES (1)");
    pbh_store *st;
    for (int mode = 0; mode < 2; mode++) {
        assert_int_equal(pbh_store_open(&st, name, mode ? PBH_STORE_WRITE : PBH_STORE_READ, err, sizeof err),
                         PBH_EINPUT);
        assert_non_null(strstr(err, "another program"));
    }
    /* untouched: its one table, and none of ours */
    if (strcmp(b->name, "postgresql") == 0)
        b->exec(name, "DO $$ BEGIN IF (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()) <> 1 "
                      "OR to_regclass('runs') IS NOT NULL THEN RAISE EXCEPTION 'touched'; END IF; END $$");
    else
        b->exec(name, "SELECT CASE WHEN (SELECT count(*) FROM sqlite_master) = 1 THEN 1 "
                      "ELSE abs(-9223372036854775807 - 1) END");
}

/* Eight processes open the same fresh store at once and each writes RUNS_PER_WRITER runs. */
#define WRITERS 8
#define RUNS_PER_WRITER 3
static void t_concurrent_writers(const backend *b) {
    char name[512], err[1024];
    b->fresh(name, sizeof name);
    int children_before = tu_count_children();
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            pbh_store *st;
            if (pbh_store_open(&st, name, PBH_STORE_WRITE, err, sizeof err) != PBH_OK) {
                fprintf(stderr, "writer %d: %s\n", w, err);
                _exit(1);
            }
            for (int i = 0; i < RUNS_PER_WRITER; i++) {
                char label[32];
                snprintf(label, sizeof label, "w%d-%d", w, i);
                pbh_run *r = tf_make_run(label, NULL);
                int rc = pbh_store_insert_run(st, r, err, sizeof err);
                pbh_run_free(r);
                if (rc != PBH_OK) {
                    fprintf(stderr, "writer %d: %s\n", w, err);
                    _exit(1);
                }
            }
            pbh_store_close(st);
            _exit(0);
        }
    }
    for (int w = 0; w < WRITERS; w++) {
        int status;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(tu_count_children(), children_before);
    assert_int_equal(count_runs(name, NULL), WRITERS * RUNS_PER_WRITER);
    assert_check_ok(name);
    /* every run whole and its own: the cases and samples it was written with, under its label */
    pbh_store *st = open_ok(name, PBH_STORE_READ);
    for (int w = 0; w < WRITERS; w++) {
        for (int i = 0; i < RUNS_PER_WRITER; i++) {
            char label[32];
            snprintf(label, sizeof label, "w%d-%d", w, i);
            int64_t id;
            assert_int_equal(pbh_store_resolve(st, label, &id, err, sizeof err), PBH_OK);
            pbh_run *r;
            assert_int_equal(pbh_store_load_run(st, id, &r, err, sizeof err), PBH_OK);
            assert_string_equal(r->label, label);
            assert_int_equal(r->ncases, 2);
            assert_string_equal(r->cases[0].name, "sleep/fork/w4/items=4,ms=2000");
            assert_int_equal(r->cases[0].nsamples, 3);
            assert_int_equal(r->cases[1].nsamples, 0);
            assert_int_equal(r->nfloors, 2);
            pbh_run_free(r);
        }
    }
    pbh_store_close(st);
}

/* ---- PostgreSQL only ---------------------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_pg_bad_login_and_unreachable(void **state) {
    (void)state;
    const char *sock = getenv("POOLBENCH_TEST_PG_SOCKET"), *user = getenv("POOLBENCH_TEST_PG_USER");
    char uri[1024], err[2048];
    pbh_store *st = NULL;
    /* a wrong password: refused, and the message names the store without the password */
    snprintf(uri, sizeof uri, "postgresql://%s:Wr0ngSecret@/poolbench?host=%s", user, sock);
    double t0 = now_s();
    assert_int_equal(pbh_store_open(&st, uri, PBH_STORE_WRITE, err, sizeof err), PBH_EINPUT);
    assert_null(st);
    assert_null(strstr(err, "Wr0ngSecret"));
    assert_non_null(strstr(err, "password authentication failed"));
    assert_non_null(strstr(err, "***"));
    /* the right one, given as a parameter: it works, and is still never shown */
    snprintf(uri, sizeof uri, "postgresql://%s@/poolbench?host=%s&password=%s", user, sock,
             getenv("POOLBENCH_TEST_PG_PASSWORD"));
    assert_int_equal(pbh_store_open(&st, uri, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    pbh_store_close(st);
    /* nobody listening (loopback, port 1): refused at once */
    assert_int_equal(pbh_store_open(&st, "postgresql://nobody:pw1234@127.0.0.1:1/db", PBH_STORE_READ, err, sizeof err),
                     PBH_EINPUT);
    assert_null(strstr(err, "pw1234"));
    assert_non_null(strstr(err, "cannot connect"));
    /* a malformed URI that libpq echoes back: scrubbed */
    assert_int_equal(pbh_store_open(&st, "postgresql://u:s3cr3t%zz@/db", PBH_STORE_READ, err, sizeof err),
                     PBH_EINPUT);
    assert_null(strstr(err, "s3cr3t"));
    /* a bound, not a speed: each failure comes back within the connect timeout */
    assert_true(now_s() - t0 < 4 * PBH_PG_CONNECT_TIMEOUT_S);
}

static void test_redact_password(void **state) {
    (void)state;
    char buf[512];
    assert_string_equal(pbh_redact_password("postgresql://u:secret@h:5432/db?sslmode=require", buf, sizeof buf),
                        "postgresql://u:***@h:5432/db?sslmode=require");
    assert_string_equal(pbh_redact_password("postgresql://u@h/db", buf, sizeof buf), "postgresql://u@h/db");
    assert_string_equal(pbh_redact_password("postgresql://u:p@ss@h/db", buf, sizeof buf), "postgresql://u:***@h/db");
    assert_string_equal(pbh_redact_password("postgresql:///db?host=/tmp&password=abc&x=1", buf, sizeof buf),
                        "postgresql:///db?host=/tmp&password=***&x=1");
    assert_string_equal(pbh_redact_password("results/poolbench.db", buf, sizeof buf), "results/poolbench.db");
    char *argv[] = {"poolbench", "run", "--store", "postgresql://ci:hunter2@db/bench", NULL};
    char *line = pbh_join_argv(4, argv);
    assert_null(strstr(line, "hunter2"));
    assert_non_null(strstr(line, "postgresql://ci:***@db/bench"));
    free(line);
}

static void test_store_names(void **state) {
    (void)state;
    assert_true(pbh_store_is_postgres("postgresql://h/db"));
    assert_true(pbh_store_is_postgres("postgres://h/db"));
    assert_false(pbh_store_is_postgres("results/poolbench.db"));
    assert_false(pbh_store_is_postgres("postgresql.db"));
    char u[37];
    assert_int_equal(pbh_uuid_new(u), 0);
    assert_true(pbh_uuid_valid(u));
    assert_int_equal(u[14], '4');
    assert_false(pbh_uuid_valid("not-a-uuid"));
    assert_true(pbh_machine_name_valid("ci-runner-7"));
    assert_false(pbh_machine_name_valid(""));
    assert_false(pbh_machine_name_valid("a b"));
}

/* ---- the table, expanded over the backends ------------------------------------------------------------- */

typedef struct table_test {
    const char *name;
    void (*fn)(const backend *b);
} table_test;

static const table_test table[] = {
    {"create_reopen", t_create_reopen},
    {"round_trip", t_round_trip},
    {"resolve", t_resolve},
    {"insert_twice_stores_once", t_insert_twice_stores_once},
    {"machine_filter", t_machine_filter},
    {"history_by_machine", t_history_by_machine},
    {"pairs_and_calibrations", t_pairs_and_calibrations},
    {"newer_schema_refused", t_newer_schema_refused},
    {"foreign_refused", t_foreign_refused},
    {"concurrent_writers", t_concurrent_writers},
};
#define NTABLE (sizeof table / sizeof table[0])
#define NBACKENDS (sizeof backends / sizeof backends[0])

typedef struct cell {
    const table_test *t;
    const backend *b;
} cell;
static cell cells[NTABLE * NBACKENDS];
static char cell_names[NTABLE * NBACKENDS][96];

static void run_cell(void **state) {
    const cell *c = *state;
    c->t->fn(c->b);
}

static int setup(void **state) {
    (void)state;
    return tu_make_tmpdir(tmpdir, sizeof tmpdir, "pb_test_stores");
}

static int teardown(void **state) {
    (void)state;
    return tu_remove_tmpdir(tmpdir);
}

int main(void) {
    if (!getenv("POOLBENCH_TEST_PG") || !getenv("POOLBENCH_TEST_PG_ADMIN")) {
        fprintf(stderr, "test_stores: no PostgreSQL cluster: run me under tests/with-pg (ctest does)\n");
        return 1;
    }
    struct CMUnitTest tests[NTABLE * NBACKENDS + 3];
    size_t n = 0;
    for (size_t b = 0; b < NBACKENDS; b++) {
        for (size_t t = 0; t < NTABLE; t++) {
            cell *c = &cells[n];
            c->t = &table[t];
            c->b = &backends[b];
            snprintf(cell_names[n], sizeof cell_names[n], "%s/%s", backends[b].name, table[t].name);
            tests[n] = (struct CMUnitTest){cell_names[n], run_cell, NULL, NULL, c};
            n++;
        }
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_pg_bad_login_and_unreachable);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_redact_password);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_store_names);
    return _cmocka_run_group_tests("test_stores", tests, n, setup, teardown);
}
