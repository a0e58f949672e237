/*
 * pool.c - the pool core: everything a user sees, over any backend.
 *
 * DESIGN. The core turns user calls into *jobs* (a chunk of items of one task, see backend.h) and hands
 * them to the backend's dispatch(); the backend fills the results and returns each job with
 * pb__job_done(). The core owns:
 *   - argument checks (unknown backend/task, workers <= 0, NULL input, inputs over max_item_bytes),
 *   - chunking (pb_auto_chunksize: Python's ceil(n / (4 * workers))): one job per chunk, so a backend
 *     touches a lock once per chunk, never per item,
 *   - batches: a map waits until its batch has no pending job; an unordered map also receives each
 *     finished job on a list and delivers its items in the caller's thread; a future is a batch of one,
 *   - lifecycle: close (no new work), join (wait for outstanding jobs, then backend shutdown), terminate
 *     (backend terminate: every held job ends TERMINATED), destroy,
 *   - counters.
 *
 * Lifecycle calls from several threads (a watchdog terminating a pool that the main thread joins, two
 * threads joining): `life` goes RUNNING -> STOPPING -> STOPPED under mu. The first join or terminate to
 * find it RUNNING moves it to STOPPING and is the only caller of the backend's shutdown or terminate;
 * every other join or terminate waits on cv until it is STOPPED, then returns 0 like the first. A
 * terminate that arrives while a join waits for outstanding work takes over (the join then waits for it);
 * one that arrives while a join already runs the backend's shutdown (nothing outstanding: it is short)
 * waits for that shutdown. destroy must be the last call; live pools are remembered in a small registry
 * so that destroying a pool twice is PB_EINVAL instead of a double free (best effort: it cannot tell a
 * freed pool from a new one that got the same address).
 *
 * Timeouts (pb_future_wait): a negative timeout, an infinite one or one too large for a timespec waits
 * forever, on the condvar without a deadline, so that it sleeps instead of spinning; NaN is PB_EINVAL;
 * -0.0 equals 0 and is a poll.
 *
 * Locking: one mutex per pool (mu) guards the batches, `outstanding` and the lifecycle flags; one condvar
 * (cv) is broadcast, after unlocking, when a job finish lets a waiter progress (its batch is complete, an
 * unordered chunk is ready, or nothing is outstanding) and someone waits (`waiters`). The core never holds mu
 * while calling into the backend or a user callback, so backends may call pb__job_done from dispatch.
 * Counters are atomics updated once per job.
 */
#include "backend.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PB_DEFAULT_MAX_ITEM (64u << 20)

struct pb__batch {
    size_t pending;             /* jobs not yet done */
    size_t failed;              /* results whose status is not ok (ordered maps report it) */
    pb__job *done_head;         /* unordered maps: finished jobs not yet delivered */
    pb__job *done_tail;
    int unordered;
    pb_future *future;          /* non-NULL when this batch is a future */
};

struct pb_future {
    pb__job job;
    pb__batch batch;
    pb_item item;
    pb_result result;
    pb_pool *pool;
    atomic_int done;
    atomic_int refs;            /* the caller's and the pool's: freed when both are dropped */
    pb_future_cb cb;            /* guarded by pool->mu */
    void *cb_ud;
    unsigned char input[];      /* the copied input */
};

enum pool_life { LIFE_RUNNING, LIFE_STOPPING, LIFE_STOPPED };

struct pb_pool {
    const pb_backend *backend;
    void *impl;
    pb_options opts;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* CLOCK_MONOTONIC, for timed future waits */
    size_t waiters;
    size_t outstanding;         /* jobs dispatched and not yet done */
    int closed, terminated;
    enum pool_life life;        /* see "Lifecycle calls" above */
    atomic_uint_fast64_t next_job_id;
    atomic_uint_fast64_t submitted;
    atomic_uint_fast64_t by_status[PB_STATUS_COUNT];
    atomic_uint_fast64_t counters[PB__COUNTER_COUNT];
};

/* ---- live pools, so that a second destroy is an error rather than a double free ---- */

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pb_pool **live;
static size_t nlive, live_cap;

static int live_add(pb_pool *pool) {
    pthread_mutex_lock(&live_mu);
    if (nlive == live_cap) {
        size_t cap = live_cap ? 2 * live_cap : 16;
        pb_pool **p = realloc(live, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&live_mu);
            return -ENOMEM;
        }
        live = p;
        live_cap = cap;
    }
    live[nlive++] = pool;
    pthread_mutex_unlock(&live_mu);
    return 0;
}

