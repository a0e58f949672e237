/*
 * stats.c - the statistics behind poolbench's verdicts (API and conventions in stats.h).
 *
 * Why these methods: benchmark times are not normal (right-skewed, multi-modal when the scheduler
 * interferes, with outliers), so the harness compares runs with rank-based and resampling methods that
 * assume nothing about the shape: the Mann-Whitney U test for "is there a difference at all", and a
 * percentile bootstrap of the relative change of medians for "how big is it". A regression needs both,
 * so a tiny but significant shift on a quiet machine, or a large but noisy one, is not flagged. Over
 * history, E-Divisive means finds where the level of a series of per-run values changes, again without
 * distributional assumptions (energy statistic with alpha = 1, permutation significance test).
 *
 * The Mann-Whitney p-values reproduce scipy 1.10's mannwhitneyu (the version Debian 12 ships), checked
 * by tests/test_stats.c against reference values produced once by scripts/gen-stats-reference.
 * Everything is deterministic: randomness only comes from a caller-seeded xoshiro256** generator.
 */
#include "stats.h"

#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- status text ------------------------------------------------------------------------------------ */

const char *pbs_strerror(int status)
{
    switch (status) {
    case PBS_OK: return "ok";
    case PBS_EINVAL: return "invalid argument";
    case PBS_ENOMEM: return "out of memory";
    case PBS_EDOMAIN: return "data outside the method's domain";
    default: return "unknown statistics error";
    }
}

/* ---- PRNG ------------------------------------------------------------------------------------------- */

/* splitmix64 (common.h) turns any seed, even 0 or a small counter, into well-mixed state words;
 * xoshiro256** must not start from an all-zero state, and splitmix64 cannot produce four zero words in a
 * row. */
void pbs_rng_seed(pbs_rng *rng, uint64_t seed)
{
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = pbs_splitmix64(&sm);
}

static inline uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t pbs_rng_next(pbs_rng *rng)
{
    uint64_t *s = rng->s;
    const uint64_t result = rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

uint64_t pbs_rng_below(pbs_rng *rng, uint64_t bound)
{
    if (bound <= 1)
        return 0;
    /* Reject the lowest (2^64 mod bound) values so every residue is equally likely: a plain modulo would
     * favour small indices, which would bias bootstrap resamples toward the first samples. */
    const uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t r = pbs_rng_next(rng);
        if (r >= threshold)
            return r % bound;
    }
}

/* ---- helpers ---------------------------------------------------------------------------------------- */

static int all_finite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorted private copy, or NULL on allocation failure (n > 0 assumed). */
static double *sorted_copy(const double *x, size_t n)
{
    double *s = malloc(n * sizeof *s);
    if (!s)
        return NULL;
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    return s;
}

/* numpy's lerp (numpy/lib/function_base.py _lerp): interpolate from the nearer end, so that the result
 * matches numpy.quantile to the last bit in most cases and is exact at t = 0 and t = 1. */
