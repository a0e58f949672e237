/*
 * fuzz_wire.c - libFuzzer target for the process backends' frame codec (impls/wire.c) and the worker loop
 * that decodes request frames (impls/worker.c), fed hostile bytes.
 *
 * The input is read as a stream of frames, twice:
 *
 *   1. Parent side and codec. Each header goes through pb__wire_header_decode; each complete body is
 *      copied to a buffer of exactly its size (so that ASan sees a read one byte past it) and decoded the
 *      way its reader does: RESULT with pb__wire_get_result as procpool.c does, REQUEST and INIT as
 *      worker.c does, READY and RETIRE as procpool.c does. Whatever decodes is re-encoded with the real
 *      encoder (pb__wire_begin / put / end, pb__wire_put_result) and must give back the same bytes, except
 *      for the normalisations the protocol defines (an ok record's message is dropped, a failed record
 *      without one gets "task failed", a message stops at a NUL); a re-encoded RESULT frame must decode to
 *      the same results again.
 *   2. Worker side. The bytes follow an INIT frame made by the real encoder and are served by the real
 *      pb__worker_main from a memfd, with two tasks registered ("echo", and "fail", whose message is long
 *      enough to be truncated on the wire). The worker must exit 0 or 2 (protocol error) and everything it
 *      writes must decode cleanly: frames of known types, RESULT records that pb__wire_get_result accepts,
 *      no trailing bytes, no partial frame.
 *
 * A broken invariant aborts (a crash to libFuzzer), as does any ASan or UBSan report. Built with
 * PB_FUZZ_SEEDGEN instead, the file is a program that writes seed frames into the directory it is given.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "poolbench.h"
#include "proc.h"
#include "wire.h"

#define MAX_ITEM 1024u /* the fuzzed pool's max_item_bytes: small, so that the limit is easy to cross */
#define MAX_TASKS 7u   /* the fuzzed worker retires after this many items */

