/*
 * test_verdicts.c - the deterministic parts of verdicts that hold on any machine (issue 14): the
 * interleaved A/B schedule and its seed, the A/B case loop (with fake executors that record the order
 * they were called in), pairs in the store and the migration from schema 2 through 3 to 4, --confirm on a pair
 * re-measuring BOTH sides, machine-mismatch detection, the injection spec, the minimum detectable
 * slowdown estimate and the gate's use of a calibration, a calibration's JSON read back, and the runs
 * listing naming each run's pair.
 *
 * Nothing here measures time: samples are constructed, executors are fakes. The measured parts (a real
 * injected slowdown flagged, the CLI end to end, ci-perf-check's bad REF) are in test_verdicts.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "abrun.h"
#include "calibrate.h"
#include "compare.h"
#include "format.h"
#include "machine.h"
#include "store.h"
#include "store.h"

/* ---- the schedule ---- */

static void test_order_is_balanced_seeded_and_interleaved(void **state) {
    (void)state;
    char a[41], b[41], c[41];
    pbh_ab_order(42, 3, 20, a);
    pbh_ab_order(42, 3, 20, b);
    assert_string_equal(a, b); /* the recorded seed reproduces the order exactly */
    for (int k = 0; k < 20; k++) { /* every block pair holds one block of each side */
        assert_true((a[2 * k] == 'A' && a[2 * k + 1] == 'B') || (a[2 * k] == 'B' && a[2 * k + 1] == 'A'));
    }
    assert_int_equal((int)strlen(a), 40);
    pbh_ab_order(43, 3, 20, c);
    assert_string_not_equal(a, c); /* another seed, another order (2^-20 odds of a clash) */
    pbh_ab_order(42, 4, 20, c);
    assert_string_not_equal(a, c); /* and each case its own */
    /* randomised: not AAAA...BBBB, and not always base first */
    int base_first = 0;
    for (int k = 0; k < 20; k++)
        base_first += a[2 * k] == 'A';
    assert_true(base_first > 0 && base_first < 20);
    assert_int_equal(pbh_ab_nblocks(20, 5), 4);
    assert_int_equal(pbh_ab_nblocks(21, 5), 5);
    assert_int_equal(pbh_ab_nblocks(3, 5), 1);
    assert_int_equal(pbh_ab_nblocks(10, 0), pbh_ab_nblocks(10, PBH_AB_DEFAULT_BLOCK_REPS));
}

/* A fake executor: appends its side's letter to a shared log per call and fills `reps` samples of a
 * fixed time; can be told to fail at its n-th call. */
typedef struct fake_side {
    char letter;
    double time;
    int calls, fail_at;
    char *log;
    int *block_reps; /* reps asked per call, in call order across both sides */
    int *ncalls;
} fake_side;

static void fake_run_case(void *ud, const pbh_case_spec *spec, pbh_case *c) {
    fake_side *f = ud;
    size_t len = strlen(f->log);
    f->log[len] = f->letter;
    f->log[len + 1] = '\0';
    f->block_reps[(*f->ncalls)++] = spec->reps;
    assert_int_equal(spec->processes, 1); /* a block is one fresh case process */
    if (++f->calls == f->fail_at) {
        pbh_set_str(&c->status, PBH_STATUS_FAILED);
        pbh_set_str(&c->reason, "case process killed by signal 11");
        return;
    }
    for (int i = 0; i < spec->reps; i++) {
        pbh_sample *s = pbh_case_add_sample(c);
        s->rep = i;
        s->wall_s = f->time;
        s->iterations = 1;
    }
    pbh_set_str(&c->status, PBH_STATUS_OK);
}

static pbh_case_spec sleep_spec(int reps) {
    pbh_case_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.scenario = pb_scenario_find("sleep");
    assert_non_null(spec.scenario);
    snprintf(spec.backend, sizeof spec.backend, "threads");
    snprintf(spec.name, sizeof spec.name, "sleep/threads/w2/items=4,ms=20");
    spec.workers = 2;
    spec.reps = reps;
    spec.warmup = 1;
    spec.processes = 1;
    spec.timeout_s = 10;
    spec.supported = 1;
    return spec;
}

static void test_ab_case_follows_the_order(void **state) {
    (void)state;
    char log[64] = "";
    int reps_log[64], ncalls = 0;
    fake_side a = {.letter = 'A', .time = 0.010, .log = log, .block_reps = reps_log, .ncalls = &ncalls};
    fake_side b = {.letter = 'B', .time = 0.012, .log = log, .block_reps = reps_log, .ncalls = &ncalls};
    pbh_executor ea = {fake_run_case, NULL, &a}, eb = {fake_run_case, NULL, &b};
    pbh_case_spec spec = sleep_spec(12);
    pbh_ab_opts opts = {.seed = 7, .block_reps = 5};
    pbh_case base = {0}, head = {0};
    pbh_case_describe(&base, &spec);
    pbh_case_describe(&head, &spec);
    pbh_ab_run_case(&spec, 2, &ea, &eb, &opts, &base, &head);

    char expect[16];
    pbh_ab_order(7, 2, 3, expect);
    assert_string_equal(log, expect); /* the executors ran in the recorded order */
    int per_side[2] = {0, 0};
    for (int i = 0; i < ncalls; i++)
        per_side[log[i] == 'B'] += reps_log[i];
    assert_int_equal(per_side[0], 12); /* blocks of 5, 5, 2 on each side */
    assert_int_equal(per_side[1], 12);
    assert_string_equal(base.status, PBH_STATUS_OK);
    assert_string_equal(head.status, PBH_STATUS_OK);
    assert_int_equal((int)base.nsamples, 12);
    assert_int_equal((int)head.nsamples, 12);
    for (size_t i = 0; i < head.nsamples; i++) { /* renumbered across the blocks */
        assert_int_equal(head.samples[i].rep, (int)i);
        assert_true(head.samples[i].wall_s == 0.012);
        assert_true(base.samples[i].wall_s == 0.010);
    }
    pbh_case_clear(&base);
    pbh_case_clear(&head);

    /* the head's second block fails: the case stops, both sides say why */
    log[0] = '\0';
    ncalls = 0;
    a.calls = b.calls = 0;
    b.fail_at = 2;
    pbh_case_describe(&base, &spec);
    pbh_case_describe(&head, &spec);
    pbh_ab_run_case(&spec, 2, &ea, &eb, &opts, &base, &head);
    assert_string_equal(head.status, PBH_STATUS_FAILED);
    assert_non_null(strstr(head.reason, "signal 11"));
    assert_string_equal(base.status, PBH_STATUS_FAILED);
    assert_non_null(strstr(base.reason, "head side failed"));
    assert_int_equal(b.calls, 2);
    pbh_case_clear(&base);
    pbh_case_clear(&head);

    /* an unsupported pair runs nothing */
    spec.supported = 0;
    log[0] = '\0';
    pbh_case_describe(&base, &spec);
    pbh_case_describe(&head, &spec);
    pbh_ab_run_case(&spec, 0, &ea, &eb, &opts, &base, &head);
    assert_string_equal(log, "");
    assert_string_equal(base.status, PBH_STATUS_UNSUPPORTED);
    pbh_case_clear(&base);
    pbh_case_clear(&head);
}