static double lerp(double a, double b, double t)
{
    double d = b - a;
    return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

/* Selection (Hoare partition with median-of-three pivot): afterwards a[k] holds the k-th smallest value,
 * everything before it is <= a[k] and everything after it is >= a[k]. Expected O(n); used in the bootstrap
 * loop where sorting every resample would dominate the cost. */
static void select_kth(double *a, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (hi > lo) {
        size_t mid = lo + (hi - lo) / 2;
        /* order a[lo], a[mid], a[hi] so the pivot is their median */
        if (a[mid] < a[lo]) { double t = a[mid]; a[mid] = a[lo]; a[lo] = t; }
        if (a[hi] < a[lo]) { double t = a[hi]; a[hi] = a[lo]; a[lo] = t; }
        if (a[hi] < a[mid]) { double t = a[hi]; a[hi] = a[mid]; a[mid] = t; }
        double pivot = a[mid];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                double t = a[i]; a[i] = a[j]; a[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        /* now [lo, j] <= pivot <= [i, hi], and anything strictly between j and i equals pivot */
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

/* Median of a scratch array (reordered), type 7: the mean of the two middle values for even n. */
static double median_inplace(double *a, size_t n)
{
    size_t k = (n - 1) / 2;
    select_kth(a, n, k);
    if (n % 2)
        return a[k];
    double next = a[k + 1];
    for (size_t i = k + 2; i < n; i++)
        if (a[i] < next)
            next = a[i];
    return lerp(a[k], next, 0.5);
}

/* ---- summary statistics --------------------------------------------------------------------------------- */

double pbs_mean(const double *x, size_t n)
{
    if (!x || n == 0)
        return NAN;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    return sum / (double)n;
}

double pbs_stddev(const double *x, size_t n)
{
    if (!x || n == 0)
        return NAN;
    if (n == 1)
        return 0.0;
    /* Two passes (mean, then squared deviations) rather than sum-of-squares: times cluster tightly
     * around a large mean, exactly where the one-pass formula cancels catastrophically. */
    double m = pbs_mean(x, n), ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - m) * (x[i] - m);
    return sqrt(ss / (double)(n - 1));
}

double pbs_min(const double *x, size_t n)
{
    if (!x || n == 0)
        return NAN;
    double m = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] < m)
            m = x[i];
    return m;
}

double pbs_max(const double *x, size_t n)
{
    if (!x || n == 0)
        return NAN;
    double m = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > m)
            m = x[i];
    return m;
}

double pbs_quantile_sorted(const double *sorted, size_t n, double q)
{
    if (!sorted || n == 0 || !(q >= 0.0 && q <= 1.0))
        return NAN;
    /* Type 7: h = (n - 1) q, interpolate between the order statistics around h. */
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo >= n - 1)
        return sorted[n - 1];
    return lerp(sorted[lo], sorted[lo + 1], h - (double)lo);
}

double pbs_quantile(const double *x, size_t n, double q)
{
    if (!x || n == 0 || !(q >= 0.0 && q <= 1.0))
        return NAN;
    double *s = sorted_copy(x, n);
    if (!s)
        return NAN;
    double r = pbs_quantile_sorted(s, n, q);
    free(s);
    return r;
}

double pbs_median(const double *x, size_t n)
{
    return pbs_quantile(x, n, 0.5);
}

/* MAD from sorted data, using `scratch` (n doubles) for the deviations. */
static double mad_sorted(const double *s, size_t n, double med, double *scratch)
{
    for (size_t i = 0; i < n; i++)
        scratch[i] = fabs(s[i] - med);
    qsort(scratch, n, sizeof *scratch, cmp_double);
    return pbs_quantile_sorted(scratch, n, 0.5);
}

double pbs_mad(const double *x, size_t n)
{
    if (!x || n == 0)
        return NAN;
    double *s = malloc(2 * n * sizeof *s);
    if (!s)
        return NAN;
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double r = mad_sorted(s, n, pbs_quantile_sorted(s, n, 0.5), s + n);
    free(s);
    return r;
}

int pbs_summarize(const double *x, size_t n, pbs_summary *out)
{
    if (!x || n == 0 || !out || !all_finite(x, n))
        return PBS_EINVAL;
    double *s = malloc(2 * n * sizeof *s);
    if (!s)
        return PBS_ENOMEM;
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    out->n = n;
    out->min = s[0];
    out->max = s[n - 1];
    /* mean and stddev from the caller's order, so they agree with pbs_mean/pbs_stddev bit for bit */
    out->mean = pbs_mean(x, n);
    out->stddev = pbs_stddev(x, n);
    out->median = pbs_quantile_sorted(s, n, 0.5);
    out->q1 = pbs_quantile_sorted(s, n, 0.25);
    out->q3 = pbs_quantile_sorted(s, n, 0.75);
    out->mad = mad_sorted(s, n, out->median, s + n);
    out->cv = out->mean != 0.0 ? out->stddev / out->mean : NAN;
    free(s);
    return PBS_OK;
}

