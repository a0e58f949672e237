/*
 * test_stats.c - checks the statistics unit (harness/stats.c) against independent references.
 *
 * The Mann-Whitney U statistics and p-values, quantiles and summaries are compared with values that
 * scipy 1.10 / numpy 1.24 computed once (scripts/gen-stats-reference writes them to tests/data/),
 * so this test needs no Python at run time; it finds the data through $POOLBENCH_SOURCE_DIR, which ctest
 * sets. Tolerances: U exactly, exact p-values to 1e-9 relative, asymptotic ones to 1e-6 relative (scipy
 * and libm differ in the last bits of erfc). The bootstrap, the verdicts and E-Divisive have no scipy
 * counterpart, so they are checked for determinism and on synthetic data whose answer is known by
 * construction (a 20 % step must be found where it was put).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* ---- helpers ------------------------------------------------------------------------------------------ */

/* Relative closeness with an absolute floor, reporting the values on failure: a bare assert_true would
 * say only "false", which is useless when a reference check drifts. */
#define CHECK_CLOSE(got, want, rel, what)                                                              \
    do {                                                                                               \
        double g_ = (got), w_ = (want);                                                                \
        double tol_ = (rel) * fabs(w_) + 1e-300;                                                       \
        if (!(fabs(g_ - w_) <= tol_)) {                                                                \
            print_error("%s: got %.17g want %.17g (rel err %.3g, tol %.3g)\n", (what), g_, w_,         \
                        w_ != 0 ? fabs(g_ - w_) / fabs(w_) : fabs(g_), (double)(rel));                 \
            fail();                                                                                    \
        }                                                                                              \
    } while (0)

