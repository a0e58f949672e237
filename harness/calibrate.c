/*
 * calibrate.c - the harness measuring its own error rates on this machine (calibrate.h): A/A and injected
 * sessions run as interleaved pairs of this build against itself, judged exactly as the gate judges, the
 * per-case figures, the minimum detectable slowdown estimate, and the gate's reading of a stored
 * calibration. The exporters are format_calibration.c's.
 *
 * DESIGN
 *  A session is the plan run case by case with pbh_ab_run_case, both sides this binary; the head side of
 *  an injected case is an executor whose case processes get --inject-slowdown. The two runs are compared
 *  with pbh_compare_runs and confirmed with pbh_compare_confirm_pair, whose re-measurement re-runs the
 *  case's pair with the same injection (a real slowdown stays real in every round). Nothing here reads or
 *  writes the store: the CLI stores the JSON document.
 */
#include "calibrate.h"

#include "abrun.h"
#include "common.h"
#include "context.h"
#include "format.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pbh_calibrate_opts_default(pbh_calibrate_opts *o) {
    memset(o, 0, sizeof *o);
    o->aa_pairs = PBH_CALIBRATE_DEFAULT_PAIRS;
    o->sizes[0] = 5;
    o->sizes[1] = 10;
    o->sizes[2] = 20;
    o->nsizes = 3;
    o->trials[0] = o->trials[1] = o->trials[2] = 1;
    o->groups = PBH_CALIBRATE_DEFAULT_GROUPS;
    pbs_compare_opts_default(&o->cmp);
    o->confirm = 2;
    o->seed = 1;
}

/* ---- sessions ------------------------------------------------------------------------------------- */

typedef struct session {
    const pbh_plan *plan;
    pbh_child_executor base_ce, head_ce, inj_ce;
    pbh_executor base_ex, head_ex, inj_ex;
    const unsigned char *injected; /* per plan case */
    pbh_ab_opts ab;
    uint64_t next_seed;
    const pbs_compare_opts *cmp; /* the gate's rule, to record each confirmation round of a trial */
    pbh_calib_trial *trials;     /* this session's injected trials, per plan case (NULL: an A/A session) */
} session;

static const pbh_executor *head_for(session *s, size_t i) {
    return s->injected && s->injected[i] ? &s->inj_ex : &s->head_ex;
}

/* Appends the samples of b and h to a list of observations. PBH_OK or PBH_ENOMEM (the list unchanged). */
static int append_obs(pbh_calib_obs **list, size_t *n, const pbh_case *b, const pbh_case *h) {
    pbh_calib_obs *na = realloc(*list, (*n + 1) * sizeof *na);
    if (!na)
        return PBH_ENOMEM;
    *list = na;
    pbh_calib_obs *o = &na[*n];
    o->base = pbh_case_times(b);
    o->head = pbh_case_times(h);
    o->nb = b->nsamples;
    o->nh = h->nsamples;
    if (!o->base || !o->head) {
        free(o->base);
        free(o->head);
        return PBH_ENOMEM;
    }
    (*n)++;
    return PBH_OK;
}

/* A round of an injected trial: its verdict and figures as the gate's rules give them, and its samples
 * (dropped again by keep_trial unless the trial is missed). A round that could not be compared (a side
 * failed) is recorded as "too few samples". */
static void trial_add_round(pbh_calib_trial *t, const pbh_case *b, const pbh_case *h, const pbs_compare_opts *cmp) {
    if (t->nrounds >= PBH_CALIBRATE_MAX_ROUNDS)
        return;
    pbh_calib_round *r = &t->round[t->nrounds++];
    pbs_comparison c;
    if (pbh_case_is_ok(b) && pbh_case_is_ok(h) && pbh_compare_cases(b, h, cmp, &c) == PBS_OK) {
        int held = r == t->round ? pbh_verdict_is_flag(c.verdict)
                                 : pbh_confirm_round_holds(&c, t->round[0].verdict, cmp);
        *r = (pbh_calib_round){c.verdict, c.change, c.ci.lo, c.ci.hi, c.mwu.p, held};
    } else {
        *r = (pbh_calib_round){PBS_VERDICT_TOO_FEW_SAMPLES, NAN, NAN, NAN, NAN, 0};
    }
    (void)append_obs(&t->samples, &t->nsamples, b, h); /* out of memory: the round is kept without samples */
}

