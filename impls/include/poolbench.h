/*
 * poolbench.h - the public API of the poolbench pool library.
 *
 * One API, several interchangeable backends chosen by name at pool creation:
 *   "serial"  the seed's plain for loop in the calling thread (the baseline)
 *   "threads" a pthread pool in this process
 *   "fork"    pre-forked worker processes talking a framed protocol over pipes
 *   "spawn"   posix_spawn'ed worker processes (same protocol, fresh exec)
 * and, when their library was found at configure time, the reference backends "glib" (GThreadPool),
 * "libuv" (uv_queue_work) and "openmp" (parallel for): the pools people would otherwise use.
 *
 * Work is expressed as named tasks: a function from input bytes to output bytes plus a status. Only the
 * task name and the bytes reach a worker, so the same task code runs unchanged on every backend. Tasks are
 * registered by name, normally with PB_TASK_DEFINE (a constructor, so that a re-executed spawn worker has
 * the same tasks before main() runs).
 *
 * Conventions (libuv style): functions return 0 or a negative error code (PB_E* or -errno);
 * pb_strerror() names it and pb_last_error() gives the detail of the last failure on this thread.
 * Every result carries a status (pb_status): a failed task never aborts a map, it is reported in its slot.
 */
#ifndef POOLBENCH_H
#define POOLBENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PB_API_VERSION 1

/* ---- error codes: 0 is success; system failures are returned as -errno ---- */
enum {
    PB_ENOBACKEND = -10001, /* no backend by that name */
    PB_ENOTASK = -10002,    /* no task by that name */
    PB_ETOOBIG = -10003,    /* an input or output over the configured limit */
    PB_ECLOSED = -10004,    /* the pool is closed or terminated: no new work */
    /* -10005 was PB_ECRASHLOOP, which nothing ever returned: a tripped crash-loop breaker shows in the
     * items it fails (PB_STATUS_BROKEN, with a message naming the last death), never in a return code.
     * The number stays unused so that no other code takes it. */
    PB_ESPAWN = -10006,     /* a worker could not be started (see pb_last_error) */
    PB_EPROTO = -10007,     /* a malformed frame on the wire */
    PB_ENOTSUP = -10008,    /* the backend cannot do what the options ask */
    PB_EINVAL = -10009,     /* an invalid argument (NULL, workers <= 0, ...) */
    PB_ETIMEDOUT = -10010   /* a wait ran out of time; the work goes on */
};

/* The name of an error code ("unknown backend", ...); never NULL. */
const char *pb_strerror(int err);
/* Detail of the last failing call on this thread ("unknown backend 'forkk'"); "" when none. */
const char *pb_last_error(void);

/* ---- result status ---- */
typedef enum pb_status {
    PB_STATUS_OK = 0,
    PB_STATUS_TASK_ERROR,   /* the task returned non-zero; message holds its text */
    PB_STATUS_WORKER_DIED,  /* the worker died holding it; signal or exit_code says how */
    PB_STATUS_TIMED_OUT,    /* it ran past the per-task timeout; its worker was killed */
    PB_STATUS_CANCELLED,    /* cancelled before it started */
    PB_STATUS_TERMINATED,   /* the pool was terminated before it finished */
    PB_STATUS_BROKEN,       /* the crash-loop breaker stopped the pool before it ran */
    PB_STATUS_COUNT
} pb_status;

const char *pb_status_name(int status); /* "ok", "task-error", "worker-died", ... */

#define PB_RESULT_INLINE 16 /* outputs up to this size are stored without a heap allocation */

/* The outcome of one task. Read the bytes with pb_result_data(); free with pb_result_clear(). */
typedef struct pb_result {
    int status;    /* pb_status */
    int signal;    /* WORKER_DIED: the signal that killed the worker, else 0 */
    int exit_code; /* WORKER_DIED: the worker's exit code when it exited, else -1 */
    size_t len;    /* output length in bytes */
    unsigned char *heap;                      /* output when len > PB_RESULT_INLINE, else NULL */
    unsigned char inline_data[PB_RESULT_INLINE];
    char *message; /* heap string for every non-ok status, NULL when ok */
} pb_result;

