/*
 * model.c - constructors, destructors and the per-case summary of the harness data model (model.h).
 *
 * The summary is the single definition of every number a results table shows, so the table, JSON and
 * Markdown outputs cannot disagree. Statistics come from stats.h (type 7 quantiles, unscaled MAD).
 * Overhead as a multiple of the floor is defined as
 *     overhead_x_floor = ((median wall - ideal) / tasks) / floor
 * i.e. the time each task cost beyond the scenario's ideal model, in units of the physical floor that
 * bounds that per-task cost (a pipe round trip, a condvar handoff, a nanosleep overshoot, ...), measured
 * in the same run on the same machine.
 */
#include "model.h"

#include "poolbench.h"
#include "stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double pbh_sample_cpu(const pbh_sample *s) {
    return s->user_s + s->sys_s;
}

double pbh_sample_tasks_per_s(const pbh_sample *s) {
    return s->wall_s > 0 ? (double)s->tasks / s->wall_s : 0.0;
}

double pbh_sample_efficiency(const pbh_sample *s) {
    return (s->wall_s > 0 && s->ideal_s > 0) ? s->ideal_s / s->wall_s : 0.0;
}

int pbh_error(int rc) {
    if (rc >= 0)
        return PBH_OK;
    if (rc <= -20001 && rc >= -20099)
        return rc;
    switch (rc) {
    case -ENOMEM:
    case PBS_ENOMEM:
        return PBH_ENOMEM;
    case -EINVAL:
    case PBS_EINVAL:
    case PBS_EDOMAIN:
    case PB_EINVAL:
    case PB_ENOBACKEND:
    case PB_ENOTASK:
    case PB_ETOOBIG:
    case PB_ENOTSUP:
        return PBH_EINPUT;
    default:
        return PBH_EIO;
    }
}

pbh_run *pbh_run_new(void) {
    return calloc(1, sizeof(pbh_run));
}

void pbh_case_clear(pbh_case *c) {
    free(c->name);
    free(c->scenario);
    free(c->backend);
    free(c->params);
    free(c->status);
    free(c->reason);
    free(c->floor);
    free(c->measures);
    free(c->samples);
    memset(c, 0, sizeof *c);
}

void pbh_run_free(pbh_run *run) {
    if (!run)
        return;
    for (size_t i = 0; i < run->ncases; i++)
        pbh_case_clear(&run->cases[i]);
    free(run->cases);
    for (size_t i = 0; i < run->nfloors; i++)
        free(run->floors[i].name);
    free(run->floors);
    free(run->source);
    free(run->label);
    free(run->suite);
    free(run->status);
    pbh_context_clear(&run->ctx);
    free(run);
}

