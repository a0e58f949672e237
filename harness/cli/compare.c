/*
 * compare.c - `poolbench compare BASE NEW`: the regression verdict between two runs.
 *
 * BASE and NEW are run references (id, label, `latest`) in the store, or paths to a run exported as JSON
 * (`export --format json`, e.g. a committed results/baseline.json). With --confirm N every suspected
 * regression is measured again N times with this binary (fresh child processes, like `run`) before the
 * verdict. Exit 1 on a (confirmed) regression, 0 otherwise, 2 on bad input; the store is only read.
 */
#include "cli.h"
#include "compare.h"
#include "format.h"
#include "import.h"
#include "runner.h"
#include "abrun.h"
#include "calibrate.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: poolbench compare BASE NEW [--alpha A] [--threshold PCT] [--min-samples N] [--confirm N]\n"
    "                         [--format table|json|markdown] [--output FILE] [--store PATH] [--allow-other-machine]\n"
    "       poolbench compare RUN ...   (RUN one run of an A/B pair: its base against its head)\n"
    "BASE, NEW: a run id, a label (its latest run), 'latest', or a run exported as JSON (a .json file).\n"
    "A case is a regression when the Mann-Whitney U test gives p < alpha (default 0.01) and the bootstrap\n"
    "95%% CI of the change of medians lies entirely above +threshold (default 5%%). --confirm N re-measures\n"
    "each suspected regression or improvement N times with this build (for an A/B pair: both sides,\n"
    "interleaved again); it stands only if every round agrees (p < alpha, the change itself beyond the\n"
    "threshold on the same side). Runs from different machines (machine keys, else host, CPU, cores,\n"
    "kernel; floors) are "
    "said so, and their regressions do not exit 1 unless --allow-other-machine.\n"
    "Exit: 0 no regression, 1 regression, 2 bad input.\n";

/* A run from the store or, when ref names an existing .json file, from that export. */
static int load_side(pbh_store *st, const char *ref, pbh_run **out) {
    struct stat sb;
    size_t len = strlen(ref);
    if (len > 5 && strcmp(ref + len - 5, ".json") == 0 && stat(ref, &sb) == 0) {
        char err[1024];
        pbh_context none = {0};
        int rc = pbh_import_file("json", ref, &none, out, err, sizeof err);
        if (rc) pbh_cli_error("%s", err);
        return rc ? pbh_cli_exit_for(rc) : PBH_EXIT_OK;
    }
    if (!st) {
        pbh_cli_error("'%s' is not a .json run export, and there is no store to look it up in", ref);
        return PBH_EXIT_USAGE;
    }
    return pbh_cli_load_run(st, ref, out);
}

/* The one-case plan that measures c again (native cases only). 0, or -1 with a message. */
static int case_plan(const pbh_case *c, pbh_plan *plan) {
    memset(plan, 0, sizeof *plan);
    if (!c->scenario || !c->backend) return -1; /* imported: nothing here can run it */
    pbh_request rq;
    pbh_request_init(&rq);
    rq.scenarios[rq.nscenarios++] = c->scenario;
    rq.backends[rq.nbackends++] = c->backend;
    rq.workers[rq.nworkers++] = c->workers > 0 ? c->workers : 1;
    char params[256];
    snprintf(params, sizeof params, "%s", c->params ? c->params : "");
    for (char *save = NULL, *kv = strtok_r(params, ",", &save); kv && rq.nparams < PBH_MAX_LIST;
         kv = strtok_r(NULL, ",", &save))
        rq.params[rq.nparams++] = kv;
    rq.reps = c->reps > 0 ? c->reps : (int)c->nsamples;
    rq.warmup = c->warmup;
    char err[1024];
    if (pbh_plan_build(&rq, plan, err, sizeof err) != PBH_OK || plan->n != 1) {
        pbh_cli_error("--confirm: cannot re-run %s: %s", c->name, err);
        if (plan->n) pbh_plan_free(plan);
        return -1;
    }
    return 0;
}

/* --confirm: one fresh measurement of a native case through the runner's child executor. */
static int remeasure(void *ud, const pbh_case *c, pbh_case *fresh) {
    pbh_plan plan;
    if (case_plan(c, &plan) != 0) return -1;
    pbh_executor ex;
    pbh_child_executor_init((pbh_child_executor *)ud, &ex);
    pbh_set_str(&fresh->name, c->name);
    ex.run_case(ex.ud, &plan.cases[0], fresh);
    pbh_plan_free(&plan);
    return 0;
}

