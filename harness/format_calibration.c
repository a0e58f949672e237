/*
 * format_calibration.c - a calibration (calibrate.h) as a terminal table, Markdown, JSON (also what the
 * store keeps) and back from that JSON (`calibrate --show` prints a stored one), and the validation report:
 * the goals next to what was measured. Only serializes: the figures are calibrate.c's.
 */
#include "format.h"

#include "abrun.h"
#include "calibrate.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int can_judge(const pbh_calibration *c, const pbh_calib_case *k) {
    return k->min_detectable > 0 && k->min_detectable <= 2 * c->opts.cmp.threshold;
}

static json_t *numbers_json(const double *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

/* Observations' raw per-iteration times, each side in block order (settings.block_reps per block): a case's
 * A/A observations, so that a later build can estimate again from what was measured (`calibrate --show
 * --reestimate`), and a missed trial's rounds. */
static json_t *observations_json(const pbh_calib_obs *obs, size_t n) {
    json_t *a = json_array();
    for (size_t j = 0; j < n; j++) {
        json_t *x = json_object();
        json_object_set_new(x, "base", numbers_json(obs[j].base, obs[j].nb));
        json_object_set_new(x, "head", numbers_json(obs[j].head, obs[j].nh));
        json_array_append_new(a, x);
    }
    return a;
}

static json_t *number_or_null(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

/* Every injected trial: each round's verdict and figures; a missed trial also each round's samples. */
static json_t *trials_json(const pbh_calib_case *k) {
    json_t *a = json_array();
    for (size_t j = 0; j < k->ntri; j++) {
        const pbh_calib_trial *t = &k->tri[j];
        json_t *x = json_object(), *rounds = json_array();
        json_object_set_new(x, "pct", json_real(t->pct));
        json_object_set_new(x, "session", json_integer(t->session));
        json_object_set_new(x, "verdict", json_string(pbs_verdict_name(t->final)));
        for (int r = 0; r < t->nrounds; r++) {
            const pbh_calib_round *rd = &t->round[r];
            json_t *y = json_object();
            json_object_set_new(y, "verdict", json_string(pbs_verdict_name(rd->verdict)));
            json_object_set_new(y, "change", number_or_null(rd->change));
            json_object_set_new(y, "ci_lo", number_or_null(rd->lo));
            json_object_set_new(y, "ci_hi", number_or_null(rd->hi));
            json_object_set_new(y, "p", number_or_null(rd->p));
            json_object_set_new(y, "held", json_boolean(rd->held));
            json_array_append_new(rounds, y);
        }
        json_object_set_new(x, "rounds", rounds);
        if (t->nsamples)
            json_object_set_new(x, "samples", observations_json(t->samples, t->nsamples));
        json_array_append_new(a, x);
    }
    return a;
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
    json_object_set_new(sum, "interrupted", json_boolean(c->interrupted));
    json_object_set_new(sum, "aa_sessions", json_integer(c->aa_sessions));
    json_object_set_new(sum, "aa_gate_failures", json_integer(c->aa_gate_failures));
    json_object_set_new(sum, "aa_verdicts", json_integer(c->aa_verdicts));
    json_object_set_new(sum, "aa_flagged", json_integer(c->aa_flagged));
    json_object_set_new(sum, "injected_sessions_other_verdicts", json_integer(c->inj_other_verdicts));
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
            json_object_set_new(o, "aa_samples", observations_json(k->obs, k->nobs));
            json_object_set_new(o, "trials", trials_json(k));
        }
        json_array_append_new(cases, o);
    }
    json_object_set_new(root, "cases", cases);
    json_t *sweep = json_array();
    for (size_t i = 0; i < c->nsweep; i++) {
        const pbh_calib_setting *set = &c->sweep[i];
        json_t *o = json_object();
        json_object_set_new(o, "alpha", json_real(set->alpha));
        json_object_set_new(o, "threshold", json_real(set->threshold));
        json_object_set_new(o, "aa_verdicts", json_integer(set->aa_verdicts));
        json_object_set_new(o, "aa_flagged", json_integer(set->aa_flagged));
        json_object_set_new(o, "cases", json_integer(set->cases));
        json_object_set_new(o, "judgeable", json_integer(set->judgeable));
        json_object_set_new(o, "median_min_detectable", json_real(set->median_min_detectable));
        json_array_append_new(sweep, o);
    }
    json_object_set_new(root, "sweep", sweep);
    char *text = pbh_json_text(root);
    json_decref(root);
    return text;
}

