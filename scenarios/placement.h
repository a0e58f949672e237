/*
 * placement.h - where a round-trip floor runs: two CPUs, pinned (header-only; the scenarios' floors and
 * poolbench-micro share it).
 *
 * A round trip's cost depends on where its two ends run, on a VM by a factor of ten: waking a thread on
 * the waker's own CPU costs a few microseconds, waking an idle vCPU an exit to the hypervisor and back
 * (2-vCPU Firecracker VM, 2026-12-04: a pipe round trip 5.2 us with both processes on one CPU, 59 us
 * across two). Unpinned, the scheduler picks either from one run to the next: the pipe floor measured
 * 33.8 us in one `poolbench run` and 5.0 us in the next, a second later. A floor that moves tenfold with the
 * scheduler's mood is no floor, so the round-trip floors pin their two ends: the measuring thread on the
 * first allowed CPU (`here`), its partner on the second (`there`, where a pool's workers are meant to run)
 * or, for the one-CPU variant, on `here` too. With a single allowed CPU nothing is pinned.
 */
#ifndef POOLBENCH_PLACEMENT_H
#define POOLBENCH_PLACEMENT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>

typedef struct pbs_cpu_pair {
    int ok;          /* two distinct CPUs are allowed */
    int here, there; /* the measuring thread's CPU and its partner's */
} pbs_cpu_pair;

/* The first two CPUs this thread may run on. */
static inline pbs_cpu_pair pbs_cpu_pair_find(void) {
    pbs_cpu_pair p = {0, -1, -1};
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return p;
    int found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &allowed)) *(found++ ? &p.there : &p.here) = c;
    p.ok = found == 2;
    return p;
}

/* The partner's CPU: across from the measuring thread (near = 0), beside it (near = 1), or -1 (no pair). */
static inline int pbs_partner_cpu(const pbs_cpu_pair *p, int near) {
    return !p->ok ? -1 : near ? p->here : p->there;
}

static inline int pbs_main_cpu(const pbs_cpu_pair *p) { return p->ok ? p->here : -1; }

static inline void pbs_one_cpu_set(int cpu, cpu_set_t *set) {
    CPU_ZERO(set);
    CPU_SET(cpu, set);
}

/* Pins the calling thread (or, in a child just forked, the process) to cpu, keeping its mask in *saved
 * for pbs_unpin; cpu < 0 leaves it alone. A system call only: safe in a child after fork. */
static inline void pbs_pin(int cpu, cpu_set_t *saved) {
    CPU_ZERO(saved);
    if (cpu < 0 || sched_getaffinity(0, sizeof *saved, saved) != 0) {
        CPU_ZERO(saved);
        return;
    }
    cpu_set_t one;
    pbs_one_cpu_set(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) CPU_ZERO(saved);
}

static inline void pbs_unpin(const cpu_set_t *saved) {
    if (CPU_COUNT(saved) > 0) (void)sched_setaffinity(0, sizeof *saved, saved);
}

/* pthread_create of a thread that runs on cpu from its first instruction (cpu < 0: anywhere).
 * 0 or an errno, as pthread_create. */
static inline int pbs_thread_create_on(pthread_t *t, int cpu, void *(*fn)(void *), void *arg) {
    pthread_attr_t attr;
    int e = pthread_attr_init(&attr);
    if (e) return e;
    if (cpu >= 0) {
        cpu_set_t one;
        pbs_one_cpu_set(cpu, &one);
        e = pthread_attr_setaffinity_np(&attr, sizeof one, &one);
    }
    if (!e) e = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return e;
}

#endif
