/*
 * test_shm.c - the shared-memory rings of the fork-shm and spawn-shm backends (impls/shm.c): frames round
 * trip in place through wraps and padding, frames larger than half the ring go through the overflow area
 * one at a time (also when written with pwritev on the memfd), two processes hand frames over with futex
 * wake-ups both ways, and the parent's frame reader turns every hostile ring (bad lengths, offsets and
 * positions, garbage, a frame longer than what was published) into an error without reading outside the
 * ring. The hostile rings sit right before a PROT_NONE page, so a read past the end would crash the test
 * even without ASan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "poolbench.h"
#include "shm.h"
#include "testutil.h"
#include "wire.h"

#define MAX_FRAME (256u * 1024u)
#define RING 4096u

/* Encodes a REQUEST-like frame whose body is `n` bytes of pattern `seed` into b. */
static void make_frame(pb__wbuf *b, uint64_t id, size_t n, unsigned seed) {
    b->len = 0;
    long off = pb__wire_begin(b, PB_WIRE_RESULT, 0, id);
    assert_true(off >= 0);
    assert_int_equal(pb__wbuf_reserve(b, n), 0);
    for (size_t i = 0; i < n; i++) b->data[b->len++] = (unsigned char)(seed + i * 7);
    pb__wire_end(b, off, (uint32_t)(n / 4 ? 1 : 0));
}

static void check_body(const unsigned char *body, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (body[i] != (unsigned char)(seed + i * 7)) fail_msg("body byte %zu differs", i);
}

/* Frames of many sizes, many times round a small ring: padding at the end, contents intact, in order. */
static void test_roundtrip_wraps(void **state) {
    (void)state;
    pb__shm_map m;
    int fd;
    char err[200];
    assert_int_equal(pb__shm_create(MAX_FRAME, RING, &m, &fd, err, sizeof err), 0);
    pb__shm_tx tx;
    pb__shm_rx rx;
    pb__shm_tx_init(&tx, &m, PB_SHM_RESULTS, -1);
    pb__shm_rx_init(&rx, &m, PB_SHM_RESULTS, MAX_FRAME, -1);
    pb__wbuf b = {0};
    size_t sizes[] = {0, 1, 7, 8, 100, 333, 1000, 1500, 2000 - 8 - PB_WIRE_HEADER};
    for (unsigned k = 0; k < 400; k++) {
        size_t n = sizes[k % (sizeof sizes / sizeof sizes[0])];
        make_frame(&b, k, n, k);
        int never;
        unsigned char *dst = pb__shm_reserve(&tx, b.len, &never);
        assert_non_null(dst);
        memcpy(dst, b.data, b.len);
        pb__shm_commit(&tx);
        assert_true(pb__shm_ready(&rx));
        pb__wire_header h;
        const unsigned char *body;
        const char *why = NULL;
        assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_GOT);
        assert_int_equal(h.id, k);
        assert_int_equal(h.body_len, n);
        check_body(body, n, k);
        /* asking again before the release gives the same frame */
        pb__wire_header h2;
        const unsigned char *body2;
        assert_int_equal(pb__shm_next(&rx, &h2, &body2, &why), PB_SHM_GOT);
        assert_ptr_equal(body, body2);
        pb__shm_release(&rx);
        assert_false(pb__shm_ready(&rx));
        assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_NONE);
    }
    /* several frames in flight at once, until the ring is full */
    int queued = 0;
    for (;;) {
        make_frame(&b, (uint64_t)queued, 300, (unsigned)queued);
        int never;
        unsigned char *dst = pb__shm_reserve(&tx, b.len, &never);
        if (!dst) break;
        memcpy(dst, b.data, b.len);
        pb__shm_commit(&tx);
        queued++;
    }
    assert_true(queued >= 5);
    for (int i = 0; i < queued; i++) {
        pb__wire_header h;
        const unsigned char *body;
        const char *why = NULL;
        assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_GOT);
        assert_int_equal(h.id, (uint64_t)i);
        check_body(body, 300, (unsigned)i);
        pb__shm_release(&rx);
    }
    pb__wbuf_free(&b);
    pb__shm_unmap(&m);
    close(fd);
}

/* A fresh mapping with a producer and a consumer on its request ring. */
static void open_requests(pb__shm_map *m, int *fd, pb__shm_tx *tx, pb__shm_rx *rx) {
    char err[200];
    assert_int_equal(pb__shm_create(MAX_FRAME, RING, m, fd, err, sizeof err), 0);
    pb__shm_tx_init(tx, m, PB_SHM_REQUESTS, -1);
    pb__shm_rx_init(rx, m, PB_SHM_REQUESTS, MAX_FRAME, -1);
}

/* A frame over half the ring goes through the overflow area; a second one waits until the first is
 * released; one larger than the overflow area can never be sent. */
