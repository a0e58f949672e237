#!/usr/bin/env bash
# test_report_browser.sh - opens the rendered report in a real browser (Debian's headless Chromium).
#
# Renders the report of the fleet fixture store (tests/fixtures/report/make_store.py --fleet: two machines,
# an A/B pair, a calibration) with scripts/report, opens index.html and every machine page through
# tests/browser_check.py (DevTools protocol on a pipe, fresh profile, --no-sandbox, a
# time limit) and checks what a reader would see: every image loaded (complete, naturalWidth > 0), no
# console error, no uncaught exception, no failed load, and a screenshot that is not a blank page (many
# times the bytes of a blank page's screenshot, taken the same way). Two controls prove the checks can
# fail: a copy of the page with a missing image and a console.error must be caught on both counts.
# Chromium is installed with apt-get when missing; with no Chromium the test FAILS, saying why.
set -uo pipefail
src=${POOLBENCH_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }

py=$("$src/scripts/find-python") || { echo "FAIL: no Python 3 with matplotlib (apt-get install python3-matplotlib)" >&2; exit 1; }
chromium=${CHROMIUM:-$(command -v chromium || true)}
if [ -z "$chromium" ]; then
  echo "test_report_browser: installing chromium" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq chromium >/dev/null
  chromium=$(command -v chromium) || { echo "FAIL: no chromium after apt-get install chromium" >&2; exit 1; }
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_report_browser.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unset POOLBENCH_STORE POOLBENCH_PYTHON

"$py" "$src/tests/fixtures/report/make_store.py" --fleet "$src" "$tmp/store.db" >/dev/null ||
  { echo "FAIL: fixture store" >&2; exit 1; }
bin=${POOLBENCH_BINARY_DIR:+$POOLBENCH_BINARY_DIR/poolbench}
POOLBENCH_BIN=${bin:-/nonexistent} "$src/scripts/report" new --baseline base --store "$tmp/store.db" --out "$tmp/report" >/dev/null ||
  { echo "FAIL: scripts/report did not render the fixture store" >&2; exit 1; }

# look PAGE NAME: opens the page, writes NAME.json and NAME.png in $tmp
look() {
  "$py" "$src/tests/browser_check.py" "$chromium" "$1" "$tmp/$2.png" --timeout 120 >"$tmp/$2.json" 2>"$tmp/$2.err" ||
    { fail "Chromium could not open $1: $(cat "$tmp/$2.err")"; return 1; }
}
# judge NAME: prints the problems found, one per line (nothing when the page is fine)
judge() {
  "$py" - "$tmp/$1.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
if not d["images"]:
    print("no images on the page")
for i in d["images"]:
    if not i["complete"] or i["naturalWidth"] <= 0:
        print("image %s did not load (naturalWidth %s)" % (i["src"], i["naturalWidth"]))
for c in d["console"]:
    if c["level"] in ("error", "assert"):
        print("console %s: %s" % (c["level"], c["text"].strip()))
for f in d["failed_loads"]:
    print("failed load: %s" % f)
PYEOF
}

printf '<!DOCTYPE html><html><head><meta charset="utf-8"><title>blank</title></head><body></body></html>\n' >"$tmp/blank.html"
if look "$tmp/report/index.html" report && look "$tmp/blank.html" blank; then
  problems=$(judge report)
  nimg=$("$py" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["images"]))' "$tmp/report.json")
  ncharts=$(ls "$tmp/report"/*.png | grep -cv '/m-')  # m-KEY-*.png: charts of a machine page only
  [ -z "$problems" ] && [ "$nimg" -eq "$ncharts" ] &&
    pass "the report in Chromium: all $nimg images loaded (naturalWidth > 0), no console error, no failed load" ||
    fail "the report in Chromium ($nimg images, $ncharts charts): $problems"
  read -r rb rw rh < <("$py" -c 'import json,sys; s=json.load(open(sys.argv[1]))["screenshot"]; print(s["bytes"], s["width"], s["height"])' "$tmp/report.json")
  read -r bb _ _ < <("$py" -c 'import json,sys; s=json.load(open(sys.argv[1]))["screenshot"]; print(s["bytes"], s["width"], s["height"])' "$tmp/blank.json")
  [ "$rb" -gt $((20 * bb)) ] && [ "$rh" -gt 1000 ] &&
    pass "screenshot ${rw}x${rh} px, $rb bytes (a blank page: $bb bytes): not blank" ||
    fail "screenshot looks blank: $rb bytes, ${rw}x${rh} (blank page: $bb bytes)"
  [ -n "${POOLBENCH_KEEP_SCREENSHOT:-}" ] && cp "$tmp/report.png" "$POOLBENCH_KEEP_SCREENSHOT"
fi

# every machine page (linked from the index's Machines table): its images load, no console error
npages=0
for page in "$tmp/report"/machine-*.html; do
  [ -e "$page" ] || break
  name=$(basename "$page" .html)
  npages=$((npages + 1))
  if look "$page" "$name"; then
    problems=$(judge "$name")
    [ -z "$problems" ] && pass "$name.html in Chromium: its images loaded, no console error" ||
      fail "$name.html in Chromium: $problems"
  fi
done
[ "$npages" -eq 2 ] || fail "expected a page for each of the fixture's 2 machines, found $npages"

# controls: the same page with a missing image and a console error must fail on both counts
sed -e 's|</body>|<img src="no-such-chart.png" alt="missing"><script>console.error("planted error")</script></body>|' \
  "$tmp/report/index.html" >"$tmp/report/broken.html"
if look "$tmp/report/broken.html" broken; then
  problems=$(judge broken)
  grep -q "image no-such-chart.png did not load" <<<"$problems" && grep -q "planted error" <<<"$problems" &&
    pass "control: a missing image and a console error are caught" || fail "control not caught: $problems"
fi

echo "test_report_browser: $fails failure(s)"
[ $fails -eq 0 ]