#define CHECK(c)                                                                        \
    do {                                                                                \
        if (!(c)) {                                                                     \
            fprintf(stderr, "fuzz_wire.c:%d: invariant broken: %s\n", __LINE__, #c); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static int echo_task(const void *in, size_t len, pb_output *out) {
    return pb_output_set(out, in, len) == 0 ? 0 : -1;
}
static int fail_task(const void *in, size_t len, pb_output *out) {
    int n = (int)len;
    const char *s = in;
    return pb_output_error(out, "%.*s|%.*s|%.*s|%.*s|%.*s", n, s, n, s, n, s, n, s, n, s);
}
PB_TASK_DEFINE("echo", echo_task)
PB_TASK_DEFINE("fail", fail_task)

/* The INIT frame a pool with MAX_ITEM, MAX_TASKS and no initializer sends. */
static void encode_init(pb__wbuf *b) {
    long off = pb__wire_begin(b, PB_WIRE_INIT, 0, 0);
    CHECK(off >= 0 && pb__wbuf_reserve(b, 26) == 0);
    pb__wire_put_u64(b, MAX_ITEM);
    pb__wire_put_u32(b, MAX_TASKS);
    pb__wire_put_u64(b, 0);
    pb__wire_put_u16(b, 0);
    pb__wire_put_u32(b, 0);
    pb__wire_end(b, off, 0);
}

#ifndef PB_FUZZ_SEEDGEN

static size_t max_frame(void) { return pb__wire_max_frame(MAX_ITEM); }

static unsigned char *dup_exact(const void *p, size_t n) {
    unsigned char *c = malloc(n ? n : 1);
    CHECK(c != NULL);
    if (n) memcpy(c, p, n);
    return c;
}

/* The fields a decoded result must satisfy, whoever sent it. */
static void check_decoded(const pb_result *res) {
    CHECK(res->status == PB_STATUS_OK || res->status == PB_STATUS_TASK_ERROR);
    CHECK(res->len <= MAX_ITEM);
    CHECK((res->len > PB_RESULT_INLINE) == (res->heap != NULL));
    CHECK((res->status == PB_STATUS_OK) == (res->message == NULL));
    if (res->message) CHECK(res->message[0] != '\0' && strlen(res->message) <= PB_WIRE_MSG_MAX);
    CHECK(res->signal == 0);
}

static int same_result(const pb_result *a, const pb_result *b) {
    if (a->status != b->status || a->len != b->len) return 0;
    if (a->len && memcmp(pb_result_data(a), pb_result_data(b), a->len) != 0) return 0;
    if (!a->message || !b->message) return a->message == b->message;
    return strcmp(a->message, b->message) == 0;
}

/* Re-encoding checks shared by every type: the encoder's frame must equal the original frame's header and
 * the consumed prefix of its body (the whole frame when nothing trails). */
static void check_reencoded(const pb__wbuf *b, const unsigned char *frame, const pb__wire_header *h, size_t consumed) {
    CHECK(b->len == PB_WIRE_HEADER + consumed);
    CHECK(memcmp(b->data, frame, 8) == 0);                    /* magic, version, type, flags */
    CHECK(memcmp(b->data + 12, frame + 12, 12) == 0);         /* count, id */
    CHECK(memcmp(b->data + PB_WIRE_HEADER, frame + PB_WIRE_HEADER, consumed) == 0);
    if (consumed == h->body_len) CHECK(memcmp(b->data, frame, b->len) == 0);
}

/* RESULT, read as procpool.c's handle_frame reads it. strict: every record must be good. */
static void result_frame(const pb__wire_header *h, const unsigned char *frame, const unsigned char *body, int strict) {
    pb__wire_reader r;
    pb__wire_reader_init(&r, body, h->body_len);
    uint32_t first = pb__wire_get_u32(&r);
    if (r.err) {
        CHECK(!strict);
        return;
    }
    pb_result *res = calloc(h->count ? h->count : 1, sizeof *res); /* count <= body_len / 4: bounded */
    CHECK(res != NULL);
    int canonical = 1, bad = 0;
    uint32_t n;
    for (n = 0; n < h->count; n++) {
        const unsigned char *rec = r.p;
        int rc = pb__wire_get_result(&r, MAX_ITEM, &res[n]);
        if (rc != 0) {
            CHECK(rc == PB_EPROTO && r.err == PB_EPROTO);
            CHECK(res[n].heap == NULL && res[n].message == NULL && res[n].len == 0);
            bad = 1;
            break;
        }
        check_decoded(&res[n]);
        /* This one record, re-encoded: identical bytes unless a normalisation applies. */
        size_t reclen = (size_t)(r.p - rec);
        uint16_t msg_len;
        memcpy(&msg_len, rec + 2, 2);
        pb__wbuf one = {0};
        CHECK(pb__wire_put_result(&one, &res[n]) == 0);
        CHECK(one.len == pb__wire_result_size(&res[n]));
        if (one.len != reclen || memcmp(one.data, rec, reclen) != 0) {
            int normalised = (res[n].status == PB_STATUS_OK && msg_len > 0) ||
                             (res[n].status == PB_STATUS_TASK_ERROR && msg_len == 0) ||
                             memchr(rec + reclen - msg_len, 0, msg_len) != NULL;
            CHECK(normalised);
            canonical = 0;
        }
        pb__wbuf_free(&one);
    }
    if (strict) CHECK(!bad && r.p == r.end);
    if (!bad) {
        /* The whole frame re-encoded, then decoded again: the same results. */
        pb__wbuf b = {0};
        long off = pb__wire_begin(&b, PB_WIRE_RESULT, h->flags, h->id);
        CHECK(off == 0 && pb__wbuf_reserve(&b, 4) == 0);
        pb__wire_put_u32(&b, first);
        for (uint32_t i = 0; i < h->count; i++) CHECK(pb__wire_put_result(&b, &res[i]) == 0);
        pb__wire_end(&b, off, h->count);
        if (canonical) check_reencoded(&b, frame, h, (size_t)(r.p - body));
        if (b.len <= max_frame()) {
            pb__wire_header h2;
            CHECK(pb__wire_header_decode(b.data, max_frame(), &h2, NULL) == 0);
            CHECK(h2.type == PB_WIRE_RESULT && h2.flags == h->flags && h2.id == h->id && h2.count == h->count);
            CHECK(h2.body_len == b.len - PB_WIRE_HEADER);
            unsigned char *body2 = dup_exact(b.data + PB_WIRE_HEADER, h2.body_len);
            pb__wire_reader r2;
            pb__wire_reader_init(&r2, body2, h2.body_len);
            CHECK(pb__wire_get_u32(&r2) == first);
            for (uint32_t i = 0; i < h2.count; i++) {
                pb_result x = {0};
                CHECK(pb__wire_get_result(&r2, MAX_ITEM, &x) == 0);
                CHECK(same_result(&x, &res[i]));
                pb_result_clear(&x);
            }
            CHECK(r2.err == 0 && r2.p == r2.end);
            free(body2);
        }
        pb__wbuf_free(&b);
    }
    for (uint32_t i = 0; i < n && i < h->count; i++) pb_result_clear(&res[i]);
    free(res);
}

/* REQUEST, read with the decoder worker.c's serve() uses, and re-encoded with the encoder procpool.c's
 * give() uses (wire.c). */
static void request_frame(const pb__wire_header *h, const unsigned char *frame, const unsigned char *body) {
    pb__wire_request q;
    if (pb__wire_request_open(&q, body, h->body_len) != 0) return;
    pb_item *items = calloc(h->count ? h->count : 1, sizeof *items); /* count <= body_len / 4: bounded */
    CHECK(items != NULL);
    for (uint32_t i = 0; i < h->count; i++) {
        const void *data;
        uint32_t len;
        if (pb__wire_request_item(&q, MAX_ITEM, &data, &len) != 0) {
            free(items);
            return;
        }
        CHECK(data != NULL && (const unsigned char *)data + len <= body + h->body_len);
        items[i] = (pb_item){data, len};
    }
    pb__wbuf b = {0};
    CHECK(pb__wire_request_encode(&b, h->flags, h->id, q.first, q.name, q.name_len, items, h->count) == 0);
    check_reencoded(&b, frame, h, (size_t)(q.items.p - body));
    pb__wbuf_free(&b);
    free(items);
}

/* INIT, read as worker.c's handshake() reads it, and re-encoded as procpool.c writes it. */
static void init_frame(const pb__wire_header *h, const unsigned char *frame, const unsigned char *body) {
    pb__wire_reader r;
    pb__wire_reader_init(&r, body, h->body_len);
    uint64_t max_item = pb__wire_get_u64(&r);
    uint32_t max_tasks = pb__wire_get_u32(&r);
    uint64_t max_rss = pb__wire_get_u64(&r);
    uint16_t name_len = pb__wire_get_u16(&r);
    const char *name = pb__wire_get_bytes(&r, name_len);
    uint32_t arg_len = pb__wire_get_u32(&r);
    const void *arg = pb__wire_get_bytes(&r, arg_len);
    if (r.err || name_len > PB_WIRE_NAME_MAX || max_item > SIZE_MAX || arg_len > max_item) return;
    pb__wbuf b = {0};
    long off = pb__wire_begin(&b, PB_WIRE_INIT, h->flags, h->id);
    CHECK(off == 0 && pb__wbuf_reserve(&b, 26 + (size_t)name_len + arg_len) == 0);
    pb__wire_put_u64(&b, max_item);
    pb__wire_put_u32(&b, max_tasks);
    pb__wire_put_u64(&b, max_rss);
    pb__wire_put_u16(&b, name_len);
    pb__wire_put(&b, name, name_len);
    pb__wire_put_u32(&b, arg_len);
    pb__wire_put(&b, arg, arg_len);
    pb__wire_end(&b, off, h->count);
    check_reencoded(&b, frame, h, (size_t)(r.p - body));
    pb__wbuf_free(&b);
}

/* READY, read as procpool.c reads it (with the message bounded by PB_WIRE_MSG_MAX), re-encoded as
 * worker.c writes it. */
static void ready_frame(const pb__wire_header *h, const unsigned char *frame, const unsigned char *body, int strict) {
    pb__wire_reader r;
    pb__wire_reader_init(&r, body, h->body_len);
    uint8_t status = pb__wire_get_u8(&r);
    uint16_t mlen = pb__wire_get_u16(&r);
    const char *m = pb__wire_get_bytes(&r, mlen);
    if (r.err || mlen > PB_WIRE_MSG_MAX) {
        CHECK(!strict);
        return;
    }
    char msg[PB_WIRE_MSG_MAX + 1];
    memcpy(msg, m, mlen);
    msg[mlen] = '\0';
    pb__wbuf b = {0};
    long off = pb__wire_begin(&b, PB_WIRE_READY, h->flags, h->id);
    CHECK(off == 0 && pb__wbuf_reserve(&b, 3 + (size_t)mlen) == 0);
    pb__wire_put_u8(&b, status);
    pb__wire_put_u16(&b, mlen);
    pb__wire_put(&b, msg, mlen);
    pb__wire_end(&b, off, h->count);
    check_reencoded(&b, frame, h, (size_t)(r.p - body));
    if (strict) CHECK(r.p == r.end && status == 0);
    pb__wbuf_free(&b);
}

static void retire_frame(const pb__wire_header *h, const unsigned char *frame, const unsigned char *body, int strict) {
    pb__wire_reader r;
    pb__wire_reader_init(&r, body, h->body_len);
    uint8_t reason = pb__wire_get_u8(&r);
    if (r.err) {
        CHECK(!strict);
        return;
    }
    if (strict) CHECK(reason == PB_WIRE_RETIRE_TASKS && r.p == r.end);
    pb__wbuf b = {0};
    long off = pb__wire_begin(&b, PB_WIRE_RETIRE, h->flags, h->id);
    CHECK(off == 0 && pb__wbuf_reserve(&b, 1) == 0);
    pb__wire_put_u8(&b, reason);
    pb__wire_end(&b, off, h->count);
    check_reencoded(&b, frame, h, 1);
    pb__wbuf_free(&b);
}

/* Walks a byte stream frame by frame. strict: the stream is what a worker wrote, so every frame must be
 * whole and good and be one a worker sends. Returns the number of frames decoded. */
static size_t decode_stream(const unsigned char *data, size_t size, int strict) {
    size_t pos = 0, frames = 0;
    while (size - pos >= PB_WIRE_HEADER) {
        pb__wire_header h;
        const char *why = NULL;
        int rc = pb__wire_header_decode(data + pos, max_frame(), &h, &why);
        if (rc != 0) {
            CHECK(rc == PB_EPROTO && why != NULL);
            CHECK(!strict);
            return frames;
        }
        CHECK(h.magic == PB_WIRE_MAGIC && h.version == PB_WIRE_VERSION);
        CHECK(h.type >= PB_WIRE_INIT && h.type <= PB_WIRE_RETIRE);
        CHECK(h.body_len <= max_frame() - PB_WIRE_HEADER && h.count <= h.body_len / 4);
        size_t frame = PB_WIRE_HEADER + (size_t)h.body_len;
        if (size - pos < frame) break; /* truncated: a reader would wait for more */
        unsigned char *copy = dup_exact(data + pos, frame);
        const unsigned char *body = copy + PB_WIRE_HEADER;
        switch (h.type) {
        case PB_WIRE_RESULT: result_frame(&h, copy, body, strict); break;
        case PB_WIRE_READY: ready_frame(&h, copy, body, strict); break;
        case PB_WIRE_RETIRE: retire_frame(&h, copy, body, strict); break;
        case PB_WIRE_REQUEST: CHECK(!strict); request_frame(&h, copy, body); break;
        case PB_WIRE_INIT: CHECK(!strict); init_frame(&h, copy, body); break;
        }
        free(copy);
        pos += frame;
        frames++;
    }
    if (strict) CHECK(pos == size);
    return frames;
}

static void write_all(int fd, const void *p, size_t n) {
    const unsigned char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        CHECK(w > 0);
        c += w;
        n -= (size_t)w;
    }
}

/* Serves the bytes as requests with the real worker loop and checks what it answers. */
static void run_worker(const uint8_t *data, size_t size) {
    int in = memfd_create("fuzz-requests", MFD_CLOEXEC), out = memfd_create("fuzz-results", MFD_CLOEXEC);
    CHECK(in >= 0 && out >= 0);
    pb__wbuf init = {0};
    encode_init(&init);
    write_all(in, init.data, init.len);
    pb__wbuf_free(&init);
    if (size) write_all(in, data, size);
    CHECK(lseek(in, 0, SEEK_SET) == 0);
    int code = pb__worker_main(in, out);
    CHECK(code == 0 || code == 2);
    struct stat st;
    CHECK(fstat(out, &st) == 0);
    size_t n = (size_t)st.st_size;
    unsigned char *answer = malloc(n ? n : 1);
    CHECK(answer != NULL);
    CHECK(pread(out, answer, n, 0) == (ssize_t)n);
    /* At least READY (status 0: there is no initializer), then whatever the requests earned. */
    CHECK(n >= PB_WIRE_HEADER && answer[6] == PB_WIRE_READY);
    CHECK(decode_stream(answer, n, 1) >= 1);
    free(answer);
    close(in);
    close(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    decode_stream(data, size, 0);
    run_worker(data, size);
    return 0;
}

#else /* the seed generator */

static const char *outdir;

static void save(const char *name, const pb__wbuf *b) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_wire_seedgen: cannot write %s\n", path);
        exit(1);
    }
}

