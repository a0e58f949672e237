/*
 * machine.c - machine-mismatch detection between two runs (machine.h): the machine keys when both runs
 * have a usable one, else the context facts (exact string or number equality; unknown on either side is
 * no evidence), then the floor probes measured in both runs, whose ratio must stay within
 * PBH_MACHINE_FLOOR_RATIO.
 */
#include "machine.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "format.h"

static void append(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *why, size_t len, const char *fmt, ...) {
    size_t off = strlen(why);
    if (off + 3 >= len)
        return;
    if (off)
        off += (size_t)snprintf(why + off, len - off, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + off, len - off, fmt, ap);
    va_end(ap);
}

static int text_differs(const char *a, const char *b) {
    return a && b && *a && *b && strcmp(a, b) != 0;
}

/* A key that names this run's machine: set, and not merely the host name the schema-3 migration copied
 * into runs stored before there were keys. */
static int key_usable(const pbh_context *c) {
    return c->machine && *c->machine && !(c->host && strcmp(c->machine, c->host) == 0);
}

int pbh_machine_differs(const pbh_run *a, const pbh_run *b, char *why, size_t len) {
    why[0] = '\0';
    const pbh_context *x = &a->ctx, *y = &b->ctx;
    int keyed = key_usable(x) && key_usable(y);
    if (keyed && strcmp(x->machine, y->machine) != 0)
        append(why, len, "machine '%s' vs '%s'", x->machine, y->machine);
    /* one key, one machine: its facts are what the key stands for; keys that differ list the facts too */
    if (!keyed || why[0]) {
        if (text_differs(x->host, y->host))
            append(why, len, "host '%s' vs '%s'", x->host, y->host);
        if (text_differs(x->cpu_model, y->cpu_model))
            append(why, len, "CPU '%s' vs '%s'", x->cpu_model, y->cpu_model);
        if (x->cores > 0 && y->cores > 0 && x->cores != y->cores)
            append(why, len, "%d vs %d cores", x->cores, y->cores);
        if (text_differs(x->kernel, y->kernel))
            append(why, len, "kernel '%s' vs '%s'", x->kernel, y->kernel);
    }
    for (size_t i = 0; i < a->nfloors; i++) {
        const pbh_floor *fa = &a->floors[i];
        const pbh_floor *fb = pbh_run_floor(b, fa->name);
        /* nanosleep's overshoot is the scheduler's wake-up latency: it follows the load, not the machine */
        if (!fb || !(fa->seconds > 0) || !(fb->seconds > 0) || strcmp(fa->name, "nanosleep_overshoot") == 0)
            continue;
        double ratio = fb->seconds / fa->seconds;
        if (ratio > PBH_MACHINE_FLOOR_RATIO || ratio < 1.0 / PBH_MACHINE_FLOOR_RATIO) {
            char da[32], db[32];
            pbh_fmt_duration(fa->seconds, da, sizeof da);
            pbh_fmt_duration(fb->seconds, db, sizeof db);
            append(why, len, "floor %s %s vs %s (%.2fx)", fa->name, da, db, ratio);
        }
    }
    return why[0] != '\0';
}
