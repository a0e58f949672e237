/*
 * watch.c - the I/O thread's watch on result pipes: one epoll set that a borrower takes its worker's pipe
 *  out of while it reads the answer itself, without waking the I/O thread.
 *
 *  Why. With the pipe transport a caller waiting for its job borrows the worker running it (lend.c) and
 *  polls the worker's result pipe itself. The I/O thread used to keep that pipe in its own poll() set
 *  all along, so every answer woke two threads, the caller and the I/O thread: on two vCPUs a third
 *  wake-up in every round trip (submit + wait at 2.2x a raw pipe ping-pong, stop 15). Mostly the kernel's
 *  poll() then found the pipe already drained by the caller and slept again without returning, so no
 *  user-space count showed it; when it did return, the I/O thread yielded until the caller handed the
 *  worker back (lend.c). A poll() set cannot
 *  be changed under the thread sleeping in it; an epoll set can, from any thread, and an epoll fd can
 *  itself be polled. So the I/O thread polls one epoll fd in place of the result pipes, and a borrower
 *  switches its worker's entry off (EPOLL_CTL_MOD with no events) for as long as it holds the worker and
 *  back on when it hands it back. Level-triggered: whatever the borrower leaves in the pipe (a RETIRE after
 *  the answer, EOF) makes the set readable again the moment the entry is back on. A switched-off entry
 *  still reports EPOLLHUP (the kernel always adds it), which the I/O thread handles as it did before: it
 *  waits for the borrower, who sees the same end.
 *
 *  Only the pipe transport uses it: the shm transport's borrower waits on the ring's futex and already
 *  tells the worker not to ring the pipe (transport.h, doorbell), so its I/O thread is not woken anyway.
 *
 *  Fallback. Every step may fail (epoll_create1 or epoll_ctl through pb__sys, so tests can fail them):
 *  the pool then polls that worker's pipe directly, exactly as before the watch existed. A borrower that
 *  cannot switch the entry back on takes it out of the set and wakes the I/O thread, which then polls the
 *  pipe directly from its next poll() on. Switching off that fails costs only the old extra wake-up.
 *
 *  State per worker (`watch`, under mu): WATCH_NONE polled directly, WATCH_ON in the set, WATCH_OFF in
 *  the set but switched off (lent). The I/O thread's poll() entry for a worker in the set has fd -1 (poll
 *  ignores it) and is filled from epoll_wait() after poll() returns (pb__proc_watch_expand), so the rest
 *  of the loop reads one pollfd per pipe as before.
 */
#include "procpool.h"
#include "syscalls.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

int pb__proc_watch_open(pb__proc_pool *pp) {
    pp->watch_fd = -1;
    if (pp->tr != &pb__transport_pipe) return 0;
    /* room for every worker's event, so that one epoll_wait() reports all of them */
    pp->watch_ev = calloc((size_t)pp->nworkers, sizeof(struct epoll_event));
    if (!pp->watch_ev) return -ENOMEM;
    pp->watch_fd = pb__sys.epoll_create1(EPOLL_CLOEXEC); /* -1: every pipe polled directly */
    return 0;
}

void pb__proc_watch_close(pb__proc_pool *pp) {
    if (pp->watch_fd >= 0) close(pp->watch_fd);
    pp->watch_fd = -1;
    free(pp->watch_ev);
    pp->watch_ev = NULL;
}

static int watch_ctl(pb__proc_pool *pp, pb__proc_worker *w, int op, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(w - pp->w)};
    return pb__sys.epoll_ctl(pp->watch_fd, op, w->resp_fd, &ev);
}

void pb__proc_watch_add(pb__proc_pool *pp, pb__proc_worker *w) {
    w->watch = WATCH_NONE;
    if (pp->watch_fd >= 0 && w->resp_fd >= 0 && watch_ctl(pp, w, EPOLL_CTL_ADD, EPOLLIN) == 0) w->watch = WATCH_ON;
}

void pb__proc_watch_remove(pb__proc_pool *pp, pb__proc_worker *w) {
    /* A failure leaves nothing behind: closing the fd (only the parent holds the read end) drops the entry. */
    if (w->watch != WATCH_NONE && w->resp_fd >= 0) (void)watch_ctl(pp, w, EPOLL_CTL_DEL, 0);
    w->watch = WATCH_NONE;
}

void pb__proc_watch_lend(pb__proc_pool *pp, pb__proc_worker *w) {
    if (w->watch == WATCH_ON && watch_ctl(pp, w, EPOLL_CTL_MOD, 0) == 0) w->watch = WATCH_OFF;
}

int pb__proc_watch_return(pb__proc_pool *pp, pb__proc_worker *w) {
    if (w->watch != WATCH_OFF) return 0;
    if (watch_ctl(pp, w, EPOLL_CTL_MOD, EPOLLIN) == 0) {
        w->watch = WATCH_ON;
        return 0;
    }
    pb__proc_watch_remove(pp, w); /* polled directly from the I/O thread's next poll() on */
    return 1;
}

int pb__proc_watch_poll_fd(const pb__proc_worker *w) { return w->watch == WATCH_NONE ? w->resp_fd : -1; }

void pb__proc_watch_expand(pb__proc_pool *pp, struct pollfd *pfd, const pb__proc_slot *sl, int np) {
    int set = -1;
    for (int j = 0; j < np && set < 0; j++)
        if (sl[j].kind == SLOT_WATCH) set = j;
    if (set < 0 || !pfd[set].revents) return;
    pfd[set].revents = 0;
    struct epoll_event *ev = pp->watch_ev;
    /* Timeout 0: poll() said the set is ready. Room for every worker, so nothing is left for a second
     * call. A worker started after the poll() set was built has no slot yet: its entry stays ready and
     * is reported after the next poll(). */
    int n = epoll_wait(pp->watch_fd, ev, pp->nworkers, 0);
    for (int k = 0; k < n; k++) {
        for (int j = 0; j < np; j++) {
            if (sl[j].kind == SLOT_RESULTS && (uint32_t)sl[j].worker == ev[k].data.u32) {
                /* EPOLLIN, EPOLLERR and EPOLLHUP have poll()'s values on Linux */
                pfd[j].revents |= (short)(ev[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP));
                break;
            }
        }
    }
}
