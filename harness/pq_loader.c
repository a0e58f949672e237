/*
 * pq_loader.c - libpq opened with dlopen on the first PostgreSQL store (pq_loader.h says why): one
 * dlopen under pthread_once, then every function the store uses read with dlsym into a table. A missing
 * library or function is reported once, the same way to every caller.
 */
#include "pq_loader.h"

#include "util.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pbh_pq api;
static const pbh_pq *loaded;
static char load_error[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    /* $POOLBENCH_LIBPQ names another libpq (a build of one's own, or none at all for tests) */
    const char *path = getenv("POOLBENCH_LIBPQ");
    if (!path || !*path)
        path = "libpq.so.5";
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error,
                 "PostgreSQL stores need the libpq client library (%s; Debian: apt-get install libpq5): %s", path,
                 why ? why : "not found");
        return;
    }
    const char *missing = NULL;
#define PBH_PQ_SYM(field, name)                                                                             \
    do {                                                                                                   \
        void *fn = dlsym(lib, name);                                                                       \
        if (!fn && !missing)                                                                               \
            missing = name;                                                                                \
        *(void **)&api.field = fn;                                                                         \
    } while (0)
    PBH_PQ_SYM(connectdbParams, "PQconnectdbParams");
    PBH_PQ_SYM(status, "PQstatus");
    PBH_PQ_SYM(errorMessage, "PQerrorMessage");
    PBH_PQ_SYM(finish, "PQfinish");
    PBH_PQ_SYM(exec, "PQexec");
    PBH_PQ_SYM(execParams, "PQexecParams");
    PBH_PQ_SYM(sendQueryParams, "PQsendQueryParams");
    PBH_PQ_SYM(getResult, "PQgetResult");
    PBH_PQ_SYM(enterPipelineMode, "PQenterPipelineMode");
    PBH_PQ_SYM(exitPipelineMode, "PQexitPipelineMode");
    PBH_PQ_SYM(pipelineSync, "PQpipelineSync");
    PBH_PQ_SYM(resultStatus, "PQresultStatus");
    PBH_PQ_SYM(resultErrorMessage, "PQresultErrorMessage");
    PBH_PQ_SYM(clear, "PQclear");
    PBH_PQ_SYM(ntuples, "PQntuples");
    PBH_PQ_SYM(getvalue, "PQgetvalue");
    PBH_PQ_SYM(getisnull, "PQgetisnull");
    PBH_PQ_SYM(conninfoParse, "PQconninfoParse");
    PBH_PQ_SYM(conninfoFree, "PQconninfoFree");
    PBH_PQ_SYM(freemem, "PQfreemem");
#undef PBH_PQ_SYM
    if (missing) {
        snprintf(load_error, sizeof load_error,
                 "the libpq client library found (libpq.so.5) has no %s: PostgreSQL stores need libpq 14 or newer",
                 missing);
        dlclose(lib);
        return;
    }
    loaded = &api;
}

const pbh_pq *pbh_pq_load(char *err, size_t errlen) {
    pthread_once(&once, load);
    if (!loaded)
        pbh_seterr(err, errlen, "%s", load_error);
    return loaded;
}

const pbh_pq *pbh_pq_api(void) {
    pthread_once(&once, load);
    return loaded;
}
