/*
 * compare.c - regression verdicts between two runs: matching, statistics and --confirm. It computes and
 * returns a pbh_comparison; format_compare.c says it as a table, Markdown or JSON.
 *
 * The statistics are stats.c's (Mann-Whitney + bootstrap + pbs_classify); this file only decides which
 * samples meet which. See compare.h for the decision rule.
 */
#include "compare.h"

#include <stdlib.h>
#include <string.h>

#include "machine.h"

int pbh_compare_cases(const pbh_case *base, const pbh_case *new_, const pbs_compare_opts *opts, pbs_comparison *out) {
    double *b = pbh_case_times(base), *n = pbh_case_times(new_);
    int rc = (b && n) ? pbs_compare(b, base->nsamples, n, new_->nsamples, opts, out) : PBS_ENOMEM;
    free(b);
    free(n);
    return rc;
}

void pbh_compare_tally(pbh_comparison *cmp) {
    cmp->regressions = cmp->improvements = cmp->unchanged = cmp->within_noise = cmp->too_few = cmp->unmatched = 0;
    for (size_t i = 0; i < cmp->ncases; i++) {
        const pbh_case_cmp *cc = &cmp->cases[i];
        if (cc->match != PBH_MATCH_BOTH) {
            cmp->unmatched++;
            continue;
        }
        switch (cc->verdict) {
        case PBS_VERDICT_REGRESSION: cmp->regressions++; break;
        case PBS_VERDICT_IMPROVEMENT: cmp->improvements++; break;
        case PBS_VERDICT_WITHIN_NOISE: cmp->within_noise++; break;
        case PBS_VERDICT_TOO_FEW_SAMPLES: cmp->too_few++; break;
        default: cmp->unchanged++; break;
        }
    }
}

int pbh_compare_runs(const pbh_run *base, const pbh_run *new_, const pbs_compare_opts *opts, pbh_comparison *out) {
    memset(out, 0, sizeof *out);
    out->base = base;
    out->new_ = new_;
    if (opts) out->opts = *opts;
    else pbs_compare_opts_default(&out->opts);
    out->cases = calloc(base->ncases + new_->ncases + 1, sizeof *out->cases);
    if (!out->cases) return PBH_ENOMEM;

    /* base order first, then the cases only the new run has */
    for (size_t i = 0; i < base->ncases; i++) {
        pbh_case_cmp *cc = &out->cases[out->ncases++];
        cc->base = &base->cases[i];
        cc->name = cc->base->name;
        cc->new_ = pbh_run_find_case(new_, cc->name);
        if (!cc->new_) {
            cc->match = PBH_MATCH_ONLY_BASE;
        } else if (!pbh_case_is_ok(cc->base) || !pbh_case_is_ok(cc->new_)) {
            cc->match = PBH_MATCH_NOT_OK;
        } else {
            cc->match = PBH_MATCH_BOTH;
            int rc = pbh_compare_cases(cc->base, cc->new_, &out->opts, &cc->cmp);
            if (rc == PBS_ENOMEM) return pbh_error(rc);
            if (rc != PBS_OK) cc->match = PBH_MATCH_NOT_OK; /* e.g. a zero time: nothing to compare */
            cc->verdict = cc->cmp.verdict;
        }
    }
    for (size_t i = 0; i < new_->ncases; i++) {
        if (pbh_run_find_case(base, new_->cases[i].name)) continue;
        pbh_case_cmp *cc = &out->cases[out->ncases++];
        cc->new_ = &new_->cases[i];
        cc->name = cc->new_->name;
        cc->match = PBH_MATCH_ONLY_NEW;
    }
    pbh_compare_tally(out);
    out->other_machine = pbh_machine_differs(base, new_, out->machine_why, sizeof out->machine_why);
    return 0;
}

/* Confirmation covers every flagged verdict, improvements too: an unconfirmed "improvement" in a CI
 * summary misleads as much as a false regression (the stop 15 validation saw a +3 % slowdown reported as
 * one, on a case whose A/A change varies by 20 %), even though only a regression fails the gate. */
