/*
 * installed_user.c - a user's program built by tests/test_install.sh against an installed poolbench,
 * with nothing but `pkg-config --cflags --libs poolbench`: only the installed poolbench.h, only the
 * installed library.
 *
 * It maps its own PB_TASK_DEFINE task on the spawn backend (or the backend named by its one argument), so
 * the workers (fresh execs of this program) must find the task through the registry of the installed
 * library, static or shared; on a reference backend the library must find its installed module. Exits 0
 * and prints "ok <items>" when every answer is right, 1 otherwise (saying which), 2 when no pool could be
 * made.
 */
#include <poolbench.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* input: a uint32; output: its square as a uint64 */
static int square_task(const void *in, size_t len, pb_output *out) {
    uint32_t v;
    if (len != sizeof v) return pb_output_error(out, "square: expected 4 bytes, got %zu", len);
    memcpy(&v, in, sizeof v);
    uint64_t sq = (uint64_t)v * v;
    return pb_output_set(out, &sq, sizeof sq);
}
PB_TASK_DEFINE("installed.square", square_task)

int main(int argc, char **argv) {
    enum { N = 100 };
    const char *backend = argc > 1 ? argv[1] : "spawn";
    uint32_t in[N];
    pb_item items[N];
    pb_result results[N];
    memset(results, 0, sizeof results);
    for (uint32_t i = 0; i < N; i++) {
        in[i] = i;
        items[i] = (pb_item){&in[i], sizeof in[i]};
    }
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    pb_pool *pool = NULL;
    if (pb_pool_create(&pool, backend, &o) != 0) {
        fprintf(stderr, "installed_user: cannot create a %s pool: %s\n", backend, pb_last_error());
        return 2;
    }
    int rc = pb_map(pool, "installed.square", items, N, 0, results);
    int wrong = rc != 0;
    for (int i = 0; i < N && !wrong; i++) {
        uint64_t got = 0;
        if (results[i].status == PB_STATUS_OK && results[i].len == sizeof got)
            memcpy(&got, pb_result_data(&results[i]), sizeof got);
        if (results[i].status != PB_STATUS_OK || got != (uint64_t)in[i] * in[i]) {
            fprintf(stderr, "installed_user: item %d: %s: %s\n", i, pb_status_name(results[i].status),
                    results[i].message ? results[i].message : "wrong answer");
            wrong = 1;
        }
    }
    pb_results_clear(results, N);
    pb_pool_join(pool);
    pb_pool_destroy(pool);
    if (wrong) return 1;
    printf("ok %d\n", N);
    return 0;
}
