/*
 * runner.c - expands a suite or a flag matrix into cases and runs each case in its own child process.
 *
 * DESIGN
 *  Plan: suite items (or the --scenario list) x backends x workers x param sweeps, each checked against
 *  the registries up front, so that a typo fails in a millisecond with exit 2 instead of after an hour.
 *  Backends without PB_CAP_ASYNC (serial) run their tasks inline: their case is run once at workers=1.
 *
 *  Execution (the child executor): one child per case, `poolbench exec --json --reps R --warmup W ...`
 *  started with posix_spawn (no shell; argv built from validated names), stdin /dev/null, stdout and
 *  stderr on two CLOEXEC pipes, in its own process group so that one kill(-pgid, SIGKILL) also takes the
 *  pool workers the case started. The child prints one JSON line per execution; the parent polls both
 *  pipes against the case's deadline, keeps the last bytes of stderr for the failure reason, and on the
 *  deadline (or an interrupt) kills the group. Exit is detected with waitid(WNOWAIT) so that the group is
 *  killed (stray workers) *before* the leader is reaped and its pid could be reused. Every child is
 *  reaped, every fd closed, on every path.
 *  A case that crashes, hangs, exits early or prints a wrong answer is recorded as failed/timeout with its
 *  reason and whatever samples it produced; the run goes on. Unsupported pairs are recorded, not run.
 *  The floor probes run first, in a child of their own (`exec --floors --json`).
 */
#include "runner.h"

#include "context.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static volatile sig_atomic_t interrupted;

void pbh_runner_interrupt(void) {
    interrupted = 1;
}

int pbh_runner_interrupted(void) {
    return interrupted != 0;
}

