/*
 * import_gbench.c - a Google Benchmark JSON file (--benchmark_format=json or --benchmark_out) as a run.
 *
 * Mapping: one case per run_name (the benchmark with its arguments, without the aggregate suffix); one
 * sample per "iteration" entry (a repetition) with wall = real_time x iterations and user CPU =
 * cpu_time x iterations, so that per-iteration times come out of the summary unchanged. Aggregate
 * entries (mean, median, stddev, cv, BigO) are derived data and are skipped, except when a file holds
 * only aggregates (--benchmark_report_aggregates_only): then the median (else the mean) becomes the
 * case's single sample. An entry with error_occurred makes its case "failed" with the error message.
 * The context maps onto the run's machine fields: date, host_name, num_cpus, library_build_type,
 * executable; the whole GB context is kept as extra_json. Counters that are NaN or Infinity (bare tokens
 * in GB's output) arrive as null and are ignored.
 */
#include "import.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double unit_to_seconds(const char *unit) {
    if (!unit || strcmp(unit, "ns") == 0) return 1e-9;
    if (strcmp(unit, "us") == 0) return 1e-6;
    if (strcmp(unit, "ms") == 0) return 1e-3;
    if (strcmp(unit, "s") == 0) return 1.0;
    return -1;
}

static pbh_case *case_for(pbh_run *run, const char *name) {
    pbh_case *c = pbh_run_find_case(run, name);
    if (c) return c;
    c = pbh_run_add_case(run);
    if (!c) return NULL;
    pbh_set_str(&c->name, name);
    pbh_set_str(&c->status, PBH_STATUS_OK);
    pbh_set_str(&c->measures, "one Google Benchmark iteration");
    c->workers = 0;
    return c;
}

static const char *str_field(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Overrides the run's machine fields with what GB's context knows. */
static void map_context(pbh_run *run, json_t *gctx) {
    pbh_context *c = &run->ctx;
    if (!json_is_object(gctx)) return;
    const char *s;
    if ((s = str_field(gctx, "host_name"))) pbh_set_str(&c->host, s);
    if ((s = str_field(gctx, "library_build_type"))) pbh_set_str(&c->build_type, s);
    if ((s = str_field(gctx, "executable"))) pbh_set_str(&c->command_line, s);
    json_t *cpus = json_object_get(gctx, "num_cpus");
    if (json_is_integer(cpus)) c->cores = (int)json_integer_value(cpus);
    char *text = json_dumps(gctx, JSON_COMPACT | JSON_PRESERVE_ORDER);
    free(c->extra_json);
    c->extra_json = text;
}

/* The repetition number of the case's newest sample (the last one): Google Benchmark's repetition_index
 * when the entry has one that no earlier sample of the case holds, else one past the largest so far. A
 * file may mix entries with and without repetition_index (a benchmark run once and again with
 * repetitions): each entry stays a sample, and (case, rep) stays unique as the store requires. */
static int unique_rep(const pbh_case *c, json_int_t wanted) {
    int largest = -1, taken = 0;
    for (size_t i = 0; i + 1 < c->nsamples; i++) {
        if (c->samples[i].rep > largest) largest = c->samples[i].rep;
        if (c->samples[i].rep == wanted) taken = 1;
    }
    if (wanted >= 0 && wanted <= INT_MAX && !taken) return (int)wanted;
    return largest + 1;
}

int pbh_import_gbench(json_t *doc, const pbh_context *here, pbh_run **out, char *err, size_t errlen) {
    *out = NULL;
    json_t *benchmarks = json_object_get(doc, "benchmarks");
    if (!json_is_object(doc) || !json_is_array(benchmarks)) {
        snprintf(err, errlen, "not a Google Benchmark JSON file (no \"benchmarks\" array)");
        return PBH_EINPUT;
    }
    size_t nb = json_array_size(benchmarks), iterations_seen = 0;
    for (size_t i = 0; i < nb; i++) {
        const char *type = str_field(json_array_get(benchmarks, i), "run_type");
        if (!type || strcmp(type, "aggregate") != 0) iterations_seen++;
    }
    pbh_run *run = pbh_import_new_run(PBH_SOURCE_GBENCH, here);
    if (!run) return PBH_ENOMEM;
    map_context(run, json_object_get(doc, "context"));

    for (size_t i = 0; i < nb; i++) {
        json_t *b = json_array_get(benchmarks, i);
        const char *name = str_field(b, "run_name");
        if (!name) name = str_field(b, "name");
        if (!json_is_object(b) || !name || !*name) {
            snprintf(err, errlen, "benchmarks[%zu]: no name", i);
            pbh_run_free(run);
            return PBH_EINPUT;
        }
        const char *type = str_field(b, "run_type");
        int aggregate = type && strcmp(type, "aggregate") == 0;
        if (aggregate) {
            /* only when the file has no repetition entries at all, and then only one per case */
            const char *agg = str_field(b, "aggregate_name");
            if (iterations_seen || !agg || (strcmp(agg, "median") != 0 && strcmp(agg, "mean") != 0)) continue;
        }
        pbh_case *c = case_for(run, name);
        if (!c) {
            pbh_run_free(run);
            return PBH_ENOMEM;
        }
        if (json_is_true(json_object_get(b, "error_occurred"))) {
            const char *msg = str_field(b, "error_message");
            pbh_set_str(&c->status, PBH_STATUS_FAILED);
            pbh_set_str(&c->reason, msg ? msg : "error_occurred");
            pbh_set_str(&run->status, "failed");
            continue;
        }
        if (aggregate && c->nsamples) {
            /* median beats mean when both are there */
            if (strcmp(str_field(b, "aggregate_name"), "median") != 0) continue;
            c->nsamples = 0;
        }
        json_t *rt = json_object_get(b, "real_time"), *ct = json_object_get(b, "cpu_time"),
               *it = json_object_get(b, "iterations");
        double scale = unit_to_seconds(str_field(b, "time_unit"));
        if (!json_is_number(rt) || scale < 0 || (it && !json_is_integer(it))) {
            snprintf(err, errlen, "benchmarks[%zu] (%s): real_time, time_unit or iterations missing or malformed", i,
                     name);
            pbh_run_free(run);
            return PBH_EINPUT;
        }
        int64_t iters = (aggregate || !it) ? 1 : (int64_t)json_integer_value(it);
        double real = json_number_value(rt);
        /* real x iterations can overflow even when both are finite */
        if (!isfinite(real) || real < 0 || iters < 1 || !isfinite(real * scale * (double)iters)) {
            snprintf(err, errlen, "benchmarks[%zu] (%s): real_time x iterations must be a finite number >= 0", i,
                     name);
            pbh_run_free(run);
            return PBH_EINPUT;
        }
        pbh_sample *s = pbh_case_add_sample(c);
        if (!s) {
            pbh_run_free(run);
            return PBH_ENOMEM;
        }
        json_t *rep = json_object_get(b, "repetition_index");
        s->rep = unique_rep(c, json_is_integer(rep) ? json_integer_value(rep) : -1);
        s->iterations = iters;
        s->wall_s = real * scale * (double)iters;
        s->user_s = json_is_number(ct) ? json_number_value(ct) * scale * (double)iters : 0;
        if (!isfinite(s->user_s)) s->user_s = 0; /* unknown, like a missing cpu_time */
        c->reps = (int)c->nsamples;
    }
    if (run->ncases == 0) {
        snprintf(err, errlen, "no benchmarks in the file");
        pbh_run_free(run);
        return PBH_EINPUT;
    }
    *out = run;
    return 0;
}
