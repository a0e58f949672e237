/*
 * test_chaos.c - the process backends (fork, spawn, forkserver) under abuse from outside the pool:
 *  (a) a helper thread SIGKILLs random workers every few ms during a 10,000-item map: the map returns,
 *      every item is ok with the right answer or worker-died (signal 9), and the workers were respawned;
 *  (b) the program that owns the pool is SIGKILLed mid-map: every worker is gone within 1 s
 *      (PR_SET_PDEATHSIG plus EOF on the request pipe);
 *  (c) tasks that flood stdout and stderr (10 MB each per item) do not deadlock the pool, whether the
 *      output goes to a pipe someone drains slowly (every byte arrives), to /dev/null, to a pipe whose
 *      reader is gone (the worker dies of SIGPIPE, as any program would: the item fails as worker-died,
 *      the pool goes on) or to a pipe nobody reads (the item blocks, so only task_timeout saves it: the
 *      item times out, the pool goes on).
 * 1,000 create/destroy cycles per backend are in test_conformance.c; SIGKILL during a store write is in
 * test_cli.c. Every test checks through /proc that no child, zombie, thread or fd is left over.
 *
 * Tests assert behaviour, never speed. The one timing promise is (b)'s 1 s, measured from the moment the
 * killed parent has been reaped, which on a loaded machine still leaves a wide margin (the kernel kills
 * the workers as the parent's threads exit). Kill counts and latencies are printed for docs/testing.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "poolbench.h"
#include "testutil.h"

/* ---- tasks ---- */

static int64_t in_int(const void *in, size_t len) {
    int64_t x = 0;
    if (len == sizeof x) memcpy(&x, in, sizeof x);
    return x;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Squares after 100 us, so that 10,000 items last long enough to be shot at. */
static int t_slow_square(const void *in, size_t len, pb_output *out) {
    int64_t x = in_int(in, len);
    sleep_us(100);
    x *= x;
    return pb_output_set(out, &x, sizeof x);
}
PB_TASK_DEFINE("chaos.slow_square", t_slow_square)

static int t_sleep_ms(const void *in, size_t len, pb_output *out) {
    sleep_us(in_int(in, len) * 1000);
    return pb_output_set(out, "z", 1);
}
PB_TASK_DEFINE("chaos.sleep_ms", t_sleep_ms)

/* Writes `input` bytes to stdout through stdio and as many to stderr with write(2), like a chatty task. */
static int t_flood(const void *in, size_t len, pb_output *out) {
    int64_t n = in_int(in, len);
    static char buf[64 * 1024];
    memset(buf, 'x', sizeof buf);
    for (int64_t done = 0; done < n;) {
        size_t k = (size_t)(n - done < (int64_t)sizeof buf ? n - done : (int64_t)sizeof buf);
        if (fwrite(buf, 1, k, stdout) != k) return pb_output_error(out, "stdout: %s", strerror(errno));
        done += (int64_t)k;
    }
    if (fflush(stdout) != 0) return pb_output_error(out, "stdout: %s", strerror(errno));
    for (int64_t done = 0; done < n;) {
        size_t k = (size_t)(n - done < (int64_t)sizeof buf ? n - done : (int64_t)sizeof buf);
        ssize_t w = write(2, buf, k);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return pb_output_error(out, "stderr: %s", strerror(errno));
        done += w;
    }
    return pb_output_set(out, &n, sizeof n);
}
PB_TASK_DEFINE("chaos.flood", t_flood)

/* ---- helpers ---- */

static const char *backend_of(void **state) { return (const char *)*state; }

/* Nothing may outlive a test: no child (running or zombie), no thread, no fd (tu_leak_teardown). */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pb_pool *pool_n(void **state, int workers, double timeout) {
    pb_options o;
    pb_options_init(&o);
    o.workers = workers;
    o.task_timeout = timeout;
    pb_pool *p = NULL;
    int rc = pb_pool_create(&p, backend_of(state), &o);
    if (rc < 0) fail_msg("pb_pool_create(%s): %s: %s", backend_of(state), pb_strerror(rc), pb_last_error());
    return p;
}

/* The killer thread below scans /proc while the pool's I/O thread forks workers, so these two helpers
 * never touch the allocator or stdio (open/getdents64/read into stack buffers): a fork child inherits
 * the allocator's locks in whatever state the other threads hold them, and GCC 12's ASan allocator,
 * unlike glibc's malloc, does not take its locks around fork(). opendir()'s 32 KiB buffer being refilled
 * at the moment of a fork left a worker blocked for ever in its first large malloc (seen under ASan:
 * the worker never answered, so the killer, which only shoots workers that have answered, never freed
 * it, and the map waited for ever). */

/* Reads up to len - 1 bytes of path into buf, NUL-terminated; the length, or -1. */
static ssize_t read_small_file(const char *path, char *buf, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = 0;
    return n;
}

/* Calls fn(id, ud) for every numeric entry of dirpath (/proc, /proc/self/task) until fn returns 0. */
static void each_numeric_entry(const char *dirpath, int (*fn)(pid_t id, void *ud), void *ud) {
    int dir = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    char ents[8192] __attribute__((aligned(8)));
    long got;
    int more = 1;
    while (more && (got = syscall(SYS_getdents64, dir, ents, sizeof ents)) > 0) {
        for (long off = 0; off < got && more;) {
            /* struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name */
            unsigned short reclen;
            memcpy(&reclen, ents + off + 16, sizeof reclen);
            const char *name = ents + off + 19;
            off += reclen;
            if (name[0] >= '0' && name[0] <= '9') more = fn((pid_t)atoi(name), ud);
        }
    }
    close(dir);
}

typedef struct child_list {
    pid_t parent, *out;
    int n, max;
} child_list;

static int add_if_child(pid_t pid, void *ud) {
    child_list *cl = ud;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_small_file(path, buf, sizeof buf) < 0) return 1;
    const char *rp = strrchr(buf, ')');
    char state;
    int ppid;
    if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == cl->parent && state != 'Z')
        cl->out[cl->n++] = pid;
    return cl->n < cl->max;
}

