/*
 * child.c - the harness's one way to run a child process and read it (child.h): posix_spawn, two pipes,
 * a poll loop against a deadline, a group kill, a reap.
 *
 * DESIGN
 *  Spawn: posix_spawn(p) with an argument vector (no shell), stdin /dev/null, stdout and stderr on
 *  CLOEXEC pipes (only the child's copies are dup2'ed onto 1 and 2), signal mask emptied and every
 *  disposition reset (the runner blocks or handles SIGINT/SIGTERM; a case must not inherit that), and with
 *  PBH_CHILD_OWN_GROUP a process group of its own so that one kill(-pgid, SIGKILL) also takes the pool
 *  workers a case started.
 *  Finish: short polls (50 ms) on both pipes, so that the exit check gets a turn even while stray workers
 *  hold the pipes open; exit is seen with waitid(WNOWAIT) so the zombie keeps its pid (and so the group
 *  id) until the group is killed; after the leader exits, output gets one more second to drain, then
 *  anything still holding the pipes is a stray worker and is killed with the group. Every path closes
 *  both fds and reaps the child.
 */
#include "child.h"

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define POLL_MS 50
#define DRAIN_AFTER_EXIT_S 1.0
#define MAX_LINE (1u << 24) /* a 16 MiB line is not one of ours */

