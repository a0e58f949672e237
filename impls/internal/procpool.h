/*
 * procpool.h - what the two halves of the process pools' parent side share: procpool.c (the I/O thread,
 * dispatch, deaths, the backend methods) and lend.c (a waiting caller borrows the worker running its job).
 *
 * Internal (impls/internal/): the pool's state, the worker slots and the helpers both halves call. Nothing
 * here is part of the library's API; fork.c and spawn.c see only proc.h. The locking rules are in
 * procpool.c's DESIGN (Locking): mu guards everything below unless a field says otherwise.
 */
#ifndef POOLBENCH_PROCPOOL_H
#define POOLBENCH_PROCPOOL_H

#include "proc.h"
#include "transport.h"
#include "wire.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

#define PB_PROC_HANDSHAKE_S 10.0 /* a worker must answer INIT within this long */
#define PB_PROC_CLOSE_S 5.0      /* after EOF on its request pipe a worker must exit within this long */
#define PB_PROC_RETRY_S 0.05     /* delay before retrying a worker that could not be started */
#define PB_PROC_READ_CHUNK (64u * 1024u)
#define PB_PROC_POLL_RETRIES 100 /* consecutive poll() failures (10 ms apart) before the pool gives up */
#define PB_PROC_LEND_SPIN_S 50e-6 /* how long the I/O thread yields to callers reading lent workers */
#define PB_PROC_ALIVE_CHECK_S 0.2 /* without a pidfd: how often a worker is checked for having exited */

/* A pjob is the backend's view of one core job: the number of its items still without a result. */
typedef struct pb__proc_job {
    pb__job *job;
    size_t remaining;
    int claimed; /* pb__job_claim said yes */
    struct pb__proc_job *done_next;
} pb__proc_job;

/* A range of a job's items waiting in the queue or running on a worker. */
typedef struct pb__proc_unit {
    struct pb__proc_unit *next;
    pb__proc_job *pj;
    size_t begin, end;
    int per_item; /* run with PB_WIRE_F_PER_ITEM */
} pb__proc_unit;

typedef enum pb__proc_wstate {
    W_EMPTY,    /* no process in this slot (not started yet, or waiting to be restarted) */
    W_STARTING, /* INIT sent, waiting for READY */
    W_IDLE,
    W_BUSY,     /* running `cur` */
    W_RETIRING, /* sent RETIRE: will exit 0 */
    W_CLOSING   /* request pipe closed by us: will exit 0 */
} pb__proc_wstate;

typedef struct pb__proc_worker {
    pb__proc_wstate state;
    pid_t pid;
    int pidfd;           /* readable once pid has exited; -1 when pidfd_open failed (see Deaths) */
    unsigned gen;        /* bumped when the process is reaped: poll() results for an older one are stale */
    int req_fd;          /* parent's write end of the request pipe, non-blocking */
    int req_hold;        /* parent's own copy of its read end, never read: the pipe always has a reader,
                          * so no write to it can raise SIGPIPE (procpool.c, No SIGPIPE) */
    int resp_fd;         /* parent's read end of the result pipe, non-blocking */
    double deadline;     /* STARTING: handshake; BUSY with timeouts: current item; CLOSING: exit; EMPTY: retry */
    int replacing;       /* the next start replaces a lost worker (counts as a respawn) */
    int init_failed;     /* its READY said the initializer failed: it is about to exit */
    pb__proc_unit cur;   /* BUSY: the unit it runs */
    size_t next_report;  /* BUSY: the first item of cur without a result */
    size_t req_in_pipe;  /* BUSY, pipe transport: bytes of cur's REQUEST written to the request pipe */
    uint64_t budget;     /* items it may still be sent (max_tasks_per_worker), UINT64_MAX = unlimited */
    pb__wbuf out;         /* bytes to write to req_fd, from out_pos */
    size_t out_pos;
    pb__wbuf in;          /* bytes read from resp_fd not yet parsed, from in_pos */
    pb__chan chan;       /* the transport's state for this worker (shm: its rings) */
    size_t in_pos;
    char io_why[120];    /* why a read or write on its pipes failed, for the loss message ("" = none) */
    atomic_int lent;     /* a waiting caller reads resp_fd (see "Lending"); the I/O thread must not.
                          * Written under mu; the I/O thread also peeks at it without mu after poll() */
    int pending_loss;    /* that caller found it lost: the I/O thread must lose_worker() it */
    const char *pending_why; /* ... with this protocol error (static string), or NULL (EOF / io_why) */
    int watch;           /* how the I/O thread watches resp_fd (watch.c): WATCH_NONE, WATCH_ON, WATCH_OFF */
} pb__proc_worker;

/* pb__proc_worker.watch (watch.c) */
enum { WATCH_NONE, WATCH_ON, WATCH_OFF };

