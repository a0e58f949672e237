/*
 * gbench_shim.h - a C API over Google Benchmark (1.7.x), so that poolbench's micro-benchmarks are written
 * in C like the rest of the project while keeping Google Benchmark's calibrated loops, statistics,
 * repetitions, reporters and its standard --benchmark_* flags.
 *
 * The shim is a thin mapping, one call per Google Benchmark call:
 *   registration  pbm_register(name, fn, ud) -> pbm_bench *; then pbm_bench_* setters (Arg, Args, Range,
 *                 DenseRange, ArgName(s), UseRealTime, Unit, Iterations, MinTime, Repetitions, ...), each
 *                 returning the same handle so that calls chain; a NULL handle is accepted and ignored.
 *   in the body   fn(pbm_state *st, void *ud): the keep-running loop (pbm_keep_running /
 *                 pbm_keep_running_batch), pbm_pause_timing / pbm_resume_timing, pbm_range(st, i),
 *                 pbm_set_items_processed / pbm_set_bytes_processed, named counters (pbm_counter with
 *                 PBM_COUNTER_* flags), pbm_set_label, pbm_skip_with_error.
 *   main          pbm_initialize, pbm_report_unrecognized_arguments, pbm_run_specified_benchmarks,
 *                 pbm_shutdown, or pbm_main() for all four.
 *
 * Rules that come from Google Benchmark itself:
 *   - The timer starts at the first pbm_keep_running() call and stops when it returns 0, so set-up before
 *     the loop and tear-down after it are not timed. The body must keep calling pbm_keep_running() until
 *     it returns 0 (or call pbm_skip_with_error() before the loop and return).
 *   - After pbm_skip_with_error() the loop ends at the next pbm_keep_running(); the benchmark is reported
 *     with error_occurred and its message, and the other benchmarks still run.
 *   - Strings passed in are copied (names, labels, error messages), so stack buffers are fine.
 *   - Every run of a benchmark has the same number of arguments, and Iterations excludes MinTime. Where
 *     Google Benchmark would abort the process on a broken rule (these two, a descending range, a
 *     non-positive count), the shim prints the reason on stderr and ignores the call instead.
 *
 * No C++ exception ever crosses into C: every entry point catches, reports on stderr and returns a failure
 * value (NULL, 0 or -1). Keep-running is an out-of-line call (about 2 ns); benchmarks whose iteration is
 * shorter than a microsecond should do several operations per iteration with pbm_keep_running_batch().
 */
#ifndef POOLBENCH_GBENCH_SHIM_H
#define POOLBENCH_GBENCH_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pbm_bench pbm_bench; /* a registered benchmark family (benchmark::internal::Benchmark) */
typedef struct pbm_state pbm_state; /* one run of a benchmark (benchmark::State) */

/* The body of a benchmark; ud is the pointer given to pbm_register. */
typedef void (*pbm_fn)(pbm_state *st, void *ud);

typedef enum pbm_unit { PBM_NS = 0, PBM_US, PBM_MS, PBM_S } pbm_unit;

/* Counter flags (benchmark::Counter::Flags); combine with |. */
#define PBM_COUNTER_DEFAULT 0u
#define PBM_COUNTER_RATE 0x1u                /* divided by the run's duration: a per-second rate */
#define PBM_COUNTER_AVG_THREADS 0x2u         /* divided by the number of threads */
#define PBM_COUNTER_ITERATION_INVARIANT 0x4u /* multiplied by the iteration count */
#define PBM_COUNTER_AVG_ITERATIONS 0x8u      /* divided by the iteration count: a per-iteration mean */
#define PBM_COUNTER_INVERT 0x10u             /* 1/x, applied last (e.g. a rate shown as seconds per item) */
#define PBM_COUNTER_1024 0x20u               /* human-readable output uses 1024 for k, M, G (bytes) */

/* ---- registration (call before pbm_run_specified_benchmarks) ---- */

/* Registers fn under name (copied). Returns the handle for the setters below, or NULL on failure. */
pbm_bench *pbm_register(const char *name, pbm_fn fn, void *ud);

pbm_bench *pbm_bench_arg(pbm_bench *b, int64_t x);                       /* one run with range(0) = x */
pbm_bench *pbm_bench_args(pbm_bench *b, const int64_t *xs, size_t n);    /* one run with range(i) = xs[i] */
pbm_bench *pbm_bench_range(pbm_bench *b, int64_t lo, int64_t hi);        /* lo..hi by the range multiplier */
pbm_bench *pbm_bench_range_multiplier(pbm_bench *b, int mult);           /* default 8 */
pbm_bench *pbm_bench_dense_range(pbm_bench *b, int64_t lo, int64_t hi, int step);
pbm_bench *pbm_bench_arg_name(pbm_bench *b, const char *name);           /* "name:value" in the run name */
pbm_bench *pbm_bench_arg_names(pbm_bench *b, const char *const *names, size_t n);
pbm_bench *pbm_bench_use_real_time(pbm_bench *b);      /* report wall time, not this thread's CPU time */
pbm_bench *pbm_bench_measure_process_cpu_time(pbm_bench *b); /* CPU time of every thread of the process */
pbm_bench *pbm_bench_unit(pbm_bench *b, pbm_unit unit);
pbm_bench *pbm_bench_iterations(pbm_bench *b, int64_t n); /* fixed iteration count: no calibration */
pbm_bench *pbm_bench_min_time(pbm_bench *b, double seconds);
pbm_bench *pbm_bench_repetitions(pbm_bench *b, int n);

/* ---- inside a benchmark body ---- */

int pbm_keep_running(pbm_state *st);                     /* 1 while more iterations are wanted */
int pbm_keep_running_batch(pbm_state *st, int64_t n);    /* counts n iterations per call */
void pbm_pause_timing(pbm_state *st);                    /* costly (two clock reads): not per tiny op */
void pbm_resume_timing(pbm_state *st);
/* The i-th argument of this run; i must be below the number of arguments registered (as in C++). */
int64_t pbm_range(const pbm_state *st, size_t i);
int64_t pbm_iterations(const pbm_state *st);             /* iterations done so far (all, after the loop) */
void pbm_set_items_processed(pbm_state *st, int64_t items); /* reported as items_per_second */
void pbm_set_bytes_processed(pbm_state *st, int64_t bytes); /* reported as bytes_per_second */
/* Sets (replaces) the named user counter; flags are PBM_COUNTER_*. */
void pbm_counter(pbm_state *st, const char *name, double value, unsigned flags);
void pbm_set_label(pbm_state *st, const char *label);
void pbm_skip_with_error(pbm_state *st, const char *msg);
/* printf-style pbm_skip_with_error. */
void pbm_skip_with_errorf(pbm_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pbm_error_occurred(const pbm_state *st);

/* ---- main ---- */

/* benchmark::Initialize: consumes the --benchmark_* flags from argc/argv. 0, or -1 on failure. */
int pbm_initialize(int *argc, char **argv);
/* 1 (after printing them) when argv still holds arguments nobody consumed, else 0. */
int pbm_report_unrecognized_arguments(int argc, char **argv);
/* Runs the benchmarks selected by --benchmark_filter; returns how many ran, or -1 on failure. */
long pbm_run_specified_benchmarks(void);
void pbm_shutdown(void);
/* All four in order; returns a process exit code (0 ok, 1 bad arguments or a failure). */
int pbm_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
