#!/usr/bin/env bash
# What the invoice series costs, run by hand: the raw three-transaction checkout of
# ../shared/bench with and without one counter row taken in the confirming transaction
# (pgbench, same run), then `till bench --scenario checkout` on PostgreSQL and SQLite, whose
# every confirmation issues one invoice (so confirmed/s is invoices issued/s).
#   bench/invoices.sh [checkouts]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-3000}"
SHARED="${TILL_SHARED_BENCH:-../shared/bench}"
PG="postgres://postgres@127.0.0.1:5432"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-target}"
cargo build --release --quiet
TILL="$CARGO_TARGET_DIR/release/till"
export RUST_LOG=warn
psql() { command psql -q -h 127.0.0.1 -U postgres "$@"; }
raw() {
  psql -c "DROP DATABASE IF EXISTS till_raw" -c "CREATE DATABASE till_raw" 2>/dev/null
  psql till_raw -f "$SHARED/schema.sql" >/dev/null
  psql till_raw -c "CREATE TABLE invoice_counter (name TEXT PRIMARY KEY, value BIGINT NOT NULL)" \
    -c "INSERT INTO invoice_counter VALUES ('invoice/2026-27', 0)"
}
tps() { pgbench -n -M prepared -c 8 -j 2 -T 15 -f "$1" -h 127.0.0.1 -U postgres till_raw 2>/dev/null | awk '/^tps/ {print $3; exit}'; }

raw; BASE=$(tps "$SHARED/checkout.sql")
raw; WITH=$(tps bench/invoice_counter.sql)
echo "raw checkout (pgbench -c 8, 15 s):                 $BASE checkouts/s"
echo "raw checkout + invoice counter row:                $WITH checkouts/s"
for backend in postgres sqlite; do
  if [ "$backend" = sqlite ]; then url="sqlite:///var/tmp/till-bench-invoices-$$.db"
  else psql -c "DROP DATABASE IF EXISTS till_bench_invoices" -c "CREATE DATABASE till_bench_invoices" 2>/dev/null
       url="$PG/till_bench_invoices"; fi
  out=$("$TILL" bench --scenario checkout --count "$COUNT" --database-url "$url" --json)
  echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
base, with_counter = float(sys.argv[2]), float(sys.argv[3])
rate = d["confirmed_per_sec"]
print("till %-8s checkout: %.0f invoices issued/s (= confirmed/s), p99 %.1f ms, verify %s; %.2f of raw, %.2f of raw with the counter row"
      % (sys.argv[1], rate, d["latency_ms"]["p99"], d["verify"], rate / base, rate / with_counter))
' "$backend" "$BASE" "$WITH"
  rm -f /var/tmp/till-bench-invoices-$$.db* /var/tmp/till-bench-invoices-$$.gateway-sim.db*
done
