/*
 * test_conformance.c - one table of pool tests run against every registered backend.
 *
 * The table is built once per name in the backend registry, so a backend is tested the moment it is
 * registered (the libuv habit). Tests assert behaviour only: values, order, statuses, messages, counts of
 * callbacks, threads, fds and children, never how fast something was. Where a backend lacks a capability
 * (serial runs tasks inline, so a wait can never time out), the test says so and checks what the backend
 * does promise instead.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "poolbench.h"
#include "testutil.h"

/* ---- tasks (PB_TASK_DEFINE: a spawn worker re-executing this program has them too) ---- */

static int t_square(const void *in, size_t len, pb_output *out) {
    int64_t x;
    if (len != sizeof x) return pb_output_error(out, "square: bad input length %zu", len);
    memcpy(&x, in, sizeof x);
    x *= x;
    return pb_output_set(out, &x, sizeof x);
}
PB_TASK_DEFINE("conf.square", t_square)

static int t_fail_odd(const void *in, size_t len, pb_output *out) {
    int64_t x;
    memcpy(&x, in, sizeof x);
    if (x % 2) return pb_output_error(out, "odd input %lld", (long long)x);
    return pb_output_set(out, &x, sizeof x);
}
PB_TASK_DEFINE("conf.fail_odd", t_fail_odd)

static int t_sleep_ms(const void *in, size_t len, pb_output *out) {
    int64_t ms;
    memcpy(&ms, in, sizeof ms);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    return pb_output_set(out, &ms, sizeof ms);
}
PB_TASK_DEFINE("conf.sleep_ms", t_sleep_ms)

static int t_echo(const void *in, size_t len, pb_output *out) { return pb_output_set(out, in, len); }
PB_TASK_DEFINE("conf.echo", t_echo)

static int t_twice(const void *in, size_t len, pb_output *out) {
    unsigned char *o = pb_output_alloc(out, 2 * len);
    if (!o) return -1;
    memcpy(o, in, len);
    memcpy(o + len, in, len);
    return 0;
}
PB_TASK_DEFINE("conf.twice", t_twice)

static _Thread_local int64_t init_runs; /* per worker: a thread for `threads`, a process otherwise */
static int t_init(const void *in, size_t len, pb_output *out) {
    init_runs++;
    return 0;
}
PB_TASK_DEFINE("conf.init", t_init)

static int t_init_count(const void *in, size_t len, pb_output *out) {
    return pb_output_set(out, &init_runs, sizeof init_runs);
}
PB_TASK_DEFINE("conf.init_count", t_init_count)

/* ---- helpers ---- */

static const char *backend_of(void **state) { return (const char *)*state; }
static int has_cap(void **state, int cap) { return (pb_backend_caps(backend_of(state)) & cap) != 0; }

static pb_pool *make_pool(void **state, int workers) {
    pb_options o;
    pb_options_init(&o);
    o.workers = workers;
    pb_pool *p = NULL;
    int rc = pb_pool_create(&p, backend_of(state), &o);
    if (rc < 0) fail_msg("pb_pool_create(%s): %s: %s", backend_of(state), pb_strerror(rc), pb_last_error());
    return p;
}

typedef struct int_items {
    int64_t *values;
    pb_item *items;
} int_items;

static int_items make_ints(size_t n) {
    int_items v = {calloc(n + 1, sizeof(int64_t)), calloc(n + 1, sizeof(pb_item))};
    for (size_t i = 0; i < n; i++) {
        v.values[i] = (int64_t)i;
        v.items[i].data = &v.values[i];
        v.items[i].len = sizeof(int64_t);
    }
    return v;
}

static void free_ints(int_items *v) {
    free(v->values);
    free(v->items);
}

static int64_t result_int(const pb_result *r) {
    int64_t v = -1;
    if (r->status == PB_STATUS_OK && r->len == sizeof v) memcpy(&v, pb_result_data(r), sizeof v);
    return v;
}

/* ---- the table ---- */

static void check_map(void **state, size_t n, size_t chunksize) {
    pb_pool *p = make_pool(state, 2);
    int_items in = make_ints(n);
    pb_result *res = calloc(n + 1, sizeof *res);
    int rc = pb_map(p, "conf.square", in.items, n, chunksize, res);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(res[i].status, PB_STATUS_OK);
        assert_true(result_int(&res[i]) == (int64_t)(i * i));
    }
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_true(c.tasks_submitted == n);
    assert_true(c.by_status[PB_STATUS_OK] == n);
    pb_results_clear(res, n);
    free(res);
    free_ints(&in);
    assert_int_equal(pb_pool_join(p), 0);
    pb_pool_destroy(p);
}

static void test_map_sizes(void **state) {
    static const size_t sizes[] = {0, 1, 7, 10000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        check_map(state, sizes[i], 1);
        check_map(state, sizes[i], 0);
    }
    check_map(state, 10000, 3); /* a last chunk shorter than the rest */
}