/* ---- runs built in memory ---- */

static void add_case(pbh_run *run, const char *name, double median, size_t n) {
    pbh_case *c = pbh_run_add_case(run);
    assert_non_null(c);
    pbh_set_str(&c->name, name);
    pbh_set_str(&c->scenario, "sleep");
    pbh_set_str(&c->backend, "threads");
    pbh_set_str(&c->params, "items=4,ms=20");
    pbh_set_str(&c->status, PBH_STATUS_OK);
    c->workers = 2;
    c->reps = (int)n;
    for (size_t i = 0; i < n; i++) {
        pbh_sample *s = pbh_case_add_sample(c);
        s->rep = (int)i;
        s->wall_s = median * (1.0 + 0.01 * ((double)(i % 5) - 2.0) / 2.0);
        s->iterations = 1;
    }
}

static pbh_run *machine_run(const char *host, int cores, double fork_floor) {
    pbh_run *r = pbh_run_new();
    r->ctx.host = pbh_strdup(host);
    r->ctx.cpu_model = pbh_strdup("AMD EPYC");
    r->ctx.cores = cores;
    r->ctx.kernel = pbh_strdup("Linux 6.18 x86_64");
    pbh_run_add_floor(r, "fork_exit_wait", fork_floor, 100);
    pbh_run_add_floor(r, "nanosleep_overshoot", 60e-6, 200);
    return r;
}

static void test_machine_mismatch(void **state) {
    (void)state;
    char why[1024];
    pbh_run *a = machine_run("vm", 2, 470e-6), *b = machine_run("vm", 2, 520e-6);
    assert_int_equal(pbh_machine_differs(a, b, why, sizeof why), 0); /* same facts, floors within 2x */
    assert_string_equal(why, "");
    pbh_run_free(b);

    b = machine_run("vm", 2, 1.5e-3); /* the machine: fork 3x slower, all else equal */
    assert_int_equal(pbh_machine_differs(a, b, why, sizeof why), 1);
    assert_non_null(strstr(why, "fork_exit_wait"));
    pbh_run_free(b);

    b = machine_run("ci-runner-7", 4, 470e-6);
    assert_int_equal(pbh_machine_differs(a, b, why, sizeof why), 1);
    assert_non_null(strstr(why, "host 'vm' vs 'ci-runner-7'"));
    assert_non_null(strstr(why, "2 vs 4 cores"));
    pbh_run_free(b);

    /* the scheduler's overshoot follows the load, not the machine; unknown facts are no evidence */
    b = machine_run("vm", 2, 470e-6);
    b->floors[1].seconds = 600e-6;
    free(b->ctx.kernel);
    b->ctx.kernel = NULL;
    b->ctx.cores = -1;
    assert_int_equal(pbh_machine_differs(a, b, why, sizeof why), 0);
    pbh_run_free(b);

    /* machine keys (i16) decide when both runs have one: different keys are different machines even with
     * the same facts; one (explicit) key covers differing facts, but never differing floors */
    b = machine_run("vm", 2, 470e-6);
    a->ctx.machine = pbh_strdup("runner-a");
    b->ctx.machine = pbh_strdup("runner-b");
    assert_int_equal(pbh_machine_differs(a, b, why, sizeof why), 1);
    assert_non_null(strstr(why, "machine 'runner-a' vs 'runner-b'"));
    pbh_run_free(b);
    b = machine_run("ci-runner-7", 4, 470e-6);
    b->ctx.machine = pbh_strdup("runner-a");
    assert_int_equal(pbh_machine_differs(a, b, why, sizeof why), 0);
    pbh_run_free(b);
    b = machine_run("vm", 2, 1.5e-3);
    b->ctx.machine = pbh_strdup("runner-a");
    assert_int_equal(pbh_machine_differs(a, b, why, sizeof why), 1);
    assert_non_null(strstr(why, "fork_exit_wait"));
    pbh_run_free(b);
    /* a key that is only the host name (runs migrated from before keys) is no evidence: the facts decide */
    b = machine_run("vm", 2, 470e-6);
    b->ctx.machine = pbh_strdup("vm");
    assert_int_equal(pbh_machine_differs(a, b, why, sizeof why), 0);
    pbh_run_free(b);
    free(a->ctx.machine);
    a->ctx.machine = NULL;

    /* compare carries it */
    b = machine_run("other", 2, 470e-6);
    add_case(a, "sleep/threads/w2/items=4,ms=20", 0.040, 20);
    add_case(b, "sleep/threads/w2/items=4,ms=20", 0.060, 20);
    pbh_comparison cmp;
    assert_int_equal(pbh_compare_runs(a, b, NULL, &cmp), 0);
    assert_int_equal(cmp.other_machine, 1);
    assert_int_equal(cmp.regressions, 1);
    char *md = pbh_compare_format_markdown(&cmp);
    assert_non_null(strstr(md, "different machines"));
    free(md);
    pbh_comparison_free(&cmp);
    pbh_run_free(a);
    pbh_run_free(b);
}

