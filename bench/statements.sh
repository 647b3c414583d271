#!/usr/bin/env bash
# What one checkout costs the database, counted rather than timed: PostgreSQL logs every
# statement (`log_statement = all`, set on a fresh database before `till serve` connects), a
# run of checkouts goes through `till bench`, and the statements logged during the run are
# counted per confirmed checkout — Till's own, the embedded simulator's and the background
# workers' (sequencer, relay, webhooks) together, since a checkout pays for all of them.
# Prints statements per checkout by kind, the commits that wrote (Till's and the embedded
# simulator's), then the most frequent statements (`bench/statements.py` reads the log).
# Run by hand, as root (it reads PostgreSQL's log):
#   bench/statements.sh [checkouts]
# TILL_BIN=path measures another build of till. PG_LOG names the server's log file.
# SCENARIO=flash-sale counts a flash sale instead (that many buyers at once for 100 units,
# the winners paying), per buyer answered.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-1000}"
PG="postgres://postgres@127.0.0.1:5432"
PG_LOG="${PG_LOG:-$(ls /var/log/postgresql/postgresql-*-main.log | head -n 1)}"
if [ -z "${TILL_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-target}"
  cargo build --release --quiet
  TILL_BIN="$CARGO_TARGET_DIR/release/till"
fi
export RUST_LOG=warn PGOPTIONS='-c client_min_messages=warning'
db=till_statements
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" \
  -c "ALTER DATABASE $db SET log_statement = 'all'" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TILL_API_KEY=$key TILL_DATABASE_URL="$PG/$db" TILL_LISTEN=127.0.0.1:$port \
  "$TILL_BIN" serve 2>/var/tmp/till-statements-serve.log &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
sleep 2
bench() {
  "$TILL_BIN" bench --url "http://127.0.0.1:$port" --api-key "$key" --database-url "$PG/$db" --json "$@"
}
# A warm-up (prepared statements, the SKUs), then the measured run; the embedded simulator's
# webhooks are let through before the count ends.
bench --scenario checkout --count 50 --concurrency 8 >/dev/null
sleep 3
from=$(stat -c %s "$PG_LOG")
SCENARIO="${SCENARIO:-checkout}"
run=$(bench --scenario "$SCENARIO" --count "$COUNT" --concurrency "${CONCURRENCY:-8}")
sleep 3
to=$(stat -c %s "$PG_LOG")
kill $pid; wait $pid 2>/dev/null || true
if [ "$SCENARIO" = checkout ]; then
  per=$(jq '.outcomes.confirmed // 0' <<<"$run")
  unit="confirmed checkout"
else
  per=$(jq '.requests' <<<"$run")
  unit="buyer answered"
fi
echo "$SCENARIO: $per of $COUNT counted; outcomes $(jq -c .outcomes <<<"$run")"
tail -c +"$((from + 1))" "$PG_LOG" | head -c "$((to - from))" >/var/tmp/till-statements.log
python3 bench/statements.py /var/tmp/till-statements.log "$db" "$per" "$unit"
