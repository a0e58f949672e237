/*
 * libuv.c - the "libuv" reference backend: libuv's work queue (uv_queue_work) on a loop this backend runs,
 * the way node and every libuv program offload blocking work.
 *
 * Built only when pkg-config finds libuv (impls/reference-backends.cmake). Per pb_pool: one uv_loop_t run
 * by one loop thread, and a uv_async_t that wakes it. dispatch() appends the job to `incoming` and
 * uv_async_send()s; the loop thread calls uv_queue_work for it (libuv requires that on the loop's own
 * thread); a libuv threadpool thread runs the items in work_cb; after_work_cb, back on the loop thread,
 * hands the job to the core. That is libuv's documented shape, and it costs a round trip four wake-ups
 * (caller -> loop -> threadpool -> loop -> caller) where the threads backend needs two.
 *
 * Workers. libuv's threadpool is process-wide and sized once, at the first uv_queue_work in the process,
 * from UV_THREADPOOL_SIZE (default 4, at most 1024); it cannot grow afterwards. So:
 *  - the first libuv pool of the process sets UV_THREADPOOL_SIZE, when the user has not, to
 *    max(workers, online CPUs, 4), then starts the threadpool (a no-op work item) before create returns;
 *  - every pool keeps at most `workers` of its jobs in libuv's queue (`in_flight`), the rest wait in
 *    `incoming`: --workers N means N threads at most run this pool's tasks, as on every backend;
 *  - a pool asking for more workers than the threadpool has fails with PB_ENOTSUP, naming the size, rather
 *    than silently running with fewer. The harness runs each case in its own process, so there the first
 *    pool's --workers decides and is always honoured; in one long-lived program, set UV_THREADPOOL_SIZE.
 * The threadpool's threads outlive the pools (libuv joins them at exit): pool start-up here is a loop and
 * a thread, not `workers` threads.
 *
 * Capabilities: async only (threads in this address space; libuv cannot stop a running work item or
 * replace a thread). Terminate raises abort_items: jobs still in `incoming` end TERMINATED at once, jobs in
 * libuv's queue end TERMINATED as soon as a thread takes them, running ones after their current item.
 *
 * Locking: `mu` guards incoming, in_flight and the stop flags; it is never held while a task runs or the
 * core is called. uv_async_send is called under mu, so the loop cannot close `wake` between a dispatcher's
 * check of `stopping` and its send. threadpool_mu (process-wide) is taken alone.
 */
#include "reference.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define LIBUV_MAX_THREADPOOL 1024 /* libuv's MAX_THREADPOOL_SIZE (src/threadpool.c) */

typedef struct libuv_pool libuv_pool;

typedef struct work {
    uv_work_t req; /* first: libuv hands back &req */
    struct work *next;
    pb__job *job;
    libuv_pool *owner;
    int hand_back; /* work_cb ran the items: after_work_cb completes the job */
} work;

struct libuv_pool {
    pb__ref_pool ref;
    uv_loop_t loop;
    uv_async_t wake;
    pthread_t loop_thread;
    pthread_mutex_t mu;
    pthread_cond_t ready_cv;
    work *head, *tail; /* incoming: dispatched, not yet given to libuv */
    int in_flight;     /* given to libuv, after_work_cb not yet run */
    int limit;         /* workers */
    int stopping;      /* shutdown or terminate asked; no new dispatch */
    int closed;        /* the loop thread closed `wake` (loop thread only) */
    int ready;         /* the loop thread has started (create waits for it) */
};

/* ---- the process-wide threadpool size ---- */

static pthread_mutex_t threadpool_mu = PTHREAD_MUTEX_INITIALIZER;
static int threadpool_size;    /* 0 until the first pool fixed it */
static int threadpool_started; /* a no-op work item has run: libuv's threads exist */