static void seterr(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

void pbh_request_init(pbh_request *rq) {
    memset(rq, 0, sizeof *rq);
    rq->reps = -1;
    rq->warmup = -1;
    rq->processes = -1;
    rq->seed = PBH_DEFAULT_SEED;
}

void pbh_plan_free(pbh_plan *plan) {
    free(plan->cases);
    memset(plan, 0, sizeof *plan);
}

/* ---- plan ---------------------------------------------------------------------------------------- */

static void known_backends(char *buf, size_t len) {
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < pb_backend_count() && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", pb_backend_name_at(i));
}

static void known_scenarios(char *buf, size_t len) {
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < pb_scenario_count() && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", pb_scenario_at(i)->name);
}

static int in_list(const char *const *list, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

/* Splits a comma list into at most max pieces of buf (modified). Returns the count. */
static size_t split(char *buf, char sep, char **out, size_t max) {
    size_t n = 0;
    char *p = buf;
    while (p && *p && n < max) {
        char *next = strchr(p, sep);
        if (next)
            *next++ = '\0';
        if (*p)
            out[n++] = p;
        p = next;
    }
    return n;
}

typedef struct param_sets {
    pb_params *v;
    size_t n;
} param_sets;

/* Applies every request param that names one of s's params; sweeps multiply the sets. */
static int expand_params(const pb_scenario *s, const pb_params *base, const pbh_request *rq, int *used,
                         param_sets *out, char *err, size_t errlen) {
    out->v = malloc(sizeof(pb_params));
    if (!out->v)
        return PBH_ENOMEM;
    out->v[0] = *base;
    out->n = 1;
    for (size_t i = 0; i < rq->nparams; i++) {
        const char *eq = strchr(rq->params[i], '=');
        size_t klen = (size_t)(eq - rq->params[i]);
        int known = 0;
        for (size_t d = 0; d < s->nparams; d++)
            if (strlen(s->params[d].name) == klen && strncmp(s->params[d].name, rq->params[i], klen) == 0)
                known = 1;
        if (!known)
            continue;
        used[i] = 1;
        char vals[256];
        snprintf(vals, sizeof vals, "%s", eq + 1);
        char *pieces[PBH_MAX_LIST];
        size_t nv = split(vals, ',', pieces, PBH_MAX_LIST);
        if (nv == 0) {
            seterr(err, errlen, "malformed --param '%s': expected NAME=VALUE[,VALUE...]", rq->params[i]);
            free(out->v);
            return PBH_EINPUT;
        }
        pb_params *nvset = malloc(out->n * nv * sizeof *nvset);
        if (!nvset) {
            free(out->v);
            return PBH_ENOMEM;
        }
        size_t k = 0;
        for (size_t a = 0; a < out->n; a++) {
            for (size_t b = 0; b < nv; b++) {
                char assign[320];
                snprintf(assign, sizeof assign, "%.*s=%s", (int)klen, rq->params[i], pieces[b]);
                nvset[k] = out->v[a];
                char msg[256];
                if (pb_params_set(s, &nvset[k], assign, msg, sizeof msg) != 0) {
                    seterr(err, errlen, "bad --param '%s': %s", rq->params[i], msg);
                    free(nvset);
                    free(out->v);
                    return PBH_EINPUT;
                }
                k++;
            }
        }
        free(out->v);
        out->v = nvset;
        out->n = k;
    }
    return PBH_OK;
}

static int add_case(pbh_plan *plan, size_t *cap, const pbh_case_spec *spec) {
    for (size_t i = 0; i < plan->n; i++)
        if (strcmp(plan->cases[i].name, spec->name) == 0)
            return PBH_OK; /* the same case twice (serial collapsing, overlapping items): run it once */
    if (plan->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        pbh_case_spec *na = realloc(plan->cases, ncap * sizeof *na);
        if (!na)
            return PBH_ENOMEM;
        plan->cases = na;
        *cap = ncap;
    }
    plan->cases[plan->n++] = *spec;
    return PBH_OK;
}

/* One suite item or one --scenario: the cases for every backend, worker count and param set. */
static int expand_item(const pbh_request *rq, const pbh_suite *suite, const pbh_suite_item *item,
                       const pb_scenario *s, int *used, pbh_plan *plan, size_t *cap, char *err, size_t errlen) {
    pb_params base;
    pb_params_defaults(s, &base);
    if (item && item->params) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", item->params);
        char *pieces[PB_MAX_PARAMS * 2];
        size_t n = split(buf, ' ', pieces, PB_MAX_PARAMS * 2);
        for (size_t i = 0; i < n; i++) {
            char msg[256];
            if (pb_params_set(s, &base, pieces[i], msg, sizeof msg) != 0) {
                seterr(err, errlen, "suite '%s' is broken: %s", suite ? suite->name : "?", msg);
                return PBH_EINPUT;
            }
        }
    }
    param_sets sets;
    int rc = expand_params(s, &base, rq, used, &sets, err, errlen);
    if (rc != PBH_OK)
        return rc;

    /* backends: the item's (or all), filtered by --backend */
    const char *backends[PBH_MAX_LIST];
    size_t nb = 0;
    char bbuf[256];
    if (item && item->backends) {
        snprintf(bbuf, sizeof bbuf, "%s", item->backends);
        nb = split(bbuf, ',', (char **)backends, PBH_MAX_LIST);
    } else if (!item && rq->nbackends) {
        for (size_t i = 0; i < rq->nbackends; i++)
            backends[nb++] = rq->backends[i];
    } else {
        for (size_t i = 0; i < pb_backend_count() && nb < PBH_MAX_LIST; i++)
            backends[nb++] = pb_backend_name_at(i);
    }
    /* workers: --workers, else the item's, else the pool's default (online CPUs) */
    int workers[PBH_MAX_LIST];
    size_t nw = 0;
    if (rq->nworkers) {
        for (size_t i = 0; i < rq->nworkers; i++)
            workers[nw++] = rq->workers[i];
    } else if (item && item->workers) {
        char wbuf[128];
        snprintf(wbuf, sizeof wbuf, "%s", item->workers);
        char *pieces[PBH_MAX_LIST];
        size_t n = split(wbuf, ',', pieces, PBH_MAX_LIST);
        for (size_t i = 0; i < n; i++)
            workers[nw++] = atoi(pieces[i]);
    } else {
        pb_options o;
        pb_options_init(&o);
        workers[nw++] = o.workers;
    }
    int reps = rq->reps >= 0 ? rq->reps : (item && item->reps > 0) ? item->reps : suite ? suite->reps : PBH_DEFAULT_REPS;
    int warmup = rq->warmup >= 0 ? rq->warmup
                 : (item && item->warmup >= 0) ? item->warmup
                 : suite                       ? suite->warmup
                                               : PBH_DEFAULT_WARMUP;
    double timeout = rq->case_timeout_s > 0 ? rq->case_timeout_s : suite ? suite->case_timeout_s : PBH_DEFAULT_CASE_TIMEOUT;

    for (size_t b = 0; b < nb && rc == PBH_OK; b++) {
        if (item && rq->nbackends && !in_list(rq->backends, rq->nbackends, backends[b]))
            continue;
        int caps = pb_backend_caps(backends[b]);
        if (caps < 0) {
            char known[256];
            known_backends(known, sizeof known);
            seterr(err, errlen, "unknown backend '%s' (known: %s)", backends[b], known);
            rc = PBH_EINPUT;
            break;
        }
        int inline_only = !(caps & PB_CAP_ASYNC);
        for (size_t w = 0; w < nw && rc == PBH_OK; w++) {
            for (size_t p = 0; p < sets.n && rc == PBH_OK; p++) {
                pbh_case_spec spec;
                memset(&spec, 0, sizeof spec);
                spec.scenario = s;
                snprintf(spec.backend, sizeof spec.backend, "%s", backends[b]);
                spec.workers = inline_only ? 1 : workers[w];
                spec.params = sets.v[p];
                pb_params_format(s, &spec.params, spec.params_str, sizeof spec.params_str);
                snprintf(spec.name, sizeof spec.name, "%s/%s/w%d%s%s", s->name, spec.backend, spec.workers,
                         spec.params_str[0] ? "/" : "", spec.params_str);
                spec.reps = reps;
                spec.warmup = warmup;
                spec.processes = rq->processes > 0 ? rq->processes : PBH_DEFAULT_PROCESSES;
                if (spec.processes > reps)
                    spec.processes = reps;
                spec.timeout_s = timeout;
                spec.seed = rq->seed;
                spec.supported = pb_scenario_supported(s, spec.backend);
                rc = add_case(plan, cap, &spec);
            }
        }
    }
    free(sets.v);
    return rc;
}

int pbh_plan_build(const pbh_request *rq, pbh_plan *plan, char *err, size_t errlen) {
    memset(plan, 0, sizeof *plan);
    char known[512];
    const pbh_suite *suite = NULL;
    if (rq->suite || rq->nscenarios == 0) {
        const char *name = rq->suite ? rq->suite : "default";
        suite = pbh_suite_find(name);
        if (!suite) {
            size_t off = 0;
            for (size_t i = 0; i < pbh_suite_count(); i++)
                off += (size_t)snprintf(known + off, sizeof known - off, "%s%s", i ? ", " : "", pbh_suite_at(i)->name);
            seterr(err, errlen, "unknown suite '%s' (known: %s)", name, known);
            return PBH_EINPUT;
        }
    }
    for (size_t i = 0; i < rq->nscenarios; i++) {
        if (!pb_scenario_find(rq->scenarios[i])) {
            known_scenarios(known, sizeof known);
            seterr(err, errlen, "unknown scenario '%s' (known: %s)", rq->scenarios[i], known);
            return PBH_EINPUT;
        }
    }
    for (size_t i = 0; i < rq->nbackends; i++) {
        if (pb_backend_caps(rq->backends[i]) < 0) {
            known_backends(known, sizeof known);
            seterr(err, errlen, "unknown backend '%s' (known: %s)", rq->backends[i], known);
            return PBH_EINPUT;
        }
    }
    for (size_t i = 0; i < rq->nworkers; i++) {
        if (rq->workers[i] < 1 || rq->workers[i] > 4096) {
            seterr(err, errlen, "bad --workers %d: expected 1..4096", rq->workers[i]);
            return PBH_EINPUT;
        }
    }
    for (size_t i = 0; i < rq->nparams; i++) {
        const char *eq = strchr(rq->params[i], '=');
        if (!eq || eq == rq->params[i] || !eq[1]) {
            seterr(err, errlen, "malformed --param '%s': expected NAME=VALUE[,VALUE...]", rq->params[i]);
            return PBH_EINPUT;
        }
    }
    if (rq->reps == 0 || rq->reps > 100000) {
        seterr(err, errlen, "bad --reps %d: expected 1..100000", rq->reps);
        return PBH_EINPUT;
    }
    if (rq->warmup > 1000) {
        seterr(err, errlen, "bad --warmup %d: expected 0..1000", rq->warmup);
        return PBH_EINPUT;
    }

    int used[PBH_MAX_LIST] = {0};
    size_t cap = 0;
    int rc = PBH_OK;
    plan->suite = suite;
    if (suite) {
        for (size_t i = 0; i < suite->nitems && rc == PBH_OK; i++) {
            const pbh_suite_item *item = &suite->items[i];
            if (rq->nscenarios && !in_list(rq->scenarios, rq->nscenarios, item->scenario))
                continue;
            const pb_scenario *s = pb_scenario_find(item->scenario);
            if (!s) {
                seterr(err, errlen, "suite '%s' names scenario '%s', which is not built in", suite->name,
                       item->scenario);
                rc = PBH_EINPUT;
                break;
            }
            rc = expand_item(rq, suite, item, s, used, plan, &cap, err, errlen);
        }
    } else {
        for (size_t i = 0; i < rq->nscenarios && rc == PBH_OK; i++)
            rc = expand_item(rq, NULL, NULL, pb_scenario_find(rq->scenarios[i]), used, plan, &cap, err, errlen);
    }
    for (size_t i = 0; i < rq->nparams && rc == PBH_OK; i++) {
        if (!used[i]) {
            seterr(err, errlen, "--param '%s': no selected scenario has a parameter by that name "
                   "(see `poolbench list scenarios`)", rq->params[i]);
            rc = PBH_EINPUT;
        }
    }
    if (rc == PBH_OK && plan->n == 0) {
        seterr(err, errlen, "nothing to run: the suite and filters select no case");
        rc = PBH_EINPUT;
    }
    if (rc != PBH_OK)
        pbh_plan_free(plan);
    return rc;
}

/* ---- child executor ------------------------------------------------------------------------------ */

#define STDERR_TAIL 1024

typedef struct child {
    pid_t pid;
    int out_fd, err_fd;
    char *line;          /* partial stdout line */
    size_t line_len, line_cap;
    char err_tail[STDERR_TAIL + 1];
    size_t err_len;
} child;

static int spawn_child(const char *exe, char *const argv[], child *ch, char *err, size_t errlen) {
    int out[2] = {-1, -1}, errp[2] = {-1, -1};
    memset(ch, 0, sizeof *ch);
    ch->out_fd = ch->err_fd = -1;
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        seterr(err, errlen, "pipe: %s", strerror(errno));
        if (out[0] >= 0)
            close(out[0]), close(out[1]);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    /* own process group: one kill reaches the case and its pool workers; default signals, empty mask */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(&ch->pid, exe, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(out[1]);
    close(errp[1]);
    if (rc != 0) {
        seterr(err, errlen, "cannot start %s: %s", exe, strerror(rc));
        close(out[0]);
        close(errp[0]);
        return -1;
    }
    ch->out_fd = out[0];
    ch->err_fd = errp[0];
    return 0;
}

static void keep_tail(child *ch, const char *buf, size_t n) {
    if (n >= STDERR_TAIL) {
        memcpy(ch->err_tail, buf + n - STDERR_TAIL, STDERR_TAIL);
        ch->err_len = STDERR_TAIL;
    } else {
        if (ch->err_len + n > STDERR_TAIL) {
            size_t drop = ch->err_len + n - STDERR_TAIL;
            memmove(ch->err_tail, ch->err_tail + drop, ch->err_len - drop);
            ch->err_len -= drop;
        }
        memcpy(ch->err_tail + ch->err_len, buf, n);
        ch->err_len += n;
    }
    ch->err_tail[ch->err_len] = '\0';
}

typedef void (*line_fn)(void *ud, const char *line);

/* Appends stdout bytes, calling fn for every complete line. */
static int feed_lines(child *ch, const char *buf, size_t n, line_fn fn, void *ud) {
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            if (ch->line_len + 1 > ch->line_cap) {
                char *nl = realloc(ch->line, ch->line_len + 1);
                if (!nl)
                    return -1;
                ch->line = nl;
                ch->line_cap = ch->line_len + 1;
            }
            ch->line[ch->line_len] = '\0';
            fn(ud, ch->line);
            ch->line_len = 0;
            continue;
        }
        if (ch->line_len + 2 > ch->line_cap) {
            size_t ncap = ch->line_cap ? ch->line_cap * 2 : 1024;
            if (ncap > (1u << 24))
                return -1; /* a 16 MiB line is not one of ours */
            char *nl = realloc(ch->line, ncap);
            if (!nl)
                return -1;
            ch->line = nl;
            ch->line_cap = ncap;
        }
        ch->line[ch->line_len++] = buf[i];
    }
    return 0;
}

