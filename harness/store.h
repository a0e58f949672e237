/*
 * store.h - the SQLite results store: every run, every raw sample, the floors and the run context.
 *
 * Guarantees:
 *  - A file is only written when it is a poolbench store (application_id matches) or an empty file /
 *    no file at all. Anything else (not SQLite, another program's database, a newer schema) is refused
 *    with a message and left byte-identical: validation happens on a read-only connection before the
 *    read-write one is ever opened.
 *  - A run is inserted in ONE transaction (BEGIN IMMEDIATE ... COMMIT): a run killed before or during
 *    the write leaves no trace of itself.
 *  - WAL journal and a busy timeout, so that two writers (two CI jobs) wait for each other instead of
 *    failing or corrupting the file.
 *  - The schema carries a version (PRAGMA user_version); older stores are migrated step by step on the
 *    first write, inside one transaction.
 */
#ifndef POOLBENCH_HARNESS_STORE_H
#define POOLBENCH_HARNESS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* The schema this binary writes. Bump it by appending a step to the migrations list in store.c. */
#define PBH_SCHEMA_VERSION 3
/* PRAGMA application_id of a poolbench store: "PBNC". */
#define PBH_APPLICATION_ID 0x50424E43

typedef struct pbh_store pbh_store;

enum pbh_store_mode {
    PBH_STORE_READ,  /* read-only: the file must exist and be a poolbench store (or empty) */
    PBH_STORE_WRITE, /* read-write: created if missing, migrated if older */
};

/* Opens path. err receives a one-line message naming the file and the problem. Returns 0, PBH_EINPUT (no
 * such file for READ, not SQLite, not a poolbench store, unreadable), PBH_ESCHEMA (newer schema) or
 * PBH_EIO. */
int pbh_store_open(pbh_store **out, const char *path, enum pbh_store_mode mode, char *err, size_t errlen);
void pbh_store_close(pbh_store *st);

/* The schema version of the open store (0 for an empty store opened read-only). */
int pbh_store_schema_version(pbh_store *st);

/* Inserts run (cases, samples, floors) in one transaction; sets run->id and each case's id. */
int pbh_store_insert_run(pbh_store *st, pbh_run *run, char *err, size_t errlen);

/* All runs, newest first. */
int pbh_store_list_runs(pbh_store *st, pbh_run_info **out, size_t *n, char *err, size_t errlen);

/* Resolves a RUN reference: a run id, a label (the latest run with it) or "latest". PBH_ENOTFOUND with
 * a message when nothing matches. */
int pbh_store_resolve(pbh_store *st, const char *ref, int64_t *id, char *err, size_t errlen);

/* Loads a whole run. */
int pbh_store_load_run(pbh_store *st, int64_t id, pbh_run **out, char *err, size_t errlen);

/* For tests and tools: the underlying connection. */
struct sqlite3 *pbh_store_db(pbh_store *st);

/* For tests: creates (or migrates) the store at path up to exactly `version` (1..PBH_SCHEMA_VERSION),
 * as an older poolbench would have left it. */
int pbh_store_create_at_version(const char *path, int version, char *err, size_t errlen);

#endif
