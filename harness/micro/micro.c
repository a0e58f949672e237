/*
 * micro.c - poolbench-micro: the pool's per-operation costs and the operating system's floors beneath
 * them, measured side by side in one program with Google Benchmark (through the C shim, gbench_shim.h).
 *
 * For every registered backend (found through pb_backend_count / pb_backend_name_at, so a new backend
 * is measured the moment it is registered):
 *   submit_wait/<backend>                 submit + wait of an empty task, 2 workers: one round trip
 *   map_square/<backend>/chunksize:C      pb_map of 1,000,000 int64 squares, 2 workers, C = 0 (automatic),
 *                                         1000, 100000: items/s
 *   pool_create_destroy/<backend>/workers:8   pb_pool_create + pb_pool_destroy of an 8-worker pool, every
 *                                         worker started in create (PB_START_EAGER)
 * and the floors those are judged against (docs/micro.md gives the ratios the issues ask for):
 *   raw/condvar_pingpong                  two threads hand a token there and back under mutex + condvar
 *   raw/pipe_pingpong                     a forked child echoing 1 byte over two pipes
 *                                         (both on two CPUs, pinned; `one_cpu_us` the same on one: see
 *                                         placement.h)
 *   raw/fork_exit_wait/procs:8            8 x fork + _exit(0) + waitpid
 *   raw/posix_spawn_wait/procs:8          8 x posix_spawn of this binary in its do-nothing mode + waitpid
 *   wire/{request,result}_{encode,decode}/items:1000   the process backends' frame codec (wire.h)
 *
 * Every timing is wall-clock (UseRealTime): the work happens in other threads and processes, so the CPU
 * time of the benchmark thread would say nothing. Set-up (pool creation, inputs, child processes) runs
 * before the keep-running loop and tear-down after it, so neither is timed, except where it is the thing
 * measured. A backend that cannot create a pool (not implemented yet, or broken) is reported with
 * SkipWithError and its message; the other benchmarks still run.
 *
 * Counters beside the time: `sleeps` (voluntary context switches of this process per iteration: the
 * hand-offs a round trip really takes, steadier than time on a noisy machine), and on the pool benchmarks
 * a paired floor (`floor_us`, `vs_floor`): the matching raw floor run interleaved with the pool's own
 * iterations, timer paused, so the ratio compares the same stretch of time instead of two benchmarks a
 * minute apart (see PAIR_BLOCK).
 *
 * Tasks are registered with PB_TASK_DEFINE (a constructor): the spawn backend's workers are re-executions
 * of this very binary, and they find "micro.empty" and "micro.square" before main() runs. For the same
 * reason main() first checks for the do-nothing mode (NOOP_ARG), which the posix_spawn floor runs: the
 * floor then pays what a spawn worker pays to exist (exec, dynamic loading of libstdc++ and libbenchmark,
 * constructors) and nothing more.
 *
 * Hygiene: every child is reaped (waitpid retried on EINTR), every fd is CLOEXEC and closed, a forked
 * child only makes async-signal-safe calls and dies with its parent (PR_SET_PDEATHSIG).
 */
#include "common.h" /* pbs_now */
#include "placement.h"
#include "gbench_shim.h"
#include "poolbench.h"
#include "proc.h" /* PB_PROC_WORKER_ENV: see main() */
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <sys/mman.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define NOOP_ARG "--poolbench-micro-noop" /* argv[1] of the do-nothing mode */
#define MAP_ITEMS 1000000                 /* issue 2/3: map over 1,000,000 tiny items */
#define ROUNDTRIP_WORKERS 2               /* issue 2: submit+wait with 2 workers */
#define MAP_WORKERS 2                     /* one per core on the 2-core reference machine */
#define START_WORKERS 8                   /* issue 3/4: a pool of 8 workers */
#define WIRE_ITEMS 1000                   /* a chunk of 1,000 tiny items */
#define WIRE_TASK "micro.square"
#define MAX_PROCS 64                      /* the most children one raw start-up floor makes */
#define PAIR_BLOCK 32                     /* round trips of a paired floor per block (see bm_submit_wait) */

static char self_exe[PATH_MAX]; /* this binary, for the posix_spawn floor */

/* ---- tasks ---- */

/* Does nothing and returns no bytes: a round trip of it is pure dispatch cost. */
static int empty_task(const void *in, size_t len, pb_output *out) {
    (void)in;
    (void)len;
    (void)out;
    return 0;
}
PB_TASK_DEFINE("micro.empty", empty_task)

/* x -> x*x on an int64: the tiny task of the map benchmarks. */
static int square_task(const void *in, size_t len, pb_output *out) {
    if (len != sizeof(int64_t)) return pb_output_error(out, "micro.square: input of %zu bytes, expected 8", len);
    int64_t x;
    memcpy(&x, in, sizeof x);
    x *= x;
    return pb_output_set(out, &x, sizeof x);
}
PB_TASK_DEFINE("micro.square", square_task)

/* ---- helpers ---- */

