/*
 * test_process.c - what only process backends promise, run on every backend with crash isolation
 * (fork and spawn): a task that segfaults, aborts, _exit()s, hangs past its timeout or writes garbage to
 * the result pipe fails alone with the right status and the pool goes on; 1 % crashing items out of
 * 10,000 fail exactly; recycling, the initializer, the crash-loop breaker, child hygiene (fds, signals,
 * environment) and a spawn worker program that cannot run.
 *
 * Every test ends by checking through /proc that no child process, zombie, thread or fd is left over.
 * Tests assert behaviour, never speed: timeouts here are generous and only bound how long a broken pool
 * could hang the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "poolbench.h"
#include "proc.h" /* PB_PROC_RESP_FD: the garbage task writes there; the buffer probes */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
#include "testutil.h"

static int running_under_valgrind(void) { return RUNNING_ON_VALGRIND != 0; }

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_ASAN 1 /* the sanitizer's SEGV handler turns the signal into a report and an exit code */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* ---- tasks ---- */

static int64_t in_int(const void *in, size_t len) {
    int64_t x = 0;
    if (len == sizeof x) memcpy(&x, in, sizeof x);
    return x;
}

static int t_square(const void *in, size_t len, pb_output *out) {
    int64_t x = in_int(in, len);
    x *= x;
    return pb_output_set(out, &x, sizeof x);
}
PB_TASK_DEFINE("proc.square", t_square)

/* A real invalid store (hidden from UBSan, which would only report it; ASan still catches the SEGV). */
__attribute__((no_sanitize("undefined"))) static int t_segv(const void *in, size_t len, pb_output *out) {
    volatile int *p = NULL;
    *p = 1;
    return 0;
}
PB_TASK_DEFINE("proc.segv", t_segv)

static int t_abort(const void *in, size_t len, pb_output *out) { abort(); }
PB_TASK_DEFINE("proc.abort", t_abort)

static int t_exit3(const void *in, size_t len, pb_output *out) { _exit(3); }
PB_TASK_DEFINE("proc.exit3", t_exit3)

/* Negative input: never returns. Else squares. */
static int t_maybe_hang(const void *in, size_t len, pb_output *out) {
    int64_t x = in_int(in, len);
    if (x < 0)
        for (;;) pause();
    x *= x;
    return pb_output_set(out, &x, sizeof x);
}
PB_TASK_DEFINE("proc.maybe_hang", t_maybe_hang)

/* Writes bytes that are not a frame where the worker's frames go, then answers normally: onto the result
 * pipe, or, in a worker of an shm backend (whose pipe only rings), as a published record of its result
 * ring (what a worker's task could scribble over its own shared memory). */
static int t_garbage(const void *in, size_t len, pb_output *out) {
    static const char junk[] = "this is not a poolbench frame, not even close.....";
    if (pb__worker_shm_scribble(junk, sizeof junk) != 0) {
        ssize_t w = write(PB_PROC_RESP_FD, junk, sizeof junk);
        (void)w;
    }
    return pb_output_set(out, "ok", 2);
}
PB_TASK_DEFINE("proc.garbage", t_garbage)

/* Input i: i % 100 == 7 kills its own worker (SIGKILL cannot be caught, even by sanitizers). */
static int t_crash_1pct(const void *in, size_t len, pb_output *out) {
    int64_t x = in_int(in, len);
    if (x % 100 == 7) raise(SIGKILL);
    x *= x;
    return pb_output_set(out, &x, sizeof x);
}
PB_TASK_DEFINE("proc.crash_1pct", t_crash_1pct)

static int t_always_crash(const void *in, size_t len, pb_output *out) {
    raise(SIGKILL);
    return 0;
}
PB_TASK_DEFINE("proc.always_crash", t_always_crash)

static int t_pid(const void *in, size_t len, pb_output *out) {
    int64_t pid = getpid();
    return pb_output_set(out, &pid, sizeof pid);
}
PB_TASK_DEFINE("proc.pid", t_pid)

static int64_t init_value;
static int t_init(const void *in, size_t len, pb_output *out) {
    init_value = in_int(in, len);
    return 0;
}
PB_TASK_DEFINE("proc.init", t_init)

static int t_init_fail(const void *in, size_t len, pb_output *out) {
    return pb_output_error(out, "cannot initialise: no unicorns");
}
PB_TASK_DEFINE("proc.init_fail", t_init_fail)

static int t_get_init(const void *in, size_t len, pb_output *out) {
    return pb_output_set(out, &init_value, sizeof init_value);
}
PB_TASK_DEFINE("proc.get_init", t_get_init)

/* The worker's view of its own hygiene: bit 0 = an fd other than 0..4 is open, bit 1 = SIGUSR1 (ignored by
 * the host), SIGHUP or SIGRTMAX (caught by it: the first and last of the kernel's signal mask) is not
 * SIG_DFL, bit 2 = SIGUSR2 is blocked, bit 3 = POOLBENCH_WORKER is still in the environment,
 * bit 4 = fd 3 or 4 is not close-on-exec. */
/* The shm backends' worker keeps its shared memory's fd (for pread and pwritev of large frames), close-on-
 * exec; no other fd past the pipes. */
static int is_shm_memfd(int fd) {
    char link[64], target[128];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = '\0';
    int fl = fcntl(fd, F_GETFD);
    return strncmp(target, "/memfd:poolbench-shm", 20) == 0 && fl >= 0 && (fl & FD_CLOEXEC);
}