int pbh_child_spawn(pbh_child *ch, const char *exe, char *const argv[], int flags, char *err, size_t errlen) {
    int out[2] = {-1, -1}, errp[2] = {-1, -1};
    memset(ch, 0, sizeof *ch);
    ch->flags = flags;
    ch->out_fd = ch->err_fd = -1;
    int want_err = !(flags & PBH_CHILD_STDERR_NULL);
    if (pipe2(out, O_CLOEXEC) != 0 || (want_err && pipe2(errp, O_CLOEXEC) != 0)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
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
    if (want_err)
        posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    else
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    short spawn_flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (flags & PBH_CHILD_OWN_GROUP) {
        posix_spawnattr_setpgroup(&at, 0);
        spawn_flags |= POSIX_SPAWN_SETPGROUP;
    }
    posix_spawnattr_setflags(&at, spawn_flags);
    int rc = (flags & PBH_CHILD_SEARCH_PATH) ? posix_spawnp(&ch->pid, exe, &fa, &at, argv, environ)
                                             : posix_spawn(&ch->pid, exe, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(out[1]);
    if (want_err)
        close(errp[1]);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start %s: %s", exe, strerror(rc));
        close(out[0]);
        if (want_err)
            close(errp[0]);
        return -1;
    }
    ch->out_fd = out[0];
    ch->err_fd = want_err ? errp[0] : -1;
    return 0;
}

static void keep_tail(pbh_child *ch, const char *buf, size_t n) {
    if (n >= PBH_CHILD_ERR_TAIL) {
        memcpy(ch->err_tail, buf + n - PBH_CHILD_ERR_TAIL, PBH_CHILD_ERR_TAIL);
        ch->err_len = PBH_CHILD_ERR_TAIL;
    } else {
        if (ch->err_len + n > PBH_CHILD_ERR_TAIL) {
            size_t drop = ch->err_len + n - PBH_CHILD_ERR_TAIL;
            memmove(ch->err_tail, ch->err_tail + drop, ch->err_len - drop);
            ch->err_len -= drop;
        }
        memcpy(ch->err_tail + ch->err_len, buf, n);
        ch->err_len += n;
    }
    ch->err_tail[ch->err_len] = '\0';
}

/* Appends stdout bytes, calling fn for every complete line. -1 on a line too long or out of memory. */
static int feed_lines(pbh_child *ch, const char *buf, size_t n, pbh_line_fn fn, void *ud) {
    for (size_t i = 0; i < n; i++) {
        if (ch->line_len + 2 > ch->line_cap) {
            size_t ncap = ch->line_cap ? ch->line_cap * 2 : 1024;
            if (ncap > MAX_LINE)
                return -1;
            char *nl = realloc(ch->line, ncap);
            if (!nl)
                return -1;
            ch->line = nl;
            ch->line_cap = ncap;
        }
        if (buf[i] == '\n') {
            ch->line[ch->line_len] = '\0';
            if (fn)
                fn(ud, ch->line);
            ch->line_len = 0;
            continue;
        }
        ch->line[ch->line_len++] = buf[i];
    }
    return 0;
}

enum pbh_child_end pbh_child_finish(pbh_child *ch, double deadline, int (*interrupted)(void), pbh_line_fn fn,
                                    void *ud, int *status) {
    enum pbh_child_end end = PBH_CHILD_EXITED;
    int out_open = 1, err_open = ch->err_fd >= 0;
    int exited = 0;
    double exit_seen = 0;
    for (;;) {
        if (!exited) {
            siginfo_t si;
            memset(&si, 0, sizeof si);
            if (waitid(P_PID, (id_t)ch->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == ch->pid) {
                exited = 1;
                exit_seen = pbs_now();
            }
        }
        if (!out_open && !err_open && exited)
            break;
        if (exited && pbs_now() - exit_seen > DRAIN_AFTER_EXIT_S)
            break;
        if (!exited && deadline >= 0 && pbs_now() >= deadline) {
            end = PBH_CHILD_TIMEOUT;
            break;
        }
        if (!exited && interrupted && interrupted()) {
            end = PBH_CHILD_INTERRUPTED;
            break;
        }
        struct pollfd pf[2];
        int np = 0;
        if (out_open)
            pf[np++] = (struct pollfd){.fd = ch->out_fd, .events = POLLIN};
        if (err_open)
            pf[np++] = (struct pollfd){.fd = ch->err_fd, .events = POLLIN};
        if (np == 0) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        int pr = poll(pf, (nfds_t)np, POLL_MS);
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
            int is_out = pf[i].fd == ch->out_fd;
            if (got <= 0) {
                if (is_out)
                    out_open = 0;
                else
                    err_open = 0;
                continue;
            }
            if (is_out) {
                if (feed_lines(ch, buf, (size_t)got, fn, ud) != 0)
                    out_open = 0;
            } else {
                keep_tail(ch, buf, (size_t)got);
            }
        }
    }
    if (ch->flags & PBH_CHILD_OWN_GROUP)
        kill(-ch->pid, SIGKILL); /* the case process (if still alive) and any pool worker it left behind */
    kill(ch->pid, SIGKILL);
    while (waitpid(ch->pid, status, 0) < 0) {
        if (errno != EINTR) {
            *status = 0;
            break;
        }
    }
    close(ch->out_fd);
    if (ch->err_fd >= 0)
        close(ch->err_fd);
    ch->out_fd = ch->err_fd = -1;
    free(ch->line);
    ch->line = NULL;
    return end;
}

void pbh_child_last_err_line(const pbh_child *ch, char *out, size_t len) {
    char tmp[PBH_CHILD_ERR_TAIL + 1];
    snprintf(tmp, sizeof tmp, "%s", ch->err_tail);
    size_t n = strlen(tmp);
    while (n && (tmp[n - 1] == '\n' || tmp[n - 1] == ' '))
        tmp[--n] = '\0';
    char *nl = strrchr(tmp, '\n');
    snprintf(out, len, "%s", nl ? nl + 1 : tmp);
}

/* The pool library words a lost worker the same way (impls/procpool.c), so a reason reads alike whether
 * the harness lost a case process or the pool lost a worker. */
void pbh_describe_wait_status(int status, char *buf, size_t len) {
    if (WIFSIGNALED(status)) {
        const char *abbrev = sigabbrev_np(WTERMSIG(status));
        snprintf(buf, len, "was killed by signal %d (SIG%s)", WTERMSIG(status), abbrev ? abbrev : "?");
    } else if (WIFEXITED(status)) {
        snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
    } else {
        snprintf(buf, len, "ended with wait status 0x%x", status);
    }
}

typedef struct captured {
    char *out;
    size_t len, cap;
} captured;

static void capture_line(void *ud, const char *line) {
    captured *c = ud;
    /* keep reading past the cap (the child must never block on a full pipe), keep only what fits */
    size_t n = strlen(line);
    for (size_t i = 0; i <= n && c->len + 1 < c->cap; i++)
        c->out[c->len++] = i < n ? line[i] : '\n';
    c->out[c->len] = '\0';
}

int pbh_child_capture(const char *exe, char *const argv[], int flags, double deadline, char *out, size_t cap) {
    out[0] = '\0';
    pbh_child ch;
    char err[256];
    if (pbh_child_spawn(&ch, exe, argv, flags, err, sizeof err) != 0)
        return -1;
    captured c = {out, 0, cap};
    int status;
    if (pbh_child_finish(&ch, deadline, NULL, capture_line, &c, &status) != PBH_CHILD_EXITED)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
