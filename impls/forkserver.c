/*
 * forkserver.c - the "forkserver" backend: workers forked by a small helper process that was itself forked
 * early, before the host program grew its heap (Python's multiprocessing "forkserver").
 *
 * Why. A fork worker is a copy of the host at fork time: a host that has already allocated a scenario's
 * inputs (or a previous run's results) shares all those pages copy-on-write with every worker, and each
 * page either side then writes costs a fault and a 4 KiB copy (docs/process-backends.md measures it). A
 * worker forked from a helper that was forked before those allocations inherits a small, clean heap: the
 * task code and the registered tasks (PB_TASK_DEFINE runs before main), nothing the host built since.
 *
 * DESIGN.
 *  - The helper. pb_forkserver_start() forks it from the calling thread; call it early in main(), before
 *    the big allocations (poolbench's `exec` and case children do). A forkserver pool whose process has
 *    no helper starts one itself in pb_pool_create, from the creating thread, and stops it when the last
 *    such pool is gone; an explicit start pins it until pb_forkserver_stop(). The helper resets every
 *    signal disposition, blocks every signal, keeps only stdin/stdout/stderr and its end of a SOCK_SEQPACKET
 *    socketpair (every other fd of the host is closed), and dies with the host: PR_SET_PDEATHSIG(SIGKILL)
 *    with the getppid() check, and EOF on the socket (the host exited or called pb_forkserver_stop), after
 *    which it exits 0 and the host reaps it (waitpid on its pid only).
 *  - A worker. The pool's I/O thread sends one request: the two pipe ends the worker must hold and the
 *    host's current stdin, stdout and stderr (SCM_RIGHTS: a worker writes where a fork worker would, even
 *    when the host redirected its output after the helper was forked), and the signal mask it must run with; the helper answers with the worker's pid or an errno. Requests
 *    from every pool of the process go through one mutex (a request is a few microseconds).
 *  - Whose child. The helper forks with clone(CLONE_PARENT), so a worker is a child of the *host*, a
 *    sibling of the helper, exactly like a fork worker: the pool reaps it with waitpid(pid), watches it
 *    with a pidfd, gets SIGCHLD for it, and its PR_SET_PDEATHSIG follows the host. Nothing in procpool.c
 *    knows the difference. The death signal follows the host *thread* that forked the helper (the kernel
 *    sends it when that thread exits): hence the helper is forked by the thread that calls
 *    pb_forkserver_start or pb_pool_create, normally the main thread, never by a pool's I/O thread, which
 *    ends with its pool. A helper that died anyway (killed) fails the next worker start with a message
 *    naming it (a death to the pool's breaker); the next pool created reaps it and starts a new one.
 *  - The worker, between clone and the worker loop, makes only async-signal-safe calls, as in fork.c:
 *    dup2 the host's stdio onto 0-2 and the pipes onto fds 3 and 4, close every fd above, PR_SET_PDEATHSIG with the getppid() check, the
 *    requested signal mask (dispositions are already SIG_DFL in the helper), then pb__worker_main. The
 *    clone is a raw system call (glibc's fork() cannot pass CLONE_PARENT), so glibc's cached thread id of
 *    the worker's only thread is the helper's: glibc itself asks the kernel where that matters (raise,
 *    abort, pthread_kill of oneself), and the helper is single-threaded and holds no lock when it clones.
 *  - Tasks a program registers after the helper was forked (pb_task_register in main, dlopen) are not in
 *    its workers, as with spawn: PB_TASK_DEFINE tasks always are.
 */
#include "proc.h"
#include "syscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define REQUEST_MAGIC 0x50424653u /* "PBFS" */

/* One request: the worker's signal mask; its fds travel as SCM_RIGHTS, in the order of enum fs_fd. */
enum fs_fd { FS_STDIN, FS_STDOUT, FS_STDERR, FS_REQ, FS_RESP, FS_NFDS };
typedef struct fs_request {
    uint32_t magic;
    uint32_t std_present; /* bit i: the host's fd i (0-2) is open and travels; a closed one stays closed */
    sigset_t mask;
} fs_request;