static int t_hygiene(const void *in, size_t len, pb_output *out) {
    int64_t bits = 0;
    int memfd = -1;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            int fd = atoi(e->d_name);
            if (fd <= 4 || fd == dirfd(d)) continue;
            if (memfd < 0 && is_shm_memfd(fd)) memfd = fd;
            else bits |= 1;
        }
        closedir(d);
    }
    /* a child the task forks holds none of the worker's protocol fds (pthread_atfork in worker.c) */
    pid_t child = fork();
    if (child == 0) {
        int held = fcntl(3, F_GETFD) >= 0 || fcntl(4, F_GETFD) >= 0 || (memfd >= 0 && fcntl(memfd, F_GETFD) >= 0);
        _exit(held ? 1 : 0);
    }
    int st = 0;
    if (child < 0 || waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bits |= 32;
    struct sigaction sa;
    if (sigaction(SIGUSR1, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL) bits |= 2;
    if (sigaction(SIGHUP, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL) bits |= 2;
    if (sigaction(SIGRTMAX, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL) bits |= 2;
    sigset_t cur;
    if (sigprocmask(SIG_SETMASK, NULL, &cur) == 0 && sigismember(&cur, SIGUSR2)) bits |= 4;
    if (getenv("POOLBENCH_WORKER")) bits |= 8;
    for (int fd = 3; fd <= 4; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || !(fl & FD_CLOEXEC)) bits |= 16;
    }
    return pb_output_set(out, &bits, sizeof bits);
}
PB_TASK_DEFINE("proc.hygiene", t_hygiene)

/* Input: a path. A grandchild holds the worker's pipes, then the worker dies (tu_grandchild_then_die):
 * forked with fork() (the worker's pthread_atfork handler closes the pipes in the child) or raw. */
static int t_fork_then_die(const void *in, size_t len, pb_output *out) { return tu_grandchild_then_die(in, len, 0); }
PB_TASK_DEFINE("proc.fork_then_die", t_fork_then_die)
static int t_rawfork_then_die(const void *in, size_t len, pb_output *out) {
    return tu_grandchild_then_die(in, len, 1);
}
PB_TASK_DEFINE("proc.rawfork_then_die", t_rawfork_then_die)

/* The worker's protocol buffers, in bytes (worker.c's probe). */
static int t_worker_buffers(const void *in, size_t len, pb_output *out) {
    int64_t bytes = (int64_t)pb__worker_buffer_bytes();
    return pb_output_set(out, &bytes, sizeof bytes);
}
PB_TASK_DEFINE("proc.worker_buffers", t_worker_buffers)

static int t_echo(const void *in, size_t len, pb_output *out) { return pb_output_set(out, in, len); }
PB_TASK_DEFINE("proc.echo", t_echo)

/* Output blocks (task.c's spare and kept blocks). Input: a size n. Output: n bytes, the first 8 the block's
 * address in the worker, the rest pattern(n); the address shows whether the worker reused a block. */
static unsigned char pattern_byte(size_t n, size_t i) { return (unsigned char)(i * 7 + n); }
/* 1 when p lies in the worker's mapping of its shared memory (an output written in place). */
static int in_shm_mapping(const void *p) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && strstr(line, "poolbench-shm") && (uintptr_t)p >= lo &&
            (uintptr_t)p < hi)
            found = 1;
    }
    fclose(f);
    return found;
}
#define IN_PLACE_TAG (UINT64_C(1) << 63)

/* Output: its own address (with IN_PLACE_TAG when in the shared memory), then pattern(n). */
static int t_big_out(const void *in, size_t len, pb_output *out) {
    size_t n = (size_t)in_int(in, len);
    unsigned char *o = pb_output_alloc(out, n);
    if (!o) return pb_output_error(out, "no block of %zu bytes", n);
    uint64_t at = (uint64_t)(uintptr_t)o | (in_shm_mapping(o) ? IN_PLACE_TAG : 0);
    memcpy(o, &at, sizeof at);
    for (size_t i = sizeof at; i < n; i++) o[i] = pattern_byte(n, i);
    return 0;
}
PB_TASK_DEFINE("proc.big_out", t_big_out)
/* Takes a large block, writes it whole, then fails: the block must go (no leak, no double free). */
static int t_big_then_fail(const void *in, size_t len, pb_output *out) {
    unsigned char *o = pb_output_alloc(out, 1u << 20);
    if (o) memset(o, 0xee, 1u << 20);
    return pb_output_error(out, "failed after writing a large output");
}
PB_TASK_DEFINE("proc.big_then_fail", t_big_then_fail)
/* Changes its mind: a large block, then an inline one, then a larger block, and a smaller one: the
 * output is the last, pattern(n) for n = 300 KiB - 5, written before the last shrink. */
static int t_big_reshape(const void *in, size_t len, pb_output *out) {
    size_t n = 300u * 1024u - 5;
    if (!pb_output_alloc(out, 200u * 1024u) || !pb_output_alloc(out, 8)) return -1;
    unsigned char *o = pb_output_alloc(out, 400u * 1024u);
    if (!o) return -1;
    for (size_t i = 0; i < n; i++) o[i] = pattern_byte(n, i);
    return pb_output_alloc(out, n) ? 0 : -1;
}
PB_TASK_DEFINE("proc.big_reshape", t_big_reshape)

/* Input "DIR I N": creates DIR/I, then waits until DIR holds N such files (all N items running at once),
 * for at most 60 s; answers I, or fails saying how many it saw. Files, not a pipe: every kind of worker
 * (forked, spawned, forked by a forkserver) can reach them. */
