/*
 * test_compare.c - regression verdicts and change points on runs built in memory and in a temp store.
 *
 * Samples are constructed, never measured, so every verdict is deterministic: a clear 20 % slowdown is a
 * regression, the same samples again are no change, 2 % is within the 5 % threshold, 3 samples are too
 * few, a failed case is not comparable, and --confirm overturns a regression that a re-measurement does
 * not reproduce. History finds a step planted at a known run and names that run.
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
#include <unistd.h>

#include "compare.h"
#include "format.h" /* the comparison and history exporters */
#include "history.h"
#include "store.h"
#include "testutil.h"

/* n samples around `median` with a deterministic +-1 % wobble */
static void add_case(pbh_run *run, const char *name, const char *status, double median, size_t n) {
    pbh_case *c = pbh_run_add_case(run);
    assert_non_null(c);
    pbh_set_str(&c->name, name);
    pbh_set_str(&c->scenario, "sleep");
    pbh_set_str(&c->backend, "threads");
    pbh_set_str(&c->params, "items=4,ms=10");
    pbh_set_str(&c->status, status);
    c->workers = 2;
    c->reps = (int)n;
    for (size_t i = 0; i < n; i++) {
        pbh_sample *s = pbh_case_add_sample(c);
        assert_non_null(s);
        s->rep = (int)i;
        s->wall_s = median * (1.0 + 0.01 * sin((double)i * 1.7));
        s->iterations = 1;
        s->tasks = 4;
    }
}

static pbh_run *make_run(int64_t id, double a, double b, double c, double d) {
    pbh_run *run = pbh_run_new();
    assert_non_null(run);
    run->id = id;
    pbh_set_str(&run->status, "ok");
    pbh_set_str(&run->source, PBH_SOURCE_NATIVE);
    add_case(run, "a/slower", PBH_STATUS_OK, a, 12);
    add_case(run, "b/same", PBH_STATUS_OK, b, 12);
    add_case(run, "c/two-percent", PBH_STATUS_OK, c, 12);
    add_case(run, "d/few", PBH_STATUS_OK, d, 3);
    return run;
}

static const pbh_case_cmp *find(const pbh_comparison *cmp, const char *name) {
    for (size_t i = 0; i < cmp->ncases; i++)
        if (strcmp(cmp->cases[i].name, name) == 0) return &cmp->cases[i];
    fail_msg("case %s missing", name);
    return NULL;
}

static void test_verdicts(void **state) {
    pbh_run *base = make_run(1, 1.0, 1.0, 1.0, 1.0);
    pbh_run *new_ = make_run(2, 1.2, 1.0, 1.02, 1.5);
    add_case(base, "e/failed-in-new", PBH_STATUS_OK, 1.0, 12);
    add_case(new_, "e/failed-in-new", PBH_STATUS_FAILED, 1.0, 0);
    add_case(new_, "f/only-new", PBH_STATUS_OK, 1.0, 12);
    pbh_comparison cmp;
    assert_int_equal(pbh_compare_runs(base, new_, NULL, &cmp), 0);
    assert_int_equal(find(&cmp, "a/slower")->verdict, PBS_VERDICT_REGRESSION);
    assert_true(find(&cmp, "a/slower")->cmp.ci.lo > 0.05);
    assert_int_equal(find(&cmp, "b/same")->verdict, PBS_VERDICT_NO_CHANGE);
    /* 2 % is real here (the wobble is the same), but inside the 5 % noise threshold */
    assert_int_equal(find(&cmp, "c/two-percent")->verdict, PBS_VERDICT_WITHIN_NOISE);
    assert_int_equal(find(&cmp, "d/few")->verdict, PBS_VERDICT_TOO_FEW_SAMPLES);
    assert_int_equal(find(&cmp, "e/failed-in-new")->match, PBH_MATCH_NOT_OK);
    assert_int_equal(find(&cmp, "f/only-new")->match, PBH_MATCH_ONLY_NEW);
    assert_int_equal(cmp.regressions, 1);
    assert_int_equal(cmp.unmatched, 2);

    /* the exporters say the same thing */
    char *buf = pbh_compare_format_markdown(&cmp);
    assert_non_null(strstr(buf, "| `a/slower` |"));
    assert_non_null(strstr(buf, "**REGRESSION**"));
    assert_non_null(strstr(buf, "**1 regression**"));
    free(buf);
    buf = pbh_compare_format_json(&cmp);
    assert_non_null(strstr(buf, "\"regressions\": 1"));
    assert_non_null(strstr(buf, "\"verdict\": \"regression\""));
    free(buf);

    /* improvements are the mirror image */
    pbh_comparison back;
    assert_int_equal(pbh_compare_runs(new_, base, NULL, &back), 0);
    assert_int_equal(find(&back, "a/slower")->verdict, PBS_VERDICT_IMPROVEMENT);
    assert_int_equal(back.regressions, 0);
    pbh_comparison_free(&back);
    pbh_comparison_free(&cmp);
    pbh_run_free(base);
    pbh_run_free(new_);
}