static FILE *open_data(const char *name)
{
    const char *root = getenv("POOLBENCH_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : ".", name);
    FILE *f = fopen(path, "r");
    if (!f)
        print_error("cannot open %s (is POOLBENCH_SOURCE_DIR set to the source root?)\n", path);
    return f;
}

/* Tokenizer over one line: fields are separated by single spaces. */
static char *next_tok(char **save)
{
    return strtok_r(NULL, " \n", save);
}

static double next_num(char **save)
{
    char *t = next_tok(save);
    assert_non_null(t);
    char *end;
    double v = strtod(t, &end);
    assert_true(end != t && *end == '\0');
    return v;
}

/* Standard normal deviate from the harness PRNG (Box-Muller), so synthetic data is reproducible. */
static double rnorm(pbs_rng *rng)
{
    double u1 = ((double)(pbs_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(pbs_rng_next(rng) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static void fill_normal(double *x, size_t n, double mean, double sd, pbs_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = mean + sd * rnorm(rng);
}

/* ---- Mann-Whitney against scipy --------------------------------------------------------------------- */

static pbs_mwu_method parse_method(const char *s)
{
    if (strcmp(s, "auto") == 0)
        return PBS_MWU_AUTO;
    if (strcmp(s, "exact") == 0)
        return PBS_MWU_EXACT;
    if (strcmp(s, "asymptotic") == 0)
        return PBS_MWU_ASYMPTOTIC;
    print_error("unknown method '%s'\n", s);
    fail();
    return PBS_MWU_AUTO;
}

static void test_mwu_reference(void **state)
{
    (void)state;
    FILE *f = open_data("mannwhitney_reference.txt");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int cases = 0, exact = 0, asym = 0, with_ties = 0;
    double worst_exact = 0.0, worst_asym = 0.0;
    while (getline(&line, &cap, f) > 0) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *save;
        char *kind = strtok_r(line, " \n", &save);
        assert_string_equal(kind, "mwu");
        char name[128];
        snprintf(name, sizeof name, "%s", next_tok(&save));
        pbs_mwu_method req = parse_method(next_tok(&save));
        pbs_mwu_method used = parse_method(next_tok(&save));
        size_t n1 = (size_t)next_num(&save), n2 = (size_t)next_num(&save);
        double u1 = next_num(&save), p = next_num(&save);
        double *x = malloc((n1 + n2) * sizeof *x);
        assert_non_null(x);
        for (size_t i = 0; i < n1 + n2; i++)
            x[i] = next_num(&save);
        assert_null(next_tok(&save));

        pbs_mwu_result r;
        assert_int_equal(pbs_mann_whitney(x, n1, x + n1, n2, req, &r), PBS_OK);
        if (r.method != used) {
            print_error("%s: method %d, scipy used %d\n", name, (int)r.method, (int)used);
            fail();
        }
        if (r.u1 != u1) {
            print_error("%s: U1 %.17g, scipy %.17g\n", name, r.u1, u1);
            fail();
        }
        assert_true(r.u1 + r.u2 == (double)(n1 * n2));
        double tol = used == PBS_MWU_EXACT ? 1e-9 : 1e-6;
        char what[160];
        snprintf(what, sizeof what, "%s p-value", name);
        CHECK_CLOSE(r.p, p, tol, what);
        double err = fabs(r.p - p) / p;
        if (used == PBS_MWU_EXACT) {
            exact++;
            worst_exact = err > worst_exact ? err : worst_exact;
        } else {
            asym++;
            worst_asym = err > worst_asym ? err : worst_asym;
        }
        with_ties += r.has_ties;

        /* swapping the samples swaps U1 and U2 and leaves the two-sided p unchanged */
        pbs_mwu_result s;
        assert_int_equal(pbs_mann_whitney(x + n1, n2, x, n1, req, &s), PBS_OK);
        assert_true(s.u1 == r.u2 && s.method == r.method);
        CHECK_CLOSE(s.p, r.p, 1e-12, what);
        free(x);
        cases++;
    }
    free(line);
    fclose(f);
    /* the file must really cover both methods and ties, or a truncated file would pass silently */
    assert_true(cases >= 40);
    assert_true(exact >= 15 && asym >= 15 && with_ties >= 8);
    print_message("mann-whitney: %d scipy cases (%d exact, %d asymptotic, %d with ties); worst relative "
                  "p error: exact %.2g, asymptotic %.2g\n", cases, exact, asym, with_ties, worst_exact,
                  worst_asym);
}

static void test_mwu_edges(void **state)
{
    (void)state;
    pbs_mwu_result r;
    /* completely separated 5 vs 5: the smallest exact p, 2 / C(10, 5) */
    double a[] = {1, 2, 3, 4, 5}, b[] = {6, 7, 8, 9, 10};
    assert_int_equal(pbs_mann_whitney(a, 5, b, 5, PBS_MWU_AUTO, &r), PBS_OK);
    assert_int_equal(r.method, PBS_MWU_EXACT);
    assert_true(r.u1 == 0.0 && r.u2 == 25.0);
    CHECK_CLOSE(r.p, 2.0 / 252.0, 1e-15, "separated 5x5");
    assert_true(isnan(r.z));

    /* identical samples: every value tied, no information -> p = 1 (scipy returns NaN) */
    double c[] = {3, 3, 3, 3, 3, 3};
    assert_int_equal(pbs_mann_whitney(c, 3, c + 3, 3, PBS_MWU_AUTO, &r), PBS_OK);
    assert_int_equal(r.method, PBS_MWU_ASYMPTOTIC);
    assert_true(r.has_ties && r.p == 1.0 && r.u1 == 4.5);

    /* single observations are legal */
    assert_int_equal(pbs_mann_whitney(a, 1, b, 1, PBS_MWU_AUTO, &r), PBS_OK);
    assert_true(r.p == 1.0);

    /* forced exact beyond 64-bit counts falls back to asymptotic and says so */
    double big[160];
    for (int i = 0; i < 160; i++)
        big[i] = (double)((i * 7919) % 160);
    assert_int_equal(pbs_mann_whitney(big, 80, big + 80, 80, PBS_MWU_EXACT, &r), PBS_OK);
    assert_int_equal(r.method, PBS_MWU_ASYMPTOTIC);
    /* ... while a lopsided forced exact (C(3+150, 3) is small) stays exact */
    assert_int_equal(pbs_mann_whitney(big, 3, big + 10, 150, PBS_MWU_EXACT, &r), PBS_OK);
    assert_int_equal(r.method, PBS_MWU_EXACT);
    assert_true(r.p > 0.0 && r.p <= 1.0);

    /* bad input */
    double bad[] = {1, NAN, 3};
    assert_int_equal(pbs_mann_whitney(bad, 3, a, 5, PBS_MWU_AUTO, &r), PBS_EINVAL);
    assert_int_equal(pbs_mann_whitney(a, 0, b, 5, PBS_MWU_AUTO, &r), PBS_EINVAL);
    assert_int_equal(pbs_mann_whitney(a, 5, b, 5, (pbs_mwu_method)42, &r), PBS_EINVAL);
    assert_int_equal(pbs_mann_whitney(NULL, 5, b, 5, PBS_MWU_AUTO, &r), PBS_EINVAL);
}

/* ---- quantiles and summaries against numpy ---------------------------------------------------------- */

static void test_quantile_reference(void **state)
{
    (void)state;
    FILE *f = open_data("quantile_reference.txt");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int nq = 0, ns = 0;
    while (getline(&line, &cap, f) > 0) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *save;
        char *kind = strtok_r(line, " \n", &save);
        char name[64];
        snprintf(name, sizeof name, "%s", next_tok(&save));
        char what[128];
        if (strcmp(kind, "quantile") == 0) {
            double q = next_num(&save), want = next_num(&save);
            size_t n = (size_t)next_num(&save);
            double *x = malloc(n * sizeof *x);
            assert_non_null(x);
            for (size_t i = 0; i < n; i++)
                x[i] = next_num(&save);
            snprintf(what, sizeof what, "%s q=%g", name, q);
            CHECK_CLOSE(pbs_quantile(x, n, q), want, 1e-14, what);
            free(x);
            nq++;
        } else {
            assert_string_equal(kind, "summary");
            double want[8];
            for (int i = 0; i < 8; i++)
                want[i] = next_num(&save);
            size_t n = (size_t)next_num(&save);
            double *x = malloc(n * sizeof *x);
            assert_non_null(x);
            for (size_t i = 0; i < n; i++)
                x[i] = next_num(&save);
            pbs_summary s;
            assert_int_equal(pbs_summarize(x, n, &s), PBS_OK);
            assert_int_equal(s.n, n);
            const double got[8] = {s.mean, s.stddev, s.median, s.q1, s.q3, s.mad, s.min, s.max};
            static const char *const field[8] = {"mean", "std", "median", "q1", "q3", "mad", "min", "max"};
            for (int i = 0; i < 8; i++) {
                snprintf(what, sizeof what, "%s %s", name, field[i]);
                /* mean/std: numpy sums pairwise, we sum left to right; both are within a few ulps */
                CHECK_CLOSE(got[i], want[i], 1e-12, what);
            }
            CHECK_CLOSE(pbs_median(x, n), want[2], 1e-15, "pbs_median");
            CHECK_CLOSE(pbs_mad(x, n), want[5], 1e-12, "pbs_mad");
            CHECK_CLOSE(pbs_mean(x, n), want[0], 1e-12, "pbs_mean");
            CHECK_CLOSE(pbs_stddev(x, n), want[1], 1e-12, "pbs_stddev");
            assert_true(pbs_min(x, n) == want[6] && pbs_max(x, n) == want[7]);
            if (s.mean != 0.0)
                CHECK_CLOSE(s.cv, s.stddev / s.mean, 1e-15, "cv");
            free(x);
            ns++;
        }
    }
    free(line);
    fclose(f);
    assert_true(nq >= 90 && ns >= 8);
    print_message("quantiles: %d numpy quantiles and %d summaries match\n", nq, ns);
}

static void test_summary_edges(void **state)
{
    (void)state;
    pbs_summary s;
    double x[] = {1, 2, INFINITY};
    assert_int_equal(pbs_summarize(x, 3, &s), PBS_EINVAL);
    assert_int_equal(pbs_summarize(x, 0, &s), PBS_EINVAL);
    assert_true(isnan(pbs_mean(x, 0)) && isnan(pbs_median(x, 0)) && isnan(pbs_quantile(x, 2, 1.5)));
    double zero[] = {-1, 1};
    assert_int_equal(pbs_summarize(zero, 2, &s), PBS_OK);
    assert_true(isnan(s.cv) && s.median == 0.0);
    assert_true(pbs_stddev(x, 1) == 0.0);
}

/* ---- PRNG and bootstrap ------------------------------------------------------------------------------ */

static void test_rng(void **state)
{
    (void)state;
    pbs_rng a, b;
    pbs_rng_seed(&a, 42);
    pbs_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++)
        assert_true(pbs_rng_next(&a) == pbs_rng_next(&b));
    pbs_rng_seed(&b, 43);
    assert_true(pbs_rng_next(&a) != pbs_rng_next(&b));
    /* seed 0 must still give a live generator */
    pbs_rng_seed(&a, 0);
    assert_true(pbs_rng_next(&a) != 0 || pbs_rng_next(&a) != 0);
    /* pbs_rng_below covers its range roughly uniformly */
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = pbs_rng_below(&a, 7);
        assert_true(v < 7);
        hist[v]++;
    }
    for (int i = 0; i < 7; i++)
        assert_true(hist[i] > 9500 && hist[i] < 10500);
    assert_true(pbs_rng_below(&a, 1) == 0);
}

static void test_bootstrap(void **state)
{
    (void)state;
    pbs_rng rng;
    pbs_rng_seed(&rng, 1);
    double base[25], slow[30];
    fill_normal(base, 25, 100.0, 2.0, &rng);
    fill_normal(slow, 30, 120.0, 2.4, &rng); /* true relative change of medians: +20 % */

    pbs_ci c1, c2, c3;
    assert_int_equal(pbs_bootstrap_median_change(base, 25, slow, 30, 2000, 0.95, 7, &c1), PBS_OK);
    assert_int_equal(pbs_bootstrap_median_change(base, 25, slow, 30, 2000, 0.95, 7, &c2), PBS_OK);
    /* same seed -> bit-identical interval */
    assert_true(c1.lo == c2.lo && c1.hi == c2.hi && c1.estimate == c2.estimate);
    assert_true(c1.lo < 0.20 && 0.20 < c1.hi);
    assert_true(c1.lo <= c1.estimate && c1.estimate <= c1.hi);
    assert_true(c1.lo > 0.15 && c1.hi < 0.25); /* and it is reasonably tight at this noise level */
    assert_true(c1.resamples == 2000 && c1.seed == 7 && c1.confidence == 0.95);
    /* another seed: a slightly different interval, same conclusion */
    assert_int_equal(pbs_bootstrap_median_change(base, 25, slow, 30, 2000, 0.95, 8, &c3), PBS_OK);
    assert_true(c3.lo != c1.lo || c3.hi != c1.hi);
    assert_true(c3.lo < 0.20 && 0.20 < c3.hi);
    /* a wider confidence gives a wider interval (same draws, since the seed is the same) */
    pbs_ci c99;
    assert_int_equal(pbs_bootstrap_median_change(base, 25, slow, 30, 2000, 0.99, 7, &c99), PBS_OK);
    assert_true(c99.lo <= c1.lo && c99.hi >= c1.hi);
    /* resamples = 0 means the default */
    assert_int_equal(pbs_bootstrap_median_change(base, 25, slow, 30, 0, 0.95, 7, &c2), PBS_OK);
    assert_true(c1.lo == c2.lo && c1.hi == c2.hi && c2.resamples == 2000);

    print_message("bootstrap: +20%% synthetic case, 95%% CI [%+.4f, %+.4f], estimate %+.4f\n", c1.lo,
                  c1.hi, c1.estimate);

    /* the in-place median used inside the bootstrap agrees with pbs_median on awkward data (ties, small
     * and even sizes): the estimate is exactly the ratio of the observed medians */
    for (size_t n = 1; n <= 40; n++) {
        double x[40], y[40];
        for (size_t i = 0; i < n; i++) {
            x[i] = 1.0 + (double)pbs_rng_below(&rng, 5);
            y[i] = 1.0 + (double)pbs_rng_below(&rng, 1000) / 100.0;
        }
        pbs_ci c;
        assert_int_equal(pbs_bootstrap_median_change(x, n, y, n, 50, 0.9, n, &c), PBS_OK);
        assert_true(c.estimate == pbs_median(y, n) / pbs_median(x, n) - 1.0);
        assert_true(c.lo <= c.hi);
    }

    /* domain and argument errors */
    double withzero[] = {1.0, 0.0, 2.0};
    assert_int_equal(pbs_bootstrap_median_change(withzero, 3, slow, 30, 100, 0.95, 1, &c1), PBS_EDOMAIN);
    assert_int_equal(pbs_bootstrap_median_change(base, 25, slow, 30, 100, 1.0, 1, &c1), PBS_EINVAL);
    assert_int_equal(pbs_bootstrap_median_change(base, 0, slow, 30, 100, 0.95, 1, &c1), PBS_EINVAL);
}

/* ---- verdicts ------------------------------------------------------------------------------------- */

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(pbs_classify(0.001, 0.06, 0.10, 0.01, 0.05), PBS_VERDICT_REGRESSION);
    assert_int_equal(pbs_classify(0.001, -0.10, -0.06, 0.01, 0.05), PBS_VERDICT_IMPROVEMENT);
    assert_int_equal(pbs_classify(0.001, 0.04, 0.10, 0.01, 0.05), PBS_VERDICT_WITHIN_NOISE);
    assert_int_equal(pbs_classify(0.001, 0.01, 0.02, 0.01, 0.05), PBS_VERDICT_WITHIN_NOISE);
    assert_int_equal(pbs_classify(0.001, -0.10, -0.04, 0.01, 0.05), PBS_VERDICT_WITHIN_NOISE);
    assert_int_equal(pbs_classify(0.02, 0.30, 0.40, 0.01, 0.05), PBS_VERDICT_NO_CHANGE);
    assert_int_equal(pbs_classify(0.01, 0.30, 0.40, 0.01, 0.05), PBS_VERDICT_NO_CHANGE); /* p < alpha */
    assert_int_equal(pbs_classify(NAN, 0.30, 0.40, 0.01, 0.05), PBS_VERDICT_NO_CHANGE);
    assert_int_equal(pbs_classify(0.001, NAN, NAN, 0.01, 0.05), PBS_VERDICT_WITHIN_NOISE);
    assert_string_equal(pbs_verdict_name(PBS_VERDICT_REGRESSION), "regression");
    assert_string_equal(pbs_verdict_name(PBS_VERDICT_IMPROVEMENT), "improvement");
    assert_string_equal(pbs_verdict_name(PBS_VERDICT_WITHIN_NOISE), "within_noise");
    assert_string_equal(pbs_verdict_name(PBS_VERDICT_NO_CHANGE), "no_change");
    assert_string_equal(pbs_verdict_name(PBS_VERDICT_TOO_FEW_SAMPLES), "too_few_samples");
    assert_string_equal(pbs_verdict_name((pbs_verdict)99), "unknown");
}