static void trial_clear(pbh_calib_trial *t) {
    for (size_t j = 0; j < t->nsamples; j++) {
        free(t->samples[j].base);
        free(t->samples[j].head);
    }
    free(t->samples);
    t->samples = NULL;
    t->nsamples = 0;
}

/* The trial goes to its case; a detected one without its samples (only misses are read by hand). */
static int keep_trial(pbh_calib_case *k, pbh_calib_trial *t, pbs_verdict final) {
    t->final = final;
    if (final == PBS_VERDICT_REGRESSION)
        trial_clear(t);
    pbh_calib_trial *na = realloc(k->tri, (k->ntri + 1) * sizeof *na);
    if (!na) {
        trial_clear(t);
        return PBH_ENOMEM;
    }
    k->tri = na;
    k->tri[k->ntri++] = *t;
    memset(t, 0, sizeof *t); /* the case owns the samples now */
    return PBH_OK;
}

/* compare's --confirm on a pair: the case again, both sides, interleaved, with the same injection */
static int remeasure_pair(void *ud, const pbh_case *base, const pbh_case *new_, pbh_case *fresh_base,
                          pbh_case *fresh_new) {
    (void)new_;
    session *s = ud;
    for (size_t i = 0; i < s->plan->n; i++) {
        if (strcmp(s->plan->cases[i].name, base->name) != 0)
            continue;
        pbh_ab_opts ab = s->ab;
        ab.seed = s->next_seed++;
        pbh_case_describe(fresh_base, &s->plan->cases[i]);
        pbh_case_describe(fresh_new, &s->plan->cases[i]);
        pbh_ab_run_case(&s->plan->cases[i], i, &s->base_ex, head_for(s, i), &ab, fresh_base, fresh_new);
        if (s->trials && s->injected[i])
            trial_add_round(&s->trials[i], fresh_base, fresh_new, s->cmp);
        return 0;
    }
    return -1;
}


/* One session: size_index < 0 for A/A; else group `group` is injected with sizes[size_index]. */
static int run_session(session *s, const pbh_calibrate_opts *o, int size_index, int group, pbh_calibration *out,
                       double *elapsed) {
    const pbh_plan *plan = s->plan;
    unsigned char *inj = calloc(plan->n + 1, 1);
    pbh_run *base = pbh_run_new(), *head = pbh_run_new();
    pbs_verdict *first = calloc(plan->n + 1, sizeof *first);
    pbh_calib_trial *trials = size_index >= 0 ? calloc(plan->n + 1, sizeof *trials) : NULL;
    int rc = inj && base && head && first && (size_index < 0 || trials) ? PBH_OK : PBH_ENOMEM;
    double t0 = pbs_now();
    if (rc == PBH_OK && size_index >= 0) {
        for (size_t i = 0; i < plan->n; i++)
            inj[i] = (int)(i % (size_t)o->groups) == group;
        s->inj_ce.inject_pct = o->sizes[size_index];
    }
    s->injected = inj;
    for (size_t i = 0; rc == PBH_OK && i < plan->n && !pbh_runner_interrupted(); i++) {
        pbh_case *b = pbh_run_add_case(base), *h = b ? pbh_run_add_case(head) : NULL;
        if (!h) {
            rc = PBH_ENOMEM;
            break;
        }
        pbh_case_describe(b, &plan->cases[i]);
        pbh_case_describe(h, &plan->cases[i]);
        s->ab.seed = s->next_seed++;
        pbh_ab_run_case(&plan->cases[i], i, &s->base_ex, head_for(s, i), &s->ab, b, h);
    }
    if (rc == PBH_OK && pbh_runner_interrupted())
        rc = PBH_EINPUT;
    pbh_comparison cmp;
    memset(&cmp, 0, sizeof cmp);
    if (rc == PBH_OK && pbh_compare_runs(base, head, &o->cmp, &cmp) != 0)
        rc = PBH_ENOMEM;
    if (rc == PBH_OK) {
        for (size_t i = 0; i < plan->n; i++) {
            first[i] = cmp.cases[i].verdict;
            if (trials && inj[i] && cmp.cases[i].match == PBH_MATCH_BOTH) {
                trials[i].pct = o->sizes[size_index];
                trials[i].session = out->aa_sessions + out->inj_sessions + 1;
                trial_add_round(&trials[i], cmp.cases[i].base, cmp.cases[i].new_, &cmp.opts);
            }
        }
        s->trials = trials;
        s->cmp = &cmp.opts;
        pbh_compare_confirm_pair(&cmp, o->confirm, remeasure_pair, s);
        s->trials = NULL;
    }
    if (rc == PBH_OK && pbh_runner_interrupted())
        rc = PBH_EINPUT; /* a session cut short says nothing: it is not counted */
    if (rc == PBH_OK) {
        int confirmed_any = 0;
        for (size_t i = 0; i < plan->n && rc == PBH_OK; i++) {
            const pbh_case_cmp *cc = &cmp.cases[i];
            pbh_calib_case *k = &out->cases[i];
            if (cc->match != PBH_MATCH_BOTH)
                continue;
            int confirmed = cc->verdict == PBS_VERDICT_REGRESSION;
            if (inj[i]) {
                k->trials[size_index]++;
                k->detected[size_index] += confirmed;
                /* what the gate reports: an improvement confirmed like a regression (compare.h) */
                k->improvement[size_index] += cc->verdict == PBS_VERDICT_IMPROVEMENT;
                rc = keep_trial(k, &trials[i], cc->verdict);
                continue;
            }
            k->aa_obs++;
            k->aa_flagged += pbh_verdict_is_flag(first[i]);
            k->aa_confirmed += confirmed;
            confirmed_any |= confirmed;
            if (size_index >= 0) {
                out->inj_other_verdicts++;
                out->inj_other_flagged += pbh_verdict_is_flag(first[i]);
                out->inj_other_confirmed += confirmed;
            } else {
                out->aa_verdicts++;
                out->aa_flagged += pbh_verdict_is_flag(first[i]);
            }
            rc = append_obs(&k->obs, &k->nobs, cc->base, cc->new_);
        }
        if (size_index < 0) {
            out->aa_sessions++;
            out->aa_gate_failures += confirmed_any;
        } else {
            out->inj_sessions++;
        }
    }
    *elapsed = pbs_now() - t0;
    pbh_comparison_free(&cmp);
    pbh_run_free(base);
    pbh_run_free(head);
    free(first);
    for (size_t i = 0; trials && i < plan->n; i++)
        trial_clear(&trials[i]); /* those not kept (a session cut short, a case that did not run) */
    free(trials);
    free(inj);
    s->injected = NULL;
    return rc;
}

