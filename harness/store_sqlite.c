/*
 * store_sqlite.c - the SQLite implementation of the storage interface (store.h): the default store, a
 * file. Everything SQL lives in this file; the rest of the harness and every script read and write runs
 * through store.h and the CLI's JSON. It exports one vtab, pbh_store_sqlite, plus two SQLite-only hooks
 * for tests (pbh_store_db, pbh_store_create_at_version).
 *
 * DESIGN
 *  Opening is in two phases so that a file that is not ours is never written:
 *   1. check: stat the path, read the 100-byte header with plain read(2) (a non-SQLite file is refused
 *      before SQLite ever sees it), then a READ-ONLY connection reads application_id, user_version and
 *      whether any table exists. A newer schema, a foreign application_id or a non-empty database
 *      without our id is refused here.
 *   2. write mode only: a read-write connection switches to WAL, sets the busy timeout and runs the
 *      migrations inside BEGIN IMMEDIATE, re-reading user_version under the lock because another
 *      process may have migrated the store meanwhile.
 *  Migrations are a list of SQL steps; step i takes a store from version i to i+1. A store is never
 *  migrated by a read verb (that connection is read-only), so readers handle every version they know:
 *  before version 2 there is no floors table and every run is native.
 *
 *  The statements both stores run, binding and row decoding are shared (store_sql.h); what is SQLite's
 *  own is here: the file checks, the DDL and its migrations, transactions and the statement adapters.
 *
 *  Schema (version 4; 3 added runs.uuid and runs.machine, 4 pairs and calibrations):
 *    runs    (id, uuid UNIQUE, machine, source native|gbench|hyperfine, label, suite, status, started_at, started_unix,
 *             duration_s, git_commit, git_dirty, host, cpu_model, cores, kernel, compiler, cflags,
 *             build_type, command_line, governor, version, context_json)
 *    cases   (id, run_id -> runs, ord, name, scenario, backend, workers, params, status, reason, reps,
 *             warmup, floor, measures, elapsed_s)
 *    samples (case_id -> cases, rep, wall_s, user_s, sys_s, peak_rss_kb, startup_s, ideal_s, tasks,
 *             failed_tasks, iterations)
 *    floors  (run_id -> runs, name, seconds, reps)
 *    pairs   (id, base_run_id -> runs, head_run_id -> runs, seed, block_reps, base_exe, head_exe, injected)
 *    calibrations (id, started_at, host, cpu_model, cores, kernel, suite, git_commit, result_json)
 *  Times in seconds, memory in KiB. Doubles are stored as SQLite REAL, i.e. bit-exact IEEE 754.
 */
#include "store.h"
#include "store_sql.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Two CI jobs finishing together must queue, not fail: a run's write takes well under a second. */
#define BUSY_TIMEOUT_MS 30000

typedef struct sqlite_store {
    pbh_store base; /* base.vt == &pbh_store_sqlite */
    sqlite3 *db;
    char *path;
    int version;  /* schema version of the open store */
    int readonly;
} sqlite_store;

static sqlite_store *as_sqlite(pbh_store *st) {
    return (sqlite_store *)st;
}

static int query_id(void *store, const char *sql, const char *arg, int64_t *id);

/* Migration steps: migrations[i] takes a store from version i to version i + 1. Only ever append. */
static const char *const migrations[] = {
    /* 0 -> 1: runs with their context, cases, raw samples */
    "CREATE TABLE runs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  label TEXT, suite TEXT, status TEXT NOT NULL,"
    "  started_at TEXT NOT NULL, started_unix REAL NOT NULL, duration_s REAL,"
    "  git_commit TEXT, git_dirty INTEGER, host TEXT, cpu_model TEXT, cores INTEGER, kernel TEXT,"
    "  compiler TEXT, cflags TEXT, build_type TEXT, command_line TEXT, governor TEXT, version TEXT,"
    "  context_json TEXT);"
    "CREATE INDEX runs_label ON runs(label, id);"
    "CREATE TABLE cases ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  ord INTEGER NOT NULL, name TEXT NOT NULL,"
    "  scenario TEXT, backend TEXT, workers INTEGER, params TEXT,"
    "  status TEXT NOT NULL, reason TEXT, reps INTEGER, warmup INTEGER,"
    "  floor TEXT, measures TEXT, elapsed_s REAL,"
    "  UNIQUE (run_id, ord));"
    "CREATE TABLE samples ("
    "  case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,"
    "  rep INTEGER NOT NULL, wall_s REAL NOT NULL, user_s REAL, sys_s REAL, peak_rss_kb INTEGER,"
    "  startup_s REAL, ideal_s REAL, tasks INTEGER, failed_tasks INTEGER,"
    "  iterations INTEGER NOT NULL DEFAULT 1,"
    "  PRIMARY KEY (case_id, rep)) WITHOUT ROWID;",
    /* 1 -> 2: floor probes measured with the run; where a run came from (room for imported runs);
     * an index for history's per-case queries */
    "ALTER TABLE runs ADD COLUMN source TEXT NOT NULL DEFAULT 'native'"
    "  CHECK (source IN ('native', 'gbench', 'hyperfine'));"
    "CREATE TABLE floors ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL, seconds REAL NOT NULL, reps INTEGER,"
    "  PRIMARY KEY (run_id, name)) WITHOUT ROWID;"
    "CREATE INDEX cases_key ON cases(scenario, backend, workers, params);",
    /* 2 -> 3: a run's identity across stores (push) and the machine it ran on (history's series key);
     * runs stored before get a fresh uuid and their host as machine */
    "ALTER TABLE runs ADD COLUMN uuid TEXT;"
    "UPDATE runs SET uuid = lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||"
    "  substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) ||"
    "  substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)));"
    "CREATE UNIQUE INDEX runs_uuid ON runs(uuid);"
    "ALTER TABLE runs ADD COLUMN machine TEXT NOT NULL DEFAULT '';"
    "UPDATE runs SET machine = coalesce(host, 'unknown');"
    "CREATE INDEX runs_machine ON runs(machine, id);"
    "CREATE INDEX cases_name ON cases(name, run_id);",
    /* 3 -> 4: interleaved A/B pairs (two runs measured together, store.h's pbh_pair) and calibrations (this
     * machine's measured false-alarm rate and detection power, calibrate.h) */
    "CREATE TABLE pairs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  base_run_id INTEGER NOT NULL UNIQUE REFERENCES runs(id) ON DELETE CASCADE,"
    "  head_run_id INTEGER NOT NULL UNIQUE REFERENCES runs(id) ON DELETE CASCADE,"
    "  seed INTEGER NOT NULL, block_reps INTEGER NOT NULL,"
    "  base_exe TEXT, head_exe TEXT, injected TEXT);"
    "CREATE TABLE calibrations ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  machine TEXT NOT NULL, started_at TEXT NOT NULL, host TEXT, cpu_model TEXT, cores INTEGER, kernel TEXT,"
    "  suite TEXT, git_commit TEXT, result_json TEXT NOT NULL);"
    "CREATE INDEX calibrations_machine ON calibrations(machine, id);",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == PBH_SCHEMA_VERSION,
               "one migration step per schema version");