/* ---- --confirm on a pair ---- */

typedef struct pair_fake {
    int calls;
    double base_time, new_time; /* what a re-measurement of each side gives */
    const pbh_case *seen_base, *seen_new;
} pair_fake;

static int fake_remeasure_pair(void *ud, const pbh_case *base, const pbh_case *new_, pbh_case *fb, pbh_case *fn) {
    pair_fake *f = ud;
    f->calls++;
    f->seen_base = base;
    f->seen_new = new_;
    pbh_run *tmp = pbh_run_new();
    add_case(tmp, base->name, f->base_time, 20);
    add_case(tmp, base->name, f->new_time, 20);
    /* move the two built cases out */
    *fb = tmp->cases[0];
    *fn = tmp->cases[1];
    tmp->ncases = 0;
    pbh_run_free(tmp);
    return 0;
}

/* What a confirmation round must show: significance and the change itself beyond the threshold on the
 * flagged side; the interval was the first round's test. The first case is stop 16's missed trial: an
 * injected +10 % measured again at +9.8 % [+4.7 %, +10.0 %], p 3.4e-06, which the interval rule overturned. */
static void test_confirm_round_rule(void **state) {
    (void)state;
    pbs_compare_opts o;
    pbs_compare_opts_default(&o); /* alpha 0.01, threshold 5 % */
    pbs_comparison c;
    memset(&c, 0, sizeof c);
    c.mwu.p = 3.4e-6;
    c.change = c.ci.estimate = 0.098;
    c.ci.lo = 0.047;
    c.ci.hi = 0.100;
    assert_true(pbh_confirm_round_holds(&c, PBS_VERDICT_REGRESSION, &o));
    assert_false(pbh_confirm_round_holds(&c, PBS_VERDICT_IMPROVEMENT, &o));
    assert_false(pbh_confirm_round_holds(&c, PBS_VERDICT_NO_CHANGE, &o));
    c.mwu.p = 0.02; /* not significant at alpha */
    assert_false(pbh_confirm_round_holds(&c, PBS_VERDICT_REGRESSION, &o));
    c.mwu.p = 1e-4;
    c.change = 0.049; /* significant, but smaller than the threshold */
    assert_false(pbh_confirm_round_holds(&c, PBS_VERDICT_REGRESSION, &o));
    c.change = -0.08;
    assert_true(pbh_confirm_round_holds(&c, PBS_VERDICT_IMPROVEMENT, &o));
    assert_false(pbh_confirm_round_holds(&c, PBS_VERDICT_REGRESSION, &o));
    c.change = NAN; /* nothing to judge falls to the safe side */
    assert_false(pbh_confirm_round_holds(&c, PBS_VERDICT_REGRESSION, &o));
    assert_false(pbh_confirm_round_holds(&c, PBS_VERDICT_IMPROVEMENT, &o));
}

static void test_confirm_pair_remeasures_both_sides(void **state) {
    (void)state;
    pbh_run *base = pbh_run_new(), *head = pbh_run_new();
    add_case(base, "sleep/threads/w2/items=4,ms=20", 0.040, 20);
    add_case(head, "sleep/threads/w2/items=4,ms=20", 0.050, 20); /* +25 %: a suspect */
    add_case(base, "sleep/fork/w2/items=4,ms=20", 0.040, 20);
    add_case(head, "sleep/fork/w2/items=4,ms=20", 0.040, 20);
    pbh_comparison cmp;
    assert_int_equal(pbh_compare_runs(base, head, NULL, &cmp), 0);
    assert_int_equal(cmp.regressions, 1);

    /* Both sides re-measured at 50 ms: the machine slowed down for both, so the suspect is NOT confirmed.
     * A confirmation that re-measured only the new side (50 ms) against the stored base (40 ms) would
     * have confirmed it: this is the difference the pair makes. */
    pair_fake f = {.base_time = 0.050, .new_time = 0.050};
    pbh_compare_confirm_pair(&cmp, 2, fake_remeasure_pair, &f);
    assert_int_equal(f.calls, 2); /* two rounds, only for the suspect */
    assert_ptr_equal(f.seen_base, &base->cases[0]);
    assert_ptr_equal(f.seen_new, &head->cases[0]);
    assert_int_equal(cmp.regressions, 0);
    assert_int_equal(cmp.cases[0].unconfirmed, 1);
    assert_int_equal(cmp.cases[0].confirm_rounds, 2);
    assert_int_equal(cmp.cases[0].confirm_held, 0);
    assert_int_equal(cmp.paired, 1);
    pbh_comparison_free(&cmp);

    /* a real slowdown reproduces on the fresh pair: confirmed */
    assert_int_equal(pbh_compare_runs(base, head, NULL, &cmp), 0);
    pair_fake g = {.base_time = 0.040, .new_time = 0.050};
    pbh_compare_confirm_pair(&cmp, 2, fake_remeasure_pair, &g);
    assert_int_equal(cmp.regressions, 1);
    assert_int_equal(cmp.cases[0].confirm_held, 2);
    char *json = pbh_compare_format_json(&cmp);
    assert_non_null(strstr(json, "\"paired\": true"));
    free(json);
    pbh_comparison_free(&cmp);

    /* an improvement is confirmed the same way: one that does not reproduce is not reported */
    assert_int_equal(pbh_compare_runs(head, base, NULL, &cmp), 0);
    assert_int_equal(cmp.improvements, 1);
    pair_fake same = {.base_time = 0.050, .new_time = 0.050};
    pbh_compare_confirm_pair(&cmp, 2, fake_remeasure_pair, &same);
    assert_int_equal(same.calls, 2);
    assert_int_equal(cmp.improvements, 0);
    assert_int_equal(cmp.cases[0].unconfirmed, 1);
    assert_int_equal(cmp.cases[0].verdict, PBS_VERDICT_WITHIN_NOISE);
    pbh_comparison_free(&cmp);
    /* ... and one that does stands, said as confirmed */
    assert_int_equal(pbh_compare_runs(head, base, NULL, &cmp), 0);
    pair_fake faster = {.base_time = 0.050, .new_time = 0.040};
    pbh_compare_confirm_pair(&cmp, 2, fake_remeasure_pair, &faster);
    assert_int_equal(cmp.improvements, 1);
    assert_int_equal(cmp.cases[0].confirm_held, 2);
    char *text = pbh_compare_format_table(&cmp);
    assert_non_null(strstr(text, "improvement (confirmed 2/2)"));
    free(text);
    pbh_comparison_free(&cmp);
    pbh_run_free(base);
    pbh_run_free(head);
}

