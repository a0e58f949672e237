/*
 * glib.c - the "glib" reference backend: GLib's GThreadPool, used the way its documentation shows.
 *
 * Built only when pkg-config finds glib-2.0 (impls/reference-backends.cmake). One exclusive GThreadPool
 * per pb_pool: g_thread_pool_new(run, ..., workers, exclusive=TRUE) starts `workers` threads at once and
 * keeps them for this pool alone, and every job (a chunk of items, see backend.h) is one
 * g_thread_pool_push. GLib owns the queue and the threads; this file only adapts the calls:
 *  - the per-worker initializer runs lazily in each GLib thread (reference.h says why),
 *  - shutdown is g_thread_pool_free(wait=TRUE): the queue drains, the threads leave the pool, and
 *    GLib parks none of them for reuse (park_none),
 *  - terminate raises abort_items first, so every job still in GLib's queue ends TERMINATED the moment a
 *    thread takes it, and a running job stops at its next item; g_thread_pool_free then returns promptly.
 *    (free(immediate=TRUE) would drop queued jobs without ever completing them.)
 * Capabilities: async only. The threads share this address space (a crashing task takes the process
 * down, so `crash` is unsupported here) and GLib cannot stop a running task (no timeouts) or replace a
 * thread (no recycling).
 *
 * Lock order: `lock` (a rwlock) is the only one of ours. dispatch holds it for reading around the push, so
 * terminate/shutdown (which take it for writing) never free the GThreadPool under a concurrent push. It is
 * never held while a task runs.
 */
#include "reference.h"

#include <errno.h>
#include <glib.h>
#include <signal.h>
#include <stdlib.h>

typedef struct glib_pool {
    pb__ref_pool ref;
    GThreadPool *threads; /* NULL once shut down or terminated */
    pthread_rwlock_t lock;
} glib_pool;

static void run_job(gpointer data, gpointer user_data) {
    PB_TSAN_ACQUIRE(data); /* pairs with the release before g_thread_pool_push (reference.h) */
    pb__ref_run_job(user_data, data);
    PB_TSAN_RELEASE(user_data); /* pairs with the acquire after g_thread_pool_free */
}

/* GLib parks up to max_unused_threads (2) threads of a freed pool for 15 s in its global unused-thread
 * queue instead of ending them, so a destroyed pool would leave 1 or 2 threads behind, a number that
 * depends on timing (the conformance test's leak check caught it under load; g_thread_pool_stop_unused_
 * threads cannot help, a thread still finishing its pool parks after it). Every pool of ours leaves no
 * thread behind, so GLib keeps none parked: set once, for the process, before the first pool. */
static pthread_once_t park_none_once = PTHREAD_ONCE_INIT;
static void park_none(void) { g_thread_pool_set_max_unused_threads(0); }

static int glib_create(pb_pool *pool, const pb_options *opts, void **impl) {
    pthread_once(&park_none_once, park_none);
    glib_pool *g = calloc(1, sizeof *g);
    if (!g) return pb__set_error(-ENOMEM, "out of memory");
    pb__ref_init(&g->ref, pool, opts);
    pthread_rwlock_init(&g->lock, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* GLib's threads inherit a full mask */
    GError *err = NULL;
    g->threads = g_thread_pool_new(run_job, &g->ref, opts->workers, TRUE, &err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!g->threads) {
        int rc = pb__set_error(PB_ESPAWN, "g_thread_pool_new(%d exclusive threads): %s", opts->workers,
                               err ? err->message : "failed");
        if (err) g_error_free(err);
        pthread_rwlock_destroy(&g->lock);
        free(g);
        return rc;
    }
    pb__count(pool, PB__WORKERS_STARTED, (uint64_t)opts->workers);
    *impl = g;
    return 0;
}

static int glib_dispatch(void *impl, pb__job *job) {
    glib_pool *g = impl;
    int rc = 0;
    pthread_rwlock_rdlock(&g->lock);
    if (!g->threads) {
        rc = PB_ECLOSED;
    } else {
        GError *err = NULL;
        PB_TSAN_RELEASE(job);
        if (!g_thread_pool_push(g->threads, job, &err)) { /* only when it must start a thread and cannot */
            rc = pb__set_error(PB_ESPAWN, "g_thread_pool_push: %s", err ? err->message : "failed");
            if (err) g_error_free(err);
        }
    }
    pthread_rwlock_unlock(&g->lock);
    return rc;
}

static void free_threads(glib_pool *g) {
    pthread_rwlock_wrlock(&g->lock);
    GThreadPool *t = g->threads;
    g->threads = NULL;
    pthread_rwlock_unlock(&g->lock);
    if (t) g_thread_pool_free(t, FALSE, TRUE); /* runs what is queued, then the threads exit (see park_none) */
    PB_TSAN_ACQUIRE(&g->ref);
}

static void glib_shutdown(void *impl) { free_threads(impl); }

static void glib_terminate(void *impl) {
    glib_pool *g = impl;
    atomic_store(&g->ref.abort_items, 1); /* queued jobs now end TERMINATED as soon as a thread takes them */
    free_threads(g);
}

static void glib_destroy(void *impl) {
    glib_pool *g = impl;
    pthread_rwlock_destroy(&g->lock);
    free(g);
}

const pb_backend pb_backend_glib = {
    .version = 1,
    .name = "glib",
    .description = PB_REF_GLIB_DESCRIPTION,
    .caps = PB_REF_CAPS,
    .create = glib_create,
    .dispatch = glib_dispatch,
    .shutdown = glib_shutdown,
    .terminate = glib_terminate,
    .destroy = glib_destroy,
};
