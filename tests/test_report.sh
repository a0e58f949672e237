#!/usr/bin/env bash
# test_report.sh - renders the matplotlib report (scripts/report) from a fixture store and checks its output.
#
# The fixture store is built at test time by tests/fixtures/report/make_store.py from the schema in
# harness/store_sqlite.c (ten native runs, a hyperfine import, a gbench import; see that file). The report
# reads the store only through the poolbench CLI's JSON, so the test needs the built CLI
# ($POOLBENCH_BINARY_DIR/poolbench). Checks: every PNG starts with the PNG signature, every SVG parses as XML
# with an <svg> root, index.html parses and references every chart file written (and nothing that is
# missing), the expected charts and tables are there, change points come from the CLI's
# `history --format json` (a stand-in that plants one, passing every other verb to the real CLI), a store
# without a hyperfine run skips that chart with a note, the store is byte-identical afterwards, and bad
# input (no CLI, missing store, not a store, another program's database, unknown run or baseline, no
# --out, no Python with matplotlib) exits 2 with a message. With no Python that has matplotlib the test FAILS,
# saying so: it never skips. Run by ctest (registered at the end of tests/CMakeLists.txt) or directly.
set -uo pipefail
src=${POOLBENCH_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
report="$src/scripts/report"
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }

py=$("$src/scripts/find-python") || {
  echo "FAIL: no Python 3 with matplotlib on this machine, so the report cannot be rendered or tested." >&2
  echo "      Fix: apt-get install python3-matplotlib  (scripts/setup installs it)." >&2
  exit 1
}