/* 1 when pool was live (it no longer is), 0 when it was not. Compares pointers, never dereferences. */
static int live_remove(const pb_pool *pool) {
    int found = 0;
    pthread_mutex_lock(&live_mu);
    for (size_t i = 0; i < nlive; i++) {
        if (live[i] == pool) {
            live[i] = live[--nlive];
            found = 1;
            break;
        }
    }
    if (nlive == 0) { /* give the array back when no pool is left, so leak checkers see nothing */
        free(live);
        live = NULL;
        live_cap = 0;
    }
    pthread_mutex_unlock(&live_mu);
    return found;
}

void pb_options_init(pb_options *o) {
    memset(o, 0, sizeof *o);
    o->version = PB_OPTIONS_VERSION;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o->workers = cpus > 0 ? (int)cpus : 1;
    o->max_item_bytes = PB_DEFAULT_MAX_ITEM;
    o->crashloop_deaths = 20;
    o->crashloop_window = 5.0;
}

size_t pb_auto_chunksize(size_t n, int workers) {
    if (workers < 1) workers = 1;
    size_t per = (size_t)workers * 4;
    size_t cs = n / per + (n % per ? 1 : 0);
    return cs ? cs : 1;
}

void *pb__pool_impl(const pb_pool *pool) { return pool->impl; }
const char *pb_pool_backend(const pb_pool *pool) { return pool ? pool->backend->name : NULL; }
int pb_pool_workers(const pb_pool *pool) { return pool ? pool->opts.workers : PB_EINVAL; }

void pb__count(pb_pool *pool, enum pb__counter which, uint64_t n) {
    atomic_fetch_add_explicit(&pool->counters[which], n, memory_order_relaxed);
}

int pb_pool_create(pb_pool **out, const char *backend_name, const pb_options *user_opts) {
    if (!out) return pb__set_error(PB_EINVAL, "pb_pool_create: out is NULL");
    *out = NULL;
    const pb_backend *b = pb__backend_find(backend_name);
    if (!b) return pb__set_error(PB_ENOBACKEND, "unknown backend '%s'", backend_name);
    if (!b->create && !(b = pb__module_backend(b->name))) return PB_ENOBACKEND; /* a module stub (registry.c) */
    if (b->version < 1) return pb__set_error(PB_ENOBACKEND, "backend '%s' has an unsupported interface version", b->name);

    pb_options o;
    if (user_opts) {
        if (user_opts->version == 1) { /* a program built against version 1: its struct ends before `start` */
            pb_options_init(&o);
            memcpy(&o, user_opts, offsetof(pb_options, start));
            o.version = PB_OPTIONS_VERSION;
        } else if (user_opts->version != PB_OPTIONS_VERSION) {
            return pb__set_error(PB_EINVAL, "pb_options.version is %d, expected %d (call pb_options_init)",
                                 user_opts->version, PB_OPTIONS_VERSION);
        } else {
            o = *user_opts;
        }
    } else {
        pb_options_init(&o);
    }
    if (o.workers <= 0) return pb__set_error(PB_EINVAL, "workers must be at least 1, got %d", o.workers);
    if (o.start != PB_START_ON_DEMAND && o.start != PB_START_EAGER)
        return pb__set_error(PB_EINVAL, "start must be PB_START_ON_DEMAND or PB_START_EAGER, got %d", o.start);
    if (isnan(o.task_timeout)) return pb__set_error(PB_EINVAL, "task_timeout is NaN");
    if (o.task_timeout < 0) return pb__set_error(PB_EINVAL, "task_timeout must be >= 0, got %g", o.task_timeout);
    if (isinf(o.task_timeout) || o.task_timeout == 0) o.task_timeout = 0; /* forever is none; -0.0 is 0 */
    if (isnan(o.crashloop_window)) return pb__set_error(PB_EINVAL, "crashloop_window is NaN");
    if (o.max_item_bytes == 0) o.max_item_bytes = PB_DEFAULT_MAX_ITEM;
    if (o.crashloop_deaths <= 0) o.crashloop_deaths = 20;
    if (o.crashloop_window <= 0) o.crashloop_window = 5.0;
    if (o.task_timeout > 0 && !(b->caps & PB_CAP_TIMEOUT))
        return pb__set_error(PB_ENOTSUP, "backend '%s' cannot enforce per-task timeouts", b->name);
    if (o.initializer && !pb_task_find(o.initializer))
        return pb__set_error(PB_ENOTASK, "unknown initializer task '%s'", o.initializer);
    if (o.init_arg_len > o.max_item_bytes)
        return pb__set_error(PB_ETOOBIG, "initializer input of %zu bytes is over the limit of %zu", o.init_arg_len,
                             o.max_item_bytes);

    pb_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return pb__set_error(-ENOMEM, "out of memory");
    pool->backend = b;
    pool->opts = o;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->cv, &ca);
    pthread_condattr_destroy(&ca);

    int rc = live_add(pool);
    if (rc < 0) {
        rc = pb__set_error(rc, "out of memory");
    } else {
        rc = b->create(pool, &pool->opts, &pool->impl);
        if (rc < 0) live_remove(pool);
    }
    if (rc < 0) {
        pthread_cond_destroy(&pool->cv);
        pthread_mutex_destroy(&pool->mu);
        free(pool);
        return rc;
    }
    *out = pool;
    return 0;
}

