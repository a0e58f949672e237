/*
 * test_cli.c - the poolbench binary end to end, as a user and CI drive it: a tiny run into a temporary
 * store, then runs / show / export; bad input exits 2 and leaves the store byte-identical; a case whose
 * backend crashes or hangs is recorded and the run completes with exit 3; a run SIGKILLed while cases
 * run, or in the middle of its write transaction, leaves a store that passes PRAGMA integrity_check
 * with no partial run in it.
 *
 * The binary is ${POOLBENCH_BINARY_DIR}/poolbench (ctest sets the variable). Crashes and hangs are
 * injected with the harness's test-only $POOLBENCH_TEST_FAULT (measure.h), the mid-write kill with
 * $POOLBENCH_TEST_STALL_WRITE (store_sqlite.c): both act in the real processes; nothing here is mocked. No
 * assertion depends on how fast the machine is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "poolbench.h"
#include "testutil.h"

extern char **environ;

static char bin[1024];
static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    const char *dir = getenv("POOLBENCH_BINARY_DIR");
    snprintf(bin, sizeof bin, "%s/poolbench", dir ? dir : ".");
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "test_cli: no poolbench binary at %s (set POOLBENCH_BINARY_DIR)\n", bin);
        return -1;
    }
    return tu_make_tmpdir(tmpdir, sizeof tmpdir, "pb_test_cli");
}

static int teardown(void **state) {
    (void)state;
    return tu_remove_tmpdir(tmpdir);
}

/* environ plus the given "K=V" strings (NULL-terminated). */
static char **make_env(const char *const *extra) {
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof *env);
    for (size_t i = 0; i < n; i++)
        env[i] = environ[i];
    for (size_t i = 0; i < m; i++)
        env[n + i] = (char *)extra[i];
    return env;
}

static pid_t start(const char *const *args, const char *const *extra_env, const char *out_path, const char *err_path) {
    const char *argv[64];
    int a = 0;
    argv[a++] = bin;
    for (int i = 0; args[i]; i++)
        argv[a++] = args[i];
    argv[a] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char **env = make_env(extra_env);
    pid_t pid;
    int rc = posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    assert_int_equal(rc, 0);
    return pid;
}

static int reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs poolbench with args; returns its exit code; *out / *err get its stdout / stderr (may be NULL). */
static int run_pb(const char *const *args, const char *const *extra_env, char **out, char **err) {
    char op[512], ep[512];
    snprintf(op, sizeof op, "%s/stdout", tmpdir);
    snprintf(ep, sizeof ep, "%s/stderr", tmpdir);
    int code = reap(start(args, extra_env, op, ep));
    char *o = tu_slurp(op, NULL), *e = tu_slurp(ep, NULL);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return code;
}

