/*
 * format.h - exporters: each turns results into bytes (a heap string the caller frees) and never opens a
 * file or writes to a stream; the CLI decides where the bytes go. A run, one file per format:
 * format_table.c (terminal), format_markdown.c, format_json.c (poolbench's own JSON), format_gbench.c
 * (Google Benchmark's JSON, readable by its tools/compare.py); a comparison: format_compare.c; change
 * points: format_history.c. Shared helpers (durations, multiples) live in format_table.c. NULL means out
 * of memory. Exporters depend on the analysis (compare.h, history.h), never the other way round.
 */
#ifndef POOLBENCH_HARNESS_FORMAT_H
#define POOLBENCH_HARNESS_FORMAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "compare.h"
#include "history.h"
#include "model.h"

/* Human-readable duration with a unit chosen by magnitude ("2.0012 s", "412.3 us"). */
void pbh_fmt_duration(double s, char *buf, size_t len);

/* A multiple ("0.47x", "21.0x", "153x"): two decimals below 10, fewer above. */
void pbh_fmt_multiple(double x, char *buf, size_t len);

char *pbh_format_run_table(const pbh_run *run);
char *pbh_format_runs_table(const pbh_run_info *runs, size_t n);
char *pbh_format_run_markdown(const pbh_run *run);

/* The JSON document of a run: context, floors, cases with their summary and every raw sample. */
json_t *pbh_run_to_json(const pbh_run *run);
char *pbh_format_run_json(const pbh_run *run);
char *pbh_format_runs_json(const pbh_run_info *runs, size_t n);

/* Google Benchmark JSON: "context" + "benchmarks" (one iteration entry per repetition, then mean, median
 * and stddev aggregates), times in ns. */
char *pbh_format_run_gbench(const pbh_run *run);

/* A comparison (compare.h): table, Markdown (a CI comment), JSON. */
char *pbh_compare_format_table(const pbh_comparison *cmp);
char *pbh_compare_format_markdown(const pbh_comparison *cmp);
char *pbh_compare_format_json(const pbh_comparison *cmp);

/* Change points per case (history.h): table, JSON. */
char *pbh_history_format_table(const pbh_history *h);
char *pbh_history_format_json(const pbh_history *h);

/* Text built by a writer on a memory stream (for exporters that are easiest to write with fprintf):
 * write(stream, arg) is called once; returns the bytes, or NULL when out of memory. */
char *pbh_format_stream(void (*write)(FILE *out, const void *arg), const void *arg);

/* Dumps a jansson value as indented text with a final newline (heap string). */
char *pbh_json_text(json_t *v);
/* The same, then drops the caller's reference to v (v may be NULL: returns NULL). */
char *pbh_json_text_release(json_t *v);

#endif