static int t_rendezvous(const void *in, size_t len, pb_output *out) {
    char buf[512], dir[480];
    int i = -1, n = -1;
    if (len >= sizeof buf) return pb_output_error(out, "rendezvous: input too long");
    memcpy(buf, in, len);
    buf[len] = '\0';
    if (sscanf(buf, "%479s %d %d", dir, &i, &n) != 3 || i < 0 || n <= 0) return pb_output_error(out, "bad input");
    char path[512];
    snprintf(path, sizeof path, "%s/%d", dir, i);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return pb_output_error(out, "rendezvous: %s: %s", path, strerror(errno));
    close(fd);
    int seen = 0;
    for (int tries = 0; tries < 60000; tries++) {
        seen = 0;
        for (int k = 0; k < n; k++) {
            snprintf(path, sizeof path, "%s/%d", dir, k);
            seen += access(path, F_OK) == 0;
        }
        if (seen == n) {
            int64_t v = i;
            return pb_output_set(out, &v, sizeof v);
        }
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    return pb_output_error(out, "rendezvous: %d of %d items arrived in 60 s", seen, n);
}
PB_TASK_DEFINE("proc.rendezvous", t_rendezvous)

/* ---- helpers ---- */

static const char *backend_of(void **state) { return (const char *)*state; }

/* Nothing may outlive a test: no child (running or zombie), no thread, no fd (tu_leak_teardown). */

static pb_pool *pool_with(void **state, pb_options *o) {
    pb_pool *p = NULL;
    int rc = pb_pool_create(&p, backend_of(state), o);
    if (rc < 0) fail_msg("pb_pool_create(%s): %s: %s", backend_of(state), pb_strerror(rc), pb_last_error());
    return p;
}

static pb_pool *pool_n(void **state, int workers) {
    pb_options o;
    pb_options_init(&o);
    o.workers = workers;
    return pool_with(state, &o);
}

static int64_t result_int(const pb_result *r) {
    int64_t v = INT64_MIN;
    if (r->status == PB_STATUS_OK && r->len == sizeof v) memcpy(&v, pb_result_data(r), sizeof v);
    return v;
}

typedef struct ints {
    int64_t *v;
    pb_item *items;
    size_t n;
} ints;

static ints make_ints(size_t n) {
    ints s = {calloc(n + 1, sizeof(int64_t)), calloc(n + 1, sizeof(pb_item)), n};
    for (size_t i = 0; i < n; i++) {
        s.v[i] = (int64_t)i;
        s.items[i] = (pb_item){&s.v[i], sizeof(int64_t)};
    }
    return s;
}

static void free_ints(ints *s) {
    free(s->v);
    free(s->items);
}

/* Submits one item and waits (generously) for its result, which the caller must clear. */
static pb_result run_one(pb_pool *p, const char *task, int64_t x) {
    pb_future *f = NULL;
    int rc = pb_submit(p, task, &x, sizeof x, &f);
    if (rc < 0) fail_msg("pb_submit(%s): %s: %s", task, pb_strerror(rc), pb_last_error());
    assert_int_equal(pb_future_wait(f, 120), 0);
    pb_result r;
    pb_result_move(&r, (pb_result *)pb_future_result(f));
    pb_future_release(f);
    return r;
}

/* After a crash the pool still answers correctly. */
static void assert_pool_alive(pb_pool *p) {
    pb_result r = run_one(p, "proc.square", 12);
    assert_int_equal(r.status, PB_STATUS_OK);
    assert_int_equal(result_int(&r), 144);
    pb_result_clear(&r);
}

/* ---- tests ---- */

static void test_segfault(void **state) {
    pb_pool *p = pool_n(state, 2);
    pb_result r = run_one(p, "proc.segv", 0);
    assert_int_equal(r.status, PB_STATUS_WORKER_DIED);
    assert_non_null(r.message);
    if (UNDER_ASAN)
        assert_true(r.signal == SIGSEGV || r.exit_code > 0);
    else
        assert_int_equal(r.signal, SIGSEGV);
    pb_result_clear(&r);
    assert_pool_alive(p);
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_true(c.worker_deaths >= 1);
    assert_true(c.workers_respawned >= 1);
    assert_int_equal(c.by_status[PB_STATUS_WORKER_DIED], 1);
    pb_pool_destroy(p);
}

static void test_abort(void **state) {
    pb_pool *p = pool_n(state, 2);
    pb_result r = run_one(p, "proc.abort", 0);
    assert_int_equal(r.status, PB_STATUS_WORKER_DIED);
    assert_int_equal(r.signal, SIGABRT);
    assert_int_equal(r.exit_code, -1);
    assert_non_null(strstr(r.message, "SIGABRT"));
    pb_result_clear(&r);
    assert_pool_alive(p);
    pb_pool_destroy(p);
}

static void test_exit3(void **state) {
    pb_pool *p = pool_n(state, 2);
    pb_result r = run_one(p, "proc.exit3", 0);
    assert_int_equal(r.status, PB_STATUS_WORKER_DIED);
    assert_int_equal(r.signal, 0);
    assert_int_equal(r.exit_code, 3);
    assert_non_null(strstr(r.message, "exited with code 3"));
    pb_result_clear(&r);
    assert_pool_alive(p);
    pb_pool_destroy(p);
}

static void test_timeout(void **state) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    o.task_timeout = 1.0;
    pb_pool *p = pool_with(state, &o);
    int64_t v[5] = {1, 2, -1, 3, 4};
    pb_item items[5];
    for (int i = 0; i < 5; i++) items[i] = (pb_item){&v[i], sizeof v[i]};
    pb_result res[5];
    memset(res, 0, sizeof res);
    /* One chunk holds them all: the items around the hanging one must still succeed. */
    assert_int_equal(pb_map(p, "proc.maybe_hang", items, 5, 5, res), 1);
    for (int i = 0; i < 5; i++) {
        if (v[i] < 0) {
            assert_int_equal(res[i].status, PB_STATUS_TIMED_OUT);
            assert_non_null(strstr(res[i].message, "timeout"));
        } else {
            assert_int_equal(res[i].status, PB_STATUS_OK);
            assert_int_equal(result_int(&res[i]), v[i] * v[i]);
        }
    }
    pb_results_clear(res, 5);
    assert_pool_alive(p);
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_int_equal(c.timeouts, 1);
    assert_int_equal(c.by_status[PB_STATUS_TIMED_OUT], 1);
    assert_int_equal(c.worker_deaths, 0);
    pb_pool_destroy(p);
}

static void test_garbage_frame(void **state) {
    pb_pool *p = pool_n(state, 2);
    pb_result r = run_one(p, "proc.garbage", 0);
    assert_int_equal(r.status, PB_STATUS_WORKER_DIED);
    assert_non_null(strstr(r.message, "malformed frame"));
    pb_result_clear(&r);
    assert_pool_alive(p);
    pb_pool_destroy(p);
}

static void test_one_percent_crash(void **state) {
    pb_pool *p = pool_n(state, 2);
    ints s = make_ints(10000);
    pb_result *res = calloc(s.n, sizeof *res);
    int failed = pb_map(p, "proc.crash_1pct", s.items, s.n, 0, res);
    assert_int_equal(failed, 100);
    size_t died = 0, ok = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (i % 100 == 7) {
            assert_int_equal(res[i].status, PB_STATUS_WORKER_DIED);
            assert_int_equal(res[i].signal, SIGKILL);
            died++;
        } else {
            assert_int_equal(res[i].status, PB_STATUS_OK);
            assert_int_equal(result_int(&res[i]), (int64_t)(i * i));
            ok++;
        }
    }
    assert_int_equal(died, 100);
    assert_int_equal(ok, 9900);
    pb_results_clear(res, s.n);
    free(res);
    free_ints(&s);
    assert_pool_alive(p);
    pb_pool_destroy(p);
}

static void test_recycle_by_count(void **state) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 1;
    o.max_tasks_per_worker = 5;
    pb_pool *p = pool_with(state, &o);
    ints s = make_ints(23);
    pb_result res[23];
    memset(res, 0, sizeof res);
    assert_int_equal(pb_map(p, "proc.pid", s.items, s.n, 0, res), 0);
    /* Items run in order on one worker at a time: a new pid every 5 items. */
    int distinct = 1;
    for (size_t i = 1; i < s.n; i++) {
        int64_t a = result_int(&res[i - 1]), b = result_int(&res[i]);
        if (a != b) distinct++;
        assert_int_equal(a == b, i % 5 != 0);
    }
    assert_int_equal(distinct, 5);
    pb_results_clear(res, s.n);
    free_ints(&s);
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_true(c.workers_recycled >= 4);
    assert_int_equal(c.worker_deaths, 0);
    assert_int_equal(c.workers_respawned, 0);
    assert_int_equal(pb_pool_join(p), 0);
    pb_pool_destroy(p);
}