sqlite3 *pbh_store_db(pbh_store *base) {
    return base && base->vt == &pbh_store_sqlite ? as_sqlite(base)->db : NULL;
}

static int sqlite_schema_version(pbh_store *base) {
    return as_sqlite(base)->version;
}

static int pragma_int(sqlite3 *db, const char *sql, int *out) {
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

/* The journal mode `PRAGMA journal_mode = WAL` left: SQLite answers with the mode in effect and keeps the
 * old one, without an error, where WAL is impossible (a VFS without shared memory, as on some network
 * filesystems). Copies it into mode ("" when it cannot tell). */
static int set_wal(sqlite3 *db, char *mode, size_t len) {
    /* Switching a fresh file to WAL needs its exclusive lock; when several writers open it at once, SQLite
     * answers SQLITE_BUSY at once instead of waiting (its busy handler is not called where waiting could
     * deadlock), so wait here, up to the busy timeout (found by test_stores' eight concurrent writers). */
    int rc = SQLITE_BUSY;
    for (int waited_ms = 0; rc == SQLITE_BUSY && waited_ms <= BUSY_TIMEOUT_MS; waited_ms += 10) {
        if (waited_ms)
            usleep(10000);
        sqlite3_stmt *s;
        mode[0] = '\0';
        rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
        if (rc != SQLITE_OK)
            return rc;
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            const unsigned char *m = sqlite3_column_text(s, 0);
            snprintf(mode, len, "%s", m ? (const char *)m : "");
            rc = SQLITE_OK;
        }
        sqlite3_finalize(s);
    }
    return rc;
}

/* Phase 1: is path something we may read (and, for write, write)? Sets *exists, *empty. Nothing here
 * writes to the file. */