typedef struct pb__proc_pool {
    pb_pool *pool;
    const pb_options *opts; /* the core's normalized copy; lives as long as the pool */
    const pb__proc_birth *birth;
    const pb__transport *tr; /* how frames travel: the birth's, or the pipe (transport.h) */
    void *ctx;
    size_t max_item, max_frame;
    pb__wbuf init_frame; /* the INIT frame, encoded once */
    int wake_fd;
    int watch_fd;                  /* epoll set of the result pipes (watch.c), -1: polled directly */
    struct epoll_event *watch_ev;  /* room for one event per worker */
    pthread_t io;
    int io_running;

    pthread_mutex_t mu; /* guards everything below (see Locking) */
    pthread_cond_t cv;  /* start-up finished; stop requested (for an I/O thread parked by poll_failed) */
    pthread_cond_t lend_cv; /* a lent worker was handed back (the I/O thread waits for it: io_waits_lend) */
    int recall_fd;      /* eventfd, readable for good once the I/O thread wants every lent worker back */
    int nlent;          /* workers lent to waiting callers */
    int no_lend;        /* recalled (terminate, poll failure): lend no more */
    int io_waits_lend;  /* the I/O thread sleeps on lend_cv */
    pb__proc_unit *qhead, *qtail;
    int stop;          /* 0 running, 1 shutdown, 2 terminate */
    int sleeping;      /* the I/O thread is (about to be) in poll(): dispatch must wake it */
    int startup_done;
    int startup_rc;
    char startup_msg[512];
    int broken;
    char broken_msg[512];

    pb__proc_worker *w;
    int nworkers;
    int nstarted; /* slots [0, nstarted) are in use; the others have never been started (Start policy) */
    int starting; /* still in create(): a lost worker fails the pool instead of being respawned */
    int stop_seen; /* `stop` as the I/O thread last acted on it */
    char init_error[PB_WIRE_MSG_MAX + 1]; /* what the last failed initializer said (for death messages) */
    double *deaths; /* ring of the last crashloop_deaths + 1 death times since the last ok item */
    int ndeaths, death_pos, death_cap;
    pb__proc_job *done_head; /* jobs to hand back, outside any lock */
    double next_alive_check; /* workers without a pidfd: when to check them next (see Deaths) */
} pb__proc_pool;

/* What an entry of the I/O thread's poll() set watches. */
enum slot_kind { SLOT_WAKE, SLOT_WATCH, SLOT_RESULTS, SLOT_REQUESTS, SLOT_EXIT };
typedef struct pb__proc_slot {
    enum slot_kind kind;
    int worker;   /* index in pp->w (not SLOT_WAKE) */
    unsigned gen; /* the worker's gen when the set was built: a reaped process's entries are stale */
} pb__proc_slot;

/* How read_frames() stopped. */
enum pb__proc_read_end {
    READ_DRAINED, /* nothing more to read for now (or, with until_answered, w's unit is answered) */
    READ_EOF,     /* the pipe is at EOF: the worker is gone (a partial frame may be left in w->in) */
    READ_LOST,    /* w can no longer be trusted or heard: a malformed frame, no memory, a read error */
};

/* ---- procpool.c, for lend.c ---- */

/* 1 when pid (our unreaped child) has exited, without reaping it; for workers without a pidfd. */
int pb__proc_exited_unreaped(pid_t pid);

/* Reads what w sent and handles every complete frame, mu held (see procpool.c). */
enum pb__proc_read_end pb__proc_read_frames(pb__proc_pool *pp, pb__proc_worker *w, double now, int until_answered, const char **why);

/* Hands the finished jobs in list back to the core (pb__job_done), then frees them. No lock held. */
void pb__proc_hand_back(pb__proc_pool *pp, pb__proc_job *list);

/* The one wake-up: makes eventfd fd readable (the I/O thread's wake_fd, or recall_fd). Any thread, any lock. */
void pb__proc_signal(int fd);

/* The one poll() timeout: milliseconds from now until deadline (INFINITY: -1, wait forever), rounded up
 * so that poll() never returns just before the deadline, and capped at an hour. */
int pb__proc_poll_ms(double deadline, double now);

/* ---- lend.c, for procpool.c ---- */

/* I/O thread, mu held (released while waiting): takes every lent worker back and lends no more. */
void pb__proc_lend_recall(pb__proc_pool *pp);
/* I/O thread, mu held (released while waiting): waits until w is no longer lent. */
void pb__proc_lend_wait(pb__proc_pool *pp, pb__proc_worker *w);
/* I/O thread after poll(), without mu: only lent workers' result pipes woke it, and their borrowers have
 * handed them back within PB_PROC_LEND_SPIN_S. Then it may sleep again with the same poll set. */
int pb__proc_lend_only_returned(pb__proc_pool *pp, const struct pollfd *pfd, const pb__proc_slot *sl, int np);

/* ---- watch.c: the result pipes in one epoll set a borrower can switch its worker's entry off in ---- */

/* At create: the set for the pipe transport (a failure to make it is no error: pipes polled directly).
 * -ENOMEM only when its event buffer cannot be allocated. */
int pb__proc_watch_open(pb__proc_pool *pp);
void pb__proc_watch_close(pb__proc_pool *pp);
/* I/O thread, mu held: w's resp_fd was just opened / is about to be closed. */
void pb__proc_watch_add(pb__proc_pool *pp, pb__proc_worker *w);
void pb__proc_watch_remove(pb__proc_pool *pp, pb__proc_worker *w);
/* Borrower, mu held: switch w's entry off when lending it, back on when handing it back. _return
 * gives 1 when the entry could not be switched on and w is now polled directly: the I/O thread, if
 * asleep, must be woken to see that. */
void pb__proc_watch_lend(pb__proc_pool *pp, pb__proc_worker *w);
int pb__proc_watch_return(pb__proc_pool *pp, pb__proc_worker *w);
/* The fd the I/O thread's poll() entry for w's results gets: resp_fd, or -1 when the set watches it. */
int pb__proc_watch_poll_fd(const pb__proc_worker *w);
/* After poll(), without mu: fills the SLOT_RESULTS entries from the set's ready events. */
void pb__proc_watch_expand(pb__proc_pool *pp, struct pollfd *pfd, const pb__proc_slot *sl, int np);

#endif
