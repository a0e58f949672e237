/*
 * import.h - other tools' result files as poolbench runs: Google Benchmark JSON (gbench) and hyperfine
 * JSON, and poolbench's own run export. An imported run is an ordinary pbh_run (source "gbench" or "hyperfine") so that show, compare,
 * history and the report treat it like a native one.
 *
 * The whole file is parsed and validated before anything is written, so a malformed file changes nothing
 * in the store. Google Benchmark writes NaN and Infinity as bare tokens, which strict JSON (and jansson)
 * rejects: pbh_json_loads_lenient() reads them as null.
 */
#ifndef POOLBENCH_HARNESS_IMPORT_H
#define POOLBENCH_HARNESS_IMPORT_H

#include <jansson.h>
#include <stddef.h>

#include "model.h"

#define PBH_IMPORT_MAX_BYTES (256u << 20)

/* Parses JSON that may contain bare NaN, Infinity and -Infinity (as null). NULL with a message naming
 * the line and column on error. */
json_t *pbh_json_loads_lenient(const char *text, size_t len, char *err, size_t errlen);

/* Builds a run from a parsed document. The run's context is the tool's (host, cores, date, ...) where the
 * file has it, the rest from ctx_here (this machine, this command line), with the tool's own context kept
 * as extra_json. PBH_EINPUT with a message when the document is not what the format promises. */
int pbh_import_gbench(json_t *doc, const pbh_context *ctx_here, pbh_run **out, char *err, size_t errlen);
int pbh_import_hyperfine(json_t *doc, const pbh_context *ctx_here, pbh_run **out, char *err, size_t errlen);
/* poolbench's own export (format "poolbench-run"): the document's context is kept, ctx_here is unused. */
int pbh_import_poolbench(json_t *doc, const pbh_context *ctx_here, pbh_run **out, char *err, size_t errlen);

/* For importers: a new run of `source` whose context is a copy of ctx_here. NULL when out of memory. */
pbh_run *pbh_import_new_run(const char *source, const pbh_context *ctx_here);

/* Reads path and dispatches on format ("gbench", "hyperfine" or "json" for poolbench's own export). */
int pbh_import_file(const char *format, const char *path, const pbh_context *ctx_here, pbh_run **out, char *err,
                    size_t errlen);

#endif
