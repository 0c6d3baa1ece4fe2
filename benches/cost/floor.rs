//! The floor (issue 16): what the kernel itself costs to send fleetstorm's bytes, measured in the same run
//! as fleetstorm so that every CPU figure is a ratio to it (noise hits both alike).
//!
//! The floor is this bench binary re-executed with `FLEETSTORM_COST_FLOOR=<spec>`: one thread, blocking
//! TCP sockets with `TCP_NODELAY`, one CONNECT per device (the scenario's client ids), then one `write()`
//! per PUBLISH. The PUBLISH packets are fleetstorm's own: made before the measured window by the library's
//! encoder (`DeviceTelemetry::encode_json` for each device of the scenario's group, seed and profile, then
//! `codec::encode_publish` with the group's topic), `PACKETS_PER_DEVICE` per device, written in turn. At
//! QoS 1 the packet id is patched in place and the PUBACKs are read back (epoll, level-triggered, one
//! `recv` per ready socket), at most `max_inflight` unacknowledged per connection, as fleetstorm.
//!
//! Pacing: message `k` is due at `start + k / rate`, device `k mod N`; the loop wakes on 1 ms ticks
//! (tokio's timer granularity, which fleetstorm pays too) and writes everything due. Saturated: writes
//! round-robin as fast as blocking writes go, and cost is per message the broker received.
//!
//! Both programs are measured by the same code: `/proc/<pid>/stat` sampled every 20 ms, CPU taken over
//! the measured window (fleetstorm: its steady phase; the floor: the window it reports, after the same
//! warm-up), and mosquitto's `$SYS` counters (`sys_interval 1`) read by a subscriber for the messages and
//! bytes the broker received in the window. Floor and fleetstorm alternate on one broker per case.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetstorm::metrics::Counter;
use fleetstorm::mqtt::codec::{self, ConnectOptions};
use fleetstorm::mqtt::Qos;
use fleetstorm::scenario::template::TemplateVars;
use fleetstorm::telemetry::DeviceTelemetry;

use super::{interpolate, now_us, phase, run_fleetstorm_on, sample, Bench, Broker, Sample};
use super::{Wire, SAMPLE_EVERY};

/// The env var that turns this bench binary into the floor program.
const FLOOR_ENV: &str = "FLEETSTORM_COST_FLOOR";
const WARM_S: u64 = 2;
const STEADY_S: u64 = 10;
const ROTATIONS: usize = 3;
const TICK_US: u64 = 1_000;
/// Pre-encoded PUBLISH packets per device (sent in turn; sizes vary by a byte or two with seq and value).
const PACKETS_PER_DEVICE: u64 = 64;

/// One compared case.
#[derive(Clone, Copy)]
struct Case {
    label: &'static str,
    key: &'static str,
    qos: u8,
    devices: u64,
    interval: &'static str,
    interval_us: u64,
    saturated: bool,
}

const CASES: [Case; 3] = [
    Case {
        label: "QoS 0 paced",
        key: "q0-paced",
        qos: 0,
        devices: 100,
        interval: "1ms",
        interval_us: 1_000,
        saturated: false,
    },
    Case {
        label: "QoS 0 saturated",
        key: "q0-sat",
        qos: 0,
        devices: 1_000,
        interval: "1ms",
        interval_us: 1_000,
        saturated: true,
    },
    Case {
        label: "QoS 1 paced",
        key: "q1-paced",
        qos: 1,
        devices: 100,
        interval: "2ms",
        interval_us: 2_000,
        saturated: false,
    },
];

impl Case {
    fn rate(&self) -> f64 {
        self.devices as f64 * 1e6 / self.interval_us as f64
    }

