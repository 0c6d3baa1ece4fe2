#!/usr/bin/env bash
# A broker restart mid-run (prints fleetstorm's report; asserts nothing; not part of CI).
#
#   bash scripts/broker-restart.sh        # builds fleetstorm, mosquitto on 65401
#
# Starts mosquitto, runs scenarios/broker-restart.yaml against it, kills the broker 15 s into the
# run and starts it again on the same port 5 s later. Needs mosquitto (apt-get install -y mosquitto).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-target}/release/fleetstorm
PORT=${PORT:-65401}
cargo build --release --quiet
command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || { echo "mosquitto is not installed: apt-get install -y mosquitto" >&2; exit 2; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

work=$(mktemp -d)
broker=""
cleanup() { [[ -n "$broker" ]] && kill "$broker" 2>/dev/null || true; }
trap cleanup EXIT
cat > "$work/m.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_connections -1
CONF
start_broker() {
  "$MOSQUITTO" -c "$work/m.conf" >> "$work/m.log" 2>&1 &
  broker=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return; sleep 0.1; done
  echo "mosquitto did not start on $PORT" >&2; cat "$work/m.log" >&2; exit 1
}
start_broker
"$BIN" run scenarios/broker-restart.yaml --broker "mqtt://127.0.0.1:$PORT" --no-progress --out "$work/report" &
run=$!
sleep 15
echo ">>> $(date -u +%T) killing the broker (pid $broker)" >&2
kill -9 "$broker"; wait "$broker" 2>/dev/null || true; broker=""
sleep 5
start_broker
echo ">>> $(date -u +%T) broker started again (pid $broker)" >&2
set +e
wait "$run"; rc=$?
set -e
echo ">>> fleetstorm exited with $rc; report in $work/report" >&2
