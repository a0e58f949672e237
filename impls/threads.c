/*
 * threads.c - the "threads" backend: a pthread pool inside the calling process.
 *
 * DESIGN (the skeleton of libuv's threadpool.c). One mutex `mu`, one condvar `work_cv`, an intrusive FIFO
 * of jobs and an `idle` count: dispatch signals work_cv only when a worker is actually waiting, since a
 * busy worker looks at the queue again before it sleeps. A job is a whole chunk, so a worker takes the
 * lock once per chunk and runs its items without any lock.
 *
 * Start (pb_options.start, as the process backends): PB_START_EAGER starts every thread in create() and
 * returns when all have run the initializer (ready_cv), so the first map never waits for a thread and a
 * failing initializer fails pool creation. PB_START_ON_DEMAND (the default) starts one thread in create()
 * (its failing initializer fails creation the same way) and more from dispatch(), only while more jobs
 * are queued than threads are idle or starting, up to `workers`: the seed's 4 tasks on a pool of 8 start
 * 4 threads, not 8 (a thread start costs ~0.3 ms on the reference VM, most of it the stack's mapping).
 * A thread started later whose initializer fails runs none of the pool's items: they end as task errors
 * carrying the initializer's message (as on the reference backends, reference.h). A thread that cannot be
 * created later is no error: the queued job runs on the threads there are. Shutdown waits for a creation
 * in flight (`creating`) before it joins, so no thread is ever left unjoined.
 *
 * Shutdown: `stopping` makes idle workers exit once the queue is empty. Terminate also takes the queue
 * (those jobs end TERMINATED) and raises `abort_items`, which running workers check between items: a
 * thread cannot be killed safely, so terminate returns once each running task finishes its current item.
 * Tasks run in this address space, so a crashing task takes the process down: caps lack CRASH_ISOLATION,
 * and the harness reports scenarios that need it as unsupported on this backend.
 *
 * Workers start with every signal blocked so asynchronous signals go to the host program's threads.
 * Lock order: only `mu`; it is never held while a task or the core runs.
 */
#include "backend.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

typedef struct threads_pool {
    pb_pool *pool;
    const pb_options *opts;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pthread_cond_t ready_cv;
    pb__job *head, *tail;
    int idle;        /* workers waiting on work_cv */
    int ready;       /* workers that finished start-up */
    int init_failed; /* workers whose initializer failed */
    char init_error[256];
    int stopping;
    atomic_int abort_items;
    int on_demand;   /* PB_START_ON_DEMAND: dispatch starts threads (see the top) */
    int queued;      /* jobs in the queue */
    int starting;    /* threads created or being created that have not reached the queue yet */
    int creating;    /* pthread_create calls in flight outside mu (shutdown waits for them) */
    int nslots;      /* slots handed out, <= workers; a slot whose thread could not be created stays empty */
    int nthreads;    /* threads started */
    pthread_t *threads;
    unsigned char *started; /* per slot: threads[i] is a thread to join */
} threads_pool;

/* Runs the initializer in this thread; 0, or -1 with its message in why. */
static int run_initializer(threads_pool *t, char *why, size_t whylen) {
    const pb_options *o = t->opts;
    if (!o->initializer) return 0;
    pb_result r = {0};
    pb__run_item(pb_task_find(o->initializer), o->init_arg, o->init_arg_len, o->max_item_bytes, &r);
    int rc = 0;
    if (r.status != PB_STATUS_OK) {
        snprintf(why, whylen, "initializer '%s' failed: %s", o->initializer, r.message ? r.message : "(no message)");
        rc = -1;
    }
    pb_result_clear(&r);
    return rc;
}

static void run_job(threads_pool *t, pb__job *job, const char *init_error) {
    if (!pb__job_claim(t->pool, job)) return;
    if (init_error) { /* this thread's initializer failed (a thread started after create): none of it runs */
        pb__job_fail(t->pool, job, 0, PB_STATUS_TASK_ERROR, init_error);
        return;
    }
    size_t max_out = t->opts->max_item_bytes;
    for (size_t i = 0; i < job->n; i++) {
        if (atomic_load_explicit(&t->abort_items, memory_order_relaxed)) {
            pb__job_fail(t->pool, job, i, PB_STATUS_TERMINATED, "the pool was terminated");
            return;
        }
        pb__run_item(job->task, job->items[i].data, job->items[i].len, max_out, &job->results[i]);
    }
    pb__job_done(t->pool, job);
}