static pbs_verdict verdict_for(double base_mean, double base_sd, size_t nb, double new_mean, double new_sd,
                               size_t nn, uint64_t seed, pbs_comparison *cmp)
{
    pbs_rng rng;
    pbs_rng_seed(&rng, seed);
    double base[64], new_[64];
    fill_normal(base, nb, base_mean, base_sd, &rng);
    fill_normal(new_, nn, new_mean, new_sd, &rng);
    assert_int_equal(pbs_compare(base, nb, new_, nn, NULL, cmp), PBS_OK);
    return cmp->verdict;
}

static void test_compare_verdicts(void **state)
{
    (void)state;
    pbs_comparison c;
    /* +10 % with 1 % noise, 20 samples each: a clear regression */
    assert_int_equal(verdict_for(100, 1, 20, 110, 1.1, 20, 11, &c), PBS_VERDICT_REGRESSION);
    assert_true(c.mwu.p < 1e-6 && c.ci.lo > 0.05 && fabs(c.change - 0.10) < 0.02);
    /* -10 %: improvement */
    assert_int_equal(verdict_for(100, 1, 20, 90, 0.9, 20, 12, &c), PBS_VERDICT_IMPROVEMENT);
    assert_true(c.ci.hi < -0.05);
    /* +2 % on a very quiet machine: real (significant) but inside the 5 % noise threshold */
    assert_int_equal(verdict_for(100, 0.1, 20, 102, 0.1, 20, 13, &c), PBS_VERDICT_WITHIN_NOISE);
    assert_true(c.mwu.p < 0.01);
    /* same distribution twice: no change */
    assert_int_equal(verdict_for(100, 2, 20, 100, 2, 20, 14, &c), PBS_VERDICT_NO_CHANGE);
    /* a big difference on 5 vs 5 is enough for the exact test (min p = 2/252 < 0.01) */
    assert_int_equal(verdict_for(100, 1, 5, 130, 1, 5, 15, &c), PBS_VERDICT_REGRESSION);
    assert_int_equal(c.mwu.method, PBS_MWU_EXACT);
    /* 4 samples: said, not guessed, even though the difference is huge */
    assert_int_equal(verdict_for(100, 1, 4, 200, 1, 20, 16, &c), PBS_VERDICT_TOO_FEW_SAMPLES);
    assert_true(c.n_base == 4 && c.n_new == 20 && isnan(c.mwu.p) && isnan(c.ci.lo));
    assert_true(fabs(c.change - 1.0) < 0.1); /* the medians are still reported */
    /* a big but very noisy change: significant, but the interval reaches below the 5 % threshold, so
     * the data cannot say the slowdown exceeds the noise -> within noise, not a regression */
    pbs_verdict v = verdict_for(100, 1, 12, 108, 12, 12, 17, &c);
    print_message("noisy +8%%: p %.4g, CI [%+.3f, %+.3f] -> %s\n", c.mwu.p, c.ci.lo, c.ci.hi,
                  pbs_verdict_name(v));
    assert_int_equal(v, PBS_VERDICT_WITHIN_NOISE);
    assert_true(c.mwu.p < 0.01 && c.ci.lo < 0.05 && c.ci.hi > 0.05);

    /* options: a 1 % threshold turns the quiet +2 % into a regression */
    pbs_compare_opts o;
    pbs_compare_opts_default(&o);
    assert_true(o.alpha == 0.01 && o.threshold == 0.05 && o.min_samples == 5 && o.resamples == 2000);
    o.threshold = 0.01;
    pbs_rng rng;
    pbs_rng_seed(&rng, 13);
    double base[20], new_[20];
    fill_normal(base, 20, 100, 0.1, &rng);
    fill_normal(new_, 20, 102, 0.1, &rng);
    assert_int_equal(pbs_compare(base, 20, new_, 20, &o, &c), PBS_OK);
    assert_int_equal(c.verdict, PBS_VERDICT_REGRESSION);
    /* deterministic: the same call twice gives the same result */
    pbs_comparison c2;
    assert_int_equal(pbs_compare(base, 20, new_, 20, &o, &c2), PBS_OK);
    assert_true(c.ci.lo == c2.ci.lo && c.ci.hi == c2.ci.hi && c.mwu.p == c2.mwu.p);
    /* errors */
    base[3] = -1.0;
    assert_int_equal(pbs_compare(base, 20, new_, 20, &o, &c), PBS_EDOMAIN);
    o.alpha = 0.0;
    assert_int_equal(pbs_compare(base, 20, new_, 20, &o, &c), PBS_EINVAL);
    base[3] = NAN;
    assert_int_equal(pbs_compare(base, 20, new_, 20, NULL, &c), PBS_EINVAL);
}

