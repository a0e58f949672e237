/*
 * testutil.h - what the tests count through /proc to prove that nothing leaks: open fds, threads, child
 * processes (zombies included); plus the few helpers several test programs share (a worker's grandchild,
 * removing a store with its WAL files). Header-only so any test program can include it.
 */
#ifndef POOLBENCH_TESTUTIL_H
#define POOLBENCH_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* A fresh temporary directory /tmp/PREFIX.XXXXXX into dir (the tests' setup): 0 or -1. */
static inline int tu_make_tmpdir(char *dir, size_t len, const char *prefix) {
    snprintf(dir, len, "/tmp/%s.XXXXXX", prefix);
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes a directory made by tu_make_tmpdir and all it holds (the tests' teardown): 0 or -1. */
static inline int tu_remove_tmpdir(const char *dir) {
    if (strncmp(dir, "/tmp/", 5) != 0 || strchr(dir, '\'') != NULL)
        return -1; /* only what tu_make_tmpdir made */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A whole file in a NUL-terminated heap buffer (NULL when it cannot be read); *len (if given) its size. */
static inline char *tu_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? calloc(1, (size_t)n + 1) : NULL;
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (len)
        *len = got;
    return buf;
}

/* Entries in a /proc directory, not counting "." and "..". */
static inline int tu_count_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - (strcmp(path, "/proc/self/fd") == 0 ? 1 : 0); /* the DIR's own fd */
}

static inline int tu_count_fds(void) { return tu_count_dir("/proc/self/fd"); }
static inline int tu_count_threads(void) { return tu_count_dir("/proc/self/task"); }

/* The processes whose parent is this process: their number, and the first `max` of their pids in pids
 * (pids may be NULL). Zombies count only when with_zombies is set. -1 when /proc cannot be read. */
static inline int tu_list_children(pid_t *pids, int max, int with_zombies) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    pid_t me = getpid();
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        const char *rp = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
        char state;
        int ppid;
        if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2 || ppid != me) continue;
        if (state == 'Z' && !with_zombies) continue;
        if (pids && n < max) pids[n] = (pid_t)atoi(e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* Processes whose parent is this process (running or zombie). */
static inline int tu_count_children(void) { return tu_list_children(NULL, 0, 1); }

/* Waits up to `seconds` for `pred` to hold (fds and threads of a destroyed pool may take a moment to
 * disappear from /proc after the last join). Returns pred's last value. */
#define TU_EVENTUALLY(pred, seconds)                                                   \
    ({                                                                                 \
        int tu_ok_ = 0;                                                                \
        for (int tu_i_ = 0; tu_i_ < (int)((seconds) * 100) && !(tu_ok_ = (pred)); tu_i_++) \
            usleep(10000);                                                             \
        tu_ok_;                                                                        \
    })

/* The thread count once it has stopped changing: read every 20 ms until four reads in a row agree (at most
 * `seconds`). A baseline taken right after a pool was destroyed would otherwise count threads that are still
 * on their way out (detached threads, e.g. GLib's, leave /proc a moment after the pool is gone). */
static inline int tu_settled_thread_count(double seconds) {
    int last = tu_count_threads(), same = 0;
    for (int i = 0; i < (int)(seconds * 50) && same < 3; i++) {
        usleep(20000);
        int now = tu_count_threads();
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

/* The leak guard pool tests run under, as cmocka setup/teardown functions: setup counts fds, threads and
 * children; teardown fails the test (returns -1, saying what is left over) unless all three are back to
 * those counts within a few seconds (a destroyed pool's threads and reaped children may take a moment to
 * leave /proc). */
static int tu_base_fds, tu_base_children, tu_base_threads;

static inline int tu_leak_setup(void **state) {
    (void)state;
    tu_base_fds = tu_count_fds();
    tu_base_children = tu_count_children();
    tu_base_threads = tu_count_threads();
    return 0;
}

static inline int tu_leak_teardown(void **state) {
    (void)state;
    int ok = 1;
    if (!TU_EVENTUALLY(tu_count_children() == tu_base_children, 10)) {
        fprintf(stderr, "leak guard: %d children, expected %d\n", tu_count_children(), tu_base_children);
        ok = 0;
    }
    if (!TU_EVENTUALLY(tu_count_threads() == tu_base_threads, 10)) {
        fprintf(stderr, "leak guard: %d threads, expected %d\n", tu_count_threads(), tu_base_threads);
        ok = 0;
    }
    if (!TU_EVENTUALLY(tu_count_fds() == tu_base_fds, 2)) {
        fprintf(stderr, "leak guard: %d fds, expected %d\n", tu_count_fds(), tu_base_fds);
        ok = 0;
    }
    return ok ? 0 : -1;
}

/* Removes an SQLite store and its -wal and -shm files. */
static inline void tu_unlink_store(const char *path) {
    char side[1100];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

/* The body of a task (input: a path) that leaves a grandchild behind and kills its worker: the
 * grandchild writes its pid to the path and sleeps, holding whatever the worker had open; then the worker
 * exits with code 5. raw != 0 forks with the raw system call, which runs no pthread_atfork handlers, so
 * the grandchild keeps the worker's pipes whatever the library does: only watching the worker process
 * itself can notice its death. Never returns in the worker. */
static inline int tu_grandchild_then_die(const void *in, size_t len, int raw) {
    char path[256];
    if (len == 0 || len >= sizeof path) return -1;
    memcpy(path, in, len);
    path[len] = '\0';
    pid_t pid = raw ? (pid_t)syscall(SYS_fork) : fork();
    if (pid == 0) {
        char tmp[300], buf[32];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int n = snprintf(buf, sizeof buf, "%d", (int)getpid());
        if (fd >= 0 && write(fd, buf, (size_t)n) == n) rename(tmp, path);
        if (fd >= 0) close(fd);
        for (;;) pause(); /* until the test kills it */
    }
    _exit(5);
}

/* Waits (up to 30 s) for the pid that tu_grandchild_then_die wrote to path, removes the file, kills the
 * grandchild and reaps it (the caller made itself a child subreaper, PR_SET_CHILD_SUBREAPER, so the
 * orphan is its child). Returns the grandchild's pid, or 0 when it never wrote it. */
static inline pid_t tu_reap_grandchild(const char *path) {
    pid_t grandchild = 0;
    if (TU_EVENTUALLY(access(path, F_OK) == 0, 30)) {
        FILE *pf = fopen(path, "r");
        int g = 0;
        if (pf && fscanf(pf, "%d", &g) == 1) grandchild = (pid_t)g;
        if (pf) fclose(pf);
    }
    unlink(path);
    if (grandchild > 0) {
        kill(grandchild, SIGKILL);
        int st;
        while (waitpid(grandchild, &st, 0) < 0 && errno == EINTR) {}
    }
    return grandchild;
}

#endif
