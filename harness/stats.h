/*
 * stats.h - the statistics behind poolbench's verdicts: summaries of raw samples, the Mann-Whitney U
 * test, a bootstrap confidence interval for the relative change of medians, the compare verdict, and
 * E-Divisive means change-point detection over a history of runs.
 *
 * Everything here is pure computation: no I/O, no global state, no clock. Every random choice comes
 * from a PRNG seeded by the caller, so the same inputs and seed always give the same answer (a CI
 * verdict that flips between two identical invocations would be worse than no verdict).
 *
 * Conventions:
 *  - Samples are `const double *x, size_t n`; inputs are never modified (functions that need sorted
 *    data sort a private copy). Values must be finite; int-returning functions check and return
 *    PBS_EINVAL on NaN/Inf, double-returning helpers return NAN on empty input.
 *  - Functions returning int return PBS_OK (0) or a negative pbs_status.
 *  - Samples are times: larger = slower. A positive relative change means the new build is slower.
 */
#ifndef POOLBENCH_HARNESS_STATS_H
#define POOLBENCH_HARNESS_STATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes -------------------------------------------------------------------------------- */

/* The statistics' own range, -30001..-30099, apart from the library's and the harness's (model.h lists
 * the ranges; pbh_error() maps these onto the harness's codes). */
typedef enum pbs_status {
    PBS_OK = 0,
    PBS_EINVAL = -30001,  /* bad argument: NULL, n == 0 where data is needed, non-finite value, bad option */
    PBS_ENOMEM = -30002,  /* allocation failed */
    PBS_EDOMAIN = -30003, /* data outside the method's domain (e.g. a base median <= 0 for a ratio) */
} pbs_status;

/* Static English text for a pbs_status ("ok", "invalid argument", ...). */
const char *pbs_strerror(int status);

/* ---- defaults (documented in one place so CLI help, docs and code agree) -------------------------- */

#define PBS_DEFAULT_ALPHA 0.01         /* significance level for compare */
#define PBS_DEFAULT_THRESHOLD 0.05     /* noise threshold: |relative change of medians| must exceed 5 % */
#define PBS_DEFAULT_MIN_SAMPLES 5      /* per side; at alpha 0.01 the exact test needs >= 5 to ever reject */
#define PBS_DEFAULT_RESAMPLES 2000u    /* bootstrap resamples */
#define PBS_DEFAULT_CONFIDENCE 0.95    /* bootstrap percentile interval */
#define PBS_DEFAULT_SEED UINT64_C(0x706f6f6c62656e63) /* "poolbenc" */
#define PBS_DEFAULT_CP_PVALUE 0.05     /* E-Divisive permutation-test threshold */
#define PBS_DEFAULT_CP_PERMUTATIONS 199u
#define PBS_DEFAULT_CP_MIN_SEGMENT 3

/* Scale factor that makes the MAD a consistent estimator of sigma for normal data (1 / Phi^-1(3/4)). */
#define PBS_MAD_NORMAL_SCALE 1.482602218505602

/* ---- deterministic PRNG (xoshiro256**, seeded through splitmix64) -------------------------------- */

typedef struct pbs_rng {
    uint64_t s[4];
} pbs_rng;

/* Seed the generator; any 64-bit seed (including 0) gives a valid, distinct stream. */
void pbs_rng_seed(pbs_rng *rng, uint64_t seed);
/* Next 64 uniformly distributed bits. */
uint64_t pbs_rng_next(pbs_rng *rng);
/* Uniform integer in [0, bound), without modulo bias; bound must be > 0. */
uint64_t pbs_rng_below(pbs_rng *rng, uint64_t bound);

/* ---- summary statistics ---------------------------------------------------------------------------- */

/* Arithmetic mean; NAN if n == 0. */
double pbs_mean(const double *x, size_t n);
/* Sample standard deviation (n - 1 denominator, numpy ddof=1); 0 if n == 1, NAN if n == 0. */
double pbs_stddev(const double *x, size_t n);
/* Smallest / largest value; NAN if n == 0. */
double pbs_min(const double *x, size_t n);
double pbs_max(const double *x, size_t n);
/* Quantile q in [0, 1], Hyndman-Fan type 7 (linear interpolation, numpy's default and R's default);
 * NAN if n == 0, q outside [0, 1], or the private copy cannot be allocated. */
double pbs_quantile(const double *x, size_t n, double q);
/* Same, on data already sorted ascending: no allocation, O(1). */
double pbs_quantile_sorted(const double *sorted, size_t n, double q);
/* Median (= type 7 quantile at 0.5). */
double pbs_median(const double *x, size_t n);
/* Median absolute deviation from the median, unscaled (multiply by PBS_MAD_NORMAL_SCALE to estimate
 * sigma); NAN if n == 0 or on allocation failure. */
double pbs_mad(const double *x, size_t n);

