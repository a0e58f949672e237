/*
 * fuzz_shm.c - libFuzzer target for the parent's shared-memory frame reader (impls/shm.c): what a hostile
 * or half-dead worker can leave in a result ring.
 *
 * Input: u32 tail (rounded down to a multiple of 8, as the parent's own copy always is), u32 head (as the
 * worker wrote it, unchecked), u8 ring-size selector, then the bytes of the ring and, after them, of the
 * overflow area. The ring and the overflow area are separate heap blocks of exactly their sizes, so ASan
 * reports a read one byte past either. The target runs the reader twice: pb__shm_parse alone, and
 * pb__shm_next on a consumer built over those blocks, then decodes every RESULT record of a frame it
 * returns the way procpool.c does (pb__wire_get_result with a small max_item_bytes) and releases it.
 * Invariants: a frame found lies inside its block; its header agrees with its record; a release moves
 * the tail by exactly what the reader said. A bit of the selector byte puts the overflow area in a memfd
 * too and reads it as the parent does (pread copies, large RESULTs split with their output adopted:
 * pb__shm_rx_split_results), with the two-piece reader transport.c builds. A PB_SHM_PULL record is an
 * error to the parent's reader; another bit makes the reader a worker's that may pull (from this process
 * itself), so that pull lists with any lengths and addresses are checked too.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "poolbench.h"
#include "shm.h"
#include "wire.h"

#define MAX_ITEM 1024u

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "fuzz_shm.c:%d: invariant broken: %s\n", __LINE__, #c); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 9) return 0;
    uint32_t tail, head;
    memcpy(&tail, data, 4);
    memcpy(&head, data + 4, 4);
    tail &= ~7u;
    static const uint32_t caps[] = {64, 256, 1024, 4096};
    uint32_t cap = caps[data[8] % 4];
    size_t ovf_cap = (data[8] >> 2) % 2 ? 512 : 4096;
    int use_fd = (data[8] >> 3) & 1;
    int may_pull = (data[8] >> 4) & 1;
    data += 9;
    size -= 9;

    unsigned char *ring = calloc(1, cap);
    unsigned char *ovf = calloc(1, ovf_cap);
    pb__shm_ring_ctl *ctl = calloc(1, sizeof *ctl);
    CHECK(ring && ovf && ctl);
    size_t n = size < cap ? size : cap;
    memcpy(ring, data, n);
    if (size > n) memcpy(ovf, data + n, size - n < ovf_cap ? size - n : ovf_cap);
    size_t max_frame = pb__wire_max_frame(MAX_ITEM);

    pb__shm_found f;
    const char *why = NULL;
    int r = pb__shm_parse(ring, cap, tail, head, ovf_cap, max_frame, &f, &why);
    CHECK(r == PB_SHM_GOT || r == PB_SHM_NONE || r == PB_SHM_END_OF_STREAM || (r == PB_SHM_ERROR && why));
    if (r == PB_SHM_GOT && f.pull) { /* a pull list, not a frame: only its own bytes are bounded here */
        CHECK(f.len >= 8 && !f.in_ovf && f.off + f.len <= cap);
        CHECK(f.advance <= head - tail);
    } else if (r == PB_SHM_GOT) {
        CHECK(f.len >= PB_WIRE_HEADER && f.len <= max_frame);
        CHECK(f.in_ovf ? f.len <= ovf_cap : f.off + f.len <= cap);
        CHECK(f.advance <= head - tail);
    }
    int first_is_pull = r == PB_SHM_GOT && f.pull;

    pb__shm_rx rx;
    memset(&rx, 0, sizeof rx);
    rx.c = ctl;
    rx.ring = ring;
    rx.ovf = rx.ovf_w = ovf;
    rx.cap = cap;
    rx.ovf_cap = ovf_cap;
    rx.max_frame = max_frame;
    rx.tail = tail;
    rx.doorbell_fd = -1;
    rx.copy_fd = -1; /* frames read in place: the mapping is all there is here */
    int fd = -1;
    if (use_fd) { /* ... or the parent's way: pread from the memfd, results split */
        fd = memfd_create("fuzz_shm", MFD_CLOEXEC);
        CHECK(fd >= 0 && pwrite(fd, ovf, ovf_cap, 0) == (ssize_t)ovf_cap);
        pb__shm_rx_copy_out(&rx, fd, 0);
        pb__shm_rx_split_results(&rx);
    }
    /* A bit of the selector makes this a worker's reader that may pull (from this very process: a list's
     * addresses are then read here, and must never make the reader write past its own buffer). */
    if (may_pull) rx.pull_pid = getpid();
    atomic_store(&ctl->head, head);
    atomic_store(&ctl->tail, tail);
    for (int round = 0; round < 4; round++) {
        pb__wire_header h;
        const unsigned char *body;
        why = NULL;
        uint32_t before = rx.tail;
        int got = pb__shm_next(&rx, &h, &body, &why);
        CHECK(got == PB_SHM_GOT || got == PB_SHM_NONE || got == PB_SHM_END_OF_STREAM || (got == PB_SHM_ERROR && why));
        if (round == 0 && first_is_pull && !may_pull) CHECK(got == PB_SHM_ERROR); /* the parent never pulls */
        if (got != PB_SHM_GOT) break;
        int in_ring = body >= ring && body + h.body_len <= ring + cap;
        int in_ovf = body >= ovf && body + h.body_len <= ovf + ovf_cap;
        int in_copy = rx.copy && body == rx.copy + PB_WIRE_HEADER;
        int split = rx.split && body == rx.split_head + PB_WIRE_HEADER;
        CHECK(in_ring || in_ovf || in_copy || split);
        if (split) CHECK(PB_WIRE_RESULT_HEAD - PB_WIRE_HEADER + rx.split_len == h.body_len);
        if (h.type == PB_WIRE_RESULT) { /* as procpool.c's handle_frame reads it (transport.c's reader) */
            pb__wire_reader rd;
            pb__wire_reader_init(&rd, body, split ? PB_WIRE_RESULT_HEAD - PB_WIRE_HEADER : h.body_len);
            if (split) {
                rd.next = rx.split;
                rd.next_end = rx.split + rx.split_len;
                rd.adopt = rx.split;
            }
            (void)pb__wire_get_u32(&rd);
            for (uint32_t i = 0; i < h.count && !rd.err; i++) {
                pb_result res;
                memset(&res, 0, sizeof res);
                int rc = pb__wire_get_result(&rd, MAX_ITEM, &res);
                CHECK(rc == 0 || rc == PB_EPROTO);
                CHECK(res.len <= MAX_ITEM);
                if (split && !rd.adopt) CHECK(res.heap == rx.split); /* only the record it starts */
                pb_result_clear(&res);
            }
            if (split && !rd.adopt) pb__shm_rx_split_taken(&rx); /* the result had it (and freed it) */
        }
        uint32_t held = rx.held;
        pb__shm_release(&rx);
        CHECK(rx.tail == before + held);
        CHECK(atomic_load(&ctl->tail) == rx.tail);
    }
    pb__shm_rx_drop(&rx);
    if (fd >= 0) close(fd);
    free(ring);
    free(ovf);
    free(ctl);
    return 0;
}