/* ---- Mann-Whitney U ---------------------------------------------------------------------------------- */

typedef struct ranked {
    double v;
    int from_x;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    double x = ((const ranked *)a)->v, y = ((const ranked *)b)->v;
    return (x > y) - (x < y);
}

/* Exact two-sided p-value 2 * P(U >= u) for sample sizes m, n without ties, or -1 when the counts would
 * not fit in 64 bits. The number of arrangements with U = k is the coefficient of q^k in the Gaussian
 * binomial [m+n choose m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i). We build it by multiplying by
 * (1 - q^(n+i)) and dividing by (1 - q^i) (a running prefix sum), in uint64 arithmetic modulo 2^64 and
 * truncated at degree m n: both are ring operations on power series, so the final coefficients (all
 * <= C(m+n, m) < 2^64) are exact even though intermediate values wrap. Integer counts make the tail sum
 * exact, which floating-point recursions (scipy's) only approximate. */
static double mwu_exact_p(size_t m, size_t n, double u)
{
    if (m > n) {
        size_t t = m;
        m = n;
        n = t;
    }
    /* C(m+n, m) in floating point, to decide whether exact integer counts are possible */
    double binom = 1.0;
    for (size_t i = 1; i <= m; i++)
        binom = binom * (double)(n + i) / (double)i;
    if (binom > 1.8e19)
        return -1.0;
    size_t deg = m * n;
    uint64_t *c = calloc(deg + 1, sizeof *c);
    if (!c)
        return -2.0;
    c[0] = 1;
    for (size_t i = 1; i <= m; i++) {
        size_t step = n + i;
        for (size_t k = deg; k >= step; k--) /* times (1 - q^step), high to low so c[k-step] is old */
            c[k] -= c[k - step];
        for (size_t k = i; k <= deg; k++)    /* divided by (1 - q^i): c[k] += c[k-i], low to high */
            c[k] += c[k - i];
    }
    uint64_t total = 0, tail = 0;
    /* U is an integer without ties; scipy floors it when forced to 'exact' with ties, so do we. */
    double uf = floor(u);
    size_t ku = uf <= 0 ? 0 : (uf >= (double)deg ? deg : (size_t)uf);
    for (size_t k = 0; k <= deg; k++) {
        total += c[k];
        if (k >= ku)
            tail += c[k];
    }
    free(c);
    double p = 2.0 * ((double)tail / (double)total);
    return p > 1.0 ? 1.0 : p;
}

