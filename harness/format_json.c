/*
 * format_json.c - poolbench's own JSON: a run with its context, floors, per-case summary and every raw
 * sample (what `show --format json`, `export --format json` and `run --json FILE` write), and the list
 * of runs. Built with jansson; numbers that do not exist (NAN: no ideal, no floor) become null, because
 * JSON has no NaN.
 *
 * Document (format "poolbench-run", version 1):
 *   {"format":"poolbench-run","version":1,"id":..,"source":..,"label":..,"suite":..,"status":..,
 *    "duration_s":..,"context":{started_at, git_commit, git_dirty, host, cpu_model, cores, kernel,
 *    compiler, cflags, build_type, command_line, governor, version[, imported]},
 *    "floors":[{"name","seconds","reps"}],
 *    "cases":[{"name","scenario","backend","workers","params","status","reason","reps","warmup","floor",
 *              "measures","elapsed_s","summary":{...},"samples":[{"rep","wall_s","user_s","sys_s",
 *              "cpu_s","peak_rss_kb","startup_s","ideal_s","tasks","failed_tasks","iterations",
 *              "tasks_per_s","efficiency"}]}]}
 */
#include "format.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static json_t *jstr(const char *s) {
    return s ? json_string(s) : json_null();
}

static json_t *jreal(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

char *pbh_json_text_release(json_t *v) {
    char *text = pbh_json_text(v);
    json_decref(v);
    return text;
}

char *pbh_json_text(json_t *v) {
    if (!v)
        return NULL;
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *out = realloc(s, n + 2);
    if (!out) {
        free(s);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = '\0';
    return out;
}

static json_t *context_json(const pbh_context *c) {
    json_t *o = json_object();
    json_object_set_new(o, "started_at", jstr(c->started_at));
    json_object_set_new(o, "started_unix", json_real(c->started_unix));
    json_object_set_new(o, "git_commit", jstr(c->git_commit));
    json_object_set_new(o, "git_dirty", c->git_dirty < 0 ? json_null() : json_boolean(c->git_dirty));
    json_object_set_new(o, "host", jstr(c->host));
    json_object_set_new(o, "machine", jstr(c->machine));
    json_object_set_new(o, "cpu_model", jstr(c->cpu_model));
    json_object_set_new(o, "cores", c->cores > 0 ? json_integer(c->cores) : json_null());
    json_object_set_new(o, "kernel", jstr(c->kernel));
    json_object_set_new(o, "compiler", jstr(c->compiler));
    json_object_set_new(o, "cflags", jstr(c->cflags));
    json_object_set_new(o, "build_type", jstr(c->build_type));
    json_object_set_new(o, "command_line", jstr(c->command_line));
    json_object_set_new(o, "governor", jstr(c->governor));
    json_object_set_new(o, "version", jstr(c->version));
    if (c->extra_json) {
        json_error_t je;
        json_t *extra = json_loads(c->extra_json, 0, &je);
        json_object_set_new(o, "imported", extra ? extra : json_string(c->extra_json));
    }
    return o;
}

static json_t *summary_json(const pbh_case_summary *s) {
    json_t *o = json_object();
    json_object_set_new(o, "n", json_integer((json_int_t)s->n));
    if (s->n == 0)
        return o;
    json_object_set_new(o, "median_s", jreal(s->median_s));
    json_object_set_new(o, "mean_s", jreal(s->mean_s));
    json_object_set_new(o, "min_s", jreal(s->min_s));
    json_object_set_new(o, "max_s", jreal(s->max_s));
    json_object_set_new(o, "q1_s", jreal(s->q1_s));
    json_object_set_new(o, "q3_s", jreal(s->q3_s));
    json_object_set_new(o, "mad_s", jreal(s->mad_s));
    json_object_set_new(o, "mad_pct", jreal(s->mad_pct));
    json_object_set_new(o, "iqr_pct", jreal(s->iqr_pct));
    json_object_set_new(o, "cpu_median_s", jreal(s->cpu_median_s));
    json_object_set_new(o, "ideal_s", jreal(s->ideal_s));
    json_object_set_new(o, "efficiency", s->efficiency > 0 ? jreal(s->efficiency) : json_null());
    json_object_set_new(o, "tasks", json_integer((json_int_t)s->tasks));
    json_object_set_new(o, "tasks_per_s", jreal(s->tasks_per_s));
    json_object_set_new(o, "startup_median_s", jreal(s->startup_median_s));
    json_object_set_new(o, "overhead_per_task_s", jreal(s->overhead_per_task_s));
    json_object_set_new(o, "floor_s", jreal(s->floor_s));
    json_object_set_new(o, "overhead_x_floor", jreal(s->overhead_x_floor));
    json_object_set_new(o, "peak_rss_kb", json_integer(s->peak_rss_kb));
    return o;
}

json_t *pbh_run_to_json(const pbh_run *run) {
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("poolbench-run"));
    json_object_set_new(o, "version", json_integer(1));
    json_object_set_new(o, "id", json_integer(run->id));
    json_object_set_new(o, "uuid", jstr(run->uuid));
    json_object_set_new(o, "source", jstr(run->source));
    json_object_set_new(o, "label", jstr(run->label));
    json_object_set_new(o, "suite", jstr(run->suite));
    json_object_set_new(o, "status", jstr(run->status));
    json_object_set_new(o, "duration_s", json_real(run->duration_s));
    json_object_set_new(o, "context", context_json(&run->ctx));
    json_t *floors = json_array();
    for (size_t i = 0; i < run->nfloors; i++) {
        json_t *fl = json_object();
        json_object_set_new(fl, "name", jstr(run->floors[i].name));
        json_object_set_new(fl, "seconds", run->floors[i].seconds > 0 ? json_real(run->floors[i].seconds) : json_null());
        json_object_set_new(fl, "reps", json_integer(run->floors[i].reps));
        json_array_append_new(floors, fl);
    }
    json_object_set_new(o, "floors", floors);
    json_t *cases = json_array();
    for (size_t i = 0; i < run->ncases; i++) {
        const pbh_case *c = &run->cases[i];
        json_t *co = json_object();
        json_object_set_new(co, "name", jstr(c->name));
        json_object_set_new(co, "scenario", jstr(c->scenario));
        json_object_set_new(co, "backend", jstr(c->backend));
        json_object_set_new(co, "workers", json_integer(c->workers));
        json_object_set_new(co, "params", jstr(c->params));
        json_object_set_new(co, "status", jstr(c->status));
        json_object_set_new(co, "reason", jstr(c->reason));
        json_object_set_new(co, "reps", json_integer(c->reps));
        json_object_set_new(co, "warmup", json_integer(c->warmup));
        json_object_set_new(co, "floor", jstr(c->floor));
        json_object_set_new(co, "measures", jstr(c->measures));
        json_object_set_new(co, "elapsed_s", json_real(c->elapsed_s));
        pbh_case_summary s;
        pbh_case_summarize(run, c, &s);
        json_object_set_new(co, "summary", summary_json(&s));
        json_t *samples = json_array();
        for (size_t j = 0; j < c->nsamples; j++) {
            const pbh_sample *x = &c->samples[j];
            json_t *so = json_object();
            json_object_set_new(so, "rep", json_integer(x->rep));
            json_object_set_new(so, "wall_s", json_real(x->wall_s));
            json_object_set_new(so, "user_s", json_real(x->user_s));
            json_object_set_new(so, "sys_s", json_real(x->sys_s));
            json_object_set_new(so, "cpu_s", json_real(pbh_sample_cpu(x)));
            json_object_set_new(so, "peak_rss_kb", json_integer(x->peak_rss_kb));
            json_object_set_new(so, "startup_s", json_real(x->startup_s));
            json_object_set_new(so, "ideal_s", json_real(x->ideal_s));
            json_object_set_new(so, "tasks", json_integer((json_int_t)x->tasks));
            json_object_set_new(so, "failed_tasks", json_integer((json_int_t)x->failed_tasks));
            json_object_set_new(so, "iterations", json_integer(x->iterations));
            json_object_set_new(so, "tasks_per_s", json_real(pbh_sample_tasks_per_s(x)));
            json_object_set_new(so, "efficiency", json_real(pbh_sample_efficiency(x)));
            json_array_append_new(samples, so);
        }
        json_object_set_new(co, "samples", samples);
        json_array_append_new(cases, co);
    }
    json_object_set_new(o, "cases", cases);
    return o;
}

char *pbh_format_run_json(const pbh_run *run) {
    json_t *o = pbh_run_to_json(run);
    return pbh_json_text_release(o);
}

char *pbh_format_runs_json(const pbh_run_info *runs, size_t n) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const pbh_run_info *r = &runs[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(r->id));
        json_object_set_new(o, "started_at", jstr(r->started_at));
        json_object_set_new(o, "source", jstr(r->source));
        json_object_set_new(o, "label", jstr(r->label));
        json_object_set_new(o, "suite", jstr(r->suite));
        json_object_set_new(o, "status", jstr(r->status));
        json_object_set_new(o, "cases", json_integer(r->ncases));
        json_object_set_new(o, "failed", json_integer(r->nfailed));
        json_object_set_new(o, "duration_s", json_real(r->duration_s));
        json_object_set_new(o, "git_commit", jstr(r->git_commit));
        json_object_set_new(o, "git_dirty", r->git_dirty < 0 ? json_null() : json_boolean(r->git_dirty));
        json_object_set_new(o, "host", jstr(r->host));
        json_object_set_new(o, "uuid", jstr(r->uuid));
        json_object_set_new(o, "machine", jstr(r->machine));
        if (r->pair_id) { /* a side of an interleaved A/B pair (`run --against`); lone runs have none */
            json_t *pair = json_object();
            json_object_set_new(pair, "id", json_integer(r->pair_id));
            json_object_set_new(pair, "side", json_string(r->pair_is_head ? "head" : "base"));
            json_object_set_new(o, "pair", pair);
        } else {
            json_object_set_new(o, "pair", json_null());
        }
        json_array_append_new(arr, o);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "runs", arr);
    return pbh_json_text_release(doc);
}