static void test_overflow_area(void **state) {
    (void)state;
    pb__shm_map m;
    int fd;
    pb__shm_tx tx;
    pb__shm_rx rx;
    open_requests(&m, &fd, &tx, &rx);
    pb__wbuf b = {0};
    make_frame(&b, 1, 100000, 3);
    int never;
    unsigned char *dst = pb__shm_reserve(&tx, b.len, &never);
    assert_non_null(dst);
    assert_true(dst >= m.base + PB_SHM_CONTROL + 2 * RING); /* not in a ring */
    memcpy(dst, b.data, b.len);
    pb__shm_commit(&tx);
    assert_null(pb__shm_reserve(&tx, b.len, &never)); /* the area is busy */
    assert_int_equal(never, 0);
    pb__wire_header h;
    const unsigned char *body;
    const char *why = NULL;
    assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_GOT);
    assert_int_equal(h.body_len, 100000);
    check_body(body, 100000, 3);
    pb__shm_release(&rx);
    assert_non_null(pb__shm_reserve(&tx, b.len, &never)); /* free again */
    assert_null(pb__shm_reserve(&tx, m.ovf_cap + 1, &never));
    assert_int_equal(never, 1);
    pb__wbuf_free(&b);
    pb__shm_unmap(&m);
    close(fd);
}

/* A frame for the overflow area written with pwritev on the memfd (pb__shm_put_gather), as the parent
 * writes large requests: the consumer reads it through its mapping as if it had been written in place,
 * or with pread into a private copy as the parent reads large results (pb__shm_rx_copy_out);
 * while it holds the area a second one waits (0); a frame that fits the ring, too many pieces or no fd
 * are not this path's (0), and one larger than the area never fits. */
static void test_put_gather(void **state) {
    (void)state;
    pb__shm_map m;
    int fd;
    pb__shm_tx tx;
    pb__shm_rx rx;
    open_requests(&m, &fd, &tx, &rx);
    pb__wbuf b = {0};
    make_frame(&b, 4, 100000, 9);
    /* the same frame in three pieces, cut anywhere */
    struct iovec iov[3] = {{b.data, 10}, {b.data + 10, 50000}, {b.data + 50010, b.len - 50010}};
    int never;
    assert_int_equal(pb__shm_put_gather(&tx, fd, iov, 3, b.len, &never), 1);
    assert_int_equal(pb__shm_put_gather(&tx, fd, iov, 3, b.len, &never), 0); /* the area is busy */
    assert_int_equal(never, 0);
    pb__wire_header h;
    const unsigned char *body;
    const char *why = NULL;
    assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_GOT);
    assert_int_equal(h.id, 4);
    assert_int_equal(h.body_len, 100000);
    check_body(body, 100000, 9);
    pb__shm_release(&rx);
    /* the parent's reader: the same frame copied out with pread, the copy held until release */
    pb__shm_rx_copy_out(&rx, fd, 0);
    assert_int_equal(pb__shm_put_gather(&tx, fd, iov, 3, b.len, &never), 1);
    assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_GOT);
    assert_non_null(rx.copy);
    assert_true(body < m.base || body >= m.base + m.size); /* not in the mapping */
    check_body(body, 100000, 9);
    const unsigned char *again;
    assert_int_equal(pb__shm_next(&rx, &h, &again, &why), PB_SHM_GOT); /* no release: the same frame */
    assert_ptr_equal(again, body);
    pb__shm_release(&rx);
    assert_null(rx.copy);
    /* a worker's reader: copies go to one buffer of its own, the same one frame after frame, outside the
     * mapping, kept after release and freed by pb__shm_rx_free */
    pb__shm_rx_copy_out(&rx, fd, 1);
    const unsigned char *first = NULL;
    for (int round = 0; round < 3; round++) {
        rx.rent = (pb__shm_rent){0}; /* never bought here, however slow the copies (test_rent_or_buy) */
        assert_int_equal(pb__shm_put_gather(&tx, fd, iov, 3, b.len, &never), 1);
        assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_GOT);
        assert_ptr_equal(rx.copy, rx.own);
        assert_true(body < m.base || body >= m.base + m.size);
        check_body(body, 100000, 9);
        if (round == 0) first = body;
        assert_ptr_equal(body, first);
        pb__shm_release(&rx);
        assert_null(rx.copy);
        assert_non_null(rx.own);
        assert_true(rx.own_cap >= b.len);
    }
    pb__shm_rx_free(&rx);
    assert_null(rx.own);
    pb__shm_rx_copy_out(&rx, -1, 0);
    assert_int_equal(pb__shm_put_gather(&tx, -1, iov, 3, b.len, &never), 0);              /* no fd */
    assert_int_equal(pb__shm_put_gather(&tx, fd, iov, PB_SHM_GATHER_MAX + 1, b.len, &never), 0); /* pieces */
    struct iovec one = {b.data, 100};
    assert_int_equal(pb__shm_put_gather(&tx, fd, &one, 1, 100, &never), 0); /* fits the ring */
    assert_true(pb__shm_put_gather(&tx, fd, iov, 3, m.ovf_cap + 1, &never) < 0);
    assert_int_equal(never, 1);
    assert_int_equal(pb__shm_ready(&rx), 0); /* nothing of the refused ones was published */
    pb__wbuf_free(&b);
    pb__shm_unmap(&m);
    close(fd);
}

