/*
 * backend.h - the interface between the pool core (pool.c) and its backends. Internal.
 *
 * DESIGN. The core (pool.c) owns everything a user sees: argument checks, chunking, futures, ordered and
 * unordered delivery, close/join/terminate state and counters. A backend only executes *jobs*: a job is a
 * chunk of items of one task whose results the backend must fill and then hand back with pb__job_done().
 * So a new backend is one file that fills in a pb_backend and one line in registry.c.
 *
 * A pb_backend is versioned like sqlite3_vfs: fields are only ever appended, each version's boundary is
 * marked, and the core checks `version` before touching a later field.
 *
 * Contract:
 *  - create(pool, opts, &impl): start the workers (all of them ready before it returns), or fail with a
 *    negative code and pb__set_error() detail, leaving nothing behind.
 *  - dispatch(impl, job): takes ownership of the job until it calls pb__job_done(pool, job) exactly once,
 *    from any thread, with every results[i] set (status and, if not ok, message). May run the job inline
 *    (serial). Must not block for long: queue it. Returns 0, or a negative code without having taken it.
 *    A map's chunks come in consecutive calls, every one but the last with job->more set.
 *  - shutdown(impl): called by join when no job is outstanding: stop the workers gracefully and reap them.
 *  - terminate(impl): complete every job it holds (queued or running) with PB_STATUS_TERMINATED (or a
 *    real result if it already has one), stop the workers now, reap them. Returns promptly.
 *  - destroy(impl): free; the workers are already gone (shutdown or terminate ran).
 * The core never holds its mutex while calling a backend, so a backend may call pb__job_done() from inside
 * dispatch().
 */
#ifndef POOLBENCH_BACKEND_H
#define POOLBENCH_BACKEND_H

#include "poolbench.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct pb__batch pb__batch;

typedef struct pb__job {
    struct pb__job *next;  /* intrusive link: owned by whoever holds the job */
    const pb_task *task;
    const pb_item *items;  /* n inputs */
    pb_result *results;    /* n outputs; zeroed by the core before dispatch */
    size_t n;
    size_t index0;         /* the index of items[0] in the caller's map (for unordered delivery) */
    pb__batch *batch;      /* core bookkeeping: the map or future this chunk belongs to */
    uint64_t id;           /* unique within the pool, for wire protocols */
    int more;              /* set by the core when more jobs of the same map are dispatched right after this
                            * one: a backend may hold back waking its workers until the job without it
                            * (the last), so that they see the whole map at once. A hint: ignoring it is
                            * correct, and a backend that holds a wake-up must not hold it past a job whose
                            * `more` is 0, whatever that job's fate (queued, failed, refused). */
    atomic_int state;      /* 0 queued, 1 claimed by a worker (pb__job_claim), 2 cancelled, 3 finished
                            * without either (a future completed by terminate, a broken pool, ...) */
} pb__job;

struct pb_backend {
    /* --- version 1 --- */
    int version;
    const char *name;
    const char *description;
    int caps; /* PB_CAP_* */
    int (*create)(pb_pool *pool, const pb_options *opts, void **impl);
    int (*dispatch)(void *impl, pb__job *job);
    void (*shutdown)(void *impl);
    void (*terminate)(void *impl);
    void (*destroy)(void *impl);
    /* --- version 2 --- */
    /* Optional (NULL = none): a fast path for pb_future_wait. The core calls it without its mutex, before
     * its own condvar wait, when the future is not done yet; deadline is a pb__now() time, or < 0 for
     * none. The backend may use the caller's thread to make progress on that job (the process backends
     * let the waiting caller read the answer of the worker running it, which saves waking the I/O thread
     * and then the caller). It must return by the deadline, done or not, and must never be the only one
     * able to complete a job: the core then waits on its condvar as usual. Jobs it completes are handed
     * back with pb__job_done from the waiting thread, so a future's callback may run there. */
    void (*wait_progress)(void *impl, pb__job *job, double deadline);
    /* --- version 3 fields go below this line --- */
};

/* The registered backends (registry.c). */
extern const pb_backend pb_backend_serial;
extern const pb_backend pb_backend_threads;
extern const pb_backend pb_backend_fork;
extern const pb_backend pb_backend_spawn;
extern const pb_backend pb_backend_fork_shm;
extern const pb_backend pb_backend_spawn_shm;
extern const pb_backend pb_backend_forkserver;
/* Reference backends (pb_backend_glib, _libuv, _openmp) live in modules of their own (reference.h); the
 * registry holds stubs for them, whose create is NULL. */
const pb_backend *pb__backend_find(const char *name);
/* The backend the module of a stub named `name` exports, loaded on first use (modules.c); NULL with
 * pb_last_error() saying where it looked and why it failed (PB_ENOBACKEND). */