/* ---- job completion (called by backends, from any thread) ---- */

void pb__job_done(pb_pool *pool, pb__job *job) {
    uint64_t tally[PB_STATUS_COUNT] = {0};
    for (size_t i = 0; i < job->n; i++) {
        int s = job->results[i].status;
        tally[(s >= 0 && s < PB_STATUS_COUNT) ? s : PB_STATUS_TASK_ERROR]++;
    }
    for (int s = 0; s < PB_STATUS_COUNT; s++)
        if (tally[s]) atomic_fetch_add_explicit(&pool->by_status[s], tally[s], memory_order_relaxed);

    pb__batch *batch = job->batch;
    pb_future *f = batch->future;
    pb_future_cb cb = NULL;
    void *cb_ud = NULL;

    if (f) { /* finished: from now on a cancel says so, whether or not a worker ever claimed the job */
        int queued = 0;
        atomic_compare_exchange_strong(&job->state, &queued, 3);
    }
    pthread_mutex_lock(&pool->mu);
    if (f) {
        atomic_store(&f->done, 1);
        cb = f->cb;
        cb_ud = f->cb_ud;
    } else if (batch->unordered) {
        job->next = NULL;
        if (batch->done_tail) batch->done_tail->next = job;
        else batch->done_head = job;
        batch->done_tail = job;
    }
    batch->failed += job->n - tally[PB_STATUS_OK];
    batch->pending--;
    pool->outstanding--;
    /* Wake waiters only when one of them can make progress: a finished batch, a chunk to deliver, or
     * the last outstanding job (join). A map of 1,000 chunks then wakes its caller once, not 1,000 times. */
    int wake = pool->waiters && (batch->pending == 0 || batch->unordered || pool->outstanding == 0);
    pthread_mutex_unlock(&pool->mu);
    if (wake) pthread_cond_broadcast(&pool->cv); /* after unlock: the woken thread does not block on mu */

    if (f) {
        if (cb) cb(cb_ud, f);
        pb_future_release(f); /* the pool's reference */
    }
}

int pb__job_claim(pb_pool *pool, pb__job *job) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&job->state, &expected, 1)) return 1;
    if (expected == 1) return 1; /* claimed again after a worker was lost: run it */
    pb__job_fail(pool, job, 0, PB_STATUS_CANCELLED, "cancelled before it started");
    return 0;
}

void pb__job_fail(pb_pool *pool, pb__job *job, size_t from, int status, const char *message) {
    for (size_t i = from; i < job->n; i++) pb__result_fail(&job->results[i], status, "%s", message);
    pb__job_done(pool, job);
}

/* ---- submitting work ---- */

static int check_items(const pb_pool *pool, const pb_item *items, size_t n) {
    if (n && !items) return pb__set_error(PB_EINVAL, "items is NULL");
    for (size_t i = 0; i < n; i++) {
        if (!items[i].data && items[i].len)
            return pb__set_error(PB_EINVAL, "item %zu has NULL data and length %zu", i, items[i].len);
        if (items[i].len > pool->opts.max_item_bytes)
            return pb__set_error(PB_ETOOBIG, "item %zu is %zu bytes, over the limit of %zu", i, items[i].len,
                                 pool->opts.max_item_bytes);
    }
    return 0;
}

static const pb_task *find_task(const char *name) {
    const pb_task *t = pb_task_find(name);
    if (!t) /* a name may be any length: quote the start of it */
        pb__set_error(PB_ENOTASK, "unknown task '%.200s%s'", name ? name : "(null)",
                      name && strlen(name) > 200 ? "..." : "");
    return t;
}

