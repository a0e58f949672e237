/*
 * shm.h - the shared-memory transport's rings (fork-shm and spawn-shm backends). Internal.
 *
 * One mapping per worker, a memfd the parent creates, sizes once and seals against shrinking and
 * growing (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), so neither side can ever make the other fault on a
 * page past the end of the file. Layout (every offset fixed by the parent at creation):
 *
 *   [control: 4 KiB] [request ring] [result ring] [request overflow] [result overflow]
 *
 * Each ring is single-producer single-consumer: requests parent -> worker, results worker -> parent. It
 * carries the wire protocol's frames unchanged (wire.h), each in a record 8-byte aligned:
 *
 *   u32 len, u32 kind, then for PB_SHM_FRAME len bytes of frame (padded to 8)
 *   kinds: PB_SHM_FRAME  the frame follows, contiguous (never split at the end of the ring)
 *          PB_SHM_PAD    the rest of the ring up to its end is unused: go on at offset 0
 *          PB_SHM_BIG    the frame (len bytes) lies at the start of the direction's overflow area
 *          PB_SHM_END    no more frames (the parent shuts the worker down; never valid from a worker)
 *          PB_SHM_PULL   len bytes of a pull list follow (padded to 8): the frame lies in the parent's
 *                        memory, and the worker reads it from there itself with process_vm_readv(2)
 *                        (pb__shm_put_pull; never valid from a worker)
 *
 * A frame is written in place: the producer reserves a contiguous record (or the overflow area for a frame
 * larger than half the ring) and encodes straight into it, then publishes by moving `head` (release). The
 * parent writes a large request instead with pwritev(2) on the memfd, from where the caller's items lie
 * (pb__shm_put_gather): the kernel copies through its own mapping of the pages, so the parent never
 * touches a new worker's overflow area, whose first touch by a process costs ~6-12 us a page on the
 * reference VM. The
 * consumer decodes in place and moves `tail` (release) when it has finished with the frame. Positions are
 * byte counts modulo 2^32; the ring size is a power of two, so head - tail is the bytes in use. One frame
 * may sit in the overflow area at a time (`ovf_busy`); it is given back to the kernel (MADV_REMOVE) after
 * a large frame, so one huge payload does not stay resident.
 *
 * Wake-ups. A waiter says how it sleeps in the ring's waiters word (PB_SHM_WAIT_FUTEX: in futex_wait on
 * the position it waits for; PB_SHM_WAIT_DOORBELL: in poll() on the result pipe, so the worker writes one
 * byte there), then checks the position again, then sleeps; the other side publishes the position, then
 * reads the waiters word (both seq_cst: one of the two always sees the other). Before sleeping a waiter
 * spins for a short, adaptive time (pb__shm_spin): long enough to catch an answer that is microseconds
 * away, not so long that it steals a busy core from the worker it waits for.
 *
 * Trust. The worker trusts the parent (it runs the parent's code or program); the parent trusts nothing a
 * worker writes. Its reader (pb__shm_parse, pb__shm_next) keeps its own copy of `tail`, reads `head` once,
 * copies every record and frame header out of the mapping before checking it, and bounds every length by
 * the ring, the overflow area and the pool's frame limit, so a worker that writes garbage, a bad length or
 * offset, or dies in the middle of a write makes the frame PB_EPROTO (the worker is then replaced), never a
 * read outside the mapping. Bodies are read in place through wire.h's bounds-checked reader, whose end is
 * the parent's own copy of the length.
 */
#ifndef POOLBENCH_SHM_H
#define POOLBENCH_SHM_H

#include "wire.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PB_SHM_MAGIC 0x4d485342u /* "BSHM" */
#define PB_SHM_CONTROL 4096u
#define PB_SHM_RING_DEFAULT (512u * 1024u) /* per direction; frames over half of it use the overflow area */

enum pb_shm_kind { PB_SHM_FRAME = 1, PB_SHM_PAD = 2, PB_SHM_BIG = 3, PB_SHM_END = 4, PB_SHM_PULL = 5 };

#define PB_SHM_WAIT_FUTEX 1u
#define PB_SHM_WAIT_DOORBELL 2u

