/*
 * abrun.h - interleaved A/B runs: two builds of poolbench measured side by side, on the same machine, in
 * the same minutes, so that whatever the machine does to one it does to the other
 * (`poolbench run --against OTHER`, `scripts/ci-perf-check --base REF`, `poolbench calibrate`).
 *
 * Every case is measured by both executables. Its repetitions are cut into blocks of `block_reps`; each
 * block is one fresh case process (with its own warm-up, as in a plain run). The blocks are run in pairs,
 * one block of each side per pair, and a seeded coin decides per pair which side goes first: ABBA BAAB...
 * instead of AAAA...BBBB, so a slow minute, a noisy neighbour or a thermal drift lands on both sides
 * alike, and the order cannot correlate with the side. The seed is recorded with the pair, so the exact
 * order can be reproduced (pbh_ab_order).
 */
#ifndef POOLBENCH_HARNESS_ABRUN_H
#define POOLBENCH_HARNESS_ABRUN_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "runner.h"

/* Repetitions per block (per case process). Chosen from the measurements in docs/verdicts.md: smaller
 * blocks interleave more finely but pay a process start and a warm-up per block. */
#define PBH_AB_DEFAULT_BLOCK_REPS 5

/* Number of blocks a side gets for `reps` repetitions in blocks of block_reps (the last may be short). */
int pbh_ab_nblocks(int reps, int block_reps);

/* The order of the 2 * nblocks case processes of one case: order[2k], order[2k+1] are 'A' (base) and
 * 'B' (head) in the order a seeded coin chose for block pair k. Deterministic in (seed, case_ordinal):
 * the same seed gives the same order on every machine. order must hold 2 * nblocks + 1 chars. */
void pbh_ab_order(uint64_t seed, size_t case_ordinal, int nblocks, char *order);

typedef struct pbh_ab_opts {
    uint64_t seed;  /* the schedule's seed (recorded with the pair) */
    int block_reps; /* <= 0: PBH_AB_DEFAULT_BLOCK_REPS */
} pbh_ab_opts;

/* Measures one case on both sides, interleaved: fills base_case and head_case (descriptive fields, samples,
 * status). case_ordinal selects the case's order (pbh_ab_order). When a block of either side fails, the
 * case stops: that side is recorded as failed with its reason, the other as failed "not measured: the
 * other side failed", since half a pair compares nothing. */
void pbh_ab_run_case(const pbh_case_spec *spec, size_t case_ordinal, const pbh_executor *base_ex,
                     const pbh_executor *head_ex, const pbh_ab_opts *opts, pbh_case *base_case, pbh_case *head_case);

/* Runs plan as a pair: the floor probes first (measured once, by the head, and recorded with both runs:
 * one machine, one minute), then every case with
 * pbh_ab_run_case. base and head were created by the caller (context, label, suite); their statuses are
 * set as pbh_runner_run does. progress is called as pbh_runner_run does, with the head's case. 0 or
 * PBH_ENOMEM; interruption: pbh_runner_interrupted(). */
int pbh_ab_run(const pbh_plan *plan, const pbh_executor *base_ex, const pbh_executor *head_ex, const pbh_ab_opts *opts,
               pbh_run *base, pbh_run *head, pbh_progress_fn progress, void *progress_ud);

/* The validation hook's spec, `CASE-GLOB:PCT` ($POOLBENCH_INJECT_SLOWDOWN, docs/verdicts.md): fills glob
 * and pct. PBH_EINPUT with a message when it is malformed, PCT is not in (0, 1000], or the glob matches
 * no case of plan that can run (an injection that injects nothing would validate nothing). */
int pbh_inject_parse(const char *spec, const pbh_plan *plan, char *glob, size_t globlen, double *pct, char *err,
                     size_t errlen);

#endif