/* ---- the store: pairs, calibrations, migration ---- */

static void tmp_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "/tmp/test_verdicts_%d_%s", (int)getpid(), name);
    unlink(buf);
}

/* The first column of the first row of sql. */
static int sql_count(sqlite3 *db, const char *sql) {
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return n;
}

static void test_pair_storage_and_migration(void **state) {
    (void)state;
    char path[256], err[1024];
    tmp_path(path, sizeof path, "v2.db");
    /* a store as the previous poolbench left it (schema 2), with one run in it */
    assert_int_equal(pbh_store_create_at_version(path, 2, err, sizeof err), PBH_OK);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO runs (label, status, started_at, started_unix) VALUES ('old', 'ok', "
                                  "'2026-11-30T00:00:00Z', 1);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    /* read-only: schema 2 understood, no pairs, nothing migrated */
    pbh_store *st;
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_READ, err, sizeof err), PBH_OK);
    assert_int_equal(pbh_store_schema_version(st), 2);
    pbh_pair p;
    assert_int_equal(pbh_store_find_pair(st, 1, &p, err, sizeof err), PBH_ENOTFOUND);
    pbh_store_close(st);

    /* the first writer migrates 2 -> 3 (uuids, machine keys) -> 4 (pairs, calibrations); the old run
     * survives with a uuid and its host as machine */
    assert_int_equal(pbh_store_open(&st, path, PBH_STORE_WRITE, err, sizeof err), PBH_OK);
    assert_int_equal(pbh_store_schema_version(st), 4);
    assert_int_equal(sql_count(pbh_store_db(st), "SELECT count(*) FROM runs WHERE length(uuid) = 36"), 1);
    assert_int_equal(sql_count(pbh_store_db(st), "SELECT count(*) FROM pairs"), 0);
    assert_int_equal(sql_count(pbh_store_db(st), "SELECT count(*) FROM calibrations"), 0);
    int64_t id;
    assert_int_equal(pbh_store_resolve(st, "old", &id, err, sizeof err), PBH_OK);
    assert_int_equal((int)id, 1);
    assert_int_equal(pbh_store_find_pair(st, 1, &p, err, sizeof err), PBH_ENOTFOUND); /* a lone run */

    pbh_run *base = machine_run("vm", 2, 470e-6), *head = machine_run("vm", 2, 470e-6);
    pbh_set_str(&base->label, "base");
    pbh_set_str(&head->label, "head");
    pbh_set_str(&base->ctx.machine, "vm-0badcafe");
    pbh_set_str(&head->ctx.machine, "vm-0badcafe");
    base->ctx.started_at = pbh_strdup("2026-12-01T00:00:00Z");
    head->ctx.started_at = pbh_strdup("2026-12-01T00:00:00Z");
    base->ctx.git_commit = pbh_strdup("aaaa");
    head->ctx.git_commit = pbh_strdup("bbbb");
    add_case(base, "sleep/threads/w2/items=4,ms=20", 0.040, 10);
    add_case(head, "sleep/threads/w2/items=4,ms=20", 0.041, 10);
    pbh_pair pair;
    memset(&pair, 0, sizeof pair);
    pair.seed = 12345;
    pair.block_reps = 5;
    snprintf(pair.base_exe, sizeof pair.base_exe, "/opt/base/poolbench");
    snprintf(pair.head_exe, sizeof pair.head_exe, "/opt/head/poolbench");
    snprintf(pair.injected, sizeof pair.injected, "sleep/*:10");
    assert_int_equal(pbh_store_insert_pair(st, base, head, &pair, err, sizeof err), PBH_OK);
    assert_true(base->id > 1 && head->id == base->id + 1);

    /* found from either side, with everything it was stored with */
    for (int side = 0; side < 2; side++) {
        assert_int_equal(pbh_store_find_pair(st, side ? head->id : base->id, &p, err, sizeof err), PBH_OK);
        assert_int_equal((int)p.id, (int)pair.id);
        assert_int_equal((int)p.base_run_id, (int)base->id);
        assert_int_equal((int)p.head_run_id, (int)head->id);
        assert_int_equal((int)p.seed, 12345);
        assert_int_equal(p.block_reps, 5);
        assert_string_equal(p.base_exe, "/opt/base/poolbench");
        assert_string_equal(p.head_exe, "/opt/head/poolbench");
        assert_string_equal(p.injected, "sleep/*:10");
    }
    /* the runs listing names each run's pair and side (the report finds a machine's latest pair by it) */
    pbh_run_info *infos;
    size_t ninfos;
    assert_int_equal(pbh_store_list_runs(st, NULL, &infos, &ninfos, err, sizeof err), PBH_OK);
    int seen = 0;
    for (size_t i = 0; i < ninfos; i++) {
        if (infos[i].id == base->id || infos[i].id == head->id) {
            assert_int_equal((int)infos[i].pair_id, (int)pair.id);
            assert_int_equal(infos[i].pair_is_head, infos[i].id == head->id);
            seen++;
        } else {
            assert_int_equal((int)infos[i].pair_id, 0); /* the lone run */
        }
    }
    assert_int_equal(seen, 2);
    char *listing = pbh_format_runs_json(infos, ninfos);
    assert_non_null(strstr(listing, "\"side\": \"head\""));
    assert_non_null(strstr(listing, "\"pair\": null"));
    free(listing);
    pbh_run_infos_free(infos, ninfos);

    /* each run keeps its own commit */
    pbh_run *loaded;
    assert_int_equal(pbh_store_load_run(st, base->id, &loaded, err, sizeof err), PBH_OK);
    assert_string_equal(loaded->ctx.git_commit, "aaaa");
    assert_int_equal((int)loaded->cases[0].nsamples, 10);
    pbh_run_free(loaded);

    /* a pair whose link cannot be written leaves no run behind (one transaction) */
    pbh_run *b2 = machine_run("vm", 2, 470e-6), *h2 = machine_run("vm", 2, 470e-6);
    b2->ctx.started_at = pbh_strdup("2026-12-01T00:00:00Z");
    h2->ctx.started_at = pbh_strdup("2026-12-01T00:00:00Z");
    assert_int_equal(sqlite3_exec(pbh_store_db(st),
                                  "CREATE TEMP TRIGGER no_pairs BEFORE INSERT ON pairs BEGIN SELECT RAISE(ABORT, "
                                  "'refused'); END;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    int64_t before;
    assert_int_equal(pbh_store_resolve(st, "latest", &before, err, sizeof err), PBH_OK);
    assert_int_not_equal(pbh_store_insert_pair(st, b2, h2, &pair, err, sizeof err), PBH_OK);
    int64_t after;
    assert_int_equal(pbh_store_resolve(st, "latest", &after, err, sizeof err), PBH_OK);
    assert_int_equal((int)after, (int)before);
    pbh_run_free(b2);
    pbh_run_free(h2);

    /* calibrations: stored per machine, the latest found by the machine key */
    int64_t cid;
    assert_int_equal(pbh_store_insert_calibration(st, &base->ctx, "quick", "{\"cases\": []}", &cid, err, sizeof err),
                     PBH_OK);
    char *json;
    int64_t got;
    assert_int_equal(pbh_store_latest_calibration(st, &head->ctx, NULL, &json, &got, err, sizeof err), PBH_OK);
    assert_int_equal((int)got, (int)cid);
    free(json);
    pbh_run *other = machine_run("elsewhere", 2, 470e-6);
    pbh_set_str(&other->ctx.machine, "elsewhere-12345678");
    assert_int_equal(pbh_store_latest_calibration(st, &other->ctx, NULL, &json, &got, err, sizeof err), PBH_ENOTFOUND);
    pbh_run_free(other);
    pbh_run_free(base);
    pbh_run_free(head);
    pbh_store_close(st);
    unlink(path);
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path);
    unlink(wal);
}

