/*
 * registry.c - the backends, found by name. Adding a backend is one line in `backends` below.
 * The first entry named by PB_DEFAULT_BACKEND is what a NULL backend name means.
 */
#include "backend.h"

#include <string.h>

#define PB_DEFAULT_BACKEND "threads"

static const pb_backend *const backends[] = {
    &pb_backend_serial,
    &pb_backend_threads,
    &pb_backend_fork,
    &pb_backend_spawn,
    &pb_backend_forkserver,
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
