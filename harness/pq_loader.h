/*
 * pq_loader.h - libpq, loaded when a PostgreSQL store is first opened rather than by every poolbench
 * process at start.
 *
 * Why: linked at build time, libpq brings 22 more shared libraries (OpenSSL, Kerberos, LDAP, GnuTLS...)
 * into every process, and the dynamic loader's work on them is most of a `poolbench exec` case process's
 * start: measured on the 2-vCPU VM, an empty program linked with poolbench's libraries started in 28 ms
 * with libpq and 8 ms without (medians of 60). The harness starts a case process for every block of every
 * case, and hyperfine times the seed program's whole process, so that start is measured everywhere; only
 * `--store postgresql://...` needs libpq.
 *
 * The types come from libpq-fe.h (the header is a build dependency as before); the functions are read
 * with dlsym from libpq.so.5 (the soname of every libpq since 8.3), each typed as libpq-fe.h declares it.
 */
#ifndef POOLBENCH_HARNESS_PQ_LOADER_H
#define POOLBENCH_HARNESS_PQ_LOADER_H

#include <stddef.h>

#include <libpq-fe.h>

typedef struct pbh_pq {
    __typeof__(&PQconnectdbParams) connectdbParams;
    __typeof__(&PQstatus) status;
    __typeof__(&PQerrorMessage) errorMessage;
    __typeof__(&PQfinish) finish;
    __typeof__(&PQexec) exec;
    __typeof__(&PQexecParams) execParams;
    __typeof__(&PQsendQueryParams) sendQueryParams;
    __typeof__(&PQgetResult) getResult;
    __typeof__(&PQenterPipelineMode) enterPipelineMode;
    __typeof__(&PQexitPipelineMode) exitPipelineMode;
    __typeof__(&PQpipelineSync) pipelineSync;
    __typeof__(&PQresultStatus) resultStatus;
    __typeof__(&PQresultErrorMessage) resultErrorMessage;
    __typeof__(&PQclear) clear;
    __typeof__(&PQntuples) ntuples;
    __typeof__(&PQgetvalue) getvalue;
    __typeof__(&PQgetisnull) getisnull;
    __typeof__(&PQconninfoParse) conninfoParse;
    __typeof__(&PQconninfoFree) conninfoFree;
    __typeof__(&PQfreemem) freemem;
} pbh_pq;

/* libpq's functions, loaded on the first call (thread-safe; the library stays loaded for the process).
 * NULL with a message in err when libpq.so.5 cannot be loaded or lacks a function (libpq before 14 has
 * no pipeline mode). */
const pbh_pq *pbh_pq_load(char *err, size_t errlen);

/* The same table once pbh_pq_load has succeeded (NULL before or after a failure): what every call goes
 * through, so that no thread reads a pointer another is writing. */
const pbh_pq *pbh_pq_api(void);

#endif