static int check_file(const char *path, enum pbh_store_mode mode, int *exists, int *empty, int *version,
                      char *err, size_t errlen) {
    struct stat sb;
    *exists = 0;
    *empty = 0;
    *version = 0;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT) {
            if (mode == PBH_STORE_READ) {
                pbh_seterr(err, errlen, "no store at %s (a `poolbench run` creates it)", path);
                return PBH_EINPUT;
            }
            *empty = 1;
            return PBH_OK;
        }
        pbh_seterr(err, errlen, "cannot access store %s: %s", path, strerror(errno));
        return PBH_EINPUT;
    }
    *exists = 1;
    if (S_ISDIR(sb.st_mode)) {
        pbh_seterr(err, errlen, "store %s is a directory, not a file", path);
        return PBH_EINPUT;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        pbh_seterr(err, errlen, "cannot read store %s: %s", path, strerror(errno));
        return PBH_EINPUT;
    }
    unsigned char hdr[100];
    ssize_t got = read(fd, hdr, sizeof hdr);
    int read_errno = errno;
    close(fd);
    if (got < 0) {
        pbh_seterr(err, errlen, "cannot read store %s: %s", path, strerror(read_errno));
        return PBH_EINPUT;
    }
    if (got == 0) {
        *empty = 1; /* SQLite treats an empty file as an empty database */
        return PBH_OK;
    }
    if (got < (ssize_t)sizeof hdr || memcmp(hdr, "SQLite format 3", 16) != 0) {
        pbh_seterr(err, errlen, "%s is not a poolbench store (not an SQLite database); left untouched", path);
        return PBH_EINPUT;
    }

    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        pbh_seterr(err, errlen, "cannot open store %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return PBH_EINPUT;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    int app = 0, ver = 0, ntables = 0;
    /* one read transaction: the three facts from one snapshot, not from before and after another process's
     * schema creation (found by test_stores' eight concurrent writers on a fresh file) */
    rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = pragma_int(db, "PRAGMA application_id", &app);
    if (rc == SQLITE_OK)
        rc = pragma_int(db, "PRAGMA user_version", &ver);
    if (rc == SQLITE_OK)
        rc = pragma_int(db, "SELECT count(*) FROM sqlite_master", &ntables);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        pbh_seterr(err, errlen, "%s is not a readable poolbench store: %s; left untouched", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return PBH_EINPUT;
    }
    sqlite3_close(db);
    if (app == 0 && ver == 0 && ntables == 0) {
        *empty = 1;
        return PBH_OK;
    }
    if (app != PBH_APPLICATION_ID) {
        pbh_seterr(err, errlen,
               "%s is an SQLite database of another program (application_id %d, %d schema objects), not a "
               "poolbench store; left untouched",
               path, app, ntables);
        return PBH_EINPUT;
    }
    if (ver > PBH_SCHEMA_VERSION) {
        pbh_seterr(err, errlen,
               "store %s has schema version %d; this poolbench understands versions up to %d: use a newer "
               "poolbench (the store was left untouched)",
               path, ver, PBH_SCHEMA_VERSION);
        return PBH_ESCHEMA;
    }
    if (ver < 1) {
        pbh_seterr(err, errlen, "%s has the poolbench application id but no schema version; left untouched", path);
        return PBH_EINPUT;
    }
    *version = ver;
    return PBH_OK;
}

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        pbh_seterr(err, errlen, "%s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return PBH_EIO;
    }
    return PBH_OK;
}

/* Phase 2: migrate to `target` under the write lock. The version is re-read inside the transaction. */
static int sqlite_migrate(pbh_store *base, int target, char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    sqlite3 *db = st->db;
    const char *path = st->path;
    char msg[512];
    if (st->readonly) {
        pbh_seterr(err, errlen, "store %s opened read-only: cannot migrate it", path);
        return PBH_EINPUT;
    }
    if (exec_sql(db, "BEGIN IMMEDIATE", msg, sizeof msg) != PBH_OK) {
        pbh_seterr(err, errlen, "cannot lock store %s: %s", path, msg);
        return PBH_EIO;
    }
    int ver = 0, app = 0, ntables = 0;
    if (pragma_int(db, "PRAGMA user_version", &ver) != SQLITE_OK ||
        pragma_int(db, "PRAGMA application_id", &app) != SQLITE_OK ||
        pragma_int(db, "SELECT count(*) FROM sqlite_master", &ntables) != SQLITE_OK) {
        pbh_seterr(err, errlen, "cannot read store %s: %s", path, sqlite3_errmsg(db));
        exec_sql(db, "ROLLBACK", NULL, 0);
        return PBH_EIO;
    }
    /* someone may have changed the file between the check and the lock: check again */
    if (app != PBH_APPLICATION_ID && !(app == 0 && ver == 0 && ntables == 0)) {
        pbh_seterr(err, errlen, "%s is not a poolbench store; left untouched", path);
        exec_sql(db, "ROLLBACK", NULL, 0);
        return PBH_EINPUT;
    }
    if (ver > PBH_SCHEMA_VERSION) {
        pbh_seterr(err, errlen, "store %s has schema version %d; this poolbench understands up to %d", path, ver,
               PBH_SCHEMA_VERSION);
        exec_sql(db, "ROLLBACK", NULL, 0);
        return PBH_ESCHEMA;
    }
    for (int v = ver; v < target; v++) {
        if (exec_sql(db, migrations[v], msg, sizeof msg) != PBH_OK) {
            pbh_seterr(err, errlen, "migrating store %s from schema %d to %d failed: %s", path, v, v + 1, msg);
            exec_sql(db, "ROLLBACK", NULL, 0);
            return PBH_EIO;
        }
    }
    if (ver < target) {
        char sql[128];
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d;", PBH_APPLICATION_ID,
                 target);
        if (exec_sql(db, sql, msg, sizeof msg) != PBH_OK) {
            pbh_seterr(err, errlen, "cannot set the schema version of %s: %s", path, msg);
            exec_sql(db, "ROLLBACK", NULL, 0);
            return PBH_EIO;
        }
    }
    if (exec_sql(db, "COMMIT", msg, sizeof msg) != PBH_OK) {
        pbh_seterr(err, errlen, "cannot commit to store %s: %s", path, msg);
        exec_sql(db, "ROLLBACK", NULL, 0);
        return PBH_EIO;
    }
    st->version = ver < target ? target : ver;
    return PBH_OK;
}

static void sqlite_close(pbh_store *base);

/* Phase 1 and the connection; a write-mode store is migrated by the caller (store.c: pbh_store_open).
 * max_version: refuse a write to a store already past it (only create_at_version asks for less than
 * the current schema). */
