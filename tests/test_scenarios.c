/*
 * test_scenarios.c - the shared scenarios, their parameters, verifiers and floor probes.
 *
 * What it proves: every scenario is listed with typed parameters and defaults; parameters parse and bad
 * ones are rejected with a message naming the parameter and what it accepts; generation is deterministic;
 * every verifier accepts the right answer and rejects a doctored one (a wrong value, a missing result, and
 * for crash a misreported death); every scenario runs at small sizes on every registered backend that
 * supports it and verifies, and the unsupported pairs are reported unsupported without running; every
 * floor probe returns a positive number; the parallel-capacity copies (pbs__run_copies) run every share
 * once, in processes of their own, and report a failing copy; the cpu ideal is the parallel calibration. Backends are iterated from the registry, so fork and spawn are
 * covered the moment they are registered. Tests assert behaviour, never speed: no timing thresholds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <errno.h>
#include <sys/wait.h>

#include "backend.h"
#include "scenario_impl.h"

#include <unistd.h>

/* Small sizes: the whole matrix runs in seconds. */
static const struct {
    const char *scenario;
    const char *params[4];
} small[] = {
    {"sleep", {"items=6", "ms=20"}},
    {"square", {"items=2000"}},
    {"cpu", {"items=6", "kib=16"}},
    {"payload", {"items=4", "in_kib=64", "out_kib=96"}},
    {"skew", {"items=24", "mean_ms=2"}},
    {"crash", {"items=8", "fraction=0.25", "ms=1"}},
    {"startup", {NULL}},
};

static void small_params(const pb_scenario *s, pb_params *p) {
    pb_params_defaults(s, p);
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        if (strcmp(small[i].scenario, s->name) != 0)
            continue;
        for (size_t j = 0; j < 4 && small[i].params[j]; j++) {
            char err[256];
            int rc = pb_params_set(s, p, small[i].params[j], err, sizeof err);
            if (rc)
                fail_msg("%s", err);
        }
        return;
    }
    fail_msg("no small params for scenario '%s'", s->name);
}

/* ---- listing ---- */