/* The answer: the worker's pid, or 0 and the errno of the failed clone (or EPROTO for a bad request). */
typedef struct fs_reply {
    int32_t pid;
    int32_t error;
} fs_reply;

/* The helper as the host sees it. Guarded by server_lock, which is held for a whole request round trip. */
static pthread_mutex_t server_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    pid_t pid;     /* the helper; 0 when none */
    pid_t owner;   /* getpid() of the process that started it: a fork child of the host has none */
    int sock;      /* the host's end of the socketpair */
    int pinned;    /* started by pb_forkserver_start: stays until pb_forkserver_stop */
    int pools;     /* forkserver pools using it */
} server = {0, 0, -1, 0, 0};

/* ---- the helper process ---- */

static char host_comm[16]; /* the host's thread name, set in the helper (PR_GET_NAME), given to each worker */

/* In the worker, between clone and the worker loop: async-signal-safe only. Never returns. */
static void __attribute__((noreturn)) worker_child(pid_t host, const int fds[FS_NFDS], const sigset_t *mask) {
    /* Move every fd above 4 first, so that the dup2s below cannot clobber one with another. */
    int high[FS_NFDS];
    for (int i = 0; i < FS_NFDS; i++)
        if (fds[i] >= 0 && (high[i] = fcntl(fds[i], F_DUPFD, PB_PROC_RESP_FD + 1)) < 0) _exit(127);
    static const int target[FS_NFDS] = {0, 1, 2, PB_PROC_REQ_FD, PB_PROC_RESP_FD};
    for (int i = 0; i < FS_NFDS; i++)
        if (fds[i] < 0 ? close(target[i]) < 0 && errno != EBADF : dup2(high[i], target[i]) < 0) _exit(127);
    if (close_range(PB_PROC_RESP_FD + 1, ~0u, 0) != 0)
        for (int fd = PB_PROC_RESP_FD + 1; fd < 65536; fd++) close(fd);
    if (pb__worker_child_setup(host) != 0) _exit(127);
    prctl(PR_SET_NAME, host_comm);
    sigprocmask(SIG_SETMASK, mask, NULL);
    _exit(pb__worker_main(PB_PROC_REQ_FD, PB_PROC_RESP_FD));
}

/* Receives one request. 1 with every fd, 0 at EOF, -1 for a malformed request (fds received closed). */
static int receive_request(int sock, fs_request *req, int fds[FS_NFDS]) {
    union {
        char buf[CMSG_SPACE(FS_NFDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {req, sizeof *req};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n;
    do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return 0; /* EOF, or the socket is broken: either way the host is done with us */
    int got = 0, in[FS_NFDS];
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
            if (got < FS_NFDS) in[got] = fd;
            else close(fd);
            got++;
        }
    }
    /* The fds arrive packed: the open std fds in order, then the request and result pipe ends. */
    int want = 2;
    for (int i = FS_STDIN; i <= FS_STDERR; i++) want += n == (ssize_t)sizeof *req && (req->std_present >> i) & 1;
    if (n != (ssize_t)sizeof *req || req->magic != REQUEST_MAGIC || got != want || (msg.msg_flags & MSG_CTRUNC)) {
        for (int i = 0; i < got && i < FS_NFDS; i++) close(in[i]);
        return -1;
    }
    int k = 0;
    for (int i = 0; i < FS_NFDS; i++) fds[i] = i > FS_STDERR || (req->std_present >> i) & 1 ? in[k++] : -1;
    return 1;
}

/* The helper's life: serve requests until EOF on sock. Never returns. */
static void __attribute__((noreturn)) serve(pid_t host, int sock) {
    for (;;) {
        fs_request req;
        int fds[FS_NFDS];
        int got = receive_request(sock, &req, fds);
        if (got == 0) _exit(0);
        fs_reply reply = {0, EPROTO};
        if (got == 1) {
            /* CLONE_PARENT: the worker is the host's child (see DESIGN); SIGCHLD tells the host it ended. */
            long pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), NULL, NULL, NULL, 0UL);
            if (pid == 0) {
                close(sock);
                worker_child(host, fds, &req.mask);
            }
            reply.pid = pid > 0 ? (int32_t)pid : 0;
            reply.error = pid > 0 ? 0 : errno;
            for (int i = 0; i < FS_NFDS; i++)
                if (fds[i] >= 0) close(fds[i]);
        }
        ssize_t w;
        do w = send(sock, &reply, sizeof reply, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        if (w != (ssize_t)sizeof reply) _exit(0);
    }
}

