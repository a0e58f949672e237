/*
 * store_fixture.h - the run the store tests write and read back: two cases (one with three samples of
 * awkward doubles, one unsupported without samples), every context field set, two floor probes. Shared by
 * test_store.c (SQLite specifics) and test_stores.c (the table over every store). Header-only.
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

#endif