[ -f "$src/tests/fixtures/report/make_store.py" ] || {
  echo "FAIL: $src/tests/fixtures/report/make_store.py is missing (was it committed? an unanchored" >&2
  echo "      'report/' line in .gitignore ignores tests/fixtures/report/)" >&2
  exit 1
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_report.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unset POOLBENCH_STORE POOLBENCH_PYTHON

"$py" "$src/tests/fixtures/report/make_store.py" "$src" "$tmp/store.db" || { echo "FAIL: fixture store" >&2; exit 1; }
mkdir "$tmp/native" && "$py" "$src/tests/fixtures/report/make_store.py" --native-only "$src" "$tmp/native/store.db" ||
  { echo "FAIL: fixture store (native only)" >&2; exit 1; }
sum_before=$(sha256sum "$tmp/store.db" | cut -d' ' -f1)

bin=${POOLBENCH_BINARY_DIR:+$POOLBENCH_BINARY_DIR/poolbench}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "FAIL: the report reads the store through the poolbench CLI, and none is built at '${bin:-\$POOLBENCH_BINARY_DIR/poolbench}'" >&2
  exit 1
fi

# a stand-in CLI: `history --format json` prints the fixture's history with its planted change point;
# every other verb is the real CLI's
cat >"$tmp/fake-poolbench" <<EOF
#!/bin/sh
[ "\$1" = history ] && [ "\$2" = --format ] && [ "\$3" = json ] && exec cat "$tmp/history.json"
exec "$bin" "\$@"
EOF
chmod +x "$tmp/fake-poolbench"

# check_output DIR [python assertions...]: validates the files of one report and runs extra assertions
check_output() {
  local dir=$1
  shift
  "$py" - "$dir" "$@" <<'PYEOF'
import os, sys, xml.etree.ElementTree as ET
from html.parser import HTMLParser
d, extra = sys.argv[1], sys.argv[2:]
bad = []
files = sorted(os.listdir(d))
charts = [f for f in files if f.endswith((".png", ".svg"))]
for f in charts:
    p = os.path.join(d, f)
    if f.endswith(".png"):
        with open(p, "rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                bad.append("%s: no PNG signature" % f)
    else:
        try:
            root = ET.parse(p).getroot()
            if root.tag not in ("{http://www.w3.org/2000/svg}svg", "svg"):
                bad.append("%s: root element is %s, not svg" % (f, root.tag))
        except ET.ParseError as e:
            bad.append("%s: not XML: %s" % (f, e))
    stem = f.rsplit(".", 1)[0]
    if stem + (".svg" if f.endswith(".png") else ".png") not in files:
        bad.append("%s: its PNG/SVG twin is missing" % f)

class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.stack, self.text = set(), [], []
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith("#"):
                self.refs.add(v)
    def handle_data(self, data):
        self.text.append(data)
texts = {}
refs_all = set()
if not os.path.exists(os.path.join(d, "index.html")):
    bad.append("index.html missing")
for page in [f for f in files if f.endswith(".html")]:  # index.html and the machine pages it links
    p = P()
    with open(os.path.join(d, page), encoding="utf-8") as fh:
        doc = fh.read()
    p.feed(doc)
    p.close()
    if not doc.lstrip().lower().startswith("<!doctype html>") or "</html>" not in doc:
        bad.append("%s is not a complete HTML document" % page)
    for r in p.refs:
        if "://" in r:
            bad.append("%s references a remote resource %s (must be self-contained)" % (page, r))
        elif not os.path.exists(os.path.join(d, r)):
            bad.append("%s references %s, which does not exist" % (page, r))
    refs_all |= p.refs
    texts[page] = " ".join(p.text)
for f in charts:
    if f not in refs_all:
        bad.append("no page references %s" % f)
for e in extra:
    page = "index.html"
    if e.startswith("@"):  # @PAGE:TEXT checks another page, e.g. a machine page
        page, e = e[1:].split(":", 1)
        if page not in texts:
            bad.append("page %s missing" % page)
            continue
    text = texts.get(page, "")
    if e.startswith("file:"):
        if e[5:] not in files:
            bad.append("expected chart file %s missing" % e[5:])
    elif e.startswith("!"):
        if e[1:] in text:
            bad.append("%s unexpectedly says %r" % (page, e[1:]))
    elif e not in text:
        bad.append("%s does not say %r" % (page, e))
for b in bad:
    print("  " + b, file=sys.stderr)
print("  %d chart files checked" % len(charts))
sys.exit(1 if bad else 0)
PYEOF
}

# 1. the default RUN (the newest native run, #10 'new', not the later imports) against a baseline label,
#    change points from the stand-in CLI
t0=$(date +%s)
out1=$(POOLBENCH_BIN="$tmp/fake-poolbench" "$report" --baseline base --store "$tmp/store.db" --out "$tmp/r1")
rc=$?
if [ $rc -ne 0 ]; then
  fail "report --baseline base exited $rc"
elif [ "$(printf '%s\n' "$out1" | tail -n1)" != "$tmp/r1/index.html" ]; then
  fail "report did not print the path of index.html last (got: $out1)"
elif check_output "$tmp/r1" file:scenario-sleep.png file:scenario-square.png file:scaling.png \
    file:distribution-sleep.png file:distribution-square.png file:history-sleep.png file:history-square.png \
    file:hyperfine.png "run #10" "newest native run" "change of medians" "Verdicts from" "regression" \
    "6ee34ae8593603cf605f570020c806ccb8e459eb" "dirty" "bench-vm" "Intel(R) Xeon(R) CPU @ 2.20GHz" \
    "Linux 6.1.0-13-amd64 x86_64" "GNU 12.2.0" "Release" "poolbench run --suite quick" "unsupported" "failed" \
    "+15" "not compared" "6eaf654" "python3 scenarios/python/seed.py" "!without change points"; then
  pass "default run vs baseline 'base': charts, page and comparison"
else
  fail "report of the default run vs 'base' is incomplete (see above)"
fi

# 3. an imported run renders too (gbench: several iterations per sample)
if POOLBENCH_BIN="$bin" "$report" 12 --store "$tmp/store.db" --out "$tmp/r3" >/dev/null &&
   check_output "$tmp/r3" file:scenario-gbench.png "BM_submit_wait/fork"; then
  pass "a gbench run renders"
else
  fail "report of the gbench run"
fi

# 4. 'latest', the store from $POOLBENCH_STORE, no hyperfine run: said on the page, chart skipped
if POOLBENCH_STORE="$tmp/native/store.db" POOLBENCH_BIN="$bin" "$report" latest --out "$tmp/r4" \
     --charts history,hyperfine >/dev/null &&
   check_output "$tmp/r4" file:history-sleep.png "run #10" "No hyperfine run" && [ ! -e "$tmp/r4/hyperfine.png" ]; then
  pass "latest via \$POOLBENCH_STORE; no hyperfine run is said on the page"
else
  fail "report of 'latest' from \$POOLBENCH_STORE without a hyperfine run"
fi

# 5. the store was only read
sum_after=$(sha256sum "$tmp/store.db" | cut -d' ' -f1)
[ "$sum_before" = "$sum_after" ] && pass "store unchanged" || fail "the store was modified by the report"

# 6. the real CLI's own history (whatever change points it finds): the report is written
if POOLBENCH_BIN="$bin" "$report" new --store "$tmp/store.db" --out "$tmp/r6" --charts history >/dev/null &&
   check_output "$tmp/r6"; then
  pass "with the real CLI $bin"
else
  fail "report with the real CLI $bin"
fi

# 7. a fleet: two machines, each with its page (history, latest A/B pair with its verdicts, calibrated
#    noise), linked from the index's Machines table; the page of a machine without pair or calibration says so
mkdir "$tmp/fleet" && "$py" "$src/tests/fixtures/report/make_store.py" --fleet "$src" "$tmp/fleet/store.db" >/dev/null ||
  fail "fixture store (fleet)"
m1=machine-bench-vm-0a1b2c3d.html m2=machine-ci-runner-7.html
if POOLBENCH_BIN="$bin" "$report" new --baseline base --store "$tmp/fleet/store.db" --out "$tmp/r7" >/dev/null &&
   check_output "$tmp/r7" file:history-sleep.png file:m-ci-runner-7-history-sleep.png "Machines" \
     "bench-vm-0a1b2c3d" "ci-runner-7" "#16 / #17: 3 regression(s)" "1 of 10 cases judgeable" \
     "@$m2:Latest A/B pair" "@$m2:Base run #16" "@$m2:head run #17" "@$m2:3 regression(s)" "@$m2:regression" \
     "@$m2:min. detectable here" "@$m2:too noisy: from 11 %" "@$m2:Calibrated noise" "@$m2:unsupported here" \
     "@$m2:History: sleep" "@$m1:History: sleep" "@$m1:History: square" "@$m1:No interleaved A/B pair" \
     "@$m1:No calibration of this machine"; then
  pass "fleet: one page per machine with its history, latest A/B pair and calibrated noise"
else
  fail "fleet report (see above)"
fi

# 8. bad input: exit 2 and a message on stderr
printf 'not a database, just text\n%.0s' {1..20} >"$tmp/text.db"
"$py" -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute("CREATE TABLE t (x)"); db.commit()' \
  "$tmp/other.db"
expect2() {
  local what=$1 needle=$2
  shift 2
  local err rc
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -ne 2 ]; then
    fail "$what: exit $rc, expected 2 (stderr: $err)"
  elif ! grep -qi -- "$needle" <<<"$err"; then
    fail "$what: message lacks '$needle' (stderr: $err)"
  else
    pass "$what -> 2: $(head -n1 <<<"$err")"
  fi
}
export POOLBENCH_BIN="$bin"
expect2 "no CLI" "CLI was not found" env POOLBENCH_BIN="$tmp/no-such-poolbench" "$report" --store "$tmp/store.db" --out "$tmp/bad"
expect2 "missing store" "no store" "$report" --store "$tmp/nope.db" --out "$tmp/bad"
expect2 "not SQLite" "not a poolbench store" "$report" --store "$tmp/text.db" --out "$tmp/bad"
expect2 "another program's database" "not a poolbench store" "$report" --store "$tmp/other.db" --out "$tmp/bad"
expect2 "unknown run" "no run 'nosuchlabel'" "$report" nosuchlabel --store "$tmp/store.db" --out "$tmp/bad"
expect2 "unknown run id" "no run '999'" "$report" 999 --store "$tmp/store.db" --out "$tmp/bad"
expect2 "unknown baseline" "no run 'nosuchbase'" \
  "$report" new --baseline nosuchbase --store "$tmp/store.db" --out "$tmp/bad"
expect2 "no --out" "--out" "$report" --store "$tmp/store.db"
expect2 "unknown chart kind" "unknown chart kind" "$report" --store "$tmp/store.db" --out "$tmp/bad" --charts pie
expect2 "no Python with matplotlib" "apt-get install python3-matplotlib" \
  env POOLBENCH_PYTHON="$tmp/no-python" "$report" --store "$tmp/store.db" --out "$tmp/bad"
[ ! -e "$tmp/bad" ] && pass "bad input wrote nothing" || fail "bad input created the output directory"
[ "$sum_before" = "$(sha256sum "$tmp/store.db" | cut -d' ' -f1)" ] || fail "the store was modified"

echo "test_report: $(($(date +%s) - t0)) s, $fails failure(s)"
[ $fails -eq 0 ]
