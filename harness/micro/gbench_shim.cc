/*
 * gbench_shim.cc - the C API of gbench_shim.h implemented over Google Benchmark 1.7.x.
 *
 * The opaque C handles are the C++ objects themselves: a pbm_bench * is a benchmark::internal::Benchmark *
 * (what RegisterBenchmark returns and the builder methods return again), a pbm_state * is the
 * benchmark::State & the library hands to the body. So no shim state exists beside Google Benchmark's own
 * and the per-iteration calls are one indirection away from the inline originals.
 *
 * Misuse: Google Benchmark answers a bad builder call (Arg after Args of another arity, MinTime together
 * with Iterations, a descending range, ...) with BM_CHECK, which aborts the process. The shim keeps a
 * small record per handle (the argument count and which of Iterations / MinTime is set, mirroring the
 * checks of benchmark_register.cc in 1.7.x) and refuses such a call with a message on stderr instead: the
 * call is ignored, the handle stays usable, the program goes on.
 *
 * Exceptions: Google Benchmark and the standard library can throw (std::bad_alloc from a std::string or a
 * std::vector, std::length_error, ...), and unwinding through C frames is undefined behaviour. Every
 * extern "C" entry point is therefore a try/catch that reports on stderr and returns a failure value.
 * The C body is called from a lambda; C code does not throw, so nothing crosses back either way.
 */
#include "gbench_shim.h"

#include <benchmark/benchmark.h>

#include <cstdarg>
#include <cstdio>
#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

benchmark::internal::Benchmark *B(pbm_bench *b) { return reinterpret_cast<benchmark::internal::Benchmark *>(b); }
pbm_bench *H(benchmark::internal::Benchmark *b) { return reinterpret_cast<pbm_bench *>(b); }
benchmark::State &S(pbm_state *st) { return *reinterpret_cast<benchmark::State *>(st); }
const benchmark::State &S(const pbm_state *st) { return *reinterpret_cast<const benchmark::State *>(st); }

void report(const char *where, const std::exception *e) {
    std::fprintf(stderr, "gbench_shim: %s: %s\n", where, e ? e->what() : "unknown C++ exception");
}

/* What the shim knows of a registered benchmark, to refuse calls Google Benchmark would abort on. */
struct Rec {
    int nargs = -1; /* arguments per run; -1 until an Arg/Args/Range/ArgName call fixes it */
    bool iterations = false;
    bool min_time = false;
};
std::mutex recs_mu; /* registration normally happens in one thread; cheap insurance if not */
std::unordered_map<const void *, Rec> recs;

/* Runs f (a builder call on a non-NULL handle) under recs_mu without letting an exception escape.
 * f receives the Benchmark and its Rec and returns NULL to proceed, or the reason to refuse the call. */
template <typename F>
pbm_bench *build(pbm_bench *b, const char *where, F f) noexcept {
    if (!b) return nullptr;
    try {
        std::lock_guard<std::mutex> lock(recs_mu);
        const char *refused = f(B(b), recs[b]);
        if (refused) std::fprintf(stderr, "gbench_shim: %s: %s; call ignored\n", where, refused);
    } catch (const std::exception &e) {
        report(where, &e);
    } catch (...) {
        report(where, nullptr);
    }
    return b;
}

/* The argument-count rule of Arg, Args, Range, DenseRange, ArgName(s): every run has the same arity. */
const char *arity(Rec &r, int n) {
    if (r.nargs != -1 && r.nargs != n) return "argument count differs from an earlier Arg/Args/Range/ArgName";
    r.nargs = n;
    return nullptr;
}

/* The same for calls on a running benchmark's state. */
template <typename F>
void guard(const char *where, F f) noexcept {
    try {
        f();
    } catch (const std::exception &e) {
        report(where, &e);
    } catch (...) {
        report(where, nullptr);
    }
}

benchmark::TimeUnit to_unit(pbm_unit u) {
    switch (u) {
    case PBM_US: return benchmark::kMicrosecond;
    case PBM_MS: return benchmark::kMillisecond;
    case PBM_S: return benchmark::kSecond;
    case PBM_NS:
    default: return benchmark::kNanosecond;
    }
}

benchmark::Counter::Flags to_flags(unsigned f) {
    int out = benchmark::Counter::kDefaults;
    if (f & PBM_COUNTER_RATE) out |= benchmark::Counter::kIsRate;
    if (f & PBM_COUNTER_AVG_THREADS) out |= benchmark::Counter::kAvgThreads;
    if (f & PBM_COUNTER_ITERATION_INVARIANT) out |= benchmark::Counter::kIsIterationInvariant;
    if (f & PBM_COUNTER_AVG_ITERATIONS) out |= benchmark::Counter::kAvgIterations;
    if (f & PBM_COUNTER_INVERT) out |= benchmark::Counter::kInvert;
    return static_cast<benchmark::Counter::Flags>(out);
}

} // namespace

