/*
 * shm.c - the shared-memory rings of the fork-shm and spawn-shm backends: the sealed memfd mapping, the
 * in-place producer (and its pwritev path for large frames), the parent's never-out-of-bounds frame reader
 * (in place, or from a pread copy for large frames), and futex wake-ups with an adaptive spin. Layout,
 * trust and wake-up rules are in shm.h; how the pool uses them is in transport.c.
 *
 * Memory ordering: a producer writes the record, then stores head (release); the consumer loads head
 * (acquire), reads, then stores tail (release); the producer loads tail (acquire) before reusing room.
 * Wake-ups pair a store of the position with a load of the waiters word on one side and a store of the
 * waiters word with a load of the position on the other, all seq_cst, so a sleeper is never missed. The
 * other side of a ring is another process, which ThreadSanitizer cannot see; but two threads of the parent
 * take turns at one ring (the pool's I/O thread and a caller that borrowed the worker, under the pool's
 * mutex), and the hand-off through the futex is annotated with __tsan_release / __tsan_acquire on the
 * position words, so TSan knows what the futex orders rather than being told to look away.
 */
#include "shm.h"
#include "syscalls.h"
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define PB_SHM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PB_SHM_TSAN 1
#endif
#endif
#ifdef PB_SHM_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define tsan_acquire(p) __tsan_acquire((void *)(p))
#define tsan_release(p) __tsan_release((void *)(p))
#else
#define tsan_acquire(p) ((void)0)
#define tsan_release(p) ((void)0)
#endif

#define SPIN_MIN_NS 1000u
#define SPIN_MAX_NS 40000u   /* a busy 2-core machine: never spin longer than a couple of wake-ups cost */
#define SPIN_START_NS 10000u
#define KEEP_RESIDENT (4u << 20) /* overflow frames larger than this are given back after use */

/* Stops the compiler from re-reading shared memory instead of the private copy it just made. */
#define compiler_barrier() __asm__ __volatile__("" ::: "memory")

static uint32_t round8(uint32_t n) { return (n + 7u) & ~7u; }
static size_t round_page(size_t n) { return (n + 4095u) & ~(size_t)4095u; }

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* This thread's CPU time: what a copy costs, without the time it was preempted (a copy timed on the wall
 * clock sometimes took 2-3 ms instead of 0.2 on the busy 2-vCPU reference VM, and bought the mapping for
 * a map too short to repay it). */
static uint64_t cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- the mapping ---- */

static void layout(pb__shm_map *m) {
    m->ctl = (pb__shm_ctl *)m->base;
}

/* The pages every worker's start touches on both sides (the control page, the first page of each ring:
 * INIT one way, READY the other) are mapped in with one call per range instead of a fault each; on this
 * paravirtualized VM each fault is an exception and a page-table update (best effort: without
 * MADV_POPULATE_WRITE, before Linux 5.14, they fault in as before). */
static void populate_start_pages(const pb__shm_map *m) {
    (void)pb__populate_write(m->base, PB_SHM_CONTROL + 4096u);
    (void)pb__populate_write(m->base + PB_SHM_CONTROL + m->ring_cap, 4096u);
}

int pb__shm_create(size_t max_frame, uint32_t ring_cap, pb__shm_map *m, int *fd, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    *fd = -1;
    if (ring_cap < 4096 || (ring_cap & (ring_cap - 1)) || ring_cap > (1u << 30)) {
        snprintf(err, errlen, "shared-memory ring size %u is not a power of two in [4 KiB, 1 GiB]", ring_cap);
        return -EINVAL;
    }
    size_t ovf = round_page(max_frame);
    size_t size = PB_SHM_CONTROL + 2 * (size_t)ring_cap + 2 * ovf;
    int f = memfd_create("poolbench-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (f < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create a worker's shared memory (memfd_create): %s", strerror(e));
        return -e;
    }
    /* Sparse: tmpfs gives pages only where they are written. The seals make the size final for both. */
    if (ftruncate(f, (off_t)size) != 0 ||
        fcntl(f, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot size and seal a worker's shared memory: %s", strerror(e));
        close(f);
        return -e;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        snprintf(err, errlen, "cannot map a worker's shared memory (mmap of %zu bytes): %s", size, strerror(e));
        close(f);
        return -e;
    }
    /* No child of this process needs the parent's view: a fork-shm worker maps its own from the fd it is
     * given, and any other child (a later worker, a task's fork) has no business there. So later forks
     * neither copy this mapping nor tear it down at exit. Not under valgrind (the same test as for kept
     * output blocks, task.c): a forked child there still believes it has the mapping, and its leak check
     * at exit reads all of it, a fault a page: minutes for each worker of a fork-shm pool. */
    if (pb__output_blocks_unforked()) (void)madvise(p, size, MADV_DONTFORK);
    m->base = p;
    m->size = size;
    m->ring_cap = ring_cap;
    m->ovf_cap = ovf;
    layout(m);
    populate_start_pages(m);
    m->ctl->magic = PB_SHM_MAGIC;
    m->ctl->version = PB_WIRE_VERSION;
    m->ctl->ring_cap = ring_cap;
    m->ctl->ovf_cap = ovf;
    m->ctl->size = size;
    *fd = f;
    return 0;
}

