/*
 * skew.c - unequal task lengths from a heavy-tailed (Pareto) distribution: scheduling and chunking.
 *
 * A few tasks are many times longer than the mean. A pool that hands out large chunks up front can leave
 * one worker with several long tasks while the others idle; pulling small chunks on demand evens it out.
 * The chunksize parameter lets a case compare the two (0 = the pool's automatic chunksize).
 *
 * Task lengths are Pareto(alpha) scaled to mean_ms and capped at 100 x mean_ms (so that one draw cannot
 * stall a run). They depend on the params only, not on the seed, so that ideal(params, workers) is exact
 * for every execution; the seed picks the x values each task squares. Tasks sleep (no CPU), like the seed.
 *
 * Ideal model: the lower bound of any schedule on `workers` workers, max(total / workers, longest task).
 * No pool can beat it; a good one with chunksize 1 comes close when items >> workers.
 *
 * Input (16 bytes): u64 x, u64 nanoseconds to sleep. Output (8 bytes): u64 x*x.
 */
#include "scenario_impl.h"

#include <math.h>

enum { P_ITEMS, P_MEAN_MS, P_ALPHA, P_CHUNKSIZE };

static const pb_param_def params[] = {
    {"items", PB_PARAM_INT, 200, 1, 1000000, "number of tasks"},
    {"mean_ms", PB_PARAM_DOUBLE, 5, 0, 10000, "mean task length in milliseconds"},
    {"alpha", PB_PARAM_DOUBLE, 1.5, 1.1, 10, "Pareto shape: smaller = heavier tail"},
    {"chunksize", PB_PARAM_INT, 0, 0, 1000000, "items per chunk passed to map; 0 = automatic"},
};

#define CAP_FACTOR 100.0
#define LENGTH_SEED 0x5CE11ull

static int skew_task(const void *in, size_t len, pb_output *out) {
    if (len != 16)
        return pb_output_error(out, "scenario.skew: input of %zu bytes, expected 16", len);
    uint64_t x = pbs__get_u64(in), ns = pbs__get_u64((const unsigned char *)in + 8);
    pbs__sleep_s((double)ns * 1e-9);
    uint64_t y = x * x;
    return pb_output_set(out, &y, sizeof y);
}
PB_TASK_DEFINE("scenario.skew", skew_task)

/* Length of the next task in nanoseconds. Pareto(xm, alpha) has mean alpha*xm/(alpha-1). */
static uint64_t next_length_ns(const pb_params *p, uint64_t *st) {
    double mean = p->v[P_MEAN_MS] * 1e6, alpha = p->v[P_ALPHA];
    double xm = mean * (alpha - 1) / alpha;
    double u = 1.0 - pbs__rng_unit(st); /* (0, 1] */
    double len = xm / pow(u, 1.0 / alpha);
    if (len > CAP_FACTOR * mean)
        len = CAP_FACTOR * mean;
    return (uint64_t)llround(len);
}

static int generate(const pb_scenario *s, const pb_params *p, uint64_t seed, pb_workload *w, char *err,
                    size_t errlen) {
    size_t n = (size_t)p->v[P_ITEMS];
    int rc = pbs__workload_alloc(w, n, 16, 0, seed, err, errlen);
    if (rc)
        return rc;
    w->chunksize = (size_t)p->v[P_CHUNKSIZE];
    uint64_t xs = seed, ls = LENGTH_SEED;
    for (size_t i = 0; i < n; i++) {
        unsigned char *rec = w->buf + i * 16;
        pbs__put_u64(rec, 1 + pbs_splitmix64(&xs) % 0x7FFFFFFFull);
        pbs__put_u64(rec + 8, next_length_ns(p, &ls));
    }
    return 0;
}

static double ideal(const pb_scenario *s, const pb_params *p, int workers) {
    size_t n = (size_t)p->v[P_ITEMS];
    uint64_t ls = LENGTH_SEED;
    double total = 0, longest = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)next_length_ns(p, &ls) * 1e-9;
        total += t;
        if (t > longest)
            longest = t;
    }
    if (workers < 1)
        workers = 1;
    double spread = total / workers;
    return spread > longest ? spread : longest;
}

const pb_scenario pbs__skew = {
    .name = "skew",
    .description = "heavy-tailed task lengths: scheduling and chunking (ideal: max(total/workers, longest))",
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .task = "scenario.skew",
    .needs = 0,
    .floor = "nanosleep_overshoot",
    .measures = "map",
    .execute = pb_scenario_map_execute,
    .ideal = ideal,
    .generate = generate,
    .verify = pbs__verify_squares,
};
