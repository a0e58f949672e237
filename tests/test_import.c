/*
 * test_import.c - Google Benchmark and hyperfine files become runs: real files produced by each tool
 * (tests/fixtures/import/), among them a Google Benchmark file with bare NaN and Infinity tokens and an
 * errored benchmark; malformed files are refused with a message; an imported run survives a store round
 * trip like a native one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "import.h"
#include "store.h"
#include "testutil.h"

static char fixture[1024];
static const char *fixture_path(const char *name) {
    const char *src = getenv("POOLBENCH_SOURCE_DIR");
    snprintf(fixture, sizeof fixture, "%s/tests/fixtures/import/%s", src ? src : ".", name);
    return fixture;
}

static pbh_context here;

static const pbh_case *find(const pbh_run *run, const char *name) {
    for (size_t i = 0; i < run->ncases; i++)
        if (strcmp(run->cases[i].name, name) == 0) return &run->cases[i];
    fail_msg("no case %s", name);
    return NULL;
}

static void test_gbench_file_with_nan(void **state) {
    pbh_run *run;
    char err[512];
    int rc = pbh_import_file("gbench", fixture_path("gbench_nan_error.json"), &here, &run, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(run->source, PBH_SOURCE_GBENCH);
    assert_string_equal(run->ctx.host, "vm");
    assert_int_equal(run->ctx.cores, 2);
    assert_non_null(strstr(run->ctx.extra_json, "\"mhz_per_cpu\""));
    assert_int_equal(run->ncases, 2);
    const pbh_case *x = find(run, "BM_x/8/repeats:3");
    assert_string_equal(x->status, PBH_STATUS_OK);
    assert_int_equal(x->nsamples, 3); /* the repetitions; the aggregates are not samples */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(x->samples[i].rep, (int)i);
        assert_true(x->samples[i].iterations == 23949928);
    }
    /* per-iteration time is real_time in ns, back out of the stored total */
    assert_true(fabs(x->samples[0].wall_s / 23949928 - 8.4408604485464911e-10) < 1e-18);
    const pbh_case *e = find(run, "BM_err");
    assert_string_equal(e->status, PBH_STATUS_FAILED);
    assert_string_equal(e->reason, "boom");
    assert_string_equal(run->status, "failed");

    /* a store round trip keeps it */
    char path[] = "/tmp/pb-import-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    pbh_store *st;
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), 0);
    assert_int_equal(pbh_store_insert_run(st, run, err, sizeof err), 0);
    pbh_run *back;
    assert_int_equal(pbh_store_load_run(st, run->id, &back, err, sizeof err), 0);
    assert_string_equal(back->source, PBH_SOURCE_GBENCH);
    assert_int_equal(find(back, "BM_x/8/repeats:3")->nsamples, 3);
    assert_true(find(back, "BM_x/8/repeats:3")->samples[2].wall_s == x->samples[2].wall_s);
    pbh_run_free(back);
    pbh_store_close(st);
    char side[600];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    pbh_run_free(run);
}