int pb__shm_attach(int fd, pb__shm_map *m) {
    memset(m, 0, sizeof *m);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)PB_SHM_CONTROL) return -1;
    size_t size = (size_t)st.st_size;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return -1;
    const pb__shm_ctl *c = p;
    /* The parent is trusted, but a mismatch means another build: refuse rather than guess. */
    if (c->magic != PB_SHM_MAGIC || c->version != PB_WIRE_VERSION || c->size != size ||
        PB_SHM_CONTROL + 2 * (size_t)c->ring_cap + 2 * (size_t)c->ovf_cap != size) {
        munmap(p, size);
        return -1;
    }
    m->base = p;
    m->size = size;
    m->ring_cap = c->ring_cap;
    m->ovf_cap = (size_t)c->ovf_cap;
    layout(m);
    populate_start_pages(m);
    return 0;
}

void pb__shm_unmap(pb__shm_map *m) {
    if (m->base) munmap(m->base, m->size);
    memset(m, 0, sizeof *m);
}

static pb__shm_ring_ctl *dir_ctl(const pb__shm_map *m, int dir) {
    return dir == PB_SHM_REQUESTS ? &m->ctl->req : &m->ctl->res;
}
static unsigned char *dir_ring(const pb__shm_map *m, int dir) {
    return m->base + PB_SHM_CONTROL + (size_t)dir * m->ring_cap;
}
static unsigned char *dir_ovf(const pb__shm_map *m, int dir) {
    return m->base + PB_SHM_CONTROL + 2 * (size_t)m->ring_cap + (size_t)dir * m->ovf_cap;
}

void pb__shm_tx_init(pb__shm_tx *tx, const pb__shm_map *m, int dir, int doorbell_fd) {
    memset(tx, 0, sizeof *tx);
    tx->c = dir_ctl(m, dir);
    tx->ring = dir_ring(m, dir);
    tx->ovf = dir_ovf(m, dir);
    tx->cap = m->ring_cap;
    tx->ovf_cap = m->ovf_cap;
    tx->ovf_file_off = (size_t)(tx->ovf - m->base);
    tx->head = atomic_load_explicit(&tx->c->head, memory_order_relaxed);
    tx->doorbell_fd = doorbell_fd;
}

void pb__shm_rx_init(pb__shm_rx *rx, const pb__shm_map *m, int dir, size_t max_frame, int doorbell_fd) {
    memset(rx, 0, sizeof *rx);
    rx->c = dir_ctl(m, dir);
    rx->ring = dir_ring(m, dir);
    rx->ovf = rx->ovf_w = dir_ovf(m, dir);
    rx->cap = m->ring_cap;
    rx->ovf_cap = m->ovf_cap;
    rx->max_frame = max_frame < m->ovf_cap ? max_frame : m->ovf_cap;
    rx->tail = atomic_load_explicit(&rx->c->tail, memory_order_relaxed);
    rx->doorbell_fd = doorbell_fd;
    rx->spin_ns = SPIN_START_NS;
    rx->copy_fd = -1;
    rx->ovf_file_off = (size_t)(rx->ovf - m->base);
}

void pb__shm_rx_copy_out(pb__shm_rx *rx, int fd, int own_buffer) {
    rx->copy_fd = fd;
    rx->own_copy = own_buffer;
}

/* Lets go of a private copy: a kept output block goes back to task.c; the worker's own buffer stays. */
static void let_go_copy(pb__shm_rx *rx, unsigned char *copy) {
    if (copy && copy != rx->own) pb__output_block_give(copy);
}

void pb__shm_rx_split_results(pb__shm_rx *rx) { rx->split_results = 1; }
void pb__shm_rx_split_taken(pb__shm_rx *rx) { rx->split = NULL; }

/* Gives a held split's block back (no result took it). */
static void drop_split(pb__shm_rx *rx) {
    if (rx->split) pb__output_block_give(rx->split);
    rx->split = NULL;
}

void pb__shm_rx_drop(pb__shm_rx *rx) {
    let_go_copy(rx, rx->copy);
    rx->copy = NULL;
    drop_split(rx);
}

void pb__shm_rx_free(pb__shm_rx *rx) {
    pb__shm_rx_drop(rx);
    free(rx->own);
    rx->own = NULL;
    rx->own_cap = 0;
}

/* A buffer for a private copy of len bytes: the worker's own (grown in huge pages when too small) or a
 * kept output block. NULL on no memory. */
