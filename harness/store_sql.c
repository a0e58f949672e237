/*
 * store_sql.c - the SQL both stores share (store_sql.h): the SELECTs whose column lists depend on the
 * schema version, binding a run's values to the INSERT statements, reading rows back into the data model,
 * and run UUIDs.
 *
 * Both stores go through the same two adapters, so a column added to the schema is bound and read in one
 * place: a store that forgot it would bind too few parameters and fail its round-trip test.
 */
#include "store_sql.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Columns of a run's row; schema versions before 3 have no uuid or machine, before 2 no source. */
static const char *run_columns(int version) {
    if (version >= 3)
        return "r.id, r.uuid, r.machine, r.source, r.label, r.suite, r.status, r.started_at, r.started_unix,"
               " r.duration_s, r.git_commit, r.git_dirty, r.host, r.cpu_model, r.cores, r.kernel, r.compiler,"
               " r.cflags, r.build_type, r.command_line, r.governor, r.version, r.context_json";
    if (version == 2)
        return "r.id, NULL, NULL, r.source, r.label, r.suite, r.status, r.started_at, r.started_unix,"
               " r.duration_s, r.git_commit, r.git_dirty, r.host, r.cpu_model, r.cores, r.kernel, r.compiler,"
               " r.cflags, r.build_type, r.command_line, r.governor, r.version, r.context_json";
    return "r.id, NULL, NULL, 'native', r.label, r.suite, r.status, r.started_at, r.started_unix,"
           " r.duration_s, r.git_commit, r.git_dirty, r.host, r.cpu_model, r.cores, r.kernel, r.compiler,"
           " r.cflags, r.build_type, r.command_line, r.governor, r.version, r.context_json";
}

const char *pbh_sql_select_run(char *buf, size_t len, int version) {
    snprintf(buf, len, "SELECT %s FROM runs r WHERE r.id = $1", run_columns(version));
    return buf;
}

const char *pbh_sql_list_runs(char *buf, size_t len, int version) {
    /* before version 3 there is no machine column: a machine filter matches nothing */
    const char *machine = version >= 3 ? "r.machine" : "NULL";
    /* the pair a run is a side of, through the pairs table's unique indexes on base_run_id and head_run_id */
    const char *pair = version >= 4 ? "(SELECT p.id FROM pairs p WHERE p.base_run_id = r.id),"
                                      " (SELECT p.id FROM pairs p WHERE p.head_run_id = r.id)"
                                    : "NULL, NULL";
    snprintf(buf, len,
             "SELECT r.id, %s, %s, %s, r.label, r.suite, r.status, r.started_at, r.git_commit, r.host,"
             " r.git_dirty, r.duration_s,"
             " (SELECT count(*) FROM cases c WHERE c.run_id = r.id),"
             " (SELECT count(*) FROM cases c WHERE c.run_id = r.id AND c.status IN ('failed', 'timeout')), %s"
             " FROM runs r WHERE (CAST($1 AS TEXT) IS NULL OR %s = $1) ORDER BY r.id DESC",
             version >= 3 ? "r.uuid" : "NULL", machine, version >= 2 ? "r.source" : "'native'", pair, machine);
    return buf;
}

const pbh_sql_check pbh_sql_checks[] = {
    {"cases of a run that does not exist",
     "SELECT count(*) FROM cases c WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = c.run_id)"},
    {"samples of a case that does not exist",
     "SELECT count(*) FROM samples s WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.id = s.case_id)"},
    {"floors of a run that does not exist",
     "SELECT count(*) FROM floors f WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = f.run_id)"},
    {"runs stored more than once (same uuid)",
     "SELECT count(*) FROM (SELECT uuid FROM runs GROUP BY uuid HAVING count(*) > 1) d"},
    {"runs without a uuid", "SELECT count(*) FROM runs WHERE uuid IS NULL OR length(uuid) <> 36"},
    {"runs whose cases are not numbered 0..n-1 (a partly written run)",
     "SELECT count(*) FROM (SELECT run_id FROM cases GROUP BY run_id HAVING min(ord) <> 0 OR"
     " max(ord) <> count(*) - 1) d"},
    {"cases whose samples are not numbered 0..n-1",
     "SELECT count(*) FROM (SELECT case_id FROM samples GROUP BY case_id HAVING min(rep) <> 0 OR"
     " max(rep) <> count(*) - 1) d"},
    {"pairs whose base or head run does not exist",
     "SELECT count(*) FROM pairs p WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = p.base_run_id) OR"
     " NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = p.head_run_id)"},
};
const size_t pbh_sql_nchecks = sizeof pbh_sql_checks / sizeof pbh_sql_checks[0];