/* ---- the injection spec ---- */

static void test_injection_spec(void **state) {
    (void)state;
    pbh_request rq;
    pbh_request_init(&rq);
    rq.suite = "quick";
    rq.scenarios[rq.nscenarios++] = "sleep";
    rq.scenarios[rq.nscenarios++] = "crash";
    pbh_plan plan;
    char err[512], glob[256];
    assert_int_equal(pbh_plan_build(&rq, &plan, err, sizeof err), PBH_OK);
    double pct = 0;
    assert_int_equal(pbh_inject_parse("sleep/threads/*:50", &plan, glob, sizeof glob, &pct, err, sizeof err), PBH_OK);
    assert_string_equal(glob, "sleep/threads/*");
    assert_true(pct == 50);
    /* matches no case, or only one that does not run (crash on threads is unsupported) */
    assert_int_equal(pbh_inject_parse("cpu/*:10", &plan, glob, sizeof glob, &pct, err, sizeof err), PBH_EINPUT);
    assert_non_null(strstr(err, "matches no case"));
    assert_int_equal(pbh_inject_parse("crash/threads/*:10", &plan, glob, sizeof glob, &pct, err, sizeof err), PBH_EINPUT);
    /* malformed */
    const char *bad[] = {"sleep/*", "sleep/*:", ":10", "sleep/*:ten", "sleep/*:0", "sleep/*:-5", "sleep/*:5000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pbh_inject_parse(bad[i], &plan, glob, sizeof glob, &pct, err, sizeof err), PBH_EINPUT);
    pbh_plan_free(&plan);
}

/* ---- the minimum detectable slowdown and the gate's use of it ---- */

static void make_obs(pbh_calib_obs *o, double wobble, double shift, unsigned salt) {
    o->nb = o->nh = 20;
    o->base = malloc(20 * sizeof *o->base);
    o->head = malloc(20 * sizeof *o->head);
    uint64_t x = 0x1234567ull + salt;
    for (int i = 0; i < 20; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        double u1 = (double)(x >> 11) * 0x1.0p-53 - 0.5;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        double u2 = (double)(x >> 11) * 0x1.0p-53 - 0.5;
        o->base[i] = 0.040 * (1 + wobble * u1);
        o->head[i] = 0.040 * (1 + shift) * (1 + wobble * u2);
    }
}

static void free_obs(pbh_calib_obs *obs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(obs[i].base);
        free(obs[i].head);
    }
}

/* Each arrangement's solved slowdown against the rule itself: pbs_compare of the arrangement's sides with
 * the head slowed by exactly that much says "regression", and 0.01 % less does not. One block per side, so
 * arrangement 0 is the observation as measured and arrangement 1 its sides exchanged. */