/* --confirm on an interleaved pair: both sides again, with the executables that measured them (and the
 * head's injection, when the pair was a validation run), interleaved with a fresh order seed per round. */
typedef struct pair_remeasure {
    pbh_pair pair;
    uint64_t rounds;
} pair_remeasure;

static int remeasure_pair(void *ud, const pbh_case *base, const pbh_case *new_, pbh_case *fresh_base,
                          pbh_case *fresh_new) {
    (void)new_;
    pair_remeasure *pr = ud;
    pbh_plan plan;
    if (case_plan(base, &plan) != 0) return -1;
    pbh_child_executor bce, hce;
    pbh_executor bex, hex;
    pbh_child_executor_init_exe(&bce, &bex, pr->pair.base_exe);
    pbh_child_executor_init_exe(&hce, &hex, pr->pair.head_exe);
    char *colon = strrchr(pr->pair.injected, ':');
    if (colon) {
        snprintf(hce.inject_glob, sizeof hce.inject_glob, "%.*s", (int)(colon - pr->pair.injected), pr->pair.injected);
        hce.inject_pct = atof(colon + 1);
    }
    pbh_ab_opts ab = {.seed = pr->pair.seed + 1000003u * ++pr->rounds, .block_reps = pr->pair.block_reps};
    pbh_case_describe(fresh_base, &plan.cases[0]);
    pbh_case_describe(fresh_new, &plan.cases[0]);
    pbh_ab_run_case(&plan.cases[0], 0, &bex, &hex, &ab, fresh_base, fresh_new);
    pbh_plan_free(&plan);
    return 0;
}

/* Both sides of a stored pair can be measured again: their executables are still there. */
static int pair_runnable(const pbh_pair *p) {
    return access(p->base_exe, X_OK) == 0 && access(p->head_exe, X_OK) == 0;
}

