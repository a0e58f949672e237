/*
 * test_stats_fast.c - the fast bootstrap and change-point search give the answers of the plain ones.
 *
 * stats.c's bootstrap reads resampled medians off a histogram of ranks and draws indices with a
 * division-free remainder; its E-Divisive search keeps the pairwise-distance sums with Fenwick trees
 * (O(n log n) per split instead of O(n^2)). Here the plain algorithms as they were before (sort each
 * resample; sum every pair) are written out again and both are run on the same inputs, many of them,
 * random and with ties: the bootstrap intervals must be bit-identical, the change points the same indices
 * with the same p-values. test_stats (scipy's reference values) runs unchanged on the fast code as well.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- the bootstrap as it was: resample, sort, take the type 7 median ---- */

static double sorted_median(double *a, size_t n) {
    qsort(a, n, sizeof *a, cmp_double);
    return pbs_quantile_sorted(a, n, 0.5);
}

static void plain_bootstrap(const double *base, size_t nb, const double *new_, size_t nn, unsigned resamples,
                            double confidence, uint64_t seed, double *lo, double *hi) {
    double *scratch = malloc((nb > nn ? nb : nn) * sizeof *scratch);
    double *changes = malloc(resamples * sizeof *changes);
    pbs_rng rng;
    pbs_rng_seed(&rng, seed);
    for (unsigned b = 0; b < resamples; b++) {
        for (size_t i = 0; i < nb; i++)
            scratch[i] = base[pbs_rng_below(&rng, nb)];
        double mb = sorted_median(scratch, nb);
        for (size_t i = 0; i < nn; i++)
            scratch[i] = new_[pbs_rng_below(&rng, nn)];
        double mn = sorted_median(scratch, nn);
        changes[b] = mn / mb - 1.0;
    }
    qsort(changes, resamples, sizeof *changes, cmp_double);
    *lo = pbs_quantile_sorted(changes, resamples, (1.0 - confidence) / 2.0);
    *hi = pbs_quantile_sorted(changes, resamples, (1.0 + confidence) / 2.0);
    free(scratch);
    free(changes);
}

static void test_bootstrap_same_as_plain(void **state) {
    (void)state;
    pbs_rng gen;
    pbs_rng_seed(&gen, 42);
    const size_t sizes[] = {1, 2, 3, 5, 10, 29, 30, 31, 64, 200};
    int checked = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (int trial = 0; trial < 12; trial++) {
            size_t nb = sizes[si], nn = sizes[(si + (size_t)trial) % (sizeof sizes / sizeof sizes[0])];
            double base[200], new_[200];
            for (size_t i = 0; i < nb; i++) /* every other trial: few distinct values (ties) */
                base[i] = trial % 2 ? 1.0 + (double)pbs_rng_below(&gen, 4) : 1.0 + (double)(pbs_rng_next(&gen) >> 11) / 9007199254740992.0;
            for (size_t i = 0; i < nn; i++)
                new_[i] = trial % 2 ? 1.0 + (double)pbs_rng_below(&gen, 5) : 1.1 + (double)(pbs_rng_next(&gen) >> 11) / 9007199254740992.0;
            unsigned resamples = trial % 3 ? 2000 : 999;
            double conf = trial % 4 ? 0.95 : 0.9;
            pbs_ci ci;
            assert_int_equal(pbs_bootstrap_median_change(base, nb, new_, nn, resamples, conf, 7 + (uint64_t)trial, &ci),
                             PBS_OK);
            double lo, hi;
            plain_bootstrap(base, nb, new_, nn, resamples, conf, 7 + (uint64_t)trial, &lo, &hi);
            assert_memory_equal(&ci.lo, &lo, sizeof lo);
            assert_memory_equal(&ci.hi, &hi, sizeof hi);
            checked++;
        }
    }
    assert_int_equal(checked, 120);
}

/* ---- E-Divisive as it was: every split's sums from every pair ---- */