/* Keeps the compiler from proving a result unused (Google Benchmark's DoNotOptimize, for C). */
static inline void escape(const void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

static pid_t wait_child(pid_t pid, int *status) {
    pid_t r;
    do r = waitpid(pid, status, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Voluntary context switches of this whole process (every thread) so far: a thread sleeps once per
 * wake-up it waits for, so per iteration this counts the hand-offs a round trip really takes. Children
 * (process workers, the echo child) are not included. */
static double process_vcsw(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_nvcsw : 0;
}

static pb_pool *make_pool(pbm_state *st, const char *backend, int workers) {
    pb_options o;
    pb_options_init(&o);
    o.workers = workers;
    pb_pool *pool = NULL;
    int rc = pb_pool_create(&pool, backend, &o);
    if (rc < 0) {
        pbm_skip_with_errorf(st, "%s: pool creation failed: %s: %s", backend, pb_strerror(rc), pb_last_error());
        return NULL;
    }
    return pool;
}

/* ---- where the floors run (placement.h: two CPUs, pinned; why in its header) ---- */

static pbs_cpu_pair floor_cpus;
static int partner_cpu(int near) { return pbs_partner_cpu(&floor_cpus, near); }
static int main_cpu(void) { return pbs_main_cpu(&floor_cpus); }

/* ---- the floors: probes shared by the raw/ benchmarks and the paired counters of the pool ones ---- */

/* Two threads hand a token back and forth: the least a thread pool's submit + wait can cost (one wake-up
 * each way). Each direction is its own slot (mutex, condvar, flag) and the condvar is signalled after the
 * unlock, so the woken thread never blocks again on a mutex its waker still holds. (A first version shared
 * one mutex between both directions and came out slower than the pool's own round trip on this VM, 18 us
 * against 12 us: a floor that flatters the pool is no floor.) */
typedef struct slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int full;
} slot;

typedef struct cv_probe {
    slot to_partner, to_main;
    int stop; /* written before the post that wakes the partner; the slot's mutex orders the two */
    pthread_t partner;
} cv_probe;

static void slot_init(slot *s) {
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->full = 0;
}

static void slot_destroy(slot *s) {
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

static void slot_post(slot *s) {
    pthread_mutex_lock(&s->mu);
    s->full = 1;
    pthread_mutex_unlock(&s->mu);
    pthread_cond_signal(&s->cv);
}

static void slot_take(slot *s) {
    pthread_mutex_lock(&s->mu);
    while (!s->full) pthread_cond_wait(&s->cv, &s->mu);
    s->full = 0;
    pthread_mutex_unlock(&s->mu);
}

static void *cv_partner(void *arg) {
    cv_probe *c = arg;
    for (;;) {
        slot_take(&c->to_partner);
        if (c->stop) break;
        slot_post(&c->to_main);
    }
    return NULL;
}

/* 0, or an errno with nothing left behind. The partner thread runs on cpu (-1: anywhere). */
static int cv_probe_start(cv_probe *c, int cpu) {
    c->stop = 0;
    slot_init(&c->to_partner);
    slot_init(&c->to_main);
    int e = pbs_thread_create_on(&c->partner, cpu, cv_partner, c);
    if (e) {
        slot_destroy(&c->to_main);
        slot_destroy(&c->to_partner);
    }
    return e;
}

static void cv_probe_trip(cv_probe *c) {
    slot_post(&c->to_partner);
    slot_take(&c->to_main);
}

static void cv_probe_stop(cv_probe *c) {
    c->stop = 1;
    slot_post(&c->to_partner);
    pthread_join(c->partner, NULL);
    slot_destroy(&c->to_main);
    slot_destroy(&c->to_partner);
}

static int write_full(int fd, const void *p, size_t n) {
    ssize_t w;
    do w = write(fd, p, n);
    while (w < 0 && errno == EINTR);
    return w == (ssize_t)n ? 0 : -1;
}

static int read_full(int fd, void *p, size_t n) {
    ssize_t r;
    do r = read(fd, p, n);
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)n ? 0 : -1;
}

/* A forked child echoes every byte from the parent back until EOF: a process pool's floor, since a fork
 * worker's round trip is at least one pipe write and one read each way. */
typedef struct pipe_probe {
    int down, up; /* the parent's ends: down writes to the child, up reads from it */
    pid_t pid;
} pipe_probe;

/* 0, or an errno with nothing left behind. The echo child runs on cpu (-1: anywhere). */
static int pipe_probe_start(pipe_probe *p, int cpu) {
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) < 0) return errno;
    if (pipe2(up, O_CLOEXEC) < 0) {
        int e = errno;
        close(down[0]);
        close(down[1]);
        return e;
    }
    cpu_set_t one;
    if (cpu >= 0) pbs_one_cpu_set(cpu, &one); /* prepared here: the child makes system calls only */
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: async-signal-safe calls only (the parent may have other threads). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        if (cpu >= 0 && sched_setaffinity(0, sizeof one, &one) != 0) _exit(1);
        close(down[1]);
        close(up[0]);
        char b;
        for (;;) {
            ssize_t r = read(down[0], &b, 1);
            if (r < 0 && errno == EINTR) continue;
            if (r != 1) break;
            if (write_full(up[1], &b, 1) < 0) break;
        }
        _exit(0);
    }
    int e = pid < 0 ? errno : 0;
    close(down[0]);
    close(up[1]);
    if (pid < 0) {
        close(down[1]);
        close(up[0]);
        return e;
    }
    p->down = down[1];
    p->up = up[0];
    p->pid = pid;
    return 0;
}

