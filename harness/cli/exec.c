/*
 * exec.c - `poolbench exec`: one scenario execution (or a few), nothing stored. For hyperfine, the
 * examples and debugging, and the runner's case child: the runner re-executes this binary as
 * `exec ... --reps R --warmup W --json --parent-pid PID`, and reads one JSON line per execution, then a
 * "done" line (`exec --floors --json`: one "floor" line per probe); the lines are written and read by
 * one codec, exec_line.h, which documents them. A failed execution ends the sequence (exit 3).
 * --parent-pid makes the process die with the runner (PR_SET_PDEATHSIG), so a SIGKILLed runner leaves
 * no case running.
 * --inject-slowdown PCT (a validation hook, docs/verdicts.md): every measured phase really takes PCT %
 * longer (a busy-wait inside the timed window, scenario.h). The runner passes it to the case processes of
 * one side of an A/B pair only (POOLBENCH_INJECT_SLOWDOWN, `calibrate`).
 * Exit: 0 every execution verified; 2 usage error, unknown name or unsupported pair; 3 an execution
 * failed or could not run.
 */
#include "cli.h"
#include "exec_line.h"
#include "format.h"
#include "measure.h"
#include "runner.h"
#include "scenario.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static const char usage[] =
    "usage: poolbench exec --scenario S [--backend B] [--workers N] [--param k=v]... [--print] [--json]\n"
    "                      [--reps R] [--warmup W] [--seed N] [--format table|json] [--inject-slowdown PCT]\n"
    "       poolbench exec --floors [--json]\n"
    "Runs one execution of a scenario on a backend (more with --reps) and stores nothing. Silent by default;\n"
    "--print (or --format table) prints a line per execution, --json (or --format json) a JSON line per\n"
    "execution. Exit 0 when every execution verified, 3 when one did not. --floors measures the floor probes.\n"
    "--inject-slowdown PCT (validation only) makes every measured phase really take PCT %% longer.\n";

/* Prints one protocol line (exec_line.h) and flushes: the runner keeps what came before a crash. */
static void print_line(char *line) {
    if (line) {
        printf("%s\n", line);
        free(line);
    }
    fflush(stdout);
}

static int do_floors(int json) {
    for (size_t i = 0; i < pb_floor_count(); i++) {
        const pb_floor *f = pb_floor_at(i);
        int reps = f->reps; /* what the probe declares (scenarios/floors.c): about 0.1-0.5 s each */
        double s = f->measure(reps);
        if (json) {
            print_line(pbh_exec_line_floor(f->name, s, reps));
        } else {
            char d[32];
            pbh_fmt_duration(s, d, sizeof d);
            printf("%-20s %s per operation\n", f->name, s > 0 ? d : "n/a");
        }
        fflush(stdout);
    }
    return PBH_EXIT_OK;
}

static void print_json_line(int rep, int warmup, const pbh_sample *x, const pb_exec_result *res, int ok,
                            const char *msg) {
    print_line(pbh_exec_line_execution(rep, warmup, ok, msg, x, res->counters.workers_started,
                                       res->counters.worker_deaths));
}

static void print_text_line(const char *name, int rep, int warmup, const pbh_sample *x, int ok, const char *msg) {
    char wall[32], cpu[32], st[32], ideal[32];
    pbh_fmt_duration(x->wall_s, wall, sizeof wall);
    pbh_fmt_duration(x->user_s + x->sys_s, cpu, sizeof cpu);
    pbh_fmt_duration(x->startup_s, st, sizeof st);
    pbh_fmt_duration(x->ideal_s, ideal, sizeof ideal);
    printf("%s %s%d: %s  wall %s  ideal %s  eff %.3f  startup %s  cpu %s  rss %lld KiB  tasks %llu (%llu failed)%s%s\n",
           name, warmup ? "warm-up " : "#", rep, ok ? "ok" : "FAILED", wall, ideal, pbh_sample_efficiency(x), st, cpu,
           (long long)x->peak_rss_kb, (unsigned long long)x->tasks, (unsigned long long)x->failed_tasks,
           msg && *msg ? "  " : "", msg ? msg : "");
    fflush(stdout);
}