static void *worker_main(void *arg) {
    threads_pool *t = arg;
    char why[sizeof t->init_error];
    int failed = run_initializer(t, why, sizeof why) != 0;
    pthread_mutex_lock(&t->mu);
    if (failed && t->init_failed++ == 0) memcpy(t->init_error, why, sizeof why);
    t->ready++;
    t->starting--;
    pthread_cond_broadcast(&t->ready_cv);
    for (;;) {
        while (!t->head && !t->stopping) {
            t->idle++;
            pthread_cond_wait(&t->work_cv, &t->mu);
            t->idle--;
        }
        pb__job *job = t->head;
        if (!job) break; /* stopping and nothing left */
        t->head = job->next;
        if (!t->head) t->tail = NULL;
        t->queued--;
        pthread_mutex_unlock(&t->mu);
        run_job(t, job, failed ? why : NULL);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Joins every started thread, after any creation still in flight in a dispatch() (stopping is set, so
 * no new one begins). */
static void join_workers(threads_pool *t) {
    pthread_mutex_lock(&t->mu);
    while (t->creating) pthread_cond_wait(&t->ready_cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < t->nslots; i++)
        if (t->started[i]) pthread_join(t->threads[i], NULL);
    memset(t->started, 0, (size_t)t->nslots);
    t->nthreads = 0;
}

/* Creates the thread of a slot the caller reserved (nslots, starting and creating counted under mu), with
 * every signal blocked so that it inherits a full mask; the caller does not hold mu. Returns 0 or the
 * pthread_create error, with the slot then left empty and the counts given back. */
static int create_thread(threads_pool *t, int slot) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&t->threads[slot], NULL, worker_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_lock(&t->mu);
    if (e == 0) {
        t->started[slot] = 1;
        t->nthreads++;
    } else {
        t->starting--;
    }
    t->creating--;
    pthread_cond_broadcast(&t->ready_cv);
    pthread_mutex_unlock(&t->mu);
    if (e == 0) pb__count(t->pool, PB__WORKERS_STARTED, 1);
    return e;
}

/* Reserves the next slot (mu held); -1 when all are taken. */
static int reserve_slot(threads_pool *t) {
    if (t->nslots >= t->opts->workers) return -1;
    t->starting++;
    t->creating++;
    return t->nslots++;
}

static void stop_workers(threads_pool *t) {
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_broadcast(&t->work_cv);
    pthread_mutex_unlock(&t->mu);
    join_workers(t);
}

static void free_pool(threads_pool *t) {
    pthread_cond_destroy(&t->work_cv);
    pthread_cond_destroy(&t->ready_cv);
    pthread_mutex_destroy(&t->mu);
    free(t->threads);
    free(t->started);
    free(t);
}

static int threads_create(pb_pool *pool, const pb_options *opts, void **impl) {
    threads_pool *t = calloc(1, sizeof *t);
    if (!t) return pb__set_error(-ENOMEM, "out of memory");
    t->threads = calloc((size_t)opts->workers, sizeof *t->threads);
    t->started = calloc((size_t)opts->workers, 1);
    if (!t->threads || !t->started) {
        free(t->threads);
        free(t->started);
        free(t);
        return pb__set_error(-ENOMEM, "out of memory for %d threads", opts->workers);
    }
    t->pool = pool;
    t->opts = opts;
    t->on_demand = opts->start != PB_START_EAGER;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->work_cv, NULL);
    pthread_cond_init(&t->ready_cv, NULL);

    int rc = 0, first = t->on_demand ? 1 : opts->workers;
    for (int i = 0; i < first; i++) {
        pthread_mutex_lock(&t->mu);
        int slot = reserve_slot(t);
        pthread_mutex_unlock(&t->mu);
        int e = create_thread(t, slot);
        if (e) {
            rc = pb__set_error(-e, "cannot start worker thread %d of %d: %s", i + 1, opts->workers, strerror(e));
            break;
        }
    }

    pthread_mutex_lock(&t->mu);
    while (t->ready < t->nthreads) pthread_cond_wait(&t->ready_cv, &t->mu);
    if (rc == 0 && t->init_failed) rc = pb__set_error(PB_ESPAWN, "%s", t->init_error);
    pthread_mutex_unlock(&t->mu);
    if (rc < 0) {
        stop_workers(t);
        free_pool(t);
        return rc;
    }
    *impl = t;
    return 0;
}

static int threads_dispatch(void *impl, pb__job *job) {
    threads_pool *t = impl;
    job->next = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->stopping) {
        pthread_mutex_unlock(&t->mu);
        return PB_ECLOSED;
    }
    if (t->tail) t->tail->next = job;
    else t->head = job;
    t->tail = job;
    t->queued++;
    int wake = t->idle > 0;
    /* On demand: one more thread when the queue outgrows the threads that will look at it. */
    int slot = t->on_demand && t->queued > t->idle + t->starting ? reserve_slot(t) : -1;
    pthread_mutex_unlock(&t->mu);
    /* Signalled after unlock so the woken worker does not block on the mutex we still hold. No wake-up
     * is lost: a worker counts itself idle and waits atomically under mu, so it either saw the job before
     * waiting or was counted here. */
    if (wake) pthread_cond_signal(&t->work_cv);
    if (slot >= 0) (void)create_thread(t, slot); /* failing is no error: the job runs on the threads there are */
    return 0;
}

static void threads_shutdown(void *impl) { stop_workers(impl); }

static void threads_terminate(void *impl) {
    threads_pool *t = impl;
    atomic_store(&t->abort_items, 1);
    pthread_mutex_lock(&t->mu);
    pb__job *queued = t->head;
    t->head = t->tail = NULL;
    t->queued = 0;
    t->stopping = 1;
    pthread_cond_broadcast(&t->work_cv);
    pthread_mutex_unlock(&t->mu);
    while (queued) {
        pb__job *next = queued->next;
        pb__job_fail(t->pool, queued, 0, PB_STATUS_TERMINATED, "the pool was terminated");
        queued = next;
    }
    join_workers(t);
}

static void threads_destroy(void *impl) { free_pool(impl); }

const pb_backend pb_backend_threads = {
    .version = 1,
    .name = "threads",
    .description = "a pthread pool in this process (no crash isolation)",
    .caps = PB_CAP_ASYNC,
    .create = threads_create,
    .dispatch = threads_dispatch,
    .shutdown = threads_shutdown,
    .terminate = threads_terminate,
    .destroy = threads_destroy,
};
