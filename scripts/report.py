"""report.py - renders a poolbench run as PNG + SVG charts and one index.html.

Run it through scripts/report, which finds a Python that has matplotlib. It reads results only through
the poolbench CLI's JSON ($POOLBENCH_BIN, else build/poolbench): `runs`, `export RUN`, `history` and
`compare` with --format json. It never opens the store itself, so it reads whatever store the CLI reads
(and a second store implementation needs no second reader here). It writes only into --out DIR: the
charts as PNG and SVG and an index.html that shows them with the run's context, a table of its cases, the
floor probes and, given a baseline, a comparison table (the change of medians, and the verdicts of
`poolbench compare`); and one page per machine of the store (machine-KEY.html: its history charts with
the change points, its latest interleaved A/B pair with the verdicts, its calibrated noise per case from
`poolbench calibrate --show`), linked from the index's Machines table. The per-case numbers (median,
quartiles, MAD, efficiency, overhead x floor) are the CLI's (harness/model.c); this script only adds the chart decorations: error bars are bootstrap 95 %
intervals of the median (2000 resamples, a fixed seed per case), so the same store always gives the same
charts. Change points on the history charts come from `poolbench history --format json`. See
docs/report.md.

Exit codes: 0 report written, 2 bad input (no CLI, no store, not a poolbench store, unknown run, bad option,
an output directory that cannot be created), 1 anything else (an internal error, a failed write).
"""
import argparse
import html
import json
import math
import os
import re
import shlex
import subprocess
import sys
import textwrap
import zlib

import numpy as np

# matplotlib is imported by load_matplotlib() once the input is known to be good: a bad argument is
# answered in a fraction of a second, not after the second or so that importing pyplot takes.
plt = Line2D = Patch = FixedLocator = FuncFormatter = LogLocator = MaxNLocator = NullFormatter = NullLocator = None

BOOT_RESAMPLES = 2000
BOOT_SEED = 0x706F6F6C         # "pool": per case, mixed with a CRC of the case name
CLI_TIMEOUT_S = 120

CHART_KINDS = ["scenario", "scaling", "distribution", "history", "hyperfine"]
BACKEND_ORDER = ["serial", "threads", "fork", "spawn", "fork-shm", "spawn-shm", "forkserver", "glib", "libuv", "openmp",
                 "python", "python-process-executor", "python-thread-pool",
                 "floor-threads", "floor-fork", "floor-spawn"]
BACKEND_COLORS = {"serial": "#7f7f7f", "threads": "#1f77b4", "fork": "#ff7f0e", "spawn": "#2ca02c",
                  "fork-shm": "#ffbb78", "spawn-shm": "#98df8a", "forkserver": "#d62728", "glib": "#8c564b",
                  "libuv": "#17becf", "openmp": "#bcbd22",
                  "python": "#9467bd", "python-process-executor": "#e377c2", "python-thread-pool": "#393b79",
                  # the seed's floors (poolbench-seed-floor: the same sleeps by hand, no pool): pale, last
                  "floor-threads": "#e0e0e0", "floor-fork": "#e0e0e0", "floor-spawn": "#e0e0e0"}
EXTRA_COLORS = ["#d62728", "#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354"]
BACKEND_LABELS = {"python": "Python Pool", "python-process-executor": "Python\nProcessPool-\nExecutor",
                  "python-thread-pool": "Python\nThreadPool", "floor-threads": "floor:\nthreads",
                  "floor-fork": "floor:\nfork", "floor-spawn": "floor:\nspawn"}  # several lines: they stand side by side as tick labels
# seed.py --pool X -> the backend name its hyperfine row carries (hyperfine/<group>/python-X)
PYTHON_POOLS = {"pool": "python", "process-executor": "python-process-executor",
                "thread-pool": "python-thread-pool"}

RC = {
    "figure.dpi": 100, "savefig.dpi": 130, "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
    "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True,
    "grid.alpha": 0.3, "axes.axisbelow": True, "svg.hashsalt": "poolbench-report", "svg.fonttype": "path",
}


def load_matplotlib():
    global plt, Line2D, Patch, FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import (FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter,
                                   NullLocator)
    plt.rcParams.update(RC)


class InputError(Exception):
    """Bad input from the user: exit code 2."""


# ---- results, through the CLI's JSON ------------------------------------------------------------------

class Case:
    """One case of an exported run (`poolbench export RUN --format json`)."""

    def __init__(self, doc, floors):
        self.name = doc["name"]
        self.scenario, self.backend, self.params = doc.get("scenario"), doc.get("backend"), doc.get("params")
        self.workers = doc.get("workers") or 0
        self.status, self.reason = doc.get("status"), doc.get("reason")
        self.floor, self.measures = doc.get("floor"), doc.get("measures")
        # per iteration, as the CLI's summary (a gbench sample folds several iterations)
        self.samples = [{"wall": x["wall_s"] / (x.get("iterations") or 1), "ideal": x.get("ideal_s") or 0.0,
                         "tasks": x.get("tasks") or 0} for x in doc.get("samples", [])]
        self.summary = summary_of(self, doc.get("summary") or {}, floors)

    @property
    def walls(self):
        return np.array([s["wall"] for s in self.samples], dtype=float)


def summary_of(c, cs, floors):
    """The CLI's case summary under the names the charts use, plus the bootstrap CI of the median."""
    fl = cs.get("floor_s")
    if fl is None and c.floor:  # the CLI says null for an unknown floor; keep what the run measured
        fl = floors.get(c.floor)
    s = {"n": cs.get("n", len(c.samples)), "floor_s": fl if fl and fl > 0 else None, "efficiency": None,
         "overhead_x_floor": None, "ideal_s": 0.0}
    if not c.samples or cs.get("median_s") is None:
        return s
    med = cs["median_s"]
    s.update(median=med, q1=cs.get("q1_s"), q3=cs.get("q3_s"), mad=cs.get("mad_s"), mean=cs.get("mean_s"),
             min=cs.get("min_s"), max=cs.get("max_s"), iqr_pct=cs.get("iqr_pct") if med > 0 else None,
             mad_pct=cs.get("mad_pct") if med > 0 else None, ideal_s=cs.get("ideal_s") or 0.0,
             tasks=cs.get("tasks") or 0, efficiency=cs.get("efficiency"),
             overhead_x_floor=cs.get("overhead_x_floor"))
    s["ci"] = bootstrap_median_ci(c.walls, c.name)
    return s


def is_url(store):
    """A store URI (postgresql://...) rather than an SQLite path: the CLI opens either."""
    return "://" in store


def store_location(store):
    """What the CLI is given: an SQLite path made absolute, a URI as it is."""
    return store if is_url(store) else os.path.abspath(store)


def redact(store):
    """The store as the page may show it: a URI's password replaced by *** (as the CLI's messages do)."""
    store = re.sub(r"^([a-z]+://[^/@:?#]*:)[^/?#]*@", r"\1***@", store)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", store)


