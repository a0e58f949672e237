/*
 * lend.c - lending: a caller waiting for a job borrows the worker running it and reads the answer itself.
 *
 *  pb_future_wait() calls the backend's wait_progress (backend.h),
 *  pb__proc_wait_progress(): if a worker is running the awaited job (BUSY, cur.pj->job == job) and there
 *  is no task_timeout (whose item clock stays with the I/O thread), the caller borrows that worker (`lent`)
 *  and polls its result pipe itself, decoding the answer and handing finished jobs to the core in its own
 *  thread. The answer then wakes the caller directly instead of the I/O thread, which then had to wake
 *  the caller: the round trip is two wake-ups like a raw pipe ping-pong, not three.
 *
 *  Ownership: exactly one thread reads a pipe, because reading needs mu and a lent pipe is read only by
 *  its borrower. The I/O thread watches result pipes through an epoll set (watch.c): the borrower switches
 *  its worker's entry off while it holds the worker, so the answer wakes the borrower alone, and back on
 *  when it hands the worker back (level-triggered: whatever is left in the pipe is seen at once). Where
 *  the set cannot be used, or an answer came before the entry was off, poll() may report a lent pipe:
 *  then the I/O thread lets the borrowers finish (pb__proc_lend_only_returned, without mu) and sleeps
 *  again. The borrower hands the worker back (under mu) as soon as the job no longer runs there, at its
 *  deadline, on EOF, and on anything that needs the I/O thread: EOF is left in the pipe for it; a read
 *  error or malformed frame is recorded in pending_loss and the I/O thread is woken to lose it (only the
 *  I/O thread kills, reaps and respawns).
 *  Before it kills and closes everything (terminate, poll failure) the I/O thread recalls every lent
 *  worker: it makes recall_fd readable, which borrowers poll next to the pipe, and waits on lend_cv until
 *  none is lent; it lends no more afterwards. A worker nobody waits for (a callback, an unwaited future)
 *  is never lent.
 */
#include "procpool.h"

#include <errno.h>
#include <math.h> /* INFINITY */
#include <sched.h>
#include <stdlib.h>
#include <time.h>

/* read_worker() for a caller that has w on loan (see the top of this file), mu held: handles every complete frame
 * but leaves whatever needs the I/O thread (a loss: reaping, respawning, the breaker) to it. Returns 0
 * when the pipe is drained for now or w's unit is answered, 1 when w must go back to the I/O thread now:
 * EOF (left in the pipe, which the I/O thread polls too) or a loss, recorded in pending_loss. */