static void test_failing_task_carries_message(void **state) {
    pb_pool *p = make_pool(state, 2);
    size_t n = 20;
    int_items in = make_ints(n);
    pb_result res[20];
    int rc = pb_map(p, "conf.fail_odd", in.items, n, 3, res);
    assert_int_equal(rc, 10); /* the odd half failed; the even half is intact */
    for (size_t i = 0; i < n; i++) {
        if (i % 2) {
            assert_int_equal(res[i].status, PB_STATUS_TASK_ERROR);
            char want[64];
            snprintf(want, sizeof want, "odd input %zu", i);
            assert_non_null(res[i].message);
            assert_string_equal(res[i].message, want);
        } else {
            assert_int_equal(res[i].status, PB_STATUS_OK);
            assert_true(result_int(&res[i]) == (int64_t)i);
            assert_null(res[i].message);
        }
    }
    pb_results_clear(res, n);
    free_ints(&in);
    pb_pool_destroy(p);
}

static void test_large_payload_roundtrip(void **state) {
    pb_pool *p = make_pool(state, 2);
    size_t len = 3u << 20;
    unsigned char *buf = malloc(len);
    for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)(i * 131 + 7);
    pb_item items[3] = {{buf, len}, {buf, 1}, {buf, 0}};
    pb_result res[3];
    assert_int_equal(pb_map(p, "conf.echo", items, 3, 1, res), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res[i].status, PB_STATUS_OK);
        assert_true(res[i].len == items[i].len);
        if (res[i].len) assert_memory_equal(pb_result_data(&res[i]), buf, res[i].len);
    }
    pb_results_clear(res, 3);
    free(buf);
    pb_pool_destroy(p);
}

/* Small and large outputs mixed in one chunk: a process worker sends a large result as a frame of its own
 * (on shm straight into the ring) after the small ones before it, so order and contents must survive the
 * switch between the two ways, in both directions. */
static void test_mixed_sizes_in_one_chunk(void **state) {
    pb_pool *p = make_pool(state, 2);
    size_t big = 200u << 10;
    unsigned char *buf = malloc(big);
    for (size_t i = 0; i < big; i++) buf[i] = (unsigned char)(i * 37 + 11);
    enum { N = 7 };
    pb_item items[N];
    for (int i = 0; i < N; i++) {
        items[i].data = buf + i; /* each item a different slice: a mix-up shows */
        items[i].len = i % 2 ? big - 8 : (size_t)(10 + i);
    }
    pb_result res[N];
    assert_int_equal(pb_map(p, "conf.echo", items, N, N, res), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(res[i].status, PB_STATUS_OK);
        assert_true(res[i].len == items[i].len);
        assert_memory_equal(pb_result_data(&res[i]), items[i].data, items[i].len);
    }
    pb_results_clear(res, N);
    free(buf);
    pb_pool_destroy(p);
}

static void test_future_wait_timeout(void **state) {
    pb_pool *p = make_pool(state, 2);
    int64_t ms = 300;
    pb_future *f;
    assert_int_equal(pb_submit(p, "conf.sleep_ms", &ms, sizeof ms, &f), 0);
    if (has_cap(state, PB_CAP_ASYNC)) {
        assert_int_equal(pb_future_wait(f, 0.05), PB_ETIMEDOUT);
        assert_false(pb_future_done(f));
        assert_null(pb_future_result(f));
    } else {
        print_message("      %s runs tasks inline: the future is done when submit returns\n", backend_of(state));
        assert_true(pb_future_done(f));
    }
    assert_int_equal(pb_future_wait(f, -1), 0); /* ... and the task still completes */
    const pb_result *r = pb_future_result(f);
    assert_non_null(r);
    assert_int_equal(r->status, PB_STATUS_OK);
    assert_true(result_int(r) == 300);
    pb_future_release(f);
    pb_pool_destroy(p);
}

static atomic_int cb_calls;
static atomic_int cb_seen[64];
static void on_done(void *ud, pb_future *f) {
    atomic_fetch_add(&cb_calls, 1);
    atomic_fetch_add(&cb_seen[(intptr_t)ud], 1);
    assert_non_null(pb_future_result(f));
}

static void test_callbacks_fire_once(void **state) {
    pb_pool *p = make_pool(state, 2);
    atomic_store(&cb_calls, 0);
    for (int i = 0; i < 64; i++) atomic_store(&cb_seen[i], 0);
    pb_future *fs[64];
    for (int64_t i = 0; i < 64; i++) {
        int64_t ms = (i % 8 == 0) ? 20 : 0;
        assert_int_equal(pb_submit(p, "conf.sleep_ms", &ms, sizeof ms, &fs[i]), 0);
        /* half register before completion is likely, half after waiting for it */
        if (i % 2) assert_int_equal(pb_future_wait(fs[i], -1), 0);
        assert_int_equal(pb_future_on_done(fs[i], on_done, (void *)(intptr_t)i), 0);
        assert_int_equal(pb_future_on_done(fs[i], on_done, (void *)(intptr_t)i), PB_EINVAL);
    }
    for (int i = 0; i < 64; i++) assert_int_equal(pb_future_wait(fs[i], -1), 0);
    assert_int_equal(pb_pool_join(p), 0); /* after join every callback has returned */
    assert_int_equal(atomic_load(&cb_calls), 64);
    for (int i = 0; i < 64; i++) assert_int_equal(atomic_load(&cb_seen[i]), 1);
    for (int i = 0; i < 64; i++) pb_future_release(fs[i]);
    pb_pool_destroy(p);
}

