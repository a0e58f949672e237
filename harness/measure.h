/*
 * measure.h - one measured execution of a scenario in the current process (the case child's side of the
 * runner): the scenario's own timings plus CPU time and peak memory around it.
 */
#ifndef POOLBENCH_HARNESS_MEASURE_H
#define POOLBENCH_HARNESS_MEASURE_H

#include "model.h"
#include "scenario.h"

/* Runs one execution and fills out (rep left 0) and res. Returns what pb_scenario_execute returned:
 * 0 when it ran (res->ok says whether it verified), a negative PB_E* when it could not run. */
int pbh_measure_once(const pb_scenario *s, const pb_params *p, const char *backend, int workers, uint64_t seed,
                     pbh_sample *out, pb_exec_result *res);

/* Test-only fault injection for the harness's own tests, read from $POOLBENCH_TEST_FAULT:
 * "crash:SCENARIO/BACKEND" raises SIGSEGV, "hang:SCENARIO/BACKEND" sleeps forever, "exit:SCENARIO/BACKEND"
 * exits 7, each in the case process right before the execution (a backend that crashes or hangs the
 * process looks exactly like this to the runner). Unset: no effect. */
void pbh_measure_fault_point(const char *scenario, const char *backend);

#endif
