#!/usr/bin/env bash
# Till's benchmark, run by hand: the raw baselines (../shared/bench/ under pgbench, and the
# same checkout on raw SQLite) and `till bench` against a `till serve` process on SQLite and on
# PostgreSQL, in one run so the figures compare; then each row of the table with Till's ratio
# to its baseline, the server's memory (idle, and its peak with 2,000 buyers connected) and, on
# SQLite, the write transactions per group commit in the checkout scenario and how long its
# one writer was held per checkout (the most checkouts a second it lets through); and each row's goal
# (the performance issue's: 3,000 checkouts/s on SQLite, 0.8x the raw checkout on PostgreSQL,
# the flash sale at 10x the hot-row baseline with p99 <= 50 ms and 100 sold, memory <= 50 MB
# idle and <= 150 MB at its peak), met or not.
# The HTTP floor (requests answered without the database: as many at once as flash-sale
# buyers, then four per checkout at 32 in flight) shows what this machine's cores allow the
# flash sale and the checkout before Till does any work.
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres), pgbench, python3 and jq.
#   bench/run.sh [checkouts] [flash-sale buyers]
# TILL_BIN=path runs another build of till (say, main's) instead of building this one.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-3000}"
BUYERS="${2:-2000}"
PG="postgres://postgres@127.0.0.1:5432"
RAW="../shared/bench"
if [ -z "${TILL_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-target}"
  cargo build --release --quiet
  TILL_BIN="$CARGO_TARGET_DIR/release/till"
fi
export RUST_LOG=warn PGOPTIONS='-c client_min_messages=warning'
ulimit -n 8192
fresh_pg() { psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" 2>/dev/null; }
tps() { awk '/^tps/ {printf "%.0f", $3; exit}'; }
# SQLite's group commits so far (`/metrics`): groups committed, the write transactions in
# them, and the seconds its one writer was held for them; "0 0 0" on PostgreSQL, which has
# none.
write_groups() {
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^till_sqlite_write_groups_total / {g = $2}
    /^till_sqlite_grouped_writes_total / {m = $2} /^till_sqlite_writer_busy_seconds_total / {b = $2}
    END {print g + 0, m + 0, b + 0}'
}
rss_kb() { awk -v f="$2" '$1 == f":" {print $2}' "/proc/$1/status"; }

echo "== raw PostgreSQL baselines (pgbench, $RAW)"
fresh_pg till_raw
psql -q -h 127.0.0.1 -U postgres till_raw -f "$RAW/schema.sql" >/dev/null
PG_CHECKOUT=$(pgbench -n -M prepared -c 8 -j 2 -T 15 -f "$RAW/checkout.sql" -h 127.0.0.1 -U postgres till_raw 2>/dev/null | tps)
PG_HOT=$(pgbench -n -M prepared -c 8 -j 2 -T 10 -f "$RAW/hot_reserve.sql" -h 127.0.0.1 -U postgres till_raw 2>/dev/null | tps)
echo "checkout.sql c8: $PG_CHECKOUT/s   hot_reserve.sql c8: $PG_HOT/s"
echo "== raw SQLite baseline (the same checkout, WAL, one writer)"
SQLITE_CHECKOUT=$(python3 bench/raw_sqlite.py "/var/tmp/till-raw-$$.db" 10)
echo "checkout: $SQLITE_CHECKOUT/s"

rows=()
for backend in sqlite postgres; do
  if [ "$backend" = sqlite ]; then
    db="/var/tmp/till-bench-$$.db"; url="sqlite://$db"; checkout_base=$SQLITE_CHECKOUT
  else
    fresh_pg till_bench; url="$PG/till_bench"; checkout_base=$PG_CHECKOUT
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  key="bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  TILL_API_KEY=$key TILL_DATABASE_URL=$url TILL_LISTEN=127.0.0.1:$port TILL_MAX_CONNECTIONS=4096 \
    "$TILL_BIN" serve 2>"/var/tmp/till-bench-serve-$$.log" &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  sleep 2
  idle=$(rss_kb $pid VmRSS)
  bench() {
    "$TILL_BIN" bench --url "http://127.0.0.1:$port" --api-key "$key" --database-url "$url" --json "$@"
  }
  echo "== $backend: HTTP floor, $BUYERS requests at once that read nothing (GET /healthz)"
  floor=$(bench --scenario floor --count "$BUYERS" --concurrency "$BUYERS" --baseline-per-sec "$PG_HOT")
  echo "$floor" | jq -c .
  echo "== $backend: HTTP floor, $((COUNT * 4)) such requests, 32 in flight (a checkout is four requests)"
  floor32=$(bench --scenario floor --count "$((COUNT * 4))")
  echo "$floor32" | jq -c .
  echo "== $backend: flash sale, $BUYERS buyers at once for 100 units"
  flash=$(bench --scenario flash-sale --count "$BUYERS" --stock 100 --baseline-per-sec "$PG_HOT")
  peak=$(rss_kb $pid VmHWM)
  echo "$flash" | jq -c .
  # The mix before the pure checkout: each card payment leaves the embedded simulator a
  # webhook to send, one at a time, and the mix's UPI, wallet and 3-D Secure payments
  # complete only when theirs is sent.
  echo "== $backend: mix, $COUNT checkouts, 32 in flight"
  mix=$(bench --scenario mix --count "$COUNT" --baseline-per-sec "$checkout_base")
  echo "$mix" | jq -c .
  echo "== $backend: checkout, $COUNT checkouts, 32 in flight"
  read -r groups0 grouped0 busy0 < <(write_groups "$port")
  checkout=$(bench --scenario checkout --count "$COUNT" --baseline-per-sec "$checkout_base")
  read -r groups1 grouped1 busy1 < <(write_groups "$port")
  echo "$checkout" | jq -c .
  kill "$pid"; wait "$pid" || true
  rm -f "$db" "$db-wal" "$db-shm" "${db%.db}".gateway-sim.db*
  # The issue's goals: 3,000 checkouts/s on SQLite, 0.8x the raw checkout on PostgreSQL.
  # The issue measured raw SQLite at about 11,000/s, so 3,000/s was 0.27x of it; on a
  # machine whose raw SQLite runs slower, that ratio is printed beside the verdict.
  rows+=("$(jq -r --arg b "$backend" '(if $b == "sqlite" then {text: "≥ 3000/s", of: (.confirmed_per_sec / 3000), beside: "; \(.ratio_to_baseline * 100 | round / 100)x raw, against the 0.27x that 3000/s was of the ~11000/s raw SQLite the issue measured"} else {text: "≥ 0.8x", of: (.ratio_to_baseline / 0.8), beside: ""} end) as $goal
    | "| checkout, \($b), 32 in flight | \(.baseline_per_sec | round)/s | \(.confirmed_per_sec | round)/s (\(.ratio_to_baseline * 100 | round / 100)x), p99 \(.latency_ms.p99 | round) ms | verify \(.verify) | \($goal.text): \(if $goal.of >= 1 then "met" else "not met (\($goal.of * 100 | round / 100) of it\($goal.beside))" end) |"' <<<"$checkout")")
  rows+=("$(jq -r --arg b "$backend" '"| mix, \($b), 32 in flight | \(.baseline_per_sec | round)/s | \(.confirmed_per_sec | round)/s confirmed (\(.ratio_to_baseline * 100 | round / 100)x), p99 \(.latency_ms.p99 | round) ms, \(.outcomes | tostring) | verify \(.verify) | — |"' <<<"$mix")")
  rows+=("$(jq -r --arg b "$backend" '"| flash sale, \($b), \(.requests) buyers, 100 units | \(.baseline_per_sec | round)/s | \(.throughput_per_sec | round) answered/s (\(.ratio_to_baseline * 100 | round / 100)x), p99 \(.latency_ms.p99 | round) ms, \(.outcomes.confirmed // 0) sold | verify \(.verify) | ≥ 10x, p99 ≤ 50 ms, 100 sold: \([(if .ratio_to_baseline < 10 then "not 10x" else empty end), (if .latency_ms.p99 > 50 then "p99 over" else empty end), (if (.outcomes.confirmed // 0) != 100 then "not 100 sold" else empty end)] | if length == 0 then "met" else "not met (" + join(", ") + ")" end) |"' <<<"$flash")")
  rows+=("$(jq -r --arg b "$backend" '"| HTTP floor, \($b) server, \(.requests) requests at once, no database | \(.baseline_per_sec | round)/s | \(.throughput_per_sec | round) answered/s (\(.ratio_to_baseline * 100 | round / 100)x), p99 \(.latency_ms.p99 | round) ms | | — |"' <<<"$floor")")
  rows+=("$(jq -r --arg b "$backend" '"| HTTP floor, \($b) server, \(.requests) requests, 32 in flight, no database | — | \(.throughput_per_sec | round) answered/s (\(.throughput_per_sec / 4 | round) checkouts/s at four requests each), p99 \(.latency_ms.p99 | round) ms | | — |"' <<<"$floor32")")
  if [ "$groups1" -gt "$groups0" ]; then
    groups=$((groups1 - groups0)); grouped=$((grouped1 - grouped0))
    rows+=("| group commit, $backend checkout | — | $grouped write transactions in $groups commits ($(echo "$grouped / $groups" | bc -l | xargs printf '%.1f') a commit) | | — |")
  fi
  # Every write transaction waits its turn for the one writer: checkouts cannot pass faster
  # than one per writer-held time, whatever the cores do. (A build before the figure has none.)
  if [ "$(echo "$busy1 > $busy0" | bc -l)" = 1 ]; then
    held=$(echo "$busy1 - $busy0" | bc -l)
    confirmed=$(jq '.outcomes.confirmed // 0' <<<"$checkout")
    rows+=("| one writer, $backend checkout | — | held $(echo "$held * 1000 / $confirmed" | bc -l | xargs printf '%.2f') ms a checkout, $(echo "$held * 100 / $(jq .elapsed_secs <<<"$checkout")" | bc -l | xargs printf '%.0f')% of the run: at most $(echo "$confirmed / $held" | bc -l | xargs printf '%.0f') checkouts/s through it | | — |")
  fi
  memory_goal="met"
  if [ $((idle / 1024)) -gt 50 ] || [ $((peak / 1024)) -gt 150 ]; then memory_goal="not met"; fi
  rows+=("| memory, $backend | — | $((idle / 1024)) MB idle, $((peak / 1024)) MB peak with $BUYERS buyers connected | | ≤ 50 MB idle, ≤ 150 MB peak: $memory_goal |")
done

echo
echo "== summary (one run, this machine: baselines and Till side by side)"
echo "| figure | raw baseline, same run | Till | | goal |"
echo "|---|---|---|---|---|"
for r in "${rows[@]}"; do echo "$r"; done
