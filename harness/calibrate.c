/*
 * calibrate.c - the harness measuring its own error rates on this machine (calibrate.h): A/A and injected
 * sessions run as interleaved pairs of this build against itself, judged exactly as the gate judges, the
 * per-case figures, the minimum detectable slowdown estimate, and the exporters (table, Markdown, JSON,
 * the validation goals table).
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
} session;

static const pbh_executor *head_for(session *s, size_t i) {
    return s->injected && s->injected[i] ? &s->inj_ex : &s->head_ex;
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
        return 0;
    }
    return -1;
}

static int add_obs(pbh_calib_case *cc, const pbh_case *b, const pbh_case *h) {
    pbh_calib_obs *na = realloc(cc->obs, (cc->nobs + 1) * sizeof *na);
    if (!na)
        return PBH_ENOMEM;
    cc->obs = na;
    pbh_calib_obs *o = &cc->obs[cc->nobs];
    o->base = pbh_case_times(b);
    o->head = pbh_case_times(h);
    o->nb = b->nsamples;
    o->nh = h->nsamples;
    if (!o->base || !o->head) {
        free(o->base);
        free(o->head);
        return PBH_ENOMEM;
    }
    cc->nobs++;
    return PBH_OK;
}

static int is_flag(pbs_verdict v) {
    return v == PBS_VERDICT_REGRESSION || v == PBS_VERDICT_IMPROVEMENT;
}

/* One session: size_index < 0 for A/A; else group `group` is injected with sizes[size_index]. */
static int run_session(session *s, const pbh_calibrate_opts *o, int size_index, int group, pbh_calibration *out,
                       double *elapsed) {
    const pbh_plan *plan = s->plan;
    unsigned char *inj = calloc(plan->n + 1, 1);
    pbh_run *base = pbh_run_new(), *head = pbh_run_new();
    pbs_verdict *first = calloc(plan->n + 1, sizeof *first);
    int rc = inj && base && head && first ? PBH_OK : PBH_ENOMEM;
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
        for (size_t i = 0; i < plan->n; i++)
            first[i] = cmp.cases[i].verdict;
        pbh_compare_confirm_pair(&cmp, o->confirm, remeasure_pair, s);
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
                k->improvement[size_index] += first[i] == PBS_VERDICT_IMPROVEMENT;
                continue;
            }
            k->aa_obs++;
            k->aa_flagged += is_flag(first[i]);
            k->aa_confirmed += confirmed;
            confirmed_any |= confirmed;
            if (size_index >= 0) {
                out->inj_other_verdicts++;
                out->inj_other_flagged += is_flag(first[i]);
                out->inj_other_confirmed += confirmed;
            } else {
                out->aa_verdicts++;
                out->aa_flagged += is_flag(first[i]);
            }
            rc = add_obs(k, cc->base, cc->new_);
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
    free(inj);
    s->injected = NULL;
    return rc;
}

/* ---- minimum detectable slowdown ------------------------------------------------------------------- */

/* Fraction of the observations in which a slowdown `delta` of the head would be a regression. */
static double round_power(const pbh_calib_obs *obs, size_t nobs, double delta, const pbs_compare_opts *cmp) {
    size_t detected = 0;
    for (size_t i = 0; i < nobs; i++) {
        double *h = malloc((obs[i].nh + 1) * sizeof *h);
        if (!h)
            return 0;
        for (size_t j = 0; j < obs[i].nh; j++)
            h[j] = obs[i].head[j] * (1 + delta);
        pbs_comparison c;
        if (pbs_compare(obs[i].base, obs[i].nb, h, obs[i].nh, cmp, &c) == PBS_OK && c.verdict == PBS_VERDICT_REGRESSION)
            detected++;
        free(h);
    }
    return nobs ? (double)detected / (double)nobs : 0;
}

