/*
 * plan.h - what to run: a suite or a --scenario/--backend/--workers/--param matrix (a pbh_request, the
 * run verb's flags) expanded into a plan of cases, every name checked against the registries up front.
 * The runner (runner.h) walks a plan; nothing here starts a process or measures anything.
 */
#ifndef POOLBENCH_HARNESS_PLAN_H
#define POOLBENCH_HARNESS_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "scenario.h"
#include "suites.h"

#define PBH_DEFAULT_REPS 10
/* Repetitions can be spread over several case processes (--processes): each has its own address-space
 * layout, heap and cache state. Measured on the reference VM, that does not remove the run-to-run shift
 * of microsecond-scale cases (startup/serial medians still moved 1.4-2.2 us between runs of 5 processes
 * each), and it makes more repetitions cold (square/serial at 20,000 items went from 0.62 to 1.3 ms with
 * 2 repetitions per process), so the default stays one process per case. */
#define PBH_DEFAULT_PROCESSES 1
#define PBH_DEFAULT_WARMUP 1
#define PBH_DEFAULT_CASE_TIMEOUT 300.0 /* seconds per case, all repetitions together */
#define PBH_DEFAULT_SEED 42
#define PBH_MAX_LIST 32

/* One case to run. */
typedef struct pbh_case_spec {
    const pb_scenario *scenario;
    char backend[32];
    int workers;
    pb_params params;
    char params_str[256]; /* pb_params_format: "items=4,ms=2000" */
    char name[384];       /* "sleep/fork/w4/items=4,ms=2000" */
    int reps, warmup;     /* warm-up executions run in every case process */
    int processes;        /* case processes the repetitions are spread over (1..reps) */
    double timeout_s;
    uint64_t seed;
    int supported;        /* pb_scenario_supported */
} pbh_case_spec;

typedef struct pbh_plan {
    pbh_case_spec *cases;
    size_t n;
    const pbh_suite *suite; /* NULL for a matrix from flags */
} pbh_plan;

/* What the user asked for (the run verb's flags). Lists are already split on commas. */
typedef struct pbh_request {
    const char *suite;                 /* NULL: none (then scenarios must be given, or "default" is used) */
    const char *scenarios[PBH_MAX_LIST];
    size_t nscenarios;
    const char *backends[PBH_MAX_LIST];
    size_t nbackends;
    int workers[PBH_MAX_LIST];
    size_t nworkers;
    const char *params[PBH_MAX_LIST];  /* "k=v" or a sweep "k=v1,v2" */
    size_t nparams;
    int reps, warmup;                  /* < 0: the suite's or the default */
    int pair;                          /* for an A/B pair: the suite's pair_reps per side (suites.h) */
    int processes;                     /* <= 0: PBH_DEFAULT_PROCESSES (at most reps) */
    double case_timeout_s;             /* <= 0: the suite's or the default */
    uint64_t seed;
} pbh_request;

void pbh_request_init(pbh_request *rq);

/* Why `name` cannot be run: "backend 'glib' is not built in (GLib was not found at configure time)" for a
 * reference backend this build lacks, else "unknown backend 'x' (known: ...)". */
void pbh_backend_unavailable(const char *name, char *buf, size_t len);

/* Expands rq into plan. PBH_EINPUT with a message for unknown names, bad params or an empty plan.
 * Backends that run tasks inline (no PB_CAP_ASYNC: serial) get one case at workers=1 whatever the
 * workers list says: their result does not depend on it. */
int pbh_plan_build(const pbh_request *rq, pbh_plan *plan, char *err, size_t errlen);
void pbh_plan_free(pbh_plan *plan);

/* Splits buf (modified in place) on sep into at most max non-empty pieces; returns the count. Used for
 * comma lists ("fork,spawn", "items=4,ms=2000") and the blank-separated params of a suite item. */
size_t pbh_split(char *buf, char sep, char **out, size_t max);

#endif
