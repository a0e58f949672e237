/*
 * context.c - collects the run context: time, git commit and dirty flag, host, CPU model, cores, kernel,
 * compiler and flags, build type, command line and the CPU frequency governor.
 *
 * Facts come from the cheapest reliable source: uname(2), sysconf(3), /proc/cpuinfo, sysfs, and the
 * compile definitions that harness/CMakeLists.txt bakes in for this build. The git facts describe the
 * source tree the binary was built from (POOLBENCH_SOURCE_DIR), not the current directory: that is the
 * code being measured. git runs as a child (child.h: PATH lookup, an argument vector, no shell), its
 * stdout read through a pipe and its stderr sent to /dev/null; $POOLBENCH_GIT_COMMIT overrides it (for
 * builds from a tarball or CI systems that know the commit better). Anything unknown stays NULL / -1:
 * a missing fact must never stop a run.
 */
#include "context.h"

#include "child.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef POOLBENCH_BUILD_TYPE
#define POOLBENCH_BUILD_TYPE ""
#endif
#ifndef POOLBENCH_C_COMPILER
#define POOLBENCH_C_COMPILER ""
#endif
#ifndef POOLBENCH_C_FLAGS
#define POOLBENCH_C_FLAGS ""
#endif
#ifndef POOLBENCH_SOURCE_DIR
#define POOLBENCH_SOURCE_DIR "."
#endif
#ifndef POOLBENCH_VERSION
#define POOLBENCH_VERSION "0.1.0"
#endif

