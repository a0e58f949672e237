/*
 * registry.c - the scenario registry and the machinery every scenario shares: the capability check, the
 * common execute (generate -> ideal -> create -> map -> verify -> destroy), the serial calibration cache
 * behind the ideal-time models, and small helpers (clock, sleep, workload buffers, result checks).
 *
 * DESIGN. A scenario file exports one const pb_scenario and keeps everything else static; this file lists
 * them in one table, so adding a scenario is one file plus one line here. Timing: only the pool phases are
 * timed (create -> startup_s, map -> wall_s) with CLOCK_MONOTONIC; generation, calibration and
 * verification happen outside the timed phases, so a slow verifier never makes a pool look slow.
 * Calibration runs the task function directly (pb__run_item, the same entry point every backend uses to
 * run an item) in the calling thread: the cost of the work itself without any dispatch. It is cached per
 * (scenario, params) for the life of the process, under one mutex that is also held while calibrating so
 * that two calibrations never share the CPU and skew each other. The parallel calibration of CPU-bound
 * scenarios (pbs__calibrate_parallel) runs the same workload split over plain forked processes, no pool:
 * the machine's real parallel capacity, measured in the same run as the pools it judges. Lock order: calib_lock, then a scenario's
 * own cache lock (cpu.c's, taken by its generate), never the reverse.
 */
#include "scenario_impl.h"

#include "backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const pb_scenario *const scenarios[] = {
    &pbs__sleep, &pbs__square, &pbs__cpu, &pbs__payload, &pbs__skew, &pbs__crash, &pbs__startup,
};
#define NSCENARIOS (sizeof scenarios / sizeof scenarios[0])

size_t pb_scenario_count(void) { return NSCENARIOS; }

const pb_scenario *pb_scenario_at(size_t i) { return i < NSCENARIOS ? scenarios[i] : NULL; }

const pb_scenario *pb_scenario_find(const char *name) {
    if (!name)
        return NULL;
    for (size_t i = 0; i < NSCENARIOS; i++)
        if (strcmp(scenarios[i]->name, name) == 0)
            return scenarios[i];
    return NULL;
}

/* ---- helpers ---- */

static double injected_slowdown; /* fraction; set once, before any execution, by the exec verb */

void pb_scenario_inject_slowdown(double pct) {
    injected_slowdown = pct > 0 ? pct / 100.0 : 0.0;
}

double pbs__measured_end(double t_start) {
    double end = pbs_now();
    if (injected_slowdown > 0) {
        /* Busy, not asleep: a sleep would add the scheduler's wake-up latency on top, and a slower build
         * burns CPU rather than idling. The phase ends when (1 + f) x its own duration has passed. */
        double until = end + injected_slowdown * (end - t_start);
        while ((end = pbs_now()) < until) {
        }
    }
    return end;
}

void pbs__sleep_s(double s) {
    if (!(s > 0))
        return;
    /* An absolute deadline: a signal that interrupts the sleep does not shorten or stretch it. */
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long long ns = (long long)(s * 1e9 + 0.5);
    t.tv_sec += (time_t)(ns / 1000000000LL);
    t.tv_nsec += (long)(ns % 1000000000LL);
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {
    }
}

int pbs__online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int)n : 1;
}

int pbs__effective_workers(int workers) {
    int cpus = pbs__online_cpus();
    if (workers < 1)
        workers = 1;
    return workers < cpus ? workers : cpus;
}