static int open_checked(pbh_store **out, const char *path, enum pbh_store_mode mode, int max_version, char *err,
                        size_t errlen) {
    *out = NULL;
    int exists, empty, version;
    int rc = check_file(path, mode, &exists, &empty, &version, err, errlen);
    if (rc != PBH_OK)
        return rc;
    if (mode == PBH_STORE_WRITE && version > max_version) {
        pbh_seterr(err, errlen, "store %s is already at schema %d", path, version);
        return PBH_EINPUT;
    }
    sqlite_store *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return PBH_ENOMEM;
    }
    st->base.vt = &pbh_store_sqlite;
    int flags = mode == PBH_STORE_READ ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int src = sqlite3_open_v2(path, &st->db, flags, NULL);
    if (src != SQLITE_OK) {
        pbh_seterr(err, errlen, "cannot open store %s: %s", path, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(src));
        sqlite_close(&st->base);
        return mode == PBH_STORE_WRITE && !exists ? PBH_EINPUT : PBH_EIO;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    st->readonly = mode == PBH_STORE_READ;
    st->version = version;
    if (mode == PBH_STORE_WRITE) {
        char msg[512];
        /* WAL: readers never block the writer and a crash mid-write rolls back cleanly. synchronous=NORMAL
         * is durable across a process crash (what a killed run is), which is the case that matters here. */
        char journal[32];
        if (set_wal(st->db, journal, sizeof journal) != SQLITE_OK) {
            pbh_seterr(err, errlen, "cannot set up store %s: %s", path, sqlite3_errmsg(st->db));
            sqlite_close(&st->base);
            return PBH_EIO;
        }
        if (strcmp(journal, "wal") != 0) { /* nothing was written: the file is as it was */
            pbh_seterr(err, errlen,
                       "store %s cannot use SQLite's WAL journal here (journal mode stays '%s'; is it on a "
                       "filesystem without shared memory, e.g. NFS?): put the store on a local disk",
                       path, journal[0] ? journal : "unknown");
            sqlite_close(&st->base);
            return PBH_EIO;
        }
        if (exec_sql(st->db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;", msg, sizeof msg) != PBH_OK) {
            pbh_seterr(err, errlen, "cannot set up store %s: %s", path, msg);
            sqlite_close(&st->base);
            return PBH_EIO;
        }
    }
    (void)empty;
    *out = &st->base;
    return PBH_OK;
}

static int sqlite_open(pbh_store **out, const char *path, enum pbh_store_mode mode, char *err, size_t errlen) {
    return open_checked(out, path, mode, PBH_SCHEMA_VERSION, err, errlen);
}

/* A path, not a URL: everything without "://" is a file for SQLite. */
static int sqlite_accepts(const char *location) {
    return location && !strstr(location, "://");
}

int pbh_store_create_at_version(const char *path, int version, char *err, size_t errlen) {
    if (version < 1 || version > PBH_SCHEMA_VERSION) {
        pbh_seterr(err, errlen, "no schema version %d", version);
        return PBH_EINPUT;
    }
    pbh_store *st;
    int rc = open_checked(&st, path, PBH_STORE_WRITE, version, err, errlen);
    if (rc == PBH_OK)
        rc = sqlite_migrate(st, version, err, errlen);
    if (st)
        sqlite_close(st);
    return rc;
}

static void sqlite_close(pbh_store *base) {
    sqlite_store *st = as_sqlite(base);
    if (!st)
        return;
    sqlite3_close(st->db);
    free(st->path);
    free(st);
}

/* ---- writing ---------------------------------------------------------------------------------------- */

/* ---- the shared SQL's adapters (store_sql.h) ----------------------------------------------------------- */

typedef struct stmt_params {
    pbh_sql_params base;
    sqlite3_stmt *stmt;
} stmt_params;

static void param_text(pbh_sql_params *p, int i, const char *v) {
    sqlite3_stmt *s = ((stmt_params *)p)->stmt;
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}
static void param_real(pbh_sql_params *p, int i, double v) {
    sqlite3_bind_double(((stmt_params *)p)->stmt, i, v);
}
static void param_integer(pbh_sql_params *p, int i, int64_t v) {
    sqlite3_bind_int64(((stmt_params *)p)->stmt, i, v);
}
static void param_null(pbh_sql_params *p, int i) {
    sqlite3_bind_null(((stmt_params *)p)->stmt, i);
}
static stmt_params params_for(sqlite3_stmt *s) {
    return (stmt_params){{NULL, param_text, param_real, param_integer, param_null}, s};
}

static int row_is_null(const pbh_sql_row *r, int col) {
    return sqlite3_column_type(r->impl, col) == SQLITE_NULL;
}
static const char *row_text(const pbh_sql_row *r, int col) {
    return (const char *)sqlite3_column_text(r->impl, col);
}
static double row_real(const pbh_sql_row *r, int col) {
    return sqlite3_column_double(r->impl, col);
}
static int64_t row_integer(const pbh_sql_row *r, int col) {
    return sqlite3_column_int64(r->impl, col);
}
static pbh_sql_row row_of(sqlite3_stmt *s) {
    return (pbh_sql_row){s, row_is_null, row_text, row_real, row_integer};
}

/* ---- writing ---------------------------------------------------------------------------------------- */

/* Test hook: POOLBENCH_TEST_STALL_WRITE=SEC sleeps inside the write transaction, after the run row is
 * inserted, so that a test can SIGKILL the process mid-transaction and check that nothing of the run
 * survives. It only delays; it changes nothing that is written. */
static void test_stall(void) {
    const char *s = getenv("POOLBENCH_TEST_STALL_WRITE");
    if (s && *s) {
        double sec = atof(s);
        if (sec > 0) {
            static const char marker[] = "poolbench: test: stalling inside the write transaction\n";
            ssize_t w = write(2, marker, sizeof marker - 1);
            (void)w;
            usleep((useconds_t)(sec * 1e6));
        }
    }
}

/* Steps a prepared INSERT and reads its RETURNING id when it has one. 1 a row was written, 0 none (ON
 * CONFLICT DO NOTHING), -1 an error. The statement is reset for its next use. */
static int insert_row(sqlite3_stmt *s, int64_t *id) {
    int rc = sqlite3_step(s);
    int got = -1;
    if (rc == SQLITE_ROW) {
        if (id)
            *id = sqlite3_column_int64(s, 0);
        got = 1;
        rc = sqlite3_step(s); /* finish the statement so that the row is written */
        if (rc != SQLITE_DONE)
            got = -1;
    } else if (rc == SQLITE_DONE) {
        got = id ? 0 : 1; /* a statement without RETURNING has no row to give */
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return got;
}

static int sqlite_insert_run(pbh_store *base, pbh_run *run, char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    if (st->readonly) {
        pbh_seterr(err, errlen, "store opened read-only");
        return PBH_EINPUT;
    }
    if (!run->uuid) {
        char u[37];
        if (pbh_uuid_new(u) || !(run->uuid = strdup(u))) {
            pbh_seterr(err, errlen, "cannot make a run id: no randomness from the kernel");
            return PBH_EIO;
        }
    }
    sqlite3 *db = st->db;
    char msg[512];
    /* A caller that holds a transaction (a pair: two runs and their link) commits it. */
    int own_tx = sqlite3_get_autocommit(db);
    if (own_tx && exec_sql(db, "BEGIN IMMEDIATE", msg, sizeof msg) != PBH_OK) {
        pbh_seterr(err, errlen, "cannot lock store %s: %s", st->path, msg);
        return PBH_EIO;
    }
    sqlite3_stmt *qrun = NULL, *qcase = NULL, *qsample = NULL, *qfloor = NULL;
    int rc = sqlite3_prepare_v2(db, PBH_SQL_INSERT_RUN, -1, &qrun, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, PBH_SQL_INSERT_CASE, -1, &qcase, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, PBH_SQL_INSERT_SAMPLE, -1, &qsample, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, PBH_SQL_INSERT_FLOOR, -1, &qfloor, NULL);
    if (rc != SQLITE_OK)
        goto fail;

    stmt_params p = params_for(qrun);
    pbh_sql_bind_run(&p.base, run);
    int64_t run_id = 0;
    int got = insert_row(qrun, &run_id);
    if (got == 0) {
        /* the uuid is there already: that run is this one (push twice = stored once) */
        sqlite3_finalize(qrun);
        sqlite3_finalize(qcase);
        sqlite3_finalize(qsample);
        sqlite3_finalize(qfloor);
        if (own_tx)
            exec_sql(db, "ROLLBACK", NULL, 0);
        int64_t existing;
        if (query_id(st, PBH_SQL_RUN_ID_BY_UUID, run->uuid, &existing) == PBH_OK)
            run->id = existing;
        pbh_seterr(err, errlen, "run %s is already in %s", run->uuid, st->path);
        return PBH_EEXIST;
    }
    if (got < 0)
        goto fail;
    test_stall();

    for (size_t i = 0; i < run->ncases; i++) {
        pbh_case *k = &run->cases[i];
        p = params_for(qcase);
        pbh_sql_bind_case(&p.base, run_id, i, k);
        int64_t case_id = 0;
        if (insert_row(qcase, &case_id) != 1)
            goto fail;
        for (size_t j = 0; j < k->nsamples; j++) {
            p = params_for(qsample);
            pbh_sql_bind_sample(&p.base, case_id, &k->samples[j]);
            if (insert_row(qsample, NULL) != 1)
                goto fail;
        }
        k->id = case_id;
    }
    for (size_t i = 0; i < run->nfloors; i++) {
        p = params_for(qfloor);
        pbh_sql_bind_floor(&p.base, run_id, &run->floors[i]);
        if (insert_row(qfloor, NULL) != 1)
            goto fail;
    }
    sqlite3_finalize(qrun);
    sqlite3_finalize(qcase);
    sqlite3_finalize(qsample);
    sqlite3_finalize(qfloor);
    if (own_tx && exec_sql(db, "COMMIT", msg, sizeof msg) != PBH_OK) {
        pbh_seterr(err, errlen, "cannot commit the run to %s: %s", st->path, msg);
        exec_sql(db, "ROLLBACK", NULL, 0);
        return PBH_EIO;
    }
    run->id = run_id;
    return PBH_OK;

fail:
    pbh_seterr(err, errlen, "writing the run to %s failed: %s", st->path, sqlite3_errmsg(db));
    sqlite3_finalize(qrun);
    sqlite3_finalize(qcase);
    sqlite3_finalize(qsample);
    sqlite3_finalize(qfloor);
    if (own_tx)
        exec_sql(db, "ROLLBACK", NULL, 0);
    for (size_t i = 0; i < run->ncases; i++)
        run->cases[i].id = 0;
    return PBH_EIO;
}

/* ---- reading ---------------------------------------------------------------------------------------- */

static int sqlite_list_runs(pbh_store *base, const char *machine, pbh_run_info **out, size_t *n, char *err,
                            size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    *out = NULL;
    *n = 0;
    if (st->version == 0)
        return PBH_OK; /* an empty store has no runs */
    char sql[2048];
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, pbh_sql_list_runs(sql, sizeof sql, st->version), -1, &s, NULL) != SQLITE_OK) {
        pbh_seterr(err, errlen, "reading runs from %s failed: %s", st->path, sqlite3_errmsg(st->db));
        return PBH_EIO;
    }
    stmt_params p = params_for(s);
    p.base.text(&p.base, 1, machine);
    pbh_sql_row row = row_of(s);
    size_t cap = 0, len = 0;
    pbh_run_info *arr = NULL;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            pbh_run_info *na = realloc(arr, cap * sizeof *na);
            if (!na) {
                sqlite3_finalize(s);
                pbh_run_infos_free(arr, len);
                return PBH_ENOMEM;
            }
            arr = na;
        }
        if (pbh_sql_read_run_info(&row, &arr[len++]) != PBH_OK) {
            sqlite3_finalize(s);
            pbh_run_infos_free(arr, len);
            return PBH_ENOMEM;
        }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        pbh_seterr(err, errlen, "reading runs from %s failed: %s", st->path, sqlite3_errmsg(st->db));
        pbh_run_infos_free(arr, len);
        return PBH_EIO;
    }
    *out = arr;
    *n = len;
    return PBH_OK;
}