typedef struct unordered_seen {
    size_t n;
    int *count;
    int bad;
} unordered_seen;

static void on_item(void *ud, size_t index, pb_result *r) {
    unordered_seen *s = ud;
    if (index >= s->n || r->status != PB_STATUS_OK || result_int(r) != (int64_t)(index * index)) s->bad++;
    else s->count[index]++;
}

static void test_map_unordered_each_once(void **state) {
    pb_pool *p = make_pool(state, 2);
    size_t n = 5000;
    int_items in = make_ints(n);
    unordered_seen s = {n, calloc(n, sizeof(int)), 0};
    assert_int_equal(pb_map_unordered(p, "conf.square", in.items, n, 0, on_item, &s), 0);
    assert_int_equal(s.bad, 0);
    for (size_t i = 0; i < n; i++) assert_int_equal(s.count[i], 1);
    free(s.count);
    free_ints(&in);
    pb_pool_destroy(p);
}

static void test_close_join_drains(void **state) {
    pb_pool *p = make_pool(state, 2);
    pb_future *fs[40];
    for (int64_t i = 0; i < 40; i++) {
        int64_t ms = 5;
        assert_int_equal(pb_submit(p, "conf.sleep_ms", &ms, sizeof ms, &fs[i]), 0);
    }
    assert_int_equal(pb_pool_close(p), 0);
    int64_t x = 1;
    pb_future *late;
    assert_int_equal(pb_submit(p, "conf.square", &x, sizeof x, &late), PB_ECLOSED);
    assert_int_equal(pb_pool_join(p), 0);
    for (int i = 0; i < 40; i++) {
        assert_true(pb_future_done(fs[i]));
        assert_int_equal(pb_future_result(fs[i])->status, PB_STATUS_OK);
        pb_future_release(fs[i]);
    }
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_true(c.tasks_done == 40 && c.by_status[PB_STATUS_OK] == 40);
    pb_pool_destroy(p);
}

static void test_terminate_stops_queued_work(void **state) {
    if (!has_cap(state, PB_CAP_ASYNC)) {
        print_message("      %s has no queue: nothing to terminate\n", backend_of(state));
        return;
    }
    pb_pool *p = make_pool(state, 2);
    enum { N = 50 };
    pb_future *fs[N];
    for (int i = 0; i < N; i++) {
        int64_t ms = 200;
        assert_int_equal(pb_submit(p, "conf.sleep_ms", &ms, sizeof ms, &fs[i]), 0);
    }
    assert_int_equal(pb_pool_terminate(p), 0);
    int terminated = 0;
    for (int i = 0; i < N; i++) {
        assert_true(pb_future_done(fs[i])); /* nothing is left pending after terminate */
        int s = pb_future_result(fs[i])->status;
        assert_true(s == PB_STATUS_OK || s == PB_STATUS_TERMINATED);
        terminated += s == PB_STATUS_TERMINATED;
        pb_future_release(fs[i]);
    }
    /* 2 workers could have finished at most a few of the 50 before terminate: the rest never ran */
    assert_true(terminated >= N - 4);
    int64_t x = 1;
    pb_future *late;
    assert_int_equal(pb_submit(p, "conf.square", &x, sizeof x, &late), PB_ECLOSED);
    pb_pool_destroy(p);
}

static void test_cancel_queued(void **state) {
    if (!has_cap(state, PB_CAP_ASYNC)) {
        print_message("      %s runs tasks inline: nothing is ever queued to cancel\n", backend_of(state));
        return;
    }
    pb_pool *p = make_pool(state, 1);
    int64_t ms = 200, x = 3;
    pb_future *blocker, *queued;
    assert_int_equal(pb_submit(p, "conf.sleep_ms", &ms, sizeof ms, &blocker), 0);
    assert_int_equal(pb_submit(p, "conf.square", &x, sizeof x, &queued), 0);
    int rc = pb_future_cancel(queued);
    assert_int_equal(pb_future_wait(queued, -1), 0);
    if (rc == 0) assert_int_equal(pb_future_result(queued)->status, PB_STATUS_CANCELLED);
    else assert_int_equal(pb_future_result(queued)->status, PB_STATUS_OK); /* a worker got to it first */
    assert_int_equal(pb_future_wait(blocker, -1), 0);
    assert_int_equal(pb_future_cancel(blocker), PB_EINVAL); /* finished: too late */
    pb_future_release(blocker);
    pb_future_release(queued);
    pb_pool_destroy(p);
}