/* Children of `parent` right now (by /proc/<pid>/stat), at most max; returns how many. */
static int children_of(pid_t parent, pid_t *out, int max) {
    child_list cl = {parent, out, 0, max};
    if (max > 0) each_numeric_entry("/proc", add_if_child, &cl);
    return cl.n;
}

/* Write system calls the process has made (/proc/<pid>/io), or -1. */
static long write_calls(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
    if (read_small_file(path, buf, sizeof buf) < 0) return -1;
    const char *p = strstr(buf, "syscw:");
    return p ? atol(p + 6) : -1;
}

/* ---- (a) random SIGKILL of workers during a map ---- */

typedef struct killer {
    pthread_t thread;
    pb_pool *pool;
    atomic_int stop;
    atomic_int kills; /* read by the watchdog while the killer counts */
    unsigned seed;
} killer;

/* Every 1-5 ms, SIGKILLs a random worker among those that have answered the handshake and sent at least
 * one result (two write calls: READY, RESULT), and never more than KILLS_WITHOUT_PROGRESS times before
 * some task has finished OK (the pool's counters). Without those rules a respawned worker could be shot before it does anything,
 * forever, on a slow machine: with it, every kill is preceded by progress, so the map always ends, and
 * the crash-loop breaker (which wants a run of deaths with no task succeeding) never trips, so what is
 * tested is survival, not the breaker. (The write count alone was not enough: under TSan in CI a spawn
 * pool's breaker tripped after 21 kills with no task finished.) */
enum { KILLS_WITHOUT_PROGRESS = 8 }; /* well under the breaker's default run of deaths */
static void *killer_main(void *arg) {
    killer *k = arg;
    pid_t me = getpid();
    uint64_t ok_seen = 0;
    int kills_since_progress = 0;
    while (!atomic_load(&k->stop)) {
        sleep_us(1000 + (long)(rand_r(&k->seed) % 4000));
        pb_counters c;
        pb_pool_counters(k->pool, &c);
        if (c.by_status[PB_STATUS_OK] > ok_seen) {
            ok_seen = c.by_status[PB_STATUS_OK];
            kills_since_progress = 0;
        }
        if (kills_since_progress >= KILLS_WITHOUT_PROGRESS) continue; /* let a task finish first */
        pid_t kids[64], ready[64];
        int n = children_of(me, kids, 64), m = 0;
        for (int i = 0; i < n; i++)
            if (write_calls(kids[i]) >= 2) ready[m++] = kids[i];
        if (m == 0) continue;
        if (kill(ready[rand_r(&k->seed) % (unsigned)m], SIGKILL) == 0) {
            atomic_fetch_add(&k->kills, 1);
            kills_since_progress++;
        }
    }
    return NULL;
}

