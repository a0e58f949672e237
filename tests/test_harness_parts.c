/*
 * test_harness_parts.c - the harness's small shared parts, each on its own: the exec line codec (what the
 * case process writes is what the runner reads, bit for bit), the child-process helper (lines, stderr
 * tail, exit status, deadline kill, every child reaped and every fd closed), the error ranges and their
 * one translation, the store front's choice of implementation, and case lookup by name. Nothing is timed:
 * the deadline test only checks that a child which would sleep for a minute is reported as timed out.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "child.h"
#include "common.h"
#include "exec_line.h"
#include "model.h"
#include "poolbench.h"
#include "stats.h"
#include "store.h"
#include "testutil.h"

static void test_exec_line_round_trip(void **state) {
    (void)state;
    pbh_sample x = {.wall_s = 0.1 + 0.2, .user_s = 1.0 / 3.0, .sys_s = 2.5e-7, .peak_rss_kb = 123456,
                    .startup_s = 4.0e-4, .ideal_s = 3.141592653589793, .tasks = 20000, .failed_tasks = 3};
    char *line = pbh_exec_line_execution(7, 1, 0, "task \"x\" failed", &x, 5, 2);
    assert_non_null(line);
    assert_null(strchr(line, '\n'));
    pbh_exec_line l;
    assert_int_equal(pbh_exec_line_parse(line, &l), PBH_LINE_EXECUTION);
    free(line);
    assert_int_equal(l.rep, 7);
    assert_true(l.warmup);
    assert_false(l.ok);
    assert_string_equal(l.message, "task \"x\" failed");
    assert_memory_equal(&l.sample.wall_s, &x.wall_s, sizeof x.wall_s); /* bit-exact, not approximately */
    assert_memory_equal(&l.sample.user_s, &x.user_s, sizeof x.user_s);
    assert_memory_equal(&l.sample.sys_s, &x.sys_s, sizeof x.sys_s);
    assert_memory_equal(&l.sample.ideal_s, &x.ideal_s, sizeof x.ideal_s);
    assert_memory_equal(&l.sample.startup_s, &x.startup_s, sizeof x.startup_s);
    assert_int_equal(l.sample.peak_rss_kb, 123456);
    assert_int_equal(l.sample.tasks, 20000);
    assert_int_equal(l.sample.failed_tasks, 3);
    assert_int_equal(l.workers_started, 5);
    assert_int_equal(l.worker_deaths, 2);

    line = pbh_exec_line_done(12);
    assert_string_equal(line, "{\"type\":\"done\",\"executions\":12}"); /* what exec printed by hand before */
    assert_int_equal(pbh_exec_line_parse(line, &l), PBH_LINE_DONE);
    assert_int_equal(l.executions, 12);
    free(line);

    line = pbh_exec_line_floor("pipe_rtt", 1.25e-5, 2000);
    assert_int_equal(pbh_exec_line_parse(line, &l), PBH_LINE_FLOOR);
    assert_string_equal(l.floor_name, "pipe_rtt");
    assert_true(l.floor_seconds == 1.25e-5);
    assert_int_equal(l.floor_reps, 2000);
    free(line);

    assert_int_equal(pbh_exec_line_parse("not json", &l), PBH_LINE_GARBLED);
    assert_int_equal(pbh_exec_line_parse("[1,2]", &l), PBH_LINE_GARBLED);
    assert_int_equal(pbh_exec_line_parse("{\"type\":\"progress\"}", &l), PBH_LINE_OTHER);
    assert_int_equal(pbh_exec_line_parse("{\"type\":\"floor\"}", &l), PBH_LINE_OTHER); /* no name: ignored */
}

typedef struct lines {
    char got[8][64];
    int n;
} lines;

static void collect(void *ud, const char *line) {
    lines *l = ud;
    if (l->n < 8)
        snprintf(l->got[l->n++], sizeof l->got[0], "%s", line);
}

static void test_child_lines_tail_status(void **state) {
    (void)state;
    int fds = tu_count_fds(), kids = tu_count_children();
    char *argv[] = {"sh", "-c", "echo one; printf 'two\\nthree'; echo first >&2; echo last >&2; exit 3", NULL};
    pbh_child ch;
    char err[256];
    assert_int_equal(pbh_child_spawn(&ch, "/bin/sh", argv, PBH_CHILD_OWN_GROUP, err, sizeof err), 0);
    lines l = {0};
    int status = -1;
    assert_int_equal(pbh_child_finish(&ch, pbs_now() + 60, NULL, collect, &l, &status), PBH_CHILD_EXITED);
    assert_int_equal(l.n, 2); /* "three" has no newline: not a line */
    assert_string_equal(l.got[0], "one");
    assert_string_equal(l.got[1], "two");
    char last[128], how[128];
    pbh_child_last_err_line(&ch, last, sizeof last);
    assert_string_equal(last, "last");
    pbh_describe_wait_status(status, how, sizeof how);
    assert_string_equal(how, "exited with code 3");
    assert_int_equal(tu_count_fds(), fds);
    assert_true(TU_EVENTUALLY(tu_count_children() == kids, 5));
}

