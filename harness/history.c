/*
 * history.c - change points per case over the stored runs (see history.h), and their table and JSON
 * exporters. The JSON is what scripts/report reads to mark change points on the history charts.
 */
#include "history.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "format.h"

static const char *machine_of(const pbh_run *run) {
    return run->ctx.machine ? run->ctx.machine : "";
}

/* The series of (machine, case name): found, or added when there is room. */
static pbh_history_case *find_or_add(pbh_history *h, const pbh_run *run, const pbh_case *c, size_t cap) {
    const char *machine = machine_of(run);
    for (size_t i = 0; i < h->ncases; i++)
        if (strcmp(h->cases[i].first->name, c->name) == 0 && strcmp(h->cases[i].machine, machine) == 0)
            return &h->cases[i];
    if (h->ncases == cap) return NULL;
    pbh_history_case *hc = &h->cases[h->ncases++];
    memset(hc, 0, sizeof *hc);
    hc->first = c;
    hc->machine = machine;
    hc->points = calloc(h->nruns, sizeof *hc->points);
    return hc->points ? hc : NULL;
}

int pbh_history_build(pbh_store *st, const pbh_history_filter *filter, const pbs_cp_opts *opts, pbh_history *out,
                      char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (opts) out->opts = *opts;
    else pbs_cp_opts_default(&out->opts);
    /* the store narrows the runs and cases (machine, case, scenario, backend) and orders them in time */
    int rc = pbh_store_history_runs(st, filter, &out->runs, &out->nruns, err, errlen);
    if (rc) return rc;

    size_t cap = 0;
    for (size_t r = 0; r < out->nruns; r++) cap += out->runs[r]->ncases;
    out->cases = calloc(cap + 1, sizeof *out->cases);
    if (!out->cases) {
        pbh_history_free(out);
        return PBH_ENOMEM;
    }
    for (size_t r = 0; r < out->nruns; r++) {
        const pbh_run *run = out->runs[r];
        for (size_t i = 0; i < run->ncases; i++) {
            const pbh_case *c = &run->cases[i];
            if (!c->status || strcmp(c->status, PBH_STATUS_OK) || c->nsamples == 0) continue;
            pbh_history_case *hc = find_or_add(out, run, c, cap);
            if (!hc) {
                pbh_history_free(out);
                return PBH_ENOMEM;
            }
            double *t = pbh_case_times(c);
            if (!t) {
                pbh_history_free(out);
                return PBH_ENOMEM;
            }
            hc->points[hc->npoints].run = run;
            hc->points[hc->npoints].median_s = pbs_median(t, c->nsamples);
            hc->npoints++;
            free(t);
        }
    }
    for (size_t i = 0; i < out->ncases; i++) {
        pbh_history_case *hc = &out->cases[i];
        double *series = malloc((hc->npoints + 1) * sizeof *series);
        hc->cps = calloc(hc->npoints + 1, sizeof *hc->cps);
        if (!series || !hc->cps) {
            free(series);
            pbh_history_free(out);
            return PBH_ENOMEM;
        }
        for (size_t k = 0; k < hc->npoints; k++) series[k] = hc->points[k].median_s;
        size_t count = 0;
        rc = pbs_edivisive(series, hc->npoints, &out->opts, hc->cps, hc->npoints, &count);
        free(series);
        if (rc != PBS_OK) {
            pbh_history_free(out);
            snprintf(err, errlen, "history: change-point search failed: %s", pbs_strerror(rc));
            return rc == PBS_ENOMEM ? PBH_ENOMEM : PBH_EIO;
        }
        hc->ncps = count < hc->npoints ? count : hc->npoints;
    }
    return 0;
}

void pbh_history_free(pbh_history *h) {
    for (size_t i = 0; i < h->ncases; i++) {
        free(h->cases[i].points);
        free(h->cases[i].cps);
    }
    free(h->cases);
    for (size_t r = 0; r < h->nruns; r++) pbh_run_free(h->runs[r]);
    free(h->runs);
    memset(h, 0, sizeof *h);
}

static const char *short_commit(const pbh_run *run, char *buf, size_t len) {
    const char *c = run->ctx.git_commit;
    snprintf(buf, len, "%.10s%s", c ? c : "unknown", c && run->ctx.git_dirty == 1 ? "+dirty" : "");
    return buf;
}