static unsigned char *copy_buffer(pb__shm_rx *rx, size_t len) {
    if (!rx->own_copy) {
        int warm;
        return pb__output_block(len, &warm);
    }
    if (rx->own_cap < len) {
        free(rx->own);
        rx->own = pb__alloc_huge(len, &rx->own_cap);
        if (!rx->own) rx->own_cap = 0;
    }
    return rx->own;
}

/* ---- rent or buy (shm.h) ---- */

int pb__shm_rents(pb__shm_rent *r, size_t n) {
    if (n > KEEP_RESIDENT) return 1;
    if (n <= r->bought) return 0;
    if (r->spent_ns < (uint64_t)PB_SHM_BUY_NS_PER_BYTE * n) return 1;
    r->bought = n;
    return 0;
}

void pb__shm_rent_paid(pb__shm_rent *r, uint64_t ns) { r->spent_ns += ns; }

/* len bytes of the overflow area from offset `from` into buf with pread; the time goes to the rent.
 * 0, or -1 (cannot happen on a sealed memfd of this size, but never trust it). */
static int pread_overflow(pb__shm_rx *rx, unsigned char *buf, size_t len, size_t from) {
    uint64_t t0 = cpu_ns();
    size_t done = 0;
    while (done < len) {
        ssize_t n = pb__sys.pread(rx->copy_fd, buf + done, len - done, (off_t)(rx->ovf_file_off + from + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    pb__shm_rent_paid(&rx->rent, cpu_ns() - t0);
    return 0;
}

/* The overflow frame of len bytes copied out with pread, or NULL (then read it in place). */
static unsigned char *copy_out(pb__shm_rx *rx, size_t len) {
    unsigned char *buf = copy_buffer(rx, len);
    if (!buf) return NULL;
    if (pread_overflow(rx, buf, len, 0) != 0) {
        let_go_copy(rx, buf);
        return NULL;
    }
    return buf;
}

/* pb__shm_rx_split_results: the overflow frame of len bytes, when it is a RESULT of one record whose
 * head says its output and message fill the rest, read as split_head + split. 1 done; 0 not such a frame
 * (or no block for it: copy it whole); -1 a pread failed (read it in place). The head's word is only
 * where the bytes land: pb__shm_next and the decoder check the frame as any other. */
static int split_out(pb__shm_rx *rx, size_t len) {
    if (len <= PB_WIRE_RESULT_HEAD) return 0;
    if (pread_overflow(rx, rx->split_head, PB_WIRE_RESULT_HEAD, 0) != 0) return -1;
    size_t frame, out, msg, rest = len - PB_WIRE_RESULT_HEAD;
    if (pb__wire_result_head_read(rx->split_head, rx->max_frame, &frame, &out, &msg) != 0 || frame != len ||
        out <= PB_RESULT_INLINE || out + msg != rest)
        return 0;
    int warm;
    unsigned char *b = pb__output_block(rest, &warm);
    if (!b) return 0;
    /* the kernel writes it whole: a new block's pages mapped in one call, not a fault each */
    if (!warm && rest >= PB__POPULATE_FROM) (void)pb__populate_write(b, rest);
    if (pread_overflow(rx, b, rest, PB_WIRE_RESULT_HEAD) != 0) {
        pb__output_block_give(b);
        return -1;
    }
    rx->split = b;
    rx->split_len = rest;
    return 1;
}

/* ---- waking and waiting ---- */

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *ts) {
    /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
    return syscall(SYS_futex, (uint32_t *)word, op, val, ts, NULL, 0);
}

void pb__shm_futex_wake_all(_Atomic uint32_t *word) { futex(word, FUTEX_WAKE, INT_MAX, NULL); }

void pb__shm_wake(_Atomic uint32_t *word, _Atomic uint32_t *waiters, int doorbell_fd) {
    uint32_t w = atomic_load(waiters); /* seq_cst, after the caller's seq_cst store of *word */
    if (!w) return;
    if (w & PB_SHM_WAIT_FUTEX) futex(word, FUTEX_WAKE, INT_MAX, NULL);
    /* The doorbell is rung once per sleep: taking the bit keeps a pipe from filling with rings. */
    if ((w & PB_SHM_WAIT_DOORBELL) && doorbell_fd >= 0 &&
        (atomic_fetch_and(waiters, ~PB_SHM_WAIT_DOORBELL) & PB_SHM_WAIT_DOORBELL)) {
        char b = 0;
        ssize_t r;
        do r = write(doorbell_fd, &b, 1);
        while (r < 0 && errno == EINTR);
        /* EAGAIN (a full pipe already rings) or EPIPE (the parent is gone) need nothing more */
    }
}

int pb__shm_wait(_Atomic uint32_t *word, _Atomic uint32_t *waiters, uint32_t seen, double timeout_s,
                 unsigned *spin_ns) {
    unsigned budget = *spin_ns ? *spin_ns : SPIN_START_NS;
    uint64_t t0 = now_ns();
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != seen) {
            tsan_acquire(word);
            /* it came while we spun: spinning pays here, allow a little more next time */
            unsigned more = budget + budget / 2;
            *spin_ns = more > SPIN_MAX_NS ? SPIN_MAX_NS : more;
            return 1;
        }
        cpu_relax();
        if ((i & 31) == 31 && (now_ns() - t0 >= budget || (timeout_s >= 0 && now_ns() - t0 >= timeout_s * 1e9)))
            break;
    }
    /* it did not: spin less next time, the answer is not microseconds away */
    *spin_ns = budget / 2 < SPIN_MIN_NS ? SPIN_MIN_NS : budget / 2;
    if (timeout_s >= 0 && (double)(now_ns() - t0) >= timeout_s * 1e9) return 0;

    atomic_fetch_or(waiters, PB_SHM_WAIT_FUTEX);
    int changed = atomic_load(word) != seen;
    if (!changed) {
        struct timespec ts, *tp = NULL;
        if (timeout_s >= 0) {
            double left = timeout_s - (double)(now_ns() - t0) / 1e9;
            if (left < 0) left = 0;
            ts.tv_sec = (time_t)left;
            ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
            tp = &ts;
        }
        futex(word, FUTEX_WAIT, seen, tp); /* EAGAIN: it changed already; EINTR/ETIMEDOUT: the caller loops */
        changed = atomic_load(word) != seen;
    }
    atomic_fetch_and(waiters, ~PB_SHM_WAIT_FUTEX);
    if (changed) tsan_acquire(word);
    return changed;
}