/* ---- E-Divisive ---------------------------------------------------------------------------------- */

static size_t detect(const double *x, size_t n, pbs_change_point *cps, size_t cap)
{
    size_t count = 99;
    assert_int_equal(pbs_edivisive(x, n, NULL, cps, cap, &count), PBS_OK);
    return count;
}

static void test_edivisive_steps(void **state)
{
    (void)state;
    pbs_rng rng;
    pbs_rng_seed(&rng, 2024);
    pbs_change_point cps[16];
    double x[200];

    /* one clean step at 30 (1 % noise, +20 %) */
    for (size_t i = 0; i < 60; i++)
        x[i] = (i < 30 ? 100.0 : 120.0) * (1.0 + 0.01 * rnorm(&rng));
    assert_int_equal(detect(x, 60, cps, 16), 1);
    assert_int_equal(cps[0].index, 30);
    assert_true(cps[0].pvalue <= 0.05 && cps[0].stat > 0.0);
    assert_true(fabs(cps[0].rel_change - 0.20) < 0.02);
    assert_true(fabs(cps[0].mean_before - 100.0) < 1.0 && fabs(cps[0].mean_after - 120.0) < 1.5);

    /* two steps: up 30 % at 20, down to 90 at 45 */
    for (size_t i = 0; i < 70; i++)
        x[i] = (i < 20 ? 100.0 : i < 45 ? 130.0 : 90.0) * (1.0 + 0.01 * rnorm(&rng));
    assert_int_equal(detect(x, 70, cps, 16), 2);
    assert_int_equal(cps[0].index, 20);
    assert_int_equal(cps[1].index, 45);
    assert_true(fabs(cps[0].rel_change - 0.30) < 0.03);
    assert_true(fabs(cps[1].rel_change - (90.0 / 130.0 - 1.0)) < 0.03);
    /* neighbouring segments: the second step's "before" is the first step's "after" */
    assert_true(cps[1].mean_before == cps[0].mean_after);

    /* no step: 2 % noise around a constant level */
    for (size_t i = 0; i < 50; i++)
        x[i] = 100.0 * (1.0 + 0.02 * rnorm(&rng));
    assert_int_equal(detect(x, 50, cps, 16), 0);

    /* perfectly constant and too short series: nothing, without dividing by zero */
    for (size_t i = 0; i < 40; i++)
        x[i] = 5.0;
    assert_int_equal(detect(x, 40, cps, 16), 0);
    x[0] = 1.0;
    assert_int_equal(detect(x, 5, cps, 16), 0);
    assert_int_equal(detect(x, 0, cps, 16), 0);

    /* noisy (5 % sd) with a 20 % step at 37 of 90, and a few outliers: found within +-1 */
    for (size_t i = 0; i < 90; i++)
        x[i] = (i < 37 ? 50.0 : 60.0) * (1.0 + 0.05 * rnorm(&rng));
    x[10] *= 1.4;
    x[60] *= 0.7;
    size_t n = detect(x, 90, cps, 16);
    assert_true(n >= 1);
    int hit = 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        print_message("noisy step: change point at %zu (p %.3f, %+.1f%%)\n", cps[i].index, cps[i].pvalue,
                      100.0 * cps[i].rel_change);
        if (cps[i].index >= 36 && cps[i].index <= 38)
            hit = 1;
    }
    assert_true(hit);
    assert_int_equal(n, 1); /* and the outliers are not taken for steps */
}

