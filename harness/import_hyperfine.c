/*
 * import_hyperfine.c - a hyperfine --export-json file as a run.
 *
 * Mapping: one case per result, named by its "command" (hyperfine puts the --command-name there when one
 * was given, which is how scripts/hyperfine-suite names its rows "hyperfine/seed/fork" and so on); one
 * sample per entry of "times" (wall seconds of one whole-process run). hyperfine gives user and system
 * CPU only as means, so every sample carries those means. A non-zero exit code in any run makes the case
 * "failed" (hyperfine only records them with --ignore-failure). Parameters from a --parameter-scan are
 * kept in the case's params as "k=v,k=v". The context is this machine's, since hyperfine records none.
 */
#include "import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* snprintf truncates at a byte count: drop a multi-byte UTF-8 character left incomplete at the end, so that
 * the string stays valid UTF-8 (the JSON export and the store need it; the input, from jansson, is valid). */
static void trim_partial_utf8(char *s) {
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--; /* continuation bytes */
    if (i == 0 || !((unsigned char)s[i - 1] & 0x80)) return;         /* ASCII: nothing cut */
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (i - 1) < need) s[i - 1] = '\0';
}

/* "scenario/backend" hints in a command name such as "hyperfine/seed/fork" */
static void name_hints(pbh_case *c) {
    const char *name = c->name;
    if (strncmp(name, "hyperfine/", 10) != 0) return;
    const char *scen = name + 10, *slash = strchr(scen, '/');
    if (!slash) return;
    char buf[128];
    snprintf(buf, sizeof buf, "%.*s", (int)(slash - scen), scen);
    trim_partial_utf8(buf);
    pbh_set_str(&c->scenario, buf);
    const char *back = slash + 1, *end = strchr(back, '/');
    snprintf(buf, sizeof buf, "%.*s", end ? (int)(end - back) : (int)strlen(back), back);
    trim_partial_utf8(buf);
    pbh_set_str(&c->backend, buf);
}

int pbh_import_hyperfine(json_t *doc, const pbh_context *here, pbh_run **out, char *err, size_t errlen) {
    *out = NULL;
    json_t *results = json_object_get(doc, "results");
    if (!json_is_object(doc) || !json_is_array(results) || json_array_size(results) == 0) {
        snprintf(err, errlen, "not a hyperfine JSON export (no \"results\" array)");
        return PBH_EINPUT;
    }
    pbh_run *run = pbh_import_new_run(PBH_SOURCE_HYPERFINE, here);
    if (!run) return PBH_ENOMEM;

    for (size_t i = 0; i < json_array_size(results); i++) {
        json_t *r = json_array_get(results, i);
        json_t *cmd = json_object_get(r, "command"), *times = json_object_get(r, "times");
        if (!json_is_object(r) || !json_is_string(cmd) || !json_is_array(times)) {
            snprintf(err, errlen, "results[%zu]: \"command\" or \"times\" missing", i);
            pbh_run_free(run);
            return PBH_EINPUT;
        }
        pbh_case *pc = pbh_run_add_case(run);
        if (!pc) {
            pbh_run_free(run);
            return PBH_ENOMEM;
        }
        pbh_set_str(&pc->name, json_string_value(cmd));
        pbh_set_str(&pc->status, PBH_STATUS_OK);
        pbh_set_str(&pc->measures, "one whole-process run (hyperfine)");
        name_hints(pc);
        json_t *params = json_object_get(r, "parameters");
        if (json_is_object(params) && json_object_size(params)) {
            char buf[256] = "";
            const char *key;
            json_t *val;
            json_object_foreach(params, key, val) {
                if (!json_is_string(val)) continue;
                size_t l = strlen(buf);
                snprintf(buf + l, sizeof buf - l, "%s%s=%s", l ? "," : "", key, json_string_value(val));
            }
            trim_partial_utf8(buf);
            pbh_set_str(&pc->params, buf);
        }
        json_t *user = json_object_get(r, "user"), *sys = json_object_get(r, "system");
        for (size_t k = 0; k < json_array_size(times); k++) {
            json_t *t = json_array_get(times, k);
            if (!json_is_number(t) || !isfinite(json_number_value(t)) || json_number_value(t) < 0) {
                snprintf(err, errlen, "results[%zu].times[%zu] is not a time in seconds", i, k);
                pbh_run_free(run);
                return PBH_EINPUT;
            }
            pbh_sample *s = pbh_case_add_sample(pc);
            if (!s) {
                pbh_run_free(run);
                return PBH_ENOMEM;
            }
            s->rep = (int)k;
            s->iterations = 1;
            s->wall_s = json_number_value(t);
            s->user_s = json_is_number(user) ? json_number_value(user) : 0;
            s->sys_s = json_is_number(sys) ? json_number_value(sys) : 0;
        }
        pc->reps = (int)pc->nsamples;
        json_t *codes = json_object_get(r, "exit_codes");
        for (size_t k = 0; json_is_array(codes) && k < json_array_size(codes); k++) {
            json_t *code = json_array_get(codes, k);
            if (json_is_integer(code) && json_integer_value(code) != 0) {
                char why[64];
                snprintf(why, sizeof why, "exit code %lld in run %zu", (long long)json_integer_value(code), k + 1);
                pbh_set_str(&pc->status, PBH_STATUS_FAILED);
                pbh_set_str(&pc->reason, why);
                pbh_set_str(&run->status, "failed");
                break;
            }
        }
    }
    *out = run;
    return 0;
}
