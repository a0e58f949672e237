/*
 * seed.c - the blog post's program in C.
 *
 *     def f(x): time.sleep(2); return x * x
 *     with Pool(8) as p: print(p.map(f, [1, 2, 3, 4]))
 *
 * Same task, any backend: `seed --backend serial` is the plain for loop (8 s), `--backend threads`,
 * `fork` or `spawn` run the four sleeps side by side (about 2 s). `--ms` and `--items` shrink or grow it;
 * `--workers` sets the pool size. Prints the results and the wall time; exits 1 if a result is wrong.
 */
#include "poolbench.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long sleep_ms = 2000;

/* f(x): sleep, then x*x. Input and output are int64 in host byte order. The sleep length travels with
 * the input so that a spawn worker (a fresh exec) sleeps as long as the parent asked. */
static int f(const void *in, size_t len, pb_output *out) {
    int64_t v[2];
    if (len != sizeof v) return pb_output_error(out, "f: expected 16 bytes, got %zu", len);
    memcpy(v, in, sizeof v);
    struct timespec ts = {.tv_sec = v[1] / 1000, .tv_nsec = (v[1] % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    int64_t sq = v[0] * v[0];
    return pb_output_set(out, &sq, sizeof sq);
}
PB_TASK_DEFINE("seed.f", f)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *to) {
    fprintf(to, "usage: seed [--backend NAME] [--workers N] [--items N] [--ms MS]\n"
                "  backends:");
    for (size_t i = 0; i < pb_backend_count(); i++) fprintf(to, " %s", pb_backend_name_at(i));
    fprintf(to, "\n");
}

static int parse_long(const char *s, const char *what, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "seed: %s must be an integer in [%ld, %ld], got '%s'\n", what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    const char *backend = pb_backend_default();
    long workers = 8, items = 4;
    static const struct option opts[] = {{"backend", required_argument, 0, 'b'}, {"workers", required_argument, 0, 'w'},
                                         {"items", required_argument, 0, 'n'},   {"ms", required_argument, 0, 'm'},
                                         {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "b:w:n:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': backend = optarg; break;
        case 'w': if (parse_long(optarg, "--workers", 1, 1024, &workers)) return 2; break;
        case 'n': if (parse_long(optarg, "--items", 0, 1000000, &items)) return 2; break;
        case 'm': if (parse_long(optarg, "--ms", 0, 600000, &sleep_ms)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }

    pb_options o;
    pb_options_init(&o);
    o.workers = (int)workers;
    double t0 = now();
    pb_pool *pool;
    int rc = pb_pool_create(&pool, backend, &o);
    if (rc < 0) {
        fprintf(stderr, "seed: %s\n", pb_last_error());
        return 2;
    }
    int64_t (*inputs)[2] = calloc((size_t)items + 1, sizeof *inputs);
    pb_item *it = calloc((size_t)items + 1, sizeof *it);
    pb_result *res = calloc((size_t)items + 1, sizeof *res);
    for (long i = 0; i < items; i++) {
        inputs[i][0] = i + 1;
        inputs[i][1] = sleep_ms;
        it[i].data = inputs[i];
        it[i].len = sizeof inputs[i];
    }
    /* chunksize 1, as a Pool(8).map over 4 items would use */
    rc = pb_map(pool, "seed.f", it, (size_t)items, 1, res);
    pb_pool_join(pool);
    pb_pool_destroy(pool);
    double wall = now() - t0;

    int bad = rc != 0;
    if (rc < 0) fprintf(stderr, "seed: map failed: %s: %s\n", pb_strerror(rc), pb_last_error());
    printf("[");
    for (long i = 0; rc >= 0 && i < items; i++) {
        int64_t v = 0;
        if (res[i].status == PB_STATUS_OK && res[i].len == sizeof v) memcpy(&v, pb_result_data(&res[i]), sizeof v);
        else {
            bad = 1;
            fprintf(stderr, "seed: item %ld: %s: %s\n", i, pb_status_name(res[i].status),
                    res[i].message ? res[i].message : "");
        }
        if (v != (i + 1) * (i + 1)) bad = 1;
        printf("%s%lld", i ? ", " : "", (long long)v);
    }
    printf("]\n");
    printf("backend=%s workers=%ld items=%ld ms=%ld wall=%.3f s%s\n", backend, workers, items, sleep_ms, wall,
           bad ? " WRONG" : "");
    pb_results_clear(res, (size_t)items);
    free(res);
    free(it);
    free(inputs);
    return bad ? 1 : 0;
}
