/*
 * cli_version.c - `poolbench version [--json]`: what this build is and which contracts it speaks: the
 * store schema it writes, the line protocol of its `exec --json` case processes, its commit and build.
 * `run --against OTHER` asks OTHER this question before measuring anything with it (cli_run_pair.c).
 */
#include "cli.h"
#include "context.h"
#include "format.h"
#include "runner.h"
#include "store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pbh_cmd_version(int argc, char **argv) {
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "--format=json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs("usage: poolbench version [--json]\nThis build: version, store schema, exec protocol, commit.\n", stdout);
            return PBH_EXIT_OK;
        } else {
            return pbh_cli_usage_error("version", "unexpected argument '%s'", argv[i]);
        }
    }
    pbh_context ctx;
    if (pbh_context_collect(&ctx, 0, NULL) != 0) {
        pbh_context_clear(&ctx);
        pbh_cli_error("out of memory");
        return PBH_EXIT_FAILED;
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "program", json_string("poolbench"));
        json_object_set_new(o, "version", json_string(ctx.version));
        json_object_set_new(o, "schema", json_integer(PBH_SCHEMA_VERSION));
        json_object_set_new(o, "exec_protocol", json_integer(PBH_EXEC_PROTOCOL));
        json_object_set_new(o, "git_commit", ctx.git_commit ? json_string(ctx.git_commit) : json_null());
        json_object_set_new(o, "git_dirty", ctx.git_dirty < 0 ? json_null() : json_boolean(ctx.git_dirty));
        json_object_set_new(o, "compiler", json_string(ctx.compiler));
        json_object_set_new(o, "cflags", json_string(ctx.cflags));
        json_object_set_new(o, "build_type", json_string(ctx.build_type));
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (text)
            printf("%s\n", text);
        free(text);
    } else {
        printf("poolbench %s  schema %d  exec protocol %d  commit %s%s  %s %s\n", ctx.version, PBH_SCHEMA_VERSION,
               PBH_EXEC_PROTOCOL, ctx.git_commit ? ctx.git_commit : "unknown", ctx.git_dirty == 1 ? " (dirty)" : "",
               ctx.compiler, ctx.build_type);
    }
    pbh_context_clear(&ctx);
    return PBH_EXIT_OK;
}