class Results:
    """The store (an SQLite path or a postgresql:// URI), read through the poolbench CLI (the only reader
    of the store)."""

    def __init__(self, cli, store_path):
        self.cli, self.path = cli, store_path
        if not (os.path.isfile(cli) and os.access(cli, os.X_OK)):
            raise InputError("the poolbench CLI was not found at %s: the report reads the store through it "
                             "(build it, or set $POOLBENCH_BIN)" % cli)
        self.runs = self.json("runs")["runs"]  # newest first; also validates the store
        if not self.runs:
            raise InputError("the store %s is empty: no runs to report (a `poolbench run` fills it)"
                             % redact(store_path))

    def json(self, verb, *args, ok=(0,)):
        """The JSON document `poolbench VERB ARGS --format json` prints for this store."""
        cmd = [self.cli, verb, *[str(a) for a in args], "--format", "json"]
        env = dict(os.environ, POOLBENCH_STORE=store_location(self.path))
        try:
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=CLI_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RuntimeError("`%s` failed: %s" % (" ".join(cmd[1:]), e))
        msg = p.stderr.decode(errors="replace").strip().splitlines()
        first = re.sub(r"^poolbench: ", "", msg[0]) if msg else ""
        if p.returncode == 2:  # bad input, said by the CLI: no store, not a store, no such run
            raise InputError(first or "`poolbench %s` refused its input" % verb)
        if p.returncode not in ok:
            raise RuntimeError("`poolbench %s` exited %d%s" % (" ".join(cmd[1:]), p.returncode,
                                                               (": " + first) if first else ""))
        try:
            return json.loads(p.stdout.decode())
        except ValueError as e:
            raise RuntimeError("`poolbench %s` printed output this report does not understand (%s)" % (verb, e))

    def default_run(self):
        """The newest native run, else the newest run of any kind (RUN not given)."""
        native = [r["id"] for r in self.runs if r.get("source") == "native"]
        return str(max(native) if native else max(r["id"] for r in self.runs))

    def load_run(self, ref):
        """A run id, a label (its latest run) or 'latest', resolved by the CLI; a dict with the context flat."""
        doc = self.json("export", ref)
        run = {k: v for k, v in doc.items() if k not in ("context", "cases", "floors")}
        run.update({k: v for k, v in (doc.get("context") or {}).items() if k != "imported"})
        run["floors"] = {f["name"]: f["seconds"] for f in doc.get("floors", []) if f.get("seconds") is not None}
        run["cases"] = [Case(c, run["floors"]) for c in doc.get("cases", [])]
        return run

    def latest_of_source(self, source):
        ids = [r["id"] for r in self.runs if r.get("source") == source]
        return max(ids) if ids else None

    def history(self, source, names, machine=None):
        """From `poolbench history`: the runs of `source` (on `machine`, when the run names one: history
        never mixes machines) in time order as (id, None, started_at, commit, label), per case name its
        median per run {name: {run_id: median}}, and per case name its change points."""
        runs = sorted((r for r in self.runs if r.get("source") == source and (not machine or r.get("machine") == machine)),
                      key=lambda r: (r["started_at"], r["id"]))
        runs = [(r["id"], None, r["started_at"], r.get("git_commit"), r.get("label")) for r in runs]
        ids = {r[0] for r in runs}
        doc = self.json("history", *(["--machine", machine] if machine else []))
        wanted = set(names)
        meds, cps = {}, {}
        for entry in doc.get("cases", []):
            if not isinstance(entry, dict) or entry.get("case") not in wanted:
                continue
            pts = {p["run_id"]: p["median_s"] for p in entry.get("points", []) if p.get("run_id") in ids}
            if pts:
                meds[entry["case"]] = pts
            cps[entry["case"]] = [cp for cp in entry.get("change_points", []) if isinstance(cp, dict)]
        return runs, meds, cps

    def calibration(self, machine):
        """The latest calibration stored for machine (`poolbench calibrate --show`), or None when there is none
        (or the store predates calibrations)."""
        try:
            return self.json("calibrate", "--show", "--machine", machine)
        except InputError:
            return None

    def latest_pair(self, machine):
        """(base run, head run) of the newest interleaved A/B pair measured on machine, or None."""
        heads = [r for r in self.runs if r.get("machine") == machine and (r.get("pair") or {}).get("side") == "head"]
        if not heads:
            return None
        head = max(heads, key=lambda r: r["id"])
        pid = head["pair"]["id"]
        base = next((r for r in self.runs if (r.get("pair") or {}).get("id") == pid and r["pair"]["side"] == "base"),
                    None)
        return (base, head) if base else None

    def compare(self, base_id, run_id):
        """The `poolbench compare --format json` document (exit 1 = a regression: still a verdict)."""
        doc = self.json("compare", base_id, run_id, ok=(0, 1))
        doc["cases"] = [c for c in doc.get("cases", []) if isinstance(c, dict) and "case" in c]
        return doc


# ---- statistics for the charts -------------------------------------------------------------------------------

def bootstrap_median_ci(x, key, conf=0.95):
    """Percentile bootstrap interval of the median; deterministic (seed from the case name)."""
    if len(x) < 2:
        return (float(x[0]), float(x[0])) if len(x) else (math.nan, math.nan)
    rng = np.random.default_rng([BOOT_SEED, zlib.crc32(key.encode())])
    meds = np.median(x[rng.integers(0, len(x), size=(BOOT_RESAMPLES, len(x)))], axis=1)
    lo, hi = np.percentile(meds, [100 * (1 - conf) / 2, 100 * (1 + conf) / 2])
    return float(lo), float(hi)


# ---- units, names, colors -----------------------------------------------------------------------------------

UNITS = [("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)]


def pick_unit(values):
    """The unit in which the largest of values reads as >= 1 (so axes show 1..999, not 0.000x)."""
    vals = [abs(v) for v in values if v is not None and np.isfinite(v) and v != 0]
    top = max(vals) if vals else 1.0
    for name, f in UNITS:
        if top >= f:
            return name, f
    return UNITS[-1]


def fmt_time(x):
    if x is None or not np.isfinite(x):
        return "–"
    name, f = pick_unit([x])
    v = x / f
    return ("%.4g %s" % (v, name)) if v < 1000 else ("%.0f %s" % (v, name))


def fmt_pct(x, digits=1):
    return "–" if x is None or not np.isfinite(x) else ("%.*f %%" % (digits, x))


_extra_colors = {}


def backend_color(b):
    if b in BACKEND_COLORS:
        return BACKEND_COLORS[b]
    if b not in _extra_colors:
        _extra_colors[b] = EXTRA_COLORS[len(_extra_colors) % len(EXTRA_COLORS)]
    return _extra_colors[b]


def backend_label(b):
    return BACKEND_LABELS.get(b, b)


def backend_sort_key(b):
    return (BACKEND_ORDER.index(b) if b in BACKEND_ORDER else len(BACKEND_ORDER), b)


def case_backend(c):
    """The backend of a case; for imported commands: --backend B, or 'python' (Pool), 'python-process-executor'
    or 'python-thread-pool' for a Python program (seed.py --pool)."""
    if c.backend:
        return "python" if c.backend in ("python", "python-pool") else c.backend
    try:
        argv = shlex.split(c.name)
    except ValueError:
        argv = c.name.split()
    for i, a in enumerate(argv):
        if a == "--backend" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--backend="):
            return a.split("=", 1)[1]
    if argv and re.match(r"python[0-9.]*$", os.path.basename(argv[0])):
        for i, a in enumerate(argv):
            if a == "--pool" and i + 1 < len(argv):
                return PYTHON_POOLS.get(argv[i + 1], "python")
        return "python"
    return "other"


def case_scenario(c, run):
    """The scenario of a case, or a group name for imported cases that have none."""
    if c.scenario:
        return c.scenario
    m = re.search(r"--scenario[= ](\S+)", c.name)
    if m:
        return m.group(1)
    return run["source"] if run["source"] != "native" else "other"


def varying_params(cases):
    """Parameter keys whose value differs between cases (only those need to be in a label)."""
    seen = {}
    for c in cases:
        for kv in (c.params or "").split(","):
            if "=" in kv:
                k, v = kv.split("=", 1)
                seen.setdefault(k, set()).add(v)
    return {k for k, vs in seen.items() if len(vs) > 1}


def common_params(cases):
    vary = varying_params(cases)
    first = cases[0].params if cases else ""
    return ",".join(kv for kv in (first or "").split(",") if kv and kv.split("=", 1)[0] not in vary)


def short_params(params, keep):
    return ",".join(kv for kv in (params or "").split(",") if kv.split("=", 1)[0] in keep)


def short_case(c, vary, with_backend=True):
    """'fork w4' (+ the parameters that vary within the chart): the case name a chart panel needs."""
    if not c.scenario:  # imported: the tool's own name, wrapped
        return abbrev(c.name, 22, 3)
    parts = ([backend_label(case_backend(c))] if with_backend else []) + (["w%d" % c.workers] if c.workers > 0 else [])
    p = short_params(c.params, vary)
    if p:
        parts.append(p)
    return abbrev(" ".join(parts), 22, 2)


def abbrev(s, width, lines):
    out = textwrap.wrap(s, width, break_on_hyphens=False) or [""]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: width - 1] + "…"
    return "\n".join(out)


def short_command(cmd):
    """'python3 /a/b/seed.py --items 4' -> 'python3\nseed.py …': program and script names, for a tick label."""
    try:
        argv = shlex.split(cmd)
    except ValueError:
        argv = cmd.split()
    words = [os.path.basename(a) if "/" in a and not a.startswith("-") else a for a in argv]
    return "\n".join(w if len(w) <= 14 else w[:13] + "…" for w in words[:2]) + (" …" if len(words) > 2 else "")


def slug(s):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "x"


def short_commit(c):
    return (c or "?")[:7]


# ---- charts ---------------------------------------------------------------------------------------------------

class Output:
    def __init__(self, outdir):
        self.outdir = outdir
        self.charts = []   # (section, stem, title, caption)
        self.hyperfine_run = None
        self.change_points = None  # [(case, change point)] for the page; None: no CLI answer

    def save(self, fig, section, stem, title, caption):
        """Writes stem.png and stem.svg; returns the chart's record for the page."""
        if fig.get_layout_engine() is not None:
            fig.canvas.draw()  # run the layout engine once, so that the box below is measured after it
        box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.15)  # both files share one tight box
        for ext in ("png", "svg"):
            fig.savefig(os.path.join(self.outdir, "%s.%s" % (stem, ext)), bbox_inches=box,
                        metadata={"Date": None} if ext == "svg" else {"Software": None})
        plt.close(fig)
        return (section, stem, title, caption)