const void *pb_result_data(const pb_result *r);
void pb_result_clear(pb_result *r);                /* frees and zeroes; safe on a zeroed result */
void pb_result_move(pb_result *dst, pb_result *src); /* dst takes src's contents; src is zeroed */
void pb_results_clear(pb_result *r, size_t n);

/* ---- tasks ---- */
typedef struct pb_output pb_output; /* where a task writes its answer */

/* A task: reads len bytes at in, writes its output through out, returns 0 on success. A non-zero return
 * is a task error; its message is what pb_output_error set, or a generic one. */
typedef int (*pb_task_fn)(const void *in, size_t len, pb_output *out);

/* Output buffer of len bytes for the task to fill (inline when small); NULL when over the limit or out
 * of memory. Calling it again replaces the previous output. */
void *pb_output_alloc(pb_output *out, size_t len);
/* Copies len bytes as the output. 0 or PB_ETOOBIG / -ENOMEM. */
int pb_output_set(pb_output *out, const void *data, size_t len);
/* Sets the error message (printf-style) and returns -1, so a task can `return pb_output_error(...)`. */
int pb_output_error(pb_output *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct pb_task {
    const char *name;
    pb_task_fn fn;
} pb_task;

#define PB_TASK_NAME_MAX 1024 /* the longest task name, in bytes (the process backends send names) */

/* Registers fn under name (the string must outlive the registry; literals do). Re-registering the same
 * name with the same fn is a no-op; with another fn it is PB_EINVAL, and so is a name longer than
 * PB_TASK_NAME_MAX. */
int pb_task_register(const char *name, pb_task_fn fn);
const pb_task *pb_task_find(const char *name); /* NULL when unknown */
size_t pb_task_count(void);
const pb_task *pb_task_at(size_t i);

/* Registers a task before main() runs, in every program that links the file: this is what lets a
 * spawn worker (a fresh exec of the program) find the same tasks.
 *
 * Besides the registration constructor (priority 150) it puts in the object that uses it (the
 * executable, or a shared library of the program) a late init-array entry (priority 65535) calling
 * pb__spawn_worker_late_entry: outside a spawn worker it does nothing; in one, the last of these entries
 * to run among all objects loaded at start-up enters the worker loop. That is after every PB_TASK_DEFINE
 * of the program, in a static or a shared-library build (the loader runs a shared library's constructors
 * before the executable's, so a constructor of libpoolbench.so alone would run too early). */
void pb__spawn_worker_late_entry(void); /* internal: the late entry below */
#define PB_TASK_DEFINE(name_literal, fn)                                                             \
    __attribute__((constructor(150))) static void pb__register_##fn(void) {                          \
        (void)pb_task_register(name_literal, fn);                                                    \
    }                                                                                                \
    __attribute__((section(".init_array.65535"), used)) static void (*pb__worker_entry_##fn)(void) = \
        pb__spawn_worker_late_entry;

/* Spawn workers are a fresh exec of the program (or of options.worker_program), and enter their worker
 * loop before main() runs, once every PB_TASK_DEFINE task is registered (above; a program without any
 * enters from a library constructor). A program that registers tasks otherwise (with pb_task_register in
 * main, from constructors without a priority, or in a dlopen'ed library) defines
 * `const int pb_spawn_worker_manual = 1;` and calls this after registering: it returns 0 at once when
 * this process is not a spawned worker, else it runs the worker loop and exits. */
int pb_worker_main_if_requested(void);

/* The "forkserver" backend forks its workers from a helper process forked early, so that they inherit a
 * small clean heap instead of the host's (Python's forkserver). Call pb_forkserver_start() early in main,
 * before allocating large inputs, from a thread that outlives every forkserver pool (the main thread): the
 * helper stays until pb_forkserver_stop() or the process exits. Without it, a forkserver pool starts a
 * helper itself in pb_pool_create (from the creating thread) and the last such pool stops it. Tasks
 * registered after the helper was forked are unknown to its workers (PB_TASK_DEFINE tasks never are).
 * Returns 0 or a negative error (pb_last_error says more). pb_forkserver_pid: the helper's pid, 0 if none. */
int pb_forkserver_start(void);
void pb_forkserver_stop(void);
int pb_forkserver_pid(void);

/* ---- pools ---- */
typedef struct pb_pool pb_pool;
typedef struct pb_future pb_future;

#define PB_OPTIONS_VERSION 2

/* When the process backends start their workers (pb_options.start). */
typedef enum pb_start_policy {
    PB_START_ON_DEMAND = 0, /* the default: create starts one worker and returns once it is ready; more start
                               as work arrives, never more than there is queued work for (as Python's
                               ProcessPoolExecutor since 3.9); a task goes to the first worker ready */
    PB_START_EAGER = 1      /* create starts every worker and returns when all of them are ready */
} pb_start_policy;

typedef struct pb_options {
    int version;                 /* PB_OPTIONS_VERSION (pb_options_init sets it) */
    int workers;                 /* > 0; pb_options_init sets the number of online CPUs */
    size_t chunksize;            /* default chunk for map; 0 = automatic */
    unsigned max_tasks_per_worker; /* process backends: recycle a worker after this many; 0 = never */
    size_t max_worker_rss;       /* process backends: recycle a worker above this RSS (bytes); 0 = never */
    double task_timeout;         /* seconds; 0 (or -0.0, or INFINITY) = none, NaN or < 0 = PB_EINVAL.
                                    A finite one needs a backend with PB_CAP_TIMEOUT */
    const char *initializer;     /* task run once in every worker before its first task; NULL = none */
    const void *init_arg;        /* the initializer's input */
    size_t init_arg_len;
    const char *worker_program;  /* spawn: the program to run as worker; NULL = this program
                                    (or $POOLBENCH_WORKER_PROGRAM) */
    size_t max_item_bytes;       /* limit on one input or output; default 64 MiB */
    int crashloop_deaths;        /* breaker: more than this many worker deaths ... (default 20) */
    double crashloop_window;     /* ... within this many seconds with no task finishing ok (default 5;
                                    NaN = PB_EINVAL) */
    /* --- version 2 --- (a version 1 struct is accepted: the fields below take their defaults) */
    int start;                   /* pb_start_policy; other values = PB_EINVAL. The threads backend follows it too */
} pb_options;

void pb_options_init(pb_options *o);

/* Backend capabilities. */
#define PB_CAP_ASYNC 0x1           /* tasks run concurrently with the caller (serial runs them inline) */
#define PB_CAP_CRASH_ISOLATION 0x2 /* a task that crashes its worker does not take the caller down */
#define PB_CAP_TIMEOUT 0x4         /* per-task timeouts are enforced */
#define PB_CAP_RECYCLE 0x8         /* max_tasks_per_worker / max_worker_rss are honoured */

typedef struct pb_backend pb_backend; /* see impls/internal/backend.h */

size_t pb_backend_count(void);
const char *pb_backend_name_at(size_t i);
const char *pb_backend_description(const char *name); /* NULL when unknown */
int pb_backend_caps(const char *name);                /* PB_CAP_* bits, or PB_ENOBACKEND */
const char *pb_backend_default(void);                 /* "threads" */
/* Backends this build knows by name but lacks: the reference backends whose library (GLib, libuv,
 * OpenMP) was not found or was switched off at configure time. The reason reads "GLib was not found at
 * configure time"; NULL when the name is built in or unknown. */
size_t pb_backend_not_built_count(void);
const char *pb_backend_not_built_at(size_t i);
const char *pb_backend_not_built_reason(const char *name);

/* Creates a pool on the named backend (NULL = default). opts may be NULL for defaults. */
int pb_pool_create(pb_pool **out, const char *backend, const pb_options *opts);
const char *pb_pool_backend(const pb_pool *pool);
int pb_pool_workers(const pb_pool *pool);

typedef struct pb_item {
    const void *data;
    size_t len;
} pb_item;

/* Python's rule: ceil(n / (4 * workers)), at least 1. */
size_t pb_auto_chunksize(size_t n, int workers);

/* Runs task over items[0..n) and waits; results[i] answers items[i]. chunksize 0 = the pool's option,
 * else automatic. Returns the number of results whose status is not ok (>= 0), or a negative error
 * (nothing was run). The caller frees results with pb_results_clear. */
int pb_map(pb_pool *pool, const char *task, const pb_item *items, size_t n, size_t chunksize,
           pb_result *results);

/* Streams results in completion order: cb(ud, index, result) is called in the calling thread once per
 * item. The result is cleared after cb returns (pb_result_move keeps it). Returns as pb_map. */
typedef void (*pb_result_cb)(void *ud, size_t index, pb_result *result);
int pb_map_unordered(pb_pool *pool, const char *task, const pb_item *items, size_t n, size_t chunksize,
                     pb_result_cb cb, void *ud);

/* Submits one task; the input is copied. */
int pb_submit(pb_pool *pool, const char *task, const void *in, size_t len, pb_future **out);
/* 0 when done; PB_ETIMEDOUT when timeout_s passed first (the task goes on). A negative timeout, INFINITY,
 * or one too large for a timespec (beyond ~1.4e11 years) waits forever, sleeping; 0 and -0.0 poll;
 * NaN is PB_EINVAL. Any number of threads may wait on the same future. */
int pb_future_wait(pb_future *f, double timeout_s);
int pb_future_done(const pb_future *f);
const pb_result *pb_future_result(const pb_future *f); /* NULL until done */
/* cb(ud, f) runs exactly once when f completes: at once in this thread if it already has, else in a
 * pool thread or in a thread waiting on that future (the process backends let a waiting caller read its
 * answer); keep it short and do not wait on the pool from it. Only one callback per future. */
typedef void (*pb_future_cb)(void *ud, pb_future *f);
int pb_future_on_done(pb_future *f, pb_future_cb cb, void *ud);
/* Cancels a task that has not started: 0 if cancelled; PB_EINVAL if it already started, finished (for
 * any reason: run, terminated, broken pool, ...) or was cancelled before. */
int pb_future_cancel(pb_future *f);
/* Drops the caller's reference; the pool keeps the future alive until it completes. */
void pb_future_release(pb_future *f);

/* Lifecycle and threads (docs/pool-api.md). Submitting, mapping, waiting and reading counters may be done
 * from any number of threads at once. close, join and terminate may also be called from any threads, at
 * once and repeatedly: the first join or terminate does the work and the others wait until it is done,
 * then every call returns 0 (a watchdog thread may terminate a pool the main thread is joining; the join
 * then returns once the terminate has finished). Never call them, nor wait on the pool, from a task or a
 * completion callback (they run on the pool's own threads). destroy comes last, once no other call on the
 * pool can still be running or start; a second destroy of the same pool is PB_EINVAL (best effort: the
 * pointer is only compared, never read). */

/* No new work is accepted; queued work still runs. */
int pb_pool_close(pb_pool *pool);
/* Closes, waits for all work to finish and for every worker to exit and be reaped. Again: 0 at once. */
int pb_pool_join(pb_pool *pool);
/* Stops now: queued and running tasks end as TERMINATED, workers are killed (processes) or abandoned
 * at their next task boundary (threads), and reaped. Returns promptly. Again, or after join: 0 at once. */
int pb_pool_terminate(pb_pool *pool);
/* Terminates if not yet joined, then frees. 0; NULL is a no-op (0); a pool already destroyed, PB_EINVAL. */
int pb_pool_destroy(pb_pool *pool);

typedef struct pb_counters {
    uint64_t tasks_submitted;              /* items accepted by map, map_unordered and submit */
    uint64_t tasks_done;                   /* = sum of by_status */
    uint64_t by_status[PB_STATUS_COUNT];   /* finished tasks per pb_status */
    uint64_t workers_started;              /* including respawns and recycles */
    uint64_t workers_respawned;            /* started to replace a worker that died or timed out */
    uint64_t workers_recycled;             /* retired after max_tasks_per_worker / max_worker_rss */
    uint64_t worker_deaths;                /* workers lost to a signal or an unexpected exit */
    uint64_t timeouts;                     /* tasks killed for running past task_timeout */
} pb_counters;

void pb_pool_counters(pb_pool *pool, pb_counters *out);

#ifdef __cplusplus
}
#endif
#endif