    /// ~90-byte JSON payloads: one metric.
    fn scenario(&self) -> String {
        format!(
            "version: 1\nname: floor-{key}\nseed: 42\n\
             broker:\n  keep_alive: 60s\n  max_connecting: 100\n\
             profiles:\n  - name: floor\n    metrics:\n      - {{ name: temp_c, model: walk, mean: 21, sd: 0.5, \
             tau: 10s, decimals: 1 }}\n\
             groups:\n  - name: bench\n    count: {n}\n    profile: floor\n    interval: {iv}\n    qos: {q}\n\
             phases:\n  - name: ramp\n    ramp: {{ connect_rate: 2000/s }}\n  \
             - name: warm\n    steady: {{ duration: {WARM_S}s }}\n  \
             - name: steady\n    steady: {{ duration: {STEADY_S}s }}\n",
            key = self.key,
            n = self.devices,
            iv = self.interval,
            q = self.qos
        )
    }
}

/// What one run of either program cost over its measured window.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    /// µs of CPU per message (= CPU-s per million messages).
    user: f64,
    sys: f64,
    /// Messages the cost is divided by (sent in the window; saturated: received by the broker).
    msgs: f64,
    /// Per second over the window.
    rate: f64,
    /// Bytes per PUBLISH the broker received in the window (`$SYS`).
    bytes_per_msg: Option<f64>,
}

impl Cost {
    fn total(&self) -> f64 {
        self.user + self.sys
    }
}

/// The floor section: every case, `ROTATIONS` times floor then fleetstorm, one table.
pub(crate) fn floor(bench: &Bench, rows: &mut Vec<(String, String)>) {
    println!();
    println!(
        "== floor: fleetstorm vs one write() per pre-encoded PUBLISH (same broker, connections, bytes, \
         pacing; {ROTATIONS} rotations, fleetstorm then the floor with its bytes/msg; warm-up {WARM_S} s, window {STEADY_S} s) =="
    );
    let mut table = Vec::new();
    for case in CASES {
        match floor_case(bench, case) {
            Ok(r) => table.push((case, r)),
            Err(e) => println!("  {}: failed: {e}", case.label),
        }
    }
    println!();
    println!(
        "  {:<16} {:>22} {:>22} {:>7} {:>16}   per-rotation ratios",
        "case", "floor CPU-s/M u+s", "fleetstorm CPU-s/M u+s", "ratio", "bytes/msg fl/fs"
    );
    for (case, (fl, fs)) in &table {
        let (f, s) = (median(fl, Cost::total), median(fs, Cost::total));
        let ratio = s / f.max(1e-9);
        let per_rot: Vec<String> = fl
            .iter()
            .zip(fs)
            .map(|(a, b)| format!("{:.2}", b.total() / a.total().max(1e-9)))
            .collect();
        let bytes = |v: &[Cost]| median_opt(v, |c| c.bytes_per_msg);
        println!(
            "  {:<16} {:>22} {:>22} {:>6.2}x {:>16}   {}",
            case.label,
            format!(
                "{f:.2} ({:.2}+{:.2})",
                median(fl, |c| c.user),
                median(fl, |c| c.sys)
            ),
            format!(
                "{s:.2} ({:.2}+{:.2})",
                median(fs, |c| c.user),
                median(fs, |c| c.sys)
            ),
            ratio,
            format!("{} / {}", fmt_opt(bytes(fl)), fmt_opt(bytes(fs))),
            per_rot.join(" ")
        );
        rows.push((
            format!("floor {}: CPU-s per M msg floor / fleetstorm", case.label),
            format!("{f:.2} / {s:.2} = {ratio:.2}x"),
        ));
    }
    println!(
        "  (CPU-s per million messages = µs per message, user+sys (user+sys in brackets), medians; \
         saturated: per message the broker received; bytes/msg: PUBLISH bytes the broker received, $SYS)"
    );
}

fn median(v: &[Cost], f: impl Fn(&Cost) -> f64) -> f64 {
    let mut x: Vec<f64> = v.iter().map(f).collect();
    x.sort_by(f64::total_cmp);
    x.get(x.len() / 2).copied().unwrap_or(f64::NAN)
}

fn median_opt(v: &[Cost], f: impl Fn(&Cost) -> Option<f64>) -> Option<f64> {
    let mut x: Vec<f64> = v.iter().filter_map(f).collect();
    x.sort_by(f64::total_cmp);
    x.get(x.len() / 2).copied()
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("?".into(), |b| format!("{b:.1}"))
}

