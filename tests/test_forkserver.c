/*
 * test_forkserver.c - what only the forkserver backend promises (the conformance, process, chaos and fault
 * tables run on it like on fork and spawn):
 *  - a clean heap: memory the host mapped after pb_forkserver_start() is not mapped in its workers
 *    (mincore() on its pages fails with ENOMEM there), while a fork worker inherits it;
 *  - the workers are the host's own children (clone CLONE_PARENT), so the pool reaps them itself;
 *  - a helper a pool starts itself (no pb_forkserver_start) is stopped and reaped with the last such pool;
 *    an explicitly started one stays until pb_forkserver_stop();
 *  - a helper that was killed is replaced by the next pool created, and the pool works;
 *  - stdout written by a worker goes where the host's stdout points now, not where it pointed when the
 *    helper was forked.
 * Every test checks that no child, zombie, thread or fd is left over. Tests assert behaviour, never speed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "poolbench.h"
#include "testutil.h"

/* Input: an address and a length. Output: 1 when that range is mapped in this worker, 0 when not. */
static int t_mapped(const void *in, size_t len, pb_output *out) {
    uint64_t v[2];
    if (len != sizeof v) return pb_output_error(out, "expected 16 bytes");
    memcpy(v, in, sizeof v);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char vec[1];
    int64_t mapped = mincore((void *)(uintptr_t)v[0], page, vec) == 0 ? 1 : errno == ENOMEM ? 0 : -1;
    return pb_output_set(out, &mapped, sizeof mapped);
}
PB_TASK_DEFINE("fs.mapped", t_mapped)

/* Output: the worker's parent pid. */
static int t_ppid(const void *in, size_t len, pb_output *out) {
    int64_t p = getppid();
    return pb_output_set(out, &p, sizeof p);
}
PB_TASK_DEFINE("fs.ppid", t_ppid)

/* Writes its input to stdout. */
static int t_say(const void *in, size_t len, pb_output *out) {
    if (write(1, in, len) != (ssize_t)len) return pb_output_error(out, "write to stdout failed");
    return pb_output_set(out, NULL, 0);
}
PB_TASK_DEFINE("fs.say", t_say)

static int64_t run_i64(const char *backend, const char *task, const void *in, size_t len) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 1;
    pb_pool *p;
    int rc = pb_pool_create(&p, backend, &o);
    if (rc < 0) fail_msg("pb_pool_create(%s): %s", backend, pb_last_error());
    pb_item it = {in, len};
    pb_result r;
    assert_int_equal(pb_map(p, task, &it, 1, 1, &r), 0);
    assert_int_equal(r.len, sizeof(int64_t));
    int64_t v;
    memcpy(&v, pb_result_data(&r), sizeof v);
    pb_result_clear(&r);
    assert_int_equal(pb_pool_join(p), 0);
    pb_pool_destroy(p);
    return v;
}

static void test_clean_heap(void **state) {
    (void)state;
    assert_int_equal(pb_forkserver_start(), 0);
    size_t len = 16u << 20;
    /* mapped after the helper was forked: its workers must not have it (mmap, not malloc: a sanitizer's
     * allocator serves malloc from a range it reserved at start-up, which the helper has too) */
    unsigned char *big = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(big != MAP_FAILED);
    memset(big, 0x5A, len);
    uint64_t addr[2] = {((uintptr_t)(big + len / 2)) & ~(uintptr_t)4095, 4096}; /* mincore wants a page */
    int64_t in_fork = run_i64("fork", "fs.mapped", addr, sizeof addr);
    int64_t in_forkserver = run_i64("forkserver", "fs.mapped", addr, sizeof addr);
    munmap(big, len);
    pb_forkserver_stop();
    assert_true(in_fork == 1);       /* a copy of the host */
    assert_true(in_forkserver == 0); /* a copy of the early helper */
    assert_int_equal(pb_forkserver_pid(), 0);
}

static void test_workers_are_our_children(void **state) {
    (void)state;
    assert_true(run_i64("forkserver", "fs.ppid", NULL, 0) == getpid());
}

