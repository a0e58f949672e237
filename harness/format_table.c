/*
 * format_table.c - the terminal tables: one run (`run`, `show`) and the list of runs (`runs`).
 *
 * Columns of a run: case, status, n (samples), median wall, spread (MAD as % of the median: robust to
 * the odd outlier that a mean +- stddev would chase), efficiency (ideal / median), overhead x floor
 * (((median - ideal) / tasks) / floor, see model.c), median CPU, peak RSS. Failed, timed-out and
 * unsupported cases list their reason under the table. The text goes into an open_memstream buffer:
 * bytes, not a file.
 */
#include "format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pbh_fmt_duration(double s, char *buf, size_t len) {
    if (isnan(s)) {
        snprintf(buf, len, "-");
        return;
    }
    double a = fabs(s);
    if (a >= 1.0)
        snprintf(buf, len, "%.4f s", s); /* 2.0012 s: the seed's overhead is in the third decimal */
    else if (a >= 1e-3)
        snprintf(buf, len, "%.4g ms", s * 1e3);
    else if (a >= 1e-6)
        snprintf(buf, len, "%.4g us", s * 1e6);
    else
        snprintf(buf, len, "%.4g ns", s * 1e9);
}

void pbh_fmt_multiple(double x, char *buf, size_t len) {
    double a = fabs(x);
    snprintf(buf, len, a >= 100 ? "%.0fx" : a >= 10 ? "%.1fx" : "%.2fx", x);
}

static void fmt_rss(int64_t kb, char *buf, size_t len) {
    if (kb <= 0)
        snprintf(buf, len, "-");
    else if (kb >= 1024 * 1024)
        snprintf(buf, len, "%.1f GiB", (double)kb / (1024.0 * 1024.0));
    else if (kb >= 1024)
        snprintf(buf, len, "%.1f MiB", (double)kb / 1024.0);
    else
        snprintf(buf, len, "%lld KiB", (long long)kb);
}

static void header(FILE *f, const pbh_run *run) {
    const pbh_context *c = &run->ctx;
    fprintf(f, "run %lld", (long long)run->id);
    if (run->label)
        fprintf(f, "  label %s", run->label);
    if (run->suite)
        fprintf(f, "  suite %s", run->suite);
    if (run->source && strcmp(run->source, PBH_SOURCE_NATIVE) != 0)
        fprintf(f, "  imported from %s", run->source);
    fprintf(f, "  %s  %.1f s  %s\n", c->started_at ? c->started_at : "?", run->duration_s,
            run->status ? run->status : "?");
    fprintf(f, "commit %.12s%s  host %s  %s, %d cores  %s  %s %s", c->git_commit ? c->git_commit : "unknown",
            c->git_dirty == 1 ? " (dirty)" : "", c->host ? c->host : "?", c->cpu_model ? c->cpu_model : "?",
            c->cores, c->kernel ? c->kernel : "?", c->compiler ? c->compiler : "?",
            c->build_type ? c->build_type : "");
    if (c->governor)
        fprintf(f, "  governor %s", c->governor);
    if (c->machine)
        fprintf(f, "  machine %s", c->machine);
    fprintf(f, "\n\n");
}

