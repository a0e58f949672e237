#!/usr/bin/env python3
"""gen-fleet.py - fills a store with a synthetic fleet of runs, for the scale figures in docs/stores.md.

    gen-fleet.py STORE [--machines M] [--runs R] [--cases C] [--samples S] [--seed N] [--step-at K]

STORE is an SQLite path or a postgresql:// URI that must be empty; `poolbench store init` creates the
schema first (so the tables are exactly the harness's), then the rows are written in bulk: executemany
for SQLite, COPY through psql for PostgreSQL. Generated data, not real runs: M machines named m00, m01, ...
each with R runs an hour apart, each run with C cases of S samples. A case's wall time is its base time
(spread over 1 ms .. 2 s) times a machine factor times log-normal noise (2 %); from run K on (default
R * 3 / 5) every third case is 10 % slower, so history has real change points to find and compare has
real regressions. Every run gets a uuid, a commit hash and its machine key. Deterministic for a seed.

This writes SQL directly because it makes synthetic data for measuring the stores, not results: every
reader still goes through the CLI. Needs the poolbench binary ($POOLBENCH_BIN, else build/poolbench) and,
for PostgreSQL, psql.
"""
import argparse
import hashlib
import math
import os
import random
import sqlite3
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = [("sleep", "items=4,ms=20"), ("square", "items=100000"), ("cpu", "items=32,kib=64,level=6"),
             ("payload", "items=16,in_kib=1024,out_kib=1024"), ("skew", "items=64"), ("startup", "")]
BACKENDS = ["serial", "threads", "fork", "spawn"]
WORKERS = [1, 2, 4, 8]


