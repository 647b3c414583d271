#!/usr/bin/env bash
# Conformance: the official SDKs (stripe 16 and razorpay 2.0 for Python, stripe for Node)
# against `till gateway-sim` started here as its own process on a free port, once with its
# own SQLite database and once with a fresh PostgreSQL database (at TILL_TEST_PG_URL, as the
# cargo tests use; default postgres://postgres@127.0.0.1:5432). Installs the pinned SDKs (a
# venv under /var/tmp, reused between runs; tests/sdk/node_modules from package-lock.json)
# and fails loudly when an install, the simulator or any test fails: nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-ci-target}"
VENV="${TILL_SDK_VENV:-/var/tmp/till-sdk-venv}"
PG_URL="${TILL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
fail() { echo "sdk: $*" >&2; exit 1; }
. tests/harness.sh

# Node and npm come from Debian on a machine that lacks them.
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq nodejs npm) || fail "cannot install nodejs and npm"
fi

cargo build --locked --bin till || fail "cargo build failed"
TILL="$CARGO_TARGET_DIR/debug/till"

venv_install "$VENV" tests/sdk/requirements.txt SDKs
(cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed"

scratch sdk

export TILL_SDK_STRIPE_KEY="sk_test_sdk_$RANDOM$RANDOM"
export TILL_SDK_STRIPE_WEBHOOK_SECRET="whsec_sdk_$RANDOM$RANDOM"
export TILL_SDK_RAZORPAY_KEY_ID="rzp_test_sdk$RANDOM"
export TILL_SDK_RAZORPAY_KEY_SECRET="rzp_secret_$RANDOM$RANDOM"
export TILL_SDK_RAZORPAY_WEBHOOK_SECRET="rzp_whsec_$RANDOM$RANDOM"

# Starts gateway-sim on `$1` (a database URL), runs both SDKs' tests, stops it.
conformance() {
  local database_url=$1 port
  port=$(free_port)
  export TILL_SDK_SIM_URL="http://127.0.0.1:$port"
  TILL_SDK_WEBHOOK_PORT=$(free_port)
  export TILL_SDK_WEBHOOK_PORT
  # Webhooks go to the listener inside the Python tests; until it is up they are retried.
  TILL_STRIPE_SECRET_KEY="$TILL_SDK_STRIPE_KEY" \
  TILL_STRIPE_WEBHOOK_SECRET="$TILL_SDK_STRIPE_WEBHOOK_SECRET" \
  TILL_RAZORPAY_KEY_ID="$TILL_SDK_RAZORPAY_KEY_ID" \
  TILL_RAZORPAY_KEY_SECRET="$TILL_SDK_RAZORPAY_KEY_SECRET" \
  TILL_RAZORPAY_WEBHOOK_SECRET="$TILL_SDK_RAZORPAY_WEBHOOK_SECRET" \
  RUST_LOG="${RUST_LOG:-error}" \
    "$TILL" gateway-sim --listen "127.0.0.1:$port" --till-url "http://127.0.0.1:$TILL_SDK_WEBHOOK_PORT" \
      --database-url "$database_url" --delay-ms 200 >"$WORK/gateway-sim.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$TILL_SDK_SIM_URL/v1/payment_intents" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/gateway-sim.log" >&2; fail "till gateway-sim exited"; }
    sleep 0.1
  done
  curl -s -o /dev/null "$TILL_SDK_SIM_URL/v1/payment_intents" || fail "till gateway-sim does not answer"
  local status=0
  echo "sdk: Python (stripe, razorpay) against gateway-sim on ${database_url%%:*}"
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/sdk/test_sdk.py || status=1
  echo "sdk: Node (stripe) against gateway-sim on ${database_url%%:*}"
  (cd tests/sdk && node --test stripe.test.mjs) || status=1
  if [ "$status" -ne 0 ]; then
    echo "sdk: gateway-sim log:" >&2; tail -n 50 "$WORK/gateway-sim.log" >&2
    fail "conformance tests failed on ${database_url%%:*}"
  fi
  stop_server
}

conformance "sqlite://$WORK/gateway-sim.db"
psql "$PG_URL/postgres" -q -c "CREATE DATABASE $PG_DB" >/dev/null \
  || fail "cannot create a PostgreSQL database at $PG_URL (is PostgreSQL up?)"
conformance "$PG_URL/$PG_DB"
echo "sdk: all conformance tests passed on SQLite and PostgreSQL"
