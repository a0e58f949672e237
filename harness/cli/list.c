/*
 * list.c - `poolbench list [scenarios|backends|suites|floors] [--format table|json]`: what can be
 * run, straight from the registries (so the list can never disagree with what `run` accepts).
 */
#include "cli.h"
#include "format.h"
#include "scenario.h"
#include "suites.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: poolbench list [scenarios|backends|suites|floors] [--format table|json]\n"
    "Lists the scenarios (with their parameters), backends (with capabilities), suites and floor probes.\n";

static void caps_text(int caps, char *buf, size_t len) {
    snprintf(buf, len, "%s%s%s%s", (caps & PB_CAP_ASYNC) ? "async " : "",
             (caps & PB_CAP_CRASH_ISOLATION) ? "crash-isolation " : "", (caps & PB_CAP_TIMEOUT) ? "timeout " : "",
             (caps & PB_CAP_RECYCLE) ? "recycle " : "");
    size_t n = strlen(buf);
    if (n && buf[n - 1] == ' ')
        buf[n - 1] = '\0';
}

static json_t *caps_json(int caps) {
    json_t *a = json_array();
    if (caps & PB_CAP_ASYNC)
        json_array_append_new(a, json_string("async"));
    if (caps & PB_CAP_CRASH_ISOLATION)
        json_array_append_new(a, json_string("crash-isolation"));
    if (caps & PB_CAP_TIMEOUT)
        json_array_append_new(a, json_string("timeout"));
    if (caps & PB_CAP_RECYCLE)
        json_array_append_new(a, json_string("recycle"));
    return a;
}

static void text_scenarios(FILE *f) {
    fprintf(f, "scenarios:\n");
    for (size_t i = 0; i < pb_scenario_count(); i++) {
        const pb_scenario *s = pb_scenario_at(i);
        fprintf(f, "  %-10s %s\n", s->name, s->description);
        for (size_t j = 0; j < s->nparams; j++) {
            const pb_param_def *d = &s->params[j];
            fprintf(f, "      %-10s %-7s default %-8.10g [%.10g, %.10g]  %s\n", d->name, d->type == PB_PARAM_INT ? "int" : "number",
                    d->def, d->min, d->max, d->help);
        }
        if (s->needs) {
            char caps[96];
            caps_text(s->needs, caps, sizeof caps);
            fprintf(f, "      needs: %s\n", caps);
        }
    }
}

static void text_backends(FILE *f) {
    fprintf(f, "backends (default %s):\n", pb_backend_default());
    for (size_t i = 0; i < pb_backend_count(); i++) {
        const char *n = pb_backend_name_at(i);
        char caps[96];
        caps_text(pb_backend_caps(n), caps, sizeof caps);
        fprintf(f, "  %-10s %s [%s]\n", n, pb_backend_description(n) ? pb_backend_description(n) : "", caps);
    }
    for (size_t i = 0; i < pb_backend_not_built_count(); i++) {
        const char *n = pb_backend_not_built_at(i);
        fprintf(f, "  %-10s not built in (%s)\n", n, pb_backend_not_built_reason(n));
    }
}

static void text_suites(FILE *f) {
    fprintf(f, "suites:\n");
    for (size_t i = 0; i < pbh_suite_count(); i++) {
        const pbh_suite *s = pbh_suite_at(i);
        fprintf(f, "  %-10s %s (%s)\n", s->name, s->description, s->duration);
    }
}

static void text_floors(FILE *f) {
    fprintf(f, "floor probes:\n");
    for (size_t i = 0; i < pb_floor_count(); i++) {
        const pb_floor *fl = pb_floor_at(i);
        fprintf(f, "  %-20s %s\n", fl->name, fl->description);
    }
}

