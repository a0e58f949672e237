/*
 * scenario.h - shared workloads: what the harness runs on every backend.
 *
 * A scenario is real work with a checked answer and a model of its own ideal time, so that the harness can
 * report efficiency (ideal / measured) and overhead as a multiple of a physical floor measured on the same
 * machine in the same run. One scenario per file in scenarios/, found by name in the registry
 * (scenarios/registry.c). Floor probes (raw pipe round trip, condvar handoff, fork, spawn, nanosleep
 * overshoot, pipe bandwidth) live in scenarios/floors.c.
 *
 * Life of one execution (pb_scenario_execute):
 *   params -> generate(seed) -> [calibrate once, serially, if the ideal model needs it]
 *   -> pool create -> map/submit -> verify every result -> destroy, timing each phase.
 *
 * Generation and verification are separate hooks (generate / verify) so that a test can generate a
 * workload, doctor a result and prove that the verifier rejects it, without running a pool.
 */
#ifndef POOLBENCH_SCENARIO_H
#define POOLBENCH_SCENARIO_H

#include "poolbench.h"

#include <stddef.h>
#include <stdint.h>

#define PB_MAX_PARAMS 8

typedef enum pb_param_type { PB_PARAM_INT, PB_PARAM_DOUBLE } pb_param_type;

typedef struct pb_param_def {
    const char *name;
    pb_param_type type;
    double def;        /* default value */
    double min, max;   /* accepted range, inclusive */
    const char *help;  /* one line: what it means and its unit */
} pb_param_def;

/* Parameter values of one case, in the order of the scenario's defs. */
typedef struct pb_params {
    double v[PB_MAX_PARAMS];
} pb_params;

typedef struct pb_scenario pb_scenario;

/* What one execution measured. Times in seconds. */
typedef struct pb_exec_result {
    int ok;                 /* 1 when every output verified (and the scenario's expectations held) */
    char message[256];      /* why not ok; or a note */
    double wall_s;          /* the measured phase (see pb_scenario.measures) */
    double startup_s;       /* pool create until the workers are ready */
    double ideal_s;         /* the scenario's ideal time for these params and workers (0: no model) */
    uint64_t tasks;         /* tasks run */
    uint64_t failed_tasks;  /* results whose status was not ok (expected ones included, e.g. crash) */
    pb_counters counters;   /* the pool's counters at the end */
} pb_exec_result;

/* The generated input of one execution plus what the verifier needs. Everything in it is heap memory
 * released by pb_workload_free (the scenario hooks allocate with malloc/calloc). */
typedef struct pb_workload {
    pb_item *items;      /* n inputs, pointing into buf */
    size_t n;
    size_t chunksize;    /* what to pass to pb_map: 0 = the pool's default (automatic) */
    unsigned char *buf;  /* backing store of the inputs */
    void *expect;        /* scenario-private expected answers (one malloc'd block), or NULL */
    uint64_t seed;
} pb_workload;

void pb_workload_free(pb_workload *w); /* frees and zeroes; safe on a zeroed workload */

struct pb_scenario {
    const char *name;
    const char *description; /* one line */
    const pb_param_def *params;
    size_t nparams;
    const char *task;        /* the task it runs (in the task registry) */
    int needs;               /* PB_CAP_* the backend must have (e.g. PB_CAP_CRASH_ISOLATION) */
    const char *floor;       /* name of the floor probe that bounds its per-task overhead */
    const char *measures;    /* what wall_s covers, e.g. "map" or "create + first task + destroy" */
    /* Runs one execution on a backend with the given workers (<= 0: the library's default); fills res.
     * Returns 0 when the execution happened (res->ok says whether it verified) or a negative PB_E* when it
     * could not run at all (res->message says why). pb_scenario_map_execute serves most scenarios. */
    int (*execute)(const pb_scenario *s, const pb_params *p, const char *backend, int workers, uint64_t seed,
                   pb_exec_result *res);
    /* The ideal time in seconds for these params on `workers` workers (may calibrate serially, once per
     * params and process). 0 means the scenario has no model. */
    double (*ideal)(const pb_scenario *s, const pb_params *p, int workers);
    /* Builds the deterministic input for seed (same params + seed = same bytes) and the expected answers.
     * Returns 0, or PB_EINVAL / -ENOMEM with a message in err (e.g. a size over the memory limit). */
    int (*generate)(const pb_scenario *s, const pb_params *p, uint64_t seed, pb_workload *w, char *err,
                    size_t errlen);
    /* Checks results[0..w->n) against w. 0 when every result is what it must be, else -1 with the first
     * discrepancy in msg ("item 3: expected 9, got 10"). A missing result (non-ok status where ok was
     * due) is a discrepancy. */
    int (*verify)(const pb_scenario *s, const pb_params *p, const pb_workload *w, const pb_result *results,
                  char *msg, size_t msglen);
    /* Optional (NULL = none): adjusts pool options before create (e.g. crash disables the breaker). */
    void (*configure)(const pb_scenario *s, const pb_params *p, pb_options *o);
};