/* --confirm: re-measurements return `remeasure_median` */
static double remeasure_median;
static int remeasure_calls;
static int fake_remeasure(void *ud, const pbh_case *c, pbh_case *fresh) {
    remeasure_calls++;
    pbh_run *tmp = pbh_run_new();
    add_case(tmp, c->name, PBH_STATUS_OK, remeasure_median, 12);
    *fresh = tmp->cases[0]; /* take the case over */
    memset(&tmp->cases[0], 0, sizeof tmp->cases[0]);
    pbh_run_free(tmp);
    return 0;
}

static void test_confirm(void **state) {
    pbh_run *base = make_run(1, 1.0, 1.0, 1.0, 1.0);
    pbh_run *new_ = make_run(2, 1.2, 1.0, 1.0, 1.0);
    pbh_comparison cmp;

    /* the slowdown does not reproduce: not confirmed, no regression */
    assert_int_equal(pbh_compare_runs(base, new_, NULL, &cmp), 0);
    remeasure_median = 1.0;
    remeasure_calls = 0;
    assert_int_equal(pbh_compare_confirm(&cmp, 2, fake_remeasure, NULL), 0);
    assert_int_equal(remeasure_calls, 2); /* only the suspected case was re-run */
    assert_true(find(&cmp, "a/slower")->unconfirmed);
    assert_int_equal(cmp.regressions, 0);
    pbh_comparison_free(&cmp);

    /* it does reproduce: confirmed */
    assert_int_equal(pbh_compare_runs(base, new_, NULL, &cmp), 0);
    remeasure_median = 1.25;
    assert_int_equal(pbh_compare_confirm(&cmp, 3, fake_remeasure, NULL), 0);
    assert_int_equal(cmp.regressions, 1);
    assert_int_equal(find(&cmp, "a/slower")->confirm_held, 3);
    pbh_comparison_free(&cmp);
    pbh_run_free(base);
    pbh_run_free(new_);
}

static void test_history_finds_planted_step(void **state) {
    char path[] = "/tmp/pb-history-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    char err[512];
    pbh_store *st;
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), 0);
    for (int r = 0; r < 12; r++) {
        pbh_run *run = pbh_run_new();
        pbh_set_str(&run->status, "ok");
        pbh_set_str(&run->source, PBH_SOURCE_NATIVE);
        char commit[41];
        snprintf(commit, sizeof commit, "%040d", r);
        pbh_set_str(&run->ctx.git_commit, commit);
        run->ctx.started_unix = 1.8e9 + r * 60;
        pbh_set_str(&run->ctx.started_at, "2026-11-28T00:00:00Z");
        double level = r < 7 ? 1.0 : 1.3; /* the step starts at run index 7 */
        add_case(run, "sleep/threads/w2/items=4,ms=10", PBH_STATUS_OK, level * (1 + 0.005 * (r % 3)), 10);
        add_case(run, "square/threads/w2/items=10", PBH_STATUS_OK, 0.5 * (1 + 0.005 * (r % 3)), 10);
        assert_int_equal(pbh_store_insert_run(st, run, err, sizeof err), 0);
        pbh_run_free(run);
    }
    pbh_history h;
    assert_int_equal(pbh_history_build(st, NULL, NULL, NULL, &h, err, sizeof err), 0);
    assert_int_equal(h.nruns, 12);
    assert_int_equal(h.ncases, 2);
    const pbh_history_case *stepped = strcmp(h.cases[0].first->name, "sleep/threads/w2/items=4,ms=10") == 0
                                          ? &h.cases[0] : &h.cases[1];
    const pbh_history_case *flat = stepped == &h.cases[0] ? &h.cases[1] : &h.cases[0];
    assert_int_equal(stepped->npoints, 12);
    assert_int_equal(stepped->ncps, 1);
    assert_int_equal(stepped->cps[0].index, 7);
    assert_string_equal(stepped->points[7].run->ctx.git_commit, "0000000000000000000000000000000000000007");
    assert_true(stepped->cps[0].rel_change > 0.25 && stepped->cps[0].rel_change < 0.35);
    assert_int_equal(flat->ncps, 0);

    char *buf = pbh_history_format_json(&h);
    assert_non_null(strstr(buf, "\"change_points\""));
    assert_non_null(strstr(buf, "\"commit\": \"0000000000000000000000000000000000000007\""));
    free(buf);
    pbh_history_free(&h);

    /* a filter that matches nothing yields no cases, not an error */
    assert_int_equal(pbh_history_build(st, "cpu", NULL, NULL, &h, err, sizeof err), 0);
    assert_int_equal(h.ncases, 0);
    pbh_history_free(&h);
    pbh_store_close(st);
    tu_unlink_store(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_confirm),
        cmocka_unit_test(test_history_finds_planted_step),
    };
    return cmocka_run_group_tests_name("compare", tests, NULL, NULL);
}