extern "C" {

pbm_bench *pbm_register(const char *name, pbm_fn fn, void *ud) {
    if (!name || !fn) return nullptr;
    try {
        return H(benchmark::RegisterBenchmark(name, [fn, ud](benchmark::State &st) {
            fn(reinterpret_cast<pbm_state *>(&st), ud);
        }));
    } catch (const std::exception &e) {
        report("pbm_register", &e);
    } catch (...) {
        report("pbm_register", nullptr);
    }
    return nullptr;
}

pbm_bench *pbm_bench_arg(pbm_bench *b, int64_t x) {
    return build(b, "pbm_bench_arg", [&](benchmark::internal::Benchmark *p, Rec &r) -> const char * {
        if (const char *why = arity(r, 1)) return why;
        p->Arg(x);
        return nullptr;
    });
}

pbm_bench *pbm_bench_args(pbm_bench *b, const int64_t *xs, size_t n) {
    return build(b, "pbm_bench_args", [&](benchmark::internal::Benchmark *p, Rec &r) -> const char * {
        if (!xs || n == 0) return "no arguments";
        if (const char *why = arity(r, static_cast<int>(n))) return why;
        p->Args(std::vector<int64_t>(xs, xs + n));
        return nullptr;
    });
}

pbm_bench *pbm_bench_range(pbm_bench *b, int64_t lo, int64_t hi) {
    return build(b, "pbm_bench_range", [&](benchmark::internal::Benchmark *p, Rec &r) -> const char * {
        if (lo < 0 || hi < lo) return "a range needs 0 <= lo <= hi";
        if (const char *why = arity(r, 1)) return why;
        p->Range(lo, hi);
        return nullptr;
    });
}

pbm_bench *pbm_bench_range_multiplier(pbm_bench *b, int mult) {
    return build(b, "pbm_bench_range_multiplier", [&](benchmark::internal::Benchmark *p, Rec &) -> const char * {
        if (mult < 2) return "the multiplier must be at least 2";
        p->RangeMultiplier(mult);
        return nullptr;
    });
}

pbm_bench *pbm_bench_dense_range(pbm_bench *b, int64_t lo, int64_t hi, int step) {
    return build(b, "pbm_bench_dense_range", [&](benchmark::internal::Benchmark *p, Rec &r) -> const char * {
        if (hi < lo || step <= 0) return "a dense range needs lo <= hi and step > 0";
        if (const char *why = arity(r, 1)) return why;
        p->DenseRange(lo, hi, step);
        return nullptr;
    });
}

pbm_bench *pbm_bench_arg_name(pbm_bench *b, const char *name) {
    return build(b, "pbm_bench_arg_name", [&](benchmark::internal::Benchmark *p, Rec &r) -> const char * {
        if (!name) return "NULL name";
        if (const char *why = arity(r, 1)) return why;
        p->ArgName(name);
        return nullptr;
    });
}

pbm_bench *pbm_bench_arg_names(pbm_bench *b, const char *const *names, size_t n) {
    return build(b, "pbm_bench_arg_names", [&](benchmark::internal::Benchmark *p, Rec &r) -> const char * {
        if (!names || n == 0) return "no names";
        if (const char *why = arity(r, static_cast<int>(n))) return why;
        std::vector<std::string> v;
        for (size_t i = 0; i < n; i++) v.emplace_back(names[i] ? names[i] : "");
        p->ArgNames(v);
        return nullptr;
    });
}

pbm_bench *pbm_bench_use_real_time(pbm_bench *b) {
    return build(b, "pbm_bench_use_real_time", [](benchmark::internal::Benchmark *p, Rec &) -> const char * {
        p->UseRealTime();
        return nullptr;
    });
}

pbm_bench *pbm_bench_measure_process_cpu_time(pbm_bench *b) {
    return build(b, "pbm_bench_measure_process_cpu_time",
                 [](benchmark::internal::Benchmark *p, Rec &) -> const char * {
                     p->MeasureProcessCPUTime();
                     return nullptr;
                 });
}

pbm_bench *pbm_bench_unit(pbm_bench *b, pbm_unit unit) {
    return build(b, "pbm_bench_unit", [&](benchmark::internal::Benchmark *p, Rec &) -> const char * {
        p->Unit(to_unit(unit));
        return nullptr;
    });
}

pbm_bench *pbm_bench_iterations(pbm_bench *b, int64_t n) {
    return build(b, "pbm_bench_iterations", [&](benchmark::internal::Benchmark *p, Rec &r) -> const char * {
        if (n <= 0) return "the iteration count must be positive";
        if (r.min_time) return "Iterations and MinTime exclude each other";
        p->Iterations(n);
        r.iterations = true;
        return nullptr;
    });
}

pbm_bench *pbm_bench_min_time(pbm_bench *b, double seconds) {
    return build(b, "pbm_bench_min_time", [&](benchmark::internal::Benchmark *p, Rec &r) -> const char * {
        if (!(seconds > 0)) return "the minimum time must be positive";
        if (r.iterations) return "Iterations and MinTime exclude each other";
        p->MinTime(seconds);
        r.min_time = true;
        return nullptr;
    });
}

pbm_bench *pbm_bench_repetitions(pbm_bench *b, int n) {
    return build(b, "pbm_bench_repetitions", [&](benchmark::internal::Benchmark *p, Rec &) -> const char * {
        if (n <= 0) return "the repetition count must be positive";
        p->Repetitions(n);
        return nullptr;
    });
}

/* The loop and timer calls only touch counters and the clock in 1.7.x and cannot throw, so they are
 * forwarded without a try block: they are the per-iteration path. */
int pbm_keep_running(pbm_state *st) { return S(st).KeepRunning() ? 1 : 0; }

int pbm_keep_running_batch(pbm_state *st, int64_t n) {
    return S(st).KeepRunningBatch(static_cast<benchmark::IterationCount>(n)) ? 1 : 0;
}

void pbm_pause_timing(pbm_state *st) { S(st).PauseTiming(); }
void pbm_resume_timing(pbm_state *st) { S(st).ResumeTiming(); }

int64_t pbm_range(const pbm_state *st, size_t i) {
    /* State::range() only asserts i < the argument count (and the count is private), so the header makes
     * asking for an unregistered argument the caller's error, like in C++. */
    return S(st).range(i);
}

int64_t pbm_iterations(const pbm_state *st) { return static_cast<int64_t>(S(st).iterations()); }

void pbm_set_items_processed(pbm_state *st, int64_t items) {
    guard("pbm_set_items_processed", [&] { S(st).SetItemsProcessed(items); });
}

void pbm_set_bytes_processed(pbm_state *st, int64_t bytes) {
    guard("pbm_set_bytes_processed", [&] { S(st).SetBytesProcessed(bytes); });
}

void pbm_counter(pbm_state *st, const char *name, double value, unsigned flags) {
    if (!name) return;
    guard("pbm_counter", [&] {
        S(st).counters[name] = benchmark::Counter(
            value, to_flags(flags), (flags & PBM_COUNTER_1024) ? benchmark::Counter::kIs1024 : benchmark::Counter::kIs1000);
    });
}

void pbm_set_label(pbm_state *st, const char *label) {
    guard("pbm_set_label", [&] { S(st).SetLabel(label ? label : ""); });
}

void pbm_skip_with_error(pbm_state *st, const char *msg) {
    guard("pbm_skip_with_error", [&] { S(st).SkipWithError(msg && *msg ? msg : "error"); });
}

void pbm_skip_with_errorf(pbm_state *st, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt ? fmt : "error", ap);
    va_end(ap);
    pbm_skip_with_error(st, buf);
}

