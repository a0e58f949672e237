/*
 * runner.c - the case loop (pbh_runner_run) and the real executor that runs each case in a child
 * process of its own (runner.h). Planning is plan.c, process plumbing child.c, the line protocol with
 * the case process exec_line.c.
 *
 * DESIGN
 *  Execution (the child executor): one child per case process, `poolbench exec --json --reps R
 *  --warmup W ...` (argv built from validated names, no shell), in its own process group so that one
 *  kill(-pgid, SIGKILL) also takes the pool workers the case started (child.h). The child prints one
 *  line per execution (exec_line.h); the runner turns them into samples, and on the deadline (or an
 *  interrupt) the group is killed.
 *  A case that crashes, hangs, exits early or prints a wrong answer is recorded as failed/timeout with its
 *  reason and whatever samples it produced; the run goes on. Unsupported pairs are recorded, not run.
 *  The floor probes run first, in a child of their own (`exec --floors --json`).
 */
#include "runner.h"

#include "child.h"
#include "common.h"
#include "exec_line.h"

#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

void pbh_runner_interrupt(void) {
    interrupted = 1;
}

int pbh_runner_interrupted(void) {
    return interrupted != 0;
}

/* Collects the exec child's JSON lines into a case. */
typedef struct case_sink {
    pbh_case *c;
    int executions, done, failed, garbled;
    char fail_msg[sizeof ((pbh_exec_line *)0)->message + 16]; /* "warm-up: " + the message */
} case_sink;

static void case_line(void *ud, const char *line) {
    case_sink *cs = ud;
    if (!line[0])
        return;
    pbh_exec_line l;
    switch (pbh_exec_line_parse(line, &l)) {
    case PBH_LINE_GARBLED:
        cs->garbled++;
        break;
    case PBH_LINE_DONE:
        cs->done = 1;
        break;
    case PBH_LINE_EXECUTION:
        cs->executions++;
        if (!l.ok) {
            cs->failed = 1;
            snprintf(cs->fail_msg, sizeof cs->fail_msg, "%s%s", l.warmup ? "warm-up: " : "",
                     l.message[0] ? l.message : "execution failed");
        } else if (!l.warmup) {
            pbh_sample *s = pbh_case_add_sample(cs->c);
            if (s) {
                *s = l.sample;
                s->rep = (int)cs->c->nsamples - 1; /* numbered across the case's processes */
                s->iterations = 1;
            }
        }
        break;
    default:
        break;
    }
}

/* One case process: `exec` with `reps` repetitions after the warm-up, its samples appended to c. Returns 1
 * when it ended well (c's status is left unset), 0 after setting c's status and reason. */