/* One direction's shared words. Producer and consumer words sit on separate cache lines. */
typedef struct pb__shm_ring_ctl {
    _Atomic uint32_t head;         /* producer: bytes published */
    _Atomic uint32_t head_waiters; /* consumer: PB_SHM_WAIT_* while it waits for head to move */
    _Atomic uint32_t closed;       /* producer: no more frames (the parent shuts the worker down) */
    uint32_t pad0[13];
    _Atomic uint32_t tail;         /* consumer: bytes released */
    _Atomic uint32_t tail_waiters; /* producer: PB_SHM_WAIT_* while it waits for room */
    _Atomic uint32_t ovf_busy;     /* producer sets it with a BIG record, consumer clears it on release */
    uint32_t pad1[13];
} pb__shm_ring_ctl;

typedef struct pb__shm_ctl {
    uint32_t magic, version, ring_cap, reserved;
    uint64_t ovf_cap, size;
    int32_t pull_pid;          /* parent: its pid, for the worker's process_vm_readv (pb__shm_pull_probe) */
    _Atomic uint32_t pull_ok;  /* worker: 1 once it read the probe from the parent's memory */
    uint64_t pull_probe;       /* parent: where this page starts in its own address space */
    uint32_t pad[6];
    pb__shm_ring_ctl req, res;
} pb__shm_ctl;

/* A mapping of one worker's shared memory, with the layout as its owner knows it (the parent's copy is
 * its own: nothing it reads back from the control page decides a bound). */
typedef struct pb__shm_map {
    unsigned char *base;
    size_t size;
    uint32_t ring_cap;
    size_t ovf_cap;
    pb__shm_ctl *ctl;
} pb__shm_map;

/* Parent: creates the memfd (CLOEXEC, sealed), maps it and lays it out for frames up to max_frame.
 * 0 with *fd set, or a negative errno with a message in err. */
int pb__shm_create(size_t max_frame, uint32_t ring_cap, pb__shm_map *m, int *fd, char *err, size_t errlen);
/* Worker: maps the memfd the parent handed over. 0 or -1. */
int pb__shm_attach(int fd, pb__shm_map *m);
void pb__shm_unmap(pb__shm_map *m);

/* Direction of a ring within a mapping. */
enum pb_shm_dir { PB_SHM_REQUESTS = 0, PB_SHM_RESULTS = 1 };

/* Rent or buy, for one process's view of one overflow area. On the reference VM a process's first touch
 * of each page through its mapping costs ~6-12 us (1.8 ms a MiB: the hypervisor maps it), after which a
 * copy through the mapping is a plain memcpy (~0.05 ms a MiB). The kernel's copy (pread, pwritev) never
 * pays that first touch, but costs ~0.1-0.2 ms a MiB every time, and ~1.5 ms a MiB when the user memory
 * on the other side is new to the kernel (a caller's fresh inputs, measured: payload of 64 x 1 MiB spent
 * three quarters of its I/O thread in pwritev). So large frames are rented (copied by the kernel) until
 * the CPU time spent renting reaches what warming the mapping would cost (PB_SHM_BUY_NS_PER_BYTE), then
 * bought: copied through the mapping, warm from then on. A pool that moves a few large frames never pays
 * the first touch; one that moves many pays it once. Frames over KEEP_RESIDENT are always rented: their
 * pages are given back after use, so the mapping could never stay warm for them. */
typedef struct pb__shm_rent {
    uint64_t spent_ns; /* CPU time spent in the kernel's copies of this area */
    size_t bought;     /* bytes of the area copied through the mapping since the time ran out */
} pb__shm_rent;
#define PB_SHM_BUY_NS_PER_BYTE 4u /* twice a first touch through a new mapping on the reference VM (1.8 ms a MiB) */
/* 1: copy this n-byte frame with the kernel (and the copy adds its time); 0: through the mapping. */
int pb__shm_rents(pb__shm_rent *r, size_t n);
/* Adds the time one of the kernel's copies took. */
void pb__shm_rent_paid(pb__shm_rent *r, uint64_t ns);