static char *dup_or_null(json_t *v) {
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* A JSON array of numbers as a malloc'd array (NULL and *n = 0 when it holds none or is not one). */
static double *numbers_of(json_t *a, size_t *n) {
    *n = 0;
    size_t len = json_array_size(a);
    double *v = len ? malloc(len * sizeof *v) : NULL;
    for (size_t i = 0; v && i < len; i++) {
        json_t *x = json_array_get(a, i);
        if (!json_is_number(x)) {
            free(v);
            return NULL;
        }
        v[(*n)++] = json_number_value(x);
    }
    return v;
}

/* Reads observations_json's array back into *out (*n of them); observations that are not two arrays of
 * numbers are skipped. Returns 0 only when out of memory. */
static int parse_observations(json_t *a, pbh_calib_obs **out, size_t *n) {
    size_t len = json_array_size(a);
    if (!len)
        return 1;
    *out = calloc(len, sizeof **out);
    if (!*out)
        return 0;
    for (size_t j = 0; j < len; j++) {
        pbh_calib_obs *o = &(*out)[*n];
        o->base = numbers_of(json_object_get(json_array_get(a, j), "base"), &o->nb);
        o->head = numbers_of(json_object_get(json_array_get(a, j), "head"), &o->nh);
        if (o->base && o->head)
            (*n)++;
        else {
            free(o->base);
            free(o->head);
        }
    }
    return 1;
}

static int int_of(json_t *o, const char *key) {
    return (int)json_integer_value(json_object_get(o, key));
}

static double num_of(json_t *o, const char *key) {
    return json_number_value(json_object_get(o, key));
}

static double num_or_nan(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static pbs_verdict verdict_of(json_t *o, const char *key) {
    const char *name = json_string_value(json_object_get(o, key));
    static const pbs_verdict all[] = {PBS_VERDICT_NO_CHANGE, PBS_VERDICT_WITHIN_NOISE, PBS_VERDICT_REGRESSION,
                                      PBS_VERDICT_IMPROVEMENT, PBS_VERDICT_TOO_FEW_SAMPLES};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, pbs_verdict_name(all[i])) == 0)
            return all[i];
    return PBS_VERDICT_TOO_FEW_SAMPLES;
}

/* The injected trials back (a calibration from before they were kept has none). 0: out of memory. */
static int parse_trials(json_t *a, pbh_calib_case *k) {
    size_t len = json_array_size(a);
    if (!len)
        return 1;
    k->tri = calloc(len, sizeof *k->tri);
    if (!k->tri)
        return 0;
    for (size_t j = 0; j < len; j++) {
        json_t *x = json_array_get(a, j), *rounds = json_object_get(x, "rounds"), *smp = json_object_get(x, "samples");
        pbh_calib_trial *t = &k->tri[k->ntri++];
        t->pct = num_of(x, "pct");
        t->session = int_of(x, "session");
        t->final = verdict_of(x, "verdict");
        for (size_t r = 0; r < json_array_size(rounds) && t->nrounds < PBH_CALIBRATE_MAX_ROUNDS; r++) {
            json_t *y = json_array_get(rounds, r);
            t->round[t->nrounds++] = (pbh_calib_round){verdict_of(y, "verdict"), num_or_nan(y, "change"),
                                                       num_or_nan(y, "ci_lo"), num_or_nan(y, "ci_hi"),
                                                       num_or_nan(y, "p"), json_is_true(json_object_get(y, "held"))};
        }
        if (!parse_observations(smp, &t->samples, &t->nsamples))
            return 0;
    }
    return 1;
}