double pbh_now_unix(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void pbh_format_time(double t, char *buf, unsigned len) {
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Trims trailing whitespace in place. */
static void rtrim(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

/* Runs argv (PATH lookup, no shell) and returns its stdout (up to cap-1 bytes) in out; its exit status
 * (0..255) or -1 when it could not run. The child's stderr goes to /dev/null so that "not a git
 * repository" noise never reaches the user. */
static int capture(char *const argv[], char *out, size_t cap) {
    return pbh_child_capture(argv[0], argv, PBH_CHILD_SEARCH_PATH | PBH_CHILD_STDERR_NULL, -1, out, cap);
}

static void collect_git(pbh_context *ctx) {
    const char *env = getenv("POOLBENCH_GIT_COMMIT");
    ctx->git_dirty = -1;
    if (env && *env) {
        ctx->git_commit = pbh_strdup(env);
        const char *dirty = getenv("POOLBENCH_GIT_DIRTY");
        if (dirty && *dirty)
            ctx->git_dirty = atoi(dirty) != 0;
        return;
    }
    char buf[4096];
    char *rev[] = {"git", "-C", (char *)POOLBENCH_SOURCE_DIR, "rev-parse", "--verify", "-q", "HEAD", NULL};
    if (capture(rev, buf, sizeof buf) == 0) {
        rtrim(buf);
        if (buf[0])
            ctx->git_commit = pbh_strdup(buf);
    }
    /* Dirty = tracked files differ from HEAD (untracked files, e.g. build dirs, do not count). With no
     * commit yet there is nothing to be dirty against: unknown. */
    if (ctx->git_commit) {
        char *st[] = {"git", "-C", (char *)POOLBENCH_SOURCE_DIR, "status", "--porcelain", "--untracked-files=no",
                      NULL};
        if (capture(st, buf, sizeof buf) == 0)
            ctx->git_dirty = buf[0] != '\0';
    }
}

static char *read_first_line(const char *path) {
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char line[512];
    char *res = NULL;
    if (fgets(line, sizeof line, f)) {
        rtrim(line);
        if (line[0])
            res = pbh_strdup(line);
    }
    fclose(f);
    return res;
}

static char *cpu_model(void) {
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return NULL;
    char line[512];
    char *res = NULL;
    while (fgets(line, sizeof line, f)) {
        /* x86 says "model name", arm64 "CPU part"/"Hardware"; take the first that names something */
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Hardware", 8) == 0 ||
            strncmp(line, "cpu model", 9) == 0) {
            char *colon = strchr(line, ':');
            if (!colon)
                continue;
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            rtrim(colon);
            res = pbh_strdup(colon);
            break;
        }
    }
    fclose(f);
    return res;
}

const char *pbh_redact_password(const char *name, char *buf, size_t len) {
    if (!len)
        return buf;
    snprintf(buf, len, "%s", name ? name : "");
    char *scheme = strstr(buf, "://");
    if (scheme) {
        /* user info is what precedes the last '@' before the path, query or fragment */
        char *auth = scheme + 3;
        size_t auth_len = strcspn(auth, "/?#");
        char *at = NULL;
        for (char *p = auth; p < auth + auth_len; p++)
            if (*p == '@')
                at = p;
        char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            char rest[4096];
            snprintf(rest, sizeof rest, "%s", at);
            snprintf(colon + 1, len - (size_t)(colon + 1 - buf), "***%s", rest);
        }
    }
    /* password=... as a query parameter (URI) or keyword (key=value string) */
    for (char *p = buf; (p = strstr(p, "password=")) != NULL;) {
        if (p != buf && p[-1] != '?' && p[-1] != '&' && p[-1] != ' ') {
            p += 9;
            continue;
        }
        char *v = p + 9;
        size_t vlen = strcspn(v, "& ");
        char rest[4096];
        snprintf(rest, sizeof rest, "%s", v + vlen);
        snprintf(v, len - (size_t)(v - buf), "***%s", rest);
        p = v + 3;
    }
    return buf;
}

/* The machine key when none is given: the host name and a hash of what makes two hosts of that name
 * measure differently (CPU model, cores, memory, kernel), so a reinstalled or resized runner starts a new
 * series instead of appearing as a step in the old one. FNV-1a, 32 bits: a name, not a secret. */
static char *derive_machine(const pbh_context *ctx) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    long long mem_gib = pages > 0 && page > 0 ? ((long long)pages * page + (1LL << 29)) >> 30 : -1;
    char facts[1024];
    snprintf(facts, sizeof facts, "%s|%d|%lld|%s", ctx->cpu_model ? ctx->cpu_model : "?", ctx->cores, mem_gib,
             ctx->kernel ? ctx->kernel : "?");
    uint32_t h = 2166136261u;
    for (const char *p = facts; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    char key[300];
    snprintf(key, sizeof key, "%s-%08x", ctx->host && *ctx->host ? ctx->host : "host", h);
    return pbh_strdup(key);
}

int pbh_machine_name_valid(const char *name) {
    if (!name || !*name || strlen(name) > 128)
        return 0;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

char *pbh_join_argv(int argc, char *const argv[]) {
    size_t cap = 1;
    for (int i = 0; i < argc; i++)
        cap += strlen(argv[i]) * 4 + 3;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t len = 0;
    for (int i = 0; i < argc; i++) {
        /* a store URI's password must never reach the stored command line */
        char redacted[4096];
        const char *a = strlen(argv[i]) < sizeof redacted ? pbh_redact_password(argv[i], redacted, sizeof redacted)
                                                         : argv[i];
        if (i)
            out[len++] = ' ';
        int plain = a[0] != '\0';
        for (const char *p = a; *p; p++) {
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./,:+@%", *p)) {
                plain = 0;
                break;
            }
        }
        if (plain) {
            memcpy(out + len, a, strlen(a));
            len += strlen(a);
            continue;
        }
        /* single quotes; an embedded ' becomes '\'' */
        out[len++] = '\'';
        for (const char *p = a; *p; p++) {
            if (*p == '\'') {
                memcpy(out + len, "'\\''", 4);
                len += 4;
            } else {
                out[len++] = *p;
            }
        }
        out[len++] = '\'';
    }
    out[len] = '\0';
    return out;
}

int pbh_context_collect(pbh_context *ctx, int argc, char *const argv[]) {
    memset(ctx, 0, sizeof *ctx);
    ctx->started_unix = pbh_now_unix();
    char when[64];
    pbh_format_time(ctx->started_unix, when, sizeof when);
    ctx->started_at = pbh_strdup(when);
    collect_git(ctx);

    struct utsname u;
    if (uname(&u) == 0) {
        char kernel[sizeof u.sysname + sizeof u.release + sizeof u.machine + 4];
        snprintf(kernel, sizeof kernel, "%s %s %s", u.sysname, u.release, u.machine);
        ctx->kernel = pbh_strdup(kernel);
        ctx->host = pbh_strdup(u.nodename);
    }
    ctx->cpu_model = cpu_model();
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    ctx->cores = n > 0 ? (int)n : -1;
    ctx->compiler = pbh_strdup(POOLBENCH_C_COMPILER);
    char flags[1024];
    snprintf(flags, sizeof flags, "%s", POOLBENCH_C_FLAGS);
    /* CMake leaves a leading blank when CMAKE_C_FLAGS is empty */
    char *f = flags;
    while (*f == ' ')
        f++;
    rtrim(f);
    ctx->cflags = pbh_strdup(f);
    ctx->build_type = pbh_strdup(POOLBENCH_BUILD_TYPE);
    ctx->command_line = argc > 0 ? pbh_join_argv(argc, argv) : NULL;
    const char *machine = getenv("POOLBENCH_MACHINE");
    ctx->machine = machine && *machine ? pbh_strdup(machine) : derive_machine(ctx);
    ctx->governor = read_first_line("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
    ctx->version = pbh_strdup(POOLBENCH_VERSION);
    if (!ctx->started_at || !ctx->compiler || !ctx->cflags || !ctx->build_type || !ctx->version)
        return -1;
    return 0;
}

void pbh_context_clear(pbh_context *ctx) {
    free(ctx->started_at);
    free(ctx->git_commit);
    free(ctx->host);
    free(ctx->machine);
    free(ctx->cpu_model);
    free(ctx->kernel);
    free(ctx->compiler);
    free(ctx->cflags);
    free(ctx->build_type);
    free(ctx->command_line);
    free(ctx->governor);
    free(ctx->version);
    free(ctx->extra_json);
    memset(ctx, 0, sizeof *ctx);
}