/* ---- producer ---- */

/* The overflow area is sparse: without this, the first write of a large frame takes a page fault per 4 KiB
 * page (tmpfs allocates the page inside each fault), in the writer's thread; pb__populate_write maps them
 * all in one call. Only the part not yet known to be backed is asked for; a frame over KEEP_RESIDENT is
 * given back by the consumer (MADV_REMOVE) after use, so then nothing is known to be backed any more. */
static void populate_overflow(pb__shm_tx *tx, size_t n) {
    size_t want = round_page(n);
    if (want > tx->ovf_cap) want = tx->ovf_cap;
    if (want > tx->ovf_warm && pb__populate_write(tx->ovf + tx->ovf_warm, want - tx->ovf_warm) == 0)
        tx->ovf_warm = want;
    if (n > KEEP_RESIDENT) tx->ovf_warm = 0;
}

/* Opens a reservation of one n-byte frame when there is room: 1, 0 (no room now), -1 (never: *never). */
static int reserve_room(pb__shm_tx *tx, size_t n, int *never) {
    *never = 0;
    uint32_t cap = tx->cap;
    if (n > UINT32_MAX - 16) {
        *never = 1;
        return -1;
    }
    uint32_t rec = 8 + round8((uint32_t)n);
    int big = rec > cap / 2;
    if (big) {
        if (n > tx->ovf_cap) {
            *never = 1;
            return -1;
        }
        if (atomic_load_explicit(&tx->c->ovf_busy, memory_order_acquire)) return 0;
        rec = 8;
    }
    uint32_t tail = atomic_load_explicit(&tx->c->tail, memory_order_acquire);
    tsan_acquire(&tx->c->tail);
    uint32_t used = tx->head - tail;
    uint32_t pos = tx->head & (cap - 1);
    uint32_t pad = cap - pos < rec ? cap - pos : 0;
    if (cap - used < pad + rec) return 0;
    tx->res_len = (uint32_t)n;
    tx->res_advance = pad + rec;
    tx->res_big = big;
    return 1;
}

unsigned char *pb__shm_reserve(pb__shm_tx *tx, size_t n, int *never) {
    if (reserve_room(tx, n, never) != 1) return NULL;
    if (tx->res_big) populate_overflow(tx, n);
    uint32_t pos = tx->head & (tx->cap - 1);
    return tx->res_big ? tx->ovf : tx->ring + (tx->res_advance > 8 + round8(tx->res_len) ? 0 : pos) + 8;
}

size_t pb__shm_overflow_warm(const pb__shm_tx *tx, size_t from) { return tx->ovf_warm > from ? tx->ovf_warm - from : 0; }

unsigned char *pb__shm_overflow_if_free(const pb__shm_tx *tx) {
    return atomic_load_explicit(&tx->c->ovf_busy, memory_order_acquire) ? NULL : tx->ovf;
}

int pb__shm_is_big(const pb__shm_tx *tx, size_t n) { return n <= UINT32_MAX - 16 && 8 + round8((uint32_t)n) > tx->cap / 2; }