static json_t *json_all(int what_s, int what_b, int what_su, int what_f) {
    json_t *doc = json_object();
    if (what_s) {
        json_t *arr = json_array();
        for (size_t i = 0; i < pb_scenario_count(); i++) {
            const pb_scenario *s = pb_scenario_at(i);
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(s->name));
            json_object_set_new(o, "description", json_string(s->description));
            json_object_set_new(o, "task", json_string(s->task ? s->task : ""));
            json_object_set_new(o, "floor", s->floor ? json_string(s->floor) : json_null());
            json_object_set_new(o, "measures", s->measures ? json_string(s->measures) : json_null());
            json_object_set_new(o, "needs", caps_json(s->needs));
            json_t *ps = json_array();
            for (size_t j = 0; j < s->nparams; j++) {
                const pb_param_def *d = &s->params[j];
                json_t *p = json_object();
                json_object_set_new(p, "name", json_string(d->name));
                json_object_set_new(p, "type", json_string(d->type == PB_PARAM_INT ? "int" : "double"));
                json_object_set_new(p, "default", json_real(d->def));
                json_object_set_new(p, "min", json_real(d->min));
                json_object_set_new(p, "max", json_real(d->max));
                json_object_set_new(p, "help", json_string(d->help ? d->help : ""));
                json_array_append_new(ps, p);
            }
            json_object_set_new(o, "params", ps);
            json_array_append_new(arr, o);
        }
        json_object_set_new(doc, "scenarios", arr);
    }
    if (what_b) {
        json_t *arr = json_array();
        for (size_t i = 0; i < pb_backend_count(); i++) {
            const char *n = pb_backend_name_at(i);
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(n));
            json_object_set_new(o, "description", json_string(pb_backend_description(n) ? pb_backend_description(n) : ""));
            json_object_set_new(o, "caps", caps_json(pb_backend_caps(n)));
            json_object_set_new(o, "default", json_boolean(strcmp(n, pb_backend_default()) == 0));
            json_array_append_new(arr, o);
        }
        json_object_set_new(doc, "backends", arr);
        json_t *missing = json_array();
        for (size_t i = 0; i < pb_backend_not_built_count(); i++) {
            const char *n = pb_backend_not_built_at(i);
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(n));
            json_object_set_new(o, "reason", json_string(pb_backend_not_built_reason(n)));
            json_array_append_new(missing, o);
        }
        json_object_set_new(doc, "backends_not_built", missing);
    }
    if (what_su) {
        json_t *arr = json_array();
        for (size_t i = 0; i < pbh_suite_count(); i++) {
            const pbh_suite *s = pbh_suite_at(i);
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(s->name));
            json_object_set_new(o, "description", json_string(s->description));
            json_object_set_new(o, "duration", json_string(s->duration));
            json_object_set_new(o, "reps", json_integer(s->reps));
            json_object_set_new(o, "pair_reps", json_integer(pbh_suite_pair_reps(s)));
            json_object_set_new(o, "warmup", json_integer(s->warmup));
            json_object_set_new(o, "case_timeout_s", json_real(s->case_timeout_s));
            json_array_append_new(arr, o);
        }
        json_object_set_new(doc, "suites", arr);
    }
    if (what_f) {
        json_t *arr = json_array();
        for (size_t i = 0; i < pb_floor_count(); i++) {
            const pb_floor *fl = pb_floor_at(i);
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(fl->name));
            json_object_set_new(o, "description", json_string(fl->description));
            json_array_append_new(arr, o);
        }
        json_object_set_new(doc, "floors", arr);
    }
    return doc;
}

int pbh_cmd_list(int argc, char **argv) {
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0}};
    const char *format = "table";
    int c;
    while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return PBH_EXIT_OK;
        default:
            return pbh_cli_usage_error("list", "bad arguments to list");
        }
    }
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
        return pbh_cli_usage_error("list", "unknown --format '%s' (table or json)", format);
    int s = 1, b = 1, su = 1, f = 1;
    if (optind < argc) {
        const char *what = argv[optind];
        s = strcmp(what, "scenarios") == 0;
        b = strcmp(what, "backends") == 0;
        su = strcmp(what, "suites") == 0;
        f = strcmp(what, "floors") == 0;
        if (!(s || b || su || f))
            return pbh_cli_usage_error("list", "unknown list '%s' (scenarios, backends, suites or floors)", what);
        if (optind + 1 < argc)
            return pbh_cli_usage_error("list", "unexpected argument '%s'", argv[optind + 1]);
    }
    if (strcmp(format, "json") == 0) {
        json_t *doc = json_all(s, b, su, f);
        char *text = pbh_json_text_release(doc);
        int rc = pbh_cli_write_output(NULL, text);
        free(text);
        return rc;
    }
    int first = 1;
    if (s) {
        text_scenarios(stdout);
        first = 0;
    }
    if (b) {
        if (!first)
            fputc('\n', stdout);
        text_backends(stdout);
        first = 0;
    }
    if (su) {
        if (!first)
            fputc('\n', stdout);
        text_suites(stdout);
        first = 0;
    }
    if (f) {
        if (!first)
            fputc('\n', stdout);
        text_floors(stdout);
    }
    return fflush(stdout) == 0 ? PBH_EXIT_OK : PBH_EXIT_FAILED;
}
