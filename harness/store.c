/*
 * store.c - the storage interface's front (store.h): picks the implementation for a location, runs the
 * open-then-migrate sequence every writer needs, forwards each call to the open store's vtab, and
 * supplies what an implementation may leave out (the runs of a history series, consistency checks).
 *
 * Adding a store = a store_<name>.c exporting one const pbh_store_vtab, its extern in store.h, and one
 * line in `stores` below (before SQLite, which takes every location without "://").
 */
#include "store.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pbh_store_vtab *const stores[] = {
    &pbh_store_postgres,
    &pbh_store_sqlite,
};

int pbh_store_open(pbh_store **out, const char *path, enum pbh_store_mode mode, char *err, size_t errlen) {
    *out = NULL;
    const pbh_store_vtab *vt = NULL;
    for (size_t i = 0; i < sizeof stores / sizeof stores[0] && !vt; i++)
        if (stores[i]->accepts(path))
            vt = stores[i];
    if (!vt) {
        char shown[1024];
        pbh_seterr(err, errlen, "no store implementation for '%s' (a file path is an SQLite store, a postgresql:// "
                   "URI a PostgreSQL store)", pbh_redact_password(path, shown, sizeof shown));
        return PBH_EINPUT;
    }
    pbh_store *st;
    int rc = vt->open(&st, path, mode, err, errlen);
    if (rc != PBH_OK)
        return rc;
    if (mode == PBH_STORE_WRITE && (rc = vt->migrate(st, PBH_SCHEMA_VERSION, err, errlen)) != PBH_OK) {
        vt->close(st);
        return rc;
    }
    *out = st;
    return PBH_OK;
}

void pbh_store_close(pbh_store *st) {
    if (st)
        st->vt->close(st);
}

int pbh_store_schema_version(pbh_store *st) {
    return st->vt->schema_version(st);
}

int pbh_store_insert_run(pbh_store *st, pbh_run *run, char *err, size_t errlen) {
    return st->vt->insert_run(st, run, err, errlen);
}

int pbh_store_list_runs(pbh_store *st, const char *machine, pbh_run_info **out, size_t *n, char *err,
                        size_t errlen) {
    return st->vt->list_runs(st, machine, out, n, err, errlen);
}

int pbh_store_check(pbh_store *st, char *report, size_t len) {
    if (st->vt->check)
        return st->vt->check(st, report, len);
    snprintf(report, len, "ok (the %s store has no checks beyond opening)", st->vt->name);
    return 0;
}

int pbh_store_resolve(pbh_store *st, const char *ref, int64_t *id, char *err, size_t errlen) {
    return st->vt->resolve(st, ref, id, err, errlen);
}

int pbh_store_load_run(pbh_store *st, int64_t id, pbh_run **out, char *err, size_t errlen) {
    return st->vt->load_run(st, id, out, err, errlen);
}

void pbh_store_runs_free(pbh_run **runs, size_t n) {
    for (size_t i = 0; runs && i < n; i++)
        pbh_run_free(runs[i]);
    free(runs);
}

static int run_time_order(const void *a, const void *b) {
    const pbh_run *x = *(pbh_run *const *)a, *y = *(pbh_run *const *)b;
    if (x->ctx.started_unix != y->ctx.started_unix)
        return x->ctx.started_unix < y->ctx.started_unix ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Every run of the filter's machine, loaded whole, in time order: the case filters are left to the caller
 * (history.c applies them to whatever a store returns). */
static int generic_history_runs(pbh_store *st, const char *machine, pbh_run ***runs, size_t *n, char *err,
                                size_t errlen) {
    pbh_run_info *infos = NULL;
    size_t ninfos = 0;
    int rc = pbh_store_list_runs(st, machine, &infos, &ninfos, err, errlen);
    if (rc != PBH_OK)
        return rc;
    pbh_run **out = calloc(ninfos + 1, sizeof *out);
    size_t len = 0;
    if (!out)
        rc = PBH_ENOMEM;
    for (size_t i = 0; i < ninfos && rc == PBH_OK; i++)
        if ((rc = pbh_store_load_run(st, infos[i].id, &out[len], err, errlen)) == PBH_OK)
            len++;
    pbh_run_infos_free(infos, ninfos);
    if (rc != PBH_OK) {
        pbh_store_runs_free(out, len);
        return rc;
    }
    qsort(out, len, sizeof *out, run_time_order);
    *runs = out;
    *n = len;
    return PBH_OK;
}

int pbh_store_history_runs(pbh_store *st, const pbh_history_filter *filter, pbh_run ***runs, size_t *n, char *err,
                           size_t errlen) {
    *runs = NULL;
    *n = 0;
    if (st->vt->history_runs)
        return st->vt->history_runs(st, filter, runs, n, err, errlen);
    return generic_history_runs(st, filter ? filter->machine : NULL, runs, n, err, errlen);
}

/* ---- pairs and calibrations (vtab version 2) ---- */

static int unsupported(pbh_store *st, const char *what, char *err, size_t errlen) {
    pbh_seterr(err, errlen, "the %s store keeps no %s", st->vt->name, what);
    return PBH_EINPUT;
}

int pbh_store_insert_pair(pbh_store *st, pbh_run *base, pbh_run *head, pbh_pair *pair, char *err, size_t errlen) {
    if (st->vt->version < 2 || !st->vt->insert_pair)
        return unsupported(st, "A/B pairs", err, errlen);
    return st->vt->insert_pair(st, base, head, pair, err, errlen);
}

int pbh_store_find_pair(pbh_store *st, int64_t run_id, pbh_pair *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (st->vt->version < 2 || !st->vt->find_pair)
        return PBH_ENOTFOUND; /* no pairs here: every run is a lone run */
    return st->vt->find_pair(st, run_id, out, err, errlen);
}

int pbh_store_insert_calibration(pbh_store *st, const pbh_context *machine, const char *suite, const char *json,
                                 int64_t *id, char *err, size_t errlen) {
    if (st->vt->version < 2 || !st->vt->insert_calibration)
        return unsupported(st, "calibrations", err, errlen);
    return st->vt->insert_calibration(st, machine, suite, json, id, err, errlen);
}

int pbh_store_latest_calibration(pbh_store *st, const pbh_context *machine, const char *suite, char **json,
                                 int64_t *id, char *err, size_t errlen) {
    *json = NULL;
    if (st->vt->version < 2 || !st->vt->latest_calibration)
        return PBH_ENOTFOUND;
    return st->vt->latest_calibration(st, machine, suite, json, id, err, errlen);
}