char *pbh_format_run_table(const pbh_run *run) {
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    if (!f)
        return NULL;
    header(f, run);
    size_t w = 4;
    for (size_t i = 0; i < run->ncases; i++)
        if (run->cases[i].name && strlen(run->cases[i].name) > w)
            w = strlen(run->cases[i].name);
    if (w > 60)
        w = 60;
    fprintf(f, "%-*s  %-11s %4s %11s %7s %6s %9s %10s %9s\n", (int)w, "case", "status", "n", "median", "MAD%",
            "eff", "ovh/floor", "cpu", "peak rss");
    int notes = 0;
    for (size_t i = 0; i < run->ncases; i++) {
        const pbh_case *c = &run->cases[i];
        pbh_case_summary s;
        pbh_case_summarize(run, c, &s);
        char med[32], cpu[32], rss[32], spread[16], eff[16], ovh[16];
        if (s.n) {
            pbh_fmt_duration(s.median_s, med, sizeof med);
            pbh_fmt_duration(s.cpu_median_s, cpu, sizeof cpu);
            snprintf(spread, sizeof spread, "%.2f", s.mad_pct);
        } else {
            snprintf(med, sizeof med, "-");
            snprintf(cpu, sizeof cpu, "-");
            snprintf(spread, sizeof spread, "-");
        }
        fmt_rss(s.peak_rss_kb, rss, sizeof rss);
        if (s.n && s.efficiency > 0)
            snprintf(eff, sizeof eff, "%.3f", s.efficiency);
        else
            snprintf(eff, sizeof eff, "-");
        if (s.n && !isnan(s.overhead_x_floor))
            pbh_fmt_multiple(s.overhead_x_floor, ovh, sizeof ovh);
        else
            snprintf(ovh, sizeof ovh, "-");
        fprintf(f, "%-*s  %-11s %4zu %11s %7s %6s %9s %10s %9s\n", (int)w, c->name ? c->name : "?",
                c->status ? c->status : "?", s.n, med, spread, eff, ovh, cpu, rss);
        if (c->reason)
            notes = 1;
    }
    if (run->nfloors) {
        fprintf(f, "\nfloors (per operation, this run):");
        for (size_t i = 0; i < run->nfloors; i++) {
            char d[32];
            if (run->floors[i].seconds > 0)
                pbh_fmt_duration(run->floors[i].seconds, d, sizeof d);
            else
                snprintf(d, sizeof d, "n/a");
            fprintf(f, "%s %s %s", i ? "," : "", run->floors[i].name, d);
        }
        fprintf(f, "\n");
        /* What one core is worth when every core is busy: the cpu scenario's ideal measures it too. */
        const pbh_floor *alone = pbh_run_floor(run, "cpu_item"), *busy = pbh_run_floor(run, "cpu_item_parallel");
        if (alone && busy && alone->seconds > 0 && busy->seconds > 0)
            fprintf(f,
                    "parallel capacity: with every CPU busy (plain processes, no pool) one cpu item takes %.2fx "
                    "its time alone; the cpu ideal includes it\n",
                    busy->seconds / alone->seconds);
    }
    fprintf(f, "median = median wall time of the measured phase; MAD%% = median absolute deviation / median;\n"
               "eff = ideal / median; ovh/floor = ((median - ideal) / tasks) / the scenario's floor.\n");
    if (notes) {
        fprintf(f, "\n");
        for (size_t i = 0; i < run->ncases; i++) {
            const pbh_case *c = &run->cases[i];
            if (c->reason)
                fprintf(f, "%s: %s: %s\n", c->name ? c->name : "?", c->status ? c->status : "?", c->reason);
        }
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

char *pbh_format_runs_table(const pbh_run_info *runs, size_t n) {
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    if (!f)
        return NULL;
    if (n == 0) {
        fprintf(f, "no runs\n");
    } else {
        fprintf(f, "%6s  %-20s  %-9s  %-14s  %-8s  %-7s  %5s  %6s  %9s  %s\n", "id", "started", "source", "label", "suite",
                "status", "cases", "failed", "duration", "commit        machine");
        for (size_t i = 0; i < n; i++) {
            const pbh_run_info *r = &runs[i];
            fprintf(f, "%6lld  %-20s  %-9s  %-14s  %-8s  %-7s  %5d  %6d  %8.1fs  %-12.12s%-6s  %s\n", (long long)r->id,
                    r->started_at ? r->started_at : "?", r->source ? r->source : "?", r->label ? r->label : "-",
                    r->suite ? r->suite : "-", r->status ? r->status : "?", r->ncases, r->nfailed, r->duration_s,
                    r->git_commit ? r->git_commit : "-", r->git_dirty == 1 ? "+dirty" : "",
                    r->machine && *r->machine ? r->machine : "-");
        }
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

char *pbh_format_stream(void (*write)(FILE *out, const void *arg), const void *arg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    write(f, arg);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
