#!/usr/bin/env bash
# test_gate.sh - the regression gate end to end through the CLI: compare, --confirm, exit codes, the
# baseline-file path, import, history, and that bad input (exit 2) leaves the store byte-identical.
#
# The "regression" is made deterministic by doctoring a baseline export (every time scaled by 0.7), so
# the fresh run - and every --confirm re-measurement - is ~43 % slower than its baseline on any machine,
# far beyond noise; comparing a run with its own export must find no change.
set -euo pipefail
pb="${POOLBENCH_BINARY_DIR:?}/poolbench"
src="${POOLBENCH_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export POOLBENCH_STORE="$tmp/store.db"
fail() { echo "FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3; [ -x "$py" ] || py=python3

"$pb" run --scenario sleep --backend threads --workers 2 --param items=4 --param ms=10 --reps 8 --warmup 1 \
  --label base --quiet >/dev/null
"$pb" export base --format json --output "$tmp/base.json"

# a run against its own export: no change, exit 0
"$pb" compare "$tmp/base.json" base > "$tmp/same.txt" || fail "self-compare exited $?"
grep -q "no change" "$tmp/same.txt" || fail "self-compare did not say 'no change': $(cat "$tmp/same.txt")"

# runs pooled: "A,B" is one run with every case's samples from both
"$pb" run --scenario sleep --backend threads --workers 2 --param items=4 --param ms=10 --reps 8 --warmup 1 \
  --label again --quiet >/dev/null
"$pb" show base,again --format json > "$tmp/pooled.json"
"$py" -c "import json,sys; d=json.load(open(sys.argv[1])); c=d['cases'][0]; assert len(c['samples']) == 16, len(c['samples']); assert sorted(s['rep'] for s in c['samples']) == list(range(16))" \
  "$tmp/pooled.json" || fail "pooling two runs did not give 16 samples"
"$pb" compare base,again base > /dev/null || fail "compare against a pooled baseline exited $?"

# a doctored faster baseline: the same case is now a regression, confirmed by re-measuring, exit 1
"$py" - "$tmp/base.json" "$tmp/faster.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for c in doc["cases"]:
    for s in c["samples"]:
        s["wall_s"] *= 0.7
json.dump(doc, open(sys.argv[2], "w"))
PY
set +e
"$pb" compare "$tmp/faster.json" base --confirm 1 --format json > "$tmp/reg.json"; rc=$?
set -e
[ "$rc" -eq 1 ] || fail "a confirmed regression must exit 1, got $rc: $(cat "$tmp/reg.json")"
"$py" - "$tmp/reg.json" <<'PY' || fail "regression JSON: $(cat "$tmp/reg.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
c = doc["cases"][0]
assert doc["summary"]["regressions"] == 1, doc["summary"]
assert c["verdict"] == "regression" and c["confirm_rounds"] == 1 and c["confirm_held"] == 1, c
assert c["ci_low"] > 0.05 and c["p"] < 0.01, c
PY
# the mirror image is an improvement, exit 0
"$py" - "$tmp/base.json" "$tmp/slower.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for c in doc["cases"]:
    for s in c["samples"]:
        s["wall_s"] *= 1.4
json.dump(doc, open(sys.argv[2], "w"))
PY
"$pb" compare "$tmp/slower.json" base --format markdown > "$tmp/imp.md" || fail "an improvement must exit 0"
grep -q "| improvement |" "$tmp/imp.md" || fail "markdown lacks the improvement row: $(cat "$tmp/imp.md")"

# import: the real Google Benchmark file with NaN, and hyperfine; history reads them all
"$pb" import --format gbench "$src/tests/fixtures/import/gbench_nan_error.json" --label gb >/dev/null
"$pb" import --format hyperfine "$src/tests/fixtures/import/hyperfine_exit_codes.json" >/dev/null
"$pb" show gb | grep -q "BM_x/8/repeats:3" || fail "show of an imported run lacks its case"
"$pb" history --format json > "$tmp/history.json"
"$py" -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['runs'] == 4, d['runs']" "$tmp/history.json" \
  || fail "history did not read every run"

# bad input: exit 2, store byte-identical
sum_before=$(sha256sum "$POOLBENCH_STORE" | cut -d' ' -f1)
expect2() { set +e; "$@" >/dev/null 2>"$tmp/err"; local rc=$?; set -e
  [ "$rc" -eq 2 ] || fail "'$*' exited $rc, expected 2"; [ -s "$tmp/err" ] || fail "'$*' printed no message"; }
expect2 "$pb" compare base no-such-label
expect2 "$pb" compare base
expect2 "$pb" compare base base --alpha nope
expect2 "$pb" compare "$tmp/nope.json" base
echo '{"format": "poolbench-run", "version": 1, "cases": [' > "$tmp/broken.json"
expect2 "$pb" compare "$tmp/broken.json" base
expect2 "$pb" import --format gbench "$tmp/broken.json"
expect2 "$pb" import --format csv "$tmp/broken.json"
expect2 "$pb" history --format yaml
sum_after=$(sha256sum "$POOLBENCH_STORE" | cut -d' ' -f1)
[ "$sum_before" = "$sum_after" ] || fail "bad input changed the store"
echo "test_gate: all checks passed"