static void test_counters_add_up(void **state) {
    pb_pool *p = make_pool(state, 2);
    size_t n = 101;
    int_items in = make_ints(n);
    pb_result *res = calloc(n, sizeof *res);
    assert_int_equal(pb_map(p, "conf.fail_odd", in.items, n, 4, res), 50);
    pb_future *f;
    assert_int_equal(pb_submit(p, "conf.square", &in.values[5], sizeof(int64_t), &f), 0);
    assert_int_equal(pb_future_wait(f, -1), 0);
    pb_future_release(f);
    pb_pool_join(p);
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_true(c.tasks_submitted == n + 1);
    assert_true(c.tasks_done == n + 1);
    assert_true(c.by_status[PB_STATUS_OK] == 52);
    assert_true(c.by_status[PB_STATUS_TASK_ERROR] == 50);
    uint64_t sum = 0;
    for (int s = 0; s < PB_STATUS_COUNT; s++) sum += c.by_status[s];
    assert_true(sum == c.tasks_done);
    assert_true(c.workers_started >= 1);
    pb_results_clear(res, n);
    free(res);
    free_ints(&in);
    pb_pool_destroy(p);
}

static void test_initializer_once_per_worker(void **state) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    o.initializer = "conf.init";
    pb_pool *p;
    assert_int_equal(pb_pool_create(&p, backend_of(state), &o), 0);
    size_t n = 200;
    pb_item *items = calloc(n, sizeof *items);
    pb_result *res = calloc(n, sizeof *res);
    assert_int_equal(pb_map(p, "conf.init_count", items, n, 1, res), 0);
    for (size_t i = 0; i < n; i++) assert_true(result_int(&res[i]) == 1);
    pb_results_clear(res, n);
    free(res);
    free(items);
    pb_pool_destroy(p);
}

static void test_bad_input(void **state) {
    pb_pool *p = NULL;
    pb_options o;
    pb_options_init(&o);
    assert_int_equal(pb_pool_create(&p, "no-such-backend", &o), PB_ENOBACKEND);
    assert_non_null(strstr(pb_last_error(), "no-such-backend"));
    assert_null(p);
    o.workers = 0;
    assert_int_equal(pb_pool_create(&p, backend_of(state), &o), PB_EINVAL);
    o.workers = -3;
    assert_int_equal(pb_pool_create(&p, backend_of(state), &o), PB_EINVAL);
    assert_non_null(strstr(pb_last_error(), "workers"));
    pb_options_init(&o);
    o.initializer = "no.such.task";
    assert_int_equal(pb_pool_create(&p, backend_of(state), &o), PB_ENOTASK);
    assert_int_equal(pb_pool_create(NULL, backend_of(state), NULL), PB_EINVAL);

    pb_options_init(&o);
    o.workers = 2;
    o.max_item_bytes = 1024;
    assert_int_equal(pb_pool_create(&p, backend_of(state), &o), 0);
    int64_t x = 2;
    pb_item items[2] = {{&x, sizeof x}, {NULL, 8}};
    pb_result res[2];
    pb_future *f = NULL;
    assert_int_equal(pb_map(p, "no.such.task", items, 1, 0, res), PB_ENOTASK);
    assert_non_null(strstr(pb_last_error(), "no.such.task"));
    assert_int_equal(pb_map(p, "conf.square", items, 2, 0, res), PB_EINVAL); /* NULL data with a length */
    assert_int_equal(pb_map(p, "conf.square", NULL, 2, 0, res), PB_EINVAL);
    assert_int_equal(pb_map(NULL, "conf.square", items, 1, 0, res), PB_EINVAL);
    assert_int_equal(pb_submit(p, "conf.square", NULL, 8, &f), PB_EINVAL);
    static unsigned char big[2048];
    assert_int_equal(pb_submit(p, "conf.echo", big, sizeof big, &f), PB_ETOOBIG);
    assert_null(f);
    /* an output over the limit is that task's error, not the pool's */
    pb_item half = {big, 600};
    pb_item two[2] = {half, {big, 10}};
    assert_int_equal(pb_map(p, "conf.twice", two, 2, 1, res), 1);
    assert_int_equal(res[0].status, PB_STATUS_TASK_ERROR);
    assert_non_null(strstr(res[0].message, "over the limit"));
    assert_int_equal(res[1].status, PB_STATUS_OK);
    assert_true(res[1].len == 20);
    pb_results_clear(res, 2);
    assert_int_equal(pb_map(p, "conf.square", items, 1, 0, res), 0); /* the pool still works */
    assert_true(result_int(&res[0]) == 4);
    pb_results_clear(res, 1);
    assert_true(strlen(pb_strerror(PB_ETOOBIG)) > 0);
    assert_string_equal(pb_status_name(PB_STATUS_WORKER_DIED), "worker-died");
    pb_pool_destroy(p);
}

/* ---- waits, options and lifecycle calls that must never hang (issue 13) ---- */

/* A test that could hang before its fix runs under alarm(): SIGALRM's default action ends the program,
 * so a hang fails the test program (ctest reports "Alarm clock") instead of stalling until ctest's
 * timeout. The bound only catches a hang; nothing here asserts speed. */
#define HANG_GUARD_S 300

