/*
 * reference.h - what the reference backends (glib.c, libuv.c, openmp.c) share. Internal.
 *
 * Those backends run jobs on threads their library owns and starts (GLib's exclusive GThreadPool threads,
 * libuv's process-wide threadpool, libgomp's team), so none of them offers a hook that runs our code once
 * in each of its threads before the first job. The per-worker initializer therefore runs lazily: the first
 * time a library thread runs a job of a given pool, it runs the initializer for that pool. A thread whose
 * initializer fails runs none of that pool's items: they end as task errors carrying the initializer's
 * message (the threads backend fails pool creation instead, because it owns its threads' start).
 *
 * Each pool gets a process-unique id (a thread-local "initialized for pool N" is then exact even when a
 * library reuses its threads across pools, as libuv and libgomp do).
 *
 * MODULES. Each reference backend is built as a module of its own (libpoolbench-glib.so, ...; the sources
 * are impls/reference/), which the core loads with dlopen the first time a pool of that backend is
 * created (modules.c). So GLib, libuv and libgomp are mapped into a process only when it uses them: a
 * program linked with libpoolbench no longer loads them at every start (~1.3 ms per process start on the
 * reference VM, paid again by every spawn worker, which re-executes the program). The registry knows a
 * module backend by name, description and capabilities alone (the PB_REF_* macros below, shared by both
 * sides). A module calls back into the core only through the pb__ref_host table it is handed at load, so
 * it works the same whether the core is a static library inside the program or libpoolbench.so; under
 * POOLBENCH_REFERENCE_MODULE the core calls below become calls through that table.
 */
#ifndef POOLBENCH_REFERENCE_H
#define POOLBENCH_REFERENCE_H

#include "backend.h"

/* ThreadSanitizer sees synchronization only through pthread calls and instrumented atomics. GLib's
 * GAsyncQueue (its GMutex is a raw futex) and libgomp's team start and barriers (futexes) are neither, so
 * under TSan a job handed through them looks like a race on the job's memory. These annotations state the
 * hand-offs those libraries really make (push -> the thread that pops; region start -> each iteration;
 * each iteration -> region end), and nothing else; they compile to nothing outside TSan builds. libuv's
 * threadpool needs none: its queues use pthread mutexes, which TSan sees. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define PB_TSAN_RELEASE(addr) __tsan_release((void *)(addr))
#define PB_TSAN_ACQUIRE(addr) __tsan_acquire((void *)(addr))
#else
#define PB_TSAN_RELEASE(addr) ((void)0)
#define PB_TSAN_ACQUIRE(addr) ((void)0)
#endif

typedef struct pb__ref_pool {
    pb_pool *pool;
    const pb_options *opts;
    uint64_t id;           /* unique in this process, for the lazy per-thread initializer */
    atomic_int abort_items; /* terminate: items not started yet end TERMINATED */
} pb__ref_pool;

/* Fills r for a new pool (a fresh id, abort_items cleared). */
void pb__ref_init(pb__ref_pool *r, pb_pool *pool, const pb_options *opts);

/* Runs one job's items in the calling library thread: claims it (a cancelled job is already complete:
 * returns 0, forget it), runs the pool's initializer if this thread has not yet for this pool, then the
 * items, checking abort_items before each. Returns 1 when the caller must hand the job back with
 * pb__job_done (libuv does that later, in its loop thread). */
int pb__ref_run_items(pb__ref_pool *r, pb__job *job);

/* pb__ref_run_items, then pb__job_done in the same thread. */
void pb__ref_run_job(pb__ref_pool *r, pb__job *job);

/* Completes a job the library will never run (terminate, or a library that refused it). */
void pb__ref_terminate_job(pb__ref_pool *r, pb__job *job);

/* ---- the module interface ---- */

/* What the registry shows before a module is loaded; the module's own pb_backend uses the same. */
#define PB_REF_GLIB_DESCRIPTION "reference: GLib's GThreadPool, exclusive threads (no crash isolation)"
#define PB_REF_LIBUV_DESCRIPTION                                                                                  \
    "reference: libuv's uv_queue_work on a loop thread; threads = UV_THREADPOOL_SIZE, fixed at first use (no "   \
    "crash isolation)"
#define PB_REF_OPENMP_DESCRIPTION                                                                                 \
    "reference: OpenMP parallel for schedule(dynamic) over the queued jobs (libgomp; no crash isolation)"
#define PB_REF_CAPS PB_CAP_ASYNC

/* Bumped whenever the table, pb_backend, pb__job, pb_result or pb_options change shape: a module of
 * another ABI refuses to load (its entry returns NULL with a message) instead of misreading them. */
#define PB_REF_MODULE_ABI 1u
#define PB_REF_MODULE_ENTRY "pb__reference_module" /* the one symbol a module exports */

typedef struct pb__ref_host {
    unsigned abi;   /* PB_REF_MODULE_ABI of the core */
    unsigned sizes[4]; /* sizeof pb_backend, pb__job, pb_result, pb_options as the core was built */
    int (*set_error)(int err, const char *message); /* pb__set_error(err, "%s", message) */
    void (*count)(pb_pool *pool, enum pb__counter which, uint64_t n);
    void (*job_done)(pb_pool *pool, pb__job *job);
    void (*job_fail)(pb_pool *pool, pb__job *job, size_t from, int status, const char *message);
    void (*ref_init)(pb__ref_pool *r, pb_pool *pool, const pb_options *opts);
    int (*ref_run_items)(pb__ref_pool *r, pb__job *job);
    void (*ref_run_job)(pb__ref_pool *r, pb__job *job);
    void (*ref_terminate_job)(pb__ref_pool *r, pb__job *job);
} pb__ref_host;

/* A module's entry: checks host's ABI and sizes against its own, keeps host for the calls below and
 * returns its backend; or NULL with the reason in err. */
typedef const pb_backend *(*pb__ref_module_entry)(const pb__ref_host *host, char *err, size_t errlen);

#ifdef POOLBENCH_REFERENCE_MODULE
/* Inside a module: the core's functions, reached through the table the core handed over (module.c). */
extern const pb__ref_host *pb__ref_host_api;
int pb__ref_module_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define pb__set_error pb__ref_module_error
#define pb__count(...) pb__ref_host_api->count(__VA_ARGS__)
#define pb__job_done(...) pb__ref_host_api->job_done(__VA_ARGS__)
#define pb__job_fail(...) pb__ref_host_api->job_fail(__VA_ARGS__)
#define pb__ref_init(...) pb__ref_host_api->ref_init(__VA_ARGS__)
#define pb__ref_run_items(...) pb__ref_host_api->ref_run_items(__VA_ARGS__)
#define pb__ref_run_job(...) pb__ref_host_api->ref_run_job(__VA_ARGS__)
#define pb__ref_terminate_job(...) pb__ref_host_api->ref_terminate_job(__VA_ARGS__)
/* The backend a module exports (its compile definition names it). */
extern const pb_backend PB_REF_MODULE_BACKEND;
#endif

#endif
