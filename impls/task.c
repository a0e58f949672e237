/*
 * task.c - the task registry, the task-side output API and the one place a task is actually called.
 *
 * Tasks are found by name: only the name and the bytes cross to a worker, so the same function runs on
 * every backend. The registry is a fixed array filled mostly by PB_TASK_DEFINE constructors before main();
 * it never shrinks, so a pb_task pointer stays valid for the life of the process. Writers serialize on a
 * mutex and publish an entry by a release store of the count; readers take no lock at all (an acquire
 * load of the count). That matters after fork: a fork worker looks tasks up in a copy of the parent's
 * memory, where a mutex held by another parent thread at the moment of fork would stay locked forever.
 *
 * pb__run_item() is shared by the serial and threads backends and by the process workers, so a task
 * behaves the same everywhere: outputs up to PB_RESULT_INLINE bytes live inside the pb_result (no malloc
 * per tiny task), larger ones on the heap, and any non-zero return becomes a TASK_ERROR with a message.
 */
#include "backend.h"
#include "wire.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PB_MAX_TASKS 1024

static pb_task registry[PB_MAX_TASKS];
static atomic_size_t registry_count; /* entries [0, count) are complete */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

int pb_task_register(const char *name, pb_task_fn fn) {
    if (!name || !*name || !fn) return pb__set_error(PB_EINVAL, "pb_task_register: NULL or empty name or function");
    if (strnlen(name, PB_TASK_NAME_MAX + 1) > PB_TASK_NAME_MAX)
        return pb__set_error(PB_EINVAL, "task name of %zu characters is over the limit of %d", strlen(name),
                             PB_TASK_NAME_MAX);
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    size_t n = atomic_load_explicit(&registry_count, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(registry[i].name, name) == 0) {
            if (registry[i].fn != fn) rc = pb__set_error(PB_EINVAL, "task '%s' is already registered with another function", name);
            pthread_mutex_unlock(&registry_lock);
            return rc;
        }
    }
    if (n == PB_MAX_TASKS) {
        rc = pb__set_error(-ENOMEM, "task registry full (%d tasks)", PB_MAX_TASKS);
    } else {
        registry[n].name = name;
        registry[n].fn = fn;
        atomic_store_explicit(&registry_count, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

const pb_task *pb_task_find(const char *name) {
    if (!name) return NULL;
    size_t n = atomic_load_explicit(&registry_count, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (strcmp(registry[i].name, name) == 0) return &registry[i];
    return NULL;
}

size_t pb_task_count(void) { return atomic_load_explicit(&registry_count, memory_order_acquire); }

const pb_task *pb_task_at(size_t i) { return i < pb_task_count() ? &registry[i] : NULL; }

/* ---- results ---- */

const void *pb_result_data(const pb_result *r) {
    if (!r || r->len == 0) return NULL;
    return r->heap ? r->heap : r->inline_data;
}

/* ---- large output blocks kept for reuse ----
 * A result over PB__POPULATE_FROM bytes that is cleared keeps its block here (up to KEEP_BLOCKS blocks and
 * KEEP_BYTES bytes in all), and the next large result the parent decodes takes it (pb__output_block).
 * Why: the process backends' I/O thread writes every large result into a new block, and on the reference
 * VM a page a process touches for the first time costs ~6-12 us (the hypervisor maps it), so a 1 MiB
 * result in fresh memory cost ~1.5 ms before the copy even started, every map, while the threads backend
 * writes into malloc's already warm heap (glibc gives large blocks back to the kernel on free when they
 * were mmap'd or top the heap). Every large output takes one (pb_output_alloc too: otherwise the kept
 * blocks would only pile up while each task output faulted in a new one). The blocks are plain malloc
 * blocks, so a result's heap stays free()-able. The lock is held across fork() (pthread_atfork), so a
 * forked worker never inherits it taken by a thread that does not exist in it.
 * While kept, a block's whole pages are MADV_DONTFORK: a fork or fork-shm pool forks its workers after the
 * blocks exist, and a block shared copy-on-write with them would cost the parent a fault and a 4 KiB copy
 * (with a TLB flush on the other vCPU) for each page it writes a result into, every map (measured on the
 * reference VM: ~17 us a page, 70 ms of a 16 x 1 MiB payload map). A forked child forgets the kept blocks
 * (it has no pages there); a block handed out is MADV_DOFORK again, so results are inherited as before. */
#define KEEP_BLOCKS 64
#define KEEP_BYTES (64u << 20)
static pthread_mutex_t keep_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kept_block {
    unsigned char *p;
    size_t cap;
} kept[KEEP_BLOCKS];
static size_t nkept, kept_bytes;
static pthread_once_t keep_once = PTHREAD_ONCE_INIT;

static void keep_lock_take(void) { pthread_mutex_lock(&keep_lock); }
static void keep_lock_give(void) { pthread_mutex_unlock(&keep_lock); }
static void keep_forget_in_child(void) {
    nkept = kept_bytes = 0; /* their pages were not inherited (MADV_DONTFORK) */
    pthread_mutex_unlock(&keep_lock);
}
/* Not under valgrind: its leak check at a forked child's exit reads every block the child believes it
 * holds, and a kept block's pages, not inherited, cost it a fault each: measured, 16 s per forked child
 * with 8 MiB kept against 0.3 s (the pool tests fork thousands of workers under valgrind in CI). Valgrind
 * announces itself in LD_PRELOAD (its vgpreload_*.so). Without the advice a fork pool is only slower. */
static int keep_unforked = 1;
static void keep_init(void) {
    const char *preload = getenv("LD_PRELOAD");
    keep_unforked = !(preload && strstr(preload, "vgpreload"));
    pthread_atfork(keep_lock_take, keep_lock_give, keep_forget_in_child);
}

int pb__output_blocks_unforked(void) {
    pthread_once(&keep_once, keep_init);
    return keep_unforked;
}

/* Advice for the whole pages of a block: they hold nothing but its bytes (malloc's own words lie before
 * and after them, in pages that stay as they are). */
static void advise_pages(unsigned char *p, size_t cap, int advice) {
    uintptr_t from = ((uintptr_t)p + 4095u) & ~(uintptr_t)4095u, to = ((uintptr_t)p + cap) & ~(uintptr_t)4095u;
    if (keep_unforked && to > from) (void)madvise((void *)from, to - from, advice); /* best effort */
}
void pb__block_fork_advice(void *p, size_t cap, int dontfork) {
    pthread_once(&keep_once, keep_init);
    advise_pages(p, cap, dontfork ? MADV_DONTFORK : MADV_DOFORK);
}

static void keep_lock_enter(void) {
    pthread_once(&keep_once, keep_init);
    pthread_mutex_lock(&keep_lock);
}

static void keep_block(unsigned char *p) {
    size_t cap = malloc_usable_size(p);
    if (cap <= KEEP_BYTES / 4) {
        keep_lock_enter();
        int taken = nkept < KEEP_BLOCKS && kept_bytes + cap <= KEEP_BYTES;
        if (taken) {
            kept[nkept++] = (struct kept_block){p, cap};
            kept_bytes += cap;
            advise_pages(p, cap, MADV_DONTFORK); /* under the lock: nobody takes it back before this */
        }
        pthread_mutex_unlock(&keep_lock);
        if (taken) return;
    }
    free(p);
}

void pb__output_block_give(unsigned char *p) { keep_block(p); }

unsigned char *pb__output_block(size_t len, int *warm) {
    *warm = 0;
    if (len >= PB__POPULATE_FROM) {
        keep_lock_enter();
        size_t best = nkept;
        for (size_t i = 0; i < nkept; i++) /* the smallest that fits, and not over twice the need */
            if (kept[i].cap >= len && kept[i].cap / 2 <= len && (best == nkept || kept[i].cap < kept[best].cap))
                best = i;
        unsigned char *p = NULL;
        if (best < nkept) {
            p = kept[best].p;
            advise_pages(p, kept[best].cap, MADV_DOFORK);
            kept_bytes -= kept[best].cap;
            kept[best] = kept[--nkept];
        }
        pthread_mutex_unlock(&keep_lock);
        if (p) {
            *warm = 1;
            return p;
        }
        /* Whole pages of its own: a kept block's first and last pages would otherwise hold malloc's words
         * and stay inherited by the next fork (advise_pages skips partial pages), so writing a result there
         * cost the parent two copy-on-write faults, each with a TLB flush on the other vCPU, per result per
         * map (perf on payload 16 x 1 MiB over fork-shm: 14 such faults a map in the I/O thread's pread). */
        size_t whole = (len + 4095u) & ~(size_t)4095u;
        if (whole >= len && posix_memalign((void **)&p, 4096, whole) == 0) return p;
        return NULL;
    }
    return malloc(len);
}

void pb_result_clear(pb_result *r) {
    if (!r) return;
    if (r->heap && r->len >= PB__POPULATE_FROM)
        keep_block(r->heap);
    else
        free(r->heap);
    free(r->message);
    memset(r, 0, sizeof *r);
}

void pb_results_clear(pb_result *r, size_t n) {
    if (!r) return;
    for (size_t i = 0; i < n; i++) pb_result_clear(&r[i]);
}

void pb_result_move(pb_result *dst, pb_result *src) {
    *dst = *src;
    memset(src, 0, sizeof *src);
}

void pb__result_fail(pb_result *r, int status, const char *fmt, ...) {
    free(r->heap);
    r->heap = NULL;
    r->len = 0;
    free(r->message);
    r->message = NULL;
    r->status = status;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&r->message, fmt, ap) < 0) r->message = NULL;
    va_end(ap);
}

/* ---- the task-side output API ---- */

struct pb_output {
    pb_result *r;
    size_t max;
    size_t refused;       /* size of an output refused for being over the limit (0 = none) */
    pb__out_spare *spare; /* a process worker's spare output block (backend.h), or NULL */
};

void *pb_output_alloc(pb_output *out, size_t len) {
    pb_result *r = out->r;
    if (len > out->max) {
        out->refused = len;
        return NULL;
    }
    pb__out_spare *spare = out->spare;
    int in_place = spare && r->heap && r->heap == spare->lent && spare->lent_in_place;
    if (len <= PB_RESULT_INLINE) {
        if (!in_place) free(r->heap);
        if (in_place) spare->lent = NULL;
        r->heap = NULL;
        r->len = len;
        return r->inline_data;
    }
    if (spare && !r->heap && spare->in_place && len > spare->in_place_from && len <= spare->in_place_cap) {
        r->heap = spare->lent = spare->in_place; /* where the worker's RESULT frame will carry it */
        spare->lent_cap = spare->in_place_cap;
        spare->lent_in_place = 1;
        if (len > spare->in_place_warm) { /* the area is sparse: its pages mapped in one call, not one by one */
            (void)pb__populate_write(spare->in_place + spare->in_place_warm, len - spare->in_place_warm);
            spare->in_place_warm = len;
        }
        r->len = len;
        return r->heap;
    }
    if (in_place && len > spare->lent_cap) { /* outgrew the overflow area: a block of its own */
        unsigned char *p = malloc(len);
        if (!p) return NULL;
        memcpy(p, r->heap, r->len);
        spare->lent = NULL;
        r->heap = p;
        r->len = len;
        return p;
    }
    if (spare && !r->heap && spare->buf && spare->cap >= len) { /* the last large output's block */
        r->heap = spare->lent = spare->buf;
        spare->lent_cap = spare->cap;
        spare->lent_in_place = 0;
        spare->buf = NULL;
        r->len = len;
        return r->heap;
    }
    if (spare && r->heap && r->heap == spare->lent && spare->lent_cap >= len) {
        r->len = len; /* a second alloc that still fits the lent block */
        return r->heap;
    }
    unsigned char *old = r->heap;
    if (!old && len >= PB__POPULATE_FROM) { /* a kept block when one fits (pb__output_block) */
        /* A worker's block, kept as its spare, in huge pages where they are worth the rounding up. */
        int warm = 0;
        size_t cap;
        unsigned char *p = spare && len >= PB__HUGE_FROM ? pb__alloc_huge(len, &cap) : pb__output_block(len, &warm);
        if (!p) return NULL;
        if (spare && !warm) (void)pb__populate_write(p, len);
        r->heap = p;
        r->len = len;
        return p;
    }
    unsigned char *p = realloc(r->heap, len);
    if (!p) return NULL;
    if (spare) {
        if (old && old == spare->lent) spare->lent = NULL; /* realloc took the lent block */
        if (p != old && len >= PB__POPULATE_FROM) (void)pb__populate_write(p, len);
    }
    r->heap = p;
    r->len = len;
    return p;
}

int pb_output_set(pb_output *out, const void *data, size_t len) {
    void *p = pb_output_alloc(out, len);
    if (!p) return len > out->max ? PB_ETOOBIG : -ENOMEM;
    if (len) memcpy(p, data, len);
    return 0;
}

int pb_output_error(pb_output *out, const char *fmt, ...) {
    pb_result *r = out->r;
    free(r->message);
    r->message = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&r->message, fmt, ap) < 0) r->message = NULL;
    va_end(ap);
    return -1;
}