static void tmp_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static int sql_int(const char *path, const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void assert_integrity(const char *path) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* A tiny run: 2 ms of sleep per execution on two backends, 3 repetitions. */
static int tiny_run(const char *store, const char *label, const char *backends, const char *const *env, char **out,
                    char **err) {
    const char *args[] = {"run", "--scenario", "sleep", "--backend", backends, "--workers", "2", "--param", "items=2",
                          "--param", "ms=1", "--reps", "3", "--warmup", "0", "--store", store, "--label", label,
                          "--quiet", NULL};
    return run_pb(args, env, out, err);
}

static json_t *parse(const char *text) {
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (!v)
        fail_msg("not JSON (%s): %.200s", je.text, text);
    return v;
}

/* ---- tests ---- */

static void test_run_then_read_verbs(void **state) {
    (void)state;
    char store[512];
    tmp_path(store, sizeof store, "main.db");
    char *out, *err;
    int code = tiny_run(store, "tiny", "serial,threads", NULL, &out, &err);
    if (code != 0)
        fail_msg("run exited %d: %s", code, err);
    assert_string_equal(out, "1\n"); /* --quiet prints the run id */
    free(out);
    free(err);

    const char *runs[] = {"runs", "--store", store, NULL};
    assert_int_equal(run_pb(runs, NULL, &out, NULL), 0);
    assert_non_null(strstr(out, "tiny"));
    free(out);
    const char *runs_json[] = {"runs", "--store", store, "--format", "json", NULL};
    assert_int_equal(run_pb(runs_json, NULL, &out, NULL), 0);
    json_t *doc = parse(out);
    assert_int_equal(json_array_size(json_object_get(doc, "runs")), 1);
    json_decref(doc);
    free(out);

    const char *show[] = {"show", "tiny", "--store", store, NULL};
    assert_int_equal(run_pb(show, NULL, &out, NULL), 0);
    assert_non_null(strstr(out, "sleep/serial/w1/items=2,ms=1"));
    assert_non_null(strstr(out, "sleep/threads/w2/items=2,ms=1"));
    free(out);
    const char *show_md[] = {"show", "latest", "--store", store, "--format", "markdown", NULL};
    assert_int_equal(run_pb(show_md, NULL, &out, NULL), 0);
    assert_non_null(strstr(out, "| case |"));
    free(out);
    const char *show_json[] = {"show", "1", "--store", store, "--format", "json", NULL};
    assert_int_equal(run_pb(show_json, NULL, &out, NULL), 0);
    doc = parse(out);
    free(out);
    assert_string_equal(json_string_value(json_object_get(doc, "label")), "tiny");
    json_t *cases = json_object_get(doc, "cases");
    assert_int_equal(json_array_size(cases), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *c = json_array_get(cases, i);
        assert_string_equal(json_string_value(json_object_get(c, "status")), "ok");
        assert_int_equal(json_array_size(json_object_get(c, "samples")), 3);
    }
    assert_true(json_array_size(json_object_get(doc, "floors")) > 0);
    assert_non_null(json_string_value(json_object_get(json_object_get(doc, "context"), "command_line")));
    json_decref(doc);

    /* export as Google Benchmark JSON, to a file */
    char gb[512];
    tmp_path(gb, sizeof gb, "gb.json");
    const char *exp[] = {"export", "tiny", "--format", "gbench", "--output", gb, "--store", store, NULL};
    assert_int_equal(run_pb(exp, NULL, NULL, NULL), 0);
    char *text = tu_slurp(gb, NULL);
    assert_non_null(text);
    doc = parse(text);
    free(text);
    assert_true(json_is_object(json_object_get(doc, "context")));
    json_t *bm = json_object_get(doc, "benchmarks");
    size_t iterations = 0, aggregates = 0;
    for (size_t i = 0; i < json_array_size(bm); i++) {
        json_t *b = json_array_get(bm, i);
        const char *rt = json_string_value(json_object_get(b, "run_type"));
        assert_non_null(json_string_value(json_object_get(b, "name")));
        assert_string_equal(json_string_value(json_object_get(b, "time_unit")), "ns");
        assert_true(json_is_number(json_object_get(b, "real_time")));
        assert_true(json_is_number(json_object_get(b, "cpu_time")));
        if (strcmp(rt, "iteration") == 0) {
            iterations++;
            assert_int_equal(json_integer_value(json_object_get(b, "repetitions")), 3);
        } else {
            aggregates++;
        }
    }
    assert_int_equal(iterations, 6);
    assert_int_equal(aggregates, 6); /* mean, median, stddev per case */
    json_decref(doc);
    const char *exp_json[] = {"export", "latest", "--format", "json", "--store", store, NULL};
    assert_int_equal(run_pb(exp_json, NULL, &out, NULL), 0);
    doc = parse(out);
    assert_string_equal(json_string_value(json_object_get(doc, "format")), "poolbench-run");
    json_decref(doc);
    free(out);
}

static void expect_usage(const char *const *args, const char *needle) {
    char *err;
    int code = run_pb(args, NULL, NULL, &err);
    if (code != 2)
        fail_msg("%s ... exited %d, expected 2 (stderr: %s)", args[0] ? args[0] : "(no verb)", code, err);
    if (needle && !strstr(err, needle))
        fail_msg("stderr '%s' does not mention '%s'", err, needle);
    free(err);
}

static void test_bad_input_exit_2(void **state) {
    (void)state;
    char store[512];
    tmp_path(store, sizeof store, "bad.db");
    assert_int_equal(tiny_run(store, "base", "serial", NULL, NULL, NULL), 0);
    size_t n0;
    char *before = tu_slurp(store, &n0);

    const char *noverb[] = {NULL};
    expect_usage(noverb, NULL);
    const char *verb[] = {"frobnicate", NULL};
    expect_usage(verb, "unknown verb 'frobnicate'");
    const char *scen[] = {"run", "--scenario", "sleeep", "--store", store, NULL};
    expect_usage(scen, "unknown scenario 'sleeep'");
    const char *back[] = {"run", "--scenario", "sleep", "--backend", "forkk", "--store", store, NULL};
    expect_usage(back, "unknown backend 'forkk'");
    const char *param[] = {"run", "--scenario", "sleep", "--param", "ms", "--store", store, NULL};
    expect_usage(param, "malformed --param");
    const char *param2[] = {"run", "--scenario", "sleep", "--param", "ms=fast", "--store", store, NULL};
    expect_usage(param2, "ms");
    const char *param3[] = {"run", "--scenario", "sleep", "--param", "itemz=2", "--store", store, NULL};
    expect_usage(param3, "itemz");
    const char *reps[] = {"run", "--scenario", "sleep", "--reps", "zero", "--store", store, NULL};
    expect_usage(reps, "--reps");
    const char *suite[] = {"run", "--suite", "quik", "--store", store, NULL};
    expect_usage(suite, "unknown suite");
    const char *exec[] = {"exec", "--scenario", "sleep", "--backend", "forkk", NULL};
    expect_usage(exec, "unknown backend");
    const char *exec2[] = {"exec", "--scenario", "crash", "--backend", "threads", NULL};
    expect_usage(exec2, "not supported");
    const char *show[] = {"show", "nosuchlabel", "--store", store, NULL};
    expect_usage(show, "nosuchlabel");
    const char *fmt[] = {"show", "latest", "--format", "yaml", "--store", store, NULL};
    expect_usage(fmt, "yaml");
    const char *expf[] = {"export", "latest", "--format", "csv", "--store", store, NULL};
    expect_usage(expf, "csv");
    const char *list[] = {"list", "widgets", NULL};
    expect_usage(list, "widgets");

    size_t n1;
    char *after = tu_slurp(store, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);

    /* reading a store that does not exist: exit 2, and it is not created */
    char missing[512];
    tmp_path(missing, sizeof missing, "missing.db");
    const char *runs[] = {"runs", "--store", missing, NULL};
    expect_usage(runs, "no store");
    assert_int_not_equal(access(missing, F_OK), 0);
}

static void test_bad_stores_untouched(void **state) {
    (void)state;
    /* not SQLite */
    char path[512];
    tmp_path(path, sizeof path, "notes.txt");
    const char text[] = "These are my notes, not a database.\n";
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    const char *run[] = {"run", "--scenario", "sleep", "--param", "ms=1", "--reps", "1", "--store", path, NULL};
    expect_usage(run, "not a poolbench store");
    const char *runs[] = {"runs", "--store", path, NULL};
    expect_usage(runs, "not a poolbench store");
    const char *show[] = {"show", "latest", "--store", path, NULL};
    expect_usage(show, "not a poolbench store");
    size_t n;
    char *after = tu_slurp(path, &n);
    assert_int_equal(n, strlen(text));
    assert_memory_equal(after, text, n);
    free(after);

    /* a store written by a newer poolbench */
    char store[512];
    tmp_path(store, sizeof store, "newer.db");
    assert_int_equal(tiny_run(store, "x", "serial", NULL, NULL, NULL), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(store, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    size_t n0, n1;
    char *before = tu_slurp(store, &n0);
    const char *run2[] = {"run", "--scenario", "sleep", "--param", "ms=1", "--reps", "1", "--store", store, NULL};
    expect_usage(run2, "schema version 999");
    const char *runs2[] = {"runs", "--store", store, NULL};
    expect_usage(runs2, "schema version 999");
    after = tu_slurp(store, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);

    /* a directory */
    const char *dir[] = {"runs", "--store", tmpdir, NULL};
    expect_usage(dir, "directory");
}

static void test_crashing_case_recorded(void **state) {
    (void)state;
    char store[512];
    tmp_path(store, sizeof store, "crash.db");
    /* the threads case's process dies of SIGSEGV right before its execution: a crashing backend */
    const char *env[] = {"POOLBENCH_TEST_FAULT=crash:sleep/threads", NULL};
    char *err;
    int code = tiny_run(store, "crashy", "threads,serial", env, NULL, &err);
    if (code != 3)
        fail_msg("run exited %d, expected 3: %s", code, err);
    free(err);
    const char *show[] = {"show", "crashy", "--store", store, "--format", "json", NULL};
    char *out;
    assert_int_equal(run_pb(show, NULL, &out, NULL), 0);
    json_t *doc = parse(out);
    free(out);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "failed");
    json_t *cases = json_object_get(doc, "cases");
    assert_int_equal(json_array_size(cases), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *c = json_array_get(cases, i);
        const char *backend = json_string_value(json_object_get(c, "backend"));
        const char *status = json_string_value(json_object_get(c, "status"));
        if (strcmp(backend, "threads") == 0) {
            assert_string_equal(status, "failed");
            const char *reason = json_string_value(json_object_get(c, "reason"));
            assert_non_null(reason);
            if (!strstr(reason, "signal 11"))
                fail_msg("reason '%s' does not name the signal", reason);
        } else {
            /* the run went on after the crash */
            assert_string_equal(status, "ok");
            assert_int_equal(json_array_size(json_object_get(c, "samples")), 3);
        }
    }
    json_decref(doc);
}

static void test_hanging_case_times_out(void **state) {
    (void)state;
    char store[512];
    tmp_path(store, sizeof store, "hang.db");
    const char *env[] = {"POOLBENCH_TEST_FAULT=hang:sleep/fork", NULL};
    const char *args[] = {"run", "--scenario", "sleep", "--backend", "fork,serial", "--workers", "2", "--param",
                          "items=2", "--param", "ms=1", "--reps", "2", "--warmup", "0", "--case-timeout", "3",
                          "--store", store, "--quiet", NULL};
    assert_int_equal(run_pb(args, env, NULL, NULL), 3);
    assert_int_equal(sql_int(store, "SELECT count(*) FROM cases WHERE backend = 'fork' AND status = 'timeout'"), 1);
    assert_int_equal(sql_int(store, "SELECT count(*) FROM cases WHERE backend = 'serial' AND status = 'ok'"), 1);
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void test_sigkill_while_running(void **state) {
    (void)state;
    char store[512], op[512], ep[512];
    tmp_path(store, sizeof store, "killed.db");
    tmp_path(op, sizeof op, "k.out");
    tmp_path(ep, sizeof ep, "k.err");
    assert_int_equal(tiny_run(store, "before", "serial", NULL, NULL, NULL), 0);
    /* about 20 s of cases; killed long before the end */
    const char *args[] = {"run", "--scenario", "sleep", "--backend", "threads", "--param", "items=2", "--param",
                          "ms=500", "--reps", "20", "--store", store, NULL};
    pid_t pid = start(args, NULL, op, ep);
    sleep_s(1.5);
    kill(pid, SIGKILL);
    assert_int_equal(reap(pid), 128 + SIGKILL);
    assert_integrity(store);
    assert_int_equal(sql_int(store, "SELECT count(*) FROM runs"), 1);
    assert_int_equal(sql_int(store, "SELECT count(*) FROM cases"), 1);
}

static void test_sigkill_inside_write(void **state) {
    (void)state;
    char store[512], op[512], ep[512];
    tmp_path(store, sizeof store, "killed2.db");
    tmp_path(op, sizeof op, "w.out");
    tmp_path(ep, sizeof ep, "w.err");
    assert_int_equal(tiny_run(store, "before", "serial", NULL, NULL, NULL), 0);
    const char *env[] = {"POOLBENCH_TEST_STALL_WRITE=30", NULL};
    const char *args[] = {"run", "--scenario", "sleep", "--backend", "serial", "--param", "items=1", "--param",
                          "ms=1", "--reps", "2", "--store", store, "--label", "partial", NULL};
    pid_t pid = start(args, env, op, ep);
    /* wait until the run row is inserted and the transaction is open (the hook says so on stderr) */
    int inside = 0;
    for (int i = 0; i < 600 && !inside; i++) {
        char *err = tu_slurp(ep, NULL);
        inside = err && strstr(err, "stalling inside the write transaction") != NULL;
        free(err);
        if (!inside)
            sleep_s(0.1);
    }
    assert_true(inside);
    kill(pid, SIGKILL);
    assert_int_equal(reap(pid), 128 + SIGKILL);
    assert_integrity(store);
    assert_int_equal(sql_int(store, "SELECT count(*) FROM runs"), 1);
    assert_int_equal(sql_int(store, "SELECT count(*) FROM runs WHERE label = 'partial'"), 0);
    assert_int_equal(sql_int(store, "SELECT count(*) FROM cases"), 1);
    /* and the store still takes runs */
    assert_int_equal(tiny_run(store, "after", "serial", NULL, NULL, NULL), 0);
    assert_int_equal(sql_int(store, "SELECT count(*) FROM runs"), 2);
}

static void test_list_and_exec(void **state) {
    (void)state;
    char *out;
    const char *list[] = {"list", "--format", "json", NULL};
    assert_int_equal(run_pb(list, NULL, &out, NULL), 0);
    json_t *doc = parse(out);
    free(out);
    assert_true(json_array_size(json_object_get(doc, "scenarios")) >= 1);
    assert_true(json_array_size(json_object_get(doc, "backends")) >= 1);
    assert_true(json_array_size(json_object_get(doc, "suites")) >= 3);
    json_decref(doc);
    const char *exec[] = {"exec", "--scenario", "sleep", "--backend", "fork", "--workers", "2", "--param", "items=2",
                          "--param", "ms=1", "--json", NULL};
    assert_int_equal(run_pb(exec, NULL, &out, NULL), 0);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    doc = parse(out);
    assert_true(json_is_true(json_object_get(doc, "ok")));
    assert_int_equal(json_integer_value(json_object_get(doc, "tasks")), 2);
    json_decref(doc);
    free(out);
}

/* The reference backends: a build with the library lists them with their real capabilities (async only:
 * crash is unsupported, as on threads) and runs them; a build without it says why, exit 2, on exec and run. */
static void test_reference_backends(void **state) {
    (void)state;
    static const char *const names[] = {"glib", "libuv", "openmp"};
    static const char *const libraries[] = {"GLib", "libuv", "OpenMP"};
    char *out;
    const char *list[] = {"list", "backends", "--format", "json", NULL};
    assert_int_equal(run_pb(list, NULL, &out, NULL), 0);
    json_t *doc = parse(out);
    free(out);
    for (size_t i = 0; i < 3; i++) {
        const char *name = names[i];
        const char *why = pb_backend_not_built_reason(name);
        json_t *listed = NULL, *missing = NULL, *o;
        size_t k;
        json_array_foreach(json_object_get(doc, "backends"), k, o)
            if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0) listed = o;
        json_array_foreach(json_object_get(doc, "backends_not_built"), k, o)
            if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0) missing = o;
        if (why) {
            print_message("      %s is not built in: %s\n", name, why);
            assert_null(listed);
            assert_non_null(missing);
            assert_string_equal(json_string_value(json_object_get(missing, "reason")), why);
            char expected[256], not_found[128];
            snprintf(expected, sizeof expected, "backend '%s' is not built in (%s)", name, why);
            snprintf(not_found, sizeof not_found, "%s was not found at configure time", libraries[i]);
            assert_true(strcmp(why, not_found) == 0 || strstr(why, "switched off") != NULL);
            const char *exec[] = {"exec", "--scenario", "sleep", "--backend", name, NULL};
            expect_usage(exec, expected);
            const char *run[] = {"run", "--scenario", "sleep", "--backend", name, "--store", "/nonexistent/x.db", NULL};
            expect_usage(run, expected);
            continue;
        }
        assert_non_null(listed);
        assert_null(missing);
        json_t *caps = json_object_get(listed, "caps");
        assert_int_equal(json_array_size(caps), 1); /* async, and nothing it cannot deliver */
        assert_string_equal(json_string_value(json_array_get(caps, 0)), "async");
        const char *exec[] = {"exec", "--scenario", "sleep", "--backend", name, "--workers", "2", "--param", "items=4",
                              "--param", "ms=1", "--json", NULL};
        assert_int_equal(run_pb(exec, NULL, &out, NULL), 0);
        char *nl = strchr(out, '\n');
        assert_non_null(nl);
        *nl = '\0';
        json_t *r = parse(out);
        assert_true(json_is_true(json_object_get(r, "ok")));
        assert_int_equal(json_integer_value(json_object_get(r, "tasks")), 4);
        json_decref(r);
        free(out);
        const char *crash[] = {"exec", "--scenario", "crash", "--backend", name, NULL};
        expect_usage(crash, "not supported");
    }
    json_decref(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_and_exec),
        cmocka_unit_test(test_reference_backends),
        cmocka_unit_test(test_run_then_read_verbs),
        cmocka_unit_test(test_bad_input_exit_2),
        cmocka_unit_test(test_bad_stores_untouched),
        cmocka_unit_test(test_crashing_case_recorded),
        cmocka_unit_test(test_hanging_case_times_out),
        cmocka_unit_test(test_sigkill_while_running),
        cmocka_unit_test(test_sigkill_inside_write),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