size_t pb_scenario_count(void);
const pb_scenario *pb_scenario_at(size_t i);
const pb_scenario *pb_scenario_find(const char *name); /* NULL when unknown */

/* Fills p with the defaults. */
void pb_params_defaults(const pb_scenario *s, pb_params *p);
/* Applies "name=value". On error returns PB_EINVAL and writes a message naming the parameter and what it
 * accepts into err (e.g. "sleep: unknown parameter 'itemz' (accepts: items, ms)", "sleep: ms must be a
 * number in [0, 600000], got 'abc'", "sleep: items must be an integer in [1, 1000000], got '2.5'"). */
int pb_params_set(const pb_scenario *s, pb_params *p, const char *assignment, char *err, size_t errlen);
/* Value by name (for scenario code): NAN when unknown. */
double pb_param(const pb_scenario *s, const pb_params *p, const char *name);
/* "items=4,ms=2000" in def order: a stable key for a case ("" for a scenario without parameters). */
void pb_params_format(const pb_scenario *s, const pb_params *p, char *buf, size_t len);
/* One line for `list`: "items  int     default 4      [1, 1000000]  number of tasks". */
void pb_param_describe(const pb_param_def *d, char *buf, size_t len);

/* Runs s->execute; when the backend lacks s->needs returns PB_ENOTSUP without running (res->message
 * says which capability is missing); PB_ENOBACKEND for an unknown backend. */
int pb_scenario_execute(const pb_scenario *s, const pb_params *p, const char *backend, int workers,
                        uint64_t seed, pb_exec_result *res);
/* 1 when backend has every capability the scenario needs (0 also for an unknown backend). */
int pb_scenario_supported(const pb_scenario *s, const char *backend);

/* Validation hook (`poolbench exec --inject-slowdown PCT`): from now on, every measured phase of this
 * process really takes pct % longer. At the end of the phase the process busy-waits for pct % of the time
 * the phase just took, inside the timed window, so the slowdown meets the machine's real noise (it is
 * never arithmetic on a stored number). 0 turns it off; only for checking that verdicts detect what they
 * should. */
void pb_scenario_inject_slowdown(double pct);

/* The common execute: generate, ideal, create (timed: startup_s), pb_map (timed: wall_s), verify, join,
 * counters, destroy. */
int pb_scenario_map_execute(const pb_scenario *s, const pb_params *p, const char *backend, int workers,
                            uint64_t seed, pb_exec_result *res);

/* ---- floor probes: the machine's physical limits, measured in the same run ---- */
typedef struct pb_floor {
    const char *name;        /* "pipe_rtt", "condvar_handoff", "fork_exit_wait", "spawn_wait",
                                "nanosleep_overshoot", "pipe_mib" */
    const char *description; /* says exactly what one operation is */
    /* Measures `reps` operations and returns seconds per operation (median over a few batches), or a
     * negative value when it could not be measured. */
    double (*measure)(int reps);
    int reps;                /* a sensible count: about 0.1-0.5 s on a typical machine */
} pb_floor;

size_t pb_floor_count(void);
const pb_floor *pb_floor_at(size_t i);
const pb_floor *pb_floor_find(const char *name);

#endif