/* ---- A/B pairs and calibrations (version 4) ----------------------------------------------------------- */

void pbh_sql_bind_pair(pbh_sql_params *p, const pbh_pair *pair, int64_t base_run_id, int64_t head_run_id) {
    p->integer(p, 1, base_run_id);
    p->integer(p, 2, head_run_id);
    p->integer(p, 3, (int64_t)pair->seed); /* the bits of the seed, read back as uint64_t */
    p->integer(p, 4, pair->block_reps);
    p->text(p, 5, *pair->base_exe ? pair->base_exe : NULL);
    p->text(p, 6, *pair->head_exe ? pair->head_exe : NULL);
    p->text(p, 7, *pair->injected ? pair->injected : NULL);
}

static void copy_text(const pbh_sql_row *r, int col, char *dst, size_t len) {
    const char *t = r->text(r, col);
    snprintf(dst, len, "%s", t ? t : "");
}

void pbh_sql_read_pair(const pbh_sql_row *r, pbh_pair *out) {
    out->id = r->integer(r, 0);
    out->base_run_id = r->integer(r, 1);
    out->head_run_id = r->integer(r, 2);
    out->seed = (uint64_t)r->integer(r, 3);
    out->block_reps = (int)r->integer(r, 4);
    copy_text(r, 5, out->base_exe, sizeof out->base_exe);
    copy_text(r, 6, out->head_exe, sizeof out->head_exe);
    copy_text(r, 7, out->injected, sizeof out->injected);
}

void pbh_sql_bind_calibration(pbh_sql_params *p, const pbh_context *ctx, const char *suite, const char *json) {
    p->text(p, 1, ctx->machine ? ctx->machine : "");
    p->text(p, 2, ctx->started_at ? ctx->started_at : "");
    p->text(p, 3, ctx->host);
    p->text(p, 4, ctx->cpu_model);
    p->integer(p, 5, ctx->cores);
    p->text(p, 6, ctx->kernel);
    p->text(p, 7, suite);
    p->text(p, 8, ctx->git_commit);
    p->text(p, 9, json);
}

/* ---- history ---------------------------------------------------------------------------------------- */

#define HISTORY_CASE_FILTER                                                                                    \
    "(CAST($1 AS TEXT) IS NULL OR c.scenario = $1) AND (CAST($2 AS TEXT) IS NULL OR c.backend = $2) AND"      \
    " (CAST($3 AS TEXT) IS NULL OR %s = $3) AND (CAST($4 AS TEXT) IS NULL OR c.name = $4)"

const char *pbh_sql_history_runs(char *buf, size_t len, int version) {
    char filter[512];
    snprintf(filter, sizeof filter, HISTORY_CASE_FILTER, version >= 3 ? "r.machine" : "NULL");
    snprintf(buf, len,
             "SELECT %s FROM runs r WHERE EXISTS (SELECT 1 FROM cases c WHERE c.run_id = r.id AND %s)"
             " ORDER BY r.started_unix, r.id",
             run_columns(version), filter);
    return buf;
}

const char *pbh_sql_history_cases(char *buf, size_t len, int version) {
    char filter[512];
    snprintf(filter, sizeof filter, HISTORY_CASE_FILTER, version >= 3 ? "r.machine" : "NULL");
    snprintf(buf, len,
             /* only what a series needs (the case's key, each sample's wall time and iterations): the
              * other columns read as NULL, which halves what a fleet's history moves and parses */
             "SELECT c.id, c.name, c.scenario, c.backend, c.workers, c.params, c.status, NULL, NULL,"
             " NULL, NULL, NULL, NULL, s.rep, s.wall_s, NULL, NULL, NULL,"
             " NULL, NULL, NULL, NULL, s.iterations, c.run_id"
             " FROM runs r JOIN cases c ON c.run_id = r.id LEFT JOIN samples s ON s.case_id = c.id WHERE %s"
             " ORDER BY c.run_id, c.ord, s.rep", /* the (run_id, ord) index's order: no sort */
             filter);
    return buf;
}

void pbh_sql_bind_history_filter(pbh_sql_params *p, const pbh_history_filter *f) {
    p->text(p, 1, f ? f->scenario : NULL);
    p->text(p, 2, f ? f->backend : NULL);
    p->text(p, 3, f ? f->machine : NULL);
    p->text(p, 4, f ? f->case_name : NULL);
}

