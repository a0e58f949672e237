/*
 * format_gbench.c - a run as Google Benchmark JSON, so that Google Benchmark's own tools
 * (tools/compare.py benchmarks A.json B.json) can read poolbench runs.
 *
 * Mapping: every case is a benchmark family named by the case name; each stored repetition is one
 * entry with run_type "iteration", repetitions = n, repetition_index = i, iterations = the sample's
 * iterations (1 for native runs), real_time = wall per iteration and cpu_time = user+sys CPU of the case
 * process and its workers per iteration, both in ns (one fixed unit, because compare.py compares the
 * numbers of two files as they are). After the iterations come the mean, median and stddev aggregates,
 * named NAME_mean etc. with run_name NAME, as Google Benchmark writes them with --benchmark_repetitions.
 * A failed or timed-out case with no samples is one entry with error_occurred, which compare.py skips;
 * unsupported cases are left out. The context carries GB's usual keys plus poolbench's own under
 * "poolbench".
 */
#include "format.h"

#include "stats.h"

#include <stdlib.h>
#include <string.h>

static json_t *jstr(const char *s) {
    return json_string(s ? s : "");
}

static json_t *entry(const char *name, const char *run_name, size_t family, const char *run_type, size_t reps,
                     size_t rep_index, int64_t iterations, double real_ns, double cpu_ns) {
    json_t *o = json_object();
    json_object_set_new(o, "name", jstr(name));
    json_object_set_new(o, "family_index", json_integer((json_int_t)family));
    json_object_set_new(o, "per_family_instance_index", json_integer(0));
    json_object_set_new(o, "run_name", jstr(run_name));
    json_object_set_new(o, "run_type", json_string(run_type));
    json_object_set_new(o, "repetitions", json_integer((json_int_t)reps));
    json_object_set_new(o, "repetition_index", json_integer((json_int_t)rep_index));
    json_object_set_new(o, "threads", json_integer(1));
    json_object_set_new(o, "iterations", json_integer(iterations));
    json_object_set_new(o, "real_time", json_real(real_ns));
    json_object_set_new(o, "cpu_time", json_real(cpu_ns));
    json_object_set_new(o, "time_unit", json_string("ns"));
    return o;
}

static void add_aggregate(json_t *arr, const char *name, size_t family, size_t n, const char *agg, double real_ns,
                          double cpu_ns) {
    char full[512];
    snprintf(full, sizeof full, "%s_%s", name, agg);
    json_t *o = entry(full, name, family, "aggregate", n, 0, (int64_t)n, real_ns, cpu_ns);
    json_object_del(o, "repetition_index");
    json_object_set_new(o, "aggregate_name", json_string(agg));
    json_object_set_new(o, "aggregate_unit", json_string("time"));
    json_array_append_new(arr, o);
}

char *pbh_format_run_gbench(const pbh_run *run) {
    const pbh_context *c = &run->ctx;
    json_t *doc = json_object();
    json_t *ctx = json_object();
    json_object_set_new(ctx, "date", jstr(c->started_at));
    json_object_set_new(ctx, "host_name", jstr(c->host));
    json_object_set_new(ctx, "executable", json_string("poolbench"));
    json_object_set_new(ctx, "num_cpus", json_integer(c->cores > 0 ? c->cores : 0));
    json_object_set_new(ctx, "mhz_per_cpu", json_integer(0));
    json_object_set_new(ctx, "cpu_scaling_enabled", json_boolean(c->governor && strcmp(c->governor, "performance") != 0));
    json_object_set_new(ctx, "caches", json_array());
    json_object_set_new(ctx, "load_avg", json_array());
    const char *bt = c->build_type ? c->build_type : "";
    json_object_set_new(ctx, "library_build_type", json_string(strcmp(bt, "Debug") == 0 ? "debug" : "release"));
    json_t *pb = json_object();
    json_object_set_new(pb, "run_id", json_integer(run->id));
    json_object_set_new(pb, "label", run->label ? json_string(run->label) : json_null());
    json_object_set_new(pb, "suite", run->suite ? json_string(run->suite) : json_null());
    json_object_set_new(pb, "source", jstr(run->source));
    json_object_set_new(pb, "git_commit", c->git_commit ? json_string(c->git_commit) : json_null());
    json_object_set_new(pb, "git_dirty", c->git_dirty < 0 ? json_null() : json_boolean(c->git_dirty));
    json_object_set_new(pb, "cpu_model", jstr(c->cpu_model));
    json_object_set_new(pb, "kernel", jstr(c->kernel));
    json_object_set_new(pb, "compiler", jstr(c->compiler));
    json_object_set_new(pb, "build_type", jstr(c->build_type));
    json_object_set_new(ctx, "poolbench", pb);
    json_object_set_new(doc, "context", ctx);

    json_t *arr = json_array();
    size_t family = 0;
    for (size_t i = 0; i < run->ncases; i++) {
        const pbh_case *k = &run->cases[i];
        if (k->status && strcmp(k->status, PBH_STATUS_UNSUPPORTED) == 0)
            continue;
        const char *name = k->name ? k->name : "case";
        if (k->nsamples == 0) {
            json_t *o = entry(name, name, family, "iteration", 1, 0, 0, 0, 0);
            json_object_set_new(o, "error_occurred", json_true());
            json_object_set_new(o, "error_message", jstr(k->reason ? k->reason : k->status));
            json_array_append_new(arr, o);
            family++;
            continue;
        }
        size_t n = k->nsamples;
        double *real = malloc(n * sizeof *real), *cpu = malloc(n * sizeof *cpu);
        if (!real || !cpu) {
            free(real), free(cpu);
            json_decref(doc);
            json_decref(arr);
            return NULL;
        }
        for (size_t j = 0; j < n; j++) {
            const pbh_sample *s = &k->samples[j];
            double it = s->iterations > 0 ? (double)s->iterations : 1.0;
            real[j] = s->wall_s / it * 1e9;
            cpu[j] = pbh_sample_cpu(s) / it * 1e9;
            json_array_append_new(arr, entry(name, name, family, "iteration", n, j, s->iterations > 0 ? s->iterations : 1,
                                             real[j], cpu[j]));
        }
        add_aggregate(arr, name, family, n, "mean", pbs_mean(real, n), pbs_mean(cpu, n));
        add_aggregate(arr, name, family, n, "median", pbs_median(real, n), pbs_median(cpu, n));
        add_aggregate(arr, name, family, n, "stddev", pbs_stddev(real, n), pbs_stddev(cpu, n));
        free(real);
        free(cpu);
        family++;
    }
    json_object_set_new(doc, "benchmarks", arr);
    return pbh_json_text_release(doc);
}
