/*
 * store_sql.h - what the SQLite and the PostgreSQL stores share: the statements both dialects run
 * unchanged, and the code that binds a run's values to them and reads rows back into the data model.
 *
 * Placeholders are written $1, $2, ...: PostgreSQL's own syntax, and SQLite numbers named parameters by
 * their first appearance, so a statement whose $N first appear in ascending order binds by index in both.
 * Each store supplies two small adapters (pbh_sql_params to bind, pbh_sql_row to read one result row);
 * the column lists, their order and the meaning of NULL live here once.
 *
 * Logical schema (version 4; store_sqlite.c holds SQLite's DDL and migrations, store_pg.c PostgreSQL's):
 *   runs    (id, uuid UNIQUE, machine, source, label, suite, status, started_at, started_unix, duration_s,
 *            git_commit, git_dirty, host, cpu_model, cores, kernel, compiler, cflags, build_type,
 *            command_line, governor, version, context_json)
 *   cases   (id, run_id -> runs, ord, name, scenario, backend, workers, params, status, reason, reps,
 *            warmup, floor, measures, elapsed_s)
 *   samples (case_id -> cases, rep, wall_s, user_s, sys_s, peak_rss_kb, startup_s, ideal_s, tasks,
 *            failed_tasks, iterations)
 *   floors  (run_id -> runs, name, seconds, reps)
 *   pairs   (id, base_run_id -> runs UNIQUE, head_run_id -> runs UNIQUE, seed, block_reps, base_exe,
 *            head_exe, injected)                                                        (version 4)
 *   calibrations (id, machine, started_at, host, cpu_model, cores, kernel, suite, git_commit,
 *            result_json)                                                               (version 4)
 * A run's uuid is its identity across stores (push copies it; inserting a uuid already present stores
 * nothing); id is local to one store.
 */
#ifndef POOLBENCH_HARNESS_STORE_SQL_H
#define POOLBENCH_HARNESS_STORE_SQL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "store.h"

/* ---- statements ---------------------------------------------------------------------------------------- */

/* Returns the new id; no row when a run with this uuid is already stored (push's idempotence). */
#define PBH_SQL_INSERT_RUN                                                                                     \
    "INSERT INTO runs (uuid, machine, source, label, suite, status, started_at, started_unix, duration_s,"    \
    " git_commit, git_dirty, host, cpu_model, cores, kernel, compiler, cflags, build_type, command_line,"     \
    " governor, version, context_json)"                                                                       \
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21," \
    " $22) ON CONFLICT (uuid) DO NOTHING RETURNING id"
#define PBH_SQL_INSERT_RUN_NPARAMS 22

#define PBH_SQL_INSERT_CASE                                                                                    \
    "INSERT INTO cases (run_id, ord, name, scenario, backend, workers, params, status, reason, reps, warmup,"  \
    " floor, measures, elapsed_s) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"       \
    " RETURNING id"
#define PBH_SQL_INSERT_CASE_NPARAMS 14

#define PBH_SQL_INSERT_SAMPLE                                                                                  \
    "INSERT INTO samples (case_id, rep, wall_s, user_s, sys_s, peak_rss_kb, startup_s, ideal_s, tasks,"       \
    " failed_tasks, iterations) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
#define PBH_SQL_INSERT_SAMPLE_NPARAMS 11

#define PBH_SQL_INSERT_FLOOR "INSERT INTO floors (run_id, name, seconds, reps) VALUES ($1, $2, $3, $4)"
#define PBH_SQL_INSERT_FLOOR_NPARAMS 4

#define PBH_SQL_RUN_ID_BY_UUID "SELECT id FROM runs WHERE uuid = $1"
#define PBH_SQL_LATEST_RUN "SELECT max(id) FROM runs"
#define PBH_SQL_RUN_ID_EXISTS "SELECT id FROM runs WHERE id = CAST($1 AS BIGINT)"
#define PBH_SQL_LATEST_WITH_LABEL "SELECT max(id) FROM runs WHERE label = $1"

/* The cases of one run ($1) with their samples, in order; columns as pbh_sql_read_case_sample reads them. */
#define PBH_SQL_LOAD_CASES                                                                                     \
    "SELECT c.id, c.name, c.scenario, c.backend, c.workers, c.params, c.status, c.reason, c.reps, c.warmup,"  \
    " c.floor, c.measures, c.elapsed_s, s.rep, s.wall_s, s.user_s, s.sys_s, s.peak_rss_kb, s.startup_s,"      \
    " s.ideal_s, s.tasks, s.failed_tasks, s.iterations"                                                        \
    " FROM cases c LEFT JOIN samples s ON s.case_id = c.id WHERE c.run_id = $1 ORDER BY c.ord, s.rep"