int pbh_sql_history_run_row(pbh_sql_history *h, const pbh_sql_row *r) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        pbh_run **na = realloc(h->runs, cap * sizeof *na);
        if (!na)
            return PBH_ENOMEM;
        h->runs = na;
        h->cap = cap;
    }
    pbh_run *run = pbh_run_new();
    if (!run)
        return PBH_ENOMEM;
    h->runs[h->n++] = run;
    return pbh_sql_read_run(r, run);
}

static int cmp_by_id(const void *a, const void *b) {
    int64_t x = (*(pbh_run *const *)a)->id, y = (*(pbh_run *const *)b)->id;
    return (x > y) - (x < y);
}

const char *pbh_sql_history_where(char *buf, size_t len, int version) {
    snprintf(buf, len, HISTORY_CASE_FILTER, version >= 3 ? "r.machine" : "NULL");
    return buf;
}

int pbh_sql_history_run_of(pbh_sql_history *h, int64_t run_id, pbh_run **run) {
    if (!h->by_id) {
        /* the runs are in time order, the case rows in run id order: look runs up by id */
        if (!(h->by_id = malloc((h->n + 1) * sizeof *h->by_id)))
            return PBH_ENOMEM;
        memcpy(h->by_id, h->runs, h->n * sizeof *h->by_id);
        qsort(h->by_id, h->n, sizeof *h->by_id, cmp_by_id);
    }
    if (h->cursor >= h->n || h->by_id[h->cursor]->id != run_id) {
        pbh_run key = {.id = run_id}, *keyp = &key;
        pbh_run **found = bsearch(&keyp, h->by_id, h->n, sizeof *h->by_id, cmp_by_id);
        if (!found)
            return PBH_EIO; /* a case of a run the runs query did not return: the snapshot was not shared */
        h->cursor = (size_t)(found - h->by_id);
        h->cur_case = -1;
    }
    *run = h->by_id[h->cursor];
    return PBH_OK;
}

int pbh_sql_history_case_row(pbh_sql_history *h, const pbh_sql_row *r) {
    pbh_run *run;
    int rc = pbh_sql_history_run_of(h, r->integer(r, 23), &run);
    return rc == PBH_OK ? pbh_sql_read_case_sample(r, run, &h->cur_case) : rc;
}

void pbh_sql_history_finish(pbh_sql_history *h, pbh_run ***runs, size_t *n) {
    size_t kept = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (h->runs[i]->ncases)
            h->runs[kept++] = h->runs[i];
        else
            pbh_run_free(h->runs[i]);
    }
    *runs = h->runs;
    *n = kept;
    free(h->by_id);
    memset(h, 0, sizeof *h);
}

void pbh_sql_history_abort(pbh_sql_history *h) {
    for (size_t i = 0; i < h->n; i++)
        pbh_run_free(h->runs[i]);
    free(h->runs);
    free(h->by_id);
    memset(h, 0, sizeof *h);
}

/* ---- binding ------------------------------------------------------------------------------------------ */

static void bind_opt_int(pbh_sql_params *p, int i, int v, int present) {
    if (present)
        p->integer(p, i, v);
    else
        p->null(p, i);
}

void pbh_sql_bind_run(pbh_sql_params *p, const pbh_run *run) {
    const pbh_context *c = &run->ctx;
    p->text(p, 1, run->uuid);
    p->text(p, 2, c->machine ? c->machine : "");
    p->text(p, 3, run->source ? run->source : PBH_SOURCE_NATIVE);
    p->text(p, 4, run->label);
    p->text(p, 5, run->suite);
    p->text(p, 6, run->status ? run->status : "ok");
    p->text(p, 7, c->started_at ? c->started_at : "");
    p->real(p, 8, c->started_unix);
    p->real(p, 9, run->duration_s);
    p->text(p, 10, c->git_commit);
    bind_opt_int(p, 11, c->git_dirty, c->git_dirty >= 0);
    p->text(p, 12, c->host);
    p->text(p, 13, c->cpu_model);
    bind_opt_int(p, 14, c->cores, c->cores > 0);
    p->text(p, 15, c->kernel);
    p->text(p, 16, c->compiler);
    p->text(p, 17, c->cflags);
    p->text(p, 18, c->build_type);
    p->text(p, 19, c->command_line);
    p->text(p, 20, c->governor);
    p->text(p, 21, c->version);
    p->text(p, 22, c->extra_json);
}