int pb__shm_put_gather(pb__shm_tx *tx, int fd, const struct iovec *iov, int iovcnt, size_t n, int *never) {
    *never = 0;
    if (fd < 0 || iovcnt > PB_SHM_GATHER_MAX || !pb__shm_is_big(tx, n)) return 0;
    int room = reserve_room(tx, n, never);
    if (room != 1) return room < 0 ? -E2BIG : 0;
    /* pwritev may stop short (a signal, a huge frame): go on from where it stopped */
    struct iovec left[PB_SHM_GATHER_MAX];
    memcpy(left, iov, (size_t)iovcnt * sizeof *iov);
    struct iovec *v = left;
    int cnt = iovcnt;
    off_t at = (off_t)tx->ovf_file_off;
    size_t done = 0;
    uint64_t t0 = cpu_ns();
    while (done < n) {
        ssize_t w = pb__sys.pwritev(fd, v, cnt, at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            tx->res_advance = tx->res_len = 0; /* nothing was published: the reservation is dropped */
            return -e;
        }
        done += (size_t)w;
        at += w;
        while (cnt && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            cnt--;
        }
        if (cnt) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
    pb__shm_rent_paid(&tx->rent, cpu_ns() - t0);
    pb__shm_commit(tx);
    return 1;
}

/* ---- pulled frames (shm.h, pb__shm_put_pull) ----
 * A PB_SHM_PULL record's list: u32 frame bytes, u32 pieces, then per piece {u64 address, u32 length,
 * u32 inline (1: the bytes follow the list, in order)}, then the inline bytes. */
#define PULL_HEAD 8u
#define PULL_PIECE 16u

void pb__shm_pull_offer(pb__shm_map *m) {
    m->ctl->pull_pid = (int32_t)getpid();
    m->ctl->pull_probe = (uint64_t)(uintptr_t)m->base;
    atomic_store_explicit(&m->ctl->pull_ok, 0, memory_order_relaxed);
}

int pb__shm_pull_ok(const pb__shm_map *m) {
    return m->ctl && atomic_load_explicit(&m->ctl->pull_ok, memory_order_acquire) == 1;
}

int pb__shm_pull_probe(pb__shm_rx *rx, pb__shm_map *m) {
    pid_t pid = (pid_t)m->ctl->pull_pid;
    uint64_t at = m->ctl->pull_probe;
    if (pid <= 0 || at == 0) return 0;
    unsigned char got[16];
    struct iovec local = {got, sizeof got}, remote = {(void *)(uintptr_t)at, sizeof got};
    if (pb__sys.process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof got ||
        memcmp(got, m->base, sizeof got) != 0)
        return 0;
    rx->pull_pid = pid;
    atomic_store_explicit(&m->ctl->pull_ok, 1, memory_order_release);
    return 1;
}

static atomic_ulong pulls_published;
unsigned long pb__shm_pulls_published(void) { return atomic_load_explicit(&pulls_published, memory_order_relaxed); }

int pb__shm_put_pull(pb__shm_tx *tx, const struct iovec *iov, int iovcnt, size_t n) {
    if (iovcnt <= 0 || iovcnt > PB_SHM_GATHER_MAX || n < PB_WIRE_HEADER || n > UINT32_MAX) return 0;
    size_t inline_bytes = 0, sum = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > UINT32_MAX) return 0;
        sum += iov[i].iov_len;
        if (iov[i].iov_len < PB_SHM_PULL_INLINE) inline_bytes += iov[i].iov_len;
    }
    if (sum != n) return 0;
    size_t list = PULL_HEAD + PULL_PIECE * (size_t)iovcnt + inline_bytes;
    if (pb__shm_is_big(tx, list)) return 0; /* a list for the ring only */
    int never;
    unsigned char *dst = pb__shm_reserve(tx, list, &never);
    if (!dst) return 0;
    uint32_t head[2] = {(uint32_t)n, (uint32_t)iovcnt};
    memcpy(dst, head, sizeof head);
    unsigned char *piece = dst + PULL_HEAD, *bytes = dst + PULL_HEAD + PULL_PIECE * (size_t)iovcnt;
    for (int i = 0; i < iovcnt; i++, piece += PULL_PIECE) {
        uint64_t addr = (uint64_t)(uintptr_t)iov[i].iov_base;
        uint32_t len = (uint32_t)iov[i].iov_len, in = len < PB_SHM_PULL_INLINE;
        memcpy(piece, &addr, 8);
        memcpy(piece + 8, &len, 4);
        memcpy(piece + 12, &in, 4);
        if (in && len) {
            memcpy(bytes, iov[i].iov_base, len);
            bytes += len;
        }
    }
    tx->res_pull = 1;
    pb__shm_commit(tx);
    atomic_fetch_add_explicit(&pulls_published, 1, memory_order_relaxed);
    return 1;
}

/* Piece i of a pull list (the list's length was checked to hold it). */
static void pull_piece(const unsigned char *list, size_t i, uint64_t *addr, uint32_t *len, uint32_t *in) {
    const unsigned char *p = list + PULL_HEAD + PULL_PIECE * i;
    memcpy(addr, p, 8);
    memcpy(len, p + 8, 4);
    memcpy(in, p + 12, 4);
}

