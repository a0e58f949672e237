/*
 * exec_line.h - the line protocol between the runner and its case processes (`poolbench exec --json`):
 * one JSON object per line, written by cli/exec.c and read by runner.c, both through this one codec so
 * that a key is spelled in one place.
 *
 *   {"type":"execution","rep":i,"warmup":bool,"ok":bool,"message":"...","wall_s":..,"user_s":..,
 *    "sys_s":..,"peak_rss_kb":..,"startup_s":..,"ideal_s":..,"tasks":..,"failed_tasks":..,
 *    "workers_started":..,"worker_deaths":..}       one per execution, as it happens
 *   {"type":"done","executions":N}                    after the last execution, when every one verified
 *   {"type":"floor","name":"...","seconds":..,"reps":..}   `exec --floors --json`, one per probe
 *
 * A failed execution ends the sequence (no "done" line). Numbers are doubles with 17 significant digits,
 * so a sample survives the trip bit for bit.
 */
#ifndef POOLBENCH_HARNESS_EXEC_LINE_H
#define POOLBENCH_HARNESS_EXEC_LINE_H

#include <stdint.h>

#include "model.h"

typedef enum pbh_exec_line_type {
    PBH_LINE_GARBLED,   /* not a JSON object */
    PBH_LINE_OTHER,     /* an object of a type this codec does not know: ignored by readers */
    PBH_LINE_EXECUTION,
    PBH_LINE_DONE,
    PBH_LINE_FLOOR,
} pbh_exec_line_type;

/* One decoded line; which fields mean something depends on type. */
typedef struct pbh_exec_line {
    pbh_exec_line_type type;
    /* execution */
    int rep, warmup, ok;
    char message[512];
    pbh_sample sample; /* rep and iterations are left for the reader to set */
    uint64_t workers_started, worker_deaths;
    /* done */
    long executions;
    /* floor */
    char floor_name[64];
    double floor_seconds;
    int floor_reps;
} pbh_exec_line;

/* Encoders: a heap string without the trailing newline (NULL on out of memory). */
char *pbh_exec_line_execution(int rep, int warmup, int ok, const char *message, const pbh_sample *x,
                              uint64_t workers_started, uint64_t worker_deaths);
char *pbh_exec_line_done(long executions);
char *pbh_exec_line_floor(const char *name, double seconds, int reps);

/* Decodes one line (without its newline) into out; returns out->type. */
pbh_exec_line_type pbh_exec_line_parse(const char *line, pbh_exec_line *out);

#endif
