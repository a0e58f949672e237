/*
 * store.h - the results store: every run, every raw sample, the floors and the run context, behind one
 * storage interface (pbh_store_vtab, in the style of the library's pb_backend and sqlite3_vfs) so that a
 * second store is a second implementation, not a second copy. SQLite (store_sqlite.c) is the first
 * implementation and the default; PostgreSQL (store_pg.c, libpq) takes every postgresql:// or postgres://
 * URI; store.c picks the implementation for a location and holds what every implementation shares; the
 * SQL both dialects accept, the binding of a run's values and the decoding of rows are in store_sql.[ch]. Nothing outside harness/ reads a store directly: scripts read the CLI's
 * JSON (`poolbench runs/show/export/compare/history --format json`).
 *
 * Guarantees (every implementation gives them; the SQLite mechanism is named, store_pg.h names PostgreSQL's):
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

/* The schema this binary writes. Bump it by appending a step to the migrations lists in store_sqlite.c and
 * store_pg.c. Version 3 added runs.uuid (a run's identity across stores) and runs.machine; version 4 the
 * pairs and calibrations tables (interleaved A/B runs, calibrate). */
#define PBH_SCHEMA_VERSION 4
/* PRAGMA application_id of a poolbench store: "PBNC". */
#define PBH_APPLICATION_ID 0x50424E43

enum pbh_store_mode {
    PBH_STORE_READ,  /* read-only: the file must exist and be a poolbench store (or empty) */
    PBH_STORE_WRITE, /* read-write: created if missing, migrated if older */
};

typedef struct pbh_store pbh_store;

/* What a history is built from, narrowed in the store: runs of `machine` that measured a matching case,
 * and of those runs only the matching cases. NULL fields (or a NULL filter) match everything. */
typedef struct pbh_history_filter {
    const char *scenario, *backend, *machine, *case_name;
} pbh_history_filter;

/* An interleaved A/B pair (`run --against`, abrun.h): a base run and a head run measured together, each
 * with its own commit and context, linked with the schedule's seed and block size and the executables
 * that measured them (so that `compare --confirm` can measure both sides again, interleaved). */
typedef struct pbh_pair {
    int64_t id;
    int64_t base_run_id, head_run_id;
    uint64_t seed;        /* the interleaving order's seed (pbh_ab_order) */
    int block_reps;
    char base_exe[4096];  /* the poolbench executables that measured each side */
    char head_exe[4096];
    char injected[300];   /* "GLOB:PCT" when a slowdown was injected into the head (validation), else "" */
} pbh_pair;

/* One storage implementation. Methods return 0 or PBH_E* with a one-line message in err. New methods are
 * only appended, after a comment naming the version that added them; callers check version (or NULL)
 * before calling an optional one. */
typedef struct pbh_store_vtab {
    int version; /* 2 (1: no pairs, no calibrations) */
    const char *name;
    /* 1 when location (a path, a URL) is for this implementation. */
    int (*accepts)(const char *location);
    /* Validates and connects; never writes to something that is not a poolbench store. A WRITE store is
     * then brought to PBH_SCHEMA_VERSION with migrate (pbh_store_open does that). */
    int (*open)(pbh_store **out, const char *location, enum pbh_store_mode mode, char *err, size_t errlen);
    /* Migrates an open WRITE store up to schema `target`, atomically. */
    int (*migrate)(pbh_store *st, int target, char *err, size_t errlen);
    void (*close)(pbh_store *st);
    int (*schema_version)(pbh_store *st);
    /* Inserts in one transaction; PBH_EEXIST (nothing written, run->id = the stored one's) when a run with
     * run->uuid is there already. Sets run->uuid when the run had none. */
    int (*insert_run)(pbh_store *st, pbh_run *run, char *err, size_t errlen);
    int (*load_run)(pbh_store *st, int64_t id, pbh_run **out, char *err, size_t errlen);
    /* Newest first; machine NULL = every machine. */
    int (*list_runs)(pbh_store *st, const char *machine, pbh_run_info **out, size_t *n, char *err, size_t errlen);
    int (*resolve)(pbh_store *st, const char *ref, int64_t *id, char *err, size_t errlen);
    /* The runs a history series is built from, in time order (start time, then id), narrowed by filter
     * (NULL = all). Optional: NULL means store.c's generic list_runs + load_run, filtered after loading. */
    int (*history_runs)(pbh_store *st, const pbh_history_filter *filter, pbh_run ***runs, size_t *n, char *err,
                        size_t errlen);
    /* Consistency checks: one line per problem into report (or "ok"); the number of problems, or a PBH_E*
     * (< 0) when they could not run. Optional (NULL: no checks beyond what opening does). */
    int (*check)(pbh_store *st, char *report, size_t len);
    /* version 2: interleaved A/B pairs and calibrations (schema 4). Optional (NULL: not supported). */
    int (*insert_pair)(pbh_store *st, pbh_run *base, pbh_run *head, pbh_pair *pair, char *err, size_t errlen);
    int (*find_pair)(pbh_store *st, int64_t run_id, pbh_pair *out, char *err, size_t errlen);
    int (*insert_calibration)(pbh_store *st, const pbh_context *machine, const char *suite, const char *json,
                              int64_t *id, char *err, size_t errlen);
    int (*latest_calibration)(pbh_store *st, const pbh_context *machine, const char *suite, char **json,
                              int64_t *id, char *err, size_t errlen);
} pbh_store_vtab;

