/*
 * openmp.c - the "openmp" reference backend: the jobs of a pool run as an OpenMP
 * `parallel for schedule(dynamic, 1)`, the loop people write to spread independent items over cores.
 *
 * Built only when CMake's find_package(OpenMP) succeeds (gcc's libgomp; impls/reference-backends.cmake).
 * OpenMP is fork-join, while a pool receives jobs one dispatch at a time, so each pb_pool has one
 * "primary" thread (the thread that enters the parallel regions, thread 0 of every team): it sleeps until
 * jobs are queued, takes every queued job at once and runs them as one parallel for with
 * num_threads(min(jobs, workers)), then looks again. A map dispatches all its chunks back to back, so a
 * map is normally one parallel region; a lone submit is a team of one, run by the primary thread itself
 * (OpenMP does not wake a team for one iteration). Jobs that arrive while a region runs wait for the next.
 *
 * libgomp keeps the team's threads between regions, per primary thread; they end when the primary thread
 * exits (pool shutdown). libgomp is not fork-safe once its threads exist: a forked child that uses OpenMP
 * again may hang. poolbench's process backends never use OpenMP in their workers, the harness runs each
 * case in its own process, and the conformance table runs this backend last (registry.c), so no test forks
 * a process that would need libgomp.
 *
 * Capabilities: async only (threads in this address space; OpenMP cannot stop a running iteration or
 * replace a thread). Terminate raises abort_items: queued jobs end TERMINATED, iterations not started yet
 * end TERMINATED as they start, running ones after their current item. The per-worker initializer runs
 * lazily in each team thread (reference.h).
 *
 * Locking: `mu` guards the queue and `stopping`; it is never held while a task runs or the core is called.
 */
#include "reference.h"

#include <errno.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef struct openmp_pool {
    pb__ref_pool ref;
    pthread_t primary;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    pb__job *head, *tail;
    int stopping;
    int workers;
    pb__job **batch; /* primary thread only: the jobs of the current region */
    size_t batch_cap;
} openmp_pool;

/* Runs jobs[0..n) as one parallel for; the team never has more threads than jobs or workers. */
static void run_region(openmp_pool *p, pb__job **jobs, size_t n) {
    int team = n < (size_t)p->workers ? (int)n : p->workers;
    long count = (long)n;
    PB_TSAN_RELEASE(p); /* libgomp's team start and end barrier are futexes TSan cannot see (reference.h) */
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
    for (long i = 0; i < count; i++) {
        PB_TSAN_ACQUIRE(p);
        pb__ref_run_job(&p->ref, jobs[i]);
        PB_TSAN_RELEASE(p);
    }
    PB_TSAN_ACQUIRE(p);
}

static void *primary_main(void *arg) {
    openmp_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping) pthread_cond_wait(&p->work_cv, &p->mu);
        pb__job *taken = p->head;
        if (!taken) break; /* stopping and nothing left */
        p->head = p->tail = NULL;
        pthread_mutex_unlock(&p->mu);

        while (taken) { /* in regions of at most batch_cap jobs (the array grows; if it cannot, more regions) */
            size_t n = 0;
            for (pb__job *j = taken; j; j = j->next) n++;
            if (n > p->batch_cap) {
                pb__job **grown = realloc(p->batch, n * sizeof *grown);
                if (grown) {
                    p->batch = grown;
                    p->batch_cap = n;
                }
            }
            size_t k = 0;
            while (taken && k < p->batch_cap) {
                p->batch[k++] = taken;
                taken = taken->next;
            }
            if (k == 0) { /* no array at all: one job at a time in this thread */
                pb__job *j = taken;
                taken = taken->next;
                pb__ref_run_job(&p->ref, j);
                continue;
            }
            run_region(p, p->batch, k);
        }
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void free_pool(openmp_pool *p) {
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->batch);
    free(p);
}

static int openmp_create(pb_pool *pool, const pb_options *opts, void **impl) {
    openmp_pool *p = calloc(1, sizeof *p);
    if (!p) return pb__set_error(-ENOMEM, "out of memory");
    pb__ref_init(&p->ref, pool, opts);
    p->workers = opts->workers;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the primary thread, and libgomp's threads it starts, block signals */
    int e = pthread_create(&p->primary, NULL, primary_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        free_pool(p);
        return pb__set_error(-e, "cannot start the OpenMP primary thread: %s", strerror(e));
    }
    /* libgomp starts the team's threads at the first parallel region, not here */
    pb__count(pool, PB__WORKERS_STARTED, (uint64_t)opts->workers);
    *impl = p;
    return 0;
}

static int openmp_dispatch(void *impl, pb__job *job) {
    openmp_pool *p = impl;
    job->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return PB_ECLOSED;
    }
    if (p->tail) p->tail->next = job;
    else p->head = job;
    p->tail = job;
    pthread_mutex_unlock(&p->mu);
    pthread_cond_signal(&p->work_cv); /* one waiter at most: the primary thread */
    return 0;
}

static void stop_primary(openmp_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->primary, NULL);
}

static void openmp_shutdown(void *impl) { stop_primary(impl); }

static void openmp_terminate(void *impl) {
    openmp_pool *p = impl;
    atomic_store(&p->ref.abort_items, 1); /* whatever the primary thread takes now ends TERMINATED at once */
    stop_primary(p);
}

static void openmp_destroy(void *impl) { free_pool(impl); }

const pb_backend pb_backend_openmp = {
    .version = 1,
    .name = "openmp",
    .description = PB_REF_OPENMP_DESCRIPTION,
    .caps = PB_REF_CAPS,
    .create = openmp_create,
    .dispatch = openmp_dispatch,
    .shutdown = openmp_shutdown,
    .terminate = openmp_terminate,
    .destroy = openmp_destroy,
};
