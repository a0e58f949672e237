/*
 * calibrate.h - how good are poolbench's verdicts on this machine and suite? (`poolbench calibrate`)
 *
 * A calibration runs sessions: each session is the whole plan measured as an interleaved A/B pair of this
 * build against itself (abrun.h), then compared exactly as the gate compares (compare.h: Mann-Whitney +
 * bootstrap CI, then --confirm rounds that re-measure both sides). Two kinds of session:
 *  - A/A: nothing injected. Every flagged case is a false alarm; a confirmed regression is a gate failure.
 *  - injected: a real slowdown of PCT % (exec --inject-slowdown: a busy-wait inside the measured phase) in
 *    the head side of a group of cases. Cases are split into `groups` interleaved groups (case i belongs to
 *    group i mod groups) and session t injects group t mod groups, so every case is injected in one session
 *    of `groups` and serves as an A/A observation ("no other case flagged") in the others.
 *
 * Per case it reports: the A/A observations, the run-to-run noise (standard deviation of the measured
 * change between the two sides of A/A observations), false alarms without and with confirmation, the
 * detection rate per injected size (confirmed regressions / trials), and the minimum detectable slowdown:
 * the smallest slowdown that the gate's rule (alpha, threshold, confirm rounds) would detect with >= 95 %
 * power (the first round's power under the whole rule x a confirmation round's power ^ confirm rounds, as
 * every round must agree; compare.h), estimated from the case's own A/A observations in every arrangement
 * of their blocks that the interleaved design could have run, and reported as an upper 95 % bound over
 * resampled observations (min_detectable.c). The injected trials check that estimate against real
 * slowdowns.
 */
#ifndef POOLBENCH_HARNESS_CALIBRATE_H
#define POOLBENCH_HARNESS_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>

#include "compare.h"
#include "runner.h"

#define PBH_CALIBRATE_MAX_SIZES 8
#define PBH_CALIBRATE_DEFAULT_PAIRS 10
#define PBH_CALIBRATE_DEFAULT_GROUPS 2

typedef struct pbh_calibrate_opts {
    int aa_pairs;                            /* A/A sessions */
    double sizes[PBH_CALIBRATE_MAX_SIZES];   /* injected slowdowns, percent */
    size_t nsizes;
    int trials[PBH_CALIBRATE_MAX_SIZES];     /* injected trials per case, per size (sessions = trials x groups) */
    int groups;                              /* cases injected per session: one group of `groups` */
    pbs_compare_opts cmp;                    /* the gate's rule */
    int confirm;                             /* the gate's confirmation rounds */
    int block_reps;                          /* abrun block size (<= 0 default) */
    uint64_t seed;                           /* first session's order seed; session s uses seed + s */
    int measure_plain_run;                   /* also time one plain run (the gate's wall-time goal) */
    const pbh_plan *plain_plan;              /* that run's plan (the suite's own repetitions); NULL: the plan */
} pbh_calibrate_opts;

void pbh_calibrate_opts_default(pbh_calibrate_opts *o);

/* One A/A observation of a case: the per-iteration times of both sides. */
typedef struct pbh_calib_obs {
    double *base, *head;
    size_t nb, nh;
} pbh_calib_obs;

/* One round of an injected trial as the gate judged it: the first comparison, then each --confirm round. */
typedef struct pbh_calib_round {
    pbs_verdict verdict;      /* the whole rule's verdict on this round alone */
    double change, lo, hi, p; /* change of medians and its bootstrap CI (fractions), Mann-Whitney p */
    int held;                 /* first round: flagged; a confirmation round: pbh_confirm_round_holds */
} pbh_calib_round;

#define PBH_CALIBRATE_MAX_ROUNDS 9 /* the first round and up to 8 confirmation rounds are kept */

/* One injected trial of a case, kept so that a miss can be read afterwards (docs/verdicts.md): which
 * round turned it, by how much. A trial the gate did not detect (final != regression) also keeps every
 * round's samples (`samples`, one pbh_calib_obs per round, block order), to be judged again by hand. */