/* Every open store starts with this; an implementation's own struct embeds it first. */
struct pbh_store {
    const pbh_store_vtab *vt;
};

/* The implementations, the default (SQLite) first. */
extern const pbh_store_vtab pbh_store_sqlite;
extern const pbh_store_vtab pbh_store_postgres;

/* Opens path with the implementation that accepts it (a path: SQLite); in WRITE mode migrates it to
 * PBH_SCHEMA_VERSION. err receives a one-line message naming the file and the problem. Returns 0,
 * PBH_EINPUT (no such file for READ, not SQLite, not a poolbench store, unreadable, no implementation
 * for the location), PBH_ESCHEMA (newer schema) or PBH_EIO. */
int pbh_store_open(pbh_store **out, const char *path, enum pbh_store_mode mode, char *err, size_t errlen);
void pbh_store_close(pbh_store *st);

/* The schema version of the open store (0 for an empty store opened read-only). */
int pbh_store_schema_version(pbh_store *st);

/* Inserts run (cases, samples, floors) in one transaction; sets run->id and each case's id, and run->uuid
 * when the run had none. PBH_EEXIST when the store already holds a run with run->uuid: nothing is written
 * and run->id is that run's id (push twice = stored once). */
int pbh_store_insert_run(pbh_store *st, pbh_run *run, char *err, size_t errlen);

/* All runs, newest first; machine (NULL = every machine) keeps only the runs of that machine key. */
int pbh_store_list_runs(pbh_store *st, const char *machine, pbh_run_info **out, size_t *n, char *err,
                        size_t errlen);

/* Resolves a RUN reference: a run id, a run's uuid, a label (the latest run with it) or "latest".
 * PBH_ENOTFOUND with a message when nothing matches. */
int pbh_store_resolve(pbh_store *st, const char *ref, int64_t *id, char *err, size_t errlen);

/* Loads a whole run. */
int pbh_store_load_run(pbh_store *st, int64_t id, pbh_run **out, char *err, size_t errlen);

/* The runs a history is built from (vtab history_runs), in time order, each with only the cases filter
 * matches (runs without one are left out); free with pbh_store_runs_free. */
int pbh_store_history_runs(pbh_store *st, const pbh_history_filter *filter, pbh_run ***runs, size_t *n, char *err,
                           size_t errlen);

/* Consistency checks (vtab check): the number of problems with one line each in report ("ok" when none),
 * or a PBH_E* (< 0) with the reason in report. */
int pbh_store_check(pbh_store *st, char *report, size_t len);
void pbh_store_runs_free(pbh_run **runs, size_t n);

/* Inserts base, head and their link in ONE transaction (a pair is stored whole or not at all); sets the
 * runs' ids and pair->id. */
int pbh_store_insert_pair(pbh_store *st, pbh_run *base, pbh_run *head, pbh_pair *pair, char *err, size_t errlen);
/* The pair run_id belongs to (as base or head). PBH_ENOTFOUND for a lone run, or a store without pairs
 * (older than schema 4). */
int pbh_store_find_pair(pbh_store *st, int64_t run_id, pbh_pair *out, char *err, size_t errlen);
/* A calibration (calibrate.h) is kept as its JSON document with the machine it describes, so that the
 * gate can look up what this machine can judge. */
int pbh_store_insert_calibration(pbh_store *st, const pbh_context *machine, const char *suite, const char *json,
                                 int64_t *id, char *err, size_t errlen);
/* The latest calibration of this machine (its machine key; and suite, unless NULL):
 * heap JSON in *json, or PBH_ENOTFOUND. */
int pbh_store_latest_calibration(pbh_store *st, const pbh_context *machine, const char *suite, char **json,
                                 int64_t *id, char *err, size_t errlen);

/* ---- SQLite only (store_sqlite.c), for tests ---- */

/* The underlying connection; NULL when st is not an SQLite store. */
struct sqlite3 *pbh_store_db(pbh_store *st);
/* The libpq connection (PGconn *); NULL when st is not a PostgreSQL store (store_pg.c). */
void *pbh_store_pg_conn(pbh_store *st);

/* For tests: creates (or migrates) the store at path up to exactly `version` (1..PBH_SCHEMA_VERSION),
 * as an older poolbench would have left it. */
int pbh_store_create_at_version(const char *path, int version, char *err, size_t errlen);

#endif
