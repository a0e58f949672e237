/*
 * wire.h - the framed binary protocol between the pool and its worker processes. Internal.
 *
 * Spoken over two pipes per worker (fork and spawn backends alike): requests flow parent -> worker on one,
 * results flow worker -> parent on the other. Both ends are on the same machine, so integers travel in host
 * byte order; the magic and the version catch a peer built from other sources.
 *
 * Every frame is a 24-byte header followed by body_len bytes:
 *
 *   off size field
 *     0   4  magic     PB_WIRE_MAGIC ("PBWF")
 *     4   2  version   PB_WIRE_VERSION
 *     6   1  type      pb__wire_type
 *     7   1  flags     PB_WIRE_F_*
 *     8   4  body_len  bytes after the header; header + body <= max_frame
 *    12   4  count     items in the body (REQUEST, RESULT), else 0
 *    16   8  id        job id (REQUEST, RESULT), worker pid (READY), else 0
 *
 * Bodies by type:
 *   INIT    (parent -> worker, first frame): u64 max_item_bytes, u32 max_tasks, u64 max_rss,
 *           u16 name_len, name (initializer task, may be empty), u32 arg_len, arg
 *   READY   (worker -> parent, answer to INIT): u8 status (0 ok, 1 initializer failed), u16 msg_len, msg
 *   REQUEST (parent -> worker): u32 first (index of the first item in the job), u16 name_len, task name,
 *           then count x { u32 len, len bytes }
 *   RESULT  (worker -> parent): u32 first, then count x { u8 status, u8 0, u16 msg_len, u32 out_len,
 *           out_len bytes of output, msg_len bytes of message }
 *   RETIRE  (worker -> parent): u8 reason (PB_WIRE_RETIRE_*); the worker exits right after sending it.
 *
 * One REQUEST carries a whole chunk (many items); its results come back in one RESULT frame, or several
 * when they are large (the worker flushes every PB_WIRE_FLUSH bytes) or when the request asked for
 * PB_WIRE_F_PER_ITEM (one RESULT per item, so that the parent can time and blame single items).
 *
 * Bounds: the maximum frame is max_item_bytes + PB_WIRE_SLACK, so any single item always fits; a decoder
 * rejects a frame whose header or any length inside it disagrees with these bounds with PB_EPROTO and
 * never reads or allocates past them.
 */
#ifndef POOLBENCH_WIRE_H
#define POOLBENCH_WIRE_H

#include "poolbench.h"

#include <stddef.h>
#include <stdint.h>

#define PB_WIRE_MAGIC 0x46574250u /* "PBWF" in memory on a little-endian host */
#define PB_WIRE_VERSION 1
#define PB_WIRE_HEADER 24
#define PB_WIRE_SLACK (128u * 1024u) /* room for headers, names and messages beside one maximal item */
#define PB_WIRE_MSG_MAX 4000u        /* messages are truncated to this on the wire */
#define PB_WIRE_NAME_MAX ((unsigned)PB_TASK_NAME_MAX) /* task names (longer ones cannot be registered) */
#define PB_WIRE_FLUSH (64u * 1024u)  /* the worker sends its RESULT frame once it holds this many bytes */

typedef enum pb__wire_type {
    PB_WIRE_INIT = 1,
    PB_WIRE_READY = 2,
    PB_WIRE_REQUEST = 3,
    PB_WIRE_RESULT = 4,
    PB_WIRE_RETIRE = 5
} pb__wire_type;

#define PB_WIRE_F_PER_ITEM 0x1 /* REQUEST: answer each item in its own RESULT frame */

#define PB_WIRE_RETIRE_TASKS 1 /* max_tasks_per_worker reached */
#define PB_WIRE_RETIRE_RSS 2   /* max_worker_rss exceeded */

typedef struct pb__wire_header {
    uint32_t magic;
    uint16_t version;
    uint8_t type;
    uint8_t flags;
    uint32_t body_len;
    uint32_t count;
    uint64_t id;
} pb__wire_header;