int pbs_mann_whitney(const double *x, size_t n1, const double *y, size_t n2, pbs_mwu_method method,
                     pbs_mwu_result *result)
{
    if (!x || !y || !result || n1 == 0 || n2 == 0 || !all_finite(x, n1) || !all_finite(y, n2))
        return PBS_EINVAL;
    if (method != PBS_MWU_AUTO && method != PBS_MWU_EXACT && method != PBS_MWU_ASYMPTOTIC)
        return PBS_EINVAL;
    size_t n = n1 + n2;
    ranked *r = malloc(n * sizeof *r);
    if (!r)
        return PBS_ENOMEM;
    for (size_t i = 0; i < n1; i++)
        r[i] = (ranked){x[i], 1};
    for (size_t i = 0; i < n2; i++)
        r[n1 + i] = (ranked){y[i], 0};
    qsort(r, n, sizeof *r, cmp_ranked);

    /* Average ranks over tie groups (scipy.stats.rankdata 'average'); collect sum(t^3 - t) for the
     * variance correction. Ranks are multiples of 0.5, so R1 is exact in double. */
    double r1 = 0.0, tie_term = 0.0;
    int has_ties = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && r[j].v == r[i].v)
            j++;
        double t = (double)(j - i);
        double avg_rank = ((double)(i + 1) + (double)j) / 2.0;
        for (size_t k = i; k < j; k++)
            if (r[k].from_x)
                r1 += avg_rank;
        if (j - i > 1) {
            has_ties = 1;
            tie_term += t * t * t - t;
        }
        i = j;
    }
    free(r);

    double dn1 = (double)n1, dn2 = (double)n2, dn = (double)n;
    double u1 = r1 - dn1 * (dn1 + 1.0) / 2.0;
    double u2 = dn1 * dn2 - u1;
    double u = u1 > u2 ? u1 : u2; /* two-sided: the larger U, sf doubled */

    if (method == PBS_MWU_AUTO)
        method = ((n1 <= 8 || n2 <= 8) && !has_ties) ? PBS_MWU_EXACT : PBS_MWU_ASYMPTOTIC;

    result->u1 = u1;
    result->u2 = u2;
    result->n1 = n1;
    result->n2 = n2;
    result->has_ties = has_ties;
    result->z = NAN;

    if (method == PBS_MWU_EXACT) {
        double p = mwu_exact_p(n1, n2, u);
        if (p == -2.0)
            return PBS_ENOMEM;
        if (p >= 0.0) {
            result->p = p;
            result->method = PBS_MWU_EXACT;
            return PBS_OK;
        }
        /* counts too large for 64 bits: the normal approximation is excellent at such sizes anyway */
    }

    double mu = dn1 * dn2 / 2.0;
    double s = sqrt(dn1 * dn2 / 12.0 * ((dn + 1.0) - tie_term / (dn * (dn - 1.0))));
    result->method = PBS_MWU_ASYMPTOTIC;
    if (!(s > 0.0)) {
        /* every value tied (or n == 2 with a tie): no ordering information; scipy yields NaN here */
        result->p = 1.0;
        return PBS_OK;
    }
    double z = (u - mu - 0.5) / s; /* continuity correction toward the mean */
    double p = erfc(z / M_SQRT2);  /* = 2 * norm.sf(z) */
    result->z = z;
    result->p = p > 1.0 ? 1.0 : (p < 0.0 ? 0.0 : p);
    return PBS_OK;
}

/* ---- bootstrap ------------------------------------------------------------------------------------- */

int pbs_bootstrap_median_change(const double *base, size_t nb, const double *new_, size_t nn,
                                unsigned resamples, double confidence, uint64_t seed, pbs_ci *out)
{
    if (!base || !new_ || !out || nb == 0 || nn == 0 || !all_finite(base, nb) || !all_finite(new_, nn))
        return PBS_EINVAL;
    if (!(confidence > 0.0 && confidence < 1.0))
        return PBS_EINVAL;
    for (size_t i = 0; i < nb; i++)
        if (!(base[i] > 0.0))
            return PBS_EDOMAIN;
    if (resamples == 0)
        resamples = PBS_DEFAULT_RESAMPLES;

    size_t scratch_n = nb > nn ? nb : nn;
    double *scratch = malloc(scratch_n * sizeof *scratch);
    double *changes = malloc((size_t)resamples * sizeof *changes);
    if (!scratch || !changes) {
        free(scratch);
        free(changes);
        return PBS_ENOMEM;
    }

    memcpy(scratch, base, nb * sizeof *scratch);
    double base_med = median_inplace(scratch, nb);
    memcpy(scratch, new_, nn * sizeof *scratch);
    double new_med = median_inplace(scratch, nn);

    /* Resample each side independently (the runs are independent), base first then new in every round,
     * so the sequence of draws - and thus the interval - depends only on the seed and the inputs. */
    pbs_rng rng;
    pbs_rng_seed(&rng, seed);
    for (unsigned b = 0; b < resamples; b++) {
        for (size_t i = 0; i < nb; i++)
            scratch[i] = base[pbs_rng_below(&rng, nb)];
        double mb = median_inplace(scratch, nb);
        for (size_t i = 0; i < nn; i++)
            scratch[i] = new_[pbs_rng_below(&rng, nn)];
        double mn = median_inplace(scratch, nn);
        changes[b] = mn / mb - 1.0; /* mb > 0: every base value is */
    }
    qsort(changes, resamples, sizeof *changes, cmp_double);

    out->estimate = new_med / base_med - 1.0;
    out->lo = pbs_quantile_sorted(changes, resamples, (1.0 - confidence) / 2.0);
    out->hi = pbs_quantile_sorted(changes, resamples, (1.0 + confidence) / 2.0);
    out->confidence = confidence;
    out->resamples = resamples;
    out->seed = seed;
    free(scratch);
    free(changes);
    return PBS_OK;
}

