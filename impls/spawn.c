/*
 * spawn.c - the "spawn" backend: worker processes started fresh with posix_spawn (Python's "spawn").
 *
 * Only the birth of a worker lives here; the pool machinery is procpool.c and the worker loop worker.c,
 * shared with the fork backend. A spawned worker shares nothing with the host but what the exec gives it,
 * so it is safe for large or multithreaded hosts that cannot fork safely.
 *
 * The worker program. By default the running program re-executes itself (/proc/self/exe): any program
 * linking libpoolbench has the worker loop and, through PB_TASK_DEFINE constructors, the same tasks. The
 * program can be overridden by pb_options.worker_program, else $POOLBENCH_WORKER_PROGRAM. The parent puts
 * POOLBENCH_WORKER=<protocol>:<parent pid> in the worker's environment only; the worker sees it once
 * every PB_TASK_DEFINE task of every object loaded at start-up is registered (static and shared builds
 * alike: see "worker mode" below), removes it at once (so programs the worker's tasks start are not
 * workers), sets PR_SET_PDEATHSIG, runs the worker loop and _exit()s before main(). A program that
 * registers tasks at run time instead defines
 *     const int pb_spawn_worker_manual = 1;
 * and calls pb_worker_main_if_requested() once its tasks are registered (see proc.h).
 *
 * The child. File actions dup2 the pipes onto fds 3 and 4 and close every fd from 5 up
 * (posix_spawn_file_actions_addclosefrom_np), so nothing but stdin, stdout and stderr is inherited;
 * attributes reset every signal disposition to SIG_DFL and set the signal mask of the thread that created
 * the pool (POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK). glibc's posix_spawn reports a failed exec
 * (missing or non-executable program) as its return value, so such a pool fails in create with the path
 * and the reason; a program that runs but does not speak the protocol fails the start-up handshake.
 */
#include "proc.h"
#include "syscalls.h"
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <link.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

typedef struct spawn_ctx {
    char *path;     /* what we exec */
    char *describe; /* "worker program '/real/path'" */
    sigset_t mask;
} spawn_ctx;

static int spawn_start(void *vctx, int req_rd, int resp_wr, pid_t *pid, char *err, size_t errlen) {
    spawn_ctx *c = vctx;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t def;
    char var[64];
    snprintf(var, sizeof var, PB_PROC_WORKER_ENV "=%d:%ld", PB_WIRE_VERSION, (long)getpid());

    /* The environment: ours minus any stale worker marker, plus the marker. */
    size_t n = 0;
    for (char **e = environ; e && *e; e++) n++;
    char **envp = malloc((n + 2) * sizeof *envp);
    if (!envp) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    size_t k = 0;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, PB_PROC_WORKER_ENV "=", sizeof PB_PROC_WORKER_ENV) != 0) envp[k++] = *e;
    envp[k++] = var;
    envp[k] = NULL;
    char *argv[] = {c->path, (char *)"--poolbench-worker", NULL};

    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    sigfillset(&def);
    int rc = posix_spawn_file_actions_adddup2(&fa, req_rd, PB_PROC_REQ_FD);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, resp_wr, PB_PROC_RESP_FD);
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(&fa, PB_PROC_RESP_FD + 1);
    if (!rc) rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (!rc) rc = posix_spawnattr_setsigmask(&at, &c->mask);
    if (!rc) rc = posix_spawnattr_setsigdefault(&at, &def);
    if (!rc) rc = pb__sys.posix_spawn(pid, c->path, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(envp);
    if (rc) {
        snprintf(err, errlen, "cannot start %s (posix_spawn): %s", c->describe, strerror(rc));
        return -rc;
    }
    return 0;
}

static const char *spawn_describe(void *ctx) { return ((spawn_ctx *)ctx)->describe; }

static void spawn_release(void *ctx) {
    spawn_ctx *c = ctx;
    if (!c) return;
    free(c->path);
    free(c->describe);
    free(c);
}

static const pb__proc_birth spawn_birth = {"spawn", spawn_start, spawn_describe, spawn_release};

