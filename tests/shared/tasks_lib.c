/*
 * tasks_lib.c - libpoolbench_test_tasks.so: a shared library of the test program test_spawn_shared that
 * defines a task of its own, as a user's plugin or utility library would.
 *
 * It links the shared libpoolbench, so the loader runs its constructors after libpoolbench's and before
 * the executable's: a spawn worker has to wait for this object's registration and for the executable's.
 */
#include "tasks_lib.h"

#include "poolbench.h"

#include <stdint.h>
#include <string.h>

/* input: an int64; output: its negation */
static int negate_task(const void *in, size_t len, pb_output *out) {
    int64_t v;
    if (len != sizeof v) return pb_output_error(out, "negate: expected 8 bytes, got %zu", len);
    memcpy(&v, in, sizeof v);
    v = -v;
    return pb_output_set(out, &v, sizeof v);
}
const char tasks_lib_negate[] = "shared.lib_negate";
PB_TASK_DEFINE(tasks_lib_negate, negate_task)
