/*
 * model.h - the harness's data model: a run, its cases, their raw samples, its floor probes and context.
 *
 * One set of plain structs is shared by everything that produces runs (the runner, and the importers of
 * Google Benchmark and hyperfine files), everything that keeps them (store.c) and everything that shows
 * them (format_*.c, compare, history). Strings are heap copies owned by the struct that holds them;
 * pbh_run_free() releases a whole run. All times are seconds, memory is KiB (what getrusage reports).
 */
#ifndef POOLBENCH_HARNESS_MODEL_H
#define POOLBENCH_HARNESS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "util.h"

/* Error codes. Three spaces meet in the harness, each in a range of its own so that a code says where it
 * came from:
 *      0                  ok, in every space
 *     -1 .. -4095         a negative errno (the pool library's system errors; impls/include/poolbench.h)
 *     -10001 .. -10999    PB_E*: the pool library's own errors (impls/include/poolbench.h)
 *     -20001 .. -20099    PBH_E*: the harness's errors, below; what harness functions return
 *     -30001 .. -30099    PBS_E*: the statistics' errors (stats.h)
 * pbh_error() is the one translation from any of them to a PBH_E*; the CLI maps PBH_E* onto exit codes
 * (pbh_cli_exit_for). */
enum {
    PBH_OK = 0,
    PBH_EINPUT = -20001,    /* bad input from the user: unknown name, malformed value, not a store, ... */
    PBH_ENOTFOUND = -20002, /* no such run */
    PBH_EIO = -20003,       /* a system or SQLite failure */
    PBH_ENOMEM = -20004,
    PBH_ESCHEMA = -20005,   /* the store was written by a newer poolbench */
    PBH_EEXIST = -20006,    /* the store already holds a run with this uuid: nothing was written */
};

/* Any code of the ranges above as a PBH_E*: out of memory stays out of memory; a bad argument or data
 * outside a method's domain (PBS_EINVAL, PBS_EDOMAIN, PB_EINVAL, an unknown backend or task, a size
 * over a limit, an unsupported option) is bad input; everything else (a system error, a worker that
 * could not start, a protocol error, ...) is PBH_EIO. PBH_E* codes pass through. */
int pbh_error(int rc);

/* One repetition of one case. */
typedef struct pbh_sample {
    int rep;             /* 0-based repetition index (warm-ups are not stored) */
    double wall_s;       /* the scenario's measured phase (see pbh_case.measures) */
    double user_s;       /* user CPU of the case process and its reaped workers during the repetition */
    double sys_s;        /* system CPU, likewise */
    int64_t peak_rss_kb; /* peak resident set: the case process or its largest worker (see runner.h) */
    double startup_s;    /* pool create until the workers are ready */
    double ideal_s;      /* the scenario's ideal time for this case */
    uint64_t tasks;      /* tasks run */
    uint64_t failed_tasks;
    int64_t iterations;  /* executions folded into this sample: 1 for native runs (gbench imports: more) */
} pbh_sample;

/* Derived per-sample values, one definition for every output. */
double pbh_sample_cpu(const pbh_sample *s);        /* user + sys */
double pbh_sample_tasks_per_s(const pbh_sample *s); /* tasks / wall; 0 when wall is 0 */
double pbh_sample_efficiency(const pbh_sample *s);  /* ideal / wall; 0 when either is unknown */

/* Case status strings stored in the store (stable: compare and history read them). */
#define PBH_STATUS_OK "ok"
#define PBH_STATUS_FAILED "failed"           /* crashed, wrong answer, could not start */
#define PBH_STATUS_TIMEOUT "timeout"         /* killed after the per-case time limit */
#define PBH_STATUS_UNSUPPORTED "unsupported" /* the backend lacks a capability the scenario needs */

/* One case: scenario x backend x workers x params, with its raw samples. */
typedef struct pbh_case {
    int64_t id;       /* store id (0 until stored) */
    char *name;       /* stable key: "scenario/backend/wN/params" (imports: the tool's own name) */
    char *scenario;   /* NULL for imported cases that have none */
    char *backend;
    int workers;
    char *params;     /* "items=4,ms=2000" in the scenario's order */
    char *status;     /* PBH_STATUS_* */
    char *reason;     /* why not ok (NULL when ok) */
    int reps;         /* repetitions asked for */
    int warmup;       /* warm-up executions, not stored */
    char *floor;      /* the floor probe that bounds this scenario's per-task overhead (may be NULL) */
    char *measures;   /* what wall_s covers ("map", ...) */
    double elapsed_s; /* wall time the whole case took, child start to reap */
    pbh_sample *samples;
    size_t nsamples;
} pbh_case;