/* Everything a results table shows about one case, computed in one pass over one sorted copy. */
typedef struct pbs_summary {
    size_t n;
    double min, max;
    double mean;
    double stddev; /* sample (n - 1) standard deviation; 0 when n == 1 */
    double median;
    double q1, q3; /* type 7 quantiles at 0.25 and 0.75 */
    double mad;    /* unscaled median absolute deviation */
    double cv;     /* stddev / mean; NAN when mean == 0 */
} pbs_summary;

/* Fill *out for x[0..n). Returns PBS_OK, PBS_EINVAL (NULL, n == 0, non-finite value) or PBS_ENOMEM. */
int pbs_summarize(const double *x, size_t n, pbs_summary *out);

/* ---- Mann-Whitney U test (two-sided) ---------------------------------------------------------------- */

typedef enum pbs_mwu_method {
    PBS_MWU_AUTO = 0,   /* request only: choose like scipy 1.10 'auto' (see pbs_mann_whitney) */
    PBS_MWU_EXACT,      /* exact null distribution of U (scipy method='exact') */
    PBS_MWU_ASYMPTOTIC, /* normal approximation, tie + continuity correction (scipy 'asymptotic') */
} pbs_mwu_method;

typedef struct pbs_mwu_result {
    double u1;             /* U of the first sample: R1 - n1(n1+1)/2 (scipy's returned statistic) */
    double u2;             /* n1*n2 - u1 */
    double p;              /* two-sided p-value, clipped to [0, 1] */
    double z;              /* z score for the asymptotic method (NAN for exact) */
    pbs_mwu_method method; /* method actually used: PBS_MWU_EXACT or PBS_MWU_ASYMPTOTIC */
    int has_ties;          /* 1 if the pooled samples contain ties */
    size_t n1, n2;
} pbs_mwu_result;

/* Two-sided Mann-Whitney U test of x[0..n1) against y[0..n2), matching
 * scipy.stats.mannwhitneyu(x, y, alternative='two-sided', use_continuity=True, method=...).
 *  AUTO: exact when min(n1, n2) <= 8 and there are no ties, else asymptotic (scipy 1.10's rule, which
 *        is what Debian 12 ships and what the reference data was produced with).
 *  EXACT: p = 2 * P(U >= max(U1, U2)) under H0, from integer counts of the exact distribution. Ties are
 *        ignored as scipy does (the U is floored), so prefer AUTO. If the exact counts would not fit in
 *        64 bits (roughly n1 + n2 > 67 with both sides large) the asymptotic method is used instead and
 *        result->method says so.
 *  ASYMPTOTIC: z = (max(U1,U2) - n1 n2 / 2 - 0.5) / sigma with the tie-corrected sigma; p = 2 sf(z).
 *        If every value is tied (sigma == 0) scipy returns NaN; we return p = 1 (nothing distinguishes
 *        the samples), with z = NAN.
 * Returns PBS_OK, PBS_EINVAL (NULL, n1 == 0, n2 == 0, non-finite value) or PBS_ENOMEM. */
int pbs_mann_whitney(const double *x, size_t n1, const double *y, size_t n2, pbs_mwu_method method,
                     pbs_mwu_result *result);

/* ---- bootstrap confidence interval for the relative change of medians --------------------------------- */

typedef struct pbs_ci {
    double estimate;   /* median(new) / median(base) - 1, on the observed samples */
    double lo, hi;     /* percentile interval bounds (type 7 quantiles of the bootstrap distribution) */
    double confidence; /* e.g. 0.95 */
    unsigned resamples;
    uint64_t seed;
} pbs_ci;

/* Percentile bootstrap: for each of `resamples` rounds, resample base and new independently with
 * replacement (same sizes), take the ratio of medians minus 1; the interval is the (1-c)/2 and (1+c)/2
 * quantiles of those values. Deterministic for a given seed. resamples == 0 means the default (2000);
 * confidence must be in (0, 1). Every base value must be > 0 (times are; a ratio over a zero or negative
 * base is meaningless), else PBS_EDOMAIN. Returns PBS_OK, PBS_EINVAL, PBS_EDOMAIN or PBS_ENOMEM. */
int pbs_bootstrap_median_change(const double *base, size_t nb, const double *new_, size_t nn,
                                unsigned resamples, double confidence, uint64_t seed, pbs_ci *out);

/* ---- the compare verdict ------------------------------------------------------------------------- */

typedef enum pbs_verdict {
    PBS_VERDICT_NO_CHANGE = 0,     /* p >= alpha: no evidence of a difference */
    PBS_VERDICT_WITHIN_NOISE,      /* significant, but the CI does not lie beyond +-threshold */
    PBS_VERDICT_REGRESSION,        /* p < alpha and CI lower bound > +threshold (new is slower) */
    PBS_VERDICT_IMPROVEMENT,       /* p < alpha and CI upper bound < -threshold (new is faster) */
    PBS_VERDICT_TOO_FEW_SAMPLES,   /* either side has fewer than min_samples samples */
} pbs_verdict;

