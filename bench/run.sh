#!/usr/bin/env bash
# Till's benchmark, run by hand: PostgreSQL's own pgbench for scale, then `till bench` on
# SQLite and on PostgreSQL, in one run so the figures compare. Prints each as it goes and a
# summary at the end. Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and pgbench.
#   bench/run.sh [checkouts] [flash-sale buyers]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-3000}"
BUYERS="${2:-2000}"
PG="postgres://postgres@127.0.0.1:5432"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-target}"
cargo build --release --quiet
TILL="$CARGO_TARGET_DIR/release/till"
export RUST_LOG=warn
fresh_pg() { psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" 2>/dev/null; }

echo "== pgbench -c 8 -T 20 (TPC-B-like, scale 10)"
fresh_pg till_pgbench
pgbench -q -i -s 10 -h 127.0.0.1 -U postgres till_pgbench >/dev/null 2>&1
PGBENCH_TPS=$(pgbench -c 8 -j 2 -T 20 -h 127.0.0.1 -U postgres till_pgbench 2>/dev/null | awk '/^tps/ {print $3; exit}')
echo "pgbench tps: $PGBENCH_TPS"

results=()
for backend in sqlite postgres; do
  for scenario in checkout flash-sale; do
    if [ "$backend" = sqlite ]; then
      url="sqlite:///var/tmp/till-bench-$scenario-$$.db"
    else
      fresh_pg "till_bench_${scenario//-/_}"; url="$PG/till_bench_${scenario//-/_}"
    fi
    n=$COUNT; [ "$scenario" = flash-sale ] && n=$BUYERS
    echo "== till bench --scenario $scenario --count $n on $backend"
    out=$("$TILL" bench --scenario "$scenario" --count "$n" --database-url "$url" --json)
    echo "$out"
    results+=("$backend $scenario $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f/s confirmed, p99 %.1f ms, outcomes %s, verify %s" % (d["confirmed_per_sec"], d["latency_ms"]["p99"], json.dumps(d["outcomes"]), d["verify"]))')")
    rm -f /var/tmp/till-bench-$scenario-$$.db*
  done
done

echo
echo "== summary (one run, this machine)"
echo "pgbench -c 8 -T 20: $PGBENCH_TPS tps"
for r in "${results[@]}"; do echo "$r"; done
