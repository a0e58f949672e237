/*
 * plan.c - expands a suite or a flag matrix into cases (plan.h).
 *
 * DESIGN
 *  Suite items (or the --scenario list) x backends x workers x param sweeps, each checked against the
 *  registries up front, so that a typo fails in a millisecond with exit 2 instead of after an hour.
 *  Backends without PB_CAP_ASYNC (serial) run their tasks inline: their case is run once at workers=1.
 *  Flags override the suite: --workers/--param/--reps/--warmup replace the item's values, --scenario and
 *  --backend filter its items. The same case selected twice is planned once.
 */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pbh_request_init(pbh_request *rq) {
    memset(rq, 0, sizeof *rq);
    rq->reps = -1;
    rq->warmup = -1;
    rq->processes = -1;
    rq->seed = PBH_DEFAULT_SEED;
}

void pbh_plan_free(pbh_plan *plan) {
    free(plan->cases);
    memset(plan, 0, sizeof *plan);
}

void pbh_backend_unavailable(const char *name, char *buf, size_t len) {
    const char *why = pb_backend_not_built_reason(name);
    if (why) {
        snprintf(buf, len, "backend '%s' is not built in (%s)", name, why);
        return;
    }
    size_t off = (size_t)snprintf(buf, len, "unknown backend '%s' (known: ", name);
    for (size_t i = 0; i < pb_backend_count() && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", pb_backend_name_at(i));
    if (off < len)
        snprintf(buf + off, len - off, ")");
}

static void known_scenarios(char *buf, size_t len) {
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < pb_scenario_count() && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", pb_scenario_at(i)->name);
}

static int in_list(const char *const *list, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

size_t pbh_split(char *buf, char sep, char **out, size_t max) {
    size_t n = 0;
    char *p = buf;
    while (p && *p && n < max) {
        char *next = strchr(p, sep);
        if (next)
            *next++ = '\0';
        if (*p)
            out[n++] = p;
        p = next;
    }
    return n;
}

typedef struct param_sets {
    pb_params *v;
    size_t n;
} param_sets;

/* Applies every request param that names one of s's params; sweeps multiply the sets. */
static int expand_params(const pb_scenario *s, const pb_params *base, const pbh_request *rq, int *used,
                         param_sets *out, char *err, size_t errlen) {
    out->v = malloc(sizeof(pb_params));
    if (!out->v)
        return PBH_ENOMEM;
    out->v[0] = *base;
    out->n = 1;
    for (size_t i = 0; i < rq->nparams; i++) {
        const char *eq = strchr(rq->params[i], '=');
        size_t klen = (size_t)(eq - rq->params[i]);
        int known = 0;
        for (size_t d = 0; d < s->nparams; d++)
            if (strlen(s->params[d].name) == klen && strncmp(s->params[d].name, rq->params[i], klen) == 0)
                known = 1;
        if (!known)
            continue;
        used[i] = 1;
        char vals[256];
        snprintf(vals, sizeof vals, "%s", eq + 1);
        char *pieces[PBH_MAX_LIST];
        size_t nv = pbh_split(vals, ',', pieces, PBH_MAX_LIST);
        if (nv == 0) {
            pbh_seterr(err, errlen, "malformed --param '%s': expected NAME=VALUE[,VALUE...]", rq->params[i]);
            free(out->v);
            return PBH_EINPUT;
        }
        pb_params *nvset = malloc(out->n * nv * sizeof *nvset);
        if (!nvset) {
            free(out->v);
            return PBH_ENOMEM;
        }
        size_t k = 0;
        for (size_t a = 0; a < out->n; a++) {
            for (size_t b = 0; b < nv; b++) {
                char assign[320];
                snprintf(assign, sizeof assign, "%.*s=%s", (int)klen, rq->params[i], pieces[b]);
                nvset[k] = out->v[a];
                char msg[256];
                if (pb_params_set(s, &nvset[k], assign, msg, sizeof msg) != 0) {
                    pbh_seterr(err, errlen, "bad --param '%s': %s", rq->params[i], msg);
                    free(nvset);
                    free(out->v);
                    return PBH_EINPUT;
                }
                k++;
            }
        }
        free(out->v);
        out->v = nvset;
        out->n = k;
    }
    return PBH_OK;
}

static int add_case(pbh_plan *plan, size_t *cap, const pbh_case_spec *spec) {
    for (size_t i = 0; i < plan->n; i++)
        if (strcmp(plan->cases[i].name, spec->name) == 0)
            return PBH_OK; /* the same case twice (serial collapsing, overlapping items): run it once */
    if (plan->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        pbh_case_spec *na = realloc(plan->cases, ncap * sizeof *na);
        if (!na)
            return PBH_ENOMEM;
        plan->cases = na;
        *cap = ncap;
    }
    plan->cases[plan->n++] = *spec;
    return PBH_OK;
}

/* One suite item or one --scenario: the cases for every backend, worker count and param set. */
static int expand_item(const pbh_request *rq, const pbh_suite *suite, const pbh_suite_item *item,
                       const pb_scenario *s, int *used, pbh_plan *plan, size_t *cap, char *err, size_t errlen) {
    pb_params base;
    pb_params_defaults(s, &base);
    if (item && item->params) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", item->params);
        char *pieces[PB_MAX_PARAMS * 2];
        size_t n = pbh_split(buf, ' ', pieces, PB_MAX_PARAMS * 2);
        for (size_t i = 0; i < n; i++) {
            char msg[256];
            if (pb_params_set(s, &base, pieces[i], msg, sizeof msg) != 0) {
                pbh_seterr(err, errlen, "suite '%s' is broken: %s", suite ? suite->name : "?", msg);
                return PBH_EINPUT;
            }
        }
    }
    param_sets sets;
    int rc = expand_params(s, &base, rq, used, &sets, err, errlen);
    if (rc != PBH_OK)
        return rc;

    /* backends: the item's (or all), filtered by --backend */
    const char *backends[PBH_MAX_LIST];
    size_t nb = 0;
    char bbuf[256];
    if (item && item->backends) {
        snprintf(bbuf, sizeof bbuf, "%s", item->backends);
        nb = pbh_split(bbuf, ',', (char **)backends, PBH_MAX_LIST);
    } else if (!item && rq->nbackends) {
        for (size_t i = 0; i < rq->nbackends; i++)
            backends[nb++] = rq->backends[i];
    } else {
        for (size_t i = 0; i < pb_backend_count() && nb < PBH_MAX_LIST; i++)
            backends[nb++] = pb_backend_name_at(i);
    }
    /* workers: --workers, else the item's, else the pool's default (online CPUs) */
    int workers[PBH_MAX_LIST];
    size_t nw = 0;
    if (rq->nworkers) {
        for (size_t i = 0; i < rq->nworkers; i++)
            workers[nw++] = rq->workers[i];
    } else if (item && item->workers) {
        char wbuf[128];
        snprintf(wbuf, sizeof wbuf, "%s", item->workers);
        char *pieces[PBH_MAX_LIST];
        size_t n = pbh_split(wbuf, ',', pieces, PBH_MAX_LIST);
        for (size_t i = 0; i < n; i++)
            workers[nw++] = atoi(pieces[i]);
    } else {
        pb_options o;
        pb_options_init(&o);
        workers[nw++] = o.workers;
    }
    int suite_reps = !suite ? PBH_DEFAULT_REPS : rq->pair ? pbh_suite_pair_reps(suite) : suite->reps;
    int reps = rq->reps >= 0 ? rq->reps : (item && item->reps > 0) ? item->reps : suite_reps;
    int warmup = rq->warmup >= 0 ? rq->warmup
                 : (item && item->warmup >= 0) ? item->warmup
                 : suite                       ? suite->warmup
                                               : PBH_DEFAULT_WARMUP;
    double timeout = rq->case_timeout_s > 0 ? rq->case_timeout_s : suite ? suite->case_timeout_s : PBH_DEFAULT_CASE_TIMEOUT;

    for (size_t b = 0; b < nb && rc == PBH_OK; b++) {
        if (item && rq->nbackends && !in_list(rq->backends, rq->nbackends, backends[b]))
            continue;
        int caps = pb_backend_caps(backends[b]);
        if (caps < 0 && item && item->backends && pb_backend_not_built_reason(backends[b]))
            continue; /* a suite names the reference backends; a build without their library skips them */
        if (caps < 0) {
            pbh_backend_unavailable(backends[b], err, errlen);
            rc = PBH_EINPUT;
            break;
        }
        int inline_only = !(caps & PB_CAP_ASYNC);
        for (size_t w = 0; w < nw && rc == PBH_OK; w++) {
            for (size_t p = 0; p < sets.n && rc == PBH_OK; p++) {
                pbh_case_spec spec;
                memset(&spec, 0, sizeof spec);
                spec.scenario = s;
                snprintf(spec.backend, sizeof spec.backend, "%s", backends[b]);
                spec.workers = inline_only ? 1 : workers[w];
                spec.params = sets.v[p];
                pb_params_format(s, &spec.params, spec.params_str, sizeof spec.params_str);
                snprintf(spec.name, sizeof spec.name, "%s/%s/w%d%s%s", s->name, spec.backend, spec.workers,
                         spec.params_str[0] ? "/" : "", spec.params_str);
                spec.reps = reps;
                spec.warmup = warmup;
                spec.processes = rq->processes > 0 ? rq->processes : PBH_DEFAULT_PROCESSES;
                if (spec.processes > reps)
                    spec.processes = reps;
                spec.timeout_s = timeout;
                spec.seed = rq->seed;
                spec.supported = pb_scenario_supported(s, spec.backend);
                rc = add_case(plan, cap, &spec);
            }
        }
    }
    free(sets.v);
    return rc;
}

int pbh_plan_build(const pbh_request *rq, pbh_plan *plan, char *err, size_t errlen) {
    memset(plan, 0, sizeof *plan);
    char known[512];
    const pbh_suite *suite = NULL;
    if (rq->suite || rq->nscenarios == 0) {
        const char *name = rq->suite ? rq->suite : "default";
        suite = pbh_suite_find(name);
        if (!suite) {
            size_t off = 0;
            for (size_t i = 0; i < pbh_suite_count(); i++)
                off += (size_t)snprintf(known + off, sizeof known - off, "%s%s", i ? ", " : "", pbh_suite_at(i)->name);
            pbh_seterr(err, errlen, "unknown suite '%s' (known: %s)", name, known);
            return PBH_EINPUT;
        }
    }
    for (size_t i = 0; i < rq->nscenarios; i++) {
        if (!pb_scenario_find(rq->scenarios[i])) {
            known_scenarios(known, sizeof known);
            pbh_seterr(err, errlen, "unknown scenario '%s' (known: %s)", rq->scenarios[i], known);
            return PBH_EINPUT;
        }
    }
    for (size_t i = 0; i < rq->nbackends; i++) {
        if (pb_backend_caps(rq->backends[i]) < 0) {
            pbh_backend_unavailable(rq->backends[i], err, errlen);
            return PBH_EINPUT;
        }
    }
    for (size_t i = 0; i < rq->nworkers; i++) {
        if (rq->workers[i] < 1 || rq->workers[i] > 4096) {
            pbh_seterr(err, errlen, "bad --workers %d: expected 1..4096", rq->workers[i]);
            return PBH_EINPUT;
        }
    }
    for (size_t i = 0; i < rq->nparams; i++) {
        const char *eq = strchr(rq->params[i], '=');
        if (!eq || eq == rq->params[i] || !eq[1]) {
            pbh_seterr(err, errlen, "malformed --param '%s': expected NAME=VALUE[,VALUE...]", rq->params[i]);
            return PBH_EINPUT;
        }
    }
    if (rq->reps == 0 || rq->reps > 100000) {
        pbh_seterr(err, errlen, "bad --reps %d: expected 1..100000", rq->reps);
        return PBH_EINPUT;
    }
    if (rq->warmup > 1000) {
        pbh_seterr(err, errlen, "bad --warmup %d: expected 0..1000", rq->warmup);
        return PBH_EINPUT;
    }

    int used[PBH_MAX_LIST] = {0};
    size_t cap = 0;
    int rc = PBH_OK;
    plan->suite = suite;
    if (suite) {
        for (size_t i = 0; i < suite->nitems && rc == PBH_OK; i++) {
            const pbh_suite_item *item = &suite->items[i];
            if (rq->nscenarios && !in_list(rq->scenarios, rq->nscenarios, item->scenario))
                continue;
            const pb_scenario *s = pb_scenario_find(item->scenario);
            if (!s) {
                pbh_seterr(err, errlen, "suite '%s' names scenario '%s', which is not built in", suite->name,
                       item->scenario);
                rc = PBH_EINPUT;
                break;
            }
            rc = expand_item(rq, suite, item, s, used, plan, &cap, err, errlen);
        }
    } else {
        for (size_t i = 0; i < rq->nscenarios && rc == PBH_OK; i++)
            rc = expand_item(rq, NULL, NULL, pb_scenario_find(rq->scenarios[i]), used, plan, &cap, err, errlen);
    }
    for (size_t i = 0; i < rq->nparams && rc == PBH_OK; i++) {
        if (!used[i]) {
            pbh_seterr(err, errlen, "--param '%s': no selected scenario has a parameter by that name "
                   "(see `poolbench list scenarios`)", rq->params[i]);
            rc = PBH_EINPUT;
        }
    }
    if (rc == PBH_OK && plan->n == 0) {
        pbh_seterr(err, errlen, "nothing to run: the suite and filters select no case");
        rc = PBH_EINPUT;
    }
    if (rc != PBH_OK)
        pbh_plan_free(plan);
    return rc;
}
