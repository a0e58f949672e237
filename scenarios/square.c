/*
 * square.c - tiny tasks: a million x*x, so that the time is almost all dispatch.
 *
 * The work per item is one multiplication; what a backend adds (queueing, chunking, serialization,
 * crossing a pipe, result bookkeeping) is the measurement. The ideal is the serial in-process cost of
 * running the task function over every item (pbs__calibrate: no pool at all) divided by the parallelism
 * the work can really get, min(workers, online CPUs): extra workers on a 2-core machine cannot make CPU
 * work faster, so dividing by them would make an unreachable ideal. Its floor is the pipe round trip: the
 * process backends pay one per chunk.
 *
 * Input (8 bytes): u64 x in [0, 2^32) from the seed. Output (8 bytes): u64 x*x.
 */
#include "scenario_impl.h"

enum { P_ITEMS };

static const pb_param_def params[] = {
    {"items", PB_PARAM_INT, 1000000, 1, 10000000, "number of tiny tasks (each returns x*x)"},
};

static int square_task(const void *in, size_t len, pb_output *out) {
    if (len != 8)
        return pb_output_error(out, "scenario.square: input of %zu bytes, expected 8", len);
    uint64_t x = pbs__get_u64(in), y = x * x;
    return pb_output_set(out, &y, sizeof y);
}
PB_TASK_DEFINE("scenario.square", square_task)

static int generate(const pb_scenario *s, const pb_params *p, uint64_t seed, pb_workload *w, char *err,
                    size_t errlen) {
    size_t n = (size_t)p->v[P_ITEMS];
    int rc = pbs__workload_alloc(w, n, 8, 0, seed, err, errlen);
    if (rc)
        return rc;
    uint64_t st = seed;
    for (size_t i = 0; i < n; i++)
        pbs__put_u64(w->buf + i * 8, pbs_splitmix64(&st) >> 32);
    return 0;
}

static double ideal(const pb_scenario *s, const pb_params *p, int workers) {
    double serial = pbs__calibrate(s, p);
    return serial < 0 ? 0 : serial / pbs__effective_workers(workers);
}

const pb_scenario pbs__square = {
    .name = "square",
    .description = "tiny tasks (x*x): the pure cost of dispatch (ideal: serial compute / min(workers, cpus))",
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .task = "scenario.square",
    .needs = 0,
    .floor = "pipe_rtt",
    .measures = "map",
    .execute = pb_scenario_map_execute,
    .ideal = ideal,
    .generate = generate,
    .verify = pbs__verify_squares,
};