/* Reserves `njobs` outstanding jobs, or fails when the pool no longer takes work. */
static int admit(pb_pool *pool, size_t njobs, size_t nitems) {
    pthread_mutex_lock(&pool->mu);
    if (pool->closed) {
        pthread_mutex_unlock(&pool->mu);
        return pb__set_error(PB_ECLOSED, "the pool is %s", pool->terminated ? "terminated" : "closed");
    }
    pool->outstanding += njobs;
    pthread_mutex_unlock(&pool->mu);
    atomic_fetch_add_explicit(&pool->submitted, nitems, memory_order_relaxed);
    return 0;
}

static void dispatch(pb_pool *pool, pb__job *job) {
    job->id = atomic_fetch_add(&pool->next_job_id, 1) + 1;
    int rc = pool->backend->dispatch(pool->impl, job);
    if (rc < 0) /* the backend did not take it: complete it here so nobody waits forever */
        pb__job_fail(pool, job, 0, PB_STATUS_TERMINATED, pb_strerror(rc));
}

/* The shared body of pb_map and pb_map_unordered. */
static int run_map(pb_pool *pool, const char *task_name, const pb_item *items, size_t n, size_t chunksize,
                   pb_result *results, pb_result_cb cb, void *ud) {
    if (!pool) return pb__set_error(PB_EINVAL, "pool is NULL");
    const pb_task *task = find_task(task_name);
    if (!task) return PB_ENOTASK;
    int rc = check_items(pool, items, n);
    if (rc < 0) return rc;
    if (!cb && n && !results) return pb__set_error(PB_EINVAL, "results is NULL");
    if (n == 0) {
        pthread_mutex_lock(&pool->mu);
        int closed = pool->closed;
        pthread_mutex_unlock(&pool->mu);
        return closed ? pb__set_error(PB_ECLOSED, "the pool is closed") : 0;
    }

    size_t cs = chunksize ? chunksize : pool->opts.chunksize ? pool->opts.chunksize
                                                              : pb_auto_chunksize(n, pool->opts.workers);
    size_t njobs = n / cs + (n % cs ? 1 : 0);
    pb__job *jobs = calloc(njobs, sizeof *jobs);
    pb_result *own = NULL;
    if (cb) results = own = calloc(n, sizeof *own);
    if (!jobs || !results) {
        free(jobs);
        free(own);
        return pb__set_error(-ENOMEM, "out of memory for %zu jobs", njobs);
    }
    memset(results, 0, n * sizeof *results);
    pb__batch batch = {.pending = njobs, .unordered = cb != NULL};
    rc = admit(pool, njobs, n);
    if (rc < 0) {
        free(jobs);
        free(own);
        return rc;
    }
    for (size_t j = 0; j < njobs; j++) {
        size_t first = j * cs;
        jobs[j].task = task;
        jobs[j].items = items + first;
        jobs[j].results = results + first;
        jobs[j].n = (first + cs <= n) ? cs : n - first;
        jobs[j].index0 = first;
        jobs[j].batch = &batch;
        jobs[j].more = j + 1 < njobs;
    }
    for (size_t j = 0; j < njobs; j++) dispatch(pool, &jobs[j]);

    int failed = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (batch.done_head) { /* unordered: deliver finished chunks without holding the lock */
            pb__job *job = batch.done_head;
            batch.done_head = job->next;
            if (!batch.done_head) batch.done_tail = NULL;
            pthread_mutex_unlock(&pool->mu);
            for (size_t i = 0; i < job->n; i++) {
                if (job->results[i].status != PB_STATUS_OK) failed++;
                cb(ud, job->index0 + i, &job->results[i]);
                pb_result_clear(&job->results[i]);
            }
            pthread_mutex_lock(&pool->mu);
        }
        if (batch.pending == 0 && !batch.done_head) break;
        pool->waiters++;
        pthread_cond_wait(&pool->cv, &pool->mu);
        pool->waiters--;
    }
    pthread_mutex_unlock(&pool->mu);

    if (!cb) failed = (int)batch.failed;
    free(jobs);
    free(own);
    return failed;
}

int pb_map(pb_pool *pool, const char *task, const pb_item *items, size_t n, size_t chunksize, pb_result *results) {
    return run_map(pool, task, items, n, chunksize, results, NULL, NULL);
}

