/*
 * worker.c - the loop a worker process runs, shared by the fork and spawn backends.
 *
 * A worker is a plain single-threaded loop over two blocking pipes (fd 3 in, fd 4 out, see proc.h), or,
 * for the shm transport (fork-shm, spawn-shm), over the two rings of its shared memory (fd 5, shm.h):
 *
 *   read INIT -> run the initializer task once -> send READY
 *   repeat: read REQUEST (one chunk) -> run each item with pb__run_item -> send RESULT frame(s)
 *   until EOF on the request pipe (the pool is shutting down: exit 0)
 *   or until it has run max_tasks items or grown above max_rss bytes: send RETIRE and exit 0 (recycling).
 *
 * Results of a chunk are gathered into one RESULT frame, flushed early only when it grows past
 * PB_WIRE_FLUSH bytes, so a chunk of tiny items costs one write. When the request carries
 * PB_WIRE_F_PER_ITEM (per-task timeouts, or re-running items after a crash) every item is flushed on its
 * own, so the parent knows exactly which item was running when the worker died or overran.
 *
 * The transport changes only three things, all in this file: where a frame is read from (read_frame:
 * the pipe into a buffer, or the request ring in place (a large one copied out, see below), sleeping on
 * its futex after a short spin), when
 * a request is given back (done_with_request: at once for the pipe; for the ring as soon as its last item
 * has run, before its last results are sent, so that the parent finds room for the next request), and
 * where results go (send_out: the pipe, or the result ring, waiting for room on its futex and ringing
 * fd 4 when the parent asked for a doorbell). Everything else is the same loop. With shm, EOF is the END
 * record the parent writes at shutdown.
 *
 * Anything unexpected from the parent (a bad frame, a short read) ends the worker with exit code 2; the
 * parent treats that like any other death.
 *
 * A task may fork(): the child would hold the worker's pipe ends, and the pool would then see no EOF
 * when the worker dies. A pthread_atfork child handler closes them in any such child (the pool also
 * watches the worker process itself, for forks that skip the handlers). The request and result buffers
 * are given back after a frame over PB_PROC_BUFFER_KEEP, so one huge payload does not stay pinned. The
 * worker always leaves with _exit() (via its caller) after flushing stdio, so a forked worker never runs
 * the host program's atexit handlers.
 *
 * Large frames (a fresh process pays for each page it touches the first time: ~6-12 us a 4 KiB page on
 * the reference VM): the worker keeps its last large output block for the next item (pb__out_spare,
 * task.c), in huge pages. On shm it copies a large request out of the overflow area with pread into a
 * buffer of its own, also in huge pages, and writes a large result with pwritev from its output block
 * (send_gathered_result), until those copies have cost as much CPU time as touching the overflow areas
 * through its mapping would (rent or buy, shm.h); then it reads requests in place and lets a task write a
 * large output in place, where its RESULT frame carries it (offer_in_place).
 */
#include "proc.h"
#include "shm.h"
#include "syscalls.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define EXIT_PROTO 2 /* the parent sent something we cannot read */
#define WORKER_READ_AHEAD (64u * 1024u) /* the request pipe's read-ahead buffer (a pipe's default capacity) */

int pb__worker_child_setup(pid_t expected_parent) {
    /* Only async-signal-safe calls: in the fork backend this runs between fork() and the worker loop. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return -1;
    /* The parent may have died before prctl took effect; then we were re-parented and must go. */
    if (getppid() != expected_parent) return -1;
    if (fcntl(PB_PROC_REQ_FD, F_SETFD, FD_CLOEXEC) != 0) return -1;
    if (fcntl(PB_PROC_RESP_FD, F_SETFD, FD_CLOEXEC) != 0) return -1;
    return 0;
}

/* The hex mask after `key` (e.g. "\nSigCgt:\t") in a /proc status text: bit s-1 is signal s. -1 when absent.
 * Only async-signal-safe functions here (the string functions are, since POSIX.1-2016). */
