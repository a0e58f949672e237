/*
 * threads.c - the "threads" backend: a pthread pool inside the calling process.
 *
 * DESIGN (the skeleton of libuv's threadpool.c). One mutex `mu`, one condvar `work_cv`, an intrusive FIFO
 * of jobs and an `idle` count: dispatch signals work_cv only when a worker is actually waiting, since a
 * busy worker looks at the queue again before it sleeps. A job is a whole chunk, so a worker takes the
 * lock once per chunk and runs its items without any lock. create() returns only when every worker has
 * started and run the initializer (ready_cv), so the first map never waits for thread start-up and a
 * failing initializer fails pool creation.
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
    int nthreads;
    pthread_t *threads;
} threads_pool;

static void run_initializer(threads_pool *t) {
    const pb_options *o = t->opts;
    if (!o->initializer) return;
    pb_result r = {0};
    pb__run_item(pb_task_find(o->initializer), o->init_arg, o->init_arg_len, o->max_item_bytes, &r);
    if (r.status != PB_STATUS_OK) {
        pthread_mutex_lock(&t->mu);
        t->init_failed++;
        snprintf(t->init_error, sizeof t->init_error, "initializer '%s' failed: %s", o->initializer,
                 r.message ? r.message : "(no message)");
        pthread_mutex_unlock(&t->mu);
    }
    pb_result_clear(&r);
}

static void run_job(threads_pool *t, pb__job *job) {
    if (!pb__job_claim(t->pool, job)) return;
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
    run_initializer(t);
    pthread_mutex_lock(&t->mu);
    t->ready++;
    pthread_cond_signal(&t->ready_cv);
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
        pthread_mutex_unlock(&t->mu);
        run_job(t, job);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void join_workers(threads_pool *t) {
    for (int i = 0; i < t->nthreads; i++) pthread_join(t->threads[i], NULL);
    t->nthreads = 0;
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
    free(t);
}

static int threads_create(pb_pool *pool, const pb_options *opts, void **impl) {
    threads_pool *t = calloc(1, sizeof *t);
    if (!t) return pb__set_error(-ENOMEM, "out of memory");
    t->threads = calloc((size_t)opts->workers, sizeof *t->threads);
    if (!t->threads) {
        free(t);
        return pb__set_error(-ENOMEM, "out of memory for %d threads", opts->workers);
    }
    t->pool = pool;
    t->opts = opts;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->work_cv, NULL);
    pthread_cond_init(&t->ready_cv, NULL);

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* workers inherit a full mask */
    int rc = 0;
    for (int i = 0; i < opts->workers; i++) {
        int e = pthread_create(&t->threads[i], NULL, worker_main, t);
        if (e) {
            rc = pb__set_error(-e, "cannot start worker thread %d of %d: %s", i + 1, opts->workers, strerror(e));
            break;
        }
        t->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    pthread_mutex_lock(&t->mu);
    while (t->ready < t->nthreads) pthread_cond_wait(&t->ready_cv, &t->mu);
    if (rc == 0 && t->init_failed) rc = pb__set_error(PB_ESPAWN, "%s", t->init_error);
    pthread_mutex_unlock(&t->mu);
    if (rc < 0) {
        stop_workers(t);
        free_pool(t);
        return rc;
    }
    pb__count(pool, PB__WORKERS_STARTED, (uint64_t)t->nthreads);
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
    int wake = t->idle > 0;
    pthread_mutex_unlock(&t->mu);
    /* Signalled after unlock so the woken worker does not block on the mutex we still hold. No wake-up
     * is lost: a worker counts itself idle and waits atomically under mu, so it either saw the job before
     * waiting or was counted here. */
    if (wake) pthread_cond_signal(&t->work_cv);
    return 0;
}

static void threads_shutdown(void *impl) { stop_workers(impl); }

static void threads_terminate(void *impl) {
    threads_pool *t = impl;
    atomic_store(&t->abort_items, 1);
    pthread_mutex_lock(&t->mu);
    pb__job *queued = t->head;
    t->head = t->tail = NULL;
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