/* The largest frame (header included) allowed for a pool with this max_item_bytes. */
size_t pb__wire_max_frame(size_t max_item_bytes);

/* ---- a growable byte buffer that frames are encoded into ---- */
typedef struct pb__wbuf {
    unsigned char *data;
    size_t len;
    size_t cap;
    int unforked; /* its whole pages are MADV_DONTFORK, given back DOFORK (pb__wbuf_unfork) */
} pb__wbuf;

/* Keeps b's pages out of fork children from now on, through every growth, and makes them DOFORK again
 * before they go back to malloc (so no other allocation ever lands on pages a fork child lacks). For the
 * process pool's per-worker buffers: a pool forks workers while they exist (on demand, respawns), and each
 * page of a buffer shared copy-on-write with a child costs the parent a fault and a copy (~17 us on the
 * reference VM) the next time it encodes or reads a frame into it. */
void pb__wbuf_unfork(pb__wbuf *b);

int pb__wbuf_reserve(pb__wbuf *b, size_t extra); /* 0 or -ENOMEM */
void pb__wbuf_free(pb__wbuf *b);
/* Frees an empty buffer whose capacity is over keep (a huge frame grew it), so it does not stay pinned. */
void pb__wbuf_trim(pb__wbuf *b, size_t keep);

/* Maps in the whole pages inside [p, p + len) for writing, in one call (MADV_POPULATE_WRITE, Linux 5.14),
 * instead of a page fault per 4 KiB page on first write (256 per MiB). Pages already there stay as they
 * are. 0, or -1 with errno (an older kernel: EINVAL; the pages then simply fault). */
int pb__populate_write(void *p, size_t len);
/* Buffers from this size up are populated when they are new (a result in the parent, a worker's output). */
#define PB__POPULATE_FROM (64u * 1024u)
/* A free()-able block of at least len bytes (its usable size in *cap) that the kernel may back with 2 MiB
 * transparent huge pages: 2 MiB-aligned, rounded up to 2 MiB, MADV_HUGEPAGE (which THP's usual "madvise"
 * setting honours). For a process worker's own large buffers (its copy of a large request, its output
 * block): a worker is a new process, and on the reference VM each 4 KiB page it touches the first time
 * costs ~6-12 us (the hypervisor maps it: ~1.8 ms to read 1 MiB through a new mapping, ~3 ms to pread
 * into new 4 KiB pages) against ~0.3 ms for 1 MiB in huge pages. Where the kernel has no huge page at
 * hand the block is simply in 4 KiB pages. NULL on no memory. */
unsigned char *pb__alloc_huge(size_t len, size_t *cap);
/* 1 once this process has called fork() or is a forked child (pthread_atfork; posix_spawn does not count):
 * from then on its heap pages may be shared copy-on-write with another process. */
int pb__has_forked(void);
/* From this size up a worker's own buffers are worth a huge-page block (at most 4x the bytes asked for). */
#define PB__HUGE_FROM (512u * 1024u)

/* ---- encoding: begin a frame, append fields, end it (which patches body_len and count) ---- */
/* Starts a frame at b->len and returns its offset (for pb__wire_end), or -ENOMEM. */
long pb__wire_begin(pb__wbuf *b, int type, int flags, uint64_t id);
/* Finishes the frame started at off with count items. */
void pb__wire_end(pb__wbuf *b, long off, uint32_t count);

/* Appenders for bodies; callers reserve first (they do not check capacity, for speed). */
static inline void pb__wire_put(pb__wbuf *b, const void *p, size_t n) {
    if (n) { /* memcpy(dst, NULL, 0) is undefined, hence the test */
        __builtin_memcpy(b->data + b->len, p, n);
        b->len += n;
    }
}
static inline void pb__wire_put_u8(pb__wbuf *b, uint8_t v) { b->data[b->len++] = v; }
static inline void pb__wire_put_u16(pb__wbuf *b, uint16_t v) { pb__wire_put(b, &v, 2); }
static inline void pb__wire_put_u32(pb__wbuf *b, uint32_t v) { pb__wire_put(b, &v, 4); }
static inline void pb__wire_put_u64(pb__wbuf *b, uint64_t v) { pb__wire_put(b, &v, 8); }