static double thread_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* Waits with `timeout` on a fresh 300 ms task; returns pb_future_wait's code and the CPU it burned. */
static int wait_on_sleeper(pb_pool *p, double timeout, double *cpu) {
    int64_t ms = 300;
    pb_future *f;
    assert_int_equal(pb_submit(p, "conf.sleep_ms", &ms, sizeof ms, &f), 0);
    double c0 = thread_cpu_s();
    int rc = pb_future_wait(f, timeout);
    *cpu = thread_cpu_s() - c0;
    if (rc == 0) {
        assert_true(pb_future_done(f));
        assert_int_equal(pb_future_result(f)->status, PB_STATUS_OK);
    }
    assert_int_equal(pb_future_wait(f, -1), 0);
    pb_future_release(f);
    return rc;
}

/* INFINITY and timeouts too large for a timespec mean "forever", and waiting forever sleeps (a spinning
 * wait burns the whole 300 ms of CPU; a sleeping one, microseconds); NaN is PB_EINVAL; -0.0 is 0. */
static void test_future_wait_timeout_values(void **state) {
    alarm(HANG_GUARD_S);
    pb_pool *p = make_pool(state, 2);
    int serial = !has_cap(state, PB_CAP_ASYNC); /* the task ran inside pb_submit: the wait is instant */
    static const double forever[] = {INFINITY, 1e300, 1e19, (double)INT64_MAX, -INFINITY, -1.0};
    for (size_t i = 0; i < sizeof forever / sizeof forever[0]; i++) {
        double cpu;
        assert_int_equal(wait_on_sleeper(p, forever[i], &cpu), 0);
        if (cpu > 0.1) fail_msg("pb_future_wait(%g) burned %.3f s of CPU waiting for a 300 ms task", forever[i], cpu);
    }
    double cpu;
    assert_int_equal(wait_on_sleeper(p, NAN, &cpu), PB_EINVAL);
    assert_non_null(strstr(pb_last_error(), "NaN"));
    assert_int_equal(wait_on_sleeper(p, -0.0, &cpu), serial ? 0 : PB_ETIMEDOUT); /* -0.0 == 0: a poll */
    assert_int_equal(pb_future_wait(NULL, INFINITY), PB_EINVAL);
    pb_pool_destroy(p);
    alarm(0);
}

/* task_timeout and crashloop_window: NaN is refused; an infinite task_timeout is no timeout (so every
 * backend accepts it, with or without PB_CAP_TIMEOUT); -0.0 is 0 (none). */
static void test_option_timeout_values(void **state) {
    pb_options o;
    pb_pool *p = NULL;
    pb_options_init(&o);
    o.workers = 1;
    o.task_timeout = NAN;
    assert_int_equal(pb_pool_create(&p, backend_of(state), &o), PB_EINVAL);
    assert_non_null(strstr(pb_last_error(), "task_timeout"));
    assert_null(p);
    pb_options_init(&o);
    o.workers = 1;
    o.crashloop_window = NAN;
    assert_int_equal(pb_pool_create(&p, backend_of(state), &o), PB_EINVAL);
    assert_non_null(strstr(pb_last_error(), "crashloop_window"));
    static const double none[] = {INFINITY, -0.0};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        pb_options_init(&o);
        o.workers = 1;
        o.task_timeout = none[i];
        int rc = pb_pool_create(&p, backend_of(state), &o);
        if (rc < 0) fail_msg("task_timeout=%g: %s: %s", none[i], pb_strerror(rc), pb_last_error());
        int64_t ms = 50;
        pb_future *f;
        assert_int_equal(pb_submit(p, "conf.sleep_ms", &ms, sizeof ms, &f), 0);
        assert_int_equal(pb_future_wait(f, -1), 0);
        assert_int_equal(pb_future_result(f)->status, PB_STATUS_OK);
        pb_future_release(f);
        pb_pool_destroy(p);
    }
}

/* A future that is already finished cannot be cancelled, whatever finished it: a normal run, or the pool
 * completing it without any worker claiming it (terminate). */
static void test_cancel_finished_future(void **state) {
    pb_pool *p = make_pool(state, 1);
    int64_t x = 7;
    pb_future *done;
    assert_int_equal(pb_submit(p, "conf.square", &x, sizeof x, &done), 0);
    assert_int_equal(pb_future_wait(done, -1), 0);
    assert_int_equal(pb_future_cancel(done), PB_EINVAL);
    assert_int_equal(pb_future_cancel(done), PB_EINVAL);
    assert_int_equal(pb_future_result(done)->status, PB_STATUS_OK);
    pb_future_release(done);
    if (has_cap(state, PB_CAP_ASYNC)) { /* futures still queued at terminate end TERMINATED, unclaimed */
        enum { N = 6 };
        pb_future *fs[N];
        int64_t ms = 200;
        for (int i = 0; i < N; i++) assert_int_equal(pb_submit(p, "conf.sleep_ms", &ms, sizeof ms, &fs[i]), 0);
        assert_int_equal(pb_pool_terminate(p), 0);
        int terminated = 0;
        for (int i = 0; i < N; i++) {
            assert_true(pb_future_done(fs[i]));
            terminated += pb_future_result(fs[i])->status == PB_STATUS_TERMINATED;
            int rc = pb_future_cancel(fs[i]);
            if (rc != PB_EINVAL) fail_msg("cancel of finished future %d (%s) returned %d", i,
                                          pb_status_name(pb_future_result(fs[i])->status), rc);
            assert_int_not_equal(pb_future_result(fs[i])->status, PB_STATUS_CANCELLED);
            pb_future_release(fs[i]);
        }
        assert_true(terminated >= N - 2);
    }
    pb_pool_destroy(p);
}

