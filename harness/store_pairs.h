/*
 * store_pairs.h - what the store keeps besides runs (schema 3): interleaved A/B pairs and calibrations.
 *
 * A pair is two runs measured together by `run --against` (abrun.h): a base run and a head run, each
 * with its own commit and context, linked with the schedule's seed and block size and the executables
 * that measured them (so that `compare --confirm` can measure both sides again, interleaved). Both runs
 * and the link are written in one transaction: a pair is stored whole or not at all.
 * A calibration (calibrate.h) is stored as its JSON document with the machine it describes, so that the
 * gate can look up what this machine can judge.
 */
#ifndef POOLBENCH_HARNESS_STORE_PAIRS_H
#define POOLBENCH_HARNESS_STORE_PAIRS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "store.h"

typedef struct pbh_pair {
    int64_t id;
    int64_t base_run_id, head_run_id;
    uint64_t seed;        /* the interleaving order's seed (pbh_ab_order) */
    int block_reps;
    char base_exe[4096];  /* the poolbench executables that measured each side */
    char head_exe[4096];
    char injected[300];   /* "GLOB:PCT" when a slowdown was injected into the head (validation), else "" */
} pbh_pair;

/* Inserts base, head and their link in one transaction; sets the runs' ids and pair->id. */
int pbh_store_insert_pair(pbh_store *st, pbh_run *base, pbh_run *head, pbh_pair *pair, char *err, size_t errlen);

/* The pair run_id belongs to (as base or head). PBH_ENOTFOUND when it is a lone run (or the store is older
 * than schema 3). */
int pbh_store_find_pair(pbh_store *st, int64_t run_id, pbh_pair *out, char *err, size_t errlen);

/* Stores a calibration document (JSON text) for the machine in ctx; sets *id. */
int pbh_store_insert_calibration(pbh_store *st, const pbh_context *ctx, const char *suite, const char *json,
                                 int64_t *id, char *err, size_t errlen);

/* The latest calibration measured on a machine with this host, CPU model and core count (and suite, when
 * suite is not NULL): heap JSON text in *json, or PBH_ENOTFOUND. */
int pbh_store_latest_calibration(pbh_store *st, const pbh_context *machine, const char *suite, char **json,
                                 int64_t *id, char *err, size_t errlen);

#endif