static void request(pb__wbuf *b, int flags, uint64_t id, uint32_t first, const char *task, const char *const *items,
                    size_t n) {
    pb_item it[16];
    CHECK(n <= sizeof it / sizeof it[0]);
    for (size_t i = 0; i < n; i++) it[i] = (pb_item){items[i], strlen(items[i])};
    CHECK(pb__wire_request_encode(b, flags, id, first, task, strlen(task), it, n) == 0);
}

static void result_frame_seed(pb__wbuf *b, uint64_t id, uint32_t first) {
    char big[200];
    memset(big, 'x', sizeof big);
    pb_result r[3];
    memset(r, 0, sizeof r);
    r[0].status = PB_STATUS_OK;
    r[0].len = 3;
    memcpy(r[0].inline_data, "abc", 3);
    r[1].status = PB_STATUS_OK;
    r[1].len = sizeof big;
    r[1].heap = (unsigned char *)big;
    r[2].status = PB_STATUS_TASK_ERROR;
    r[2].message = "task 'fail' failed: boom";
    long off = pb__wire_begin(b, PB_WIRE_RESULT, 0, id);
    CHECK(off >= 0 && pb__wbuf_reserve(b, 4) == 0);
    pb__wire_put_u32(b, first);
    for (int i = 0; i < 3; i++) CHECK(pb__wire_put_result(b, &r[i]) == 0);
    pb__wire_end(b, off, 3);
}