static void test_helper_lifetime(void **state) {
    (void)state;
    assert_int_equal(pb_forkserver_pid(), 0);
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    pb_pool *a, *b;
    assert_int_equal(pb_pool_create(&a, "forkserver", &o), 0);
    int helper = pb_forkserver_pid();
    assert_true(helper > 0);
    assert_int_equal(pb_pool_create(&b, "forkserver", &o), 0);
    assert_int_equal(pb_forkserver_pid(), helper); /* one helper for every pool */
    pb_pool_destroy(a);
    assert_int_equal(pb_forkserver_pid(), helper); /* b still uses it */
    pb_pool_destroy(b);
    assert_int_equal(pb_forkserver_pid(), 0); /* the last pool stopped and reaped it */
    assert_int_equal(kill(helper, 0), -1);

    /* Started explicitly: it outlives the pools until pb_forkserver_stop(). */
    assert_int_equal(pb_forkserver_start(), 0);
    helper = pb_forkserver_pid();
    assert_int_equal(pb_pool_create(&a, "forkserver", &o), 0);
    pb_pool_destroy(a);
    assert_int_equal(pb_forkserver_pid(), helper);
    pb_forkserver_stop();
    assert_int_equal(pb_forkserver_pid(), 0);
}

static void test_killed_helper_replaced(void **state) {
    (void)state;
    assert_int_equal(pb_forkserver_start(), 0);
    int helper = pb_forkserver_pid();
    assert_int_equal(kill(helper, SIGKILL), 0);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    /* dead (a zombie: the library reaps it), which waitid(WNOWAIT) sees without reaping it */
    assert_true(TU_EVENTUALLY(waitid(P_PID, (id_t)helper, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == helper,
                              5));
    assert_true(run_i64("forkserver", "fs.ppid", NULL, 0) == getpid()); /* a new helper served it */
    assert_true(pb_forkserver_pid() > 0 && pb_forkserver_pid() != helper);
    pb_forkserver_stop();
    assert_int_equal(pb_forkserver_pid(), 0);
}

static void test_stdout_follows_host(void **state) {
    (void)state;
    assert_int_equal(pb_forkserver_start(), 0); /* forked while stdout is the test's */
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    fflush(stdout);
    int saved = dup(1);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fds[1], 1), 1);
    close(fds[1]);
    pb_pool *p;
    pb_options o;
    pb_options_init(&o);
    o.workers = 1;
    assert_int_equal(pb_pool_create(&p, "forkserver", &o), 0);
    pb_item it = {"hello from the worker\n", 22};
    pb_result r;
    int rc = pb_map(p, "fs.say", &it, 1, 1, &r);
    pb_results_clear(&r, 1);
    pb_pool_join(p);
    pb_pool_destroy(p);
    dup2(saved, 1);
    close(saved);
    pb_forkserver_stop();
    assert_int_equal(rc, 0);
    char buf[64] = {0};
    assert_int_equal(read(fds[0], buf, sizeof buf - 1), 22); /* every writer gone: then EOF */
    assert_string_equal(buf, "hello from the worker\n");
    assert_int_equal(read(fds[0], buf, sizeof buf), 0);
    close(fds[0]);
}

int main(void) {
    /* One pool up and down first, so that helper threads a runtime starts on its first fork (TSan's)
     * exist before the first test takes its baseline. */
    pb_pool *warm = NULL;
    if (pb_pool_create(&warm, "fork", NULL) == 0) pb_pool_destroy(warm);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean_heap, tu_leak_setup, tu_leak_teardown),
        cmocka_unit_test_setup_teardown(test_workers_are_our_children, tu_leak_setup, tu_leak_teardown),
        cmocka_unit_test_setup_teardown(test_helper_lifetime, tu_leak_setup, tu_leak_teardown),
        cmocka_unit_test_setup_teardown(test_killed_helper_replaced, tu_leak_setup, tu_leak_teardown),
        cmocka_unit_test_setup_teardown(test_stdout_follows_host, tu_leak_setup, tu_leak_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
