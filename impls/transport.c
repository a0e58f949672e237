/*
 * transport.c - the process pool's two transports (interface in transport.h): "pipe", frames written to
 * and read from the worker's pipes, and "shm", frames written in place into the worker's shared-memory
 * rings (shm.h) with the result pipe kept as death signal and doorbell.
 *
 * The pipe's methods are the pool's read and write code as it was: a non-blocking write of what fits, a
 * read buffer that grows to the largest frame and is given back after it, every complete frame handled
 * before the pipe is read again (so an EOF is only judged after everything sent before it).
 *
 * The shm methods: send copies whole frames into the request ring (or the overflow area) and, when there
 * is no room, asks the worker to ring the result pipe once it frees some (EAGAIN until then); reserve and
 * commit let procpool.c encode a request straight into the ring, put_gather writes a large one with
 * pwritev from where the caller's items lie, or, to a worker that can, names them for the worker to pull
 * with process_vm_readv (pb__shm_put_pull); recv reads the result ring through pb__shm_next (which
 * validates everything a worker wrote; large results are read with pread into a private block, not
 * through the new worker's mapping, pb__shm_rx_copy_out, and a large result of one record straight into
 * its own result block, pb__shm_rx_split_results; both until their copies have cost what the mapping's
 * first touches would: rent or buy, shm.h) and drains doorbell bytes from the result pipe,
 * whose EOF still means the worker is gone, judged only once the ring holds nothing more. A borrowing
 * caller waits on the ring's futex (after an adaptive spin) instead of polling the pipe; the I/O thread
 * kicks that futex when it needs the caller to look at the worker's exit or a recall.
 */
#include "transport.h"
#include "proc.h"
#include "syscalls.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (64u * 1024u)
#define DRAIN_BYTES 256 /* doorbell bytes read at once */

/* ---- pipe ---- */

static int pipe_open(pb__chan *c, size_t max_frame, int *child_fd, char *err, size_t errlen) {
    (void)c, (void)max_frame, (void)err, (void)errlen;
    *child_fd = -1;
    return 0;
}
static void pipe_close(pb__chan *c) { (void)c; }

static ssize_t pipe_send(pb__chan *c, int req_fd, const void *buf, size_t len) {
    (void)c;
    return pb__sys.write(req_fd, buf, len); /* no SIGPIPE: the pool holds the pipe's read end too */
}

static unsigned char *pipe_reserve(pb__chan *c, size_t n) {
    (void)c, (void)n;
    return NULL;
}
static void pipe_commit(pb__chan *c) { (void)c; }