/* What libuv will read at its first use (src/threadpool.c init_threads): atoi, 0 -> 1, clamped to 1024. */
static int size_from_env(const char *v) {
    int n = atoi(v);
    if (n == 0) n = 1;
    if (n > LIBUV_MAX_THREADPOOL) n = LIBUV_MAX_THREADPOOL;
    return n;
}

static int fix_threadpool_size(int workers) {
    pthread_mutex_lock(&threadpool_mu);
    if (!threadpool_size) {
        const char *env = getenv("UV_THREADPOOL_SIZE");
        if (env && *env) {
            threadpool_size = size_from_env(env);
        } else {
            long cpus = sysconf(_SC_NPROCESSORS_ONLN);
            int n = workers;
            if (cpus > n) n = (int)cpus;
            if (n < 4) n = 4;
            if (n > LIBUV_MAX_THREADPOOL) n = LIBUV_MAX_THREADPOOL;
            char buf[16];
            snprintf(buf, sizeof buf, "%d", n);
            setenv("UV_THREADPOOL_SIZE", buf, 1);
            threadpool_size = n;
        }
    }
    int size = threadpool_size;
    pthread_mutex_unlock(&threadpool_mu);
    if (workers > size)
        return pb__set_error(PB_ENOTSUP,
                             "libuv's threadpool has %d threads (UV_THREADPOOL_SIZE, fixed at its first use in this "
                             "process): it cannot run %d workers; set UV_THREADPOOL_SIZE=%d before the first pool",
                             size, workers, workers);
    return 0;
}

/* ---- the loop thread ---- */

static void work_cb(uv_work_t *req) {
    work *w = (work *)req;
    w->hand_back = pb__ref_run_items(&w->owner->ref, w->job);
}

static void pump(libuv_pool *p);

static void after_work_cb(uv_work_t *req, int status) {
    work *w = (work *)req;
    libuv_pool *p = w->owner;
    (void)status; /* only UV_ECANCELED is possible, after uv_cancel, which this backend never calls */
    if (w->hand_back) pb__job_done(p->ref.pool, w->job);
    free(w);
    pthread_mutex_lock(&p->mu);
    p->in_flight--;
    pthread_mutex_unlock(&p->mu);
    pump(p);
}

static void warm_up_cb(uv_work_t *req) { (void)req; }
static void warm_up_done(uv_work_t *req, int status) { (void)status; free(req); }

/* Loop thread: gives libuv what the concurrency cap allows, completes what terminate took, and closes
 * `wake` once stopping with nothing left (uv_run then returns). */
static void pump(libuv_pool *p) {
    pthread_mutex_lock(&p->mu);
    work *give = NULL, **give_tail = &give;
    work *drop = NULL;
    if (atomic_load(&p->ref.abort_items)) {
        drop = p->head;
        p->head = p->tail = NULL;
    }
    while (p->head && p->in_flight < p->limit) {
        work *w = p->head;
        p->head = w->next;
        if (!p->head) p->tail = NULL;
        w->next = NULL;
        *give_tail = w;
        give_tail = &w->next;
        p->in_flight++;
    }
    int finished = p->stopping && !p->head && p->in_flight == 0;
    pthread_mutex_unlock(&p->mu);

    while (drop) {
        work *next = drop->next;
        pb__ref_terminate_job(&p->ref, drop->job);
        free(drop);
        drop = next;
    }
    while (give) {
        work *next = give->next;
        int rc = uv_queue_work(&p->loop, &give->req, work_cb, after_work_cb);
        if (rc < 0) { /* cannot happen with valid arguments; never leave the job unanswered */
            pb__job_fail(p->ref.pool, give->job, 0, PB_STATUS_TASK_ERROR, uv_strerror(rc));
            free(give);
            pthread_mutex_lock(&p->mu);
            p->in_flight--;
            pthread_mutex_unlock(&p->mu);
        }
        give = next;
    }
    if (finished && !p->closed) {
        p->closed = 1;
        uv_close((uv_handle_t *)&p->wake, NULL);
    }
}