typedef struct pbh_calib_trial {
    double pct;                                   /* injected slowdown, percent */
    int session;                                  /* 1-based session of the calibration */
    pbs_verdict final;                            /* what the gate reported after confirmation */
    int nrounds;
    pbh_calib_round round[PBH_CALIBRATE_MAX_ROUNDS];
    pbh_calib_obs *samples;                       /* per round, misses only (NULL otherwise) */
    size_t nsamples;
} pbh_calib_trial;

typedef struct pbh_calib_case {
    char *name;
    int runnable;                        /* 0: unsupported here, nothing measured */
    int aa_obs;                          /* A/A observations (A/A sessions + sessions where it was not injected) */
    int aa_flagged;                      /* ... flagged (regression or improvement) without confirmation */
    int aa_confirmed;                    /* ... a regression that survived confirmation (a gate failure) */
    double noise;                        /* stddev of the A/A change (fraction) */
    double spread;                       /* median within-run MAD / median of the head side (fraction) */
    int trials[PBH_CALIBRATE_MAX_SIZES]; /* injected trials per size */
    int detected[PBH_CALIBRATE_MAX_SIZES];        /* ... confirmed regressions */
    int improvement[PBH_CALIBRATE_MAX_SIZES];     /* ... reported as an improvement (never right) */
    double min_detectable;               /* fraction; 0 when there are too few A/A observations */
    pbh_calib_obs *obs;                  /* the A/A observations' samples, for the estimate */
    size_t nobs;
    pbh_calib_trial *tri;                /* every injected trial, in session order */
    size_t ntri;
} pbh_calib_case;

/* The A/A observations judged again at other settings (the settings sweep): what another alpha or
 * threshold would cost in false alarms (before confirmation) and gain or lose in what can be judged, on
 * this machine's own noise. The defaults are chosen from this table (docs/verdicts.md). */
#define PBH_CALIBRATE_SWEEP 9
typedef struct pbh_calib_setting {
    double alpha, threshold;
    int aa_verdicts, aa_flagged;  /* A/A observations, and those flagged (regression or improvement) */
    int cases, judgeable;         /* cases with enough observations; those whose min. detectable <= 2 x threshold */
    double median_min_detectable; /* over those cases (fraction) */
} pbh_calib_setting;

typedef struct pbh_calibration {
    pbh_calibrate_opts opts;
    pbh_calib_setting sweep[PBH_CALIBRATE_SWEEP]; /* alpha 0.05/0.01/0.001 x threshold 2/5/10 % */
    size_t nsweep;                                /* 0: not computed (no A/A observations) */
    pbh_calib_case *cases;
    size_t ncases;
    int sessions;                        /* sessions completed */
    int interrupted;                     /* 1 when cut short (SIGINT/SIGTERM): the figures cover `sessions` */
    int aa_sessions, aa_gate_failures;   /* pure A/A sessions, and those with a confirmed regression */
    int aa_verdicts, aa_flagged;         /* case verdicts in pure A/A sessions; flagged without confirmation */
    int inj_sessions;                    /* injected sessions */
    int inj_other_verdicts;              /* verdicts of the cases NOT injected in injected sessions */
    int inj_other_flagged, inj_other_confirmed; /* ... flagged without confirmation; confirmed */
    double plain_run_s;                  /* one plain run of the plan (0: not measured) */
    double session_s_median;             /* an A/A session: pair + confirmation, the gate's measuring time */
    double duration_s;
    int64_t id;                          /* store id once stored */
    char *started_at, *host, *cpu_model, *kernel, *suite;
    int cores;
} pbh_calibration;

/* Progress: a line per session. */
typedef void (*pbh_calibrate_progress_fn)(void *ud, int session, int sessions, const char *what, double elapsed_s);