/* Pulled requests (pb__shm_put_pull): a gather list goes into the ring as a PB_SHM_PULL record, small pieces
 * inline and large ones by address, and a reader that probed the producer's memory (here the test's own
 * process: process_vm_readv may read itself) assembles the very frame in its own buffer. A reader that did
 * not probe refuses the record (the parent's reader never probes: a worker cannot make it read anywhere);
 * a list that does not add up and a piece that cannot be read are errors, not reads out of bounds. */
static void test_pull(void **state) {
    (void)state;
    pb__shm_map m;
    int fd;
    pb__shm_tx tx;
    pb__shm_rx rx;
    open_requests(&m, &fd, &tx, &rx);
    pb__wbuf b = {0};
    make_frame(&b, 6, 200000, 5);
    /* a small head, a large piece, a small piece, a large piece */
    struct iovec iov[4] = {{b.data, 30}, {b.data + 30, 90000}, {b.data + 90030, 100}, {b.data + 90130, b.len - 90130}};
    pb__wire_header h;
    const unsigned char *body;
    const char *why = NULL;

    pb__shm_pull_offer(&m);
    assert_int_equal(pb__shm_pull_ok(&m), 0);
    assert_int_equal(pb__shm_put_pull(&tx, iov, 4, b.len), 1);
    assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_ERROR); /* no probe: refused */
    assert_non_null(strstr(why, "pull record"));

    pb__shm_unmap(&m);
    close(fd);
    open_requests(&m, &fd, &tx, &rx); /* a fresh ring */
    pb__shm_rx_copy_out(&rx, -1, 1);
    pb__shm_pull_offer(&m);
    assert_int_equal(pb__shm_pull_probe(&rx, &m), 1);
    assert_int_equal(pb__shm_pull_ok(&m), 1);
    assert_int_equal(rx.pull_pid, getpid());
    for (int round = 0; round < 3; round++) {
        assert_int_equal(pb__shm_put_pull(&tx, iov, 4, b.len), 1);
        assert_int_equal(atomic_load(&m.ctl->req.ovf_busy), 0); /* the record is in the ring itself */
        assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_GOT);
        assert_int_equal(h.id, 6);
        assert_int_equal(h.body_len, 200000);
        assert_ptr_equal(rx.copy, rx.own); /* assembled in the reader's own buffer */
        check_body(body, 200000, 5);
        pb__shm_release(&rx);
    }
    assert_int_equal(pb__shm_put_pull(&tx, iov, 4, b.len + 1), 0);                /* does not add up */
    assert_int_equal(pb__shm_put_pull(&tx, iov, PB_SHM_GATHER_MAX + 1, b.len), 0); /* too many pieces */
    assert_int_equal(pb__shm_ready(&rx), 0);

    /* a large piece the producer's memory no longer has: an error for this frame, nothing read */
    unsigned char *gone = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(gone != MAP_FAILED);
    struct iovec lost[2] = {{b.data, PB_WIRE_HEADER}, {gone, 65536}};
    uint32_t body32 = 65536;
    memcpy(b.data + 8, &body32, 4); /* a header that agrees with the pieces */
    assert_int_equal(pb__shm_put_pull(&tx, lost, 2, PB_WIRE_HEADER + 65536), 1);
    munmap(gone, 65536);
    assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_ERROR);
    assert_non_null(strstr(why, "process_vm_readv"));

    /* a list whose lengths do not add up (a record written by hand) */
    pb__shm_rx_free(&rx);
    pb__shm_unmap(&m);
    close(fd);
    open_requests(&m, &fd, &tx, &rx);
    pb__shm_pull_offer(&m);
    assert_int_equal(pb__shm_pull_probe(&rx, &m), 1);
    int never;
    unsigned char *dst = pb__shm_reserve(&tx, 8 + 16, &never);
    assert_non_null(dst);
    uint32_t head[2] = {1000, 1};
    uint64_t addr = (uint64_t)(uintptr_t)b.data;
    uint32_t piece[2] = {999, 0};
    memcpy(dst, head, 8);
    memcpy(dst + 8, &addr, 8);
    memcpy(dst + 16, piece, 8);
    tx.res_pull = 1;
    pb__shm_commit(&tx);
    assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_ERROR);
    assert_non_null(strstr(why, "malformed pull list"));
    pb__shm_rx_free(&rx);
    pb__wbuf_free(&b);
    pb__shm_unmap(&m);
    close(fd);
}

