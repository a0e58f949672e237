/*
 * crash.c - a configurable fraction of tasks crash their worker; every task must be accounted for.
 *
 * Exactly round(fraction x items) tasks, picked from the seed, kill the process they run in (a SIGSEGV, an
 * _exit(3) or an abort(), by `how`); the others return x*x. Every task first sleeps ms, crashing or not.
 * The execution is ok only when the pool behaved right: each crashing task is reported WORKER_DIED with
 * the right signal or exit code, every other task is ok with the right answer (none lost to a neighbour's
 * crash), and the counters agree (that many worker-died results, at least that many worker deaths).
 * That is crash isolation, which only the process backends have: the scenario needs PB_CAP_CRASH_ISOLATION, and
 * pb_scenario_execute reports threads and serial as unsupported rather than crashing the harness.
 *
 * To make "only the task it held" exact, map runs with chunksize 1 (a worker holding a chunk of several
 * items would lose them all), and the crash-loop breaker is raised above twice the number of crashes:
 * this scenario measures isolation and respawn, not the breaker.
 *
 * Ideal model: ceil(items / workers) x ms, as if respawning were free; the overhead above it is mostly
 * respawns, bounded below by the fork_exit_wait floor per crash.
 *
 * Input (24 bytes): u64 x, u64 nanoseconds to sleep, u32 crash (0/1), u32 how. Output (8 bytes): u64 x*x.
 */
#include "scenario_impl.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { P_ITEMS, P_FRACTION, P_MS, P_HOW };
enum { HOW_SEGV, HOW_EXIT, HOW_ABORT };
#define CRASH_EXIT_CODE 3
#define IN_LEN 24

static const pb_param_def params[] = {
    {"items", PB_PARAM_INT, 20, 1, 10000, "number of tasks"},
    {"fraction", PB_PARAM_DOUBLE, 0.25, 0, 1, "fraction of tasks that crash their worker"},
    {"ms", PB_PARAM_DOUBLE, 10, 0, 60000, "milliseconds every task sleeps first"},
    {"how", PB_PARAM_INT, 0, 0, 2, "how a task crashes: 0 = SIGSEGV, 1 = _exit(3), 2 = abort()"},
};

static int crash_task(const void *in, size_t len, pb_output *out) {
    if (len != IN_LEN)
        return pb_output_error(out, "scenario.crash: input of %zu bytes, expected %d", len, IN_LEN);
    const unsigned char *b = in;
    uint64_t x = pbs__get_u64(b), ns = pbs__get_u64(b + 8);
    uint32_t crash, how;
    memcpy(&crash, b + 16, 4);
    memcpy(&how, b + 20, 4);
    pbs__sleep_s((double)ns * 1e-9);
    if (crash) {
        /* A deliberate crash must not leave core files behind; this process is about to die anyway. */
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        if (how == HOW_EXIT)
            _exit(CRASH_EXIT_CODE);
        if (how == HOW_ABORT)
            abort();
        signal(SIGSEGV, SIG_DFL); /* whatever handler the host installed, die of the signal */
        raise(SIGSEGV);
        _exit(CRASH_EXIT_CODE); /* not reached */
    }
    uint64_t y = x * x;
    return pb_output_set(out, &y, sizeof y);
}
PB_TASK_DEFINE("scenario.crash", crash_task)

static size_t crash_count(const pb_params *p) { return (size_t)llround(p->v[P_FRACTION] * p->v[P_ITEMS]); }

static int generate(const pb_scenario *s, const pb_params *p, uint64_t seed, pb_workload *w, char *err,
                    size_t errlen) {
    size_t n = (size_t)p->v[P_ITEMS], k = crash_count(p);
    /* expect: the item indices in a shuffled order; the first k are the crashing ones. */
    int rc = pbs__workload_alloc(w, n, IN_LEN, n * sizeof(size_t), seed, err, errlen);
    if (rc)
        return rc;
    w->chunksize = 1;
    uint64_t st = seed, ns = (uint64_t)llround(p->v[P_MS] * 1e6);
    uint32_t how = (uint32_t)p->v[P_HOW];
    size_t *order = w->expect;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 0; i < k; i++) { /* partial Fisher-Yates: a uniform k-subset */
        size_t j = i + (size_t)(pbs_splitmix64(&st) % (n - i));
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char *rec = w->buf + i * IN_LEN;
        uint32_t zero = 0;
        pbs__put_u64(rec, 1 + pbs_splitmix64(&st) % 0x7FFFFFFFull);
        pbs__put_u64(rec + 8, ns);
        memcpy(rec + 16, &zero, 4);
        memcpy(rec + 20, &how, 4);
    }
    for (size_t i = 0; i < k; i++) {
        uint32_t one = 1;
        memcpy(w->buf + order[i] * IN_LEN + 16, &one, 4);
    }
    return 0;
}

