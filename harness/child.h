/*
 * child.h - one child process the harness starts and reads: spawn it, feed its stdout line by line to a
 * callback while keeping the tail of its stderr, stop it at a deadline or on an interrupt, kill its
 * process group and reap it. Used by the runner (a case process, the floor probes) and by context.c (git).
 *
 * Model: git's `struct child_process` with start_command / finish_command. The meaning of each field is
 * fixed here; every path through pbh_child_finish closes both pipes and reaps the child, so a caller
 * that spawned successfully calls finish exactly once and owns nothing afterwards.
 */
#ifndef POOLBENCH_HARNESS_CHILD_H
#define POOLBENCH_HARNESS_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#define PBH_CHILD_ERR_TAIL 1024 /* bytes of stderr kept for the failure reason */

/* Spawn flags. */
enum {
    PBH_CHILD_OWN_GROUP = 1 << 0,   /* its own process group, killed as a group (the case's pool workers) */
    PBH_CHILD_SEARCH_PATH = 1 << 1, /* look exe up in $PATH (posix_spawnp) */
    PBH_CHILD_STDERR_NULL = 1 << 2, /* stderr to /dev/null instead of a pipe (noise nobody reads) */
};

typedef struct pbh_child {
    pid_t pid;
    int flags;
    int out_fd;                            /* read end of the child's stdout */
    int err_fd;                            /* read end of the child's stderr; -1 with PBH_CHILD_STDERR_NULL */
    char *line;                            /* the partial stdout line not yet handed to the callback */
    size_t line_len, line_cap;
    char err_tail[PBH_CHILD_ERR_TAIL + 1]; /* the last bytes of stderr, NUL-terminated */
    size_t err_len;
} pbh_child;

/* Starts exe with argv: stdin /dev/null, stdout (and stderr unless PBH_CHILD_STDERR_NULL) on CLOEXEC
 * pipes, default signal dispositions and an empty mask. No shell is involved. 0, or -1 with a message in
 * err (then nothing is left to clean up). */
int pbh_child_spawn(pbh_child *ch, const char *exe, char *const argv[], int flags, char *err, size_t errlen);

/* Called with every complete stdout line, without its newline. */
typedef void (*pbh_line_fn)(void *ud, const char *line);

enum pbh_child_end {
    PBH_CHILD_EXITED,      /* the child exited (or was killed) by itself */
    PBH_CHILD_TIMEOUT,     /* the deadline passed first: killed */
    PBH_CHILD_INTERRUPTED, /* interrupted() said so first: killed */
};

/* Reads both pipes until the child exits, the deadline (a pbs_now() time; < 0: none) passes or
 * interrupted (may be NULL) returns nonzero. Then kills the child (its group with PBH_CHILD_OWN_GROUP,
 * which also takes workers it left behind), reaps it, closes the pipes. *status receives the wait status
 * (0 when it could not be read). Exit is detected with waitid(WNOWAIT), so the group is killed before the
 * leader is reaped and its pid could be reused. */
enum pbh_child_end pbh_child_finish(pbh_child *ch, double deadline, int (*interrupted)(void), pbh_line_fn fn,
                                    void *ud, int *status);

/* The last non-empty line of the child's stderr tail (empty when none). */
void pbh_child_last_err_line(const pbh_child *ch, char *out, size_t len);

/* Spawns exe (flags as pbh_child_spawn), waits for it (until deadline, pbs_now() seconds; < 0: no limit)
 * and returns its stdout, up to cap-1 bytes, in out (the rest is read and dropped, so the child never
 * blocks on a full pipe). Returns its exit status 0..255, or -1 when it could not run, was killed or
 * ran out of time. For short questions to other programs: `git rev-parse`, `OTHER version --json`. */
int pbh_child_capture(const char *exe, char *const argv[], int flags, double deadline, char *out, size_t cap);

/* "killed by signal 9 (Killed)" / "exited with status 3" for a wait status. */
void pbh_describe_wait_status(int status, char *buf, size_t len);

#endif
