/*
 * module.c - the entry of a reference backend's module (libpoolbench-glib.so, -libuv.so, -openmp.so),
 * compiled into each module beside its backend's file. Internal.
 *
 * The core (modules.c) dlopens the module the first time a pool of its backend is created, looks up
 * PB_REF_MODULE_ENTRY and calls it with the host table: the core's functions the backend calls
 * (reference.h maps pb__set_error, pb__count, pb__job_done, ... onto it inside a module). The entry
 * refuses a core of another ABI, or built with other struct sizes, rather than misread its structs. A
 * module exports that one symbol (built with hidden visibility), so its own names never meet the
 * program's.
 */
#include "reference.h"

#include <stdarg.h>
#include <stdio.h>

const pb__ref_host *pb__ref_host_api;

int pb__ref_module_error(int err, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pb__ref_host_api->set_error(err, msg);
}

__attribute__((visibility("default"))) const pb_backend *pb__reference_module(const pb__ref_host *host, char *err,
                                                                              size_t errlen) {
    const unsigned sizes[4] = {sizeof(pb_backend), sizeof(pb__job), sizeof(pb_result), sizeof(pb_options)};
    if (!host || host->abi != PB_REF_MODULE_ABI) {
        snprintf(err, errlen, "module ABI %u, the library's %u: rebuild and install both from one tree",
                 PB_REF_MODULE_ABI, host ? host->abi : 0u);
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        if (host->sizes[i] != sizes[i]) {
            snprintf(err, errlen, "the module was built against other structures than the library "
                                  "(size %d: %u, the library's %u): rebuild and install both from one tree",
                     i, sizes[i], host->sizes[i]);
            return NULL;
        }
    pb__ref_host_api = host;
    return &PB_REF_MODULE_BACKEND;
}