double pbh_calibrate_min_detectable(const pbh_calib_obs *obs, size_t nobs, const pbs_compare_opts *cmp, int confirm) {
    if (nobs < 3)
        return 0;
    /* every round must say "regression": the gate's power is one round's power ^ (1 + confirm) */
    double need = pow(0.95, 1.0 / (1 + (confirm > 0 ? confirm : 0)));
    double lo = 0, hi = 0.05;
    while (round_power(obs, nobs, hi, cmp) < need) {
        lo = hi;
        hi *= 2;
        if (hi > 20)
            return 20; /* nothing below +2000 %: this case cannot be judged here at all */
    }
    while (hi - lo > 0.0025) { /* a quarter of a percent is finer than anyone reads it */
        double mid = (lo + hi) / 2;
        if (round_power(obs, nobs, mid, cmp) >= need)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
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
    k->min_detectable = pbh_calibrate_min_detectable(k->obs, k->nobs, &o->cmp, o->confirm);
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
    double *aa_times = calloc((size_t)o->aa_pairs + 1, sizeof *aa_times);
    int rc = aa_times ? PBH_OK : PBH_ENOMEM;
    int n = 0;
    if (rc == PBH_OK && o->measure_plain_run) {
        /* the gate's yardstick: one plain run of the plan, this build, not stored */
        if (progress)
            progress(ud, ++n, sessions, "one plain run (the wall-time yardstick)", pbs_now() - t0);
        pbh_run *plain = pbh_run_new();
        if (!plain)
            rc = PBH_ENOMEM;
        else if ((rc = pbh_runner_run(plan, &s.head_ex, plain, NULL, NULL)) == PBH_OK)
            out->plain_run_s = plain->duration_s;
        pbh_run_free(plain);
    }
    for (int p = 0; rc == PBH_OK && p < o->aa_pairs; p++) {
        if (progress)
            progress(ud, ++n, sessions, "A/A pair", pbs_now() - t0);
        rc = run_session(&s, o, -1, 0, out, &aa_times[p]);
    }
    for (size_t k = 0; rc == PBH_OK && k < o->nsizes; k++) {
        for (int t = 0; rc == PBH_OK && t < o->trials[k] * groups; t++) {
            char what[64];
            snprintf(what, sizeof what, "+%g%% injected into group %d of %d", o->sizes[k], t % groups + 1, groups);
            if (progress)
                progress(ud, ++n, sessions, what, pbs_now() - t0);
            double el;
            rc = run_session(&s, o, (int)k, t % groups, out, &el);
        }
    }
    out->sessions = n;
    if (rc == PBH_OK && o->aa_pairs > 0)
        out->session_s_median = pbs_median(aa_times, (size_t)o->aa_pairs);
    free(aa_times);
    for (size_t i = 0; rc == PBH_OK && i < out->ncases; i++)
        finish_case(&out->cases[i], o);
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
    }
    free(c->cases);
    free(c->started_at);
    free(c->host);
    free(c->cpu_model);
    free(c->kernel);
    free(c->suite);
    memset(c, 0, sizeof *c);
}

/* ---- exporters ------------------------------------------------------------------------------------ */

static int can_judge(const pbh_calibration *c, const pbh_calib_case *k) {
    return k->min_detectable > 0 && k->min_detectable <= 2 * c->opts.cmp.threshold;
}