static int lent_read(pb__proc_pool *pp, pb__proc_worker *w, double now) {
    const char *why;
    switch (pb__proc_read_frames(pp, w, now, 1, &why)) {
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
 * had to wake the caller. See the top of this file. Caller's thread; takes mu. */
void pb__proc_wait_progress(void *impl, pb__job *job, double deadline) {
    pb__proc_pool *pp = impl;
    pthread_mutex_lock(&pp->mu);
    pb__proc_worker *w = NULL;
    /* With task_timeout the I/O thread keeps the item clock: leave those workers to it. */
    if (!pp->no_lend && !pp->stop && pp->opts->task_timeout <= 0) {
        for (int i = 0; i < pp->nworkers && !w; i++) {
            pb__proc_worker *c = &pp->w[i];
            if (c->state == W_BUSY && c->cur.pj && c->cur.pj->job == job && !c->lent && !c->pending_loss &&
                c->resp_fd >= 0)
                w = c;
        }
    }
    if (!w) {
        pthread_mutex_unlock(&pp->mu);
        return;
    }
    pb__proc_job *pj = w->cur.pj;
    /* Both stay open while lent: only the I/O thread closes them, and not while lent. */
    int fd = w->resp_fd, pidfd = w->pidfd;
    pid_t pid = w->pid;
    double until = deadline >= 0 ? deadline : INFINITY;
    atomic_store(&w->lent, 1);
    pp->nlent++;
    pb__proc_watch_lend(pp, w);    /* pipe: its answer wakes us, not the I/O thread too (watch.c) */
    pp->tr->doorbell(&w->chan, 0); /* shm: its answer wakes us on the ring's futex, not the I/O thread */
    for (;;) {
        double now = pb__now();
        if (until <= now) break;
        double left = until == INFINITY ? -1 : until - now;
        /* without a pidfd, look at the worker now and then; with shm, a kick from the I/O thread could
         * fall just before the futex wait, so it never sleeps for long either */
        double slice = pidfd < 0 || pp->tr != &pb__transport_pipe ? PB_PROC_ALIVE_CHECK_S : -1;
        if (slice > 0 && (left < 0 || left > slice)) left = slice;
        pthread_mutex_unlock(&pp->mu);
        int r = pp->tr->wait(&w->chan, fd, pp->recall_fd, pidfd, left);
        /* The worker exited (a child of its task may hold the pipe open, so EOF may never come): read
         * what it sent, then hand it back for the I/O thread to judge (see Deaths). */
        int exited = (r & PB_WAIT_EXITED) || (!(r & PB_WAIT_READABLE) && pidfd < 0 && pb__proc_exited_unreaped(pid));
        pthread_mutex_lock(&pp->mu);
        if (pp->no_lend || (r & PB_WAIT_ERROR)) break;
        if ((r & PB_WAIT_READABLE) || exited) {
            if (lent_read(pp, w, pb__now()) || exited) break;
        }
        if (w->state != W_BUSY || w->cur.pj != pj) break; /* the job is done here (or the worker retires) */
    }
    /* Hand w back. The I/O thread polls its pipe all along, so it needs a wake-up only for what it cannot
     * see there: a loss found here, or queued work that w, now idle, could take. */
    atomic_store(&w->lent, 0);
    pp->nlent--;
    int unwatched = pb__proc_watch_return(pp, w); /* now polled directly: the I/O thread must see that */
    int signal_io = pp->io_waits_lend;
    /* shm: the I/O thread asleep sees the ring only through the doorbell: ring it again, and wake the
     * thread now if frames (a RETIRE after the answer) already wait there */
    int unread = pp->sleeping && pp->tr->doorbell(&w->chan, 1);
    int wake = w->pending_loss || (pp->sleeping && (pp->qhead || unwatched)) || unread;
    if (wake) pp->sleeping = 0;
    pb__proc_job *list = pp->done_head; /* hand finished jobs back here, as flush_done() would */
    pp->done_head = NULL;
    pthread_mutex_unlock(&pp->mu);
    /* After unlock is safe: the pool outlives a pb_future_wait in progress (the core's contract). */
    if (signal_io) pthread_cond_broadcast(&pp->lend_cv);
    if (wake) pb__proc_signal(pp->wake_fd);
    pb__proc_hand_back(pp, list);
}

/* Takes every lent worker back and lends no more (terminate, poll failure). I/O thread, mu held
 * (released while it waits). Callers poll recall_fd next to the result pipe, so they return at once. */
/* Waits on lend_cv for up to a few milliseconds, kicking the borrowers first: a borrower asleep on an
 * shm ring's futex looks at recall_fd and the worker's exit only when woken (transport.h). */
static void wait_for_borrowers(pb__proc_pool *pp) {
    for (int i = 0; i < pp->nworkers; i++)
        if (pp->w[i].lent) pp->tr->kick(&pp->w[i].chan);
    pp->io_waits_lend = 1;
    if (pp->tr == &pb__transport_pipe) {
        pthread_cond_wait(&pp->lend_cv, &pp->mu);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 2 * 1000 * 1000; /* a kick that fell before the borrower's futex wait: kick again soon */
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&pp->lend_cv, &pp->mu, &ts);
}

void pb__proc_lend_recall(pb__proc_pool *pp) {
    pp->no_lend = 1;
    if (!pp->nlent) return;
    pb__proc_signal(pp->recall_fd); /* never read: it stays readable */
    while (pp->nlent) wait_for_borrowers(pp);
    pp->io_waits_lend = 0;
}

/* poll() said w's result pipe is readable while a caller holds w: that caller is awake on the same
 * event (or about to give up on its deadline) and hands w back within moments. Waiting for it, rather
 * than polling again, keeps the I/O thread from spinning on a readable fd it may not read. I/O thread,
 * mu held (released while it waits). */
void pb__proc_lend_wait(pb__proc_pool *pp, pb__proc_worker *w) {
    while (w->lent) wait_for_borrowers(pp);
    pp->io_waits_lend = 0;
}

/* After poll(), without mu: did only result pipes of lent workers wake us? Their callers were woken by
 * the same answers and read them. (A worker's exit is never left to its borrower alone.) */
static int only_lent_woke(pb__proc_pool *pp, const struct pollfd *pfd, const pb__proc_slot *sl, int np) {
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
static int lent_returned(pb__proc_pool *pp, const struct pollfd *pfd, const pb__proc_slot *sl, int np) {
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

int pb__proc_lend_only_returned(pb__proc_pool *pp, const struct pollfd *pfd, const pb__proc_slot *sl, int np) {
    /* shm: borrowers read rings, not pipes: a lent worker's pipe woke nobody but this thread */
    if (pp->tr != &pb__transport_pipe) return 0;
    return only_lent_woke(pp, pfd, sl, np) && lent_returned(pp, pfd, sl, np);
}