static void test_every_scenario_listed(void **state) {
    (void)state;
    static const char *const required[] = {"sleep", "square", "cpu", "payload", "skew", "crash", "startup"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        assert_non_null(pb_scenario_find(required[i]));
    assert_null(pb_scenario_find("nope"));
    assert_null(pb_scenario_find(NULL));
    assert_null(pb_scenario_at(pb_scenario_count()));

    /* What `poolbench list scenarios` shows. */
    for (size_t i = 0; i < pb_scenario_count(); i++) {
        const pb_scenario *s = pb_scenario_at(i);
        assert_non_null(s->name);
        assert_non_null(s->description);
        assert_non_null(s->execute);
        assert_non_null(s->ideal);
        assert_non_null(s->generate);
        assert_non_null(s->verify);
        assert_non_null(s->measures);
        assert_true(s->nparams <= PB_MAX_PARAMS);
        assert_non_null(pb_task_find(s->task));
        assert_non_null(pb_floor_find(s->floor));
        printf("%-8s %s\n         task %s, floor %s, measures %s%s\n", s->name, s->description, s->task,
               s->floor, s->measures, s->needs & PB_CAP_CRASH_ISOLATION ? ", needs crash isolation" : "");
        pb_params p;
        pb_params_defaults(s, &p);
        for (size_t j = 0; j < s->nparams; j++) {
            const pb_param_def *d = &s->params[j];
            char line[256];
            assert_non_null(d->help);
            assert_true(d->min <= d->def && d->def <= d->max);
            assert_true(p.v[j] == d->def);
            pb_param_describe(d, line, sizeof line);
            assert_non_null(strstr(line, d->name));
            printf("           %s\n", line);
        }
    }
}

/* ---- parameters ---- */

static void test_params_defaults_and_set(void **state) {
    (void)state;
    const pb_scenario *s = pb_scenario_find("sleep");
    pb_params p;
    char buf[256], err[256];
    pb_params_defaults(s, &p);
    assert_true(pb_param(s, &p, "items") == 4);
    assert_true(pb_param(s, &p, "ms") == 2000);
    assert_true(isnan(pb_param(s, &p, "nope")));
    pb_params_format(s, &p, buf, sizeof buf);
    assert_string_equal(buf, "items=4,ms=2000");
    assert_true(pb_param(pb_scenario_find("square"), &p, "items") == 4); /* same slot, other scenario */

    assert_int_equal(pb_params_set(s, &p, "items=8", err, sizeof err), 0);
    assert_int_equal(pb_params_set(s, &p, "ms=12.5", err, sizeof err), 0);
    assert_int_equal(pb_params_set(s, &p, "ms= 0 ", err, sizeof err), 0);
    assert_true(pb_param(s, &p, "items") == 8);
    assert_true(pb_param(s, &p, "ms") == 0);
    pb_params_set(s, &p, "ms=0.1", err, sizeof err);
    pb_params_format(s, &p, buf, sizeof buf);
    assert_string_equal(buf, "items=8,ms=0.1");

    pb_params_defaults(pb_scenario_find("square"), &p);
    assert_true(pb_param(pb_scenario_find("square"), &p, "items") == 1000000);
    const pb_scenario *st = pb_scenario_find("startup");
    pb_params_defaults(st, &p);
    pb_params_format(st, &p, buf, sizeof buf);
    assert_string_equal(buf, "eager=0"); /* on demand unless asked: the default start policy */
}

static void expect_reject(const char *scenario, const char *assignment, const char *want1, const char *want2) {
    const pb_scenario *s = pb_scenario_find(scenario);
    pb_params p, before;
    char err[256] = "";
    pb_params_defaults(s, &p);
    before = p;
    assert_int_equal(pb_params_set(s, &p, assignment, err, sizeof err), PB_EINVAL);
    assert_memory_equal(&p, &before, sizeof p); /* a rejected value changes nothing */
    printf("  %-22s -> %s\n", assignment, err);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("message '%s' should contain '%s' and '%s'", err, want1, want2 ? want2 : "");
}

static void test_params_reject(void **state) {
    (void)state;
    expect_reject("sleep", "itemz=4", "unknown parameter 'itemz'", "accepts: items, ms");
    expect_reject("sleep", "ms=abc", "sleep: ms must be a number in [0, 600000]", "got 'abc'");
    expect_reject("sleep", "items=2.5", "items must be an integer in [1, 1000000]", "got '2.5'");
    expect_reject("sleep", "items=0", "items must be an integer", "got '0'");
    expect_reject("sleep", "items=-3", "items", "got '-3'");
    expect_reject("sleep", "ms=1e9", "ms must be a number", NULL);
    expect_reject("sleep", "ms=nan", "ms must be a number", NULL);
    expect_reject("sleep", "ms=inf", "ms must be a number", NULL);
    expect_reject("sleep", "ms=", "ms must be a number", "got ''");
    expect_reject("sleep", "items=99999999999999999999999", "items must be an integer", NULL);
    expect_reject("sleep", "items", "malformed parameter 'items'", "name=value");
    expect_reject("sleep", "=4", "malformed", NULL);
    expect_reject("crash", "fraction=1.5", "crash: fraction must be a number in [0, 1]", NULL);
    expect_reject("crash", "how=3", "how must be an integer in [0, 2]", NULL);
    expect_reject("startup", "items=1", "unknown parameter 'items'", "accepts: eager");
    expect_reject("startup", "eager=2", "eager must be an integer in [0, 1]", NULL);
}

/* ---- generation ---- */

static void test_generation_deterministic(void **state) {
    (void)state;
    for (size_t i = 0; i < pb_scenario_count(); i++) {
        const pb_scenario *s = pb_scenario_at(i);
        pb_params p;
        pb_workload a, b, c;
        small_params(s, &p);
        assert_int_equal(s->generate(s, &p, 7, &a, NULL, 0), 0);
        assert_int_equal(s->generate(s, &p, 7, &b, NULL, 0), 0);
        assert_int_equal(s->generate(s, &p, 8, &c, NULL, 0), 0);
        assert_true(a.n > 0);
        assert_int_equal(a.n, b.n);
        int differs = 0;
        for (size_t j = 0; j < a.n; j++) {
            assert_int_equal(a.items[j].len, b.items[j].len);
            assert_memory_equal(a.items[j].data, b.items[j].data, a.items[j].len);
            differs |= memcmp(a.items[j].data, c.items[j].data, a.items[j].len) != 0;
        }
        assert_true(differs); /* the seed matters */
        pb_workload_free(&a);
        pb_workload_free(&b);
        pb_workload_free(&c);
    }
}

static void test_generation_limits(void **state) {
    (void)state;
    const pb_scenario *s = pb_scenario_find("payload");
    pb_params p;
    pb_workload w;
    char err[256] = "";
    pb_params_defaults(s, &p);
    assert_int_equal(pb_params_set(s, &p, "items=4096", err, sizeof err), 0);
    assert_int_equal(pb_params_set(s, &p, "in_kib=32768", err, sizeof err), 0);
    assert_int_equal(s->generate(s, &p, 1, &w, err, sizeof err), PB_EINVAL);
    assert_non_null(strstr(err, "payload: items x (in_kib + out_kib)"));
}

/* ---- verifiers ---- */

/* The right answers without a pool: each task run directly; crash's crashing items reported as the pool
 * must report them. */
static pb_result *right_answers(const pb_scenario *s, const pb_params *p, const pb_workload *w) {
    pb_result *r = calloc(w->n, sizeof *r);
    const pb_task *task = pb_task_find(s->task);
    assert_non_null(r);
    for (size_t i = 0; i < w->n; i++) {
        if (strcmp(s->name, "crash") == 0) {
            const unsigned char *b = w->items[i].data;
            uint32_t crash, how;
            memcpy(&crash, b + 16, 4);
            memcpy(&how, b + 20, 4);
            if (crash) {
                r[i].status = PB_STATUS_WORKER_DIED;
                r[i].signal = how == 0 ? SIGSEGV : how == 2 ? SIGABRT : 0;
                r[i].exit_code = how == 1 ? 3 : -1;
                r[i].message = strdup("worker died");
                continue;
            }
        }
        pb__run_item(task, w->items[i].data, w->items[i].len, (size_t)64 << 20, &r[i]);
        assert_int_equal(r[i].status, PB_STATUS_OK);
    }
    return r;
}

static unsigned char *result_bytes(pb_result *r) { return (unsigned char *)pb_result_data(r); }

static void expect_rejected(const pb_scenario *s, const pb_params *p, const pb_workload *w, pb_result *r,
                            const char *what) {
    char msg[256] = "";
    if (s->verify(s, p, w, r, msg, sizeof msg) == 0)
        fail_msg("%s: verifier accepted %s", s->name, what);
    assert_true(msg[0] != '\0');
    printf("  %-8s %-28s -> %s\n", s->name, what, msg);
}

static void test_verifiers_reject_wrong_answers(void **state) {
    (void)state;
    for (size_t i = 0; i < pb_scenario_count(); i++) {
        const pb_scenario *s = pb_scenario_at(i);
        pb_params p;
        pb_workload w;
        char msg[256] = "";
        small_params(s, &p);
        assert_int_equal(s->generate(s, &p, 11, &w, NULL, 0), 0);
        pb_result *r = right_answers(s, &p, &w);
        if (s->verify(s, &p, &w, r, msg, sizeof msg) != 0)
            fail_msg("%s: verifier rejected the right answers: %s", s->name, msg);

        /* Find an item that must be ok (for crash, the non-crashing ones). */
        size_t k = w.n - 1;
        while (k > 0 && r[k].status != PB_STATUS_OK)
            k--;
        assert_int_equal(r[k].status, PB_STATUS_OK);

        /* 1. a wrong value: flip one bit of the output */
        unsigned char *d = result_bytes(&r[k]);
        d[r[k].len / 2] ^= 0x10;
        expect_rejected(s, &p, &w, r, "a flipped bit");
        d[r[k].len / 2] ^= 0x10;
        assert_int_equal(s->verify(s, &p, &w, r, msg, sizeof msg), 0);

        /* 2. a short output */
        size_t len = r[k].len;
        r[k].len = len - 1;
        expect_rejected(s, &p, &w, r, "a truncated output");
        r[k].len = len;

        /* 3. a missing result: the task did not come back */
        r[k].status = PB_STATUS_TERMINATED;
        expect_rejected(s, &p, &w, r, "a missing result");
        r[k].status = PB_STATUS_OK;

        /* 4. two results swapped (where the items differ) */
        if (w.n >= 2 && r[0].status == PB_STATUS_OK && r[1].status == PB_STATUS_OK &&
            memcmp(w.items[0].data, w.items[1].data, w.items[0].len) != 0) {
            pb_result t = r[0];
            r[0] = r[1];
            r[1] = t;
            expect_rejected(s, &p, &w, r, "two results swapped");
            t = r[0];
            r[0] = r[1];
            r[1] = t;
        }
        assert_int_equal(s->verify(s, &p, &w, r, msg, sizeof msg), 0);
        pb_results_clear(r, w.n);
        free(r);
        pb_workload_free(&w);
    }
}

static void test_crash_verifier_checks_deaths(void **state) {
    (void)state;
    const pb_scenario *s = pb_scenario_find("crash");
    pb_params p;
    pb_workload w;
    small_params(s, &p);
    assert_int_equal(s->generate(s, &p, 3, &w, NULL, 0), 0);
    pb_result *r = right_answers(s, &p, &w);
    size_t dead = w.n, alive = w.n, ndead = 0;
    for (size_t i = 0; i < w.n; i++) {
        if (r[i].status == PB_STATUS_WORKER_DIED) {
            dead = i;
            ndead++;
        } else {
            alive = i;
        }
    }
    assert_int_equal(ndead, 2); /* round(0.25 * 8) */
    assert_true(dead < w.n && alive < w.n);

    r[dead].signal = SIGKILL; /* died, but not of what the task did */
    expect_rejected(s, &p, &w, r, "the wrong signal");
    r[dead].signal = SIGSEGV;

    r[dead].status = PB_STATUS_TASK_ERROR; /* reported as a task error */
    expect_rejected(s, &p, &w, r, "a crash as task-error");
    r[dead].status = PB_STATUS_WORKER_DIED;

    pb_result keep = r[alive]; /* a neighbour lost with the crash */
    memset(&r[alive], 0, sizeof r[alive]);
    r[alive].status = PB_STATUS_WORKER_DIED;
    r[alive].signal = SIGSEGV;
    expect_rejected(s, &p, &w, r, "a bystander lost");
    r[alive] = keep;

    char msg[256];
    assert_int_equal(s->verify(s, &p, &w, r, msg, sizeof msg), 0);
    pb_results_clear(r, w.n);
    free(r);
    pb_workload_free(&w);
}

/* ---- ideal models ---- */

static void test_ideal_models(void **state) {
    (void)state;
    const pb_scenario *s = pb_scenario_find("sleep");
    pb_params p;
    pb_params_defaults(s, &p);
    assert_true(fabs(s->ideal(s, &p, 8) - 2.0) < 1e-9); /* the seed: 4 x 2 s on 8 workers */
    assert_true(fabs(s->ideal(s, &p, 4) - 2.0) < 1e-9);
    assert_true(fabs(s->ideal(s, &p, 3) - 4.0) < 1e-9);
    assert_true(fabs(s->ideal(s, &p, 1) - 8.0) < 1e-9);

    for (size_t i = 0; i < pb_scenario_count(); i++) {
        const pb_scenario *sc = pb_scenario_at(i);
        small_params(sc, &p);
        double one = sc->ideal(sc, &p, 1), two = sc->ideal(sc, &p, 2);
        printf("  %-8s ideal(1) %.6f s, ideal(2) %.6f s\n", sc->name, one, two);
        assert_true(one >= 0 && two >= 0);
        assert_true(two <= one);
        if (strcmp(sc->name, "startup") != 0)
            assert_true(one > 0);
        assert_true(sc->ideal(sc, &p, 1) == one); /* calibrated once, cached */
    }
}

/* ---- every scenario on every backend ---- */

static void run_case(const pb_scenario *s, const pb_params *p, const char *backend) {
    pb_exec_result res;
    char key[256];
    pb_params_format(s, p, key, sizeof key);
    int rc = pb_scenario_execute(s, p, backend, 2, 42, &res);
    if (!pb_scenario_supported(s, backend)) {
        assert_int_equal(rc, PB_ENOTSUP);
        assert_non_null(strstr(res.message, "unsupported"));
        printf("  %-8s %-8s %-40s unsupported (%s)\n", s->name, backend, key, res.message);
        return;
    }
    if (rc != 0 || !res.ok)
        fail_msg("%s on %s (%s): rc %d (%s), ok %d: %s", s->name, backend, key, rc, pb_strerror(rc), res.ok,
                 res.message);
    assert_true(res.tasks > 0);
    assert_true(res.wall_s > 0);
    assert_true(res.startup_s >= 0);
    assert_true(res.counters.tasks_done >= res.tasks);
    printf("  %-8s %-8s %-40s ok  wall %.4f s  startup %.4f s  ideal %.4f s  failed %llu  %s\n", s->name,
           backend, key, res.wall_s, res.startup_s, res.ideal_s, (unsigned long long)res.failed_tasks, res.message);
}

static void test_every_scenario_on_every_backend(void **state) {
    (void)state;
    assert_true(pb_backend_count() >= 2);
    for (size_t b = 0; b < pb_backend_count(); b++) {
        const char *backend = pb_backend_name_at(b);
        for (size_t i = 0; i < pb_scenario_count(); i++) {
            const pb_scenario *s = pb_scenario_at(i);
            pb_params p;
            small_params(s, &p);
            run_case(s, &p, backend);
        }
    }
}

/* The other ways to crash, and a skew with chunksize 1, on every backend that isolates crashes. */
static void test_crash_variants(void **state) {
    (void)state;
    static const char *const variants[][3] = {
        {"crash", "how=1", "fraction=0.5"}, {"crash", "how=2", "fraction=0.2"},
        {"crash", "fraction=0", NULL},      {"crash", "fraction=1", NULL},
        {"skew", "chunksize=1", NULL},
    };
    for (size_t b = 0; b < pb_backend_count(); b++) {
        const char *backend = pb_backend_name_at(b);
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
            const pb_scenario *s = pb_scenario_find(variants[v][0]);
            pb_params p;
            char err[256];
            small_params(s, &p);
            for (int j = 1; j < 3 && variants[v][j]; j++)
                assert_int_equal(pb_params_set(s, &p, variants[v][j], err, sizeof err), 0);
            run_case(s, &p, backend);
        }
    }
}

