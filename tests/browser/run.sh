#!/usr/bin/env bash
# The storefront in real headless Chromium: `till serve` started here on free ports, on a
# fresh SQLite database and then on a fresh PostgreSQL database (at TILL_TEST_PG_URL, as the
# cargo tests use; default postgres://postgres@127.0.0.1:5432), and pytest with Playwright
# (pinned in requirements.txt, a venv under /var/tmp reused between runs) driving Debian's
# `chromium` (installed with apt-get when missing; Playwright never downloads a browser).
# Each backend gets two servers: one with a normal stock hold, one whose hold lasts
# TILL_BROWSER_SHORT_HOLD_SECS (default 4) for the expired-hold test. Screenshots of the
# main pages go to TILL_ARTIFACTS (default $CARGO_TARGET_DIR/browser-artifacts);
# TILL_BROWSER_TESTS="a pytest -k expression" runs only some tests (by hand). Fails
# loudly when the browser, the build, the database or any test fails: nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-ci-target}"
VENV="${TILL_BROWSER_VENV:-/var/tmp/till-browser-venv}"
PG_URL="${TILL_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432}"
CHROMIUM="${TILL_CHROMIUM:-/usr/bin/chromium}"
SHORT_HOLD_SECS="${TILL_BROWSER_SHORT_HOLD_SECS:-4}"
export TILL_ARTIFACTS="${TILL_ARTIFACTS:-$CARGO_TARGET_DIR/browser-artifacts}"
fail() { echo "browser: $*" >&2; exit 1; }
. tests/harness.sh

if [ ! -x "$CHROMIUM" ]; then
  (apt-get update -qq && apt-get install -y -qq chromium) || fail "cannot install Debian's chromium"
fi
[ -x "$CHROMIUM" ] || fail "no browser at $CHROMIUM (apt-get install chromium, or set TILL_CHROMIUM)"

cargo build --locked --bin till || fail "cargo build failed"
TILL="$CARGO_TARGET_DIR/debug/till"

venv_install "$VENV" tests/browser/requirements.txt "browser test tools"
[ -x "$VENV/bin/pytest" ] || fail "pytest is not installed in $VENV"
mkdir -p "$TILL_ARTIFACTS"

scratch browser
SHORT_PID=""
trap 'stop_server; [ -n "$SHORT_PID" ] && kill "$SHORT_PID" 2>/dev/null; for db in $PG_DB ${PG_DB}_short; do psql "$PG_URL/postgres" -q -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done; rm -rf "$WORK"' EXIT

API_KEY="sk_browser_$RANDOM$RANDOM$RANDOM"

# start_till NAME DATABASE_URL HOLD_SECS UPI_GATEWAY: starts Till in the background and waits
# until it is ready; sets STARTED_PID and STARTED_URL.
start_till() {
  local name=$1 database_url=$2 hold=$3 upi=$4 port url pid
  port=$(free_port)
  url="http://127.0.0.1:$port"
  TILL_UPI_GATEWAY="$upi" TILL_API_KEY="$API_KEY" TILL_LISTEN="127.0.0.1:$port" TILL_DATABASE_URL="$database_url" \
  TILL_HOLD_TTL_SECS="$hold" TILL_SIM_DELAY_MS=1500 TILL_WORKER_TICK_MS=250 \
  TILL_MAIL_DIR="$WORK/mail-$name" RUST_LOG="${RUST_LOG:-warn}" \
    "$TILL" serve >"$WORK/till-$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "$url/readyz" && break
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/till-$name.log" >&2; fail "till serve exited ($name)"; }
    sleep 0.1
  done
  curl -sf -o /dev/null "$url/readyz" || fail "till serve is not ready ($name)"
  STARTED_PID=$pid STARTED_URL=$url
}

# browse BACKEND MAIN_DB SHORT_DB: both servers on that backend, then every browser test.
# The main server takes UPI through the Razorpay adapter (against the embedded simulator's
# Razorpay endpoints), so the shop's UPI intent and QR code are tested too; the short-hold
# server keeps the built-in simulator for every method.
browse() {
  local backend=$1 started status=0 url short_url
  start_till "$backend" "$2" 900 razorpay
  SERVER_PID=$STARTED_PID url=$STARTED_URL
  start_till "$backend-short" "$3" "$SHORT_HOLD_SECS" sim
  SHORT_PID=$STARTED_PID short_url=$STARTED_URL
  echo "browser: the shop in Chromium on $backend ($url)"
  started=$(date +%s)
  TILL_BROWSER_URL="$url" TILL_BROWSER_SHORT_HOLD_URL="$short_url" TILL_BROWSER_API_KEY="$API_KEY" \
  TILL_BROWSER_BACKEND="$backend" TILL_CHROMIUM="$CHROMIUM" \
    "$VENV/bin/pytest" -p no:cacheprovider -q tests/browser ${TILL_BROWSER_TESTS:+-k "$TILL_BROWSER_TESTS"} || status=1
  echo "browser: $backend took $(( $(date +%s) - started )) s"
  if grep -q "panicked" "$WORK"/till-"$backend"*.log; then
    grep -B2 -A8 "panicked" "$WORK"/till-"$backend"*.log >&2
    status=1
  fi
  if [ "$status" -ne 0 ]; then
    echo "browser: till log on $backend (errors):" >&2
    grep -hE "ERROR|panicked" "$WORK"/till-"$backend"*.log | tail -n 40 >&2 || true
    fail "the browser tests failed on $backend"
  fi
  kill "$SHORT_PID" 2>/dev/null || true; wait "$SHORT_PID" 2>/dev/null || true; SHORT_PID=""
  stop_server
}

browse sqlite "sqlite://$WORK/till.db" "sqlite://$WORK/till-short.db"
command -v psql >/dev/null || fail "psql is needed to create the PostgreSQL databases"
for db in "$PG_DB" "${PG_DB}_short"; do
  psql "$PG_URL/postgres" -q -c "CREATE DATABASE $db" >/dev/null \
    || fail "cannot create a PostgreSQL database at $PG_URL (is PostgreSQL up?)"
done
browse postgres "$PG_URL/$PG_DB" "$PG_URL/${PG_DB}_short"
echo "browser: every shop test passed on SQLite and PostgreSQL; screenshots in $TILL_ARTIFACTS"
