/*
 * wire.c - encoding and checked decoding of the process backends' frames (layout in wire.h).
 *
 * Speed matters here: a map of a million tiny items is a million item records each way, so encoding is
 * a reserve plus memcpy into one growable buffer, and decoding walks the received body in place with a
 * bounds-checked cursor (no intermediate copies; only an output larger than PB_RESULT_INLINE and a message
 * cost an allocation). Safety matters as much: every length read from a peer is checked against the
 * bytes actually present and against the pool's limits before it is used, so a corrupt or hostile frame
 * becomes PB_EPROTO, never an overflow or an oversized allocation.
 */
#include "wire.h"
#include "backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

int pb__populate_write(void *p, size_t len) {
    uintptr_t from = ((uintptr_t)p + 4095u) & ~(uintptr_t)4095u, to = ((uintptr_t)p + len) & ~(uintptr_t)4095u;
    return to > from ? madvise((void *)from, to - from, MADV_POPULATE_WRITE) : 0;
}

#define HUGE_PAGE (2u << 20)

/* Set once this process forked, or is a forked child: from then on heap pages may be shared copy-on-write
 * with another process. pthread_atfork sees fork(), not posix_spawn (which shares nothing: its child
 * execs at once), so a spawn pool's parent and its workers keep the warm reuse of malloc's pages. */
static atomic_int forked;
static void note_fork(void) { atomic_store_explicit(&forked, 1, memory_order_relaxed); }
__attribute__((constructor)) static void watch_forks(void) { (void)pthread_atfork(NULL, note_fork, note_fork); }
int pb__has_forked(void) { return atomic_load_explicit(&forked, memory_order_relaxed); }

