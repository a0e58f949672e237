/*
 * procpool.c - the parent side of the process backends: worker processes driven by one I/O thread.
 *
 * fork.c and spawn.c differ only in how a worker is born (a pb__proc_birth); everything else is here.
 *
 * DESIGN.
 *  - Threads. One I/O thread per pool drives every worker (pids, pipes, buffers, in-flight work) and is
 *    the only thread that forks, spawns, reads, kills or reaps them; dispatch() may also hand a job to an
 *    idle worker and write its request from the caller's thread (the fast path below). Forking only
 *    from the I/O thread matters for PR_SET_PDEATHSIG, which fires when the *thread* that created the
 *    child exits: the I/O thread lives exactly as long as the pool. It runs with every signal blocked, so
 *    it never takes the host's signals and a write to a dead worker's pipe leaves a SIGPIPE pending on it
 *    instead of killing the host.
 *  - Queue. dispatch() (any thread) wraps the core's job in a pjob and a *unit* (a range of the job's
 *    items). When nothing is queued and a worker is idle it gives the unit to that worker at once and
 *    writes the request itself (SIGPIPE suppressed in the caller's thread), so a submit costs one thread
 *    wake-up less (and see Lending for the answer). Otherwise it appends the unit to the queue and wakes the I/O thread through an
 *    eventfd when it sleeps in poll(). The I/O thread hands queued units to idle workers. A unit travels
 *    as one REQUEST frame, cut shorter only to respect the frame size limit or a worker's remaining
 *    max_tasks_per_worker budget; the rest of the unit stays at the head of the queue.
 *  - Lending. pb_future_wait() calls the backend's wait_progress (backend.h),
 *    pb__proc_wait_progress(): if a worker is running the awaited job (BUSY, cur.pj->job == job) and there is no task_timeout (whose item clock
 *    stays with the I/O thread), the caller borrows that worker (`lent`) and polls its result pipe
 *    itself, decoding the answer and handing finished jobs to the core in its own thread. The answer then
 *    wakes the caller directly instead of the I/O thread, which then had to wake the caller: the
 *    round trip is two wake-ups like a raw pipe ping-pong, not three. Ownership: exactly one thread
 *    reads a pipe, because reading needs mu and a lent pipe is read only by its borrower; the I/O thread
 *    keeps the pipe in its poll() set all along (so it is never blind to it once the worker is back),
 *    and when poll() reports only lent pipes it lets their borrowers finish (lent_returned, without mu)
 *    and sleeps again. The borrower hands the worker back (under mu) as soon as the job no longer runs
 *    there, at its deadline, on EOF, and on anything that needs the I/O thread: EOF is left in the pipe
 *    for it; a read error or malformed frame is recorded in pending_loss and the I/O thread is woken to
 *    lose_worker() it (only the I/O thread kills, reaps and respawns). Before it kills and closes
 *    everything (terminate, poll failure) the I/O thread recalls every lent worker: it makes recall_fd
 *    readable, which borrowers poll next to the pipe, and waits on lend_cv until none is lent; it lends
 *    no more afterwards. A worker nobody waits for (a callback, an unwaited future) is never lent.
 *  - Results. A worker answers a unit with RESULT frames (one per chunk normally; one per item in
 *    per-item mode). Results are decoded straight into the job's result array; when a job has no item
 *    left without a result it is handed back with pb__job_done().
 *  - Deaths. A worker is gone when its result pipe reaches EOF or when its process exits: each worker's
 *    pidfd (pidfd_open, Linux >= 5.3) sits in the poll() set (and in a borrower's), because EOF never
 *    comes while a child that a task fork()ed still holds the pipes. Where pidfd_open fails, the I/O
 *    thread (and a borrower) instead asks every PB_PROC_ALIVE_CHECK_S whether the worker has exited
 *    (waitid WNOHANG|WNOWAIT, which leaves the status to reap; no SIGCHLD handler, which belongs to the
 *    host). On either sign, every complete frame the worker sent is read and handled first (an answer
 *    and a RETIRE may sit in the buffer or the pipe beside the EOF: a recycle is not a death), only then
 *    is the worker judged. The worker is SIGKILLed (a no-op if it is already exiting; it stops a worker
 *    that merely closed the pipe) and reaped with waitpid() on its own pid, never waitpid(-1), so other
 *    children of the host program are left alone. When waitpid fails (a host that ignores SIGCHLD has
 *    the kernel reap its children), the loss says so and the cause stays unknown (no signal, exit code
 *    -1): it is never taken for a clean exit. Workers also close their pipe ends in any child a task
 *    fork()s (pthread_atfork, worker.c), so that EOF still comes in the common case. Items it had already
 *    reported keep their results. Of the rest, if the unit ran in per-item mode the first unreported item
 *    is exactly the one that was running (so is the only unreported item of any unit): it fails as
 *    WORKER_DIED (with the signal or exit code) and the rest of the unit is queued again. If the unit ran
 *    as a whole chunk with several items unreported we cannot know which one crashed, so they are all
 *    queued again in per-item mode (and stay in it), and only the item that crashes again fails.
 *    Consequence: an item may be executed more than once, so tasks should be pure. A re-run costs one
 *    worker death more, which the crash-loop breaker counts like any other. A malformed frame from a
 *    worker (PB_EPROTO) is handled the same way, after a SIGKILL.
 *  - Timeouts. With task_timeout > 0 every unit runs in per-item mode and the I/O thread keeps a deadline
 *    for the item in progress (restarted at each item's result). A worker past it is drained, SIGKILLed,
 *    reaped and respawned; its item fails as TIMED_OUT.
 *  - Recycling. The worker itself counts items and watches its RSS; it sends RETIRE and exits 0, and the
 *    slot gets a fresh worker (workers_recycled, not a death). Unreported items go back to the queue.
 *  - Crash-loop breaker. Deaths (not timeouts, not recycling) are remembered until some item finishes OK.
 *    When more than crashloop_deaths of them fall within crashloop_window seconds the pool is broken:
 *    it stops respawning, every queued and future item fails as BROKEN with a message saying why, and
 *    items already running on surviving workers finish normally.
 *  - Start-up. create() starts the I/O thread, which starts every worker and sends each the INIT frame;
 *    create() returns when all have answered READY, or fails (naming the program, the signal or exit code,
 *    or the initializer's message) when one dies, answers nonsense, or stays silent past
 *    PB_PROC_HANDSHAKE_S. Nothing is left behind on failure.
 *  - System calls that fail. Every fallible call goes through pb__sys (syscalls.h), so tests can fail
 *    each one. During start-up any failure fails create() with a message naming the call. Afterwards:
 *    a worker that cannot be started counts as a death and is retried after PB_PROC_RETRY_S; a failed
 *    read or write on a worker's pipes loses that worker like a death (it is SIGKILLed, so it cannot sit
 *    waiting for a request that never comes, and the message names the call); EINTR and EAGAIN are
 *    retried; poll() failing (ENOMEM) is retried, and if it never recovers the pool breaks (poll_failed)
 *    instead of leaving jobs waiting for a thread that can no longer wait.
 *  - Buffers. A worker's input and output buffers grow to the largest frame; once empty again, any over
 *    PB_PROC_BUFFER_KEEP is freed, so one huge payload is not pinned (twice) for the pool's life.
 *  - Stop. shutdown() closes every request pipe (EOF: workers exit 0) and reaps them, killing any that
 *    outstays PB_PROC_CLOSE_S. terminate() SIGKILLs and reaps every worker and completes what is held as
 *    TERMINATED (keeping the results already received).
 *
 * Locking: one mutex, `mu`, guards everything shared: the queue, the workers, the jobs' progress, the
 * breaker, the stop request and the start-up handshake. The I/O thread holds it all the time except
 * in poll() and while it calls into the core; dispatch() holds it briefly. mu is a leaf: nothing else is
 * locked while it is held, and pb__job_done / pb__job_claim (which take the core's mutex and may run user
 * callbacks that submit work) are called without it, the one exception being the claim of a job inside
 * dispatch(), which cannot call back (see there). A borrower (Lending) likewise takes mu alone and calls
 * pb__job_done after releasing it; the I/O thread waits for borrowers on lend_cv (with mu) or, after
 * poll(), by reading the atomic `lent` flags without any lock. Forks, spawns and reaping a SIGKILLed worker happen
 * under mu; they are short, and only delay a concurrent dispatch().
 */
#include "proc.h"
#include "syscalls.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h> /* INFINITY */
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PB_PROC_HANDSHAKE_S 10.0 /* a worker must answer INIT within this long */
#define PB_PROC_CLOSE_S 5.0      /* after EOF on its request pipe a worker must exit within this long */
#define PB_PROC_RETRY_S 0.05     /* delay before retrying a worker that could not be started */
#define PB_PROC_READ_CHUNK (64u * 1024u)
#define PB_PROC_POLL_RETRIES 100 /* consecutive poll() failures (10 ms apart) before the pool gives up */
#define PB_PROC_LEND_SPIN_S 50e-6 /* how long the I/O thread yields to callers reading lent workers */
#define PB_PROC_ALIVE_CHECK_S 0.2 /* without a pidfd: how often a worker is checked for having exited */

