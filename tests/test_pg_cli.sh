#!/usr/bin/env bash
# test_pg_cli.sh - the poolbench CLI against a PostgreSQL store, end to end, in the throwaway cluster that
# tests/with-pg starts (ctest runs this script under it; nothing here talks to any other address).
#
# Checks: `store init` creates the schema once and refuses a database of another program (left as it was);
# 8 concurrent `poolbench run` processes into one PostgreSQL store, every run complete and none
# interleaved; `push` from a local SQLite store twice stores each run once; a push SIGKILLed inside its
# write transaction, then repeated: both stores pass `store check` and hold each run exactly once; runs
# --machine filters; scripts/report renders from the PostgreSQL store, its history per machine; a URI
# with a password works and the password appears in no output and not in the stored command line; bad
# credentials, an unreachable server and a newer schema: exit 2, a message, the local store byte-identical.
set -uo pipefail
bin=${POOLBENCH_BINARY_DIR:?}/poolbench
: "${POOLBENCH_TEST_PG:?run me under tests/with-pg}"
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_pg_cli.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
unset POOLBENCH_STORE POOLBENCH_MACHINE
export POOLBENCH_GIT_COMMIT=0123456789abcdef0123456789abcdef01234567
psql_q() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }
newdb() { psql_q "$POOLBENCH_TEST_PG_ADMIN" -c "CREATE DATABASE $1" && echo "postgresql://postgres@/$1?host=$POOLBENCH_TEST_PG_SOCKET"; }
# a tiny, fast case: 2 sleeps of 1 ms on threads, 2 repetitions
tiny=(--scenario sleep --backend threads --workers 2 --param items=2 --param ms=1 --reps 2 --warmup 0 --quiet)

# 1. store init: creates once, says so the second time, refuses another program's database
pg=$(newdb cli_main)
out=$("$bin" store init --store "$pg" 2>&1) && grep -q "created the poolbench schema, version" <<<"$out" &&
  out2=$("$bin" store init --store "$pg" 2>&1) && grep -q "already a poolbench store" <<<"$out2" &&
  pass "store init creates the schema, then finds it" || fail "store init: $out / ${out2:-}"
foreign=$(newdb cli_foreign)
psql_q "$foreign" -c "CREATE TABLE invoices (id int); INSERT INTO invoices VALUES (7)"
err=$("$bin" store init --store "$foreign" 2>&1 >/dev/null); rc=$?
tables=$(psql_q "$foreign" -c "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'")
[ $rc -eq 2 ] && grep -q "another program (invoices)" <<<"$err" && [ "$tables" = invoices ] &&
  pass "store init refuses a database of another program: $err" || fail "foreign database: rc $rc, $err, tables $tables"

# 2. eight concurrent runs into one store
for i in 1 2 3 4 5 6 7 8; do
  "$bin" run "${tiny[@]}" --label "par$i" --machine "m$((i % 2))" --store "$pg" >"$tmp/par$i.out" 2>&1 &
  pids+=($!)
done
okruns=0
for p in "${pids[@]}"; do wait "$p" && okruns=$((okruns + 1)); done
pids=()
n=$(psql_q "$pg" -c "SELECT count(*) FROM runs WHERE label LIKE 'par%'")
# every run: its one case with its 2 samples, in its own run id; no case or sample of one run in another
bad=$(psql_q "$pg" -c "SELECT count(*) FROM runs r WHERE label LIKE 'par%' AND (
        (SELECT count(*) FROM cases c WHERE c.run_id = r.id) <> 1 OR
        (SELECT count(*) FROM samples s JOIN cases c ON c.id = s.case_id WHERE c.run_id = r.id) <> 2 OR
        (SELECT count(*) FROM floors f WHERE f.run_id = r.id) = 0)")
labels=$(psql_q "$pg" -c "SELECT count(DISTINCT label) FROM runs WHERE label LIKE 'par%'")
if [ $okruns -eq 8 ] && [ "$n" = 8 ] && [ "$bad" = 0 ] && [ "$labels" = 8 ] && "$bin" store check --store "$pg" >/dev/null; then
  pass "8 concurrent runs: 8 complete runs, none interleaved, store check ok"
else
  fail "8 concurrent runs: $okruns exited 0, $n stored, $bad incomplete, $labels labels"; cat "$tmp"/par*.out >&2
fi
m0=$("$bin" runs --machine m0 --store "$pg" --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["runs"]))')
[ "$m0" = 4 ] && pass "runs --machine m0 lists its 4 runs" || fail "runs --machine m0 listed $m0"