/* A map that has not returned after WATCH_FIRST_S prints what every process of the pool is doing (and
 * again every WATCH_AGAIN_S): a hang in CI then leaves evidence in the log instead of only ctest's
 * timeout. It only prints; the test never fails on time. Like the killer, it keeps off the allocator. */
enum { WATCH_FIRST_S = 120, WATCH_AGAIN_S = 300 };

typedef struct watchdog {
    pthread_t thread;
    atomic_int stop;
    pb_pool *pool;
    const killer *k;
} watchdog;

static void print_proc_line(const char *who, pid_t pid) {
    char path[64], stat[512], wchan[64] = "?";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_small_file(path, stat, sizeof stat) < 0) return;
    snprintf(path, sizeof path, "/proc/%d/wchan", (int)pid);
    if (read_small_file(path, wchan, sizeof wchan) < 0) wchan[0] = 0;
    const char *rp = strrchr(stat, ')');
    char state = rp && rp[1] == ' ' ? rp[2] : '?';
    fprintf(stderr, "  watchdog: %s %d state %c wchan %s writes %ld\n", who, (int)pid, state, wchan,
            write_calls(pid));
}

static int print_host_thread(pid_t tid, void *ud) {
    (void)ud;
    print_proc_line("host thread", tid);
    return 1;
}

static void *watchdog_main(void *arg) {
    watchdog *wd = arg;
    double start = now_s(), next = start + WATCH_FIRST_S;
    while (!atomic_load(&wd->stop)) {
        sleep_us(100000);
        if (now_s() < next) continue;
        next = now_s() + WATCH_AGAIN_S;
        pb_counters c;
        pb_pool_counters(wd->pool, &c);
        fprintf(stderr,
                "  watchdog: the map has run %.0f s: %llu of %llu items done, %llu deaths, %llu respawns, "
                "%d kills\n",
                now_s() - start, (unsigned long long)c.tasks_done, (unsigned long long)c.tasks_submitted,
                (unsigned long long)c.worker_deaths, (unsigned long long)c.workers_respawned, atomic_load(&wd->k->kills));
        pid_t kids[64];
        int n = children_of(getpid(), kids, 64);
        for (int i = 0; i < n; i++) print_proc_line("worker", kids[i]);
        each_numeric_entry("/proc/self/task", print_host_thread, NULL);
    }
    return NULL;
}

static int kills_per_backend[3];

static void test_random_kills(void **state) {
    enum { N = 10000 };
    pb_pool *p = pool_n(state, 2, 0);
    int64_t *v = calloc(N, sizeof *v);
    pb_item *items = calloc(N, sizeof *items);
    pb_result *res = calloc(N, sizeof *res);
    assert_true(v && items && res);
    for (int i = 0; i < N; i++) {
        v[i] = i;
        items[i] = (pb_item){&v[i], sizeof v[i]};
    }
    killer k = {.pool = p, .seed = (unsigned)time(NULL) ^ (unsigned)getpid()};
    assert_int_equal(pthread_create(&k.thread, NULL, killer_main, &k), 0);
    watchdog wd = {.pool = p, .k = &k};
    assert_int_equal(pthread_create(&wd.thread, NULL, watchdog_main, &wd), 0);
    int rc = pb_map(p, "chaos.slow_square", items, N, 0, res);
    atomic_store(&k.stop, 1);
    atomic_store(&wd.stop, 1);
    pthread_join(k.thread, NULL);
    pthread_join(wd.thread, NULL);
    if (rc < 0) fail_msg("pb_map: %s: %s", pb_strerror(rc), pb_last_error());

    int died = 0;
    for (int i = 0; i < N; i++) {
        if (res[i].status == PB_STATUS_OK) {
            int64_t x;
            assert_int_equal(res[i].len, sizeof x);
            memcpy(&x, pb_result_data(&res[i]), sizeof x);
            if (x != (int64_t)i * i) fail_msg("item %d: wrong answer %lld", i, (long long)x);
        } else if (res[i].status == PB_STATUS_WORKER_DIED) {
            assert_non_null(res[i].message);
            assert_int_equal(res[i].signal, SIGKILL);
            died++;
        } else {
            fail_msg("item %d: status %s (%s)", i, pb_status_name(res[i].status), res[i].message);
        }
    }
    assert_int_equal(rc, died);
    pb_counters c;
    pb_pool_counters(p, &c);
    printf("  %s: %d kills during the map; %d items worker-died, %d ok; worker_deaths %llu, "
           "workers_respawned %llu\n",
           backend_of(state), k.kills, died, N - died, (unsigned long long)c.worker_deaths,
           (unsigned long long)c.workers_respawned);
    fflush(stdout); /* ctest reads a pipe: without this, a hang further on would hide that the map ended */
    assert_true(k.kills > 0);                /* or the test tested nothing */
    assert_true(died <= k.kills);            /* only a killed worker's item may fail */
    assert_true(c.worker_deaths >= 1);
    assert_true(c.workers_respawned >= 1);
    assert_true(c.worker_deaths <= (uint64_t)k.kills);
    const char *b = backend_of(state);
    kills_per_backend[strcmp(b, "fork") == 0 ? 0 : strcmp(b, "spawn") == 0 ? 1 : 2] = k.kills;

    /* The pool is whole afterwards. */
    pb_results_clear(res, N);
    assert_int_equal(pb_map(p, "chaos.slow_square", items, 100, 0, res), 0);
    pb_results_clear(res, 100);
    assert_int_equal(pb_pool_join(p), 0);
    pb_pool_destroy(p);
    free(v);
    free(items);
    free(res);
}