char *pbh_calibration_format_json(const pbh_calibration *c) {
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string("poolbench-calibration"));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "started_at", json_string(c->started_at ? c->started_at : ""));
    json_t *m = json_object();
    json_object_set_new(m, "host", c->host ? json_string(c->host) : json_null());
    json_object_set_new(m, "cpu_model", c->cpu_model ? json_string(c->cpu_model) : json_null());
    json_object_set_new(m, "cores", json_integer(c->cores));
    json_object_set_new(m, "kernel", c->kernel ? json_string(c->kernel) : json_null());
    json_object_set_new(root, "machine", m);
    json_object_set_new(root, "suite", c->suite ? json_string(c->suite) : json_null());
    json_t *st = json_object();
    json_object_set_new(st, "alpha", json_real(c->opts.cmp.alpha));
    json_object_set_new(st, "threshold", json_real(c->opts.cmp.threshold));
    json_object_set_new(st, "confirm", json_integer(c->opts.confirm));
    json_object_set_new(st, "block_reps", json_integer(c->opts.block_reps > 0 ? c->opts.block_reps : PBH_AB_DEFAULT_BLOCK_REPS));
    json_object_set_new(st, "aa_pairs", json_integer(c->opts.aa_pairs));
    json_object_set_new(st, "groups", json_integer(c->opts.groups));
    json_t *sizes = json_array(), *trials = json_array();
    for (size_t k = 0; k < c->opts.nsizes; k++) {
        json_array_append_new(sizes, json_real(c->opts.sizes[k]));
        json_array_append_new(trials, json_integer(c->opts.trials[k]));
    }
    json_object_set_new(st, "trials", trials);
    json_object_set_new(st, "injected_pct", sizes);
    json_object_set_new(root, "settings", st);
    json_t *sum = json_object();
    json_object_set_new(sum, "sessions", json_integer(c->sessions));
    json_object_set_new(sum, "aa_sessions", json_integer(c->aa_sessions));
    json_object_set_new(sum, "aa_gate_failures", json_integer(c->aa_gate_failures));
    json_object_set_new(sum, "injected_sessions", json_integer(c->inj_sessions));
    json_object_set_new(sum, "injected_sessions_other_flagged", json_integer(c->inj_other_flagged));
    json_object_set_new(sum, "injected_sessions_other_confirmed", json_integer(c->inj_other_confirmed));
    json_object_set_new(sum, "plain_run_s", json_real(c->plain_run_s));
    json_object_set_new(sum, "aa_session_s_median", json_real(c->session_s_median));
    json_object_set_new(sum, "duration_s", json_real(c->duration_s));
    json_object_set_new(root, "summary", sum);
    json_t *cases = json_array();
    for (size_t i = 0; i < c->ncases; i++) {
        const pbh_calib_case *k = &c->cases[i];
        json_t *o = json_object();
        json_object_set_new(o, "case", json_string(k->name));
        json_object_set_new(o, "runnable", json_boolean(k->runnable));
        if (k->runnable) {
            json_object_set_new(o, "aa_observations", json_integer(k->aa_obs));
            json_object_set_new(o, "aa_flagged", json_integer(k->aa_flagged));
            json_object_set_new(o, "aa_confirmed", json_integer(k->aa_confirmed));
            json_object_set_new(o, "noise", json_real(k->noise));
            json_object_set_new(o, "spread", json_real(k->spread));
            json_object_set_new(o, "min_detectable", json_real(k->min_detectable));
            json_object_set_new(o, "can_judge_threshold", json_boolean(can_judge(c, k)));
            json_t *inj = json_array();
            for (size_t s = 0; s < c->opts.nsizes; s++) {
                json_t *x = json_object();
                json_object_set_new(x, "pct", json_real(c->opts.sizes[s]));
                json_object_set_new(x, "trials", json_integer(k->trials[s]));
                json_object_set_new(x, "detected", json_integer(k->detected[s]));
                json_object_set_new(x, "reported_improvement", json_integer(k->improvement[s]));
                json_array_append_new(inj, x);
            }
            json_object_set_new(o, "injected", inj);
        }
        json_array_append_new(cases, o);
    }
    json_object_set_new(root, "cases", cases);
    char *text = pbh_json_text(root);
    json_decref(root);
    return text;
}

static void pct_or_dash(double v, char *buf, size_t len) {
    if (v > 0)
        snprintf(buf, len, "%.1f%%", 100 * v);
    else
        snprintf(buf, len, "-");
}