/* Appends one RESULT item record for r (status, output, message truncated to PB_WIRE_MSG_MAX).
 * Reserves as needed; 0 or -ENOMEM. */
int pb__wire_put_result(pb__wbuf *b, const pb_result *r);
/* The same record for an output that already lies where the record puts it (b's data + len + 8: a worker
 * that wrote it in place in its result overflow area). 0, -ENOMEM, or -EINVAL when it does not lie there. */
int pb__wire_put_result_in_place(pb__wbuf *b, const pb_result *r);
/* The encoded size of r's record. */
size_t pb__wire_result_size(const pb_result *r);
/* The head of a RESULT frame of one record, r's, for item `index` of job `id`: frame header, item index
 * and the record's head (PB_WIRE_RESULT_HEAD bytes), which r's output and then *msg_len bytes of its
 * message follow on the wire (a worker that writes the three pieces with one pwritev). Returns the whole
 * frame's size. */
#define PB_WIRE_RESULT_HEAD (PB_WIRE_HEADER + 4u + 8u)
size_t pb__wire_result_head(unsigned char head[PB_WIRE_RESULT_HEAD], uint64_t id, uint32_t index, const pb_result *r,
                            size_t *msg_len);
/* What such a head says, unchecked beyond its frame header (a RESULT of one record, within max_frame):
 * the whole frame's size and the output and message lengths of its record. 0, or -1 for any other head.
 * For a reader that places the output before decoding (pb__shm_rx_split_results); the decoder still
 * checks the record. */
int pb__wire_result_head_read(const unsigned char head[PB_WIRE_RESULT_HEAD], size_t max_frame, size_t *frame,
                              size_t *out_len, size_t *msg_len);

/* ---- decoding ---- */
/* Decodes and checks a header: magic, version, a known type, and header + body_len <= max_frame.
 * 0 or PB_EPROTO (with a reason in *why when why is not NULL). */
int pb__wire_header_decode(const void *p, size_t max_frame, pb__wire_header *h, const char **why);

/* A bounds-checked cursor over a body. Every getter fails (returns PB_EPROTO and sets err) instead of
 * reading past end, and the error sticks, so a decoder can check once at the end of a record. */
typedef struct pb__wire_reader {
    const unsigned char *p;
    const unsigned char *end;
    int err;
    /* A body in two pieces (the shm transport's large RESULT frame, pb__shm_rx_split_results): once the
     * first is read to its end the reader goes on in [next, next_end). No value straddles the two. */
    const unsigned char *next, *next_end;
    /* A free()-able block holding the second piece: the record whose output starts at it takes it as its
     * heap instead of a copy (pb__wire_get_result), and this becomes NULL. */
    unsigned char *adopt;
} pb__wire_reader;

