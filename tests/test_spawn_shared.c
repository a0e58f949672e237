/*
 * test_spawn_shared.c - spawn workers find every task of a program linked against the shared libpoolbench
 * (issue 13, item 5).
 *
 * This program is three objects: itself (one PB_TASK_DEFINE task), libpoolbench_test_tasks.so (another,
 * tests/shared/tasks_lib.c) and the shared libpoolbench: libpoolbench.so in a -DBUILD_SHARED_LIBS=ON
 * build, else libpoolbench_shared.so, the same sources built shared for this test (tests/CMakeLists.txt).
 * The loader runs libpoolbench's constructors first, then the task library's, then the executable's, so a
 * spawn worker that entered its loop from a libpoolbench constructor knew neither task ("task ... is not
 * registered in the worker program"). Every backend runs both tasks; the first test makes sure the
 * library really is a shared object here, so the others cannot pass on a static link.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "poolbench.h"
#include "shared/tasks_lib.h"
#include "testutil.h"

#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#define EXE_TRIPLE "shared.exe_triple"

/* input: an int64; output: three times it */
static int triple_task(const void *in, size_t len, pb_output *out) {
    int64_t v;
    if (len != sizeof v) return pb_output_error(out, "triple: expected 8 bytes, got %zu", len);
    memcpy(&v, in, sizeof v);
    v *= 3;
    return pb_output_set(out, &v, sizeof v);
}
PB_TASK_DEFINE(EXE_TRIPLE, triple_task)

static void test_library_is_a_shared_object(void **state) {
    Dl_info in_library, in_program;
    assert_true(dladdr((void *)pb_pool_create, &in_library));
    assert_true(dladdr((void *)triple_task, &in_program));
    if (in_library.dli_fbase == in_program.dli_fbase)
        fail_msg("pb_pool_create is in the executable (%s): the test needs the shared library", in_program.dli_fname);
    assert_non_null(strstr(in_library.dli_fname, ".so"));
}

/* Maps task over 1..n on backend and checks every answer is want_factor * input. */
static void map_and_check(const char *backend, const char *task, int64_t want_factor) {
    enum { N = 64 };
    int64_t in[N];
    pb_item items[N];
    pb_result results[N];
    for (int i = 0; i < N; i++) {
        in[i] = i + 1;
        items[i] = (pb_item){&in[i], sizeof in[i]};
    }
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    pb_pool *p = NULL;
    if (pb_pool_create(&p, backend, &o) != 0) fail_msg("%s: %s", backend, pb_last_error());
    memset(results, 0, sizeof results);
    int failed = pb_map(p, task, items, N, 0, results);
    /* Judge after the pool is gone, so a failure says what went wrong and leaks nothing. */
    char first_wrong[512] = "";
    for (int i = 0; i < N && !first_wrong[0]; i++) {
        int64_t got = 0;
        if (results[i].status == PB_STATUS_OK && results[i].len == sizeof got)
            memcpy(&got, pb_result_data(&results[i]), sizeof got);
        if (results[i].status != PB_STATUS_OK)
            snprintf(first_wrong, sizeof first_wrong, "item %d: %s: %s", i, pb_status_name(results[i].status),
                     results[i].message ? results[i].message : "");
        else if (got != want_factor * in[i])
            snprintf(first_wrong, sizeof first_wrong, "item %d: got %lld, want %lld", i, (long long)got,
                     (long long)(want_factor * in[i]));
    }
    pb_results_clear(results, N);
    assert_int_equal(pb_pool_join(p), 0);
    pb_pool_destroy(p);
    if (first_wrong[0]) fail_msg("%s, task %s: %s", backend, task, first_wrong);
    assert_int_equal(failed, 0);
}

static const char *const backends[] = {"serial", "threads", "fork", "spawn"};

static void test_task_of_the_executable(void **state) {
    for (size_t b = 0; b < sizeof backends / sizeof *backends; b++) map_and_check(backends[b], EXE_TRIPLE, 3);
}

static void test_task_of_a_shared_library(void **state) {
    for (size_t b = 0; b < sizeof backends / sizeof *backends; b++)
        map_and_check(backends[b], tasks_lib_negate, -1);
}

int main(void) {
    /* One pool up and down first, so that helper threads a runtime starts on its first fork (TSan's)
     * exist before the first test takes its baseline (as test_process.c does). */
    pb_pool *warm = NULL;
    if (pb_pool_create(&warm, "fork", NULL) == 0) pb_pool_destroy(warm);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_is_a_shared_object),
        cmocka_unit_test_setup_teardown(test_task_of_the_executable, tu_leak_setup, tu_leak_teardown),
        cmocka_unit_test_setup_teardown(test_task_of_a_shared_library, tu_leak_setup, tu_leak_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