type Pair = (Vec<Cost>, Vec<Cost>);

fn floor_case(bench: &Bench, case: Case) -> Result<Pair, String> {
    println!();
    println!(
        "  -- {}: {} connections, target {:.0} msg/s{} --",
        case.label,
        case.devices,
        case.rate(),
        if case.saturated {
            " (beyond capacity)"
        } else {
            ""
        }
    );
    let broker = Broker::start(bench, &format!("floor-{}", case.key), Wire::Plain)?;
    let sys = SysReader::start(broker.port)?;
    let yaml = case.scenario();
    let dir = bench.work.join(format!("floor-{}", case.key));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let scenario_path = dir.join("floor-scenario.yaml");
    std::fs::write(&scenario_path, &yaml).map_err(|e| format!("{e}"))?;
    let (mut fl, mut fs) = (Vec::new(), Vec::new());
    for r in 0..ROTATIONS {
        let name = format!("floor-{}-fleetstorm-{r}", case.key);
        let b = fleetstorm_cost(bench, case, &broker, &sys, &name, &yaml)?;
        print_cost(&format!("rotation {} fleetstorm", r + 1), &b);
        let a = run_floor(bench, case, &broker, &sys, &scenario_path, b.bytes_per_msg)?;
        print_cost(&format!("rotation {} floor     ", r + 1), &a);
        fs.push(b);
        fl.push(a);
    }
    sys.stop();
    Ok((fl, fs))
}

fn print_cost(label: &str, c: &Cost) {
    println!(
        "    {label}: {:.0} msgs, {:.0} msg/s, user {:.3} + sys {:.3} = {:.3} µs/msg, {} bytes/msg at the broker",
        c.msgs,
        c.rate,
        c.user,
        c.sys,
        c.total(),
        fmt_opt(c.bytes_per_msg)
    );
}

/// CPU of `samples` over `[a_us, b_us]` in µs: (user, sys).
fn cpu_over(bench: &Bench, samples: &[Sample], a_us: u64, b_us: u64) -> Result<(f64, f64), String> {
    let ticks = |f: fn(&Sample) -> u64| {
        let at = |t| interpolate(samples, t, |s| f(s) as f64);
        Some((at(b_us)? - at(a_us)?) * 1e6 / bench.clk_tck)
    };
    let user = ticks(|s| s.utime_ticks).ok_or("no CPU samples over the window")?;
    let sys = ticks(|s| s.stime_ticks).ok_or("no CPU samples over the window")?;
    Ok((user, sys))
}

/// Turn a window's CPU and counts into per-message figures.
fn cost(
    case: Case,
    (user, sys): (f64, f64),
    sent: u64,
    window: (u64, u64),
    broker: Option<(f64, f64)>,
) -> Cost {
    let msgs = match (case.saturated, broker) {
        (true, Some((m, _))) => m,
        _ => sent as f64,
    }
    .max(1.0);
    Cost {
        user: user / msgs,
        sys: sys / msgs,
        msgs,
        rate: msgs / ((window.1 - window.0) as f64 / 1e6).max(1e-9),
        bytes_per_msg: broker.map(|(m, b)| b / m.max(1.0)),
    }
}

fn fleetstorm_cost(
    bench: &Bench,
    case: Case,
    broker: &Broker,
    sys: &SysReader,
    name: &str,
    yaml: &str,
) -> Result<Cost, String> {
    let run = run_fleetstorm_on(bench, name, yaml, broker, "")?;
    let steady = phase(&run.report, "steady")?;
    let c = &steady.totals.counters;
    if c.get(Counter::Overrun) > 0 && !case.saturated {
        println!(
            "    note: fleetstorm overran {} slots (late sends; the machine is busy)",
            c.get(Counter::Overrun)
        );
    }
    let window = (steady.start_us, steady.end_us);
    let cpu = cpu_over(bench, &run.client, window.0, window.1)?;
    Ok(cost(
        case,
        cpu,
        c.get(Counter::Published),
        window,
        sys.window(window.0, window.1),
    ))
}

