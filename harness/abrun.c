/*
 * abrun.c - interleaved A/B runs (abrun.h): the block schedule and its seeded order, and the loop that
 * measures every case on both sides, block by block, each block a fresh case process.
 *
 * DESIGN
 *  The executors are the runner's (runner.h): the base side's re-executes OTHER, the head side's this
 *  binary (or both this binary for an A/A pair in `calibrate`). A block is one call of the executor's
 *  run_case with a copy of the spec whose reps are the block's, into a scratch case whose samples are then
 *  appended to the side's case (renumbered), so each side's case ends with reps samples from
 *  nblocks processes - the same shape a plain run with --processes has, which every reader understands.
 *  Order: splitmix64 over (seed, case ordinal) - one coin per block pair, so each side gets exactly one
 *  block of every pair (balanced) and which goes first is unpredictable (not correlated with time).
 */
#include "abrun.h"

#include "common.h"
#include "context.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pbh_ab_nblocks(int reps, int block_reps) {
    if (block_reps <= 0)
        block_reps = PBH_AB_DEFAULT_BLOCK_REPS;
    if (reps <= 0)
        return 0;
    return (reps + block_reps - 1) / block_reps;
}

void pbh_ab_order(uint64_t seed, size_t case_ordinal, int nblocks, char *order) {
    uint64_t state = seed ^ (0xA5A5A5A5ull * (case_ordinal + 1));
    pbs_splitmix64(&state); /* decorrelate neighbouring ordinals */
    for (int k = 0; k < nblocks; k++) {
        int base_first = (int)(pbs_splitmix64(&state) >> 63);
        order[2 * k] = base_first ? 'A' : 'B';
        order[2 * k + 1] = base_first ? 'B' : 'A';
    }
    order[2 * nblocks] = '\0';
}

/* Appends a block's samples to the side's case, renumbering repetitions across blocks. */
static int append_samples(pbh_case *dst, const pbh_case *block) {
    for (size_t i = 0; i < block->nsamples; i++) {
        pbh_sample *s = pbh_case_add_sample(dst);
        if (!s)
            return PBH_ENOMEM;
        *s = block->samples[i];
        s->rep = (int)dst->nsamples - 1;
    }
    return PBH_OK;
}

static void mark_failed(pbh_case *c, const char *side, const char *reason) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s%s", side, reason ? reason : "failed");
    pbh_set_str(&c->status, PBH_STATUS_FAILED);
    pbh_set_str(&c->reason, msg);
}

void pbh_ab_run_case(const pbh_case_spec *spec, size_t case_ordinal, const pbh_executor *base_ex,
                     const pbh_executor *head_ex, const pbh_ab_opts *opts, pbh_case *base_case, pbh_case *head_case) {
    double c0 = pbs_now();
    if (!spec->supported) {
        pbh_case_mark_unsupported(base_case, spec);
        pbh_case_mark_unsupported(head_case, spec);
        return;
    }
    int block_reps = opts && opts->block_reps > 0 ? opts->block_reps : PBH_AB_DEFAULT_BLOCK_REPS;
    int nblocks = pbh_ab_nblocks(spec->reps, block_reps);
    char *order = malloc(2 * (size_t)nblocks + 1);
    if (!order) {
        mark_failed(base_case, "", "out of memory");
        mark_failed(head_case, "", "out of memory");
        return;
    }
    pbh_ab_order(opts ? opts->seed : 0, case_ordinal, nblocks, order);
    int done[2] = {0, 0}; /* blocks run per side: A, B */
    int failed = 0;
    for (int i = 0; i < 2 * nblocks && !failed && !pbh_runner_interrupted(); i++) {
        int is_base = order[i] == 'A';
        int k = done[!is_base]++;
        pbh_case_spec block = *spec;
        block.reps = spec->reps - k * block_reps < block_reps ? spec->reps - k * block_reps : block_reps;
        block.processes = 1;
        pbh_case scratch = {0};
        const pbh_executor *ex = is_base ? base_ex : head_ex;
        pbh_case *side = is_base ? base_case : head_case;
        ex->run_case(ex->ud, &block, &scratch);
        if (!scratch.status || strcmp(scratch.status, PBH_STATUS_OK) != 0) {
            /* keep what the block measured before it failed: the reason says how far it got */
            append_samples(side, &scratch);
            if (scratch.status && strcmp(scratch.status, PBH_STATUS_TIMEOUT) == 0) {
                pbh_set_str(&side->status, PBH_STATUS_TIMEOUT);
                pbh_set_str(&side->reason, scratch.reason);
            } else {
                mark_failed(side, "", scratch.reason);
            }
            pbh_case *other = is_base ? head_case : base_case;
            mark_failed(other, "not measured to the end: the ", is_base ? "base side failed" : "head side failed");
            failed = 1;
        } else if (append_samples(side, &scratch) != PBH_OK) {
            mark_failed(base_case, "", "out of memory");
            mark_failed(head_case, "", "out of memory");
            failed = 1;
        }
        pbh_case_clear(&scratch);
    }
    free(order);
    if (!failed && pbh_runner_interrupted()) {
        mark_failed(base_case, "", "interrupted");
        mark_failed(head_case, "", "interrupted");
    } else if (!failed) {
        pbh_set_str(&base_case->status, PBH_STATUS_OK);
        pbh_set_str(&head_case->status, PBH_STATUS_OK);
        pbh_set_str(&base_case->reason, NULL);
        pbh_set_str(&head_case->reason, NULL);
    }
    /* the case's wall time covers both sides: they were measured together */
    base_case->elapsed_s = head_case->elapsed_s = pbs_now() - c0;
}