def legend_outside(ax_or_fig, handles, labels=None, title=None):
    """A legend to the right of the plot area: it can never cover data."""
    kw = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False, title=title)
    if labels is None:
        return ax_or_fig.legend(handles=handles, **kw)
    return ax_or_fig.legend(handles, labels, **kw)


def scenario_groups(run, cases=None):
    """{scenario: cases}. An imported command that names no scenario (a bare Python seed command) joins the
    'sleep' or 'seed' group when there is one (the seed is the sleep scenario), else the first group."""
    groups = {}
    for c in run["cases"] if cases is None else cases:
        groups.setdefault(case_scenario(c, run), []).append(c)
    src = run["source"]
    if src != "native" and src in groups and len(groups) > 1:
        target = next((k for k in ("sleep", "seed") if k in groups), sorted(k for k in groups if k != src)[0])
        groups[target] = groups.pop(src) + groups[target]
    return groups


def log_axis(ax, values, suffix=""):
    """A log y axis with plain-number labels: 1-2-5 steps over up to 3 decades, decades beyond that."""
    v = [x for x in values if x and x > 0]
    decades = math.log10(max(v) / min(v)) if v else 1
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: "%g%s" % (x, suffix)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def use_log(values):
    v = [x for x in values if x and x > 0]
    return len(v) > 1 and max(v) / min(v) > 30


def group_key(c, native):
    """Where a case's bar goes: (params, workers) for native cases; for imported ones the case's name with
    its backend taken out ('--backend fork', '/fork'), so that the backends of one command stand together."""
    if native:
        return (c.params or "", c.workers)
    name = re.sub(r"\s*--backend[= ]\S+", "", c.name)
    b = c.backend
    if b:
        name = re.sub(r"(^|/)%s(/|$)" % re.escape(b), lambda m: "/" if m.group(1) and m.group(2) else "", name)
    return (name.strip() or c.name, 0)


def chart_scenario(out, run, scen, cases):
    """Backends side by side, grouped by (params, workers): median, bootstrap 95 % CI, ideal marked."""
    vary = varying_params(cases)
    native = run["source"] == "native"
    keys = []
    for c in cases:
        if group_key(c, native) not in keys:
            keys.append(group_key(c, native))
    if native:
        keys.sort(key=lambda k: ([x.params or "" for x in cases].index(k[0]), k[1]))
    by_key = {k: [] for k in keys}
    for c in cases:
        by_key[group_key(c, native)].append(c)
    ok = [c for c in cases if c.summary.get("median") is not None]
    if not ok:
        return False
    vals = [c.summary["ci"][1] for c in ok] + [c.summary["median"] for c in ok] + \
           [c.summary["ideal_s"] for c in ok if c.summary["ideal_s"] > 0]
    unit, f = pick_unit(vals)
    nbars = sum(len(v) for v in by_key.values())
    fig, ax = plt.subplots(figsize=(max(5.5, 1.5 + 0.42 * nbars + 0.3 * len(keys)), 4.2))
    backends = sorted({case_backend(c) for c in cases}, key=backend_sort_key)
    width = 0.8 / max(len(v) for v in by_key.values())
    ideal_drawn = False
    xticks, xlabels = [], []
    log = use_log([c.summary["median"] for c in ok])
    for gi, k in enumerate(keys):
        group = sorted(by_key[k], key=lambda c: backend_sort_key(case_backend(c)))
        n = len(group)
        xs = [gi - width * (n - 1) / 2 + width * i for i in range(n)]
        for x, c in zip(xs, group):
            s = c.summary
            b = case_backend(c)
            if s.get("median") is None:
                ax.text(x, 0.02, "%s: %s" % (backend_label(b), c.status), transform=ax.get_xaxis_transform(),
                        rotation=90, ha="center", va="bottom", fontsize=7, color="#b00020")
                continue
            lo, hi = s["ci"]
            ax.bar(x, s["median"] / f, width * 0.92, color=backend_color(b), edgecolor="black", linewidth=0.4,
                   yerr=[[max(s["median"] - lo, 0) / f], [max(hi - s["median"], 0) / f]], capsize=2.5,
                   error_kw={"elinewidth": 0.9})
        ideals = [c.summary["ideal_s"] for c in group if c.summary.get("ideal_s", 0) > 0]
        if ideals:
            y = float(np.median(ideals)) / f
            ax.hlines(y, xs[0] - width / 2, xs[-1] + width / 2, colors="black", linestyles="--", linewidth=1.2,
                      zorder=5)
            ideal_drawn = True
        xticks.append(gi)
        if native:
            lab = "%d" % k[1] + ("\n" + abbrev(short_params(k[0], vary), 18, 2) if vary else "")
        else:
            lab = short_command(k[0]) if " " in k[0] else abbrev(k[0], 16, 3)
        xlabels.append(lab)
    ax.set_xticks(xticks)
    ax.set_xticklabels(xlabels)
    ax.set_xlim(-0.6, len(keys) - 0.4)
    ax.set_xlabel("workers" + (" / parameters" if vary else "") if native else "case (backend removed)")
    ax.set_ylabel("median wall time (%s)%s" % (unit, ", log scale" if log else ""))
    if log:
        log_axis(ax, [c.summary["median"] / f for c in ok])
    title = "%s: median time per backend" % scen
    cp = common_params(cases) if native else ""
    if cp:
        title += " (%s)" % cp
    sub = []
    floor_names = {c.floor for c in cases if c.floor}
    for fn in sorted(floor_names):
        fs = run["floors"].get(fn)
        sub.append("physical floor %s: %s per operation" % (fn, fmt_time(fs) if fs and fs > 0 else "not measured"))
    ax.set_title(title + ("\n" + "; ".join(sub) if sub else ""), loc="left")
    handles = [Patch(facecolor=backend_color(b), edgecolor="black", linewidth=0.4, label=backend_label(b))
               for b in backends]
    handles.append(Line2D([], [], color="black", marker="|", linestyle="none", markersize=10,
                          label="bootstrap 95 % CI\nof the median"))
    if ideal_drawn:
        handles.append(Line2D([], [], color="black", linestyle="--", label="ideal time\n(scenario model)"))
    legend_outside(ax, handles, title="backend")
    caption = ("Median wall time of each case of scenario %s, backends side by side per worker count; the "
               "whiskers are bootstrap 95 %% confidence intervals of the median%s. %s"
               % (scen, "; the dashed line is the scenario's ideal time" if ideal_drawn else "",
                  ("Floors are per operation, measured in the same run: " + "; ".join(sub) + ".") if sub else ""))
    return out.save(fig, "scenarios", "scenario-%s" % slug(scen), "Scenario %s" % scen, caption)


def chart_scaling(out, run, groups):
    """Speedup vs workers per backend, one panel per scenario (and parameter set), with the ideal."""
    panels = []
    for scen, cases in groups.items():
        native = [c for c in cases if c.scenario and c.summary.get("median")]
        # speedup only means something for work that a pool spreads: a scenario without an ideal-time
        # model (startup: the cost of a pool's own life) has no "ideal scaling" to draw against
        if not any(c.summary.get("ideal_s", 0) > 0 for c in native):
            continue
        by_params = {}
        for c in native:
            by_params.setdefault(c.params or "", []).append(c)
        for params, pcs in by_params.items():
            # a line needs a backend measured at two worker counts (the quick suite runs 2 workers only)
            if max(len({c.workers for c in pcs if c.backend == b}) for b in {c.backend for c in pcs}) < 2:
                continue
            panels.append((scen, params, pcs, len(by_params) > 1))
    if not panels:
        return False
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1.6, 3.1 * nrows), squeeze=False,
                             constrained_layout=True)
    used_backends = set()
    self_relative = False
    for ax, (scen, params, pcs, show_params) in zip(axes.flat, panels):
        serial = [c for c in pcs if c.backend == "serial" and c.workers == 1]
        ref = serial[0].summary["median"] if serial else None
        workers = sorted({c.workers for c in pcs})
        top = 1.0
        for b in sorted({c.backend for c in pcs if c.backend != "serial"}, key=backend_sort_key):
            bc = sorted([c for c in pcs if c.backend == b], key=lambda c: c.workers)
            base = ref
            if base is None:
                w1 = [c for c in bc if c.workers == 1]
                if not w1:
                    continue
                base = w1[0].summary["median"]
                self_relative = True
            sp = [base / c.summary["median"] for c in bc]
            top = max(top, max(sp))
            ax.plot([c.workers for c in bc], sp, marker="o", color=backend_color(b), label=backend_label(b),
                    linewidth=1.5, markersize=4)
            used_backends.add(b)
        # ideal speedup from the scenario's model (ideal(1) / ideal(w)); linear when the model is absent
        ideal = {}
        for c in pcs:
            if c.summary["ideal_s"] > 0:
                ideal.setdefault(c.workers, c.summary["ideal_s"])
        if 1 in ideal and len(ideal) == len(workers):
            iy = [ideal[1] / ideal[w] for w in workers]
        else:
            iy = [float(w) for w in workers]
        top = max(top, max(iy))
        ax.plot(workers, iy, color="#999999", linewidth=5, alpha=0.45, zorder=1, solid_capstyle="round")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(workers))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "%d" % v))
        ax.xaxis.set_minor_locator(NullLocator())
        low = min([v for line in ax.get_lines() for v in line.get_ydata()] or [1.0])
        if low < 0.2:  # tiny tasks: a pool is far slower than serial; a linear axis would flatten it to 0
            log_axis(ax, [low, top], "×")
            ax.set_ylim(low / 2, top * 2)
        else:
            ax.set_ylim(0, top * 1.12)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "%g×" % v))
        ax.set_xlabel("workers")
        ax.set_ylabel(("speedup over serial" if ref else "speedup over its own 1 worker")
                      + (", log scale" if ax.get_yscale() == "log" else ""))
        ax.set_title(scen + (" (%s)" % abbrev(params, 30, 1) if show_params or params else ""), fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=backend_color(b), marker="o", label=backend_label(b))
               for b in sorted(used_backends, key=backend_sort_key)]
    handles.append(Line2D([], [], color="#999999", linewidth=5, alpha=0.45,
                          label="ideal (scenario model;\nlinear without one)"))
    legend_outside(axes[0][ncols - 1], handles, title="backend")
    fig.suptitle("Scaling: speedup = serial median / backend median", x=0.02, ha="left", fontsize=10)
    return out.save(fig, "scaling", "scaling", "Scaling",
             "Speedup of each backend over the serial baseline (serial median / backend median; a backend "
             "without a serial case is compared with its own 1-worker median%s) against the worker count. The "
             "broad grey line is the ideal speedup from the scenario's ideal-time model (linear where the scenario "
             "has none): a line at the ideal means no pool overhead." % (" - marked in the axis label"
                                                                         if self_relative else ""))


