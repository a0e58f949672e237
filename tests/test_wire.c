/*
 * test_wire.c - the process backends' frame codec (impls/wire.c): round trips, and that every corrupt,
 * truncated or hostile input is PB_EPROTO rather than an overflow or an oversized allocation (run it under
 * ASan to make the second half mean something).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "poolbench.h"
#include "backend.h"
#include "wire.h"

#define MAX_ITEM 4096

static pb_result ok_result(const void *data, size_t len) {
    pb_result r;
    memset(&r, 0, sizeof r);
    r.status = PB_STATUS_OK;
    r.len = len;
    if (len > PB_RESULT_INLINE) {
        r.heap = malloc(len);
        memcpy(r.heap, data, len);
    } else {
        memcpy(r.inline_data, data, len);
    }
    return r;
}

/* A RESULT frame with three records: inline output, heap output, task error with message. */
static void build_results(pb__wbuf *b) {
    unsigned char big[100];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)i;
    pb_result r[3];
    r[0] = ok_result("abc", 3);
    r[1] = ok_result(big, sizeof big);
    memset(&r[2], 0, sizeof r[2]);
    r[2].status = PB_STATUS_TASK_ERROR;
    r[2].message = strdup("it went wrong");
    long off = pb__wire_begin(b, PB_WIRE_RESULT, 0, 77);
    assert_true(off >= 0);
    assert_int_equal(pb__wbuf_reserve(b, 4), 0);
    pb__wire_put_u32(b, 10);
    for (int i = 0; i < 3; i++) assert_int_equal(pb__wire_put_result(b, &r[i]), 0);
    pb__wire_end(b, off, 3);
    pb_results_clear(r, 3);
}

static void test_result_roundtrip(void **state) {
    pb__wbuf b = {0};
    build_results(&b);
    pb__wire_header h;
    assert_int_equal(pb__wire_header_decode(b.data, pb__wire_max_frame(MAX_ITEM), &h, NULL), 0);
    assert_int_equal(h.type, PB_WIRE_RESULT);
    assert_int_equal(h.count, 3);
    assert_int_equal(h.id, 77);
    assert_int_equal(PB_WIRE_HEADER + h.body_len, b.len);
    pb__wire_reader r;
    pb__wire_reader_init(&r, b.data + PB_WIRE_HEADER, h.body_len);
    assert_int_equal(pb__wire_get_u32(&r), 10);
    pb_result res[3];
    memset(res, 0, sizeof res);
    for (int i = 0; i < 3; i++) assert_int_equal(pb__wire_get_result(&r, MAX_ITEM, &res[i]), 0);
    assert_ptr_equal(r.p, r.end);
    assert_int_equal(res[0].status, PB_STATUS_OK);
    assert_int_equal(res[0].len, 3);
    assert_memory_equal(pb_result_data(&res[0]), "abc", 3);
    assert_null(res[0].message);
    assert_int_equal(res[1].len, 100);
    assert_non_null(res[1].heap);
    assert_int_equal(((const unsigned char *)pb_result_data(&res[1]))[99], 99);
    assert_int_equal(res[2].status, PB_STATUS_TASK_ERROR);
    assert_string_equal(res[2].message, "it went wrong");
    pb_results_clear(res, 3);
    pb__wbuf_free(&b);
}

static void test_header_rejects(void **state) {
    pb__wbuf b = {0};
    build_results(&b);
    size_t max = pb__wire_max_frame(MAX_ITEM);
    pb__wire_header h;
    unsigned char hdr[PB_WIRE_HEADER];
    const char *why = NULL;

    memcpy(hdr, b.data, sizeof hdr);
    hdr[0] ^= 1; /* magic */
    assert_int_equal(pb__wire_header_decode(hdr, max, &h, &why), PB_EPROTO);
    assert_non_null(why);

    memcpy(hdr, b.data, sizeof hdr);
    hdr[4] = 99; /* version */
    assert_int_equal(pb__wire_header_decode(hdr, max, &h, NULL), PB_EPROTO);

    memcpy(hdr, b.data, sizeof hdr);
    hdr[6] = 0; /* type */
    assert_int_equal(pb__wire_header_decode(hdr, max, &h, NULL), PB_EPROTO);
    hdr[6] = 200;
    assert_int_equal(pb__wire_header_decode(hdr, max, &h, NULL), PB_EPROTO);

    memcpy(hdr, b.data, sizeof hdr);
    uint32_t huge = UINT32_MAX; /* body_len beyond the limit */
    memcpy(hdr + 8, &huge, 4);
    assert_int_equal(pb__wire_header_decode(hdr, max, &h, NULL), PB_EPROTO);

    memcpy(hdr, b.data, sizeof hdr);
    uint32_t lots = 1000000; /* count cannot fit in body_len */
    memcpy(hdr + 12, &lots, 4);
    assert_int_equal(pb__wire_header_decode(hdr, max, &h, NULL), PB_EPROTO);
    pb__wbuf_free(&b);
}