static void write_cases(FILE *out, const pbh_calibration *c, int md) {
    int w = 4;
    for (size_t i = 0; i < c->ncases; i++)
        if ((int)strlen(c->cases[i].name) > w)
            w = (int)strlen(c->cases[i].name);
    if (md) {
        fprintf(out, "| case | A/A obs | noise | spread | false alarms | confirmed |");
        for (size_t s = 0; s < c->opts.nsizes; s++)
            fprintf(out, " +%g%% detected |", c->opts.sizes[s]);
        fprintf(out, " min. detectable | judges %g%% |\n|---|---:|---:|---:|---:|---:|", 100 * c->opts.cmp.threshold);
        for (size_t s = 0; s < c->opts.nsizes; s++)
            fprintf(out, "---:|");
        fprintf(out, "---:|---|\n");
    } else {
        fprintf(out, "%-*s  %7s  %7s  %7s  %6s  %6s", w, "case", "A/A obs", "noise", "spread", "false", "confd");
        for (size_t s = 0; s < c->opts.nsizes; s++) {
            char h[16];
            snprintf(h, sizeof h, "+%g%%", c->opts.sizes[s]);
            fprintf(out, "  %7s", h);
        }
        fprintf(out, "  %8s  %s\n", "min.det", "judges threshold?");
    }
    for (size_t i = 0; i < c->ncases; i++) {
        const pbh_calib_case *k = &c->cases[i];
        if (!k->runnable) {
            if (md)
                fprintf(out, "| `%s` | unsupported |\n", k->name);
            else
                fprintf(out, "%-*s  unsupported here\n", w, k->name);
            continue;
        }
        char noise[16], spread[16], mds[16], judge[96];
        pct_or_dash(k->noise, noise, sizeof noise);
        pct_or_dash(k->spread, spread, sizeof spread);
        pct_or_dash(k->min_detectable, mds, sizeof mds);
        if (!(k->min_detectable > 0))
            snprintf(judge, sizeof judge, "too few A/A observations");
        else if (can_judge(c, k))
            snprintf(judge, sizeof judge, "yes");
        else
            snprintf(judge, sizeof judge, "too noisy here to judge %g%%: detectable from %.0f%%",
                     100 * c->opts.cmp.threshold, 100 * k->min_detectable);
        if (md)
            fprintf(out, "| `%s` | %d | %s | %s | %d | %d |", k->name, k->aa_obs, noise, spread, k->aa_flagged,
                    k->aa_confirmed);
        else
            fprintf(out, "%-*s  %7d  %7s  %7s  %6d  %6d", w, k->name, k->aa_obs, noise, spread, k->aa_flagged,
                    k->aa_confirmed);
        for (size_t s = 0; s < c->opts.nsizes; s++) {
            char d[24];
            if (k->trials[s])
                snprintf(d, sizeof d, "%d/%d", k->detected[s], k->trials[s]);
            else
                snprintf(d, sizeof d, "-");
            fprintf(out, md ? " %s |" : "  %7s", d);
        }
        fprintf(out, md ? " %s | %s |\n" : "  %8s  %s\n", mds, judge);
    }
}

static void write_summary(FILE *out, const pbh_calibration *c, int md) {
    const char *b = md ? "**" : "";
    fprintf(out, "%scalibration%s of suite %s on %s (%s, %d cores, %s): %d sessions in %.0f s\n", b, b,
            c->suite ? c->suite : "(flags)", c->host ? c->host : "?", c->cpu_model ? c->cpu_model : "?", c->cores,
            c->kernel ? c->kernel : "?", c->sessions, c->duration_s);
    fprintf(out, "%sgate settings: alpha %g, threshold %g%%, --confirm %d, interleaved blocks of %d repetitions\n",
            md ? "\n" : "", c->opts.cmp.alpha, 100 * c->opts.cmp.threshold, c->opts.confirm,
            c->opts.block_reps > 0 ? c->opts.block_reps : PBH_AB_DEFAULT_BLOCK_REPS);
    fprintf(out, "%sA/A pairs: %d, of which failed the gate (a confirmed regression): %d; injected sessions: %d "
                 "(cases not injected there flagged: %d, confirmed: %d)\n\n",
            md ? "\n" : "", c->aa_sessions, c->aa_gate_failures, c->inj_sessions, c->inj_other_flagged,
            c->inj_other_confirmed);
}

static void write_legend(FILE *out, int md) {
    fprintf(out, "%snoise = stddev of the A/A change of medians; spread = median MAD/median within a run; false = "
                 "A/A verdicts flagged without confirmation; confd = confirmed (gate failures); +N%% = injected "
                 "trials detected (confirmed); min.det = smallest slowdown detected with >= 95 %% power at these "
                 "settings, from the A/A observations\n",
            md ? "\n" : "");
}

static void write_table(FILE *out, const void *arg) {
    const pbh_calibration *c = arg;
    write_summary(out, c, 0);
    write_cases(out, c, 0);
    write_legend(out, 0);
}

static void write_markdown(FILE *out, const void *arg) {
    const pbh_calibration *c = arg;
    write_summary(out, c, 1);
    write_cases(out, c, 1);
    write_legend(out, 1);
}

char *pbh_calibration_format_table(const pbh_calibration *c) {
    return pbh_format_stream(write_table, c);
}

char *pbh_calibration_format_markdown(const pbh_calibration *c) {
    return pbh_format_stream(write_markdown, c);
}

typedef struct goals_arg {
    const pbh_calibration *c;
    int md;
} goals_arg;