/* One floor probe result: seconds per operation. */
typedef struct pbh_floor {
    char *name;
    double seconds; /* < 0: could not be measured */
    int reps;
} pbh_floor;

#define PBH_SOURCE_NATIVE "native"
#define PBH_SOURCE_GBENCH "gbench"
#define PBH_SOURCE_HYPERFINE "hyperfine"

typedef struct pbh_run {
    int64_t id;          /* store id (0 until stored): local to one store */
    char *uuid;          /* the run's identity in every store (set when it is first stored; push keeps it) */
    char *source;        /* PBH_SOURCE_* */
    char *label;         /* NULL when none */
    char *suite;         /* NULL when the matrix came from flags */
    char *status;        /* "ok" or "failed" (a case failed or timed out) */
    double duration_s;   /* whole run */
    pbh_context ctx;     /* where and when it ran */
    pbh_case *cases;
    size_t ncases;
    pbh_floor *floors;
    size_t nfloors;
} pbh_run;

/* A run's line in `poolbench runs`. */
typedef struct pbh_run_info {
    int64_t id;
    char *uuid, *machine;
    char *source, *label, *suite, *status;
    char *started_at, *git_commit, *host;
    int git_dirty;
    double duration_s;
    int ncases, nfailed;
    int64_t pair_id;  /* the interleaved A/B pair this run is a side of (0: a lone run) */
    int pair_is_head; /* 1: the pair's head side, 0: its base side (when pair_id != 0) */
} pbh_run_info;

/* What a results table shows about one case (computed from the samples with stats.h). */
typedef struct pbh_case_summary {
    size_t n;
    double median_s, q1_s, q3_s, mad_s, min_s, max_s, mean_s;
    double mad_pct;        /* 100 * MAD / median: the spread column */
    double iqr_pct;        /* 100 * (q3 - q1) / median */
    double cpu_median_s;
    double efficiency;     /* median ideal / median wall; 0 when no ideal */
    double tasks_per_s;    /* median tasks / median wall */
    double ideal_s;
    uint64_t tasks;        /* tasks per execution (the first sample's) */
    double overhead_per_task_s; /* (median wall - ideal) / tasks; NAN without an ideal or tasks */
    double floor_s;             /* the floor's seconds per operation; NAN when unknown */
    double overhead_x_floor;    /* overhead_per_task_s / floor_s; NAN when either is unknown */
    int64_t peak_rss_kb;   /* max over samples */
    double startup_median_s;
} pbh_case_summary;

/* Fills sum for c; floor_s is looked up in run->floors by c->floor (run may be NULL). 0 or PBH_E*. */
int pbh_case_summarize(const pbh_run *run, const pbh_case *c, pbh_case_summary *sum);

const pbh_floor *pbh_run_floor(const pbh_run *run, const char *name);
/* The case of run named name, or NULL: the one lookup by name for compare, import and pooling. */
pbh_case *pbh_run_find_case(const pbh_run *run, const char *name);
/* 1 when c ran ok (status PBH_STATUS_OK). */
int pbh_case_is_ok(const pbh_case *c);
/* The values compared and tracked over history: wall time per iteration of each sample (an imported
 * gbench sample folds several iterations). Heap array of c->nsamples (at least 1 element), NULL on out
 * of memory. */
double *pbh_case_times(const pbh_case *c);

pbh_run *pbh_run_new(void);
void pbh_run_free(pbh_run *run);
void pbh_case_clear(pbh_case *c);
/* Appends a zeroed case / sample / floor and returns it (NULL on out of memory). */
pbh_case *pbh_run_add_case(pbh_run *run);
pbh_sample *pbh_case_add_sample(pbh_case *c);
pbh_floor *pbh_run_add_floor(pbh_run *run, const char *name, double seconds, int reps);
/* Pools `from` into `into`: each case's samples are appended to the case of the same name (added when
 * missing), repetitions renumbered. A baseline pooled from several runs carries their run-to-run
 * variation, which one run's samples cannot show. 0 or PBH_ENOMEM. */
int pbh_run_pool(pbh_run *into, const pbh_run *from);
void pbh_run_infos_free(pbh_run_info *infos, size_t n);


#endif