def grid(n, ncols=4, w=2.7, h=2.5, wspace=0.42, hspace=0.55, top=0.55, bottom=0.45, left=0.7, right=0.15):
    """n panels of about w x h inches in rows of ncols, margins in inches. Fixed spacing instead of a layout
    engine: small multiples of dozens of panels would otherwise spend most of the report's time in layout."""
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fw, fh = w * ncols + left + right, h * nrows + top + bottom
    fig, axes = plt.subplots(nrows, ncols, figsize=(fw, fh), squeeze=False,
                             gridspec_kw={"wspace": wspace, "hspace": hspace})
    fig.subplots_adjust(left=left / fw, right=1 - right / fw, top=1 - top / fh, bottom=bottom / fh)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.pb_top = 1 - 0.12 / fh  # where a title goes: just inside the top margin
    return fig, list(axes.flat)[:n], ncols


def chart_distribution(out, run, base, scen, cases):
    """Each case's samples as a box with the points; the baseline's beside them when given."""
    cases = [c for c in cases if c.samples]
    if not cases:
        return False
    base_by_name = {c.name: c for c in base["cases"]} if base else {}
    vary = varying_params(cases)
    allv = []
    for c in cases:
        allv += list(c.walls)
        if c.name in base_by_name:
            allv += list(base_by_name[c.name].walls)
    unit, f = pick_unit(allv)
    fig, axes, ncols = grid(len(cases), hspace=0.45)
    rng = np.random.default_rng(7)
    for ax, c in zip(axes, cases):
        b = case_backend(c)
        series = []
        bc = base_by_name.get(c.name)
        if base:
            series.append(("#%d base" % base["id"], bc.walls / f if bc is not None and bc.samples else None, True))
        series.append(("#%d new" % run["id"] if base else "run #%d" % run["id"], c.walls / f, False))
        for i, (lab, v, is_base) in enumerate(series):
            if v is None:
                ax.text(i + 1, 0.5, "no samples" if bc is not None else "not in\nthis run",
                        transform=ax.get_xaxis_transform(), ha="center", fontsize=7, color="#666666")
                continue
            bp = ax.boxplot([v], positions=[i + 1], widths=0.5, patch_artist=True, showfliers=False,
                            medianprops={"color": "black", "linewidth": 1.4})
            for box in bp["boxes"]:
                box.set_facecolor(backend_color(b))
                box.set_alpha(0.35 if is_base else 0.75)
                if is_base:
                    box.set_hatch("///")
            ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, len(v)), v, s=7, color="black", alpha=0.6, zorder=3,
                       linewidths=0)
        ax.set_xticks(range(1, len(series) + 1))
        ax.set_xticklabels([s[0] for s in series])
        ax.set_xlim(0.4, len(series) + 0.6)
        ax.set_title(short_case(c, vary), fontsize=8.5, color=backend_color(b) if b in BACKEND_COLORS else "black")
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.set_ylabel("wall time (%s)" % unit)
    fig.suptitle("%s: distribution of the samples (box: quartiles, whiskers: 1.5 IQR, dots: every sample)%s"
                 % (scen, "; hatched = baseline" if base else ""), x=0.01, y=fig.pb_top, ha="left", va="top",
                 fontsize=10)
    return out.save(fig, "distribution", "distribution-%s" % slug(scen), "Distribution: %s" % scen,
             "Every sample of each case of %s (one panel per case, each with its own scale)%s."
             % (scen, ("; hatched left box: baseline run #%d, solid right box: run #%d" % (base["id"], run["id"]))
                if base else ""))


def chart_history(out, run, base, scen, cases, runs, meds, cps, section="history", prefix=""):
    """Each case's median over the runs in time order; change points marked with their commit. section and
    prefix place the chart on a machine's page (machine-M.html) instead of the index."""
    cases = [c for c in cases if c.name in meds]
    if not cases:
        return False
    pos = {r[0]: i for i, r in enumerate(runs)}
    vary = varying_params(cases)
    unit, f = pick_unit([m for c in cases for m in meds[c.name].values()])
    fig, axes, ncols = grid(len(cases), w=3.0, h=2.2, hspace=0.3, bottom=0.9, top=0.65)
    nruns = len(runs)
    step = max(1, math.ceil(nruns / 8))
    ticks = sorted(range(nruns - 1, -1, -step))  # always label the newest run
    any_cp = False
    for i, (ax, c) in enumerate(zip(axes, cases)):
        pts = sorted((pos[rid], m / f) for rid, m in meds[c.name].items() if rid in pos)
        b = case_backend(c)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3.5, color=backend_color(b),
                linewidth=1.3)
        if run["id"] in meds[c.name]:
            ax.plot(pos[run["id"]], meds[c.name][run["id"]] / f, marker="*", markersize=11, color="black",
                    linestyle="none", zorder=4)
        elif run["id"] in pos:  # this run has no median for the case: say why where its point would be
            ax.text(pos[run["id"]], 0.04, c.status, transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=7, color="#b00020", rotation=90)
        if base and base["id"] in meds[c.name]:
            ax.plot(pos[base["id"]], meds[c.name][base["id"]] / f, marker="s", markersize=6, mfc="none",
                    color="black", linestyle="none", zorder=4)
        for cp in (cps or {}).get(c.name, []):
            x = pos.get(cp.get("run_id"))
            if x is None:
                continue
            any_cp = True
            ax.axvline(x - 0.5, color="#d62728", linestyle="--", linewidth=1.1)
            ch = cp.get("change")
            ax.text(x - 0.4, 0.97, "%s%s" % (short_commit(cp.get("commit")),
                                             (" %+.0f %%" % (100 * ch)) if isinstance(ch, (int, float)) else ""),
                    transform=ax.get_xaxis_transform(), color="#d62728", fontsize=7, va="top", ha="left")
        # at least +-5 % around the data: run-to-run noise of 0.5 % must not look like a cliff
        lo = min(p[1] for p in pts)
        hi = max(p[1] for p in pts)
        mid = (lo + hi) / 2
        half = max((hi - lo) / 2 * 1.3, abs(mid) * 0.05) or 1.0
        ax.set_ylim(mid - half, mid + half * 1.25)  # headroom for the change-point labels
        ax.set_xlim(-0.5, nruns - 0.5)
        ax.set_xticks(ticks)
        if i + ncols >= len(cases):  # the lowest panel of its column: the only one that names the commits
            ax.set_xticklabels([short_commit(runs[k][3]) for k in ticks], rotation=45, ha="right",
                               rotation_mode="anchor", fontsize=7)
        else:
            ax.set_xticklabels([])
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.set_title(short_case(c, vary), fontsize=8.5)
        ax.set_ylabel("median (%s)" % unit)
    handles = [Line2D([], [], color="black", marker="*", markersize=10, linestyle="none",
                      label="this report's run #%d" % run["id"])]
    if base:
        handles.append(Line2D([], [], color="black", marker="s", mfc="none", linestyle="none",
                              label="baseline #%d" % base["id"]))
    if any_cp:
        handles.append(Line2D([], [], color="#d62728", linestyle="--", label="change point (commit, change)"))
    fig.legend(handles=handles, loc="upper right", bbox_to_anchor=(0.99, fig.pb_top + 0.02 / fig.get_figheight()),
               ncol=len(handles), frameon=False, borderaxespad=0)
    fig.suptitle("%s: median of each case per run" % scen, x=0.01, y=fig.pb_top, ha="left", va="top",
                 fontsize=10)
    fig.supxlabel("run, in time order (labelled by commit)", fontsize=9, y=0.01, va="bottom")
    return out.save(fig, section, "%shistory-%s" % (prefix, slug(scen)), "History: %s" % scen,
             "Median of each case of %s over every %s run %s, oldest first (x: the run's commit)."
             " The star is this report's run%s%s."
             % (scen, run["source"], "of this machine" if prefix else "in the store", "; the square the baseline" if base else "",
                "; red dashed lines are change points found by `poolbench history`" if any_cp else ""))