void pbh_sql_bind_case(pbh_sql_params *p, int64_t run_id, size_t ord, const pbh_case *k) {
    p->integer(p, 1, run_id);
    p->integer(p, 2, (int64_t)ord);
    p->text(p, 3, k->name ? k->name : "");
    p->text(p, 4, k->scenario);
    p->text(p, 5, k->backend);
    p->integer(p, 6, k->workers);
    p->text(p, 7, k->params);
    p->text(p, 8, k->status ? k->status : PBH_STATUS_FAILED);
    p->text(p, 9, k->reason);
    p->integer(p, 10, k->reps);
    p->integer(p, 11, k->warmup);
    p->text(p, 12, k->floor);
    p->text(p, 13, k->measures);
    p->real(p, 14, k->elapsed_s);
}

void pbh_sql_bind_sample(pbh_sql_params *p, int64_t case_id, const pbh_sample *s) {
    p->integer(p, 1, case_id);
    p->integer(p, 2, s->rep);
    p->real(p, 3, s->wall_s);
    p->real(p, 4, s->user_s);
    p->real(p, 5, s->sys_s);
    p->integer(p, 6, s->peak_rss_kb);
    p->real(p, 7, s->startup_s);
    p->real(p, 8, s->ideal_s);
    p->integer(p, 9, (int64_t)s->tasks);
    p->integer(p, 10, (int64_t)s->failed_tasks);
    p->integer(p, 11, s->iterations > 0 ? s->iterations : 1);
}

void pbh_sql_bind_floor(pbh_sql_params *p, int64_t run_id, const pbh_floor *f) {
    p->integer(p, 1, run_id);
    p->text(p, 2, f->name);
    p->real(p, 3, f->seconds);
    p->integer(p, 4, f->reps);
}

/* ---- reading ------------------------------------------------------------------------------------------ */

/* A copy of column col (NULL stays NULL); *ok is cleared when the copy could not be made. */
static char *col_text(const pbh_sql_row *r, int col, int *ok) {
    const char *t = r->text(r, col);
    if (!t)
        return NULL;
    char *copy = strdup(t);
    if (!copy)
        *ok = 0;
    return copy;
}

int pbh_sql_read_run(const pbh_sql_row *r, pbh_run *run) {
    int ok = 1;
    pbh_context *c = &run->ctx;
    run->id = r->integer(r, 0);
    run->uuid = col_text(r, 1, &ok);
    c->machine = col_text(r, 2, &ok);
    run->source = col_text(r, 3, &ok);
    run->label = col_text(r, 4, &ok);
    run->suite = col_text(r, 5, &ok);
    run->status = col_text(r, 6, &ok);
    c->started_at = col_text(r, 7, &ok);
    c->started_unix = r->real(r, 8);
    run->duration_s = r->real(r, 9);
    c->git_commit = col_text(r, 10, &ok);
    c->git_dirty = r->is_null(r, 11) ? -1 : (int)r->integer(r, 11);
    c->host = col_text(r, 12, &ok);
    c->cpu_model = col_text(r, 13, &ok);
    c->cores = r->is_null(r, 14) ? -1 : (int)r->integer(r, 14);
    c->kernel = col_text(r, 15, &ok);
    c->compiler = col_text(r, 16, &ok);
    c->cflags = col_text(r, 17, &ok);
    c->build_type = col_text(r, 18, &ok);
    c->command_line = col_text(r, 19, &ok);
    c->governor = col_text(r, 20, &ok);
    c->version = col_text(r, 21, &ok);
    c->extra_json = col_text(r, 22, &ok);
    return ok ? PBH_OK : PBH_ENOMEM;
}

int pbh_sql_read_run_info(const pbh_sql_row *r, pbh_run_info *info) {
    int ok = 1;
    memset(info, 0, sizeof *info);
    info->id = r->integer(r, 0);
    info->uuid = col_text(r, 1, &ok);
    info->machine = col_text(r, 2, &ok);
    info->source = col_text(r, 3, &ok);
    info->label = col_text(r, 4, &ok);
    info->suite = col_text(r, 5, &ok);
    info->status = col_text(r, 6, &ok);
    info->started_at = col_text(r, 7, &ok);
    info->git_commit = col_text(r, 8, &ok);
    info->host = col_text(r, 9, &ok);
    info->git_dirty = r->is_null(r, 10) ? -1 : (int)r->integer(r, 10);
    info->duration_s = r->real(r, 11);
    info->ncases = (int)r->integer(r, 12);
    info->nfailed = (int)r->integer(r, 13);
    if (!r->is_null(r, 14)) {
        info->pair_id = r->integer(r, 14);
    } else if (!r->is_null(r, 15)) {
        info->pair_id = r->integer(r, 15);
        info->pair_is_head = 1;
    }
    return ok ? PBH_OK : PBH_ENOMEM;
}