static void test_mds_required_is_the_rule(void **state) {
    (void)state;
    pbs_compare_opts cmp;
    pbs_compare_opts_default(&cmp);
    static const double alphas[] = {0.05, 0.01, 0.001}, thresholds[] = {0.02, 0.05, 0.10};
    for (unsigned salt = 0; salt < 6; salt++) {
        pbh_calib_obs obs[3];
        for (unsigned i = 0; i < 3; i++)
            make_obs(&obs[i], 0.02 + 0.05 * salt, (salt % 2 ? 0.03 : -0.02), 10 * salt + i);
        pbh_mds_arrangements *set = pbh_mds_arrange(obs, 3, 20, &cmp);
        assert_non_null(set);
        assert_int_equal((int)pbh_mds_count(set), 6);
        for (size_t a = 0; a < 3; a++)
            for (size_t t = 0; t < 3; t++)
                for (size_t i = 0; i < 6; i++) {
                    const pbh_calib_obs *o = &obs[i / 2];
                    const double *b = i % 2 ? o->head : o->base, *h = i % 2 ? o->base : o->head;
                    double d = pbh_mds_required(set, i, alphas[a], thresholds[t]);
                    assert_true(d >= 0 && d < 20);
                    pbs_compare_opts at = cmp;
                    at.alpha = alphas[a];
                    at.threshold = thresholds[t];
                    double slowed[20];
                    pbs_comparison c;
                    for (int j = 0; j < 20; j++)
                        slowed[j] = h[j] * (1 + d);
                    assert_int_equal(pbs_compare(b, 20, slowed, 20, &at, &c), PBS_OK);
                    assert_int_equal(c.verdict, PBS_VERDICT_REGRESSION);
                    if (d > 1e-4) {
                        for (int j = 0; j < 20; j++)
                            slowed[j] = h[j] * (1 + d - 1e-4);
                        assert_int_equal(pbs_compare(b, 20, slowed, 20, &at, &c), PBS_OK);
                        assert_int_not_equal(c.verdict, PBS_VERDICT_REGRESSION);
                    }
                    /* a confirmation round's requirement: the round holds at it, not just below, and it
                     * never asks more than the first round's */
                    double dc = pbh_mds_required_confirm(set, i, alphas[a], thresholds[t]);
                    assert_true(dc >= 0 && dc <= d + 2e-5 * (1 + d)); /* both may end in the p search's bisection */
                    for (int j = 0; j < 20; j++)
                        slowed[j] = h[j] * (1 + dc);
                    assert_int_equal(pbs_compare(b, 20, slowed, 20, &at, &c), PBS_OK);
                    assert_true(pbh_confirm_round_holds(&c, PBS_VERDICT_REGRESSION, &at));
                    if (dc > 1e-4) {
                        for (int j = 0; j < 20; j++)
                            slowed[j] = h[j] * (1 + dc - 1e-4);
                        assert_int_equal(pbs_compare(b, 20, slowed, 20, &at, &c), PBS_OK);
                        assert_false(pbh_confirm_round_holds(&c, PBS_VERDICT_REGRESSION, &at));
                    }
                }
        pbh_mds_free(set);
        free_obs(obs, 3);
    }
}

/* The noise between case processes: in every observation one head block of 5 repetitions ran 4 % slow.
 * As measured, every observation's head is slower, and +6 % is detected in all of them; but the block's
 * side was a coin's choice, and with the block on the base side +6 % is not enough. The estimate judges
 * all 2^3 arrangements of the 3 block pairs, so it sees that side too. */
static void test_mds_arranges_the_blocks(void **state) {
    (void)state;
    pbs_compare_opts cmp;
    pbs_compare_opts_default(&cmp);
    pbh_calib_obs obs[10];
    for (unsigned i = 0; i < 10; i++) {
        make_obs(&obs[i], 0.004, 0.0, 100 + i);
        obs[i].nb = obs[i].nh = 15;
        for (unsigned j = 5 * (i % 3); j < 5 * (i % 3) + 5; j++)
            obs[i].head[j] *= 1.04;
        double slowed[15];
        for (int j = 0; j < 15; j++)
            slowed[j] = obs[i].head[j] * 1.06;
        pbs_comparison c;
        assert_int_equal(pbs_compare(obs[i].base, 15, slowed, 15, &cmp, &c), PBS_OK);
        assert_int_equal(c.verdict, PBS_VERDICT_REGRESSION); /* as measured: +6 % detected */
    }
    pbh_mds_arrangements *set = pbh_mds_arrange(obs, 10, 5, &cmp);
    assert_int_equal((int)pbh_mds_count(set), 80);
    double md = pbh_mds_estimate(set, cmp.alpha, cmp.threshold, 2);
    pbh_mds_free(set);
    assert_true(md > 0.08 && md < 0.12); /* threshold + the 4 % block + the interval */
    assert_true(fabs(pbh_calibrate_min_detectable(obs, 10, 5, &cmp, 2) - md) < 1e-12);
    free_obs(obs, 10);
}

/* The estimate's margin for its own sampling error (an upper 95 % bound over resampled observations):
 * never below the estimate as measured, the same figure twice, and wide where one observation of twenty
 * carries a slow block that the point estimate can leave out of its 95 %: resamples that draw it twice
 * or three times cannot. Without the margin, stop 16's skew/spawn was estimated at 9.3 % and detected
 * +10 % in 16 of 20 trials. */