/* Interleaved A/B pairs (version 4): the link is written in the same transaction as its two runs. */
#define PBH_SQL_INSERT_PAIR                                                                                    \
    "INSERT INTO pairs (base_run_id, head_run_id, seed, block_reps, base_exe, head_exe, injected)"           \
    " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
/* The pair run $1 belongs to; columns as pbh_sql_read_pair reads them. */
#define PBH_SQL_FIND_PAIR                                                                                      \
    "SELECT id, base_run_id, head_run_id, seed, block_reps, base_exe, head_exe, injected FROM pairs"         \
    " WHERE base_run_id = $1 OR head_run_id = $1"

/* Calibrations (version 4), found again by the machine key they describe (and the suite, $2 NULL = any). */
#define PBH_SQL_INSERT_CALIBRATION                                                                             \
    "INSERT INTO calibrations (machine, started_at, host, cpu_model, cores, kernel, suite, git_commit,"       \
    " result_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"
#define PBH_SQL_LATEST_CALIBRATION                                                                             \
    "SELECT id, result_json FROM calibrations WHERE machine = $1 AND (CAST($2 AS TEXT) IS NULL OR suite = $2)" \
    " ORDER BY id DESC LIMIT 1"

#define PBH_SQL_LOAD_FLOORS "SELECT name, seconds, reps FROM floors WHERE run_id = $1 ORDER BY name"

/* SELECT of one run's row (WHERE id = $1) / of the runs list (newest first; $1 a machine to keep, NULL for
 * all), for a store at schema `version` (older SQLite stores lack columns: they read as NULL or their
 * default). Written into buf; returns buf. */
const char *pbh_sql_select_run(char *buf, size_t len, int version);
const char *pbh_sql_list_runs(char *buf, size_t len, int version);

/* The consistency checks both stores run (`poolbench store check`): each counts rows that must not exist. */
typedef struct pbh_sql_check {
    const char *what; /* what a non-zero count means */
    const char *sql;  /* SELECT count(*) ... */
} pbh_sql_check;
extern const pbh_sql_check pbh_sql_checks[];
extern const size_t pbh_sql_nchecks;

/* ---- binding and reading ----------------------------------------------------------------------------- */

/* A store's way to bind parameter i (1-based) of the statement being prepared. text NULL binds NULL. */
typedef struct pbh_sql_params {
    void *impl;
    void (*text)(struct pbh_sql_params *p, int i, const char *v);
    void (*real)(struct pbh_sql_params *p, int i, double v);
    void (*integer)(struct pbh_sql_params *p, int i, int64_t v);
    void (*null)(struct pbh_sql_params *p, int i);
} pbh_sql_params;

/* A store's view of the current result row; col is 0-based. text returns NULL for SQL NULL. */
typedef struct pbh_sql_row {
    void *impl;
    int (*is_null)(const struct pbh_sql_row *r, int col);
    const char *(*text)(const struct pbh_sql_row *r, int col);
    double (*real)(const struct pbh_sql_row *r, int col);
    int64_t (*integer)(const struct pbh_sql_row *r, int col);
} pbh_sql_row;

/* Binds PBH_SQL_INSERT_RUN's parameters; run->uuid and run->ctx.machine must be set. */
void pbh_sql_bind_run(pbh_sql_params *p, const pbh_run *run);
void pbh_sql_bind_case(pbh_sql_params *p, int64_t run_id, size_t ord, const pbh_case *k);
void pbh_sql_bind_sample(pbh_sql_params *p, int64_t case_id, const pbh_sample *s);
void pbh_sql_bind_floor(pbh_sql_params *p, int64_t run_id, const pbh_floor *f);

/* Binds PBH_SQL_INSERT_PAIR's parameters (the runs' ids already known). */
void pbh_sql_bind_pair(pbh_sql_params *p, const pbh_pair *pair, int64_t base_run_id, int64_t head_run_id);
/* Row of PBH_SQL_FIND_PAIR into out. */
void pbh_sql_read_pair(const pbh_sql_row *r, pbh_pair *out);
/* Binds PBH_SQL_INSERT_CALIBRATION's parameters: the machine it describes (ctx->machine must be set). */
void pbh_sql_bind_calibration(pbh_sql_params *p, const pbh_context *ctx, const char *suite, const char *json);

