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
 *    it never takes the host's signals.
 *  - No SIGPIPE. The parent keeps its own copy of each request pipe's read end (req_hold, never read), so a
 *    request pipe always has a reader and a write to a dead worker's pipe neither fails with EPIPE nor
 *    raises SIGPIPE in whichever thread wrote it: the bytes wait in the pipe until the worker's death is
 *    seen (its pidfd, its result pipe's EOF) and the slot is reaped. Why not block SIGPIPE around each
 *    write from a caller's thread, as before: that was two system calls (~1 us each on the reference VM)
 *    on every submit's fast path, a third of what the pool added to a raw pipe round trip.
 *  - Queue. dispatch() (any thread) wraps the core's job in a pjob and a *pb__proc_unit* (a range of the job's
 *    items). When nothing is queued and a worker is idle it gives the unit to that worker at once and
 *    writes the request itself (no SIGPIPE can arise, see above), so a submit costs one thread
 *    wake-up less (and see Lending for the answer); what that request could not carry goes to the other
 *    idle workers the same way. Otherwise it appends the unit to the queue and wakes the I/O thread through an
 *    eventfd when it sleeps in poll(). The I/O thread hands queued units to idle workers. A unit travels
 *    as one REQUEST frame, cut shorter only to respect the frame size limit or a worker's remaining
 *    max_tasks_per_worker budget; the rest of the unit stays at the head of the queue.
 *  - Lending (lend.c): a caller waiting in pb_future_wait() for a job that a worker is running may
 *    borrow that worker and read its answer itself (one wake-up less per round trip). The I/O thread
 *    watches the result pipes through an epoll set in which a borrower switches its worker's entry off
 *    while it holds it (watch.c), so an answer wakes only the borrower; it recalls lent workers before it
 *    kills.
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
 *    is the worker judged. The worker is SIGKILLed (a no-op if it is already exiting; it stops a pb__proc_worker
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
 *  - Start-up. create() starts the I/O thread, which starts the workers of the start policy and sends
 *    each the INIT frame; create() returns when those have answered READY, or fails (naming the program,
 *    the signal or exit code, or the initializer's message) when one dies, answers nonsense, or stays
 *    silent past PB_PROC_HANDSHAKE_S. Nothing is left behind on failure.
 *  - Start policy (pb_options.start). PB_START_EAGER starts every slot in create(). PB_START_ON_DEMAND
 *    (the default) starts slot 0 only; whenever the queue holds more units than there are workers being
 *    started, grow_on_demand() starts never-used slots (nstarted grows, slots are used in order), so a
 *    pool never runs more workers than it has had work for, and each unit goes to the first worker that
 *    is ready. A slot once started behaves as before (respawned, recycled), whatever the policy.
 *  - System calls that fail. Every fallible call goes through pb__sys (syscalls.h), so tests can fail
 *    each one. During start-up any failure fails create() with a message naming the call. Afterwards:
 *    a worker that cannot be started counts as a death and is retried after PB_PROC_RETRY_S; a failed
 *    read or write on a worker's pipes loses that worker like a death (it is SIGKILLed, so it cannot sit
 *    waiting for a request that never comes, and the message names the call); EINTR and EAGAIN are
 *    retried; poll() failing (ENOMEM) is retried, and if it never recovers the pool breaks (poll_failed)
 *    instead of leaving jobs waiting for a thread that can no longer wait.
 *  - Buffers. A worker's input and output buffers grow to the largest frame; once empty again, any over
 *    PB_PROC_BUFFER_KEEP is freed, so one huge payload is not pinned (twice) for the pool's life. Their
 *    pages are MADV_DONTFORK (pb__wbuf_unfork): a fork pool forks workers while earlier workers' buffers
 *    exist (on demand, respawns), and a page shared copy-on-write with a child cost the I/O thread a fault
 *    and a copy at its next frame (square 1,000,000 on fork: ~600 such faults a map on the reference VM).
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
#include "procpool.h"
#include "syscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h> /* INFINITY */
#include <stdarg.h>
#include <sys/ioctl.h> /* FIONREAD */
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
int pb__proc_exited_unreaped(pid_t pid) {
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

static void job_finished_items(pb__proc_pool *pp, pb__proc_job *pj, size_t n) {
    pj->remaining -= n;
    if (pj->remaining == 0) {
        pj->done_next = pp->done_head;
        pp->done_head = pj;
    }
}

/* Hands finished jobs back to the core. I/O thread, mu held: released while the core runs (it takes its
 * own mutex and may run user callbacks that submit more work). */
static void flush_done(pb__proc_pool *pp) {
    if (!pp->done_head) return;
    pb__proc_job *list = pp->done_head;
    pp->done_head = NULL;
    pthread_mutex_unlock(&pp->mu);
    pb__proc_hand_back(pp, list);
    pthread_mutex_lock(&pp->mu);
}

void pb__proc_hand_back(pb__proc_pool *pp, pb__proc_job *list) {
    while (list) {
        pb__proc_job *pj = list;
        list = pj->done_next;
        pb__job_done(pp->pool, pj->job);
        free(pj);
    }
}

void pb__proc_signal(int fd) {
    uint64_t one = 1;
    ssize_t wr = write(fd, &one, sizeof one);
    (void)wr; /* an eventfd only fails to count past 2^64-2: it is readable either way */
}

int pb__proc_poll_ms(double deadline, double now) {
    if (deadline == INFINITY) return -1;
    double ms = (deadline - now) * 1000.0;
    return ms <= 0 ? 0 : ms > 3600e3 ? 3600000 : (int)ms + 1;
}

/* Fails items [begin, end) of pj that have no result yet with status and message. */
static void fail_range(pb__proc_pool *pp, pb__proc_job *pj, size_t begin, size_t end, int status, const char *msg) {
    for (size_t i = begin; i < end; i++) {
        pb__result_fail(&pj->job->results[i], status, "%s", msg);
        pj->job->results[i].signal = 0;
        pj->job->results[i].exit_code = -1; /* the public contract: -1 unless a worker exited */
    }
    job_finished_items(pp, pj, end - begin);
}

/* The first unit of a job lives in the pjob's allocation (one malloc per job); others are separate. */
static void free_unit(pb__proc_unit *u) {
    if (u != (pb__proc_unit *)(u->pj + 1)) free(u);
}

/* ---- the queue (mu held) ---- */

static void q_push_back(pb__proc_pool *pp, pb__proc_unit *u) {
    u->next = NULL;
    if (pp->qtail) pp->qtail->next = u;
    else pp->qhead = u;
    pp->qtail = u;
}

static void q_push_front(pb__proc_pool *pp, pb__proc_unit *u) {
    u->next = pp->qhead;
    pp->qhead = u;
    if (!pp->qtail) pp->qtail = u;
}

static pb__proc_unit *q_pop(pb__proc_pool *pp) {
    pb__proc_unit *u = pp->qhead;
    if (u) {
        pp->qhead = u->next;
        if (!pp->qhead) pp->qtail = NULL;
    }
    return u;
}

/* Queues [begin, end) of pj again at the head (mu held). Allocation failure fails the items instead. */
static void requeue(pb__proc_pool *pp, pb__proc_job *pj, size_t begin, size_t end, int per_item) {
    if (begin >= end) return;
    pb__proc_unit *u = malloc(sizeof *u);
    if (!u) {
        fail_range(pp, pj, begin, end, PB_STATUS_WORKER_DIED, "out of memory re-queuing items of a lost worker");
        return;
    }
    *u = (pb__proc_unit){NULL, pj, begin, end, per_item};
    q_push_front(pp, u);
}

/* The one claim: asks the core whether u's job may still run (pb__job_claim, once per job). 1 when it
 * may; 0 when it was cancelled, which the core has completed: u and its pjob are freed. mu held, released
 * around the claim (it takes the core's mutex and may run a user callback). */
static int claim_unit(pb__proc_pool *pp, pb__proc_unit *u) {
    pb__proc_job *pj = u->pj;
    if (pj->claimed) return 1;
    pthread_mutex_unlock(&pp->mu);
    int run = pb__job_claim(pp->pool, pj->job);
    pthread_mutex_lock(&pp->mu);
    if (!run) {
        free_unit(u);
        free(pj);
        return 0;
    }
    pj->claimed = 1;
    return 1;
}

/* Fails every queued unit with status (BROKEN or TERMINATED). A job nobody claimed yet may have been
 * cancelled: pb__job_claim completes those as CANCELLED. I/O thread, mu held (released around claims). */
static void fail_queue(pb__proc_pool *pp, int status, const char *msg) {
    pb__proc_unit *u = pp->qhead;
    pp->qhead = pp->qtail = NULL;
    while (u) {
        pb__proc_unit *next = u->next;
        if (claim_unit(pp, u)) {
            fail_range(pp, u->pj, u->begin, u->end, status, msg);
            free_unit(u);
        }
        u = next;
    }
}

/* ---- the crash-loop breaker (I/O thread, mu held) ---- */

static void breaker_ok(pb__proc_pool *pp) { pp->ndeaths = 0; }

/* Records a death; returns 1 when the breaker trips now. */
static int breaker_death(pb__proc_pool *pp, double now, const char *what) {
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

static int write_pending(pb__proc_pool *pp, pb__proc_worker *w, double now);

static void set_startup_error(pb__proc_pool *pp, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_startup_error(pb__proc_pool *pp, int rc, const char *fmt, ...) {
    if (pp->startup_rc == 0) {
        pp->startup_rc = rc;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pp->startup_msg, sizeof pp->startup_msg, fmt, ap);
        va_end(ap);
    }
}

static int start_worker(pb__proc_pool *pp, pb__proc_worker *w, double now) {
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
    int child_fd = -1;
    if ((rc = pp->tr->open(&w->chan, pp->max_frame, &child_fd, err, sizeof err)) != 0) goto fail;
    /* >= 6, so that the child's dup2 onto 3, 4 and 5 cannot clobber it (proc.h) */
    if (child_fd >= 0 && child_fd < 6) {
        int n = pb__sys.fcntl(child_fd, F_DUPFD_CLOEXEC, 6);
        if (n < 0) {
            rc = -errno;
            snprintf(err, sizeof err, "cannot move the shared-memory fd (fcntl F_DUPFD_CLOEXEC): %s", strerror(-rc));
            goto fail;
        }
        close(child_fd);
        child_fd = w->chan.memfd = n;
    }
    pid_t pid = -1;
    if (child_fd >= 0)
        rc = pp->birth->start_shm(pp->ctx, req[0], resp[1], child_fd, &pid, err, sizeof err);
    else
        rc = pp->birth->start(pp->ctx, req[0], resp[1], &pid, err, sizeof err);
    if (rc == 0) {
        w->req_hold = req[0]; /* kept: the pipe never loses its last reader (see No SIGPIPE) */
        req[0] = -1;
    }
    close_fd(&req[0]);
    close_fd(&resp[1]);
    if (rc != 0) goto fail;

    w->pid = pid;
    w->pidfd = pb__sys.pidfd_open(pid, 0); /* -1: watched by exited_unreaped() instead (see Deaths) */
    w->req_fd = req[1];
    w->resp_fd = resp[0];
    pb__proc_watch_add(pp, w);
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
    write_pending(pp, w, now);
    return 0;

fail:
    close_fd(&req[0]);
    close_fd(&req[1]);
    close_fd(&resp[0]);
    close_fd(&resp[1]);
    pb__chan_release(&w->chan);
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
static int reap_worker(pb__proc_pool *pp, pb__proc_worker *w, int kill_it, int *st) {
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
    close_fd(&w->req_hold);
    pb__proc_watch_remove(pp, w);
    close_fd(&w->resp_fd);
    pb__chan_release(&w->chan);
    w->out.len = w->out_pos = 0;
    w->in.len = w->in_pos = 0;
    return err;
}

/* What to do with the unit a lost worker held. status/msg/sig/code describe the loss. */
static void settle_lost_unit(pb__proc_pool *pp, pb__proc_worker *w, int status, const char *msg, int sig, int code) {
    if (w->state != W_BUSY && w->state != W_RETIRING) return;
    if (!w->cur.pj) return;
    pb__proc_job *pj = w->cur.pj;
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
static void replace_worker(pb__proc_pool *pp, pb__proc_worker *w, double now, int is_loss) {
    w->state = W_EMPTY;
    w->replacing = is_loss;
    w->deadline = 0;
    if (pp->stop || pp->broken) return;
    start_worker(pp, w, now);
}

/* 1 when w (BUSY, pipe transport) died without reading a byte of its request: every byte written is still
 * in the pipe, as our own read end (req_hold) shows. Then its unit never started and is not to blame:
 * typically a request written by a submit's fast path into the pipe of an idle worker that had just
 * died (killed, out of memory) before the I/O thread saw it. */
static int request_never_read(const pb__proc_pool *pp, const pb__proc_worker *w) {
    int unread = 0;
    if (w->state != W_BUSY || !w->cur.pj || w->next_report != w->cur.begin || pp->tr != &pb__transport_pipe ||
        w->req_hold < 0 || w->req_in_pipe == 0 || ioctl(w->req_hold, FIONREAD, &unread) != 0)
        return 0;
    return (size_t)unread == w->req_in_pipe;
}

/* The worker's process is gone or must go. cause: NULL for EOF (look at the exit status), else a
 * protocol error description. */
static void lose_worker(pb__proc_pool *pp, pb__proc_worker *w, double now, const char *proto_why) {
    pb__proc_wstate was = w->state;
    pid_t pid = w->pid;
    int never_read = !proto_why && request_never_read(pp, w); /* before reap_worker closes req_hold */
    int st;
    int wait_err = reap_worker(pp, w, 1, &st);
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
    if (never_read) { /* its unit never started: run it elsewhere, as it was (the death still counts) */
        requeue(pp, w->cur.pj, w->cur.begin, w->cur.end, w->cur.per_item);
        w->cur.pj = NULL;
    }
    settle_lost_unit(pp, w, PB_STATUS_WORKER_DIED, msg, sig, code);
    if (breaker_death(pp, now, msg)) fail_queue(pp, PB_STATUS_BROKEN, pp->broken_msg);
    replace_worker(pp, w, now, 1);
}

/* ---- talking to workers (mu held; the I/O thread, or dispatch() for give() and write_pending()) ---- */

/* Writes what is pending in w->out (mu held). 0, or -1 when the write failed: the worker is SIGKILLed so
 * that the EOF on resp_fd follows and the I/O thread handles the loss as usual. The kill matters: after
 * EPIPE the worker is normally exiting anyway, but after any other error (or an EPIPE from a worker that
 * merely closed its request pipe) it would otherwise wait forever for a request that never comes. */
static int write_pending(pb__proc_pool *pp, pb__proc_worker *w, double now) {
    while (w->out_pos < w->out.len) {
        ssize_t n = pp->tr->send(&w->chan, w->req_fd, w->out.data + w->out_pos, w->out.len - w->out_pos);
        if (n > 0) {
            w->out_pos += (size_t)n;
            if (w->state == W_BUSY) w->req_in_pipe += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return 0;
        } else {
            int e = n < 0 ? errno : EIO;
            w->out.len = w->out_pos = 0; /* drop it, the loss shows up on resp_fd */
            /* EPIPE (no longer from a dead worker, whose pipe keeps our reader: see No SIGPIPE) would
             * mean the worker died: then its exit status is the story, not the write. waitid(WNOWAIT)
             * tells without reaping it. */
            siginfo_t si;
            si.si_pid = 0;
            int exited = e == EPIPE && w->pid > 0 &&
                         waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0;
            if (!exited && !w->io_why[0])
                snprintf(w->io_why, sizeof w->io_why, "write to its request %s failed: %s",
                         pp->tr == &pb__transport_pipe ? "pipe" : "ring", strerror(e));
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

#define GATHER_ITEMS 31               /* a gathered request: at most this many items (PB_SHM_GATHER_MAX entries) */
#define GATHER_FROM (256u * 1024u)   /* ... and at least this large (smaller ones fit the ring itself) */

/* Encodes items [u->begin, k) of u as a REQUEST frame into w->out, choosing k: as many as fit in one
 * frame and in the worker's budget. Returns k. */
static size_t encode_request(pb__proc_pool *pp, pb__proc_worker *w, const pb__proc_unit *u) {
    const pb__job *job = u->pj->job;
    const char *name = job->task->name;
    size_t name_len = strlen(name);
    size_t n = u->end - u->begin;
    if (n > w->budget) n = (size_t)w->budget;
    size_t budget = pp->tr->frame_budget && pp->tr->frame_budget < pp->max_frame ? pp->tr->frame_budget : pp->max_frame;
    n = pb__wire_request_fit(name_len, job->items + u->begin, n, budget);
    int flags = (u->per_item || pp->opts->task_timeout > 0) ? PB_WIRE_F_PER_ITEM : 0;
    w->out.len = w->out_pos = 0;
    size_t size = PB_WIRE_HEADER + 4 + 2 + name_len;
    for (size_t i = 0; i < n; i++) size += 4 + job->items[u->begin + i].len;
    /* A large frame of few items (shm): written by the kernel straight from the caller's items into the
     * worker's overflow area, never staged or touched through the parent's mapping (pb__shm_put_gather). */
    if (pp->tr->put_gather && n <= GATHER_ITEMS && size >= GATHER_FROM) {
        unsigned char head[PB_WIRE_HEADER + 6 + PB_WIRE_NAME_MAX + 4 * GATHER_ITEMS];
        struct iovec iov[2 * GATHER_ITEMS + 1];
        size_t total;
        int cnt = pb__wire_request_gather(head, sizeof head, iov, 2 * GATHER_ITEMS + 1, flags, job->id,
                                          (uint32_t)u->begin, name, name_len, job->items + u->begin, n, &total);
        if (cnt > 0 && pp->tr->put_gather(&w->chan, iov, cnt, total) == 1) return u->begin + n;
    }
    /* In place when the transport has room (shm): the items are copied once, into the worker's ring. */
    unsigned char *dst = pp->tr->reserve(&w->chan, size);
    if (dst) {
        pb__wbuf view = {.data = dst, .len = 0, .cap = size};
        pb__wire_request_encode(&view, flags, job->id, (uint32_t)u->begin, name, name_len, job->items + u->begin, n);
        pp->tr->commit(&w->chan);
        return u->begin + n;
    }
    if (pb__wire_request_encode(&w->out, flags, job->id, (uint32_t)u->begin, name, name_len, job->items + u->begin,
                                n) != 0)
        return u->begin;
    return u->begin + n;
}

/* Hands (a prefix of) unit u of a claimed job to idle worker w and starts writing the request; the rest
 * of u goes back to the head of the queue. mu held. */
static void give(pb__proc_pool *pp, pb__proc_worker *w, pb__proc_unit *u, double now) {
    pb__proc_job *pj = u->pj;
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
    w->req_in_pipe = 0;
    w->deadline = INFINITY; /* the item clock starts when the request is fully written */
    if (w->budget != UINT64_MAX) w->budget -= k - u->begin;
    if (k < u->end) {
        u->begin = k;
        q_push_front(pp, u);
    } else {
        free_unit(u);
    }
    write_pending(pp, w, now);
}

static pb__proc_worker *idle_worker(pb__proc_pool *pp) {
    for (int i = 0; i < pp->nworkers; i++)
        if (pp->w[i].state == W_IDLE && pp->w[i].budget > 0) return &pp->w[i];
    return NULL;
}

/* START POLICY hook (on demand): starts never-used slots while queued units outnumber the workers
 * being started, so that no more workers run than there has been work for. The I/O thread only (it forks:
 * see Process hygiene). mu held. */
static int workers_wanted(const pb__proc_pool *pp) {
    if (pp->nstarted >= pp->nworkers || pp->stop || pp->broken || !pp->qhead) return 0;
    size_t queued = 0, starting = 0;
    for (const pb__proc_unit *u = pp->qhead; u; u = u->next) queued++;
    for (int i = 0; i < pp->nstarted; i++) starting += pp->w[i].state == W_STARTING || pp->w[i].state == W_EMPTY;
    size_t want = queued > starting ? queued - starting : 0, room = (size_t)(pp->nworkers - pp->nstarted);
    return (int)(want < room ? want : room);
}

static void grow_on_demand(pb__proc_pool *pp, double now) {
    /* all in one pass: a map's chunks arrive together (job->more), and each start forks from here */
    for (int k = workers_wanted(pp); k > 0; k--)
        start_worker(pp, &pp->w[pp->nstarted++], now); /* a failure is retried like a respawn */
}

/* Gives queued work to idle workers. I/O thread, mu held (released around pb__job_claim). */
static void assign_work(pb__proc_pool *pp, double now) {
    pb__proc_worker *w;
    while (pp->qhead && (w = idle_worker(pp)) != NULL) {
        pb__proc_unit *u = q_pop(pp);
        int was_claimed = u->pj->claimed;
        if (!claim_unit(pp, u)) continue; /* cancelled: the core completed it */
        /* dispatch() may have taken w while mu was released by the claim */
        if (!was_claimed && (w->state != W_IDLE || w->budget == 0)) {
            q_push_front(pp, u);
            continue;
        }
        give(pp, w, u, now);
    }
    grow_on_demand(pp, now);
}

/* Handles one complete frame from w. Returns NULL, or a reason when it is malformed. */
/* Reads the body through r, the transport's reader (whose adopt says afterwards whether a result took the
 * transport's output block: release needs to know). */
static const char *handle_frame(pb__proc_pool *pp, pb__proc_worker *w, const pb__wire_header *h, pb__wire_reader *r,
                                double now) {
    switch (h->type) {
    case PB_WIRE_READY: {
        if (w->state != W_STARTING) return "unexpected READY";
        uint8_t status = pb__wire_get_u8(r);
        uint16_t mlen = pb__wire_get_u16(r);
        const char *m = pb__wire_get_bytes(r, mlen);
        /* the length is the worker's word: bound it before it sizes a copy into msg[] */
        if (r->err || mlen > PB_WIRE_MSG_MAX) return "truncated READY";
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
            for (int i = 0; i < pp->nstarted; i++) /* START POLICY hook: the slots create started */
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
        pb__proc_job *pj = w->cur.pj;
        uint32_t first = pb__wire_get_u32(r);
        if (r->err || h->id != pj->job->id || first != w->next_report || h->count == 0 ||
            h->count > w->cur.end - w->next_report)
            return "RESULT for items not asked for";
        size_t ok = 0;
        for (uint32_t i = 0; i < h->count; i++) {
            pb_result *res = &pj->job->results[first + i];
            int rc = pb__wire_get_result(r, pp->max_item, res);
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
        if (r->p != r->end || r->next) { /* trailing garbage: the records were fine, keep them, then complain */
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


/* Reads what w sent and handles every complete frame, mu held. On READ_LOST, *why is the reason (NULL when
 * w->io_why already says it). Every complete frame already in the buffer is handled before the pipe is
 * read again, so an EOF is only ever judged after everything the worker sent before it (an answer and a
 * RETIRE read in one go, by a borrower or by this thread, make a recycle, not a death). With
 * until_answered (a caller that has w on loan, see "Lending") it reads no more once w's unit is answered
 * (frames already read are still handled): anything after that (EOF) is the I/O thread's, which polls the
 * pipe anyway, and the read() that would only say EAGAIN is saved. */
enum pb__proc_read_end pb__proc_read_frames(pb__proc_pool *pp, pb__proc_worker *w, double now, int until_answered, const char **why) {
    *why = NULL;
    for (;;) {
        pb__wire_header h;
        pb__wire_reader body;
        int may_read = !(until_answered && w->state != W_BUSY);
        switch (pp->tr->recv(&w->chan, w->resp_fd, &w->in, &w->in_pos, pp->max_frame, may_read, &h, &body, why,
                             w->io_why, sizeof w->io_why)) {
        case PB_RECV_GOT:
            *why = handle_frame(pp, w, &h, &body, now);
            pp->tr->release(&w->chan, &w->in, &w->in_pos, &h, &body);
            if (*why) return READ_LOST;
            break;
        case PB_RECV_NONE: return READ_DRAINED;
        case PB_RECV_EOF: return READ_EOF;
        default: return READ_LOST;
        }
    }
}

/* The I/O thread's read: returns 0, or 1 when w was lost (EOF, a malformed frame, a read error) and has
 * been dealt with (lose_worker kills and reaps it). */
static int read_worker(pb__proc_pool *pp, pb__proc_worker *w, double now) {
    const char *why;
    switch (pb__proc_read_frames(pp, w, now, 0, &why)) {
    case READ_DRAINED: return 0;
    case READ_EOF: lose_worker(pp, w, now, pp->tr->partial(&w->chan, &w->in, w->in_pos) ? "truncated frame" : NULL); return 1;
    default: lose_worker(pp, w, now, why); return 1;
    }
}

/* w's process has exited (its pidfd, or exited_unreaped()): the pipe may still be open (a child of its
 * task holds it), so no EOF is coming. Handle everything it wrote before it went, then lose it as if at
 * EOF. I/O thread, mu held. */
static void worker_exited(pb__proc_pool *pp, pb__proc_worker *w, double now) {
    if (read_worker(pp, w, now)) return; /* EOF or a loss: already dealt with */
    lose_worker(pp, w, now, pp->tr->partial(&w->chan, &w->in, w->in_pos) ? "truncated frame" : NULL);
}

/* A deadline passed for w (handshake, item timeout, close). */
static void worker_deadline(pb__proc_pool *pp, pb__proc_worker *w, double now) {
    switch (w->state) {
    case W_STARTING:
        if (pp->starting) {
            set_startup_error(pp, PB_ESPAWN, "%s did not answer the start-up handshake within %.0f s",
                              pp->birth->describe(pp->ctx), PB_PROC_HANDSHAKE_S);
            int st;
            reap_worker(pp, w, 1, &st);
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
        reap_worker(pp, w, 1, &st);
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
        reap_worker(pp, w, 1, &st);
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

static int has_deadline(const pb__proc_pool *pp, const pb__proc_worker *w) {
    switch (w->state) {
    case W_STARTING: case W_CLOSING: return 1;
    case W_BUSY: return pp->opts->task_timeout > 0;
    case W_EMPTY: return w->deadline > 0 && !pp->stop_seen;
    default: return 0;
    }
}

/* Closes the request pipe of every worker that has nothing to do, so that it exits (shutdown). */
static void close_idle(pb__proc_pool *pp, double now) {
    for (int i = 0; i < pp->nworkers; i++) {
        pb__proc_worker *w = &pp->w[i];
        if (w->state == W_IDLE || w->state == W_STARTING) {
            close_fd(&w->req_fd);
            pp->tr->close_requests(&w->chan);
            w->out.len = w->out_pos = 0;
            w->state = W_CLOSING;
            w->deadline = now + PB_PROC_CLOSE_S;
        }
    }
}

/* Signals every live worker first, then reaps them: they die in parallel instead of one after the other
 * (8 idle workers: about 0.95 ms down to 0.75 ms per teardown). */
static void kill_and_reap_all(pb__proc_pool *pp) {
    for (int i = 0; i < pp->nworkers; i++)
        if (pp->w[i].pid > 0) kill(pp->w[i].pid, SIGKILL);
    for (int i = 0; i < pp->nworkers; i++)
        if (pp->w[i].pid > 0) {
            int st;
            reap_worker(pp, &pp->w[i], 0, &st); /* already signalled */
        }
}

/* terminate(): kill everything and complete all held work with status (TERMINATED, or BROKEN). */
static void kill_all(pb__proc_pool *pp, int status, const char *msg) {
    pb__proc_lend_recall(pp); /* a lent fd must not be closed under a caller that polls it */
    kill_and_reap_all(pp);
    for (int i = 0; i < pp->nworkers; i++) {
        pb__proc_worker *w = &pp->w[i];
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
static void poll_failed(pb__proc_pool *pp, int err) {
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

static int any_alive(const pb__proc_pool *pp) {
    for (int i = 0; i < pp->nworkers; i++)
        if (pp->w[i].pid > 0) return 1;
    return 0;
}

static void *io_main(void *arg) {
    pb__proc_pool *pp = arg;
    int n = pp->nworkers;
    struct pollfd *pfd = calloc((size_t)(3 * n + 2), sizeof *pfd);
    pb__proc_slot *sl = calloc((size_t)(3 * n + 2), sizeof *sl);
    if (!pfd || !sl) {
        pthread_mutex_lock(&pp->mu);
        set_startup_error(pp, -ENOMEM, "out of memory starting the I/O thread");
        pthread_mutex_unlock(&pp->mu);
        n = 0;
    }

    pthread_mutex_lock(&pp->mu); /* held throughout, except in poll() and calls into the core */
    double now = pb__now();
    int poll_failures = 0;
    /* START POLICY hook: eager starts every slot now; on demand only the first (create waits for it, so a
     * worker program that cannot run still fails create), the others in grow_on_demand(). */
    pp->nstarted = pp->opts->start == PB_START_EAGER ? n : (n > 0 ? 1 : 0);
    for (int i = 0; i < pp->nstarted && pp->startup_rc == 0; i++) start_worker(pp, &pp->w[i], now);

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

        /* Poll set: the wake fd, every live worker's result pipe (through the epoll set of watch.c where it
         * works) and pidfd, pending request writes. */
        int np = 0;
        double next = INFINITY;
        pfd[np] = (struct pollfd){.fd = pp->wake_fd, .events = POLLIN};
        sl[np++] = (pb__proc_slot){SLOT_WAKE, -1, 0};
        if (pp->watch_fd >= 0) { /* the result pipes in the set (watch.c) */
            pfd[np] = (struct pollfd){.fd = pp->watch_fd, .events = POLLIN};
            sl[np++] = (pb__proc_slot){SLOT_WATCH, -1, 0};
        }
        for (int i = 0; i < n; i++) {
            pb__proc_worker *w = &pp->w[i];
            if (w->resp_fd >= 0) { /* fd -1 when the set watches it: filled in after poll() */
                pfd[np] = (struct pollfd){.fd = pb__proc_watch_poll_fd(w), .events = POLLIN};
                sl[np++] = (pb__proc_slot){SLOT_RESULTS, i, w->gen};
            }
            if (w->req_fd >= 0 && w->out_pos < w->out.len && pp->tr->polls_out) {
                pfd[np] = (struct pollfd){.fd = w->req_fd, .events = POLLOUT};
                sl[np++] = (pb__proc_slot){SLOT_REQUESTS, i, w->gen};
            }
            if (w->pidfd >= 0) {
                pfd[np] = (struct pollfd){.fd = w->pidfd, .events = POLLIN};
                sl[np++] = (pb__proc_slot){SLOT_EXIT, i, w->gen};
            } else if (w->pid > 0 && pp->next_alive_check < next) {
                next = pp->next_alive_check; /* no pidfd: look at it now and then (see Deaths) */
            }
            if (has_deadline(pp, w) && w->deadline < next) next = w->deadline;
        }
        int timeout = pb__proc_poll_ms(next, now);

        /* flush_done() may have released mu: look again before sleeping. */
        int again = pp->stop != stop || (pp->qhead && (pp->broken || idle_worker(pp) || workers_wanted(pp)));
        /* shm: ask every worker not on loan to ring its result pipe when it publishes, then look at its
         * ring once more (transport.h): a frame published before the request rings no bell. */
        for (int i = 0; i < n; i++) {
            pb__proc_worker *w = &pp->w[i];
            if (w->pid > 0 && !w->lent && pp->tr->doorbell(&w->chan, 1)) again = 1;
        }
        if (again) timeout = 0;
        pp->sleeping = !again;
        pthread_mutex_unlock(&pp->mu);

        int r, poll_errno;
        for (;;) {
            r = pb__sys.poll(pfd, (nfds_t)np, timeout);
            poll_errno = errno;
            if (r > 0) pb__proc_watch_expand(pp, pfd, sl, np);
            /* Woken only by answers that lent workers' callers are reading: once they have handed the
             * workers back, nothing changed that this thread must act on (a caller that leaves it work,
             * a loss or queued work for the idle worker, writes wake_fd, since `sleeping` is still set;
             * bytes it left in the pipe make poll() return at once), so sleep again with the same set,
             * and the deadline it had. */
            if (r <= 0 || !pb__proc_lend_only_returned(pp, pfd, sl, np)) break;
            timeout = pb__proc_poll_ms(next, pb__now());
        }

        pthread_mutex_lock(&pp->mu);
        pp->sleeping = 0;
        for (int i = 0; i < n; i++) /* awake: frames are looked for below, no need to ring */
            if (pp->w[i].pid > 0 && !pp->w[i].lent) pp->tr->doorbell(&pp->w[i].chan, 0);
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
            pb__proc_worker *w = &pp->w[sl[j].worker];
            if (sl[j].gen != w->gen) continue; /* that process was reaped meanwhile (its fds may be reused) */
            if (sl[j].kind == SLOT_REQUESTS) {
                write_pending(pp, w, now);
                continue;
            }
            /* shm: a lent worker's ring is its borrower's, its result pipe only rings or ends: drain the
             * rings here; only an end needs the borrower back */
            if (sl[j].kind == SLOT_RESULTS && w->lent && !pp->tr->drain(&w->chan, w->resp_fd)) continue;
            pb__proc_lend_wait(pp, w);
            /* the caller found it lost (handled below), or it was replaced meanwhile */
            if (w->pending_loss || sl[j].gen != w->gen) continue;
            if (sl[j].kind == SLOT_RESULTS) read_worker(pp, w, now);
            else worker_exited(pp, w, now);
        }
        if (now >= pp->next_alive_check) { /* workers without a pidfd (see Deaths) */
            pp->next_alive_check = now + PB_PROC_ALIVE_CHECK_S;
            for (int i = 0; i < n; i++) {
                pb__proc_worker *w = &pp->w[i];
                if (w->pid > 0 && w->pidfd < 0 && !w->lent && !w->pending_loss && pb__proc_exited_unreaped(w->pid))
                    worker_exited(pp, w, now);
            }
        }
        for (int i = 0; i < n; i++) { /* shm: frames in rings, room for pending requests (transport.h) */
            pb__proc_worker *w = &pp->w[i];
            if (w->pid <= 0 || w->lent || w->pending_loss) continue;
            if (pp->tr->ready(&w->chan) && read_worker(pp, w, now)) continue;
            if (!pp->tr->polls_out && w->out_pos < w->out.len) write_pending(pp, w, now);
        }
        for (int i = 0; i < n; i++) { /* losses found by a caller that had the worker on loan */
            pb__proc_worker *w = &pp->w[i];
            if (w->pending_loss && !w->lent) {
                w->pending_loss = 0;
                lose_worker(pp, w, now, w->pending_why);
            }
        }
        for (int i = 0; i < n; i++) {
            pb__proc_worker *w = &pp->w[i];
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

static void free_pool(pb__proc_pool *pp) {
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
    pb__proc_watch_close(pp);
    pthread_mutex_destroy(&pp->mu);
    pthread_cond_destroy(&pp->cv);
    pthread_cond_destroy(&pp->lend_cv);
    if (pp->birth && pp->birth->release) pp->birth->release(pp->ctx);
    free(pp);
}

static int encode_init(pb__proc_pool *pp) {
    const pb_options *o = pp->opts;
    const char *name = o->initializer ? o->initializer : "";
    size_t nlen = strlen(name);
    if (nlen > PB_WIRE_NAME_MAX) return PB_EINVAL;
    pb__wbuf *b = &pp->init_frame;
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
    pb__proc_pool *pp = calloc(1, sizeof *pp);
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
    pp->watch_fd = -1;
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
    pp->tr = birth->transport ? birth->transport : &pb__transport_pipe;
    if (pp->tr != &pb__transport_pipe && !birth->start_shm) {
        rc = pb__set_error(PB_ENOTSUP, "the %s backend cannot hand its workers shared memory", birth->kind);
        goto fail;
    }
    for (int i = 0; i < pp->nworkers; i++) {
        pp->w[i].chan.memfd = -1;
        pp->w[i].pid = -1;
        pp->w[i].req_fd = pp->w[i].req_hold = pp->w[i].resp_fd = pp->w[i].pidfd = -1;
        /* Not inherited by the workers this pool forks later (on demand, respawns): see Buffers. */
        pb__wbuf_unfork(&pp->w[i].out);
        pb__wbuf_unfork(&pp->w[i].in);
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
    if ((rc = pb__proc_watch_open(pp)) != 0) {
        rc = pb__set_error(rc, "out of memory");
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

/* The last chunk of a map wakes the I/O thread for the chunks before it that were queued without waking it
 * (job->more), whatever becomes of that last chunk itself. Returns rc. */
static int end_of_batch(pb__proc_pool *pp, const pb__job *job, int rc) {
    if (job->more) return rc;
    pthread_mutex_lock(&pp->mu);
    int wake = pp->sleeping && pp->qhead;
    if (wake) pp->sleeping = 0;
    pthread_mutex_unlock(&pp->mu);
    if (wake) pb__proc_signal(pp->wake_fd);
    return rc;
}

int pb__proc_dispatch(void *impl, pb__job *job) {
    pb__proc_pool *pp = impl;
    if (job->n == 0) {
        pb__job_done(pp->pool, job);
        return end_of_batch(pp, job, 0);
    }
    if (strlen(job->task->name) > PB_WIRE_NAME_MAX) {
        pb__job_fail(pp->pool, job, 0, PB_STATUS_TASK_ERROR, "task name too long for the worker protocol");
        return end_of_batch(pp, job, 0);
    }
    pb__proc_job *pj = malloc(sizeof *pj + sizeof(pb__proc_unit));
    if (!pj) return end_of_batch(pp, job, pb__set_error(-ENOMEM, "out of memory"));
    pb__proc_unit *u = (pb__proc_unit *)(pj + 1);
    *pj = (pb__proc_job){job, job->n, 0, NULL};
    *u = (pb__proc_unit){NULL, pj, 0, job->n, 0};

    pthread_mutex_lock(&pp->mu);
    if (pp->stop) {
        pthread_mutex_unlock(&pp->mu);
        free(pj);
        return end_of_batch(pp, job, PB_ECLOSED);
    }
    if (pp->broken) {
        char msg[sizeof pp->broken_msg];
        memcpy(msg, pp->broken_msg, sizeof msg);
        pthread_mutex_unlock(&pp->mu);
        free(pj);
        pb__job_fail(pp->pool, job, 0, PB_STATUS_BROKEN, msg);
        return end_of_batch(pp, job, 0);
    }
    /* Fast path: nothing queued and a worker idle, so write the request from this thread and save the
     * I/O thread a wake-up (its poll() already watches that worker's result pipe). */
    pb__proc_worker *w = pp->qhead ? NULL : idle_worker(pp);
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
        double now = pb__now();
        give(pp, w, u, now);
        int writing = w->out_pos < w->out.len;
        /* What one request could not carry (a frame's size limit: large items) went back to the head of
         * the queue: the other idle workers get it from here too. Left to the I/O thread, it waited for
         * that thread to wake on the other vCPU, which took 1-5 ms in half of the maps on the reference
         * VM (payload on spawn-shm: the second worker started 0.5-6.5 ms after the first). */
        while (pp->qhead && pp->qhead->pj == pj && (w = idle_worker(pp)) != NULL) {
            give(pp, w, q_pop(pp), now);
            writing |= w->out_pos < w->out.len;
        }
        /* The I/O thread must look again when a request did not fit in its pipe (POLLOUT), a piece of
         * the job is still queued, a deadline started, or the job already failed. */
        wake = pp->sleeping && (pp->qhead || writing || pp->opts->task_timeout > 0 || pp->done_head);
    } else {
        q_push_back(pp, u);
        /* More chunks of this map follow at once: wake the I/O thread once, at the last, so that it starts
         * the workers they need in one pass (on demand) instead of one wake-up and one fork at a time. */
        wake = pp->sleeping && !job->more;
    }
    if (wake) pp->sleeping = 0;
    pthread_mutex_unlock(&pp->mu);
    if (wake) pb__proc_signal(pp->wake_fd);
    return 0;
}

static void stop_and_join(pb__proc_pool *pp, int how) {
    pthread_mutex_lock(&pp->mu);
    if (pp->stop == 0 || how > pp->stop) pp->stop = how;
    pthread_cond_broadcast(&pp->cv); /* an I/O thread parked by poll_failed() waits for this */
    pthread_mutex_unlock(&pp->mu);
    pb__proc_signal(pp->wake_fd);
    if (pp->io_running) {
        pthread_join(pp->io, NULL);
        pp->io_running = 0;
    }
}

size_t pb__proc_buffer_bytes(pb_pool *pool) {
    pb__proc_pool *pp = pb__pool_impl(pool);
    size_t bytes = 0;
    pthread_mutex_lock(&pp->mu);
    for (int i = 0; i < pp->nworkers; i++) bytes += pp->w[i].in.cap + pp->w[i].out.cap;
    pthread_mutex_unlock(&pp->mu);
    return bytes;
}

void pb__proc_shutdown(void *impl) { stop_and_join(impl, 1); }
void pb__proc_terminate(void *impl) { stop_and_join(impl, 2); }
void pb__proc_destroy(void *impl) {
    pb__proc_pool *pp = impl;
    if (!pp) return;
    if (pp->io_running) stop_and_join(pp, 2);
    free_pool(pp);
}