static void test_recycle_by_rss(void **state) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 1;
    o.max_worker_rss = 1; /* every worker is above one byte: each item gets a fresh worker */
    pb_pool *p = pool_with(state, &o);
    ints s = make_ints(4);
    pb_result res[4];
    memset(res, 0, sizeof res);
    assert_int_equal(pb_map(p, "proc.pid", s.items, s.n, 4, res), 0);
    for (size_t i = 1; i < s.n; i++) assert_true(result_int(&res[i - 1]) != result_int(&res[i]));
    pb_results_clear(res, s.n);
    free_ints(&s);
    pb_pool_destroy(p);
}

static void test_initializer(void **state) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    int64_t arg = 4242;
    o.initializer = "proc.init";
    o.init_arg = &arg;
    o.init_arg_len = sizeof arg;
    o.max_tasks_per_worker = 3; /* recycled workers run it too */
    pb_pool *p = pool_with(state, &o);
    ints s = make_ints(20);
    pb_result res[20];
    memset(res, 0, sizeof res);
    assert_int_equal(pb_map(p, "proc.get_init", s.items, s.n, 1, res), 0);
    for (size_t i = 0; i < s.n; i++) assert_int_equal(result_int(&res[i]), 4242);
    pb_results_clear(res, s.n);
    free_ints(&s);
    pb_pool_destroy(p);
    assert_int_equal(init_value, 0); /* it ran in the workers, not here */
}

static void test_initializer_failure_fails_create(void **state) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    o.initializer = "proc.init_fail";
    pb_pool *p = NULL;
    int rc = pb_pool_create(&p, backend_of(state), &o);
    assert_int_equal(rc, PB_ESPAWN);
    assert_null(p);
    assert_non_null(strstr(pb_last_error(), "no unicorns"));
}

static void test_crashloop_breaker(void **state) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    o.crashloop_deaths = 3;
    o.crashloop_window = 600;
    pb_pool *p = pool_with(state, &o);
    ints s = make_ints(40);
    pb_result res[40];
    memset(res, 0, sizeof res);
    int failed = pb_map(p, "proc.always_crash", s.items, s.n, 1, res);
    assert_int_equal(failed, 40);
    size_t broken = 0;
    for (size_t i = 0; i < s.n; i++) {
        assert_true(res[i].status == PB_STATUS_WORKER_DIED || res[i].status == PB_STATUS_BROKEN);
        if (res[i].status == PB_STATUS_BROKEN) {
            broken++;
            assert_non_null(strstr(res[i].message, "crash-loop"));
        }
    }
    assert_true(broken > 0);
    pb_results_clear(res, s.n);
    free_ints(&s);
    /* A broken pool answers at once, with the reason. */
    pb_result r = run_one(p, "proc.square", 3);
    assert_int_equal(r.status, PB_STATUS_BROKEN);
    assert_non_null(strstr(r.message, "crash-loop"));
    pb_result_clear(&r);
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_true(c.worker_deaths > 3);
    pb_pool_destroy(p);
}

static void test_terminate_kills_running(void **state) {
    pb_pool *p = pool_n(state, 2);
    pb_future *f[3];
    int64_t hang = -1;
    for (int i = 0; i < 3; i++) assert_int_equal(pb_submit(p, "proc.maybe_hang", &hang, sizeof hang, &f[i]), 0);
    assert_int_equal(pb_pool_terminate(p), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pb_future_wait(f[i], 60), 0);
        assert_int_equal(pb_future_result(f[i])->status, PB_STATUS_TERMINATED);
        pb_future_release(f[i]);
    }
    pb_pool_destroy(p);
}

static void host_handler(int sig) { (void)sig; }

static void test_worker_hygiene(void **state) {
    /* The host's signal state must not leak into workers, nor the spawn marker into their children. */
    if (running_under_valgrind()) { /* valgrind emulates its client's signal state across fork */
        print_message("      skipped under valgrind: checked natively and under the sanitizers\n");
        return;
    }
    struct sigaction ign = {.sa_handler = SIG_IGN}, caught = {.sa_handler = host_handler}, old_usr1, old_hup, old_rtmax;
    sigaction(SIGUSR1, &ign, &old_usr1);
    sigaction(SIGHUP, &caught, &old_hup);
    sigaction(SIGRTMAX, &caught, &old_rtmax);
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask); /* the creator's mask is restored in workers */
    pb_pool *p = pool_n(state, 2);
    pb_result r = run_one(p, "proc.hygiene", 0);
    sigaction(SIGUSR1, &old_usr1, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGRTMAX, &old_rtmax, NULL);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    assert_int_equal(r.status, PB_STATUS_OK);
    assert_int_equal(result_int(&r), 4); /* only "SIGUSR2 blocked", as in the creating thread: no stray fd,
                                           * none in a child the task forks */
    pb_result_clear(&r);
    pb_pool_destroy(p);
}

/* Start policy: on demand (the default) starts one worker in create and then no more than there has been
 * work for; eager starts them all in create; other values are refused; a version-1 options struct is
 * accepted (on demand). */
static void test_start_policy(void **state) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 4;
    pb_pool *p = pool_with(state, &o);
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == 1);
    assert_int_equal(tu_count_children(), tu_base_children + 1);
    int64_t hang = -1;
    pb_future *f[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pb_submit(p, "proc.maybe_hang", &hang, sizeof hang, &f[i]), 0);
    assert_true(TU_EVENTUALLY((pb_pool_counters(p, &c), c.workers_started == 2), 30));
    pb_result r = run_one(p, "proc.square", 7); /* a third unit of work: a third worker */
    assert_int_equal(result_int(&r), 49);
    pb_result_clear(&r);
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == 3); /* two hang, one answered: never the fourth */
    assert_int_equal(pb_pool_terminate(p), 0);
    for (int i = 0; i < 2; i++) pb_future_release(f[i]);
    pb_pool_destroy(p);

    o.start = PB_START_EAGER;
    p = pool_with(state, &o);
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == 4);
    assert_int_equal(tu_count_children(), tu_base_children + 4);
    pb_pool_destroy(p);

    o.start = 2;
    assert_int_equal(pb_pool_create(&p, backend_of(state), &o), PB_EINVAL);
    assert_non_null(strstr(pb_last_error(), "start must be"));
    pb_options_init(&o);
    o.version = 1; /* a program built before `start` existed */
    o.workers = 2;
    p = pool_with(state, &o);
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == 1);
    pb_pool_destroy(p);
}

