/*
 * floors.c - floor probes: what this machine physically allows, measured in the same run as the pools.
 *
 * Each probe times the raw mechanism a backend is built from, with nothing of the pool around it, so a
 * result can say "overhead = 1.4x the pipe round trip". Each returns seconds per operation: the median of
 * up to five batches of `reps` operations in total (the median so that one preempted batch does not move
 * it), after a short warm-up. Probes:
 *   pipe_rtt            1 byte to a forked child and 1 byte back over two pipes (one round trip)
 *   condvar_handoff     a round trip between two threads through one mutex + condvar: A wakes B, B wakes A
 *   fork_exit_wait      fork(), the child _exit(0)s at once, waitpid() reaps it
 *   spawn_wait          posix_spawn() of this very program + waitpid(); the child sees
 *                       POOLBENCH_FLOOR_NOOP=1 and _exit(0)s in its first constructor, so this is exec +
 *                       dynamic loading of the worker program (the spawn backend's default worker), no main
 *   nanosleep_overshoot a 1 ms clock_nanosleep: how much longer than asked it took
 *   pipe_mib            1 MiB written to a forked child through a pipe, then a 1-byte acknowledgement
 *   cpu_item            one item of the cpu scenario's work (64 KiB of text, zlib level 6) run alone, here
 *   cpu_item_parallel   the same item run at once by one plain forked process per online CPU (no pool):
 *                       wall seconds per item. Its ratio to cpu_item is how much slower each core gets
 *                       when all of them are busy (on a 2-vCPU VM ~1.4x): what "serial / workers"
 *                       cannot know and the cpu scenario's ideal now measures (pbs__run_copies).
 *
 * The round trips (pipe_rtt, pipe_mib, condvar_handoff) run on two CPUs, pinned: the measuring thread on
 * the first allowed CPU, the echo child or partner thread on the second (placement.h says why: unpinned,
 * pipe_rtt measured 33.8 us in one run and 5.0 us in the next, a second later, on a 2-vCPU VM).
 *
 * The children follow the rules for a child after fork: signals stay blocked (they were blocked around
 * fork), only read/write/_exit, no malloc or stdio (except the copies of pbs__run_copies, which run task
 * code like a fork worker does: allocating, single-threaded, from a process that is single-threaded then); PR_SET_PDEATHSIG plus EOF on their pipe make sure they
 * never outlive the probe. Every fd is CLOEXEC and closed, every child reaped (waitpid retried on EINTR).
 */
#include "scenario_impl.h"
#include "placement.h"

#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define NOOP_ENV "POOLBENCH_FLOOR_NOOP"
#define BATCHES 5
#define MIB (1024 * 1024)

/* The spawn_wait child: exit before anything else of the program runs (101 is the earliest priority a
 * program may use; the task registry's constructors run at 150). */