static void test_mds_bound_has_a_margin(void **state) {
    (void)state;
    pbs_compare_opts cmp;
    pbs_compare_opts_default(&cmp);
    pbh_calib_obs obs[20];
    for (unsigned i = 0; i < 20; i++) {
        make_obs(&obs[i], 0.01, 0.0, 300 + i);
        obs[i].nb = obs[i].nh = 15;
    }
    for (unsigned j = 5; j < 10; j++) /* one observation: its head's second block ran 6 % slow */
        obs[7].head[j] *= 1.06;
    pbh_mds_arrangements *set = pbh_mds_arrange(obs, 20, 5, &cmp);
    assert_non_null(set);
    double point = pbh_mds_estimate_point(set, cmp.alpha, cmp.threshold, 2);
    double bound = pbh_mds_estimate(set, cmp.alpha, cmp.threshold, 2);
    assert_true(point > 0.05 && point < 0.08); /* the slow block is within the point estimate's 5 % */
    assert_true(bound >= point + 0.01);         /* ... not within the bound's */
    assert_true(bound == pbh_mds_estimate(set, cmp.alpha, cmp.threshold, 2));
    pbh_mds_free(set);
    free_obs(obs, 20);
}

static void test_min_detectable(void **state) {
    (void)state;
    pbs_compare_opts cmp;
    pbs_compare_opts_default(&cmp);
    pbh_calib_obs quiet[10], noisy[10];
    for (unsigned i = 0; i < 10; i++) {
        make_obs(&quiet[i], 0.01, 0.0, i);                      /* +-0.5 % within a run, no drift */
        make_obs(&noisy[i], 0.30, (i % 2 ? 0.05 : -0.05), i);   /* +-15 %, and the pairs drift +-5 % */
    }
    double q = pbh_calibrate_min_detectable(quiet, 10, 5, &cmp, 2);
    double n = pbh_calibrate_min_detectable(noisy, 10, 5, &cmp, 2);
    /* a change must clear the threshold plus the CI: just above 5 % when quiet; far more when noisy */
    assert_true(q > 0.05 && q < 0.08);
    assert_true(n > 2 * q);
    assert_true(pbh_calibrate_min_detectable(quiet, 2, 5, &cmp, 2) == 0); /* too few observations */
    /* more confirmation rounds need more power per round: never a smaller slowdown */
    assert_true(pbh_calibrate_min_detectable(noisy, 10, 5, &cmp, 4) >= n);

    /* the settings sweep re-judges the same observations: a stricter alpha never flags more, a higher
     * threshold never flags more, and the quiet case is judgeable at 5 % where the noisy one is not */
    pbh_calibration cal;
    memset(&cal, 0, sizeof cal);
    pbh_calib_case cases2[2];
    memset(cases2, 0, sizeof cases2);
    cases2[0].obs = quiet;
    cases2[0].nobs = 10;
    cases2[1].obs = noisy;
    cases2[1].nobs = 10;
    cal.cases = cases2;
    cal.ncases = 2;
    pbh_calibrate_opts co;
    pbh_calibrate_opts_default(&co);
    pbh_calibrate_sweep(&cal, &co);
    assert_int_equal((int)cal.nsweep, 9);
    for (size_t i = 0; i < 9; i++) {
        const pbh_calib_setting *st = &cal.sweep[i];
        assert_int_equal(st->aa_verdicts, 20);
        assert_int_equal(st->cases, 2);
        if (i >= 3) /* alpha 0.01 after 0.05, 0.001 after 0.01, same threshold */
            assert_true(st->aa_flagged <= cal.sweep[i - 3].aa_flagged);
        if (i % 3)
            assert_true(st->aa_flagged <= cal.sweep[i - 1].aa_flagged);
    }
    /* alpha 0.01, threshold 5 % (index 4): the quiet case (min. detectable just over 5 %) alone is judgeable */
    assert_true(fabs(cal.sweep[4].alpha - 0.01) < 1e-12 && fabs(cal.sweep[4].threshold - 0.05) < 1e-12);
    assert_int_equal(cal.sweep[4].judgeable, 1);
    assert_true(cal.sweep[4].median_min_detectable > q);

    /* the gate reads it back per case */
    pbh_run *base = pbh_run_new(), *head = pbh_run_new();
    add_case(base, "quiet/case", 0.040, 20);
    add_case(head, "quiet/case", 0.040, 20);
    add_case(base, "noisy/case", 0.040, 20);
    add_case(head, "noisy/case", 0.040, 20);
    pbh_comparison c;
    assert_int_equal(pbh_compare_runs(base, head, NULL, &c), 0);
    pbh_calibration_annotate(&c, "{\"cases\": [{\"case\": \"quiet/case\", \"min_detectable\": 0.06},"
                                 " {\"case\": \"noisy/case\", \"min_detectable\": 0.35}]}", 9);
    assert_int_equal((int)c.calibration_id, 9);
    assert_true(pbh_compare_can_judge(&c, &c.cases[0]));
    assert_false(pbh_compare_can_judge(&c, &c.cases[1]));
    char *text = pbh_compare_format_table(&c);
    assert_non_null(strstr(text, "too noisy here to judge 5%"));
    assert_non_null(strstr(text, "noisy/case: detectable from 35%"));
    assert_null(strstr(text, "quiet/case: detectable"));
    free(text);
    pbh_comparison_free(&c);
    pbh_run_free(base);
    pbh_run_free(head);
    for (int i = 0; i < 10; i++) {
        free(quiet[i].base);
        free(quiet[i].head);
        free(noisy[i].base);
        free(noisy[i].head);
    }
}