/* Rent or buy (shm.h): a frame is copied by the kernel until those copies have cost PB_SHM_BUY_NS_PER_BYTE
 * per byte of it, then through the mapping (and every frame up to that size after it); a larger frame rents
 * again until the time covers it; a frame over 4 MiB (given back after use) always rents. Then the reader:
 * once its rent is paid, a large frame is read in place, no private copy. */
static void test_rent_or_buy(void **state) {
    (void)state;
    pb__shm_rent r = {0};
    size_t mib = 1u << 20;
    assert_int_equal(pb__shm_rents(&r, mib), 1);
    pb__shm_rent_paid(&r, (uint64_t)PB_SHM_BUY_NS_PER_BYTE * mib - 1);
    assert_int_equal(pb__shm_rents(&r, mib), 1); /* one nanosecond short */
    pb__shm_rent_paid(&r, 1);
    assert_int_equal(pb__shm_rents(&r, mib), 0); /* bought */
    assert_int_equal(r.bought, mib);
    assert_int_equal(pb__shm_rents(&r, mib / 2), 0);
    assert_int_equal(pb__shm_rents(&r, 2 * mib), 1); /* larger: not paid for yet */
    pb__shm_rent_paid(&r, (uint64_t)PB_SHM_BUY_NS_PER_BYTE * mib);
    assert_int_equal(pb__shm_rents(&r, 2 * mib), 0);
    pb__shm_rent_paid(&r, UINT64_C(1) << 50);
    assert_int_equal(pb__shm_rents(&r, 5 * mib), 1); /* over 4 MiB: always */

    pb__shm_map m;
    int fd;
    pb__shm_tx tx;
    pb__shm_rx rx;
    open_requests(&m, &fd, &tx, &rx);
    pb__wbuf b = {0};
    make_frame(&b, 7, 100000, 3);
    struct iovec iov = {b.data, b.len};
    int never;
    pb__shm_rx_copy_out(&rx, fd, 0);
    pb__wire_header h;
    const unsigned char *body;
    const char *why = NULL;
    for (int round = 0; round < 2; round++) {
        if (round == 1) pb__shm_rent_paid(&rx.rent, (uint64_t)PB_SHM_BUY_NS_PER_BYTE * b.len); /* paid */
        assert_int_equal(pb__shm_put_gather(&tx, fd, &iov, 1, b.len, &never), 1);
        assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_GOT);
        check_body(body, 100000, 3);
        int in_mapping = body >= m.base && body < m.base + m.size;
        assert_int_equal(in_mapping, round == 1); /* a private copy first, in place once bought */
        assert_int_equal(rx.copy == NULL, round == 1);
        pb__shm_release(&rx);
    }
    assert_true(tx.rent.spent_ns > 0); /* the writer's copies were timed too */
    pb__wbuf_free(&b);
    pb__shm_rx_free(&rx);
    pb__shm_unmap(&m);
    close(fd);
}

/* The parent's split read of a large RESULT (pb__shm_rx_split_results): a frame of one record, written as
 * a worker writes it (head, output, message with pwritev), comes back as its head's 12 body bytes with
 * the output and message in a block of their own, which the decoded result takes as its heap (no copy);
 * a frame that is not such a record (two records; a head whose lengths do not add up) is copied whole as
 * before, and the decoder still judges it. */
