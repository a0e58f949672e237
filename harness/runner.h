/*
 * runner.h - turns a suite or a --scenario/--backend/--workers/--param matrix into cases, runs each case
 * in its own child process, and collects a pbh_run with every raw sample and the floor probes.
 *
 * The machinery is separate from the execution (model: hyperfine's executor): the runner walks a plan and
 * asks a pbh_executor to run each case and to measure the floors. The real executor re-executes this
 * binary as `poolbench exec ... --json` per case; tests plug in a fake that fills exact numbers.
 *
 * What one sample is (measured in the case's child process, per repetition; see measure.h):
 *   wall       the scenario's measured phase (pb_exec_result.wall_s: the map, for most scenarios)
 *   user, sys  getrusage(SELF) + getrusage(CHILDREN) deltas around the execution: the case process's
 *              threads and every worker process reaped during it
 *   peak RSS   max(VmHWM of the case process, reset before each repetition through
 *              /proc/self/clear_refs; ru_maxrss of its reaped children, i.e. the largest worker so far)
 *   startup    pool create until its workers are ready
 *   tasks/s    tasks / wall;  efficiency = ideal / wall
 */
#ifndef POOLBENCH_HARNESS_RUNNER_H
#define POOLBENCH_HARNESS_RUNNER_H

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
    int processes;                     /* <= 0: PBH_DEFAULT_PROCESSES (at most reps) */
    double case_timeout_s;             /* <= 0: the suite's or the default */
    uint64_t seed;
} pbh_request;

void pbh_request_init(pbh_request *rq);

/* Expands rq into plan. PBH_EINPUT with a message for unknown names, bad params or an empty plan.
 * Backends that run tasks inline (no PB_CAP_ASYNC: serial) get one case at workers=1 whatever the
 * workers list says: their result does not depend on it. */
int pbh_plan_build(const pbh_request *rq, pbh_plan *plan, char *err, size_t errlen);
void pbh_plan_free(pbh_plan *plan);

/* How cases are executed. run_case fills c->samples, c->status and c->reason (the runner has set the
 * descriptive fields and will set elapsed_s). measure_floors appends the floor probes to run. */
typedef struct pbh_executor {
    void (*run_case)(void *ud, const pbh_case_spec *spec, pbh_case *c);
    void (*measure_floors)(void *ud, pbh_run *run);
    void *ud;
} pbh_executor;

/* The real executor: re-executes self_exe (normally /proc/self/exe) as `exec ... --json`, one child per
 * case, in its own process group, killed with SIGKILL (group) after the case's time limit. */
typedef struct pbh_child_executor {
    char self_exe[4096];    /* the poolbench that runs the cases: this one, or OTHER of `run --against` */
    /* A/B validation hook (docs/verdicts.md): case processes whose case name matches inject_glob (fnmatch)
     * get `--inject-slowdown inject_pct`. Zeroed by init: no injection. */
    char inject_glob[256];
    double inject_pct;
} pbh_child_executor;
void pbh_child_executor_init(pbh_child_executor *ce, pbh_executor *ex);
/* The same executor running the cases with another poolbench executable (`run --against OTHER`). */
void pbh_child_executor_init_exe(pbh_child_executor *ce, pbh_executor *ex, const char *exe);

/* Runs exe with argv (no shell, stdin /dev/null, own process group, killed after timeout_s) and collects
 * its stdout (at most 1 MiB) into *out (heap, NUL-terminated). *status is the wait status. 0, or -1 when
 * it could not be started (err says why). For probing another poolbench (`version --json`). */
int pbh_child_capture(const char *exe, char *const argv[], double timeout_s, char **out, int *status, char *err,
                      size_t errlen);

/* Progress: called twice per case, i counting from 1: before it runs (c->status is NULL) and after it
 * ran (c->status set). elapsed_s is the time since the run started. */
typedef void (*pbh_progress_fn)(void *ud, size_t i, size_t n, const pbh_case *c, double elapsed_s);

/* A case's descriptive fields (name, scenario, backend, workers, params, reps, warm-up, floor, measures)
 * from its spec; and the status of a pair the backend cannot run. */
void pbh_case_describe(pbh_case *c, const pbh_case_spec *spec);
void pbh_case_mark_unsupported(pbh_case *c, const pbh_case_spec *spec);

/* The version of the line protocol between the runner and its `exec --json` case processes (cli_exec.c).
 * `run --against OTHER` refuses an OTHER that speaks another one. */
#define PBH_EXEC_PROTOCOL 1

/* Runs plan: floors first, then every case in order; fills run (which the caller created and gave a
 * context, label, suite). run->status is "failed" when any case failed or timed out. Returns 0, or
 * PBH_ENOMEM. Interruption (SIGINT/SIGTERM) is the caller's business: pbh_runner_interrupted(). */
int pbh_runner_run(const pbh_plan *plan, const pbh_executor *ex, pbh_run *run, pbh_progress_fn progress,
                   void *progress_ud);

/* Set from a signal handler (SIGINT/SIGTERM) to stop after killing the current case. */
void pbh_runner_interrupt(void);
int pbh_runner_interrupted(void);

#endif
