#!/usr/bin/env bash
# One million devices on this machine (prints figures, asserts nothing; not part of CI).
#
#   bash scripts/million.sh                 # 1,000,000 devices, 60 mosquitto brokers on 65301-65360
#   DEVICES=200000 BROKERS=12 bash scripts/million.sh    # a smaller run of the same shape
#
# Starts a farm of local mosquitto brokers (each broker process is bound by the open-file limit too,
# so one per ~16,700 devices), writes the scenario (scenarios/million.yaml with the broker list
# filled in), runs `fleetstorm doctor` on it, then the run with `--workers auto` (one worker process
# per ~19,900 devices) and automatic loopback source addresses, and prints: time to all connected,
# client RSS over all processes per device, brokers' RSS, machine memory used, client CPU per
# message, e2e p99 and loss. Stops every process it started (by PID) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${DEVICES:-1000000}
BROKERS=${BROKERS:-60}
FIRST_PORT=${FIRST_PORT:-65301}
CONNECT_RATE=${CONNECT_RATE:-6000}
STEADY_S=${STEADY_S:-90}
BIN=${CARGO_TARGET_DIR:-target}/release/fleetstorm
command -v mosquitto >/dev/null || { echo "mosquitto is not installed: apt-get install -y mosquitto" >&2; exit 2; }
cargo build --release --quiet

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
mem_used_kib() { awk '/MemTotal/ {t=$2} /MemAvailable/ {a=$2} END {print t - a}' /proc/meminfo; }
mem_before=$(mem_used_kib)

ports=()
for i in $(seq 0 $((BROKERS - 1))); do
  port=$((FIRST_PORT + i))
  ports+=("$port")
  cat > "$work/m$port.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
max_queued_messages 100000
set_tcp_nodelay true
CONF
  mosquitto -c "$work/m$port.conf" > "$work/m$port.log" 2>&1 &
  pids+=($!)
done
broker_pids=("${pids[@]}")
for port in "${ports[@]}"; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done

# the shipped scenario with this farm's broker list and size
python3 - "$DEVICES" "$CONNECT_RATE" "$STEADY_S" "${ports[@]}" > "$work/million.yaml" <<'PY'
import sys, re
devices, rate, steady = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ports = sys.argv[4:]
text = open("scenarios/million.yaml").read()
urls = "".join(f"    - mqtt://127.0.0.1:{p}\n" for p in ports)
text = re.sub(r"  urls:\n(    - .*\n)+", "  urls:\n" + urls, text)
meters = devices * 6 // 10
text = text.replace("count: 600000", f"count: {meters}").replace("count: 400000", f"count: {devices - meters}")
text = text.replace("connect_rate: 6000/s", f"connect_rate: {rate}/s").replace("duration: 90s", f"duration: {steady}s")
print(text, end="")
PY

echo "== doctor =="
"$BIN" doctor "$work/million.yaml" || true

# RSS (KiB) and CPU ticks of a process and its children
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
broker_rss() {
  local rss=0
  for p in "${broker_pids[@]}"; do
    [ -r /proc/$p/status ] && rss=$((rss + $(awk '/VmRSS/ {print $2}' /proc/$p/status)))
  done
  echo "$rss"
}

"$BIN" run "$work/million.yaml" --workers auto --no-progress --out "$work/report" > "$work/run.log" 2>&1 &
run=$!
pids+=($run)
# sample over the middle third of the steady phase (the ramp ends ~1 s after its formula's length)
ramp_s=$((DEVICES / CONNECT_RATE))
window=$((STEADY_S / 3))
sleep $((ramp_s + 2 + window))
read -r rss1 ticks1 < <(sample $run)
brss=$(broker_rss)
mem_steady=$(mem_used_kib)
sleep "$window"
read -r rss2 ticks2 < <(sample $run)
status=0
wait $run || status=$?
echo "fleetstorm exited with $status"
tail -n 30 "$work/run.log"

python3 - "$work/report/report.json" "$rss1" "$rss2" "$ticks1" "$ticks2" "$brss" "$mem_before" "$mem_steady" "$BROKERS" "$window" <<'PY'
import json, sys, os
r = json.load(open(sys.argv[1]))
rss1, rss2, t1, t2, brss, mem0, mem1, brokers, window = map(int, sys.argv[2:12])
hz = os.sysconf("SC_CLK_TCK")
devices = sum(g["count"] for g in r["scenario"]["groups"])
peak = r["summary"]["devices_connected_peak"]
ramp = r["phases"][0]
steady = [p for p in r["phases"] if p["name"].startswith("steady")][-1]
# time to all connected: from the ramp's start to the first second with every device connected
t0 = ramp.get("start_s", 0)
full = next((p["t_s"] for p in r["series"] if p["connected"] >= devices), None)
c = steady["totals"]["counters"]
rate = c["published"] / steady["duration_s"]
cpu_s = (t2 - t1) / hz
rss = max(rss1, rss2)
e2e = steady["totals"]["latency"].get("e2e", {}).get("corrected", {})
d = steady["totals"]["deliveries"]
print()
print("== million ==")
print(f"devices                   {devices:,} over {brokers} mosquitto brokers; peak connected {peak:,}")
print(f"time to all connected     " + (f"{full - t0:.0f} s" if full is not None else "never (see connect errors)"))
print(f"client RSS (all procs)    {rss/1024:,.0f} MiB = {rss*1024/max(peak,1)/1000:.2f} KB per device (all costs: workers' runtimes, histograms, observers)")
print(f"brokers' RSS              {brss/1024:,.0f} MiB = {brss*1024/max(peak,1)/1000:.2f} KB per connection")
print(f"machine memory used       {(mem1-mem0)/1024/1024:.2f} GiB more than before the brokers started (incl. kernel socket memory)")
print(f"client CPU (steady, {window} s) {cpu_s:.2f} s = {cpu_s*1e6/max(rate*window,1):.1f} µs per message (incl. keep-alives and the observers)")
print(f"publishes/s (steady)      {rate:,.0f}")
print(f"e2e p99 (corrected)       {e2e.get('p99_us', 0)/1000:.2f} ms (p50 {e2e.get('p50_us', 0)/1000:.2f} ms)")
print(f"deliveries (steady)       expected {d['expected']:,}, received {d['received']:,}, lost {d['lost']:,}")
print(f"outcome                   {r['outcome']['status']}")
PY