def chart_hyperfine(out, hrun):
    """Whole-process times under hyperfine: Python's Pool beside our backends."""
    cases = [c for c in hrun["cases"] if c.summary.get("median")]
    if not cases:
        return False
    groups = scenario_groups(hrun, cases)
    n = len(groups)
    width = max(len(v) for v in groups.values())
    fig, axes = plt.subplots(n, 1, figsize=(max(5.0, 0.9 * width + 1.8), 3.8 * n), squeeze=False,
                             constrained_layout=True)
    for ax, (g, gcases) in zip(axes[:, 0], groups.items()):
        gcases = sorted(gcases, key=lambda c: backend_sort_key(case_backend(c)))
        unit, f = pick_unit([c.summary["max"] for c in gcases])  # per panel: seconds beside milliseconds
        top_all = max(c.summary["max"] for c in gcases) / f
        labels = []
        top = 0
        for i, c in enumerate(gcases):
            s = c.summary
            b = case_backend(c)
            ax.bar(i, s["median"] / f, 0.65, color=backend_color(b), edgecolor="black", linewidth=0.4,
                   yerr=[[(s["median"] - s["q1"]) / f], [(s["q3"] - s["median"]) / f]], capsize=3)
            ax.vlines(i, s["min"] / f, s["max"] / f, color="black", linewidth=0.6, alpha=0.6, zorder=3)
            ax.plot(i, s["mean"] / f, marker="D", markersize=4, color="white", markeredgecolor="black", zorder=4)
            note = "%.4g %s\nIQR %s" % (s["median"] / f, unit, fmt_pct(s.get("iqr_pct")))
            if s["ideal_s"] > 0:
                note += "\n%.3f× ideal" % (s["median"] / s["ideal_s"])
            ax.text(i, s["max"] / f + top_all * 0.01, note, ha="center", va="bottom", fontsize=7)
            top = max(top, s["max"] / f)
            labels.append(backend_label(b) if b != "other" else short_command(c.name))
        dup = [labels.count(x) > 1 for x in labels]
        for i, c in enumerate(gcases):  # two commands of one backend: tell them apart by their names
            if dup[i] and not c.name.startswith("hyperfine/"):
                labels[i] = short_command(c.name)
            if s["ideal_s"] > 0:
                ax.hlines(s["ideal_s"] / f, i - 0.4, i + 0.4, colors="black", linestyles="--")
        ax.set_xticks(range(len(gcases)))
        ax.set_xticklabels(labels)
        ax.set_ylim(0, top * 1.2)
        ax.set_ylabel("wall time per program run (%s)" % unit)
        ax.set_title("%s: whole program under hyperfine" % g, loc="left")
    handles = [Line2D([], [], color="black", marker="_", markersize=10, linestyle="none", label="interquartile range"),
               Line2D([], [], color="black", alpha=0.6, marker="|", markersize=10, linestyle="none",
                      label="min to max"),
               Line2D([], [], color="white", marker="D", markeredgecolor="black", linestyle="none", label="mean"),
               Patch(facecolor="#dddddd", edgecolor="black", label="bar: median\n(value and IQR % above)")]
    legend_outside(axes[0][0], handles)
    out.hyperfine_run = hrun
    return out.save(fig, "hyperfine", "hyperfine", "hyperfine: Python's Pool beside poolbench",
             "hyperfine run #%d (%s, commit %s): every command's wall time per program run, as `time` would "
             "show it, in interleaved rounds; Python's multiprocessing Pool running the seed beside the seed "
             "program in C (examples/seed.c) per backend, and the machine's floors for the same sleeps done "
             "by hand with no pool (poolbench-seed-floor: threads, forks, spawns)."
             % (hrun["id"], hrun["started_at"], short_commit(hrun["git_commit"])))


def find_cli(repo):
    return os.environ.get("POOLBENCH_BIN") or os.path.join(repo, "build", "poolbench")