static int run_failed(const pbh_case *c) {
    return strcmp(c->status, PBH_STATUS_FAILED) == 0 || strcmp(c->status, PBH_STATUS_TIMEOUT) == 0;
}

int pbh_ab_run(const pbh_plan *plan, const pbh_executor *base_ex, const pbh_executor *head_ex, const pbh_ab_opts *opts,
               pbh_run *base, pbh_run *head, pbh_progress_fn progress, void *progress_ud) {
    double t0 = pbs_now();
    int failed = 0;
    /* The floors are the machine's, not the build's, and both sides run on this machine now: measured
     * once (by the head) and recorded with both runs. */
    if (head_ex->measure_floors && !pbh_runner_interrupted())
        head_ex->measure_floors(head_ex->ud, head);
    for (size_t i = 0; i < head->nfloors; i++)
        if (!pbh_run_add_floor(base, head->floors[i].name, head->floors[i].seconds, head->floors[i].reps))
            return PBH_ENOMEM;
    for (size_t i = 0; i < plan->n && !pbh_runner_interrupted(); i++) {
        const pbh_case_spec *spec = &plan->cases[i];
        pbh_case *b = pbh_run_add_case(base);
        pbh_case *h = b ? pbh_run_add_case(head) : NULL;
        if (!h)
            return PBH_ENOMEM;
        pbh_case_describe(b, spec);
        pbh_case_describe(h, spec);
        if (progress)
            progress(progress_ud, i + 1, plan->n, h, pbs_now() - t0);
        pbh_ab_run_case(spec, i, base_ex, head_ex, opts, b, h);
        if (run_failed(b) || run_failed(h))
            failed = 1;
        if (progress)
            progress(progress_ud, i + 1, plan->n, h, pbs_now() - t0);
    }
    base->duration_s = head->duration_s = pbs_now() - t0;
    pbh_set_str(&base->status, failed ? "failed" : "ok");
    pbh_set_str(&head->status, failed ? "failed" : "ok");
    if (!base->source)
        base->source = pbh_strdup(PBH_SOURCE_NATIVE);
    if (!head->source)
        head->source = pbh_strdup(PBH_SOURCE_NATIVE);
    return PBH_OK;
}

int pbh_inject_parse(const char *spec, const pbh_plan *plan, char *glob, size_t globlen, double *pct, char *err,
                     size_t errlen) {
    const char *colon = spec ? strrchr(spec, ':') : NULL;
    char *end = NULL;
    double v = colon ? strtod(colon + 1, &end) : 0;
    if (!colon || colon == spec || !colon[1] || *end || !(v > 0 && v <= 1000) || (size_t)(colon - spec) >= globlen) {
        snprintf(err, errlen, "bad slowdown injection '%s': expected CASE-GLOB:PCT, e.g. 'sleep/*:10' (PCT in (0, 1000])",
                 spec ? spec : "");
        return PBH_EINPUT;
    }
    snprintf(glob, globlen, "%.*s", (int)(colon - spec), spec);
    size_t matched = 0;
    for (size_t i = 0; i < plan->n; i++)
        matched += plan->cases[i].supported && fnmatch(glob, plan->cases[i].name, 0) == 0;
    if (!matched) {
        snprintf(err, errlen, "slowdown injection '%s' matches no case that runs (case names look like "
                 "'sleep/fork/w2/items=4,ms=20'; see `poolbench run --help`)", spec);
        return PBH_EINPUT;
    }
    *pct = v;
    return PBH_OK;
}
