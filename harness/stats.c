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

/* A value with a tag: its position (bootstrap, change points) or the sample it came from (Mann-Whitney). */
typedef struct indexed_value {
    double v;
    size_t i;
} indexed_value;

static int cmp_indexed_value(const void *a, const void *b)
{
    double x = ((const indexed_value *)a)->v, y = ((const indexed_value *)b)->v;
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
    indexed_value *r = malloc(n * sizeof *r); /* i: 1 from x, 0 from y */
    if (!r)
        return PBS_ENOMEM;
    for (size_t i = 0; i < n1; i++)
        r[i] = (indexed_value){x[i], 1};
    for (size_t i = 0; i < n2; i++)
        r[n1 + i] = (indexed_value){y[i], 0};
    qsort(r, n, sizeof *r, cmp_indexed_value);

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
            if (r[k].i)
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

/* Draws below a fixed bound exactly as pbs_rng_below does (same rejection threshold, same value r % bound,
 * same generator steps), with the 64-bit division replaced by Lemire's direct remainder (Lemire, Kaser &
 * Kurz 2019, "Faster remainder by direct computation"): a multiply by the precomputed 128-bit inverse
 * M = ceil(2^128 / bound). Correct for every 64-bit r and bound >= 2; a bootstrap of 1,000 cases draws
 * 10^8 indices, and the division was most of its time. */
typedef struct bounded_draw {
    uint64_t bound, threshold;
    unsigned __int128 inverse;
} bounded_draw;

static void bounded_init(bounded_draw *d, uint64_t bound)
{
    d->bound = bound;
    d->threshold = bound > 1 ? (0 - bound) % bound : 0;
    d->inverse = bound > 1 ? ~(unsigned __int128)0 / bound + 1 : 0;
}

static inline uint64_t bounded_next(pbs_rng *rng, const bounded_draw *d)
{
    if (d->bound <= 1)
        return 0;
    for (;;) {
        uint64_t r = pbs_rng_next(rng);
        if (r >= d->threshold) {
            unsigned __int128 low = d->inverse * r;
            unsigned __int128 bottom = ((unsigned __int128)(uint64_t)low * d->bound) >> 64;
            unsigned __int128 top = (unsigned __int128)(uint64_t)(low >> 64) * d->bound;
            return (uint64_t)((bottom + top) >> 64);
        }
    }
}

/* One side of the bootstrap: the sample sorted once, and each index's place in that order. A resample is
 * then a histogram over the sorted values (counts[rank]++ per draw), and its median is read off the
 * histogram: the same order statistics median_inplace would select from the resampled values, hence the
 * same median to the last bit, without moving any data. */
typedef struct resampler {
    size_t n;
    double *sorted;   /* the sample in ascending order */
    size_t *rank_of;  /* rank_of[i]: position of sample i in sorted */
    unsigned *counts; /* per resample: how often each rank was drawn */
    bounded_draw draw;
} resampler;

static int cmp_indexed_value_then_index(const void *a, const void *b)
{
    int c = cmp_indexed_value(a, b);
    if (c)
        return c;
    size_t i = ((const indexed_value *)a)->i, j = ((const indexed_value *)b)->i;
    return (i > j) - (i < j);
}

static int resampler_init(resampler *r, const double *x, size_t n)
{
    r->n = n;
    r->sorted = malloc(n * sizeof *r->sorted);
    r->rank_of = malloc(n * sizeof *r->rank_of);
    r->counts = calloc(n, sizeof *r->counts);
    indexed_value *order = malloc(n * sizeof *order);
    if (!r->sorted || !r->rank_of || !r->counts || !order) {
        free(order);
        return PBS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = (indexed_value){x[i], i};
    qsort(order, n, sizeof *order, cmp_indexed_value);
    for (size_t k = 0; k < n; k++) {
        r->sorted[k] = order[k].v;
        r->rank_of[order[k].i] = k;
    }
    free(order);
    bounded_init(&r->draw, n);
    return PBS_OK;
}

static void resampler_free(resampler *r)
{
    free(r->sorted);
    free(r->rank_of);
    free(r->counts);
}

/* Median (type 7) of one resample of n draws. */
static double resampled_median(resampler *r, pbs_rng *rng)
{
    size_t n = r->n;
    for (size_t i = 0; i < n; i++)
        r->counts[r->rank_of[bounded_next(rng, &r->draw)]]++;
    size_t k = (n - 1) / 2, seen = 0, rank = 0;
    while (seen + r->counts[rank] <= k)
        seen += r->counts[rank++];
    double lower = r->sorted[rank];
    double m = lower;
    if (n % 2 == 0) {
        /* the (k+1)-th order statistic: the same rank again if it was drawn more than once */
        size_t next = seen + r->counts[rank] > k + 1 ? rank : rank + 1;
        while (r->counts[next] == 0)
            next++;
        m = lerp(lower, r->sorted[next], 0.5);
    }
    memset(r->counts, 0, n * sizeof *r->counts);
    return m;
}

/* Type 7 quantile of a[0..n) without sorting it (a is reordered): the order statistics around h are
 * selected, so the result equals pbs_quantile_sorted over the sorted array. */
static double quantile_select(double *a, size_t n, double q)
{
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo >= n - 1) {
        select_kth(a, n, n - 1);
        return a[n - 1];
    }
    select_kth(a, n, lo);
    double next = a[lo + 1];
    for (size_t i = lo + 2; i < n; i++)
        if (a[i] < next)
            next = a[i];
    return lerp(a[lo], next, h - (double)lo);
}

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

    resampler rb = {0}, rn = {0};
    double *changes = malloc((size_t)resamples * sizeof *changes);
    if (!changes || resampler_init(&rb, base, nb) != PBS_OK || resampler_init(&rn, new_, nn) != PBS_OK) {
        free(changes);
        resampler_free(&rb);
        resampler_free(&rn);
        return PBS_ENOMEM;
    }
    double base_med = pbs_quantile_sorted(rb.sorted, nb, 0.5);
    double new_med = pbs_quantile_sorted(rn.sorted, nn, 0.5);

    /* Resample each side independently (the runs are independent), base first then new in every round,
     * so the sequence of draws - and thus the interval - depends only on the seed and the inputs. */
    pbs_rng rng;
    pbs_rng_seed(&rng, seed);
    for (unsigned b = 0; b < resamples; b++) {
        double mb = resampled_median(&rb, &rng);
        double mn = resampled_median(&rn, &rng);
        changes[b] = mn / mb - 1.0; /* mb > 0: every base value is */
    }

    out->estimate = new_med / base_med - 1.0;
    out->lo = quantile_select(changes, resamples, (1.0 - confidence) / 2.0);
    out->hi = quantile_select(changes, resamples, (1.0 + confidence) / 2.0);
    out->confidence = confidence;
    out->resamples = resamples;
    out->seed = seed;
    free(changes);
    resampler_free(&rb);
    resampler_free(&rn);
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

/* Work space of the change-point search: the series being searched (the data, or a permutation of it
 * within segments), each point's rank among the values of its segment (ties broken by position; a
 * permutation within a segment carries the ranks along, so they are computed once per segmentation, not
 * once per permutation), and per segment the sorted values, their prefix sums and two Fenwick trees. */
typedef struct cp_work {
    double *v;       /* the series searched */
    uint32_t *rank;  /* rank of v[i] within its segment */
    double *sorted;  /* per segment [a, b): sorted[a + r] = the value of rank r */
    double *prefix;  /* per segment: prefix[a + a_offset + r] = sum of the r smallest (length b - a + 1) */
    double *fsum;    /* Fenwick tree over ranks: sum of the values moved to the left part */
    uint32_t *fcnt;  /* Fenwick tree over ranks: how many values were moved to the left part */
} cp_work;

/* Fenwick (binary indexed) tree over ranks 0..len-1, stored 1-based in t[1..len]. */
static void fen_add(double *fs, uint32_t *fc, size_t len, size_t r, double v)
{
    for (size_t i = r + 1; i <= len; i += i & (0 - i)) {
        fs[i] += v;
        fc[i] += 1;
    }
}

/* Sum and count of the left-part values with rank < r. */
static void fen_below(const double *fs, const uint32_t *fc, size_t r, double *sum, size_t *cnt)
{
    double s = 0.0;
    size_t c = 0;
    for (size_t i = r; i > 0; i -= i & (0 - i)) {
        s += fs[i];
        c += fc[i];
    }
    *sum = s;
    *cnt = c;
}

/* Best split of w->v[a, b): the tau in [a + ms, b - ms] maximising q-hat, or 0 (and *best_q = -INF) when
 * the segment is too short. The within-left, within-right and cross sums of |v_i - v_j| are kept as tau
 * moves one point p from right to left: its distance to the left part comes from the Fenwick trees (count
 * and sum of the left values below and above its rank), its distance to the whole segment from the sorted
 * prefix sums, and the right part's share is the difference. O((b - a) log(b - a)) per segment instead of
 * the O((b - a)^2) of summing the distances point by point; the sums are the same up to the order of
 * floating-point additions (test_stats_fast checks the change points against the O(n^2) search). */
static size_t best_split(cp_work *w, size_t a, size_t b, size_t ms, double *best_q)
{
    *best_q = -INFINITY;
    if (b - a < 2 * ms)
        return 0;
    const double *v = w->v;
    size_t len = b - a;
    double *sorted = w->sorted + a, *prefix = w->prefix + a;
    double *fs = w->fsum + a;      /* 1-based: fs[1..len] uses the slots a+1..b; slot a is never read */
    uint32_t *fc = w->fcnt + a;
    for (size_t i = a; i < b; i++)
        sorted[w->rank[i]] = v[i];
    prefix[0] = 0.0;
    double total = 0.0; /* sum over all pairs of the segment */
    for (size_t r = 0; r < len; r++) {
        prefix[r + 1] = prefix[r] + sorted[r];
        total += sorted[r] * ((double)(2 * r) - (double)(len - 1));
    }
    memset(fs, 0, (len + 1) * sizeof *fs);
    memset(fc, 0, (len + 1) * sizeof *fc);
    double wl = 0.0, wr = total, cross = 0.0, left_sum = 0.0;
    size_t left_n = 0, best = 0;
    for (size_t tau = a; tau < b - ms; tau++) {
        if (tau >= a + ms) {
            double m = (double)(tau - a), k = (double)(b - tau);
            double e = 2.0 * cross / (m * k) - wl / (m * (m - 1.0) / 2.0) - wr / (k * (k - 1.0) / 2.0);
            double q = m * k / (m + k) * e;
            if (q > *best_q) { /* strict: the earliest of equal maxima wins, deterministically */
                *best_q = q;
                best = tau;
            }
        }
        /* move v[tau] from the right part to the left part */
        double x = v[tau];
        size_t r = w->rank[tau];
        double below_sum;
        size_t below_n;
        fen_below(fs, fc, r, &below_sum, &below_n);
        double to_left = ((double)below_n * x - below_sum) + ((left_sum - below_sum) - (double)(left_n - below_n) * x);
        double to_all = ((double)r * x - prefix[r]) + ((prefix[len] - prefix[r + 1]) - (double)(len - 1 - r) * x);
        double to_right = to_all - to_left;
        wl += to_left;
        wr -= to_right;
        cross += to_right - to_left;
        fen_add(fs, fc, len, r, x);
        left_sum += x;
        left_n++;
    }
    {
        size_t tau = b - ms; /* the last split point */
        double m = (double)(tau - a), k = (double)(b - tau);
        double e = 2.0 * cross / (m * k) - wl / (m * (m - 1.0) / 2.0) - wr / (k * (k - 1.0) / 2.0);
        double q = m * k / (m + k) * e;
        if (q > *best_q) {
            *best_q = q;
            best = tau;
        }
    }
    return best;
}

/* Ranks of x within each segment delimited by bounds (ties by position). scratch: n indexed values. */
static void rank_segments(const double *x, const size_t *bounds, size_t nbounds, uint32_t *rank,
                          indexed_value *scratch)
{
    for (size_t s = 0; s + 1 < nbounds; s++) {
        size_t a = bounds[s], len = bounds[s + 1] - a;
        for (size_t i = 0; i < len; i++)
            scratch[i] = (indexed_value){x[a + i], i};
        qsort(scratch, len, sizeof *scratch, cmp_indexed_value_then_index);
        for (size_t r = 0; r < len; r++)
            rank[a + scratch[r].i] = (uint32_t)r;
    }
}

/* Best split over all segments delimited by the sorted boundaries bounds[0..nb) (bounds[0] = 0,
 * bounds[nb-1] = n). Returns the split index (0 if none) and its q in *q. */
static size_t best_over_segments(cp_work *w, const size_t *bounds, size_t nbounds, size_t ms, double *q)
{
    size_t best = 0;
    *q = -INFINITY;
    for (size_t s = 0; s + 1 < nbounds; s++) {
        double qs;
        size_t t = best_split(w, bounds[s], bounds[s + 1], ms, &qs);
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
    uint32_t *rank_x = malloc(n * sizeof *rank_x);
    indexed_value *scratch = malloc(n * sizeof *scratch);
    /* sorted/prefix/fsum/fcnt are indexed from a segment's start and run one past its end */
    cp_work w = {perm, malloc(n * sizeof *w.rank), malloc((n + 1) * sizeof *w.sorted),
                 malloc((n + 2) * sizeof *w.prefix), malloc((n + 2) * sizeof *w.fsum),
                 malloc((n + 2) * sizeof *w.fcnt)};
    int rc = PBS_OK;
    if (!bounds || !found || !perm || !rank_x || !scratch || !w.rank || !w.sorted || !w.prefix || !w.fsum ||
        !w.fcnt) {
        rc = PBS_ENOMEM;
        goto done;
    }
    bounds[0] = 0;
    bounds[1] = n;
    size_t nbounds = 2, nfound = 0;
    pbs_rng rng;
    pbs_rng_seed(&rng, opts->seed);

    for (;;) {
        double q_obs;
        rank_segments(x, bounds, nbounds, rank_x, scratch);
        memcpy(perm, x, n * sizeof *perm);
        memcpy(w.rank, rank_x, n * sizeof *w.rank);
        size_t tau = best_over_segments(&w, bounds, nbounds, ms, &q_obs);
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
            memcpy(w.rank, rank_x, n * sizeof *w.rank);
            for (size_t s = 0; s + 1 < nbounds; s++) {
                size_t a = bounds[s], len = bounds[s + 1] - a;
                for (size_t i = len - 1; i > 0; i--) { /* Fisher-Yates; a value's rank travels with it */
                    size_t j = (size_t)pbs_rng_below(&rng, i + 1);
                    double t = perm[a + i];
                    perm[a + i] = perm[a + j];
                    perm[a + j] = t;
                    uint32_t rt = w.rank[a + i];
                    w.rank[a + i] = w.rank[a + j];
                    w.rank[a + j] = rt;
                }
            }
            double q_perm;
            best_over_segments(&w, bounds, nbounds, ms, &q_perm);
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
done:
    free(bounds);
    free(found);
    free(perm);
    free(rank_x);
    free(scratch);
    free(w.rank);
    free(w.sorted);
    free(w.prefix);
    free(w.fsum);
    free(w.fcnt);
    return rc;
}
