/*
 * syscalls.h - the system calls of the process backends, reached through one table so that tests can
 * make them fail (after SQLite's xSetSystemCall). Internal.
 *
 * procpool.c, fork.c, spawn.c and worker.c call pb__sys.fork(), pb__sys.read(), ... instead of the libc
 * functions, for every call that can fail in a way the pool must handle. Two builds:
 *
 *  - Normal builds (POOLBENCH_FAULT_INJECTION undefined): pb__sys is a `static const` table of the libc
 *    functions defined right here, so the compiler folds pb__sys.read(...) into a direct call to read():
 *    no indirection, no counter, nothing to switch on. The Release library has no hook overhead.
 *  - Fault-injection builds (CMake option POOLBENCH_FAULT_INJECTION, on by default when the tests are
 *    built): pb__sys is one mutable table (syscalls.c) whose entries count every call and fail the
 *    ones a test armed with pb__fault_arm(): errno set and -1 returned (or the error number returned,
 *    for posix_spawn and pthread_create, whose contract that is).
 *
 * Deliberately not in the table: close() (nothing to recover), kill() on our own unreaped child (it
 * cannot fail, and an injected failure could only turn into a real hang in waitpid), the eventfd wake-up
 * read()/write() (an eventfd counter cannot overflow here, so they cannot fail; an injected failure would
 * only lose a wake-up that nothing could ever lose), and the calls a fork child makes before the worker
 * loop (async-signal-safe setup that already ends in _exit(127) on failure).
 *
 * epoll_create1 and epoll_ctl serve the I/O thread's watch on result pipes (watch.c); when they fail the
 * pool polls those pipes directly, as it did before the watch existed, so a test can fail them freely.
 *
 * pwritev writes a large request into a shm worker's overflow area and pread reads a large result out of
 * it (shm.c, pb__shm_put_gather, pb__shm_rx_copy_out); when they fail the frame goes through the mapping
 * instead, so a test can fail them freely too.
 *
 * process_vm_readv is a shm worker's read of a pulled request from the parent's memory (shm.c,
 * pb__shm_pull_probe, pull_frame): when the probe fails the parent keeps copying requests itself, so a
 * test can fail it freely in a worker (armed there, since faults do not cross processes).
 *
 * pidfd_open is called through syscall() (glibc added a wrapper only in 2.36): a kernel before 5.3 says
 * ENOSYS, and the pool falls back to checking its workers periodically (procpool.c, "Deaths").
 */
#ifndef POOLBENCH_SYSCALLS_H
#define POOLBENCH_SYSCALLS_H

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* the same number on every architecture */
#endif

/* A file descriptor that becomes readable when process pid exits (Linux >= 5.3); always close-on-exec. */
static inline int pb__pidfd_open(pid_t pid, unsigned int flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }

typedef struct pb__syscalls {
    pid_t (*fork)(void);
    int (*pipe2)(int fds[2], int flags);
    int (*posix_spawn)(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
    ssize_t (*read)(int fd, void *buf, size_t len);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    int (*poll)(struct pollfd *fds, nfds_t n, int timeout_ms);
    int (*eventfd)(unsigned int initval, int flags);
    pid_t (*waitpid)(pid_t pid, int *status, int options);
    int (*fcntl)(int fd, int cmd, ...);
    int (*pthread_create)(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
    int (*pidfd_open)(pid_t pid, unsigned int flags);
    int (*epoll_create1)(int flags);
    int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *ev);
    ssize_t (*pwritev)(int fd, const struct iovec *iov, int iovcnt, off_t off);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
    ssize_t (*process_vm_readv)(pid_t pid, const struct iovec *local, unsigned long nlocal,
                                const struct iovec *remote, unsigned long nremote, unsigned long flags);
} pb__syscalls;

#ifdef POOLBENCH_FAULT_INJECTION

extern pb__syscalls pb__sys;

/* Which call (indexes the table's order). */
typedef enum pb__sys_id {
    PB__SYS_FORK,
    PB__SYS_PIPE2,
    PB__SYS_POSIX_SPAWN,
    PB__SYS_READ,
    PB__SYS_WRITE,
    PB__SYS_POLL,
    PB__SYS_EVENTFD,
    PB__SYS_WAITPID,
    PB__SYS_FCNTL,
    PB__SYS_PTHREAD_CREATE,
    PB__SYS_PIDFD_OPEN,
    PB__SYS_EPOLL_CREATE1,
    PB__SYS_EPOLL_CTL,
    PB__SYS_PWRITEV,
    PB__SYS_PREAD,
    PB__SYS_PROCESS_VM_READV,
    PB__SYS_COUNT
} pb__sys_id;

#define PB__FAULT_ONCE 0       /* only the nth call fails */
#define PB__FAULT_PERSIST 1    /* the nth call and every later one fail */

/* Test-only API. Faults are armed for the process that armed them: a fork child starts with none
 * (the hooked fork() disarms them in the child), a spawned worker is a fresh program. Thread-safe. */
const char *pb__sys_name(int id);                  /* "fork", "pipe2", ... */
/* Makes the nth call of `id` counted from now (1 = the next one) fail with err. 0, or -EINVAL. */
int pb__fault_arm(int id, unsigned long nth, int err, int mode);
unsigned long pb__fault_calls(int id);    /* calls of id since the last reset */
unsigned long pb__fault_injected(int id); /* failures injected into id since the last reset */
void pb__fault_disarm(void);              /* disarms everything, keeps the counts */
void pb__fault_reset(void);               /* disarms everything and zeroes the counts */

#else /* the default: direct calls */

/* Folded into direct calls by the compiler: the table is constant and its values are known here. */
static const pb__syscalls pb__sys = {fork,    pipe2, posix_spawn,    read,           write,         poll,
                                     eventfd, waitpid, fcntl,        pthread_create, pb__pidfd_open, epoll_create1,
                                     epoll_ctl, pwritev, pread, process_vm_readv};

#endif
#endif