/* The producer's side of one ring (private state; one thread at a time). */
typedef struct pb__shm_tx {
    pb__shm_ring_ctl *c;
    unsigned char *ring, *ovf;
    uint32_t cap;
    size_t ovf_cap;
    uint32_t head;     /* our copy: what we published */
    int doorbell_fd;   /* worker: its result pipe, to ring for a parent that sleeps in poll(); else -1 */
    /* the open reservation */
    uint32_t res_len, res_advance;
    int res_big;
    size_t ovf_warm;   /* bytes of the overflow area known to be backed by pages (populated ahead) */
    size_t ovf_file_off; /* where the overflow area starts in the memfd (for pb__shm_put_gather) */
    pb__shm_rent rent;   /* pb__shm_put_gather's copies: when to write through the mapping instead */
    int res_pull;        /* the open reservation is a PB_SHM_PULL record */
} pb__shm_tx;

/* The consumer's side of one ring. */
typedef struct pb__shm_rx {
    pb__shm_ring_ctl *c;
    const unsigned char *ring, *ovf;
    unsigned char *ovf_w; /* the same area, writable, for MADV_REMOVE */
    uint32_t cap;
    size_t ovf_cap;
    size_t max_frame;
    uint32_t tail;      /* our copy: what we released (never read back from the mapping) */
    uint32_t held;      /* bytes of ring the frame last returned occupies (released by pb__shm_release) */
    uint32_t held_big;  /* that frame is large (in the overflow area, or pulled), this long */
    int held_in_ovf;    /* ... and in the overflow area */
    int doorbell_fd;
    unsigned spin_ns;   /* adaptive spin budget for pb__shm_wait */
    int copy_fd;        /* the memfd, to read overflow frames with pread (pb__shm_rx_copy_out), or -1 */
    size_t ovf_file_off;
    unsigned char *copy; /* the held overflow frame's private copy, or NULL */
    int own_copy;       /* copies go to `own` (a worker), not to kept output blocks (the parent) */
    unsigned char *own; /* the worker's one copy buffer, kept from frame to frame (pb__alloc_huge) */
    size_t own_cap;
    pb__shm_rent rent;  /* the pread copies: when to read in place instead */
    /* pb__shm_rx_split_results: a held large RESULT frame of one record read in two pieces, its head here
     * and its output and message in `split` (a kept output block, split_len bytes), or split NULL */
    int split_results;
    unsigned char split_head[PB_WIRE_RESULT_HEAD];
    unsigned char *split;
    size_t split_len;
    int pull_pid;       /* worker, once pb__shm_pull_probe succeeded: the parent to pull frames from; else 0 */
} pb__shm_rx;

void pb__shm_tx_init(pb__shm_tx *tx, const pb__shm_map *m, int dir, int doorbell_fd);
void pb__shm_rx_init(pb__shm_rx *rx, const pb__shm_map *m, int dir, size_t max_frame, int doorbell_fd);

/* Overflow frames are read with pread(2) on the memfd fd into a private copy instead of through the
 * mapping. Why: on the reference VM a page a process touches for the first time costs ~6-12 us (the
 * hypervisor maps it), and every pool's workers have new mappings. The parent (own_buffer 0) copies into
 * a kept output block (task.c), warm for the kernel's copy after its first use: the first 1 MiB result of
 * each worker cost its I/O thread ~1.5 ms through the mapping. A worker (own_buffer 1) copies into one
 * buffer of its own in huge pages (pb__alloc_huge), kept from frame to frame up to 4 MiB: reading a
 * 1 MiB request in place cost each new worker ~1.8 ms the first time, the copy ~0.3 ms, then ~0.1 ms.
 * The frame is checked from the private copy as from the mapping. A pread that fails falls back to the
 * mapping. */
void pb__shm_rx_copy_out(pb__shm_rx *rx, int fd, int own_buffer);
/* Parent, with pb__shm_rx_copy_out: a large RESULT frame of one record is read in two preads, its head
 * (frame header, item index, record head: split_head) and then its output and message straight into a
 * kept output block (`split`), which the record takes as its heap when it is decoded (the reader's
 * adopt: pb__wire_get_result): one copy of each large output less than the whole frame's copy and then
 * the decoder's (~0.05-0.1 ms a MiB of the I/O thread's time on the reference VM). pb__shm_next then
 * returns the head's body part (4 + 8 bytes); the consumer reads on in split[0, split_len) (a reader with
 * next and adopt set), and calls pb__shm_rx_split_taken when the record took the block. Everything is
 * still checked as for any frame: the split is only where the bytes land. */