static void finish_case(pbh_calib_case *k, const pbh_calibrate_opts *o) {
    if (!k->nobs)
        return;
    double *chg = malloc(k->nobs * sizeof *chg), *spread = malloc(k->nobs * sizeof *spread);
    if (chg && spread) {
        for (size_t i = 0; i < k->nobs; i++) {
            double mb = pbs_median(k->obs[i].base, k->obs[i].nb), mh = pbs_median(k->obs[i].head, k->obs[i].nh);
            chg[i] = mb > 0 ? mh / mb - 1 : 0;
            spread[i] = mh > 0 ? pbs_mad(k->obs[i].head, k->obs[i].nh) / mh : 0;
        }
        k->noise = k->nobs > 1 ? pbs_stddev(chg, k->nobs) : 0;
        k->spread = pbs_median(spread, k->nobs);
    }
    free(chg);
    free(spread);
    k->min_detectable = pbh_calibrate_min_detectable(k->obs, k->nobs, o->block_reps, &o->cmp, o->confirm);
}

/* The settings sweep (calibrate.h): every case's A/A observations judged at each alpha x threshold, the
 * confirmation rounds as the gate's. One round's verdicts: confirmation can only lower the false alarms. */
void pbh_calibrate_sweep(pbh_calibration *out, const pbh_calibrate_opts *o) {
    static const double alphas[] = {0.05, 0.01, 0.001}, thresholds[] = {0.02, 0.05, 0.10};
    double *mds = calloc(PBH_CALIBRATE_SWEEP * (out->ncases + 1), sizeof *mds);
    if (!mds)
        return;
    out->nsweep = 0;
    for (size_t a = 0; a < 3; a++) {
        for (size_t t = 0; t < 3; t++) {
            pbh_calib_setting *st = &out->sweep[out->nsweep++];
            memset(st, 0, sizeof *st);
            st->alpha = alphas[a];
            st->threshold = thresholds[t];
            pbs_compare_opts cmp = o->cmp;
            cmp.alpha = alphas[a];
            cmp.threshold = thresholds[t];
            for (size_t i = 0; i < out->ncases; i++) {
                const pbh_calib_case *k = &out->cases[i];
                for (size_t j = 0; j < k->nobs; j++) {
                    pbs_comparison c;
                    if (pbs_compare(k->obs[j].base, k->obs[j].nb, k->obs[j].head, k->obs[j].nh, &cmp, &c) != PBS_OK)
                        continue;
                    st->aa_verdicts++;
                    st->aa_flagged += pbh_verdict_is_flag(c.verdict);
                }
            }
        }
    }
    /* the minimum detectable per setting: one set of arrangements per case serves all nine */
    for (size_t i = 0; i < out->ncases; i++) {
        const pbh_calib_case *k = &out->cases[i];
        if (k->nobs < 3)
            continue;
        pbh_mds_arrangements *set = pbh_mds_arrange(k->obs, k->nobs, o->block_reps, &o->cmp);
        for (size_t s = 0; set && s < out->nsweep; s++) {
            pbh_calib_setting *st = &out->sweep[s];
            double md = pbh_mds_estimate(set, st->alpha, st->threshold, o->confirm);
            mds[s * (out->ncases + 1) + (size_t)st->cases++] = md;
            st->judgeable += md <= 2 * st->threshold + 1e-12;
        }
        pbh_mds_free(set);
    }
    for (size_t s = 0; s < out->nsweep; s++) {
        pbh_calib_setting *st = &out->sweep[s];
        st->median_min_detectable = st->cases ? pbs_median(&mds[s * (out->ncases + 1)], (size_t)st->cases) : 0;
    }
    free(mds);
}