static void wake_cb(uv_async_t *h) { pump(h->data); }

static void *loop_main(void *arg) {
    libuv_pool *p = arg;
    pthread_mutex_lock(&threadpool_mu);
    int start = !threadpool_started;
    threadpool_started = 1;
    pthread_mutex_unlock(&threadpool_mu);
    if (start) { /* libuv starts its threads at the first work item: start them now, from this thread */
        uv_work_t *req = malloc(sizeof *req);
        if (req && uv_queue_work(&p->loop, req, warm_up_cb, warm_up_done) < 0) free(req);
        /* libuv creates and waits for every thread inside that first uv_queue_work */
    }
    pthread_mutex_lock(&p->mu);
    p->ready = 1;
    pthread_cond_signal(&p->ready_cv);
    pthread_mutex_unlock(&p->mu);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- the backend ---- */

static void free_pool(libuv_pool *p) {
    pthread_cond_destroy(&p->ready_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int libuv_create(pb_pool *pool, const pb_options *opts, void **impl) {
    int rc = fix_threadpool_size(opts->workers);
    if (rc < 0) return rc;
    libuv_pool *p = calloc(1, sizeof *p);
    if (!p) return pb__set_error(-ENOMEM, "out of memory");
    pb__ref_init(&p->ref, pool, opts);
    p->limit = opts->workers;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->ready_cv, NULL);
    if ((rc = uv_loop_init(&p->loop)) < 0) {
        free_pool(p);
        return pb__set_error(PB_ESPAWN, "uv_loop_init: %s", uv_strerror(rc));
    }
    if ((rc = uv_async_init(&p->loop, &p->wake, wake_cb)) < 0) {
        uv_loop_close(&p->loop);
        free_pool(p);
        return pb__set_error(PB_ESPAWN, "uv_async_init: %s", uv_strerror(rc));
    }
    p->wake.data = p;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the loop thread, and libuv's threads it starts, block signals */
    int e = pthread_create(&p->loop_thread, NULL, loop_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        uv_close((uv_handle_t *)&p->wake, NULL);
        uv_run(&p->loop, UV_RUN_DEFAULT); /* runs the close */
        uv_loop_close(&p->loop);
        free_pool(p);
        return pb__set_error(-e, "cannot start the libuv loop thread: %s", strerror(e));
    }
    pthread_mutex_lock(&p->mu);
    while (!p->ready) pthread_cond_wait(&p->ready_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pb__count(pool, PB__WORKERS_STARTED, (uint64_t)opts->workers);
    *impl = p;
    return 0;
}

static int libuv_dispatch(void *impl, pb__job *job) {
    libuv_pool *p = impl;
    work *w = malloc(sizeof *w);
    if (!w) return pb__set_error(-ENOMEM, "out of memory");
    w->next = NULL;
    w->job = job;
    w->owner = p;
    w->hand_back = 0;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        free(w);
        return PB_ECLOSED;
    }
    if (p->tail) p->tail->next = w;
    else p->head = w;
    p->tail = w;
    uv_async_send(&p->wake); /* under mu: see the locking note above */
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static void stop_loop(libuv_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    uv_async_send(&p->wake);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->loop_thread, NULL);
    uv_loop_close(&p->loop);
}

static void libuv_shutdown(void *impl) { stop_loop(impl); }

static void libuv_terminate(void *impl) {
    libuv_pool *p = impl;
    atomic_store(&p->ref.abort_items, 1);
    stop_loop(p);
}

static void libuv_destroy(void *impl) { free_pool(impl); }

const pb_backend pb_backend_libuv = {
    .version = 1,
    .name = "libuv",
    .description = PB_REF_LIBUV_DESCRIPTION,
    .caps = PB_REF_CAPS,
    .create = libuv_create,
    .dispatch = libuv_dispatch,
    .shutdown = libuv_shutdown,
    .terminate = libuv_terminate,
    .destroy = libuv_destroy,
};