void pb__run_item(const pb_task *task, const void *in, size_t len, size_t max_out, pb_result *r) {
    pb__run_item_spare(task, in, len, max_out, r, NULL);
}

/* A result whose output still lies in place (in the overflow area, not a malloc block) lets go of it. */
static void let_go_in_place(pb__out_spare *spare, pb_result *r) {
    if (spare && r->heap && r->heap == spare->lent && spare->lent_in_place) {
        r->heap = NULL;
        r->len = 0;
        spare->lent = NULL;
    }
}

void pb__out_spare_keep(pb__out_spare *spare, pb_result *r, size_t keep) {
    let_go_in_place(spare, r);
    unsigned char *lent = spare->lent;
    size_t lent_cap = spare->lent_cap;
    spare->lent = NULL;
    if (!r->heap || r->len < PB__POPULATE_FROM) return; /* small outputs: malloc serves them well */
    size_t cap = r->heap == lent ? lent_cap : r->len;
    if (cap > keep) return; /* one huge output is not pinned for the worker's life */
    free(spare->buf); /* a smaller spare the output could not use */
    spare->buf = r->heap;
    spare->cap = cap;
    r->heap = NULL;
    r->len = 0;
}

void pb__out_spare_free(pb__out_spare *spare) {
    free(spare->buf);
    memset(spare, 0, sizeof *spare);
}