static void test_split_results(void **state) {
    (void)state;
    pb__shm_map m;
    int fd;
    pb__shm_tx tx;
    pb__shm_rx rx;
    open_requests(&m, &fd, &tx, &rx);
    pb__shm_rx_copy_out(&rx, fd, 0);
    pb__shm_rx_split_results(&rx);
    enum { OUT = 200000 };
    unsigned char *out = malloc(OUT);
    assert_non_null(out);
    for (size_t i = 0; i < OUT; i++) out[i] = (unsigned char)(i * 13 + 1);
    for (int with_msg = 0; with_msg < 2; with_msg++) {
        pb_result sent = {.status = with_msg ? PB_STATUS_TASK_ERROR : PB_STATUS_OK, .len = OUT, .heap = out,
                          .message = with_msg ? "it went wrong" : NULL};
        unsigned char head[PB_WIRE_RESULT_HEAD];
        size_t msg;
        size_t frame = pb__wire_result_head(head, 5, 77, &sent, &msg);
        struct iovec iov[3] = {{head, sizeof head}, {out, OUT}, {sent.message, msg}};
        int never;
        rx.rent = (pb__shm_rent){0}; /* copied, never bought here, however slow the copies */
        assert_int_equal(pb__shm_put_gather(&tx, fd, iov, msg ? 3 : 2, frame, &never), 1);
        pb__wire_header h;
        const unsigned char *body;
        const char *why = NULL;
        assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_GOT);
        assert_non_null(rx.split);
        assert_null(rx.copy);
        assert_ptr_equal(body, rx.split_head + PB_WIRE_HEADER);
        assert_int_equal(h.body_len, frame - PB_WIRE_HEADER);
        /* the reader the transport builds over it (transport.c, shm_next) */
        pb__wire_reader rd;
        pb__wire_reader_init(&rd, body, PB_WIRE_RESULT_HEAD - PB_WIRE_HEADER);
        rd.next = rx.split;
        rd.next_end = rx.split + rx.split_len;
        rd.adopt = rx.split;
        unsigned char *block = rx.split;
        assert_int_equal(pb__wire_get_u32(&rd), 77);
        pb_result got = {0};
        assert_int_equal(pb__wire_get_result(&rd, 1u << 20, &got), 0);
        assert_ptr_equal(got.heap, block); /* adopted, not copied */
        assert_null(rd.adopt);
        assert_true(rd.p == rd.end && !rd.next && !rd.err);
        assert_int_equal(got.len, OUT);
        assert_memory_equal(pb_result_data(&got), out, OUT);
        if (with_msg) assert_string_equal(got.message, "it went wrong");
        pb__shm_rx_split_taken(&rx);
        pb__shm_release(&rx);
        assert_null(rx.split);
        pb_result_clear(&got);
    }
    /* not one record: copied whole */
    pb__wbuf b = {0};
    make_frame(&b, 8, 200000, 2); /* count 1, but its "record head" is pattern bytes that do not add up */
    struct iovec one = {b.data, b.len};
    int never;
    rx.rent = (pb__shm_rent){0};
    assert_int_equal(pb__shm_put_gather(&tx, fd, &one, 1, b.len, &never), 1);
    pb__wire_header h;
    const unsigned char *body;
    const char *why = NULL;
    assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_GOT);
    assert_null(rx.split);
    assert_non_null(rx.copy);
    check_body(body, 200000, 2);
    pb__shm_release(&rx);
    pb__wbuf_free(&b);
    free(out);
    pb__shm_rx_free(&rx);
    pb__shm_unmap(&m);
    close(fd);
}

/* Two processes: the parent sends 2000 frames (some through the overflow area) with pb__shm_send, which
 * waits for room on the futex; the child attaches to the memfd, checks each and answers with the sum
 * of its bytes, sleeping on the futex between frames; then the parent closes the request ring. */
static void test_two_processes(void **state) {
    (void)state;
    pb__shm_map m;
    int fd;
    char err[200];
    assert_int_equal(pb__shm_create(MAX_FRAME, RING, &m, &fd, err, sizeof err), 0);
    enum { N = 2000 };
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pb__shm_map cm;
        if (pb__shm_attach(fd, &cm) != 0) _exit(3);
        pb__shm_rx rx;
        pb__shm_tx tx;
        pb__shm_rx_init(&rx, &cm, PB_SHM_REQUESTS, SIZE_MAX, -1);
        pb__shm_tx_init(&tx, &cm, PB_SHM_RESULTS, -1);
        pb__wbuf out = {0};
        unsigned spin = 0;
        int got = 0;
        for (;;) {
            pb__wire_header h;
            const unsigned char *body;
            const char *why;
            uint32_t head = atomic_load(&rx.c->head);
            int r = pb__shm_next(&rx, &h, &body, &why);
            if (r == PB_SHM_ERROR) {
                fprintf(stderr, "child: %s\n", why);
                _exit(4);
            }
            if (r == PB_SHM_END_OF_STREAM) break;
            if (r == PB_SHM_NONE) {
                pb__shm_wait(&rx.c->head, &rx.c->head_waiters, head, -1, &spin);
                continue;
            }
            uint64_t sum = 0;
            for (uint32_t i = 0; i < h.body_len; i++) sum += body[i];
            pb__shm_release(&rx);
            out.len = 0;
            long off = pb__wire_begin(&out, PB_WIRE_RESULT, 0, h.id);
            pb__wbuf_reserve(&out, 8);
            pb__wire_put_u64(&out, sum);
            pb__wire_end(&out, off, 1);
            if (pb__shm_send(&tx, out.data, out.len, 1) != (long)out.len) _exit(5);
            got++;
        }
        _exit(got == N ? 0 : 6);
    }
    pb__shm_tx tx;
    pb__shm_rx rx;
    pb__shm_tx_init(&tx, &m, PB_SHM_REQUESTS, -1);
    pb__shm_rx_init(&rx, &m, PB_SHM_RESULTS, MAX_FRAME, -1);
    pb__wbuf b = {0};
    unsigned spin = 0;
    for (unsigned k = 0; k < N; k++) {
        size_t n = k % 97 == 0 ? 5000 : k % 13;
        make_frame(&b, k, n, k);
        uint64_t want = 0;
        for (size_t i = 0; i < n; i++) want += (unsigned char)(k + i * 7);
        assert_int_equal(pb__shm_send(&tx, b.data, b.len, 1), (long)b.len);
        for (;;) {
            pb__wire_header h;
            const unsigned char *body;
            const char *why = NULL;
            uint32_t head = atomic_load(&rx.c->head);
            int r = pb__shm_next(&rx, &h, &body, &why);
            assert_int_not_equal(r, PB_SHM_ERROR);
            if (r == PB_SHM_NONE) {
                /* never wait forever for a child that died: look at it now and then */
                if (!pb__shm_wait(&rx.c->head, &rx.c->head_waiters, head, 0.5, &spin)) {
                    int st;
                    if (waitpid(pid, &st, WNOHANG) == pid) fail_msg("the child ended early (status 0x%x)", st);
                }
                continue;
            }
            assert_int_equal(h.id, k);
            assert_int_equal(h.body_len, 8);
            uint64_t sum;
            memcpy(&sum, body, 8);
            assert_int_equal(sum, want);
            pb__shm_release(&rx);
            break;
        }
    }
    pb__shm_close(&tx);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* a wait on a word that never moves times out */
    assert_int_equal(pb__shm_wait(&rx.c->head, &rx.c->head_waiters, atomic_load(&rx.c->head), 0.01, &spin), 0);
    pb__wbuf_free(&b);
    pb__shm_unmap(&m);
    close(fd);
}