int pb_map_unordered(pb_pool *pool, const char *task, const pb_item *items, size_t n, size_t chunksize,
                     pb_result_cb cb, void *ud) {
    if (!cb) return pb__set_error(PB_EINVAL, "callback is NULL");
    return run_map(pool, task, items, n, chunksize, NULL, cb, ud);
}

/* ---- futures ---- */

int pb_submit(pb_pool *pool, const char *task_name, const void *in, size_t len, pb_future **out) {
    if (!out) return pb__set_error(PB_EINVAL, "out is NULL");
    *out = NULL;
    if (!pool) return pb__set_error(PB_EINVAL, "pool is NULL");
    const pb_task *task = find_task(task_name);
    if (!task) return PB_ENOTASK;
    pb_item probe = {in, len};
    int rc = check_items(pool, &probe, 1);
    if (rc < 0) return rc;

    pb_future *f = calloc(1, sizeof *f + len);
    if (!f) return pb__set_error(-ENOMEM, "out of memory");
    if (len) memcpy(f->input, in, len);
    f->item.data = f->input;
    f->item.len = len;
    f->pool = pool;
    atomic_init(&f->refs, 2);
    f->batch.pending = 1;
    f->batch.future = f;
    f->job.task = task;
    f->job.items = &f->item;
    f->job.results = &f->result;
    f->job.n = 1;
    f->job.batch = &f->batch;
    rc = admit(pool, 1, 1);
    if (rc < 0) {
        free(f);
        return rc;
    }
    *out = f;
    dispatch(pool, &f->job);
    return 0;
}

/* The CLOCK_MONOTONIC time timeout_s (not NaN) from now into *ts: 1, or 0 for "forever" (negative,
 * infinite, or so large that the deadline would not fit a timespec: past half of time_t's range, some
 * 146 billion years, which also keeps every conversion below defined). */
