/* tasks_lib.h - what libpoolbench_test_tasks.so (tasks_lib.c) offers the test program. */
#ifndef POOLBENCH_TEST_TASKS_LIB_H
#define POOLBENCH_TEST_TASKS_LIB_H

/* The name of the task the library defines: int64 in, its negation out. Read from the library, so the
 * program needs it at link time even under --as-needed. */
extern const char tasks_lib_negate[];

#endif
