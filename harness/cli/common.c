/*
 * common.c - helpers shared by every verb: messages, exit codes, the store's path and opening it,
 * number parsing, and writing an exporter's bytes to stdout or a file.
 *
 * Messages go to stderr prefixed with "poolbench: " and name the thing that is wrong (the path, the
 * flag, the accepted values); results go to stdout, so `poolbench show 3 --format json | jq` works.
 */
#include "cli.h"
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void say(const char *fmt, va_list ap) {
    fputs("poolbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void pbh_cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
}

int pbh_cli_usage_error(const char *verb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap);
    va_end(ap);
    if (verb)
        fprintf(stderr, "try 'poolbench %s --help'\n", verb);
    else
        fprintf(stderr, "try 'poolbench --help'\n");
    return PBH_EXIT_USAGE;
}

int pbh_cli_exit_for(int rc) {
    switch (pbh_error(rc)) {
    case PBH_OK:
        return PBH_EXIT_OK;
    case PBH_EINPUT:
    case PBH_ENOTFOUND:
    case PBH_ESCHEMA:
        return PBH_EXIT_USAGE;
    default:
        return PBH_EXIT_FAILED;
    }
}

const char *pbh_cli_store_path(const char *flag, int for_write, char *buf, size_t len) {
    if (flag && *flag)
        return flag;
    const char *env = getenv("POOLBENCH_STORE");
    if (env && *env)
        return env;
    if (for_write)
        (void)mkdir("results", 0777); /* EEXIST is fine; any other failure shows when the store opens */
    snprintf(buf, len, "results/poolbench.db");
    return buf;
}

int pbh_cli_open_store(const char *flag, enum pbh_store_mode mode, pbh_store **st) {
    char buf[4096], err[1024];
    const char *path = pbh_cli_store_path(flag, mode == PBH_STORE_WRITE, buf, sizeof buf);
    int rc = pbh_store_open(st, path, mode, err, sizeof err);
    if (rc != PBH_OK) {
        pbh_cli_error("%s", err);
        return rc == PBH_EIO ? PBH_EXIT_FAILED : PBH_EXIT_USAGE;
    }
    return PBH_EXIT_OK;
}

static int load_one(pbh_store *st, const char *ref, pbh_run **out) {
    char err[1024];
    int64_t id;
    int rc = pbh_store_resolve(st, ref, &id, err, sizeof err);
    if (rc == PBH_OK)
        rc = pbh_store_load_run(st, id, out, err, sizeof err);
    if (rc != PBH_OK) {
        pbh_cli_error("%s", err);
        return pbh_cli_exit_for(rc);
    }
    return PBH_EXIT_OK;
}

int pbh_cli_load_run(pbh_store *st, const char *ref, pbh_run **out) {
    if (!strchr(ref, ','))
        return load_one(st, ref, out);
    /* "A,B,C": the runs pooled into one (their samples per case together) */
    char refs[1024];
    snprintf(refs, sizeof refs, "%s", ref);
    *out = NULL;
    char *save = NULL;
    for (char *r = strtok_r(refs, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
        pbh_run *one = NULL;
        int rc = load_one(st, r, &one);
        if (rc == PBH_EXIT_OK && *out) {
            if (pbh_run_pool(*out, one) != PBH_OK) {
                pbh_cli_error("out of memory pooling runs");
                rc = PBH_EXIT_FAILED;
            }
            pbh_run_free(one);
        } else if (rc == PBH_EXIT_OK) {
            *out = one;
        }
        if (rc != PBH_EXIT_OK) {
            pbh_run_free(*out);
            *out = NULL;
            return rc;
        }
    }
    char label[1100];
    snprintf(label, sizeof label, "pooled %s", ref);
    pbh_set_str(&(*out)->label, label);
    return PBH_EXIT_OK;
}

int pbh_cli_write_output(const char *path, const char *bytes) {
    if (!bytes) {
        pbh_cli_error("out of memory formatting the output");
        return PBH_EXIT_FAILED;
    }
    size_t n = strlen(bytes);
    if (!path || strcmp(path, "-") == 0) {
        if (fwrite(bytes, 1, n, stdout) != n || fflush(stdout) != 0) {
            pbh_cli_error("writing to stdout failed: %s", strerror(errno));
            return PBH_EXIT_FAILED;
        }
        return PBH_EXIT_OK;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        pbh_cli_error("cannot write %s: %s", path, strerror(errno));
        return PBH_EXIT_USAGE;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, bytes + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            pbh_cli_error("writing %s failed: %s", path, strerror(errno));
            close(fd);
            return PBH_EXIT_FAILED;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        pbh_cli_error("writing %s failed: %s", path, strerror(errno));
        return PBH_EXIT_FAILED;
    }
    return PBH_EXIT_OK;
}

int pbh_cli_parse_int(const char *s, long min, long max, long *out) {
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int pbh_cli_parse_double(const char *s, double min, double max, double *out) {
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

int pbh_cli_bad_machine(const char *verb, const char *name) {
    return pbh_cli_usage_error(verb, "--machine must be 1 to 128 printable characters without blanks, got '%s'", name);
}

int pbh_cli_read_flags(int argc, char **argv, const char *verb, const char *usage, const char **store_flag,
                       const char **format, const char **output) {
    /* --output last, so that the table without it is the same table one entry shorter */
    static const struct option with_output[] = {{"store", required_argument, NULL, 'd'},
                                                {"format", required_argument, NULL, 'f'},
                                                {"help", no_argument, NULL, 'h'},
                                                {"output", required_argument, NULL, 'o'},
                                                {0}};
    static const struct option without_output[] = {{"store", required_argument, NULL, 'd'},
                                                   {"format", required_argument, NULL, 'f'},
                                                   {"help", no_argument, NULL, 'h'},
                                                   {0}};
    int c;
    while ((c = getopt_long(argc, argv, output ? "f:o:h" : "f:h", output ? with_output : without_output, NULL)) !=
           -1) {
        switch (c) {
        case 'd':
            *store_flag = optarg;
            break;
        case 'f':
            *format = optarg;
            break;
        case 'o':
            *output = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return PBH_EXIT_OK;
        default:
            return pbh_cli_usage_error(verb, "bad arguments to %s", verb);
        }
    }
    return -1;
}

int pbh_cli_load_stored_run(const char *store_flag, const char *ref, pbh_run **out) {
    pbh_store *st;
    *out = NULL;
    int ec = pbh_cli_open_store(store_flag, PBH_STORE_READ, &st);
    if (ec != PBH_EXIT_OK)
        return ec;
    ec = pbh_cli_load_run(st, ref, out);
    pbh_store_close(st);
    return ec;
}

static void on_interrupt(int sig) {
    (void)sig;
    pbh_runner_interrupt();
}

void pbh_cli_catch_interrupts(struct sigaction old[2]) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old[0]);
    sigaction(SIGTERM, &sa, &old[1]);
}

void pbh_cli_restore_interrupts(const struct sigaction old[2]) {
    sigaction(SIGINT, &old[0], NULL);
    sigaction(SIGTERM, &old[1], NULL);
}
