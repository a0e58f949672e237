/*
 * cli_run_pair.c - `poolbench run ... --against OTHER`: the same plan measured by another build's poolbench
 * (the base) and by this one (the head), interleaved block by block (abrun.h), stored as two runs linked
 * as a pair in one transaction (store.h).
 *
 * Before anything is measured, OTHER must prove it is a poolbench that speaks our case protocol:
 * `OTHER version --json` (schema, exec protocol, its commit and build), or, for builds older than the
 * `version` verb, `OTHER exec --help` naming itself (protocol 1, the only one before `version` existed;
 * its commit is then $POOLBENCH_AGAINST_GIT_COMMIT, or unknown). $POOLBENCH_AGAINST_GIT_COMMIT, when set,
 * always names OTHER's commit: ci-perf-check builds the base from an exported tree that has no .git. Anything else - not executable, not a
 * poolbench, another exec protocol, a newer store schema - is bad input: exit 2, nothing stored.
 * Also here: the validation hook's environment variable, POOLBENCH_INJECT_SLOWDOWN='CASE-GLOB:PCT', which
 * injects into the matching case processes of the head side only (or of the run, without --against).
 */
#include "abrun.h"
#include "child.h"
#include "cli.h"
#include "common.h"
#include "run_pair.h"
#include "format.h"
#include "store.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs OTHER with args (30 s at most), stdout in out; 1 when it exited 0. */
static int ask(const char *exe, char *const argv[], char *out, size_t cap) {
    return pbh_child_capture(exe, argv, PBH_CHILD_OWN_GROUP | PBH_CHILD_STDERR_NULL, pbs_now() + 30.0, out, cap) == 0;
}

int pbh_cli_probe_other(const char *exe, pbh_context *base_ctx) {
    struct stat sb;
    if (stat(exe, &sb) != 0 || !S_ISREG(sb.st_mode) || access(exe, X_OK) != 0) {
        pbh_cli_error("--against '%s': not an executable file", exe);
        return PBH_EXIT_USAGE;
    }
    /* OTHER's own commit, not the one this process may have been told to report */
    char *saved_commit = getenv("POOLBENCH_GIT_COMMIT") ? pbh_strdup(getenv("POOLBENCH_GIT_COMMIT")) : NULL;
    char *saved_dirty = getenv("POOLBENCH_GIT_DIRTY") ? pbh_strdup(getenv("POOLBENCH_GIT_DIRTY")) : NULL;
    unsetenv("POOLBENCH_GIT_COMMIT");
    unsetenv("POOLBENCH_GIT_DIRTY");
    static char out[65536];
    char *version_argv[] = {"poolbench", "version", "--json", NULL};
    int answered = ask(exe, version_argv, out, sizeof out);
    if (saved_commit)
        setenv("POOLBENCH_GIT_COMMIT", saved_commit, 1);
    if (saved_dirty)
        setenv("POOLBENCH_GIT_DIRTY", saved_dirty, 1);
    free(saved_commit);
    free(saved_dirty);

    int ec = PBH_EXIT_OK;
    json_t *v = answered ? json_loads(out, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    const char *program = v ? json_string_value(json_object_get(v, "program")) : NULL;
    if (program && strcmp(program, "poolbench") == 0) {
        json_int_t proto = json_integer_value(json_object_get(v, "exec_protocol"));
        json_int_t schema = json_integer_value(json_object_get(v, "schema"));
        if (proto != PBH_EXEC_PROTOCOL) {
            pbh_cli_error("--against '%s' speaks exec protocol %lld, this poolbench %d: they cannot be measured "
                          "side by side; build both from compatible commits", exe, (long long)proto, PBH_EXEC_PROTOCOL);
            ec = PBH_EXIT_USAGE;
        } else if (schema > PBH_SCHEMA_VERSION) {
            pbh_cli_error("--against '%s' writes store schema %lld, newer than this poolbench's %d: run the pair "
                          "from the newer build (its store understands both)", exe, (long long)schema,
                          PBH_SCHEMA_VERSION);
            ec = PBH_EXIT_USAGE;
        } else {
            /* a build from an exported tree (ci-perf-check's base) knows no commit: the caller says it */
            const char *commit = json_string_value(json_object_get(v, "git_commit"));
            const char *told = getenv("POOLBENCH_AGAINST_GIT_COMMIT");
            json_t *dirty = json_object_get(v, "git_dirty");
            pbh_set_str(&base_ctx->git_commit, told && *told ? told : commit);
            base_ctx->git_dirty = told && *told ? 0 : json_is_boolean(dirty) ? json_is_true(dirty) : -1;
            const char *facts[][2] = {{"compiler", NULL}, {"cflags", NULL}, {"build_type", NULL}, {"version", NULL}};
            char **dst[] = {&base_ctx->compiler, &base_ctx->cflags, &base_ctx->build_type, &base_ctx->version};
            for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++) {
                facts[i][1] = json_string_value(json_object_get(v, facts[i][0]));
                if (facts[i][1])
                    pbh_set_str(dst[i], facts[i][1]);
            }
        }
    } else {
        char *help_argv[] = {"poolbench", "exec", "--help", NULL};
        if (ask(exe, help_argv, out, sizeof out) && strstr(out, "usage: poolbench exec")) {
            /* a poolbench from before `version`: exec protocol 1, commit as told (or unknown) */
            const char *commit = getenv("POOLBENCH_AGAINST_GIT_COMMIT");
            pbh_set_str(&base_ctx->git_commit, commit && *commit ? commit : NULL);
            base_ctx->git_dirty = -1;
            pbh_set_str(&base_ctx->version, NULL);
        } else {
            pbh_cli_error("--against '%s' is not a poolbench executable (it answers neither `version --json` nor "
                          "`exec --help` as poolbench does)", exe);
            ec = PBH_EXIT_USAGE;
        }
    }
    json_decref(v);
    return ec;
}

