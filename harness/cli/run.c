/*
 * run.c - `poolbench run`: expands a suite or a matrix, runs every case in its own child process,
 * stores the run with every raw sample in one transaction, and prints the run id and a table.
 *
 * Order matters for the guarantees: the flags and the plan are checked first and the store is opened
 * (validated, migrated) before anything runs, so bad input costs nothing and leaves the store untouched;
 * the run is written only at the end, in one transaction, so an interrupted or killed run leaves no
 * half run. SIGINT/SIGTERM stop the run after killing the current case; nothing is stored then.
 * Progress (cases done of total, time left) goes to stderr when it is a TTY and --quiet is not given.
 */
#include "cli.h"
#include "run_pair.h"
#include "context.h"
#include "format.h"
#include "runner.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: poolbench run [--suite NAME] [--scenario S[,S]] [--backend B[,B]] [--workers N[,N]]\n"
    "                     [--param k=v[,v]]... [--reps R] [--warmup W] [--processes P] [--label L] [--store PATH]\n"
    "                     [--machine NAME]\n"
    "                     [--json FILE] [--format table|json|markdown] [--quiet] [--case-timeout SEC] [--seed N]\n"
    "Runs a suite (default: 'default') or the matrix scenario x backend x workers x params, each case in its own\n"
    "process, and stores the run with every raw sample (default store: $POOLBENCH_STORE, else\n"
    "results/poolbench.db). With --suite, --scenario/--backend filter the suite and --workers/--param/--reps/\n"
    "--warmup override it. A comma list in --param sweeps the values. --quiet prints only the run id.\n"
    "--processes P spreads a case's repetitions over P case processes (default 1), each with its own warm-up.\n"
    "--against OTHER [--against-label L] [--block N] [--order-seed N]: measure every case with OTHER (another\n"
    "build's poolbench: the base) and this build (the head), their repetitions interleaved in blocks of N\n"
    "(default 5) in a seeded random order; stores two runs linked as a pair (labels: base / head by default).\n"
    "A pair measures the suite's pair repetitions per side (quick: 15 of its 20) unless --reps is given.\n"
    "POOLBENCH_INJECT_SLOWDOWN='CASE-GLOB:PCT' (validation) slows matching cases of this build by PCT %%.\n"
    "Exit: 0 ok, 2 bad input or store, 3 a case failed or timed out (the run is still stored).\n";

typedef struct progress {
    int on;
    size_t width;
} progress;

static void show_progress(void *ud, size_t i, size_t n, const pbh_case *c, double elapsed) {
    progress *p = ud;
    if (!p->on)
        return;
    /* cases done so far: a starting case (no status yet) is not done */
    size_t done = c->status ? i : i - 1;
    char line[512], left[32];
    if (done) {
        double l = elapsed / (double)done * (double)(n - done);
        snprintf(left, sizeof left, "~%d:%02d", (int)l / 60, (int)l % 60);
    } else {
        snprintf(left, sizeof left, "?");
    }
    int len = snprintf(line, sizeof line, "[%zu/%zu done] %s %s  elapsed %d:%02d  left %s", done, n,
                       c->name ? c->name : "?", c->status ? c->status : "running", (int)elapsed / 60,
                       (int)elapsed % 60, left);
    if (len < 0)
        return;
    /* rewrite one line in place; pad over a longer previous line */
    fprintf(stderr, "\r%s", line);
    if ((size_t)len < p->width)
        fprintf(stderr, "%*s", (int)(p->width - (size_t)len), "");
    p->width = (size_t)len;
    if (done == n)
        fprintf(stderr, "\r%*s\r", (int)p->width, "");
    fflush(stderr);
}

/* Appends the pieces of a comma list to list (pointers into arg, which is modified). */
static int add_list(char *arg, const char **list, size_t *n) {
    for (char *tok = strtok(arg, ","); tok; tok = strtok(NULL, ",")) {
        if (*n == PBH_MAX_LIST)
            return -1;
        list[(*n)++] = tok;
    }
    return 0;
}

