/*
 * fork.c - the "fork" and "fork-shm" backends: pre-forked worker processes speaking the wire protocol
 * over pipes, or through shared-memory rings (transport.h). One birth, two transports: the file exports the
 * two backend structs and nothing else.
 *
 * Only the birth of a worker lives here; the pool machinery is procpool.c and the worker loop worker.c,
 * shared with the spawn backend. A fork worker is a copy of the host program, so it needs no worker
 * program and starts fast, but it inherits the host's memory and fds: hence the hygiene below, after
 * git's run-command.c and musl's posix_spawn.c:
 *  - every signal is blocked around fork(), so no handler of the host runs in the child before it has
 *    reset all dispositions to SIG_DFL; the child then restores the signal mask of the thread that
 *    created the pool (the I/O thread that forks blocks everything);
 *  - the pipes are made O_CLOEXEC (pipe2) in the parent, dup2'ed onto fds 3 and 4 in the child, and the
 *    child closes every other fd above stderr (close_range, or a loop when the kernel lacks it), so a
 *    worker never holds another worker's pipe open and EOF means what it should;
 *  - PR_SET_PDEATHSIG(SIGKILL) with a getppid() check for the race, plus EOF on the request pipe, so that
 *    workers never outlive the pool's process;
 *  - between fork() and the worker loop only async-signal-safe calls (sigaction, dup2, close_range,
 *    prctl, getppid, fcntl, sigprocmask). The worker loop then uses malloc and stdio like any program:
 *    glibc makes both usable in a fork child, and the task code runs there by design.
 * stdout and stderr are flushed before each fork so that the child does not repeat the host's pending
 * output.
 */
#include "proc.h"
#include "syscalls.h"
#include "transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct fork_ctx {
    sigset_t mask;   /* the creating thread's signal mask, restored in each worker */
    int max_fd;      /* for the close loop when close_range is unavailable */
} fork_ctx;

/* The child side: async-signal-safe until pb__worker_main. Never returns. */
static void child(const fork_ctx *c, pid_t parent, int req_rd, int resp_wr, int shm_fd) {
    pb__child_default_signals();

    /* req_rd and resp_wr are >= 5 (procpool.c ensures it), so these cannot clobber each other. */
    if (dup2(req_rd, PB_PROC_REQ_FD) < 0 || dup2(resp_wr, PB_PROC_RESP_FD) < 0) _exit(127);
    /* shm_fd is >= 6 (procpool.c): the dups above cannot have clobbered it */
    if (shm_fd >= 0 && dup2(shm_fd, PB_PROC_SHM_FD) < 0) _exit(127);
    int keep = shm_fd >= 0 ? PB_PROC_SHM_FD : PB_PROC_RESP_FD;
    if (close_range((unsigned)keep + 1, ~0u, 0) != 0)
        for (int fd = keep + 1; fd < c->max_fd; fd++) close(fd);
    if (pb__worker_child_setup(parent) != 0) _exit(127);
    sigprocmask(SIG_SETMASK, &c->mask, NULL);
    _exit(pb__worker_main_shm(PB_PROC_REQ_FD, PB_PROC_RESP_FD, shm_fd >= 0 ? PB_PROC_SHM_FD : -1));
}

static int fork_start_shm(void *vctx, int req_rd, int resp_wr, int shm_fd, pid_t *pid, char *err, size_t errlen) {
    const fork_ctx *c = vctx;
    fflush(stdout);
    fflush(stderr);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    pid_t p = pb__sys.fork();
    if (p == 0) child(c, parent, req_rd, resp_wr, shm_fd);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p < 0) {
        snprintf(err, errlen, "cannot fork a worker: %s", strerror(e));
        return -e;
    }
    *pid = p;
    return 0;
}

static const char *fork_describe(void *ctx) { return "the forked worker"; }
static void fork_release(void *ctx) { free(ctx); }

static int fork_start(void *vctx, int req_rd, int resp_wr, pid_t *pid, char *err, size_t errlen) {
    return fork_start_shm(vctx, req_rd, resp_wr, -1, pid, err, errlen);
}

static const pb__proc_birth fork_birth = {"fork", fork_start, fork_describe, fork_release, NULL, NULL};
static const pb__proc_birth fork_shm_birth = {"fork-shm", fork_start, fork_describe, fork_release,
                                              &pb__transport_shm, fork_start_shm};

static int create_with(pb_pool *pool, const pb_options *opts, void **impl, const pb__proc_birth *birth) {
    fork_ctx *c = calloc(1, sizeof *c);
    if (!c) return pb__set_error(-ENOMEM, "out of memory");
    pthread_sigmask(SIG_SETMASK, NULL, &c->mask);
    struct rlimit rl;
    c->max_fd = (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536)
                    ? (int)rl.rlim_cur
                    : 65536;
    return pb__proc_create(pool, opts, birth, c, impl);
}

static int fork_create(pb_pool *pool, const pb_options *opts, void **impl) {
    return create_with(pool, opts, impl, &fork_birth);
}
static int fork_shm_create(pb_pool *pool, const pb_options *opts, void **impl) {
    return create_with(pool, opts, impl, &fork_shm_birth);
}

const pb_backend pb_backend_fork = {
    .version = 2,
    .name = "fork",
    .description = "pre-forked worker processes, framed protocol over pipes",
    .caps = PB_CAP_ASYNC | PB_CAP_CRASH_ISOLATION | PB_CAP_TIMEOUT | PB_CAP_RECYCLE,
    .create = fork_create,
    .dispatch = pb__proc_dispatch,
    .shutdown = pb__proc_shutdown,
    .terminate = pb__proc_terminate,
    .destroy = pb__proc_destroy,
    .wait_progress = pb__proc_wait_progress,
};

/* The same workers, frames in shared memory (transport.h): the pipes are only the death signal and the
 * doorbell. */
const pb_backend pb_backend_fork_shm = {
    .version = 2,
    .name = "fork-shm",
    .description = "pre-forked worker processes, frames in shared-memory rings (futex wake-ups)",
    .caps = PB_CAP_ASYNC | PB_CAP_CRASH_ISOLATION | PB_CAP_TIMEOUT | PB_CAP_RECYCLE,
    .create = fork_shm_create,
    .dispatch = pb__proc_dispatch,
    .shutdown = pb__proc_shutdown,
    .terminate = pb__proc_terminate,
    .destroy = pb__proc_destroy,
    .wait_progress = pb__proc_wait_progress,
};