def case_names(n):
    names = []
    for s, params in SCENARIOS:
        for b in BACKENDS:
            for w in WORKERS:
                if b == "serial" and w != 1:
                    continue
                names.append((s, b, w, params))
    k, base = 0, len(names)
    while len(names) < n:  # more than the matrix: numbered variants
        s, b, w, params = names[k % base]
        names.append((s, b, w, (params + "," if params else "") + "v=%d" % (k // base + 1)))
        k += 1
    out = []
    for s, b, w, params in names[:n]:
        out.append(("%s/%s/w%d%s" % (s, b, w, "/" + params if params else ""), s, b, w, params))
    return out


def rows(args):
    """Yields ('run', tuple) / ('case', tuple) / ('sample', tuple) in id order."""
    rng = random.Random(args.seed)
    cases = case_names(args.cases)
    base = [10 ** rng.uniform(-3, math.log10(2.0)) for _ in cases]
    step_at = args.step_at if args.step_at is not None else args.runs * 3 // 5
    run_id = case_id = 0
    t0 = 1790000000.0
    for r in range(args.runs):
        for m in range(args.machines):
            run_id += 1
            machine = "m%02d" % m
            factor = 1.0 + 0.05 * m
            started = t0 + 3600.0 * r + 60.0 * m
            commit = hashlib.sha1(b"commit %d" % r).hexdigest()
            when = "%04d-%02d-%02dT%02d:%02d:%02dZ" % (2026, 1 + (r // 720) % 12, 1 + (r // 24) % 28, r % 24, m, 0)
            yield "run", (run_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)), machine, "native",
                          "fleet-%d" % r, "default", "ok", when, started, 10.0, commit, 0, machine + ".ci",
                          "Synthetic CPU @ 3.0GHz", 8, "Linux 6.1.0 x86_64", "GNU 12.2.0", "-O2", "Release",
                          "gen-fleet", None, "0.1.0", None)
            for k, (name, s, b, w, params) in enumerate(cases):
                case_id += 1
                yield "case", (case_id, run_id, k, name, s, b, w, params, "ok", None, args.samples, 1, None,
                               "map", 1.0)
                level = base[k] * factor * (1.10 if (r >= step_at and k % 3 == 0) else 1.0)
                for rep in range(args.samples):
                    wall = level * math.exp(rng.gauss(0.0, 0.02))
                    yield "sample", (case_id, rep, wall, wall * 0.5, wall * 0.1, 4096, 0.0, 0.0, 4, 0, 1)


RUN_COLS = ("id, uuid, machine, source, label, suite, status, started_at, started_unix, duration_s, git_commit,"
            " git_dirty, host, cpu_model, cores, kernel, compiler, cflags, build_type, command_line, governor,"
            " version, context_json")
CASE_COLS = "id, run_id, ord, name, scenario, backend, workers, params, status, reason, reps, warmup, floor," \
            " measures, elapsed_s"
SAMPLE_COLS = "case_id, rep, wall_s, user_s, sys_s, peak_rss_kb, startup_s, ideal_s, tasks, failed_tasks, iterations"


def fill_sqlite(path, args):
    db = sqlite3.connect(path)
    db.execute("BEGIN")
    batch = {"run": [], "case": [], "sample": []}
    sql = {"run": "INSERT INTO runs (%s) VALUES (%s)" % (RUN_COLS, ",".join("?" * 23)),
           "case": "INSERT INTO cases (%s) VALUES (%s)" % (CASE_COLS, ",".join("?" * 15)),
           "sample": "INSERT INTO samples (%s) VALUES (%s)" % (SAMPLE_COLS, ",".join("?" * 11))}
    for kind, row in rows(args):
        batch[kind].append(row)
        if len(batch["sample"]) >= 100000:
            for k in ("run", "case", "sample"):
                db.executemany(sql[k], batch[k])
                batch[k] = []
    for k in ("run", "case", "sample"):
        db.executemany(sql[k], batch[k])
    db.commit()
    db.close()


def copy_text(v):
    if v is None:
        return "\\N"
    if isinstance(v, float):
        return repr(v)
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def fill_postgres(uri, args):
    """Rows to three temporary files (the fleet is millions of rows), then one psql session COPYs them in
    one transaction, resets the identity sequences and ANALYZEs."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="gen-fleet.") as tmp:
        files = {k: open(os.path.join(tmp, k), "w") for k in ("run", "case", "sample")}
        for kind, row in rows(args):
            files[kind].write("\t".join(copy_text(v) for v in row) + "\n")
        for f in files.values():
            f.close()
        script = os.path.join(tmp, "load.sql")
        with open(script, "w") as f:
            f.write("BEGIN;\n")
            for kind, table, cols in (("run", "runs", RUN_COLS), ("case", "cases", CASE_COLS),
                                      ("sample", "samples", SAMPLE_COLS)):
                f.write("\\copy %s (%s) FROM '%s'\n" % (table, cols, os.path.join(tmp, kind)))
            f.write("SELECT setval(pg_get_serial_sequence('runs', 'id'), (SELECT max(id) FROM runs));\n")
            f.write("SELECT setval(pg_get_serial_sequence('cases', 'id'), (SELECT max(id) FROM cases));\n")
            f.write("COMMIT;\nANALYZE;\n")
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", script, uri],
                       stdout=subprocess.DEVNULL, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store")
    ap.add_argument("--machines", type=int, default=20)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--cases", type=int, default=34)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--step-at", type=int, default=None)
    args = ap.parse_args()
    if min(args.machines, args.runs, args.cases, args.samples) < 1:
        print("gen-fleet: every count must be at least 1", file=sys.stderr)
        return 2
    binary = os.environ.get("POOLBENCH_BIN") or os.path.join(HERE, "..", "build", "poolbench")
    init = subprocess.run([binary, "store", "init", "--store", args.store], capture_output=True, text=True)
    if init.returncode != 0:
        print("gen-fleet: %s" % init.stderr.strip(), file=sys.stderr)
        return 2
    if "created" not in init.stdout:
        print("gen-fleet: the store must be empty (%s)" % init.stdout.strip(), file=sys.stderr)
        return 2
    if args.store.startswith(("postgresql://", "postgres://")):
        fill_postgres(args.store, args)
    else:
        fill_sqlite(args.store, args)
    print("gen-fleet: %d machines x %d runs x %d cases x %d samples" % (args.machines, args.runs, args.cases,
                                                                       args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