/* A map's chunks on an on-demand pool: the pool starts a worker for each chunk the running workers
 * cannot take, while they run (its dispatch wakes the I/O thread once, at the map's last chunk: a lost
 * wake-up would leave chunks queued behind a busy worker). Each item waits until all have started, so
 * the map completes only if all ran at once; how many workers started is exact. */
static void test_map_starts_workers_together(void **state) {
    enum { N = 3 };
    char dir[] = "/tmp/pb-rendezvous-XXXXXX";
    assert_non_null(mkdtemp(dir));
    pb_options o;
    pb_options_init(&o);
    o.workers = N + 2; /* more slots than chunks: only N may start */
    pb_pool *p = pool_with(state, &o);
    char in[N][600];
    pb_item items[N];
    pb_result res[N];
    for (int i = 0; i < N; i++) {
        snprintf(in[i], sizeof in[i], "%s %d %d", dir, i, N);
        items[i] = (pb_item){in[i], strlen(in[i])};
    }
    assert_int_equal(pb_map(p, "proc.rendezvous", items, N, 1, res), 0);
    for (int i = 0; i < N; i++) {
        if (res[i].status != PB_STATUS_OK) fail_msg("item %d: %s", i, res[i].message ? res[i].message : "?");
        assert_int_equal(result_int(&res[i]), i);
    }
    pb_results_clear(res, N);
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_true(c.workers_started == N);
    pb_pool_destroy(p);
    for (int i = 0; i < N; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s/%d", dir, i);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

static void test_join_reaps(void **state) {
    pb_pool *p = pool_n(state, 3);
    assert_pool_alive(p);
    assert_int_equal(pb_pool_join(p), 0);
    assert_int_equal(tu_count_children(), tu_base_children); /* join returns after every worker is reaped */
    pb_pool_destroy(p);
}

/* The pool reaps only its own workers: another child of the host stays the host's to wait for. */
static void test_other_children_untouched(void **state) {
    int gate[2];
    assert_int_equal(pipe2(gate, O_CLOEXEC), 0);
    pid_t mine = fork();
    assert_true(mine >= 0);
    if (mine == 0) { /* waits for EOF on the gate, then exits 42 */
        char c;
        close(gate[1]);
        while (read(gate[0], &c, 1) > 0) {}
        _exit(42);
    }
    close(gate[0]);
    pb_pool *p = pool_n(state, 2);
    for (int i = 0; i < 3; i++) { /* deaths, reaps and respawns */
        pb_result r = run_one(p, "proc.abort", 0);
        assert_int_equal(r.status, PB_STATUS_WORKER_DIED);
        pb_result_clear(&r);
    }
    assert_pool_alive(p);
    pb_pool_destroy(p);
    int st = 0;
    assert_int_equal(waitpid(mine, &st, WNOHANG), 0); /* still running, still ours */
    close(gate[1]);
    assert_int_equal(waitpid(mine, &st, 0), mine);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 42);
}

/* 1 when pid is gone or a zombie (its new parent may not reap it). */
static int pid_gone(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *rp = strrchr(buf, ')');
    return rp && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Workers never outlive their pool's process, even when it is SIGKILLed (PR_SET_PDEATHSIG). */
static void test_workers_die_with_parent(void **state) {
    int pids[2];
    assert_int_equal(pipe2(pids, O_CLOEXEC), 0);
    pid_t host = fork();
    assert_true(host >= 0);
    if (host == 0) { /* a host program: a pool of 3, report each worker's pid, then wait to be killed */
        close(pids[0]);
        pb_pool *p = NULL;
        pb_options o;
        pb_options_init(&o);
        o.workers = 3;
        o.start = PB_START_EAGER; /* all three up at once, so that three submits find three workers */
        if (pb_pool_create(&p, backend_of(state), &o) != 0) _exit(1);
        int64_t seen[3] = {0, 0, 0};
        int nseen = 0;
        for (int tries = 0; tries < 1000 && nseen < 3; tries++) {
            pb_future *f[3];
            int64_t zero = 0;
            for (int i = 0; i < 3; i++) pb_submit(p, "proc.pid", &zero, sizeof zero, &f[i]);
            for (int i = 0; i < 3; i++) {
                pb_future_wait(f[i], -1);
                int64_t pid = result_int(pb_future_result(f[i]));
                int dup = 0;
                for (int j = 0; j < nseen; j++) dup |= seen[j] == pid;
                if (!dup && nseen < 3) seen[nseen++] = pid;
                pb_future_release(f[i]);
            }
        }
        if (write(pids[1], seen, sizeof seen) != (ssize_t)sizeof seen) _exit(1);
        for (;;) pause();
    }
    close(pids[1]);
    int64_t seen[3] = {0, 0, 0};
    size_t got = 0;
    while (got < sizeof seen) {
        ssize_t n = read(pids[0], (char *)seen + got, sizeof seen - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(pids[0]);
    kill(host, SIGKILL);
    int st;
    assert_int_equal(waitpid(host, &st, 0), host);
    assert_int_equal(got, sizeof seen);
    for (int i = 0; i < 3; i++) {
        assert_true(seen[i] > 1);
        if (!TU_EVENTUALLY(pid_gone((pid_t)seen[i]), 30)) fail_msg("worker %lld outlived its parent", (long long)seen[i]);
    }
}

/* A recycle is never a death: with max_tasks_per_worker = 1 every answer is followed at once by RETIRE
 * and EOF, often read in one go by the waiting caller (Lending). 300 round trips, not one death. */
static void test_recycle_every_task_not_a_death(void **state) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 1;
    o.max_tasks_per_worker = 1;
    pb_pool *p = pool_with(state, &o);
    int n = running_under_valgrind() ? 40 : 300;
    for (int i = 0; i < n; i++) {
        pb_result r = run_one(p, "proc.square", i);
        assert_int_equal(r.status, PB_STATUS_OK);
        assert_int_equal(result_int(&r), (int64_t)i * i);
        pb_result_clear(&r);
    }
    assert_int_equal(pb_pool_join(p), 0);
    pb_counters c;
    pb_pool_counters(p, &c);
    if (c.worker_deaths || c.workers_respawned)
        fail_msg("%d recycles: %llu counted as deaths (%llu respawns)", n, (unsigned long long)c.worker_deaths,
                 (unsigned long long)c.workers_respawned);
    assert_int_equal(c.workers_recycled, (uint64_t)n);
    pb_pool_destroy(p);
}

/* Runs a grandchild-forking task (see grandchild_then_die) and reaps the grandchild, which this process
 * adopts as a child subreaper. The item must fail as worker-died (exit code 5) and the pool go on. */
static void grandchild_case(void **state, const char *task) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/poolbench-grandchild-%d-%s", (int)getpid(), backend_of(state));
    unlink(path);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    pb_pool *p = pool_n(state, 1);
    pb_future *f = NULL;
    assert_int_equal(pb_submit(p, task, path, strlen(path), &f), 0);
    /* Generous: this only bounds the hang of a pool that cannot notice the death. */
    int rc = pb_future_wait(f, 60);
    pid_t grandchild = tu_reap_grandchild(path); /* whatever happened above */
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    assert_true(grandchild > 0);
    if (rc != 0) {
        pb_pool_destroy(p);
        pb_future_release(f);
        fail_msg("%s: the worker's death went unnoticed for 60 s while its child held the pipes", task);
    }
    const pb_result *r = pb_future_result(f);
    assert_int_equal(r->status, PB_STATUS_WORKER_DIED);
    assert_int_equal(r->exit_code, 5);
    pb_future_release(f);
    assert_pool_alive(p);
    pb_counters c;
    pb_pool_counters(p, &c);
    assert_int_equal(c.worker_deaths, 1);
    pb_pool_destroy(p);
}

static void test_death_noticed_despite_forked_child(void **state) { grandchild_case(state, "proc.fork_then_die"); }
static void test_death_noticed_despite_raw_forked_child(void **state) {
    grandchild_case(state, "proc.rawfork_then_die");
}

/* With SIGCHLD ignored the kernel reaps the workers itself and waitpid() fails (ECHILD): a crash must not
 * then pass for a clean exit with code 0. */
static void test_crash_with_sigchld_ignored(void **state) {
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGCHLD, &ign, &old);
    pb_pool *p = pool_n(state, 2);
    pb_result r = run_one(p, "proc.abort", 0);
    assert_int_equal(r.status, PB_STATUS_WORKER_DIED);
    assert_int_equal(r.exit_code, -1); /* unknown, not 0 */
    assert_non_null(r.message);
    if (strstr(r.message, "exited with code 0")) fail_msg("a crash reported as a clean exit: %s", r.message);
    assert_non_null(strstr(r.message, "waitpid"));
    pb_result_clear(&r);
    assert_pool_alive(p);
    pb_pool_destroy(p);
    sigaction(SIGCHLD, &old, NULL);
}

/* One huge payload must not pin twice its size in every worker for the pool's life: the parent's and the
 * worker's protocol buffers shrink back once it has passed. */
static void test_buffers_shrink_after_huge_payload(void **state) {
    pb_pool *p = pool_n(state, 1);
    size_t len = 40u << 20;
    unsigned char *big = malloc(len);
    assert_non_null(big);
    memset(big, 0x5a, len);
    pb_future *f;
    assert_int_equal(pb_submit(p, "proc.echo", big, len, &f), 0);
    assert_int_equal(pb_future_wait(f, 120), 0);
    const pb_result *r = pb_future_result(f);
    assert_int_equal(r->status, PB_STATUS_OK);
    assert_true(r->len == len);
    assert_memory_equal(pb_result_data(r), big, len);
    pb_future_release(f);
    free(big);
    pb_result w = run_one(p, "proc.worker_buffers", 0);
    int64_t worker_bytes = result_int(&w);
    pb_result_clear(&w);
    size_t parent_bytes = pb__proc_buffer_bytes(p);
    if (worker_bytes < 0 || worker_bytes > 2 * (int64_t)PB_PROC_BUFFER_KEEP)
        fail_msg("the worker still holds %lld bytes of buffers after a %zu-byte payload", (long long)worker_bytes, len);
    if (parent_bytes > 2 * (size_t)PB_PROC_BUFFER_KEEP)
        fail_msg("the pool still holds %zu bytes of buffers for its worker after a %zu-byte payload", parent_bytes, len);
    pb_pool_destroy(p);
}

static void assert_pattern(const pb_result *r, size_t n, size_t from) {
    assert_int_equal(r->status, PB_STATUS_OK);
    assert_true(r->len == n);
    const unsigned char *d = pb_result_data(r);
    for (size_t i = from; i < n; i++)
        if (d[i] != pattern_byte(n, i)) fail_msg("output byte %zu of %zu differs", i, n);
}

static uint64_t block_address(const pb_result *r) {
    uint64_t at = 0;
    memcpy(&at, pb_result_data(r), sizeof at);
    return at;
}

/* A worker keeps its last large output block for the next (task.c's spare: on the reference VM each first
 * touch of a page costs ~6-12 us, so a fresh block per item cost ~3 ms a MiB), or on shm, once its
 * pwritev copies have cost enough (rent or buy, shm.h: never for the first), writes the output in place
 * in its result overflow area: no new block item after item; a task that fails after writing one, or that grows, shrinks to inline and grows its
 * output again, still gives the right answers (and, under ASan and valgrind, frees every block once);
 * an output over PB_PROC_BUFFER_KEEP is not kept (the worker's buffers stay bounded). */
static void test_worker_reuses_output_block(void **state) {
    pb_pool *p = pool_n(state, 1);
    size_t mib = 1u << 20;
    pb_result r1 = run_one(p, "proc.big_out", (int64_t)mib);
    pb_result r2 = run_one(p, "proc.big_out", (int64_t)mib);
    pb_result r3 = run_one(p, "proc.big_out", (int64_t)(mib - 4096)); /* smaller: the same block serves */
    assert_pattern(&r1, mib, 8);
    assert_pattern(&r2, mib, 8);
    assert_pattern(&r3, mib - 4096, 8);
    uint64_t first = block_address(&r1);
    int shm = strstr(backend_of(state), "-shm") != NULL;
    if (first & IN_PLACE_TAG) fail_msg("%s: the first output was written in place, before any rent", backend_of(state));
    if (!shm && ((block_address(&r2) | block_address(&r3)) & IN_PLACE_TAG))
        fail_msg("%s: an output in shared memory on a pipe backend", backend_of(state));
    if ((block_address(&r2) != first && !(block_address(&r2) & IN_PLACE_TAG)) ||
        (block_address(&r3) != first && !(block_address(&r3) & IN_PLACE_TAG)))
        fail_msg("the worker wrote three outputs into blocks %#llx, %#llx, %#llx: not reused",
                 (unsigned long long)block_address(&r1), (unsigned long long)block_address(&r2),
                 (unsigned long long)block_address(&r3));
    pb_result_clear(&r1);
    pb_result_clear(&r2);
    pb_result_clear(&r3);
    /* Where the block was: the spare, kept for the next output (on every process backend: the shm ones
     * write the frame from it with pwritev, worker.c). */
    pb_result probe = run_one(p, "proc.worker_buffers", 0);
    int64_t held = result_int(&probe);
    pb_result_clear(&probe);
    if (held < (int64_t)mib)
        fail_msg("%s: the worker holds %lld bytes of buffers: it kept no spare output block", backend_of(state),
                 (long long)held);

    pb_result f = run_one(p, "proc.big_then_fail", 0);
    assert_int_equal(f.status, PB_STATUS_TASK_ERROR);
    assert_non_null(f.message);
    assert_true(f.len == 0);
    pb_result_clear(&f);
    pb_result again = run_one(p, "proc.big_out", (int64_t)mib);
    assert_pattern(&again, mib, 8);
    pb_result_clear(&again);
    pb_result shaped = run_one(p, "proc.big_reshape", 0);
    assert_pattern(&shaped, 300u * 1024u - 5, 0);
    pb_result_clear(&shaped);
    size_t huge = 2 * (size_t)PB_PROC_BUFFER_KEEP;
    pb_result h = run_one(p, "proc.big_out", (int64_t)huge);
    assert_pattern(&h, huge, 8);
    pb_result_clear(&h);
    pb_result w = run_one(p, "proc.worker_buffers", 0);
    int64_t worker_bytes = result_int(&w);
    pb_result_clear(&w);
    if (worker_bytes < 0 || worker_bytes > 2 * (int64_t)PB_PROC_BUFFER_KEEP)
        fail_msg("the worker holds %lld bytes of buffers after a %zu-byte output", (long long)worker_bytes, huge);
    pb_pool_destroy(p);
}

/* The parent decodes large results into blocks that cleared results gave back (task.c's kept blocks:
 * warm pages instead of ~1.5 ms of first touches a MiB). The mechanism: a cleared result's block comes
 * back, said to be warm, for the next output of about its size (not for one over twice as small); a fork
 * child does not inherit a kept block but does a handed-out one. Then through a pool: a second map's outputs land in the first map's blocks, and a result's block stays an
 * ordinary malloc block that free() takes. */
static void test_parent_reuses_result_blocks(void **state) {
    int warm = -1;
    unsigned char *b = pb__output_block(700001, &warm);
    assert_non_null(b);
    memset(b, 1, 700001);
    pb_result r = {.status = PB_STATUS_OK, .len = 700001, .heap = b};
    pb_result_clear(&r);
    unsigned char *small = pb__output_block(340000, &warm); /* the kept one is over twice its size */
    assert_true(small != b);
    assert_int_equal(warm, 0);
    free(small);
    unsigned char *again = pb__output_block(690000, &warm);
    assert_true(again == b);
    assert_int_equal(warm, 1);
    free(again);

    /* While kept, a block is not inherited by fork() (no copy-on-write for the parent to pay when it
     * writes the next result into it after forking workers); once handed out it is inherited again. */
    unsigned char *kept = pb__output_block(700001, &warm);
    unsigned char *live = pb__output_block(700001, &warm);
    memset(kept, 2, 700001);
    memset(live, 3, 700001);
    pb_result k = {.status = PB_STATUS_OK, .len = 700001, .heap = kept};
    pb_result_clear(&k);
    pid_t child = fork();
    if (child == 0) {
        unsigned char vec[1];
        void *kept_page = (void *)(((uintptr_t)kept + 8192) & ~(uintptr_t)4095);
        int kept_mapped = mincore(kept_page, 4096, vec) == 0;
        if (!pb__output_blocks_unforked()) kept_mapped = 0; /* under valgrind the advice is not given */
        _exit(kept_mapped ? 1 : live[0] == 3 && live[700000] == 3 ? 0 : 2);
    }
    int st = 0;
    assert_int_equal(waitpid(child, &st, 0), child);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("in a forked child %s", WIFEXITED(st) && WEXITSTATUS(st) == 1 ? "a kept block is mapped"
                                                                                 : "a result's block is not readable");
    free(live);
    unsigned char *back = pb__output_block(700001, &warm);
    assert_true(back == kept && warm == 1);
    assert_true(back[0] == 2 && back[700000] == 2); /* the parent's pages were untouched */
    free(back);

    pb_pool *p = pool_n(state, 2);
    enum { N = 3 };
    int64_t sizes[N] = {100003, 100003, 100003};
    pb_item items[N];
    for (int i = 0; i < N; i++) items[i] = (pb_item){&sizes[i], sizeof sizes[i]};
    pb_result first[N], second[N];
    assert_int_equal(pb_map(p, "proc.big_out", items, N, 1, first), 0);
    void *blocks[N];
    for (int i = 0; i < N; i++) {
        assert_pattern(&first[i], 100003, 8);
        blocks[i] = first[i].heap;
    }
    pb_results_clear(first, N);
    assert_int_equal(pb_map(p, "proc.big_out", items, N, 1, second), 0);
    for (int i = 0; i < N; i++) {
        assert_pattern(&second[i], 100003, 8);
        int found = 0;
        for (int j = 0; j < N; j++) found |= second[i].heap == blocks[j];
        if (!found) fail_msg("result %d of the second map is in a new block, not one the first map gave back", i);
    }
    free(second[0].heap); /* an ordinary malloc block */
    second[0].heap = NULL;
    second[0].len = 0;
    pb_results_clear(second, N);
    pb_pool_destroy(p);
}

/* A pool the crash-loop breaker stopped completes new work as BROKEN without any worker claiming it:
 * that finished future cannot be cancelled either. */
/* A submit right after a worker died writes its request (fast path, from this thread) into a pipe whose
 * worker is gone, before the I/O thread has seen the death: that must never raise SIGPIPE here (default
 * disposition: it would kill this process), and the item still ends, run by the replacement or failed
 * as worker-died. The race is retried; any round that raised SIGPIPE ends the test run. */
static void test_submit_to_dead_worker_no_sigpipe(void **state) {
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGPIPE, &dfl, &old);
    pb_pool *p = pool_n(state, 1);
    int ok = 0, died = 0;
    for (int round = 0; round < 40; round++) {
        pb_result r = run_one(p, "proc.pid", 0);
        int64_t pid = result_int(&r);
        pb_result_clear(&r);
        assert_true(pid > 1);
        assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
        pb_result after = run_one(p, "proc.pid", 0);
        if (after.status == PB_STATUS_OK) {
            assert_true(result_int(&after) != pid);
            ok++;
        } else {
            assert_int_equal(after.status, PB_STATUS_WORKER_DIED);
            died++;
        }
        pb_result_clear(&after);
    }
    print_message("      40 rounds: %d answered by the replacement, %d failed as worker-died\n", ok, died);
    pb_pool_destroy(p);
    sigaction(SIGPIPE, &old, NULL);
}