/* ---- (b) the owner of the pool SIGKILLed mid-map ---- */

static double worst_orphan_s;

static void test_parent_killed(void **state) {
    enum { W = 3 };
    /* Become a subreaper so that the orphaned workers are re-parented to us: then waitpid() says exactly
     * when each has died, whatever pid 1 does with orphans. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t host = fork();
    assert_true(host >= 0);
    if (host == 0) { /* the doomed host: a pool, its workers' pids to the test, then a long map */
        close(fds[0]);
        pb_options o;
        pb_options_init(&o);
        o.workers = W;
        o.start = PB_START_EAGER; /* all W workers up before we count them */
        pb_pool *p = NULL;
        if (pb_pool_create(&p, backend_of(state), &o) != 0) _exit(1);
        /* The workers, then the forkserver's helper (0 on other backends): it must die with us too. */
        pid_t all[W + 1], kids[W + 1];
        int n = children_of(getpid(), all, W + 1), k = 0;
        pid_t helper = pb_forkserver_pid();
        for (int i = 0; i < n; i++)
            if (all[i] != helper && k < W) kids[k++] = all[i];
        if (k != W || n != W + (helper > 0)) _exit(2);
        kids[W] = helper;
        if (write(fds[1], kids, sizeof kids) != (ssize_t)sizeof kids) _exit(3);
        close(fds[1]);
        enum { N = 10000 };
        static int64_t ms[N];
        static pb_item items[N];
        static pb_result res[N];
        for (int i = 0; i < N; i++) {
            ms[i] = 10;
            items[i] = (pb_item){&ms[i], sizeof ms[i]};
        }
        pb_map(p, "chaos.sleep_ms", items, N, 1, res); /* 30 s or more: it is killed long before */
        _exit(4);
    }
    close(fds[1]);
    pid_t kids[W + 1];
    size_t got = 0;
    while (got < sizeof kids) {
        ssize_t n = read(fds[0], (char *)kids + got, sizeof kids - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fds[0]);
    if (got != sizeof kids) {
        kill(host, SIGKILL);
        waitpid(host, NULL, 0);
        prctl(PR_SET_CHILD_SUBREAPER, 0);
        fail_msg("the host did not report its %d workers", W);
    }
    sleep_us(200 * 1000); /* mid-map: every worker is running a task */
    assert_int_equal(kill(host, SIGKILL), 0);
    int st;
    assert_int_equal(waitpid(host, &st, 0), host);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    double t0 = now_s(), worst = 0;
    int n = kids[W] > 0 ? W + 1 : W; /* the workers and the forkserver's helper */
    int reaped[W + 1] = {0}, left = n;
    while (left > 0 && now_s() - t0 < 1.0) {
        for (int i = 0; i < n; i++) {
            if (reaped[i]) continue;
            /* ECHILD until the orphan has been re-parented to us */
            if (waitpid(kids[i], &st, WNOHANG) == kids[i]) {
                reaped[i] = 1;
                left--;
                if (now_s() - t0 > worst) worst = now_s() - t0;
            }
        }
        if (left) sleep_us(1000);
    }
    if (left) { /* clean up what outlived its parent (our descendants), then fail */
        for (int i = 0; i < n; i++)
            if (!reaped[i]) kill(kids[i], SIGKILL);
        for (int i = 0; i < n; i++)
            if (!reaped[i]) waitpid(kids[i], NULL, 0);
    }
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    if (left) fail_msg("%d of %d workers (and helper) outlived their parent by more than 1 s", left, n);
    if (worst > worst_orphan_s) worst_orphan_s = worst;
    printf("  %s: all %d workers%s gone %.1f ms after their parent was reaped\n", backend_of(state), W,
           n > W ? " and the forkserver helper" : "", worst * 1e3);
}