fn run_floor(
    bench: &Bench,
    case: Case,
    broker: &Broker,
    sys: &SysReader,
    scenario: &std::path::Path,
    bytes_per_msg: Option<f64>,
) -> Result<Cost, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let spec = format!(
        "{};{};{:.2};{}",
        broker.port,
        u8::from(case.saturated),
        bytes_per_msg.unwrap_or(0.0),
        scenario.display()
    );
    let mut child = Command::new(exe)
        .env(FLOOR_ENV, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn the floor: {e}"))?;
    let pid = child.id();
    let mut samples = Vec::new();
    let mut next = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break s;
        }
        if let Some(s) = sample(pid) {
            samples.push(s);
        }
        next += SAMPLE_EVERY;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("window "))
        .ok_or_else(|| format!("the floor exited with {status} and reported no window: {out}"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [a, b, sent, acked] = v[..] else {
        return Err(format!("bad floor report `{line}`"));
    };
    if case.qos > 0 {
        println!("    floor: sent {sent}, PUBACKs read {acked} in the window");
    }
    let cpu = cpu_over(bench, &samples, a, b)?;
    Ok(cost(case, cpu, sent, (a, b), sys.window(a, b)))
}

// ---------------------------------------------------------------------------------------------------
// $SYS: the broker's counters of PUBLISH messages and bytes received, each reading stamped on arrival.

const SYS_MSGS: &str = "$SYS/broker/publish/messages/received";
const SYS_BYTES: &str = "$SYS/broker/bytes/received";

struct SysReader {
    stop: Arc<AtomicBool>,
    /// (at_us, count) in `utime_ticks`; messages and bytes.
    readings: Arc<Mutex<(Vec<Sample>, Vec<Sample>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SysReader {
    fn start(port: u16) -> Result<SysReader, String> {
        let mut s = connect(port, "fleetstorm-bench-sys").map_err(|e| format!("$SYS: {e}"))?;
        let filters = [SYS_MSGS, SYS_BYTES].map(|t| (t.to_owned(), Qos::AtMostOnce));
        let sub = codec::encode_subscribe(fleetstorm::mqtt::MqttVersion::V311, 1, &filters)
            .map_err(|e| e.to_string())?;
        s.write_all(&sub)
            .map_err(|e| format!("$SYS subscribe: {e}"))?;
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let readings = Arc::new(Mutex::new((Vec::new(), Vec::new())));
        let (st, rd) = (Arc::clone(&stop), Arc::clone(&readings));
        let thread = std::thread::spawn(move || sys_loop(s, &st, &rd));
        Ok(SysReader {
            stop,
            readings,
            thread: Some(thread),
        })
    }

    /// (messages, bytes) the broker received over `[a_us, b_us]`.
    fn window(&self, a_us: u64, b_us: u64) -> Option<(f64, f64)> {
        // Readings come every second; wait for one after the window's end.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let r = self.readings.lock().ok()?;
            let (m, b) = (&r.0, &r.1);
            let later = |v: &[Sample]| v.last().is_some_and(|s| s.at_us > b_us);
            if later(m) && later(b) {
                let d = |v: &[Sample]| {
                    let f = |s: &Sample| s.utime_ticks as f64;
                    Some(interpolate(v, b_us, f)? - interpolate(v, a_us, f)?)
                };
                return d(m).zip(d(b));
            }
            drop(r);
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Readings = Mutex<(Vec<Sample>, Vec<Sample>)>;

fn sys_loop(mut s: TcpStream, stop: &AtomicBool, readings: &Readings) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue,
        }
        let at_us = now_us();
        while let Some((len, header)) = packet_len(&buf) {
            if buf.len() < len {
                break;
            }
            if buf[0] >> 4 == 3 && len >= header + 2 {
                let body = &buf[header..len];
                let tl = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let topic = body.get(2..2 + tl).unwrap_or_default();
                let value = body
                    .get(2 + tl..)
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .and_then(|p| p.trim().parse::<u64>().ok());
                if let (Some(v), Ok(mut r)) = (value, readings.lock()) {
                    let reading = Sample {
                        at_us,
                        utime_ticks: v,
                        stime_ticks: 0,
                        rss_kb: 0,
                        hwm_kb: 0,
                    };
                    if topic == SYS_MSGS.as_bytes() {
                        r.0.push(reading);
                    } else if topic == SYS_BYTES.as_bytes() {
                        r.1.push(reading);
                    }
                }
            }
            buf.drain(..len);
        }
    }
}

/// (whole packet length, fixed header length) once the remaining length is complete.
fn packet_len(buf: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((2 + i + len, 2 + i));
        }
    }
    None
}