int pbh_sql_read_case_sample(const pbh_sql_row *r, pbh_run *run, int64_t *cur) {
    int ok = 1;
    int64_t cid = r->integer(r, 0);
    if (cid != *cur || run->ncases == 0) {
        pbh_case *k = pbh_run_add_case(run);
        if (!k)
            return PBH_ENOMEM;
        *cur = cid;
        k->id = cid;
        k->name = col_text(r, 1, &ok);
        k->scenario = col_text(r, 2, &ok);
        k->backend = col_text(r, 3, &ok);
        k->workers = (int)r->integer(r, 4);
        k->params = col_text(r, 5, &ok);
        k->status = col_text(r, 6, &ok);
        k->reason = col_text(r, 7, &ok);
        k->reps = (int)r->integer(r, 8);
        k->warmup = (int)r->integer(r, 9);
        k->floor = col_text(r, 10, &ok);
        k->measures = col_text(r, 11, &ok);
        k->elapsed_s = r->real(r, 12);
        if (!ok)
            return PBH_ENOMEM;
    }
    if (r->is_null(r, 13))
        return PBH_OK; /* a case without samples */
    pbh_sample *x = pbh_case_add_sample(&run->cases[run->ncases - 1]);
    if (!x)
        return PBH_ENOMEM;
    x->rep = (int)r->integer(r, 13);
    x->wall_s = r->real(r, 14);
    x->user_s = r->real(r, 15);
    x->sys_s = r->real(r, 16);
    x->peak_rss_kb = r->integer(r, 17);
    x->startup_s = r->real(r, 18);
    x->ideal_s = r->real(r, 19);
    x->tasks = (uint64_t)r->integer(r, 20);
    x->failed_tasks = (uint64_t)r->integer(r, 21);
    x->iterations = r->integer(r, 22);
    return PBH_OK;
}

int pbh_sql_read_floor(const pbh_sql_row *r, pbh_run *run) {
    return pbh_run_add_floor(run, r->text(r, 0), r->real(r, 1), (int)r->integer(r, 2)) ? PBH_OK : PBH_ENOMEM;
}

int pbh_sql_resolve(const char *ref, pbh_sql_query_id query_id, void *store, int64_t *id) {
    if (strcmp(ref, "latest") == 0)
        return query_id(store, PBH_SQL_LATEST_RUN, NULL, id);
    if (pbh_uuid_valid(ref)) {
        char lower[37];
        for (int i = 0; i < 37; i++)
            lower[i] = (char)(ref[i] >= 'A' && ref[i] <= 'F' ? ref[i] - 'A' + 'a' : ref[i]);
        int rc = query_id(store, PBH_SQL_RUN_ID_BY_UUID, lower, id);
        if (rc != PBH_ENOTFOUND)
            return rc;
    }
    /* a number is a run id; anything else (or a number no run has) is a label */
    char *end;
    errno = 0;
    long long v = strtoll(ref, &end, 10);
    if (*ref && !*end && errno == 0 && v > 0) {
        char num[32];
        snprintf(num, sizeof num, "%lld", v);
        int rc = query_id(store, PBH_SQL_RUN_ID_EXISTS, num, id);
        if (rc != PBH_ENOTFOUND)
            return rc;
    }
    return query_id(store, PBH_SQL_LATEST_WITH_LABEL, ref, id);
}

int pbh_sql_run_checks(pbh_sql_query_id query_id, void *store, int version, char *report, size_t len) {
    int problems = 0;
    size_t used = strlen(report);
    for (size_t i = 0; i < pbh_sql_nchecks; i++) {
        if (version < 3 && strstr(pbh_sql_checks[i].sql, "uuid"))
            continue; /* no uuids before schema 3 */
        if (version < 4 && strstr(pbh_sql_checks[i].sql, "pairs"))
            continue; /* no pairs before schema 4 */
        int64_t n = 0;
        int rc = query_id(store, pbh_sql_checks[i].sql, NULL, &n);
        if (rc == PBH_ENOTFOUND)
            n = 0;
        else if (rc != PBH_OK) {
            snprintf(report, len, "the check for %s could not run", pbh_sql_checks[i].what);
            return PBH_EIO;
        }
        if (n > 0 && used < len) {
            used += (size_t)snprintf(report + used, len - used, "%lld %s\n", (long long)n, pbh_sql_checks[i].what);
            problems++;
        }
    }
    return problems;
}

/* ---- UUIDs -------------------------------------------------------------------------------------------- */

int pbh_uuid_new(char out[37]) {
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4: random */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

int pbh_uuid_valid(const char *s) {
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                                   (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    }
    return 1;
}
