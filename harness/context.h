/*
 * context.h - the run context: when, where and from what a run was measured, so that a comparison made
 * months later can tell whether two runs are comparable (same host, same build type, same commit?).
 */
#ifndef POOLBENCH_HARNESS_CONTEXT_H
#define POOLBENCH_HARNESS_CONTEXT_H

typedef struct pbh_context {
    char *started_at;   /* ISO 8601 UTC, "2026-11-28T23:59:01Z" */
    double started_unix; /* seconds since the epoch (sorting, durations) */
    char *git_commit;   /* full hash of HEAD, NULL when unknown */
    int git_dirty;      /* 1 tracked files modified, 0 clean, -1 unknown */
    char *host;
    char *cpu_model;
    int cores;          /* online CPUs */
    char *kernel;       /* "Linux 6.1.0-13-amd64 x86_64" */
    char *compiler;     /* "GNU 12.2.0" */
    char *cflags;
    char *build_type;   /* "Release" */
    char *command_line; /* argv, shell-quoted */
    char *governor;     /* cpufreq scaling governor of cpu0, NULL when not readable (VMs) */
    char *version;      /* poolbench version */
    char *extra_json;   /* importers: the tool's own context as a JSON object text; NULL for native */
} pbh_context;

/* Fills ctx with this machine, this build and argv (now as the start time). Missing facts stay NULL or
 * -1; it never fails except out of memory (-1). */
int pbh_context_collect(pbh_context *ctx, int argc, char *const argv[]);
void pbh_context_clear(pbh_context *ctx);

/* ISO 8601 UTC for t (seconds since the epoch) into buf. */
void pbh_format_time(double t, char *buf, unsigned len);
/* Wall clock now, seconds since the epoch (for dates; intervals use common.h's pbs_now). */
double pbh_now_unix(void);

/* Joins argv into one line, quoting for a POSIX shell where needed. Heap string. */
char *pbh_join_argv(int argc, char *const argv[]);

#endif
