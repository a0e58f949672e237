/*
 * store_pairs.c - A/B pairs and calibrations in the SQLite store (store_pairs.h; the tables are created by
 * store.c's migration to schema 3).
 *
 * A pair's write is one BEGIN IMMEDIATE ... COMMIT around both runs (pbh_store_insert_run joins a
 * transaction its caller holds) and the link row; any failure rolls all of it back. Readers of a store
 * older than schema 3 see no pairs and no calibrations.
 */
#include "store_pairs.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void seterr(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t len, const char *fmt, ...) {
    if (!err || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v) {
    if (v && *v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

int pbh_store_insert_pair(pbh_store *st, pbh_run *base, pbh_run *head, pbh_pair *pair, char *err, size_t errlen) {
    sqlite3 *db = pbh_store_db(st);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        seterr(err, errlen, "cannot lock the store: %s", sqlite3_errmsg(db));
        return PBH_EIO;
    }
    int rc = pbh_store_insert_run(st, base, err, errlen);
    if (rc == PBH_OK)
        rc = pbh_store_insert_run(st, head, err, errlen);
    if (rc == PBH_OK) {
        sqlite3_stmt *s = NULL;
        rc = PBH_EIO;
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO pairs (base_run_id, head_run_id, seed, block_reps, base_exe, head_exe,"
                               " injected) VALUES (?,?,?,?,?,?,?)",
                               -1, &s, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(s, 1, base->id);
            sqlite3_bind_int64(s, 2, head->id);
            sqlite3_bind_int64(s, 3, (int64_t)pair->seed);
            sqlite3_bind_int(s, 4, pair->block_reps);
            bind_text_or_null(s, 5, pair->base_exe);
            bind_text_or_null(s, 6, pair->head_exe);
            bind_text_or_null(s, 7, pair->injected);
            if (sqlite3_step(s) == SQLITE_DONE)
                rc = PBH_OK;
        }
        sqlite3_finalize(s);
        if (rc != PBH_OK)
            seterr(err, errlen, "writing the pair failed: %s", sqlite3_errmsg(db));
    }
    if (rc == PBH_OK && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        seterr(err, errlen, "cannot commit the pair: %s", sqlite3_errmsg(db));
        rc = PBH_EIO;
    }
    if (rc != PBH_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        base->id = head->id = 0;
        return rc;
    }
    pair->base_run_id = base->id;
    pair->head_run_id = head->id;
    pair->id = sqlite3_last_insert_rowid(db);
    return PBH_OK;
}

static void copy_col(sqlite3_stmt *s, int i, char *dst, size_t len) {
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(dst, len, "%s", t ? (const char *)t : "");
}

int pbh_store_find_pair(pbh_store *st, int64_t run_id, pbh_pair *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (pbh_store_schema_version(st) < 3)
        return PBH_ENOTFOUND;
    sqlite3 *db = pbh_store_db(st);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, base_run_id, head_run_id, seed, block_reps, base_exe, head_exe, injected"
                           " FROM pairs WHERE base_run_id = ?1 OR head_run_id = ?1",
                           -1, &s, NULL) != SQLITE_OK) {
        seterr(err, errlen, "reading pairs failed: %s", sqlite3_errmsg(db));
        return PBH_EIO;
    }
    sqlite3_bind_int64(s, 1, run_id);
    int step = sqlite3_step(s);
    int rc = step == SQLITE_ROW ? PBH_OK : step == SQLITE_DONE ? PBH_ENOTFOUND : PBH_EIO;
    if (rc == PBH_OK) {
        out->id = sqlite3_column_int64(s, 0);
        out->base_run_id = sqlite3_column_int64(s, 1);
        out->head_run_id = sqlite3_column_int64(s, 2);
        out->seed = (uint64_t)sqlite3_column_int64(s, 3);
        out->block_reps = sqlite3_column_int(s, 4);
        copy_col(s, 5, out->base_exe, sizeof out->base_exe);
        copy_col(s, 6, out->head_exe, sizeof out->head_exe);
        copy_col(s, 7, out->injected, sizeof out->injected);
    } else if (rc == PBH_EIO) {
        seterr(err, errlen, "reading pairs failed: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(s);
    return rc;
}

int pbh_store_insert_calibration(pbh_store *st, const pbh_context *ctx, const char *suite, const char *json,
                                 int64_t *id, char *err, size_t errlen) {
    sqlite3 *db = pbh_store_db(st);
    sqlite3_stmt *s = NULL;
    int rc = PBH_EIO;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO calibrations (started_at, host, cpu_model, cores, kernel, suite, git_commit,"
                           " result_json) VALUES (?,?,?,?,?,?,?,?)",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, ctx->started_at ? ctx->started_at : "", -1, SQLITE_TRANSIENT);
        bind_text_or_null(s, 2, ctx->host);
        bind_text_or_null(s, 3, ctx->cpu_model);
        sqlite3_bind_int(s, 4, ctx->cores);
        bind_text_or_null(s, 5, ctx->kernel);
        bind_text_or_null(s, 6, suite);
        bind_text_or_null(s, 7, ctx->git_commit);
        sqlite3_bind_text(s, 8, json, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s) == SQLITE_DONE) {
            rc = PBH_OK;
            *id = sqlite3_last_insert_rowid(db);
        }
    }
    if (rc != PBH_OK)
        seterr(err, errlen, "writing the calibration failed: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return rc;
}

int pbh_store_latest_calibration(pbh_store *st, const pbh_context *machine, const char *suite, char **json,
                                 int64_t *id, char *err, size_t errlen) {
    *json = NULL;
    if (pbh_store_schema_version(st) < 3)
        return PBH_ENOTFOUND;
    sqlite3 *db = pbh_store_db(st);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, result_json FROM calibrations WHERE host IS ?1 AND cpu_model IS ?2"
                           " AND cores = ?3 AND (?4 IS NULL OR suite = ?4) ORDER BY id DESC LIMIT 1",
                           -1, &s, NULL) != SQLITE_OK) {
        seterr(err, errlen, "reading calibrations failed: %s", sqlite3_errmsg(db));
        return PBH_EIO;
    }
    bind_text_or_null(s, 1, machine->host);
    bind_text_or_null(s, 2, machine->cpu_model);
    sqlite3_bind_int(s, 3, machine->cores);
    bind_text_or_null(s, 4, suite);
    int step = sqlite3_step(s);
    int rc = step == SQLITE_ROW ? PBH_OK : step == SQLITE_DONE ? PBH_ENOTFOUND : PBH_EIO;
    if (rc == PBH_OK) {
        *id = sqlite3_column_int64(s, 0);
        *json = strdup((const char *)sqlite3_column_text(s, 1));
        if (!*json)
            rc = PBH_ENOMEM;
    } else if (rc == PBH_EIO) {
        seterr(err, errlen, "reading calibrations failed: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(s);
    return rc;
}
