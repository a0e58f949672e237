/*
 * history.c - change points per case over the stored runs (see history.h). It computes and returns a
 * pbh_history; format_history.c says it as a table or JSON (the JSON is what scripts/report reads to mark
 * change points on the history charts).
 */
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int matches(const char *filter, const char *value) {
    return !filter || (value && strcmp(filter, value) == 0);
}

static pbh_history_case *find_or_add(pbh_history *h, const pbh_case *c, size_t cap) {
    for (size_t i = 0; i < h->ncases; i++)
        if (strcmp(h->cases[i].first->name, c->name) == 0) return &h->cases[i];
    if (h->ncases == cap) return NULL;
    pbh_history_case *hc = &h->cases[h->ncases++];
    memset(hc, 0, sizeof *hc);
    hc->first = c;
    hc->points = calloc(h->nruns, sizeof *hc->points);
    return hc->points ? hc : NULL;
}

int pbh_history_build(pbh_store *st, const char *scenario, const char *backend, const pbs_cp_opts *opts,
                      pbh_history *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (opts) out->opts = *opts;
    else pbs_cp_opts_default(&out->opts);
    int rc = pbh_store_history_runs(st, scenario, backend, &out->runs, &out->nruns, err, errlen);
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
            if (!pbh_case_is_ok(c) || c->nsamples == 0) continue;
            if (!matches(scenario, c->scenario) || !matches(backend, c->backend)) continue;
            pbh_history_case *hc = find_or_add(out, c, cap);
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
            return pbh_error(rc);
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
    pbh_store_runs_free(h->runs, h->nruns);
    memset(h, 0, sizeof *h);
}
