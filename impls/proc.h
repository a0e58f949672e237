/*
 * proc.h - what the process backends (fork.c, spawn.c) share: the worker loop (worker.c) and the
 * parent-side process pool (procpool.c). Internal.
 *
 * The two backends differ only in how a worker is born. Each supplies a pb__proc_birth: a start function
 * that makes a child whose fd PB_PROC_REQ_FD reads requests and whose fd PB_PROC_RESP_FD writes results,
 * with nothing else inherited but stdin, stdout and stderr. Everything after that (handshake,
 * dispatch, results, deaths, timeouts, recycling, the crash-loop breaker, shutdown) is procpool.c.
 */
#ifndef POOLBENCH_PROC_H
#define POOLBENCH_PROC_H

#include "backend.h"

#include <signal.h>
#include <sys/types.h>

/* In every worker: fd 3 is the read end of the request pipe, fd 4 the write end of the result pipe. */
#define PB_PROC_REQ_FD 3
#define PB_PROC_RESP_FD 4

/* Set by the spawn backend in the worker's environment only: "<protocol version>:<parent pid>". */
#define PB_PROC_WORKER_ENV "POOLBENCH_WORKER"

/* How a worker is born. */
typedef struct pb__proc_birth {
    const char *kind; /* "fork" or "spawn", for messages */
    /* Starts one worker. req_rd and resp_wr are the child's pipe ends (CLOEXEC, >= 5 in the parent);
     * the child must see them as PB_PROC_REQ_FD / PB_PROC_RESP_FD. Runs on the pool's I/O thread (so that
     * PR_SET_PDEATHSIG, which follows the thread that created the child, lasts as long as the pool).
     * Returns 0 with *pid set, or a negative errno with a message in err. */
    int (*start)(void *ctx, int req_rd, int resp_wr, pid_t *pid, char *err, size_t errlen);
    /* Describes the worker for error messages, e.g. "worker program '/usr/bin/x'". */
    const char *(*describe)(void *ctx);
    void (*release)(void *ctx); /* frees ctx (after every worker is gone) */
} pb__proc_birth;

/* The shared backend methods: the birth-specific create builds its ctx and calls pb__proc_create. */
int pb__proc_create(pb_pool *pool, const pb_options *opts, const pb__proc_birth *birth, void *ctx,
                    void **impl);
int pb__proc_dispatch(void *impl, pb__job *job);
void pb__proc_shutdown(void *impl);
void pb__proc_terminate(void *impl);
void pb__proc_destroy(void *impl);
void pb__proc_wait_progress(void *impl, pb__job *job, double deadline); /* a waiting caller reads its answer */

/* Protocol buffers (a worker's and the pool's buffers for it) larger than this are given back once the
 * frame that grew them has passed, so one huge payload does not stay pinned for the pool's life. */
#define PB_PROC_BUFFER_KEEP (4u << 20)
/* Probes for tests: the bytes of protocol buffers the pool holds for its workers (pool side), and those
 * the calling worker process holds (worker side; 0 outside a worker). */
size_t pb__proc_buffer_bytes(pb_pool *pool);
size_t pb__worker_buffer_bytes(void);

/* ---- worker side (worker.c) ---- */
/* The worker loop on fds in (requests) and out (results): reads INIT, runs the initializer, answers
 * READY, then serves REQUEST frames until EOF on in (a clean exit, 0) or until it retires. Returns the
 * exit status for the caller's _exit(). Never returns to the caller's normal flow: call it last. */
int pb__worker_main(int in, int out);

/* Child-side setup shared by fork and spawn workers, async-signal-safe: die with the parent
 * (PR_SET_PDEATHSIG SIGKILL, then a getppid() check for the race where the parent is already gone) and
 * mark fds 3 and 4 close-on-exec so that programs a task runs do not hold the pipes open. 0 or -1. */
int pb__worker_child_setup(pid_t expected_parent);

#endif
