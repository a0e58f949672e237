/*
 * scenario_impl.h - helpers shared by the scenario files (not for the harness: it uses scenario.h).
 *
 * Internal non-static names carry the pbs__ prefix so they cannot collide with the pool library's pb__
 * internals. Implemented in registry.c (execution, calibration, workloads) and params.c (parameters).
 */
#ifndef POOLBENCH_SCENARIO_IMPL_H
#define POOLBENCH_SCENARIO_IMPL_H

#include "common.h"
#include "scenario.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* The scenarios, one per file; registry.c lists them. */
extern const pb_scenario pbs__sleep;
extern const pb_scenario pbs__square;
extern const pb_scenario pbs__cpu;
extern const pb_scenario pbs__payload;
extern const pb_scenario pbs__skew;
extern const pb_scenario pbs__crash;
extern const pb_scenario pbs__startup;

/* Uniform in [0, 1), from splitmix64 (common.h, with the monotonic clock pbs_now). */
static inline double pbs__rng_unit(uint64_t *state) { return (double)(pbs_splitmix64(state) >> 11) * 0x1.0p-53; }

/* The end of a measured phase that started at t_start: pbs_now(), after the injected slowdown (if any,
 * see pb_scenario_inject_slowdown) has been spent busy-waiting. Every scenario ends its timed phase so. */
double pbs__measured_end(double t_start);
void pbs__sleep_s(double s);    /* sleeps at least s seconds (absolute deadline, EINTR-proof) */
int pbs__online_cpus(void);     /* >= 1 */
/* The parallelism CPU-bound work can really get: min(workers, online CPUs), at least 1. */
int pbs__effective_workers(int workers);

/* Formats into msg (NULL/0 tolerated); returns -1 so verifiers can `return pbs__fail(...)`. */
int pbs__fail(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Allocates n items of item_len bytes each in one buffer (items[i].data = buf + i * item_len), plus an
 * expect block of expect_bytes (zeroed; none when 0). 0 or -ENOMEM (with a message in err). */
int pbs__workload_alloc(pb_workload *w, size_t n, size_t item_len, size_t expect_bytes, uint64_t seed,
                        char *err, size_t errlen);

/* Result checks for verifiers: 0 when results[i] is ok and holds exactly the 8 bytes of want. */
int pbs__expect_u64(const pb_result *r, size_t i, uint64_t want, char *msg, size_t len);
/* The verifier of every scenario whose task answers x*x for an input that starts with the u64 x
 * (sleep, square, skew): each result must be exactly that, else -1 with the first wrong item in msg. */
int pbs__verify_squares(const pb_scenario *s, const pb_params *p, const pb_workload *w, const pb_result *results,
                        char *msg, size_t msglen);
/* 0 when r is ok with exactly len bytes (the caller then compares the content). */
int pbs__expect_ok_len(const pb_result *r, size_t i, size_t len, char *msg, size_t msglen);

/* Serial in-process calibration: generates the workload with a fixed seed and runs the scenario's task
 * function directly over every item in this thread (no pool, no dispatch), once per (scenario, params) per
 * process; later calls return the cached seconds. Negative when it cannot run. */
double pbs__calibrate(const pb_scenario *s, const pb_params *p);
#define PBS__CALIBRATION_SEED 0x5EEDull

/* Parallel calibration (the ideal of CPU-bound scenarios): the same calibration workload split over
 * n = min(workers, online CPUs) plain forked processes that run the task function at once (item i in
 * process i % n), no pool; the fastest of a few passes, and never more than the serial calibration (a pool
 * of n workers could always run serially). Unlike serial / n it includes what the hardware loses when
 * every core is busy (shared caches, SMT siblings, a VM's vCPUs on busy host cores). Cached like
 * pbs__calibrate. Negative when it cannot run. */
double pbs__calibrate_parallel(const pb_scenario *s, const pb_params *p, int workers);

/* Runs work(ctx, k, n) for k = 0..n-1 in n plain processes forked from this one, all at once (floors.c).
 * Returns the wall seconds from the first fork to the last reap, or -1 when a copy could not be started
 * or did not return 0. Call it from a single-threaded moment of the process (the copies run task code). */
double pbs__run_copies(int n, int (*work)(void *ctx, int k, int n), void *ctx);

/* Reads and writes fixed-layout little records without alignment assumptions. */
static inline uint64_t pbs__get_u64(const void *p) {
    uint64_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
static inline void pbs__put_u64(void *p, uint64_t v) { __builtin_memcpy(p, &v, sizeof v); }

#endif
