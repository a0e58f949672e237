/*
 * serial.c - the "serial" backend: the seed's plain for loop, the baseline every speedup is measured
 * against.
 *
 * Every job runs to completion inside dispatch(), in the caller's thread, one item after another, exactly
 * as `for x in items: f(x)` would. So a future is already done when pb_submit returns, a wait never times
 * out, and there is no worker to crash-isolate, time out or recycle (caps: none). The initializer runs
 * once, at pool creation, since the caller's thread is the one "worker".
 */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>

typedef struct serial_pool {
    pb_pool *pool;
    size_t max_item;
} serial_pool;

static int serial_create(pb_pool *pool, const pb_options *opts, void **impl) {
    if (opts->initializer) {
        pb_result r = {0};
        pb__run_item(pb_task_find(opts->initializer), opts->init_arg, opts->init_arg_len, opts->max_item_bytes, &r);
        int ok = r.status == PB_STATUS_OK;
        int rc = ok ? 0 : pb__set_error(PB_ESPAWN, "initializer '%s' failed: %s", opts->initializer,
                                         r.message ? r.message : "(no message)");
        pb_result_clear(&r);
        if (!ok) return rc;
    }
    serial_pool *s = calloc(1, sizeof *s);
    if (!s) return pb__set_error(-ENOMEM, "out of memory");
    s->pool = pool;
    s->max_item = opts->max_item_bytes;
    pb__count(pool, PB__WORKERS_STARTED, 1);
    *impl = s;
    return 0;
}

static int serial_dispatch(void *impl, pb__job *job) {
    serial_pool *s = impl;
    if (!pb__job_claim(s->pool, job)) return 0;
    for (size_t i = 0; i < job->n; i++)
        pb__run_item(job->task, job->items[i].data, job->items[i].len, s->max_item, &job->results[i]);
    pb__job_done(s->pool, job);
    return 0;
}

static void serial_stop(void *impl) { (void)impl; /* nothing runs outside dispatch */ }

static void serial_destroy(void *impl) { free(impl); }

const pb_backend pb_backend_serial = {
    .version = 1,
    .name = "serial",
    .description = "the seed's for loop in the calling thread (the baseline)",
    .caps = 0,
    .create = serial_create,
    .dispatch = serial_dispatch,
    .shutdown = serial_stop,
    .terminate = serial_stop,
    .destroy = serial_destroy,
};
