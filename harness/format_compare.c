/*
 * format_compare.c - a comparison (compare.h) as a terminal table, Markdown (a CI comment) or JSON. Only
 * serializes: the verdicts, counts and intervals are compare.c's; the bytes go where the CLI says.
 */
#include "format.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *match_text(const pbh_case_cmp *cc) {
    switch (cc->match) {
    case PBH_MATCH_ONLY_BASE: return "missing in new";
    case PBH_MATCH_ONLY_NEW: return "new case";
    case PBH_MATCH_NOT_OK: return "not comparable";
    default: return "";
    }
}

/* The verdict column: "regression", "no change", "not confirmed (1/3)", ... */
static void verdict_text(const pbh_case_cmp *cc, char *buf, size_t len) {
    if (cc->match == PBH_MATCH_NOT_OK) {
        const pbh_case *bad = pbh_case_is_ok(cc->base) ? cc->new_ : cc->base;
        snprintf(buf, len, "not comparable (%s %s)", bad == cc->base ? "base" : "new", bad->status);
        return;
    }
    if (cc->match != PBH_MATCH_BOTH) {
        snprintf(buf, len, "%s", match_text(cc));
        return;
    }
    if (cc->unconfirmed) {
        snprintf(buf, len, "not confirmed (%d/%d)", cc->confirm_held, cc->confirm_rounds);
        return;
    }
    const char *name = pbs_verdict_name(cc->verdict);
    if (cc->verdict == PBS_VERDICT_REGRESSION && cc->confirm_rounds)
        snprintf(buf, len, "REGRESSION (confirmed %d/%d)", cc->confirm_held, cc->confirm_rounds);
    else if (cc->verdict == PBS_VERDICT_REGRESSION)
        snprintf(buf, len, "REGRESSION");
    else if (cc->verdict == PBS_VERDICT_IMPROVEMENT && cc->confirm_rounds)
        snprintf(buf, len, "improvement (confirmed %d/%d)", cc->confirm_held, cc->confirm_rounds);
    else {
        snprintf(buf, len, "%s", name);
        for (char *p = buf; *p; p++)
            if (*p == '_') *p = ' ';
    }
}

static void pct(double v, char *buf, size_t len) {
    if (isnan(v)) snprintf(buf, len, "-");
    else snprintf(buf, len, "%+.1f%%", 100.0 * v);
}

typedef struct row_text {
    char base[32], new_[32], change[16], ci[40], p[16], verdict[64];
} row_text;

static void row_fill(const pbh_case_cmp *cc, row_text *t) {
    strcpy(t->base, "-");
    strcpy(t->new_, "-");
    strcpy(t->change, "-");
    strcpy(t->ci, "-");
    strcpy(t->p, "-");
    verdict_text(cc, t->verdict, sizeof t->verdict);
    if (cc->match != PBH_MATCH_BOTH) return;
    const pbs_comparison *c = &cc->cmp;
    pbh_fmt_duration(c->base_median, t->base, sizeof t->base);
    pbh_fmt_duration(c->new_median, t->new_, sizeof t->new_);
    pct(c->change, t->change, sizeof t->change);
    if (c->verdict != PBS_VERDICT_TOO_FEW_SAMPLES) {
        char lo[16], hi[16];
        pct(c->ci.lo, lo, sizeof lo);
        pct(c->ci.hi, hi, sizeof hi);
        snprintf(t->ci, sizeof t->ci, "[%s, %s]", lo, hi);
        snprintf(t->p, sizeof t->p, c->mwu.p < 0.0001 ? "%.1e" : "%.4f", c->mwu.p);
    }
}

static void write_summary_line(FILE *out, const pbh_comparison *cmp, int markdown) {
    const char *b = markdown ? "**" : "";
    fprintf(out, "%s%d regression%s%s, %d improvement%s, %d within noise, %d no change", b, cmp->regressions,
            cmp->regressions == 1 ? "" : "s", b, cmp->improvements, cmp->improvements == 1 ? "" : "s",
            cmp->within_noise, cmp->unchanged);
    if (cmp->too_few) fprintf(out, ", %d with too few samples", cmp->too_few);
    if (cmp->unmatched) fprintf(out, ", %d not compared", cmp->unmatched);
    fprintf(out, " (alpha %g, threshold %g%%, %.0f%% bootstrap CI%s)\n", cmp->opts.alpha, 100 * cmp->opts.threshold,
            100 * cmp->opts.confidence, cmp->confirm ? ", suspected regressions and improvements re-measured" : "");
}