/* A ring of `cap` bytes that ends right before an inaccessible page. */
typedef struct guarded {
    unsigned char *map;
    unsigned char *ring;
    size_t total;
} guarded;

static guarded guarded_ring(uint32_t cap) {
    guarded g;
    size_t pages = (cap + 4095) / 4096;
    g.total = (pages + 1) * 4096;
    g.map = mmap(NULL, g.total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect(g.map + pages * 4096, 4096, PROT_NONE), 0);
    g.ring = g.map + pages * 4096 - cap;
    return g;
}

static void put_rec(unsigned char *ring, uint32_t pos, uint32_t len, uint32_t kind) {
    memcpy(ring + pos, &len, 4);
    memcpy(ring + pos + 4, &kind, 4);
}

static int parse(const unsigned char *ring, uint32_t tail, uint32_t head, pb__shm_found *f, const char **why) {
    *why = NULL;
    return pb__shm_parse(ring, RING, tail, head, 8192, MAX_FRAME, f, why);
}

/* What a worker could write: every bad length, offset or position is an error with a reason. */
static void test_hostile_rings(void **state) {
    (void)state;
    guarded g = guarded_ring(RING);
    unsigned char *ring = g.ring;
    pb__shm_found f;
    const char *why;
    memset(ring, 0, RING);

    assert_int_equal(parse(ring, 0, 0, &f, &why), PB_SHM_NONE);
    assert_int_equal(parse(ring, 0, RING + 8, &f, &why), PB_SHM_ERROR); /* head too far ahead */
    assert_non_null(why);
    assert_int_equal(parse(ring, 64, 0, &f, &why), PB_SHM_ERROR); /* head behind tail */
    assert_int_equal(parse(ring, 0, 12, &f, &why), PB_SHM_ERROR);  /* unaligned */
    assert_int_equal(parse(ring, 0, 8, &f, &why), PB_SHM_ERROR);   /* kind 0 */

    put_rec(ring, 0, 16, PB_SHM_FRAME); /* shorter than a frame header */
    assert_int_equal(parse(ring, 0, 32, &f, &why), PB_SHM_ERROR);
    put_rec(ring, 0, MAX_FRAME + 1, PB_SHM_FRAME); /* over the frame limit */
    assert_int_equal(parse(ring, 0, RING, &f, &why), PB_SHM_ERROR);
    put_rec(ring, 0, 0xFFFFFFFFu, PB_SHM_FRAME); /* rounding must not wrap */
    assert_int_equal(parse(ring, 0, RING, &f, &why), PB_SHM_ERROR);
    put_rec(ring, 0, 100, PB_SHM_FRAME); /* longer than what was published */
    assert_int_equal(parse(ring, 0, 64, &f, &why), PB_SHM_ERROR);
    put_rec(ring, 4000, 200, PB_SHM_FRAME); /* runs past the end of the ring */
    assert_int_equal(parse(ring, 4000, 4000 + 1000, &f, &why), PB_SHM_ERROR);
    put_rec(ring, 0, 0, PB_SHM_PAD); /* padding at the start would skip the whole ring */
    assert_int_equal(parse(ring, 0, RING, &f, &why), PB_SHM_ERROR);
    put_rec(ring, 4000, 0, PB_SHM_PAD); /* padding longer than published */
    assert_int_equal(parse(ring, 4000, 4000 + 16, &f, &why), PB_SHM_ERROR);
    put_rec(ring, 4000, 0, PB_SHM_PAD); /* padding, then padding again */
    put_rec(ring, 0, 0, PB_SHM_PAD);
    assert_int_equal(parse(ring, 4000, 4000 + 200, &f, &why), PB_SHM_ERROR);
    put_rec(ring, 0, 9000, PB_SHM_BIG); /* larger than the overflow area */
    assert_int_equal(parse(ring, 0, 8, &f, &why), PB_SHM_ERROR);

    /* the good cases the same code accepts */
    put_rec(ring, 0, 40, PB_SHM_FRAME);
    assert_int_equal(parse(ring, 0, 56, &f, &why), PB_SHM_GOT);
    assert_int_equal(f.off, 8);
    assert_int_equal(f.len, 40);
    assert_int_equal(f.advance, 48);
    put_rec(ring, 4080, 0, PB_SHM_PAD);
    put_rec(ring, 0, 24, PB_SHM_FRAME);
    assert_int_equal(parse(ring, 4080, 4080 + 16 + 32, &f, &why), PB_SHM_GOT);
    assert_int_equal(f.off, 8);
    assert_int_equal(f.advance, 48);
    put_rec(ring, 0, 5000, PB_SHM_BIG);
    assert_int_equal(parse(ring, 0, 8, &f, &why), PB_SHM_GOT);
    assert_true(f.in_ovf);
    munmap(g.map, g.total);
}

