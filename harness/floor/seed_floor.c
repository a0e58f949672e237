/*
 * seed_floor.c - poolbench-seed-floor: the seed's work done by hand, with no pool, as the floor that the
 * seed's whole-program rows under hyperfine are judged against (scripts/hyperfine-suite).
 *
 *     poolbench-seed-floor --mode threads|fork|spawn [--items N] [--ms MS]
 *
 * `threads` starts N threads that each sleep MS and joins them; `fork` forks N children that each sleep
 * MS and reaps them; `spawn` posix_spawns N copies of this program that each sleep MS and reaps them.
 * Nothing else: no pool, no pipes, no results, no library beyond libc. Whatever a backend's row takes over
 * its floor's row in the same hyperfine run is what the pool adds (its threads or workers, handshakes,
 * frames, teardown, and the libraries its program loads); what the floor itself takes over N x MS / N is
 * the machine (process start, fork or exec, waking an idle vCPU after a long sleep). On the reference
 * VM the spawn floor alone is ~14 ms over 2 s, more than the 1.005x the issue 15 goal allows.
 *
 * Exit codes: 0 when every thread or child finished cleanly, 1 when one could not be started or did not
 * exit 0 (the message says which), 2 for bad arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_ITEMS 1024

static long sleep_ms = 2000;

static void nap(void) {
    struct timespec ts = {.tv_sec = sleep_ms / 1000, .tv_nsec = (sleep_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void *nap_thread(void *arg) {
    nap();
    return arg;
}

static int parse_long(const char *s, const char *what, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "poolbench-seed-floor: %s must be an integer in [%ld, %ld], got '%s'\n", what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int run_threads(long items) {
    pthread_t t[MAX_ITEMS];
    long started = 0;
    int rc = 0;
    for (; started < items; started++) {
        int e = pthread_create(&t[started], NULL, nap_thread, NULL);
        if (e) {
            fprintf(stderr, "poolbench-seed-floor: pthread_create: %s\n", strerror(e));
            rc = 1;
            break;
        }
    }
    for (long i = 0; i < started; i++) pthread_join(t[i], NULL);
    return rc;
}

/* Reaps every child in pids; 1 if any did not exit 0. */
static int reap(const pid_t *pids, long n) {
    int rc = 0;
    for (long i = 0; i < n; i++) {
        int status;
        pid_t r;
        while ((r = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR) {}
        if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "poolbench-seed-floor: child %d did not exit cleanly\n", (int)pids[i]);
            rc = 1;
        }
    }
    return rc;
}

static int run_processes(long items, int spawn, const char *ms_arg) {
    pid_t pids[MAX_ITEMS];
    long started = 0;
    int rc = 0;
    char *child_argv[] = {(char *)"poolbench-seed-floor", (char *)"--child", (char *)ms_arg, NULL};
    for (; started < items; started++) {
        pid_t p;
        if (spawn) {
            int e = posix_spawn(&p, "/proc/self/exe", NULL, NULL, child_argv, environ);
            if (e) {
                fprintf(stderr, "poolbench-seed-floor: posix_spawn: %s\n", strerror(e));
                rc = 1;
                break;
            }
        } else {
            p = fork();
            if (p == 0) {
                nap();
                _exit(0);
            }
            if (p < 0) {
                fprintf(stderr, "poolbench-seed-floor: fork: %s\n", strerror(errno));
                rc = 1;
                break;
            }
        }
        pids[started] = p;
    }
    return reap(pids, started) | rc;
}

int main(int argc, char **argv) {
    /* A spawned copy: sleep, and nothing else. */
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        if (parse_long(argv[2], "--child", 0, 600000, &sleep_ms)) return 2;
        nap();
        return 0;
    }
    const char *mode = NULL, *ms_arg = "2000";
    long items = 4;
    static const struct option opts[] = {{"mode", required_argument, 0, 'M'},
                                         {"items", required_argument, 0, 'n'},
                                         {"ms", required_argument, 0, 'm'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "M:n:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'M': mode = optarg; break;
        case 'n': if (parse_long(optarg, "--items", 0, MAX_ITEMS, &items)) return 2; break;
        case 'm':
            if (parse_long(optarg, "--ms", 0, 600000, &sleep_ms)) return 2;
            ms_arg = optarg;
            break;
        case 'h':
            printf("usage: poolbench-seed-floor --mode threads|fork|spawn [--items N] [--ms MS]\n");
            return 0;
        default:
            fprintf(stderr, "usage: poolbench-seed-floor --mode threads|fork|spawn [--items N] [--ms MS]\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "poolbench-seed-floor: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!mode) {
        fprintf(stderr, "poolbench-seed-floor: --mode is required (threads, fork or spawn)\n");
        return 2;
    }
    if (strcmp(mode, "threads") == 0) return run_threads(items);
    if (strcmp(mode, "fork") == 0) return run_processes(items, 0, ms_arg);
    if (strcmp(mode, "spawn") == 0) return run_processes(items, 1, ms_arg);
    fprintf(stderr, "poolbench-seed-floor: unknown --mode '%s' (threads, fork or spawn)\n", mode);
    return 2;
}
