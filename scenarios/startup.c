/*
 * startup.c - the life of a short-lived pool: create, first task done, destroy.
 *
 * A program that makes a pool for one small job pays this every time: start the workers (threads, forks or
 * spawned processes), get one answer back, shut everything down and reap it. wall_s covers all three;
 * startup_s is the create alone (until pb_pool_create returned). The one task returns x*x and is verified
 * like any other. Parameter eager: 0 (the default) creates the pool with PB_START_ON_DEMAND, so the process
 * backends start one worker for the one task; 1 with PB_START_EAGER, every worker started and ready
 * before create returns (what every pool did before issue 15). The suites run both.
 *
 * Ideal model: none (0). Nothing useful is computed, so all of it is overhead; read it against the floors
 * instead: fork_exit_wait (or spawn_wait for the spawn backend) times the number of workers.
 *
 * Input (8 bytes): u64 x. Output (8 bytes): u64 x*x.
 */
#include "scenario_impl.h"

#include <stdio.h>
#include <string.h>

static int startup_task(const void *in, size_t len, pb_output *out) {
    if (len != 8)
        return pb_output_error(out, "scenario.startup: input of %zu bytes, expected 8", len);
    uint64_t x = pbs__get_u64(in), y = x * x;
    return pb_output_set(out, &y, sizeof y);
}
PB_TASK_DEFINE("scenario.startup", startup_task)

static int generate(const pb_scenario *s, const pb_params *p, uint64_t seed, pb_workload *w, char *err,
                    size_t errlen) {
    int rc = pbs__workload_alloc(w, 1, 8, 0, seed, err, errlen);
    if (rc)
        return rc;
    uint64_t st = seed;
    pbs__put_u64(w->buf, 1 + pbs_splitmix64(&st) % 0x7FFFFFFFull);
    return 0;
}

static int verify(const pb_scenario *s, const pb_params *p, const pb_workload *w, const pb_result *results,
                  char *msg, size_t msglen) {
    uint64_t x = pbs__get_u64(w->items[0].data);
    return pbs__expect_u64(&results[0], 0, x * x, msg, msglen);
}

static double ideal(const pb_scenario *s, const pb_params *p, int workers) { return 0; }

static const pb_param_def params[] = {
    {"eager", PB_PARAM_INT, 0, 0, 1, "1: start every worker in create (PB_START_EAGER); 0: on demand"},
};

static int execute(const pb_scenario *s, const pb_params *p, const char *backend, int workers, uint64_t seed,
                   pb_exec_result *res) {
    memset(res, 0, sizeof *res);
    pb_options o;
    pb_options_init(&o);
    if (workers > 0)
        o.workers = workers;
    o.start = p->v[0] != 0 ? PB_START_EAGER : PB_START_ON_DEMAND;
    pb_workload w;
    int rc = generate(s, p, seed, &w, res->message, sizeof res->message);
    if (rc)
        return rc;

    pb_pool *pool = NULL;
    pb_future *f = NULL;
    double t0 = pbs_now();
    rc = pb_pool_create(&pool, backend, &o);
    double t1 = pbs_now();
    if (rc < 0) {
        snprintf(res->message, sizeof res->message, "pool create on '%s' failed: %s (%s)", backend,
                 pb_strerror(rc), pb_last_error());
        pb_workload_free(&w);
        return rc;
    }
    rc = pb_submit(pool, s->task, w.items[0].data, w.items[0].len, &f);
    if (rc == 0)
        rc = pb_future_wait(f, -1);
    double t2 = pbs_now();
    if (rc == 0) {
        const pb_result *r = pb_future_result(f);
        res->tasks = 1;
        res->failed_tasks = r->status != PB_STATUS_OK;
        res->ok = verify(s, p, &w, r, res->message, sizeof res->message) == 0;
    } else {
        snprintf(res->message, sizeof res->message, "first task failed: %s (%s)", pb_strerror(rc), pb_last_error());
    }
    if (f)
        pb_future_release(f);
    pb_pool_join(pool);
    pb_pool_counters(pool, &res->counters);
    pb_pool_destroy(pool);
    double t3 = pbs__measured_end(t0);

    res->startup_s = t1 - t0;
    res->wall_s = t3 - t0;
    res->ideal_s = 0;
    if (res->ok)
        snprintf(res->message, sizeof res->message, "create %.3f ms, first task %.3f ms, destroy %.3f ms",
                 (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3);
    pb_workload_free(&w);
    return rc < 0 ? rc : 0;
}

const pb_scenario pbs__startup = {
    .name = "startup",
    .description = "pool create + first task done + destroy: the cost of a short-lived pool",
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .task = "scenario.startup",
    .needs = 0,
    .floor = "fork_exit_wait",
    .measures = "create + first task + destroy",
    .execute = execute,
    .ideal = ideal,
    .generate = generate,
    .verify = verify,
};
