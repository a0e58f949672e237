/*
 * cli_calibrate.c - `poolbench calibrate`: measures how often this harness is wrong on this machine and
 * suite (calibrate.h), stores the result in the store's calibrations table (the gate reads it back to say
 * which cases this machine can judge), and prints it. `--validate` runs the design that checks the
 * project's goals (docs/verdicts.md): 20 A/A pairs, +10 % injected in 20 trials per case, +3 % in 5, and
 * one plain run as the wall-time yardstick, and prints the goals table. `--show` measures nothing: it prints
 * the latest calibration stored for this machine (or --machine NAME), as the gate and the report read it;
 * `--show --reestimate` recomputes its per-case figures from the A/A samples it keeps, with this build's
 * estimator, and prints them without storing (a better estimator need not wait for hours of measuring).
 */
#include "calibrate.h"
#include "cli.h"
#include "store.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: poolbench calibrate [--suite NAME] [--scenario S[,S]] [--backend B[,B]] [--reps R]\n"
    "                           [--pairs K] [--inject PCT[,PCT]] [--trials T] [--groups G] [--block N]\n"
    "                           [--alpha A] [--threshold PCT] [--confirm N] [--seed N] [--validate]\n"
    "                           [--machine NAME] [--format table|json|markdown] [--store PATH] [--output FILE]\n"
    "       poolbench calibrate --show [--reestimate] [--machine NAME] [--format table|json|markdown] [--store PATH]\n"
    "Measures this machine's verdict quality: K A/A pairs (default 10) of this build against itself, run as\n"
    "interleaved pairs and judged as the gate judges (alpha 0.01, threshold 5%, --confirm 2), and sessions with a\n"
    "real slowdown injected into one group of G cases at a time (default 5,10,20 %, T=1 trial per case and size).\n"
    "Per case: run-to-run noise, false alarms, detection rate, minimum detectable slowdown (>= 95% power).\n"
    "Stored in the store under this machine's key (--machine NAME, else $POOLBENCH_MACHINE, else derived); the\n"
    "gate then says which cases this machine can judge. --show: print the latest stored one, measure nothing;\n"
    "with --reestimate, its figures estimated again by this build from the A/A samples it keeps (nothing stored).\n"
    "--validate: 20 A/A pairs, +10% in 20 trials per case, +3% in 5, one plain run; prints the goals table.\n"
    "Takes long: each session is two runs of the suite. Ctrl-C stops after the current session and reports (and\n"
    "stores) the sessions completed. Exit: 0 done, 2 bad input, 3 interrupted.\n";

static void show(void *ud, int i, int n, const char *what, double elapsed) {
    (void)ud;
    fprintf(stderr, "calibrate: session %d/%d (%s), %d:%02d elapsed\n", i, n, what, (int)elapsed / 60,
            (int)elapsed % 60);
}