enum child_end { END_EXITED, END_TIMEOUT, END_INTERRUPTED };

/* Reads both pipes until the child exits or the deadline passes; kills the group in every case and reaps
 * the child. *status receives the wait status. */
static enum child_end run_child(child *ch, double deadline, line_fn fn, void *ud, int *status) {
    enum child_end end = END_EXITED;
    int out_open = 1, err_open = 1;
    int exited = 0;
    double exit_seen = 0;
    for (;;) {
        if (!exited) {
            siginfo_t si;
            memset(&si, 0, sizeof si);
            /* WNOWAIT: the zombie keeps its pid (and so the group id) until the group is killed below */
            if (waitid(P_PID, (id_t)ch->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == ch->pid) {
                exited = 1;
                exit_seen = pbh_now_mono();
            }
        }
        if (!out_open && !err_open && exited)
            break;
        /* After the leader exits, anything still holding the pipes is a stray worker: give the output a
         * moment to drain, then stop listening. */
        if (exited && pbh_now_mono() - exit_seen > 1.0)
            break;
        double now = pbh_now_mono();
        if (!exited && now >= deadline) {
            end = END_TIMEOUT;
            break;
        }
        if (!exited && pbh_runner_interrupted()) {
            end = END_INTERRUPTED;
            break;
        }
        struct pollfd pf[2];
        int np = 0;
        if (out_open)
            pf[np++] = (struct pollfd){.fd = ch->out_fd, .events = POLLIN};
        if (err_open)
            pf[np++] = (struct pollfd){.fd = ch->err_fd, .events = POLLIN};
        /* short waits: the exit check above needs a turn even while workers hold the pipes open */
        int wait_ms = 50;
        if (np == 0) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        int pr = poll(pf, (nfds_t)np, wait_ms);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < np; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[8192];
            ssize_t got = read(pf[i].fd, buf, sizeof buf);
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (got <= 0) {
                if (pf[i].fd == ch->out_fd)
                    out_open = 0;
                else
                    err_open = 0;
                continue;
            }
            if (pf[i].fd == ch->out_fd) {
                if (feed_lines(ch, buf, (size_t)got, fn, ud) != 0)
                    out_open = 0;
            } else {
                keep_tail(ch, buf, (size_t)got);
            }
        }
    }
    /* the whole group: the case process (if still alive) and any pool worker it left behind */
    kill(-ch->pid, SIGKILL);
    kill(ch->pid, SIGKILL);
    while (waitpid(ch->pid, status, 0) < 0) {
        if (errno != EINTR) {
            *status = 0;
            break;
        }
    }
    close(ch->out_fd);
    close(ch->err_fd);
    free(ch->line);
    ch->line = NULL;
    return end;
}