/* poolbench-micro's own output (3 repetitions + aggregates, NaN in the cv of all-zero counters) */
static void test_gbench_poolbench_micro_file(void **state) {
    pbh_run *run;
    char err[512];
    int rc = pbh_import_file("gbench", fixture_path("gbench_poolbench_micro.json"), &here, &run, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(run->ncases, 28);
    for (size_t i = 0; i < run->ncases; i++) {
        assert_string_equal(run->cases[i].status, PBH_STATUS_OK);
        assert_int_equal(run->cases[i].nsamples, 3);
    }
    const pbh_case *c = find(run, "submit_wait/threads/real_time");
    assert_true(c->samples[0].wall_s > 0 && c->samples[0].iterations > 1);
    pbh_run_free(run);
}

static void test_hyperfine_file(void **state) {
    pbh_run *run;
    char err[512];
    int rc = pbh_import_file("hyperfine", fixture_path("hyperfine_exit_codes.json"), &here, &run, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(run->source, PBH_SOURCE_HYPERFINE);
    assert_int_equal(run->ncases, 2);
    const pbh_case *s = find(run, "sleep 0.01");
    assert_string_equal(s->status, PBH_STATUS_OK);
    assert_int_equal(s->nsamples, 3);
    assert_true(s->samples[1].wall_s == 0.01086683924);
    const pbh_case *f = find(run, "false");
    assert_string_equal(f->status, PBH_STATUS_FAILED);
    assert_non_null(strstr(f->reason, "exit code 1"));
    pbh_run_free(run);
}

static void test_lenient_json(void **state) {
    char err[256];
    const char *text = "{\"a\": NaN, \"b\": -Infinity, \"c\": \"NaN stays a string\", \"d\": [Infinity, 1.5]}";
    json_t *doc = pbh_json_loads_lenient(text, strlen(text), err, sizeof err);
    assert_non_null(doc);
    assert_true(json_is_null(json_object_get(doc, "a")));
    assert_true(json_is_null(json_object_get(doc, "b")));
    assert_string_equal(json_string_value(json_object_get(doc, "c")), "NaN stays a string");
    assert_true(json_real_value(json_array_get(json_object_get(doc, "d"), 1)) == 1.5);
    json_decref(doc);
    assert_null(pbh_json_loads_lenient("{\"a\": ", 6, err, sizeof err));
    assert_non_null(strstr(err, "line 1"));
}

static void test_malformed_files_refused(void **state) {
    static const struct {
        const char *format, *text, *expect;
    } cases[] = {
        {"gbench", "{\"benchmarks\": [", "not valid JSON"},
        {"gbench", "{\"results\": []}", "benchmarks"},
        {"gbench", "{\"benchmarks\": [{\"name\": \"x\", \"run_type\": \"iteration\", \"iterations\": 3}]}", "real_time"},
        {"gbench", "{\"benchmarks\": [{\"name\": \"x\", \"real_time\": 1, \"time_unit\": \"fortnights\"}]}", "time_unit"},
        {"gbench", "{\"benchmarks\": []}", "no benchmarks"},
        {"hyperfine", "{\"benchmarks\": []}", "results"},
        {"hyperfine", "{\"results\": [{\"command\": \"x\", \"times\": [0.1, \"slow\"]}]}", "times[1]"},
        {"hyperfine", "[1, 2, 3]", "results"},
        {"csv", "{}", "unknown import format"},
        {"json", "{\"format\": \"poolbench-run\", \"version\": 9, \"cases\": []}", "version 9"},
        {"json", "{\"format\": \"poolbench-run\", \"version\": 1, \"cases\": [{\"name\": \"x\"}]}", "cases[0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[] = "/tmp/pb-bad-import-XXXXXX";
        int fd = mkstemp(path);
        assert_true(write(fd, cases[i].text, strlen(cases[i].text)) == (ssize_t)strlen(cases[i].text));
        close(fd);
        pbh_run *run = NULL;
        char err[512] = "";
        assert_int_equal(pbh_import_file(cases[i].format, path, &here, &run, err, sizeof err), PBH_EINPUT);
        assert_null(run);
        if (!strstr(err, cases[i].expect)) fail_msg("case %zu: message '%s' lacks '%s'", i, err, cases[i].expect);
        unlink(path);
    }
    pbh_run *run = NULL;
    char err[512];
    assert_int_equal(pbh_import_file("gbench", "/nonexistent/file.json", &here, &run, err, sizeof err), PBH_EINPUT);
    assert_non_null(strstr(err, "/nonexistent/file.json"));
}

/* Google Benchmark writes repetition_index only for benchmarks run with repetitions: a file that mixes
 * them (here BM_mix has two repeated entries and a plain one, in an order that collides with index 0)
 * is read, with every entry kept as its own sample and a unique repetition number per case. */
static void test_gbench_mixed_repetition_index(void **state) {
    pbh_run *run;
    char err[512];
    int rc = pbh_import_file("gbench", fixture_path("gbench_mixed_repetitions.json"), &here, &run, err, sizeof err);
    if (rc) fail_msg("%s", err);
    const pbh_case *mix = find(run, "BM_mix");
    assert_int_equal(mix->nsamples, 3);
    for (size_t i = 0; i < mix->nsamples; i++)
        for (size_t j = i + 1; j < mix->nsamples; j++) assert_int_not_equal(mix->samples[i].rep, mix->samples[j].rep);
    assert_true(fabs(mix->samples[0].wall_s - 2e-9 * 100) < 1e-15); /* order kept: the plain entry first */
    const pbh_case *rep = find(run, "BM_rep");
    assert_int_equal(rep->nsamples, 2);
    assert_int_equal(rep->samples[0].rep, 0);
    assert_int_equal(rep->samples[1].rep, 1);
    /* ... and it stores (the duplicate key used to fail here) */
    char path[] = "/tmp/pb-mixed-rep-XXXXXX.db";
    int fd = mkstemps(path, 3);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    pbh_store *st;
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    rc = pbh_store_insert_run(st, run, err, sizeof err);
    if (rc) fail_msg("saving the imported run: %s", err);
    pbh_store_close(st);
    tu_unlink_store(path);
    pbh_run_free(run);
}

static void test_own_json_round_trip(void **state) {
    pbh_run *run = pbh_run_new();
    pbh_set_str(&run->source, PBH_SOURCE_NATIVE);
    pbh_set_str(&run->status, "ok");
    pbh_set_str(&run->label, "baseline");
    pbh_set_str(&run->ctx.git_commit, "0123456789abcdef0123456789abcdef01234567");
    run->ctx.git_dirty = 0;
    run->ctx.cores = 2;
    run->id = 7;
    assert_non_null(pbh_run_add_floor(run, "pipe_rtt", 2.1e-5, 1000));
    pbh_case *c = pbh_run_add_case(run);
    pbh_set_str(&c->name, "sleep/fork/w4/items=4,ms=10");
    pbh_set_str(&c->scenario, "sleep");
    pbh_set_str(&c->backend, "fork");
    pbh_set_str(&c->params, "items=4,ms=10");
    pbh_set_str(&c->status, PBH_STATUS_OK);
    pbh_set_str(&c->floor, "pipe_rtt");
    c->workers = 4;
    for (int i = 0; i < 5; i++) {
        pbh_sample *s = pbh_case_add_sample(c);
        s->rep = i;
        s->wall_s = 0.0101 + i * 1e-5;
        s->user_s = 0.001;
        s->ideal_s = 0.01;
        s->tasks = 4;
        s->iterations = 1;
        s->peak_rss_kb = 4096;
    }
    char *text = pbh_format_run_json(run);
    char path[] = "/tmp/pb-own-json-XXXXXX";
    int fd = mkstemp(path);
    assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    free(text);
    pbh_run *back;
    char err[512];
    int rc = pbh_import_file("json", path, &here, &back, err, sizeof err);
    if (rc) fail_msg("%s", err);
    unlink(path);
    assert_string_equal(back->label, "baseline");
    assert_string_equal(back->ctx.git_commit, run->ctx.git_commit);
    assert_int_equal(back->ctx.git_dirty, 0);
    assert_int_equal(back->nfloors, 1);
    assert_true(back->floors[0].seconds == 2.1e-5);
    assert_int_equal(back->ncases, 1);
    assert_string_equal(back->cases[0].name, c->name);
    assert_int_equal(back->cases[0].workers, 4);
    assert_int_equal(back->cases[0].nsamples, 5);
    for (int i = 0; i < 5; i++) assert_true(back->cases[0].samples[i].wall_s == c->samples[i].wall_s);
    assert_true(back->cases[0].samples[3].peak_rss_kb == 4096);
    pbh_run_free(back);
    pbh_run_free(run);
}

int main(void) {
    char *argv[] = {"test_import", NULL};
    pbh_context_collect(&here, 1, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gbench_file_with_nan),
        cmocka_unit_test(test_gbench_poolbench_micro_file),
        cmocka_unit_test(test_hyperfine_file),
        cmocka_unit_test(test_lenient_json),
        cmocka_unit_test(test_malformed_files_refused),
        cmocka_unit_test(test_own_json_round_trip),
        cmocka_unit_test(test_gbench_mixed_repetition_index),
    };
    int rc = cmocka_run_group_tests_name("import", tests, NULL, NULL);
    pbh_context_clear(&here);
    return rc;
}