static void test_cancel_broken_future(void **state) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 1;
    o.crashloop_deaths = 1;
    o.crashloop_window = 600;
    pb_pool *p = pool_with(state, &o);
    for (int i = 0; i < 2; i++) {
        pb_result r = run_one(p, "proc.always_crash", 0);
        pb_result_clear(&r);
    }
    int64_t x = 2;
    pb_future *f;
    assert_int_equal(pb_submit(p, "proc.square", &x, sizeof x, &f), 0);
    assert_int_equal(pb_future_wait(f, 60), 0);
    assert_int_equal(pb_future_result(f)->status, PB_STATUS_BROKEN);
    assert_int_equal(pb_future_cancel(f), PB_EINVAL);
    assert_int_equal(pb_future_result(f)->status, PB_STATUS_BROKEN);
    pb_future_release(f);
    pb_pool_destroy(p);
}

/* spawn only: a worker program that cannot run is a clear error naming it, never a hang. */
static void expect_spawn_failure(void **state, const char *program, const char *needle) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    o.worker_program = program;
    pb_pool *p = NULL;
    int rc = pb_pool_create(&p, "spawn", &o);
    assert_int_equal(rc, PB_ESPAWN);
    assert_null(p);
    const char *msg = pb_last_error();
    if (!strstr(msg, needle)) fail_msg("error '%s' does not name '%s'", msg, needle);
}