/* Lower-case stable name for output and JSON: "no_change", "within_noise", "regression",
 * "improvement", "too_few_samples" ("unknown" for anything else). */
const char *pbs_verdict_name(pbs_verdict v);

typedef struct pbs_compare_opts {
    double alpha;       /* significance level, default PBS_DEFAULT_ALPHA */
    double threshold;   /* noise threshold as a fraction (0.05 = 5 %), default PBS_DEFAULT_THRESHOLD */
    size_t min_samples; /* per side, default PBS_DEFAULT_MIN_SAMPLES */
    unsigned resamples; /* bootstrap resamples, default PBS_DEFAULT_RESAMPLES */
    double confidence;  /* bootstrap confidence, default PBS_DEFAULT_CONFIDENCE */
    uint64_t seed;      /* bootstrap seed, default PBS_DEFAULT_SEED */
} pbs_compare_opts;

/* Fill *opts with the defaults above. */
void pbs_compare_opts_default(pbs_compare_opts *opts);

typedef struct pbs_comparison {
    pbs_verdict verdict;
    size_t n_base, n_new;
    double base_median, new_median;
    double change;      /* new_median / base_median - 1 (same as ci.estimate) */
    pbs_mwu_result mwu; /* valid unless verdict == TOO_FEW_SAMPLES */
    pbs_ci ci;          /* valid unless verdict == TOO_FEW_SAMPLES */
} pbs_comparison;

/* The decision rule alone, for callers that already have p and the interval. */
pbs_verdict pbs_classify(double p, double ci_lo, double ci_hi, double alpha, double threshold);

/* Compare base against new (times, larger = slower): Mann-Whitney (AUTO) + bootstrap CI + pbs_classify.
 * opts may be NULL for the defaults. Too few samples is a verdict, not an error: it returns PBS_OK with
 * verdict TOO_FEW_SAMPLES and the medians filled in where n > 0. Returns PBS_OK, PBS_EINVAL, PBS_EDOMAIN
 * (a base value <= 0) or PBS_ENOMEM. */
int pbs_compare(const double *base, size_t nb, const double *new_, size_t nn,
                const pbs_compare_opts *opts, pbs_comparison *out);

/* ---- E-Divisive means change-point detection ------------------------------------------------------- */

typedef struct pbs_cp_opts {
    double pvalue;         /* accept a change point when its permutation p-value <= this; default 0.05 */
    unsigned permutations; /* permutation-test rounds, default 199 (p resolution 1/200) */
    size_t min_segment;    /* minimum points in every segment, default 3 (must be >= 2) */
    uint64_t seed;         /* permutation PRNG seed, default PBS_DEFAULT_SEED */
} pbs_cp_opts;

/* Fill *opts with the defaults above. */
void pbs_cp_opts_default(pbs_cp_opts *opts);

typedef struct pbs_change_point {
    size_t index;       /* first index of the new segment: x[index] is the first value after the step */
    double pvalue;      /* permutation p-value when it was accepted */
    double stat;        /* the divisive energy statistic q-hat at the split */
    double mean_before; /* mean of the segment ending at index (from the previous change point or 0) */
    double mean_after;  /* mean of the segment starting at index (to the next change point or n) */
    double rel_change;  /* mean_after / mean_before - 1 (NAN if mean_before == 0) */
} pbs_change_point;

/* E-Divisive means (Matteson & James 2014) with alpha = 1 (absolute differences), the variant used by
 * MongoDB's signal-processing-algorithms and Apache Otava: each pass looks in every current segment for
 * the split tau maximising q-hat(tau) = m k / (m + k) * (2/(m k) sum|x_i - y_j| - sum_{i<i'}|x_i - x_i'|
 * / C(m,2) - sum_{j<j'}|y_j - y_j'| / C(k,2)), with left part x (m points) and right part y (k points) of
 * that segment; the best split over all segments is tested by permuting the values within each segment
 * `permutations` times (p = (1 + #{permuted max >= observed}) / (permutations + 1)); it is accepted if
 * p <= opts->pvalue and the search goes on, else the search stops. O(n^2) per pass and permutation.
 * opts may be NULL for the defaults. Writes up to `cap` change points, sorted by index, to out (out may
 * be NULL when cap == 0) and the total found to *count (which may exceed cap; n / min_segment bounds it).
 * Series shorter than 2 * min_segment yield no change points. Returns PBS_OK, PBS_EINVAL or PBS_ENOMEM. */
int pbs_edivisive(const double *x, size_t n, const pbs_cp_opts *opts, pbs_change_point *out, size_t cap,
                  size_t *count);

#ifdef __cplusplus
}
#endif

#endif /* POOLBENCH_HARNESS_STATS_H */