static size_t size_index(const pbh_calibration *c, double pct) {
    for (size_t s = 0; s < c->opts.nsizes; s++)
        if (fabs(c->opts.sizes[s] - pct) < 1e-9)
            return s;
    return (size_t)-1;
}

static void goal_row(FILE *out, int md, const char *goal, const char *measured, int met) {
    if (md)
        fprintf(out, "| %s | %s | %s |\n", goal, measured, met < 0 ? "not measured" : met ? "yes" : "**no**");
    else
        fprintf(out, "%-58s  %-52s  %s\n", goal, measured, met < 0 ? "not measured" : met ? "yes" : "NO");
}

static void write_goals(FILE *out, const void *arg) {
    const goals_arg *g = arg;
    const pbh_calibration *c = g->c;
    int md = g->md;
    write_summary(out, c, md);
    if (md)
        fprintf(out, "| goal | measured | met |\n|---|---|---|\n");
    char m[256];
    snprintf(m, sizeof m, "%d of %d case verdicts (%.2f%%) in %d pairs", c->aa_flagged, c->aa_verdicts,
             c->aa_verdicts ? 100.0 * c->aa_flagged / c->aa_verdicts : 0.0, c->aa_sessions);
    goal_row(out, md, "A/A: <= 1 % of case verdicts flagged without --confirm", m,
             c->aa_sessions ? (c->aa_flagged * 100 <= c->aa_verdicts) : -1);
    snprintf(m, sizeof m, "%d of %d pairs", c->aa_gate_failures, c->aa_sessions);
    goal_row(out, md, "A/A: 0 gate failures with the default confirmation", m,
             c->aa_sessions ? c->aa_gate_failures == 0 : -1);
    size_t s10 = size_index(c, 10), s3 = size_index(c, 3);
    if (s10 != (size_t)-1) {
        int eligible = 0, met = 0, worst_d = 0, worst_t = 0;
        char worst[200] = "";
        for (size_t i = 0; i < c->ncases; i++) {
            const pbh_calib_case *k = &c->cases[i];
            if (!k->runnable || !(k->min_detectable > 0) || k->min_detectable > 0.05 || !k->trials[s10])
                continue;
            eligible++;
            int ok = k->detected[s10] * 100 >= 95 * k->trials[s10];
            met += ok;
            if (!worst[0] || k->detected[s10] * worst_t < worst_d * k->trials[s10]) {
                worst_d = k->detected[s10];
                worst_t = k->trials[s10];
                snprintf(worst, sizeof worst, "%s", k->name);
            }
        }
        snprintf(m, sizeof m, "%d of %d eligible cases (worst: %d/%d, %s)", met, eligible, worst_d, worst_t,
                 worst[0] ? worst : "-");
        goal_row(out, md, "+10 % detected in >= 95 % of trials, every case with min. detectable <= 5 %", m,
                 eligible ? met == eligible : -1);
        snprintf(m, sizeof m, "%d flagged, %d confirmed, of %d verdicts of cases not injected", c->inj_other_flagged,
                 c->inj_other_confirmed, c->inj_other_verdicts);
        goal_row(out, md, "... with no other case flagged (cases not injected in those sessions)", m,
                 c->inj_sessions ? c->inj_other_confirmed == 0 : -1);
    }
    if (s3 != (size_t)-1) {
        int imp = 0, trials = 0;
        for (size_t i = 0; i < c->ncases; i++) {
            imp += c->cases[i].improvement[s3];
            trials += c->cases[i].trials[s3];
        }
        snprintf(m, sizeof m, "%d of %d injected verdicts", imp, trials);
        goal_row(out, md, "+3 % never reported as an improvement", m, trials ? imp == 0 : -1);
    }
    if (c->plain_run_s > 0 && c->session_s_median > 0) {
        snprintf(m, sizeof m, "pair + confirmation %.1f s (median) vs plain run %.1f s = %.2fx", c->session_s_median,
                 c->plain_run_s, c->session_s_median / c->plain_run_s);
        goal_row(out, md, "gate wall time <= 2x one plain run (+ the two builds)", m,
                 c->session_s_median <= 2 * c->plain_run_s);
    }
    fprintf(out, "\n");
    write_cases(out, c, md);
    write_legend(out, md);
}

char *pbh_calibration_format_goals(const pbh_calibration *c, int markdown) {
    goals_arg g = {c, markdown};
    return pbh_format_stream(write_goals, &g);
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