int pbh_calibration_parse_json(const char *text, pbh_calibration *out) {
    memset(out, 0, sizeof *out);
    pbs_compare_opts_default(&out->opts.cmp); /* what the document does not record is the gate's default */
    json_t *root = json_loads(text, 0, NULL);
    json_t *fmt = root ? json_object_get(root, "format") : NULL;
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "poolbench-calibration") != 0) {
        json_decref(root);
        return PBH_EINPUT;
    }
    json_t *m = json_object_get(root, "machine"), *st = json_object_get(root, "settings"),
           *sum = json_object_get(root, "summary"), *cases = json_object_get(root, "cases");
    out->started_at = dup_or_null(json_object_get(root, "started_at"));
    out->suite = dup_or_null(json_object_get(root, "suite"));
    out->host = dup_or_null(json_object_get(m, "host"));
    out->cpu_model = dup_or_null(json_object_get(m, "cpu_model"));
    out->kernel = dup_or_null(json_object_get(m, "kernel"));
    out->cores = int_of(m, "cores");
    out->opts.cmp.alpha = num_of(st, "alpha");
    out->opts.cmp.threshold = num_of(st, "threshold");
    out->opts.confirm = int_of(st, "confirm");
    out->opts.block_reps = int_of(st, "block_reps");
    out->opts.aa_pairs = int_of(st, "aa_pairs");
    out->opts.groups = int_of(st, "groups");
    json_t *sizes = json_object_get(st, "injected_pct"), *trials = json_object_get(st, "trials");
    for (size_t k = 0; k < json_array_size(sizes) && k < PBH_CALIBRATE_MAX_SIZES; k++) {
        out->opts.sizes[k] = json_number_value(json_array_get(sizes, k));
        out->opts.trials[k] = (int)json_integer_value(json_array_get(trials, k));
        out->opts.nsizes = k + 1;
    }
    out->sessions = int_of(sum, "sessions");
    out->interrupted = json_is_true(json_object_get(sum, "interrupted"));
    out->aa_sessions = int_of(sum, "aa_sessions");
    out->aa_gate_failures = int_of(sum, "aa_gate_failures");
    out->aa_verdicts = int_of(sum, "aa_verdicts");
    out->aa_flagged = int_of(sum, "aa_flagged");
    out->inj_sessions = int_of(sum, "injected_sessions");
    out->inj_other_verdicts = int_of(sum, "injected_sessions_other_verdicts");
    out->inj_other_flagged = int_of(sum, "injected_sessions_other_flagged");
    out->inj_other_confirmed = int_of(sum, "injected_sessions_other_confirmed");
    out->plain_run_s = num_of(sum, "plain_run_s");
    out->session_s_median = num_of(sum, "aa_session_s_median");
    out->duration_s = num_of(sum, "duration_s");
    size_t n = json_array_size(cases);
    out->cases = calloc(n ? n : 1, sizeof *out->cases);
    int ok = out->cases != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *o = json_array_get(cases, i);
        pbh_calib_case *k = &out->cases[out->ncases++];
        k->name = strdup(json_is_string(json_object_get(o, "case")) ? json_string_value(json_object_get(o, "case")) : "?");
        ok = k->name != NULL;
        k->runnable = json_is_true(json_object_get(o, "runnable"));
        k->aa_obs = int_of(o, "aa_observations");
        k->aa_flagged = int_of(o, "aa_flagged");
        k->aa_confirmed = int_of(o, "aa_confirmed");
        k->noise = num_of(o, "noise");
        k->spread = num_of(o, "spread");
        k->min_detectable = num_of(o, "min_detectable");
        ok = ok && parse_observations(json_object_get(o, "aa_samples"), &k->obs, &k->nobs);
        ok = ok && parse_trials(json_object_get(o, "trials"), k);
        json_t *inj = json_object_get(o, "injected");
        for (size_t s = 0; s < json_array_size(inj) && s < out->opts.nsizes; s++) {
            json_t *x = json_array_get(inj, s);
            k->trials[s] = int_of(x, "trials");
            k->detected[s] = int_of(x, "detected");
            k->improvement[s] = int_of(x, "reported_improvement");
        }
    }
    json_t *sweep = json_object_get(root, "sweep");
    for (size_t i = 0; i < json_array_size(sweep) && i < PBH_CALIBRATE_SWEEP; i++) {
        json_t *o = json_array_get(sweep, i);
        pbh_calib_setting *set = &out->sweep[out->nsweep++];
        set->alpha = num_of(o, "alpha");
        set->threshold = num_of(o, "threshold");
        set->aa_verdicts = int_of(o, "aa_verdicts");
        set->aa_flagged = int_of(o, "aa_flagged");
        set->cases = int_of(o, "cases");
        set->judgeable = int_of(o, "judgeable");
        set->median_min_detectable = num_of(o, "median_min_detectable");
    }
    json_decref(root);
    if (!ok) {
        pbh_calibration_free(out);
        return PBH_ENOMEM;
    }
    return PBH_OK;
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
    fprintf(out, "%scalibration%s of suite %s on %s (%s, %d cores, %s): %d sessions in %.0f s%s\n", b, b,
            c->suite ? c->suite : "(flags)", c->host ? c->host : "?", c->cpu_model ? c->cpu_model : "?", c->cores,
            c->kernel ? c->kernel : "?", c->sessions, c->duration_s,
            c->interrupted ? " (interrupted: the figures cover the sessions completed)" : "");
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
                 "settings, from the A/A observations in every arrangement of their blocks\n",
            md ? "\n" : "");
}