/* A pjob is the backend's view of one core job: the number of its items still without a result. */
typedef struct pjob {
    pb__job *job;
    size_t remaining;
    int claimed; /* pb__job_claim said yes */
    struct pjob *done_next;
} pjob;

/* A range of a job's items waiting in the queue or running on a worker. */
typedef struct unit {
    struct unit *next;
    pjob *pj;
    size_t begin, end;
    int per_item; /* run with PB_WIRE_F_PER_ITEM */
} unit;

typedef enum wstate {
    W_EMPTY,    /* no process in this slot (not started yet, or waiting to be restarted) */
    W_STARTING, /* INIT sent, waiting for READY */
    W_IDLE,
    W_BUSY,     /* running `cur` */
    W_RETIRING, /* sent RETIRE: will exit 0 */
    W_CLOSING   /* request pipe closed by us: will exit 0 */
} wstate;

typedef struct worker {
    wstate state;
    pid_t pid;
    int pidfd;           /* readable once pid has exited; -1 when pidfd_open failed (see Deaths) */
    unsigned gen;        /* bumped when the process is reaped: poll() results for an older one are stale */
    int req_fd;          /* parent's write end of the request pipe, non-blocking */
    int resp_fd;         /* parent's read end of the result pipe, non-blocking */
    double deadline;     /* STARTING: handshake; BUSY with timeouts: current item; CLOSING: exit; EMPTY: retry */
    int replacing;       /* the next start replaces a lost worker (counts as a respawn) */
    int init_failed;     /* its READY said the initializer failed: it is about to exit */
    unit cur;            /* BUSY: the unit it runs */
    size_t next_report;  /* BUSY: the first item of cur without a result */
    uint64_t budget;     /* items it may still be sent (max_tasks_per_worker), UINT64_MAX = unlimited */
    pb_wbuf out;         /* bytes to write to req_fd, from out_pos */
    size_t out_pos;
    pb_wbuf in;          /* bytes read from resp_fd not yet parsed, from in_pos */
    size_t in_pos;
    char io_why[120];    /* why a read or write on its pipes failed, for the loss message ("" = none) */
    atomic_int lent;     /* a waiting caller reads resp_fd (see "Lending"); the I/O thread must not.
                          * Written under mu; the I/O thread also peeks at it without mu after poll() */
    int pending_loss;    /* that caller found it lost: the I/O thread must lose_worker() it */
    const char *pending_why; /* ... with this protocol error (static string), or NULL (EOF / io_why) */
} worker;

typedef struct proc_pool {
    pb_pool *pool;
    const pb_options *opts; /* the core's normalized copy; lives as long as the pool */
    const pb__proc_birth *birth;
    void *ctx;
    size_t max_item, max_frame;
    pb_wbuf init_frame; /* the INIT frame, encoded once */
    int wake_fd;
    pthread_t io;
    int io_running;

    pthread_mutex_t mu; /* guards everything below (see Locking) */
    pthread_cond_t cv;  /* start-up finished; stop requested (for an I/O thread parked by poll_failed) */
    pthread_cond_t lend_cv; /* a lent worker was handed back (the I/O thread waits for it: io_waits_lend) */
    int recall_fd;      /* eventfd, readable for good once the I/O thread wants every lent worker back */
    int nlent;          /* workers lent to waiting callers */
    int no_lend;        /* recalled (terminate, poll failure): lend no more */
    int io_waits_lend;  /* the I/O thread sleeps on lend_cv */
    unit *qhead, *qtail;
    int stop;          /* 0 running, 1 shutdown, 2 terminate */
    int sleeping;      /* the I/O thread is (about to be) in poll(): dispatch must wake it */
    int startup_done;
    int startup_rc;
    char startup_msg[512];
    int broken;
    char broken_msg[512];

    worker *w;
    int nworkers;
    int starting; /* still in create(): a lost worker fails the pool instead of being respawned */
    int stop_seen; /* `stop` as the I/O thread last acted on it */
    char init_error[PB_WIRE_MSG_MAX + 1]; /* what the last failed initializer said (for death messages) */
    double *deaths; /* ring of the last crashloop_deaths + 1 death times since the last ok item */
    int ndeaths, death_pos, death_cap;
    pjob *done_head; /* jobs to hand back, outside any lock */
    double next_alive_check; /* workers without a pidfd: when to check them next (see Deaths) */
} proc_pool;

/* ---- small helpers ---- */