void pbh_calibrate_estimate(pbh_calibration *c) {
    for (size_t i = 0; i < c->ncases; i++)
        finish_case(&c->cases[i], &c->opts);
    if (c->sessions > 0)
        pbh_calibrate_sweep(c, &c->opts);
}

int pbh_calibrate_run(const pbh_plan *plan, const pbh_calibrate_opts *o, pbh_calibration *out,
                      pbh_calibrate_progress_fn progress, void *ud) {
    memset(out, 0, sizeof *out);
    out->opts = *o;
    out->cases = calloc(plan->n + 1, sizeof *out->cases);
    if (!out->cases)
        return PBH_ENOMEM;
    out->ncases = plan->n;
    for (size_t i = 0; i < plan->n; i++) {
        out->cases[i].name = pbh_strdup(plan->cases[i].name);
        out->cases[i].runnable = plan->cases[i].supported;
    }
    pbh_context ctx;
    if (pbh_context_collect(&ctx, 0, NULL) == 0) {
        out->started_at = pbh_strdup(ctx.started_at);
        out->host = pbh_strdup(ctx.host);
        out->cpu_model = pbh_strdup(ctx.cpu_model);
        out->kernel = pbh_strdup(ctx.kernel);
        out->cores = ctx.cores;
    }
    pbh_context_clear(&ctx);
    out->suite = plan->suite ? pbh_strdup(plan->suite->name) : NULL;

    session s;
    memset(&s, 0, sizeof s);
    s.plan = plan;
    pbh_child_executor_init(&s.base_ce, &s.base_ex);
    pbh_child_executor_init(&s.head_ce, &s.head_ex);
    pbh_child_executor_init(&s.inj_ce, &s.inj_ex);
    snprintf(s.inj_ce.inject_glob, sizeof s.inj_ce.inject_glob, "*");
    s.ab.block_reps = o->block_reps;
    s.next_seed = o->seed;

    double t0 = pbs_now();
    int groups = o->groups > 0 ? o->groups : 1;
    int sessions = o->aa_pairs + (o->measure_plain_run ? 1 : 0);
    for (size_t k = 0; k < o->nsizes; k++)
        sessions += o->trials[k] * groups;
    /* The sessions interleaved by kind (A/A, each injected size), each kind spread evenly over the
     * calibration: a calibration cut short (Ctrl-C) still has a bit of everything. */
    typedef struct planned {
        int size_index, group;
        double at; /* position within its kind, 0..1 */
    } planned;
    planned *todo = calloc((size_t)sessions + 1, sizeof *todo);
    double *aa_times = calloc((size_t)o->aa_pairs + 1, sizeof *aa_times);
    int rc = aa_times && todo ? PBH_OK : PBH_ENOMEM;
    int ntodo = 0, n = 0;
    for (int p = 0; rc == PBH_OK && p < o->aa_pairs; p++)
        todo[ntodo++] = (planned){-1, 0, (p + 0.5) / o->aa_pairs};
    for (size_t k = 0; rc == PBH_OK && k < o->nsizes; k++)
        for (int t = 0; t < o->trials[k] * groups; t++)
            todo[ntodo++] = (planned){(int)k, t % groups, (t + 0.5) / (o->trials[k] * groups)};
    for (int i = 1; i < ntodo; i++) /* stable insertion sort by position: A/A first on ties */
        for (int j = i; j > 0 && todo[j].at < todo[j - 1].at; j--) {
            planned tmp = todo[j];
            todo[j] = todo[j - 1];
            todo[j - 1] = tmp;
        }
    if (rc == PBH_OK && o->measure_plain_run) {
        /* the gate's yardstick: one plain run of the plan, this build, not stored */
        if (progress)
            progress(ud, ++n, sessions, "one plain run (the wall-time yardstick)", pbs_now() - t0);
        pbh_run *plain = pbh_run_new();
        if (!plain)
            rc = PBH_ENOMEM;
        else if ((rc = pbh_runner_run(o->plain_plan ? o->plain_plan : plan, &s.head_ex, plain, NULL, NULL)) == PBH_OK &&
                 !pbh_runner_interrupted())
            out->plain_run_s = plain->duration_s;
        pbh_run_free(plain);
    }
    int aa_done = 0;
    for (int i = 0; rc == PBH_OK && i < ntodo && !pbh_runner_interrupted(); i++) {
        char what[64];
        if (todo[i].size_index < 0)
            snprintf(what, sizeof what, "A/A pair");
        else
            snprintf(what, sizeof what, "+%g%% injected into group %d of %d", o->sizes[todo[i].size_index],
                     todo[i].group + 1, groups);
        if (progress)
            progress(ud, ++n, sessions, what, pbs_now() - t0);
        double el;
        rc = run_session(&s, o, todo[i].size_index, todo[i].group, out, &el);
        if (rc == PBH_OK && todo[i].size_index < 0)
            aa_times[aa_done++] = el;
    }
    free(todo);
    if (rc == PBH_EINPUT || pbh_runner_interrupted()) { /* interrupted: what was completed still stands */
        out->interrupted = 1;
        rc = PBH_OK;
    }
    n = out->aa_sessions + out->inj_sessions;
    out->sessions = n;
    if (rc == PBH_OK && aa_done > 0)
        out->session_s_median = pbs_median(aa_times, (size_t)aa_done);
    free(aa_times);
    if (rc == PBH_OK)
        pbh_calibrate_estimate(out);
    out->duration_s = pbs_now() - t0;
    return rc;
}