static int run_case_process(pbh_child_executor *ce, const pbh_case_spec *spec, pbh_case *c, int process_reps,
                            double deadline) {
    char workers[16], reps[16], warmup[16], seed[32], ppid[16];
    size_t before = c->nsamples;
    snprintf(workers, sizeof workers, "%d", spec->workers);
    snprintf(reps, sizeof reps, "%d", process_reps);
    snprintf(warmup, sizeof warmup, "%d", spec->warmup);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)spec->seed);
    snprintf(ppid, sizeof ppid, "%d", (int)getpid());
    char params[sizeof spec->params_str];
    snprintf(params, sizeof params, "%s", spec->params_str);
    char *pieces[PB_MAX_PARAMS];
    size_t np = pbh_split(params, ',', pieces, PB_MAX_PARAMS);
    char *argv[44];
    int a = 0;
    argv[a++] = "poolbench";
    argv[a++] = "exec";
    argv[a++] = "--scenario";
    argv[a++] = (char *)spec->scenario->name;
    argv[a++] = "--backend";
    argv[a++] = (char *)spec->backend;
    argv[a++] = "--workers";
    argv[a++] = workers;
    for (size_t i = 0; i < np; i++) {
        argv[a++] = "--param";
        argv[a++] = pieces[i];
    }
    argv[a++] = "--reps";
    argv[a++] = reps;
    argv[a++] = "--warmup";
    argv[a++] = warmup;
    argv[a++] = "--seed";
    argv[a++] = seed;
    argv[a++] = "--parent-pid";
    argv[a++] = ppid;
    argv[a++] = "--json";
    char inject[32];
    if (ce->inject_pct > 0 && fnmatch(ce->inject_glob, spec->name, 0) == 0) { /* validation hook (runner.h) */
        snprintf(inject, sizeof inject, "%g", ce->inject_pct);
        argv[a++] = "--inject-slowdown";
        argv[a++] = inject;
    }
    argv[a] = NULL;

    char msg[2048];
    pbh_child ch;
    if (pbh_child_spawn(&ch, ce->self_exe, argv, PBH_CHILD_OWN_GROUP, msg, sizeof msg) != 0) {
        pbh_set_str(&c->status, PBH_STATUS_FAILED);
        pbh_set_str(&c->reason, msg);
        return 0;
    }
    case_sink cs = {.c = c};
    int status = 0;
    enum pbh_child_end end = pbh_child_finish(&ch, deadline, pbh_runner_interrupted, case_line, &cs, &status);
    char how[128], errline[PBH_CHILD_ERR_TAIL + 1];
    pbh_describe_wait_status(status, how, sizeof how);
    pbh_child_last_err_line(&ch, errline, sizeof errline);
    if (end == PBH_CHILD_TIMEOUT) {
        snprintf(msg, sizeof msg, "exceeded the case time limit of %g s after %zu of %d repetitions; killed",
                 spec->timeout_s, c->nsamples, spec->reps);
        pbh_set_str(&c->status, PBH_STATUS_TIMEOUT);
    } else if (end == PBH_CHILD_INTERRUPTED) {
        snprintf(msg, sizeof msg, "interrupted");
        pbh_set_str(&c->status, PBH_STATUS_FAILED);
    } else if (cs.failed) {
        snprintf(msg, sizeof msg, "%s", cs.fail_msg);
        pbh_set_str(&c->status, PBH_STATUS_FAILED);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && cs.done &&
               (int)(c->nsamples - before) == process_reps) {
        return 1;
    } else {
        snprintf(msg, sizeof msg, "case process %s after %zu of %d repetitions%s%s%s", how, c->nsamples, spec->reps,
                 cs.garbled ? " (garbled output)" : "", errline[0] ? ": " : "", errline);
        pbh_set_str(&c->status, PBH_STATUS_FAILED);
    }
    pbh_set_str(&c->reason, msg);
    return 0;
}

/* A case: its repetitions spread evenly over spec->processes case processes (runner.h says why), one
 * after another, all within the case's time limit. The first process that fails ends the case. */
static void child_run_case(void *ud, const pbh_case_spec *spec, pbh_case *c) {
    pbh_child_executor *ce = ud;
    int processes = spec->processes > 0 ? spec->processes : 1;
    double deadline = pbs_now() + spec->timeout_s;
    for (int p = 0; p < processes; p++) {
        int process_reps = spec->reps / processes + (p < spec->reps % processes ? 1 : 0);
        if (!run_case_process(ce, spec, c, process_reps, deadline))
            return;
    }
    pbh_set_str(&c->status, PBH_STATUS_OK);
    pbh_set_str(&c->reason, NULL);
}

typedef struct floor_sink {
    pbh_run *run;
} floor_sink;

static void floor_line(void *ud, const char *line) {
    floor_sink *fs = ud;
    pbh_exec_line l;
    if (pbh_exec_line_parse(line, &l) == PBH_LINE_FLOOR)
        pbh_run_add_floor(fs->run, l.floor_name, l.floor_seconds, l.floor_reps);
}