__attribute__((constructor(101))) static void floor_noop_mode(void) {
    const char *v = getenv(NOOP_ENV);
    if (v && v[0] == '1' && v[1] == '\0')
        _exit(0);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs `reps` operations in up to BATCHES batches; the median of the per-operation times. */
static double batched(int reps, int (*ops)(void *ctx, int n), void *ctx) {
    if (reps < 1)
        reps = 1;
    int nb = reps < BATCHES ? reps : BATCHES, per = (reps + nb - 1) / nb;
    double v[BATCHES];
    for (int b = 0; b < nb; b++) {
        double t0 = pbs_now();
        if (ops(ctx, per) != 0)
            return -1;
        v[b] = (pbs_now() - t0) / per;
    }
    qsort(v, (size_t)nb, sizeof v[0], cmp_double);
    return nb % 2 ? v[nb / 2] : (v[nb / 2 - 1] + v[nb / 2]) / 2;
}

static int reap(pid_t pid, int *status) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (status)
        *status = st;
    return 0;
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

/* ---- a forked child on two pipes (pipe_rtt, pipe_mib) ---- */

typedef struct peer {
    pid_t pid;
    int wfd; /* parent -> child */
    int rfd; /* child -> parent */
} peer;

static unsigned char sink[64 * 1024]; /* the pipe_mib child's read buffer: allocated before fork */

/* The child: echo mode returns each byte; sink mode reads `sink_bytes` and then acknowledges with 1 byte.
 * Exits at EOF. Only async-signal-safe calls. */
static void __attribute__((noreturn)) peer_child(int rfd, int wfd, size_t sink_bytes) {
    for (;;) {
        size_t want = sink_bytes ? sink_bytes : 1;
        while (want) {
            ssize_t r = read(rfd, sink, want < sizeof sink ? want : sizeof sink);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                _exit(0);
            want -= (size_t)r;
        }
        if (write_all(wfd, sink, 1) != 0)
            _exit(1);
    }
}

/* The child runs on cpu (-1: anywhere). */
static int peer_start(peer *pr, size_t sink_bytes, int cpu) {
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(up, O_CLOEXEC) != 0) {
        close(down[0]);
        close(down[1]);
        return -1;
    }
    pid_t parent = getpid();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        /* Signals stay blocked: the parent's handlers must never run here. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        cpu_set_t was;
        pbs_pin(cpu, &was);
        close(down[1]);
        close(up[0]);
        peer_child(down[0], up[1], sink_bytes);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(down[0]);
    close(up[1]);
    if (pid < 0) {
        close(down[1]);
        close(up[0]);
        return -1;
    }
    pr->pid = pid;
    pr->wfd = down[1];
    pr->rfd = up[0];
    return 0;
}

static void peer_stop(peer *pr) {
    close(pr->wfd); /* EOF: the child exits */
    close(pr->rfd);
    reap(pr->pid, NULL);
}

static int rtt_ops(void *ctx, int n) {
    peer *pr = ctx;
    char c = 'x';
    for (int i = 0; i < n; i++)
        if (write_all(pr->wfd, &c, 1) || read_all(pr->rfd, &c, 1))
            return -1;
    return 0;
}

static double measure_pipe_rtt(int reps) {
    pbs_cpu_pair cpus = pbs_cpu_pair_find();
    peer pr;
    if (peer_start(&pr, 0, pbs_partner_cpu(&cpus, 0)))
        return -1;
    cpu_set_t saved;
    pbs_pin(pbs_main_cpu(&cpus), &saved);
    double r = rtt_ops(&pr, 10) == 0 ? batched(reps, rtt_ops, &pr) : -1;
    pbs_unpin(&saved);
    peer_stop(&pr);
    return r;
}

static unsigned char mib_buf[MIB];

static int mib_ops(void *ctx, int n) {
    peer *pr = ctx;
    char ack;
    for (int i = 0; i < n; i++)
        if (write_all(pr->wfd, mib_buf, MIB) || read_all(pr->rfd, &ack, 1))
            return -1;
    return 0;
}

static double measure_pipe_mib(int reps) {
    peer pr;
    memset(mib_buf, 0x5A, sizeof mib_buf); /* touch every page before timing */
    pbs_cpu_pair cpus = pbs_cpu_pair_find();
    if (peer_start(&pr, MIB, pbs_partner_cpu(&cpus, 0)))
        return -1;
    cpu_set_t saved;
    pbs_pin(pbs_main_cpu(&cpus), &saved);
    double r = mib_ops(&pr, 2) == 0 ? batched(reps, mib_ops, &pr) : -1;
    pbs_unpin(&saved);
    peer_stop(&pr);
    return r;
}

/* ---- condvar handoff between two threads ---- */

typedef struct handoff {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* one condvar: only the other side ever waits on it */
    int turn;          /* 1: B's turn, 0: A's turn */
    int stop;
} handoff;