/* Every truncation of a valid body fails cleanly; only the whole body decodes. */
static void test_truncations(void **state) {
    pb__wbuf b = {0};
    build_results(&b);
    const unsigned char *body = b.data + PB_WIRE_HEADER;
    size_t len = b.len - PB_WIRE_HEADER;
    for (size_t cut = 0; cut <= len; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */
        memcpy(copy, body, cut);
        pb__wire_reader r;
        pb__wire_reader_init(&r, copy, cut);
        (void)pb__wire_get_u32(&r);
        int rc = 0, decoded = 0;
        for (int i = 0; i < 3 && rc == 0; i++) {
            pb_result res;
            memset(&res, 0, sizeof res);
            rc = pb__wire_get_result(&r, MAX_ITEM, &res);
            if (rc == 0) decoded++;
            pb_result_clear(&res);
        }
        if (cut == len) assert_int_equal(decoded, 3);
        else assert_int_equal(rc, PB_EPROTO);
        free(copy);
    }
    pb__wbuf_free(&b);
}

static void test_hostile_records(void **state) {
    unsigned char rec[8 + 16];
    memset(rec, 0, sizeof rec);
    pb_result res;
    pb__wire_reader r;

    rec[0] = PB_STATUS_WORKER_DIED; /* a worker cannot claim its own death */
    pb__wire_reader_init(&r, rec, sizeof rec);
    memset(&res, 0, sizeof res);
    assert_int_equal(pb__wire_get_result(&r, MAX_ITEM, &res), PB_EPROTO);

    rec[0] = PB_STATUS_OK;
    uint32_t out_len = MAX_ITEM + 1; /* over the item limit */
    memcpy(rec + 4, &out_len, 4);
    pb__wire_reader_init(&r, rec, sizeof rec);
    assert_int_equal(pb__wire_get_result(&r, MAX_ITEM, &res), PB_EPROTO);

    out_len = 0xFFFFFFF0u; /* huge: must not be allocated */
    memcpy(rec + 4, &out_len, 4);
    pb__wire_reader_init(&r, rec, sizeof rec);
    assert_int_equal(pb__wire_get_result(&r, SIZE_MAX, &res), PB_EPROTO);

    out_len = 0;
    memcpy(rec + 4, &out_len, 4);
    uint16_t msg_len = PB_WIRE_MSG_MAX + 1;
    memcpy(rec + 2, &msg_len, 2);
    pb__wire_reader_init(&r, rec, sizeof rec);
    assert_int_equal(pb__wire_get_result(&r, MAX_ITEM, &res), PB_EPROTO);
    assert_null(res.heap);
    assert_null(res.message);

    /* A task error with no message still gets one (the public contract). */
    memset(rec, 0, sizeof rec);
    rec[0] = PB_STATUS_TASK_ERROR;
    pb__wire_reader_init(&r, rec, 8);
    assert_int_equal(pb__wire_get_result(&r, MAX_ITEM, &res), 0);
    assert_non_null(res.message);
    pb_result_clear(&res);
}

/* Random bytes through the header and record decoders: never a crash, never a huge allocation. */
static void test_random_bytes(void **state) {
    srand(12345);
    size_t max = pb__wire_max_frame(MAX_ITEM);
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rand() % 200);
        unsigned char *buf = malloc(len + PB_WIRE_HEADER);
        for (size_t i = 0; i < len + PB_WIRE_HEADER; i++) buf[i] = (unsigned char)rand();
        if (iter % 2) { /* a valid header in front of random records, to reach the record decoder */
            pb__wbuf b = {0};
            long off = pb__wire_begin(&b, PB_WIRE_RESULT, 0, 1);
            assert_true(off >= 0);
            memcpy(buf, b.data, PB_WIRE_HEADER);
            pb__wbuf_free(&b);
            uint32_t body = (uint32_t)len, count = (uint32_t)(rand() % 8);
            memcpy(buf + 8, &body, 4);
            memcpy(buf + 12, &count, 4);
            if (iter % 4 == 1 && len >= 12) { /* a plausible first record, so that decoding goes deeper */
                unsigned char *rec = buf + PB_WIRE_HEADER + 4;
                rec[0] &= 1;
                rec[1] = 0;
                rec[2] &= 7;
                rec[3] = 0;
                rec[4] &= 15;
                rec[5] = rec[6] = rec[7] = 0;
            }
        }
        pb__wire_header h;
        if (pb__wire_header_decode(buf, max, &h, NULL) == 0 && h.body_len <= len) {
            pb__wire_reader r;
            pb__wire_reader_init(&r, buf + PB_WIRE_HEADER, h.body_len);
            (void)pb__wire_get_u32(&r);
            for (uint32_t i = 0; i < h.count; i++) {
                pb_result res;
                memset(&res, 0, sizeof res);
                int rc = pb__wire_get_result(&r, MAX_ITEM, &res);
                assert_true(rc == 0 || rc == PB_EPROTO);
                assert_true(res.len <= MAX_ITEM);
                pb_result_clear(&res);
                if (rc) break;
            }
        }
        free(buf);
    }
}