# ---- HTML ----------------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.bad td{background:#fff0f0}.status-ok{color:#186a1e}.status-bad{color:#b00020;font-weight:bold}
.slower{color:#b00020}.faster{color:#186a1e}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#444}
.note{background:#fffbe6;border-left:4px solid #e0b000;padding:.4em .8em;margin:.4em 0;font-size:.9em}
code{background:#f4f4f4;padding:0 .2em}
"""


def esc(x):
    return html.escape("" if x is None else str(x))


def context_rows(r):
    dirty = {1: " (dirty: uncommitted changes)", 0: " (clean)"}.get(r.get("git_dirty"), " (dirty: unknown)")
    return [
        ("run", "#%d%s" % (r["id"], (" label " + r["label"]) if r.get("label") else "")),
        ("source", r["source"]), ("suite", r.get("suite")), ("status", r.get("status")),
        ("started", r.get("started_at")),
        ("duration", fmt_time(r.get("duration_s")) if r.get("duration_s") else None),
        ("commit", (r.get("git_commit") or "unknown") + dirty),
        ("host", r.get("host")), ("CPU", r.get("cpu_model")), ("cores", r.get("cores")),
        ("kernel", r.get("kernel")), ("compiler", " ".join(x for x in (r.get("compiler"), r.get("cflags")) if x)),
        ("build type", r.get("build_type")), ("CPU governor", r.get("governor") or "not readable"),
        ("poolbench version", r.get("version")), ("command line", r.get("command_line")),
    ]


def html_context(run, base):
    rows = context_rows(run)
    brows = dict(context_rows(base)) if base else None
    h = ["<table><tr><th></th><th>this run</th>%s</tr>" % ("<th>baseline</th>" if base else "")]
    for k, v in rows:
        cell = "<code>%s</code>" % esc(v) if k == "command line" else esc(v if v is not None else "–")
        h.append("<tr><th>%s</th><td>%s</td>" % (esc(k), cell))
        if base:
            bv = brows.get(k)
            bcell = "<code>%s</code>" % esc(bv) if k == "command line" else esc(bv if bv is not None else "–")
            h.append("<td>%s</td>" % bcell)
        h.append("</tr>")
    h.append("</table>")
    return "".join(h)


def status_cell(c):
    bad = c.status != "ok"
    txt = esc(c.status) + ((": " + esc(c.reason)) if c.reason else "")
    return '<td class="%s">%s</td>' % ("status-bad" if bad else "status-ok", txt)


def html_cases(run):
    h = ["<table><tr><th>case</th><th>n</th><th>median</th><th>IQR %</th><th>MAD %</th><th>ideal</th>"
         "<th>efficiency</th><th>overhead × floor</th><th>floor</th><th>status</th></tr>"]
    for c in run["cases"]:
        s = c.summary
        eff = s.get("efficiency")
        ox = s.get("overhead_x_floor")
        h.append('<tr%s><td>%s</td><td class="num">%d</td><td class="num">%s</td><td class="num">%s</td>'
                 '<td class="num">%s</td><td class="num">%s</td><td class="num">%s</td><td class="num">%s</td>'
                 '<td>%s</td>%s</tr>' % (
                     ' class="bad"' if c.status != "ok" else "", esc(c.name), s["n"], fmt_time(s.get("median")),
                     fmt_pct(s.get("iqr_pct")), fmt_pct(s.get("mad_pct")),
                     fmt_time(s["ideal_s"]) if s.get("ideal_s") else "–",
                     fmt_pct(100 * eff) if eff else "–", ("%.3g" % ox) if ox is not None else "–",
                     esc(("%s = %s" % (c.floor, fmt_time(s["floor_s"]))) if s.get("floor_s") else (c.floor or "–")),
                     status_cell(c)))
    h.append("</table>")
    return "".join(h)


def html_floors(run):
    if not run["floors"]:
        return "<p>No floor probes in this run.</p>"
    rows = "".join('<tr><td>%s</td><td class="num">%s</td></tr>' % (esc(n), fmt_time(s) if s > 0 else "not measured")
                   for n, s in sorted(run["floors"].items()))
    capacity = ""
    alone, busy = run["floors"].get("cpu_item"), run["floors"].get("cpu_item_parallel")
    if alone and busy and alone > 0 and busy > 0:
        capacity = ("<p>Parallel capacity: with every CPU busy (one plain process per CPU, no pool) one item of "
                    "the cpu scenario takes %.2fx its time alone. The cpu scenario's ideal is measured the same "
                    "way (its work split over plain processes), not serial / workers.</p>" % (busy / alone))
    return "<table><tr><th>floor probe</th><th>seconds per operation</th></tr>%s</table>%s" % (rows, capacity)


def signed_pct(fraction):
    return "–" if fraction is None else "%+.1f %%" % (100 * fraction)


def html_verdicts(doc, run, base):
    """The statistical comparison from `poolbench compare`: Mann-Whitney U + bootstrap CI per case."""
    sm = doc.get("summary", {})
    h = ['<p>Verdicts from <code>poolbench compare %d %d</code>: a two-sided Mann-Whitney U test on the raw '
         'samples and a bootstrap %d %% confidence interval of the change of medians; a regression needs '
         'p &lt; %g <b>and</b> the interval beyond +%g %%. Positive = slower.</p>' % (
             base["id"], run["id"], round(100 * doc.get("confidence", 0.95)), doc.get("alpha", 0.01),
             100 * doc.get("threshold", 0.05)),
         '<p><b>%d regression(s)</b>, %d improvement(s), %d within noise, %d no change, %d with too few samples, '
         '%d not compared.</p>' % (sm.get("regressions", 0), sm.get("improvements", 0), sm.get("within_noise", 0),
                                   sm.get("no_change", 0), sm.get("too_few_samples", 0), sm.get("not_compared", 0)),
         "<table><tr><th>case</th><th>baseline median</th><th>new median</th><th>change</th><th>95 %% CI</th>"
         "<th>p</th><th>verdict</th>%s</tr>" % ("<th>min. detectable here</th>" if doc.get("calibration") else "")]
    if doc.get("calibration"):
        h.insert(2, "<p>The last column is this machine's calibration (#%s, <code>poolbench calibrate</code>): the "
                    "smallest slowdown of the case that the gate detects here with &ge; 95 %% power.</p>"
                 % esc(doc["calibration"]))
    for c in doc["cases"]:
        verdict = c.get("verdict", "")
        bad = verdict == "regression"
        good = verdict == "improvement"
        ci = "–"
        if c.get("ci_low") is not None and c.get("ci_high") is not None:
            ci = "[%s, %s]" % (signed_pct(c["ci_low"]), signed_pct(c["ci_high"]))
        p = c.get("p")
        h.append('<tr%s><td>%s</td><td class="num">%s</td><td class="num">%s</td><td class="num">%s</td>'
                 '<td class="num">%s</td><td class="num">%s</td><td class="%s">%s</td></tr>' % (
                     ' class="bad"' if bad else "", esc(c["case"]), fmt_time(c.get("base_median_s")),
                     fmt_time(c.get("new_median_s")), signed_pct(c.get("change")),
                     ci, ("%.2g" % p) if p is not None else "–",
                     "slower" if bad else "faster" if good else "", esc(verdict.replace("_", " "))))
        if doc.get("calibration"):
            md = c.get("min_detectable") or 0
            h[-1] = h[-1][:-len("</tr>")] + '<td class="num">%s</td></tr>' % (
                ("%s%s" % (fmt_pct(100 * md), "" if c.get("can_judge") else " (too noisy to judge)")) if md > 0 else "–")
    h.append("</table>")
    return "".join(h)


def html_compare(run, base):
    bmap = {c.name: c for c in base["cases"]}
    nmap = {c.name: c for c in run["cases"]}
    names = [c.name for c in run["cases"]] + [c.name for c in base["cases"] if c.name not in nmap]
    h = ['<p>Relative <b>change of medians</b>, (new median / baseline median - 1): a plain ratio, <b>not a '
         'significance test</b> and not a regression verdict (for those: <code>poolbench compare %d %d</code>).'
         ' Positive = slower.</p>' % (base["id"], run["id"]),
         "<table><tr><th>case</th><th>baseline #%d median</th><th>run #%d median</th><th>change of medians</th>"
         "<th>n (base / new)</th><th>note</th></tr>" % (base["id"], run["id"])]
    for n in names:
        b, c = bmap.get(n), nmap.get(n)
        bm = b.summary.get("median") if b else None
        cm = c.summary.get("median") if c else None
        note = ""
        if b is None:
            note = "only in run #%d" % run["id"]
        elif c is None:
            note = "only in baseline #%d" % base["id"]
        elif b.status != "ok" or c.status != "ok":
            note = "status: baseline %s, new %s" % (b.status, c.status)
        change, cls = "–", ""
        if bm and cm:
            r = cm / bm - 1
            r = 0.0 if abs(r) < 0.0005 else r  # no "-0.0 %"
            change = "%+.1f %%" % (100 * r)
            cls = ' class="num %s"' % ("slower" if r > 0.05 else "faster" if r < -0.05 else "")
        h.append("<tr><td>%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td><td%s>%s</td>"
                 "<td class=\"num\">%s / %s</td><td>%s</td></tr>" % (
                     esc(n), fmt_time(bm), fmt_time(cm), cls or ' class="num"', change,
                     b.summary["n"] if b else "–", c.summary["n"] if c else "–", esc(note)))
    h.append("</table><p>Colour marks a change beyond ±5 %, only to guide the eye.</p>")
    return "".join(h)


def html_change_points(cps):
    if not cps:
        return "<p><code>poolbench history</code> finds no change point in this run's cases.</p>"
    h = ["<p>Change points found by <code>poolbench history</code> (E-Divisive means), for this run's cases:</p>"
         "<table><tr><th>case</th><th>from run</th><th>commit</th><th>median before</th><th>median after</th>"
         "<th>change</th><th>p</th></tr>"]
    for name, cp in cps:
        ch, p = cp.get("change"), cp.get("p")
        h.append('<tr><td>%s</td><td class="num">%s</td><td><code>%s</code></td><td class="num">%s</td>'
                 '<td class="num">%s</td><td class="num">%s</td><td class="num">%s</td></tr>' % (
                     esc(name), esc(cp.get("run_id")), esc(short_commit(cp.get("commit"))),
                     fmt_time(num(cp.get("before_s"))), fmt_time(num(cp.get("after_s"))),
                     ("%+.1f %%" % (100 * ch)) if isinstance(ch, (int, float)) else "–",
                     ("%.3g" % p) if isinstance(p, (int, float)) else "–"))
    h.append("</table>")
    return "".join(h)


def num(x):
    return float(x) if isinstance(x, (int, float)) else None


def html_hyperfine(hrun):
    h = ["<table><tr><th>command</th><th>as</th><th>n</th><th>median</th><th>mean</th><th>IQR %</th><th>min</th>"
         "<th>max</th></tr>"]
    for c in hrun["cases"]:
        s = c.summary
        h.append('<tr><td><code>%s</code></td><td>%s</td><td class="num">%d</td><td class="num">%s</td>'
                 '<td class="num">%s</td><td class="num">%s</td><td class="num">%s</td><td class="num">%s</td></tr>'
                 % (esc(c.name), esc(backend_label(case_backend(c))), s["n"], fmt_time(s.get("median")),
                    fmt_time(s.get("mean")), fmt_pct(s.get("iqr_pct")), fmt_time(s.get("min")),
                    fmt_time(s.get("max"))))
    h.append("</table>")
    return "".join(h)


def write_html(path, run, base, out, notes, store_path, verdicts, views=()):
    """verdicts: (the `poolbench compare` document, None) or (None, why there is none); None: no baseline."""
    title = "poolbench report: run #%d%s" % (run["id"], (" (%s)" % run["label"]) if run.get("label") else "")
    h = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>%s</style></head><body>"
         % (esc(title), CSS),
         "<h1>%s</h1><p>Store: <code>%s</code> (read-only)%s.</p>" % (
             esc(title), esc(redact(store_location(store_path))),
             ("; baseline: run #%d%s" % (base["id"], (" (%s)" % base["label"]) if base.get("label") else ""))
             if base else "")]
    for n in notes:
        h.append('<div class="note">%s</div>' % esc(n))
    sections = [("scenarios", "Per scenario"), ("scaling", "Scaling"), ("distribution", "Distributions"),
                ("history", "History"), ("hyperfine", "hyperfine: Python's Pool beside poolbench")]
    h.append("<p>Contents: <a href=\"#context\">context</a> · <a href=\"#cases\">cases</a>%s · "
             "<a href=\"#floors\">floors</a> · %s%s</p>" % (
                 " · <a href=\"#compare\">comparison</a>" if base else "",
                 "<a href=\"#machines\">machines</a> · " if views else "",
                 " · ".join("<a href=\"#%s\">%s</a>" % (k, esc(t)) for k, t in sections
                            if any(ch[0] == k for ch in out.charts))))
    h.append("<h2 id=\"context\">Context</h2>" + html_context(run, base))
    h.append("<h2 id=\"cases\">Cases</h2><p>Median of the wall times; IQR % and MAD % = spread relative to the "
             "median; efficiency = ideal / median; overhead × floor = ((median - ideal) / tasks) / floor, the "
             "per-task cost beyond the ideal in units of the physical floor measured in the same run.</p>"
             + html_cases(run))
    if base:
        doc, why = verdicts
        if doc is not None:
            body = html_verdicts(doc, run, base)
        else:
            body = '<p class="note">No statistical verdicts: %s. Showing the change of medians only.</p>' % esc(why)
            body += html_compare(run, base)
        h.append("<h2 id=\"compare\">Comparison with baseline #%d</h2>" % base["id"] + body)
    h.append("<h2 id=\"floors\">Floor probes</h2>" + html_floors(run))
    if views:
        h.append("<h2 id=\"machines\">Machines</h2>" + html_machines_index(views))
    for key, stitle in sections:
        charts = [c for c in out.charts if c[0] == key]
        if not charts:
            continue
        h.append("<h2 id=\"%s\">%s</h2>" % (key, esc(stitle)))
        for _, stem, ctitle, caption in charts:
            h.append("<figure><a href=\"%s.svg\"><img src=\"%s.png\" alt=\"%s\"></a><figcaption><b>%s.</b> %s "
                     "(<a href=\"%s.svg\">SVG</a>, <a href=\"%s.png\">PNG</a>)</figcaption></figure>" % (
                         esc(stem), esc(stem), esc(ctitle), esc(ctitle), esc(caption), esc(stem), esc(stem)))
        if key == "history" and out.change_points is not None:
            h.append(html_change_points(out.change_points))
        if key == "hyperfine" and out.hyperfine_run:
            h.append(html_hyperfine(out.hyperfine_run))
    h.append("<hr><p style=\"font-size:.8em;color:#666\">Generated by scripts/report from the poolbench store; "
             "error bars are bootstrap 95 %% intervals (%d resamples, fixed seed).</p></body></html>\n"
             % BOOT_RESAMPLES)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("".join(h))
    os.replace(tmp, path)


# ---- machines: one page per machine of the store (a fleet's view) ----------------------------------------------

def machine_page_name(machine):
    return "machine-%s.html" % slug(machine)


def machines_of(runs):
    """{machine key: its runs, newest first}, for the runs that carry a machine key."""
    ms = {}
    for r in runs:
        if r.get("machine"):
            ms.setdefault(r["machine"], []).append(r)
    return ms


class MachineView:
    """What one machine's page shows: its history charts (jobs until rendered), the change points of its
    newest native run's cases, its latest A/B pair with the verdicts, its latest calibration."""

    def __init__(self, key, runs):
        self.key, self.runs = key, runs
        native = [r for r in runs if r.get("source") == "native"]
        self.latest_native = max(native, key=lambda r: r["id"]) if native else None
        self.nnative = len(native)
        self.chart_section = "machine:" + key
        self.charts = []           # (section, stem, title, caption), filled after the jobs ran
        self.change_points = None  # [(case, change point)]
        self.pair = None           # (base run info, head run info)
        self.pair_doc = None       # `poolbench compare` of the pair
        self.pair_error = None
        self.calibration = None    # `poolbench calibrate --show --machine KEY` document
        self.notes = []


def plan_machine(st, out, view, kinds, index_run, index_history):
    """Fills view's pair, verdicts and calibration; returns the chart jobs of its history (none when the
    index's own history charts are this machine's: the page then shows those)."""
    jobs = []
    view.pair = st.latest_pair(view.key)
    if view.pair:
        try:
            view.pair_doc = st.compare(view.pair[0]["id"], view.pair[1]["id"])
        except (RuntimeError, InputError) as e:
            view.pair_error = str(e)
    view.calibration = st.calibration(view.key)
    mrun_info = view.latest_native
    if "history" not in kinds:
        return jobs
    if mrun_info is None or view.nnative < 2:
        view.notes.append("History is not drawn: the store has %s native run%s of this machine." %
                          ("one" if view.nnative == 1 else "no", "" if view.nnative == 1 else "s"))
        return jobs
    if index_history and mrun_info["id"] == index_run["id"]:
        view.chart_section = "history"  # the index's history charts are this machine's: shown again here
        return jobs
    mrun = st.load_run(str(mrun_info["id"]))
    hruns, meds, cps = st.history("native", [c.name for c in mrun["cases"]], view.key)
    view.change_points = [(c.name, cp) for c in mrun["cases"] for cp in cps.get(c.name, [])]
    prefix = "m-%s-" % slug(view.key)
    jobs += [(chart_history, (out, mrun, None, scen, cases, hruns, meds, cps,
                              view.chart_section, prefix)) for scen, cases in scenario_groups(mrun).items()]
    return jobs


def html_calibration(cal):
    """The calibrated noise per case (`poolbench calibrate`): what this machine's gate can judge."""
    st, sm = cal.get("settings") or {}, cal.get("summary") or {}
    thr = 100 * (st.get("threshold") or 0)
    h = ["<p>Calibration of suite <code>%s</code> started %s: %d sessions (%d A/A pairs, %d with a slowdown "
         "injected)%s; gate settings alpha %g, threshold %g %%, --confirm %d, blocks of %d repetitions. "
         "<b>noise</b> = standard deviation of the A/A change of medians; <b>min. detectable</b> = the smallest "
         "slowdown the gate detects here with &ge; 95 %% power. %d A/A pair(s) failed the gate.</p>" % (
             esc(cal.get("suite")), esc(cal.get("started_at")), sm.get("sessions", 0), sm.get("aa_sessions", 0),
             sm.get("injected_sessions", 0), " (interrupted)" if sm.get("interrupted") else "",
             st.get("alpha", 0), thr, st.get("confirm", 0), st.get("block_reps", 0), sm.get("aa_gate_failures", 0)),
         "<table><tr><th>case</th><th>A/A obs</th><th>noise</th><th>spread</th><th>false alarms</th>"
         "<th>min. detectable</th><th>judges %g %%</th></tr>" % thr]
    for c in cal.get("cases", []):
        if not c.get("runnable"):
            h.append('<tr><td>%s</td><td colspan="6">unsupported here</td></tr>' % esc(c.get("case")))
            continue
        md = c.get("min_detectable") or 0
        judge = ("yes" if c.get("can_judge_threshold") else
                 "too noisy: from %.0f %%" % (100 * md) if md > 0 else "too few A/A observations")
        h.append('<tr%s><td>%s</td><td class="num">%d</td><td class="num">%s</td><td class="num">%s</td>'
                 '<td class="num">%d</td><td class="num">%s</td><td>%s</td></tr>' % (
                     "" if c.get("can_judge_threshold") else ' class="bad"', esc(c.get("case")),
                     c.get("aa_observations", 0), fmt_pct(100 * c["noise"]) if c.get("noise") else "–",
                     fmt_pct(100 * c["spread"]) if c.get("spread") else "–", c.get("aa_flagged", 0),
                     fmt_pct(100 * md) if md > 0 else "–", esc(judge)))
    h.append("</table>")
    return "".join(h)


def html_machines_index(views):
    h = ["<p>Every machine of the store (its machine key: <code>--machine</code>, <code>$POOLBENCH_MACHINE</code>, "
         "else derived from host, CPU, cores, memory and kernel). A history never mixes two machines; each has "
         "its page with its history, its latest A/B pair and its calibrated noise.</p>"
         "<table><tr><th>machine</th><th>runs</th><th>latest run</th><th>latest A/B pair</th>"
         "<th>calibration</th></tr>"]
    for v in views:
        latest = max(v.runs, key=lambda r: r["id"])
        pair = "–"
        if v.pair:
            pair = "#%d / #%d" % (v.pair[0]["id"], v.pair[1]["id"])
            if v.pair_doc:
                pair += ": %d regression(s)" % v.pair_doc.get("summary", {}).get("regressions", 0)
        cal = "–"
        if v.calibration:
            cases = [c for c in v.calibration.get("cases", []) if c.get("runnable")]
            cal = "%s: %d of %d cases judgeable" % (v.calibration.get("started_at", "?")[:10],
                                                    sum(1 for c in cases if c.get("can_judge_threshold")), len(cases))
        h.append('<tr><td><a href="%s">%s</a></td><td class="num">%d</td><td>#%d %s</td><td>%s</td><td>%s</td></tr>'
                 % (esc(machine_page_name(v.key)), esc(v.key), len(v.runs), latest["id"],
                    esc((latest.get("started_at") or "")[:10]), esc(pair), esc(cal)))
    h.append("</table>")
    return "".join(h)


def figures_html(charts):
    return "".join(
        "<figure><a href=\"%s.svg\"><img src=\"%s.png\" alt=\"%s\"></a><figcaption><b>%s.</b> %s "
        "(<a href=\"%s.svg\">SVG</a>, <a href=\"%s.png\">PNG</a>)</figcaption></figure>" % (
            esc(stem), esc(stem), esc(ctitle), esc(ctitle), esc(caption), esc(stem), esc(stem))
        for _, stem, ctitle, caption in charts)


def write_machine_page(path, v, store_path):
    latest = max(v.runs, key=lambda r: r["id"])
    title = "poolbench: machine %s" % v.key
    h = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>%s</style></head><body>"
         % (esc(title), CSS),
         "<h1>%s</h1><p><a href=\"index.html\">&larr; the report</a> · store <code>%s</code> · %d run(s), the "
         "latest #%d on host %s, %s.</p>" % (esc(title), esc(redact(store_location(store_path))), len(v.runs),
                                             latest["id"], esc(latest.get("host")),
                                             esc(latest.get("started_at")))]
    for n in v.notes:
        h.append('<div class="note">%s</div>' % esc(n))
    h.append("<h2 id=\"history\">History</h2>")
    if v.charts:
        h.append("<p>The cases of run #%d over every native run of this machine, oldest first.</p>"
                 % v.latest_native["id"] + figures_html(v.charts))
        if v.change_points is not None:
            h.append(html_change_points(v.change_points))
    else:
        h.append("<p>No history chart for this machine.</p>")
    h.append("<h2 id=\"pair\">Latest A/B pair</h2>")
    if v.pair and v.pair_doc:
        b, hd = v.pair
        h.append("<p>Base run #%d (commit <code>%s</code>) and head run #%d (commit <code>%s</code>), measured "
                 "interleaved on this machine (<code>poolbench run --against</code>).</p>" % (
                     b["id"], esc(short_commit(b.get("git_commit"))), hd["id"], esc(short_commit(hd.get("git_commit")))))
        h.append(html_verdicts(v.pair_doc, hd, b))
    elif v.pair:
        h.append('<p class="note">The pair #%d / #%d could not be compared: %s.</p>'
                 % (v.pair[0]["id"], v.pair[1]["id"], esc(v.pair_error)))
    else:
        h.append("<p>No interleaved A/B pair was measured on this machine (<code>poolbench run --against "
                 "OTHER</code>, or <code>scripts/ci-perf-check --base REF</code>, makes one).</p>")
    h.append("<h2 id=\"calibration\">Calibrated noise</h2>")
    h.append(html_calibration(v.calibration) if v.calibration else
             "<p>No calibration of this machine in the store (<code>poolbench calibrate</code> measures one).</p>")
    h.append("</body></html>\n")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("".join(h))
    os.replace(tmp, path)


# ---- main -----------------------------------------------------------------------------------------------------

def _run_job(job):
    fn, args = job
    return fn(*args)


def run_jobs(jobs):
    """Runs the chart jobs, in parallel on a multi-core machine; results in job order."""
    procs = min(len(jobs), os.cpu_count() or 1, 4)
    if procs < 2 or os.environ.get("POOLBENCH_REPORT_JOBS") == "1":
        return [_run_job(j) for j in jobs]
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        return pool.map(_run_job, jobs, chunksize=1)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        raise InputError(message)


def main(argv):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = Parser(prog="scripts/report", description="Render a poolbench run as charts and one HTML page.")
    ap.add_argument("run", nargs="?", metavar="RUN",
                    help="run id, label (its latest run) or 'latest'; default: the newest native run")
    ap.add_argument("--baseline", metavar="RUN", help="a run to compare with (id, label or 'latest')")
    ap.add_argument("--store", metavar="STORE", help="an SQLite path or a postgresql:// URI; default: "
                    "$POOLBENCH_STORE, else results/poolbench.db")
    ap.add_argument("--out", metavar="DIR", required=True, help="directory for index.html and the charts")
    ap.add_argument("--charts", metavar="LIST", default=",".join(CHART_KINDS),
                    help="comma-separated subset of %s (default: all)" % ",".join(CHART_KINDS))
    args = ap.parse_args(argv)
    kinds = {k.strip() for k in args.charts.split(",") if k.strip()}
    if not kinds <= set(CHART_KINDS):
        raise InputError("unknown chart kind(s) %s in --charts (known: %s)"
                         % (",".join(sorted(kinds - set(CHART_KINDS))), ",".join(CHART_KINDS)))
    store_path = args.store or os.environ.get("POOLBENCH_STORE") or os.path.join("results", "poolbench.db")

    st = Results(find_cli(repo), store_path)
    run = st.load_run(args.run if args.run is not None else st.default_run())
    base = st.load_run(args.baseline) if args.baseline else None
    notes = []
    if args.run is None and run["source"] == "native":
        notes.append("RUN not given: reporting the newest native run, #%d." % run["id"])
    if base and base["id"] == run["id"]:
        notes.append("The baseline is the same run as the one reported: every change is 0.")
    if base:
        for k in ("host", "cpu_model", "cores", "build_type"):
            if run.get(k) != base.get(k):
                notes.append("The baseline differs in %s (%s vs %s): the comparison may not be meaningful."
                             % (k.replace("_", " "), base.get(k), run.get(k)))
    if not run["cases"]:
        notes.append("Run #%d has no cases." % run["id"])

    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise InputError("cannot create the output directory %s: %s" % (args.out, e.strerror))
    out = Output(args.out)
    groups = scenario_groups(run)
    load_matplotlib()

    # every chart is a job; on several cores they render in forked processes (matplotlib is the cost)
    jobs = []
    if "scenario" in kinds:
        jobs += [(chart_scenario, (out, run, scen, cases)) for scen, cases in groups.items()]
    if "scaling" in kinds and run["source"] == "native":
        jobs.append((chart_scaling, (out, run, groups)))
    if "distribution" in kinds:
        jobs += [(chart_distribution, (out, run, base, scen, cases)) for scen, cases in groups.items()]
    machine = run.get("machine")
    nsource = sum(1 for r in st.runs if r.get("source") == run["source"] and (not machine or r.get("machine") == machine))
    if "history" not in kinds:
        pass
    elif nsource >= 2:
        if machine:
            notes.append("History: the runs of machine %s (a history never mixes machines)." % machine)
        hruns, meds, cps = st.history(run["source"], [c.name for c in run["cases"]], machine)
        out.change_points = [(c.name, cp) for c in run["cases"] for cp in cps.get(c.name, [])]
        jobs += [(chart_history, (out, run, base, scen, cases, hruns, meds, cps))
                 for scen, cases in groups.items()]
    else:
        notes.append("History is not drawn: the store has only one %s run%s." %
                     (run["source"], " of machine %s" % machine if machine else ""))
    hid = st.latest_of_source("hyperfine")
    if "hyperfine" not in kinds:
        pass
    elif hid is None:
        notes.append("No hyperfine run in the store: the seed comparison (Python's Pool beside our backends) is "
                     "skipped. scripts/hyperfine-suite measures and imports one.")
    else:
        out.hyperfine_run = run if hid == run["id"] else st.load_run(hid)
        jobs.append((chart_hyperfine, (out, out.hyperfine_run)))
    verdicts = None
    if base:
        try:
            verdicts = (st.compare(base["id"], run["id"]), None)
        except (RuntimeError, InputError) as e:
            verdicts = (None, str(e))

    # one page per machine of the store: its history, its latest A/B pair, its calibrated noise
    views = [MachineView(k, rs) for k, rs in sorted(machines_of(st.runs).items())]
    index_history = any(j[0] is chart_history for j in jobs)
    for v in views:
        jobs += plan_machine(st, out, v, kinds, run, index_history)

    out.charts = [r for r in run_jobs(jobs) if r]
    if "scaling" in kinds and run["source"] == "native" and not any(c[0] == "scaling" for c in out.charts):
        notes.append("No scaling chart: no backend of this run was measured at two or more worker counts "
                     "(the quick suite uses 2 workers only; `poolbench run --workers 1,2,4` gives one).")
    if out.hyperfine_run and not any(c[0] == "hyperfine" for c in out.charts):
        notes.append("The latest hyperfine run (#%d) has no samples: its chart is skipped." % hid)
        out.hyperfine_run = None

    for v in views:
        v.charts = [c for c in out.charts if c[0] == v.chart_section]
        if v.chart_section == "history":
            v.change_points = out.change_points
        write_machine_page(os.path.join(args.out, machine_page_name(v.key)), v, store_path)
    index = os.path.join(args.out, "index.html")
    write_html(index, run, base, out, notes, store_path, verdicts, views)
    print(os.path.abspath(index))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except InputError as e:
        print("report: %s" % e, file=sys.stderr)
        sys.exit(2)
    except RuntimeError as e:  # the CLI failed in a way that is not the user's input
        print("report: %s" % e, file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(1)
