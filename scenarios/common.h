/*
 * common.h - the two small helpers the scenarios, the harness and the micro-benchmarks share: a monotonic
 * clock in seconds and splitmix64. Header-only (static inline), so that every program can use them
 * without linking another library; one definition instead of a copy per directory.
 *
 * The pool library keeps its own pb__now() (impls/error.c): it is built without this directory.
 */
#ifndef POOLBENCH_COMMON_H
#define POOLBENCH_COMMON_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in seconds: for intervals and deadlines, never for dates. */
static inline double pbs_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: a tiny, well-mixed, seedable generator (Steele, Lea, Flood 2014). Same seed = same sequence on
 * every machine; any seed, even 0 or a small counter, gives well-mixed words, so it also seeds bigger
 * generators (stats.c's xoshiro256**). */
static inline uint64_t pbs_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif
