/*
 * worker.c - the loop a worker process runs, shared by the fork and spawn backends.
 *
 * A worker is a plain single-threaded loop over two blocking pipes (fd 3 in, fd 4 out, see proc.h):
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
 * Anything unexpected from the parent (a bad frame, a short read) ends the worker with exit code 2; the
 * parent treats that like any other death.
 *
 * A task may fork(): the child would hold the worker's pipe ends, and the pool would then see no EOF
 * when the worker dies. A pthread_atfork child handler closes them in any such child (the pool also
 * watches the worker process itself, for forks that skip the handlers). The request and result buffers
 * are given back after a frame over PB_PROC_BUFFER_KEEP, so one huge payload does not stay pinned. The worker always leaves with _exit() (via its caller) after
 * flushing stdio, so a forked worker never runs the host program's atexit handlers.
 */
#include "proc.h"
#include "syscalls.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define EXIT_PROTO 2 /* the parent sent something we cannot read */

int pb__worker_child_setup(pid_t expected_parent) {
    /* Only async-signal-safe calls: in the fork backend this runs between fork() and the worker loop. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return -1;
    /* The parent may have died before prctl took effect; then we were re-parented and must go. */
    if (getppid() != expected_parent) return -1;
    if (fcntl(PB_PROC_REQ_FD, F_SETFD, FD_CLOEXEC) != 0) return -1;
    if (fcntl(PB_PROC_RESP_FD, F_SETFD, FD_CLOEXEC) != 0) return -1;
    return 0;
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
    pb_wbuf req;        /* the current request frame's body */
    pb_wbuf res;        /* results waiting to be written */
    long res_off;       /* offset of the open RESULT frame in res, or -1 */
    uint32_t res_count;
    const pb_task *task; /* the last task looked up (names repeat, lookups do not) */
} wstate;

/* The running worker's state, for pb__worker_buffer_bytes (a worker is single-threaded). */
static const wstate *current;

size_t pb__worker_buffer_bytes(void) { return current ? current->req.cap + current->res.cap : 0; }

/* Reads one whole frame: header into h, body into w->req. 1 ok, 0 clean EOF, -1 error. */
static int read_frame(wstate *w, pb_wire_header *h, size_t max_frame) {
    unsigned char hdr[PB_WIRE_HEADER];
    int r = read_full(w->in, hdr, sizeof hdr);
    if (r <= 0) return r;
    if (pb__wire_header_decode(hdr, max_frame, h, NULL) != 0) return -1;
    w->req.len = 0;
    if (pb__wbuf_reserve(&w->req, h->body_len) != 0) return -1;
    if (h->body_len && read_full(w->in, w->req.data, h->body_len) != 1) return -1;
    w->req.len = h->body_len;
    return 1;
}

static int flush_results(wstate *w) {
    if (w->res_off >= 0) {
        pb__wire_end(&w->res, w->res_off, w->res_count);
        w->res_off = -1;
        w->res_count = 0;
    }
    if (w->res.len && write_full(w->out, w->res.data, w->res.len) != 0) return -1;
    w->res.len = 0;
    return 0;
}

/* Adds r as the result of item `index` of job `id`, opening a RESULT frame when none is open. */
static int add_result(wstate *w, uint64_t id, uint32_t index, const pb_result *r) {
    size_t size = pb__wire_result_size(r);
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
    pb_wire_header h;
    /* The INIT frame's size is not known before it is read; the parent bounds it by its own limits. */
    if (read_frame(w, &h, pb__wire_max_frame(SIZE_MAX)) != 1 || h.type != PB_WIRE_INIT) return -1;
    pb_wire_reader r;
    pb__wire_reader_init(&r, w->req.data, w->req.len);
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
static int serve(wstate *w, const pb_wire_header *h) {
    pb_wire_reader r;
    pb__wire_reader_init(&r, w->req.data, w->req.len);
    uint32_t first = pb__wire_get_u32(&r);
    uint16_t name_len = pb__wire_get_u16(&r);
    const char *name = pb__wire_get_bytes(&r, name_len);
    if (r.err || name_len == 0 || name_len > PB_WIRE_NAME_MAX) return -1;
    const pb_task *task = lookup(w, name, name_len);
    int per_item = (h->flags & PB_WIRE_F_PER_ITEM) != 0;

    for (uint32_t i = 0; i < h->count; i++) {
        uint32_t len = pb__wire_get_u32(&r);
        const void *data = pb__wire_get_bytes(&r, len);
        if (r.err || len > w->max_item) return -1;
        pb_result res = {0};
        if (task) {
            pb__run_item(task, data, len, w->max_item, &res);
        } else {
            pb__result_fail(&res, PB_STATUS_TASK_ERROR, "task '%.*s' is not registered in the worker program",
                            (int)name_len, name);
        }
        int rc = add_result(w, h->id, first + i, &res);
        pb_result_clear(&res);
        if (rc != 0) return -1;
        w->done++;
        if (per_item && flush_results(w) != 0) return -1;
        int why = 0;
        if (w->max_tasks && w->done >= w->max_tasks) why = PB_WIRE_RETIRE_TASKS;
        else if (w->max_rss && current_rss() > w->max_rss) why = PB_WIRE_RETIRE_RSS;
        if (why) return retire(w, why) == 0 ? 1 : -1;
    }
    return flush_results(w) == 0 ? 0 : -1;
}

/* In a child that a task fork()s: the worker's pipe ends are not the child's to hold (see above). */
static void close_protocol_fds_in_child(void) {
    close(PB_PROC_REQ_FD);
    close(PB_PROC_RESP_FD);
}

int pb__worker_main(int in, int out) {
    wstate w = {.in = in, .out = out, .res_off = -1};
    current = &w;
    if (in == PB_PROC_REQ_FD && out == PB_PROC_RESP_FD) pthread_atfork(NULL, NULL, close_protocol_fds_in_child);
    int code;
    int hs = handshake(&w);
    if (hs < 0) {
        code = EXIT_PROTO;
    } else if (hs > 0) {
        code = 1; /* the initializer failed: READY said so, the parent decides */
    } else {
        for (;;) {
            pb_wire_header h;
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
    pb__wbuf_free(&w.res);
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
    int ok = sscanf(v, "%u:%ld", &version, &parent) == 2 && version == PB_WIRE_VERSION && parent > 1;
    /* Unset at once: programs a task starts must not think they are workers. */
    unsetenv(PB_PROC_WORKER_ENV);
    if (!ok) _exit(EXIT_PROTO); /* a parent speaking another protocol version: its handshake reports us */
    if (pb__worker_child_setup((pid_t)parent) != 0) _exit(127);
    _exit(pb__worker_main(PB_PROC_REQ_FD, PB_PROC_RESP_FD));
}
