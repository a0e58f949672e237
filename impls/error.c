/*
 * error.c - error codes, status names and the per-thread error detail.
 *
 * Functions return 0 or a negative code (PB_E* or -errno, libuv style). The code says what kind of
 * failure it was; pb_last_error() says which thing failed ("unknown backend 'forkk'", "cannot execute
 * /opt/x: No such file or directory"). The detail is thread-local so concurrent callers never see each
 * other's messages.
 */
#include "backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static _Thread_local char last_error[512];

const char *pb_strerror(int err) {
    switch (err) {
    case 0: return "success";
    case PB_ENOBACKEND: return "unknown backend";
    case PB_ENOTASK: return "unknown task";
    case PB_ETOOBIG: return "input or output over the size limit";
    case PB_ECLOSED: return "pool is closed";
    case PB_ESPAWN: return "cannot start a worker";
    case PB_EPROTO: return "malformed frame from a worker";
    case PB_ENOTSUP: return "not supported by this backend";
    case PB_EINVAL: return "invalid argument";
    case PB_ETIMEDOUT: return "timed out";
    default: break;
    }
    if (err < 0 && err > -4096) return strerror(-err);
    return "unknown error";
}

const char *pb_last_error(void) { return last_error; }

int pb__set_error(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return err;
}

const char *pb_status_name(int status) {
    static const char *const names[PB_STATUS_COUNT] = {
        [PB_STATUS_OK] = "ok",
        [PB_STATUS_TASK_ERROR] = "task-error",
        [PB_STATUS_WORKER_DIED] = "worker-died",
        [PB_STATUS_TIMED_OUT] = "timed-out",
        [PB_STATUS_CANCELLED] = "cancelled",
        [PB_STATUS_TERMINATED] = "terminated",
        [PB_STATUS_BROKEN] = "broken",
    };
    if (status < 0 || status >= PB_STATUS_COUNT) return "unknown";
    return names[status];
}

double pb__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