/* The first round by its verdict; a confirmation round by whether it held (its own rule, compare.h). */
static void write_round(FILE *out, const pbh_calib_round *r, int first) {
    const char *what = first ? pbs_verdict_name(r->verdict) : r->held ? "held" : "not held";
    if (isfinite(r->change))
        fprintf(out, "%s %+.1f%% [%+.1f%%, %+.1f%%] p %.2g", what, 100 * r->change, 100 * r->lo, 100 * r->hi, r->p);
    else
        fprintf(out, "%s (%s)", what, pbs_verdict_name(r->verdict));
}

/* The trials that miss a goal, round by round, so that a miss can be read: a slowdown of at least twice
 * the threshold that a case judgeable here did not report as a regression, and any slowdown reported as
 * an improvement. Printed only when there are such trials. */
static int trial_missed(const pbh_calibration *c, const pbh_calib_case *k, const pbh_calib_trial *t) {
    if (t->final == PBS_VERDICT_IMPROVEMENT)
        return 1;
    return t->final != PBS_VERDICT_REGRESSION && can_judge(c, k) && t->pct >= 200 * c->opts.cmp.threshold - 1e-9;
}

static void write_misses(FILE *out, const pbh_calibration *c, int md) {
    int n = 0;
    for (size_t i = 0; i < c->ncases; i++)
        for (size_t j = 0; j < c->cases[i].ntri; j++)
            n += trial_missed(c, &c->cases[i], &c->cases[i].tri[j]);
    if (!n)
        return;
    fprintf(out, "\n%smissed trials%s (a slowdown >= 2 x threshold not reported by a case judgeable here, or any "
                 "reported as an improvement), each round as the gate judged it (first, then --confirm):\n\n",
            md ? "**" : "", md ? "**" : "");
    for (size_t i = 0; i < c->ncases; i++) {
        const pbh_calib_case *k = &c->cases[i];
        for (size_t j = 0; j < k->ntri; j++) {
            const pbh_calib_trial *t = &k->tri[j];
            if (!trial_missed(c, k, t))
                continue;
            fprintf(out, md ? "- `%s` +%g%% (session %d): " : "  %s +%g%% (session %d): ", k->name, t->pct, t->session);
            for (int r = 0; r < t->nrounds; r++) {
                fprintf(out, "%s", r ? "; " : "");
                write_round(out, &t->round[r], r == 0);
            }
            fprintf(out, " => %s\n", pbs_verdict_name(t->final));
        }
    }
}