int pbs__fail(char *msg, size_t len, const char *fmt, ...) {
    if (msg && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int pbs__workload_alloc(pb_workload *w, size_t n, size_t item_len, size_t expect_bytes, uint64_t seed,
                        char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    w->seed = seed;
    w->n = n;
    /* calloc checks n * size for overflow; +1 keeps a zero-sized request a real allocation. */
    w->items = calloc(n + 1, sizeof *w->items);
    w->buf = n && item_len ? calloc(n, item_len) : NULL;
    w->expect = expect_bytes ? calloc(1, expect_bytes) : NULL;
    if (!w->items || (n && item_len && !w->buf) || (expect_bytes && !w->expect)) {
        pb_workload_free(w);
        pbs__fail(err, errlen, "out of memory generating %zu items of %zu bytes", n, item_len);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        w->items[i].data = w->buf ? w->buf + i * item_len : NULL;
        w->items[i].len = item_len;
    }
    return 0;
}

void pb_workload_free(pb_workload *w) {
    if (!w)
        return;
    free(w->items);
    free(w->buf);
    free(w->expect);
    memset(w, 0, sizeof *w);
}

static int expect_ok(const pb_result *r, size_t i, char *msg, size_t len) {
    if (r->status != PB_STATUS_OK)
        return pbs__fail(msg, len, "item %zu: status %s (%s), expected ok", i, pb_status_name(r->status),
                         r->message ? r->message : "no message");
    return 0;
}

int pbs__expect_ok_len(const pb_result *r, size_t i, size_t want, char *msg, size_t msglen) {
    if (expect_ok(r, i, msg, msglen))
        return -1;
    if (r->len != want)
        return pbs__fail(msg, msglen, "item %zu: output of %zu bytes, expected %zu", i, r->len, want);
    if (want && !pb_result_data(r))
        return pbs__fail(msg, msglen, "item %zu: output missing", i);
    return 0;
}

int pbs__expect_u64(const pb_result *r, size_t i, uint64_t want, char *msg, size_t len) {
    if (pbs__expect_ok_len(r, i, sizeof want, msg, len))
        return -1;
    uint64_t got = pbs__get_u64(pb_result_data(r));
    if (got != want)
        return pbs__fail(msg, len, "item %zu: expected %llu, got %llu", i, (unsigned long long)want,
                         (unsigned long long)got);
    return 0;
}

int pbs__verify_squares(const pb_scenario *s, const pb_params *p, const pb_workload *w, const pb_result *results,
                        char *msg, size_t msglen) {
    (void)s, (void)p;
    for (size_t i = 0; i < w->n; i++) {
        uint64_t x = pbs__get_u64(w->items[i].data);
        if (pbs__expect_u64(&results[i], i, x * x, msg, msglen))
            return -1;
    }
    return 0;
}

/* ---- calibration cache ---- */

#define CALIBRATION_SLOTS 32
#define CALIBRATION_MIN_S 0.05 /* repeat short calibrations (and keep the fastest) until this much time */
#define CALIBRATION_MAX_RUNS 5

static struct {
    const pb_scenario *s;
    pb_params p;
    double seconds;
} calib[CALIBRATION_SLOTS];
static size_t calib_next; /* round-robin replacement once full */
static pthread_mutex_t calib_lock = PTHREAD_MUTEX_INITIALIZER;

static int same_params(const pb_scenario *s, const pb_params *a, const pb_params *b) {
    for (size_t i = 0; i < s->nparams; i++)
        if (a->v[i] != b->v[i])
            return 0;
    return 1;
}

/* One timed serial pass over every item; negative when an item does not come back ok. */
static double serial_pass(const pb_task *task, const pb_workload *w) {
    pb_options o;
    pb_options_init(&o);
    double t0 = pbs_now();
    for (size_t i = 0; i < w->n; i++) {
        pb_result r;
        memset(&r, 0, sizeof r);
        pb__run_item(task, w->items[i].data, w->items[i].len, o.max_item_bytes, &r);
        int st = r.status;
        pb_result_clear(&r);
        if (st != PB_STATUS_OK)
            return -1;
    }
    return pbs_now() - t0;
}

double pbs__calibrate(const pb_scenario *s, const pb_params *p) {
    double out = -1;
    pthread_mutex_lock(&calib_lock);
    for (size_t i = 0; i < CALIBRATION_SLOTS; i++)
        if (calib[i].s == s && same_params(s, &calib[i].p, p)) {
            out = calib[i].seconds;
            goto done;
        }
    const pb_task *task = pb_task_find(s->task);
    pb_workload w;
    if (!task || s->generate(s, p, PBS__CALIBRATION_SEED, &w, NULL, 0) != 0)
        goto done;
    /* The fastest of several passes, since the ideal is a lower bound and a pass can be preempted: at least
     * two unless one already took half a second, more while the total is under CALIBRATION_MIN_S. */
    double spent = 0;
    for (int run = 0; run < CALIBRATION_MAX_RUNS && (spent < CALIBRATION_MIN_S || (run < 2 && spent < 0.5));
         run++) {
        double t = serial_pass(task, &w);
        if (t < 0) {
            out = -1;
            break;
        }
        spent += t;
        if (out < 0 || t < out)
            out = t;
    }
    pb_workload_free(&w);
    if (out >= 0) {
        size_t slot = calib_next++ % CALIBRATION_SLOTS;
        calib[slot].s = s;
        calib[slot].p = *p;
        calib[slot].seconds = out;
    }
done:
    pthread_mutex_unlock(&calib_lock);
    return out;
}

/* The share of one copy of the parallel calibration: items k, k + n, k + 2n, ... */
typedef struct split_pass {
    const pb_task *task;
    const pb_workload *w;
} split_pass;

static int split_pass_run(void *arg, int k, int n) {
    const split_pass *sp = arg;
    pb_options o;
    pb_options_init(&o);
    for (size_t i = (size_t)k; i < sp->w->n; i += (size_t)n) {
        pb_result r;
        memset(&r, 0, sizeof r);
        pb__run_item(sp->task, sp->w->items[i].data, sp->w->items[i].len, o.max_item_bytes, &r);
        int st = r.status;
        pb_result_clear(&r);
        if (st != PB_STATUS_OK)
            return -1;
    }
    return 0;
}

#define PARALLEL_CALIBRATION_RUNS 3

static struct {
    const pb_scenario *s;
    pb_params p;
    int n;
    double seconds;
} calib_par[CALIBRATION_SLOTS];
static size_t calib_par_next;

double pbs__calibrate_parallel(const pb_scenario *s, const pb_params *p, int workers) {
    int n = pbs__effective_workers(workers);
    double serial = pbs__calibrate(s, p); /* takes calib_lock itself */
    if (serial < 0 || n == 1)
        return serial;
    double out = -1;
    pthread_mutex_lock(&calib_lock);
    for (size_t i = 0; i < CALIBRATION_SLOTS; i++)
        if (calib_par[i].s == s && calib_par[i].n == n && same_params(s, &calib_par[i].p, p)) {
            out = calib_par[i].seconds;
            goto done;
        }
    pb_workload w;
    split_pass sp = {pb_task_find(s->task), &w};
    if (!sp.task || s->generate(s, p, PBS__CALIBRATION_SEED, &w, NULL, 0) != 0)
        goto done;
    for (int run = 0; run < PARALLEL_CALIBRATION_RUNS; run++) {
        double t = pbs__run_copies(n, split_pass_run, &sp);
        if (t < 0) {
            out = -1;
            break;
        }
        if (out < 0 || t < out)
            out = t;
    }
    pb_workload_free(&w);
    if (out >= 0) {
        if (out > serial)
            out = serial;
        size_t slot = calib_par_next++ % CALIBRATION_SLOTS;
        calib_par[slot].s = s;
        calib_par[slot].p = *p;
        calib_par[slot].n = n;
        calib_par[slot].seconds = out;
    }
done:
    pthread_mutex_unlock(&calib_lock);
    return out;
}

/* ---- execution ---- */

/* The results array of pb_scenario_map_execute: one anonymous mapping kept for the process's life (grown
 * when a case needs more) and marked MADV_DONTFORK. Why: the fork backend forks its workers in
 * pb_pool_create, after this array exists; every page of it the pool then writes (the core zeroes it,
 * results land in it) was shared copy-on-write with each worker and costs the host a fault and a 4 KiB
 * copy, every repetition (a fresh calloc lands on heap pages the previous pool's workers shared). Workers
 * never read the caller's results, so they need not inherit it at all: with DONTFORK the pages stay the
 * host's alone and, reused across repetitions, are not faulted in again. (On this project's reference VM a
 * page fault costs ~15 us: `square` 100,000 on fork went from ~21,000 host faults per 10 repetitions to
 * the count spawn has; docs/process-backends.md.) Zeroed here; one caller at a time (the harness runs one
 * execution at a time per process), guarded anyway. */
static pthread_mutex_t results_lock = PTHREAD_MUTEX_INITIALIZER;
static void *results_map;
static size_t results_map_bytes;

static pb_result *results_buffer(size_t n) {
    if (n > SIZE_MAX / sizeof(pb_result))
        return NULL;
    size_t bytes = n * sizeof(pb_result);
    pthread_mutex_lock(&results_lock);
    if (bytes > results_map_bytes) {
        if (results_map)
            munmap(results_map, results_map_bytes);
        size_t page = (size_t)sysconf(_SC_PAGESIZE), len = (bytes + page - 1) / page * page;
        results_map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (results_map == MAP_FAILED) {
            results_map = NULL;
            results_map_bytes = 0;
        } else {
            results_map_bytes = len;
            madvise(results_map, len, MADV_DONTFORK); /* best effort: without it, only slower */
        }
    }
    pb_result *r = results_map;
    if (r)
        memset(r, 0, bytes);
    pthread_mutex_unlock(&results_lock);
    return r;
}

static void cap_names(int caps, char *buf, size_t len) {
    static const struct {
        int bit;
        const char *name;
    } names[] = {{PB_CAP_ASYNC, "async"},
                 {PB_CAP_CRASH_ISOLATION, "crash isolation"},
                 {PB_CAP_TIMEOUT, "timeouts"},
                 {PB_CAP_RECYCLE, "recycling"}};
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((caps & names[i].bit) && off < len)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", names[i].name);
}

int pb_scenario_supported(const pb_scenario *s, const char *backend) {
    if (!s)
        return 0;
    int caps = pb_backend_caps(backend ? backend : pb_backend_default());
    return caps >= 0 && (caps & s->needs) == s->needs;
}

int pb_scenario_execute(const pb_scenario *s, const pb_params *p, const char *backend, int workers,
                        uint64_t seed, pb_exec_result *res) {
    if (!res)
        return PB_EINVAL;
    memset(res, 0, sizeof *res);
    if (!s || !p || !s->execute) {
        snprintf(res->message, sizeof res->message, "no scenario or params");
        return PB_EINVAL;
    }
    const char *b = backend ? backend : pb_backend_default();
    int caps = pb_backend_caps(b);
    if (caps < 0) {
        snprintf(res->message, sizeof res->message, "unknown backend '%s'", b);
        return PB_ENOBACKEND;
    }
    if ((caps & s->needs) != s->needs) {
        char missing[96];
        cap_names(s->needs & ~caps, missing, sizeof missing);
        snprintf(res->message, sizeof res->message, "unsupported: scenario '%s' needs %s, which backend '%s' lacks",
                 s->name, missing, b);
        return PB_ENOTSUP;
    }
    return s->execute(s, p, b, workers, seed, res);
}

int pb_scenario_map_execute(const pb_scenario *s, const pb_params *p, const char *backend, int workers,
                            uint64_t seed, pb_exec_result *res) {
    memset(res, 0, sizeof *res);
    pb_options o;
    pb_options_init(&o);
    if (workers > 0)
        o.workers = workers;
    if (s->configure)
        s->configure(s, p, &o);

    pb_workload w;
    int rc = s->generate(s, p, seed, &w, res->message, sizeof res->message);
    if (rc != 0)
        return rc < 0 ? rc : PB_EINVAL;
    /* Before the pool exists: a calibration must not compete with workers for the CPU. */
    res->ideal_s = s->ideal ? s->ideal(s, p, o.workers) : 0;

    pb_result *results = results_buffer(w.n + 1);
    if (!results) {
        pb_workload_free(&w);
        snprintf(res->message, sizeof res->message, "out of memory for %zu results", w.n);
        return -ENOMEM;
    }
    pb_pool *pool = NULL;
    double t0 = pbs_now();
    rc = pb_pool_create(&pool, backend, &o);
    double t1 = pbs_now();
    if (rc < 0) {
        snprintf(res->message, sizeof res->message, "pool create on '%s' failed: %s (%s)", backend,
                 pb_strerror(rc), pb_last_error());
        goto out;
    }
    res->startup_s = t1 - t0;

    double t2 = pbs_now();
    rc = pb_map(pool, s->task, w.items, w.n, w.chunksize, results);
    double t3 = pbs__measured_end(t2);
    if (rc < 0) {
        snprintf(res->message, sizeof res->message, "map of %zu items failed: %s (%s)", w.n, pb_strerror(rc),
                 pb_last_error());
    } else {
        rc = 0;
        res->wall_s = t3 - t2;
        res->tasks = w.n;
        for (size_t i = 0; i < w.n; i++)
            res->failed_tasks += results[i].status != PB_STATUS_OK;
        res->ok = s->verify(s, p, &w, results, res->message, sizeof res->message) == 0;
    }
    pb_pool_join(pool);
    pb_pool_counters(pool, &res->counters);
    pb_pool_destroy(pool);
out:
    pb_results_clear(results, w.n);
    pb_workload_free(&w);
    return rc;
}