/* Task names are bounded (PB_TASK_NAME_MAX): a 10,000-character name is a clear error on every backend,
 * whether or not it is registered, never a crash or a result that differs by backend. */
static char long_name[10001];
static void test_long_task_name(void **state) {
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    pb_pool *p = make_pool(state, 2);
    int64_t x = 3;
    pb_item item = {&x, sizeof x};
    pb_result r;
    pb_future *f = NULL;
    assert_int_equal(pb_submit(p, long_name, &x, sizeof x, &f), PB_ENOTASK); /* not registered */
    assert_true(strlen(pb_last_error()) < 2000);
    assert_int_equal(pb_task_register(long_name, t_square), PB_EINVAL);
    assert_non_null(strstr(pb_last_error(), "10000"));
    assert_null(pb_task_find(long_name));
    assert_int_equal(pb_submit(p, long_name, &x, sizeof x, &f), PB_ENOTASK);
    assert_null(f);
    assert_int_equal(pb_map(p, long_name, &item, 1, 0, &r), PB_ENOTASK);
    assert_int_equal(pb_map(p, "conf.square", &item, 1, 0, &r), 0); /* the pool still works */
    assert_true(result_int(&r) == 9);
    pb_result_clear(&r);
    pb_pool_destroy(p);
}

/* Lifecycle calls repeated: join, close and terminate again are no-ops that return 0 (join after
 * terminate is the usual pairing); destroying a pool twice is PB_EINVAL, not a double free. */
static void test_lifecycle_twice(void **state) {
    alarm(HANG_GUARD_S);
    pb_pool *p = make_pool(state, 2);
    assert_int_equal(pb_pool_join(p), 0);
    assert_int_equal(pb_pool_join(p), 0);
    assert_int_equal(pb_pool_close(p), 0);
    assert_int_equal(pb_pool_terminate(p), 0);
    assert_int_equal(pb_pool_terminate(p), 0);
    int64_t x = 1;
    pb_future *f;
    assert_int_equal(pb_submit(p, "conf.square", &x, sizeof x, &f), PB_ECLOSED);
    assert_int_equal(pb_pool_destroy(p), 0);
    assert_int_equal(pb_pool_destroy(p), PB_EINVAL); /* p is a dangling pointer: only compared, never read */
    assert_non_null(strstr(pb_last_error(), "destroy"));

    p = make_pool(state, 2);
    assert_int_equal(pb_pool_terminate(p), 0);
    assert_int_equal(pb_pool_terminate(p), 0);
    assert_int_equal(pb_pool_join(p), 0);
    assert_int_equal(pb_pool_destroy(p), 0);
    assert_int_equal(pb_pool_destroy(NULL), 0);
    alarm(0);
}

/* Lifecycle calls from two threads at once (a watchdog terminating a pool the main thread joins, two
 * threads joining, ...): one does the work, the other waits for it, both return 0, no deadlock. */
typedef struct lifecycle_arg {
    pb_pool *pool;
    int which; /* 0 join, 1 terminate, 2 close+join */
    int rc;
} lifecycle_arg;

static void *lifecycle_thread(void *vp) {
    lifecycle_arg *a = vp;
    a->rc = a->which == 0 ? pb_pool_join(a->pool) : a->which == 1 ? pb_pool_terminate(a->pool)
                                                                   : (pb_pool_close(a->pool), pb_pool_join(a->pool));
    return NULL;
}

static void test_concurrent_lifecycle(void **state) {
    alarm(HANG_GUARD_S);
    int processes = has_cap(state, PB_CAP_CRASH_ISOLATION);
    int iterations = processes ? 40 : 300;
    static const int pairs[][2] = {{0, 1}, {1, 0}, {0, 0}, {1, 1}, {2, 1}};
    for (int it = 0; it < iterations; it++) {
        const int *pair = pairs[it % (int)(sizeof pairs / sizeof pairs[0])];
        pb_pool *p = make_pool(state, 2);
        pb_future *fs[4];
        for (int i = 0; i < 4; i++) {
            int64_t ms = i % 2 ? 2 : 0;
            assert_int_equal(pb_submit(p, "conf.sleep_ms", &ms, sizeof ms, &fs[i]), 0);
        }
        lifecycle_arg a = {p, pair[0], -1}, b = {p, pair[1], -1};
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, lifecycle_thread, &a), 0);
        assert_int_equal(pthread_create(&tb, NULL, lifecycle_thread, &b), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        assert_int_equal(a.rc, 0);
        assert_int_equal(b.rc, 0);
        for (int i = 0; i < 4; i++) {
            assert_true(pb_future_done(fs[i])); /* whichever call won, nothing is left pending */
            int s = pb_future_result(fs[i])->status;
            assert_true(s == PB_STATUS_OK || s == PB_STATUS_TERMINATED);
            pb_future_release(fs[i]);
        }
        assert_int_equal(pb_pool_destroy(p), 0);
    }
    alarm(0);
}