static void child_measure_floors(void *ud, pbh_run *run) {
    pbh_child_executor *ce = ud;
    char ppid[16];
    snprintf(ppid, sizeof ppid, "%d", (int)getpid());
    char *argv[] = {"poolbench", "exec", "--floors", "--json", "--parent-pid", ppid, NULL};
    pbh_child ch;
    char msg[512];
    if (pbh_child_spawn(&ch, ce->self_exe, argv, PBH_CHILD_OWN_GROUP, msg, sizeof msg) != 0)
        return; /* no floors: the table shows "-" for overhead x floor */
    floor_sink fs = {run};
    int status;
    pbh_child_finish(&ch, pbs_now() + 120.0, pbh_runner_interrupted, floor_line, &fs, &status);
}

void pbh_child_executor_init(pbh_child_executor *ce, pbh_executor *ex) {
    memset(ce, 0, sizeof *ce);
    ssize_t n = readlink("/proc/self/exe", ce->self_exe, sizeof ce->self_exe - 1);
    if (n <= 0)
        snprintf(ce->self_exe, sizeof ce->self_exe, "poolbench");
    else
        ce->self_exe[n] = '\0';
    ex->run_case = child_run_case;
    ex->measure_floors = child_measure_floors;
    ex->ud = ce;
}

void pbh_child_executor_init_exe(pbh_child_executor *ce, pbh_executor *ex, const char *exe) {
    pbh_child_executor_init(ce, ex);
    snprintf(ce->self_exe, sizeof ce->self_exe, "%s", exe);
}

/* ---- the run ------------------------------------------------------------------------------------- */

void pbh_case_describe(pbh_case *c, const pbh_case_spec *spec) {
    c->name = pbh_strdup(spec->name);
    c->scenario = pbh_strdup(spec->scenario->name);
    c->backend = pbh_strdup(spec->backend);
    c->workers = spec->workers;
    c->params = pbh_strdup(spec->params_str);
    c->reps = spec->reps;
    c->warmup = spec->warmup;
    c->floor = pbh_strdup(spec->scenario->floor);
    c->measures = pbh_strdup(spec->scenario->measures);
}

void pbh_case_mark_unsupported(pbh_case *c, const pbh_case_spec *spec) {
    char why[256];
    snprintf(why, sizeof why, "backend '%s' lacks a capability scenario '%s' needs (e.g. crash isolation)",
             spec->backend, spec->scenario->name);
    pbh_set_str(&c->status, PBH_STATUS_UNSUPPORTED);
    pbh_set_str(&c->reason, why);
}

int pbh_runner_run(const pbh_plan *plan, const pbh_executor *ex, pbh_run *run, pbh_progress_fn progress,
                   void *progress_ud) {
    double t0 = pbs_now();
    int failed = 0;
    if (ex->measure_floors && !pbh_runner_interrupted())
        ex->measure_floors(ex->ud, run);
    for (size_t i = 0; i < plan->n && !pbh_runner_interrupted(); i++) {
        const pbh_case_spec *spec = &plan->cases[i];
        pbh_case *c = pbh_run_add_case(run);
        if (!c)
            return PBH_ENOMEM;
        pbh_case_describe(c, spec);
        double c0 = pbs_now();
        if (progress)
            progress(progress_ud, i + 1, plan->n, c, c0 - t0); /* starting: c->status is still NULL */
        if (!spec->supported) {
            pbh_case_mark_unsupported(c, spec);
        } else {
            ex->run_case(ex->ud, spec, c);
            if (!c->status)
                c->status = pbh_strdup(PBH_STATUS_FAILED);
        }
        c->elapsed_s = pbs_now() - c0;
        if (strcmp(c->status, PBH_STATUS_FAILED) == 0 || strcmp(c->status, PBH_STATUS_TIMEOUT) == 0)
            failed = 1;
        if (progress)
            progress(progress_ud, i + 1, plan->n, c, pbs_now() - t0);
    }
    run->duration_s = pbs_now() - t0;
    pbh_set_str(&run->status, failed ? "failed" : "ok");
    if (!run->source)
        run->source = pbh_strdup(PBH_SOURCE_NATIVE);
    return PBH_OK;
}