int pbh_cli_injection_from_env(const pbh_plan *plan, pbh_child_executor *ce) {
    const char *spec = getenv("POOLBENCH_INJECT_SLOWDOWN");
    if (!spec || !*spec)
        return PBH_EXIT_OK;
    char err[512];
    if (pbh_inject_parse(spec, plan, ce->inject_glob, sizeof ce->inject_glob, &ce->inject_pct, err, sizeof err) !=
        PBH_OK) {
        pbh_cli_error("POOLBENCH_INJECT_SLOWDOWN: %s", err);
        return PBH_EXIT_USAGE;
    }
    fprintf(stderr, "poolbench: validation hook: cases matching '%s' run %g%% slower (busy-wait in the measured phase)\n",
            ce->inject_glob, ce->inject_pct);
    return PBH_EXIT_OK;
}

uint64_t pbh_cli_fresh_seed(void) {
    /* the wall clock's nanoseconds and our pid: different for every pair, recorded so it can be replayed */
    return (uint64_t)(pbh_now_unix() * 1e9) ^ ((uint64_t)getpid() << 32);
}

int pbh_cli_run_pair(const pbh_plan *plan, pbh_store *st, pbh_run *head, const pbh_cli_pair_opts *o,
                     pbh_progress_fn progress, void *progress_ud) {
    pbh_run *base = pbh_run_new();
    if (!base || pbh_context_collect(&base->ctx, 0, NULL) != 0) {
        pbh_run_free(base);
        pbh_cli_error("out of memory");
        return PBH_EXIT_FAILED;
    }
    int ec = pbh_cli_probe_other(o->other, &base->ctx);
    pbh_child_executor base_ce, head_ce;
    pbh_executor base_ex, head_ex;
    pbh_child_executor_init_exe(&base_ce, &base_ex, o->other);
    pbh_child_executor_init(&head_ce, &head_ex);
    if (ec == PBH_EXIT_OK)
        ec = pbh_cli_injection_from_env(plan, &head_ce);
    if (ec != PBH_EXIT_OK) {
        pbh_run_free(base);
        return ec;
    }
    pbh_set_str(&base->ctx.command_line, head->ctx.command_line);
    pbh_set_str(&base->ctx.machine, head->ctx.machine); /* one machine measured both sides (--machine too) */
    pbh_set_str(&base->label, o->base_label);
    pbh_set_str(&base->suite, head->suite);
    pbh_set_str(&base->source, PBH_SOURCE_NATIVE);

    pbh_pair pair;
    memset(&pair, 0, sizeof pair);
    pair.seed = o->order_seed;
    pair.block_reps = o->block_reps > 0 ? o->block_reps : PBH_AB_DEFAULT_BLOCK_REPS;
    char *real = realpath(o->other, NULL);
    snprintf(pair.base_exe, sizeof pair.base_exe, "%s", real ? real : o->other);
    free(real);
    snprintf(pair.head_exe, sizeof pair.head_exe, "%s", head_ce.self_exe);
    if (head_ce.inject_pct > 0)
        snprintf(pair.injected, sizeof pair.injected, "%s:%g", head_ce.inject_glob, head_ce.inject_pct);

    pbh_ab_opts ab = {.seed = pair.seed, .block_reps = pair.block_reps};
    if (!o->quiet && isatty(STDERR_FILENO))
        fprintf(stderr, "running %zu cases as an interleaved pair: base %s, head this build (order seed %llu)\n",
                plan->n, pair.base_exe, (unsigned long long)pair.seed);
    int rc = pbh_ab_run(plan, &base_ex, &head_ex, &ab, base, head, progress, progress_ud);
    if (pbh_runner_interrupted()) {
        pbh_cli_error("interrupted: nothing was stored");
        pbh_run_free(base);
        return PBH_EXIT_FAILED;
    }
    char err[1024];
    if (rc == PBH_OK)
        rc = pbh_store_insert_pair(st, base, head, &pair, err, sizeof err);
    else
        snprintf(err, sizeof err, "out of memory");
    if (rc != PBH_OK) {
        pbh_cli_error("%s", err);
        pbh_run_free(base);
        return PBH_EXIT_FAILED;
    }
    if (o->quiet) {
        printf("%lld %lld\n", (long long)base->id, (long long)head->id);
    } else if (o->format && strcmp(o->format, "json") == 0) {
        printf("{\"pair\":%lld,\"base_run\":%lld,\"head_run\":%lld,\"order_seed\":%llu,\"block_reps\":%d}\n",
               (long long)pair.id, (long long)base->id, (long long)head->id, (unsigned long long)pair.seed,
               pair.block_reps);
    } else {
        char *text = pbh_format_run_table(head);
        fputs(text ? text : "", stdout);
        free(text);
        printf("\nstored as pair %lld: base run %lld%s%s (%s), head run %lld%s%s (this build); order seed %llu, "
               "blocks of %d repetitions\ncompare them with: poolbench compare %lld\n",
               (long long)pair.id, (long long)base->id, base->label ? " " : "", base->label ? base->label : "",
               pair.base_exe, (long long)head->id, head->label ? " " : "", head->label ? head->label : "",
               (unsigned long long)pair.seed, pair.block_reps, (long long)head->id);
    }
    fflush(stdout);
    ec = strcmp(base->status, "ok") == 0 && strcmp(head->status, "ok") == 0 ? PBH_EXIT_OK : PBH_EXIT_FAILED;
    pbh_run_free(base);
    return ec;
}
