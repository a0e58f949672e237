/*
 * fuzz_import.c - libFuzzer target for one importer, chosen at compile time (tests/fuzz/CMakeLists.txt
 * builds it three times): fuzz_import_gbench (pbh_import_gbench: Google Benchmark JSON, with GB's bare
 * NaN / Infinity), fuzz_import_hyperfine (pbh_import_hyperfine: results, times, user/system means, exit
 * codes, parameters, "hyperfine/scenario/backend" name hints) and fuzz_import_json (pbh_import_poolbench:
 * poolbench's own run export, e.g. results/baseline.json). The bytes are read with
 * pbh_json_loads_lenient, the document is given to the importer, and everything is freed.
 *
 * Beyond "no crash, no leak, no UB" (ASan, LeakSanitizer and UBSan abort the run), the target holds the
 * importer to its contract: a rejection is PBH_EINPUT with a message and no run; an accepted run has its
 * source, cases (a run export may have none) each with a name and a status, and every sample a finite
 * wall time >= 0. And an accepted run must survive poolbench's own export: pbh_run_to_json, then
 * pbh_import_poolbench of that text, gives back the same cases, statuses and samples (what
 * `poolbench import` then `export --format json` relies on).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "import.h"

/* Set by CMake per target: the importer, the source it must stamp, whether a run needs a case. */
#ifndef FUZZ_IMPORTER
#error "define FUZZ_IMPORTER (pbh_import_gbench, pbh_import_hyperfine or pbh_import_poolbench)"
#endif

#define CHECK(c)                                                                                  \
    do {                                                                                          \
        if (!(c)) {                                                                               \
            fprintf(stderr, "fuzz_import.c:%d: invariant broken: %s\n", __LINE__, #c);              \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

static const pbh_context here = {
    .started_at = "2026-11-29T00:00:00Z", .started_unix = 1795910400.0, .git_commit = "0123456789abcdef",
    .git_dirty = 0, .host = "fuzzhost", .cpu_model = "fuzz cpu", .cores = 2, .kernel = "Linux fuzz",
    .compiler = "clang", .cflags = "-O1", .build_type = "fuzz", .command_line = "poolbench import",
    .governor = NULL, .version = "0.1.0", .extra_json = NULL};

static int streq(const char *a, const char *b) { return (!a || !b) ? a == b : strcmp(a, b) == 0; }

static void check_run(const pbh_run *run) {
    CHECK(run->status && run->source);
    CHECK(run->ncases > 0 || !FUZZ_NEEDS_CASES);
    for (size_t i = 0; i < run->ncases; i++) {
        const pbh_case *c = &run->cases[i];
        CHECK(c->name && c->status);
        CHECK(*c->name || !FUZZ_NONEMPTY_NAMES);
        for (size_t k = 0; k < c->nsamples; k++)
            CHECK(isfinite(c->samples[k].wall_s) && c->samples[k].wall_s >= 0);
    }
}

/* Export as poolbench JSON and read it back: the same run. */
static void check_round_trip(const pbh_run *run) {
    json_t *doc = pbh_run_to_json(run);
    CHECK(doc != NULL);
    char *text = pbh_json_text(doc);
    json_decref(doc);
    CHECK(text != NULL);
    char err[400];
    json_t *back = pbh_json_loads_lenient(text, strlen(text), err, sizeof err);
    CHECK(back != NULL);
    pbh_run *again = NULL;
    int rc = pbh_import_poolbench(back, &here, &again, err, sizeof err);
    if (rc != 0) fprintf(stderr, "re-import failed: %s\n", err);
    CHECK(rc == 0 && again != NULL);
    CHECK(again->ncases == run->ncases && streq(again->status, run->status) && streq(again->source, run->source));
    CHECK(streq(again->ctx.host, run->ctx.host));
    for (size_t i = 0; i < run->ncases; i++) {
        const pbh_case *a = &run->cases[i], *b = &again->cases[i];
        CHECK(streq(a->name, b->name) && streq(a->status, b->status) && streq(a->reason, b->reason));
        CHECK(streq(a->scenario, b->scenario) && streq(a->backend, b->backend) && streq(a->params, b->params));
        CHECK(a->nsamples == b->nsamples);
        for (size_t k = 0; k < a->nsamples; k++) {
            CHECK(a->samples[k].wall_s == b->samples[k].wall_s && a->samples[k].rep == b->samples[k].rep);
            if (llabs(a->samples[k].iterations) < (1LL << 53))
                CHECK(a->samples[k].iterations == b->samples[k].iterations);
        }
    }
    pbh_run_free(again);
    json_decref(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[400] = "";
    json_t *doc = pbh_json_loads_lenient((const char *)data, size, err, sizeof err);
    if (!doc) {
        CHECK(err[0] != '\0');
        return 0;
    }
    pbh_run *run = (pbh_run *)1;
    err[0] = '\0';
    int rc = FUZZ_IMPORTER(doc, &here, &run, err, sizeof err);
    if (rc == 0) {
        CHECK(run != NULL);
#ifdef FUZZ_SOURCE
        CHECK(streq(run->source, FUZZ_SOURCE));
#endif
        check_run(run);
        check_round_trip(run);
        pbh_run_free(run);
    } else {
        CHECK(rc == PBH_EINPUT && run == NULL && err[0] != '\0');
    }
    json_decref(doc);
    return 0;
}