static void write_table(FILE *out, const void *arg) {
    const pbh_history *h = arg;
    if (h->ncases == 0) {
        fprintf(out, "no ok cases in the store%s\n", h->nruns ? " match the filter" : "");
        return;
    }
    int w = 4;
    for (size_t i = 0; i < h->ncases; i++) {
        int l = (int)strlen(h->cases[i].first->name);
        if (l > w) w = l;
    }
    fprintf(out, "%-*s  %5s  %10s  change points (E-Divisive means, permutation p <= %g)\n", w, "case", "runs",
            "latest", h->opts.pvalue);
    /* machine by machine (in order of first appearance): a series never spans two machines */
    for (size_t first = 0; first < h->ncases; first++) {
        const char *machine = h->cases[first].machine;
        size_t seen = 0;
        while (seen < first && strcmp(h->cases[seen].machine, machine) != 0) seen++;
        if (seen < first) continue; /* this machine was printed already */
        fprintf(out, "machine %s\n", *machine ? machine : "(unknown)");
        for (size_t i = first; i < h->ncases; i++) {
        const pbh_history_case *hc = &h->cases[i];
        if (strcmp(hc->machine, machine) != 0) continue;
        char latest[32];
        pbh_fmt_duration(hc->points[hc->npoints - 1].median_s, latest, sizeof latest);
        fprintf(out, "%-*s  %5zu  %10s  ", w, hc->first->name, hc->npoints, latest);
        if (hc->ncps == 0) fprintf(out, "none%s", hc->npoints < 2 * h->opts.min_segment ? " (too few runs)" : "");
        for (size_t k = 0; k < hc->ncps; k++) {
            const pbs_change_point *cp = &hc->cps[k];
            const pbh_run *run = hc->points[cp->index].run;
            char commit[32], before[32], after[32];
            pbh_fmt_duration(cp->mean_before, before, sizeof before);
            pbh_fmt_duration(cp->mean_after, after, sizeof after);
            fprintf(out, "%srun %lld (%s): %s -> %s (%+.1f%%, p=%.3f)", k ? "; " : "", (long long)run->id,
                    short_commit(run, commit, sizeof commit), before, after, 100 * cp->rel_change, cp->pvalue);
        }
        fputc('\n', out);
        }
    }
}

static json_t *build_json(const pbh_history *h) {
    json_t *root = json_object();
    json_object_set_new(root, "runs", json_integer((json_int_t)h->nruns));
    json_object_set_new(root, "pvalue", json_real(h->opts.pvalue));
    json_object_set_new(root, "permutations", json_integer(h->opts.permutations));
    json_object_set_new(root, "min_segment", json_integer((json_int_t)h->opts.min_segment));
    json_t *cases = json_array();
    for (size_t i = 0; i < h->ncases; i++) {
        const pbh_history_case *hc = &h->cases[i];
        const pbh_case *c = hc->first;
        json_t *o = json_object();
        json_object_set_new(o, "case", json_string(c->name));
        json_object_set_new(o, "machine", json_string(hc->machine));
        json_object_set_new(o, "scenario", c->scenario ? json_string(c->scenario) : json_null());
        json_object_set_new(o, "backend", c->backend ? json_string(c->backend) : json_null());
        json_object_set_new(o, "workers", json_integer(c->workers));
        json_object_set_new(o, "params", c->params ? json_string(c->params) : json_null());
        json_t *points = json_array();
        for (size_t k = 0; k < hc->npoints; k++) {
            const pbh_run *run = hc->points[k].run;
            json_t *p = json_object();
            json_object_set_new(p, "run_id", json_integer(run->id));
            json_object_set_new(p, "commit", run->ctx.git_commit ? json_string(run->ctx.git_commit) : json_null());
            json_object_set_new(p, "started_at", run->ctx.started_at ? json_string(run->ctx.started_at) : json_null());
            json_object_set_new(p, "median_s", json_real(hc->points[k].median_s));
            json_array_append_new(points, p);
        }
        json_object_set_new(o, "points", points);
        json_t *cps = json_array();
        for (size_t k = 0; k < hc->ncps; k++) {
            const pbs_change_point *cp = &hc->cps[k];
            const pbh_run *run = hc->points[cp->index].run;
            json_t *p = json_object();
            json_object_set_new(p, "run_id", json_integer(run->id));
            json_object_set_new(p, "index", json_integer((json_int_t)cp->index));
            json_object_set_new(p, "commit", run->ctx.git_commit ? json_string(run->ctx.git_commit) : json_null());
            json_object_set_new(p, "before_s", json_real(cp->mean_before));
            json_object_set_new(p, "after_s", json_real(cp->mean_after));
            json_object_set_new(p, "change", isfinite(cp->rel_change) ? json_real(cp->rel_change) : json_null());
            json_object_set_new(p, "p", json_real(cp->pvalue));
            json_array_append_new(cps, p);
        }
        json_object_set_new(o, "change_points", cps);
        json_array_append_new(cases, o);
    }
    json_object_set_new(root, "cases", cases);
    return root;
}

char *pbh_history_format_table(const pbh_history *h) { return pbh_format_stream(write_table, h); }
char *pbh_history_format_json(const pbh_history *h) {
    json_t *root = build_json(h);
    char *text = pbh_json_text(root);
    json_decref(root);
    return text;
}