static int pipe_recv(pb__chan *c, int fd, pb__wbuf *in, size_t *in_pos, size_t max_frame, int may_read,
                     pb__wire_header *h, pb__wire_reader *body, const char **why, char *io_why,
                     size_t io_why_len) {
    (void)c;
    *why = NULL;
    for (;;) {
        size_t have = in->len - *in_pos;
        size_t want = READ_CHUNK;
        if (have >= PB_WIRE_HEADER) {
            if (pb__wire_header_decode(in->data + *in_pos, max_frame, h, why) != 0) return PB_RECV_LOST;
            size_t frame = PB_WIRE_HEADER + (size_t)h->body_len;
            if (have >= frame) {
                pb__wire_reader_init(body, in->data + *in_pos + PB_WIRE_HEADER, h->body_len);
                return PB_RECV_GOT;
            }
            if (frame - have > want) want = frame - have; /* room for the whole of this frame */
        } else if (have == 0 && in->len) {
            in->len = *in_pos = 0;
            pb__wbuf_trim(in, PB_PROC_BUFFER_KEEP); /* a huge frame has passed: give its room back */
        }
        if (!may_read) return PB_RECV_NONE;
        if (*in_pos && in->cap - in->len < want) { /* compact before growing */
            memmove(in->data, in->data + *in_pos, in->len - *in_pos);
            in->len -= *in_pos;
            *in_pos = 0;
        }
        if (pb__wbuf_reserve(in, want) != 0) {
            *why = "frame too large for memory";
            return PB_RECV_LOST;
        }
        ssize_t n = pb__sys.read(fd, in->data + in->len, in->cap - in->len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return PB_RECV_NONE;
        if (n == 0) return PB_RECV_EOF;
        if (n < 0) {
            if (!io_why[0]) snprintf(io_why, io_why_len, "read from its result pipe failed: %s", strerror(errno));
            return PB_RECV_LOST;
        }
        in->len += (size_t)n;
    }
}

static void pipe_release(pb__chan *c, pb__wbuf *in, size_t *in_pos, const pb__wire_header *h,
                         const pb__wire_reader *body) {
    (void)c, (void)body;
    *in_pos += PB_WIRE_HEADER + (size_t)h->body_len;
    if (*in_pos == in->len) {
        in->len = *in_pos = 0;
        pb__wbuf_trim(in, PB_PROC_BUFFER_KEEP);
    }
}

static int pipe_partial(const pb__chan *c, const pb__wbuf *in, size_t in_pos) {
    (void)c;
    return in->len > in_pos;
}

static void pipe_close_requests(pb__chan *c) { (void)c; }
static int pipe_doorbell(pb__chan *c, int on) {
    (void)c, (void)on;
    return 0;
}

static int pipe_wait(pb__chan *c, int fd, int recall_fd, int pidfd, double timeout_s) {
    (void)c;
    int ms = timeout_s < 0 ? -1 : timeout_s > 3600.0 ? 3600000 : (int)(timeout_s * 1000.0) + 1;
    struct pollfd p[3] = {{.fd = fd, .events = POLLIN}, {.fd = recall_fd, .events = POLLIN},
                          {.fd = pidfd, .events = POLLIN}};
    /* not pb__sys.poll: injected poll failures are the I/O thread's story */
    int r = poll(p, pidfd >= 0 ? 3 : 2, ms);
    if (r < 0) return errno == EINTR ? 0 : PB_WAIT_ERROR;
    return (p[0].revents ? PB_WAIT_READABLE : 0) | (p[1].revents ? PB_WAIT_RECALLED : 0) |
           (pidfd >= 0 && p[2].revents ? PB_WAIT_EXITED : 0);
}
static void pipe_kick(pb__chan *c) { (void)c; }
static int pipe_ready(const pb__chan *c) {
    (void)c;
    return 0;
}
static int pipe_drain(pb__chan *c, int fd) {
    (void)c, (void)fd;
    return 1;
}

const pb__transport pb__transport_pipe = {
    .name = "pipe",
    .polls_out = 1,
    .open = pipe_open,
    .close = pipe_close,
    .send = pipe_send,
    .reserve = pipe_reserve,
    .commit = pipe_commit,
    .recv = pipe_recv,
    .release = pipe_release,
    .partial = pipe_partial,
    .close_requests = pipe_close_requests,
    .doorbell = pipe_doorbell,
    .wait = pipe_wait,
    .kick = pipe_kick,
    .ready = pipe_ready,
    .drain = pipe_drain,
};

/* ---- shm ---- */

static int shm_open_chan(pb__chan *c, size_t max_frame, int *child_fd, char *err, size_t errlen) {
    int rc = pb__shm_create(max_frame, PB_SHM_RING_DEFAULT, &c->map, &c->memfd, err, errlen);
    if (rc != 0) return rc;
    pb__shm_tx_init(&c->tx, &c->map, PB_SHM_REQUESTS, -1);
    pb__shm_rx_init(&c->rx, &c->map, PB_SHM_RESULTS, max_frame, -1);
    pb__shm_rx_copy_out(&c->rx, c->memfd, 0); /* large results with pread, not through a new mapping */
    pb__shm_rx_split_results(&c->rx);          /* ... and a large output straight into its result's block */
    pb__shm_pull_offer(&c->map);               /* a worker that can may pull large requests itself */
    *child_fd = c->memfd;
    return 0;
}

void pb__chan_release(pb__chan *c) {
    pb__shm_rx_drop(&c->rx);
    pb__shm_unmap(&c->map);
    if (c->memfd >= 0) close(c->memfd);
    c->memfd = -1;
}
static void shm_close_chan(pb__chan *c) { pb__chan_release(c); }

static ssize_t shm_send(pb__chan *c, int req_fd, const void *buf, size_t len) {
    (void)req_fd;
    long n = pb__shm_send(&c->tx, buf, len, 0);
    if (n < 0) {
        errno = n == -E2BIG ? E2BIG : EIO;
        return -1;
    }
    if (n == 0) {
        errno = EAGAIN; /* the worker rings the result pipe when it frees room */
        return -1;
    }
    return n;
}

static unsigned char *shm_reserve(pb__chan *c, size_t n) {
    int never;
    return pb__shm_reserve(&c->tx, n, &never);
}
static void shm_commit(pb__chan *c) { pb__shm_commit(&c->tx); }
static int shm_put_gather(pb__chan *c, const struct iovec *iov, int iovcnt, size_t n) {
    int never;
    /* Pulled by the worker when it can: no copy in this thread at all (shm.h, pb__shm_put_pull). Not once
     * this process has forked (fork-shm's own workers, a forkserver's helper): the caller's pages may then
     * be shared copy-on-write, and the kernel pins what process_vm_readv reads, which unshares (copies) every
     * such page in the parent: payload 16 x 1 MiB on fork-shm went from 16.6 to 20.6 ms pulling. */
    if (!pb__has_forked() && pb__shm_pull_ok(&c->map) && pb__shm_put_pull(&c->tx, iov, iovcnt, n) == 1) return 1;
    if (!pb__shm_rents(&c->tx.rent, n)) return 0; /* bought: encoded through the mapping (shm.h) */
    return pb__shm_put_gather(&c->tx, c->memfd, iov, iovcnt, n, &never) == 1; /* else: the other paths say why */
}

/* pb__shm_next into a reader: one piece, or two for a split large result (pb__shm_rx_split_results). */
static int shm_next(pb__chan *c, pb__wire_header *h, pb__wire_reader *body, const char **why) {
    const unsigned char *p;
    int r = pb__shm_next(&c->rx, h, &p, why);
    if (r != PB_SHM_GOT) return r;
    if (c->rx.split && p == c->rx.split_head + PB_WIRE_HEADER) {
        pb__wire_reader_init(body, p, PB_WIRE_RESULT_HEAD - PB_WIRE_HEADER);
        body->next = c->rx.split;
        body->next_end = c->rx.split + c->rx.split_len;
        body->adopt = c->rx.split;
    } else {
        pb__wire_reader_init(body, p, h->body_len);
    }
    return r;
}

static int shm_recv(pb__chan *c, int fd, pb__wbuf *in, size_t *in_pos, size_t max_frame, int may_read,
                    pb__wire_header *h, pb__wire_reader *body, const char **why, char *io_why,
                    size_t io_why_len) {
    (void)in, (void)in_pos, (void)max_frame;
    *why = NULL;
    for (;;) {
        int r = shm_next(c, h, body, why);
        if (r == PB_SHM_GOT) return PB_RECV_GOT;
        if (r == PB_SHM_END_OF_STREAM) *why = "an end record in its result ring";
        if (r != PB_SHM_NONE) return PB_RECV_LOST;
        if (!may_read) return PB_RECV_NONE;
        /* Nothing in the ring: drain the doorbell; the pipe's EOF is the worker's death. */
        char buf[DRAIN_BYTES];
        ssize_t n = pb__sys.read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n > 0) continue; /* rang: look at the ring again */
        if (n < 0 && errno == EAGAIN) {
            /* a frame published between our look and the read rings no bell: look once more */
            r = shm_next(c, h, body, why);
            if (r == PB_SHM_END_OF_STREAM) *why = "an end record in its result ring";
            return r == PB_SHM_GOT ? PB_RECV_GOT : r == PB_SHM_NONE ? PB_RECV_NONE : PB_RECV_LOST;
        }
        if (n == 0) {
            r = shm_next(c, h, body, why); /* what it published before it went comes first */
            if (r == PB_SHM_END_OF_STREAM) *why = "an end record in its result ring";
            return r == PB_SHM_GOT ? PB_RECV_GOT : r == PB_SHM_NONE ? PB_RECV_EOF : PB_RECV_LOST;
        }
        if (!io_why[0]) snprintf(io_why, io_why_len, "read from its result pipe failed: %s", strerror(errno));
        return PB_RECV_LOST;
    }
}