static int spawn_create(pb_pool *pool, const pb_options *opts, void **impl) {
    spawn_ctx *c = calloc(1, sizeof *c);
    if (!c) return pb__set_error(-ENOMEM, "out of memory");
    const char *path = opts->worker_program;
    if (!path || !*path) path = getenv("POOLBENCH_WORKER_PROGRAM");
    if (!path || !*path) path = "/proc/self/exe";
    c->path = strdup(path);
    /* Name the real file in messages: "/proc/self/exe" tells a user nothing. */
    char real[PATH_MAX];
    const char *shown = path;
    if (strcmp(path, "/proc/self/exe") == 0) {
        ssize_t len = readlink(path, real, sizeof real - 1);
        if (len > 0) {
            real[len] = '\0';
            shown = real;
        }
    }
    if (asprintf(&c->describe, "worker program '%s'", shown) < 0) c->describe = NULL;
    if (!c->path || !c->describe) {
        spawn_release(c);
        return pb__set_error(-ENOMEM, "out of memory");
    }
    pthread_sigmask(SIG_SETMASK, NULL, &c->mask);
    return pb__proc_create(pool, opts, &spawn_birth, c, impl);
}

/* ---- worker mode: entering the worker loop once every start-up task is registered ----
 *
 * Constructor priorities order constructors only within one linked object (GNU ld sorts .init_array.NNNNN
 * per output file); across objects the dynamic loader runs a library's constructors before those of the
 * objects that need it, and the executable's last. So in a shared-library build a constructor of
 * libpoolbench.so runs before the PB_TASK_DEFINE constructors of the program, whatever its priority.
 *
 * PB_TASK_DEFINE therefore puts, next to each registration constructor (priority 150), a pointer to
 * pb__spawn_worker_late_entry in .init_array.65535 of the user's own object: it runs after every
 * registration of that object. A spawn worker must enter its loop at the last of these calls, when every
 * object loaded at start-up (the executable, its shared libraries, libraries linked statically into
 * either) has registered its tasks, whatever order the loader chose. All those objects are mapped and
 * relocated before the first constructor runs, so the number of such pointers in their init arrays is
 * known at the first call: count them once, enter at the last one. Outside worker mode a call is one
 * getenv(). A program that holds no such pointer (no PB_TASK_DEFINE anywhere: it registers its tasks
 * otherwise, or has none) enters from the library constructor below, as every program did before. */

/* The program asked to enter the loop itself (pb_worker_main_if_requested in main, see poolbench.h). */
extern const int pb_spawn_worker_manual __attribute__((weak));

static int worker_mode_automatic(void) {
    if (&pb_spawn_worker_manual != NULL && pb_spawn_worker_manual) return 0;
    return getenv(PB_PROC_WORKER_ENV) != NULL;
}

/* dl_iterate_phdr callback: adds to *count the entries of this object's init array that are
 * pb__spawn_worker_late_entry. DT_INIT_ARRAY is not relocated in place by the loader: add the base. */
static int count_late_entries_in_object(struct dl_phdr_info *info, size_t size, void *count) {
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
        uintptr_t array = 0;
        size_t bytes = 0;
        for (const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
             d->d_tag != DT_NULL; d++) {
            if (d->d_tag == DT_INIT_ARRAY) array = info->dlpi_addr + d->d_un.d_ptr;
            else if (d->d_tag == DT_INIT_ARRAYSZ) bytes = d->d_un.d_val;
        }
        if (!array) continue;
        const uintptr_t *entry = (const uintptr_t *)array;
        for (size_t k = 0; k < bytes / sizeof *entry; k++)
            if (entry[k] == (uintptr_t)pb__spawn_worker_late_entry) ++*(size_t *)count;
    }
    return 0;
}

/* How many PB_TASK_DEFINE late entries the objects loaded at start-up hold; counted on first use. */
static size_t late_entries_in_program(void) {
    static size_t count;
    static int counted;
    if (!counted) {
        dl_iterate_phdr(count_late_entries_in_object, &count);
        counted = 1;
    }
    return count;
}

void pb__spawn_worker_late_entry(void) {
    static size_t calls;
    if (!worker_mode_automatic()) return;
    if (++calls < late_entries_in_program()) return;
    pb_worker_main_if_requested();
}

__attribute__((constructor(60000))) static void spawn_worker_entry(void) {
    if (worker_mode_automatic() && late_entries_in_program() == 0) pb_worker_main_if_requested();
}

const pb_backend pb_backend_spawn = {
    .version = 2,
    .name = "spawn",
    .description = "posix_spawn'ed worker processes (a fresh exec), framed protocol over pipes",
    .caps = PB_CAP_ASYNC | PB_CAP_CRASH_ISOLATION | PB_CAP_TIMEOUT | PB_CAP_RECYCLE,
    .create = spawn_create,
    .dispatch = pb__proc_dispatch,
    .shutdown = pb__proc_shutdown,
    .terminate = pb__proc_terminate,
    .destroy = pb__proc_destroy,
    .wait_progress = pb__proc_wait_progress,
};
