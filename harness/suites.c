/*
 * suites.c - the built-in suites. Sizes are chosen for a 2-core machine; the durations in each suite's
 * `duration` field were measured there (`time poolbench run --suite NAME`) and must be re-measured when a
 * suite changes. tests/test_store.c checks that `quick` covers every registered scenario, so a new
 * scenario cannot silently miss CI.
 *
 *  quick    every scenario at small sizes on every backend, 2 workers, 20 repetitions (compare's
 *           Mann-Whitney test needs samples more than the cases need size): the CI suite, at most 60 s
 *           on 2 cores in total. As an A/B pair (the CI gate) 15 per side: every side runs its
 *           repetitions in blocks, each block a fresh process with its own warm-up, so 20 per side made
 *           the pair 2.4x one plain run; 15 (3 blocks of 5) keep it at 1.8x (docs/verdicts.md).
 *  default  what README command 1 runs: the seed (sleep items=4 ms=2000) at 4 and 8 workers on every
 *           backend, plus every other scenario at a moderate size. The seed's cases take 2 s (8 s on
 *           serial) per repetition, so they get 5 repetitions (serial 3) and no warm-up (a sleep has
 *           nothing to warm): statistics need more, the budget of "a few minutes" does not allow more.
 *  full     every scenario at its default size and larger, 1/2/4/8 workers, 20 repetitions: for a quiet
 *           machine and some patience.
 */
#include "suites.h"

#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const pbh_suite_item quick_items[] = {
    {"sleep", "items=4 ms=20", NULL, "2", 0, -1},
    {"square", "items=20000", NULL, "2", 0, -1},
    {"cpu", "items=16 kib=64 level=1", NULL, "2", 0, -1},
    {"payload", "items=16 in_kib=256 out_kib=256", NULL, "2", 0, -1},
    {"skew", "items=100 mean_ms=2", NULL, "2", 0, -1},
    {"crash", "items=16 fraction=0.25 ms=2", NULL, "2", 0, -1},
    {"startup", NULL, NULL, "2", 0, -1},
};

static const pbh_suite_item default_items[] = {
    {"sleep", "items=4 ms=2000", "threads,fork,spawn,fork-shm,spawn-shm,forkserver,glib,libuv,openmp", "4,8", 5, 0},
    {"sleep", "items=4 ms=2000", "serial", "1", 3, 0},
    {"square", "items=100000", NULL, "2", 0, -1},
    {"cpu", "items=32 kib=64 level=6", NULL, "2", 0, -1},
    {"payload", "items=16 in_kib=1024 out_kib=1024", NULL, "2", 0, -1},
    {"skew", "items=200 mean_ms=2", NULL, "2", 0, -1},
    {"crash", "items=20 fraction=0.25 ms=5", NULL, "2", 0, -1},
    {"startup", NULL, NULL, "2,8", 0, -1},
    {"startup", "eager=1", NULL, "8", 0, -1}, /* every worker started in create, as before issue 15 */
};

static const pbh_suite_item full_items[] = {
    {"sleep", "items=4 ms=2000", NULL, "4,8", 10, 1},
    {"sleep", "items=64 ms=10", NULL, "1,2,4,8", 0, -1},
    {"square", NULL, NULL, "1,2,4,8", 0, -1},
    {"cpu", NULL, NULL, "1,2,4,8", 0, -1},
    {"payload", NULL, NULL, "1,2,4,8", 0, -1},
    {"skew", NULL, NULL, "1,2,4,8", 0, -1},
    {"crash", NULL, NULL, "2,8", 0, -1},
    {"startup", NULL, NULL, "1,2,4,8", 0, -1},
    {"startup", "eager=1", NULL, "1,2,4,8", 0, -1},
};

static const pbh_suite suites[] = {
    {"quick", "every scenario at small sizes on every backend, 2 workers: the CI suite (<= 60 s on 2 cores)",
     "about 31 s on a quiet 2-core VM of the reference kind with 4 backends (stop 14); every backend: not re-measured", 20, 1, 30.0, quick_items, N(quick_items),
     15 /* per side of an A/B pair: 3 blocks of 5 keep the gate within 2x one run (docs/verdicts.md) */},
    {"default", "the seed (sleep 4 x 2 s at 4 and 8 workers) on every backend + every scenario at a moderate size",
     "about 1 min 50 s on the 2-core reference VM with 4 backends; the 3 reference backends add about 1 min (estimate)", 10, 1, 120.0, default_items, N(default_items), 0},
    {"full", "every scenario at default and larger sizes, 1/2/4/8 workers, 20 repetitions",
     "about 11 min on the 2-core reference VM", 20, 2, 600.0, full_items, N(full_items), 0},
};

size_t pbh_suite_count(void) {
    return N(suites);
}

const pbh_suite *pbh_suite_at(size_t i) {
    return i < N(suites) ? &suites[i] : NULL;
}

int pbh_suite_pair_reps(const pbh_suite *s) { return s->pair_reps > 0 ? s->pair_reps : s->reps; }

const pbh_suite *pbh_suite_find(const char *name) {
    for (size_t i = 0; name && i < N(suites); i++)
        if (strcmp(suites[i].name, name) == 0)
            return &suites[i];
    return NULL;
}
