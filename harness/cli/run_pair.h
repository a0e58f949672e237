/*
 * cli_run_pair.h - the pieces of `poolbench run` that concern interleaved A/B pairs and the slowdown
 * injection hook (cli_run_pair.c); shared with `compare` (re-measuring a pair) and `calibrate`.
 */
#ifndef POOLBENCH_HARNESS_CLI_RUN_PAIR_H
#define POOLBENCH_HARNESS_CLI_RUN_PAIR_H

#include <stdint.h>

#include "context.h"
#include "runner.h"
#include "store.h"

typedef struct pbh_cli_pair_opts {
    const char *other;      /* OTHER: the base side's poolbench executable */
    const char *base_label; /* label of the base run */
    uint64_t order_seed;    /* the interleaving order's seed */
    int block_reps;         /* <= 0: the default */
    int quiet;              /* print only "BASE_ID HEAD_ID" */
    const char *format;     /* table (default) or json */
} pbh_cli_pair_opts;

/* Checks that exe is a poolbench speaking our exec protocol (with a store schema not newer than ours) and
 * puts its build facts (commit, compiler, flags, build type, version) into base_ctx. Exit code. */
int pbh_cli_probe_other(const char *exe, pbh_context *base_ctx);

/* $POOLBENCH_INJECT_SLOWDOWN ('CASE-GLOB:PCT'), when set, into ce's injection fields; exit 2 with a message
 * when it is malformed or matches no case of plan. */
int pbh_cli_injection_from_env(const pbh_plan *plan, pbh_child_executor *ce);

/* A fresh order seed (recorded with the pair). */
uint64_t pbh_cli_fresh_seed(void);

/* Runs plan as a pair (base: o->other, head: this build) and stores it; head was created by `run` with
 * its context and label. Prints the result. Exit code. */
int pbh_cli_run_pair(const pbh_plan *plan, pbh_store *st, pbh_run *head, const pbh_cli_pair_opts *o,
                     pbh_progress_fn progress, void *progress_ud);

#endif
