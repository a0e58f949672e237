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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void test_create_destroy_cycles_leak_nothing(void **state) {
    /* warm-up: let libc and the test runner allocate whatever they keep for good */
    pb_pool_destroy(make_pool(state, 2));
    int fds = tu_count_fds(), threads = tu_count_threads(), children = tu_count_children();
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

int main(void) {
    int failed = 0;
    for (size_t b = 0; b < pb_backend_count(); b++) {
        void *name = (void *)pb_backend_name_at(b);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_prestate(test_map_sizes, name),
            cmocka_unit_test_prestate(test_failing_task_carries_message, name),
            cmocka_unit_test_prestate(test_large_payload_roundtrip, name),
            cmocka_unit_test_prestate(test_future_wait_timeout, name),
            cmocka_unit_test_prestate(test_callbacks_fire_once, name),
            cmocka_unit_test_prestate(test_map_unordered_each_once, name),
            cmocka_unit_test_prestate(test_close_join_drains, name),
            cmocka_unit_test_prestate(test_terminate_stops_queued_work, name),
            cmocka_unit_test_prestate(test_cancel_queued, name),
            cmocka_unit_test_prestate(test_counters_add_up, name),
            cmocka_unit_test_prestate(test_initializer_once_per_worker, name),
            cmocka_unit_test_prestate(test_bad_input, name),
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
    return failed ? 1 : 0;
}