void pb__run_item_spare(const pb_task *task, const void *in, size_t len, size_t max_out, pb_result *r,
                        pb__out_spare *spare) {
    if (spare) spare->lent = NULL;
    pb_output out = {.r = r, .max = max_out, .refused = 0, .spare = spare};
    int rc = task->fn(in, len, &out);
    if (rc != 0 || out.refused) let_go_in_place(spare, r); /* a failed item's output is dropped, not freed */
    if (rc != 0) {
        if (r->message) {
            char *msg = r->message;
            r->message = NULL;
            pb__result_fail(r, PB_STATUS_TASK_ERROR, "%s", msg);
            free(msg);
        } else if (out.refused) {
            pb__result_fail(r, PB_STATUS_TASK_ERROR, "task '%s': output of %zu bytes is over the limit of %zu",
                            task->name, out.refused, max_out);
        } else {
            pb__result_fail(r, PB_STATUS_TASK_ERROR, "task '%s' failed (returned %d)", task->name, rc);
        }
        return;
    }
    if (out.refused) {
        pb__result_fail(r, PB_STATUS_TASK_ERROR, "task '%s': output of %zu bytes is over the limit of %zu",
                        task->name, out.refused, max_out);
        return;
    }
    free(r->message); /* a message on success is ignored: ok results carry none */
    r->message = NULL;
    r->status = PB_STATUS_OK;
}