static int status_mask(const char *text, const char *key, uint64_t *mask) {
    size_t klen = strlen(key);
    for (const char *p = text; (p = strchr(p, key[0])) != NULL; p++) {
        if (strncmp(p, key, klen) != 0) continue;
        uint64_t m = 0;
        int digits = 0;
        for (p += klen;; p++, digits++) {
            int v = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
            if (v < 0) break;
            m = m << 4 | (uint64_t)v;
        }
        if (digits != 16) return -1;
        *mask = m;
        return 0;
    }
    return -1;
}

void pb__child_default_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    /* Only the signals that are ignored or caught need it: the kernel lists them in /proc/self/status. One
     * open and read cost ~9 us on the reference VM (a system call costs ~1 us there), against ~63 us for a
     * sigaction() on each of the 62 signals, in every worker's start. Without /proc (or an unexpected
     * format), every signal. */
    uint64_t ign = 0, cgt = 0, todo = ~(uint64_t)0;
    char text[2048]; /* SigCgt comes ~720 bytes in: a small buffer touches fewer stack pages (copies, in a fork child) */
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        if (n > 0) {
            text[n] = '\0';
            if (status_mask(text, "\nSigIgn:\t", &ign) == 0 && status_mask(text, "\nSigCgt:\t", &cgt) == 0)
                todo = ign | cgt;
        }
    }
    for (int s = 1; s < NSIG && s <= 64; s++)
        if (s != SIGKILL && s != SIGSTOP && (todo >> (s - 1) & 1))
            sigaction(s, &sa, NULL); /* EINVAL for libc-internal ones: fine */
}

/* 1 = read n bytes; 0 = clean EOF before the first byte; -1 = error or EOF in the middle. */
static int read_full(int fd, void *buf, size_t n) {
    unsigned char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pb__sys.read(fd, p + got, n - got);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            return got == 0 ? 0 : -1;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    return 1;
}

static int write_full(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = pb__sys.write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

/* Resident set size in bytes from /proc/self/statm (0 when unreadable: then we never retire for RSS). */
static size_t current_rss(void) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    unsigned long size, resident;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2) return 0;
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

typedef struct wstate {
    int in, out;
    size_t max_item;
    size_t max_frame;
    uint32_t max_tasks; /* 0 = never retire for count */
    uint64_t max_rss;   /* 0 = never retire for size */
    uint64_t done;      /* items run so far */
    pb__wbuf req;        /* the current request frame's body when larger than what was read ahead (pipe) */
    pb__wbuf ahead;      /* bytes read from the request pipe ahead of need, from ahead_pos to ahead.len */
    size_t ahead_pos;
    const unsigned char *body; /* the current frame's body: req.data, or in the request ring (shm) */
    size_t body_len;
    int shm;            /* the shm transport: frames in the rings below */
    pb__shm_map map;
    pb__shm_rx rx;      /* requests */
    pb__shm_tx tx;      /* results */
    pb__wbuf res;        /* results waiting to be written */
    long res_off;       /* offset of the open RESULT frame in res, or -1 */
    uint32_t res_count;
    const pb_task *task; /* the last task looked up (names repeat, lookups do not) */
    pb__out_spare spare; /* the last large output's block, for the next one (backend.h) */
    int memfd;          /* shm: the memfd, close-on-exec, for pread and pwritev of large frames; or -1 */
    unsigned tx_spin_ns; /* adaptive spin while a large result waits for the result overflow area */
} wstate;

/* The running worker's state, for pb__worker_buffer_bytes (a worker is single-threaded). */
static const wstate *current;

size_t pb__worker_buffer_bytes(void) {
    return current ? current->req.cap + current->res.cap + current->ahead.cap + current->rx.own_cap +
                         (current->spare.buf ? current->spare.cap : 0)
                   : 0;
}

int pb__worker_shm_scribble(const void *bytes, size_t n) {
    if (!current || !current->shm) return -1;
    pb__shm_tx *tx = (pb__shm_tx *)&current->tx; /* the worker's own state: a single-threaded process */
    int never;
    unsigned char *dst = pb__shm_reserve(tx, n, &never);
    if (!dst) return -1;
    memcpy(dst, bytes, n);
    pb__shm_commit(tx);
    return 0;
}