static void shm_release(pb__chan *c, pb__wbuf *in, size_t *in_pos, const pb__wire_header *h,
                        const pb__wire_reader *body) {
    (void)in, (void)in_pos, (void)h;
    if (c->rx.split && body->next_end == c->rx.split + c->rx.split_len && !body->adopt)
        pb__shm_rx_split_taken(&c->rx); /* a result's heap now */
    pb__shm_release(&c->rx);
}

static int shm_partial(const pb__chan *c, const pb__wbuf *in, size_t in_pos) {
    (void)in, (void)in_pos;
    /* published bytes nobody could read as a frame: the worker died in the middle of something */
    return atomic_load_explicit(&c->rx.c->head, memory_order_acquire) != c->rx.tail;
}

static void shm_close_requests(pb__chan *c) {
    if (c->map.base) pb__shm_close(&c->tx);
}

static int shm_doorbell(pb__chan *c, int on) {
    if (!c->map.base) return 0;
    if (!on) {
        atomic_fetch_and(&c->rx.c->head_waiters, ~PB_SHM_WAIT_DOORBELL);
        return 0;
    }
    atomic_fetch_or(&c->rx.c->head_waiters, PB_SHM_WAIT_DOORBELL); /* seq_cst, then look (shm.h) */
    return pb__shm_ready(&c->rx);
}

