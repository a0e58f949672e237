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
 *  Schema (version 3; 3 added pairs and calibrations, see the migrations):
 *    runs    (id, source native|gbench|hyperfine, label, suite, status, started_at, started_unix,
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
    /* 2 -> 3: interleaved A/B pairs (two runs measured together, store.h's pbh_pair) and calibrations (this
     * machine's measured false-alarm rate and detection power, calibrate.h) */
    "CREATE TABLE pairs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  base_run_id INTEGER NOT NULL UNIQUE REFERENCES runs(id) ON DELETE CASCADE,"
    "  head_run_id INTEGER NOT NULL UNIQUE REFERENCES runs(id) ON DELETE CASCADE,"
    "  seed INTEGER NOT NULL, block_reps INTEGER NOT NULL,"
    "  base_exe TEXT, head_exe TEXT, injected TEXT);"
    "CREATE TABLE calibrations ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  started_at TEXT NOT NULL, host TEXT, cpu_model TEXT, cores INTEGER, kernel TEXT,"
    "  suite TEXT, git_commit TEXT, result_json TEXT NOT NULL);",
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
    sqlite3_stmt *s;
    mode[0] = '\0';
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *m = sqlite3_column_text(s, 0);
        snprintf(mode, len, "%s", m ? (const char *)m : "");
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
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
    rc = pragma_int(db, "PRAGMA application_id", &app);
    if (rc == SQLITE_OK)
        rc = pragma_int(db, "PRAGMA user_version", &ver);
    if (rc == SQLITE_OK)
        rc = pragma_int(db, "SELECT count(*) FROM sqlite_master", &ntables);
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

static void bind_text(sqlite3_stmt *s, int i, const char *v) {
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

static int step_done(sqlite3_stmt *s) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

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

static int sqlite_insert_run(pbh_store *base, pbh_run *run, char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    if (st->readonly) {
        pbh_seterr(err, errlen, "store opened read-only");
        return PBH_EINPUT;
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
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO runs (source, label, suite, status, started_at, started_unix, duration_s,"
                                " git_commit, git_dirty, host, cpu_model, cores, kernel, compiler, cflags, build_type,"
                                " command_line, governor, version, context_json)"
                                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                -1, &qrun, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "INSERT INTO cases (run_id, ord, name, scenario, backend, workers, params, status,"
                                " reason, reps, warmup, floor, measures, elapsed_s)"
                                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                -1, &qcase, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "INSERT INTO samples (case_id, rep, wall_s, user_s, sys_s, peak_rss_kb, startup_s,"
                                " ideal_s, tasks, failed_tasks, iterations) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                                -1, &qsample, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "INSERT INTO floors (run_id, name, seconds, reps) VALUES (?,?,?,?)", -1,
                                &qfloor, NULL);
    if (rc != SQLITE_OK)
        goto fail;

    const pbh_context *c = &run->ctx;
    bind_text(qrun, 1, run->source ? run->source : PBH_SOURCE_NATIVE);
    bind_text(qrun, 2, run->label);
    bind_text(qrun, 3, run->suite);
    bind_text(qrun, 4, run->status ? run->status : "ok");
    bind_text(qrun, 5, c->started_at ? c->started_at : "");
    sqlite3_bind_double(qrun, 6, c->started_unix);
    sqlite3_bind_double(qrun, 7, run->duration_s);
    bind_text(qrun, 8, c->git_commit);
    if (c->git_dirty >= 0)
        sqlite3_bind_int(qrun, 9, c->git_dirty);
    else
        sqlite3_bind_null(qrun, 9);
    bind_text(qrun, 10, c->host);
    bind_text(qrun, 11, c->cpu_model);
    if (c->cores > 0)
        sqlite3_bind_int(qrun, 12, c->cores);
    else
        sqlite3_bind_null(qrun, 12);
    bind_text(qrun, 13, c->kernel);
    bind_text(qrun, 14, c->compiler);
    bind_text(qrun, 15, c->cflags);
    bind_text(qrun, 16, c->build_type);
    bind_text(qrun, 17, c->command_line);
    bind_text(qrun, 18, c->governor);
    bind_text(qrun, 19, c->version);
    bind_text(qrun, 20, c->extra_json);
    if ((rc = step_done(qrun)) != SQLITE_OK)
        goto fail;
    int64_t run_id = sqlite3_last_insert_rowid(db);
    test_stall();

    for (size_t i = 0; i < run->ncases; i++) {
        pbh_case *k = &run->cases[i];
        sqlite3_bind_int64(qcase, 1, run_id);
        sqlite3_bind_int64(qcase, 2, (int64_t)i);
        bind_text(qcase, 3, k->name ? k->name : "");
        bind_text(qcase, 4, k->scenario);
        bind_text(qcase, 5, k->backend);
        sqlite3_bind_int(qcase, 6, k->workers);
        bind_text(qcase, 7, k->params);
        bind_text(qcase, 8, k->status ? k->status : PBH_STATUS_FAILED);
        bind_text(qcase, 9, k->reason);
        sqlite3_bind_int(qcase, 10, k->reps);
        sqlite3_bind_int(qcase, 11, k->warmup);
        bind_text(qcase, 12, k->floor);
        bind_text(qcase, 13, k->measures);
        sqlite3_bind_double(qcase, 14, k->elapsed_s);
        if ((rc = step_done(qcase)) != SQLITE_OK)
            goto fail;
        int64_t case_id = sqlite3_last_insert_rowid(db);
        for (size_t j = 0; j < k->nsamples; j++) {
            const pbh_sample *s = &k->samples[j];
            sqlite3_bind_int64(qsample, 1, case_id);
            sqlite3_bind_int(qsample, 2, s->rep);
            sqlite3_bind_double(qsample, 3, s->wall_s);
            sqlite3_bind_double(qsample, 4, s->user_s);
            sqlite3_bind_double(qsample, 5, s->sys_s);
            sqlite3_bind_int64(qsample, 6, s->peak_rss_kb);
            sqlite3_bind_double(qsample, 7, s->startup_s);
            sqlite3_bind_double(qsample, 8, s->ideal_s);
            sqlite3_bind_int64(qsample, 9, (int64_t)s->tasks);
            sqlite3_bind_int64(qsample, 10, (int64_t)s->failed_tasks);
            sqlite3_bind_int64(qsample, 11, s->iterations > 0 ? s->iterations : 1);
            if ((rc = step_done(qsample)) != SQLITE_OK)
                goto fail;
        }
        k->id = case_id;
    }
    for (size_t i = 0; i < run->nfloors; i++) {
        sqlite3_bind_int64(qfloor, 1, run_id);
        bind_text(qfloor, 2, run->floors[i].name);
        sqlite3_bind_double(qfloor, 3, run->floors[i].seconds);
        sqlite3_bind_int(qfloor, 4, run->floors[i].reps);
        if ((rc = step_done(qfloor)) != SQLITE_OK)
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

static char *col_text(sqlite3_stmt *s, int i) {
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? strdup((const char *)t) : NULL;
}

static int sqlite_list_runs(pbh_store *base, pbh_run_info **out, size_t *n, char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    *out = NULL;
    *n = 0;
    if (st->version == 0)
        return PBH_OK; /* an empty store has no runs */
    const char *sql =
        st->version >= 2
            ? "SELECT r.id, r.source, r.label, r.suite, r.status, r.started_at, r.git_commit, r.host, r.git_dirty,"
              " r.duration_s, (SELECT count(*) FROM cases c WHERE c.run_id = r.id),"
              " (SELECT count(*) FROM cases c WHERE c.run_id = r.id AND c.status IN ('failed', 'timeout'))"
              " FROM runs r ORDER BY r.id DESC"
            : "SELECT r.id, 'native', r.label, r.suite, r.status, r.started_at, r.git_commit, r.host, r.git_dirty,"
              " r.duration_s, (SELECT count(*) FROM cases c WHERE c.run_id = r.id),"
              " (SELECT count(*) FROM cases c WHERE c.run_id = r.id AND c.status IN ('failed', 'timeout'))"
              " FROM runs r ORDER BY r.id DESC";
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        pbh_seterr(err, errlen, "reading runs from %s failed: %s", st->path, sqlite3_errmsg(st->db));
        return PBH_EIO;
    }
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
        pbh_run_info *r = &arr[len++];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(s, 0);
        r->source = col_text(s, 1);
        r->label = col_text(s, 2);
        r->suite = col_text(s, 3);
        r->status = col_text(s, 4);
        r->started_at = col_text(s, 5);
        r->git_commit = col_text(s, 6);
        r->host = col_text(s, 7);
        r->git_dirty = sqlite3_column_type(s, 8) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 8);
        r->duration_s = sqlite3_column_double(s, 9);
        r->ncases = sqlite3_column_int(s, 10);
        r->nfailed = sqlite3_column_int(s, 11);
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

static int query_id(sqlite_store *st, const char *sql, const char *arg, int64_t *id) {
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
    int rc;
    if (strcmp(ref, "latest") == 0) {
        rc = query_id(st, "SELECT max(id) FROM runs", NULL, id);
    } else {
        /* a number is a run id; anything else (or a number no run has) is a label */
        char *end;
        errno = 0;
        long long v = strtoll(ref, &end, 10);
        rc = PBH_ENOTFOUND;
        if (*ref && !*end && errno == 0 && v > 0) {
            char num[32];
            snprintf(num, sizeof num, "%lld", v);
            rc = query_id(st, "SELECT id FROM runs WHERE id = CAST(?1 AS INTEGER)", num, id);
        }
        if (rc == PBH_ENOTFOUND)
            rc = query_id(st, "SELECT max(id) FROM runs WHERE label = ?1", ref, id);
    }
    if (rc == PBH_ENOTFOUND)
        pbh_seterr(err, errlen, "no run '%s' in %s (a run id, a label, or 'latest'; see `poolbench runs`)", ref,
               st->path);
    else if (rc != PBH_OK)
        pbh_seterr(err, errlen, "reading %s failed: %s", st->path, sqlite3_errmsg(st->db));
    return rc;
}

static int sqlite_load_run(pbh_store *base, int64_t id, pbh_run **out, char *err, size_t errlen) {
    sqlite_store *st = as_sqlite(base);
    *out = NULL;
    pbh_run *run = pbh_run_new();
    if (!run)
        return PBH_ENOMEM;
    sqlite3_stmt *s = NULL;
    int rc = PBH_EIO;
    const char *sql_run =
        st->version >= 2
            ? "SELECT id, source, label, suite, status, started_at, started_unix, duration_s, git_commit, git_dirty,"
              " host, cpu_model, cores, kernel, compiler, cflags, build_type, command_line, governor, version,"
              " context_json FROM runs WHERE id = ?1"
            : "SELECT id, 'native', label, suite, status, started_at, started_unix, duration_s, git_commit,"
              " git_dirty, host, cpu_model, cores, kernel, compiler, cflags, build_type, command_line, governor,"
              " version, context_json FROM runs WHERE id = ?1";
    if (st->version == 0 || sqlite3_prepare_v2(st->db, sql_run, -1, &s, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(s, 1, id);
    int step = sqlite3_step(s);
    if (step != SQLITE_ROW) {
        rc = step == SQLITE_DONE ? PBH_ENOTFOUND : PBH_EIO;
        goto fail;
    }
    pbh_context *c = &run->ctx;
    run->id = sqlite3_column_int64(s, 0);
    run->source = col_text(s, 1);
    run->label = col_text(s, 2);
    run->suite = col_text(s, 3);
    run->status = col_text(s, 4);
    c->started_at = col_text(s, 5);
    c->started_unix = sqlite3_column_double(s, 6);
    run->duration_s = sqlite3_column_double(s, 7);
    c->git_commit = col_text(s, 8);
    c->git_dirty = sqlite3_column_type(s, 9) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 9);
    c->host = col_text(s, 10);
    c->cpu_model = col_text(s, 11);
    c->cores = sqlite3_column_type(s, 12) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 12);
    c->kernel = col_text(s, 13);
    c->compiler = col_text(s, 14);
    c->cflags = col_text(s, 15);
    c->build_type = col_text(s, 16);
    c->command_line = col_text(s, 17);
    c->governor = col_text(s, 18);
    c->version = col_text(s, 19);
    c->extra_json = col_text(s, 20);
    sqlite3_finalize(s);
    s = NULL;

    /* cases and their samples in one ordered pass */
    if (sqlite3_prepare_v2(st->db,
                           "SELECT c.id, c.name, c.scenario, c.backend, c.workers, c.params, c.status, c.reason,"
                           " c.reps, c.warmup, c.floor, c.measures, c.elapsed_s,"
                           " s.rep, s.wall_s, s.user_s, s.sys_s, s.peak_rss_kb, s.startup_s, s.ideal_s, s.tasks,"
                           " s.failed_tasks, s.iterations"
                           " FROM cases c LEFT JOIN samples s ON s.case_id = c.id"
                           " WHERE c.run_id = ?1 ORDER BY c.ord, s.rep",
                           -1, &s, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(s, 1, id);
    int64_t cur = -1;
    pbh_case *k = NULL;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t cid = sqlite3_column_int64(s, 0);
        if (cid != cur) {
            if (!(k = pbh_run_add_case(run))) {
                rc = PBH_ENOMEM;
                goto fail;
            }
            cur = cid;
            k->id = cid;
            k->name = col_text(s, 1);
            k->scenario = col_text(s, 2);
            k->backend = col_text(s, 3);
            k->workers = sqlite3_column_int(s, 4);
            k->params = col_text(s, 5);
            k->status = col_text(s, 6);
            k->reason = col_text(s, 7);
            k->reps = sqlite3_column_int(s, 8);
            k->warmup = sqlite3_column_int(s, 9);
            k->floor = col_text(s, 10);
            k->measures = col_text(s, 11);
            k->elapsed_s = sqlite3_column_double(s, 12);
        }
        if (sqlite3_column_type(s, 13) == SQLITE_NULL)
            continue; /* a case without samples */
        pbh_sample *x = pbh_case_add_sample(k);
        if (!x) {
            rc = PBH_ENOMEM;
            goto fail;
        }
        x->rep = sqlite3_column_int(s, 13);
        x->wall_s = sqlite3_column_double(s, 14);
        x->user_s = sqlite3_column_double(s, 15);
        x->sys_s = sqlite3_column_double(s, 16);
        x->peak_rss_kb = sqlite3_column_int64(s, 17);
        x->startup_s = sqlite3_column_double(s, 18);
        x->ideal_s = sqlite3_column_double(s, 19);
        x->tasks = (uint64_t)sqlite3_column_int64(s, 20);
        x->failed_tasks = (uint64_t)sqlite3_column_int64(s, 21);
        x->iterations = sqlite3_column_int64(s, 22);
    }
    if (step != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(s);
    s = NULL;

    if (st->version >= 2) {
        if (sqlite3_prepare_v2(st->db, "SELECT name, seconds, reps FROM floors WHERE run_id = ?1 ORDER BY name", -1,
                               &s, NULL) != SQLITE_OK)
            goto fail;
        sqlite3_bind_int64(s, 1, id);
        while ((step = sqlite3_step(s)) == SQLITE_ROW) {
            if (!pbh_run_add_floor(run, (const char *)sqlite3_column_text(s, 0), sqlite3_column_double(s, 1),
                                   sqlite3_column_int(s, 2))) {
                rc = PBH_ENOMEM;
                goto fail;
            }
        }
        if (step != SQLITE_DONE)
            goto fail;
        sqlite3_finalize(s);
        s = NULL;
    }
    *out = run;
    return PBH_OK;

fail:
    if (rc == PBH_ENOTFOUND)
        pbh_seterr(err, errlen, "no run %lld in %s", (long long)id, st->path);
    else
        pbh_seterr(err, errlen, "reading run %lld from %s failed: %s", (long long)id, st->path, sqlite3_errmsg(st->db));
    sqlite3_finalize(s);
    pbh_run_free(run);
    return rc;
}

/* ---- A/B pairs and calibrations (schema 3; the link is written in the runs' transaction) ---- */

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *v) {
    if (v && *v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

static int sqlite_insert_pair(pbh_store *st, pbh_run *base, pbh_run *head, pbh_pair *pair, char *err, size_t errlen) {
    sqlite3 *db = as_sqlite(st)->db;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        pbh_seterr(err, errlen, "cannot lock the store: %s", sqlite3_errmsg(db));
        return PBH_EIO;
    }
    int rc = sqlite_insert_run(st, base, err, errlen);
    if (rc == PBH_OK)
        rc = sqlite_insert_run(st, head, err, errlen);
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
            pbh_seterr(err, errlen, "writing the pair failed: %s", sqlite3_errmsg(db));
    }
    if (rc == PBH_OK && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        pbh_seterr(err, errlen, "cannot commit the pair: %s", sqlite3_errmsg(db));
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

static int sqlite_find_pair(pbh_store *st, int64_t run_id, pbh_pair *out, char *err, size_t errlen) {
    if (as_sqlite(st)->version < 3)
        return PBH_ENOTFOUND;
    sqlite3 *db = as_sqlite(st)->db;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, base_run_id, head_run_id, seed, block_reps, base_exe, head_exe, injected"
                           " FROM pairs WHERE base_run_id = ?1 OR head_run_id = ?1",
                           -1, &s, NULL) != SQLITE_OK) {
        pbh_seterr(err, errlen, "reading pairs failed: %s", sqlite3_errmsg(db));
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
        pbh_seterr(err, errlen, "reading pairs failed: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(s);
    return rc;
}

static int sqlite_insert_calibration(pbh_store *st, const pbh_context *ctx, const char *suite, const char *json,
                                 int64_t *id, char *err, size_t errlen) {
    sqlite3 *db = as_sqlite(st)->db;
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
        pbh_seterr(err, errlen, "writing the calibration failed: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return rc;
}

static int sqlite_latest_calibration(pbh_store *st, const pbh_context *machine, const char *suite, char **json,
                                 int64_t *id, char *err, size_t errlen) {
    if (as_sqlite(st)->version < 3)
        return PBH_ENOTFOUND;
    sqlite3 *db = as_sqlite(st)->db;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, result_json FROM calibrations WHERE host IS ?1 AND cpu_model IS ?2"
                           " AND cores = ?3 AND (?4 IS NULL OR suite = ?4) ORDER BY id DESC LIMIT 1",
                           -1, &s, NULL) != SQLITE_OK) {
        pbh_seterr(err, errlen, "reading calibrations failed: %s", sqlite3_errmsg(db));
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
        pbh_seterr(err, errlen, "reading calibrations failed: %s", sqlite3_errmsg(db));
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
    .history_runs = NULL, /* the generic one (store.c) loads every run: fine for a file of thousands */
    .insert_pair = sqlite_insert_pair,
    .find_pair = sqlite_find_pair,
    .insert_calibration = sqlite_insert_calibration,
    .latest_calibration = sqlite_latest_calibration,
};
