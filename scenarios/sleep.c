/*
 * sleep.c - the seed: each task sleeps `ms` milliseconds, then returns x*x.
 *
 * This is the blog post's program (Pool(8).map over four 2-second sleeps) as a scenario: the work uses no
 * CPU, so the ideal is pure parallelism, ceil(items / workers) x ms, whatever the core count, and what is
 * left over is the pool's overhead plus the sleep's own overshoot (the nanosleep_overshoot floor).
 *
 * Input (16 bytes): u64 x, u64 sleep in nanoseconds. Output (8 bytes): u64 x*x. x is drawn from the seed
 * in [1, 2^31) so that x*x fits and a swapped or stale result cannot pass by accident.
 */
#include "scenario_impl.h"

#include <math.h>
#include <string.h>

enum { P_ITEMS, P_MS };

static const pb_param_def params[] = {
    {"items", PB_PARAM_INT, 4, 1, 1000000, "number of tasks (the seed maps over 4)"},
    {"ms", PB_PARAM_DOUBLE, 2000, 0, 600000, "milliseconds each task sleeps before returning x*x"},
};

static int sleep_task(const void *in, size_t len, pb_output *out) {
    if (len != 16)
        return pb_output_error(out, "scenario.sleep: input of %zu bytes, expected 16", len);
    uint64_t x = pbs__get_u64(in), ns = pbs__get_u64((const unsigned char *)in + 8);
    pbs__sleep_s((double)ns * 1e-9);
    uint64_t y = x * x;
    return pb_output_set(out, &y, sizeof y);
}
PB_TASK_DEFINE("scenario.sleep", sleep_task)

static int generate(const pb_scenario *s, const pb_params *p, uint64_t seed, pb_workload *w, char *err,
                    size_t errlen) {
    size_t n = (size_t)p->v[P_ITEMS];
    int rc = pbs__workload_alloc(w, n, 16, 0, seed, err, errlen);
    if (rc)
        return rc;
    uint64_t st = seed, ns = (uint64_t)llround(p->v[P_MS] * 1e6);
    for (size_t i = 0; i < n; i++) {
        unsigned char *rec = w->buf + i * 16;
        pbs__put_u64(rec, 1 + pbs_splitmix64(&st) % 0x7FFFFFFFull);
        pbs__put_u64(rec + 8, ns);
    }
    return 0;
}

/* Sleeping needs no CPU, so every worker counts, even beyond the core count. */
static double ideal(const pb_scenario *s, const pb_params *p, int workers) {
    double items = p->v[P_ITEMS];
    if (workers < 1)
        workers = 1;
    return ceil(items / workers) * p->v[P_MS] / 1000.0;
}

const pb_scenario pbs__sleep = {
    .name = "sleep",
    .description = "the seed: each task sleeps ms, then returns x*x (ideal: ceil(items/workers) x ms)",
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .task = "scenario.sleep",
    .needs = 0,
    .floor = "nanosleep_overshoot",
    .measures = "map",
    .execute = pb_scenario_map_execute,
    .ideal = ideal,
    .generate = generate,
    .verify = pbs__verify_squares,
};
