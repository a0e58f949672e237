/*
 * transport.h - how the parent moves frames to and from one worker: the process pool's transport
 * interface, with two implementations (transport.c): "pipe" (the fork and spawn backends) and "shm"
 * (fork-shm and spawn-shm: the rings of shm.h). Internal.
 *
 * Both carry the same frames (wire.h) and keep the two pipes: with shm, the request pipe only tells the
 * worker nothing (it is closed at shutdown like the pipe's), and the result pipe is the death signal (EOF)
 * and the doorbell, the byte a worker writes when the parent's I/O thread, asleep in poll(), asked for
 * one. Everything else in procpool.c (states, deaths, timeouts, recycling, the breaker, lending) is the
 * same code for both.
 *
 * Per worker the pool keeps a pb__chan beside its pipe fds and buffers; every method gets what it needs
 * of them as arguments, so the pipe implementation is the pool's former read and write code unchanged.
 */
#ifndef POOLBENCH_TRANSPORT_H
#define POOLBENCH_TRANSPORT_H

#include "shm.h"
#include "wire.h"

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The shm state of one worker, parent side (unused by the pipe transport). */
typedef struct pb__chan {
    int memfd;        /* the worker's shared memory (its fd PB_PROC_SHM_FD), -1 when none */
    pb__shm_map map;
    pb__shm_tx tx;    /* requests */
    pb__shm_rx rx;    /* results */
} pb__chan;

#define PB_CHAN_INIT {-1, {0}, {0}, {0}}

/* What recv found. */
enum pb__recv { PB_RECV_NONE, PB_RECV_GOT, PB_RECV_EOF, PB_RECV_LOST };

/* What wait found (bits). */
#define PB_WAIT_READABLE 1 /* recv has something (or the pipe: EOF) */
#define PB_WAIT_RECALLED 2 /* recall_fd is readable */
#define PB_WAIT_EXITED 4   /* the worker's pidfd is readable */
#define PB_WAIT_ERROR 8    /* waiting failed (errno) */

typedef struct pb__transport {
    const char *name;  /* "pipe" or "shm" */
    int polls_out;     /* a pending send waits for POLLOUT on the request pipe (pipe); else for the doorbell */
    /* The largest request frame worth filling with more than one item (0: the pool's frame limit). shm:
     * what fits the ring itself. A frame over it goes to the overflow area, whose pages every new worker
     * and its parent touch for the first time (~6-12 us a page on the reference VM): a request of two
     * 1 MiB items made each worker touch 2 MiB there where one item at a time touches 1 MiB, and the rest
     * of the unit goes back to the queue for whichever worker is free first. */
    size_t frame_budget;
    /* Before a worker is born: its resources. *child_fd is the extra fd the child must see as
     * PB_PROC_SHM_FD, or -1. 0, or a negative errno with a message in err. */
    int (*open)(pb__chan *c, size_t max_frame, int *child_fd, char *err, size_t errlen);
    void (*close)(pb__chan *c); /* after the worker is reaped */
    /* Like write(2) of whole frames from buf: bytes taken (> 0), or -1 with errno (EAGAIN: try again when
     * the request pipe is writable (polls_out) or when the result pipe rings). Any thread: the pool holds
     * each request pipe's read end too, so no write raises SIGPIPE (procpool.c, No SIGPIPE). */
    ssize_t (*send)(pb__chan *c, int req_fd, const void *buf, size_t len);
    /* In-place encoding: n contiguous bytes in the transport to encode one frame into, or NULL (encode
     * into a buffer and send it). commit publishes it. */
    unsigned char *(*reserve)(pb__chan *c, size_t n);
    void (*commit)(pb__chan *c);
    /* A large frame given as a gather list (n bytes), written by the transport from where its pieces lie:
     * 1 done; 0 not now or not this frame (use reserve, or encode into a buffer and send); NULL for a
     * transport that has no such path (pipe). shm: pb__shm_put_gather. */
    int (*put_gather)(pb__chan *c, const struct iovec *iov, int iovcnt, size_t n);
    /* The next complete frame: GOT with *h (checked, from a private copy) and *body, a reader over its
     * h->body_len bytes (valid until release; in two pieces for shm's large results, whose output block
     * the record may adopt: pb__shm_rx_split_results); NONE (nothing for now); EOF (the result pipe: the
     * worker is gone; a partial frame may be left in `in`); LOST with *why, or with io_why filled after a
     * failed read. Only frames already received when !may_read. */
    int (*recv)(pb__chan *c, int resp_fd, pb__wbuf *in, size_t *in_pos, size_t max_frame, int may_read,
                pb__wire_header *h, pb__wire_reader *body, const char **why, char *io_why, size_t io_why_len);
    /* Done with the frame recv returned, read through body (whose adopt says whether a record took the
     * output block). */
    void (*release)(pb__chan *c, pb__wbuf *in, size_t *in_pos, const pb__wire_header *h, const pb__wire_reader *body);
    /* Bytes of a partial frame left behind (for "truncated frame" at EOF). */
    int (*partial)(const pb__chan *c, const pb__wbuf *in, size_t in_pos);
    /* Shutdown: no more requests. (The pool closes the request pipe as well.) */
    void (*close_requests)(pb__chan *c);
    /* The I/O thread sleeps in poll() (1) or is lending the worker / awake (0): with shm, asks the worker
     * to ring the result pipe when it publishes. Returns 1 when frames are already waiting (do not sleep). */
    int (*doorbell)(pb__chan *c, int on);
    /* 1 when frames wait to be read without the pipe having said so (shm: the ring). */
    int (*ready)(const pb__chan *c);
    /* The I/O thread, for a worker on loan whose result pipe is readable: reads what it can when the pipe
     * is not the borrower's (shm: doorbell bytes). 1 when the borrower must hand the worker back first
     * (the pipe's data is the borrower's, or it reached EOF or failed). */
    int (*drain)(pb__chan *c, int resp_fd);
    /* A caller that borrowed the worker waits up to timeout_s (< 0: forever) for its answer, its exit, or
     * a recall: PB_WAIT_* bits, 0 on timeout. */
    int (*wait)(pb__chan *c, int resp_fd, int recall_fd, int pidfd, double timeout_s);
    /* Wakes a caller in wait() so that it looks at recall_fd and the worker's exit (I/O thread). */
    void (*kick)(pb__chan *c);
} pb__transport;

extern const pb__transport pb__transport_pipe;
extern const pb__transport pb__transport_shm;

/* Frees what a worker's chan holds, whatever the transport (after the worker is reaped, or a failed start). */
void pb__chan_release(pb__chan *c);

#endif