static void test_edivisive_behaviour(void **state)
{
    (void)state;
    pbs_rng rng;
    pbs_rng_seed(&rng, 99);
    double x[120];
    for (size_t i = 0; i < 120; i++)
        x[i] = (i < 40 ? 10.0 : i < 80 ? 11.5 : 13.0) * (1.0 + 0.02 * rnorm(&rng));

    pbs_cp_opts o;
    pbs_cp_opts_default(&o);
    assert_true(o.pvalue == 0.05 && o.permutations == 199 && o.min_segment == 3);
    pbs_change_point a[8], b[8];
    size_t na, nb;
    assert_int_equal(pbs_edivisive(x, 120, &o, a, 8, &na), PBS_OK);
    assert_int_equal(pbs_edivisive(x, 120, &o, b, 8, &nb), PBS_OK);
    /* deterministic for a seed */
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    assert_int_equal(na, 2);
    assert_true(a[0].index >= 39 && a[0].index <= 41 && a[1].index >= 79 && a[1].index <= 81);
    /* sorted by index */
    assert_true(a[0].index < a[1].index);

    /* cap smaller than the count: count still says how many, only cap are written */
    pbs_change_point one[1];
    size_t n1;
    assert_int_equal(pbs_edivisive(x, 120, &o, one, 1, &n1), PBS_OK);
    assert_int_equal(n1, 2);
    assert_int_equal(one[0].index, a[0].index);
    assert_int_equal(pbs_edivisive(x, 120, &o, NULL, 0, &n1), PBS_OK);
    assert_int_equal(n1, 2);

    /* a step right at the edge respects min_segment: 3 low points then a jump */
    double e[30];
    for (size_t i = 0; i < 30; i++)
        e[i] = (i < 3 ? 1.0 : 2.0) + 0.001 * (double)(i % 3);
    assert_int_equal(pbs_edivisive(e, 30, &o, a, 8, &na), PBS_OK);
    assert_int_equal(na, 1);
    assert_int_equal(a[0].index, 3);

    /* a step in a long series (a few hundred runs) still runs quickly and is found */
    double *lng = malloc(400 * sizeof *lng);
    assert_non_null(lng);
    for (size_t i = 0; i < 400; i++)
        lng[i] = (i < 250 ? 1.00 : 1.10) * (1.0 + 0.03 * rnorm(&rng));
    assert_int_equal(pbs_edivisive(lng, 400, &o, a, 8, &na), PBS_OK);
    assert_true(na >= 1);
    int hit = 0;
    for (size_t i = 0; i < na && i < 8; i++)
        hit |= a[i].index >= 249 && a[i].index <= 251;
    assert_true(hit);
    free(lng);

    /* errors */
    o.min_segment = 1;
    assert_int_equal(pbs_edivisive(x, 120, &o, a, 8, &na), PBS_EINVAL);
    pbs_cp_opts_default(&o);
    assert_int_equal(pbs_edivisive(x, 120, &o, NULL, 8, &na), PBS_EINVAL);
    x[5] = NAN;
    assert_int_equal(pbs_edivisive(x, 120, &o, a, 8, &na), PBS_EINVAL);
    assert_string_equal(pbs_strerror(PBS_EDOMAIN), "data outside the method's domain");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mwu_reference),
        cmocka_unit_test(test_mwu_edges),
        cmocka_unit_test(test_quantile_reference),
        cmocka_unit_test(test_summary_edges),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_bootstrap),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_compare_verdicts),
        cmocka_unit_test(test_edivisive_steps),
        cmocka_unit_test(test_edivisive_behaviour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
