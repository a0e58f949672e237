/*
 * store_pg.h - the PostgreSQL results store (libpq): the same logical schema and guarantees as the SQLite
 * store (store.h), for a team whose CI runners all write into one server.
 *
 * Guarantees:
 *  - A database is only written when it holds the poolbench schema (its poolbench_meta table says so) or
 *    no table at all in the current schema. A database holding tables of another program is refused and
 *    left untouched; so is a newer schema version.
 *  - A run is inserted in ONE transaction; a writer killed mid-way leaves no trace (the server rolls back).
 *    Any number of concurrent writers: ids come from identity columns, a run's uuid is UNIQUE, schema
 *    creation and migrations run under a transaction-scoped advisory lock and re-read the version under it.
 *  - Readers run in read-only transactions (default_transaction_read_only), so a read verb cannot write.
 *  - The password of a connection URI is never printed: every message names the store by its redacted
 *    URI (pbh_redact_password), and libpq's own messages are scrubbed of it.
 *  - An unreachable server or a refused login fails within PBH_PG_CONNECT_TIMEOUT_S seconds (unless the URI
 *    sets its own connect_timeout) with PBH_EINPUT and a message.
 */
#ifndef POOLBENCH_HARNESS_STORE_PG_H
#define POOLBENCH_HARNESS_STORE_PG_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "store.h"
#include "store_sql.h"

#define PBH_PG_CONNECT_TIMEOUT_S 5

typedef struct pbh_pg pbh_pg;

/* Is name a PostgreSQL store (a postgresql:// or postgres:// URI) rather than an SQLite path? */
int pbh_store_is_postgres(const char *name);

/* Opens the store at uri: READ needs nothing of the database but that it is a poolbench store or empty;
 * WRITE creates or migrates the schema. 0, PBH_EINPUT (unreachable, login refused, another program's
 * database), PBH_ESCHEMA (newer schema) or PBH_EIO, with a one-line message in err. */
int pbh_pg_open(pbh_pg **out, const char *uri, enum pbh_store_mode mode, char *err, size_t errlen);
void pbh_pg_close(pbh_pg *pg);
int pbh_pg_schema_version(pbh_pg *pg);
/* Inserts run in one transaction; sets run->id (and run->uuid when it had none). PBH_EEXIST when a run
 * with the same uuid is stored already (run->id is then that run's id; nothing was written). */
int pbh_pg_insert_run(pbh_pg *pg, pbh_run *run, char *err, size_t errlen);
/* Runs newest first; machine NULL for all. */
int pbh_pg_list_runs(pbh_pg *pg, const char *machine, pbh_run_info **out, size_t *n, char *err, size_t errlen);
int pbh_pg_resolve(pbh_pg *pg, const char *ref, int64_t *id, char *err, size_t errlen);
int pbh_pg_load_run(pbh_pg *pg, int64_t id, pbh_run **out, char *err, size_t errlen);
/* Runs sql (a SELECT count(*)) and returns the count in *n. 0 or PBH_EIO with a message. */
int pbh_pg_count(pbh_pg *pg, const char *sql, int64_t *n, char *err, size_t errlen);
/* The runs a history is built from, narrowed by filter, in time order (store_sql.h). */
int pbh_pg_history_runs(pbh_pg *pg, const pbh_history_filter *filter, pbh_run ***runs, size_t *n, char *err,
                        size_t errlen);
/* For tests and tools: the libpq connection (PGconn *). */
void *pbh_pg_conn(pbh_pg *pg);

#endif