static inline void pb__wire_reader_init(pb__wire_reader *r, const void *body, size_t len) {
    r->p = (const unsigned char *)body;
    r->end = r->p + len;
    r->err = 0;
    r->next = r->next_end = NULL;
    r->adopt = NULL;
}
static inline int pb__wire_need(pb__wire_reader *r, size_t n) {
    if (r->p == r->end && r->next) { /* the first piece is read: on to the second */
        r->p = r->next;
        r->end = r->next_end;
        r->next = NULL;
    }
    if (r->err || (size_t)(r->end - r->p) < n) {
        r->err = PB_EPROTO;
        return 0;
    }
    return 1;
}
static inline uint8_t pb__wire_get_u8(pb__wire_reader *r) {
    return pb__wire_need(r, 1) ? *r->p++ : 0;
}
static inline uint16_t pb__wire_get_u16(pb__wire_reader *r) {
    uint16_t v = 0;
    if (pb__wire_need(r, 2)) { __builtin_memcpy(&v, r->p, 2); r->p += 2; }
    return v;
}
static inline uint32_t pb__wire_get_u32(pb__wire_reader *r) {
    uint32_t v = 0;
    if (pb__wire_need(r, 4)) { __builtin_memcpy(&v, r->p, 4); r->p += 4; }
    return v;
}
static inline uint64_t pb__wire_get_u64(pb__wire_reader *r) {
    uint64_t v = 0;
    if (pb__wire_need(r, 8)) { __builtin_memcpy(&v, r->p, 8); r->p += 8; }
    return v;
}
/* Returns a pointer to the next n bytes (in the body) and skips them, or NULL on overrun. */
static inline const void *pb__wire_get_bytes(pb__wire_reader *r, size_t n) {
    if (!pb__wire_need(r, n)) return NULL;
    const void *p = r->p;
    r->p += n;
    return p;
}

/* Decodes one RESULT item record into res (zeroed by the caller): status must be OK or TASK_ERROR,
 * out_len <= max_item_bytes, msg_len <= PB_WIRE_MSG_MAX. Allocates the heap output and the message.
 * 0, PB_EPROTO or -ENOMEM (res is left clear on failure). */
int pb__wire_get_result(pb__wire_reader *r, size_t max_item_bytes, pb_result *res);

/* ---- REQUEST frames: the one encoder (the pool, micro-benchmarks, the fuzz seeds) and the one decoder
 * (the worker, micro-benchmarks, the fuzz target) ---- */

/* How many of items[0, n) one REQUEST frame for a task name of task_len bytes carries within max_frame:
 * as many as fit, and always the first (max_frame leaves room for any single item). 0 only when n is 0. */
size_t pb__wire_request_fit(size_t task_len, const pb_item *items, size_t n, size_t max_frame);

/* The same REQUEST frame as pb__wire_request_encode, as a gather list for pwritev(2): the small parts
 * (header, task name, item lengths) encoded into head, the items referenced where they lie. Needs
 * head_cap >= PB_WIRE_HEADER + 6 + task_len + 4 n and max_iov >= 2 n + 1. Returns the entries filled, with
 * the frame's size in *total, or 0 when it does not fit in head or iov (encode it into a buffer). */
struct iovec;
int pb__wire_request_gather(unsigned char *head, size_t head_cap, struct iovec *iov, int max_iov, int flags,
                            uint64_t id, uint32_t first, const char *task, size_t task_len, const pb_item *items,
                            size_t n, size_t *total);
/* Appends a REQUEST frame to b: items[0, n) are items first .. first + n - 1 of job id, for the task named
 * by task_len bytes at task. flags: PB_WIRE_F_*. 0, or -ENOMEM (b keeps what it held before). */
int pb__wire_request_encode(pb__wbuf *b, int flags, uint64_t id, uint32_t first, const char *task, size_t task_len,
                            const pb_item *items, size_t n);

/* A REQUEST body being read: its head decoded, its items read one by one (they are not copied). */
typedef struct pb__wire_request {
    uint32_t first;        /* the job's index of the first item */
    const char *name;      /* the task name, name_len bytes, not NUL-terminated */
    uint16_t name_len;
    pb__wire_reader items;  /* positioned at the next item */
} pb__wire_request;

/* Decodes the head of a REQUEST body. 0, or PB_EPROTO when it is truncated or the task name is empty or
 * longer than PB_WIRE_NAME_MAX. */
int pb__wire_request_open(pb__wire_request *q, const void *body, size_t body_len);

/* The next item: 0 with *data and *len (pointing into the body), or PB_EPROTO when the body ends first or
 * the item is longer than max_item_bytes. The header's count says how many there are. */
int pb__wire_request_item(pb__wire_request *q, size_t max_item_bytes, const void **data, uint32_t *len);

#endif
