/*
 * history.h - change points per case over the runs in the store.
 *
 * For every case name, the runs that measured it ok form a series in time order (run start, then id); the
 * value per run is the median time per iteration of its samples. E-Divisive means with a permutation
 * significance test (stats.h, in the spirit of Apache Otava) splits each series into segments; each
 * change point names the run and commit where the new level starts and the size of the step.
 */
#ifndef POOLBENCH_HARNESS_HISTORY_H
#define POOLBENCH_HARNESS_HISTORY_H

#include "model.h"
#include "stats.h"
#include "store.h"

typedef struct pbh_history_point {
    const pbh_run *run; /* borrowed from pbh_history.runs */
    double median_s;
} pbh_history_point;

typedef struct pbh_history_case {
    const pbh_case *first; /* the case's first appearance (its descriptive fields) */
    pbh_history_point *points;
    size_t npoints;
    pbs_change_point *cps;
    size_t ncps;
} pbh_history_case;

typedef struct pbh_history {
    pbh_run **runs; /* time order */
    size_t nruns;
    pbh_history_case *cases;
    size_t ncases;
    pbs_cp_opts opts;
} pbh_history;

/* Loads every run of the store and builds the series; scenario / backend (NULL = all) filter the cases.
 * 0 or PBH_E* with a message in err. */
int pbh_history_build(pbh_store *st, const char *scenario, const char *backend, const pbs_cp_opts *opts,
                      pbh_history *out, char *err, size_t errlen);
void pbh_history_free(pbh_history *h);

#endif
