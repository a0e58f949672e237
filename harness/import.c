/*
 * import.c - reading another tool's result file: the size-checked file read, the lenient JSON reader
 * (bare NaN / Infinity as null) and the dispatch to one importer per format (import_gbench.c,
 * import_hyperfine.c, import_json.c).
 */
#include "import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Copies text with every bare NaN, Infinity or -Infinity (and the lower-case nan / inf spellings) outside
 * a string replaced by null. Sets *out_len. */
static char *neutralize_non_finite(const char *text, size_t len, size_t *out_len) {
    char *out = malloc(2 * len + 1); /* "nan" -> "null" grows by one byte at most per 3 */
    if (!out) return NULL;
    size_t o = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len) out[o++] = text[++i];
            else if (c == '"') in_string = 0;
            continue;
        }
        if (c == '"') {
            in_string = 1;
            out[o++] = c;
            continue;
        }
        static const char *const tokens[] = {"-Infinity", "Infinity", "NaN", "-nan", "nan", "-inf", "inf"};
        size_t matched = 0;
        for (size_t t = 0; t < sizeof tokens / sizeof tokens[0] && !matched; t++) {
            size_t tl = strlen(tokens[t]);
            if (i + tl <= len && memcmp(text + i, tokens[t], tl) == 0) matched = tl;
        }
        if (matched) {
            memcpy(out + o, "null", 4);
            o += 4;
            i += matched - 1;
        } else {
            out[o++] = c;
        }
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

json_t *pbh_json_loads_lenient(const char *text, size_t len, char *err, size_t errlen) {
    size_t clean_len = 0;
    char *clean = neutralize_non_finite(text, len, &clean_len);
    if (!clean) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    json_error_t je;
    json_t *doc = json_loadb(clean, clean_len, JSON_REJECT_DUPLICATES, &je);
    free(clean);
    if (!doc) snprintf(err, errlen, "not valid JSON at line %d, column %d: %s", je.line, je.column, je.text);
    return doc;
}

pbh_run *pbh_import_new_run(const char *source, const pbh_context *here) {
    pbh_run *run = pbh_run_new();
    if (!run) return NULL;
    pbh_set_str(&run->source, source);
    pbh_set_str(&run->status, "ok");
    pbh_context *c = &run->ctx;
    pbh_set_str(&c->started_at, here->started_at);
    c->started_unix = here->started_unix;
    pbh_set_str(&c->git_commit, here->git_commit);
    c->git_dirty = here->git_dirty;
    pbh_set_str(&c->host, here->host);
    pbh_set_str(&c->machine, here->machine);
    pbh_set_str(&c->cpu_model, here->cpu_model);
    c->cores = here->cores;
    pbh_set_str(&c->kernel, here->kernel);
    pbh_set_str(&c->compiler, here->compiler);
    pbh_set_str(&c->cflags, here->cflags);
    pbh_set_str(&c->build_type, here->build_type);
    pbh_set_str(&c->command_line, here->command_line);
    pbh_set_str(&c->governor, here->governor);
    pbh_set_str(&c->version, here->version);
    return run;
}

int pbh_import_file(const char *format, const char *path, const pbh_context *ctx_here, pbh_run **out, char *err,
                    size_t errlen) {
    int (*importer)(json_t *, const pbh_context *, pbh_run **, char *, size_t);
    if (format && strcmp(format, "gbench") == 0) importer = pbh_import_gbench;
    else if (format && strcmp(format, "hyperfine") == 0) importer = pbh_import_hyperfine;
    else if (format && strcmp(format, "json") == 0) importer = pbh_import_poolbench;
    else {
        snprintf(err, errlen, "unknown import format '%s' (accepts: gbench, hyperfine, json)", format ? format : "");
        return PBH_EINPUT;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return PBH_EINPUT;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > PBH_IMPORT_MAX_BYTES) {
        snprintf(err, errlen, "%s: not a regular file of at most %u MiB", path, PBH_IMPORT_MAX_BYTES >> 20);
        fclose(f);
        return PBH_EINPUT;
    }
    size_t len = (size_t)sb.st_size;
    char *text = malloc(len + 1);
    if (!text) {
        fclose(f);
        return PBH_ENOMEM;
    }
    size_t got = fread(text, 1, len, f);
    fclose(f);
    if (got != len) {
        free(text);
        snprintf(err, errlen, "cannot read %s: short read", path);
        return PBH_EINPUT;
    }
    char jerr[300];
    json_t *doc = pbh_json_loads_lenient(text, len, jerr, sizeof jerr);
    free(text);
    if (!doc) {
        snprintf(err, errlen, "%s: %s", path, jerr);
        return PBH_EINPUT;
    }
    char ierr[400];
    int rc = importer(doc, ctx_here, out, ierr, sizeof ierr);
    json_decref(doc);
    if (rc) snprintf(err, errlen, "%s: %s", path, ierr);
    return rc;
}