void pb__shm_rx_split_results(pb__shm_rx *rx);
void pb__shm_rx_split_taken(pb__shm_rx *rx);
/* Gives back a held private copy (the channel is closing with a frame held). */
void pb__shm_rx_drop(pb__shm_rx *rx);
/* Drops a held copy and frees the worker's own copy buffer. */
void pb__shm_rx_free(pb__shm_rx *rx);

/* ---- producer ---- */
/* Reserves room for one frame of n bytes and returns where to encode it (contiguous, n bytes), or NULL
 * when there is no room now (the ring is too full, or the overflow area still holds a frame) or n can
 * never fit (n > max frame the layout allows: *never set to 1). */
unsigned char *pb__shm_reserve(pb__shm_tx *tx, size_t n, int *never);
/* The same, waiting (spin, then the futex) until the consumer frees room; NULL only when *never. */
unsigned char *pb__shm_reserve_wait(pb__shm_tx *tx, size_t n, int *never);
/* The producer's overflow area when no frame is in it (it may write there ahead of pb__shm_reserve: it is
 * the only writer), else NULL. */
unsigned char *pb__shm_overflow_if_free(const pb__shm_tx *tx);
/* Bytes of the overflow area from offset `from` known to be backed by pages (populated ahead). */
size_t pb__shm_overflow_warm(const pb__shm_tx *tx, size_t from);
/* 1 when a frame of n bytes goes to the overflow area (larger than half the ring). */
int pb__shm_is_big(const pb__shm_tx *tx, size_t n);
/* A frame for the overflow area, given as a gather list (iovcnt <= PB_SHM_GATHER_MAX entries, n bytes),
 * written with pwritev(2) on the memfd fd and published. Why not through the mapping: on the reference
 * VM the first touch of each page by a process costs ~6-12 us (the hypervisor maps it), so a parent that
 * copies 1 MiB into a new worker's mapping pays ~1.5-3 ms before the page is warm, and every pool's
 * workers have new mappings; the kernel's copy goes through its own mapping of the pages and costs
 * about one memcpy. And the items go straight from where the caller holds them. 1 written; 0 no room
 * now, or not a frame for the overflow area, or too many pieces (use pb__shm_reserve); <0 a negative
 * errno (*never set when it can never fit). */
#define PB_SHM_GATHER_MAX 64
struct iovec;
int pb__shm_put_gather(pb__shm_tx *tx, int fd, const struct iovec *iov, int iovcnt, size_t n, int *never);
/* Parent: the same gather list as pb__shm_put_gather, published as a PB_SHM_PULL record in the ring
 * instead: pieces under PB_SHM_PULL_INLINE bytes (the frame's head, small items) are copied into the
 * record, larger ones are named by address and length, and the worker reads them straight from the
 * caller's memory into its own buffer with process_vm_readv(2). Why: the parent's I/O thread serves every
 * worker, and copying each large request into a worker's area was most of its time (payload 16 x 1 MiB
 * over spawn-shm, perf: ~6 of ~10 ms of its CPU a map went to pwritev and memcpy of requests), while the
 * threads backend copies nothing; pulled, the one copy of a request is made by the worker that needs it,
 * in parallel with the others. The pieces must stay where they are until the worker answered: they are a
 * job's items (pb_map's caller's, or a submit's own copy), which live until the job ends, and a job only
 * ends before its answer when its worker is killed. Only once the worker said it can (pull_ok, after
 * pb__shm_pull_probe); 1 published, 0 not now (no room in the ring, too many pieces, a record larger than
 * the ring allows: use another path). */
#define PB_SHM_PULL_INLINE 4096u
int pb__shm_put_pull(pb__shm_tx *tx, const struct iovec *iov, int iovcnt, size_t n);
/* PB_SHM_PULL records this process published so far (for tests). */
unsigned long pb__shm_pulls_published(void);
/* Parent, at creation: lets its workers pull (the probe address and its pid in the control page). */
void pb__shm_pull_offer(pb__shm_map *m);
/* 1 when the worker of this mapping said it can pull. */
int pb__shm_pull_ok(const pb__shm_map *m);
/* Worker: reads 16 bytes of the control page from the parent's memory (process_vm_readv) and compares
 * them with its own view; on a match, PB_SHM_PULL records are accepted (rx->pull_pid) and pull_ok is set
 * for the parent. 1 can pull; 0 cannot (no such process, no ptrace permission, e.g. Yama's
 * ptrace_scope 1, which forbids reading an ancestor): then the parent keeps copying. */
