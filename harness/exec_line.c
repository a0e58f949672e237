/*
 * exec_line.c - encodes and decodes the runner <-> case process lines (exec_line.h) with jansson. Every
 * key of the protocol is written below once, as a constant used by both directions.
 *
 * Decoding is forgiving where the old reader was: a missing or non-numeric number reads as 0, an unknown
 * type is PBH_LINE_OTHER (ignored), and only a line that is not a JSON object counts as garbled.
 */
#include "exec_line.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define K_TYPE "type"
#define T_EXECUTION "execution"
#define T_DONE "done"
#define T_FLOOR "floor"

static char *dump(json_t *o) {
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    return line;
}

char *pbh_exec_line_execution(int rep, int warmup, int ok, const char *message, const pbh_sample *x,
                              uint64_t workers_started, uint64_t worker_deaths) {
    json_t *o = json_object();
    json_object_set_new(o, K_TYPE, json_string(T_EXECUTION));
    json_object_set_new(o, "rep", json_integer(rep));
    json_object_set_new(o, "warmup", json_boolean(warmup));
    json_object_set_new(o, "ok", json_boolean(ok));
    json_object_set_new(o, "message", json_string(message ? message : ""));
    json_object_set_new(o, "wall_s", json_real(x->wall_s));
    json_object_set_new(o, "user_s", json_real(x->user_s));
    json_object_set_new(o, "sys_s", json_real(x->sys_s));
    json_object_set_new(o, "peak_rss_kb", json_integer(x->peak_rss_kb));
    json_object_set_new(o, "startup_s", json_real(x->startup_s));
    json_object_set_new(o, "ideal_s", json_real(x->ideal_s));
    json_object_set_new(o, "tasks", json_integer((json_int_t)x->tasks));
    json_object_set_new(o, "failed_tasks", json_integer((json_int_t)x->failed_tasks));
    json_object_set_new(o, "workers_started", json_integer((json_int_t)workers_started));
    json_object_set_new(o, "worker_deaths", json_integer((json_int_t)worker_deaths));
    return dump(o);
}

char *pbh_exec_line_done(long executions) {
    json_t *o = json_object();
    json_object_set_new(o, K_TYPE, json_string(T_DONE));
    json_object_set_new(o, "executions", json_integer(executions));
    return dump(o);
}

char *pbh_exec_line_floor(const char *name, double seconds, int reps) {
    json_t *o = json_object();
    json_object_set_new(o, K_TYPE, json_string(T_FLOOR));
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "seconds", json_real(seconds));
    json_object_set_new(o, "reps", json_integer(reps));
    return dump(o);
}

static double num(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

pbh_exec_line_type pbh_exec_line_parse(const char *line, pbh_exec_line *out) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return out->type = PBH_LINE_GARBLED;
    }
    const char *type = json_string_value(json_object_get(o, K_TYPE));
    out->type = PBH_LINE_OTHER;
    if (type && strcmp(type, T_EXECUTION) == 0) {
        out->type = PBH_LINE_EXECUTION;
        out->rep = (int)num(o, "rep");
        out->warmup = json_is_true(json_object_get(o, "warmup"));
        out->ok = json_is_true(json_object_get(o, "ok"));
        const char *msg = json_string_value(json_object_get(o, "message"));
        snprintf(out->message, sizeof out->message, "%s", msg ? msg : "");
        pbh_sample *s = &out->sample;
        s->wall_s = num(o, "wall_s");
        s->user_s = num(o, "user_s");
        s->sys_s = num(o, "sys_s");
        s->peak_rss_kb = (int64_t)num(o, "peak_rss_kb");
        s->startup_s = num(o, "startup_s");
        s->ideal_s = num(o, "ideal_s");
        s->tasks = (uint64_t)num(o, "tasks");
        s->failed_tasks = (uint64_t)num(o, "failed_tasks");
        out->workers_started = (uint64_t)num(o, "workers_started");
        out->worker_deaths = (uint64_t)num(o, "worker_deaths");
    } else if (type && strcmp(type, T_DONE) == 0) {
        out->type = PBH_LINE_DONE;
        out->executions = (long)num(o, "executions");
    } else if (type && strcmp(type, T_FLOOR) == 0) {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (name) {
            out->type = PBH_LINE_FLOOR;
            snprintf(out->floor_name, sizeof out->floor_name, "%s", name);
            out->floor_seconds = num(o, "seconds");
            out->floor_reps = (int)num(o, "reps");
        }
    }
    json_decref(o);
    return out->type;
}
