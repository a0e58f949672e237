/*
 * params.c - typed scenario parameters: defaults, "name=value" parsing with range checks, formatting.
 *
 * Every rejection is PB_EINVAL with a message that names the scenario, the parameter and what it accepts,
 * because the harness shows that message verbatim and exits 2: the user must be able to fix the command
 * line from the message alone. Values are held as doubles (an int parameter holds an exact integer, at
 * most 2^53 in magnitude, which every range here is far below).
 */
#include "scenario_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pb_params_defaults(const pb_scenario *s, pb_params *p) {
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < s->nparams && i < PB_MAX_PARAMS; i++)
        p->v[i] = s->params[i].def;
}

/* "items, ms" (or "none"). */
static void accepted_names(const pb_scenario *s, char *buf, size_t len) {
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->nparams && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", s->params[i].name);
    if (s->nparams == 0)
        snprintf(buf, len, "none");
}

static void range_text(const pb_param_def *d, char *buf, size_t len) {
    if (d->type == PB_PARAM_INT)
        snprintf(buf, len, "an integer in [%.0f, %.0f]", d->min, d->max);
    else
        snprintf(buf, len, "a number in [%g, %g]", d->min, d->max);
}

static int parse_value(const pb_param_def *d, const char *text, double *out) {
    const char *q = text;
    while (*q == ' ' || *q == '\t')
        q++;
    if (*q == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    double v;
    if (d->type == PB_PARAM_INT) {
        long long ll = strtoll(q, &end, 10);
        if (errno == ERANGE)
            return -1;
        v = (double)ll;
    } else {
        v = strtod(q, &end);
        /* strtod accepts "nan" and "inf": neither is a usable parameter value. */
        if (errno == ERANGE || !isfinite(v))
            return -1;
    }
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end != '\0' || v < d->min || v > d->max)
        return -1;
    *out = v;
    return 0;
}

int pb_params_set(const pb_scenario *s, pb_params *p, const char *assignment, char *err, size_t errlen) {
    char names[256];
    if (!s || !p || !assignment) {
        pbs__fail(err, errlen, "no scenario, params or assignment");
        return PB_EINVAL;
    }
    accepted_names(s, names, sizeof names);
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        pbs__fail(err, errlen, "%s: malformed parameter '%s' (expected name=value; accepts: %s)", s->name,
                  assignment, names);
        return PB_EINVAL;
    }
    size_t nlen = (size_t)(eq - assignment);
    for (size_t i = 0; i < s->nparams; i++) {
        const pb_param_def *d = &s->params[i];
        if (strlen(d->name) != nlen || strncmp(d->name, assignment, nlen) != 0)
            continue;
        double v;
        if (parse_value(d, eq + 1, &v) != 0) {
            char range[96];
            range_text(d, range, sizeof range);
            pbs__fail(err, errlen, "%s: %s must be %s, got '%s'", s->name, d->name, range, eq + 1);
            return PB_EINVAL;
        }
        p->v[i] = v;
        return 0;
    }
    pbs__fail(err, errlen, "%s: unknown parameter '%.*s' (accepts: %s)", s->name, (int)nlen, assignment, names);
    return PB_EINVAL;
}

double pb_param(const pb_scenario *s, const pb_params *p, const char *name) {
    for (size_t i = 0; s && p && name && i < s->nparams; i++)
        if (strcmp(s->params[i].name, name) == 0)
            return p->v[i];
    return NAN;
}

/* Integers exactly; numbers in the short %g form when it round-trips, else %.17g, so that the case key
 * never merges two different values. */
static void format_value(const pb_param_def *d, double v, char *buf, size_t len) {
    if (d->type == PB_PARAM_INT) {
        snprintf(buf, len, "%.0f", v);
        return;
    }
    snprintf(buf, len, "%g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, len, "%.17g", v);
}

void pb_params_format(const pb_scenario *s, const pb_params *p, char *buf, size_t len) {
    size_t off = 0;
    if (!len)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < s->nparams && off < len; i++) {
        char v[40];
        format_value(&s->params[i], p->v[i], v, sizeof v);
        off += (size_t)snprintf(buf + off, len - off, "%s%s=%s", i ? "," : "", s->params[i].name, v);
    }
}

void pb_param_describe(const pb_param_def *d, char *buf, size_t len) {
    char def[40], range[64];
    if (d->type == PB_PARAM_INT) {
        snprintf(def, sizeof def, "%.0f", d->def);
        snprintf(range, sizeof range, "[%.0f, %.0f]", d->min, d->max);
    } else {
        snprintf(def, sizeof def, "%g", d->def);
        snprintf(range, sizeof range, "[%g, %g]", d->min, d->max);
    }
    snprintf(buf, len, "%-10s %-6s default %-8s %-18s %s", d->name, d->type == PB_PARAM_INT ? "int" : "number",
             def, range, d->help);
}