/* Worker: the frame a PB_SHM_PULL list of len bytes names, assembled in a private copy (the worker's own
 * buffer): its inline pieces from the list, the others read from the parent. The parent is trusted (shm.h)
 * but the list is still checked to add up, so a mistake cannot make the worker read or write out of
 * bounds. NULL with *why when it does not add up or a read fails (the parent's memory is gone: its job
 * ended without this answer, so nobody waits for it). */
static unsigned char *pull_frame(pb__shm_rx *rx, const unsigned char *list, size_t len, size_t *frame_len,
                                 const char **why) {
    uint32_t head[2];
    if (len < PULL_HEAD) goto bad;
    memcpy(head, list, sizeof head);
    size_t total = head[0], cnt = head[1];
    if (cnt == 0 || cnt > PB_SHM_GATHER_MAX || total < PB_WIRE_HEADER || total > rx->max_frame ||
        len < PULL_HEAD + PULL_PIECE * cnt)
        goto bad;
    size_t inline_at = PULL_HEAD + PULL_PIECE * cnt, sum = 0, inline_sum = 0;
    for (size_t i = 0; i < cnt; i++) {
        uint64_t addr;
        uint32_t plen, in;
        pull_piece(list, i, &addr, &plen, &in);
        if (in > 1) goto bad;
        sum += plen;
        if (in) inline_sum += plen;
    }
    if (sum != total || inline_at + inline_sum != len) goto bad;
    unsigned char *buf = copy_buffer(rx, total);
    if (!buf) {
        *why = "out of memory for a pulled frame";
        return NULL;
    }
    const unsigned char *inl = list + inline_at;
    size_t at = 0;
    for (size_t i = 0; i < cnt; i++) {
        uint64_t addr;
        uint32_t plen, in;
        pull_piece(list, i, &addr, &plen, &in);
        if (in) {
            memcpy(buf + at, inl, plen);
            inl += plen;
            at += plen;
            continue;
        }
        size_t done = 0;
        while (done < plen) { /* a read may stop short at a page the other side lacks: go on, or fail */
            struct iovec local = {buf + at + done, plen - done};
            struct iovec remote = {(void *)(uintptr_t)(addr + done), plen - done};
            ssize_t r = pb__sys.process_vm_readv(rx->pull_pid, &local, 1, &remote, 1, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                let_go_copy(rx, buf);
                *why = "cannot read a pulled request from the pool's memory (process_vm_readv)";
                return NULL;
            }
            done += (size_t)r;
        }
        at += plen;
    }
    *frame_len = total;
    return buf;
bad:
    *why = "malformed pull list in the shared-memory ring";
    return NULL;
}

static void commit_local(pb__shm_tx *tx) {
    uint32_t cap = tx->cap;
    uint32_t pos = tx->head & (cap - 1);
    uint32_t rec = tx->res_big ? 8 : 8 + round8(tx->res_len);
    if (tx->res_advance > rec) { /* the record did not fit before the end: pad to it, start at 0 */
        uint32_t pad_hdr[2] = {0, PB_SHM_PAD};
        memcpy(tx->ring + pos, pad_hdr, 8);
        pos = 0;
    }
    uint32_t hdr[2] = {tx->res_len, tx->res_big ? PB_SHM_BIG : tx->res_pull ? PB_SHM_PULL : PB_SHM_FRAME};
    memcpy(tx->ring + pos, hdr, 8);
    if (tx->res_big) atomic_store_explicit(&tx->c->ovf_busy, 1, memory_order_relaxed);
    tx->head += tx->res_advance;
    tx->res_advance = tx->res_len = 0;
    tx->res_pull = 0;
}

/* Makes every frame committed so far visible at once and wakes the consumer. */
static void publish(pb__shm_tx *tx) {
    if (atomic_load_explicit(&tx->c->head, memory_order_relaxed) == tx->head) return;
    tsan_release(&tx->c->head);
    atomic_store(&tx->c->head, tx->head); /* seq_cst: pairs with the consumer's waiters store */
    pb__shm_wake(&tx->c->head, &tx->c->head_waiters, tx->doorbell_fd);
}

unsigned char *pb__shm_reserve_wait(pb__shm_tx *tx, size_t n, int *never) {
    unsigned spin = SPIN_START_NS;
    for (;;) {
        unsigned char *dst = pb__shm_reserve(tx, n, never);
        if (dst || *never) return dst;
        uint32_t seen = atomic_load_explicit(&tx->c->tail, memory_order_acquire);
        pb__shm_wait(&tx->c->tail, &tx->c->tail_waiters, seen, -1, &spin);
    }
}

void pb__shm_commit(pb__shm_tx *tx) {
    commit_local(tx);
    publish(tx);
}