/* Collects the exec child's JSON lines into a case. */
typedef struct case_sink {
    pbh_case *c;
    int executions, done, failed, garbled;
    char fail_msg[512];
} case_sink;

static double jnum(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

static void case_line(void *ud, const char *line) {
    case_sink *cs = ud;
    if (!line[0])
        return;
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    if (!o || !json_is_object(o)) {
        cs->garbled++;
        json_decref(o);
        return;
    }
    const char *type = json_string_value(json_object_get(o, "type"));
    if (type && strcmp(type, "done") == 0) {
        cs->done = 1;
    } else if (type && strcmp(type, "execution") == 0) {
        cs->executions++;
        int ok = json_is_true(json_object_get(o, "ok"));
        const char *msg = json_string_value(json_object_get(o, "message"));
        if (!ok) {
            cs->failed = 1;
            snprintf(cs->fail_msg, sizeof cs->fail_msg, "%s%s", json_is_true(json_object_get(o, "warmup")) ? "warm-up: " : "",
                     msg && *msg ? msg : "execution failed");
        } else if (!json_is_true(json_object_get(o, "warmup"))) {
            pbh_sample *s = pbh_case_add_sample(cs->c);
            if (s) {
                s->rep = (int)cs->c->nsamples - 1; /* numbered across the case's processes */
                s->wall_s = jnum(o, "wall_s");
                s->user_s = jnum(o, "user_s");
                s->sys_s = jnum(o, "sys_s");
                s->peak_rss_kb = (int64_t)jnum(o, "peak_rss_kb");
                s->startup_s = jnum(o, "startup_s");
                s->ideal_s = jnum(o, "ideal_s");
                s->tasks = (uint64_t)jnum(o, "tasks");
                s->failed_tasks = (uint64_t)jnum(o, "failed_tasks");
                s->iterations = 1;
            }
        }
    }
    json_decref(o);
}

static void describe_status(int status, char *buf, size_t len) {
    if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, len, "ended with wait status %d", status);
}

