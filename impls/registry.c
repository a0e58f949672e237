/*
 * registry.c - the backends, found by name. Adding a backend is one line in `backends` below.
 * The first entry named by PB_DEFAULT_BACKEND is what a NULL backend name means.
 *
 * The reference backends (glib, libuv, openmp) are built only when their library was found
 * (impls/reference-backends.cmake), each as a module loaded when a pool of it is first created
 * (reference.h, modules.c): here they are stubs with a name, a description and capabilities, and no
 * create (pool.c asks modules.c for the real backend). A build without one still knows its name and why
 * it is missing, so `--backend glib` can say "not built in (GLib was not found at configure time)"
 * instead of "unknown".
 * openmp comes last: libgomp is not fork-safe once its threads exist, and the conformance table runs the
 * backends in this order in one process, so no fork-based backend runs after it there.
 */
#include "reference.h"

#include <string.h>

#define PB_DEFAULT_BACKEND "threads"

#define MODULE_STUB(var, backend_name, desc) \
    static const pb_backend var = {.version = 1, .name = backend_name, .description = desc, .caps = PB_REF_CAPS};
#ifdef POOLBENCH_HAVE_GLIB
MODULE_STUB(glib_stub, "glib", PB_REF_GLIB_DESCRIPTION)
#endif
#ifdef POOLBENCH_HAVE_LIBUV
MODULE_STUB(libuv_stub, "libuv", PB_REF_LIBUV_DESCRIPTION)
#endif
#ifdef POOLBENCH_HAVE_OPENMP
MODULE_STUB(openmp_stub, "openmp", PB_REF_OPENMP_DESCRIPTION)
#endif

static const pb_backend *const backends[] = {
    &pb_backend_serial,
    &pb_backend_threads,
    &pb_backend_fork,
    &pb_backend_spawn,
    &pb_backend_fork_shm,
    &pb_backend_spawn_shm,
    &pb_backend_forkserver,
#ifdef POOLBENCH_HAVE_GLIB
    &glib_stub,
#endif
#ifdef POOLBENCH_HAVE_LIBUV
    &libuv_stub,
#endif
#ifdef POOLBENCH_HAVE_OPENMP
    &openmp_stub,
#endif
};

/* The reference backends this build lacks, and why (the text comes from CMake). */
static const struct {
    const char *name;
    const char *why;
} not_built[] = {
#ifdef POOLBENCH_MISSING_GLIB
    {"glib", POOLBENCH_MISSING_GLIB},
#endif
#ifdef POOLBENCH_MISSING_LIBUV
    {"libuv", POOLBENCH_MISSING_LIBUV},
#endif
#ifdef POOLBENCH_MISSING_OPENMP
    {"openmp", POOLBENCH_MISSING_OPENMP},
#endif
    {NULL, NULL},
};

#define BACKEND_COUNT (sizeof backends / sizeof backends[0])

size_t pb_backend_count(void) { return BACKEND_COUNT; }

const char *pb_backend_name_at(size_t i) { return i < BACKEND_COUNT ? backends[i]->name : NULL; }

const pb_backend *pb__backend_find(const char *name) {
    if (!name) name = PB_DEFAULT_BACKEND;
    for (size_t i = 0; i < BACKEND_COUNT; i++)
        if (strcmp(backends[i]->name, name) == 0) return backends[i];
    return NULL;
}

const char *pb_backend_description(const char *name) {
    const pb_backend *b = pb__backend_find(name);
    return b ? b->description : NULL;
}

int pb_backend_caps(const char *name) {
    const pb_backend *b = pb__backend_find(name);
    return b ? b->caps : PB_ENOBACKEND;
}

const char *pb_backend_default(void) { return PB_DEFAULT_BACKEND; }

size_t pb_backend_not_built_count(void) { return sizeof not_built / sizeof not_built[0] - 1; }

const char *pb_backend_not_built_at(size_t i) { return i < pb_backend_not_built_count() ? not_built[i].name : NULL; }

const char *pb_backend_not_built_reason(const char *name) {
    for (size_t i = 0; name && not_built[i].name; i++)
        if (strcmp(not_built[i].name, name) == 0) return not_built[i].why;
    return NULL;
}