void pb__shm_close(pb__shm_tx *tx) {
    atomic_store(&tx->c->closed, 1);
    uint32_t tail = atomic_load_explicit(&tx->c->tail, memory_order_acquire);
    if (tx->cap - (tx->head - tail) >= 8) { /* records are 8-aligned: 8 bytes never need padding */
        uint32_t hdr[2] = {0, PB_SHM_END};
        memcpy(tx->ring + (tx->head & (tx->cap - 1)), hdr, 8);
        tx->head += 8;
        tsan_release(&tx->c->head);
        atomic_store(&tx->c->head, tx->head);
    }
    pb__shm_futex_wake_all(&tx->c->head);
}

long pb__shm_send(pb__shm_tx *tx, const unsigned char *buf, size_t len, int block) {
    size_t done = 0;
    unsigned spin = SPIN_START_NS;
    while (len - done >= PB_WIRE_HEADER) {
        uint32_t body;
        memcpy(&body, buf + done + 8, 4);
        size_t frame = PB_WIRE_HEADER + (size_t)body;
        if (frame > len - done) {
            publish(tx);
            return -EINVAL;
        }
        int never;
        unsigned char *dst = pb__shm_reserve(tx, frame, &never);
        if (never) {
            publish(tx);
            return -E2BIG;
        }
        if (!dst) {
            publish(tx); /* what fits already goes, so that the consumer can free room */
            uint32_t seen = atomic_load_explicit(&tx->c->tail, memory_order_acquire);
            if (!block) {
                /* ask the consumer for a ring when it frees room, then look once more */
                atomic_fetch_or(&tx->c->tail_waiters, PB_SHM_WAIT_DOORBELL);
                if ((dst = pb__shm_reserve(tx, frame, &never)) == NULL) return (long)done;
            } else {
                pb__shm_wait(&tx->c->tail, &tx->c->tail_waiters, seen, -1, &spin);
                continue;
            }
        }
        memcpy(dst, buf + done, frame);
        commit_local(tx);
        done += frame;
    }
    /* One store for all the frames of buf: an answer and the RETIRE after it arrive together, as they
     * do in one write() on a pipe (a recycle must never look like an idle worker that went away). */
    publish(tx);
    return len == done ? (long)done : -EINVAL;
}

/* ---- consumer: the frame reader ---- */

int pb__shm_parse(const unsigned char *ring, uint32_t cap, uint32_t tail, uint32_t head, size_t ovf_cap,
                  size_t max_frame, pb__shm_found *f, const char **why) {
    uint32_t used = head - tail;
    f->pull = 0;
    if (used > cap) {
        *why = "shared-memory ring positions out of range";
        return PB_SHM_ERROR;
    }
    if (used == 0) return PB_SHM_NONE;
    if (used % 8 || tail % 8) {
        *why = "shared-memory ring position not aligned";
        return PB_SHM_ERROR;
    }
    uint32_t pos = tail & (cap - 1), advance = 0;
    for (int hop = 0; hop < 2; hop++) {
        uint32_t left = used - advance;
        if (left < 8) {
            *why = "partial record in the shared-memory ring";
            return PB_SHM_ERROR;
        }
        uint32_t rec[2];
        memcpy(rec, ring + pos, 8); /* pos <= cap - 8: both are multiples of 8 */
        compiler_barrier();
        uint32_t len = rec[0], kind = rec[1];
        switch (kind) {
        case PB_SHM_PAD:
            if (pos == 0 || hop) {
                *why = "misplaced padding in the shared-memory ring";
                return PB_SHM_ERROR;
            }
            if (cap - pos > left) {
                *why = "padding longer than what was published";
                return PB_SHM_ERROR;
            }
            advance += cap - pos;
            pos = 0;
            continue;
        case PB_SHM_FRAME:
        case PB_SHM_PULL: { /* both in the ring itself: a frame, or a pull list (only its own bytes here) */
            int pull = kind == PB_SHM_PULL;
            uint64_t bytes = 8 + (uint64_t)round8(len > UINT32_MAX - 8 ? UINT32_MAX - 8 : len);
            if (pull ? len < PULL_HEAD : (len < PB_WIRE_HEADER || len > max_frame)) {
                *why = pull ? "bad pull record length in the shared-memory ring"
                            : "bad frame length in the shared-memory ring";
                return PB_SHM_ERROR;
            }
            if (bytes > cap - pos) {
                *why = "frame runs past the end of the shared-memory ring";
                return PB_SHM_ERROR;
            }
            if (bytes > left) {
                *why = "frame longer than what was published";
                return PB_SHM_ERROR;
            }
            f->off = pos + 8;
            f->len = len;
            f->advance = advance + (uint32_t)bytes;
            f->in_ovf = 0;
            f->pull = pull;
            return PB_SHM_GOT;
        }
        case PB_SHM_BIG:
            if (len < PB_WIRE_HEADER || len > max_frame || len > ovf_cap) {
                *why = "bad overflow frame length in the shared-memory ring";
                return PB_SHM_ERROR;
            }
            f->off = 0;
            f->len = len;
            f->advance = advance + 8;
            f->in_ovf = 1;
            return PB_SHM_GOT;
        case PB_SHM_END:
            f->off = 0;
            f->len = 0;
            f->advance = advance + 8;
            f->in_ovf = 0;
            return PB_SHM_END_OF_STREAM;
        default:
            *why = "unknown record in the shared-memory ring";
            return PB_SHM_ERROR;
        }
    }
    *why = "misplaced padding in the shared-memory ring";
    return PB_SHM_ERROR;
}