int pbh_cmd_exec(int argc, char **argv) {
    static const struct option opts[] = {
        {"scenario", required_argument, NULL, 's'}, {"backend", required_argument, NULL, 'b'},
        {"workers", required_argument, NULL, 'w'},  {"param", required_argument, NULL, 'p'},
        {"print", no_argument, NULL, 'P'},          {"json", no_argument, NULL, 'j'},
        {"reps", required_argument, NULL, 'r'},     {"warmup", required_argument, NULL, 'W'},
        {"seed", required_argument, NULL, 'S'},     {"floors", no_argument, NULL, 'F'},
        {"parent-pid", required_argument, NULL, 'X'}, {"format", required_argument, NULL, 'f'},
        {"inject-slowdown", required_argument, NULL, 'I'}, {"help", no_argument, NULL, 'h'},
        {0}};
    const char *scenario = NULL, *backend = NULL;
    const char *params[PBH_MAX_LIST];
    size_t nparams = 0;
    long workers = 0, reps = 1, warmup = 0, parent = 0;
    unsigned long long seed = PBH_DEFAULT_SEED;
    int print = 0, json = 0, floors = 0;
    int c;
    while ((c = getopt_long(argc, argv, "s:b:w:p:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            scenario = optarg;
            break;
        case 'b':
            backend = optarg;
            break;
        case 'w':
            if (pbh_cli_parse_int(optarg, 1, 4096, &workers))
                return pbh_cli_usage_error("exec", "bad --workers '%s': expected 1..4096", optarg);
            break;
        case 'p':
            if (nparams == PBH_MAX_LIST)
                return pbh_cli_usage_error("exec", "too many --param flags");
            params[nparams++] = optarg;
            break;
        case 'P':
            print = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'r':
            if (pbh_cli_parse_int(optarg, 1, 1000000, &reps))
                return pbh_cli_usage_error("exec", "bad --reps '%s': expected 1..1000000", optarg);
            break;
        case 'W':
            if (pbh_cli_parse_int(optarg, 0, 1000000, &warmup))
                return pbh_cli_usage_error("exec", "bad --warmup '%s': expected 0..1000000", optarg);
            break;
        case 'S': {
            char *end;
            seed = strtoull(optarg, &end, 0);
            if (!*optarg || *end)
                return pbh_cli_usage_error("exec", "bad --seed '%s'", optarg);
            break;
        }
        case 'F':
            floors = 1;
            break;
        case 'f': /* --format, like every other verb: json = --json, table = --print */
            if (strcmp(optarg, "json") == 0)
                json = 1;
            else if (strcmp(optarg, "table") == 0)
                print = 1;
            else
                return pbh_cli_usage_error("exec", "unknown --format '%s' (table or json)", optarg);
            break;
        case 'I': {
            double pct;
            if (pbh_cli_parse_double(optarg, 0, 1000, &pct))
                return pbh_cli_usage_error("exec", "bad --inject-slowdown '%s': expected a percentage 0..1000", optarg);
            pb_scenario_inject_slowdown(pct);
            break;
        }
        case 'X':
            if (pbh_cli_parse_int(optarg, 1, 1L << 30, &parent))
                return pbh_cli_usage_error("exec", "bad --parent-pid '%s'", optarg);
            break;
        case 'h':
            fputs(usage, stdout);
            return PBH_EXIT_OK;
        default:
            return pbh_cli_usage_error("exec", "bad arguments to exec");
        }
    }
    if (optind < argc)
        return pbh_cli_usage_error("exec", "unexpected argument '%s'", argv[optind]);
    if (parent) {
        /* die with the runner; if it is already gone we were re-parented and must not run */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != (pid_t)parent)
            return PBH_EXIT_FAILED;
    }
    if (floors)
        return do_floors(json);
    if (!scenario)
        return pbh_cli_usage_error("exec", "exec needs --scenario (see `poolbench list scenarios`)");
    const pb_scenario *s = pb_scenario_find(scenario);
    if (!s) {
        pbh_cli_error("unknown scenario '%s' (see `poolbench list scenarios`)", scenario);
        return PBH_EXIT_USAGE;
    }
    if (!backend)
        backend = pb_backend_default();
    if (pb_backend_caps(backend) < 0) {
        char why[512];
        pbh_backend_unavailable(backend, why, sizeof why);
        pbh_cli_error("%s (see `poolbench list backends`)", why);
        return PBH_EXIT_USAGE;
    }
    if (!pb_scenario_supported(s, backend)) {
        pbh_cli_error("scenario '%s' is not supported on backend '%s' (it needs a capability the backend lacks)",
                      s->name, backend);
        return PBH_EXIT_USAGE;
    }
    pb_params p;
    pb_params_defaults(s, &p);
    for (size_t i = 0; i < nparams; i++) {
        char msg[256];
        if (!strchr(params[i], '=') || params[i][0] == '=')
            return pbh_cli_usage_error("exec", "malformed --param '%s': expected NAME=VALUE", params[i]);
        if (pb_params_set(s, &p, params[i], msg, sizeof msg) != 0) {
            pbh_cli_error("bad --param '%s': %s", params[i], msg);
            return PBH_EXIT_USAGE;
        }
    }
    if (workers == 0) {
        pb_options o;
        pb_options_init(&o);
        workers = o.workers;
    }
    char pstr[256], name[384];
    pb_params_format(s, &p, pstr, sizeof pstr);
    snprintf(name, sizeof name, "%s/%s/w%ld%s%s", s->name, backend, workers, pstr[0] ? "/" : "", pstr);

    /* The forkserver's helper is forked now, before the first repetition allocates its inputs, so that its
     * workers inherit this small process and not the scenario's data (impls/forkserver.c). */
    int forkserver = strcmp(backend, "forkserver") == 0;
    if (forkserver && pb_forkserver_start() != 0) {
        pbh_cli_error("cannot start the forkserver: %s", pb_last_error());
        return PBH_EXIT_FAILED;
    }
    int exit_code = PBH_EXIT_OK;
    long total = warmup + reps;
    for (long i = 0; i < total; i++) {
        int is_warmup = i < warmup;
        int rep = (int)(is_warmup ? i : i - warmup);
        pbh_sample x;
        pb_exec_result res;
        int rc = pbh_measure_once(s, &p, backend, (int)workers, seed, &x, &res);
        int ok = rc == 0 && res.ok;
        char msg[sizeof res.message + 64];
        if (rc != 0)
            snprintf(msg, sizeof msg, "could not run: %s%s%s", pb_strerror(rc), res.message[0] ? ": " : "", res.message);
        else
            snprintf(msg, sizeof msg, "%s", res.message);
        if (json)
            print_json_line(rep, is_warmup, &x, &res, ok, msg);
        else if (print)
            print_text_line(name, rep, is_warmup, &x, ok, msg);
        if (!ok) {
            if (!json)
                pbh_cli_error("%s: %s", name, msg[0] ? msg : "verification failed");
            exit_code = PBH_EXIT_FAILED;
            break;
        }
    }
    if (forkserver)
        pb_forkserver_stop();
    if (json && exit_code == PBH_EXIT_OK)
        print_line(pbh_exec_line_done(total));
    return exit_code;
}