const pb_backend *pb__module_backend(const char *name);

/* Core services for backends (pool.c). */
void pb__job_done(pb_pool *pool, pb__job *job);
/* A backend calls this when a worker takes a job: 1 = run it; 0 = it was cancelled meanwhile, the core
 * has completed it as CANCELLED and the backend must forget it. */
int pb__job_claim(pb_pool *pool, pb__job *job);
/* Sets results[from..n) to `status` with `message` (results before `from` are kept), then pb__job_done. */
void pb__job_fail(pb_pool *pool, pb__job *job, size_t from, int status, const char *message);
void *pb__pool_impl(const pb_pool *pool); /* the backend's impl (tests' probes of backend internals) */

enum pb__counter {
    PB__WORKERS_STARTED,
    PB__WORKERS_RESPAWNED,
    PB__WORKERS_RECYCLED,
    PB__WORKER_DEATHS,
    PB__TIMEOUTS,
    PB__COUNTER_COUNT
};
void pb__count(pb_pool *pool, enum pb__counter which, uint64_t n);

/* Task execution shared by every backend and the process workers (task.c). Runs task over one item into
 * r (zeroed by the caller): status OK with the output, or TASK_ERROR with a message. max_out bounds the
 * output size (PB_ETOOBIG becomes a task error). */
void pb__run_item(const pb_task *task, const void *in, size_t len, size_t max_out, pb_result *r);
/* A process worker's spare output buffer (worker.c): the last large output's heap block, kept for the next
 * item instead of freed. Why: a worker is a fresh process, and on the reference VM each first write to a
 * new page is a fault of ~12 us (~3 ms per MiB; a MiB written warm takes ~50 us), so a worker that frees
 * its 1 MiB output and mallocs the next paid that twice over before glibc's heap settled (measured: the
 * first two 1 MiB items of each payload worker took 5-11 ms, the rest 0.4 ms). With a spare, an output
 * block is faulted in once per worker, and that once in one call (pb__populate_write). */
typedef struct pb__out_spare {
    unsigned char *buf; /* a malloc block the next large output may take, or NULL */
    size_t cap;         /* its size */
    unsigned char *lent; /* the block an item took (still the item's r->heap), and its size */
    size_t lent_cap;
    int lent_in_place;   /* lent is in_place (not a malloc block: never freed or kept) */
    /* shm: where an output over in_place_from bytes (and at most in_place_cap) is written in place, in the
     * result overflow area right where the worker's RESULT frame carries it, so it is neither faulted
     * into a block of its own nor copied (worker.c sets it per item when the area is free); or NULL. */
    unsigned char *in_place;
    size_t in_place_cap, in_place_from;
    size_t in_place_warm; /* bytes from in_place known to be backed by pages (populated before the task writes) */
} pb__out_spare;
/* pb__run_item with a spare: an output over PB_RESULT_INLINE takes spare->buf when it is large enough,
 * and a new block of at least PB__POPULATE_FROM bytes is populated in one call. */
void pb__run_item_spare(const pb_task *task, const void *in, size_t len, size_t max_out, pb_result *r,
                        pb__out_spare *spare);
/* After r was sent: keeps r's output block as the spare (when it is one of at most keep bytes), so that
 * pb_result_clear(r) does not free it. */
void pb__out_spare_keep(pb__out_spare *spare, pb_result *r, size_t keep);
void pb__out_spare_free(pb__out_spare *spare);
/* A block for a large output of len bytes: one a cleared result gave back (*warm = 1: its pages are
 * mapped in already) or a new malloc block (*warm = 0). free()-able like any output. NULL on no memory. */
unsigned char *pb__output_block(size_t len, int *warm);
/* Gives a block of pb__output_block back for reuse (or frees it when the kept blocks are full). */
void pb__output_block_give(unsigned char *p);
/* 1 when kept blocks (and the parent's view of shm workers' memory, shm.c) are not inherited by fork
 * (MADV_DONTFORK); 0 under valgrind (task.c says why). */
int pb__output_blocks_unforked(void);
/* MADV_DONTFORK (dontfork) or MADV_DOFORK again on the whole pages inside a malloc block of cap bytes at p,
 * as for kept blocks (a no-op under valgrind, see pb__output_blocks_unforked). Best effort. */
void pb__block_fork_advice(void *p, size_t cap, int dontfork);
/* Sets r to a non-ok status with a formatted message (replacing any output). */
void pb__result_fail(pb_result *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records the detail for pb_last_error() on this thread (error.c). Returns err for `return pb__set_error(...)`. */
int pb__set_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic clock in seconds. */
double pb__now(void);

#endif
