/*
 * compare.h - regression verdicts between two runs.
 *
 * Cases are matched by name (scenario/backend/wN/params for native runs, the tool's own name for imports).
 * Per matched case: a two-sided Mann-Whitney U test on the raw samples plus the relative change of medians
 * with a bootstrap confidence interval (stats.h). A case is a regression only when p < alpha AND the whole
 * interval lies above +threshold; an improvement likewise below -threshold; significant but inside the
 * threshold is "within noise"; otherwise "no change"; fewer than min_samples on a side is said, not
 * guessed. Defaults: alpha 0.01, threshold 5 %, at least 5 samples per side (with fewer, the exact test
 * cannot reach p < 0.01 at all).
 *
 * --confirm N: each suspected regression (and improvement) is measured again N times (fresh processes,
 * the current build) and compared with the base each time; it stays a regression (improvement) only if
 * every round agrees: significant, with the change of medians beyond the threshold on the same side
 * (pbh_confirm_round_holds; the interval rule is the first round's). That is what makes a CI gate on a noisy machine fail only on regressions that
 * reproduce, and report only improvements that do.
 */
#ifndef POOLBENCH_HARNESS_COMPARE_H
#define POOLBENCH_HARNESS_COMPARE_H

#include "model.h"
#include "stats.h"

typedef enum pbh_match {
    PBH_MATCH_BOTH = 0,  /* compared */
    PBH_MATCH_ONLY_BASE, /* the case is missing from the new run */
    PBH_MATCH_ONLY_NEW,  /* a new case */
    PBH_MATCH_NOT_OK,    /* present in both, but a side did not run ok (failed, timeout, unsupported) */
} pbh_match;

typedef struct pbh_case_cmp {
    const char *name;
    const pbh_case *base, *new_; /* NULL on the side where it is missing */
    pbh_match match;
    pbs_comparison cmp;          /* valid when match == PBH_MATCH_BOTH */
    int confirm_rounds;          /* rounds of --confirm run for this case */
    int confirm_held;            /* rounds that said the same again ("regression", or "improvement") */
    pbs_verdict verdict;         /* final: a regression or improvement not held in every round becomes WITHIN_NOISE */
    int unconfirmed;             /* 1 when --confirm overturned a regression or an improvement */
    double min_detectable;       /* calibrated minimum detectable slowdown on this machine (fraction); 0 unknown */
} pbh_case_cmp;

typedef struct pbh_comparison {
    const pbh_run *base, *new_;
    pbs_compare_opts opts;
    int confirm;                 /* N of --confirm (0 = none) */
    pbh_case_cmp *cases;
    size_t ncases;
    int regressions, improvements, unchanged, within_noise, too_few, unmatched;
    int paired;                  /* base and new are an interleaved A/B pair (abrun.h); confirm re-measured both */
    int other_machine;           /* the runs come from different machines (machine.h) */
    char machine_why[1024];      /* what differs */
    int64_t calibration_id;      /* the calibration min_detectable came from (0: none) */
} pbh_comparison;

/* One case's two sides compared by the rule (pbs_compare over their samples): PBS_OK, PBS_ENOMEM, or
 * PBS_EINVAL (e.g. a zero time). What every round of a comparison and of --confirm uses. */
int pbh_compare_cases(const pbh_case *base, const pbh_case *new_, const pbs_compare_opts *opts, pbs_comparison *out);

/* Matches and compares; out borrows base and new_ (keep them alive). 0 or PBH_ENOMEM. */
int pbh_compare_runs(const pbh_run *base, const pbh_run *new_, const pbs_compare_opts *opts, pbh_comparison *out);

/* Re-measures one case: fills `fresh` with new samples (status "ok" when it ran) and returns 0, or returns
 * a negative value when the case cannot be re-measured here (an imported case): its verdict then stands
 * unconfirmed-but-unchanged. Supplied by the CLI (it owns the runner). */
typedef int (*pbh_remeasure_fn)(void *ud, const pbh_case *c, pbh_case *fresh);

/* --confirm: for every regression and every improvement, `rounds` times: remeasure and compare against
 * the base again; it stands only if every round says the same. */
int pbh_compare_confirm(pbh_comparison *cmp, int rounds, pbh_remeasure_fn remeasure, void *ud);

/* --confirm on an interleaved pair: re-measures BOTH sides of a case, interleaved again, into fresh_base
 * and fresh_new (status "ok" when they ran). Negative: cannot be re-measured here. */
typedef int (*pbh_remeasure_pair_fn)(void *ud, const pbh_case *base, const pbh_case *new_, pbh_case *fresh_base,
                                     pbh_case *fresh_new);

/* --confirm for a pair: every suspected regression or improvement is measured again on both sides `rounds` times, and
 * each round compares the fresh base with the fresh new; it stands only if every round agrees. */
int pbh_compare_confirm_pair(pbh_comparison *cmp, int rounds, pbh_remeasure_pair_fn remeasure, void *ud);

/* Whether one --confirm round agrees with the flagged verdict it re-measures: the fresh comparison is
 * significant (p < alpha) and its change of medians lies beyond the threshold on the flagged side. The
 * first round already showed the whole interval beyond the threshold; a round asks whether that
 * reproduces, and asking for the interval again in every round threw away real slowdowns: an injected
 * +10 % with 0.5 % noise, +9.8 % again with its interval's lower end at +4.7 %, was overturned
 * (docs/verdicts.md, "confirmation rounds"). */
int pbh_confirm_round_holds(const pbs_comparison *round, pbs_verdict flag, const pbs_compare_opts *opts);

/* A flagged verdict: a regression or an improvement (what --confirm re-measures). */
int pbh_verdict_is_flag(pbs_verdict v);

/* Recounts the totals from the cases' verdicts. */
void pbh_compare_tally(pbh_comparison *cmp);

void pbh_comparison_free(pbh_comparison *cmp);

/* 1 when this machine's calibration says the case can be judged at the comparison's threshold (or when
 * there is no calibration for it): a slowdown of twice the threshold is detected with >= 95 % power. */
int pbh_compare_can_judge(const pbh_comparison *cmp, const pbh_case_cmp *cc);

#endif
