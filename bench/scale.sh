#!/usr/bin/env bash
# Scale-out, run by hand: `till bench --scenario checkout` through HAProxy with 1, 2 and 3
# `api` instances (plus one `worker` instance) on one fresh PostgreSQL database each time, all
# paying through one `till gateway-sim` (no latency). Prints each run and the ratio of each to
# one instance. While it runs, `top -b -n 1` is saved per run (`/var/tmp/till-scale-top-N.txt`)
# to show where the time goes (Till's processes, PostgreSQL, HAProxy, the simulator).
#   bench/scale.sh [checkouts per run] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-3000}"
CONCURRENCY="${2:-32}"
PG="${TILL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-target}"
# TILL_BIN: a till binary to measure instead of building the release one.
if [ -z "${TILL_BIN:-}" ]; then cargo build --release --quiet --locked --bin till; fi
TILL="${TILL_BIN:-$CARGO_TARGET_DIR/release/till}"
. tests/harness.sh
command -v haproxy >/dev/null || { echo "bench/scale.sh needs haproxy (apt-get install -y haproxy)" >&2; exit 1; }
export RUST_LOG=warn
KEY="sk_bench_$RANDOM$RANDOM"
SIM_KEY="sim_bench_$RANDOM"
SIM_SECRET="whsec_bench_$RANDOM"
WORK=$(mktemp -d /var/tmp/till-bench-scale.XXXXXX)
PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT
fresh_pg() { psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null; }

results=()
for n in 1 2 3; do
  fresh_pg till_bench_scale
  fresh_pg till_bench_scale_sim
  sim_port=$(free_port)
  lb_port=$(free_port)
  TILL_STRIPE_SECRET_KEY=sk_test_b TILL_STRIPE_WEBHOOK_SECRET=whsec_b TILL_RAZORPAY_KEY_ID=rzp_test_b \
  TILL_RAZORPAY_KEY_SECRET=s TILL_RAZORPAY_WEBHOOK_SECRET=w TILL_SIM_API_KEY="$SIM_KEY" \
  TILL_SIM_WEBHOOK_SECRET="$SIM_SECRET" "$TILL" gateway-sim --listen "127.0.0.1:$sim_port" \
    --till-url "http://127.0.0.1:$lb_port" --database-url "$PG/till_bench_scale_sim" >"$WORK/sim.log" 2>&1 &
  PIDS+=($!)
  servers=""
  for i in $(seq 0 "$n"); do
    port=$(free_port)
    role=api; [ "$i" = 0 ] && role=worker
    TILL_LISTEN="127.0.0.1:$port" TILL_ROLE=$role TILL_DATABASE_URL="$PG/till_bench_scale" \
    TILL_API_KEY="$KEY" TILL_CARD_GATEWAY=sim TILL_UPI_GATEWAY=sim TILL_WALLET_GATEWAY=sim \
    TILL_GATEWAY_SIM_URL="http://127.0.0.1:$sim_port/sim/till" TILL_SIM_API_KEY="$SIM_KEY" \
    TILL_SIM_WEBHOOK_SECRET="$SIM_SECRET" TILL_MAX_PENDING_PER_CUSTOMER=0 TILL_MAIL_DIR="$WORK/mail" \
      "$TILL" serve >"$WORK/till-$i.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
    [ "$role" = api ] && servers+="  server s$i 127.0.0.1:$port check"$'\n'
  done
  cat >"$WORK/haproxy.cfg" <<EOF
global
  maxconn 1024
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend till
  bind 127.0.0.1:$lb_port
  default_backend tills
backend tills
  balance roundrobin
  option httpchk GET /readyz
$servers
EOF
  haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$lb_port/readyz" && break; sleep 0.1; done
  echo "== $n api instance(s) + 1 worker behind HAProxy: till bench --count $COUNT --concurrency $CONCURRENCY"
  ( sleep 8; top -b -n 1 -w 200 | head -n 25 >/var/tmp/till-scale-top-$n.txt ) &
  top_pid=$!
  out=$("$TILL" bench --scenario checkout --url "http://127.0.0.1:$lb_port" --api-key "$KEY" \
    --count "$COUNT" --concurrency "$CONCURRENCY" --database-url "$PG/till_bench_scale" --json)
  wait "$top_pid"
  echo "$out"
  results+=("$n $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.1f %.1f %.1f %s" % (d["confirmed_per_sec"], d["latency_ms"]["p50"], d["latency_ms"]["p99"], d["verify"]))')")
  stop_all
done

echo
echo "api instances | confirmed checkouts/s | p50 ms | p99 ms | verify | vs one instance"
base=""
for r in "${results[@]}"; do
  read -r n rate p50 p99 verify <<<"$r"
  [ -n "$base" ] || base=$rate
  printf '%s | %s | %s | %s | %s | %.2f×\n' "$n" "$rate" "$p50" "$p99" "$verify" "$(echo "$rate / $base" | bc -l)"
done
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS till_bench_scale WITH (FORCE)" -c "DROP DATABASE IF EXISTS till_bench_scale_sim WITH (FORCE)" >/dev/null
