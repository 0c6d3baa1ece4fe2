#!/usr/bin/env bash
# Benchmark: 100,000 devices on this machine (prints figures, asserts nothing; not part of CI).
#
#   bash scripts/scale-100k.sh            # builds fleetstorm, starts 6 mosquitto on 65101-65106
#
# Prints: devices connected, connect rate, total client RSS and RSS per device, client CPU,
# publishes/s, e2e p99. Needs mosquitto (apt-get install -y mosquitto).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-target}/release/fleetstorm
cargo build --release --quiet
command -v mosquitto >/dev/null || { echo "mosquitto is not installed: apt-get install -y mosquitto" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for port in 65101 65102 65103 65104 65105 65106; do
  cat > "$work/m$port.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
max_queued_messages 100000
CONF
  mosquitto -c "$work/m$port.conf" > "$work/m$port.log" 2>&1 &
  pids+=($!)
done
for port in 65101 65102 65103 65104 65105 65106; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done

# RSS (KiB) and CPU ticks of fleetstorm and all its worker processes
tree_pids() { echo "$1"; pgrep -P "$1" || true; }
sample() {
  local rss=0 ticks=0
  for p in $(tree_pids "$1"); do
    [ -r /proc/$p/status ] || continue
    rss=$((rss + $(awk '/VmRSS/ {print $2}' /proc/$p/status)))
    ticks=$((ticks + $(awk '{print $14 + $15}' /proc/$p/stat)))
  done
  echo "$rss $ticks"
}

"$BIN" run scenarios/scale-100k.yaml --workers auto --no-progress --out "$work/report" > "$work/run.log" 2>&1 &
run=$!
start=$(date +%s.%N)
# ramp: 100,000 at 2000/s = 50 s after a 1.5 s lead; sample 20 s into the steady phase
sleep 72
read -r rss1 ticks1 < <(sample $run)
sleep 20
read -r rss2 ticks2 < <(sample $run)
wait $run || echo "fleetstorm exited with $?"
end=$(date +%s.%N)
tail -n 40 "$work/run.log"

python3 - "$work/report/report.json" "$rss1" "$rss2" "$ticks1" "$ticks2" <<'PY'
import json, sys, os
r = json.load(open(sys.argv[1]))
rss1, rss2, t1, t2 = map(int, sys.argv[2:6])
hz = os.sysconf("SC_CLK_TCK")
steady = [p for p in r["phases"] if p["name"].startswith("steady")][-1]
ramp = r["phases"][0]
c = steady["totals"]["counters"]
devices = r["summary"]["devices_connected_peak"]
e2e = steady["totals"]["latency"].get("e2e", {}).get("corrected", {})
rate = c["published"] / steady["duration_s"]
cpu_s = (t2 - t1) / hz
msgs_20s = rate * 20
print()
print("== scale-100k ==")
print(f"devices connected      {devices}")
print(f"connect rate           {ramp['totals']['counters']['connect_successes'] / ramp['duration_s']:.0f}/s over the ramp ({ramp['duration_s']:.1f} s)")
print(f"client RSS (all procs) {rss2/1024:.1f} MiB  = {rss2*1024/max(devices,1)/1000:.2f} KB per device")
print(f"client CPU (steady)    {cpu_s:.2f} s over 20 s = {cpu_s/20*100:.1f}% of one core; {cpu_s*1e6/max(msgs_20s,1):.1f} µs per message")
print(f"publishes/s (steady)   {rate:.0f}")
print(f"e2e p99 (corrected)    {e2e.get('p99_us', 0)/1000:.2f} ms (p50 {e2e.get('p50_us', 0)/1000:.2f} ms)")
d = steady["totals"]["deliveries"]
print(f"deliveries (steady)    expected {d['expected']}, received {d['received']}, lost {d['lost']}")
print(f"outcome                {r['outcome']['status']}")
PY
