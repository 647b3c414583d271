#!/usr/bin/env bash
# What a checkout writes to SQLite's write-ahead log, by table and index, for Till's file and
# the embedded simulator's: a `till serve` on fresh files, a bench run that only sets up its
# products and stock, then a run of checkouts (32 in flight) with the same setup; the server
# is killed (`kill -9`, so nothing is checkpointed away) and `bench/wal.py` maps each frame
# of the checkouts' run, less the setup's, to its table or index. A frame is one page one
# commit wrote, so these are the pages the group commits append. A build whose SQLite driver
# checkpoints in the background (since crates/sqlite-inline/src/checkpoint.rs) starts the log
# over within a run, and `bench/wal.py` then stops, saying so: it measures the builds before.
# Run by hand:
#   bench/wal.sh [checkouts]
# TILL_BIN=path measures another build.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-500}"
if [ -z "${TILL_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-target}"
  cargo build --release --quiet
  TILL_BIN="$CARGO_TARGET_DIR/release/till"
fi
dir=$(mktemp -d /var/tmp/till-wal.XXXXXX)
db="$dir/till.db"
sim="$dir/till.gateway-sim.db"
url="sqlite://$db"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
RUST_LOG=warn TILL_API_KEY=$key TILL_DATABASE_URL=$url TILL_LISTEN=127.0.0.1:$port "$TILL_BIN" serve 2>"$dir/serve.log" &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
bench() {
  "$TILL_BIN" bench --url "http://127.0.0.1:$port" --api-key "$key" --json \
    --scenario checkout "$@" 2>/dev/null
}
# The frames in a log so far: the wal-index header's mxFrame (offset 16 of the -shm file).
frames() { python3 -c 'import struct, sys; print(struct.unpack("<I", open(sys.argv[1], "rb").read(20)[16:20])[0])' "$1-shm"; }
settle() { sleep 1; }  # the simulator's webhooks and the relay catch up
bench --count 100 >/dev/null
settle
till0=$(frames "$db"); sim0=$(frames "$sim")
bench --count 0 >/dev/null
settle
till1=$(frames "$db"); sim1=$(frames "$sim")
confirmed=$(bench --count "$COUNT" | jq '.outcomes.confirmed // 0')
settle
till2=$(frames "$db"); sim2=$(frames "$sim")
kill -9 $pid
wait $pid 2>/dev/null || true
echo "$confirmed checkouts confirmed"
python3 bench/wal.py "$db" "$till0" "$till1" "$till2" "$confirmed"
python3 bench/wal.py "$sim" "$sim0" "$sim1" "$sim2" "$confirmed"
