/*
 * util.c - the harness's string helpers (util.h).
 */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pbh_seterr(char *err, size_t len, const char *fmt, ...) {
    if (!err || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

char *pbh_strdup(const char *s) {
    return s ? strdup(s) : NULL;
}

void pbh_set_str(char **dst, const char *s) {
    char *copy = pbh_strdup(s);
    free(*dst);
    *dst = copy;
}