/* ---- (c) floods on stdout and stderr ---- */

typedef struct drain {
    pthread_t thread;
    int fd;
    long long bytes;
} drain;

/* Reads until EOF, pausing a little per read like a slow terminal, counting bytes. */
static void *drain_main(void *arg) {
    drain *d = arg;
    char buf[16384];
    for (;;) {
        ssize_t n = read(d->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        d->bytes += n;
        sleep_us(20);
    }
    return NULL;
}

typedef struct redirect {
    int saved_out, saved_err;
} redirect;

/* Points fds 1 and 2 at out_fd and err_fd (the pool's workers inherit them). */
static redirect redirect_std(int out_fd, int err_fd) {
    fflush(stdout);
    fflush(stderr);
    redirect r = {fcntl(1, F_DUPFD_CLOEXEC, 3), fcntl(2, F_DUPFD_CLOEXEC, 3)};
    assert_true(r.saved_out >= 0 && r.saved_err >= 0);
    assert_true(dup2(out_fd, 1) == 1 && dup2(err_fd, 2) == 2);
    return r;
}

static void restore_std(redirect r) {
    fflush(stdout);
    dup2(r.saved_out, 1);
    dup2(r.saved_err, 2);
    close(r.saved_out);
    close(r.saved_err);
}

#define FLOOD_BYTES (10LL * 1000 * 1000)
#define FLOOD_ITEMS 4

static pb_item flood_items[FLOOD_ITEMS];
static int64_t flood_sizes[FLOOD_ITEMS];

static void init_flood(void) {
    for (int i = 0; i < FLOOD_ITEMS; i++) {
        flood_sizes[i] = FLOOD_BYTES;
        flood_items[i] = (pb_item){&flood_sizes[i], sizeof flood_sizes[i]};
    }
}

static void assert_pool_answers(pb_pool *p) {
    int64_t x = 12;
    pb_result r[1];
    pb_item it = {&x, sizeof x};
    assert_int_equal(pb_map(p, "chaos.slow_square", &it, 1, 1, r), 0);
    pb_results_clear(r, 1);
}

/* Output drained by a slow reader: every item completes and every byte arrives. */
static void test_flood_drained(void **state) {
    int po[2], pe[2];
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
    drain dout = {.fd = po[0]}, derr = {.fd = pe[0]};
    assert_int_equal(pthread_create(&dout.thread, NULL, drain_main, &dout), 0);
    assert_int_equal(pthread_create(&derr.thread, NULL, drain_main, &derr), 0);
    redirect r = redirect_std(po[1], pe[1]);
    close(po[1]);
    close(pe[1]);
    pb_pool *p = pool_n(state, 2, 0);
    pb_result res[FLOOD_ITEMS];
    int rc = pb_map(p, "chaos.flood", flood_items, FLOOD_ITEMS, 1, res);
    int join = pb_pool_join(p);
    pb_pool_destroy(p);
    restore_std(r); /* our last copies of the write ends: the drains see EOF */
    pthread_join(dout.thread, NULL);
    pthread_join(derr.thread, NULL);
    close(po[0]);
    close(pe[0]);
    assert_int_equal(rc, 0);
    assert_int_equal(join, 0);
    pb_results_clear(res, FLOOD_ITEMS);
    assert_int_equal(dout.bytes, FLOOD_ITEMS * FLOOD_BYTES);
    assert_int_equal(derr.bytes, FLOOD_ITEMS * FLOOD_BYTES);
}

static void test_flood_devnull(void **state) {
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(null >= 0);
    redirect r = redirect_std(null, null);
    close(null);
    pb_pool *p = pool_n(state, 2, 0);
    pb_result res[FLOOD_ITEMS];
    int rc = pb_map(p, "chaos.flood", flood_items, FLOOD_ITEMS, 1, res);
    assert_pool_answers(p);
    pb_pool_destroy(p);
    restore_std(r);
    assert_int_equal(rc, 0);
    pb_results_clear(res, FLOOD_ITEMS);
}

/* `program | head`: the reader is gone. The worker dies of SIGPIPE like any program whose output is cut
 * (dispositions are reset in workers); the item says so and the pool goes on. */
static void test_flood_reader_gone(void **state) {
    int po[2];
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    close(po[0]);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old); /* for this test process, which shares the dead pipe meanwhile */
    redirect r = redirect_std(po[1], po[1]);
    close(po[1]);
    pb_pool *p = pool_n(state, 2, 0);
    pb_result res[FLOOD_ITEMS];
    int rc = pb_map(p, "chaos.flood", flood_items, FLOOD_ITEMS, 1, res);
    int64_t x = 7;
    pb_item it = {&x, sizeof x};
    pb_result after[1];
    int rc2 = pb_map(p, "chaos.slow_square", &it, 1, 1, after);
    pb_pool_destroy(p);
    restore_std(r);
    sigaction(SIGPIPE, &old, NULL);
    assert_int_equal(rc, FLOOD_ITEMS);
    for (int i = 0; i < FLOOD_ITEMS; i++) {
        assert_int_equal(res[i].status, PB_STATUS_WORKER_DIED);
        assert_int_equal(res[i].signal, SIGPIPE);
    }
    assert_int_equal(rc2, 0);
    pb_results_clear(res, FLOOD_ITEMS);
    pb_results_clear(after, 1);
}

