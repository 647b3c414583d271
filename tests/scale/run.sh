#!/usr/bin/env bash
# Several instances behave as one: three `till serve` processes (two `all`, one `api`) on ONE
# PostgreSQL database behind HAProxy, one `till gateway-sim` process (with latency) that
# every instance pays through, events published to RabbitMQ. All three start at once on an
# empty database (migrations and the generated API key are settled once). A mixed checkout
# load goes through the balancer (tests/scale/load.py: cards paid, declined and left in 3-D
# Secure, UPI, wallets) while one instance is killed with SIGKILL and another is restarted
# with SIGTERM (it drains: /readyz says so, requests in flight are answered, exit 0).
# Afterwards: every order terminal, `till verify` clean, the simulator's own records agree
# with Till's (no payment the gateway saw that Till does not know, at most one payment
# keeping money per order, exactly one for a confirmed order), and every event published to
# RabbitMQ once per id — but for one batch of consecutive events the killed instance may
# have published without recording it, published again (consumers dedupe by message_id). Fails loudly when HAProxy, PostgreSQL, RabbitMQ or the build
# is unavailable; two to three minutes on two cores once built (TILL_SCALE_SECONDS of load,
# 30, plus up to a minute for a request the killed instance was serving to be taken over).
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-ci-target}"
VENV="${TILL_SCALE_VENV:-/var/tmp/till-scale-venv}"
PG_URL="${TILL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
AMQP_URL="${TILL_SCALE_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
LOAD_SECS="${TILL_SCALE_SECONDS:-30}"
CLIENTS="${TILL_SCALE_CLIENTS:-8}"
WORK=""
# On failure, the end of every log of this run, then the reason.
fail() {
  local log
  if [ -n "$WORK" ]; then
    for log in "$WORK"/*.log; do [ -f "$log" ] && { echo "--- end of $log" >&2; tail -n 15 "$log" >&2; }; done
  fi
  echo "scale: $*" >&2
  exit 1
}
. tests/harness.sh

if ! command -v haproxy >/dev/null; then
  echo "scale: installing haproxy"
  apt-get install -y haproxy >/dev/null 2>&1 || fail "haproxy is missing and apt-get could not install it"
fi
command -v psql >/dev/null || fail "psql is needed"
cargo build --locked --bin till || fail "cargo build failed"
TILL="$CARGO_TARGET_DIR/debug/till"
venv_install "$VENV" tests/scale/requirements.txt "AMQP client"
PY="$VENV/bin/python"

WORK=$(mktemp -d /var/tmp/till-scale.XXXXXX)
DB="till_scale_$$"
SIM_DB="till_scale_sim_$$"
QUEUE="till.scale.$$"
EXCHANGE="till.scale.$$"
declare -A PIDS=()
cleanup() {
  local name
  for name in "${!PIDS[@]}"; do
    kill -TERM "${PIDS[$name]}" 2>/dev/null || true
    wait "${PIDS[$name]}" 2>/dev/null || true
  done
  for name in "$DB" "$SIM_DB"; do
    psql "$PG_URL/postgres" -q -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
  done
  [ -n "${KEEP_LOGS:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

for name in "$DB" "$SIM_DB"; do
  psql "$PG_URL/postgres" -q -c "CREATE DATABASE $name" || fail "cannot create database $name at $PG_URL"
done
psql_till() { psql "$PG_URL/$DB" -v ON_ERROR_STOP=1 -Atq "$@"; }
"$PY" tests/scale/load.py bind "$AMQP_URL" "$EXCHANGE" "$QUEUE" || fail "RabbitMQ is unreachable at $AMQP_URL"

SIM_PORT=$(free_port)
LB_PORT=$(free_port)
LB="http://127.0.0.1:$LB_PORT"
SIM_KEY="sim_key_$RANDOM$RANDOM"
SIM_SECRET="sim_whsec_$RANDOM$RANDOM"
TILL_STRIPE_SECRET_KEY=sk_test_scale TILL_STRIPE_WEBHOOK_SECRET=whsec_scale \
TILL_RAZORPAY_KEY_ID=rzp_test_scale TILL_RAZORPAY_KEY_SECRET=s TILL_RAZORPAY_WEBHOOK_SECRET=w \
TILL_SIM_API_KEY="$SIM_KEY" TILL_SIM_WEBHOOK_SECRET="$SIM_SECRET" \
  "$TILL" gateway-sim --listen "127.0.0.1:$SIM_PORT" --till-url "$LB" \
  --database-url "$PG_URL/$SIM_DB" --delay-ms 200 --faults latency_ms=40 >"$WORK/sim.log" 2>&1 &
PIDS[sim]=$!

declare -A PORT=([a]=$(free_port) [b]=$(free_port) [c]=$(free_port))
declare -A ROLE=([a]=all [b]=all [c]=api)
# start NAME: `till serve` NAME on its port (its log appended to NAME.log).
start() {
  local name=$1
  TILL_LISTEN="127.0.0.1:${PORT[$name]}" TILL_ROLE="${ROLE[$name]}" \
  TILL_DATABASE_URL="$PG_URL/$DB" TILL_DB_MAX_CONNECTIONS=8 \
  TILL_CARD_GATEWAY=sim TILL_UPI_GATEWAY=sim TILL_WALLET_GATEWAY=sim \
  TILL_GATEWAY_SIM_URL="http://127.0.0.1:$SIM_PORT/sim/till" \
  TILL_SIM_API_KEY="$SIM_KEY" TILL_SIM_WEBHOOK_SECRET="$SIM_SECRET" \
  TILL_HOLD_TTL_SECS=6 TILL_RECOVERY_AFTER_SECS=2 TILL_WORKER_TICK_MS=100 \
  TILL_AMQP_URL="$AMQP_URL" TILL_AMQP_EXCHANGE="$EXCHANGE" TILL_MAIL_DIR="$WORK/mail" \
  TILL_DRAIN_NOTICE_MS=1500 TILL_DRAIN_SECS=20 RUST_LOG="${RUST_LOG:-warn,till=info}" \
    "$TILL" serve >>"$WORK/$name.log" 2>&1 &
  PIDS[$name]=$!
}
await_ready() {
  local name=$1
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "http://127.0.0.1:${PORT[$name]}/readyz" && return 0
    kill -0 "${PIDS[$name]}" 2>/dev/null || fail "till $name exited at start (log: $(tail -n 5 "$WORK/$name.log"))"
    sleep 0.1
  done
  fail "till $name did not become ready"
}

# All three at once on an empty database: one migrates at a time, one API key is generated.
for name in a b c; do start "$name"; done
for name in a b c; do await_ready "$name"; done
generated=$(cat "$WORK"/[abc].log | grep -c 'generated API key' || true)
[ "$generated" = 1 ] || fail "expected one generated API key among three instances, saw $generated"
API_KEY=$(cat "$WORK"/[abc].log | sed -n 's/.*generated API key (shown once, store it now): //p')
for name in a b c; do
  curl -sf -o /dev/null -H "Authorization: Bearer $API_KEY" "http://127.0.0.1:${PORT[$name]}/v1/events?limit=1" \
    || fail "instance $name does not take the API key another instance generated"
done

cat >"$WORK/haproxy.cfg" <<EOF
global
  maxconn 512
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch
frontend till
  bind 127.0.0.1:$LB_PORT
  default_backend tills
backend tills
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 300ms fall 1 rise 2
  server a 127.0.0.1:${PORT[a]} check
  server b 127.0.0.1:${PORT[b]} check
  server c 127.0.0.1:${PORT[c]} check
EOF
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS[haproxy]=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "$LB/readyz" && break; sleep 0.1; done
curl -sf -o /dev/null "$LB/readyz" || fail "HAProxy does not reach Till at $LB"

auth="Authorization: Bearer $API_KEY"
for i in $(seq 0 7); do
  curl -sf -o /dev/null -X PUT "$LB/v1/products/SCALE-$i" -H "$auth" \
    -d '{"name": "Scale tee", "price": {"amount": 49900, "currency": "INR"}, "tax_code": "apparel"}' \
    || fail "cannot seed product SCALE-$i"
  curl -sf -o /dev/null -X PUT "$LB/v1/inventory/SCALE-$i/warehouses/blr-1" -H "$auth" \
    -d '{"on_hand": 100000}' || fail "cannot seed stock of SCALE-$i"
done

echo "scale: ${LOAD_SECS}s of checkouts from $CLIENTS clients through HAProxy at $LB"
"$PY" tests/scale/load.py load "$LB" "$API_KEY" "$LOAD_SECS" "$CLIENTS" "$WORK/load.json" &
LOAD_PID=$!
sleep $((LOAD_SECS / 3))
echo "scale: SIGKILL till a"
kill -KILL "${PIDS[a]}"; wait "${PIDS[a]}" 2>/dev/null || true; unset 'PIDS[a]'
sleep $((LOAD_SECS / 3))
echo "scale: SIGTERM till b (it drains), then start it again"
kill -TERM "${PIDS[b]}"
status=0; wait "${PIDS[b]}" || status=$?
[ "$status" = 0 ] || fail "till b exited $status on SIGTERM"
grep -q 'drained; stopped' "$WORK/b.log" || fail "till b did not drain"
start b
await_ready b
wait "$LOAD_PID" || fail "the load saw failures ($WORK/load.json)"

# Every order terminal: the workers of the instances still up finish what the killed one
# left (holds expire after 6 s, attempts in flight are asked again after 2 s).
for _ in $(seq 1 120); do
  open=$(psql_till -c "SELECT COUNT(*) FROM orders WHERE status = 'pending'")
  [ "$open" = 0 ] && break
  sleep 0.5
done
[ "$open" = 0 ] || fail "$open orders still pending a minute after the load"
# Every event sequenced and taken by the AMQP sink (a sink the killed instance held is free
# again once its lease runs out).
for _ in $(seq 1 120); do
  behind=$(psql_till -c "SELECT (SELECT COUNT(*) FROM events WHERE position IS NULL) + \
    (SELECT COALESCE(MAX(position), 0) FROM events) - (SELECT position FROM sink_cursors WHERE sink = 'amqp')")
  [ "$behind" = 0 ] && break
  sleep 0.5
done
[ "$behind" = 0 ] || fail "the AMQP sink is $behind events behind a minute after the load"

for name in b c; do
  kill -TERM "${PIDS[$name]}"
  status=0; wait "${PIDS[$name]}" || status=$?
  unset "PIDS[$name]"
  [ "$status" = 0 ] || fail "till $name exited $status on SIGTERM"
done

"$TILL" verify --database-url "$PG_URL/$DB" >"$WORK/verify.txt" || { cat "$WORK/verify.txt" >&2; fail "till verify found broken invariants"; }

# The gateway's own records against Till's.
psql "$PG_URL/$SIM_DB" -v ON_ERROR_STOP=1 -Atq \
  -c "COPY (SELECT idem_key, amount, status, refunded FROM sim_payments) TO STDOUT" >"$WORK/sim_payments.tsv"
read -r unknown wrong_money orders confirmed <<<"$(psql_till -F ' ' <<EOF
CREATE TEMP TABLE sim (idem_key TEXT, amount BIGINT, status TEXT, refunded BIGINT);
\copy sim FROM '$WORK/sim_payments.tsv'
-- Money the gateway keeps for an order, counted per order.
CREATE TEMP VIEW kept AS SELECT o.id, o.status,
  (SELECT COUNT(*) FROM sim s JOIN payments p ON p.id = s.idem_key
    WHERE p.order_id = o.id AND s.status IN ('succeeded', 'authorized', 'captured')
      AND s.refunded < s.amount) AS n FROM orders o;
SELECT (SELECT COUNT(*) FROM sim s LEFT JOIN payments p ON p.id = s.idem_key AND p.amount = s.amount
         WHERE p.id IS NULL),
       (SELECT COUNT(*) FROM kept WHERE n <> CASE WHEN status = 'confirmed' THEN 1 ELSE 0 END),
       (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM orders WHERE status = 'confirmed');
EOF
)"
[ "$unknown" = 0 ] || fail "$unknown payments at the gateway that Till does not know (or of another amount)"
[ "$wrong_money" = 0 ] || fail "$wrong_money orders whose money at the gateway is not one payment for a confirmed order, none otherwise"

# Every event published once per id.
"$PY" tests/scale/load.py drain "$AMQP_URL" "$QUEUE" "$WORK/published.txt"
psql_till -c "SELECT id FROM events" | LC_ALL=C sort >"$WORK/events.txt"
# An instance SIGKILLed after the broker confirmed a batch and before it moved the sink's
# cursor leaves that batch to be published again (consumers dedupe by message_id): allowed
# for one batch of consecutive events, nothing more.
LC_ALL=C sort "$WORK/published.txt" | uniq -d >"$WORK/twice.txt"
twice=$(wc -l <"$WORK/twice.txt")
if [ "$twice" != 0 ]; then
  ids=$(sed "s/.*/'&'/" "$WORK/twice.txt" | paste -sd, -)
  span=$(psql_till -c "SELECT MAX(position) - MIN(position) + 1 FROM events WHERE id IN ($ids)")
  [ "$twice" -le 100 ] && [ "$span" = "$twice" ] \
    || fail "$twice events published more than once, over $span positions: more than the one batch a killed relay may leave"
fi
LC_ALL=C sort -u "$WORK/published.txt" | cmp -s - "$WORK/events.txt" \
  || fail "the events published ($(wc -l <"$WORK/published.txt")) are not Till's events ($(wc -l <"$WORK/events.txt"))"

echo "scale: $orders orders ($confirmed confirmed) through 3 instances, one killed and one restarted;" \
  "all terminal, verify clean, $(wc -l <"$WORK/sim_payments.tsv") gateway payments all Till's," \
  "$(wc -l <"$WORK/events.txt") events all published ($twice twice: the killed relay's last batch); load: $(tr -d '\n ' <"$WORK/load.json" | head -c 300)"