int pb__shm_next(pb__shm_rx *rx, pb__wire_header *h, const unsigned char **body, const char **why) {
    if (rx->copy || rx->split) { /* the held frame again: its private copy was checked when it was made */
        const unsigned char *held = rx->split ? rx->split_head : rx->copy;
        if (pb__wire_header_decode(held, rx->max_frame, h, why) != 0) return PB_SHM_ERROR;
        *body = held + PB_WIRE_HEADER;
        return PB_SHM_GOT;
    }
    uint32_t head = atomic_load_explicit(&rx->c->head, memory_order_acquire);
    tsan_acquire(&rx->c->head);
    pb__shm_found f;
    int r = pb__shm_parse(rx->ring, rx->cap, rx->tail, head, rx->ovf_cap, rx->max_frame, &f, why);
    if (r == PB_SHM_NONE && atomic_load_explicit(&rx->c->closed, memory_order_acquire) &&
        atomic_load_explicit(&rx->c->head, memory_order_acquire) == head)
        return PB_SHM_END_OF_STREAM; /* closed with no room for the END record */
    if (r != PB_SHM_GOT) return r;
    const unsigned char *frame = f.in_ovf ? rx->ovf : rx->ring + f.off;
    unsigned char *copy = NULL;
    if (f.pull) {
        size_t frame_len = 0;
        if (!rx->pull_pid) {
            *why = "a pull record where none may be (only the parent may send one, to a worker that can pull)";
            return PB_SHM_ERROR;
        }
        if ((copy = pull_frame(rx, frame, f.len, &frame_len, why)) == NULL) return PB_SHM_ERROR;
        frame = copy;
        f.len = (uint32_t)frame_len;
    } else if (f.in_ovf && rx->copy_fd >= 0 && pb__shm_rents(&rx->rent, f.len)) {
        int split = rx->split_results ? split_out(rx, f.len) : 0;
        if (split > 0) frame = rx->split_head;
        else if (split == 0 && (copy = copy_out(rx, f.len)) != NULL) frame = copy;
    }
    unsigned char hdr[PB_WIRE_HEADER];
    memcpy(hdr, frame, sizeof hdr); /* f.len >= PB_WIRE_HEADER */
    compiler_barrier();
    int bad = pb__wire_header_decode(hdr, rx->max_frame, h, why) != 0;
    if (!bad && (size_t)PB_WIRE_HEADER + h->body_len != f.len) {
        *why = "frame length disagrees with its shared-memory record";
        bad = 1;
    }
    if (bad) {
        let_go_copy(rx, copy);
        drop_split(rx);
        return PB_SHM_ERROR;
    }
    *body = frame + PB_WIRE_HEADER;
    rx->copy = copy;
    rx->held = f.advance;
    rx->held_big = f.in_ovf || f.pull ? f.len : 0;
    rx->held_in_ovf = f.in_ovf;
    return PB_SHM_GOT;
}

void pb__shm_release(pb__shm_rx *rx) {
    if (!rx->held) return;
    pb__shm_rx_drop(rx);
    if (rx->held_big) {
        if (rx->held_in_ovf && rx->held_big > KEEP_RESIDENT) madvise(rx->ovf_w, round_page(rx->held_big), MADV_REMOVE);
        if (rx->own_cap > KEEP_RESIDENT) { /* one huge request does not stay pinned in the worker either */
            free(rx->own);
            rx->own = NULL;
            rx->own_cap = 0;
        }
        if (rx->held_in_ovf) atomic_store_explicit(&rx->c->ovf_busy, 0, memory_order_release);
    }
    rx->tail += rx->held;
    rx->held = rx->held_big = 0;
    tsan_release(&rx->c->tail);
    atomic_store(&rx->c->tail, rx->tail); /* seq_cst: pairs with the producer's waiters store */
    pb__shm_wake(&rx->c->tail, &rx->c->tail_waiters, rx->doorbell_fd);
}

int pb__shm_ready(const pb__shm_rx *rx) {
    return atomic_load_explicit(&rx->c->head, memory_order_acquire) != rx->tail ||
           atomic_load_explicit(&rx->c->closed, memory_order_acquire);
}

int pb__shm_closed(const pb__shm_rx *rx) { return atomic_load_explicit(&rx->c->closed, memory_order_acquire); }