int pbh_cmd_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"suite", required_argument, NULL, 'S'},   {"scenario", required_argument, NULL, 's'},
        {"backend", required_argument, NULL, 'b'}, {"workers", required_argument, NULL, 'w'},
        {"param", required_argument, NULL, 'p'},   {"reps", required_argument, NULL, 'r'},
        {"warmup", required_argument, NULL, 'W'},  {"label", required_argument, NULL, 'l'},
        {"store", required_argument, NULL, 'd'},   {"json", required_argument, NULL, 'j'},
        {"format", required_argument, NULL, 'f'},  {"quiet", no_argument, NULL, 'q'},
        {"case-timeout", required_argument, NULL, 't'}, {"seed", required_argument, NULL, 'e'},
        {"processes", required_argument, NULL, 'P'}, {"machine", required_argument, NULL, 'M'},
        {"against", required_argument, NULL, 'A'}, {"against-label", required_argument, NULL, 'B'},
        {"block", required_argument, NULL, 'K'},   {"order-seed", required_argument, NULL, 'O'},
        {"help", no_argument, NULL, 'h'},          {0}};
    pbh_request rq;
    pbh_request_init(&rq);
    const char *machine = NULL;
    const char *label = NULL, *store_flag = NULL, *json_file = NULL, *format = "table";
    int quiet = 0;
    pbh_cli_pair_opts pair = {.base_label = "base", .order_seed = pbh_cli_fresh_seed()}; /* --against */
    int c;
    while ((c = getopt_long(argc, argv, "s:b:w:p:r:l:qh", opts, NULL)) != -1) {
        long v;
        switch (c) {
        case 'S':
            rq.suite = optarg;
            break;
        case 's':
            if (add_list(optarg, rq.scenarios, &rq.nscenarios))
                return pbh_cli_usage_error("run", "too many scenarios");
            break;
        case 'b':
            if (add_list(optarg, rq.backends, &rq.nbackends))
                return pbh_cli_usage_error("run", "too many backends");
            break;
        case 'w': {
            const char *pieces[PBH_MAX_LIST];
            size_t n = 0;
            char *copy = optarg;
            if (add_list(copy, pieces, &n))
                return pbh_cli_usage_error("run", "too many worker counts");
            for (size_t i = 0; i < n; i++) {
                if (pbh_cli_parse_int(pieces[i], 1, 4096, &v) || rq.nworkers == PBH_MAX_LIST)
                    return pbh_cli_usage_error("run", "bad --workers '%s': expected numbers in 1..4096", pieces[i]);
                rq.workers[rq.nworkers++] = (int)v;
            }
            break;
        }
        case 'p':
            if (rq.nparams == PBH_MAX_LIST)
                return pbh_cli_usage_error("run", "too many --param flags");
            rq.params[rq.nparams++] = optarg;
            break;
        case 'r':
            if (pbh_cli_parse_int(optarg, 1, 100000, &v))
                return pbh_cli_usage_error("run", "bad --reps '%s': expected 1..100000", optarg);
            rq.reps = (int)v;
            break;
        case 'W':
            if (pbh_cli_parse_int(optarg, 0, 1000, &v))
                return pbh_cli_usage_error("run", "bad --warmup '%s': expected 0..1000", optarg);
            rq.warmup = (int)v;
            break;
        case 'P':
            if (pbh_cli_parse_int(optarg, 1, 1000, &v))
                return pbh_cli_usage_error("run", "bad --processes '%s': expected 1..1000", optarg);
            rq.processes = (int)v;
            break;
        case 'M':
            if (!pbh_machine_name_valid(optarg))
                return pbh_cli_bad_machine("run", optarg);
            machine = optarg;
            break;
        case 'l':
            label = optarg;
            break;
        case 'd':
            store_flag = optarg;
            break;
        case 'j':
            json_file = optarg;
            break;
        case 'f':
            format = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 't':
            if (pbh_cli_parse_double(optarg, 0.001, 86400 * 7, &rq.case_timeout_s))
                return pbh_cli_usage_error("run", "bad --case-timeout '%s': expected seconds > 0", optarg);
            break;
        case 'e': {
            char *end;
            rq.seed = strtoull(optarg, &end, 0);
            if (!*optarg || *end)
                return pbh_cli_usage_error("run", "bad --seed '%s'", optarg);
            break;
        }
        case 'A':
            pair.other = optarg;
            break;
        case 'B':
            pair.base_label = optarg;
            break;
        case 'K':
            if (pbh_cli_parse_int(optarg, 1, 100000, &v))
                return pbh_cli_usage_error("run", "bad --block '%s': expected 1..100000 repetitions", optarg);
            pair.block_reps = (int)v;
            break;
        case 'O': {
            char *end;
            pair.order_seed = strtoull(optarg, &end, 0);
            if (!*optarg || *end)
                return pbh_cli_usage_error("run", "bad --order-seed '%s'", optarg);
            break;
        }
        case 'h':
            fputs(usage, stdout);
            return PBH_EXIT_OK;
        default:
            return pbh_cli_usage_error("run", "bad arguments to run");
        }
    }
    if (optind < argc)
        return pbh_cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0 && strcmp(format, "markdown") != 0)
        return pbh_cli_usage_error("run", "unknown --format '%s' (table, json or markdown)", format);
    if (label && !*label)
        return pbh_cli_usage_error("run", "empty --label");

    char err[1024];
    pbh_plan plan;
    rq.pair = pair.other != NULL; /* a pair measures the suite's pair_reps per side (suites.h) */
    int rc = pbh_plan_build(&rq, &plan, err, sizeof err);
    if (rc != PBH_OK) {
        pbh_cli_error("%s", err);
        return pbh_cli_exit_for(rc);
    }
    pbh_child_executor ce;
    pbh_executor ex;
    pbh_child_executor_init(&ce, &ex);
    if (!pair.other && (rc = pbh_cli_injection_from_env(&plan, &ce)) != PBH_EXIT_OK) {
        pbh_plan_free(&plan);
        return rc;
    }
    if (pair.other) { /* OTHER must prove it is a compatible poolbench before the store is touched */
        pbh_context probe = {0};
        rc = pbh_cli_probe_other(pair.other, &probe);
        pbh_context_clear(&probe);
        if (rc != PBH_EXIT_OK) {
            pbh_plan_free(&plan);
            return rc;
        }
    }
    pbh_store *st = NULL;
    int ec = pbh_cli_open_store(store_flag, PBH_STORE_WRITE, &st);
    if (ec != PBH_EXIT_OK) {
        pbh_plan_free(&plan);
        return ec;
    }

    pbh_run *run = pbh_run_new();
    if (!run || pbh_context_collect(&run->ctx, argc, argv) != 0) {
        pbh_cli_error("out of memory");
        pbh_run_free(run);
        pbh_store_close(st);
        pbh_plan_free(&plan);
        return PBH_EXIT_FAILED;
    }
    /* the command line as the user typed it: put the program name back in front of the verb */
    {
        char **full = calloc((size_t)argc + 2, sizeof *full);
        if (full) {
            full[0] = "poolbench";
            for (int i = 0; i < argc; i++)
                full[i + 1] = argv[i];
            free(run->ctx.command_line);
            run->ctx.command_line = pbh_join_argv(argc + 1, full);
            free(full);
        }
    }
    if (machine)
        pbh_set_str(&run->ctx.machine, machine);
    run->label = pbh_strdup(label);
    run->suite = plan.suite ? pbh_strdup(plan.suite->name) : NULL;
    run->source = pbh_strdup(PBH_SOURCE_NATIVE);

    struct sigaction old_handlers[2];
    pbh_cli_catch_interrupts(old_handlers);

    progress prog = {.on = !quiet && isatty(STDERR_FILENO), .width = 0};
    if (pair.other) { /* --against: an interleaved A/B pair (cli_run_pair.c) */
        pair.quiet = quiet;
        pair.format = format;
        if (!label)
            pbh_set_str(&run->label, "head");
        ec = pbh_cli_run_pair(&plan, st, run, &pair, show_progress, &prog);
        pbh_cli_restore_interrupts(old_handlers);
        pbh_plan_free(&plan);
        pbh_store_close(st);
        pbh_run_free(run);
        return ec;
    }
    if (prog.on)
        fprintf(stderr, "running %zu cases%s%s (floors first)\n", plan.n, plan.suite ? " of suite " : "",
                plan.suite ? plan.suite->name : "");
    rc = pbh_runner_run(&plan, &ex, run, show_progress, &prog);
    pbh_cli_restore_interrupts(old_handlers);
    pbh_plan_free(&plan);

    if (pbh_runner_interrupted()) {
        pbh_cli_error("interrupted: nothing was stored");
        pbh_run_free(run);
        pbh_store_close(st);
        return PBH_EXIT_FAILED;
    }
    if (rc != PBH_OK) {
        pbh_cli_error("out of memory");
        pbh_run_free(run);
        pbh_store_close(st);
        return PBH_EXIT_FAILED;
    }
    rc = pbh_store_insert_run(st, run, err, sizeof err);
    pbh_store_close(st);
    if (rc != PBH_OK) {
        pbh_cli_error("%s", err);
        pbh_run_free(run);
        return PBH_EXIT_FAILED;
    }
    ec = PBH_EXIT_OK;
    if (json_file) {
        char *text = pbh_format_run_json(run);
        ec = pbh_cli_write_output(json_file, text);
        free(text);
    }
    if (quiet) {
        printf("%lld\n", (long long)run->id);
    } else {
        char *text = strcmp(format, "json") == 0       ? pbh_format_run_json(run)
                     : strcmp(format, "markdown") == 0 ? pbh_format_run_markdown(run)
                                                       : pbh_format_run_table(run);
        int wc = pbh_cli_write_output(NULL, text);
        free(text);
        if (ec == PBH_EXIT_OK)
            ec = wc;
        if (strcmp(format, "table") == 0)
            printf("\nstored as run %lld\n", (long long)run->id);
    }
    fflush(stdout);
    if (ec == PBH_EXIT_OK && strcmp(run->status, "ok") != 0)
        ec = PBH_EXIT_FAILED;
    pbh_run_free(run);
    return ec;
}