/* Runs the calibration of plan with this binary (self_exe) on both sides. 0 or PBH_ENOMEM. Interrupted
 * (pbh_runner_interrupt), it stops after the current session, which is dropped, and sets out->interrupted:
 * the sessions completed still stand. */
int pbh_calibrate_run(const pbh_plan *plan, const pbh_calibrate_opts *o, pbh_calibration *out,
                      pbh_calibrate_progress_fn progress, void *ud);
void pbh_calibration_free(pbh_calibration *c);

/* The minimum detectable slowdown (fraction) of a case from its A/A observations, whose sides hold their
 * samples in blocks of block_reps (<= 0: the default), judged by cmp with `confirm` rounds (see above and
 * min_detectable.c); 0 when there are fewer than 3 observations. */
double pbh_calibrate_min_detectable(const pbh_calib_obs *obs, size_t nobs, int block_reps, const pbs_compare_opts *cmp,
                                    int confirm);

/* The same in parts, so that one set of arrangements (one bootstrap each) serves several settings:
 * arrange, then estimate at any alpha and threshold (cmp's confidence, resamples and seed are fixed at
 * arrange), then free. pbh_mds_required is one arrangement's smallest detected slowdown (exposed for
 * tests: the gate's rule at it says "regression", just below it does not). NULL when out of memory. */
typedef struct pbh_mds_arrangements pbh_mds_arrangements;
pbh_mds_arrangements *pbh_mds_arrange(const pbh_calib_obs *obs, size_t nobs, int block_reps,
                                      const pbs_compare_opts *cmp);
double pbh_mds_estimate(const pbh_mds_arrangements *set, double alpha, double threshold, int confirm);
/* pbh_mds_estimate is an upper 95 % confidence bound (the observations resampled); this is the estimate
 * at the observations as measured, never above it. */
double pbh_mds_estimate_point(const pbh_mds_arrangements *set, double alpha, double threshold, int confirm);
size_t pbh_mds_count(const pbh_mds_arrangements *set);
double pbh_mds_required(const pbh_mds_arrangements *set, size_t i, double alpha, double threshold);
/* ... and the smallest at which a --confirm round holds (pbh_confirm_round_holds: p < alpha, the change
 * itself beyond the threshold): never more than pbh_mds_required. */
double pbh_mds_required_confirm(const pbh_mds_arrangements *set, size_t i, double alpha, double threshold);
void pbh_mds_free(pbh_mds_arrangements *set);

/* Computes every case's figures (noise, spread, min. detectable) and the settings sweep from the A/A
 * observations held in c, at c->opts: what a run does at its end, and what `calibrate --show --reestimate`
 * does again on a stored calibration with this build's estimator. */
void pbh_calibrate_estimate(pbh_calibration *c);

/* Fills c->sweep from the cases' A/A observations (see pbh_calib_setting), with o's confirm rounds.
 * Exposed for tests. */
void pbh_calibrate_sweep(pbh_calibration *c, const pbh_calibrate_opts *o);
/* Exporters (format_calibration.c; format.h's rule: heap text). The JSON is also what the store keeps. */
char *pbh_calibration_format_json(const pbh_calibration *c);
char *pbh_calibration_format_table(const pbh_calibration *c);
char *pbh_calibration_format_markdown(const pbh_calibration *c);
/* The inverse of pbh_calibration_format_json, for a stored calibration (`calibrate --show`): fills out
 * (pbh_calibration_free it) without the A/A samples, which the JSON does not keep. PBH_EINPUT when text is
 * not a calibration document, PBH_ENOMEM. */
int pbh_calibration_parse_json(const char *text, pbh_calibration *out);
/* The validation report (`calibrate --validate`): the goals and what was measured. */
char *pbh_calibration_format_goals(const pbh_calibration *c, int markdown);

/* The gate's use: fills every compared case's min_detectable from a stored calibration's JSON and sets
 * cmp->calibration_id. Cases the calibration does not know stay 0. */
void pbh_calibration_annotate(pbh_comparison *cmp, const char *calibration_json, int64_t id);

#endif