static int query_id(void *store, const char *sql, const char *arg, int64_t *id) {
    sqlite_store *st = store;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return PBH_EIO;
    if (arg)
        sqlite3_bind_text(s, 1, arg, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    int res = PBH_ENOTFOUND;
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        *id = sqlite3_column_int64(s, 0);
        res = PBH_OK;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        res = PBH_EIO;
    }
    sqlite3_finalize(s);
    return res;
}

static int sqlite_resolve(pbh_store *base, const char *ref, int64_t *id, char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    if (st->version == 0) {
        pbh_seterr(err, errlen, "no run '%s': the store %s is empty", ref, st->path);
        return PBH_ENOTFOUND;
    }
    /* before schema 3 there is no uuid column: a uuid-shaped reference is a label there */
    int rc = st->version >= 3 || !pbh_uuid_valid(ref) ? pbh_sql_resolve(ref, query_id, st, id)
                                                       : query_id(st, PBH_SQL_LATEST_WITH_LABEL, ref, id);
    if (rc == PBH_ENOTFOUND)
        pbh_seterr(err, errlen, "no run '%s' in %s (a run id, a uuid, a label, or 'latest'; see `poolbench runs`)",
               ref, st->path);
    else if (rc != PBH_OK)
        pbh_seterr(err, errlen, "reading %s failed: %s", st->path, sqlite3_errmsg(st->db));
    return rc;
}