static void *handoff_b(void *arg) {
    handoff *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (h->turn != 1 && !h->stop)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->stop)
            break;
        h->turn = 0;
        pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static int handoff_ops(void *ctx, int n) {
    handoff *h = ctx;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < n; i++) {
        h->turn = 1;
        pthread_cond_signal(&h->cv);
        while (h->turn != 0)
            pthread_cond_wait(&h->cv, &h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static double measure_condvar_handoff(int reps) {
    handoff h = {.turn = 0, .stop = 0};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    pthread_t b;
    double r = -1;
    pbs_cpu_pair cpus = pbs_cpu_pair_find();
    if (pbs_thread_create_on(&b, pbs_partner_cpu(&cpus, 0), handoff_b, &h) == 0) {
        cpu_set_t saved;
        pbs_pin(pbs_main_cpu(&cpus), &saved);
        handoff_ops(&h, 100);
        r = batched(reps, handoff_ops, &h);
        pbs_unpin(&saved);
        pthread_mutex_lock(&h.mu);
        h.stop = 1;
        pthread_cond_broadcast(&h.cv);
        pthread_mutex_unlock(&h.mu);
        pthread_join(b, NULL);
    }
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
    return r;
}

/* ---- process creation ---- */

static int fork_ops(void *ctx, int n) {
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0 || reap(pid, NULL))
            return -1;
    }
    return 0;
}

static double measure_fork_exit_wait(int reps) {
    if (fork_ops(NULL, 2))
        return -1;
    return batched(reps, fork_ops, NULL);
}

typedef struct spawn_ctx {
    char path[4096];
    char **envp;
} spawn_ctx;

static int spawn_ops(void *arg, int n) {
    spawn_ctx *c = arg;
    char *argv[] = {c->path, NULL};
    for (int i = 0; i < n; i++) {
        pid_t pid;
        int st;
        if (posix_spawn(&pid, c->path, NULL, NULL, argv, c->envp) != 0 || reap(pid, &st))
            return -1;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return -1;
    }
    return 0;
}

static double measure_spawn_wait(int reps) {
    spawn_ctx c;
    ssize_t len = readlink("/proc/self/exe", c.path, sizeof c.path - 1);
    if (len <= 0)
        return -1;
    c.path[len] = '\0';
    /* This environment plus the no-op switch; the parent's own environment is untouched. */
    size_t n = 0;
    while (environ && environ[n])
        n++;
    c.envp = calloc(n + 2, sizeof *c.envp);
    if (!c.envp)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], NOOP_ENV "=", sizeof NOOP_ENV) != 0)
            c.envp[k++] = environ[i];
    c.envp[k++] = NOOP_ENV "=1";
    c.envp[k] = NULL;
    double r = spawn_ops(&c, 2) == 0 ? batched(reps, spawn_ops, &c) : -1;
    free(c.envp);
    return r;
}

/* ---- parallel capacity: plain processes, no pool ---- */

double pbs__run_copies(int n, int (*work)(void *ctx, int k, int n), void *ctx) {
    enum { MAX_COPIES = 1024 };
    if (n < 1 || n > MAX_COPIES)
        return -1;
    pid_t pids[MAX_COPIES];
    int started = 0, failed = 0;
    pid_t parent = getpid();
    sigset_t all, old;
    sigfillset(&all);
    fflush(stdout);
    fflush(stderr);
    double t0 = pbs_now();
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; started < n; started++) {
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(1);
            _exit(work(ctx, started, n) == 0 ? 0 : 1);
        }
        if (pid < 0) {
            failed = 1;
            break;
        }
        pids[started] = pid;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (int k = 0; k < started; k++) {
        int st;
        if (reap(pids[k], &st) || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            failed = 1;
    }
    double wall = pbs_now() - t0;
    return failed ? -1 : wall;
}

/* The cpu scenario's default item: seed, 64 KiB, level 6 (its input layout, scenarios/cpu.c). */
typedef struct cpu_item_ctx {
    const pb_task *task;
    unsigned char input[16];
    int per_copy; /* items each copy runs */
} cpu_item_ctx;

static int cpu_items_run(void *arg, int k, int n) {
    cpu_item_ctx *c = arg;
    (void)k, (void)n;
    for (int i = 0; i < c->per_copy; i++) {
        pb_result r;
        memset(&r, 0, sizeof r);
        pb__run_item(c->task, c->input, sizeof c->input, sizeof c->input, &r);
        int st = r.status;
        pb_result_clear(&r);
        if (st != PB_STATUS_OK)
            return -1;
    }
    return 0;
}