/* ---- verdict ---------------------------------------------------------------------------------------- */

const char *pbs_verdict_name(pbs_verdict v)
{
    switch (v) {
    case PBS_VERDICT_NO_CHANGE: return "no_change";
    case PBS_VERDICT_WITHIN_NOISE: return "within_noise";
    case PBS_VERDICT_REGRESSION: return "regression";
    case PBS_VERDICT_IMPROVEMENT: return "improvement";
    case PBS_VERDICT_TOO_FEW_SAMPLES: return "too_few_samples";
    }
    return "unknown";
}

void pbs_compare_opts_default(pbs_compare_opts *opts)
{
    opts->alpha = PBS_DEFAULT_ALPHA;
    opts->threshold = PBS_DEFAULT_THRESHOLD;
    opts->min_samples = PBS_DEFAULT_MIN_SAMPLES;
    opts->resamples = PBS_DEFAULT_RESAMPLES;
    opts->confidence = PBS_DEFAULT_CONFIDENCE;
    opts->seed = PBS_DEFAULT_SEED;
}

pbs_verdict pbs_classify(double p, double ci_lo, double ci_hi, double alpha, double threshold)
{
    /* Significance alone is not enough: on a quiet machine a 0.5 % shift is "significant" and nobody
     * cares. The whole interval must clear the threshold, so a verdict means "at least threshold worse,
     * with the stated confidence". The comparisons are written so that NaN falls to the safe side. */
    if (!(p < alpha))
        return PBS_VERDICT_NO_CHANGE;
    if (ci_lo > threshold)
        return PBS_VERDICT_REGRESSION;
    if (ci_hi < -threshold)
        return PBS_VERDICT_IMPROVEMENT;
    return PBS_VERDICT_WITHIN_NOISE;
}

int pbs_compare(const double *base, size_t nb, const double *new_, size_t nn,
                const pbs_compare_opts *opts, pbs_comparison *out)
{
    pbs_compare_opts defaults;
    if (!opts) {
        pbs_compare_opts_default(&defaults);
        opts = &defaults;
    }
    if (!out || (nb && !base) || (nn && !new_) || !all_finite(base, nb) || !all_finite(new_, nn))
        return PBS_EINVAL;
    if (!(opts->alpha > 0.0 && opts->alpha <= 1.0) || !(opts->threshold >= 0.0) ||
        !(opts->confidence > 0.0 && opts->confidence < 1.0))
        return PBS_EINVAL;

    memset(out, 0, sizeof *out);
    out->n_base = nb;
    out->n_new = nn;
    out->base_median = nb ? pbs_median(base, nb) : NAN;
    out->new_median = nn ? pbs_median(new_, nn) : NAN;
    out->change = (nb && nn) ? out->new_median / out->base_median - 1.0 : NAN;
    out->mwu.p = NAN;
    out->mwu.z = NAN;
    out->ci.estimate = out->ci.lo = out->ci.hi = NAN;

    size_t min_samples = opts->min_samples ? opts->min_samples : 1;
    if (nb < min_samples || nn < min_samples) {
        out->verdict = PBS_VERDICT_TOO_FEW_SAMPLES;
        return PBS_OK;
    }
    int rc = pbs_mann_whitney(base, nb, new_, nn, PBS_MWU_AUTO, &out->mwu);
    if (rc != PBS_OK)
        return rc;
    rc = pbs_bootstrap_median_change(base, nb, new_, nn, opts->resamples, opts->confidence, opts->seed,
                                     &out->ci);
    if (rc != PBS_OK)
        return rc;
    out->change = out->ci.estimate;
    out->verdict = pbs_classify(out->mwu.p, out->ci.lo, out->ci.hi, opts->alpha, opts->threshold);
    return PBS_OK;
}