static void test_create_destroy_cycles_leak_nothing(void **state) {
    /* warm-up: let libc and the test runner allocate whatever they keep for good */
    pb_pool_destroy(make_pool(state, 2));
    int threads = tu_settled_thread_count(5), fds = tu_count_fds(), children = tu_count_children();
    int cycles = 1000;
    for (int i = 0; i < cycles; i++) {
        pb_pool *p = make_pool(state, 2);
        if (i % 100 == 0) { /* now and then with work in flight */
            int64_t x = i;
            pb_future *f;
            assert_int_equal(pb_submit(p, "conf.square", &x, sizeof x, &f), 0);
            pb_future_release(f);
        }
        pb_pool_destroy(p);
    }
    assert_true(TU_EVENTUALLY(tu_count_threads() == threads, 5));
    assert_int_equal(tu_count_fds(), fds);
    assert_true(TU_EVENTUALLY(tu_count_children() == children, 5));
}

/* ---- the threads backend's start policy (a group of its own after the table: the process backends'
 * is tests/test_process.c test_start_policy) ---- */

/* A gate that tasks wait at, in this address space (threads only): tasks hold their threads until the
 * test opens it, so "how many threads are busy" is exact without any timing. */
static atomic_int gate_open;
static atomic_int gate_waiting;
static int t_wait_gate(const void *in, size_t len, pb_output *out) {
    atomic_fetch_add(&gate_waiting, 1);
    while (!atomic_load(&gate_open)) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    return pb_output_set(out, in, len);
}
PB_TASK_DEFINE("conf.wait_gate", t_wait_gate)

/* An initializer that succeeds the first time it runs in this process and fails every later time. */
static atomic_int init_calls;
static int t_init_first_only(const void *in, size_t len, pb_output *out) {
    if (atomic_fetch_add(&init_calls, 1) > 0) return pb_output_error(out, "only the first thread may start");
    return 0;
}
PB_TASK_DEFINE("conf.init_first_only", t_init_first_only)

/* One task on p, waited for: its result moved out. */
static pb_result run_task(pb_pool *p, const char *task, int64_t x) {
    pb_future *f = NULL;
    assert_int_equal(pb_submit(p, task, &x, sizeof x, &f), 0);
    assert_int_equal(pb_future_wait(f, 120), 0);
    pb_result r;
    pb_result_move(&r, (pb_result *)pb_future_result(f));
    pb_future_release(f);
    return r;
}

/* Submits n gated tasks and waits until all n are running, each on a thread of its own. */
static void submit_gated(pb_pool *p, pb_future **f, int n) {
    int64_t v = 5;
    for (int i = 0; i < n; i++) assert_int_equal(pb_submit(p, "conf.wait_gate", &v, sizeof v, &f[i]), 0);
    assert_true(TU_EVENTUALLY(atomic_load(&gate_waiting) == n, 30));
}

static void release_gated(pb_future **f, int n) {
    atomic_store(&gate_open, 1);
    for (int i = 0; i < n; i++) {
        assert_int_equal(pb_future_wait(f[i], 120), 0);
        assert_int_equal(pb_future_result(f[i])->status, PB_STATUS_OK);
        pb_future_release(f[i]);
    }
    atomic_store(&gate_open, 0);
    atomic_store(&gate_waiting, 0);
}

/* On demand (the default), create starts one thread and work starts more only while it queues up, never
 * more than `workers`; eager starts them all in create. Thread counts come from /proc/self/task. */
static void test_threads_start_policy(void **state) {
    (void)state;
    pb_options o;
    pb_options_init(&o);
    o.workers = 4;
    pb_pool *p;
    /* One pool first, so that threads a runtime starts with the process's first thread (ThreadSanitizer's
     * background thread) are part of the base. */
    assert_int_equal(pb_pool_create(&p, "threads", &o), 0);
    pb_pool_destroy(p);
    int base = tu_count_threads();
    assert_int_equal(pb_pool_create(&p, "threads", &o), 0);
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == 1);
    assert_int_equal(tu_count_threads(), base + 1);

    pb_future *f[6];
    submit_gated(p, f, 2); /* the first thread takes one, the second needs a thread of its own */
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == 2);
    assert_int_equal(tu_count_threads(), base + 2);
    release_gated(f, 2);
    pb_result r = run_task(p, "conf.square", 7); /* both threads are idle again: one more starts none */
    assert_true(result_int(&r) == 49);
    pb_result_clear(&r);
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == 2);

    submit_gated(p, f, 4); /* four at once: four threads, and never a fifth */
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == 4);
    int64_t v = 3;
    for (int i = 4; i < 6; i++) assert_int_equal(pb_submit(p, "conf.square", &v, sizeof v, &f[i]), 0);
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == 4);
    assert_int_equal(tu_count_threads(), base + 4);
    release_gated(f, 4);
    for (int i = 4; i < 6; i++) {
        assert_int_equal(pb_future_wait(f[i], 120), 0);
        assert_true(result_int(pb_future_result(f[i])) == 9);
        pb_future_release(f[i]);
    }
    pb_pool_destroy(p);
    assert_true(TU_EVENTUALLY(tu_count_threads() == base, 5));

    o.start = PB_START_EAGER;
    assert_int_equal(pb_pool_create(&p, "threads", &o), 0);
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == 4);
    assert_int_equal(tu_count_threads(), base + 4);
    pb_pool_destroy(p);
    assert_true(TU_EVENTUALLY(tu_count_threads() == base, 5));
}