/* After a futex wait that brought no frame (a kick, a time slice): the result pipe (EOF: the worker is
 * going; a doorbell byte does no harm), recall_fd and the pidfd, without waiting. */
static int poll_now(int fd, int recall_fd, int pidfd) {
    struct pollfd p[3] = {{.fd = fd, .events = POLLIN}, {.fd = recall_fd, .events = POLLIN},
                          {.fd = pidfd, .events = POLLIN}};
    int r = poll(p, pidfd >= 0 ? 3 : 2, 0);
    if (r <= 0) return 0;
    return (p[0].revents ? PB_WAIT_READABLE : 0) | (p[1].revents ? PB_WAIT_RECALLED : 0) |
           (pidfd >= 0 && p[2].revents ? PB_WAIT_EXITED : 0);
}

static int shm_wait(pb__chan *c, int fd, int recall_fd, int pidfd, double timeout_s) {
    if (pb__shm_ready(&c->rx)) return PB_WAIT_READABLE;
    int got = pb__shm_wait(&c->rx.c->head, &c->rx.c->head_waiters, c->rx.tail, timeout_s, &c->rx.spin_ns);
    if (got) return PB_WAIT_READABLE;
    return poll_now(fd, recall_fd, pidfd);
}

static void shm_kick(pb__chan *c) {
    if (c->map.base) pb__shm_futex_wake_all(&c->rx.c->head);
}
static int shm_ready(const pb__chan *c) { return c->map.base && pb__shm_ready(&c->rx); }
static int shm_drain(pb__chan *c, int fd) {
    (void)c;
    char buf[DRAIN_BYTES];
    for (;;) {
        ssize_t n = pb__sys.read(fd, buf, sizeof buf);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        return !(n < 0 && errno == EAGAIN); /* EOF or an error: the I/O thread must judge the worker */
    }
}

const pb__transport pb__transport_shm = {
    .name = "shm",
    .polls_out = 0,
    .frame_budget = PB_SHM_RING_DEFAULT / 2 - 8,
    .open = shm_open_chan,
    .close = shm_close_chan,
    .send = shm_send,
    .reserve = shm_reserve,
    .commit = shm_commit,
    .put_gather = shm_put_gather,
    .recv = shm_recv,
    .release = shm_release,
    .partial = shm_partial,
    .close_requests = shm_close_requests,
    .doorbell = shm_doorbell,
    .wait = shm_wait,
    .kick = shm_kick,
    .ready = shm_ready,
    .drain = shm_drain,
};
