/*
 * runner.h - walks a plan (plan.h: a suite or a flag matrix expanded into cases), runs each case in its
 * own child process (child.h, speaking exec_line.h), and collects a pbh_run with every raw sample and the
 * floor probes.
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
#include "plan.h"

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