/* pb__shm_next over a mapping a worker filled with garbage, or with a record whose frame header
 * disagrees with it: errors, never a crash. */
static void test_next_rejects(void **state) {
    (void)state;
    pb__shm_map m;
    int fd;
    char err[200];
    assert_int_equal(pb__shm_create(MAX_FRAME, RING, &m, &fd, err, sizeof err), 0);
    pb__shm_rx rx;
    pb__shm_rx_init(&rx, &m, PB_SHM_RESULTS, MAX_FRAME, -1);
    pb__shm_tx tx;
    pb__shm_tx_init(&tx, &m, PB_SHM_RESULTS, -1);
    pb__wbuf b = {0};
    make_frame(&b, 9, 50, 1);
    int never;
    unsigned char *dst = pb__shm_reserve(&tx, b.len, &never);
    memcpy(dst, b.data, b.len);
    uint32_t lie = 5000; /* the frame header claims a body longer than its record */
    memcpy(dst + 8, &lie, 4);
    pb__shm_commit(&tx);
    pb__wire_header h;
    const unsigned char *body;
    const char *why = NULL;
    assert_int_equal(pb__shm_next(&rx, &h, &body, &why), PB_SHM_ERROR);
    assert_non_null(why);

    /* a ring full of garbage and a random head */
    srand(7);
    unsigned char *ring = m.base + PB_SHM_CONTROL + RING;
    for (int round = 0; round < 2000; round++) {
        for (uint32_t i = 0; i < RING; i++) ring[i] = (unsigned char)rand();
        if (round % 3 == 0) put_rec(ring, 0, (uint32_t)(rand() % 600), 1 + rand() % 3);
        pb__shm_rx_init(&rx, &m, PB_SHM_RESULTS, MAX_FRAME, -1);
        atomic_store(&m.ctl->res.head, (uint32_t)(rand() % 2 ? rand() : (rand() % 1024) * 8));
        int r = pb__shm_next(&rx, &h, &body, &why);
        if (r == PB_SHM_GOT) {
            const unsigned char *lo = m.base + PB_SHM_CONTROL + RING, *ovf = m.base + PB_SHM_CONTROL + 2 * RING + m.ovf_cap;
            int in_ring = body >= lo && body + h.body_len <= lo + RING;
            int in_ovf = body >= ovf && body + h.body_len <= ovf + m.ovf_cap;
            assert_true(in_ring || in_ovf);
        }
    }
    pb__wbuf_free(&b);
    pb__shm_unmap(&m);
    close(fd);
}

/* ---- a spawn-shm pool pulls, in a process that never forked ----
 * Run in a fresh process (this program again, with --pull-child): cmocka's process has forked for other
 * tests, and a process that forked never offers pulls (transport.c). The child maps large items over
 * spawn-shm twice, before and after a fork of its own, and checks every output. */
#define PULL_ITEM (600u * 1024u)
static int reverse_task(const void *in, size_t len, pb_output *out) {
    unsigned char *o = pb_output_alloc(out, len);
    if (!o) return pb_output_error(out, "no memory");
    for (size_t i = 0; i < len; i++) o[i] = ((const unsigned char *)in)[len - 1 - i];
    return 0;
}
PB_TASK_DEFINE("shmtest.reverse", reverse_task)

