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

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: poolbench compare BASE NEW [--alpha A] [--threshold PCT] [--min-samples N] [--confirm N]\n"
    "                         [--format table|json|markdown] [--output FILE] [--store PATH]\n"
    "BASE, NEW: a run id, a label (its latest run), 'latest', or a run exported as JSON (a .json file).\n"
    "A case is a regression when the Mann-Whitney U test gives p < alpha (default 0.01) and the bootstrap\n"
    "95%% CI of the change of medians lies entirely above +threshold (default 5%%). --confirm N re-measures\n"
    "each suspected regression N times with this build; it stands only if every round agrees.\n"
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

/* --confirm: one fresh measurement of a native case through the runner's child executor. */
static int remeasure(void *ud, const pbh_case *c, pbh_case *fresh) {
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
    pbh_plan plan;
    char err[1024];
    if (pbh_plan_build(&rq, &plan, err, sizeof err) != PBH_OK || plan.n != 1) {
        pbh_cli_error("--confirm: cannot re-run %s: %s", c->name, err);
        if (plan.n) pbh_plan_free(&plan);
        return -1;
    }
    pbh_executor ex;
    pbh_child_executor_init((pbh_child_executor *)ud, &ex);
    pbh_set_str(&fresh->name, c->name);
    ex.run_case(ex.ud, &plan.cases[0], fresh);
    pbh_plan_free(&plan);
    return 0;
}

int pbh_cmd_compare(int argc, char **argv) {
    static const struct option opts[] = {{"alpha", required_argument, 0, 'a'},
                                         {"threshold", required_argument, 0, 't'},
                                         {"min-samples", required_argument, 0, 'm'},
                                         {"confirm", required_argument, 0, 'c'},
                                         {"format", required_argument, 0, 'f'},
                                         {"output", required_argument, 0, 'o'},
                                         {"store", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    pbs_compare_opts co;
    pbs_compare_opts_default(&co);
    long confirm = 0, min_samples;
    double threshold_pct;
    const char *format = "table", *output = NULL, *store = NULL;
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
        case 'h': fputs(usage, stdout); return PBH_EXIT_OK;
        default: return pbh_cli_usage_error("compare", "unknown option");
        }
    }
    if (argc - optind != 2) return pbh_cli_usage_error("compare", "expected BASE and NEW, got %d argument(s)", argc - optind);
    const char *base_ref = argv[optind], *new_ref = argv[optind + 1];

    /* the store is needed only when a side is not a file */
    pbh_store *st = NULL;
    int both_files = strstr(base_ref, ".json") && strstr(new_ref, ".json");
    if (!both_files) {
        int rc = pbh_cli_open_store(store, PBH_STORE_READ, &st);
        if (rc != PBH_EXIT_OK) return rc;
    }
    pbh_run *base = NULL, *new_ = NULL;
    int rc = load_side(st, base_ref, &base);
    if (rc == PBH_EXIT_OK) rc = load_side(st, new_ref, &new_);
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
            fprintf(stderr, "poolbench: re-measuring %d suspected regression(s) %ld time(s)...\n", cmp.regressions, confirm);
        pbh_compare_confirm(&cmp, (int)confirm, remeasure, &ce);
        if (confirm > 0) cmp.confirm = (int)confirm;
        char *text = strcmp(format, "json") == 0       ? pbh_compare_format_json(&cmp)
                     : strcmp(format, "markdown") == 0 ? pbh_compare_format_markdown(&cmp)
                                                       : pbh_compare_format_table(&cmp);
        rc = pbh_cli_write_output(output, text);
        free(text);
        if (rc == PBH_EXIT_OK && cmp.regressions > 0) rc = PBH_EXIT_REGRESSION;
        pbh_comparison_free(&cmp);
    }
    pbh_run_free(base);
    pbh_run_free(new_);
    return rc;
}
