/*
 * measure.c - one measured execution in the current process: wall, startup and ideal from the scenario,
 * CPU from getrusage deltas, peak RSS from the kernel's high-water marks.
 *
 * CPU: getrusage(RUSAGE_SELF) covers every thread of this process (the threads backend), and
 * getrusage(RUSAGE_CHILDREN) every worker process reaped so far (fork and spawn pools reap theirs on
 * destroy, which happens inside the execution); the sample is the difference across the execution.
 * Peak RSS: the process's VmHWM is reset before each execution by writing "5" to /proc/self/clear_refs
 * (Linux >= 4.0), so it is the peak of this repetition; children cannot be reset, so their part is the
 * largest worker reaped so far. When clear_refs is not writable the value is the process's peak so far.
 */
#include "measure.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static double tv_s(struct timeval tv) {
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void reset_hwm(void) {
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t w = write(fd, "5", 1);
        (void)w; /* best effort: without it the peak is the process's peak so far */
        close(fd);
    }
}

/* VmHWM in KiB, or -1. */
static long read_hwm_kb(void) {
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

void pbh_measure_fault_point(const char *scenario, const char *backend) {
    const char *f = getenv("POOLBENCH_TEST_FAULT");
    if (!f || !*f)
        return;
    const char *colon = strchr(f, ':');
    if (!colon)
        return;
    char target[256];
    snprintf(target, sizeof target, "%s/%s", scenario, backend);
    if (strcmp(colon + 1, target) != 0)
        return;
    size_t kind = (size_t)(colon - f);
    if (kind == 5 && strncmp(f, "crash", 5) == 0) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    } else if (kind == 4 && strncmp(f, "hang", 4) == 0) {
        for (;;)
            pause();
    } else if (kind == 4 && strncmp(f, "exit", 4) == 0) {
        _exit(7);
    }
}

int pbh_measure_once(const pb_scenario *s, const pb_params *p, const char *backend, int workers, uint64_t seed,
                     pbh_sample *out, pb_exec_result *res) {
    memset(out, 0, sizeof *out);
    out->iterations = 1;
    pbh_measure_fault_point(s->name, backend);
    struct rusage self0, kids0, self1, kids1;
    reset_hwm();
    getrusage(RUSAGE_SELF, &self0);
    getrusage(RUSAGE_CHILDREN, &kids0);
    int rc = pb_scenario_execute(s, p, backend, workers, seed, res);
    getrusage(RUSAGE_SELF, &self1);
    getrusage(RUSAGE_CHILDREN, &kids1);
    long hwm = read_hwm_kb();

    out->wall_s = res->wall_s;
    out->startup_s = res->startup_s;
    out->ideal_s = res->ideal_s;
    out->tasks = res->tasks;
    out->failed_tasks = res->failed_tasks;
    out->user_s = (tv_s(self1.ru_utime) - tv_s(self0.ru_utime)) + (tv_s(kids1.ru_utime) - tv_s(kids0.ru_utime));
    out->sys_s = (tv_s(self1.ru_stime) - tv_s(self0.ru_stime)) + (tv_s(kids1.ru_stime) - tv_s(kids0.ru_stime));
    long peak = hwm > 0 ? hwm : self1.ru_maxrss;
    if (kids1.ru_maxrss > peak)
        peak = kids1.ru_maxrss;
    out->peak_rss_kb = peak;
    return rc;
}
