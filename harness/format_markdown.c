/*
 * format_markdown.c - a run as GitHub-flavoured Markdown: a context line and one table row per case,
 * fit for a pull-request comment or $GITHUB_STEP_SUMMARY. Same numbers as the terminal table (both come
 * from pbh_case_summarize). Case names and reasons are escaped so a '|' cannot break the table.
 */
#include "format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void md_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '|' || *s == '\\' || *s == '`' || *s == '*' || *s == '_')
            fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
}

char *pbh_format_run_markdown(const pbh_run *run) {
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    if (!f)
        return NULL;
    const pbh_context *c = &run->ctx;
    fprintf(f, "### poolbench run %lld", (long long)run->id);
    if (run->label) {
        fprintf(f, " (");
        md_text(f, run->label);
        fprintf(f, ")");
    }
    fprintf(f, "\n\n");
    fprintf(f, "%s, %s, commit `%.12s`%s, %s, %d cores, %s %s, %.1f s, status **%s**\n\n",
            c->started_at ? c->started_at : "?", run->suite ? run->suite : "custom matrix",
            c->git_commit ? c->git_commit : "unknown", c->git_dirty == 1 ? " (dirty)" : "",
            c->cpu_model ? c->cpu_model : "?", c->cores, c->compiler ? c->compiler : "?",
            c->build_type ? c->build_type : "", run->duration_s, run->status ? run->status : "?");
    fprintf(f, "| case | status | n | median | MAD %% | efficiency | overhead x floor | CPU | tasks/s |\n");
    fprintf(f, "|---|---|--:|--:|--:|--:|--:|--:|--:|\n");
    for (size_t i = 0; i < run->ncases; i++) {
        const pbh_case *k = &run->cases[i];
        pbh_case_summary s;
        pbh_case_summarize(run, k, &s);
        char med[32] = "-", cpu[32] = "-";
        if (s.n) {
            pbh_fmt_duration(s.median_s, med, sizeof med);
            pbh_fmt_duration(s.cpu_median_s, cpu, sizeof cpu);
        }
        fprintf(f, "| ");
        md_text(f, k->name);
        fprintf(f, " | %s | %zu | %s | ", k->status ? k->status : "?", s.n, med);
        if (s.n)
            fprintf(f, "%.2f", s.mad_pct);
        else
            fprintf(f, "-");
        fprintf(f, " | ");
        if (s.n && s.efficiency > 0)
            fprintf(f, "%.3f", s.efficiency);
        else
            fprintf(f, "-");
        fprintf(f, " | ");
        if (s.n && !isnan(s.overhead_x_floor)) {
            char m[32];
            pbh_fmt_multiple(s.overhead_x_floor, m, sizeof m);
            fprintf(f, "%s", m);
        }
        else
            fprintf(f, "-");
        fprintf(f, " | %s | ", cpu);
        if (s.n)
            fprintf(f, "%.4g", s.tasks_per_s);
        else
            fprintf(f, "-");
        fprintf(f, " |\n");
    }
    int notes = 0;
    for (size_t i = 0; i < run->ncases; i++) {
        const pbh_case *k = &run->cases[i];
        if (!k->reason)
            continue;
        if (!notes++)
            fprintf(f, "\n");
        fprintf(f, "- `%s` %s: ", k->name ? k->name : "?", k->status ? k->status : "?");
        md_text(f, k->reason);
        fprintf(f, "\n");
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