/* The last line of the child's stderr, for the reason column. */
static void last_line(const char *tail, char *out, size_t len) {
    char tmp[STDERR_TAIL + 1];
    snprintf(tmp, sizeof tmp, "%s", tail);
    size_t n = strlen(tmp);
    while (n && (tmp[n - 1] == '\n' || tmp[n - 1] == ' '))
        tmp[--n] = '\0';
    char *nl = strrchr(tmp, '\n');
    snprintf(out, len, "%s", nl ? nl + 1 : tmp);
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
    size_t np = split(params, ',', pieces, PB_MAX_PARAMS);
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
    child ch;
    if (spawn_child(ce->self_exe, argv, &ch, msg, sizeof msg) != 0) {
        pbh_set_str(&c->status, PBH_STATUS_FAILED);
        pbh_set_str(&c->reason, msg);
        return 0;
    }
    case_sink cs = {.c = c};
    int status = 0;
    enum child_end end = run_child(&ch, deadline, case_line, &cs, &status);
    char how[128], errline[STDERR_TAIL + 1];
    describe_status(status, how, sizeof how);
    last_line(ch.err_tail, errline, sizeof errline);
    if (end == END_TIMEOUT) {
        snprintf(msg, sizeof msg, "exceeded the case time limit of %g s after %zu of %d repetitions; killed",
                 spec->timeout_s, c->nsamples, spec->reps);
        pbh_set_str(&c->status, PBH_STATUS_TIMEOUT);
    } else if (end == END_INTERRUPTED) {
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
    double deadline = pbh_now_mono() + spec->timeout_s;
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
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    const char *type = o ? json_string_value(json_object_get(o, "type")) : NULL;
    const char *name = o ? json_string_value(json_object_get(o, "name")) : NULL;
    if (type && name && strcmp(type, "floor") == 0)
        pbh_run_add_floor(fs->run, name, jnum(o, "seconds"), (int)jnum(o, "reps"));
    json_decref(o);
}

static void child_measure_floors(void *ud, pbh_run *run) {
    pbh_child_executor *ce = ud;
    char ppid[16];
    snprintf(ppid, sizeof ppid, "%d", (int)getpid());
    char *argv[] = {"poolbench", "exec", "--floors", "--json", "--parent-pid", ppid, NULL};
    child ch;
    char msg[512];
    if (spawn_child(ce->self_exe, argv, &ch, msg, sizeof msg) != 0)
        return; /* no floors: the table shows "-" for overhead x floor */
    floor_sink fs = {run};
    int status;
    run_child(&ch, pbh_now_mono() + 120.0, floor_line, &fs, &status);
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

typedef struct capture_sink {
    char *buf;
    size_t len, cap;
    int overflow;
} capture_sink;

static void capture_line(void *ud, const char *line) {
    capture_sink *cs = ud;
    size_t n = strlen(line);
    if (cs->overflow || cs->len + n + 2 > (1u << 20)) {
        cs->overflow = 1;
        return;
    }
    if (cs->len + n + 2 > cs->cap) {
        size_t ncap = (cs->len + n + 2) * 2;
        char *nb = realloc(cs->buf, ncap);
        if (!nb) {
            cs->overflow = 1;
            return;
        }
        cs->buf = nb;
        cs->cap = ncap;
    }
    memcpy(cs->buf + cs->len, line, n);
    cs->len += n;
    cs->buf[cs->len++] = '\n';
    cs->buf[cs->len] = '\0';
}

int pbh_child_capture(const char *exe, char *const argv[], double timeout_s, char **out, int *status, char *err,
                      size_t errlen) {
    child ch;
    *out = NULL;
    *status = 0;
    if (spawn_child(exe, argv, &ch, err, errlen) != 0)
        return -1;
    capture_sink cs = {0};
    run_child(&ch, pbh_now_mono() + timeout_s, capture_line, &cs, status);
    *out = cs.buf ? cs.buf : pbh_strdup("");
    return 0;
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
    double t0 = pbh_now_mono();
    int failed = 0;
    if (ex->measure_floors && !pbh_runner_interrupted())
        ex->measure_floors(ex->ud, run);
    for (size_t i = 0; i < plan->n && !pbh_runner_interrupted(); i++) {
        const pbh_case_spec *spec = &plan->cases[i];
        pbh_case *c = pbh_run_add_case(run);
        if (!c)
            return PBH_ENOMEM;
        pbh_case_describe(c, spec);
        double c0 = pbh_now_mono();
        if (progress)
            progress(progress_ud, i + 1, plan->n, c, c0 - t0); /* starting: c->status is still NULL */
        if (!spec->supported) {
            pbh_case_mark_unsupported(c, spec);
        } else {
            ex->run_case(ex->ud, spec, c);
            if (!c->status)
                c->status = pbh_strdup(PBH_STATUS_FAILED);
        }
        c->elapsed_s = pbh_now_mono() - c0;
        if (strcmp(c->status, PBH_STATUS_FAILED) == 0 || strcmp(c->status, PBH_STATUS_TIMEOUT) == 0)
            failed = 1;
        if (progress)
            progress(progress_ud, i + 1, plan->n, c, pbh_now_mono() - t0);
    }
    run->duration_s = pbh_now_mono() - t0;
    pbh_set_str(&run->status, failed ? "failed" : "ok");
    if (!run->source)
        run->source = pbh_strdup(PBH_SOURCE_NATIVE);
    return PBH_OK;
}