static void close_fd(int *fd) {
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static pid_t waitpid_retry(pid_t pid, int *status) {
    pid_t r;
    do r = pb__sys.waitpid(pid, status, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

/* 1 when pid (our unreaped child) has exited, without reaping it; for workers without a pidfd. */
static int exited_unreaped(pid_t pid) {
    siginfo_t si;
    si.si_pid = 0;
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0) return si.si_pid != 0;
    return errno == ECHILD; /* reaped by the kernel already (the host ignores SIGCHLD) */
}

/* "was killed by signal 11 (SIGSEGV)" / "exited with code 3" into buf; sets *sig and *code. */
static void describe_status(int st, char *buf, size_t len, int *sig, int *code) {
    *sig = 0;
    *code = -1;
    if (WIFSIGNALED(st)) {
        *sig = WTERMSIG(st);
        const char *abbrev = sigabbrev_np(*sig);
        snprintf(buf, len, "was killed by signal %d (SIG%s)", *sig, abbrev ? abbrev : "?");
    } else if (WIFEXITED(st)) {
        *code = WEXITSTATUS(st);
        snprintf(buf, len, "exited with code %d", *code);
    } else {
        snprintf(buf, len, "ended with wait status 0x%x", st);
    }
}

/* Moves fd to a number >= 5 (CLOEXEC) so that a child's dup2 onto 3 and 4 cannot clobber it. */
static int fd_high(int *fd) {
    if (*fd >= 5) return 0;
    int n = pb__sys.fcntl(*fd, F_DUPFD_CLOEXEC, 5);
    if (n < 0) return -errno;
    close(*fd);
    *fd = n;
    return 0;
}

static void job_finished_items(proc_pool *pp, pjob *pj, size_t n) {
    pj->remaining -= n;
    if (pj->remaining == 0) {
        pj->done_next = pp->done_head;
        pp->done_head = pj;
    }
}

/* Hands finished jobs back to the core. I/O thread, mu held: released while the core runs (it takes its
 * own mutex and may run user callbacks that submit more work). */
static void flush_done(proc_pool *pp) {
    if (!pp->done_head) return;
    pjob *list = pp->done_head;
    pp->done_head = NULL;
    pthread_mutex_unlock(&pp->mu);
    while (list) {
        pjob *pj = list;
        list = pj->done_next;
        pb__job_done(pp->pool, pj->job);
        free(pj);
    }
    pthread_mutex_lock(&pp->mu);
}

/* Fails items [begin, end) of pj that have no result yet with status and message. */
static void fail_range(proc_pool *pp, pjob *pj, size_t begin, size_t end, int status, const char *msg) {
    for (size_t i = begin; i < end; i++) {
        pb__result_fail(&pj->job->results[i], status, "%s", msg);
        pj->job->results[i].signal = 0;
        pj->job->results[i].exit_code = -1; /* the public contract: -1 unless a worker exited */
    }
    job_finished_items(pp, pj, end - begin);
}

/* The first unit of a job lives in the pjob's allocation (one malloc per job); others are separate. */
static void free_unit(unit *u) {
    if (u != (unit *)(u->pj + 1)) free(u);
}

/* ---- the queue (mu held) ---- */

static void q_push_back(proc_pool *pp, unit *u) {
    u->next = NULL;
    if (pp->qtail) pp->qtail->next = u;
    else pp->qhead = u;
    pp->qtail = u;
}

static void q_push_front(proc_pool *pp, unit *u) {
    u->next = pp->qhead;
    pp->qhead = u;
    if (!pp->qtail) pp->qtail = u;
}

static unit *q_pop(proc_pool *pp) {
    unit *u = pp->qhead;
    if (u) {
        pp->qhead = u->next;
        if (!pp->qhead) pp->qtail = NULL;
    }
    return u;
}

/* Queues [begin, end) of pj again at the head (mu held). Allocation failure fails the items instead. */
static void requeue(proc_pool *pp, pjob *pj, size_t begin, size_t end, int per_item) {
    if (begin >= end) return;
    unit *u = malloc(sizeof *u);
    if (!u) {
        fail_range(pp, pj, begin, end, PB_STATUS_WORKER_DIED, "out of memory re-queuing items of a lost worker");
        return;
    }
    *u = (unit){NULL, pj, begin, end, per_item};
    q_push_front(pp, u);
}

/* Fails every queued unit with status (BROKEN or TERMINATED). A job nobody claimed yet may have been
 * cancelled: pb__job_claim completes those as CANCELLED. I/O thread, mu held (released around claims). */
static void fail_queue(proc_pool *pp, int status, const char *msg) {
    unit *u = pp->qhead;
    pp->qhead = pp->qtail = NULL;
    while (u) {
        unit *next = u->next;
        pjob *pj = u->pj;
        if (!pj->claimed) {
            pthread_mutex_unlock(&pp->mu);
            int run = pb__job_claim(pp->pool, pj->job);
            pthread_mutex_lock(&pp->mu);
            if (run) {
                pj->claimed = 1;
                fail_range(pp, pj, u->begin, u->end, status, msg);
                free_unit(u);
            } else {
                free_unit(u);
                free(pj);
            }
        } else {
            fail_range(pp, pj, u->begin, u->end, status, msg);
            free_unit(u);
        }
        u = next;
    }
}

/* ---- the crash-loop breaker (I/O thread, mu held) ---- */

static void breaker_ok(proc_pool *pp) { pp->ndeaths = 0; }

/* Records a death; returns 1 when the breaker trips now. */
static int breaker_death(proc_pool *pp, double now, const char *what) {
    if (pp->broken) return 0;
    pp->deaths[pp->death_pos] = now;
    pp->death_pos = (pp->death_pos + 1) % pp->death_cap;
    if (pp->ndeaths < pp->death_cap) pp->ndeaths++;
    if (pp->ndeaths < pp->death_cap) return 0;
    double oldest = pp->deaths[pp->death_pos]; /* the ring is full: the slot to overwrite next is oldest */
    if (now - oldest > pp->opts->crashloop_window) return 0;
    pp->broken = 1;
    /* the precision bounds `what` so the message always fits (and -Wformat-truncation can prove it) */
    snprintf(pp->broken_msg, sizeof pp->broken_msg,
             "crash-loop breaker tripped: %d worker deaths within %.3g s with no task succeeding "
             "(last: %.200s); the pool stopped respawning workers",
             pp->death_cap, pp->opts->crashloop_window, what);
    return 1;
}

/* ---- starting and losing workers (I/O thread, mu held) ---- */

static int write_pending(proc_pool *pp, worker *w, double now, int user_thread);

static void set_startup_error(proc_pool *pp, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_startup_error(proc_pool *pp, int rc, const char *fmt, ...) {
    if (pp->startup_rc == 0) {
        pp->startup_rc = rc;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pp->startup_msg, sizeof pp->startup_msg, fmt, ap);
        va_end(ap);
    }
}

static int start_worker(proc_pool *pp, worker *w, double now) {
    int req[2] = {-1, -1}, resp[2] = {-1, -1};
    char err[400] = "";
    int rc = 0;
    if (pb__sys.pipe2(req, O_CLOEXEC) != 0 || pb__sys.pipe2(resp, O_CLOEXEC) != 0) {
        rc = -errno;
        snprintf(err, sizeof err, "cannot create pipes for a %s worker (pipe2): %s", pp->birth->kind,
                 strerror(-rc));
        goto fail;
    }
    if ((rc = fd_high(&req[0])) != 0 || (rc = fd_high(&resp[1])) != 0) {
        snprintf(err, sizeof err, "cannot move pipe fds (fcntl F_DUPFD_CLOEXEC): %s", strerror(-rc));
        goto fail;
    }
    /* Non-blocking before the child exists: a blocking pipe would stall the I/O thread, so a failure
     * here must stop the start instead of being ignored. */
    if (pb__sys.fcntl(req[1], F_SETFL, O_NONBLOCK) != 0 || pb__sys.fcntl(resp[0], F_SETFL, O_NONBLOCK) != 0) {
        rc = -errno;
        snprintf(err, sizeof err, "cannot make pipes non-blocking (fcntl F_SETFL): %s", strerror(-rc));
        goto fail;
    }
    pid_t pid = -1;
    rc = pp->birth->start(pp->ctx, req[0], resp[1], &pid, err, sizeof err);
    close_fd(&req[0]);
    close_fd(&resp[1]);
    if (rc != 0) goto fail;

    w->pid = pid;
    w->pidfd = pb__sys.pidfd_open(pid, 0); /* -1: watched by exited_unreaped() instead (see Deaths) */
    w->req_fd = req[1];
    w->resp_fd = resp[0];
    w->state = W_STARTING;
    w->init_failed = 0;
    w->deadline = now + PB_PROC_HANDSHAKE_S;
    w->budget = pp->opts->max_tasks_per_worker ? pp->opts->max_tasks_per_worker : UINT64_MAX;
    w->out.len = w->out_pos = 0;
    w->in.len = w->in_pos = 0;
    w->io_why[0] = '\0';
    if (pb__wbuf_reserve(&w->out, pp->init_frame.len) == 0) {
        memcpy(w->out.data, pp->init_frame.data, pp->init_frame.len);
        w->out.len = pp->init_frame.len;
    }
    pb__count(pp->pool, PB__WORKERS_STARTED, 1);
    if (w->replacing) pb__count(pp->pool, PB__WORKERS_RESPAWNED, 1);
    w->replacing = 0;
    write_pending(pp, w, now, 0);
    return 0;

fail:
    close_fd(&req[0]);
    close_fd(&req[1]);
    close_fd(&resp[0]);
    close_fd(&resp[1]);
    if (pp->starting) {
        set_startup_error(pp, PB_ESPAWN, "%s", err);
    } else {
        /* Cannot start a replacement: count it like a death so that a persistent failure trips the
         * breaker, and retry a little later instead of spinning. */
        pb__count(pp->pool, PB__WORKER_DEATHS, 1);
        breaker_death(pp, now, err);
        w->state = W_EMPTY;
        w->deadline = now + PB_PROC_RETRY_S;
    }
    return rc ? rc : PB_ESPAWN;
}

/* Kills (when kill_it) and reaps w's process, closes its pipes and pidfd. Returns 0 with the wait
 * status in *st, or the errno of a waitpid that failed (then the status is unknown, never "exited 0"). */
static int reap_worker(worker *w, int kill_it, int *st) {
    int err = 0;
    *st = 0;
    if (w->pid > 0) {
        if (kill_it) kill(w->pid, SIGKILL);
        if (waitpid_retry(w->pid, st) < 0) err = errno ? errno : ECHILD;
    }
    w->pid = -1;
    w->gen++;
    w->pending_loss = 0;
    w->pending_why = NULL;
    close_fd(&w->pidfd);
    close_fd(&w->req_fd);
    close_fd(&w->resp_fd);
    w->out.len = w->out_pos = 0;
    w->in.len = w->in_pos = 0;
    return err;
}

/* What to do with the unit a lost worker held. status/msg/sig/code describe the loss. */
static void settle_lost_unit(proc_pool *pp, worker *w, int status, const char *msg, int sig, int code) {
    if (w->state != W_BUSY && w->state != W_RETIRING) return;
    if (!w->cur.pj) return;
    pjob *pj = w->cur.pj;
    size_t k = w->next_report, end = w->cur.end;
    w->cur.pj = NULL;
    if (k >= end) return;
    if (status == PB_STATUS_OK) { /* retiring: not a failure, just run the rest elsewhere */
        requeue(pp, pj, k, end, w->cur.per_item);
        return;
    }
    if (w->cur.per_item || end - k == 1) { /* the item that was running is known */
        pb_result *r = &pj->job->results[k];
        pb__result_fail(r, status, "%s", msg);
        r->signal = sig;
        r->exit_code = code;
        job_finished_items(pp, pj, 1);
        requeue(pp, pj, k + 1, end, 1);
    } else {
        /* Which item crashed is unknown: run them again, reporting one by one, and blame the item
         * that crashes again. */
        requeue(pp, pj, k, end, 1);
    }
}

/* The slot lost its process (death, timeout, protocol error) or retired it: start a new one unless the
 * pool is stopping or broken. */
static void replace_worker(proc_pool *pp, worker *w, double now, int is_loss) {
    w->state = W_EMPTY;
    w->replacing = is_loss;
    w->deadline = 0;
    if (pp->stop || pp->broken) return;
    start_worker(pp, w, now);
}

/* The worker's process is gone or must go. cause: NULL for EOF (look at the exit status), else a
 * protocol error description. */
static void lose_worker(proc_pool *pp, worker *w, double now, const char *proto_why) {
    wstate was = w->state;
    pid_t pid = w->pid;
    int st;
    int wait_err = reap_worker(w, 1, &st);
    char how[160], msg[400];
    int sig = 0, code = -1;
    if (wait_err)
        snprintf(how, sizeof how, "was lost; how it ended is unknown (waitpid: %s)", strerror(wait_err));
    else
        describe_status(st, how, sizeof how, &sig, &code);
    /* After a failed read or write we SIGKILLed it: say why, unless it had died of something else. */
    int killed_by_us = !wait_err && w->io_why[0] && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;

    if (was == W_CLOSING) { /* shutdown: expected */
        w->state = W_EMPTY;
        return;
    }
    /* It said RETIRE and closed its pipe: a recycle, unless its exit status (when known) says otherwise. */
    if (was == W_RETIRING && !proto_why && (wait_err || (WIFEXITED(st) && WEXITSTATUS(st) == 0))) {
        pb__count(pp->pool, PB__WORKERS_RECYCLED, 1);
        settle_lost_unit(pp, w, PB_STATUS_OK, NULL, 0, -1);
        replace_worker(pp, w, now, 0);
        return;
    }
    if (proto_why) {
        snprintf(msg, sizeof msg, "%s worker (pid %d) sent a malformed frame (%s) and was killed", pp->birth->kind,
                 (int)pid, proto_why);
        sig = 0;
        code = -1;
    } else if (killed_by_us) { /* a read or write on its pipes failed, so we killed it (sig = SIGKILL) */
        snprintf(msg, sizeof msg, "%s worker (pid %d) was killed because a %s", pp->birth->kind, (int)pid,
                 w->io_why);
    } else if (w->init_failed) {
        snprintf(msg, sizeof msg, "%s worker (pid %d) %s: %.200s", pp->birth->kind, (int)pid, how, pp->init_error);
    } else {
        snprintf(msg, sizeof msg, "%s worker (pid %d) %s", pp->birth->kind, (int)pid, how);
    }
    if (pp->starting && killed_by_us) {
        set_startup_error(pp, PB_ESPAWN, "%s was lost during start-up: %s", pp->birth->describe(pp->ctx),
                          w->io_why);
        w->state = W_EMPTY;
        return;
    }
    if (pp->starting) { /* create() fails: say which program and how */
        set_startup_error(pp, PB_ESPAWN, "%s %s during start-up%s%s", pp->birth->describe(pp->ctx),
                          proto_why ? "spoke no poolbench worker protocol" : how,
                          proto_why ? ": " : " (is it a program linked with libpoolbench?)",
                          proto_why ? proto_why : "");
        w->state = W_EMPTY;
        return;
    }
    pb__count(pp->pool, PB__WORKER_DEATHS, 1);
    settle_lost_unit(pp, w, PB_STATUS_WORKER_DIED, msg, sig, code);
    if (breaker_death(pp, now, msg)) fail_queue(pp, PB_STATUS_BROKEN, pp->broken_msg);
    replace_worker(pp, w, now, 1);
}

/* ---- talking to workers (mu held; the I/O thread, or dispatch() for give() and write_pending()) ---- */

/* write() that cannot raise SIGPIPE in the calling thread. The I/O thread blocks every signal, so there a
 * write to a dead worker's pipe leaves SIGPIPE pending on that thread, harmlessly. dispatch() writes from
 * the caller's thread: there SIGPIPE is blocked around the write and, if the write raised it, consumed
 * (unless the caller had it blocked already, in which case it is left as the caller would have had it). */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len, int user_thread) {
    if (!user_thread) return pb__sys.write(fd, buf, len);
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n = pb__sys.write(fd, buf, len);
    int e = errno;
    if (n < 0 && e == EPIPE && !sigismember(&old, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return n;
}

/* Writes what is pending in w->out (mu held). 0, or -1 when the write failed: the worker is SIGKILLed so
 * that the EOF on resp_fd follows and the I/O thread handles the loss as usual. The kill matters: after
 * EPIPE the worker is normally exiting anyway, but after any other error (or an EPIPE from a worker that
 * merely closed its request pipe) it would otherwise wait forever for a request that never comes. */
static int write_pending(proc_pool *pp, worker *w, double now, int user_thread) {
    while (w->out_pos < w->out.len) {
        ssize_t n = write_nosigpipe(w->req_fd, w->out.data + w->out_pos, w->out.len - w->out_pos, user_thread);
        if (n > 0) {
            w->out_pos += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return 0;
        } else {
            int e = n < 0 ? errno : EIO;
            w->out.len = w->out_pos = 0; /* drop it, the loss shows up on resp_fd */
            /* EPIPE normally means the worker died: then its exit status is the story, not the write.
             * waitid(WNOWAIT) tells without reaping it (a dying worker may close its pipes a moment
             * before it becomes a zombie: then the message blames the write, and is still true). */
            siginfo_t si;
            si.si_pid = 0;
            int exited = e == EPIPE && w->pid > 0 &&
                         waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0;
            if (!exited && !w->io_why[0])
                snprintf(w->io_why, sizeof w->io_why, "write to its request pipe failed: %s", strerror(e));
            if (w->pid > 0) kill(w->pid, SIGKILL);
            return -1;
        }
    }
    w->out.len = w->out_pos = 0;
    pb__wbuf_trim(&w->out, PB_PROC_BUFFER_KEEP);
    /* The first item starts when the worker can read the whole request. */
    if (w->state == W_BUSY && pp->opts->task_timeout > 0) w->deadline = now + pp->opts->task_timeout;
    return 0;
}

/* Encodes items [u->begin, k) of u as a REQUEST frame into w->out, choosing k: as many as fit in one
 * frame and in the worker's budget. Returns k. */
static size_t encode_request(proc_pool *pp, worker *w, const unit *u) {
    const pb__job *job = u->pj->job;
    const char *name = job->task->name;
    size_t name_len = strlen(name);
    size_t size = PB_WIRE_HEADER + 4 + 2 + name_len;
    size_t k = u->begin;
    uint64_t budget = w->budget;
    while (k < u->end && budget > 0) {
        size_t item = 4 + job->items[k].len;
        if (k > u->begin && size + item > pp->max_frame) break;
        size += item;
        k++;
        budget--;
    }
    w->out.len = w->out_pos = 0;
    if (pb__wbuf_reserve(&w->out, size) != 0) return u->begin;
    int flags = (u->per_item || pp->opts->task_timeout > 0) ? PB_WIRE_F_PER_ITEM : 0;
    long off = pb__wire_begin(&w->out, PB_WIRE_REQUEST, flags, job->id);
    pb__wire_put_u32(&w->out, (uint32_t)u->begin);
    pb__wire_put_u16(&w->out, (uint16_t)name_len);
    pb__wire_put(&w->out, name, name_len);
    for (size_t i = u->begin; i < k; i++) {
        pb__wire_put_u32(&w->out, (uint32_t)job->items[i].len);
        pb__wire_put(&w->out, job->items[i].data, job->items[i].len);
    }
    pb__wire_end(&w->out, off, (uint32_t)(k - u->begin));
    return k;
}

/* Hands (a prefix of) unit u of a claimed job to idle worker w and starts writing the request; the rest
 * of u goes back to the head of the queue. mu held. */
static void give(proc_pool *pp, worker *w, unit *u, double now, int user_thread) {
    pjob *pj = u->pj;
    size_t k = encode_request(pp, w, u);
    if (k == u->begin) { /* out of memory for the frame */
        fail_range(pp, pj, u->begin, u->end, PB_STATUS_WORKER_DIED, "out of memory encoding a request");
        free_unit(u);
        return;
    }
    w->cur = *u;
    w->cur.next = NULL;
    w->cur.end = k;
    w->cur.per_item = u->per_item || pp->opts->task_timeout > 0;
    w->next_report = u->begin;
    w->state = W_BUSY;
    w->deadline = INFINITY; /* the item clock starts when the request is fully written */
    if (w->budget != UINT64_MAX) w->budget -= k - u->begin;
    if (k < u->end) {
        u->begin = k;
        q_push_front(pp, u);
    } else {
        free_unit(u);
    }
    write_pending(pp, w, now, user_thread);
}

static worker *idle_worker(proc_pool *pp) {
    for (int i = 0; i < pp->nworkers; i++)
        if (pp->w[i].state == W_IDLE && pp->w[i].budget > 0) return &pp->w[i];
    return NULL;
}

/* Gives queued work to idle workers. I/O thread, mu held (released around pb__job_claim). */
static void assign_work(proc_pool *pp, double now) {
    worker *w;
    while (pp->qhead && (w = idle_worker(pp)) != NULL) {
        unit *u = q_pop(pp);
        pjob *pj = u->pj;
        if (!pj->claimed) {
            pthread_mutex_unlock(&pp->mu);
            int run = pb__job_claim(pp->pool, pj->job);
            pthread_mutex_lock(&pp->mu);
            if (!run) { /* cancelled: the core completed it */
                free_unit(u);
                free(pj);
                continue;
            }
            pj->claimed = 1;
            /* dispatch() may have taken w while mu was released */
            if (w->state != W_IDLE || w->budget == 0) {
                q_push_front(pp, u);
                continue;
            }
        }
        give(pp, w, u, now, 0);
    }
}

/* Handles one complete frame from w. Returns NULL, or a reason when it is malformed. */
static const char *handle_frame(proc_pool *pp, worker *w, const pb_wire_header *h, const unsigned char *body,
                                double now) {
    pb_wire_reader r;
    pb__wire_reader_init(&r, body, h->body_len);
    switch (h->type) {
    case PB_WIRE_READY: {
        if (w->state != W_STARTING) return "unexpected READY";
        uint8_t status = pb__wire_get_u8(&r);
        uint16_t mlen = pb__wire_get_u16(&r);
        const char *m = pb__wire_get_bytes(&r, mlen);
        /* the length is the worker's word: bound it before it sizes a copy into msg[] */
        if (r.err || mlen > PB_WIRE_MSG_MAX) return "truncated READY";
        if (status != 0) {
            char msg[PB_WIRE_MSG_MAX + 1];
            memcpy(msg, m, mlen);
            msg[mlen] = '\0';
            if (pp->starting) set_startup_error(pp, PB_ESPAWN, "%s", msg);
            memcpy(pp->init_error, msg, (size_t)mlen + 1);
            /* Not a protocol error, but the worker cannot serve: it exits, lose_worker() counts it. */
            w->state = W_IDLE; /* so that its EOF counts as a death (with the breaker) after start-up */
            w->budget = 0;     /* and it gets no work meanwhile */
            w->init_failed = 1;
            return NULL;
        }
        w->state = W_IDLE;
        if (pp->starting) {
            /* count READY workers for create() */
            int all = 1;
            for (int i = 0; i < pp->nworkers; i++)
                if (pp->w[i].state != W_IDLE) all = 0;
            if (all && pp->startup_rc == 0) {
                pp->startup_done = 1;
                pp->starting = 0;
                pthread_cond_broadcast(&pp->cv);
            }
        }
        return NULL;
    }
    case PB_WIRE_RESULT: {
        if (w->state != W_BUSY || !w->cur.pj) return "RESULT while idle";
        pjob *pj = w->cur.pj;
        uint32_t first = pb__wire_get_u32(&r);
        if (r.err || h->id != pj->job->id || first != w->next_report || h->count == 0 ||
            h->count > w->cur.end - w->next_report)
            return "RESULT for items not asked for";
        size_t ok = 0;
        for (uint32_t i = 0; i < h->count; i++) {
            pb_result *res = &pj->job->results[first + i];
            int rc = pb__wire_get_result(&r, pp->max_item, res);
            if (rc == -ENOMEM) {
                pb__result_fail(res, PB_STATUS_WORKER_DIED, "out of memory receiving a result");
            } else if (rc != 0) {
                /* items before i are complete and counted below; i is not */
                w->next_report += i;
                if (ok) breaker_ok(pp);
                job_finished_items(pp, pj, i);
                return "bad result record";
            }
            if (res->status == PB_STATUS_OK) ok++;
        }
        if (r.p != r.end) { /* trailing garbage: the records were fine, keep them, then complain */
            w->next_report += h->count;
            job_finished_items(pp, pj, h->count);
            return "trailing bytes after RESULT records";
        }
        if (ok) breaker_ok(pp);
        w->next_report += h->count;
        if (w->next_report == w->cur.end) {
            w->cur.pj = NULL;
            w->state = W_IDLE;
        } else if (pp->opts->task_timeout > 0) {
            w->deadline = now + pp->opts->task_timeout;
        }
        job_finished_items(pp, pj, h->count);
        return NULL;
    }
    case PB_WIRE_RETIRE:
        if (w->state != W_BUSY && w->state != W_IDLE) return "unexpected RETIRE";
        if (w->state == W_IDLE) w->cur.pj = NULL;
        w->state = W_RETIRING;
        w->budget = 0;
        return NULL;
    default:
        return "unexpected frame type";
    }
}

/* How read_frames() stopped. */
enum read_end {
    READ_DRAINED, /* nothing more to read for now (or, with until_answered, w's unit is answered) */
    READ_EOF,     /* the pipe is at EOF: the worker is gone (a partial frame may be left in w->in) */
    READ_LOST,    /* w can no longer be trusted or heard: a malformed frame, no memory, a read error */
};

/* Reads what w sent and handles every complete frame, mu held. On READ_LOST, *why is the reason (NULL when
 * w->io_why already says it). Every complete frame already in the buffer is handled before the pipe is
 * read again, so an EOF is only ever judged after everything the worker sent before it (an answer and a
 * RETIRE read in one go, by a borrower or by this thread, make a recycle, not a death). With
 * until_answered (a caller that has w on loan, see "Lending") it reads no more once w's unit is answered
 * (frames already read are still handled): anything after that (EOF) is the I/O thread's, which polls the
 * pipe anyway, and the read() that would only say EAGAIN is saved. */
static enum read_end read_frames(proc_pool *pp, worker *w, double now, int until_answered, const char **why) {
    *why = NULL;
    for (;;) {
        /* Handle every complete frame already read. */
        while (w->in.len - w->in_pos >= PB_WIRE_HEADER) {
            pb_wire_header h;
            if (pb__wire_header_decode(w->in.data + w->in_pos, pp->max_frame, &h, why) != 0)
                return READ_LOST;
            size_t frame = PB_WIRE_HEADER + (size_t)h.body_len;
            if (w->in.len - w->in_pos < frame) break;
            *why = handle_frame(pp, w, &h, w->in.data + w->in_pos + PB_WIRE_HEADER, now);
            w->in_pos += frame;
            if (*why) return READ_LOST;
        }
        if (w->in_pos == w->in.len) {
            w->in.len = w->in_pos = 0;
            pb__wbuf_trim(&w->in, PB_PROC_BUFFER_KEEP); /* a huge frame has passed: give its room back */
        }
        if (until_answered && w->state != W_BUSY) return READ_DRAINED;

        /* Make room: at least one read chunk, and the whole of a frame whose header we hold. */
        size_t want = PB_PROC_READ_CHUNK;
        if (w->in.len - w->in_pos >= PB_WIRE_HEADER) {
            pb_wire_header h;
            if (pb__wire_header_decode(w->in.data + w->in_pos, pp->max_frame, &h, why) != 0)
                return READ_LOST;
            size_t frame = PB_WIRE_HEADER + (size_t)h.body_len;
            size_t have = w->in.len - w->in_pos;
            if (frame > have && frame - have > want) want = frame - have;
        }
        if (w->in_pos && w->in.cap - w->in.len < want) { /* compact before growing */
            memmove(w->in.data, w->in.data + w->in_pos, w->in.len - w->in_pos);
            w->in.len -= w->in_pos;
            w->in_pos = 0;
        }
        if (pb__wbuf_reserve(&w->in, want) != 0) {
            *why = "frame too large for memory";
            return READ_LOST;
        }
        ssize_t n = pb__sys.read(w->resp_fd, w->in.data + w->in.len, w->in.cap - w->in.len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return READ_DRAINED;
        if (n == 0) return READ_EOF;
        if (n < 0) {
            if (!w->io_why[0])
                snprintf(w->io_why, sizeof w->io_why, "read from its result pipe failed: %s", strerror(errno));
            return READ_LOST;
        }
        w->in.len += (size_t)n;
    }
}

/* The I/O thread's read: returns 0, or 1 when w was lost (EOF, a malformed frame, a read error) and has
 * been dealt with (lose_worker kills and reaps it). */
static int read_worker(proc_pool *pp, worker *w, double now) {
    const char *why;
    switch (read_frames(pp, w, now, 0, &why)) {
    case READ_DRAINED: return 0;
    case READ_EOF: lose_worker(pp, w, now, w->in.len > w->in_pos ? "truncated frame" : NULL); return 1;
    default: lose_worker(pp, w, now, why); return 1;
    }
}

/* w's process has exited (its pidfd, or exited_unreaped()): the pipe may still be open (a child of its
 * task holds it), so no EOF is coming. Handle everything it wrote before it went, then lose it as if at
 * EOF. I/O thread, mu held. */
static void worker_exited(proc_pool *pp, worker *w, double now) {
    if (read_worker(pp, w, now)) return; /* EOF or a loss: already dealt with */
    lose_worker(pp, w, now, w->in.len > w->in_pos ? "truncated frame" : NULL);
}

/* read_worker() for a caller that has w on loan (see "Lending"), mu held: handles every complete frame
 * but leaves whatever needs the I/O thread (a loss: reaping, respawning, the breaker) to it. Returns 0
 * when the pipe is drained for now or w's unit is answered, 1 when w must go back to the I/O thread now:
 * EOF (left in the pipe, which the I/O thread polls too) or a loss, recorded in pending_loss. */
static int lent_read(proc_pool *pp, worker *w, double now) {
    const char *why;
    switch (read_frames(pp, w, now, 1, &why)) {
    case READ_DRAINED: return 0;
    case READ_EOF: return 1;
    default:
        w->pending_loss = 1;
        w->pending_why = why;
        return 1;
    }
}

/* wait_progress (backend.h, version 2): a caller waiting for a job that a worker is running borrows that
 * worker and reads its answer itself, so the answer wakes the caller directly instead of the I/O thread, which then
 * had to wake the caller. See "Lending" in DESIGN. Caller's thread; takes mu. */
void pb__proc_wait_progress(void *impl, pb__job *job, double deadline) {
    proc_pool *pp = impl;
    pthread_mutex_lock(&pp->mu);
    worker *w = NULL;
    /* With task_timeout the I/O thread keeps the item clock: leave those workers to it. */
    if (!pp->no_lend && !pp->stop && pp->opts->task_timeout <= 0) {
        for (int i = 0; i < pp->nworkers && !w; i++) {
            worker *c = &pp->w[i];
            if (c->state == W_BUSY && c->cur.pj && c->cur.pj->job == job && !c->lent && !c->pending_loss &&
                c->resp_fd >= 0)
                w = c;
        }
    }
    if (!w) {
        pthread_mutex_unlock(&pp->mu);
        return;
    }
    pjob *pj = w->cur.pj;
    /* Both stay open while lent: only the I/O thread closes them, and not while lent. */
    int fd = w->resp_fd, pidfd = w->pidfd;
    pid_t pid = w->pid;
    atomic_store(&w->lent, 1);
    pp->nlent++;
    for (;;) {
        int ms = -1;
        if (deadline >= 0) {
            double left = deadline - pb__now();
            if (left <= 0) break;
            ms = left > 3600.0 ? 3600000 : (int)(left * 1000.0) + 1;
        }
        if (pidfd < 0 && (ms < 0 || ms > PB_PROC_ALIVE_CHECK_S * 1000)) ms = (int)(PB_PROC_ALIVE_CHECK_S * 1000);
        pthread_mutex_unlock(&pp->mu);
        struct pollfd p[3] = {{.fd = fd, .events = POLLIN},
                              {.fd = pp->recall_fd, .events = POLLIN},
                              {.fd = pidfd, .events = POLLIN}};
        /* not pb__sys.poll: injected poll failures are the I/O thread's story */
        int r = poll(p, pidfd >= 0 ? 3 : 2, ms);
        int e = errno;
        /* The worker exited (a child of its task may hold the pipe open, so EOF may never come): read
         * what it sent, then hand it back for the I/O thread to judge (see Deaths). */
        int exited = r > 0 ? pidfd >= 0 && p[2].revents : r == 0 && pidfd < 0 && exited_unreaped(pid);
        pthread_mutex_lock(&pp->mu);
        if (pp->no_lend || (r < 0 && e != EINTR)) break;
        if ((r > 0 && p[0].revents) || exited) {
            if (lent_read(pp, w, pb__now()) || exited) break;
        }
        if (w->state != W_BUSY || w->cur.pj != pj) break; /* the job is done here (or the worker retires) */
    }
    /* Hand w back. The I/O thread polls its pipe all along, so it needs a wake-up only for what it cannot
     * see there: a loss found here, or queued work that w, now idle, could take. */
    atomic_store(&w->lent, 0);
    pp->nlent--;
    int signal_io = pp->io_waits_lend;
    int wake = w->pending_loss || (pp->sleeping && pp->qhead);
    if (wake) pp->sleeping = 0;
    pjob *list = pp->done_head; /* hand finished jobs back here, as flush_done() would */
    pp->done_head = NULL;
    pthread_mutex_unlock(&pp->mu);
    /* After unlock is safe: the pool outlives a pb_future_wait in progress (the core's contract). */
    if (signal_io) pthread_cond_broadcast(&pp->lend_cv);
    if (wake) {
        uint64_t one = 1;
        ssize_t wr = write(pp->wake_fd, &one, sizeof one);
        (void)wr;
    }
    while (list) {
        pjob *d = list;
        list = d->done_next;
        pb__job_done(pp->pool, d->job);
        free(d);
    }
}

/* A deadline passed for w (handshake, item timeout, close). */
static void worker_deadline(proc_pool *pp, worker *w, double now) {
    switch (w->state) {
    case W_STARTING:
        if (pp->starting) {
            set_startup_error(pp, PB_ESPAWN, "%s did not answer the start-up handshake within %.0f s",
                              pp->birth->describe(pp->ctx), PB_PROC_HANDSHAKE_S);
            int st;
            reap_worker(w, 1, &st);
            w->state = W_EMPTY;
        } else {
            lose_worker(pp, w, now, "no answer to the start-up handshake");
        }
        break;
    case W_BUSY: {
        /* Whatever it managed to send before the deadline still counts. */
        if (read_worker(pp, w, now)) return;
        if (w->state != W_BUSY || !w->cur.pj || now < w->deadline) return;
        pid_t pid = w->pid;
        int st;
        reap_worker(w, 1, &st);
        char msg[200];
        snprintf(msg, sizeof msg, "task ran past the %.3g s timeout; its %s worker (pid %d) was killed",
                 pp->opts->task_timeout, pp->birth->kind, (int)pid);
        pb__count(pp->pool, PB__TIMEOUTS, 1);
        settle_lost_unit(pp, w, PB_STATUS_TIMED_OUT, msg, 0, -1);
        replace_worker(pp, w, now, 1);
        break;
    }
    case W_CLOSING: {
        int st;
        reap_worker(w, 1, &st);
        w->state = W_EMPTY;
        break;
    }
    case W_EMPTY:
        replace_worker(pp, w, now, w->replacing); /* clears the deadline; a failed start sets a new one */
        break;
    default:
        break;
    }
}

static int has_deadline(const proc_pool *pp, const worker *w) {
    switch (w->state) {
    case W_STARTING: case W_CLOSING: return 1;
    case W_BUSY: return pp->opts->task_timeout > 0;
    case W_EMPTY: return w->deadline > 0 && !pp->stop_seen;
    default: return 0;
    }
}

/* Closes the request pipe of every worker that has nothing to do, so that it exits (shutdown). */
static void close_idle(proc_pool *pp, double now) {
    for (int i = 0; i < pp->nworkers; i++) {
        worker *w = &pp->w[i];
        if (w->state == W_IDLE || w->state == W_STARTING) {
            close_fd(&w->req_fd);
            w->out.len = w->out_pos = 0;
            w->state = W_CLOSING;
            w->deadline = now + PB_PROC_CLOSE_S;
        }
    }
}

/* Takes every lent worker back and lends no more (terminate, poll failure). I/O thread, mu held
 * (released while it waits). Callers poll recall_fd next to the result pipe, so they return at once. */
static void recall_lent(proc_pool *pp) {
    pp->no_lend = 1;
    if (!pp->nlent) return;
    uint64_t one = 1;
    ssize_t wr = write(pp->recall_fd, &one, sizeof one); /* never read: it stays readable */
    (void)wr;
    while (pp->nlent) {
        pp->io_waits_lend = 1;
        pthread_cond_wait(&pp->lend_cv, &pp->mu);
    }
    pp->io_waits_lend = 0;
}

/* poll() said w's result pipe is readable while a caller holds w: that caller is awake on the same
 * event (or about to give up on its deadline) and hands w back within moments. Waiting for it, rather
 * than polling again, keeps the I/O thread from spinning on a readable fd it may not read. I/O thread,
 * mu held (released while it waits). */
static void wait_lent(proc_pool *pp, worker *w) {
    while (w->lent) {
        pp->io_waits_lend = 1;
        pthread_cond_wait(&pp->lend_cv, &pp->mu);
    }
    pp->io_waits_lend = 0;
}

/* Signals every live worker first, then reaps them: they die in parallel instead of one after the other
 * (8 idle workers: about 0.95 ms down to 0.75 ms per teardown). */
static void kill_and_reap_all(proc_pool *pp) {
    for (int i = 0; i < pp->nworkers; i++)
        if (pp->w[i].pid > 0) kill(pp->w[i].pid, SIGKILL);
    for (int i = 0; i < pp->nworkers; i++)
        if (pp->w[i].pid > 0) {
            int st;
            reap_worker(&pp->w[i], 0, &st); /* already signalled */
        }
}

/* terminate(): kill everything and complete all held work with status (TERMINATED, or BROKEN). */
static void kill_all(proc_pool *pp, int status, const char *msg) {
    recall_lent(pp); /* a lent fd must not be closed under a caller that polls it */
    kill_and_reap_all(pp);
    for (int i = 0; i < pp->nworkers; i++) {
        worker *w = &pp->w[i];
        if ((w->state == W_BUSY || w->state == W_RETIRING) && w->cur.pj) {
            fail_range(pp, w->cur.pj, w->next_report, w->cur.end, status, msg);
            w->cur.pj = NULL;
        }
        w->state = W_EMPTY;
    }
    fail_queue(pp, status, msg);
}

/* poll() kept failing: the I/O thread cannot serve the pool any more. During start-up create() fails with
 * the reason. Afterwards the pool is broken: workers are killed, what they held and what is queued fails
 * as BROKEN, and dispatch() fails new work at once (it checks `broken`), so nothing ever waits for this
 * thread again; it then waits for the stop request so that shutdown and destroy work as usual. I/O
 * thread, mu held. */
static void poll_failed(proc_pool *pp, int err) {
    if (pp->starting) {
        set_startup_error(pp, PB_ESPAWN, "the %s pool cannot wait for its workers (poll): %s", pp->birth->kind,
                          strerror(err));
        kill_all(pp, PB_STATUS_TERMINATED, "the pool was terminated before the task finished");
        return;
    }
    if (!pp->broken) {
        pp->broken = 1;
        snprintf(pp->broken_msg, sizeof pp->broken_msg,
                 "the %s pool stopped: it cannot wait for its workers (poll): %s", pp->birth->kind, strerror(err));
    }
    kill_all(pp, PB_STATUS_BROKEN, pp->broken_msg);
    flush_done(pp);
    while (!pp->stop) pthread_cond_wait(&pp->cv, &pp->mu);
}

static int any_alive(const proc_pool *pp) {
    for (int i = 0; i < pp->nworkers; i++)
        if (pp->w[i].pid > 0) return 1;
    return 0;
}

/* What an entry of the I/O thread's poll() set watches. */
enum slot_kind { SLOT_WAKE, SLOT_RESULTS, SLOT_REQUESTS, SLOT_EXIT };
typedef struct slot {
    enum slot_kind kind;
    int worker;   /* index in pp->w (not SLOT_WAKE) */
    unsigned gen; /* the worker's gen when the set was built: a reaped process's entries are stale */
} slot;

/* After poll(), without mu: did only result pipes of lent workers wake us? Their callers were woken by
 * the same answers and read them. (A worker's exit is never left to its borrower alone.) */
static int only_lent_woke(proc_pool *pp, const struct pollfd *pfd, const slot *sl, int np) {
    int any = 0;
    for (int j = 0; j < np; j++) {
        if (!pfd[j].revents) continue;
        if (sl[j].kind != SLOT_RESULTS || !atomic_load(&pp->w[sl[j].worker].lent)) return 0;
        any = 1;
    }
    return any;
}

/* ... then give those callers a moment to hand their workers back, still without mu: taking mu now would
 * only make the callers (and their next submit) wait for this thread. 1 when all were handed back. */
static int lent_returned(proc_pool *pp, const struct pollfd *pfd, const slot *sl, int np) {
    double until = pb__now() + PB_PROC_LEND_SPIN_S;
    for (;;) {
        int still = 0;
        for (int j = 0; j < np && !still; j++)
            if (pfd[j].revents && sl[j].kind == SLOT_RESULTS && atomic_load(&pp->w[sl[j].worker].lent)) still = 1;
        if (!still) return 1;
        if (pb__now() >= until) return 0;
        sched_yield();
    }
}

static void *io_main(void *arg) {
    proc_pool *pp = arg;
    int n = pp->nworkers;
    struct pollfd *pfd = calloc((size_t)(3 * n + 1), sizeof *pfd);
    slot *sl = calloc((size_t)(3 * n + 1), sizeof *sl);
    if (!pfd || !sl) {
        pthread_mutex_lock(&pp->mu);
        set_startup_error(pp, -ENOMEM, "out of memory starting the I/O thread");
        pthread_mutex_unlock(&pp->mu);
        n = 0;
    }

    pthread_mutex_lock(&pp->mu); /* held throughout, except in poll() and calls into the core */
    double now = pb__now();
    int poll_failures = 0;
    for (int i = 0; i < n && pp->startup_rc == 0; i++) start_worker(pp, &pp->w[i], now);

    for (;;) {
        now = pb__now();
        int stop = pp->stop_seen = pp->stop;
        int failed = pp->starting && pp->startup_rc != 0;
        int broken = pp->broken;

        if (failed || stop == 2) {
            kill_all(pp, PB_STATUS_TERMINATED, "the pool was terminated before the task finished");
            flush_done(pp);
            break;
        }
        if (broken) fail_queue(pp, PB_STATUS_BROKEN, pp->broken_msg);
        else assign_work(pp, now);
        if (stop == 1) {
            close_idle(pp, now);
            if (!any_alive(pp)) break;
        }
        flush_done(pp);

        /* Poll set: the wake fd, every live worker's result pipe and pidfd, pending request writes. */
        int np = 0;
        double next = INFINITY;
        pfd[np] = (struct pollfd){.fd = pp->wake_fd, .events = POLLIN};
        sl[np++] = (slot){SLOT_WAKE, -1, 0};
        for (int i = 0; i < n; i++) {
            worker *w = &pp->w[i];
            if (w->resp_fd >= 0) {
                pfd[np] = (struct pollfd){.fd = w->resp_fd, .events = POLLIN};
                sl[np++] = (slot){SLOT_RESULTS, i, w->gen};
            }
            if (w->req_fd >= 0 && w->out_pos < w->out.len) {
                pfd[np] = (struct pollfd){.fd = w->req_fd, .events = POLLOUT};
                sl[np++] = (slot){SLOT_REQUESTS, i, w->gen};
            }
            if (w->pidfd >= 0) {
                pfd[np] = (struct pollfd){.fd = w->pidfd, .events = POLLIN};
                sl[np++] = (slot){SLOT_EXIT, i, w->gen};
            } else if (w->pid > 0 && pp->next_alive_check < next) {
                next = pp->next_alive_check; /* no pidfd: look at it now and then (see Deaths) */
            }
            if (has_deadline(pp, w) && w->deadline < next) next = w->deadline;
        }
        int timeout = -1;
        if (next != INFINITY) {
            double ms = (next - now) * 1000.0; /* rounded up below: never wake just before a deadline */
            timeout = ms <= 0 ? 0 : ms > 3600e3 ? 3600000 : (int)ms + 1;
        }

        /* flush_done() may have released mu: look again before sleeping. */
        int again = pp->stop != stop || (pp->qhead && (pp->broken || idle_worker(pp)));
        if (again) timeout = 0;
        pp->sleeping = !again;
        pthread_mutex_unlock(&pp->mu);

        int r, poll_errno;
        for (;;) {
            r = pb__sys.poll(pfd, (nfds_t)np, timeout);
            poll_errno = errno;
            /* Woken only by answers that lent workers' callers are reading: once they have handed the
             * workers back, nothing changed that this thread must act on (a caller that leaves it work,
             * a loss or queued work for the idle worker, writes wake_fd, since `sleeping` is still set;
             * bytes it left in the pipe make poll() return at once), so sleep again with the same set,
             * and the deadline it had. */
            if (r <= 0 || !only_lent_woke(pp, pfd, sl, np) || !lent_returned(pp, pfd, sl, np)) break;
            if (next != INFINITY) {
                double ms = (next - pb__now()) * 1000.0;
                timeout = ms <= 0 ? 0 : ms > 3600e3 ? 3600000 : (int)ms + 1;
            }
        }

        pthread_mutex_lock(&pp->mu);
        pp->sleeping = 0;
        if (r < 0 && poll_errno != EINTR) {
            /* With valid fds only ENOMEM is possible, and it passes: retry a little later. If it never
             * does, stop the pool cleanly rather than leave its jobs waiting for an I/O thread that cannot
             * wait for anything (see poll_failed). */
            if (++poll_failures < PB_PROC_POLL_RETRIES) {
                pthread_mutex_unlock(&pp->mu);
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
                pthread_mutex_lock(&pp->mu);
                continue;
            }
            poll_failed(pp, poll_errno);
            break;
        }
        poll_failures = 0;
        now = pb__now();

        for (int j = 0; r > 0 && j < np; j++) {
            if (!pfd[j].revents) continue;
            if (sl[j].kind == SLOT_WAKE) {
                uint64_t v;
                ssize_t rd = read(pp->wake_fd, &v, sizeof v);
                (void)rd;
                continue;
            }
            worker *w = &pp->w[sl[j].worker];
            if (sl[j].gen != w->gen) continue; /* that process was reaped meanwhile (its fds may be reused) */
            if (sl[j].kind == SLOT_REQUESTS) {
                write_pending(pp, w, now, 0);
                continue;
            }
            wait_lent(pp, w);
            /* the caller found it lost (handled below), or it was replaced meanwhile */
            if (w->pending_loss || sl[j].gen != w->gen) continue;
            if (sl[j].kind == SLOT_RESULTS) read_worker(pp, w, now);
            else worker_exited(pp, w, now);
        }
        if (now >= pp->next_alive_check) { /* workers without a pidfd (see Deaths) */
            pp->next_alive_check = now + PB_PROC_ALIVE_CHECK_S;
            for (int i = 0; i < n; i++) {
                worker *w = &pp->w[i];
                if (w->pid > 0 && w->pidfd < 0 && !w->lent && !w->pending_loss && exited_unreaped(w->pid))
                    worker_exited(pp, w, now);
            }
        }
        for (int i = 0; i < n; i++) { /* losses found by a caller that had the worker on loan */
            worker *w = &pp->w[i];
            if (w->pending_loss && !w->lent) {
                w->pending_loss = 0;
                lose_worker(pp, w, now, w->pending_why);
            }
        }
        for (int i = 0; i < n; i++) {
            worker *w = &pp->w[i];
            if (has_deadline(pp, w) && w->deadline <= now) worker_deadline(pp, w, now);
        }
        flush_done(pp);
    }

    /* Every worker is gone here (break paths above); make sure, then report the start-up outcome. */
    kill_and_reap_all(pp);
    if (!pp->startup_done) {
        pp->startup_done = 1;
        if (pp->startup_rc == 0) {
            pp->startup_rc = PB_ESPAWN;
            snprintf(pp->startup_msg, sizeof pp->startup_msg, "the %s pool stopped during start-up",
                     pp->birth->kind);
        }
        pthread_cond_broadcast(&pp->cv);
    }
    pthread_mutex_unlock(&pp->mu);
    free(pfd);
    free(sl);
    return NULL;
}

/* ---- the backend methods ---- */

static void free_pool(proc_pool *pp) {
    if (!pp) return;
    for (int i = 0; i < pp->nworkers; i++) {
        pb__wbuf_free(&pp->w[i].out);
        pb__wbuf_free(&pp->w[i].in);
    }
    free(pp->w);
    free(pp->deaths);
    pb__wbuf_free(&pp->init_frame);
    if (pp->wake_fd >= 0) close(pp->wake_fd);
    if (pp->recall_fd >= 0) close(pp->recall_fd);
    pthread_mutex_destroy(&pp->mu);
    pthread_cond_destroy(&pp->cv);
    pthread_cond_destroy(&pp->lend_cv);
    if (pp->birth && pp->birth->release) pp->birth->release(pp->ctx);
    free(pp);
}

static int encode_init(proc_pool *pp) {
    const pb_options *o = pp->opts;
    const char *name = o->initializer ? o->initializer : "";
    size_t nlen = strlen(name);
    if (nlen > PB_WIRE_NAME_MAX) return PB_EINVAL;
    pb_wbuf *b = &pp->init_frame;
    long off = pb__wire_begin(b, PB_WIRE_INIT, 0, 0);
    if (off < 0 || pb__wbuf_reserve(b, 8 + 4 + 8 + 2 + nlen + 4 + o->init_arg_len) != 0) return -ENOMEM;
    pb__wire_put_u64(b, (uint64_t)pp->max_item);
    pb__wire_put_u32(b, o->max_tasks_per_worker);
    pb__wire_put_u64(b, (uint64_t)o->max_worker_rss);
    pb__wire_put_u16(b, (uint16_t)nlen);
    pb__wire_put(b, name, nlen);
    pb__wire_put_u32(b, (uint32_t)o->init_arg_len);
    pb__wire_put(b, o->init_arg, o->init_arg_len);
    pb__wire_end(b, off, 0);
    return 0;
}

int pb__proc_create(pb_pool *pool, const pb_options *opts, const pb__proc_birth *birth, void *ctx,
                    void **impl) {
    proc_pool *pp = calloc(1, sizeof *pp);
    if (!pp) {
        birth->release(ctx);
        return pb__set_error(-ENOMEM, "out of memory");
    }
    pp->pool = pool;
    pp->opts = opts;
    pp->birth = birth;
    pp->ctx = ctx;
    pp->wake_fd = -1;
    pp->recall_fd = -1;
    pthread_mutex_init(&pp->mu, NULL);
    pthread_cond_init(&pp->cv, NULL);
    pthread_cond_init(&pp->lend_cv, NULL);
    pp->max_item = opts->max_item_bytes;
    pp->max_frame = pb__wire_max_frame(pp->max_item);
    pp->nworkers = opts->workers;
    pp->starting = 1;
    pp->death_cap = opts->crashloop_deaths + 1;
    pp->w = calloc((size_t)pp->nworkers, sizeof *pp->w);
    pp->deaths = calloc((size_t)pp->death_cap, sizeof *pp->deaths);
    int rc;
    if (!pp->w || !pp->deaths) {
        rc = pb__set_error(-ENOMEM, "out of memory");
        goto fail;
    }
    if (pp->max_item > UINT32_MAX - PB_WIRE_SLACK) {
        rc = pb__set_error(PB_ENOTSUP, "the %s backend limits max_item_bytes to %u", birth->kind,
                           UINT32_MAX - PB_WIRE_SLACK);
        goto fail;
    }
    for (int i = 0; i < pp->nworkers; i++) {
        pp->w[i].pid = -1;
        pp->w[i].req_fd = pp->w[i].resp_fd = pp->w[i].pidfd = -1;
    }
    if ((rc = encode_init(pp)) != 0) {
        rc = pb__set_error(rc, "cannot encode the worker start-up frame");
        goto fail;
    }
    pp->wake_fd = pb__sys.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (pp->wake_fd < 0) {
        rc = pb__set_error(-errno, "eventfd: %s", strerror(errno));
        goto fail;
    }
    pp->recall_fd = pb__sys.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (pp->recall_fd < 0) {
        rc = pb__set_error(-errno, "eventfd: %s", strerror(errno));
        goto fail;
    }

    /* The I/O thread inherits a full signal mask (see DESIGN). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pb__sys.pthread_create(&pp->io, NULL, io_main, pp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pp->io_running = rc == 0;
    if (rc != 0) {
        rc = pb__set_error(-rc, "cannot start the %s pool's I/O thread (pthread_create): %s", birth->kind, strerror(rc));
        goto fail;
    }

    pthread_mutex_lock(&pp->mu);
    while (!pp->startup_done) pthread_cond_wait(&pp->cv, &pp->mu);
    rc = pp->startup_rc;
    pthread_mutex_unlock(&pp->mu);
    if (rc != 0) {
        /* The I/O thread has killed and reaped what it started and is exiting. */
        pthread_join(pp->io, NULL);
        rc = pb__set_error(rc, "%s", pp->startup_msg);
        free_pool(pp);
        return rc;
    }
    *impl = pp;
    return 0;

fail:
    free_pool(pp);
    return rc;
}

int pb__proc_dispatch(void *impl, pb__job *job) {
    proc_pool *pp = impl;
    if (job->n == 0) {
        pb__job_done(pp->pool, job);
        return 0;
    }
    if (strlen(job->task->name) > PB_WIRE_NAME_MAX) {
        pb__job_fail(pp->pool, job, 0, PB_STATUS_TASK_ERROR, "task name too long for the worker protocol");
        return 0;
    }
    pjob *pj = malloc(sizeof *pj + sizeof(unit));
    if (!pj) return pb__set_error(-ENOMEM, "out of memory");
    unit *u = (unit *)(pj + 1);
    *pj = (pjob){job, job->n, 0, NULL};
    *u = (unit){NULL, pj, 0, job->n, 0};

    pthread_mutex_lock(&pp->mu);
    if (pp->stop) {
        pthread_mutex_unlock(&pp->mu);
        free(pj);
        return PB_ECLOSED;
    }
    if (pp->broken) {
        char msg[sizeof pp->broken_msg];
        memcpy(msg, pp->broken_msg, sizeof msg);
        pthread_mutex_unlock(&pp->mu);
        free(pj);
        pb__job_fail(pp->pool, job, 0, PB_STATUS_BROKEN, msg);
        return 0;
    }
    /* Fast path: nothing queued and a worker idle, so write the request from this thread and save the
     * I/O thread a wake-up (its poll() already watches that worker's result pipe). */
    worker *w = pp->qhead ? NULL : idle_worker(pp);
    int wake;
    if (w) {
        /* A job that dispatch() has not returned yet is invisible to its submitter, so it cannot have been
         * cancelled: the claim succeeds without calling back into the core (which mu must not see). */
        if (!pb__job_claim(pp->pool, job)) {
            pthread_mutex_unlock(&pp->mu);
            free(pj);
            return 0;
        }
        pj->claimed = 1;
        give(pp, w, u, pb__now(), 1);
        /* The I/O thread must look again when the request did not fit in the pipe (POLLOUT), a piece of
         * the job is still queued, a deadline started, or the job already failed. */
        wake = pp->sleeping && (pp->qhead || w->out_pos < w->out.len || pp->opts->task_timeout > 0 ||
                                pp->done_head);
    } else {
        q_push_back(pp, u);
        wake = pp->sleeping;
    }
    if (wake) pp->sleeping = 0;
    pthread_mutex_unlock(&pp->mu);
    if (wake) {
        uint64_t one = 1;
        ssize_t wr = write(pp->wake_fd, &one, sizeof one);
        (void)wr;
    }
    return 0;
}

static void stop_and_join(proc_pool *pp, int how) {
    pthread_mutex_lock(&pp->mu);
    if (pp->stop == 0 || how > pp->stop) pp->stop = how;
    pthread_cond_broadcast(&pp->cv); /* an I/O thread parked by poll_failed() waits for this */
    pthread_mutex_unlock(&pp->mu);
    uint64_t one = 1;
    ssize_t w = write(pp->wake_fd, &one, sizeof one);
    (void)w;
    if (pp->io_running) {
        pthread_join(pp->io, NULL);
        pp->io_running = 0;
    }
}

size_t pb__proc_buffer_bytes(pb_pool *pool) {
    proc_pool *pp = pb__pool_impl(pool);
    size_t bytes = 0;
    pthread_mutex_lock(&pp->mu);
    for (int i = 0; i < pp->nworkers; i++) bytes += pp->w[i].in.cap + pp->w[i].out.cap;
    pthread_mutex_unlock(&pp->mu);
    return bytes;
}

void pb__proc_shutdown(void *impl) { stop_and_join(impl, 1); }
void pb__proc_terminate(void *impl) { stop_and_join(impl, 2); }
void pb__proc_destroy(void *impl) {
    proc_pool *pp = impl;
    if (!pp) return;
    if (pp->io_running) stop_and_join(pp, 2);
    free_pool(pp);
}
