#!/usr/bin/env bash
# Where a checkout's CPU goes, by process: `till serve` (with its embedded simulator), the
# PostgreSQL server's processes, and the `till bench` client, over one run of checkouts (32
# in flight) after a warm-up. Figures are CPU milliseconds per confirmed checkout, from
# /proc (utime + stime), beside the run's wall time and the whole machine's busy time
# (/proc/stat). Run by hand, as root:
#   bench/cpu.sh sqlite|postgres [checkouts]
#   bench/cpu.sh raw      # the same for ../shared/bench/checkout.sql under pgbench (c8, 15 s)
# TILL_BIN=path measures another build. PIN="taskset -c 0" runs the server pinned to one core.
# Also prints each busy thread of the server: its CPU per checkout and how much of the run
# it was busy (SQLite's statements run on the tokio workers, `crates/sqlite-inline`), and on
# SQLite how long its one writer was held per checkout: the checkouts a second that can pass
# through it.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND="${1:?sqlite, postgres or raw}"
COUNT="${2:-2000}"
# Busy time of the whole machine, in clock ticks (user, nice, system, irq, softirq).
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
if [ "$BACKEND" = raw ]; then
  export PGOPTIONS='-c client_min_messages=warning'
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS till_cpu_raw" -c "CREATE DATABASE till_cpu_raw" 2>/dev/null
  psql -q -h 127.0.0.1 -U postgres till_cpu_raw -f ../shared/bench/schema.sql >/dev/null 2>&1
  m0=$(machine_ticks)
  /usr/bin/time -f "%U %S" -o /var/tmp/till-cpu-client.txt pgbench -n -M prepared -c 8 -j 2 -T 15 \
    -f ../shared/bench/checkout.sql -h 127.0.0.1 -U postgres till_cpu_raw >/var/tmp/till-cpu-raw.txt 2>/dev/null
  m1=$(machine_ticks)
  n=$(awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]}' /var/tmp/till-cpu-raw.txt)
  read -r client_user client_sys </var/tmp/till-cpu-client.txt
  echo "raw checkout.sql: $n checkouts, $(awk '/^tps/ {printf "%.0f", $3; exit}' /var/tmp/till-cpu-raw.txt)/s"
  echo "CPU ms per checkout: whole machine $(echo "($m1 - $m0) * 1000 / $(getconf CLK_TCK) / $n" | bc -l | xargs printf '%.2f'), pgbench $(echo "($client_user + $client_sys) * 1000 / $n" | bc -l | xargs printf '%.2f')"
  exit 0
fi
if [ -z "${TILL_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/till-target}"
  cargo build --release --quiet
  TILL_BIN="$CARGO_TARGET_DIR/release/till"
fi
export RUST_LOG=warn PGOPTIONS='-c client_min_messages=warning'
if [ "$BACKEND" = postgres ]; then
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS till_cpu" -c "CREATE DATABASE till_cpu" 2>/dev/null
  url="postgres://postgres@127.0.0.1:5432/till_cpu"
else
  rm -f /var/tmp/till-cpu.db /var/tmp/till-cpu.db-wal /var/tmp/till-cpu.db-shm /var/tmp/till-cpu.gateway-sim.db*
  url="sqlite:///var/tmp/till-cpu.db"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# shellcheck disable=SC2086 # PIN is a command prefix, split into words on purpose
TILL_API_KEY=$key TILL_DATABASE_URL=$url TILL_LISTEN=127.0.0.1:$port ${PIN:-} "$TILL_BIN" serve 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
bench() {
  "$TILL_BIN" bench --url "http://127.0.0.1:$port" --api-key "$key" --database-url "$url" --json \
    --scenario checkout "$@"
}
bench --count 200 >/dev/null 2>&1
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_ticks() {
  local total=0
  for p in $(pgrep -u postgres postgres || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
# Context switches of every thread of the server (a statement handed to a connection's thread
# and back would be two; a thread that ended during the run is not counted).
switches() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {printf "%d\n", n}'; }
# Each thread of the server: id, name, CPU ticks.
threads() { for t in /proc/"$1"/task/*; do echo "${t##*/} $(tr ' ' _ <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done | sort; }
# On SQLite, the time its one writer was held for write transactions (`/metrics`; 0 on
# PostgreSQL, which has no such writer).
writer_busy() {
  curl -s "http://127.0.0.1:$port/metrics" | awk '/^till_sqlite_writer_busy_seconds_total / {s = $2} END {print s + 0}'
}
threads $pid >/var/tmp/till-cpu-threads0
busy0=$(writer_busy)
serve0=$(ticks $pid); pg0=$(pg_ticks); sw0=$(switches $pid); m0=$(machine_ticks); started=$(date +%s.%N)
/usr/bin/time -f "%U %S" -o /var/tmp/till-cpu-client.txt "$TILL_BIN" bench --url "http://127.0.0.1:$port" \
  --api-key "$key" --database-url "$url" --json --scenario checkout --count "$COUNT" >/var/tmp/till-cpu-run.json 2>/dev/null
ended=$(date +%s.%N); serve1=$(ticks $pid); pg1=$(pg_ticks); sw1=$(switches $pid); m1=$(machine_ticks)
busy1=$(writer_busy)
threads $pid >/var/tmp/till-cpu-threads1
hz=$(getconf CLK_TCK)
read -r client_user client_sys </var/tmp/till-cpu-client.txt
confirmed=$(jq '.outcomes.confirmed // 0' /var/tmp/till-cpu-run.json)
per() { echo "$1 / $confirmed" | bc -l | xargs printf '%.2f'; }
echo "$BACKEND: $confirmed confirmed, $(jq .confirmed_per_sec /var/tmp/till-cpu-run.json | xargs printf '%.0f')/s"
echo "CPU ms per checkout: till serve $(per "($serve1 - $serve0) * 1000 / $hz"), postgres $(per "($pg1 - $pg0) * 1000 / $hz"), bench client $(per "($client_user + $client_sys) * 1000")"
echo "context switches per checkout, till serve: $(per "($sw1 - $sw0)")"
echo "wall ms per checkout: $(per "($ended - $started) * 1000") (on $(nproc) cores: $(per "($ended - $started) * 1000 * $(nproc)") core-ms, of which busy: $(per "($m1 - $m0) * 1000 / $hz"))"
if [ "$BACKEND" = sqlite ] && [ "$(echo "$busy1 > $busy0" | bc -l)" = 1 ]; then
  # Every write transaction waits its turn for the one writer, so checkouts cannot go through
  # faster than one per writer-held time.
  held=$(echo "$busy1 - $busy0" | bc -l)
  echo "SQLite's writer held: $(per "$held * 1000") ms per checkout, $(echo "$held * 100 / $(jq .elapsed_secs /var/tmp/till-cpu-run.json)" | bc -l | xargs printf '%.0f')% of the timed run; at most $(echo "$confirmed / $held" | bc -l | xargs printf '%.0f') checkouts/s through it"
fi
echo "the server's busy threads: CPU ms per checkout, and the share of the run each was busy"
join /var/tmp/till-cpu-threads0 /var/tmp/till-cpu-threads1 |
  awk -v hz="$hz" -v n="$confirmed" -v wall="$(echo "$ended - $started" | bc -l)" '
    { ms = ($5 - $3) * 1000 / hz; if (ms >= 10) printf "  %-18s %6.3f ms  %5.1f%%\n", $2 " " $1, ms / n, ms / (wall * 10) }'