int pb__shm_pull_probe(pb__shm_rx *rx, pb__shm_map *m);
/* Publishes the reserved frame and wakes a sleeping consumer. */
void pb__shm_commit(pb__shm_tx *tx);
/* Ends the stream: an END record (so that a consumer asleep on head wakes: a flag alone could be missed
 * between its last look and its futex_wait) and the `closed` flag, for a ring too full to take it. */
void pb__shm_close(pb__shm_tx *tx);
/* Copies a whole encoded buffer (one or more frames) into the ring, frame by frame, waiting for room
 * with pb__shm_wait when `block` (worker) or returning what it managed (bytes consumed) when not. <0 on a
 * frame that can never fit or a malformed buffer. */
long pb__shm_send(pb__shm_tx *tx, const unsigned char *buf, size_t len, int block);

/* ---- consumer ---- */
enum pb_shm_next { PB_SHM_NONE = 0, PB_SHM_GOT = 1, PB_SHM_END_OF_STREAM = 2, PB_SHM_ERROR = -1 };

/* The pure validator: given the ring's bytes, our tail, the head read once, the overflow area and the
 * frame limit, finds the next frame. Never reads outside ring[0, cap) and ovf[0, ovf_cap); copies each
 * record header before checking it. PB_SHM_GOT with the frame's offset (*in_ovf: in the overflow area),
 * length and how far tail moves when released; PB_SHM_NONE when nothing is published;
 * PB_SHM_END_OF_STREAM at an END record; PB_SHM_ERROR with a reason in *why. */
typedef struct pb__shm_found {
    size_t off;      /* in the ring, or 0 in the overflow area */
    uint32_t len;    /* frame bytes (a PB_SHM_PULL record: the pull list's bytes) */
    uint32_t advance;/* ring bytes to release (padding and records included) */
    int in_ovf;
    int pull;        /* a PB_SHM_PULL record at off (pb__shm_next accepts it only where pulling is on) */
} pb__shm_found;
int pb__shm_parse(const unsigned char *ring, uint32_t cap, uint32_t tail, uint32_t head, size_t ovf_cap,
                  size_t max_frame, pb__shm_found *f, const char **why);

/* The next frame, its header decoded and checked (wire.h) from a private copy: PB_SHM_GOT with *h and the
 * body (h->body_len bytes, inside the mapping); PB_SHM_NONE; PB_SHM_END_OF_STREAM (or the closed flag with
 * nothing left); PB_SHM_ERROR with *why. The frame stays
 * valid until pb__shm_release. A second call without a release returns the same frame. */
int pb__shm_next(pb__shm_rx *rx, pb__wire_header *h, const unsigned char **body, const char **why);
/* Releases the frame pb__shm_next returned (no-op without one) and wakes a producer waiting for room. */
void pb__shm_release(pb__shm_rx *rx);
/* 1 when something is published past our tail (or the producer closed the ring). */
int pb__shm_ready(const pb__shm_rx *rx);
int pb__shm_closed(const pb__shm_rx *rx);

/* ---- waiting ---- */
/* Waits until *word differs from `seen`, spinning first (adaptive budget in *spin_ns), then sleeping in
 * futex_wait with PB_SHM_WAIT_FUTEX set in *waiters. timeout_s < 0: no timeout. 1 changed, 0 timed out
 * (or interrupted: callers loop). */
int pb__shm_wait(_Atomic uint32_t *word, _Atomic uint32_t *waiters, uint32_t seen, double timeout_s,
                 unsigned *spin_ns);
/* Wakes whoever *waiters says waits on word (futex and/or a byte on doorbell_fd). */
void pb__shm_wake(_Atomic uint32_t *word, _Atomic uint32_t *waiters, int doorbell_fd);
/* Wakes futex sleepers on word whatever the waiters word says (a recall, a death seen by another thread). */
void pb__shm_futex_wake_all(_Atomic uint32_t *word);

#endif