static int map_large_items(pb_pool *pool, unsigned seed) {
    enum { N = 8 };
    unsigned char *buf = malloc((size_t)N * PULL_ITEM);
    if (!buf) return -1;
    pb_item items[N];
    for (size_t i = 0; i < (size_t)N * PULL_ITEM; i++) buf[i] = (unsigned char)(seed + i * 13 + i / 4093);
    for (int i = 0; i < N; i++) items[i] = (pb_item){buf + (size_t)i * PULL_ITEM, PULL_ITEM};
    pb_result res[N];
    int bad = pb_map(pool, "shmtest.reverse", items, N, 1, res) != 0;
    for (int i = 0; i < N && !bad; i++) {
        const unsigned char *o = pb_result_data(&res[i]);
        bad = res[i].status != PB_STATUS_OK || res[i].len != PULL_ITEM;
        const unsigned char *in = items[i].data;
        for (size_t k = 0; k < PULL_ITEM && !bad; k++) bad = o[k] != in[PULL_ITEM - 1 - k];
    }
    pb_results_clear(res, N);
    free(buf);
    return bad ? -1 : 0;
}

static int pull_child(void) {
    pb_options o;
    pb_options_init(&o);
    o.workers = 2;
    o.start = PB_START_EAGER;
    pb_pool *pool = NULL;
    if (pb_pool_create(&pool, "spawn-shm", &o) != 0) return 10;
    int rc = 0;
    for (int round = 0; round < 3 && rc == 0; round++) rc = map_large_items(pool, (unsigned)round) ? 11 : 0;
    unsigned long pulled = pb__shm_pulls_published();
    pid_t child = fork(); /* from now on the caller's pages may be shared copy-on-write: no more pulls */
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    if (rc == 0) rc = map_large_items(pool, 7) ? 12 : 0;
    unsigned long after = pb__shm_pulls_published();
    pb_pool_destroy(pool);
    printf("pulled %lu requests before the fork, %lu after\n", pulled, after - pulled);
    if (rc == 0 && pulled == 0) rc = 13;
    if (rc == 0 && after != pulled) rc = 14;
    return rc;
}

static void test_pool_pulls_until_fork(void **state) {
    (void)state;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    char *argv[] = {exe, "--pull-child", NULL};
    pid_t pid;
    extern char **environ;
    assert_int_equal(posix_spawn(&pid, exe, NULL, NULL, argv, environ), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    switch (WEXITSTATUS(st)) {
    case 0: break;
    case 13: fail_msg("no request was pulled (did the workers' probe fail? Yama ptrace_scope 1 forbids it)");
    case 14: fail_msg("requests were pulled after the process forked");
    default: fail_msg("the pool failed in the child (exit %d)", WEXITSTATUS(st));
    }
}

/* Lines of /proc/PID/maps that map a worker's shared memory (a memfd named poolbench-shm). */
static int shm_mappings_of(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "poolbench-shm")) n++;
    fclose(f);
    return n;
}

/* Each fork-shm worker maps its own shared memory and no other worker's: the parent's mappings are
 * MADV_DONTFORK, so a worker forked after others inherits none of theirs (it could otherwise scribble on
 * their requests), and neither does any other child of the program (here: a plain fork). */
static void test_workers_map_only_their_own(void **state) {
    (void)state;
    pb_options o;
    pb_options_init(&o);
    o.workers = 3;
    o.start = PB_START_EAGER;
    pb_pool *pool = NULL;
    assert_int_equal(pb_pool_create(&pool, "fork-shm", &o), 0);
    assert_int_equal(shm_mappings_of(getpid()), 3);
    pid_t pids[16];
    int n = tu_list_children(pids, 16, 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < n; i++)
        if (shm_mappings_of(pids[i]) != 1)
            fail_msg("worker %d maps %d shared-memory areas, not its own one", (int)pids[i], shm_mappings_of(pids[i]));
    int hold[2];
    assert_int_equal(pipe(hold), 0);
    pid_t other = fork();
    if (other == 0) {
        char c;
        close(hold[1]);
        (void)read(hold[0], &c, 1); /* until the test has looked */
        _exit(0);
    }
    assert_true(other > 0);
    close(hold[0]);
    assert_int_equal(shm_mappings_of(other), 0);
    close(hold[1]);
    assert_int_equal(waitpid(other, NULL, 0), other);
    pb_pool_destroy(pool);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--pull-child") == 0) return pull_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_wraps), cmocka_unit_test(test_overflow_area),
        cmocka_unit_test(test_two_processes),   cmocka_unit_test(test_hostile_rings),
        cmocka_unit_test(test_next_rejects),    cmocka_unit_test(test_put_gather),
        cmocka_unit_test(test_rent_or_buy),      cmocka_unit_test(test_split_results),
        cmocka_unit_test(test_pull),            cmocka_unit_test(test_pool_pulls_until_fork),
        cmocka_unit_test(test_workers_map_only_their_own),
    };
    return cmocka_run_group_tests_name("shm", tests, NULL, NULL);
}