/* Row of pbh_sql_select_run into run (run must be fresh from pbh_run_new). 0 or PBH_ENOMEM. */
int pbh_sql_read_run(const pbh_sql_row *r, pbh_run *run);
/* Row of pbh_sql_list_runs into info. 0 or PBH_ENOMEM. */
int pbh_sql_read_run_info(const pbh_sql_row *r, pbh_run_info *info);
/* Row of PBH_SQL_LOAD_CASES: starts a new case in run when the row's case id differs from *cur (updating
 * *cur) and appends the row's sample, if any, to the run's last case. 0 or PBH_ENOMEM. */
int pbh_sql_read_case_sample(const pbh_sql_row *r, pbh_run *run, int64_t *cur);
/* Row of PBH_SQL_LOAD_FLOORS. 0 or PBH_ENOMEM. */
int pbh_sql_read_floor(const pbh_sql_row *r, pbh_run *run);

/* The two queries of a history load, both in time order (start, then id); parameters $1 scenario,
 * $2 backend, $3 machine, $4 case name (NULL = any). The cases query has PBH_SQL_LOAD_CASES's columns
 * followed by the run id (column 23), in run id order; of a case only its key fields and status, of a
 * sample only rep, wall_s and iterations are read (the rest is NULL: a history needs no more). For a store at schema `version` (no machine before 3). */
const char *pbh_sql_history_runs(char *buf, size_t len, int version);
const char *pbh_sql_history_cases(char *buf, size_t len, int version);
/* Binds the filter to either query. */
void pbh_sql_bind_history_filter(pbh_sql_params *p, const pbh_history_filter *f);
/* Assembles the history: call with each row of the runs query (run_row), then each row of the cases query
 * (case_row), then finish. Runs with no matching case are dropped at finish. */
typedef struct pbh_sql_history {
    pbh_run **runs;  /* time order */
    pbh_run **by_id; /* the same runs by id, for the case rows */
    size_t n, cap, cursor;
    int64_t cur_case;
} pbh_sql_history;
int pbh_sql_history_run_row(pbh_sql_history *h, const pbh_sql_row *r);
int pbh_sql_history_case_row(pbh_sql_history *h, const pbh_sql_row *r);
/* For a store that reads its cases its own way: the run (of those the runs query returned) with this id;
 * PBH_EIO when there is none (the two queries did not share a snapshot), PBH_ENOMEM. */
int pbh_sql_history_run_of(pbh_sql_history *h, int64_t run_id, pbh_run **run);
/* The WHERE condition both history queries use (runs r, cases c; parameters $1..$4 as above). */
const char *pbh_sql_history_where(char *buf, size_t len, int version);
void pbh_sql_history_finish(pbh_sql_history *h, pbh_run ***runs, size_t *n);
void pbh_sql_history_abort(pbh_sql_history *h);

/* Resolves a RUN reference the same way in both stores: "latest", a run id, a run's uuid, else a label
 * (the latest run with it). query_id runs one of the PBH_SQL_* id queries with arg bound to $1 (or no
 * parameter when arg is NULL) and returns 0 with *id, PBH_ENOTFOUND (no row, or NULL), or PBH_EIO. */
typedef int (*pbh_sql_query_id)(void *store, const char *sql, const char *arg, int64_t *id);
int pbh_sql_resolve(const char *ref, pbh_sql_query_id query_id, void *store, int64_t *id);

/* Runs pbh_sql_checks through query_id (each a count) on a store at schema `version`, appending one line
 * per problem to report (which may hold lines already). The number of problems, or PBH_EIO (report then
 * says which check could not run). */
int pbh_sql_run_checks(pbh_sql_query_id query_id, void *store, int version, char *report, size_t len);

/* ---- helpers both stores need ------------------------------------------------------------------------- */

/* A fresh random UUID (version 4, from getrandom) as 36 characters + NUL. 0, or -1 when the kernel has
 * no randomness to give. */
int pbh_uuid_new(char out[37]);
/* Is s a UUID in its canonical text form (8-4-4-4-12 hex digits)? */
int pbh_uuid_valid(const char *s);

#endif