int pbh_cmd_compare(int argc, char **argv) {
    static const struct option opts[] = {{"alpha", required_argument, 0, 'a'},
                                         {"threshold", required_argument, 0, 't'},
                                         {"min-samples", required_argument, 0, 'm'},
                                         {"confirm", required_argument, 0, 'c'},
                                         {"format", required_argument, 0, 'f'},
                                         {"output", required_argument, 0, 'o'},
                                         {"store", required_argument, 0, 's'},
                                         {"allow-other-machine", no_argument, 0, 'M'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    pbs_compare_opts co;
    pbs_compare_opts_default(&co);
    long confirm = 0, min_samples;
    double threshold_pct;
    const char *format = "table", *output = NULL, *store = NULL;
    int allow_other_machine = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            if (pbh_cli_parse_double(optarg, 1e-9, 0.5, &co.alpha))
                return pbh_cli_usage_error("compare", "--alpha must be a number in (0, 0.5], got '%s'", optarg);
            break;
        case 't':
            if (pbh_cli_parse_double(optarg, 0, 1000, &threshold_pct))
                return pbh_cli_usage_error("compare", "--threshold must be a percentage in [0, 1000], got '%s'", optarg);
            co.threshold = threshold_pct / 100.0;
            break;
        case 'm':
            if (pbh_cli_parse_int(optarg, 2, 100000, &min_samples))
                return pbh_cli_usage_error("compare", "--min-samples must be an integer >= 2, got '%s'", optarg);
            co.min_samples = (size_t)min_samples;
            break;
        case 'c':
            if (pbh_cli_parse_int(optarg, 0, 100, &confirm))
                return pbh_cli_usage_error("compare", "--confirm must be an integer in [0, 100], got '%s'", optarg);
            break;
        case 'f':
            if (strcmp(optarg, "table") && strcmp(optarg, "json") && strcmp(optarg, "markdown"))
                return pbh_cli_usage_error("compare", "--format must be table, json or markdown, got '%s'", optarg);
            format = optarg;
            break;
        case 'o': output = optarg; break;
        case 's': store = optarg; break;
        case 'M': allow_other_machine = 1; break;
        case 'h': fputs(usage, stdout); return PBH_EXIT_OK;
        default: return pbh_cli_usage_error("compare", "unknown option");
        }
    }
    if (argc - optind != 2 && argc - optind != 1)
        return pbh_cli_usage_error("compare", "expected BASE NEW, or one run of a pair, got %d argument(s)", argc - optind);
    const char *base_ref = argv[optind], *new_ref = argc - optind == 2 ? argv[optind + 1] : NULL;

    /* the store is needed only when a side is not a file */
    pbh_store *st = NULL;
    int both_files = new_ref && strstr(base_ref, ".json") && strstr(new_ref, ".json");
    if (!both_files) {
        int rc = pbh_cli_open_store(store, PBH_STORE_READ, &st);
        if (rc != PBH_EXIT_OK) return rc;
    }
    pbh_run *base = NULL, *new_ = NULL;
    pair_remeasure pr = {0};
    int paired = 0, rc;
    if (!new_ref) { /* one run: the pair it belongs to, base against head */
        rc = load_side(st, base_ref, &new_);
        char err[1024];
        if (rc == PBH_EXIT_OK && pbh_store_find_pair(st, new_->id, &pr.pair, err, sizeof err) != PBH_OK) {
            pbh_cli_error("run '%s' is not part of an A/B pair (`run --against`): compare needs BASE and NEW", base_ref);
            rc = PBH_EXIT_USAGE;
        }
        if (rc == PBH_EXIT_OK) {
            pbh_run_free(new_);
            new_ = NULL;
            rc = pbh_store_load_run(st, pr.pair.base_run_id, &base, err, sizeof err);
            if (rc == PBH_OK) rc = pbh_store_load_run(st, pr.pair.head_run_id, &new_, err, sizeof err);
            if (rc != PBH_OK) pbh_cli_error("%s", err);
            rc = pbh_cli_exit_for(rc);
            paired = rc == PBH_EXIT_OK;
        }
    } else {
        rc = load_side(st, base_ref, &base);
        if (rc == PBH_EXIT_OK) rc = load_side(st, new_ref, &new_);
        char err[1024];
        paired = rc == PBH_EXIT_OK && st && base->id && pbh_store_find_pair(st, new_->id, &pr.pair, err, sizeof err) == PBH_OK &&
                 pr.pair.base_run_id == base->id;
    }
    /* what this machine can judge: its latest calibration, when there is one */
    char *calibration = NULL;
    int64_t calibration_id = 0;
    if (rc == PBH_EXIT_OK && st) {
        char err[1024];
        if (pbh_store_latest_calibration(st, &new_->ctx, NULL, &calibration, &calibration_id, err, sizeof err) != PBH_OK)
            calibration = NULL;
    }
    if (st) pbh_store_close(st);
    if (rc != PBH_EXIT_OK) {
        pbh_run_free(base);
        pbh_run_free(new_);
        return rc;
    }

    pbh_comparison cmp;
    if (pbh_compare_runs(base, new_, &co, &cmp) != 0) {
        pbh_cli_error("out of memory comparing runs");
        rc = PBH_EXIT_FAILED;
    } else {
        pbh_child_executor ce;
        if (confirm > 0 && cmp.regressions > 0 && strcmp(format, "table") == 0)
            fprintf(stderr, "poolbench: re-measuring %d suspected regression(s) %ld time(s)%s...\n", cmp.regressions,
                    confirm, paired ? ", both sides interleaved" : "");
        if (paired && confirm > 0 && !pair_runnable(&pr.pair)) {
            pbh_cli_error("the pair's executables (%s, %s) are gone: --confirm re-measures the new side only",
                          pr.pair.base_exe, pr.pair.head_exe);
            paired = 0;
        }
        if (paired)
            pbh_compare_confirm_pair(&cmp, (int)confirm, remeasure_pair, &pr);
        else
            pbh_compare_confirm(&cmp, (int)confirm, remeasure, &ce);
        cmp.paired = paired;
        if (paired) cmp.other_machine = 0; /* one runner process measured both, block by block: one machine */
        if (confirm > 0) cmp.confirm = (int)confirm;
        if (calibration) pbh_calibration_annotate(&cmp, calibration, calibration_id);
        char *text = strcmp(format, "json") == 0       ? pbh_compare_format_json(&cmp)
                     : strcmp(format, "markdown") == 0 ? pbh_compare_format_markdown(&cmp)
                                                       : pbh_compare_format_table(&cmp);
        rc = pbh_cli_write_output(output, text);
        free(text);
        if (rc == PBH_EXIT_OK && cmp.regressions > 0) {
            if (cmp.other_machine && !allow_other_machine)
                pbh_cli_error("%d regression(s), but the runs come from different machines (%s): not failing; "
                              "--allow-other-machine to fail anyway", cmp.regressions, cmp.machine_why);
            else
                rc = PBH_EXIT_REGRESSION;
        }
        pbh_comparison_free(&cmp);
    }
    free(calibration);
    pbh_run_free(base);
    pbh_run_free(new_);
    return rc;
}