static int pipe_probe_trip(pipe_probe *p) {
    char b = 'x';
    return write_full(p->down, &b, 1) == 0 && read_full(p->up, &b, 1) == 0 ? 0 : -1;
}

static void pipe_probe_stop(pipe_probe *p) {
    close(p->down); /* EOF: the child leaves its loop and exits */
    close(p->up);
    int status;
    wait_child(p->pid, &status);
}

/* n children that exit at once, then n reaps: the floor of starting (and stopping) n fork workers.
 * 0 or an errno (every child started is reaped either way). */
static int fork_batch(int n) {
    pid_t pids[MAX_PROCS];
    int started = 0, err = 0;
    for (; started < n && started < MAX_PROCS; started++) {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid < 0) {
            err = errno;
            break;
        }
        pids[started] = pid;
    }
    for (int i = 0; i < started; i++) {
        int status;
        wait_child(pids[i], &status);
    }
    return err;
}

/* n posix_spawns of this binary in its do-nothing mode, then n reaps: the floor of starting n spawn
 * workers (re-executions of the running binary too). 0, an errno, or ECHILD when a child failed. */
static int spawn_batch(int n) {
    pid_t pids[MAX_PROCS];
    char *argv[] = {self_exe, (char *)NOOP_ARG, NULL};
    int started = 0, err = 0;
    for (; started < n && started < MAX_PROCS; started++) {
        pid_t pid;
        err = posix_spawn(&pid, self_exe, NULL, NULL, argv, environ);
        if (err) break;
        pids[started] = pid;
    }
    for (int i = 0; i < started; i++) {
        int status = 0;
        if ((wait_child(pids[i], &status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) && !err)
            err = ECHILD;
    }
    return err;
}

/* Which floor a backend's round trip is paired with: threads and the in-process reference backends
 * (glib, libuv, openmp) hand off between threads, whose cheapest form is a condvar; the process backends
 * hand off through pipes; serial has no hand-off at all. Unknown backends get no pairing. */
enum floor_kind { FLOOR_NONE, FLOOR_CONDVAR, FLOOR_PIPE };

static enum floor_kind roundtrip_floor(const char *backend) {
    if (strcmp(backend, "threads") == 0 || strcmp(backend, "glib") == 0 || strcmp(backend, "libuv") == 0 ||
        strcmp(backend, "openmp") == 0)
        return FLOOR_CONDVAR;
    /* the shm backends too: the raw pipe ping-pong is the floor their futex hand-off must beat */
    if (strcmp(backend, "fork") == 0 || strcmp(backend, "spawn") == 0 || strcmp(backend, "fork-shm") == 0 ||
        strcmp(backend, "spawn-shm") == 0 || strcmp(backend, "forkserver") == 0)
        return FLOOR_PIPE;
    return FLOOR_NONE;
}

/* A floor's probe, on a given CPU: the condvar partner thread or the pipe's echo child. */
typedef struct floor_probe {
    enum floor_kind kind;
    cv_probe cv;
    pipe_probe pipe;
} floor_probe;

/* 0, or an errno with nothing left behind; FLOOR_NONE starts nothing. */
static int floor_probe_start(floor_probe *f, enum floor_kind kind, int cpu) {
    f->kind = kind;
    return kind == FLOOR_CONDVAR ? cv_probe_start(&f->cv, cpu) : kind == FLOOR_PIPE ? pipe_probe_start(&f->pipe, cpu) : 0;
}

static void floor_probe_stop(floor_probe *f) {
    if (f->kind == FLOOR_CONDVAR) cv_probe_stop(&f->cv);
    else if (f->kind == FLOOR_PIPE) pipe_probe_stop(&f->pipe);
}

/* One round trip: 0 or an errno. */
static int floor_probe_trip(floor_probe *f) {
    if (f->kind == FLOOR_CONDVAR) cv_probe_trip(&f->cv);
    else if (f->kind == FLOOR_PIPE && pipe_probe_trip(&f->pipe) < 0) return errno ? errno : EIO;
    return 0;
}

/* The ratios the issues ask for compare two benchmarks that run a minute apart; on a busy machine the
 * load changes in between. So the pool benchmarks also run their floor themselves, interleaved with the
 * pool's own iterations in blocks of PAIR_BLOCK (timing paused, measured with the monotonic clock), and
 * report floor_us and vs_floor = pool / floor from the same stretch of time. */
/* The pair of probes behind those blocks: one across two CPUs (far) and one beside this thread (near),
 * see placement.h. */
typedef struct floor_pair {
    floor_probe far, near;
    double far_s, near_s, csw; /* the blocks' wall time, and this process's sleeps in them */
    long far_n, near_n;
} floor_pair;

static int floor_pair_start(floor_pair *fp, enum floor_kind kind) {
    memset(fp, 0, sizeof *fp);
    int e = floor_probe_start(&fp->far, kind, partner_cpu(0));
    if (!e && (e = floor_probe_start(&fp->near, floor_cpus.ok ? kind : FLOOR_NONE, partner_cpu(1))) != 0)
        floor_probe_stop(&fp->far);
    return e;
}

static void floor_pair_stop(floor_pair *fp) {
    floor_probe_stop(&fp->near);
    floor_probe_stop(&fp->far);
}

/* PAIR_BLOCK round trips on one probe, timed (the caller has pinned this thread: pbs_pin(main_cpu())).
 * 0 or an errno. */
static int floor_block(floor_pair *fp, int near) {
    floor_probe *f = near ? &fp->near : &fp->far;
    if (f->kind == FLOOR_NONE) return 0;
    int e = 0;
    double c0 = process_vcsw(), t0 = pbs_now();
    for (int i = 0; i < PAIR_BLOCK && !e; i++) e = floor_probe_trip(f);
    *(near ? &fp->near_s : &fp->far_s) += pbs_now() - t0;
    *(near ? &fp->near_n : &fp->far_n) += PAIR_BLOCK;
    fp->csw += process_vcsw() - c0;
    return e;
}

static double floor_pair_us(const floor_pair *fp, int near) {
    long n = near ? fp->near_n : fp->far_n;
    return n ? (near ? fp->near_s : fp->far_s) / (double)n * 1e6 : 0;
}

/* The raw floors: the timed round trips are the far ones; every PAIR_BLOCK of them, a near block runs
 * with the timer paused, for `one_cpu_us`. */
static void bm_raw_roundtrip(pbm_state *st, enum floor_kind kind) {
    floor_pair fp;
    int e = floor_pair_start(&fp, kind);
    if (e) {
        pbm_skip_with_errorf(st, "cannot start the %s: %s", kind == FLOOR_PIPE ? "echo child" : "partner thread",
                             strerror(e));
        return;
    }
    cpu_set_t saved;
    pbs_pin(main_cpu(), &saved);
    double csw0 = process_vcsw();
    long n = 0;
    while (!e && pbm_keep_running(st)) {
        e = floor_probe_trip(&fp.far);
        if (e || ++n % PAIR_BLOCK) continue;
        pbm_pause_timing(st);
        e = floor_block(&fp, 1);
        pbm_resume_timing(st);
    }
    pbs_unpin(&saved);
    if (e) pbm_skip_with_errorf(st, "round trip failed: %s", strerror(e));
    pbm_counter(st, "sleeps", process_vcsw() - csw0 - fp.csw, PBM_COUNTER_AVG_ITERATIONS);
    if (fp.near_n) pbm_counter(st, "one_cpu_us", floor_pair_us(&fp, 1), PBM_COUNTER_DEFAULT);
    floor_pair_stop(&fp);
}

static void bm_raw_condvar(pbm_state *st, void *ud) {
    (void)ud;
    bm_raw_roundtrip(st, FLOOR_CONDVAR);
}

static void bm_raw_pipe(pbm_state *st, void *ud) {
    (void)ud;
    bm_raw_roundtrip(st, FLOOR_PIPE);
}
static void bm_raw_fork(pbm_state *st, void *ud) {
    (void)ud;
    int n = (int)pbm_range(st, 0);
    if (n < 1 || n > MAX_PROCS) {
        pbm_skip_with_error(st, "procs out of range");
        return;
    }
    while (pbm_keep_running(st)) {
        int e = fork_batch(n);
        if (e) {
            pbm_skip_with_errorf(st, "fork: %s", strerror(e));
            break;
        }
    }
}

static void bm_raw_spawn(pbm_state *st, void *ud) {
    (void)ud;
    int n = (int)pbm_range(st, 0);
    if (n < 1 || n > MAX_PROCS) {
        pbm_skip_with_error(st, "procs out of range");
        return;
    }
    if (!self_exe[0]) {
        pbm_skip_with_error(st, "cannot find this program's path (/proc/self/exe)");
        return;
    }
    while (pbm_keep_running(st)) {
        int e = spawn_batch(n);
        if (e) {
            pbm_skip_with_errorf(st, "posix_spawn %s: %s", self_exe, e == ECHILD ? "the child failed" : strerror(e));
            break;
        }
    }
}

/* ---- pool benchmarks, one set per backend; ud is the backend's name ---- */

static void bm_submit_wait(pbm_state *st, void *ud) {
    const char *backend = ud;
    floor_pair fp;
    int e = floor_pair_start(&fp, roundtrip_floor(backend));
    if (e) {
        pbm_skip_with_errorf(st, "cannot start the floor probe: %s", strerror(e));
        return;
    }
    int paired = fp.far.kind != FLOOR_NONE;
    pb_pool *pool = make_pool(st, backend, ROUNDTRIP_WORKERS);
    /* This thread stays on one CPU from here on, where the floors' main ends run; the pool's threads and
     * workers, started before, run wherever the scheduler puts them, as anyone's would. */
    cpu_set_t saved;
    pbs_pin(paired ? main_cpu() : -1, &saved);
    double pool_s = 0;
    long npool = 0;
    double csw0 = process_vcsw();
    while (pool && pbm_keep_running(st)) {
        double t0 = paired ? pbs_now() : 0;
        pb_future *f = NULL;
        int rc = pb_submit(pool, "micro.empty", NULL, 0, &f);
        if (rc < 0) {
            pbm_skip_with_errorf(st, "%s: submit: %s: %s", backend, pb_strerror(rc), pb_last_error());
            break;
        }
        rc = pb_future_wait(f, -1);
        const pb_result *r = pb_future_result(f);
        if (rc < 0 || !r || r->status != PB_STATUS_OK) {
            pbm_skip_with_errorf(st, "%s: wait: %s (status %s: %s)", backend, rc < 0 ? pb_strerror(rc) : "ok",
                                 r ? pb_status_name(r->status) : "none", r && r->message ? r->message : "");
            pb_future_release(f);
            break;
        }
        pb_future_release(f);
        if (!paired) continue;
        pool_s += pbs_now() - t0;
        if (++npool % PAIR_BLOCK) continue;
        /* The paired floors, far and near in turn (see placement.h). */
        pbm_pause_timing(st);
        e = floor_block(&fp, (npool / PAIR_BLOCK) & 1);
        pbm_resume_timing(st);
        if (e) {
            pbm_skip_with_errorf(st, "floor probe failed: %s", strerror(e));
            break;
        }
    }
    /* In-process sleeps of the pool's round trips only: the paired floor's are taken out. */
    pbm_counter(st, "sleeps", process_vcsw() - csw0 - fp.csw, PBM_COUNTER_AVG_ITERATIONS);
    /* The pool's round trip runs where the scheduler puts it, on one CPU or two; it is judged against
     * the floor across two (vs_floor) and, beside it, the floor on one (vs_one_cpu_floor). */
    if (fp.far_n > 0) {
        pbm_counter(st, "floor_us", floor_pair_us(&fp, 0), PBM_COUNTER_DEFAULT);
        pbm_counter(st, "vs_floor", (pool_s / (double)npool) * 1e6 / floor_pair_us(&fp, 0), PBM_COUNTER_DEFAULT);
    }
    if (fp.near_n > 0) {
        pbm_counter(st, "one_cpu_floor_us", floor_pair_us(&fp, 1), PBM_COUNTER_DEFAULT);
        pbm_counter(st, "vs_one_cpu_floor", (pool_s / (double)npool) * 1e6 / floor_pair_us(&fp, 1),
                    PBM_COUNTER_DEFAULT);
    }
    pbs_unpin(&saved);
    pb_pool_destroy(pool);
    floor_pair_stop(&fp);
}

typedef struct map_input {
    int64_t *xs;
    pb_item *items;
    pb_result *results;
    size_t n;
} map_input;

static void map_input_free(map_input *m) {
    free(m->xs);
    free(m->items);
    if (m->results) munmap(m->results, m->n * sizeof *m->results);
    m->results = NULL;
}

/* The results array is a mapping of its own marked MADV_DONTFORK, as scenarios/registry.c's is, and for
 * the same reason: fork and fork-shm pools are created after it exists, and every page of it the pool
 * writes would otherwise be shared copy-on-write with the workers and cost the host a fault and a copy
 * per 4 KiB, every map (measured at stop 18 on the reference VM: map_square on fork-shm 255-564 ms with a
 * malloc'd array). Workers never read the caller's results, so they need not inherit them. */
static int map_input_alloc(map_input *m, size_t n) {
    m->xs = malloc(n * sizeof *m->xs);
    m->items = malloc(n * sizeof *m->items);
    void *r = mmap(NULL, n * sizeof *m->results, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    m->results = r == MAP_FAILED ? NULL : r;
    m->n = n;
    if (m->results) (void)madvise(m->results, n * sizeof *m->results, MADV_DONTFORK); /* else only slower */
    if (!m->xs || !m->items || !m->results) {
        map_input_free(m);
        return -1;
    }
    /* Touch every page now (calloc would map zero pages lazily), so that the first timed map does not
     * pay 56 MB of page faults that later ones do not. */
    memset(m->results, 0, n * sizeof *m->results);
    for (size_t i = 0; i < n; i++) {
        m->xs[i] = (int64_t)i;
        m->items[i].data = &m->xs[i];
        m->items[i].len = sizeof m->xs[i];
    }
    return 0;
}

/* 0 when every result is ok and right; else writes what is wrong into err. */
static int map_check(const pb_result *res, size_t n, char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        const pb_result *r = &res[i];
        int64_t y = 0;
        if (r->status != PB_STATUS_OK) {
            snprintf(err, errlen, "item %zu: %s: %s", i, pb_status_name(r->status), r->message ? r->message : "");
            return -1;
        }
        if (r->len == sizeof y) memcpy(&y, pb_result_data(r), sizeof y);
        if (r->len != sizeof y || y != (int64_t)i * (int64_t)i) {
            snprintf(err, errlen, "item %zu: wrong answer (%zu bytes, %lld)", i, r->len, (long long)y);
            return -1;
        }
    }
    return 0;
}

static void bm_map(pbm_state *st, void *ud) {
    const char *backend = ud;
    size_t chunksize = (size_t)pbm_range(st, 0);
    map_input m = {0};
    if (map_input_alloc(&m, MAP_ITEMS) < 0) {
        pbm_skip_with_error(st, "out of memory for the map input");
        return;
    }
    pb_pool *pool = make_pool(st, backend, MAP_WORKERS);
    if (!pool) {
        map_input_free(&m);
        return;
    }
    size_t cs = chunksize ? chunksize : pb_auto_chunksize(MAP_ITEMS, MAP_WORKERS);
    char label[64];
    snprintf(label, sizeof label, "%s chunks of %zu", chunksize ? "fixed" : "auto", cs);
    pbm_set_label(st, label);

    char err[256];
    double csw0 = process_vcsw();
    while (pbm_keep_running(st)) {
        int rc = pb_map(pool, "micro.square", m.items, MAP_ITEMS, chunksize, m.results);
        /* Checking and freeing the results is the caller's business, not the map's: not timed. */
        pbm_pause_timing(st);
        if (rc < 0) {
            pbm_skip_with_errorf(st, "%s: map: %s: %s", backend, pb_strerror(rc), pb_last_error());
            break;
        }
        if (map_check(m.results, MAP_ITEMS, err, sizeof err) < 0) {
            pbm_skip_with_errorf(st, "%s: map: %s", backend, err);
            pb_results_clear(m.results, MAP_ITEMS);
            break;
        }
        pb_results_clear(m.results, MAP_ITEMS);
        pbm_resume_timing(st);
    }
    pbm_set_items_processed(st, pbm_iterations(st) * (int64_t)MAP_ITEMS);
    pbm_counter(st, "chunks", (double)((MAP_ITEMS + cs - 1) / cs), PBM_COUNTER_DEFAULT);
    pbm_counter(st, "sleeps", process_vcsw() - csw0, PBM_COUNTER_AVG_ITERATIONS); /* per map */
    pb_pool_destroy(pool);
    map_input_free(&m);
    /* Give the ~80 MB back to the kernel: glibc may keep freed blocks in the heap (its mmap threshold
     * grows after large frees), and a bigger address space makes every later fork slower, which would
     * make the fork benchmarks registered after this one unfair to those before it. */
    malloc_trim(0);
}

/* The start-up floor of a backend with workers: fork and forkserver pools against n raw forks, spawn pools
 * against n raw posix_spawns of this binary; none for the others. */
static int (*start_floor(const char *backend))(int) {
    if (strcmp(backend, "fork") == 0 || strcmp(backend, "fork-shm") == 0 || strcmp(backend, "forkserver") == 0)
        return fork_batch;
    if (strcmp(backend, "spawn") == 0 || strcmp(backend, "spawn-shm") == 0) return self_exe[0] ? spawn_batch : NULL;
    return NULL;
}

/* Runs the start-up floor once with the benchmark's timer paused, adding its wall time to *acc. */
static int paused_floor(pbm_state *st, int (*floor_fn)(int), int n, double *acc) {
    pbm_pause_timing(st);
    double t = pbs_now();
    int e = floor_fn(n);
    *acc += pbs_now() - t;
    pbm_resume_timing(st);
    return e;
}

static void bm_create_destroy(pbm_state *st, void *ud) {
    const char *backend = ud;
    int workers = (int)pbm_range(st, 0);
    int (*floor_fn)(int) = start_floor(backend);
    pb_options o;
    pb_options_init(&o);
    o.workers = workers;
    o.start = PB_START_EAGER; /* every worker started and ready: what n raw forks / spawns are the floor of */
    double create_s = 0, pool_s = 0, floor_s = 0;
    long rounds = 0;
    while (pbm_keep_running(st)) {
        /* The paired floor (see PAIR_BLOCK) runs before the pool on even rounds and after it on odd
         * ones, so that neither always starts on a machine the other has just stirred. */
        int floor_first = (rounds++ & 1) == 0, e = 0;
        if (floor_fn && floor_first) e = paused_floor(st, floor_fn, workers, &floor_s);
        if (!e) {
            pb_pool *pool = NULL;
            double t0 = pbs_now();
            int rc = pb_pool_create(&pool, backend, &o);
            double t1 = pbs_now();
            if (rc < 0) {
                pbm_skip_with_errorf(st, "%s: pool creation failed: %s: %s", backend, pb_strerror(rc),
                                     pb_last_error());
                break;
            }
            pb_pool_destroy(pool);
            create_s += t1 - t0;
            pool_s += pbs_now() - t0;
        }
        if (!e && floor_fn && !floor_first) e = paused_floor(st, floor_fn, workers, &floor_s);
        if (e) {
            pbm_skip_with_errorf(st, "%s: start-up floor failed: %s", backend,
                                 e == ECHILD ? "a child failed" : strerror(e));
            break;
        }
    }
    /* The split of the round: how much of it is create (all workers ready) and how much destroy. */
    pbm_counter(st, "create_us", create_s * 1e6, PBM_COUNTER_AVG_ITERATIONS);
    if (floor_fn && rounds > 0 && floor_s > 0) {
        pbm_counter(st, "floor_us", floor_s / (double)rounds * 1e6, PBM_COUNTER_DEFAULT);
        pbm_counter(st, "vs_floor", pool_s / floor_s, PBM_COUNTER_DEFAULT);
        pbm_counter(st, "create_vs_floor", create_s / floor_s, PBM_COUNTER_DEFAULT);
    }
}

/* ---- the wire codec (wire.h): one chunk of WIRE_ITEMS int64 items each way ---- */

typedef struct wire_fixture {
    int64_t xs[WIRE_ITEMS];
    pb_item items[WIRE_ITEMS]; /* xs as the pool's items */
    pb_result results[WIRE_ITEMS]; /* what a worker produced: ok, 8-byte inline outputs */
    pb__wbuf buf;
} wire_fixture;

static void wire_fixture_init(wire_fixture *w) {
    memset(w, 0, sizeof *w);
    for (int i = 0; i < WIRE_ITEMS; i++) {
        w->xs[i] = i;
        w->items[i] = (pb_item){&w->xs[i], sizeof w->xs[i]};
        int64_t y = (int64_t)i * i;
        w->results[i].status = PB_STATUS_OK;
        w->results[i].exit_code = -1;
        w->results[i].len = sizeof y;
        memcpy(w->results[i].inline_data, &y, sizeof y);
    }
}

/* A REQUEST frame as the parent sends it, with the pool's encoder (wire.c). */
static int encode_request(wire_fixture *w, uint64_t id) {
    w->buf.len = 0;
    return pb__wire_request_encode(&w->buf, 0, id, 0, WIRE_TASK, strlen(WIRE_TASK), w->items, WIRE_ITEMS) == 0 ? 0
                                                                                                              : -1;
}

/* A RESULT frame as a worker sends it: first index, then one record per item. */
static int encode_result(wire_fixture *w, uint64_t id) {
    pb__wbuf *b = &w->buf;
    b->len = 0;
    long off = pb__wire_begin(b, PB_WIRE_RESULT, 0, id);
    if (off < 0 || pb__wbuf_reserve(b, 4) != 0) return -1;
    pb__wire_put_u32(b, 0);
    for (int i = 0; i < WIRE_ITEMS; i++)
        if (pb__wire_put_result(b, &w->results[i]) != 0) return -1;
    pb__wire_end(b, off, WIRE_ITEMS);
    return 0;
}

static size_t wire_max_frame(void) {
    pb_options o;
    pb_options_init(&o);
    return pb__wire_max_frame(o.max_item_bytes);
}

static void wire_report(pbm_state *st, size_t frame_bytes) {
    pbm_set_items_processed(st, pbm_iterations(st) * WIRE_ITEMS);
    pbm_set_bytes_processed(st, pbm_iterations(st) * (int64_t)frame_bytes);
    pbm_counter(st, "frame_bytes", (double)frame_bytes, PBM_COUNTER_DEFAULT);
}

/* Which frame an encode benchmark builds: passed as the benchmark's user pointer. */
typedef struct wire_encoder {
    int (*encode)(wire_fixture *w, uint64_t id);
} wire_encoder;
static const wire_encoder request_encoder = {encode_request}, result_encoder = {encode_result};

static void bm_wire_encode(pbm_state *st, void *ud) {
    const wire_encoder *enc = ud;
    wire_fixture *w = malloc(sizeof *w);
    if (!w) {
        pbm_skip_with_error(st, "out of memory");
        return;
    }
    wire_fixture_init(w);
    uint64_t id = 0;
    while (pbm_keep_running(st)) {
        if (enc->encode(w, ++id) < 0) {
            pbm_skip_with_error(st, "encode failed: out of memory");
            break;
        }
        escape(w->buf.data);
    }
    wire_report(st, w->buf.len);
    pb__wbuf_free(&w->buf);
    free(w);
}

static void bm_wire_request_decode(pbm_state *st, void *ud) {
    (void)ud;
    wire_fixture *w = malloc(sizeof *w);
    if (!w) {
        pbm_skip_with_error(st, "out of memory");
        return;
    }
    wire_fixture_init(w);
    size_t max_frame = wire_max_frame();
    if (encode_request(w, 1) < 0) {
        pbm_skip_with_error(st, "encode failed: out of memory");
    } else {
        while (pbm_keep_running(st)) {
            /* What a worker does with a received frame: check the header, walk the body in place. */
            pb__wire_header h;
            const char *why = NULL;
            if (pb__wire_header_decode(w->buf.data, max_frame, &h, &why) != 0) {
                pbm_skip_with_errorf(st, "header rejected: %s", why);
                break;
            }
            /* with the worker's decoder (wire.c) */
            pb__wire_request q;
            int err = pb__wire_request_open(&q, w->buf.data + PB_WIRE_HEADER, h.body_len);
            escape(q.name);
            int64_t sum = 0;
            for (uint32_t i = 0; i < h.count && !err; i++) {
                const void *p;
                uint32_t len;
                err = pb__wire_request_item(&q, (size_t)1 << 20, &p, &len);
                if (!err && len == sizeof(int64_t)) {
                    int64_t x;
                    memcpy(&x, p, sizeof x);
                    sum += x;
                }
            }
            escape(&sum);
            if (err || h.count != WIRE_ITEMS || sum != (int64_t)WIRE_ITEMS * (WIRE_ITEMS - 1) / 2) {
                pbm_skip_with_error(st, "request decoded wrong");
                break;
            }
        }
        wire_report(st, w->buf.len);
    }
    pb__wbuf_free(&w->buf);
    free(w);
}

static void bm_wire_result_decode(pbm_state *st, void *ud) {
    (void)ud;
    wire_fixture *w = malloc(sizeof *w);
    pb_result *out = calloc(WIRE_ITEMS, sizeof *out);
    if (!w || !out) {
        pbm_skip_with_error(st, "out of memory");
        free(w);
        free(out);
        return;
    }
    wire_fixture_init(w);
    size_t max_frame = wire_max_frame();
    pb_options o;
    pb_options_init(&o);
    if (encode_result(w, 1) < 0) {
        pbm_skip_with_error(st, "encode failed: out of memory");
    } else {
        while (pbm_keep_running(st)) {
            /* What the parent does with a worker's frame: check, then decode each record into the
             * caller's (zeroed) result slots. */
            pb__wire_header h;
            const char *why = NULL;
            if (pb__wire_header_decode(w->buf.data, max_frame, &h, &why) != 0) {
                pbm_skip_with_errorf(st, "header rejected: %s", why);
                break;
            }
            pb__wire_reader r;
            pb__wire_reader_init(&r, w->buf.data + PB_WIRE_HEADER, h.body_len);
            (void)pb__wire_get_u32(&r);
            int rc = 0;
            for (uint32_t i = 0; i < h.count && rc == 0; i++) {
                memset(&out[i], 0, sizeof out[i]);
                rc = pb__wire_get_result(&r, o.max_item_bytes, &out[i]);
            }
            escape(out);
            if (rc != 0 || h.count != WIRE_ITEMS || out[WIRE_ITEMS - 1].status != PB_STATUS_OK ||
                out[WIRE_ITEMS - 1].len != sizeof(int64_t)) {
                pbm_skip_with_error(st, "result decoded wrong");
                break;
            }
        }
        wire_report(st, w->buf.len);
    }
    pb_results_clear(out, WIRE_ITEMS);
    free(out);
    pb__wbuf_free(&w->buf);
    free(w);
}

/* ---- registration and main ---- */

static pbm_bench *timed(pbm_bench *b, pbm_unit unit) { return pbm_bench_unit(pbm_bench_use_real_time(b), unit); }

static void register_all(void) {
    char name[128];

    /* Floors first: the figures below are read against them. */
    timed(pbm_register("raw/condvar_pingpong", bm_raw_condvar, NULL), PBM_US);
    timed(pbm_register("raw/pipe_pingpong", bm_raw_pipe, NULL), PBM_US);
    pbm_bench_arg_name(pbm_bench_arg(timed(pbm_register("raw/fork_exit_wait", bm_raw_fork, NULL), PBM_US),
                                     START_WORKERS), "procs");
    pbm_bench_arg_name(pbm_bench_arg(timed(pbm_register("raw/posix_spawn_wait", bm_raw_spawn, NULL), PBM_US),
                                     START_WORKERS), "procs");

    /* Backend names are static strings owned by the registry, so they serve as ud for the whole run. */
    size_t nb = pb_backend_count();
    for (size_t i = 0; i < nb; i++) {
        const char *be = pb_backend_name_at(i);
        snprintf(name, sizeof name, "submit_wait/%s", be);
        timed(pbm_register(name, bm_submit_wait, (void *)be), PBM_US);
    }
    for (size_t i = 0; i < nb; i++) {
        const char *be = pb_backend_name_at(i);
        snprintf(name, sizeof name, "map_square/%s", be);
        pbm_bench *b = timed(pbm_register(name, bm_map, (void *)be), PBM_MS);
        pbm_bench_arg_name(pbm_bench_arg(pbm_bench_arg(pbm_bench_arg(b, 0), 1000), 100000), "chunksize");
    }
    for (size_t i = 0; i < nb; i++) {
        const char *be = pb_backend_name_at(i);
        snprintf(name, sizeof name, "pool_create_destroy/%s", be);
        pbm_bench *b = timed(pbm_register(name, bm_create_destroy, (void *)be), PBM_US);
        pbm_bench_arg_name(pbm_bench_arg(b, START_WORKERS), "workers");
    }

    const char *items = "items";
    pbm_bench_arg_names(pbm_bench_arg(timed(pbm_register("wire/request_encode", bm_wire_encode, (void *)&request_encoder), PBM_US),
                                      WIRE_ITEMS), &items, 1);
    pbm_bench_arg_names(pbm_bench_arg(timed(pbm_register("wire/request_decode", bm_wire_request_decode, NULL), PBM_US),
                                      WIRE_ITEMS), &items, 1);
    pbm_bench_arg_names(pbm_bench_arg(timed(pbm_register("wire/result_encode", bm_wire_encode, (void *)&result_encoder), PBM_US),
                                      WIRE_ITEMS), &items, 1);
    pbm_bench_arg_names(pbm_bench_arg(timed(pbm_register("wire/result_decode", bm_wire_result_decode, NULL), PBM_US),
                                      WIRE_ITEMS), &items, 1);
}

int main(int argc, char **argv) {
    /* The do-nothing mode of the posix_spawn floor: exit before doing anything else. */
    if (argc == 2 && strcmp(argv[1], NOOP_ARG) == 0) _exit(0);
    /* A spawn worker is taken over by the pool library before main(). Reaching main() with the worker
     * variable set means it was not, and running the benchmarks here would spawn workers recursively. */
    if (getenv(PB_PROC_WORKER_ENV)) {
        fprintf(stderr, "poolbench-micro: started as a pool worker (%s is set) but not in worker mode\n",
                PB_PROC_WORKER_ENV);
        return 127;
    }
    /* The forkserver backend's helper, forked before the benchmarks allocate anything (impls/forkserver.c). */
    if (pb_forkserver_start() != 0) fprintf(stderr, "poolbench-micro: no forkserver: %s\n", pb_last_error());
    /* libuv's threadpool is sized once per process, at its first use (impls/libuv.c): make it large enough
     * for the largest pool measured here, unless the user chose a size. */
    char size[16];
    snprintf(size, sizeof size, "%d", START_WORKERS);
    setenv("UV_THREADPOOL_SIZE", size, 0);
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    self_exe[n > 0 ? n : 0] = '\0';

    floor_cpus = pbs_cpu_pair_find();
    register_all();
    return pbm_main(argc, argv);
}
