/*
 * store_fixture.h - the run the store tests write and read back: two cases (one with three samples of
 * awkward doubles, one unsupported without samples), every context field set, two floor probes. Shared by
 * test_store.c (SQLite specifics) and test_stores.c (the table over every store), with the check that a run
 * read back is the run written. Header-only.
 */
#ifndef POOLBENCH_STORE_FIXTURE_H
#define POOLBENCH_STORE_FIXTURE_H

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* machine NULL: "vm-0badc0de" */
static inline pbh_run *tf_make_run(const char *label, const char *machine) {
    pbh_run *run = pbh_run_new();
    run->source = strdup("native");
    run->label = label ? strdup(label) : NULL;
    run->suite = strdup("quick");
    run->status = strdup("failed");
    run->duration_s = 12.345678901234567;
    pbh_context *c = &run->ctx;
    c->started_at = strdup("2026-11-28T23:59:01Z");
    c->started_unix = 1795996741.123456;
    c->git_commit = strdup("0123456789abcdef0123456789abcdef01234567");
    c->git_dirty = 1;
    c->host = strdup("vm");
    c->machine = strdup(machine ? machine : "vm-0badc0de");
    c->cpu_model = strdup("AMD EPYC");
    c->cores = 2;
    c->kernel = strdup("Linux 6.1 x86_64");
    c->compiler = strdup("GNU 12.2.0");
    c->cflags = strdup("-O3 -DNDEBUG");
    c->build_type = strdup("Release");
    c->command_line = strdup("poolbench run --suite quick --label 'a b'");
    c->version = strdup("0.1.0");
    c->extra_json = strdup("{\"k\": [1, 2]}");
    pbh_case *k = pbh_run_add_case(run);
    k->name = strdup("sleep/fork/w4/items=4,ms=2000");
    k->scenario = strdup("sleep");
    k->backend = strdup("fork");
    k->workers = 4;
    k->params = strdup("items=4,ms=2000");
    k->status = strdup("ok");
    k->reps = 3;
    k->warmup = 1;
    k->floor = strdup("nanosleep_overshoot");
    k->measures = strdup("map");
    k->elapsed_s = 8.5;
    const double walls[] = {2.0011, 1.0 / 3.0, 2.000000000000001};
    for (int i = 0; i < 3; i++) {
        pbh_sample *s = pbh_case_add_sample(k);
        s->rep = i;
        s->wall_s = walls[i];
        s->user_s = 1e-9 * (i + 1);
        s->sys_s = DBL_MIN * (i + 1);
        s->peak_rss_kb = 123456789012LL + i;
        s->startup_s = 0.1 + 0.2;
        s->ideal_s = 2.0;
        s->tasks = 4;
        s->failed_tasks = (uint64_t)i;
        s->iterations = 1;
    }
    k = pbh_run_add_case(run);
    k->name = strdup("crash/threads/w2");
    k->scenario = strdup("crash");
    k->backend = strdup("threads");
    k->workers = 2;
    k->params = strdup("");
    k->status = strdup("unsupported");
    k->reason = strdup("no crash isolation | with a pipe");
    pbh_run_add_floor(run, "pipe_rtt", 6.5e-6, 2000);
    pbh_run_add_floor(run, "nanosleep_overshoot", 8.77e-5, 200);
    return run;
}

/* Every field of a run written (in) and read back (out) is the same; doubles bit for bit. Needs cmocka.h
 * included before this header. */
static inline void tf_assert_same_run(const pbh_run *in, const pbh_run *out) {
    assert_int_equal(out->id, in->id);
    assert_string_equal(out->source, in->source);
    assert_string_equal(out->label, in->label);
    assert_string_equal(out->suite, in->suite);
    assert_string_equal(out->status, in->status);
    assert_true(out->duration_s == in->duration_s);
    assert_string_equal(out->ctx.started_at, in->ctx.started_at);
    assert_true(out->ctx.started_unix == in->ctx.started_unix);
    assert_string_equal(out->ctx.git_commit, in->ctx.git_commit);
    assert_int_equal(out->ctx.git_dirty, 1);
    assert_string_equal(out->ctx.host, in->ctx.host);
    assert_string_equal(out->ctx.cpu_model, in->ctx.cpu_model);
    assert_int_equal(out->ctx.cores, 2);
    assert_string_equal(out->ctx.kernel, in->ctx.kernel);
    assert_string_equal(out->ctx.compiler, in->ctx.compiler);
    assert_string_equal(out->ctx.cflags, in->ctx.cflags);
    assert_string_equal(out->ctx.build_type, in->ctx.build_type);
    assert_string_equal(out->ctx.command_line, in->ctx.command_line);
    assert_null(out->ctx.governor);
    assert_string_equal(out->ctx.version, in->ctx.version);
    assert_int_equal(out->ncases, in->ncases);
    for (size_t i = 0; i < in->ncases; i++) {
        const pbh_case *a = &in->cases[i], *b = &out->cases[i];
        assert_string_equal(a->name, b->name);
        assert_string_equal(a->scenario, b->scenario);
        assert_string_equal(a->backend, b->backend);
        assert_int_equal(a->workers, b->workers);
        assert_string_equal(a->params, b->params);
        assert_string_equal(a->status, b->status);
        if (a->reason)
            assert_string_equal(a->reason, b->reason);
        else
            assert_null(b->reason);
        assert_int_equal(a->reps, b->reps);
        assert_int_equal(a->warmup, b->warmup);
        assert_true(a->elapsed_s == b->elapsed_s);
        assert_int_equal(a->nsamples, b->nsamples);
        for (size_t j = 0; j < a->nsamples; j++) {
            const pbh_sample *x = &a->samples[j], *y = &b->samples[j];
            /* bit-exact: SQLite REAL is an IEEE double */
            assert_int_equal(x->rep, y->rep);
            assert_memory_equal(&x->wall_s, &y->wall_s, sizeof(double));
            assert_memory_equal(&x->user_s, &y->user_s, sizeof(double));
            assert_memory_equal(&x->sys_s, &y->sys_s, sizeof(double));
            assert_memory_equal(&x->startup_s, &y->startup_s, sizeof(double));
            assert_memory_equal(&x->ideal_s, &y->ideal_s, sizeof(double));
            assert_int_equal(x->peak_rss_kb, y->peak_rss_kb);
            assert_int_equal(x->tasks, y->tasks);
            assert_int_equal(x->failed_tasks, y->failed_tasks);
            assert_int_equal(x->iterations, y->iterations);
        }
    }
    assert_int_equal(out->nfloors, 2);
    const pbh_floor *f = pbh_run_floor(out, "pipe_rtt");
    assert_non_null(f);
    assert_true(f->seconds == 6.5e-6);
    assert_int_equal(f->reps, 2000);
}

#endif