/* ---- E-Divisive means ---------------------------------------------------------------------------------- */

void pbs_cp_opts_default(pbs_cp_opts *opts)
{
    opts->pvalue = PBS_DEFAULT_CP_PVALUE;
    opts->permutations = PBS_DEFAULT_CP_PERMUTATIONS;
    opts->min_segment = PBS_DEFAULT_CP_MIN_SEGMENT;
    opts->seed = PBS_DEFAULT_SEED;
}

/* Best split of v[a, b): the tau in [a + ms, b - ms] maximising q-hat, or 0 (and *best_q = -INF) when the
 * segment is too short. Sums of |v_i - v_j| within the left part, within the right part and across are
 * updated in O(b - a) as tau moves one point from right to left, so one segment costs O((b - a)^2)
 * instead of the O((b - a)^3) of recomputing every split from scratch. */
static size_t best_split(const double *v, size_t a, size_t b, size_t ms, double *best_q)
{
    *best_q = -INFINITY;
    if (b - a < 2 * ms)
        return 0;
    size_t tau = a + ms;
    double wl = 0.0, wr = 0.0, cross = 0.0;
    for (size_t i = a; i < b; i++)
        for (size_t j = i + 1; j < b; j++) {
            double d = fabs(v[i] - v[j]);
            if (j < tau)
                wl += d;
            else if (i >= tau)
                wr += d;
            else
                cross += d;
        }
    size_t best = 0;
    for (;; tau++) {
        double m = (double)(tau - a), k = (double)(b - tau);
        double e = 2.0 * cross / (m * k) - wl / (m * (m - 1.0) / 2.0) - wr / (k * (k - 1.0) / 2.0);
        double q = m * k / (m + k) * e;
        if (q > *best_q) { /* strict: the earliest of equal maxima wins, deterministically */
            *best_q = q;
            best = tau;
        }
        if (tau + 1 > b - ms)
            break;
        /* move v[tau] from the right part to the left part */
        double to_left = 0.0, to_right = 0.0;
        for (size_t i = a; i < tau; i++)
            to_left += fabs(v[i] - v[tau]);
        for (size_t j = tau + 1; j < b; j++)
            to_right += fabs(v[tau] - v[j]);
        wl += to_left;
        wr -= to_right;
        cross += to_right - to_left;
    }
    return best;
}

/* Best split over all segments delimited by the sorted boundaries bounds[0..nb) (bounds[0] = 0,
 * bounds[nb-1] = n). Returns the split index (0 if none) and its q in *q. */
static size_t best_over_segments(const double *v, const size_t *bounds, size_t nbounds, size_t ms,
                                 double *q)
{
    size_t best = 0;
    *q = -INFINITY;
    for (size_t s = 0; s + 1 < nbounds; s++) {
        double qs;
        size_t t = best_split(v, bounds[s], bounds[s + 1], ms, &qs);
        if (t && qs > *q) {
            *q = qs;
            best = t;
        }
    }
    return best;
}

static int cmp_cp(const void *a, const void *b)
{
    size_t x = ((const pbs_change_point *)a)->index, y = ((const pbs_change_point *)b)->index;
    return (x > y) - (x < y);
}

