/*
 * import_json.c - poolbench's own run JSON (format "poolbench-run", version 1, written by format_json.c:
 * `export --format json`, `run --json FILE`) read back into a run. This is what lets CI compare against a
 * committed baseline file (results/baseline.json) and move runs between stores. Only the stored fields
 * are read; the "summary" objects and derived per-sample fields are recomputed, never trusted.
 */
#include "import.h"
#include "store_sql.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *jstr(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static double jnum(json_t *o, const char *key, double def) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

/* An integer field clamped to [lo, hi]: casting a double outside the target type's range is undefined
 * behaviour, and integers are read exactly rather than through a double. def when absent or not finite. */
static int64_t jint(json_t *o, const char *key, int64_t def, int64_t lo, int64_t hi) {
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i < lo ? lo : i > hi ? hi : (int64_t)i;
    }
    if (!json_is_real(v) || !isfinite(json_real_value(v))) return def;
    double d = json_real_value(v);
    if (d <= (double)lo) return lo;
    if (d >= (double)hi) return hi; /* (double)INT64_MAX is 2^63: anything below it converts */
    return (int64_t)d;
}

static void read_context(pbh_context *c, json_t *o) {
    pbh_set_str(&c->started_at, jstr(o, "started_at"));
    c->started_unix = jnum(o, "started_unix", 0);
    pbh_set_str(&c->git_commit, jstr(o, "git_commit"));
    json_t *dirty = json_object_get(o, "git_dirty");
    c->git_dirty = json_is_boolean(dirty) ? json_is_true(dirty) : -1;
    pbh_set_str(&c->host, jstr(o, "host"));
    if (jstr(o, "machine") && pbh_machine_name_valid(jstr(o, "machine")))
        pbh_set_str(&c->machine, jstr(o, "machine"));
    pbh_set_str(&c->cpu_model, jstr(o, "cpu_model"));
    c->cores = (int)jint(o, "cores", -1, INT_MIN, INT_MAX);
    pbh_set_str(&c->kernel, jstr(o, "kernel"));
    pbh_set_str(&c->compiler, jstr(o, "compiler"));
    pbh_set_str(&c->cflags, jstr(o, "cflags"));
    pbh_set_str(&c->build_type, jstr(o, "build_type"));
    pbh_set_str(&c->command_line, jstr(o, "command_line"));
    pbh_set_str(&c->governor, jstr(o, "governor"));
    pbh_set_str(&c->version, jstr(o, "version"));
    json_t *imported = json_object_get(o, "imported");
    if (imported) {
        free(c->extra_json);
        c->extra_json = json_dumps(imported, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    }
}

int pbh_import_poolbench(json_t *doc, const pbh_context *here, pbh_run **out, char *err, size_t errlen) {
    (void)here; /* the document carries its own context */
    *out = NULL;
    const char *format = jstr(doc, "format");
    json_t *cases = json_object_get(doc, "cases");
    if (!format || strcmp(format, "poolbench-run") != 0 || !json_is_array(cases)) {
        snprintf(err, errlen, "not a poolbench run export (\"format\": \"poolbench-run\" with a \"cases\" array)");
        return PBH_EINPUT;
    }
    if (jnum(doc, "version", 0) != 1) {
        snprintf(err, errlen, "poolbench-run version %g is not one this poolbench reads (1)", jnum(doc, "version", 0));
        return PBH_EINPUT;
    }
    pbh_run *run = pbh_run_new();
    if (!run) return PBH_ENOMEM;
    run->id = jint(doc, "id", 0, INT64_MIN, INT64_MAX);
    pbh_set_str(&run->source, jstr(doc, "source") ? jstr(doc, "source") : PBH_SOURCE_NATIVE);
    pbh_set_str(&run->label, jstr(doc, "label"));
    /* a run exported with its uuid keeps it: importing it twice stores it once */
    if (pbh_uuid_valid(jstr(doc, "uuid")))
        pbh_set_str(&run->uuid, jstr(doc, "uuid"));
    pbh_set_str(&run->suite, jstr(doc, "suite"));
    pbh_set_str(&run->status, jstr(doc, "status") ? jstr(doc, "status") : "ok");
    run->duration_s = jnum(doc, "duration_s", 0);
    read_context(&run->ctx, json_object_get(doc, "context"));
    json_t *floors = json_object_get(doc, "floors");
    for (size_t i = 0; json_is_array(floors) && i < json_array_size(floors); i++) {
        json_t *fl = json_array_get(floors, i);
        if (!jstr(fl, "name")) continue;
        if (!pbh_run_add_floor(run, jstr(fl, "name"), jnum(fl, "seconds", -1), (int)jint(fl, "reps", 0, INT_MIN, INT_MAX))) goto nomem;
    }
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *co = json_array_get(cases, i);
        json_t *samples = json_object_get(co, "samples");
        if (!jstr(co, "name") || !jstr(co, "status") || !json_is_array(samples)) {
            snprintf(err, errlen, "cases[%zu]: \"name\", \"status\" or \"samples\" missing", i);
            pbh_run_free(run);
            return PBH_EINPUT;
        }
        pbh_case *c = pbh_run_add_case(run);
        if (!c) goto nomem;
        pbh_set_str(&c->name, jstr(co, "name"));
        pbh_set_str(&c->scenario, jstr(co, "scenario"));
        pbh_set_str(&c->backend, jstr(co, "backend"));
        c->workers = (int)jint(co, "workers", 0, INT_MIN, INT_MAX);
        pbh_set_str(&c->params, jstr(co, "params"));
        pbh_set_str(&c->status, jstr(co, "status"));
        pbh_set_str(&c->reason, jstr(co, "reason"));
        c->reps = (int)jint(co, "reps", 0, INT_MIN, INT_MAX);
        c->warmup = (int)jint(co, "warmup", 0, INT_MIN, INT_MAX);
        pbh_set_str(&c->floor, jstr(co, "floor"));
        pbh_set_str(&c->measures, jstr(co, "measures"));
        c->elapsed_s = jnum(co, "elapsed_s", 0);
        for (size_t k = 0; k < json_array_size(samples); k++) {
            json_t *so = json_array_get(samples, k);
            double wall = jnum(so, "wall_s", NAN);
            if (!isfinite(wall) || wall < 0) {
                snprintf(err, errlen, "cases[%zu].samples[%zu]: wall_s must be a time in seconds", i, k);
                pbh_run_free(run);
                return PBH_EINPUT;
            }
            pbh_sample *s = pbh_case_add_sample(c);
            if (!s) goto nomem;
            s->rep = (int)jint(so, "rep", k < INT_MAX ? (int64_t)k : INT_MAX, INT_MIN, INT_MAX);
            s->wall_s = wall;
            s->user_s = jnum(so, "user_s", 0);
            s->sys_s = jnum(so, "sys_s", 0);
            s->peak_rss_kb = jint(so, "peak_rss_kb", 0, INT64_MIN, INT64_MAX);
            s->startup_s = jnum(so, "startup_s", 0);
            s->ideal_s = jnum(so, "ideal_s", 0);
            s->tasks = (uint64_t)jint(so, "tasks", 0, 0, INT64_MAX);
            s->failed_tasks = (uint64_t)jint(so, "failed_tasks", 0, 0, INT64_MAX);
            s->iterations = jint(so, "iterations", 1, INT64_MIN, INT64_MAX);
        }
    }
    *out = run;
    return 0;
nomem:
    pbh_run_free(run);
    return PBH_ENOMEM;
}