static void test_unsupported_pairs(void **state) {
    (void)state;
    const pb_scenario *crash = pb_scenario_find("crash");
    pb_params p;
    pb_exec_result res;
    small_params(crash, &p);
    static const char *const in_process[] = {"serial", "threads"};
    for (size_t i = 0; i < 2; i++) {
        assert_false(pb_scenario_supported(crash, in_process[i]));
        assert_int_equal(pb_scenario_execute(crash, &p, in_process[i], 2, 1, &res), PB_ENOTSUP);
        assert_false(res.ok);
        assert_non_null(strstr(res.message, "crash isolation"));
        assert_non_null(strstr(res.message, in_process[i]));
    }
    assert_true(pb_scenario_supported(pb_scenario_find("sleep"), "threads"));
    assert_false(pb_scenario_supported(crash, "no-such-backend"));
    assert_int_equal(pb_scenario_execute(crash, &p, "no-such-backend", 2, 1, &res), PB_ENOBACKEND);
    assert_non_null(strstr(res.message, "no-such-backend"));
}

/* ---- floors ---- */

static void test_floors_positive(void **state) {
    (void)state;
    static const char *const required[] = {"pipe_rtt",           "condvar_handoff", "fork_exit_wait", "spawn_wait",
                                           "nanosleep_overshoot", "cpu_item",        "cpu_item_parallel"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        assert_non_null(pb_floor_find(required[i]));
    assert_null(pb_floor_find("nope"));
    assert_null(pb_floor_at(pb_floor_count()));
    for (size_t i = 0; i < pb_floor_count(); i++) {
        const pb_floor *f = pb_floor_at(i);
        assert_true(f->reps > 0);
        int reps = f->reps / 20 > 3 ? f->reps / 20 : 3; /* a taste, not a measurement */
        double v = f->measure(reps);
        printf("  %-20s %12.3f us  (%d reps) %s\n", f->name, v * 1e6, reps, f->description);
        assert_true(v > 0);
    }
}

/* ---- parallel capacity: plain processes, no pool ---- */

static int copies_pipe = -1;

/* Each copy reports its share and its pid through the pipe (one record, atomic: under PIPE_BUF). */
static int report_share(void *ctx, int k, int n) {
    int rec[3] = {k, n, (int)getpid()};
    (void)ctx;
    return write(copies_pipe, rec, sizeof rec) == (ssize_t)sizeof rec ? 0 : -1;
}

static int fail_share_one(void *ctx, int k, int n) {
    (void)ctx, (void)n;
    return k == 1 ? -1 : 0;
}

static void test_run_copies(void **state) {
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    copies_pipe = fds[1];
    assert_true(pbs__run_copies(3, report_share, NULL) >= 0);
    close(fds[1]);
    int seen[3] = {0}, rec[3];
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(read(fds[0], rec, sizeof rec), (ssize_t)sizeof rec);
        assert_true(rec[0] >= 0 && rec[0] < 3);
        assert_int_equal(rec[1], 3);
        assert_int_not_equal(rec[2], getpid()); /* a process of its own, not this one */
        seen[rec[0]]++;
        pids[i] = rec[2];
    }
    assert_int_equal(read(fds[0], rec, sizeof rec), 0); /* nothing more: every share ran exactly once */
    close(fds[0]);
    assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    assert_true(pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2]);
    assert_true(pbs__run_copies(2, fail_share_one, NULL) < 0); /* a failing copy fails the measurement */
    assert_true(pbs__run_copies(0, report_share, NULL) < 0);
    int st;
    errno = 0;
    assert_int_equal(waitpid(-1, &st, WNOHANG), -1); /* every copy reaped */
    assert_int_equal(errno, ECHILD);

    /* The cpu ideal is the parallel calibration: never above the serial one, and for one worker exactly it. */
    const pb_scenario *cpu = pb_scenario_find("cpu");
    pb_params p;
    small_params(cpu, &p);
    double serial = pbs__calibrate(cpu, &p);
    assert_true(serial > 0);
    assert_true(cpu->ideal(cpu, &p, 1) == serial);
    double two = cpu->ideal(cpu, &p, 2);
    assert_true(two > 0 && two <= serial);
    assert_true(two == pbs__calibrate_parallel(cpu, &p, 2));
}