/* A gathered REQUEST (the shm transport writes it with pwritev) is byte for byte the frame the encoder
 * writes: header, name, every length and item, empty items included; and a head or list too small for
 * the frame is refused (0), not overrun. */
static void test_request_gather_matches_encode(void **state) {
    (void)state;
    static unsigned char big[3][70000];
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < sizeof big[k]; i++) big[k][i] = (unsigned char)(i * 13 + k);
    const pb_item items[6] = {{big[0], 70000}, {NULL, 0}, {big[1], 5}, {big[2], 70000}, {NULL, 0}, {NULL, 0}};
    for (size_t n = 1; n <= 6; n++) {
        pb__wbuf b = {0};
        assert_int_equal(pb__wire_request_encode(&b, PB_WIRE_F_PER_ITEM, 77, 9, "task.x", 6, items, n), 0);
        unsigned char head[64 + 4 * 6];
        struct iovec iov[13];
        size_t total = 0;
        int cnt = pb__wire_request_gather(head, sizeof head, iov, 13, PB_WIRE_F_PER_ITEM, 77, 9, "task.x", 6, items,
                                          n, &total);
        assert_true(cnt > 0 && cnt <= 13);
        assert_true(total == b.len);
        unsigned char *flat = malloc(total);
        size_t at = 0;
        for (int i = 0; i < cnt; i++) {
            assert_true(at + iov[i].iov_len <= total);
            memcpy(flat + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        assert_true(at == total);
        assert_memory_equal(flat, b.data, total);
        free(flat);
        pb__wbuf_free(&b);
    }
    unsigned char small[40];
    struct iovec iov[13];
    size_t total;
    assert_int_equal(pb__wire_request_gather(small, sizeof small, iov, 13, 0, 1, 0, "task.x", 6, items, 6, &total), 0);
    unsigned char head[64 + 4 * 6];
    assert_int_equal(pb__wire_request_gather(head, sizeof head, iov, 4, 0, 1, 0, "task.x", 6, items, 2, &total), 0);
}

/* In a fork child: 0 when the page holding p is not mapped (mincore fails with ENOMEM), 1 when it is and
 * holds `want`, 2 when it is and holds something else. */
static int child_sees(const unsigned char *p, unsigned char want) {
    pid_t child = fork();
    if (child == 0) {
        unsigned char vec[1];
        void *page = (void *)((uintptr_t)p & ~(uintptr_t)4095);
        if (mincore(page, 4096, vec) != 0) _exit(0);
        _exit(*p == want ? 1 : 2);
    }
    int st = 0;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* An unforked buffer's pages are not inherited by fork children, through growth; once the buffer is freed,
 * malloc's reuse of its pages is inherited again (no allocation may land on pages a child lacks). */
static void test_wbuf_unfork(void **state) {
    (void)state;
    int advised = pb__output_blocks_unforked(); /* 0 under valgrind: no advice is given there */
    pb__wbuf b = {0};
    pb__wbuf_unfork(&b);
    assert_int_equal(pb__wbuf_reserve(&b, 40000), 0); /* below malloc's mmap threshold: heap pages */
    memset(b.data, 7, b.cap);
    assert_int_equal(child_sees(b.data + b.cap / 2, 7), advised ? 0 : 1);
    b.len = b.cap;
    assert_int_equal(pb__wbuf_reserve(&b, 3u << 20), 0); /* grown (moved): the new pages too */
    memset(b.data, 8, b.cap);
    assert_int_equal(child_sees(b.data + b.cap / 2, 8), advised ? 0 : 1);
    b.len = 0;
    pb__wbuf_free(&b);

    /* Freed and taken again by malloc: inherited like any memory. */
    pb__wbuf small = {0};
    pb__wbuf_unfork(&small);
    assert_int_equal(pb__wbuf_reserve(&small, 40000), 0);
    unsigned char *was = small.data;
    size_t cap = small.cap;
    pb__wbuf_free(&small);
    unsigned char *again = malloc(cap);
    assert_non_null(again);
    memset(again, 9, cap);
    if (again != was) print_message("      malloc did not hand the same block back: checked anyway\n");
    assert_int_equal(child_sees(again + cap / 2, 9), 1);
    free(again);
}

/* A large output block has whole pages of its own, so that a kept one (MADV_DONTFORK) leaves no page to
 * fork children: with malloc's words on its first page, that page stayed inherited, and the parent paid a
 * copy-on-write fault with a TLB flush there for every result of a fork pool's map. */
static void test_output_block_whole_pages(void **state) {
    (void)state;
    int advised = pb__output_blocks_unforked(); /* 0 under valgrind: no advice is given there */
    size_t len = (1u << 20) + 100;
    int warm;
    unsigned char *b = pb__output_block(len, &warm);
    assert_non_null(b);
    if (!warm) assert_int_equal((uintptr_t)b % 4096, 0);
    memset(b, 5, len);
    pb__output_block_give(b); /* kept: none of its pages go to a child */
    assert_int_equal(child_sees(b, 5), advised ? 0 : 1);
    assert_int_equal(child_sees(b + len - 1, 5), advised ? 0 : 1);
    unsigned char *again = pb__output_block(len, &warm);
    assert_ptr_equal(again, b);
    assert_int_equal(warm, 1);
    assert_int_equal(child_sees(b, 5), 1); /* handed out: inherited like any result */
    free(again);
}

/* A buffer that grows to PB__HUGE_FROM or more moves to a huge-page block (2 MiB-aligned, whole 2 MiB
 * units: pb__alloc_huge) and keeps what it held; smaller growth stays with realloc. And the RESULT frame
 * head a worker writes in front of an output with pwritev is the same as the encoder's. */
static void test_wbuf_huge_and_result_head(void **state) {
    (void)state;
    pb__wbuf b = {0};
    assert_int_equal(pb__wbuf_reserve(&b, 1000), 0);
    assert_true(b.cap < PB__HUGE_FROM);
    for (size_t i = 0; i < 1000; i++) b.data[b.len++] = (unsigned char)(i * 7);
    assert_int_equal(pb__wbuf_reserve(&b, PB__HUGE_FROM), 0);
    assert_true(b.cap >= 1000 + PB__HUGE_FROM);
    assert_int_equal(((uintptr_t)b.data) % (2u << 20), 0);
    assert_int_equal(b.cap % (2u << 20), 0);
    for (size_t i = 0; i < 1000; i++) assert_int_equal(b.data[i], (unsigned char)(i * 7));
    pb__wbuf_free(&b);

    unsigned char out[300];
    for (size_t i = 0; i < sizeof out; i++) out[i] = (unsigned char)(i ^ 0x5a);
    pb_result r = {.status = PB_STATUS_TASK_ERROR, .len = sizeof out, .heap = out, .message = "went wrong"};
    pb__wbuf enc = {0};
    long off = pb__wire_begin(&enc, PB_WIRE_RESULT, 0, 42);
    assert_int_equal(pb__wbuf_reserve(&enc, 4), 0);
    pb__wire_put_u32(&enc, 9);
    assert_int_equal(pb__wire_put_result(&enc, &r), 0);
    pb__wire_end(&enc, off, 1);
    unsigned char head[PB_WIRE_RESULT_HEAD];
    size_t msg;
    size_t frame = pb__wire_result_head(head, 42, 9, &r, &msg);
    assert_int_equal(frame, enc.len);
    assert_int_equal(msg, strlen("went wrong"));
    assert_memory_equal(head, enc.data, sizeof head);
    assert_memory_equal(enc.data + sizeof head, out, sizeof out);
    assert_memory_equal(enc.data + sizeof head + sizeof out, "went wrong", msg);
    pb__wbuf_free(&enc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wbuf_huge_and_result_head),
        cmocka_unit_test(test_result_roundtrip), cmocka_unit_test(test_header_rejects),
        cmocka_unit_test(test_truncations),      cmocka_unit_test(test_hostile_records),
        cmocka_unit_test(test_random_bytes),     cmocka_unit_test(test_request_gather_matches_encode),
        cmocka_unit_test(test_wbuf_unfork),
        cmocka_unit_test(test_output_block_whole_pages),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