/* Grows an array by one zeroed element; capacity doubles at powers of two so that n alone tracks it. */
static void *grow(void *arr, size_t n, size_t elem) {
    if (n == 0 || (n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 4;
        void *na = realloc(arr, cap * elem);
        if (!na)
            return NULL;
        arr = na;
    }
    memset((char *)arr + n * elem, 0, elem);
    return arr;
}

pbh_case *pbh_run_add_case(pbh_run *run) {
    pbh_case *na = grow(run->cases, run->ncases, sizeof *na);
    if (!na)
        return NULL;
    run->cases = na;
    return &run->cases[run->ncases++];
}

pbh_sample *pbh_case_add_sample(pbh_case *c) {
    pbh_sample *na = grow(c->samples, c->nsamples, sizeof *na);
    if (!na)
        return NULL;
    c->samples = na;
    na[c->nsamples].iterations = 1;
    return &c->samples[c->nsamples++];
}

int pbh_run_pool(pbh_run *into, const pbh_run *from) {
    for (size_t i = 0; i < from->ncases; i++) {
        const pbh_case *src = &from->cases[i];
        pbh_case *dst = pbh_run_find_case(into, src->name);
        if (!dst) {
            if (!(dst = pbh_run_add_case(into)))
                return PBH_ENOMEM;
            memset(dst, 0, sizeof *dst);
            pbh_set_str(&dst->name, src->name);
            pbh_set_str(&dst->scenario, src->scenario);
            pbh_set_str(&dst->backend, src->backend);
            pbh_set_str(&dst->params, src->params);
            pbh_set_str(&dst->status, src->status);
            pbh_set_str(&dst->reason, src->reason);
            pbh_set_str(&dst->floor, src->floor);
            pbh_set_str(&dst->measures, src->measures);
            dst->workers = src->workers;
            dst->reps = 0;
            dst->warmup = src->warmup;
        } else if (strcmp(src->status, PBH_STATUS_OK) != 0) {
            pbh_set_str(&dst->status, src->status); /* a case that failed in any pooled run is not ok */
            pbh_set_str(&dst->reason, src->reason);
        }
        for (size_t k = 0; k < src->nsamples; k++) {
            pbh_sample *s = pbh_case_add_sample(dst);
            if (!s)
                return PBH_ENOMEM;
            *s = src->samples[k];
            s->rep = (int)dst->nsamples - 1;
        }
        dst->reps += src->reps;
        dst->elapsed_s += src->elapsed_s;
    }
    into->duration_s += from->duration_s;
    if (strcmp(from->status, "ok") != 0)
        pbh_set_str(&into->status, from->status);
    return PBH_OK;
}

pbh_floor *pbh_run_add_floor(pbh_run *run, const char *name, double seconds, int reps) {
    pbh_floor *na = grow(run->floors, run->nfloors, sizeof *na);
    if (!na)
        return NULL;
    run->floors = na;
    pbh_floor *f = &run->floors[run->nfloors];
    f->name = pbh_strdup(name);
    if (!f->name)
        return NULL;
    f->seconds = seconds;
    f->reps = reps;
    run->nfloors++;
    return f;
}

void pbh_run_infos_free(pbh_run_info *infos, size_t n) {
    if (!infos)
        return;
    for (size_t i = 0; i < n; i++) {
        free(infos[i].source);
        free(infos[i].label);
        free(infos[i].suite);
        free(infos[i].status);
        free(infos[i].started_at);
        free(infos[i].git_commit);
        free(infos[i].host);
    }
    free(infos);
}

double *pbh_case_times(const pbh_case *c) {
    double *t = malloc((c->nsamples ? c->nsamples : 1) * sizeof *t);
    if (!t) return NULL;
    for (size_t i = 0; i < c->nsamples; i++) {
        const pbh_sample *s = &c->samples[i];
        t[i] = s->wall_s / (s->iterations > 0 ? (double)s->iterations : 1.0);
    }
    return t;
}

pbh_case *pbh_run_find_case(const pbh_run *run, const char *name) {
    for (size_t i = 0; run && name && i < run->ncases; i++)
        if (run->cases[i].name && strcmp(run->cases[i].name, name) == 0)
            return &run->cases[i];
    return NULL;
}

int pbh_case_is_ok(const pbh_case *c) {
    return c && c->status && strcmp(c->status, PBH_STATUS_OK) == 0;
}

const pbh_floor *pbh_run_floor(const pbh_run *run, const char *name) {
    if (!run || !name)
        return NULL;
    for (size_t i = 0; i < run->nfloors; i++)
        if (strcmp(run->floors[i].name, name) == 0)
            return &run->floors[i];
    return NULL;
}

int pbh_case_summarize(const pbh_run *run, const pbh_case *c, pbh_case_summary *sum) {
    memset(sum, 0, sizeof *sum);
    sum->overhead_per_task_s = NAN;
    sum->floor_s = NAN;
    sum->overhead_x_floor = NAN;
    const pbh_floor *fl = pbh_run_floor(run, c->floor);
    if (fl && fl->seconds > 0)
        sum->floor_s = fl->seconds;
    if (c->nsamples == 0)
        return PBH_OK;
    size_t n = c->nsamples;
    double *wall = malloc(n * sizeof *wall);
    double *cpu = malloc(n * sizeof *cpu);
    double *ideal = malloc(n * sizeof *ideal);
    double *startup = malloc(n * sizeof *startup);
    if (!wall || !cpu || !ideal || !startup) {
        free(wall), free(cpu), free(ideal), free(startup);
        return PBH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const pbh_sample *s = &c->samples[i];
        /* a sample of several iterations (gbench imports) is summarized per iteration */
        double it = s->iterations > 0 ? (double)s->iterations : 1.0;
        wall[i] = s->wall_s / it;
        cpu[i] = pbh_sample_cpu(s) / it;
        ideal[i] = s->ideal_s;
        startup[i] = s->startup_s;
        if (s->peak_rss_kb > sum->peak_rss_kb)
            sum->peak_rss_kb = s->peak_rss_kb;
    }
    pbs_summary ws;
    int rc = pbs_summarize(wall, n, &ws);
    if (rc == PBS_OK) {
        sum->n = ws.n;
        sum->median_s = ws.median;
        sum->q1_s = ws.q1;
        sum->q3_s = ws.q3;
        sum->mad_s = ws.mad;
        sum->min_s = ws.min;
        sum->max_s = ws.max;
        sum->mean_s = ws.mean;
        if (ws.median > 0) {
            sum->mad_pct = 100.0 * ws.mad / ws.median;
            sum->iqr_pct = 100.0 * (ws.q3 - ws.q1) / ws.median;
        }
        sum->cpu_median_s = pbs_median(cpu, n);
        sum->ideal_s = pbs_median(ideal, n);
        sum->startup_median_s = pbs_median(startup, n);
        sum->tasks = c->samples[0].tasks;
        if (ws.median > 0) {
            if (sum->ideal_s > 0)
                sum->efficiency = sum->ideal_s / ws.median;
            sum->tasks_per_s = (double)sum->tasks / ws.median;
        }
        if (sum->ideal_s > 0 && sum->tasks > 0)
            sum->overhead_per_task_s = (ws.median - sum->ideal_s) / (double)sum->tasks;
        if (!isnan(sum->overhead_per_task_s) && !isnan(sum->floor_s))
            sum->overhead_x_floor = sum->overhead_per_task_s / sum->floor_s;
    }
    free(wall), free(cpu), free(ideal), free(startup);
    return pbh_error(rc);
}