/* ---- nothing left behind ---- */

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Every probe and every scenario on every backend closes its fds, joins its threads and reaps its children. */
static void test_nothing_left_behind(void **state) {
    (void)state;
    /* the baseline once the thread count has settled: the previous tests' pools may still be ending
     * detached threads (four equal reads 20 ms apart, at most 5 s) */
    int threads = count_entries("/proc/self/task");
    for (int i = 0, same = 0; i < 250 && same < 3; i++) {
        usleep(20000);
        int now = count_entries("/proc/self/task");
        same = now == threads ? same + 1 : 0;
        threads = now;
    }
    int fds = count_entries("/proc/self/fd");
    for (size_t i = 0; i < pb_floor_count(); i++)
        assert_true(pb_floor_at(i)->measure(3) > 0);
    for (size_t b = 0; b < pb_backend_count(); b++)
        for (size_t i = 0; i < pb_scenario_count(); i++) {
            const pb_scenario *s = pb_scenario_at(i);
            pb_params p;
            pb_exec_result res;
            small_params(s, &p);
            pb_scenario_execute(s, &p, pb_backend_name_at(b), 2, 5, &res);
        }
    assert_int_equal(count_entries("/proc/self/fd"), fds);
    /* a destroyed pool's detached threads (GLib's, once it ends its parked ones) leave /proc a moment after
     * the pool is gone: wait up to 5 s for the count to come back, never for it to be right by luck */
    int now_threads = count_entries("/proc/self/task");
    for (int i = 0; i < 500 && now_threads != threads; i++) {
        usleep(10000);
        now_threads = count_entries("/proc/self/task");
    }
    assert_int_equal(now_threads, threads);
    int st;
    errno = 0;
    assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_scenario_listed),
        cmocka_unit_test(test_params_defaults_and_set),
        cmocka_unit_test(test_params_reject),
        cmocka_unit_test(test_generation_deterministic),
        cmocka_unit_test(test_generation_limits),
        cmocka_unit_test(test_verifiers_reject_wrong_answers),
        cmocka_unit_test(test_crash_verifier_checks_deaths),
        cmocka_unit_test(test_ideal_models),
        cmocka_unit_test(test_unsupported_pairs),
        cmocka_unit_test(test_every_scenario_on_every_backend),
        cmocka_unit_test(test_crash_variants),
        cmocka_unit_test(test_floors_positive),
        cmocka_unit_test(test_run_copies),
        cmocka_unit_test(test_nothing_left_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
