/*
 * testutil.h - what the tests count through /proc to prove that nothing leaks: open fds, threads, child
 * processes (zombies included). Header-only so any test program can include it.
 */
#ifndef POOLBENCH_TESTUTIL_H
#define POOLBENCH_TESTUTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Processes whose parent is this process (running or zombie). */
static inline int tu_count_children(void) {
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
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == me) n++;
    }
    closedir(d);
    return n;
}

/* Waits up to `seconds` for `pred` to hold (fds and threads of a destroyed pool may take a moment to
 * disappear from /proc after the last join). Returns pred's last value. */
#define TU_EVENTUALLY(pred, seconds)                                                   \
    ({                                                                                 \
        int tu_ok_ = 0;                                                                \
        for (int tu_i_ = 0; tu_i_ < (int)((seconds) * 100) && !(tu_ok_ = (pred)); tu_i_++) \
            usleep(10000);                                                             \
        tu_ok_;                                                                        \
    })

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

#endif