/* Steps s through every row, handing each to read; PBH_OK, the reader's error, or PBH_EIO. */
static int read_rows(sqlite3_stmt *s, int (*read)(const pbh_sql_row *, pbh_run *, int64_t *), pbh_run *run) {
    pbh_sql_row row = row_of(s);
    int64_t cur = -1;
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int rc = read(&row, run, &cur);
        if (rc != PBH_OK)
            return rc;
    }
    return step == SQLITE_DONE ? PBH_OK : PBH_EIO;
}

static int read_floor_row(const pbh_sql_row *r, pbh_run *run, int64_t *unused) {
    (void)unused;
    return pbh_sql_read_floor(r, run);
}

static int sqlite_load_run(pbh_store *base, int64_t id, pbh_run **out, char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    *out = NULL;
    pbh_run *run = pbh_run_new();
    if (!run)
        return PBH_ENOMEM;
    sqlite3_stmt *s = NULL;
    int rc = PBH_EIO;
    char sql[1024];
    /* one read transaction: a run being written meanwhile is wholly there or not at all */
    if (st->version == 0 || exec_sql(st->db, "BEGIN", NULL, 0) != PBH_OK)
        goto fail;
    if (sqlite3_prepare_v2(st->db, pbh_sql_select_run(sql, sizeof sql, st->version), -1, &s, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(s, 1, id);
    int step = sqlite3_step(s);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? PBH_ENOTFOUND : PBH_EIO;
        goto fail;
    }
    pbh_sql_row row = row_of(s);
    if ((rc = pbh_sql_read_run(&row, run)) != PBH_OK)
        goto fail;
    sqlite3_finalize(s);
    s = NULL;

    rc = PBH_EIO;
    if (sqlite3_prepare_v2(st->db, PBH_SQL_LOAD_CASES, -1, &s, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(s, 1, id);
    if ((rc = read_rows(s, pbh_sql_read_case_sample, run)) != PBH_OK)
        goto fail;
    sqlite3_finalize(s);
    s = NULL;

    if (st->version >= 2) {
        rc = PBH_EIO;
        if (sqlite3_prepare_v2(st->db, PBH_SQL_LOAD_FLOORS, -1, &s, NULL) != SQLITE_OK)
            goto fail;
        sqlite3_bind_int64(s, 1, id);
        if ((rc = read_rows(s, read_floor_row, run)) != PBH_OK)
            goto fail;
        sqlite3_finalize(s);
        s = NULL;
    }
    exec_sql(st->db, "COMMIT", NULL, 0);
    *out = run;
    return PBH_OK;

fail:
    if (rc == PBH_ENOTFOUND)
        pbh_seterr(err, errlen, "no run %lld in %s", (long long)id, st->path);
    else
        pbh_seterr(err, errlen, "reading run %lld from %s failed: %s", (long long)id, st->path, sqlite3_errmsg(st->db));
    sqlite3_finalize(s);
    if (st->version > 0)
        exec_sql(st->db, "ROLLBACK", NULL, 0);
    pbh_run_free(run);
    return rc;
}

/* ---- checking --------------------------------------------------------------------------------------- */

static int sqlite_check(pbh_store *base, char *report, size_t len) {
    sqlite_store *st = as_sqlite(base);
    report[0] = '\0';
    if (st->version == 0) {
        snprintf(report, len, "ok (empty store)");
        return 0;
    }
    int problems = 0;
    size_t used = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK) {
        snprintf(report, len, "cannot check %s: %s", st->path, sqlite3_errmsg(st->db));
        return PBH_EIO;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(s, 0);
        if (line && strcmp(line, "ok") != 0 && used < len) {
            used += (size_t)snprintf(report + used, len - used, "integrity_check: %s\n", line);
            problems++;
        }
    }
    sqlite3_finalize(s);
    int more = pbh_sql_run_checks(query_id, st, st->version, report, len);
    if (more < 0)
        return more;
    problems += more;
    if (!problems)
        snprintf(report, len, "ok");
    return problems;
}

/* ---- history ---------------------------------------------------------------------------------------- */

/* Runs sql with the history filter bound, handing every row to add. */
static int history_query(sqlite_store *st, const char *sql, const pbh_history_filter *filter,
                         int (*add)(pbh_sql_history *, const pbh_sql_row *), pbh_sql_history *h) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return PBH_EIO;
    stmt_params p = params_for(s);
    pbh_sql_bind_history_filter(&p.base, filter);
    pbh_sql_row row = row_of(s);
    int step, rc = PBH_OK;
    while (rc == PBH_OK && (step = sqlite3_step(s)) == SQLITE_ROW)
        rc = add(h, &row);
    if (rc == PBH_OK && step != SQLITE_DONE)
        rc = PBH_EIO;
    sqlite3_finalize(s);
    return rc;
}

static int sqlite_history_runs(pbh_store *base, const pbh_history_filter *filter, pbh_run ***runs, size_t *n,
                               char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    *runs = NULL;
    *n = 0;
    if (st->version == 0)
        return PBH_OK;
    char sql[2048];
    pbh_sql_history h = {0};
    /* one read transaction for both queries: the cases match the runs */
    int rc = exec_sql(st->db, "BEGIN", NULL, 0);
    if (rc == PBH_OK)
        rc = history_query(st, pbh_sql_history_runs(sql, sizeof sql, st->version), filter, pbh_sql_history_run_row, &h);
    if (rc == PBH_OK)
        rc = history_query(st, pbh_sql_history_cases(sql, sizeof sql, st->version), filter, pbh_sql_history_case_row,
                           &h);
    exec_sql(st->db, rc == PBH_OK ? "COMMIT" : "ROLLBACK", NULL, 0);
    if (rc != PBH_OK) {
        pbh_sql_history_abort(&h);
        pbh_seterr(err, errlen, "reading the history from %s failed: %s", st->path,
               rc == PBH_ENOMEM ? "out of memory" : sqlite3_errmsg(st->db));
        return rc;
    }
    pbh_sql_history_finish(&h, runs, n);
    return PBH_OK;
}

/* ---- A/B pairs and calibrations (schema 4; the link is written in the runs' transaction) ------------ */

static int sqlite_insert_pair(pbh_store *base, pbh_run *brun, pbh_run *hrun, pbh_pair *pair, char *err,
                              size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    if (st->readonly) {
        pbh_seterr(err, errlen, "store opened read-only");
        return PBH_EINPUT;
    }
    sqlite3 *db = st->db;
    char msg[512];
    if (exec_sql(db, "BEGIN IMMEDIATE", msg, sizeof msg) != PBH_OK) {
        pbh_seterr(err, errlen, "cannot lock store %s: %s", st->path, msg);
        return PBH_EIO;
    }
    /* insert_run sees the open transaction and leaves the commit to us: the pair is stored whole or not */
    int rc = sqlite_insert_run(base, brun, err, errlen);
    if (rc == PBH_OK)
        rc = sqlite_insert_run(base, hrun, err, errlen);
    if (rc == PBH_OK) {
        sqlite3_stmt *s = NULL;
        rc = PBH_EIO;
        if (sqlite3_prepare_v2(db, PBH_SQL_INSERT_PAIR, -1, &s, NULL) == SQLITE_OK) {
            stmt_params p = params_for(s);
            pbh_sql_bind_pair(&p.base, pair, brun->id, hrun->id);
            if (insert_row(s, &pair->id) == 1)
                rc = PBH_OK;
        }
        if (rc != PBH_OK)
            pbh_seterr(err, errlen, "writing the pair to %s failed: %s", st->path, sqlite3_errmsg(db));
        sqlite3_finalize(s);
    }
    if (rc == PBH_OK && exec_sql(db, "COMMIT", msg, sizeof msg) != PBH_OK) {
        pbh_seterr(err, errlen, "cannot commit the pair to %s: %s", st->path, msg);
        rc = PBH_EIO;
    }
    if (rc != PBH_OK) {
        exec_sql(db, "ROLLBACK", NULL, 0);
        brun->id = hrun->id = pair->id = 0;
        return rc;
    }
    pair->base_run_id = brun->id;
    pair->head_run_id = hrun->id;
    return PBH_OK;
}

/* Prepares one of the shared pair/calibration statements, or says why not. */
static sqlite3_stmt *prepare_or_say(sqlite_store *st, const char *sql, const char *what, char *err, size_t errlen) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        pbh_seterr(err, errlen, "%s %s failed: %s", what, st->path, sqlite3_errmsg(st->db));
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

static int sqlite_find_pair(pbh_store *base, int64_t run_id, pbh_pair *out, char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    if (st->version < 4)
        return PBH_ENOTFOUND;
    sqlite3_stmt *s = prepare_or_say(st, PBH_SQL_FIND_PAIR, "reading the pairs of", err, errlen);
    if (!s)
        return PBH_EIO;
    sqlite3_bind_int64(s, 1, run_id);
    int step = sqlite3_step(s);
    int rc = step == SQLITE_ROW ? PBH_OK : step == SQLITE_DONE ? PBH_ENOTFOUND : PBH_EIO;
    if (rc == PBH_OK) {
        pbh_sql_row row = row_of(s);
        pbh_sql_read_pair(&row, out);
    } else if (rc == PBH_EIO) {
        pbh_seterr(err, errlen, "reading the pairs of %s failed: %s", st->path, sqlite3_errmsg(st->db));
    }
    sqlite3_finalize(s);
    return rc;
}

static int sqlite_insert_calibration(pbh_store *base, const pbh_context *ctx, const char *suite, const char *json,
                                     int64_t *id, char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    if (st->readonly) {
        pbh_seterr(err, errlen, "store opened read-only");
        return PBH_EINPUT;
    }
    sqlite3_stmt *s = prepare_or_say(st, PBH_SQL_INSERT_CALIBRATION, "writing the calibration to", err, errlen);
    if (!s)
        return PBH_EIO;
    stmt_params p = params_for(s);
    pbh_sql_bind_calibration(&p.base, ctx, suite, json);
    int rc = insert_row(s, id) == 1 ? PBH_OK : PBH_EIO;
    if (rc != PBH_OK)
        pbh_seterr(err, errlen, "writing the calibration to %s failed: %s", st->path, sqlite3_errmsg(st->db));
    sqlite3_finalize(s);
    return rc;
}

static int sqlite_latest_calibration(pbh_store *base, const pbh_context *machine, const char *suite, char **json,
                                     int64_t *id, char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    if (st->version < 4)
        return PBH_ENOTFOUND;
    sqlite3_stmt *s = prepare_or_say(st, PBH_SQL_LATEST_CALIBRATION, "reading the calibrations of", err, errlen);
    if (!s)
        return PBH_EIO;
    stmt_params p = params_for(s);
    p.base.text(&p.base, 1, machine->machine ? machine->machine : "");
    p.base.text(&p.base, 2, suite);
    int step = sqlite3_step(s);
    int rc = step == SQLITE_ROW ? PBH_OK : step == SQLITE_DONE ? PBH_ENOTFOUND : PBH_EIO;
    if (rc == PBH_OK) {
        *id = sqlite3_column_int64(s, 0);
        if (!(*json = strdup((const char *)sqlite3_column_text(s, 1))))
            rc = PBH_ENOMEM;
    } else if (rc == PBH_EIO) {
        pbh_seterr(err, errlen, "reading the calibrations of %s failed: %s", st->path, sqlite3_errmsg(st->db));
    }
    sqlite3_finalize(s);
    return rc;
}

const pbh_store_vtab pbh_store_sqlite = {
    .version = 2,
    .name = "sqlite",
    .accepts = sqlite_accepts,
    .open = sqlite_open,
    .migrate = sqlite_migrate,
    .close = sqlite_close,
    .schema_version = sqlite_schema_version,
    .insert_run = sqlite_insert_run,
    .load_run = sqlite_load_run,
    .list_runs = sqlite_list_runs,
    .resolve = sqlite_resolve,
    .history_runs = sqlite_history_runs,
    .check = sqlite_check,
    .insert_pair = sqlite_insert_pair,
    .find_pair = sqlite_find_pair,
    .insert_calibration = sqlite_insert_calibration,
    .latest_calibration = sqlite_latest_calibration,
};