static int cpu_item_init(cpu_item_ctx *c) {
    uint32_t bytes = 64 * 1024, level = 6;
    c->task = pb_task_find("scenario.cpu");
    if (!c->task)
        return -1;
    pbs__put_u64(c->input, 0x5EEDull);
    memcpy(c->input + 8, &bytes, 4);
    memcpy(c->input + 12, &level, 4);
    return 0;
}

static int cpu_alone_ops(void *ctx, int n) {
    cpu_item_ctx *c = ctx;
    c->per_copy = n;
    return cpu_items_run(c, 0, 1);
}

static int cpu_parallel_ops(void *ctx, int n) {
    cpu_item_ctx *c = ctx;
    c->per_copy = n;
    return pbs__run_copies(pbs__online_cpus(), cpu_items_run, c) < 0 ? -1 : 0;
}

static double measure_cpu_item(int reps) {
    cpu_item_ctx c;
    if (cpu_item_init(&c) || cpu_alone_ops(&c, 1))
        return -1;
    return batched(reps, cpu_alone_ops, &c);
}

static double measure_cpu_item_parallel(int reps) {
    cpu_item_ctx c;
    if (cpu_item_init(&c) || cpu_alone_ops(&c, 1))
        return -1;
    return batched(reps, cpu_parallel_ops, &c);
}

/* ---- timer ---- */

#define SLEEP_REQUEST_NS 1000000L

static int sleep_ops(void *ctx, int n) {
    double *sum = ctx;
    for (int i = 0; i < n; i++) {
        struct timespec req = {0, SLEEP_REQUEST_NS}, rem;
        double t0 = pbs_now();
        while (clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem) == EINTR)
            req = rem;
        *sum += pbs_now() - t0 - SLEEP_REQUEST_NS * 1e-9;
    }
    return 0;
}

/* batched() times whole operations; here the answer is the overshoot, so batch medians are taken by hand. */
static double measure_nanosleep_overshoot(int reps) {
    if (reps < 1)
        reps = 1;
    int nb = reps < BATCHES ? reps : BATCHES, per = (reps + nb - 1) / nb;
    double v[BATCHES], warm = 0;
    sleep_ops(&warm, 1);
    for (int b = 0; b < nb; b++) {
        double sum = 0;
        sleep_ops(&sum, per);
        v[b] = sum / per;
    }
    qsort(v, (size_t)nb, sizeof v[0], cmp_double);
    return nb % 2 ? v[nb / 2] : (v[nb / 2 - 1] + v[nb / 2]) / 2;
}

static const pb_floor floors[] = {
    {"pipe_rtt", "1-byte round trip to a forked child over two pipes", measure_pipe_rtt, 2000},
    {"condvar_handoff", "round trip between two threads through a mutex + condvar (A wakes B, B wakes A)",
     measure_condvar_handoff, 5000},
    {"fork_exit_wait", "fork(), child _exit(0), waitpid()", measure_fork_exit_wait, 200},
    {"spawn_wait", "posix_spawn() of this program exiting in its first constructor + waitpid()",
     measure_spawn_wait, 100},
    {"nanosleep_overshoot", "extra time a 1 ms clock_nanosleep takes beyond 1 ms", measure_nanosleep_overshoot,
     100},
    {"pipe_mib", "1 MiB through a pipe to a forked child + 1-byte ack (seconds per MiB)", measure_pipe_mib, 64},
    {"cpu_item", "one cpu-scenario item (64 KiB of text, zlib level 6) run alone in this process", measure_cpu_item,
     60},
    {"cpu_item_parallel",
     "the same item run at once by one plain forked process per online CPU, no pool (wall seconds per item)",
     measure_cpu_item_parallel, 60},
};
#define NFLOORS (sizeof floors / sizeof floors[0])

size_t pb_floor_count(void) { return NFLOORS; }

const pb_floor *pb_floor_at(size_t i) { return i < NFLOORS ? &floors[i] : NULL; }

const pb_floor *pb_floor_find(const char *name) {
    for (size_t i = 0; name && i < NFLOORS; i++)
        if (strcmp(floors[i].name, name) == 0)
            return &floors[i];
    return NULL;
}