/* Output to a pipe that nobody reads: the task blocks once the pipe is full, as it would outside a pool.
 * The pool itself is not stuck (its pipes are its own); task_timeout frees the worker. */
static void test_flood_nobody_reads(void **state) {
    int po[2];
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    redirect r = redirect_std(po[1], po[1]);
    pb_pool *p = pool_n(state, 2, 2.0);
    pb_result res[1];
    int rc = pb_map(p, "chaos.flood", flood_items, 1, 1, res);
    int64_t x = 7;
    pb_item it = {&x, sizeof x};
    pb_result after[1];
    int rc2 = pb_map(p, "chaos.slow_square", &it, 1, 1, after);
    pb_pool_destroy(p);
    restore_std(r);
    close(po[0]);
    close(po[1]);
    assert_int_equal(rc, 1);
    assert_int_equal(res[0].status, PB_STATUS_TIMED_OUT);
    assert_int_equal(rc2, 0);
    pb_results_clear(res, 1);
    pb_results_clear(after, 1);
}

int main(void) {
    int failed = 0;
    init_flood();
    /* One pool up and down first, so that helper threads a runtime starts on its first fork exist before
     * the first baseline. */
    pb_pool *warm = NULL;
    if (pb_pool_create(&warm, "fork", NULL) == 0) pb_pool_destroy(warm);
    static const char *const backends[] = {"fork", "spawn", "forkserver"};
    for (int b = 0; b < 3; b++) {
        void *st = (void *)backends[b];
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_prestate_setup_teardown(test_random_kills, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_parent_killed, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_flood_drained, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_flood_devnull, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_flood_reader_gone, tu_leak_setup, tu_leak_teardown, st),
            cmocka_unit_test_prestate_setup_teardown(test_flood_nobody_reads, tu_leak_setup, tu_leak_teardown, st),
        };
        char group[64];
        snprintf(group, sizeof group, "chaos/%s", backends[b]);
        printf("=== %s ===\n", group);
        fflush(stdout);
        failed += _cmocka_run_group_tests(group, tests, sizeof tests / sizeof tests[0], NULL, NULL);
    }
    printf("chaos figures: kills during one 10,000-item map: fork %d, spawn %d, forkserver %d; slowest orphaned "
           "worker gone %.1f ms after its parent\n",
           kills_per_backend[0], kills_per_backend[1], kills_per_backend[2], worst_orphan_s * 1e3);
    return failed ? 1 : 0;
}