int pbm_error_occurred(const pbm_state *st) { return S(st).error_occurred() ? 1 : 0; }

int pbm_initialize(int *argc, char **argv) {
    try {
        benchmark::Initialize(argc, argv);
        return 0;
    } catch (const std::exception &e) {
        report("pbm_initialize", &e);
    } catch (...) {
        report("pbm_initialize", nullptr);
    }
    return -1;
}

int pbm_report_unrecognized_arguments(int argc, char **argv) {
    try {
        return benchmark::ReportUnrecognizedArguments(argc, argv) ? 1 : 0;
    } catch (const std::exception &e) {
        report("pbm_report_unrecognized_arguments", &e);
    } catch (...) {
        report("pbm_report_unrecognized_arguments", nullptr);
    }
    return 1;
}

long pbm_run_specified_benchmarks(void) {
    try {
        return static_cast<long>(benchmark::RunSpecifiedBenchmarks());
    } catch (const std::exception &e) {
        report("pbm_run_specified_benchmarks", &e);
    } catch (...) {
        report("pbm_run_specified_benchmarks", nullptr);
    }
    return -1;
}

void pbm_shutdown(void) {
    guard("pbm_shutdown", [] { benchmark::Shutdown(); });
}

int pbm_main(int argc, char **argv) {
    if (pbm_initialize(&argc, argv) < 0) return 1;
    if (pbm_report_unrecognized_arguments(argc, argv)) return 1;
    long ran = pbm_run_specified_benchmarks();
    pbm_shutdown();
    return ran < 0 ? 1 : 0;
}

} // extern "C"
