# Shared by tests/sdk/run.sh, tests/fuzz/run.sh and tests/browser/run.sh (sourced, after
# they define `fail`): a pinned Python venv, a free port, one background server, and a
# scratch directory and PostgreSQL database that are removed however the script ends.

# venv_install VENV REQUIREMENTS WHAT: creates the venv once (reused between runs) and
# installs the pinned requirements into it, or fails naming WHAT.
venv_install() {
  local venv=$1 requirements=$2 what=$3
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || fail "cannot create the Python venv at $venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" \
    || fail "pip install of the pinned $what failed"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

SERVER_PID=""
# Stops the server started in the background (its pid in SERVER_PID), if any.
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=""
}

# scratch NAME: sets WORK (a new directory under /var/tmp) and PG_DB (a database name for
# this run, created by the caller) and removes both, and stops the server, on exit.
scratch() {
  WORK=$(mktemp -d "/var/tmp/till-$1.XXXXXX")
  PG_DB="till_$1_$$"
  trap 'stop_server; psql "$PG_URL/postgres" -q -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
}
