/*
 * reference.c - the job runner shared by the reference backends (glib.c, libuv.c, openmp.c): claim, lazy
 * per-thread initializer, items with a terminate check between them. reference.h says why the initializer
 * is lazy there.
 */
#include "reference.h"

#include <stdio.h>

static atomic_uint_fast64_t next_pool_id = 1;

/* Per library thread: the pool whose initializer it last ran, and why that failed ("" = it did not). */
static _Thread_local uint64_t initialized_for;
static _Thread_local char init_failure[256];

void pb__ref_init(pb__ref_pool *r, pb_pool *pool, const pb_options *opts) {
    r->pool = pool;
    r->opts = opts;
    r->id = atomic_fetch_add(&next_pool_id, 1);
    atomic_init(&r->abort_items, 0);
}

/* 1 when this thread may run the pool's items; 0 when its initializer failed (init_failure says why). */
static int thread_ready_for(pb__ref_pool *r) {
    if (initialized_for != r->id) {
        initialized_for = r->id;
        init_failure[0] = '\0';
        const pb_options *o = r->opts;
        if (o->initializer) {
            pb_result res = {0};
            pb__run_item(pb_task_find(o->initializer), o->init_arg, o->init_arg_len, o->max_item_bytes, &res);
            if (res.status != PB_STATUS_OK)
                snprintf(init_failure, sizeof init_failure, "initializer '%s' failed: %s", o->initializer,
                         res.message ? res.message : "(no message)");
            pb_result_clear(&res);
        }
    }
    return init_failure[0] == '\0';
}

int pb__ref_run_items(pb__ref_pool *r, pb__job *job) {
    if (!pb__job_claim(r->pool, job)) return 0;
    if (!thread_ready_for(r)) {
        for (size_t i = 0; i < job->n; i++) pb__result_fail(&job->results[i], PB_STATUS_TASK_ERROR, "%s", init_failure);
        return 1;
    }
    size_t max_out = r->opts->max_item_bytes;
    for (size_t i = 0; i < job->n; i++) {
        if (atomic_load_explicit(&r->abort_items, memory_order_relaxed)) {
            for (; i < job->n; i++) pb__result_fail(&job->results[i], PB_STATUS_TERMINATED, "the pool was terminated");
            break;
        }
        pb__run_item(job->task, job->items[i].data, job->items[i].len, max_out, &job->results[i]);
    }
    return 1;
}

void pb__ref_run_job(pb__ref_pool *r, pb__job *job) {
    if (pb__ref_run_items(r, job)) pb__job_done(r->pool, job);
}

void pb__ref_terminate_job(pb__ref_pool *r, pb__job *job) {
    pb__job_fail(r->pool, job, 0, PB_STATUS_TERMINATED, "the pool was terminated");
}
