/*
 * syscalls.c - the fault-injection side of the system-call table (see syscalls.h): compiled to nothing
 * unless POOLBENCH_FAULT_INJECTION is defined.
 *
 * Every hooked call first counts itself, then asks whether a test armed a failure for this count. State
 * is a few atomics per call, so the wrappers are safe from the I/O thread, from user threads (dispatch
 * writes requests) and in a fork child before exec (lock-free atomics are async-signal-safe). A failure
 * armed with pb__fault_arm(id, nth, err, mode) hits the call whose count reaches `target`, the count when
 * it was armed plus nth; with PB__FAULT_PERSIST every later call fails too.
 */
#include "syscalls.h"

#ifdef POOLBENCH_FAULT_INJECTION

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>

typedef struct fault {
    atomic_ulong calls;
    atomic_ulong injected;
    atomic_ulong target; /* 0 = unarmed */
    atomic_int err;
    atomic_int mode;
} fault;

static fault faults[PB__SYS_COUNT];

static const char *const names[PB__SYS_COUNT] = {"fork",  "pipe2",   "posix_spawn", "read",  "write",
                                                 "poll",  "eventfd", "waitpid",     "fcntl", "pthread_create",
                                                 "pidfd_open", "epoll_create1", "epoll_ctl", "pwritev", "pread",
                                                 "process_vm_readv"};

/* Counts a call of id; returns the errno to fail it with, or 0 to make the real call. */
static int hit(int id) {
    fault *f = &faults[id];
    unsigned long n = atomic_fetch_add(&f->calls, 1) + 1;
    unsigned long t = atomic_load(&f->target);
    if (t == 0 || n < t) return 0;
    if (n > t && atomic_load(&f->mode) != PB__FAULT_PERSIST) return 0;
    atomic_fetch_add(&f->injected, 1);
    return atomic_load(&f->err);
}

static void disarm_all(void) {
    for (int i = 0; i < PB__SYS_COUNT; i++) atomic_store(&faults[i].target, 0);
}

static pid_t h_fork(void) {
    int e = hit(PB__SYS_FORK);
    if (e) {
        errno = e;
        return -1;
    }
    pid_t p = fork();
    if (p == 0) disarm_all(); /* faults belong to the process that armed them (see syscalls.h) */
    return p;
}

static int h_pipe2(int fds[2], int flags) {
    int e = hit(PB__SYS_PIPE2);
    if (e) {
        errno = e;
        return -1;
    }
    return pipe2(fds, flags);
}

static int h_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                         const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
    int e = hit(PB__SYS_POSIX_SPAWN);
    if (e) return e; /* posix_spawn returns the error number */
    return posix_spawn(pid, path, fa, attr, argv, envp);
}

static ssize_t h_read(int fd, void *buf, size_t len) {
    int e = hit(PB__SYS_READ);
    if (e) {
        errno = e;
        return -1;
    }
    return read(fd, buf, len);
}

static ssize_t h_write(int fd, const void *buf, size_t len) {
    int e = hit(PB__SYS_WRITE);
    if (e) {
        errno = e;
        return -1;
    }
    return write(fd, buf, len);
}

static int h_poll(struct pollfd *fds, nfds_t n, int timeout_ms) {
    int e = hit(PB__SYS_POLL);
    if (e) {
        errno = e;
        return -1;
    }
    return poll(fds, n, timeout_ms);
}

static int h_eventfd(unsigned int initval, int flags) {
    int e = hit(PB__SYS_EVENTFD);
    if (e) {
        errno = e;
        return -1;
    }
    return eventfd(initval, flags);
}

static pid_t h_waitpid(pid_t pid, int *status, int options) {
    int e = hit(PB__SYS_WAITPID);
    if (e) {
        errno = e;
        return -1;
    }
    return waitpid(pid, status, options);
}

/* The backends only use commands with an int argument (F_DUPFD_CLOEXEC, F_SETFL). */
static int h_fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    int arg = va_arg(ap, int);
    va_end(ap);
    int e = hit(PB__SYS_FCNTL);
    if (e) {
        errno = e;
        return -1;
    }
    return fcntl(fd, cmd, arg);
}

static int h_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
    int e = hit(PB__SYS_PTHREAD_CREATE);
    if (e) return e; /* pthread_create returns the error number */
    return pthread_create(t, attr, fn, arg);
}

static int h_pidfd_open(pid_t pid, unsigned int flags) {
    int e = hit(PB__SYS_PIDFD_OPEN);
    if (e) {
        errno = e;
        return -1;
    }
    return pb__pidfd_open(pid, flags);
}

static int h_epoll_create1(int flags) {
    int e = hit(PB__SYS_EPOLL_CREATE1);
    if (e) {
        errno = e;
        return -1;
    }
    return epoll_create1(flags);
}

static int h_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
    int e = hit(PB__SYS_EPOLL_CTL);
    if (e) {
        errno = e;
        return -1;
    }
    return epoll_ctl(epfd, op, fd, ev);
}

static ssize_t h_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off) {
    int e = hit(PB__SYS_PWRITEV);
    if (e) {
        errno = e;
        return -1;
    }
    return pwritev(fd, iov, iovcnt, off);
}

static ssize_t h_pread(int fd, void *buf, size_t len, off_t off) {
    int e = hit(PB__SYS_PREAD);
    if (e) {
        errno = e;
        return -1;
    }
    return pread(fd, buf, len, off);
}

static ssize_t h_process_vm_readv(pid_t pid, const struct iovec *local, unsigned long nlocal,
                                  const struct iovec *remote, unsigned long nremote, unsigned long flags) {
    int e = hit(PB__SYS_PROCESS_VM_READV);
    if (e) {
        errno = e;
        return -1;
    }
    return process_vm_readv(pid, local, nlocal, remote, nremote, flags);
}

pb__syscalls pb__sys = {h_fork,    h_pipe2,   h_posix_spawn, h_read,           h_write,      h_poll,
                        h_eventfd, h_waitpid, h_fcntl,       h_pthread_create, h_pidfd_open, h_epoll_create1,
                        h_epoll_ctl, h_pwritev, h_pread, h_process_vm_readv};

const char *pb__sys_name(int id) { return id >= 0 && id < PB__SYS_COUNT ? names[id] : "?"; }

int pb__fault_arm(int id, unsigned long nth, int err, int mode) {
    if (id < 0 || id >= PB__SYS_COUNT || nth == 0 || err <= 0) return -EINVAL;
    fault *f = &faults[id];
    atomic_store(&f->err, err);
    atomic_store(&f->mode, mode);
    atomic_store(&f->target, atomic_load(&f->calls) + nth);
    return 0;
}

unsigned long pb__fault_calls(int id) {
    return id >= 0 && id < PB__SYS_COUNT ? atomic_load(&faults[id].calls) : 0;
}

unsigned long pb__fault_injected(int id) {
    return id >= 0 && id < PB__SYS_COUNT ? atomic_load(&faults[id].injected) : 0;
}

void pb__fault_disarm(void) { disarm_all(); }

void pb__fault_reset(void) {
    disarm_all();
    for (int i = 0; i < PB__SYS_COUNT; i++) {
        atomic_store(&faults[i].calls, 0);
        atomic_store(&faults[i].injected, 0);
    }
}

#else
/* Normal builds reach the libc functions directly through syscalls.h: nothing to compile here. */
typedef int pb__syscalls_unused;
#endif