unsigned char *pb__alloc_huge(size_t len, size_t *cap) {
    size_t size = len > SIZE_MAX - HUGE_PAGE ? len : (len + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
    void *p = NULL;
    if (size == 0 || posix_memalign(&p, HUGE_PAGE, size) != 0) return NULL;
    /* Fresh pages, not whatever malloc's heap had there, once this process has forked: in a forked worker,
     * and in its parent while the worker lives, those pages are shared copy-on-write, and writing them
     * costs a fault, a 4 KiB copy and (in the multi-threaded parent) a TLB flush on the other vCPU a page,
     * where a fresh huge page is one fault. Measured on the reference VM, payload 16 x 1 MiB on `fork`:
     * the workers' request buffers and the parent's read buffer took ~600 such faults a map; 86.6 ->
     * 48.5 ms with this (interleaved pair). The block is new: nothing in it is lost. */
    if (pb__has_forked()) (void)madvise(p, size, MADV_DONTNEED);
    (void)madvise(p, size, MADV_HUGEPAGE); /* advice: EINVAL without THP, and 4 KiB pages then */
    *cap = size;
    return p;
}

size_t pb__wire_max_frame(size_t max_item_bytes) {
    /* Saturate rather than wrap for absurd limits; the u32 body_len caps a frame at 4 GiB anyway. */
    size_t cap = (size_t)UINT32_MAX;
    if (max_item_bytes > cap - PB_WIRE_SLACK) return cap;
    return max_item_bytes + PB_WIRE_SLACK;
}

int pb__wbuf_reserve(pb__wbuf *b, size_t extra) {
    if (b->cap - b->len >= extra) return 0;
    size_t want = b->len + extra;
    if (want < b->len) return -ENOMEM;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < want) {
        if (cap > SIZE_MAX / 2) { cap = want; break; }
        cap *= 2;
    }
    if (b->unforked && b->data) pb__block_fork_advice(b->data, b->cap, 0); /* realloc may free it */
    unsigned char *p;
    if (cap >= PB__HUGE_FROM) {
        /* A large frame buffer in huge pages: a pool's and a worker's buffers are new with each pool or
         * worker, and each 4 KiB page touched the first time costs ~6-12 us on the reference VM (see
         * pb__alloc_huge). What it holds moves over; realloc would only have copied it too. */
        p = pb__alloc_huge(cap, &cap);
        if (p) {
            if (b->len) memcpy(p, b->data, b->len);
            free(b->data);
        }
    } else {
        p = realloc(b->data, cap);
    }
    if (!p) {
        if (b->unforked && b->data) pb__block_fork_advice(b->data, b->cap, 1);
        return -ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    if (b->unforked) pb__block_fork_advice(b->data, b->cap, 1);
    return 0;
}

void pb__wbuf_unfork(pb__wbuf *b) {
    b->unforked = 1;
    if (b->data) pb__block_fork_advice(b->data, b->cap, 1);
}

void pb__wbuf_free(pb__wbuf *b) {
    if (b->unforked && b->data) pb__block_fork_advice(b->data, b->cap, 0);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void pb__wbuf_trim(pb__wbuf *b, size_t keep) {
    if (b->len == 0 && b->cap > keep) pb__wbuf_free(b);
}

long pb__wire_begin(pb__wbuf *b, int type, int flags, uint64_t id) {
    if (pb__wbuf_reserve(b, PB_WIRE_HEADER) != 0) return -ENOMEM;
    long off = (long)b->len;
    pb__wire_header h = {PB_WIRE_MAGIC, PB_WIRE_VERSION, (uint8_t)type, (uint8_t)flags, 0, 0, id};
    unsigned char *p = b->data + b->len;
    memcpy(p + 0, &h.magic, 4);
    memcpy(p + 4, &h.version, 2);
    p[6] = h.type;
    p[7] = h.flags;
    memcpy(p + 8, &h.body_len, 4);
    memcpy(p + 12, &h.count, 4);
    memcpy(p + 16, &h.id, 8);
    b->len += PB_WIRE_HEADER;
    return off;
}

void pb__wire_end(pb__wbuf *b, long off, uint32_t count) {
    uint32_t body = (uint32_t)(b->len - (size_t)off - PB_WIRE_HEADER);
    memcpy(b->data + off + 8, &body, 4);
    memcpy(b->data + off + 12, &count, 4);
}

int pb__wire_header_decode(const void *buf, size_t max_frame, pb__wire_header *h, const char **why) {
    const unsigned char *p = buf;
    const char *dummy;
    if (!why) why = &dummy;
    memcpy(&h->magic, p + 0, 4);
    memcpy(&h->version, p + 4, 2);
    h->type = p[6];
    h->flags = p[7];
    memcpy(&h->body_len, p + 8, 4);
    memcpy(&h->count, p + 12, 4);
    memcpy(&h->id, p + 16, 8);
    if (h->magic != PB_WIRE_MAGIC) { *why = "bad magic"; return PB_EPROTO; }
    if (h->version != PB_WIRE_VERSION) { *why = "unsupported protocol version"; return PB_EPROTO; }
    if (h->type < PB_WIRE_INIT || h->type > PB_WIRE_RETIRE) { *why = "unknown frame type"; return PB_EPROTO; }
    if ((size_t)h->body_len > max_frame - PB_WIRE_HEADER) { *why = "frame larger than the limit"; return PB_EPROTO; }
    /* Every item record takes at least 4 bytes, so a count beyond body_len / 4 is a lie; checking it
     * here lets decoders size arrays by count without trusting it further. */
    if (h->count > h->body_len / 4) { *why = "item count larger than the frame"; return PB_EPROTO; }
    return 0;
}

/* The bytes of r's message a record carries (truncated to PB_WIRE_MSG_MAX). */
static size_t record_msg_len(const pb_result *r) { return r->message ? strnlen(r->message, PB_WIRE_MSG_MAX) : 0; }

size_t pb__wire_result_size(const pb_result *r) { return 8 + r->len + record_msg_len(r); }

/* The 8 bytes in front of a result record's output, for a message of msg bytes after it. */
static void put_record_head(unsigned char *p, const pb_result *r, size_t msg) {
    p[0] = (uint8_t)r->status;
    p[1] = 0;
    uint16_t m16 = (uint16_t)msg;
    uint32_t o32 = (uint32_t)r->len;
    memcpy(p + 2, &m16, 2);
    memcpy(p + 4, &o32, 4);
}

size_t pb__wire_result_head(unsigned char head[PB_WIRE_RESULT_HEAD], uint64_t id, uint32_t index, const pb_result *r,
                            size_t *msg_len) {
    pb__wbuf b = {.data = head, .len = 0, .cap = PB_WIRE_RESULT_HEAD}; /* exactly its room: never grows */
    long off = pb__wire_begin(&b, PB_WIRE_RESULT, 0, id);
    pb__wire_put_u32(&b, index);
    *msg_len = record_msg_len(r);
    put_record_head(head + b.len, r, *msg_len);
    size_t frame = PB_WIRE_RESULT_HEAD + r->len + *msg_len;
    b.len = frame; /* pb__wire_end patches body_len from it; the rest of the frame is the caller's */
    pb__wire_end(&b, off, 1);
    return frame;
}

int pb__wire_result_head_read(const unsigned char head[PB_WIRE_RESULT_HEAD], size_t max_frame, size_t *frame,
                              size_t *out_len, size_t *msg_len) {
    pb__wire_header h;
    if (pb__wire_header_decode(head, max_frame, &h, NULL) != 0 || h.type != PB_WIRE_RESULT || h.count != 1) return -1;
    const unsigned char *p = head + PB_WIRE_HEADER + 4; /* the record head: status, 0, message and output lengths */
    uint16_t m16;
    uint32_t o32;
    memcpy(&m16, p + 2, 2);
    memcpy(&o32, p + 4, 4);
    *frame = PB_WIRE_HEADER + (size_t)h.body_len;
    *out_len = o32;
    *msg_len = m16;
    return 0;
}

/* Appends a result record with its output written (in_place: already there, right after the record's
 * head). */
static int put_result(pb__wbuf *b, const pb_result *r, int in_place) {
    size_t msg = record_msg_len(r);
    if (pb__wbuf_reserve(b, 8 + r->len + msg) != 0) return -ENOMEM;
    unsigned char *p = b->data + b->len;
    if (in_place && (const void *)(p + 8) != pb_result_data(r)) return -EINVAL;
    put_record_head(p, r, msg);
    b->len += 8;
    if (in_place)
        b->len += r->len;
    else
        pb__wire_put(b, pb_result_data(r), r->len);
    pb__wire_put(b, r->message, msg);
    return 0;
}

int pb__wire_put_result(pb__wbuf *b, const pb_result *r) { return put_result(b, r, 0); }
int pb__wire_put_result_in_place(pb__wbuf *b, const pb_result *r) { return put_result(b, r, 1); }

int pb__wire_get_result(pb__wire_reader *r, size_t max_item_bytes, pb_result *res) {
    if (!pb__wire_need(r, 8)) return PB_EPROTO;
    const unsigned char *p = r->p;
    uint8_t status = p[0];
    uint16_t msg_len;
    uint32_t out_len;
    memcpy(&msg_len, p + 2, 2);
    memcpy(&out_len, p + 4, 4);
    r->p += 8;
    /* A worker can only report what pb__run_item produces; anything else is a forged record. */
    if ((status != PB_STATUS_OK && status != PB_STATUS_TASK_ERROR) || p[1] != 0 ||
        msg_len > PB_WIRE_MSG_MAX || (size_t)out_len > max_item_bytes) {
        r->err = PB_EPROTO;
        return PB_EPROTO;
    }
    const unsigned char *out = pb__wire_get_bytes(r, out_len);
    const unsigned char *msg = pb__wire_get_bytes(r, msg_len);
    if (r->err) return PB_EPROTO;

    res->status = status;
    res->signal = 0;
    res->exit_code = -1;
    res->len = out_len;
    if (out_len > PB_RESULT_INLINE && r->adopt && out == r->adopt) {
        res->heap = r->adopt; /* the transport read the output into a block of its own: no copy */
        r->adopt = NULL;
    } else if (out_len > PB_RESULT_INLINE) {
        int warm;
        res->heap = pb__output_block(out_len, &warm); /* a cleared result's block when one fits */
        if (!res->heap) {
            res->len = 0;
            return -ENOMEM;
        }
        /* Written whole at once by the parent's I/O thread: fresh from malloc (often a new mapping), its
         * pages would each fault on first write, one at a time in the thread that serves every worker;
         * populated first, they are mapped in one call. */
        if (!warm && out_len >= PB__POPULATE_FROM) (void)pb__populate_write(res->heap, out_len);
        memcpy(res->heap, out, out_len);
    } else if (out_len) {
        memcpy(res->inline_data, out, out_len);
    }
    if (status != PB_STATUS_OK) {
        /* Every non-ok result carries a message (the public contract), even if the worker sent none. A NUL
         * ends the message (as strnlen does on the encoding side), so "\0..." counts as none. */
        msg_len = (uint16_t)strnlen((const char *)msg, msg_len);
        if (msg_len == 0) {
            msg = (const unsigned char *)"task failed";
            msg_len = (uint16_t)strlen("task failed");
        }
        res->message = malloc((size_t)msg_len + 1);
        if (!res->message) {
            free(res->heap);
            res->heap = NULL;
            res->len = 0;
            return -ENOMEM;
        }
        memcpy(res->message, msg, msg_len);
        res->message[msg_len] = '\0';
    }
    return 0;
}

/* ---- REQUEST frames (layout at the top of wire.h) ---- */

#define PB_WIRE_REQUEST_HEAD(task_len) (PB_WIRE_HEADER + 4u + 2u + (task_len))
#define PB_WIRE_REQUEST_ITEM(len) (4u + (len))

size_t pb__wire_request_fit(size_t task_len, const pb_item *items, size_t n, size_t max_frame) {
    size_t size = PB_WIRE_REQUEST_HEAD(task_len), k = 0;
    while (k < n) {
        size_t item = PB_WIRE_REQUEST_ITEM(items[k].len);
        if (k > 0 && size + item > max_frame) break;
        size += item;
        k++;
    }
    return k;
}

int pb__wire_request_encode(pb__wbuf *b, int flags, uint64_t id, uint32_t first, const char *task, size_t task_len,
                            const pb_item *items, size_t n) {
    size_t size = PB_WIRE_REQUEST_HEAD(task_len);
    for (size_t i = 0; i < n; i++) size += PB_WIRE_REQUEST_ITEM(items[i].len);
    size_t had = b->len;
    if (pb__wbuf_reserve(b, size) != 0) return -ENOMEM;
    long off = pb__wire_begin(b, PB_WIRE_REQUEST, flags, id);
    if (off < 0) {
        b->len = had;
        return -ENOMEM;
    }
    pb__wire_put_u32(b, first);
    pb__wire_put_u16(b, (uint16_t)task_len);
    pb__wire_put(b, task, task_len);
    for (size_t i = 0; i < n; i++) {
        pb__wire_put_u32(b, (uint32_t)items[i].len);
        pb__wire_put(b, items[i].data, items[i].len);
    }
    pb__wire_end(b, off, (uint32_t)n);
    return 0;
}

int pb__wire_request_gather(unsigned char *head, size_t head_cap, struct iovec *iov, int max_iov, int flags,
                            uint64_t id, uint32_t first, const char *task, size_t task_len, const pb_item *items,
                            size_t n, size_t *total) {
    if (head_cap < PB_WIRE_REQUEST_HEAD(task_len) || (head_cap - PB_WIRE_REQUEST_HEAD(task_len)) / 4 < n ||
        max_iov < 1 || n > (size_t)((max_iov - 1) / 2))
        return 0;
    /* a buffer over head that never grows: its room was checked above */
    pb__wbuf b = {.data = head, .len = 0, .cap = head_cap};
    long off = pb__wire_begin(&b, PB_WIRE_REQUEST, flags, id);
    pb__wire_put_u32(&b, first);
    pb__wire_put_u16(&b, (uint16_t)task_len);
    pb__wire_put(&b, task, task_len);
    size_t body = b.len - PB_WIRE_HEADER;
    int cnt = 0;
    size_t piece = 0; /* where the current small piece of head starts */
    for (size_t i = 0; i < n; i++) {
        pb__wire_put_u32(&b, (uint32_t)items[i].len);
        body += PB_WIRE_REQUEST_ITEM(items[i].len);
        if (items[i].len == 0) continue; /* its length joins the next small piece */
        iov[cnt++] = (struct iovec){head + piece, b.len - piece};
        iov[cnt++] = (struct iovec){(void *)items[i].data, items[i].len};
        piece = b.len;
    }
    if (b.len > piece) iov[cnt++] = (struct iovec){head + piece, b.len - piece};
    uint32_t body32 = (uint32_t)body, count = (uint32_t)n;
    memcpy(head + off + 8, &body32, 4);
    memcpy(head + off + 12, &count, 4);
    *total = PB_WIRE_HEADER + body;
    return cnt;
}

int pb__wire_request_open(pb__wire_request *q, const void *body, size_t body_len) {
    pb__wire_reader_init(&q->items, body, body_len);
    q->first = pb__wire_get_u32(&q->items);
    q->name_len = pb__wire_get_u16(&q->items);
    q->name = pb__wire_get_bytes(&q->items, q->name_len);
    if (q->items.err || q->name_len == 0 || q->name_len > PB_WIRE_NAME_MAX) return PB_EPROTO;
    return 0;
}

int pb__wire_request_item(pb__wire_request *q, size_t max_item_bytes, const void **data, uint32_t *len) {
    *len = pb__wire_get_u32(&q->items);
    *data = pb__wire_get_bytes(&q->items, *len);
    if (q->items.err || *len > max_item_bytes) return PB_EPROTO;
    return 0;
}