/* The settings sweep: the A/A observations judged again at other alphas and thresholds. */
static void write_sweep(FILE *out, const pbh_calibration *c, int md) {
    if (!c->nsweep)
        return;
    fprintf(out, "\n%sthe A/A observations judged again at other settings (one round, before confirmation; min. "
                 "detectable with --confirm %d):%s\n\n",
            md ? "**settings sweep**: " : "settings sweep: ", c->opts.confirm, md ? "" : "");
    if (md)
        fprintf(out, "| alpha | threshold | A/A flagged | cases judgeable (min. detectable <= 2 x threshold) | median "
                     "min. detectable |\n|---:|---:|---:|---:|---:|\n");
    else
        fprintf(out, "%7s  %9s  %22s  %16s  %14s\n", "alpha", "threshold", "A/A flagged", "judgeable", "median min.det");
    for (size_t i = 0; i < c->nsweep; i++) {
        const pbh_calib_setting *st = &c->sweep[i];
        int is_default = fabs(st->alpha - c->opts.cmp.alpha) < 1e-12 && fabs(st->threshold - c->opts.cmp.threshold) < 1e-12;
        char flagged[64], judge[32], mdet[16], thr[24];
        snprintf(flagged, sizeof flagged, "%d/%d (%.2f%%)", st->aa_flagged, st->aa_verdicts,
                 st->aa_verdicts ? 100.0 * st->aa_flagged / st->aa_verdicts : 0.0);
        snprintf(judge, sizeof judge, "%d of %d", st->judgeable, st->cases);
        pct_or_dash(st->median_min_detectable, mdet, sizeof mdet);
        snprintf(thr, sizeof thr, "%g%%%s", 100 * st->threshold, is_default ? (md ? " (default)" : "*") : "");
        if (md)
            fprintf(out, "| %g | %s | %s | %s | %s |\n", st->alpha, thr, flagged, judge, mdet);
        else
            fprintf(out, "%7g  %9s  %22s  %16s  %14s\n", st->alpha, thr, flagged, judge, mdet);
    }
}

static void write_table(FILE *out, const void *arg) {
    const pbh_calibration *c = arg;
    write_summary(out, c, 0);
    write_cases(out, c, 0);
    write_legend(out, 0);
    write_misses(out, c, 0);
    write_sweep(out, c, 0);
}

static void write_markdown(FILE *out, const void *arg) {
    const pbh_calibration *c = arg;
    write_summary(out, c, 1);
    write_cases(out, c, 1);
    write_legend(out, 1);
    write_misses(out, c, 1);
    write_sweep(out, c, 1);
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
        fprintf(out, "%-76s  %-62s  %s\n", goal, measured, met < 0 ? "not measured" : met ? "yes" : "NO");
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
        /* As stated, the goal covers the cases whose minimum detectable slowdown is <= 5 %. At a 5 %
         * threshold no case can be there (a change must clear the threshold AND its interval), so the row
         * also checks the reading that can be tested: every case whose calibration says +10 % is
         * detectable (minimum detectable <= 10 %) detects the injected +10 %. */
        const double bars[2] = {0.05, 0.10};
        for (int bi = 0; bi < 2; bi++) {
            int eligible = 0, met = 0, worst_d = 0, worst_t = 0;
            char worst[200] = "";
            for (size_t i = 0; i < c->ncases; i++) {
                const pbh_calib_case *k = &c->cases[i];
                if (!k->runnable || !(k->min_detectable > 0) || k->min_detectable > bars[bi] + 1e-9 || !k->trials[s10])
                    continue;
                eligible++;
                met += k->detected[s10] * 100 >= 95 * k->trials[s10];
                if (!worst[0] || k->detected[s10] * worst_t < worst_d * k->trials[s10]) {
                    worst_d = k->detected[s10];
                    worst_t = k->trials[s10];
                    snprintf(worst, sizeof worst, "%s", k->name);
                }
            }
            snprintf(m, sizeof m, "%d of %d cases (worst: %d/%d%s%s)", met, eligible, worst_d, worst_t,
                     worst[0] ? ", " : "", worst);
            goal_row(out, md,
                     bi == 0 ? "+10 % detected in >= 95 % of trials, every case with min. detectable <= 5 %"
                             : "... every case with min. detectable <= 10 % (the testable reading)",
                     m, eligible ? met == eligible : -1);
        }
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
    write_misses(out, c, md);
    write_sweep(out, c, md);
}

char *pbh_calibration_format_goals(const pbh_calibration *c, int markdown) {
    goals_arg g = {c, markdown};
    return pbh_format_stream(write_goals, &g);
}