/* What the verdicts rest on: interleaved or not, same machine or not, what the calibration says. */
static void write_notes(FILE *out, const pbh_comparison *cmp, int markdown) {
    const char *li = markdown ? "- " : "";
    if (cmp->paired || cmp->base->ctx.host)
        fprintf(out, "%s%s\n", li,
                cmp->paired ? (cmp->confirm ? "Base and new were measured as an interleaved A/B pair on one machine; "
                                              "--confirm re-measured both sides."
                                            : "Base and new were measured as an interleaved A/B pair on one machine.")
                            : "Base and new are separate runs: a difference between them includes whatever "
                              "changed on the machine in between (an interleaved pair, `run --against`, does not).");
    if (cmp->other_machine)
        fprintf(out, "%s%sThe two runs come from different machines%s (or one machine under very different load): "
                     "%s. A difference here measures the machines, not the code; the gate does not fail on it unless "
                     "--allow-other-machine.\n",
                li, markdown ? "**" : "", markdown ? "**" : "", cmp->machine_why);
    if (!cmp->calibration_id)
        return;
    int shown = 0;
    for (size_t i = 0; i < cmp->ncases; i++) {
        const pbh_case_cmp *cc = &cmp->cases[i];
        if (cc->match != PBH_MATCH_BOTH || pbh_compare_can_judge(cmp, cc))
            continue;
        if (!shown++)
            fprintf(out, "%sCalibration %lld of this machine: cases too noisy here to judge %g%%:\n", li,
                    (long long)cmp->calibration_id, 100 * cmp->opts.threshold);
        fprintf(out, "%s%s%s%s: detectable from %.0f%%\n", markdown ? "  - " : "  ", markdown ? "`" : "", cc->name,
                markdown ? "`" : "", 100 * cc->min_detectable);
    }
    if (!shown)
        fprintf(out, "%sCalibration %lld of this machine: every compared case can be judged at %g%%.\n", li,
                (long long)cmp->calibration_id, 100 * cmp->opts.threshold);
}

static void write_table(FILE *out, const void *arg) {
    const pbh_comparison *cmp = arg;
    int w = 4;
    for (size_t i = 0; i < cmp->ncases; i++) {
        int l = (int)strlen(cmp->cases[i].name);
        if (l > w) w = l;
    }
    fprintf(out, "base: run %lld%s%s   new: run %lld%s%s\n", (long long)cmp->base->id,
            cmp->base->label ? " " : "", cmp->base->label ? cmp->base->label : "", (long long)cmp->new_->id,
            cmp->new_->label ? " " : "", cmp->new_->label ? cmp->new_->label : "");
    fprintf(out, "%-*s  %10s  %10s  %8s  %-18s  %8s  %s\n", w, "case", "base", "new", "change", "95% CI", "p",
            "verdict");
    for (size_t i = 0; i < cmp->ncases; i++) {
        row_text t;
        row_fill(&cmp->cases[i], &t);
        fprintf(out, "%-*s  %10s  %10s  %8s  %-18s  %8s  %s\n", w, cmp->cases[i].name, t.base, t.new_, t.change,
                t.ci, t.p, t.verdict);
    }
    write_summary_line(out, cmp, 0);
    write_notes(out, cmp, 0);
}