/* A thread started after create whose initializer fails runs none of the pool's items: they fail as task
 * errors with the initializer's message; the first thread's items are unaffected. A failing initializer
 * in create's own thread fails the creation (test_bad_input covers that on every backend). */
static void test_threads_late_initializer_failure(void **state) {
    (void)state;
    atomic_store(&init_calls, 0);
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    o.initializer = "conf.init_first_only";
    pb_pool *p;
    assert_int_equal(pb_pool_create(&p, "threads", &o), 0);
    pb_future *held;
    submit_gated(p, &held, 1); /* the first thread is busy: the next task starts the second thread */
    pb_result r = run_task(p, "conf.square", 6);
    assert_int_equal(r.status, PB_STATUS_TASK_ERROR);
    assert_non_null(r.message);
    assert_non_null(strstr(r.message, "initializer 'conf.init_first_only' failed: only the first thread may start"));
    pb_result_clear(&r);
    release_gated(&held, 1);
    pb_pool_destroy(p);
    assert_int_equal(atomic_load(&init_calls), 2);
}

int main(void) {
    int failed = 0;
    /* $POOLBENCH_TEST_FILTER: run only the tests whose name matches this cmocka pattern ("test_*wait*") */
    if (getenv("POOLBENCH_TEST_FILTER")) cmocka_set_test_filter(getenv("POOLBENCH_TEST_FILTER"));
    /* The forkserver backend's helper, forked first as its users are told to (poolbench.h): its workers
     * then inherit this early state, not what earlier tests left in this thread (tests/test_forkserver.c
     * covers the helper a pool starts itself). */
    if (pb_forkserver_start() != 0) fprintf(stderr, "pb_forkserver_start: %s\n", pb_last_error());
    for (size_t b = 0; b < pb_backend_count(); b++) {
        void *name = (void *)pb_backend_name_at(b);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_prestate(test_map_sizes, name),
            cmocka_unit_test_prestate(test_failing_task_carries_message, name),
            cmocka_unit_test_prestate(test_large_payload_roundtrip, name),
            cmocka_unit_test_prestate(test_mixed_sizes_in_one_chunk, name),
            cmocka_unit_test_prestate(test_future_wait_timeout, name),
            cmocka_unit_test_prestate(test_callbacks_fire_once, name),
            cmocka_unit_test_prestate(test_map_unordered_each_once, name),
            cmocka_unit_test_prestate(test_close_join_drains, name),
            cmocka_unit_test_prestate(test_terminate_stops_queued_work, name),
            cmocka_unit_test_prestate(test_cancel_queued, name),
            cmocka_unit_test_prestate(test_counters_add_up, name),
            cmocka_unit_test_prestate(test_initializer_once_per_worker, name),
            cmocka_unit_test_prestate(test_bad_input, name),
            cmocka_unit_test_prestate(test_future_wait_timeout_values, name),
            cmocka_unit_test_prestate(test_option_timeout_values, name),
            cmocka_unit_test_prestate(test_cancel_finished_future, name),
            cmocka_unit_test_prestate(test_long_task_name, name),
            cmocka_unit_test_prestate(test_lifecycle_twice, name),
            cmocka_unit_test_prestate(test_concurrent_lifecycle, name),
            cmocka_unit_test_prestate(test_create_destroy_cycles_leak_nothing, name),
        };
        char group[64];
        snprintf(group, sizeof group, "conformance/%s", (const char *)name);
        printf("=== %s (caps:%s%s%s%s) ===\n", group, has_cap(&name, PB_CAP_ASYNC) ? " async" : "",
               has_cap(&name, PB_CAP_CRASH_ISOLATION) ? " crash-isolation" : "",
               has_cap(&name, PB_CAP_TIMEOUT) ? " timeout" : "", has_cap(&name, PB_CAP_RECYCLE) ? " recycle" : "");
        fflush(stdout);
        failed += _cmocka_run_group_tests(group, tests, sizeof tests / sizeof tests[0], NULL, NULL);
    }
    const struct CMUnitTest threads_tests[] = {
        cmocka_unit_test(test_threads_start_policy),
        cmocka_unit_test(test_threads_late_initializer_failure),
    };
    failed += cmocka_run_group_tests_name("threads start policy", threads_tests, NULL, NULL);
    return failed ? 1 : 0;
}