void pbh_calibration_free(pbh_calibration *c) {
    for (size_t i = 0; i < c->ncases; i++) {
        free(c->cases[i].name);
        for (size_t j = 0; j < c->cases[i].nobs; j++) {
            free(c->cases[i].obs[j].base);
            free(c->cases[i].obs[j].head);
        }
        free(c->cases[i].obs);
        for (size_t j = 0; j < c->cases[i].ntri; j++)
            trial_clear(&c->cases[i].tri[j]);
        free(c->cases[i].tri);
    }
    free(c->cases);
    free(c->started_at);
    free(c->host);
    free(c->cpu_model);
    free(c->kernel);
    free(c->suite);
    memset(c, 0, sizeof *c);
}

void pbh_calibration_annotate(pbh_comparison *cmp, const char *calibration_json, int64_t id) {
    json_t *root = json_loads(calibration_json, 0, NULL);
    json_t *cases = root ? json_object_get(root, "cases") : NULL;
    if (!json_is_array(cases)) {
        json_decref(root);
        return;
    }
    for (size_t i = 0; i < cmp->ncases; i++) {
        size_t j;
        json_t *o;
        json_array_foreach(cases, j, o) {
            const char *name = json_string_value(json_object_get(o, "case"));
            json_t *mds = json_object_get(o, "min_detectable");
            if (name && strcmp(name, cmp->cases[i].name) == 0 && json_is_number(mds))
                cmp->cases[i].min_detectable = json_number_value(mds);
        }
    }
    cmp->calibration_id = id;
    json_decref(root);
}
