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

#endif