/* The helper right after fork: async-signal-safe only (the host may have had other threads). */
static void __attribute__((noreturn)) helper_child(pid_t host, int sock) {
    pb__child_default_signals();
    /* Signals stay blocked (they were blocked around fork): the helper is stopped by EOF or by SIGKILL. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != host) _exit(0);
    /* Keep stdin, stdout, stderr and the socket: nothing else of the host reaches the workers. */
    if (sock > 3) close_range(3, (unsigned)sock - 1, 0);
    close_range((unsigned)sock + 1, ~0u, 0);
    prctl(PR_GET_NAME, host_comm); /* the workers take the host's name back (ps shows them as fork workers) */
    prctl(PR_SET_NAME, "pb-forkserver");
    serve(host, sock);
}

/* ---- the host side ---- */

/* Forks the helper (server_lock held). 0, or a negative error with pb__set_error detail. */
static int server_start_locked(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return pb__set_error(-errno, "cannot start the forkserver (socketpair): %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t host = getpid();
    pid_t pid = pb__sys.fork();
    if (pid == 0) {
        close(sv[0]);
        helper_child(host, sv[1]);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return pb__set_error(-e, "cannot start the forkserver (fork): %s", strerror(e));
    }
    server.pid = pid;
    server.owner = host;
    server.sock = sv[0];
    return 0;
}

/* Closes our end (EOF: the helper exits) and reaps it (server_lock held). */
static void server_stop_locked(void) {
    if (server.pid <= 0) return;
    close(server.sock);
    int st;
    while (waitpid(server.pid, &st, 0) < 0 && errno == EINTR) {
    }
    server.pid = 0;
    server.sock = -1;
    server.pinned = 0;
}

/* A fork child of the host inherits our bookkeeping but not the helper: forget it there (the socket is
 * the parent's; its copy is closed, the parent's helper left alone). */
static void server_forget_if_inherited_locked(void) {
    if (server.pid > 0 && server.owner != getpid()) {
        close(server.sock);
        server.pid = 0;
        server.sock = -1;
        server.pinned = 0;
        server.pools = 0;
    }
}

int pb_forkserver_start(void) {
    pthread_mutex_lock(&server_lock);
    server_forget_if_inherited_locked();
    int rc = server.pid > 0 ? 0 : server_start_locked();
    if (rc == 0) server.pinned = 1;
    pthread_mutex_unlock(&server_lock);
    return rc;
}

void pb_forkserver_stop(void) {
    pthread_mutex_lock(&server_lock);
    server_forget_if_inherited_locked();
    server.pinned = 0;
    if (server.pools == 0) server_stop_locked();
    pthread_mutex_unlock(&server_lock);
}

int pb_forkserver_pid(void) {
    pthread_mutex_lock(&server_lock);
    server_forget_if_inherited_locked();
    int pid = server.pid;
    pthread_mutex_unlock(&server_lock);
    return pid;
}

/* One request round trip (server_lock held). 0 with *pid, or a negative errno with a message. */
static int request_worker_locked(int req_rd, int resp_wr, const sigset_t *mask, pid_t *pid, char *err,
                                 size_t errlen) {
    if (server.pid <= 0) {
        snprintf(err, errlen, "cannot start a worker: the forkserver is not running");
        return -ESRCH;
    }
    fs_request req;
    memset(&req, 0, sizeof req);
    req.magic = REQUEST_MAGIC;
    req.mask = *mask;
    int fds[FS_NFDS], nfds = 0;
    for (int i = FS_STDIN; i <= FS_STDERR; i++)
        if (fcntl(i, F_GETFD) >= 0) {
            req.std_present |= 1u << i;
            fds[nfds++] = i;
        }
    fds[nfds++] = req_rd;
    fds[nfds++] = resp_wr;
    union {
        char buf[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {&req, sizeof req};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof *fds);
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof *fds);
    memcpy(CMSG_DATA(c), fds, nfds * sizeof *fds);
    ssize_t n;
    do n = sendmsg(server.sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    fs_reply reply;
    if (n == (ssize_t)sizeof req) {
        do n = recv(server.sock, &reply, sizeof reply, 0);
        while (n < 0 && errno == EINTR);
    } else if (n >= 0) {
        errno = EPROTO;
        n = -1;
    }
    if (n != (ssize_t)sizeof reply) {
        int e = n < 0 ? errno : EPIPE;
        snprintf(err, errlen, "cannot start a worker: the forkserver (pid %d) is gone (%s)", (int)server.pid,
                 n < 0 ? strerror(e) : "its socket was closed");
        /* Reap it; the next pb_pool_create (on its creating thread) starts a new one. */
        int pools = server.pools, pinned = server.pinned;
        server_stop_locked();
        server.pools = pools;
        server.pinned = pinned;
        return -e;
    }
    if (reply.pid <= 0) {
        int e = reply.error > 0 ? reply.error : EPROTO;
        snprintf(err, errlen, "cannot fork a worker in the forkserver (pid %d): %s", (int)server.pid, strerror(e));
        return -e;
    }
    *pid = reply.pid;
    return 0;
}

/* ---- the backend: birth through the helper ---- */

typedef struct forkserver_ctx {
    sigset_t mask; /* the creating thread's signal mask, set in each worker */
} forkserver_ctx;

static int forkserver_start_worker(void *vctx, int req_rd, int resp_wr, pid_t *pid, char *err, size_t errlen) {
    const forkserver_ctx *c = vctx;
    pthread_mutex_lock(&server_lock);
    int rc = request_worker_locked(req_rd, resp_wr, &c->mask, pid, err, errlen);
    pthread_mutex_unlock(&server_lock);
    return rc;
}

static const char *forkserver_describe(void *ctx) {
    (void)ctx;
    return "the forkserver's worker";
}

/* After every worker of the pool is gone: the last pool stops a helper it started itself. */
static void forkserver_release(void *ctx) {
    free(ctx);
    pthread_mutex_lock(&server_lock);
    server_forget_if_inherited_locked();
    if (server.pools > 0) server.pools--;
    if (server.pools == 0 && !server.pinned) server_stop_locked();
    pthread_mutex_unlock(&server_lock);
}

static const pb__proc_birth forkserver_birth = {"forkserver", forkserver_start_worker, forkserver_describe,
                                                forkserver_release, NULL, NULL}; /* pipes (no shm variant yet) */

static int forkserver_create(pb_pool *pool, const pb_options *opts, void **impl) {
    forkserver_ctx *c = calloc(1, sizeof *c);
    if (!c) return pb__set_error(-ENOMEM, "out of memory");
    pthread_sigmask(SIG_SETMASK, NULL, &c->mask);
    pthread_mutex_lock(&server_lock);
    server_forget_if_inherited_locked();
    int st;
    if (server.pid > 0 && waitpid(server.pid, &st, WNOHANG) == server.pid) { /* it died (killed): replace it */
        close(server.sock);
        server.pid = 0;
        server.sock = -1;
    }
    int rc = server.pid > 0 ? 0 : server_start_locked(); /* from this (the creating) thread: see DESIGN */
    if (rc == 0) server.pools++;
    pthread_mutex_unlock(&server_lock);
    if (rc < 0) {
        free(c);
        return rc;
    }
    /* pb__proc_create calls forkserver_release on failure too, which gives the reference back. */
    return pb__proc_create(pool, opts, &forkserver_birth, c, impl);
}

const pb_backend pb_backend_forkserver = {
    .version = 2,
    .name = "forkserver",
    .description = "workers forked by a helper forked early (a clean heap, no copy-on-write), pipes",
    .caps = PB_CAP_ASYNC | PB_CAP_CRASH_ISOLATION | PB_CAP_TIMEOUT | PB_CAP_RECYCLE,
    .create = forkserver_create,
    .dispatch = pb__proc_dispatch,
    .shutdown = pb__proc_shutdown,
    .terminate = pb__proc_terminate,
    .destroy = pb__proc_destroy,
    .wait_progress = pb__proc_wait_progress,
};
