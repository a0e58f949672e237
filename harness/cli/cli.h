/*
 * cli.h - the poolbench command line: one function per verb, one file per verb in harness/cli/
 * (harness/cli/<verb>.c), dispatched by main.c, plus the helpers every verb shares (common.c: exit
 * codes, the store path, opening the store, writing output).
 *
 * The CLI is the only layer that parses flags, prints and picks exit codes; everything it calls lives in
 * the poolbench_harness library (the .c files of harness/; map in docs/architecture.md) and returns
 * data or a PBH_E* code.
 *
 * A verb function gets argv with the verb itself at argv[0], parses its flags with getopt_long, and
 * returns the process exit code. Adding a verb = a harness/cli/<verb>.c with
 * `int pbh_cmd_<verb>(int, char **)`, its declaration here, and one line in main.c's table.
 */
#ifndef POOLBENCH_HARNESS_CLI_H
#define POOLBENCH_HARNESS_CLI_H

#include <signal.h>
#include <stddef.h>

#include "store.h"

/* Exit codes: the contract stated in README.md ("Exit codes: 0 ok, ...") and docs/harness.md. */
#define PBH_EXIT_OK 0
#define PBH_EXIT_REGRESSION 1 /* compare / CI check found a confirmed regression */
#define PBH_EXIT_USAGE 2      /* usage or input error: unknown verb/name, malformed flag, bad store */
#define PBH_EXIT_FAILED 3     /* a run failed: a case crashed, hung or gave a wrong answer */

/* One per verb, each in harness/cli/<verb>.c. */
int pbh_cmd_list(int argc, char **argv);
int pbh_cmd_exec(int argc, char **argv);
int pbh_cmd_run(int argc, char **argv);
int pbh_cmd_runs(int argc, char **argv);
int pbh_cmd_show(int argc, char **argv);
int pbh_cmd_export(int argc, char **argv);
int pbh_cmd_compare(int argc, char **argv);
int pbh_cmd_history(int argc, char **argv);
int pbh_cmd_import(int argc, char **argv);
int pbh_cmd_push(int argc, char **argv);
int pbh_cmd_store(int argc, char **argv);
int pbh_cmd_version(int argc, char **argv);
int pbh_cmd_calibrate(int argc, char **argv);

/* SIGINT/SIGTERM stop a measuring verb after the current case (pbh_runner_interrupt); old[2] keeps the
 * previous handlers for pbh_cli_restore_interrupts. */
void pbh_cli_catch_interrupts(struct sigaction old[2]);
void pbh_cli_restore_interrupts(const struct sigaction old[2]);

/* "poolbench: <message>" on stderr. */
void pbh_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage error: the message, then "try 'poolbench VERB --help'"; returns PBH_EXIT_USAGE. */
int pbh_cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The store path: flag if given, else $POOLBENCH_STORE, else results/poolbench.db under the current
 * directory. For writing, the default's results/ directory is created when missing. */
const char *pbh_cli_store_path(const char *flag, int for_write, char *buf, size_t len);
/* Opens the store or prints why not; returns PBH_EXIT_OK or the exit code to return. */
int pbh_cli_open_store(const char *flag, enum pbh_store_mode mode, pbh_store **st);
/* Exit code for an error code of any space (model.h; through pbh_error): input errors exit 2, the rest 3. */
int pbh_cli_exit_for(int rc);

/* Writes bytes to path (created/truncated) or to stdout when path is NULL or "-". 0 or exit code. */
int pbh_cli_write_output(const char *path, const char *bytes);

/* Loads the run a RUN reference names from an open store, or prints why not. "A,B,C" pools several runs
 * into one (pbh_run_pool): a baseline that carries run-to-run variation. */
int pbh_cli_load_run(pbh_store *st, const char *ref, pbh_run **out);

/* The flags of the read verbs (runs, show, export): --store PATH, --format F, --help, and --output FILE
 * when output is not NULL (else that flag is a usage error). Leaves optind at the first operand. Returns
 * -1 to go on, or the exit code to return now (help printed: 0; a usage error: 2). */
int pbh_cli_read_flags(int argc, char **argv, const char *verb, const char *usage, const char **store_flag,
                       const char **format, const char **output);

/* Opens the store read-only, loads the run RUN names (pbh_cli_load_run) and closes the store. */
int pbh_cli_load_stored_run(const char *store_flag, const char *ref, pbh_run **out);

/* Parses a positive int / double; 0 on success. */
int pbh_cli_parse_int(const char *s, long min, long max, long *out);
int pbh_cli_parse_double(const char *s, double min, double max, double *out);
/* The usage error for a --machine NAME that pbh_machine_name_valid refuses; returns PBH_EXIT_USAGE. */
int pbh_cli_bad_machine(const char *verb, const char *name);

#endif