static int deadline_after(double timeout_s, struct timespec *ts) {
    if (!(timeout_s >= 0)) return 0;
    clock_gettime(CLOCK_MONOTONIC, ts);
    if (timeout_s >= (double)(INT64_MAX / 2) - (double)ts->tv_sec) return 0;
    time_t whole = (time_t)timeout_s;
    ts->tv_sec += whole;
    ts->tv_nsec += (long)((timeout_s - (double)whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
    return 1;
}

int pb_future_wait(pb_future *f, double timeout_s) {
    if (!f) return pb__set_error(PB_EINVAL, "future is NULL");
    if (isnan(timeout_s)) return pb__set_error(PB_EINVAL, "pb_future_wait: the timeout is NaN");
    if (atomic_load(&f->done)) return 0;
    pb_pool *pool = f->pool;
    struct timespec deadline;
    int timed = deadline_after(timeout_s, &deadline);
    /* Let the backend make progress in this thread first (see backend.h); whatever it did, the loop
     * below decides, and returns at once when the job is done or the deadline has passed. */
    const pb_backend *b = pool->backend;
    if (b->version >= 2 && b->wait_progress)
        b->wait_progress(pool->impl, &f->job, timed ? pb__now() + timeout_s : -1.0);
    int rc = 0;
    pthread_mutex_lock(&pool->mu);
    while (!atomic_load(&f->done)) {
        pool->waiters++;
        int w = timed ? pthread_cond_timedwait(&pool->cv, &pool->mu, &deadline)
                      : pthread_cond_wait(&pool->cv, &pool->mu);
        pool->waiters--;
        if (w == ETIMEDOUT && !atomic_load(&f->done)) {
            rc = PB_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&pool->mu);
    return rc;
}

int pb_future_done(const pb_future *f) { return f ? atomic_load(&((pb_future *)f)->done) : 0; }

const pb_result *pb_future_result(const pb_future *f) {
    return (f && atomic_load(&((pb_future *)f)->done)) ? &f->result : NULL;
}

int pb_future_on_done(pb_future *f, pb_future_cb cb, void *ud) {
    if (!f || !cb) return pb__set_error(PB_EINVAL, "future or callback is NULL");
    pb_pool *pool = f->pool;
    pthread_mutex_lock(&pool->mu);
    if (f->cb) {
        pthread_mutex_unlock(&pool->mu);
        return pb__set_error(PB_EINVAL, "the future already has a callback");
    }
    int done = atomic_load(&f->done);
    if (!done) {
        f->cb = cb;
        f->cb_ud = ud;
    } else {
        f->cb = cb; /* marks it taken, so a second registration is refused */
    }
    pthread_mutex_unlock(&pool->mu);
    if (done) cb(ud, f);
    return 0;
}

int pb_future_cancel(pb_future *f) {
    if (!f) return pb__set_error(PB_EINVAL, "future is NULL");
    int expected = 0;
    if (!atomic_compare_exchange_strong(&f->job.state, &expected, 2))
        return pb__set_error(PB_EINVAL, "the task %s", expected == 1   ? "has already started"
                                                       : expected == 2 ? "was already cancelled"
                                                                       : "has already finished");
    /* The backend still holds the job: it completes it as CANCELLED when a worker reaches it
     * (pb__job_claim), which keeps the ownership rule simple. Mark the result now for the caller. */
    return 0;
}

void pb_future_release(pb_future *f) {
    if (!f) return;
    if (atomic_fetch_sub(&f->refs, 1) == 1) {
        pb_result_clear(&f->result);
        free(f);
    }
}

/* ---- lifecycle ---- */

int pb_pool_close(pb_pool *pool) {
    if (!pool) return pb__set_error(PB_EINVAL, "pool is NULL");
    pthread_mutex_lock(&pool->mu);
    pool->closed = 1;
    pthread_mutex_unlock(&pool->mu);
    return 0;
}

static void wait_outstanding(pb_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    while (pool->outstanding > 0) {
        pool->waiters++;
        pthread_cond_wait(&pool->cv, &pool->mu);
        pool->waiters--;
    }
    pthread_mutex_unlock(&pool->mu);
}

/* mu held: the caller that found the pool RUNNING stops it (1); any other waits until it is stopped (0). */
static int take_stop(pb_pool *pool) {
    if (pool->life == LIFE_RUNNING) {
        pool->life = LIFE_STOPPING;
        return 1;
    }
    while (pool->life != LIFE_STOPPED) pthread_cond_wait(&pool->cv, &pool->mu);
    return 0;
}

static void stopped(pb_pool *pool) {
    pthread_mutex_lock(&pool->mu);
    pool->life = LIFE_STOPPED;
    pthread_mutex_unlock(&pool->mu);
    pthread_cond_broadcast(&pool->cv);
}

int pb_pool_join(pb_pool *pool) {
    if (!pool) return pb__set_error(PB_EINVAL, "pool is NULL");
    pb_pool_close(pool);
    wait_outstanding(pool);
    pthread_mutex_lock(&pool->mu);
    int mine = take_stop(pool);
    pthread_mutex_unlock(&pool->mu);
    if (mine) {
        pool->backend->shutdown(pool->impl);
        stopped(pool);
    }
    return 0;
}

int pb_pool_terminate(pb_pool *pool) {
    if (!pool) return pb__set_error(PB_EINVAL, "pool is NULL");
    pthread_mutex_lock(&pool->mu);
    pool->closed = 1;
    pool->terminated = 1;
    int mine = take_stop(pool);
    pthread_mutex_unlock(&pool->mu);
    if (mine) {
        pool->backend->terminate(pool->impl);
        wait_outstanding(pool); /* terminate completed every held job */
        stopped(pool);
    }
    return 0;
}

int pb_pool_destroy(pb_pool *pool) {
    if (!pool) return 0;
    if (!live_remove(pool))
        return pb__set_error(PB_EINVAL, "pb_pool_destroy: not a live pool (destroyed twice?)");
    pb_pool_terminate(pool); /* returns at once when it was already joined or terminated */
    pool->backend->destroy(pool->impl);
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
    return 0;
}

void pb_pool_counters(pb_pool *pool, pb_counters *out) {
    memset(out, 0, sizeof *out);
    if (!pool) return;
    out->tasks_submitted = atomic_load(&pool->submitted);
    for (int s = 0; s < PB_STATUS_COUNT; s++) {
        out->by_status[s] = atomic_load(&pool->by_status[s]);
        out->tasks_done += out->by_status[s];
    }
    out->workers_started = atomic_load(&pool->counters[PB__WORKERS_STARTED]);
    out->workers_respawned = atomic_load(&pool->counters[PB__WORKERS_RESPAWNED]);
    out->workers_recycled = atomic_load(&pool->counters[PB__WORKERS_RECYCLED]);
    out->worker_deaths = atomic_load(&pool->counters[PB__WORKER_DEATHS]);
    out->timeouts = atomic_load(&pool->counters[PB__TIMEOUTS]);
}
