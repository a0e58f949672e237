/*
 * util.h - the string helpers every harness file uses: an error message beside a return code, and heap
 * copies that accept NULL. Below model.h and context.h (both use it, it uses neither), so that the data
 * model and the run context depend on each other in one direction only (model.h includes context.h).
 */
#ifndef POOLBENCH_HARNESS_UTIL_H
#define POOLBENCH_HARNESS_UTIL_H

#include <stddef.h>

/* Formats an error message into err (len bytes; err may be NULL when len is 0). The harness's one way to
 * hand a message back beside a PBH_E* code. */
void pbh_seterr(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* strdup that accepts NULL. */
char *pbh_strdup(const char *s);
/* Replaces *dst by a copy of s (NULL allowed). */
void pbh_set_str(char **dst, const char *s);

#endif