static void ready(pb__wbuf *b, uint8_t status, const char *msg) {
    size_t ml = strlen(msg);
    long off = pb__wire_begin(b, PB_WIRE_READY, 0, 4242);
    CHECK(off >= 0 && pb__wbuf_reserve(b, 3 + ml) == 0);
    pb__wire_put_u8(b, status);
    pb__wire_put_u16(b, (uint16_t)ml);
    pb__wire_put(b, msg, ml);
    pb__wire_end(b, off, 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_wire_seedgen DIR  (writes seed frames made by the real encoder)\n");
        return 2;
    }
    outdir = argv[1];
    static const char *const three[] = {"a", "hello", ""};
    static const char *const eight[] = {"1", "2", "3", "4", "5", "6", "7", "8"};
    pb__wbuf b = {0};

    request(&b, 0, 1, 0, "echo", three, 3);
    save("request-echo", &b);
    b.len = 0;
    request(&b, PB_WIRE_F_PER_ITEM, 2, 10, "fail", three, 2);
    save("request-fail-per-item", &b);
    b.len = 0;
    request(&b, 0, 3, 0, "no-such-task", three, 1);
    save("request-unknown-task", &b);
    b.len = 0;
    request(&b, 0, 4, 0, "echo", eight, 8);
    save("request-retire", &b); /* more items than MAX_TASKS: the worker retires */
    b.len = 0;
    request(&b, 0, 5, 0, "echo", three, 3);
    request(&b, PB_WIRE_F_PER_ITEM, 6, 3, "fail", three + 1, 1);
    save("request-two-frames", &b);
    b.len = 0;
    encode_init(&b);
    save("init", &b);
    b.len = 0;
    ready(&b, 0, "");
    save("ready-ok", &b);
    b.len = 0;
    ready(&b, 1, "initializer 'setup' failed: no config");
    save("ready-failed", &b);
    b.len = 0;
    result_frame_seed(&b, 7, 0);
    save("result-three", &b);
    b.len = 0;
    {
        long off = pb__wire_begin(&b, PB_WIRE_RETIRE, 0, 0);
        CHECK(off >= 0 && pb__wbuf_reserve(&b, 1) == 0);
        pb__wire_put_u8(&b, PB_WIRE_RETIRE_TASKS);
        pb__wire_end(&b, off, 0);
    }
    save("retire", &b);
    b.len = 0;

    /* Hand-made damage to real frames. */
    result_frame_seed(&b, 8, 0);
    b.data[PB_WIRE_HEADER + 4] = 9; /* first record: unknown status */
    save("bad-result-status", &b);
    b.len = 0;
    result_frame_seed(&b, 8, 0);
    b.data[PB_WIRE_HEADER + 5] = 1; /* first record: the pad byte is not zero */
    save("bad-result-pad", &b);
    b.len = 0;
    result_frame_seed(&b, 8, 0);
    {
        uint32_t huge = MAX_ITEM + 1; /* first record: out_len over the limit */
        memcpy(b.data + PB_WIRE_HEADER + 8, &huge, 4);
        uint16_t m = PB_WIRE_MSG_MAX + 1;
        save("bad-result-out-len", &b);
        memcpy(b.data + PB_WIRE_HEADER + 8, "\3\0\0\0", 4);
        memcpy(b.data + PB_WIRE_HEADER + 6, &m, 2); /* msg_len over PB_WIRE_MSG_MAX */
        save("bad-result-msg-len", &b);
    }
    b.len = 0;
    result_frame_seed(&b, 8, 0);
    {
        uint32_t c = 4; /* one record more than there is */
        memcpy(b.data + 12, &c, 4);
        save("bad-result-count", &b);
        c = 2; /* one record fewer: trailing bytes */
        memcpy(b.data + 12, &c, 4);
        save("result-trailing-bytes", &b);
    }
    b.len = 0;
    request(&b, 0, 9, 0, "echo", three, 3);
    {
        size_t full = b.len;
        b.len = full - 2;
        save("truncated-request", &b);
        b.len = full;
        b.data[4] = 2; /* version 2 */
        save("bad-version", &b);
        b.data[4] = 1;
        b.data[0] ^= 0xff;
        save("bad-magic", &b);
        b.data[0] ^= 0xff;
        b.data[6] = 99;
        save("bad-type", &b);
        b.data[6] = PB_WIRE_REQUEST;
        uint32_t big = UINT32_MAX;
        memcpy(b.data + 8, &big, 4);
        save("body-len-huge", &b);
        uint32_t body = (uint32_t)(full - PB_WIRE_HEADER);
        memcpy(b.data + 8, &body, 4);
        memcpy(b.data + 12, &big, 4);
        save("count-huge", &b);
        uint32_t three_items = 3;
        memcpy(b.data + 12, &three_items, 4);
        uint32_t item_len = UINT32_MAX; /* the first item claims 4 GiB */
        memcpy(b.data + PB_WIRE_HEADER + 6 + 4, &item_len, 4);
        save("request-item-len-huge", &b);
    }
    b.len = 0;
    pb__wbuf_free(&b);
    return 0;
}

#endif