# 3. push: local SQLite -> PostgreSQL, twice = once
local="$tmp/local.db"
"$bin" run "${tiny[@]}" --label local1 --store "$local" >/dev/null 2>&1 &&
  "$bin" run "${tiny[@]}" --label local2 --store "$local" >/dev/null 2>&1 || fail "local runs"
uuid1=$("$bin" show local1 --store "$local" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
p1=$("$bin" push local1 --to "$pg" --store "$local" 2>&1) && p2=$("$bin" push local1 --to "$pg" --store "$local" 2>&1)
cnt=$(psql_q "$pg" -c "SELECT count(*) FROM runs WHERE uuid = '$uuid1'")
grep -q "^pushed run 1 ($uuid1)" <<<"$p1" && grep -q "already in" <<<"$p2" && [ "$cnt" = 1 ] &&
  pass "push twice stores once ($p2)" || fail "push twice: '$p1' / '${p2:-}' / count $cnt"
# the pushed copy is the same run: same samples, bit for bit, through show --format json
a=$("$bin" show "$uuid1" --store "$local" --format json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["uuid"], [[s for s in c["samples"]] for c in d["cases"]])')
b=$("$bin" show "$uuid1" --store "$pg" --format json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["uuid"], [[s for s in c["samples"]] for c in d["cases"]])')
[ -n "$a" ] && [ "$a" = "$b" ] && pass "the pushed run reads back identical" || fail "pushed copy differs: $a vs $b"

# 4. a push killed inside its write transaction, then repeated
sum_local=$(sha256sum "$local" | cut -d' ' -f1)
POOLBENCH_TEST_STALL_WRITE=30 "$bin" push local2 --to "$pg" --store "$local" >"$tmp/kill.out" 2>"$tmp/kill.err" &
kp=$!
pids+=($kp)
for _ in $(seq 1 300); do grep -q "stalling inside the write transaction" "$tmp/kill.err" && break; sleep 0.1; done
kill -9 $kp; wait $kp 2>/dev/null
pids=()
uuid2=$("$bin" show local2 --store "$local" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
mid=$(psql_q "$pg" -c "SELECT count(*) FROM runs WHERE uuid = '$uuid2'")
c1=$("$bin" store check --store "$pg" 2>&1) && c2=$("$bin" store check --store "$local" 2>&1) && [ "$mid" = 0 ] &&
  pass "push SIGKILLed mid-transaction: nothing of the run in the target, both stores check ok" ||
  fail "after the killed push: $mid copies, check: $c1 / ${c2:-}"
"$bin" push local1 local2 --to "$pg" --store "$local" >"$tmp/repeat.out" 2>&1 || fail "repeated push: $(cat "$tmp/repeat.out")"
once=$(psql_q "$pg" -c "SELECT count(*) FROM runs WHERE uuid IN ('$uuid1', '$uuid2') GROUP BY uuid HAVING count(*) = 1" | wc -l)
"$bin" store check --store "$pg" >/dev/null && "$bin" store check --store "$local" >/dev/null &&
  [ "$once" = 2 ] && [ "$(sha256sum "$local" | cut -d' ' -f1)" = "$sum_local" ] &&
  pass "repeated push: each run exactly once, both stores check ok, local store unchanged" ||
  fail "repeated push: $once runs once; $(cat "$tmp/repeat.out")"

# the other direction: every run of the PostgreSQL store into a new SQLite file, then again (nothing new)
"$bin" push --all --to "$tmp/back.db" --store "$pg" >"$tmp/back.out" 2>&1 &&
  "$bin" push --all --to "$tmp/back.db" --store "$pg" >"$tmp/back2.out" 2>&1
want=$(psql_q "$pg" -c "SELECT count(*) FROM runs")
got=$("$bin" runs --store "$tmp/back.db" --format json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["runs"]))')
again=$(grep -c "already in" "$tmp/back2.out")
[ "$got" = "$want" ] && [ "$again" = "$want" ] && "$bin" store check --store "$tmp/back.db" >/dev/null &&
  pass "push --all PostgreSQL -> SQLite: $got runs, the second push stored none" ||
  fail "push --all to SQLite: $got of $want runs, $again already there; $(cat "$tmp/back.out")"

# the report renders from the PostgreSQL store too (through the CLI), its history per machine
if POOLBENCH_BIN="$bin" "$POOLBENCH_SOURCE_DIR/scripts/report" par8 --store "$pg" --out "$tmp/report" --charts history \
     >"$tmp/report.out" 2>&1 && grep -q "the runs of machine m0" "$tmp/report/index.html" &&
   ls "$tmp/report"/history-*.png >/dev/null 2>&1; then
  pass "scripts/report renders run par8 from PostgreSQL, its history from machine m0's runs only"
else
  fail "report from PostgreSQL: $(tail -n3 "$tmp/report.out")"
fi

# 5. a URI with a password: works, never shown, never stored
pw=$POOLBENCH_TEST_PG_PASSWORD
userdb="postgresql://$POOLBENCH_TEST_PG_USER:$pw@/poolbench?host=$POOLBENCH_TEST_PG_SOCKET"
"$bin" run "${tiny[@]}" --label withpw --store "$userdb" >"$tmp/pw.out" 2>&1; rc=$?
"$bin" runs --store "$userdb" >>"$tmp/pw.out" 2>&1
"$bin" show withpw --store "$userdb" --format json >>"$tmp/pw.out" 2>&1
stored=$(psql_q "$POOLBENCH_TEST_PG" -c "SELECT command_line FROM runs WHERE label = 'withpw'")
if [ $rc -eq 0 ] && ! grep -qF "$pw" "$tmp/pw.out" && [ -n "$stored" ] && ! grep -qF "$pw" <<<"$stored" &&
   grep -qF ":***@" <<<"$stored"; then
  pass "a password in the URI: the run is stored, the password is in no output and not in: $stored"
else
  fail "password URI: rc $rc, stored '$stored'"
fi

# 6. bad input: exit 2, a message, the local store untouched
expect2() {
  local what=$1 needle=$2
  shift 2
  local err rc t0=$SECONDS
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  if [ $rc -ne 2 ]; then fail "$what: exit $rc, expected 2 ($err)"
  elif ! grep -qi -- "$needle" <<<"$err"; then fail "$what: message lacks '$needle' ($err)"
  elif grep -qF "$pw" <<<"$err" || grep -qF "Wr0ng" <<<"$err"; then fail "$what: the message shows a password"
  else pass "$what -> 2 in $((SECONDS - t0)) s: $(head -n1 <<<"$err")"; fi
}
badpw="postgresql://$POOLBENCH_TEST_PG_USER:Wr0ngPw@/poolbench?host=$POOLBENCH_TEST_PG_SOCKET"
expect2 "bad credentials (runs)" "password authentication failed" "$bin" runs --store "$badpw"
expect2 "bad credentials (push)" "password authentication failed" "$bin" push local1 --to "$badpw" --store "$local"
expect2 "unreachable server (push)" "cannot connect" "$bin" push local1 --to "postgresql://ci:Wr0ng@127.0.0.1:1/db" --store "$local"
# libpq is loaded only for a PostgreSQL store (harness/pq_loader.c): without it, such a store is refused
# with the library to install, and a SQLite store still works
POOLBENCH_LIBPQ=/nonexistent/libpq.so.5 expect2 "no libpq (push)" "need the libpq client library" \
  "$bin" push local1 --to "$pg" --store "$local"
POOLBENCH_LIBPQ=/nonexistent/libpq.so.5 "$bin" runs --store "$local" >/dev/null &&
  pass "no libpq: a SQLite store still works" || fail "no libpq: the SQLite store failed too"
expect2 "another program's database (run)" "another program" "$bin" run "${tiny[@]}" --store "$foreign"
expect2 "unknown run (push)" "no run 'nosuch'" "$bin" push nosuch --to "$pg" --store "$local"
expect2 "push without --to" "--to" "$bin" push local1 --store "$local"
expect2 "bad --machine" "--machine" "$bin" runs --machine "a b" --store "$pg"
newer=$(newdb cli_newer)
"$bin" store init --store "$newer" >/dev/null && psql_q "$newer" -c "UPDATE poolbench_meta SET value = '99' WHERE key = 'schema_version'"
expect2 "newer schema (run)" "schema version 99" "$bin" run "${tiny[@]}" --store "$newer"
expect2 "newer schema (push)" "schema version 99" "$bin" push local1 --to "$newer" --store "$local"
[ "$(sha256sum "$local" | cut -d' ' -f1)" = "$sum_local" ] && pass "local store byte-identical after the bad input" ||
  fail "the local store changed"
[ "$(psql_q "$foreign" -c "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'")" = invoices ] ||
  fail "the foreign database changed"

echo "test_pg_cli: $fails failure(s)"
[ $fails -eq 0 ]
