/*
 * format_history.c - change points per case (history.h) as a terminal table or JSON. Only serializes:
 * the series and change points are history.c's.
 */
#include "format.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    for (size_t i = 0; i < h->ncases; i++) {
        const pbh_history_case *hc = &h->cases[i];
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
    return pbh_json_text_release(root);
}