static size_t plain_best_split(const double *v, size_t a, size_t b, size_t ms, double *best_q) {
    *best_q = -INFINITY;
    if (b - a < 2 * ms)
        return 0;
    size_t best = 0;
    for (size_t tau = a + ms; tau <= b - ms; tau++) {
        double wl = 0, wr = 0, cross = 0;
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

static size_t plain_best(const double *v, const size_t *bounds, size_t nb, size_t ms, double *q) {
    size_t best = 0;
    *q = -INFINITY;
    for (size_t s = 0; s + 1 < nb; s++) {
        double qs;
        size_t t = plain_best_split(v, bounds[s], bounds[s + 1], ms, &qs);
        if (t && qs > *q) {
            *q = qs;
            best = t;
        }
    }
    return best;
}

/* The search loop of stats.c with the plain split; returns the change points found (indices, p). */
static size_t plain_edivisive(const double *x, size_t n, const pbs_cp_opts *o, size_t *idx, double *pv) {
    size_t bounds[64] = {0, n}, nb = 2, nf = 0, ms = o->min_segment;
    double *perm = malloc(n * sizeof *perm);
    pbs_rng rng;
    pbs_rng_seed(&rng, o->seed);
    while (n >= 2 * ms) {
        double q_obs;
        size_t tau = plain_best(x, bounds, nb, ms, &q_obs);
        if (!tau)
            break;
        unsigned hits = 0, done = 0;
        double max_hits = o->pvalue * ((double)o->permutations + 1.0) - 1.0;
        for (; done < o->permutations; done++) {
            memcpy(perm, x, n * sizeof *perm);
            for (size_t s = 0; s + 1 < nb; s++) {
                size_t a = bounds[s], len = bounds[s + 1] - a;
                for (size_t i = len - 1; i > 0; i--) {
                    size_t j = (size_t)pbs_rng_below(&rng, i + 1);
                    double t = perm[a + i];
                    perm[a + i] = perm[a + j];
                    perm[a + j] = t;
                }
            }
            double q_perm;
            plain_best(perm, bounds, nb, ms, &q_perm);
            if (q_perm >= q_obs && ++hits > max_hits)
                break;
        }
        if ((double)hits > max_hits)
            break;
        double p = ((double)hits + 1.0) / ((double)o->permutations + 1.0);
        if (p > o->pvalue)
            break;
        idx[nf] = tau;
        pv[nf++] = p;
        size_t pos = nb;
        while (pos > 0 && bounds[pos - 1] > tau) {
            bounds[pos] = bounds[pos - 1];
            pos--;
        }
        bounds[pos] = tau;
        if (++nb >= n / ms + 1 || nb >= 63)
            break;
    }
    free(perm);
    /* sorted by index, as pbs_edivisive reports them */
    for (size_t i = 1; i < nf; i++)
        for (size_t j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
            double tp = pv[j];
            pv[j] = pv[j - 1];
            pv[j - 1] = tp;
        }
    return nf;
}

static void test_edivisive_same_as_plain(void **state) {
    (void)state;
    pbs_rng gen;
    pbs_rng_seed(&gen, 2026);
    int with_cps = 0;
    for (int trial = 0; trial < 60; trial++) {
        size_t n = 8 + (size_t)pbs_rng_below(&gen, 90);
        double x[100];
        size_t step1 = n / 3, step2 = 2 * n / 3;
        for (size_t i = 0; i < n; i++) {
            double level = 1.0 + (trial % 3 ? 0.0 : (i >= step1 ? 0.3 : 0.0)) + (trial % 5 == 1 && i >= step2 ? 0.5 : 0.0);
            double noise = trial % 2 ? (double)pbs_rng_below(&gen, 3) * 0.1 /* ties */
                                     : (double)(pbs_rng_next(&gen) >> 11) / 9007199254740992.0 * 0.2;
            x[i] = level + noise;
        }
        pbs_cp_opts o;
        pbs_cp_opts_default(&o);
        o.min_segment = 2 + (size_t)(trial % 4);
        o.seed = (uint64_t)trial;
        pbs_change_point cps[64];
        size_t count;
        assert_int_equal(pbs_edivisive(x, n, &o, cps, 64, &count), PBS_OK);
        size_t idx[64];
        double pv[64];
        size_t nplain = plain_edivisive(x, n, &o, idx, pv);
        assert_int_equal(count, nplain);
        for (size_t i = 0; i < count; i++) {
            assert_int_equal(cps[i].index, idx[i]);
            assert_true(cps[i].pvalue == pv[i]);
        }
        with_cps += count > 0;
    }
    assert_true(with_cps >= 10); /* the planted steps were found: the comparison covers real searches */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bootstrap_same_as_plain),
        cmocka_unit_test(test_edivisive_same_as_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