int pbs_edivisive(const double *x, size_t n, const pbs_cp_opts *opts, pbs_change_point *out, size_t cap,
                  size_t *count)
{
    pbs_cp_opts defaults;
    if (!opts) {
        pbs_cp_opts_default(&defaults);
        opts = &defaults;
    }
    if (!count || (n && !x) || (cap && !out) || !all_finite(x, n) || opts->min_segment < 2 ||
        !(opts->pvalue >= 0.0 && opts->pvalue <= 1.0))
        return PBS_EINVAL;
    *count = 0;
    size_t ms = opts->min_segment;
    if (n < 2 * ms)
        return PBS_OK;

    /* At most n / ms segments, so at most n / ms - 1 change points; bounds holds them plus 0 and n. */
    size_t max_bounds = n / ms + 1;
    size_t *bounds = malloc(max_bounds * sizeof *bounds);
    pbs_change_point *found = malloc(max_bounds * sizeof *found);
    double *perm = malloc(n * sizeof *perm);
    if (!bounds || !found || !perm) {
        free(bounds);
        free(found);
        free(perm);
        return PBS_ENOMEM;
    }
    bounds[0] = 0;
    bounds[1] = n;
    size_t nbounds = 2, nfound = 0;
    pbs_rng rng;
    pbs_rng_seed(&rng, opts->seed);

    for (;;) {
        double q_obs;
        size_t tau = best_over_segments(x, bounds, nbounds, ms, &q_obs);
        if (!tau)
            break;
        /* Permutation test (Matteson & James): shuffle within each current segment, which keeps the
         * already-found structure and destroys only the one under test; count how often chance alone
         * gives a split at least as strong. Stop counting once the p-value cannot pass any more. */
        unsigned hits = 0, rounds = opts->permutations;
        double max_hits = opts->pvalue * ((double)rounds + 1.0) - 1.0;
        unsigned done = 0;
        for (; done < rounds; done++) {
            memcpy(perm, x, n * sizeof *perm);
            for (size_t s = 0; s + 1 < nbounds; s++) {
                size_t a = bounds[s], len = bounds[s + 1] - a;
                for (size_t i = len - 1; i > 0; i--) { /* Fisher-Yates */
                    size_t j = (size_t)pbs_rng_below(&rng, i + 1);
                    double t = perm[a + i];
                    perm[a + i] = perm[a + j];
                    perm[a + j] = t;
                }
            }
            double q_perm;
            best_over_segments(perm, bounds, nbounds, ms, &q_perm);
            if (q_perm >= q_obs && ++hits > max_hits)
                break;
        }
        if ((double)hits > max_hits)
            break;
        double p = ((double)hits + 1.0) / ((double)rounds + 1.0);
        if (p > opts->pvalue)
            break;
        found[nfound].index = tau;
        found[nfound].pvalue = p;
        found[nfound].stat = q_obs;
        nfound++;
        /* insert tau into the sorted boundaries */
        size_t pos = nbounds;
        while (pos > 0 && bounds[pos - 1] > tau) {
            bounds[pos] = bounds[pos - 1];
            pos--;
        }
        bounds[pos] = tau;
        nbounds++;
        if (nbounds >= max_bounds)
            break;
    }

    /* Sizes are reported against the neighbouring segments in the final segmentation, which is what a
     * reader of the history wants: "from this run on, the level is X % different from before". */
    qsort(found, nfound, sizeof *found, cmp_cp);
    for (size_t i = 0; i < nfound; i++) {
        size_t start = i ? found[i - 1].index : 0;
        size_t idx = found[i].index;
        size_t end = i + 1 < nfound ? found[i + 1].index : n;
        found[i].mean_before = pbs_mean(x + start, idx - start);
        found[i].mean_after = pbs_mean(x + idx, end - idx);
        found[i].rel_change =
            found[i].mean_before != 0.0 ? found[i].mean_after / found[i].mean_before - 1.0 : NAN;
        if (i < cap)
            out[i] = found[i];
    }
    *count = nfound;
    free(bounds);
    free(found);
    free(perm);
    return PBS_OK;
}
