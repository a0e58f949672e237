/*
 * suites.h - named sets of cases: `quick` (the CI suite), `default` (README command 1) and `full`.
 *
 * A suite is a list of items; each item is one scenario with fixed params, run on a set of backends and
 * worker counts. The runner expands items into cases (runner.h), and flags given with --suite filter or
 * override them (--scenario/--backend filter, --workers/--param/--reps/--warmup override).
 */
#ifndef POOLBENCH_HARNESS_SUITES_H
#define POOLBENCH_HARNESS_SUITES_H

#include <stddef.h>

typedef struct pbh_suite_item {
    const char *scenario;
    const char *params;   /* space-separated "k=v" assignments; NULL = the scenario's defaults */
    const char *backends; /* comma list; NULL = every registered backend */
    const char *workers;  /* comma list, e.g. "4,8" */
    int reps, warmup;     /* 0 reps / -1 warmup: the suite's */
} pbh_suite_item;

typedef struct pbh_suite {
    const char *name;
    const char *description;
    const char *duration;  /* measured wall time of the whole suite on the reference 2-core VM */
    int reps, warmup;
    double case_timeout_s;
    const pbh_suite_item *items;
    size_t nitems;
    int pair_reps; /* repetitions per side of an A/B pair (run --against, calibrate); 0: reps */
} pbh_suite;

size_t pbh_suite_count(void);
const pbh_suite *pbh_suite_at(size_t i);
const pbh_suite *pbh_suite_find(const char *name); /* NULL when unknown */
int pbh_suite_pair_reps(const pbh_suite *s);        /* repetitions per side of an A/B pair */

#endif