int pbh_verdict_is_flag(pbs_verdict v) {
    return v == PBS_VERDICT_REGRESSION || v == PBS_VERDICT_IMPROVEMENT;
}

/* One confirmation round's verdict on a case: the same flag again (regression or improvement), or not. */
int pbh_confirm_round_holds(const pbs_comparison *round, pbs_verdict flag, const pbs_compare_opts *opts) {
    if (!(round->mwu.p < opts->alpha))
        return 0;
    if (flag == PBS_VERDICT_REGRESSION)
        return round->change > opts->threshold;
    if (flag == PBS_VERDICT_IMPROVEMENT)
        return round->change < -opts->threshold;
    return 0;
}

static int round_holds(const pbh_case *base, const pbh_case *fresh, const pbs_compare_opts *opts, pbs_verdict flag) {
    pbs_comparison again;
    return pbh_case_is_ok(base) && pbh_case_is_ok(fresh) && pbh_compare_cases(base, fresh, opts, &again) == PBS_OK &&
           pbh_confirm_round_holds(&again, flag, opts);
}

static void settle(pbh_case_cmp *cc) {
    if (cc->confirm_held < cc->confirm_rounds) {
        cc->verdict = PBS_VERDICT_WITHIN_NOISE;
        cc->unconfirmed = 1;
    }
}

int pbh_compare_confirm_pair(pbh_comparison *cmp, int rounds, pbh_remeasure_pair_fn remeasure, void *ud) {
    cmp->confirm = rounds;
    cmp->paired = 1;
    if (rounds <= 0 || !remeasure) return 0;
    for (size_t i = 0; i < cmp->ncases; i++) {
        pbh_case_cmp *cc = &cmp->cases[i];
        if (cc->match != PBH_MATCH_BOTH || !pbh_verdict_is_flag(cc->verdict)) continue;
        for (int r = 0; r < rounds; r++) {
            pbh_case fresh_base = {0}, fresh_new = {0};
            int rc = remeasure(ud, cc->base, cc->new_, &fresh_base, &fresh_new);
            if (rc >= 0) {
                cc->confirm_rounds++;
                cc->confirm_held += round_holds(&fresh_base, &fresh_new, &cmp->opts, cc->verdict);
            }
            pbh_case_clear(&fresh_base);
            pbh_case_clear(&fresh_new);
            if (rc < 0) break; /* cannot be re-measured here: the verdict stands as it is */
        }
        settle(cc);
    }
    pbh_compare_tally(cmp);
    return 0;
}

int pbh_compare_confirm(pbh_comparison *cmp, int rounds, pbh_remeasure_fn remeasure, void *ud) {
    cmp->confirm = rounds;
    if (rounds <= 0 || !remeasure) return 0;
    for (size_t i = 0; i < cmp->ncases; i++) {
        pbh_case_cmp *cc = &cmp->cases[i];
        if (cc->match != PBH_MATCH_BOTH || !pbh_verdict_is_flag(cc->verdict)) continue;
        for (int r = 0; r < rounds; r++) {
            pbh_case fresh = {0};
            int rc = remeasure(ud, cc->new_, &fresh);
            if (rc < 0) { /* cannot be re-measured here (an imported case): the verdict stands as it is */
                pbh_case_clear(&fresh);
                break;
            }
            cc->confirm_rounds++;
            cc->confirm_held += round_holds(cc->base, &fresh, &cmp->opts, cc->verdict);
            pbh_case_clear(&fresh);
        }
        settle(cc);
    }
    pbh_compare_tally(cmp);
    return 0;
}

void pbh_comparison_free(pbh_comparison *cmp) {
    free(cmp->cases);
    memset(cmp, 0, sizeof *cmp);
}

int pbh_compare_can_judge(const pbh_comparison *cmp, const pbh_case_cmp *cc) {
    return !(cc->min_detectable > 0) || cc->min_detectable <= 2 * cmp->opts.threshold;
}