/// A blocking MQTT 3.1.1 connection with `TCP_NODELAY`, CONNACK read.
fn connect(port: u16, client_id: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let connect = codec::encode_connect(&ConnectOptions {
        version: fleetstorm::mqtt::MqttVersion::V311,
        client_id: client_id.to_owned(),
        keep_alive_s: 60,
        clean_session: true,
        username: None,
        password: None,
        will: None,
        session_expiry_s: None,
    })
    .map_err(|e| e.to_string())?;
    s.write_all(&connect).map_err(|e| format!("CONNECT: {e}"))?;
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack)
        .map_err(|e| format!("CONNACK: {e}"))?;
    if connack[0] != 0x20 || connack[3] != 0 {
        return Err(format!("refused: CONNACK {connack:?}"));
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------------
// The floor program (the child).

/// When this process was started as the floor program: run it and return true.
pub(crate) fn run_as_floor_child() -> bool {
    let Ok(spec) = std::env::var(FLOOR_ENV) else {
        return false;
    };
    if let Err(e) = floor_child(&spec) {
        eprintln!("floor: {e}");
        std::process::exit(3);
    }
    true
}

/// One connection's pre-encoded packets and its QoS 1 window.
struct Conn {
    stream: TcpStream,
    packets: Vec<Vec<u8>>,
    /// Where the packet id sits in each packet (QoS 1).
    pkid_at: Vec<usize>,
    next_pkid: u16,
    unacked: u32,
    /// Bytes of a PUBACK read in part.
    partial: usize,
}

fn floor_child(spec: &str) -> Result<(), String> {
    let parts: Vec<&str> = spec.splitn(4, ';').collect();
    let [port, saturated, bytes_per_msg, path] = parts[..] else {
        return Err(format!("bad spec `{spec}`"));
    };
    let port: u16 = port.parse().map_err(|e| format!("port: {e}"))?;
    let saturated = saturated == "1";
    let target_bytes: f64 = bytes_per_msg.parse().map_err(|e| format!("bytes: {e}"))?;
    let scenario =
        fleetstorm::scenario::load(std::path::Path::new(path)).map_err(|e| e.to_string())?;
    let group = scenario.groups.first().ok_or("no group")?;
    let version = scenario.broker.protocol;
    let interval_us = u64::try_from(group.interval.as_micros())
        .unwrap_or(1)
        .max(1);
    let n = u64::from(group.count);
    let qos = group.qos;
    let max_inflight = u32::from(group.max_inflight);
    let t0 = now_us();
    // fleetstorm's payload carries `"sent_us"` when a message goes out after its intended time: match
    // the bytes per message of the fleetstorm run before this one with that share of such packets.
    let late = late_share(&scenario, t0, interval_us, target_bytes)?;

    let mut conns = Vec::new();
    for i in 0..n {
        let vars = TemplateVars {
            group: &group.name,
            index: i,
            global_index: i,
            client_id: "",
        };
        let client_id = scenario.broker.client_id.render(&vars);
        let topic = group.topic.render(&TemplateVars {
            client_id: &client_id,
            ..vars
        });
        let topic = codec::encode_topic(&topic).map_err(|e| e.to_string())?;
        let mut telemetry = DeviceTelemetry::new(&group.profile, scenario.seed, i);
        let (mut packets, mut pkid_at) = (Vec::new(), Vec::new());
        let mut payload = Vec::new();
        for seq in 0..PACKETS_PER_DEVICE {
            payload.clear();
            let intended = t0 + seq * interval_us;
            // The first `late` packets carry `sent_us` as fleetstorm's late sends do.
            let sent = if seq < late { intended + 1 } else { intended };
            telemetry.encode_json_sent(&client_id, seq, intended, sent, &mut payload);
            let mut p = Vec::new();
            codec::encode_publish(&mut p, version, &topic, qos, false, false, 1, &payload);
            let props = usize::from(version == fleetstorm::mqtt::MqttVersion::V5);
            let pk = if qos == Qos::AtMostOnce { 0 } else { 2 };
            pkid_at.push(p.len() - payload.len() - props - pk);
            packets.push(p);
        }
        let stream = connect(port, &client_id)?;
        conns.push(Conn {
            stream,
            packets,
            pkid_at,
            next_pkid: 1,
            unacked: 0,
            partial: 0,
        });
    }
    let mut floor = Floor {
        conns,
        k: 0,
        acked: 0,
        qos1: qos != Qos::AtMostOnce,
        max_inflight,
        epoll: -1,
    };
    if floor.qos1 {
        floor.epoll_setup()?;
    }
    let start = Instant::now();
    let per_msg_ns = interval_us as f64 * 1000.0 / n as f64;
    let warm_end = Duration::from_secs(WARM_S);
    let end = warm_end + Duration::from_secs(STEADY_S);
    let mut window: Option<(u64, u64, u64)> = None;
    loop {
        let now = start.elapsed();
        if window.is_none() && now >= warm_end {
            window = Some((now_us(), floor.k, floor.acked));
        }
        if now >= end {
            break;
        }
        if saturated {
            for _ in 0..1024 {
                floor.send()?;
            }
            continue;
        }
        let now_ns = now.as_nanos() as f64;
        while (floor.k as f64) * per_msg_ns <= now_ns {
            floor.send()?;
        }
        // The next 1 ms tick at or after the next message's due time.
        let due_ns = (floor.k as f64 * per_msg_ns) as u64;
        let tick_ns = TICK_US * 1000;
        let wake = Duration::from_nanos(due_ns.div_ceil(tick_ns) * tick_ns);
        floor.wait(wake.saturating_sub(start.elapsed()))?;
    }
    let b = now_us();
    let (a, k0, acked0) = window.ok_or("no window")?;
    println!("window {a} {b} {} {}", floor.k - k0, floor.acked - acked0);
    for c in &mut floor.conns {
        let _ = c.stream.write_all(&codec::DISCONNECT);
    }
    Ok(())
}

/// How many of a device's `PACKETS_PER_DEVICE` packets carry `sent_us` so that the average PUBLISH is
/// `target_bytes` long (0: no target).
fn late_share(
    scenario: &fleetstorm::scenario::Scenario,
    t0: u64,
    interval_us: u64,
    target_bytes: f64,
) -> Result<u64, String> {
    if target_bytes <= 0.0 {
        return Ok(0);
    }
    let group = scenario.groups.first().ok_or("no group")?;
    let n = u64::from(group.count);
    let (mut plain, mut late) = (0usize, 0usize);
    let mut payload = Vec::new();
    for i in 0..n {
        let vars = TemplateVars {
            group: &group.name,
            index: i,
            global_index: i,
            client_id: "",
        };
        let client_id = scenario.broker.client_id.render(&vars);
        let topic = group.topic.render(&TemplateVars {
            client_id: &client_id,
            ..vars
        });
        let topic = codec::encode_topic(&topic).map_err(|e| e.to_string())?;
        for sent_after in [0, 1] {
            let mut telemetry = DeviceTelemetry::new(&group.profile, scenario.seed, i);
            for seq in 0..PACKETS_PER_DEVICE {
                payload.clear();
                let at = t0 + seq * interval_us;
                telemetry.encode_json_sent(&client_id, seq, at, at + sent_after, &mut payload);
                let mut p = Vec::new();
                let version = scenario.broker.protocol;
                codec::encode_publish(
                    &mut p, version, &topic, group.qos, false, false, 1, &payload,
                );
                if sent_after == 0 {
                    plain += p.len();
                } else {
                    late += p.len();
                }
            }
        }
    }
    let per = (n * PACKETS_PER_DEVICE) as f64;
    let (plain, late) = (plain as f64 / per, late as f64 / per);
    let share = ((target_bytes - plain) / (late - plain).max(1.0)).clamp(0.0, 1.0);
    Ok((share * PACKETS_PER_DEVICE as f64).round() as u64)
}

struct Floor {
    conns: Vec<Conn>,
    /// Messages written so far; message `k` goes to connection `k mod N`.
    k: u64,
    acked: u64,
    qos1: bool,
    max_inflight: u32,
    epoll: i32,
}

impl Floor {
    fn send(&mut self) -> Result<(), String> {
        let n = self.conns.len() as u64;
        let c = (self.k % n) as usize;
        let round = self.k / n;
        if self.qos1 {
            while self.conns[c].unacked >= self.max_inflight {
                self.read_acks(c, true)?;
            }
        }
        let conn = &mut self.conns[c];
        let i = (round % PACKETS_PER_DEVICE) as usize;
        if self.qos1 {
            let at = conn.pkid_at[i];
            conn.packets[i][at..at + 2].copy_from_slice(&conn.next_pkid.to_be_bytes());
            conn.next_pkid = conn.next_pkid.checked_add(1).unwrap_or(1);
            conn.unacked += 1;
        }
        conn.stream
            .write_all(&conn.packets[i])
            .map_err(|e| format!("write: {e}"))?;
        self.k += 1;
        Ok(())
    }

    /// One `recv` on connection `c`; PUBACKs are 4 bytes (MQTT 3.1.1).
    fn read_acks(&mut self, c: usize, block: bool) -> Result<(), String> {
        let conn = &mut self.conns[c];
        let mut buf = [0u8; 4096];
        let flags = if block { 0 } else { libc::MSG_DONTWAIT };
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let r = unsafe {
            libc::recv(
                conn.stream.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
            )
        };
        if r == 0 {
            return Err("the broker closed a connection".into());
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(()),
                _ => Err(format!("recv: {e}")),
            };
        }
        let bytes = conn.partial + r as usize;
        let acks = (bytes / 4) as u32;
        conn.partial = bytes % 4;
        conn.unacked = conn.unacked.saturating_sub(acks);
        self.acked += u64::from(acks);
        Ok(())
    }

    fn epoll_setup(&mut self) -> Result<(), String> {
        // SAFETY: plain syscalls on descriptors we own.
        unsafe {
            self.epoll = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            if self.epoll < 0 {
                return Err("epoll_create1 failed".into());
            }
            for (i, c) in self.conns.iter().enumerate() {
                let mut ev = libc::epoll_event {
                    events: libc::EPOLLIN as u32,
                    u64: i as u64,
                };
                if libc::epoll_ctl(
                    self.epoll,
                    libc::EPOLL_CTL_ADD,
                    c.stream.as_raw_fd(),
                    &mut ev,
                ) < 0
                {
                    return Err("epoll_ctl failed".into());
                }
            }
        }
        Ok(())
    }

    /// Sleep for `d` (QoS 0), or wait up to `d` for PUBACKs and read them (QoS 1).
    fn wait(&mut self, d: Duration) -> Result<(), String> {
        if !self.qos1 {
            if !d.is_zero() {
                std::thread::sleep(d);
            }
            return Ok(());
        }
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 128];
        let timeout_ms = i32::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: epoll_wait writes at most events.len() entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll,
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        for ev in events.iter().take(n.max(0) as usize) {
            let c = ev.u64 as usize;
            self.read_acks(c, false)?;
        }
        Ok(())
    }
}