static void write_markdown(FILE *out, const void *arg) {
    const pbh_comparison *cmp = arg;
    fprintf(out, "### poolbench: %s\n\n", cmp->regressions ? "regression found" : "no regression");
    write_summary_line(out, cmp, 1);
    fprintf(out, "\nBase: run %lld%s%s (%s), new: run %lld%s%s (%s).\n\n", (long long)cmp->base->id,
            cmp->base->label ? " " : "", cmp->base->label ? cmp->base->label : "",
            cmp->base->ctx.git_commit ? cmp->base->ctx.git_commit : "unknown commit", (long long)cmp->new_->id,
            cmp->new_->label ? " " : "", cmp->new_->label ? cmp->new_->label : "",
            cmp->new_->ctx.git_commit ? cmp->new_->ctx.git_commit : "unknown commit");
    write_notes(out, cmp, 1);
    fprintf(out, "\n| case | base | new | change | 95%% CI | p | verdict |\n|---|---:|---:|---:|---|---:|---|\n");
    for (size_t i = 0; i < cmp->ncases; i++) {
        row_text t;
        row_fill(&cmp->cases[i], &t);
        int bad = cmp->cases[i].verdict == PBS_VERDICT_REGRESSION && cmp->cases[i].match == PBH_MATCH_BOTH;
        fprintf(out, "| `%s` | %s | %s | %s | %s | %s | %s%s%s |\n", cmp->cases[i].name, t.base, t.new_, t.change,
                t.ci, t.p, bad ? "**" : "", t.verdict, bad ? "**" : "");
    }
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *build_json(const pbh_comparison *cmp) {
    json_t *root = json_object();
    json_object_set_new(root, "base_run", json_integer(cmp->base->id));
    json_object_set_new(root, "new_run", json_integer(cmp->new_->id));
    json_object_set_new(root, "alpha", json_real(cmp->opts.alpha));
    json_object_set_new(root, "threshold", json_real(cmp->opts.threshold));
    json_object_set_new(root, "confidence", json_real(cmp->opts.confidence));
    json_object_set_new(root, "min_samples", json_integer((json_int_t)cmp->opts.min_samples));
    json_object_set_new(root, "confirm", json_integer(cmp->confirm));
    json_object_set_new(root, "paired", json_boolean(cmp->paired));
    json_object_set_new(root, "other_machine", json_boolean(cmp->other_machine));
    if (cmp->other_machine) json_object_set_new(root, "machine_differences", json_string(cmp->machine_why));
    if (cmp->calibration_id) json_object_set_new(root, "calibration", json_integer(cmp->calibration_id));
    json_t *summary = json_object();
    json_object_set_new(summary, "regressions", json_integer(cmp->regressions));
    json_object_set_new(summary, "improvements", json_integer(cmp->improvements));
    json_object_set_new(summary, "within_noise", json_integer(cmp->within_noise));
    json_object_set_new(summary, "no_change", json_integer(cmp->unchanged));
    json_object_set_new(summary, "too_few_samples", json_integer(cmp->too_few));
    json_object_set_new(summary, "not_compared", json_integer(cmp->unmatched));
    json_object_set_new(root, "summary", summary);
    json_t *cases = json_array();
    for (size_t i = 0; i < cmp->ncases; i++) {
        const pbh_case_cmp *cc = &cmp->cases[i];
        json_t *o = json_object();
        json_object_set_new(o, "case", json_string(cc->name));
        static const char *const matches[] = {"both", "only_base", "only_new", "not_ok"};
        json_object_set_new(o, "match", json_string(matches[cc->match]));
        if (cc->match == PBH_MATCH_BOTH) {
            const pbs_comparison *c = &cc->cmp;
            json_object_set_new(o, "verdict", json_string(pbs_verdict_name(cc->verdict)));
            json_object_set_new(o, "unconfirmed", json_boolean(cc->unconfirmed));
            json_object_set_new(o, "n_base", json_integer((json_int_t)c->n_base));
            json_object_set_new(o, "n_new", json_integer((json_int_t)c->n_new));
            json_object_set_new(o, "base_median_s", num_or_null(c->base_median));
            json_object_set_new(o, "new_median_s", num_or_null(c->new_median));
            json_object_set_new(o, "change", num_or_null(c->change));
            if (c->verdict != PBS_VERDICT_TOO_FEW_SAMPLES) {
                json_object_set_new(o, "ci_low", num_or_null(c->ci.lo));
                json_object_set_new(o, "ci_high", num_or_null(c->ci.hi));
                json_object_set_new(o, "p", num_or_null(c->mwu.p));
                json_object_set_new(o, "u", json_real(c->mwu.u1));
                json_object_set_new(o, "test", json_string(c->mwu.method == PBS_MWU_EXACT ? "exact" : "asymptotic"));
            }
            json_object_set_new(o, "confirm_rounds", json_integer(cc->confirm_rounds));
            json_object_set_new(o, "confirm_held", json_integer(cc->confirm_held));
            if (cc->min_detectable > 0) {
                json_object_set_new(o, "min_detectable", json_real(cc->min_detectable));
                json_object_set_new(o, "can_judge", json_boolean(pbh_compare_can_judge(cmp, cc)));
            }
        } else {
            json_object_set_new(o, "verdict", json_string("not_compared"));
            if (cc->base) json_object_set_new(o, "base_status", json_string(cc->base->status));
            if (cc->new_) json_object_set_new(o, "new_status", json_string(cc->new_->status));
        }
        json_array_append_new(cases, o);
    }
    json_object_set_new(root, "cases", cases);
    return root;
}

char *pbh_compare_format_table(const pbh_comparison *cmp) { return pbh_format_stream(write_table, cmp); }
char *pbh_compare_format_markdown(const pbh_comparison *cmp) { return pbh_format_stream(write_markdown, cmp); }
char *pbh_compare_format_json(const pbh_comparison *cmp) {
    json_t *root = build_json(cmp);
    return pbh_json_text_release(root);
}