static int verify(const pb_scenario *s, const pb_params *p, const pb_workload *w, const pb_result *results,
                  char *msg, size_t msglen) {
    for (size_t i = 0; i < w->n; i++) {
        const unsigned char *b = w->items[i].data;
        uint32_t crash, how;
        memcpy(&crash, b + 16, 4);
        memcpy(&how, b + 20, 4);
        const pb_result *r = &results[i];
        if (!crash) {
            uint64_t x = pbs__get_u64(b);
            if (pbs__expect_u64(r, i, x * x, msg, msglen))
                return -1;
            continue;
        }
        if (r->status != PB_STATUS_WORKER_DIED)
            return pbs__fail(msg, msglen, "item %zu crashes its worker: status %s, expected worker-died", i,
                             pb_status_name(r->status));
        int want_sig = how == HOW_SEGV ? SIGSEGV : how == HOW_ABORT ? SIGABRT : 0;
        if (want_sig && r->signal != want_sig)
            return pbs__fail(msg, msglen, "item %zu: worker died of signal %d, expected %d", i, r->signal,
                             want_sig);
        if (!want_sig && (r->signal != 0 || r->exit_code != CRASH_EXIT_CODE))
            return pbs__fail(msg, msglen, "item %zu: worker died with signal %d exit code %d, expected exit code %d",
                             i, r->signal, r->exit_code, CRASH_EXIT_CODE);
    }
    return 0;
}

/* The breaker must not trip even when every task crashes: allow twice the crashing tasks (a backend may run
 * a crashing task a second time, see execute) plus one. */
static void configure(const pb_scenario *s, const pb_params *p, pb_options *o) {
    int need = 2 * (int)crash_count(p) + 1;
    if (o->crashloop_deaths < need)
        o->crashloop_deaths = need;
}

/* The common execute, then the counters must agree with the results: exactly k worker-died results and at
 * least k worker deaths. More deaths than crashing tasks is allowed (a backend that cannot tell which item
 * of a lost chunk crashed may re-run them one by one, and the crashing one crashes again) but it costs
 * respawns, so the message says so. */
static int execute(const pb_scenario *s, const pb_params *p, const char *backend, int workers, uint64_t seed,
                   pb_exec_result *res) {
    int rc = pb_scenario_map_execute(s, p, backend, workers, seed, res);
    if (rc < 0 || !res->ok)
        return rc;
    uint64_t k = crash_count(p), died = res->counters.by_status[PB_STATUS_WORKER_DIED],
             deaths = res->counters.worker_deaths;
    if (died != k || deaths < k) {
        res->ok = 0;
        snprintf(res->message, sizeof res->message,
                 "counters disagree: %llu worker-died results and %llu worker deaths for %llu crashing tasks",
                 (unsigned long long)died, (unsigned long long)deaths, (unsigned long long)k);
    } else if (deaths > k) {
        snprintf(res->message, sizeof res->message,
                 "note: %llu worker deaths for %llu crashing tasks (crashing tasks were run more than once)",
                 (unsigned long long)deaths, (unsigned long long)k);
    }
    return rc;
}

static double ideal(const pb_scenario *s, const pb_params *p, int workers) {
    if (workers < 1)
        workers = 1;
    return ceil(p->v[P_ITEMS] / workers) * p->v[P_MS] / 1000.0;
}

const pb_scenario pbs__crash = {
    .name = "crash",
    .description = "a fraction of tasks crash their worker; every task must be accounted for (process backends)",
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .task = "scenario.crash",
    .needs = PB_CAP_CRASH_ISOLATION,
    .floor = "fork_exit_wait",
    .measures = "map",
    .execute = execute,
    .ideal = ideal,
    .generate = generate,
    .verify = verify,
    .configure = configure,
};