static void test_spawn_missing_program(void **state) {
    expect_spawn_failure(state, "/nonexistent/poolbench-worker", "/nonexistent/poolbench-worker");
    /* valgrind runs posix_spawn's exec in its own way: the failure still names the path, but arrives as the
     * child's exit status rather than posix_spawn's ENOENT */
    if (!running_under_valgrind()) assert_non_null(strstr(pb_last_error(), "No such file"));
}

static void test_spawn_not_executable(void **state) {
    char path[] = "/tmp/poolbench-noexec-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    chmod(path, 0644);
    expect_spawn_failure(state, path, path);
    unlink(path);
}

static void test_spawn_not_a_worker(void **state) {
    /* /bin/true runs and exits without a word of the protocol. */
    expect_spawn_failure(state, "/bin/true", "/bin/true");
}

static void test_spawn_env_override(void **state) {
    /* $POOLBENCH_WORKER_PROGRAM is used when the option is unset. */
    setenv("POOLBENCH_WORKER_PROGRAM", "/nonexistent/from-env", 1);
    pb_pool *p = NULL;
    int rc = pb_pool_create(&p, "spawn", NULL);
    unsetenv("POOLBENCH_WORKER_PROGRAM");
    assert_int_equal(rc, PB_ESPAWN);
    assert_non_null(strstr(pb_last_error(), "/nonexistent/from-env"));
}

