/*
 * user_task.c - a user's own program with its own task, run unchanged on every backend.
 *
 * This is all it takes to use poolbench from your program: define a task (bytes in, bytes out) with
 * PB_TASK_DEFINE, create a pool on any backend, map. The task below counts the Collatz steps of a number
 * and fails (a task error with a message, not a crash) for zero. On the "spawn" backend each worker is a
 * fresh exec of this very program: the PB_TASK_DEFINE constructor registers the task in the worker before
 * main() would run, and the worker serves the pool instead of running main() (static or shared library).
 * Nothing needs configuring; a different worker program can be named with pb_options.worker_program or
 * $POOLBENCH_WORKER_PROGRAM.
 *
 * usage: user_task [N]   (default 10000 numbers; prints one line per backend; exits 1 on a wrong answer)
 */
#include "poolbench.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The user's task: input a uint64 n >= 1, output the number of Collatz steps to reach 1 (uint32). */
static int collatz_steps(const void *in, size_t len, pb_output *out) {
    uint64_t n;
    if (len != sizeof n) return pb_output_error(out, "collatz: expected 8 bytes, got %zu", len);
    memcpy(&n, in, sizeof n);
    if (n == 0) return pb_output_error(out, "collatz: 0 has no orbit");
    uint32_t steps = 0;
    while (n != 1) {
        n = (n & 1) ? 3 * n + 1 : n / 2;
        steps++;
    }
    return pb_output_set(out, &steps, sizeof steps);
}
PB_TASK_DEFINE("user.collatz_steps", collatz_steps)

static uint32_t expected_steps(uint64_t n) {
    uint32_t s = 0;
    while (n != 1) {
        n = (n & 1) ? 3 * n + 1 : n / 2;
        s++;
    }
    return s;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    if (n == 0) n = 1;
    /* Inputs 0..n-1: item 0 is the deliberate task error. */
    uint64_t *values = malloc(n * sizeof *values);
    pb_item *items = malloc(n * sizeof *items);
    pb_result *results = calloc(n, sizeof *results);
    if (!values || !items || !results) return 2;
    for (size_t i = 0; i < n; i++) {
        values[i] = i;
        items[i] = (pb_item){&values[i], sizeof values[i]};
    }

    int wrong = 0;
    for (size_t b = 0; b < pb_backend_count(); b++) {
        const char *backend = pb_backend_name_at(b);
        pb_options o;
        pb_options_init(&o);
        pb_pool *pool = NULL;
        double t0 = now();
        int rc = pb_pool_create(&pool, backend, &o);
        if (rc < 0) {
            fprintf(stderr, "%s: %s: %s\n", backend, pb_strerror(rc), pb_last_error());
            wrong = 1;
            continue;
        }
        int failed = pb_map(pool, "user.collatz_steps", items, n, 0, results);
        double secs = now() - t0;
        if (failed < 0) {
            fprintf(stderr, "%s: map: %s: %s\n", backend, pb_strerror(failed), pb_last_error());
            wrong = 1;
        } else {
            uint64_t total = 0;
            for (size_t i = 0; i < n; i++) {
                if (i == 0) {
                    if (results[i].status != PB_STATUS_TASK_ERROR) wrong = 1;
                    continue;
                }
                uint32_t s = 0;
                if (results[i].status == PB_STATUS_OK && results[i].len == sizeof s)
                    memcpy(&s, pb_result_data(&results[i]), sizeof s);
                if (results[i].status != PB_STATUS_OK || s != expected_steps(i)) wrong = 1;
                total += s;
            }
            printf("%-8s workers=%d items=%zu failed=%d (item 0: %s: %s) total_steps=%llu  %.3f s\n", backend,
                   pb_pool_workers(pool), n, failed, pb_status_name(results[0].status),
                   results[0].message ? results[0].message : "-", (unsigned long long)total, secs);
        }
        pb_results_clear(results, n);
        pb_pool_destroy(pool);
    }
    free(values);
    free(items);
    free(results);
    if (wrong) fprintf(stderr, "user_task: a backend gave a wrong answer\n");
    return wrong ? 1 : 0;
}
