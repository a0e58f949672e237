/*
 * modules.c - loads a reference backend's module (libpoolbench-<name>.so) the first time a pool of that
 * backend is created. reference.h says why the reference backends are modules.
 *
 * Where it looks, first found wins (the places are tried in this order and every failure is kept for the
 * message):
 *   1. $POOLBENCH_MODULE_DIR, when set, and then nowhere else (tests and packagers use it to be sure);
 *   2. poolbench/ beside the shared libpoolbench that holds this code (an installed libpoolbench.so finds
 *      the modules installed with it, wherever the prefix was moved);
 *   3. the build tree's modules/ directory (the programs of a build, tests included, before any install);
 *   4. the configured install directory, <libdir>/poolbench (a program linked with the installed static
 *      library).
 * A module is loaded once per process (RTLD_NOW | RTLD_LOCAL, under a mutex) and never unloaded: its
 * backend's threads and pools may live until exit. A module that cannot be loaded, lacks the entry, or
 * refuses this library's ABI makes pool creation fail with PB_ENOBACKEND and a message naming each place
 * tried and what went wrong there; the next attempt tries again.
 */
#include "reference.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int host_set_error(int err, const char *message) { return pb__set_error(err, "%s", message); }

static const pb__ref_host host = {
    .abi = PB_REF_MODULE_ABI,
    .sizes = {sizeof(pb_backend), sizeof(pb__job), sizeof(pb_result), sizeof(pb_options)},
    .set_error = host_set_error,
    .count = pb__count,
    .job_done = pb__job_done,
    .job_fail = pb__job_fail,
    .ref_init = pb__ref_init,
    .ref_run_items = pb__ref_run_items,
    .ref_run_job = pb__ref_run_job,
    .ref_terminate_job = pb__ref_terminate_job,
};

#define MAX_MODULES 8
static pthread_mutex_t modules_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[32];
    const pb_backend *backend;
} loaded[MAX_MODULES];

/* The directory of the shared libpoolbench holding this code + "/poolbench", or "" when this code is part
 * of the program itself (a static libpoolbench): then the build tree and the install directory are the
 * places to look. */
static void library_dir(char *out, size_t len) {
    out[0] = '\0';
    Dl_info info;
    if (!dladdr((void *)&pb__module_backend, &info) || !info.dli_fname) return;
    const char *slash = strrchr(info.dli_fname, '/');
    const char *base = slash ? slash + 1 : info.dli_fname;
    if (!slash || strncmp(base, "libpoolbench", 12) != 0 || !strstr(base, ".so")) return;
    snprintf(out, len, "%.*s/poolbench", (int)(slash - info.dli_fname), info.dli_fname);
}

/* Appends "; " (unless msg is empty) and the formatted text to msg, truncating. */
static void append(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *msg, size_t msglen, const char *fmt, ...) {
    size_t used = strlen(msg);
    if (used && used + 2 < msglen) {
        memcpy(msg + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + used, msglen - used, fmt, ap);
    va_end(ap);
}

/* Tries dir/libpoolbench-<name>.so; the backend, or NULL with why appended to msg. */
static const pb_backend *try_dir(const char *dir, const char *name, char *msg, size_t msglen) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/libpoolbench-%s.so", dir, name) >= (int)sizeof path) {
        append(msg, msglen, "%.64s...: the path is too long", dir);
        return NULL;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        append(msg, msglen, "%s", dlerror());
        return NULL;
    }
    pb__ref_module_entry entry;
    *(void **)&entry = dlsym(h, PB_REF_MODULE_ENTRY);
    char why[256] = "";
    const pb_backend *b = entry ? entry(&host, why, sizeof why) : NULL;
    if (!entry) snprintf(why, sizeof why, "it has no %s", PB_REF_MODULE_ENTRY);
    if (b && (!b->name || strcmp(b->name, name) != 0)) {
        snprintf(why, sizeof why, "it holds backend '%.64s', not '%s'", b->name ? b->name : "(null)", name);
        b = NULL;
    }
    if (!b) {
        append(msg, msglen, "%s: %s", path, why);
        dlclose(h);
    }
    return b;
}

const pb_backend *pb__module_backend(const char *name) {
    pthread_mutex_lock(&modules_mu);
    int free_slot = -1;
    for (int i = 0; i < MAX_MODULES; i++) {
        if (loaded[i].backend && strcmp(loaded[i].name, name) == 0) {
            const pb_backend *b = loaded[i].backend;
            pthread_mutex_unlock(&modules_mu);
            return b;
        }
        if (!loaded[i].backend && free_slot < 0) free_slot = i;
    }
    char dirs[3][4096];
    int ndirs = 0;
    const char *env = getenv("POOLBENCH_MODULE_DIR");
    if (env && *env) {
        if (snprintf(dirs[ndirs], sizeof dirs[0], "%s", env) < (int)sizeof dirs[0]) ndirs++;
    } else {
        library_dir(dirs[ndirs], sizeof dirs[0]);
        if (dirs[ndirs][0]) ndirs++;
#ifdef POOLBENCH_MODULE_BUILD_DIR
        snprintf(dirs[ndirs++], sizeof dirs[0], "%s", POOLBENCH_MODULE_BUILD_DIR);
#endif
#ifdef POOLBENCH_MODULE_INSTALL_DIR
        snprintf(dirs[ndirs++], sizeof dirs[0], "%s", POOLBENCH_MODULE_INSTALL_DIR);
#endif
    }
    char msg[2048] = "";
    const pb_backend *b = NULL;
    for (int i = 0; i < ndirs && !b; i++) b = try_dir(dirs[i], name, msg, sizeof msg);
    if (b && free_slot >= 0) {
        snprintf(loaded[free_slot].name, sizeof loaded[free_slot].name, "%s", name);
        loaded[free_slot].backend = b;
    }
    pthread_mutex_unlock(&modules_mu);
    if (!b)
        pb__set_error(PB_ENOBACKEND, "backend '%s' is a module that could not be loaded (%s)%s", name,
                      msg[0] ? msg : "no place to look",
                      env && *env ? "" : "; set POOLBENCH_MODULE_DIR to the directory holding it");
    return b;
}