int main(void) {
    int failed = 0;
    /* $POOLBENCH_TEST_FILTER: run only the tests whose name matches this cmocka pattern ("test_*wait*") */
    if (getenv("POOLBENCH_TEST_FILTER")) cmocka_set_test_filter(getenv("POOLBENCH_TEST_FILTER"));
    /* The forkserver backend's helper, forked first as its users are told to (poolbench.h): its workers
     * then inherit this early state, not what earlier tests left in this thread (tests/test_forkserver.c
     * covers the helper a pool starts itself). */
    if (pb_forkserver_start() != 0) fprintf(stderr, "pb_forkserver_start: %s\n", pb_last_error());
    /* One pool up and down first, so that helper threads a runtime starts on its first fork (TSan's)
     * exist before the first test takes its baseline. */
    pb_pool *warm = NULL;
    if (pb_pool_create(&warm, "fork", NULL) == 0) pb_pool_destroy(warm);
    for (size_t b = 0; b < pb_backend_count(); b++) {
        const char *name = pb_backend_name_at(b);
        if (!(pb_backend_caps(name) & PB_CAP_CRASH_ISOLATION)) continue;
        void *st = (void *)name;
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_prestate_setup_teardown(test_segfault, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_abort, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_exit3, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_timeout, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_garbage_frame, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_one_percent_crash, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_recycle_by_count, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_recycle_by_rss, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_initializer, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_initializer_failure_fails_create, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_crashloop_breaker, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_terminate_kills_running, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_worker_hygiene, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_join_reaps, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_start_policy, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_map_starts_workers_together, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_other_children_untouched, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_workers_die_with_parent, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_recycle_every_task_not_a_death, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_death_noticed_despite_forked_child, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_death_noticed_despite_raw_forked_child, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_crash_with_sigchld_ignored, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_buffers_shrink_after_huge_payload, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_cancel_broken_future, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_submit_to_dead_worker_no_sigpipe, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_worker_reuses_output_block, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_parent_reuses_result_blocks, tu_leak_setup, tu_leak_teardown, st),
        };
        char group[64];
        snprintf(group, sizeof group, "process/%s", name);
        printf("=== %s ===\n", group);
        fflush(stdout);
        failed += _cmocka_run_group_tests(group, tests, sizeof tests / sizeof tests[0], NULL, NULL);
    }
    const struct CMUnitTest spawn_tests[] = {
        cmocka_unit_test_setup_teardown(test_spawn_missing_program, tu_leak_setup, tu_leak_teardown),
        cmocka_unit_test_setup_teardown(test_spawn_not_executable, tu_leak_setup, tu_leak_teardown),
        cmocka_unit_test_setup_teardown(test_spawn_not_a_worker, tu_leak_setup, tu_leak_teardown),
        cmocka_unit_test_setup_teardown(test_spawn_env_override, tu_leak_setup, tu_leak_teardown),
    };
    if (pb_backend_caps("spawn") >= 0) {
        printf("=== process/spawn-program ===\n");
        fflush(stdout);
        failed += _cmocka_run_group_tests("process/spawn-program", spawn_tests,
                                          sizeof spawn_tests / sizeof spawn_tests[0], NULL, NULL);
    }
    return failed ? 1 : 0;
}
