#!/usr/bin/env bash
# A checkout on a database that has a day behind it, against the same checkout on an empty
# one, in one run: each backend twice, on a fresh database each time, once as it is and once
# with KEYS answered idempotency keys created over the last 23 hours (inside the 24 h
# retention, so the purge keeps them) put in before the measured run, as a day of requests
# leaves them. The workers' purge runs every tick (250 ms) meanwhile, as in production.
# Prints checkouts/s and latency for each, and the day's ratio to the empty database.
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres), python3 and jq. Run by hand:
#   bench/history.sh [keys] [checkouts]
# TILL_BIN=path measures another build. BACKENDS="sqlite" runs one backend.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS="${1:-1000000}"
COUNT="${2:-2000}"
PG="postgres://postgres@127.0.0.1:5432"
if [ -z "${TILL_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-target}"
  cargo build --release --quiet
  TILL_BIN="$CARGO_TARGET_DIR/release/till"
fi
export RUST_LOG=warn PGOPTIONS='-c client_min_messages=warning'
dir=/var/tmp/till-history
# Answered keys, one every 23 h / n, the newest now: the shape of a stored payment answer.
fill_sql() {
  local now span
  now=$(date +%s%3N)
  span=$((23 * 3600 * 1000))
  cat <<SQL
INSERT INTO idempotency_keys
  (scope, idem_key, fingerprint, state, status_code, body, created_at, resource_id, resource_kind)
SELECT 'merchant', 'history-' || g, '$(printf 'f%.0s' $(seq 64))', 'done', 201,
  '{"id":"pay_history","object":"payment","status":"succeeded","amount":129900,"currency":"INR","method":"card","gateway":"simulated","order_id":"ord_history","created_at":"2026-11-30T00:00:00Z","failure_code":null,"redirect_url":null,"refunded":0}',
  $now - $span + g * ($span / $1), 'pay_history_' || g, 'payment'
FROM generate_series(1, $1) AS g;
SQL
}
run() {
  local backend=$1 keys=$2 url port key pid
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
  TILL_API_KEY=$key TILL_DATABASE_URL=$url TILL_LISTEN=127.0.0.1:$port "$TILL_BIN" serve 2>"$dir/serve.log" &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  bench() {
    "$TILL_BIN" bench --url "http://127.0.0.1:$port" --api-key "$key" --database-url "$url" --json \
      --scenario checkout "$@" 2>/dev/null
  }
  bench --count 200 >/dev/null
  if [ "$keys" -gt 0 ]; then
    if [ "$backend" = postgres ]; then
      fill_sql "$keys" | psql -q -h 127.0.0.1 -U postgres till_history
      psql -q -h 127.0.0.1 -U postgres till_history -c "ANALYZE idempotency_keys"
    else
      # SQLite numbers $1 as a parameter; the script has no parameters, so spell it out.
      fill_sql "$keys" | sed 's/generate_series(1, \([0-9]*\)) AS g/(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < \1) SELECT g FROM s)/' |
        python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=60); c.executescript(sys.stdin.read()); c.close()' "$dir/till.db"
    fi
  fi
  sleep 1
  bench --count "$COUNT" >"$dir/run.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  jq -r --arg b "$backend" --arg k "$keys" \
    '"\($b), \($k) keys of history: \(.confirmed_per_sec | floor) checkouts/s, p50 \(.latency_ms.p50 | floor) ms, p99 \(.latency_ms.p99 | floor) ms, outcomes \(.outcomes | tostring)"' \
    "$dir/run.json"
  rate=$(jq .confirmed_per_sec "$dir/run.json")
}
for backend in ${BACKENDS:-sqlite postgres}; do
  run "$backend" 0
  empty=$rate
  run "$backend" "$KEYS"
  day=$rate
  echo "$backend: with a day of $KEYS keys, $(echo "$day / $empty" | bc -l | xargs printf '%.2f')x the empty database's checkouts/s"
done