/* a stored calibration reads back as it was written (`calibrate --show` prints it in any format) */
static void test_calibration_json_round_trip(void **state) {
    (void)state;
    pbh_calibration c;
    memset(&c, 0, sizeof c);
    pbh_calibrate_opts_default(&c.opts);
    c.opts.nsizes = 2;
    c.opts.sizes[0] = 10;
    c.opts.trials[0] = 20;
    c.opts.sizes[1] = 3;
    c.opts.trials[1] = 5;
    c.sessions = 71;
    c.aa_sessions = 20;
    c.aa_verdicts = 520;
    c.aa_flagged = 3;
    c.inj_sessions = 50;
    c.inj_other_verdicts = 650;
    c.inj_other_flagged = 2;
    c.plain_run_s = 27.5;
    c.session_s_median = 52.25;
    c.duration_s = 6000;
    c.started_at = strdup("2026-12-01T11:47:15Z");
    c.host = strdup("vm");
    c.cpu_model = strdup("AMD EPYC");
    c.kernel = strdup("Linux 6.18");
    c.suite = strdup("quick");
    c.cores = 2;
    c.ncases = 2;
    c.cases = calloc(2, sizeof *c.cases);
    c.cases[0].name = strdup("sleep/serial/w1/items=4,ms=20");
    c.cases[0].runnable = 1;
    c.cases[0].aa_obs = 45;
    c.cases[0].aa_flagged = 1;
    c.cases[0].noise = 0.004;
    c.cases[0].spread = 0.001;
    c.cases[0].min_detectable = 0.0625;
    c.cases[0].trials[0] = 20;
    c.cases[0].detected[0] = 19;
    c.cases[0].trials[1] = 5;
    c.cases[0].improvement[1] = 0;
    /* its injected trials: one detected (rounds kept, samples not), one missed in a confirmation round
     * (samples of both rounds kept), one +3 % reported as an improvement */
    c.cases[0].ntri = 3;
    c.cases[0].tri = calloc(3, sizeof *c.cases[0].tri);
    pbh_calib_trial *t = c.cases[0].tri;
    t[0] = (pbh_calib_trial){.pct = 10, .session = 4, .final = PBS_VERDICT_REGRESSION, .nrounds = 3};
    for (int r = 0; r < 3; r++)
        t[0].round[r] = (pbh_calib_round){PBS_VERDICT_REGRESSION, 0.1, 0.095, 0.105, 3.4e-6, 1};
    t[1] = (pbh_calib_trial){.pct = 10, .session = 9, .final = PBS_VERDICT_WITHIN_NOISE, .nrounds = 2};
    t[1].round[0] = (pbh_calib_round){PBS_VERDICT_REGRESSION, 0.1, 0.097, 0.103, 3.4e-6, 1};
    t[1].round[1] = (pbh_calib_round){PBS_VERDICT_NO_CHANGE, 0.012, -0.02, 0.11, 0.2, 0};
    t[1].nsamples = 2;
    t[1].samples = calloc(2, sizeof *t[1].samples);
    for (int r = 0; r < 2; r++) {
        pbh_calib_obs *o = &t[1].samples[r];
        o->nb = o->nh = 2;
        o->base = malloc(2 * sizeof *o->base);
        o->head = malloc(2 * sizeof *o->head);
        o->base[0] = o->base[1] = 0.02;
        o->head[0] = 0.022;
        o->head[1] = r ? 0.0201 : 0.022;
    }
    t[2] = (pbh_calib_trial){.pct = 3, .session = 12, .final = PBS_VERDICT_IMPROVEMENT, .nrounds = 1};
    t[2].round[0] = (pbh_calib_round){PBS_VERDICT_IMPROVEMENT, -0.08, -0.12, -0.06, 0.004, 1};
    c.cases[1].name = strdup("crash/threads/w2/items=16");
    c.nsweep = 1;
    c.sweep[0] = (pbh_calib_setting){0.05, 0.02, 520, 9, 26, 4, 0.125};
    char *json = pbh_calibration_format_json(&c);
    pbh_calibration back;
    assert_int_equal(pbh_calibration_parse_json(json, &back), PBH_OK);
    char *again = pbh_calibration_format_json(&back);
    assert_string_equal(json, again); /* every field the JSON carries survived */
    char *a = pbh_calibration_format_goals(&c, 1), *b = pbh_calibration_format_goals(&back, 1);
    assert_string_equal(a, b); /* and the goals table (which needs the summary counts) is the same */
    assert_non_null(strstr(b, "3 of 520 case verdicts"));
    /* the missed trials are listed round by round; the detected one is not */
    assert_non_null(strstr(b, "- `sleep/serial/w1/items=4,ms=20` +10% (session 9): regression +10.0% [+9.7%, +10.3%] "
                              "p 3.4e-06; not held +1.2% [-2.0%, +11.0%] p 0.2 => within_noise\n"));
    assert_non_null(strstr(b, "+3% (session 12): improvement -8.0% [-12.0%, -6.0%] p 0.004 => improvement"));
    assert_null(strstr(b, "(session 4)"));
    assert_int_equal((int)back.cases[0].ntri, 3);
    assert_int_equal((int)back.cases[0].tri[1].nsamples, 2);
    assert_true(back.cases[0].tri[1].samples[1].head[1] == 0.0201);
    assert_int_equal((int)back.cases[0].tri[0].nsamples, 0);
    free(a);
    free(b);
    free(again);
    free(json);
    pbh_calibration_free(&back);
    pbh_calibration_free(&c);
    assert_int_equal(pbh_calibration_parse_json("{\"format\": \"something-else\"}", &back), PBH_EINPUT);
    assert_int_equal(pbh_calibration_parse_json("not json", &back), PBH_EINPUT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_is_balanced_seeded_and_interleaved),
        cmocka_unit_test(test_ab_case_follows_the_order),
        cmocka_unit_test(test_machine_mismatch),
        cmocka_unit_test(test_confirm_round_rule),
        cmocka_unit_test(test_confirm_pair_remeasures_both_sides),
        cmocka_unit_test(test_pair_storage_and_migration),
        cmocka_unit_test(test_injection_spec),
        cmocka_unit_test(test_min_detectable),
        cmocka_unit_test(test_mds_required_is_the_rule),
        cmocka_unit_test(test_mds_arranges_the_blocks),
        cmocka_unit_test(test_mds_bound_has_a_margin),
        cmocka_unit_test(test_calibration_json_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