static int parse_sizes(char *arg, pbh_calibrate_opts *o) {
    o->nsizes = 0;
    for (char *save = NULL, *t = strtok_r(arg, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        double v;
        if (o->nsizes == PBH_CALIBRATE_MAX_SIZES || pbh_cli_parse_double(t, 0.01, 1000, &v))
            return -1;
        o->trials[o->nsizes] = 1;
        o->sizes[o->nsizes++] = v;
    }
    return o->nsizes ? 0 : -1;
}

/* `--show`: the latest calibration stored under this machine's key (or --machine's), in the chosen format. */
static int show_latest(const char *store_flag, const char *machine, const char *format, const char *output,
                       int reestimate) {
    pbh_store *st = NULL;
    int ec = pbh_cli_open_store(store_flag, PBH_STORE_READ, &st);
    if (ec != PBH_EXIT_OK)
        return ec;
    pbh_context here;
    if (pbh_context_collect(&here, 0, NULL) != 0) {
        pbh_store_close(st);
        pbh_cli_error("out of memory");
        return PBH_EXIT_FAILED;
    }
    pbh_context key = {0};
    key.machine = machine ? (char *)machine : here.machine;
    char *json = NULL, err[1024] = "";
    int64_t id = 0;
    int rc = pbh_store_latest_calibration(st, &key, NULL, &json, &id, err, sizeof err);
    pbh_store_close(st);
    if (rc == PBH_ENOTFOUND) {
        pbh_cli_error("no calibration is stored for machine %s (`poolbench calibrate` measures one)",
                      key.machine ? key.machine : "?");
        pbh_context_clear(&here);
        return PBH_EXIT_USAGE;
    }
    pbh_context_clear(&here);
    if (rc != PBH_OK) {
        pbh_cli_error("%s", rc == PBH_ENOMEM ? "out of memory" : err);
        return pbh_cli_exit_for(rc);
    }
    pbh_calibration cal;
    char *text = NULL;
    if (strcmp(format, "json") == 0 && !reestimate) {
        text = json;
        json = NULL;
    } else if (pbh_calibration_parse_json(json, &cal) == PBH_OK) {
        cal.id = id;
        size_t samples = 0;
        for (size_t i = 0; i < cal.ncases; i++)
            samples += cal.cases[i].nobs;
        if (reestimate && !samples) {
            pbh_calibration_free(&cal);
            free(json);
            pbh_cli_error("calibration %lld keeps no A/A samples (it was made by an older build): nothing to "
                          "estimate again; `poolbench calibrate` measures a new one", (long long)id);
            return PBH_EXIT_USAGE;
        }
        if (reestimate)
            pbh_calibrate_estimate(&cal);
        /* a validation (it timed the plain run) is shown as it was printed: its goals first */
        text = strcmp(format, "json") == 0 ? pbh_calibration_format_json(&cal)
               : cal.plain_run_s > 0       ? pbh_calibration_format_goals(&cal, strcmp(format, "markdown") == 0)
               : strcmp(format, "markdown") == 0 ? pbh_calibration_format_markdown(&cal)
                                                 : pbh_calibration_format_table(&cal);
        pbh_calibration_free(&cal);
    } else {
        free(json);
        pbh_cli_error("calibration %lld in the store is not a calibration document this build understands", (long long)id);
        return PBH_EXIT_USAGE; /* as a store of a newer schema: bad input, nothing changed */
    }
    free(json);
    if (!text) {
        pbh_cli_error("out of memory");
        return PBH_EXIT_FAILED;
    }
    ec = pbh_cli_write_output(output, text);
    free(text);
    return ec;
}

int pbh_cmd_calibrate(int argc, char **argv) {
    static const struct option opts[] = {
        {"suite", required_argument, 0, 'S'},     {"scenario", required_argument, 0, 's'},
        {"backend", required_argument, 0, 'b'},   {"reps", required_argument, 0, 'r'},
        {"pairs", required_argument, 0, 'k'},     {"inject", required_argument, 0, 'i'},
        {"trials", required_argument, 0, 'T'},    {"groups", required_argument, 0, 'g'},
        {"block", required_argument, 0, 'K'},     {"alpha", required_argument, 0, 'a'},
        {"threshold", required_argument, 0, 't'}, {"confirm", required_argument, 0, 'c'},
        {"seed", required_argument, 0, 'e'},      {"validate", no_argument, 0, 'V'},
        {"format", required_argument, 0, 'f'},    {"store", required_argument, 0, 'd'},
        {"output", required_argument, 0, 'o'},    {"help", no_argument, 0, 'h'},
        {"show", no_argument, 0, 'w'},            {"machine", required_argument, 0, 'M'},
        {"reestimate", no_argument, 0, 'R'},      {0, 0, 0, 0}};
    pbh_request rq;
    pbh_request_init(&rq);
    pbh_calibrate_opts co;
    pbh_calibrate_opts_default(&co);
    const char *format = "table", *store = NULL, *output = NULL, *machine = NULL;
    int validate = 0, trials = -1, show_stored = 0, reestimate = 0;
    long v;
    double d;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'S': rq.suite = optarg; break;
        case 's':
            for (char *save = NULL, *t = strtok_r(optarg, ",", &save); t && rq.nscenarios < PBH_MAX_LIST;
                 t = strtok_r(NULL, ",", &save))
                rq.scenarios[rq.nscenarios++] = t;
            break;
        case 'b':
            for (char *save = NULL, *t = strtok_r(optarg, ",", &save); t && rq.nbackends < PBH_MAX_LIST;
                 t = strtok_r(NULL, ",", &save))
                rq.backends[rq.nbackends++] = t;
            break;
        case 'r':
            if (pbh_cli_parse_int(optarg, 2, 100000, &v)) return pbh_cli_usage_error("calibrate", "bad --reps '%s'", optarg);
            rq.reps = (int)v;
            break;
        case 'k':
            if (pbh_cli_parse_int(optarg, 0, 10000, &v)) return pbh_cli_usage_error("calibrate", "bad --pairs '%s'", optarg);
            co.aa_pairs = (int)v;
            break;
        case 'i':
            if (parse_sizes(optarg, &co))
                return pbh_cli_usage_error("calibrate", "bad --inject: expected percentages in (0, 1000], e.g. 5,10,20");
            break;
        case 'T':
            if (pbh_cli_parse_int(optarg, 0, 10000, &v)) return pbh_cli_usage_error("calibrate", "bad --trials '%s'", optarg);
            trials = (int)v;
            break;
        case 'g':
            if (pbh_cli_parse_int(optarg, 1, 1000, &v)) return pbh_cli_usage_error("calibrate", "bad --groups '%s'", optarg);
            co.groups = (int)v;
            break;
        case 'K':
            if (pbh_cli_parse_int(optarg, 1, 100000, &v)) return pbh_cli_usage_error("calibrate", "bad --block '%s'", optarg);
            co.block_reps = (int)v;
            break;
        case 'a':
            if (pbh_cli_parse_double(optarg, 1e-9, 0.5, &co.cmp.alpha))
                return pbh_cli_usage_error("calibrate", "--alpha must be a number in (0, 0.5]");
            break;
        case 't':
            if (pbh_cli_parse_double(optarg, 0, 1000, &d)) return pbh_cli_usage_error("calibrate", "bad --threshold");
            co.cmp.threshold = d / 100;
            break;
        case 'c':
            if (pbh_cli_parse_int(optarg, 0, 100, &v)) return pbh_cli_usage_error("calibrate", "bad --confirm '%s'", optarg);
            co.confirm = (int)v;
            break;
        case 'e': {
            char *end;
            co.seed = strtoull(optarg, &end, 0);
            if (!*optarg || *end) return pbh_cli_usage_error("calibrate", "bad --seed '%s'", optarg);
            break;
        }
        case 'V': validate = 1; break;
        case 'w': show_stored = 1; break;
        case 'R': reestimate = 1; break;
        case 'M':
            if (!pbh_machine_name_valid(optarg))
                return pbh_cli_bad_machine("calibrate", optarg);
            machine = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "table") && strcmp(optarg, "json") && strcmp(optarg, "markdown"))
                return pbh_cli_usage_error("calibrate", "--format must be table, json or markdown");
            format = optarg;
            break;
        case 'd': store = optarg; break;
        case 'o': output = optarg; break;
        case 'h': fputs(usage, stdout); return PBH_EXIT_OK;
        default: return pbh_cli_usage_error("calibrate", "unknown option");
        }
    }
    if (optind < argc) return pbh_cli_usage_error("calibrate", "unexpected argument '%s'", argv[optind]);
    if (reestimate && !show_stored)
        return pbh_cli_usage_error("calibrate", "--reestimate goes with --show (it estimates a stored calibration again)");
    if (show_stored)
        return show_latest(store, machine, format, output, reestimate);
    if (!rq.suite && !rq.nscenarios) rq.suite = "quick";
    if (validate) { /* the goals' design (docs/verdicts.md); explicit flags given before still win below */
        co.aa_pairs = co.aa_pairs == PBH_CALIBRATE_DEFAULT_PAIRS ? 20 : co.aa_pairs;
        co.sizes[0] = 10;
        co.trials[0] = 20;
        co.sizes[1] = 3;
        co.trials[1] = 5;
        co.nsizes = 2;
        co.measure_plain_run = 1;
    }
    if (trials >= 0)
        for (size_t k = 0; k < co.nsizes; k++) co.trials[k] = trials;

    char err[1024];
    pbh_plan plan, plain_plan;
    /* The sessions are A/B pairs, so the suite's pair repetitions per side (suites.h); the wall-time
     * yardstick is one plain run as `poolbench run --suite` makes it. */
    rq.pair = 1;
    int rc = pbh_plan_build(&rq, &plan, err, sizeof err);
    if (rc != PBH_OK) {
        pbh_cli_error("%s", err);
        return pbh_cli_exit_for(rc);
    }
    rq.pair = 0;
    if (co.measure_plain_run) {
        if ((rc = pbh_plan_build(&rq, &plain_plan, err, sizeof err)) != PBH_OK) {
            pbh_plan_free(&plan);
            pbh_cli_error("%s", err);
            return pbh_cli_exit_for(rc);
        }
        co.plain_plan = &plain_plan;
    }
    pbh_store *st = NULL;
    int ec = pbh_cli_open_store(store, PBH_STORE_WRITE, &st);
    if (ec != PBH_EXIT_OK) {
        pbh_plan_free(&plan);
        if (co.plain_plan) pbh_plan_free(&plain_plan);
        return ec;
    }
    struct sigaction old_handlers[2];
    pbh_cli_catch_interrupts(old_handlers);
    pbh_calibration cal;
    rc = pbh_calibrate_run(&plan, &co, &cal, show, NULL);
    pbh_cli_restore_interrupts(old_handlers);
    pbh_plan_free(&plan);
    if (co.plain_plan) pbh_plan_free(&plain_plan);
    if (rc == PBH_OK && cal.interrupted && cal.sessions == 0)
        rc = PBH_EINPUT;
    if (rc != PBH_OK) {
        pbh_cli_error(rc == PBH_EINPUT ? "interrupted before a session completed: nothing was stored" : "out of memory");
        pbh_calibration_free(&cal);
        pbh_store_close(st);
        return PBH_EXIT_FAILED;
    }
    char *json = pbh_calibration_format_json(&cal);
    pbh_context ctx = {0};
    ctx.started_at = cal.started_at;
    ctx.host = cal.host;
    ctx.cpu_model = cal.cpu_model;
    ctx.cores = cal.cores;
    ctx.kernel = cal.kernel;
    pbh_context head_ctx;
    if (pbh_context_collect(&head_ctx, 0, NULL) == 0) {
        ctx.git_commit = head_ctx.git_commit;
        /* the key compare finds it by (--machine, else $POOLBENCH_MACHINE, else derived) */
        ctx.machine = machine ? (char *)machine : head_ctx.machine;
    }
    rc = json ? pbh_store_insert_calibration(st, &ctx, cal.suite, json, &cal.id, err, sizeof err) : PBH_ENOMEM;
    pbh_context_clear(&head_ctx);
    pbh_store_close(st);
    if (rc != PBH_OK) {
        pbh_cli_error("%s", rc == PBH_ENOMEM ? "out of memory" : err);
        free(json);
        pbh_calibration_free(&cal);
        return PBH_EXIT_FAILED;
    }
    char *text = strcmp(format, "json") == 0 ? strdup(json)
                 : validate                  ? pbh_calibration_format_goals(&cal, strcmp(format, "markdown") == 0)
                 : strcmp(format, "markdown") == 0 ? pbh_calibration_format_markdown(&cal)
                                                   : pbh_calibration_format_table(&cal);
    ec = pbh_cli_write_output(output, text);
    if (ec == PBH_EXIT_OK && strcmp(format, "json") != 0)
        fprintf(output ? stdout : stderr, "stored as calibration %lld%s\n", (long long)cal.id,
                cal.interrupted ? " (interrupted: it covers the sessions completed)" : "");
    if (ec == PBH_EXIT_OK && cal.interrupted)
        ec = PBH_EXIT_FAILED;
    free(text);
    free(json);
    pbh_calibration_free(&cal);
    return ec;
}
