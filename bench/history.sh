#!/usr/bin/env bash
# A checkout on a database that has history behind it, against the same checkout on an empty
# one, in one run: each backend twice, on a fresh database each time, once as it is and once
# with N rows of history put in before the measured run. Prints checkouts/s and latency for
# each, and the history's ratio to the empty database.
#   HISTORY=keys (the default): N answered idempotency keys created over the last 23 hours
#     (inside the 24 h retention, so the purge keeps them), as a day of requests leaves
#     them. The workers' purge runs every tick (250 ms) meanwhile, as in production.
#   HISTORY=orders: N paid orders with their payments (copies of one the warm-up confirmed,
#     two days old), with reconciliation every RECONCILE_EVERY seconds (1 by default; 300 in
#     production) from a watermark of now, so a pass looks at whole tables only where it
#     reads them whole.
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres), python3 and jq. Run by hand:
#   bench/history.sh [n] [checkouts]
# TILL_BIN=path measures another build. BACKENDS="sqlite" runs one backend.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
COUNT="${2:-2000}"
HISTORY="${HISTORY:-keys}"
PG="postgres://postgres@127.0.0.1:5432"
if [ -z "${TILL_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-target}"
  cargo build --release --quiet
  TILL_BIN="$CARGO_TARGET_DIR/release/till"
fi
export RUST_LOG=warn PGOPTIONS='-c client_min_messages=warning'
dir=/var/tmp/till-history
# The numbers 1..n as a table `s(g)`, in each backend's words.
series() {
  if [ "$1" = postgres ]; then
    echo "generate_series(1, $2) AS s(g)"
  else
    echo "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < $2) SELECT g FROM s) AS s"
  fi
}
# Answered keys, one every 23 h / n, the newest now: the shape of a stored payment answer.
keys_sql() {
  local now span
  now=$(date +%s%3N)
  span=$((23 * 3600 * 1000))
  cat <<SQL
INSERT INTO idempotency_keys
  (scope, idem_key, fingerprint, state, status_code, body, created_at, resource_id, resource_kind)
SELECT 'merchant', 'history-' || g, '$(printf 'f%.0s' $(seq 64))', 'done', 201,
  '{"id":"pay_history","object":"payment","status":"succeeded","amount":129900,"currency":"INR","method":"card","gateway":"simulated","order_id":"ord_history","created_at":"2026-11-30T00:00:00Z","failure_code":null,"redirect_url":null,"refunded":0}',
  $now - $span + g * ($span / $2), 'pay_history_' || g, 'payment'
FROM $(series "$1" "$2");
SQL
}
# Paid orders and their payments, copied from the first confirmed order, two days old; and
# reconciliation's watermark set to now.
orders_sql() {
  local now old
  now=$(date +%s%3N)
  old=$((now - 2 * 24 * 3600 * 1000))
  cat <<SQL
INSERT INTO orders (id, status, cancel_reason, currency, subtotal, discount, tax, total, customer,
  ship_to, secret_hash, fingerprint, invoice_number, expires_at, created_at, updated_at, paid_by,
  customer_id, tax_lines, coupon)
SELECT 'ord_history_' || g, status, cancel_reason, currency, subtotal, discount, tax, total, customer,
  ship_to, secret_hash, fingerprint, NULL, expires_at, $old, $old, 'pay_history_' || g,
  NULL, tax_lines, coupon
FROM orders, $(series "$1" "$2")
WHERE id = (SELECT MIN(id) FROM orders WHERE status = 'confirmed');
INSERT INTO payments (id, order_id, status, amount, currency, method, source, gateway, gateway_ref,
  failure_code, redirect_url, created_at, updated_at, fate, contradiction)
SELECT 'pay_history_' || g, 'ord_history_' || g, p.status, p.amount, p.currency, p.method, p.source,
  p.gateway, 'ref_history_' || g, p.failure_code, p.redirect_url, $old, $old, p.fate, p.contradiction
FROM payments p, $(series "$1" "$2")
WHERE p.id = (SELECT paid_by FROM orders WHERE id = (SELECT MIN(id) FROM orders WHERE status = 'confirmed' AND id NOT LIKE 'ord_history_%'));
INSERT INTO settings (name, value) VALUES ('reconcile_since_ms', '$now')
  ON CONFLICT (name) DO UPDATE SET value = excluded.value;
SQL
}
run() {
  local backend=$1 n=$2 url port key pid
  rate=0
  rm -rf "$dir" && mkdir -p "$dir"
  if [ "$backend" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS till_history" \
      -c "CREATE DATABASE till_history" 2>/dev/null
    url="$PG/till_history"
  else
    url="sqlite://$dir/till.db"
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  key="bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  local every=300
  [ "$HISTORY" = orders ] && every="${RECONCILE_EVERY:-1}"
  TILL_RECONCILE_EVERY_SECS=$every TILL_API_KEY=$key TILL_DATABASE_URL=$url \
    TILL_LISTEN=127.0.0.1:$port "$TILL_BIN" serve 2>"$dir/serve.log" &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  bench() {
    "$TILL_BIN" bench --url "http://127.0.0.1:$port" --api-key "$key" --database-url "$url" --json \
      --scenario checkout "$@" 2>/dev/null
  }
  bench --count 200 >/dev/null
  if [ "$n" -gt 0 ]; then
    if [ "$backend" = postgres ]; then
      "${HISTORY}_sql" postgres "$n" | psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres till_history
      psql -q -h 127.0.0.1 -U postgres till_history -c "ANALYZE"
    else
      "${HISTORY}_sql" sqlite "$n" |
        python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=60); c.executescript(sys.stdin.read()); c.close()' "$dir/till.db"
    fi
  fi
  sleep 1
  bench --count "$COUNT" >"$dir/run.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  jq -r --arg b "$backend" --arg n "$n" --arg h "$HISTORY" \
    '"\($b), \($n) \($h) of history: \(.confirmed_per_sec | floor) checkouts/s, p50 \(.latency_ms.p50 | floor) ms, p99 \(.latency_ms.p99 | floor) ms, outcomes \(.outcomes | tostring)"' \
    "$dir/run.json"
  rate=$(jq .confirmed_per_sec "$dir/run.json")
}
case "$HISTORY" in keys | orders) ;; *) echo "HISTORY is keys or orders" >&2; exit 2 ;; esac
for backend in ${BACKENDS:-sqlite postgres}; do
  run "$backend" 0
  empty=$rate
  run "$backend" "$N"
  echo "$backend: with $N $HISTORY of history, $(echo "$rate / $empty" | bc -l | xargs printf '%.2f')x the empty database's checkouts/s"
done