static void test_child_deadline_kills_the_group(void **state) {
    (void)state;
    int fds = tu_count_fds(), kids = tu_count_children();
    /* a grandchild holding the pipes open, as a stray pool worker would: the group kill takes it too */
    char *argv[] = {"sh", "-c", "sleep 60 & sleep 60", NULL};
    pbh_child ch;
    char err[256];
    assert_int_equal(pbh_child_spawn(&ch, "/bin/sh", argv, PBH_CHILD_OWN_GROUP, err, sizeof err), 0);
    pid_t pgid = ch.pid;
    int status = 0;
    assert_int_equal(pbh_child_finish(&ch, pbs_now() + 0.2, NULL, NULL, NULL, &status), PBH_CHILD_TIMEOUT);
    char how[128];
    pbh_describe_wait_status(status, how, sizeof how);
    assert_string_equal(how, "was killed by signal 9 (SIGKILL)");
    assert_int_equal(tu_count_fds(), fds);
    assert_true(TU_EVENTUALLY(kill(-pgid, 0) != 0, 5)); /* nothing of the group is left */
    assert_true(TU_EVENTUALLY(tu_count_children() == kids, 5));
}

static void test_child_spawn_failure(void **state) {
    (void)state;
    int fds = tu_count_fds();
    char *argv[] = {"nope", NULL};
    pbh_child ch;
    char err[256] = "";
    assert_int_equal(pbh_child_spawn(&ch, "/nonexistent/nope", argv, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot start /nonexistent/nope"));
    assert_int_equal(tu_count_fds(), fds);
}

static void test_error_ranges_and_translation(void **state) {
    (void)state;
    const int pbh[] = {PBH_EINPUT, PBH_ENOTFOUND, PBH_EIO, PBH_ENOMEM, PBH_ESCHEMA};
    for (size_t i = 0; i < sizeof pbh / sizeof pbh[0]; i++) {
        assert_true(pbh[i] <= -20001 && pbh[i] >= -20099);
        assert_int_equal(pbh_error(pbh[i]), pbh[i]); /* harness codes pass through */
    }
    const int pbs[] = {PBS_EINVAL, PBS_ENOMEM, PBS_EDOMAIN};
    for (size_t i = 0; i < sizeof pbs / sizeof pbs[0]; i++)
        assert_true(pbs[i] <= -30001 && pbs[i] >= -30099);
    assert_int_equal(pbh_error(0), PBH_OK);
    assert_int_equal(pbh_error(PBS_ENOMEM), PBH_ENOMEM);
    assert_int_equal(pbh_error(-ENOMEM), PBH_ENOMEM);
    assert_int_equal(pbh_error(PBS_EINVAL), PBH_EINPUT);
    assert_int_equal(pbh_error(PBS_EDOMAIN), PBH_EINPUT);
    assert_int_equal(pbh_error(PB_ENOBACKEND), PBH_EINPUT);
    assert_int_equal(pbh_error(PB_EINVAL), PBH_EINPUT);
    assert_int_equal(pbh_error(PB_ESPAWN), PBH_EIO);
    assert_int_equal(pbh_error(PB_EPROTO), PBH_EIO);
    assert_int_equal(pbh_error(-EIO), PBH_EIO);
}

static void test_store_front_picks_an_implementation(void **state) {
    (void)state;
    pbh_store *st = NULL;
    char err[512] = "";
    assert_int_equal(pbh_store_open(&st, "postgresql://localhost/poolbench", PBH_STORE_READ, err, sizeof err),
                     PBH_EINPUT);
    assert_null(st);
    assert_non_null(strstr(err, "no store implementation for 'postgresql://localhost/poolbench'"));

    char dir[] = "/tmp/test_harness_parts.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.db", dir);
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    assert_ptr_equal(st->vt, &pbh_store_sqlite);
    assert_int_equal(pbh_store_schema_version(st), PBH_SCHEMA_VERSION); /* open-then-migrate */
    assert_non_null(pbh_store_db(st));
    pbh_run **runs = NULL;
    size_t n = 99;
    assert_int_equal(pbh_store_history_runs(st, NULL, NULL, &runs, &n, err, sizeof err), PBH_OK);
    assert_int_equal(n, 0);
    pbh_store_runs_free(runs, n);
    pbh_store_close(st);
    unlink(path);
    char side[80];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    assert_int_equal(rmdir(dir), 0);
}

static void test_case_lookup_and_times(void **state) {
    (void)state;
    pbh_run *run = pbh_run_new();
    pbh_case *a = pbh_run_add_case(run);
    a->name = pbh_strdup("sleep/fork/w2");
    pbh_case *b = pbh_run_add_case(run);
    b->name = pbh_strdup("BM_x/threads");
    b->status = pbh_strdup(PBH_STATUS_OK);
    pbh_sample *s = pbh_case_add_sample(b);
    s->wall_s = 8.0;
    s->iterations = 4;
    assert_ptr_equal(pbh_run_find_case(run, "sleep/fork/w2"), &run->cases[0]);
    assert_ptr_equal(pbh_run_find_case(run, "BM_x/threads"), &run->cases[1]);
    assert_null(pbh_run_find_case(run, "nope"));
    assert_null(pbh_run_find_case(run, NULL));
    assert_false(pbh_case_is_ok(&run->cases[0]));
    assert_true(pbh_case_is_ok(&run->cases[1]));
    double *t = pbh_case_times(&run->cases[1]);
    assert_non_null(t);
    assert_true(t[0] == 2.0); /* per iteration */
    free(t);
    pbh_run_free(run);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_line_round_trip),
        cmocka_unit_test(test_child_lines_tail_status),
        cmocka_unit_test(test_child_deadline_kills_the_group),
        cmocka_unit_test(test_child_spawn_failure),
        cmocka_unit_test(test_error_ranges_and_translation),
        cmocka_unit_test(test_store_front_picks_an_implementation),
        cmocka_unit_test(test_case_lookup_and_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
