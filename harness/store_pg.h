/*
 * store_pg.h - the PostgreSQL results store (libpq), the second implementation of store.h's interface:
 * the same logical schema and guarantees as the SQLite store, for a team whose CI runners all write into
 * one server.
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

#define PBH_PG_CONNECT_TIMEOUT_S 5

/* Is name a PostgreSQL store (a postgresql:// or postgres:// URI) rather than an SQLite path? The
 * implementation itself is the vtab pbh_store_postgres (store.h). */
int pbh_store_is_postgres(const char *name);

#endif