/* The next frame from the request ring, read in place (w->body points into the ring until
 * done_with_request). Spins, then sleeps on the ring's futex. 1 ok, 0 END (shutdown), -1 error. */
static int read_frame_shm(wstate *w, pb__wire_header *h) {
    for (;;) {
        uint32_t seen = atomic_load(&w->rx.c->head);
        const char *why;
        int r = pb__shm_next(&w->rx, h, &w->body, &why);
        if (r == PB_SHM_GOT) {
            w->body_len = h->body_len;
            return 1;
        }
        if (r == PB_SHM_END_OF_STREAM) return 0;
        if (r == PB_SHM_ERROR) return -1;
        pb__shm_wait(&w->rx.c->head, &w->rx.c->head_waiters, seen, -1, &w->rx.spin_ns);
    }
}

/* The worker is done with the request frame it read last (a no-op for the pipe's private copy). */
static void done_with_request(wstate *w) {
    if (w->shm) pb__shm_release(&w->rx);
}

/* Reads from the request pipe into the read-ahead buffer whatever is there (at least one byte, up to its
 * room; what was consumed is moved out first). 1 read, 0 EOF, -1 error. */
static int read_ahead(wstate *w) {
    if (w->ahead_pos > 0) {
        size_t keep = w->ahead.len - w->ahead_pos;
        memmove(w->ahead.data, w->ahead.data + w->ahead_pos, keep);
        w->ahead.len = keep;
        w->ahead_pos = 0;
    }
    for (;;) {
        ssize_t r = pb__sys.read(w->in, w->ahead.data + w->ahead.len, w->ahead.cap - w->ahead.len);
        if (r > 0) {
            w->ahead.len += (size_t)r;
            return 1;
        }
        if (r == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

/* Reads one whole frame: header into h, body into w->body. 1 ok, 0 clean EOF, -1 error.
 * Pipe: one read() normally brings a whole small request (header and body) into the read-ahead buffer,
 * where its body is read in place: a round trip costs the worker one read, not two (a system call is
 * ~1 us on the reference VM, a fifth of what the pipe adds to a raw ping-pong). A body larger than
 * what arrived is completed with reads straight into w->req. */
static int read_frame(wstate *w, pb__wire_header *h, size_t max_frame) {
    if (w->shm) return read_frame_shm(w, h);
    if (!w->ahead.data && pb__wbuf_reserve(&w->ahead, WORKER_READ_AHEAD) != 0) return -1;
    while (w->ahead.len - w->ahead_pos < PB_WIRE_HEADER) {
        size_t had = w->ahead.len - w->ahead_pos;
        int r = read_ahead(w);
        if (r <= 0) return r == 0 && had == 0 ? 0 : -1; /* EOF inside a header is an error */
    }
    if (pb__wire_header_decode(w->ahead.data + w->ahead_pos, max_frame, h, NULL) != 0) return -1;
    w->ahead_pos += PB_WIRE_HEADER;
    size_t have = w->ahead.len - w->ahead_pos;
    if (h->body_len <= have) {
        w->body = w->ahead.data + w->ahead_pos; /* valid until the next read_frame */
        w->ahead_pos += h->body_len;
    } else {
        w->req.len = 0;
        if (pb__wbuf_reserve(&w->req, h->body_len) != 0) return -1;
        memcpy(w->req.data, w->ahead.data + w->ahead_pos, have);
        w->ahead.len = w->ahead_pos = 0;
        if (read_full(w->in, w->req.data + have, h->body_len - have) != 1) return -1;
        w->req.len = h->body_len;
        w->body = w->req.data;
    }
    w->body_len = h->body_len;
    return 1;
}

/* Sends encoded frames to the parent: the result pipe, or the result ring (waiting for room). */
static int send_out(wstate *w, const unsigned char *p, size_t n) {
    if (!w->shm) return write_full(w->out, p, n);
    return pb__shm_send(&w->tx, p, n, 1) == (long)n ? 0 : -1;
}

static int flush_results(wstate *w) {
    if (w->res_off >= 0) {
        pb__wire_end(&w->res, w->res_off, w->res_count);
        w->res_off = -1;
        w->res_count = 0;
    }
    if (w->res.len && send_out(w, w->res.data, w->res.len) != 0) return -1;
    w->res.len = 0;
    return 0;
}

/* shm, and this item's answer cannot be followed by a RETIRE (see send_large_result). */
static int large_result_allowed(const wstate *w) {
    return w->shm && !w->max_rss && !(w->max_tasks && w->done + 1 >= w->max_tasks);
}

#define IN_PLACE_OFFSET (PB_WIRE_HEADER + 4 + 8) /* frame header, item index, result record head */

/* shm: lets the next item's output be written in place, in the result overflow area right where its
 * RESULT frame will carry it (task.c's pb__out_spare), when the area is free and the output is large
 * enough that its frame surely goes there: no block of its own, no copy. Only once the worker has bought
 * the area (shm.h, rent or buy), or without the memfd: until then the output goes to the worker's spare
 * block in huge pages and the frame is written with pwritev (send_gathered_result). On the reference VM,
 * writing 1 MiB in place cost each new worker ~1.8 ms the first time (a fault a page through its new
 * mapping), nothing after; the huge-page block ~0.15 ms once and the pwritev ~0.1 ms each time. */
static void offer_in_place(wstate *w) {
    w->spare.in_place = NULL;
    if (!large_result_allowed(w) || (w->memfd >= 0 && !w->tx.rent.bought)) return;
    unsigned char *ovf = pb__shm_overflow_if_free(&w->tx);
    if (!ovf || w->tx.ovf_cap <= IN_PLACE_OFFSET + PB_WIRE_MSG_MAX) return;
    w->spare.in_place = ovf + IN_PLACE_OFFSET;
    w->spare.in_place_cap = w->tx.ovf_cap - IN_PLACE_OFFSET - PB_WIRE_MSG_MAX;
    w->spare.in_place_from = w->tx.cap / 2;
    w->spare.in_place_warm = pb__shm_overflow_warm(&w->tx, IN_PLACE_OFFSET);
}

/* shm with the memfd: r's RESULT frame written with one pwritev into the result overflow area, its head,
 * output and message from where they lie (pb__shm_put_gather), once the area is free (spin, then its
 * futex). 1 done, 0 not this path's (no memfd, a frame for the ring, an output already in place, the
 * area bought (shm.h, rent or buy), or pwritev failed: the caller writes it through the mapping). */
static int send_gathered_result(wstate *w, uint64_t id, uint32_t index, const pb_result *r) {
    unsigned char head[PB_WIRE_RESULT_HEAD];
    size_t msg;
    size_t frame = pb__wire_result_head(head, id, index, r, &msg);
    int in_place = r->heap && r->heap == w->spare.lent && w->spare.lent_in_place;
    if (w->memfd < 0 || in_place || !pb__shm_is_big(&w->tx, frame) || !pb__shm_rents(&w->tx.rent, frame)) return 0;
    struct iovec iov[3] = {{head, sizeof head}, {(void *)pb_result_data(r), r->len}, {r->message, msg}};
    for (;;) {
        uint32_t seen = atomic_load_explicit(&w->tx.c->tail, memory_order_acquire);
        int never;
        int put = pb__shm_put_gather(&w->tx, w->memfd, iov, msg ? 3 : 2, frame, &never);
        if (put != 0) return put > 0 ? 1 : 0; /* < 0: the mapping's path says what it can */
        pb__shm_wait(&w->tx.c->tail, &w->tx.c->tail_waiters, seen, -1, &w->tx_spin_ns);
    }
}

/* shm: a large result encoded straight into the result ring's overflow area, a RESULT frame of its own
 * (results before it are sent first, keeping the order), instead of into w->res and then copied there:
 * one copy of the output less per large item, none when the task wrote it in place (offer_in_place).
 * Waits for room like send_out. 1 done, 0 not taken (use the buffered path), -1 error. Not taken when the
 * worker may retire after this item: a RETIRE must arrive in the same publication as the answer before it
 * (pb__shm_send). */
static int send_large_result(wstate *w, uint64_t id, uint32_t index, const pb_result *r, size_t size) {
    if (size <= PB_WIRE_FLUSH || !large_result_allowed(w)) return 0;
    if (flush_results(w) != 0) return -1;
    size_t frame = PB_WIRE_HEADER + 4 + size;
    int never;
    int gathered = send_gathered_result(w, id, index, r);
    if (gathered != 0) return gathered;
    unsigned char *dst = pb__shm_reserve_wait(&w->tx, frame, &never);
    if (!dst) return 0; /* over the overflow area: the buffered path reports it as the pipe would */
    /* a buffer over the reservation: it has room for exactly the frame, so it never reallocates */
    pb__wbuf view = {.data = dst, .len = 0, .cap = frame};
    long off = pb__wire_begin(&view, PB_WIRE_RESULT, 0, id);
    pb__wire_put_u32(&view, index);
    int in_place = r->heap && r->heap == dst + IN_PLACE_OFFSET; /* written there by the task (offer_in_place) */
    int put = in_place ? pb__wire_put_result_in_place(&view, r) : pb__wire_put_result(&view, r);
    if (off != 0 || put != 0 || view.data != dst || view.len != frame) return -1;
    pb__wire_end(&view, off, 1);
    pb__shm_commit(&w->tx);
    return 1;
}

/* Adds r as the result of item `index` of job `id`, opening a RESULT frame when none is open. */
static int add_result(wstate *w, uint64_t id, uint32_t index, const pb_result *r) {
    size_t size = pb__wire_result_size(r);
    int direct = send_large_result(w, id, index, r, size);
    if (direct != 0) return direct > 0 ? 0 : -1;
    if (w->res_off >= 0 && w->res.len + size > PB_WIRE_FLUSH && flush_results(w) != 0) return -1;
    if (w->res_off < 0) {
        w->res_off = pb__wire_begin(&w->res, PB_WIRE_RESULT, 0, id);
        if (w->res_off < 0 || pb__wbuf_reserve(&w->res, 4) != 0) return -1;
        pb__wire_put_u32(&w->res, index);
    }
    if (pb__wire_put_result(&w->res, r) != 0) return -1;
    w->res_count++;
    return 0;
}

/* Sends RETIRE after any pending results, in the same write (one system call, and the pool sees the
 * answer and the RETIRE together); the caller exits. */
static int retire(wstate *w, int reason) {
    if (w->res_off >= 0) { /* close the open RESULT frame without writing it yet */
        pb__wire_end(&w->res, w->res_off, w->res_count);
        w->res_off = -1;
        w->res_count = 0;
    }
    long off = pb__wire_begin(&w->res, PB_WIRE_RETIRE, 0, 0);
    if (off < 0 || pb__wbuf_reserve(&w->res, 1) != 0) return -1;
    pb__wire_put_u8(&w->res, (uint8_t)reason);
    pb__wire_end(&w->res, off, 0);
    return flush_results(w);
}

static const pb_task *lookup(wstate *w, const char *name, size_t len) {
    if (w->task && strlen(w->task->name) == len && memcmp(w->task->name, name, len) == 0) return w->task;
    char buf[PB_WIRE_NAME_MAX + 1];
    memcpy(buf, name, len);
    buf[len] = '\0';
    const pb_task *t = pb_task_find(buf);
    if (t) w->task = t;
    return t;
}

/* Runs the initializer from the INIT frame and answers READY. Returns 0 when the worker may serve. */
static int handshake(wstate *w) {
    pb__wire_header h;
    /* The INIT frame's size is not known before it is read; the parent bounds it by its own limits. */
    if (read_frame(w, &h, pb__wire_max_frame(SIZE_MAX)) != 1 || h.type != PB_WIRE_INIT) return -1;
    pb__wire_reader r;
    pb__wire_reader_init(&r, w->body, w->body_len);
    uint64_t max_item = pb__wire_get_u64(&r);
    w->max_tasks = pb__wire_get_u32(&r);
    w->max_rss = pb__wire_get_u64(&r);
    uint16_t name_len = pb__wire_get_u16(&r);
    const char *name = pb__wire_get_bytes(&r, name_len);
    uint32_t arg_len = pb__wire_get_u32(&r);
    const void *arg = pb__wire_get_bytes(&r, arg_len);
    if (r.err || name_len > PB_WIRE_NAME_MAX || max_item > SIZE_MAX || arg_len > max_item) return -1;
    w->max_item = (size_t)max_item;
    w->max_frame = pb__wire_max_frame(w->max_item);

    int status = 0;
    char msg[PB_WIRE_MSG_MAX];
    msg[0] = '\0';
    if (name_len) {
        const pb_task *t = lookup(w, name, name_len);
        if (!t) {
            status = 1;
            snprintf(msg, sizeof msg, "initializer task '%.*s' is not registered in the worker program",
                     (int)name_len, name);
        } else {
            pb_result res = {0};
            pb__run_item(t, arg, arg_len, w->max_item, &res);
            if (res.status != PB_STATUS_OK) {
                status = 1;
                snprintf(msg, sizeof msg, "initializer '%s' failed: %s", t->name,
                         res.message ? res.message : "(no message)");
            }
            pb_result_clear(&res);
        }
        w->task = NULL;
    }
    done_with_request(w); /* name and arg pointed into it */
    size_t mlen = strlen(msg);
    long off = pb__wire_begin(&w->res, PB_WIRE_READY, 0, (uint64_t)getpid());
    if (off < 0 || pb__wbuf_reserve(&w->res, 3 + mlen) != 0) return -1;
    pb__wire_put_u8(&w->res, (uint8_t)status);
    pb__wire_put_u16(&w->res, (uint16_t)mlen);
    pb__wire_put(&w->res, msg, mlen);
    pb__wire_end(&w->res, off, 0);
    if (flush_results(w) != 0) return -1;
    return status == 0 ? 0 : 1;
}

/* Serves one REQUEST frame. 0 = go on; 1 = retired (exit 0); -1 = protocol or I/O error. */
static int serve(wstate *w, const pb__wire_header *h) {
    pb__wire_request q;
    if (pb__wire_request_open(&q, w->body, w->body_len) != 0) return -1;
    uint32_t first = q.first;
    uint16_t name_len = q.name_len;
    const char *name = q.name;
    const pb_task *task = lookup(w, name, name_len);
    int per_item = (h->flags & PB_WIRE_F_PER_ITEM) != 0;

    for (uint32_t i = 0; i < h->count; i++) {
        const void *data;
        uint32_t len;
        if (pb__wire_request_item(&q, w->max_item, &data, &len) != 0) return -1;
        pb_result res = {0};
        if (task) {
            offer_in_place(w);
            pb__run_item_spare(task, data, len, w->max_item, &res, &w->spare);
        } else {
            pb__result_fail(&res, PB_STATUS_TASK_ERROR, "task '%.*s' is not registered in the worker program",
                            (int)name_len, name);
        }
        /* The request's last item has run: give the request back before its results go out, so that
         * the parent finds room for the next one (nothing reads the request after this point). */
        if (i + 1 == h->count) done_with_request(w);
        int rc = add_result(w, h->id, first + i, &res);
        pb__out_spare_keep(&w->spare, &res, PB_PROC_BUFFER_KEEP);
        pb_result_clear(&res);
        if (rc != 0) return -1;
        w->done++;
        if (per_item && flush_results(w) != 0) return -1;
        int why = 0;
        if (w->max_tasks && w->done >= w->max_tasks) why = PB_WIRE_RETIRE_TASKS;
        else if (w->max_rss && current_rss() > w->max_rss) why = PB_WIRE_RETIRE_RSS;
        if (why) return retire(w, why) == 0 ? 1 : -1;
    }
    done_with_request(w); /* (a request of no items) */
    return flush_results(w) == 0 ? 0 : -1;
}

/* In a child that a task fork()s: the worker's pipe ends are not the child's to hold (see above). */
static int worker_memfd = -1;
static void close_protocol_fds_in_child(void) {
    close(PB_PROC_REQ_FD);
    close(PB_PROC_RESP_FD);
    if (worker_memfd >= 0) close(worker_memfd);
}

int pb__worker_main(int in, int out) { return pb__worker_main_shm(in, out, -1); }

int pb__worker_main_shm(int in, int out, int shm_fd) {
    wstate w = {.in = in, .out = out, .res_off = -1, .memfd = -1};
    current = &w;
    if (in == PB_PROC_REQ_FD && out == PB_PROC_RESP_FD) pthread_atfork(NULL, NULL, close_protocol_fds_in_child);
    if (shm_fd >= 0) {
        /* The mapping, and a close-on-exec copy of the fd for pread and pwritev of large frames (closed
         * in any child a task forks, as the pipes are), so that no program a task runs and no child it
         * forks holds the memory. Without the copy, large frames go through the mapping. */
        int attached = pb__shm_attach(shm_fd, &w.map);
        if (attached == 0) w.memfd = fcntl(shm_fd, F_DUPFD_CLOEXEC, 0);
        close(shm_fd);
        if (attached != 0) return EXIT_PROTO;
        pb__shm_rx_init(&w.rx, &w.map, PB_SHM_REQUESTS, SIZE_MAX, out);
        pb__shm_tx_init(&w.tx, &w.map, PB_SHM_RESULTS, out);
        if (w.memfd >= 0) pb__shm_rx_copy_out(&w.rx, w.memfd, 1);
        (void)pb__shm_pull_probe(&w.rx, &w.map); /* large requests read from the parent's memory, if allowed */
        if (in == PB_PROC_REQ_FD && out == PB_PROC_RESP_FD) worker_memfd = w.memfd;
        w.shm = 1;
    }
    int code;
    int hs = handshake(&w);
    if (hs < 0) {
        code = EXIT_PROTO;
    } else if (hs > 0) {
        code = 1; /* the initializer failed: READY said so, the parent decides */
    } else {
        for (;;) {
            pb__wire_header h;
            int r = read_frame(&w, &h, w.max_frame);
            if (r == 0) { code = 0; break; } /* EOF: the pool is done with us */
            if (r < 0 || h.type != PB_WIRE_REQUEST) { code = EXIT_PROTO; break; }
            int s = serve(&w, &h);
            if (s > 0) { code = 0; break; }
            if (s < 0) { code = EXIT_PROTO; break; }
            w.req.len = 0;
            pb__wbuf_trim(&w.req, PB_PROC_BUFFER_KEEP);
            pb__wbuf_trim(&w.res, PB_PROC_BUFFER_KEEP);
        }
    }
    current = NULL;
    pb__wbuf_free(&w.req);
    pb__wbuf_free(&w.ahead);
    pb__wbuf_free(&w.res);
    pb__out_spare_free(&w.spare);
    pb__shm_rx_free(&w.rx);
    pb__shm_unmap(&w.map);
    if (w.memfd >= 0) close(w.memfd);
    worker_memfd = -1;
    /* Tasks may have printed: do not lose their output to _exit(). */
    fflush(stdout);
    fflush(stderr);
    return code;
}

int pb_worker_main_if_requested(void) {
    const char *v = getenv(PB_PROC_WORKER_ENV);
    if (!v) return 0;
    unsigned version = 0;
    long parent = 0;
    int shm = 0; /* ":shm" after the pid: fd PB_PROC_SHM_FD is the worker's shared memory */
    int fields = sscanf(v, "%u:%ld:shm%n", &version, &parent, &shm);
    int ok = fields == 2 && version == PB_WIRE_VERSION && parent > 1;
    shm = shm > 0;
    /* Unset at once: programs a task starts must not think they are workers. */
    unsetenv(PB_PROC_WORKER_ENV);
    if (!ok) _exit(EXIT_PROTO); /* a parent speaking another protocol version: its handshake reports us */
    if (pb__worker_child_setup((pid_t)parent) != 0) _exit(127);
    _exit(pb__worker_main_shm(PB_PROC_REQ_FD, PB_PROC_RESP_FD, shm ? PB_PROC_SHM_FD : -1));
}
