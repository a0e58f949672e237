#!/usr/bin/env bash
# test_ab_gate.sh - verdicts that hold on any machine, end to end through the CLI (issue 14):
#  - `exec --inject-slowdown` really stretches the measured phase (a lower bound only: never flaky);
#  - `run --against` stores two runs linked as a pair; `compare RUN` of one of them compares the pair;
#  - the injection hook: POOLBENCH_INJECT_SLOWDOWN='CASE-GLOB:PCT' slows only the matching case of the
#    head side: a +50 % injection into a 20 ms sleep case is a confirmed regression, the other cases are
#    not (a 10x margin over the 5 % threshold, interleaved, confirmed twice on both sides: loose enough);
#  - a baseline from another machine is said so and does not fail the gate without --allow-other-machine
#    (doctored exports: deterministic);
#  - calibrate stores a calibration and compare then says what this machine can judge;
#  - bad input (OTHER not a poolbench, an injection matching no case, an unknown --base REF): exit 2, a
#    message, the store byte-identical; a --base REF that does not build: exit 2 with the build's last lines.
set -euo pipefail
pb="${POOLBENCH_BINARY_DIR:?}/poolbench"
src="${POOLBENCH_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export POOLBENCH_STORE="$tmp/store.db"
fail() { echo "FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3; [ -x "$py" ] || py=python3
sleep_args=(--scenario sleep --backend threads,serial --workers 2 --param items=4 --param ms=20 --reps 8 --warmup 1)

# the hook itself: the measured phase takes at least 1.5x the sleep it contains
"$pb" exec --scenario sleep --backend threads --workers 2 --param items=2 --param ms=20 --inject-slowdown 50 --json \
  > "$tmp/exec.json"
"$py" - "$tmp/exec.json" <<'PY' || fail "exec --inject-slowdown 50 did not stretch the phase: $(cat "$tmp/exec.json")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ex = [l for l in lines if l["type"] == "execution"]
assert ex and ex[0]["ok"] and ex[0]["wall_s"] >= 0.020 * 1.5, ex
PY

"$pb" version --json | "$py" -c "import json,sys; d=json.load(sys.stdin); assert d['program']=='poolbench' and d['schema']>=3 and d['exec_protocol']==1, d" \
  || fail "version --json"

# an interleaved pair, the slowdown injected into one case of the head side
read -r base_id head_id < <(POOLBENCH_INJECT_SLOWDOWN='sleep/threads/*:50' "$pb" run "${sleep_args[@]}" \
  --against "$pb" --order-seed 99 --quiet 2>"$tmp/run.err")
[ -n "$head_id" ] && [ "$head_id" -eq $((base_id + 1)) ] || fail "run --against printed '$base_id $head_id'"
grep -q "validation hook" "$tmp/run.err" || fail "the injection was not announced: $(cat "$tmp/run.err")"
"$pb" runs --format json > "$tmp/runs.json"
"$py" - "$tmp/runs.json" "$base_id" "$head_id" <<'PY' || fail "the pair's runs: $(cat "$tmp/runs.json")"
import json, sys
runs = {r["id"]: r for r in json.load(open(sys.argv[1]))["runs"]}
b, h = runs[int(sys.argv[2])], runs[int(sys.argv[3])]
assert b["label"] == "base" and h["label"] == "head", (b, h)
assert b["pair"]["side"] == "base" and h["pair"]["side"] == "head" and b["pair"]["id"] == h["pair"]["id"], (b, h)
PY
set +e
"$pb" compare "$head_id" --confirm 2 --format json > "$tmp/pair.json"; rc=$?
set -e
[ "$rc" -eq 1 ] || fail "a +50 % injection must fail the gate (exit 1), got $rc: $(cat "$tmp/pair.json")"
"$py" - "$tmp/pair.json" "$base_id" "$head_id" <<'PY' || fail "pair compare: $(cat "$tmp/pair.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["paired"] is True and d["other_machine"] is False, d
assert d["base_run"] == int(sys.argv[2]) and d["new_run"] == int(sys.argv[3]), d
v = {c["case"]: c for c in d["cases"]}
inj = v["sleep/threads/w2/items=4,ms=20"]
assert inj["verdict"] == "regression" and inj["confirm_held"] == 2 and inj["change"] > 0.3, inj
other = v["sleep/serial/w1/items=4,ms=20"]
assert other["verdict"] != "regression", other
PY
# the pair's two runs named explicitly: the same pair
"$pb" compare "$base_id" "$head_id" --format json > "$tmp/pair2.json" || true
"$py" -c "import json,sys; assert json.load(open(sys.argv[1]))['paired'] is True" "$tmp/pair2.json" \
  || fail "compare BASE HEAD of a pair did not see the pair"

# another machine: a baseline whose host differs and whose times are 30 % faster
"$pb" run --scenario sleep --backend threads --workers 2 --param items=4 --param ms=20 --reps 8 --label lone --quiet >/dev/null
"$pb" export lone --format json --output "$tmp/lone.json"
"$py" - "$tmp/lone.json" "$tmp/elsewhere.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["context"]["host"] = "another-machine"
# the machine key decides when both runs have one (machine.h): another host derives another key
doc["context"]["machine"] = "another-machine-0a1b2c3d"
for c in doc["cases"]:
    for s in c["samples"]:
        s["wall_s"] *= 0.7
json.dump(doc, open(sys.argv[2], "w"))
PY
"$pb" compare "$tmp/elsewhere.json" lone > "$tmp/other.txt" 2> "$tmp/other.err" \
  || fail "a regression against another machine's baseline must not fail without --allow-other-machine"
grep -q "different machines" "$tmp/other.txt" || fail "compare did not say so: $(cat "$tmp/other.txt")"
grep -q "another-machine" "$tmp/other.txt" || fail "compare did not name the difference: $(cat "$tmp/other.txt")"
set +e
"$pb" compare "$tmp/elsewhere.json" lone --allow-other-machine > /dev/null 2>&1; rc=$?
set -e
[ "$rc" -eq 1 ] || fail "--allow-other-machine must let the regression fail (exit 1), got $rc"

# calibrate: a tiny one (3 A/A pairs, one +50 % trial); stored; compare then uses it
"$pb" calibrate --suite quick --scenario sleep --backend threads --reps 6 --pairs 3 --inject 50 --trials 1 \
  --groups 1 --format json > "$tmp/cal.json" 2> "$tmp/cal.err" || fail "calibrate: $(cat "$tmp/cal.err")"
"$py" - "$tmp/cal.json" <<'PY' || fail "calibration JSON: $(cat "$tmp/cal.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "poolbench-calibration" and d["summary"]["aa_sessions"] == 3, d["summary"]
cases = [c for c in d["cases"] if c["runnable"]]
assert len(cases) == 1, cases
for c in cases:
    assert c["aa_observations"] == 3, c
    assert c["injected"][0]["trials"] == 1, c
    assert c["min_detectable"] > 0, c
    # the injected trial is kept round by round; a real +50 % shows in its first round; only a missed
    # trial keeps its samples (one per round)
    assert len(c["trials"]) == 1 and c["trials"][0]["pct"] == 50, c["trials"]
    t = c["trials"][0]
    assert 1 <= len(t["rounds"]) <= 3 and t["rounds"][0]["change"] > 0.2, t
    assert ("samples" in t) == (t["verdict"] != "regression"), t
    assert "samples" not in t or len(t["samples"]) == len(t["rounds"]), t
PY
# --show prints the stored calibration without measuring; a machine without one is bad input (exit 2)
"$pb" calibrate --show --format json > "$tmp/cal_show.json" || fail "calibrate --show"
cmp -s "$tmp/cal.json" "$tmp/cal_show.json" || fail "calibrate --show did not print the stored calibration"
"$pb" calibrate --show | grep -q "A/A pairs: 3" || fail "calibrate --show as a table"
# the calibration keeps its A/A samples (6 per side, in block order), and --show --reestimate estimates
# them again without storing: this same build must find the very figures it stored
"$pb" calibrate --show --reestimate --format json > "$tmp/cal_re.json" || fail "calibrate --show --reestimate"
"$py" - "$tmp/cal.json" "$tmp/cal_re.json" <<'PY' || fail "re-estimate differs from the stored figures"
import json, sys
stored, again = (json.load(open(p)) for p in sys.argv[1:3])
for a, b in zip(stored["cases"], again["cases"]):
    assert a["case"] == b["case"]
    if not a["runnable"]:
        continue
    assert len(a["aa_samples"]) == 3 and all(len(o["base"]) == 6 and len(o["head"]) == 6 for o in a["aa_samples"]), a
    assert abs(a["min_detectable"] - b["min_detectable"]) < 1e-12 and abs(a["noise"] - b["noise"]) < 1e-12, (a, b)
assert stored["sweep"] == again["sweep"], (stored["sweep"], again["sweep"])
PY
# a calibration stored by an older build keeps no samples: nothing to estimate again (exit 2, store unchanged)
"$py" - "$POOLBENCH_STORE" "$tmp/old.db" <<'PY'
import json, shutil, sqlite3, sys
shutil.copy(sys.argv[1], sys.argv[2])
db = sqlite3.connect(sys.argv[2])
for cid, doc in db.execute("SELECT id, result_json FROM calibrations").fetchall():
    d = json.loads(doc)
    for c in d["cases"]:
        c.pop("aa_samples", None)
    db.execute("UPDATE calibrations SET result_json = ? WHERE id = ?", (json.dumps(d), cid))
db.commit()
PY
old_sum=$(sha256sum "$tmp/old.db" | cut -d' ' -f1)
set +e; "$pb" calibrate --show --reestimate --store "$tmp/old.db" >/dev/null 2>"$tmp/err"; rc=$?; set -e
[ "$rc" -eq 2 ] && grep -q "keeps no A/A samples" "$tmp/err" || fail "--reestimate of an old calibration: rc $rc, $(cat "$tmp/err")"
[ "$(sha256sum "$tmp/old.db" | cut -d' ' -f1)" = "$old_sum" ] || fail "--reestimate changed the store"
"$pb" compare "$head_id" --format json > "$tmp/cal_cmp.json" || true
"$py" -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['calibration'] >= 1, d; assert any('min_detectable' in c for c in d['cases']), d" \
  "$tmp/cal_cmp.json" || fail "compare did not use the calibration: $(cat "$tmp/cal_cmp.json")"

# bad input: exit 2, a message, the store byte-identical
sum_before=$(sha256sum "$POOLBENCH_STORE" | cut -d' ' -f1)
expect2() { set +e; "$@" >/dev/null 2>"$tmp/err"; local rc=$?; set -e
  [ "$rc" -eq 2 ] || fail "'$*' exited $rc, expected 2"; [ -s "$tmp/err" ] || fail "'$*' printed no message"; }
expect2 "$pb" run "${sleep_args[@]}" --against /bin/true
expect2 "$pb" run "${sleep_args[@]}" --against "$tmp/no-such-poolbench"
printf '#!/bin/sh\necho "{\\"program\\":\\"poolbench\\",\\"schema\\":3,\\"exec_protocol\\":99}"\n' > "$tmp/future"
chmod +x "$tmp/future"
expect2 "$pb" run "${sleep_args[@]}" --against "$tmp/future"
grep -q "protocol 99" "$tmp/err" || fail "a different exec protocol was not named: $(cat "$tmp/err")"
POOLBENCH_INJECT_SLOWDOWN='cpu/*:10' expect2 "$pb" run "${sleep_args[@]}" --against "$pb"
POOLBENCH_INJECT_SLOWDOWN='sleep/*' expect2 "$pb" run "${sleep_args[@]}"
expect2 "$pb" compare "$tmp/lone.json"
expect2 "$pb" calibrate --pairs nope
expect2 "$pb" calibrate --reestimate
expect2 "$pb" calibrate --show --machine no-such-machine
grep -q "no calibration is stored for machine no-such-machine" "$tmp/err" || fail "calibrate --show: $(cat "$tmp/err")"
sum_after=$(sha256sum "$POOLBENCH_STORE" | cut -d' ' -f1)
[ "$sum_before" = "$sum_after" ] || fail "bad input changed the store"

# the gate with a REF that does not exist: exit 2 before anything is built
expect2 "$src/scripts/ci-perf-check" --base no-such-ref-for-poolbench-tests --build "$tmp/never-built"
grep -q "no-such-ref-for-poolbench-tests" "$tmp/err" || fail "ci-perf-check did not name the REF: $(cat "$tmp/err")"
[ ! -e "$tmp/never-built" ] || fail "ci-perf-check built something for an unknown REF"
# the gate with a REF that does not build: exit 2, the build's last lines shown, nothing measured. A
# throwaway repository holds ci-perf-check, a stand-in scripts/setup (the checkout "builds" as this build's
# poolbench) and a commit whose CMakeLists.txt fails at configure time, so no real build is needed.
repo="$tmp/repo"
mkdir -p "$repo/scripts"
cp "$src/scripts/ci-perf-check" "$repo/scripts/"
printf '#!/bin/sh
mkdir -p "$1" && ln -sf "%s" "$1/poolbench"
' "$pb" > "$repo/scripts/setup"
chmod +x "$repo/scripts/setup"
printf 'cmake_minimum_required(VERSION 3.13)
project(broken C)
message(FATAL_ERROR "this base does not build")
' \
  > "$repo/CMakeLists.txt"
git -C "$repo" init -q && git -C "$repo" add -A &&
  git -C "$repo" -c user.name=test -c user.email=test@localhost commit -qm broken || fail "the throwaway repository"
POOLBENCH_BASE_CACHE="$tmp/base-cache" expect2 "$repo/scripts/ci-perf-check" --base HEAD --build "$tmp/repo-build" \
  --store "$tmp/broken-base.db"
grep -q "does not build" "$tmp/err" && grep -q "this base does not build" "$tmp/err" ||
  fail "ci-perf-check did not say the base does not build: $(cat "$tmp/err")"
[ ! -e "$tmp/broken-base.db" ] || fail "ci-perf-check measured something against a base that does not build"
echo "test_ab_gate: all checks passed"
