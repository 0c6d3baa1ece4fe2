//! Shared helpers of the end-to-end tests: scenario files, running the binary, the checks every
//! healthy run must pass, and a few raw MQTT packets for scripted brokers and observers.
//!
//! Each test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use fleetstorm::metrics::{Basis, Counter, Metric};
use fleetstorm::report::{self, GroupReport, Report, RunStatus};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fleetstorm");
/// The repository root (for shipped scenarios and the schema).
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A name no other test (in this or a parallel process) uses: for scenario names, client ids, topics.
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{tag}-{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A one-group fleet, written out as a scenario file.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Scenario name; also the prefix of client ids and topics (unique per test).
    pub name: String,
    pub devices: u32,
    pub interval_ms: u64,
    pub qos: u8,
    pub mqtt5: bool,
    pub connect_rate_per_s: u32,
    pub steady_s: u64,
    pub connect_timeout_s: u64,
    /// 0 disables keep-alive.
    pub keep_alive_s: u64,
}

impl Fleet {
    /// 50 devices publishing every 100 ms, ramp 500/s, steady 2 s.
    pub fn new(tag: &str, qos: u8) -> Fleet {
        Fleet {
            name: unique(tag),
            devices: 50,
            interval_ms: 100,
            qos,
            mqtt5: false,
            connect_rate_per_s: 500,
            steady_s: 2,
            connect_timeout_s: 5,
            keep_alive_s: 30,
        }
    }

    pub fn yaml(&self) -> String {
        format!(
            "\
name: {name}
seed: 7
broker:
  protocol: {protocol}
  keep_alive: {keep_alive}s
  connect_timeout: {timeout}s
  client_id: \"{name}-{{group}}-{{index}}\"
groups:
  - name: dev
    count: {devices}
    profile: energy-meter
    interval: {interval}ms
    qos: {qos}
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
phases:
  - ramp: {{ connect_rate: {rate}/s }}
  - steady: {{ duration: {steady}s }}
",
            name = self.name,
            protocol = if self.mqtt5 { "5" } else { "\"3.1.1\"" },
            keep_alive = self.keep_alive_s,
            timeout = self.connect_timeout_s,
            devices = self.devices,
            interval = self.interval_ms,
            qos = self.qos,
            rate = self.connect_rate_per_s,
            steady = self.steady_s,
        )
    }

    /// Publishes the steady phase should hold: devices × duration / interval.
    pub fn expected_steady_publishes(&self) -> u64 {
        u64::from(self.devices) * self.steady_s * 1000 / self.interval_ms
    }

    /// The latency metric that acknowledges this fleet's publishes, if any.
    pub fn ack_metric(&self) -> Option<Metric> {
        match self.qos {
            1 => Some(Metric::Puback),
            2 => Some(Metric::Pubcomp),
            _ => None,
        }
    }
}

/// A scratch directory holding a scenario file and the report directory of one run.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::Builder::new()
                .prefix("fleetstorm-e2e-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `text` as `name` and return its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).expect("write scenario");
        p
    }

    /// Where `--out` points.
    pub fn out(&self) -> PathBuf {
        self.path().join("report")
    }

    pub fn stdout_path(&self) -> PathBuf {
        self.path().join("stdout.txt")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.path().join("stderr.txt")
    }
}

/// What a finished process left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// For assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit {:?} after {:.1} s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status.code(),
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// `fleetstorm <args>` run from the repository root, output captured.
pub fn fleetstorm(args: &[&str]) -> Finished {
    fleetstorm_env(args, &[])
}

/// `fleetstorm <args>` with extra environment variables, run from the repository root, output captured.
pub fn fleetstorm_env(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .output()
        .expect("start fleetstorm");
    Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// Local addresses (`/proc/net/tcp` hex, e.g. `0200007F` for 127.0.0.2) of established connections to
/// 127.0.0.1:`port`, each connection once: the kernel builds that file chunk by chunk, so while other
/// tests open and close sockets one read can list a connection twice (or miss one, which the caller's
/// polling rides out).
pub fn local_addresses_to(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    let mut local: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.get(2) == Some(&remote.as_str()) && f.get(3) == Some(&"01"))
                .then(|| f.get(1).copied().unwrap_or("").to_owned())
        })
        .collect();
    local.sort();
    local.dedup();
    local
}

/// Start `fleetstorm <args>` with stdout and stderr going to files in `ws` (never a pipe that
/// could fill up while the test waits).
pub fn spawn(ws: &Workspace, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .stdout(File::create(ws.stdout_path()).expect("stdout file"))
        .stderr(File::create(ws.stderr_path()).expect("stderr file"))
        .spawn()
        .expect("start fleetstorm")
}

/// Wait for `child` to exit within `limit`; kill it (by its own PID) and panic if it does not.
pub fn wait_within(
    ws: &Workspace,
    child: &mut Child,
    started: Instant,
    limit: Duration,
) -> Finished {
    let deadline = started + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "fleetstorm did not exit within {limit:?}\n--- stderr ---\n{}",
                std::fs::read_to_string(ws.stderr_path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: std::fs::read_to_string(ws.stdout_path()).unwrap_or_default(),
        stderr: std::fs::read_to_string(ws.stderr_path()).unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// Run `fleet` with `fleetstorm run <file> --duration <steady> --no-progress --out <dir> [extra]`.
pub fn run_fleet(ws: &Workspace, fleet: &Fleet, extra: &[&str]) -> Finished {
    let scenario = ws.file("scenario.yaml", &fleet.yaml());
    let out = ws.out();
    let duration = format!("{}s", fleet.steady_s);
    let mut args = vec![
        "run",
        scenario.to_str().unwrap(),
        "--duration",
        &duration,
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    fleetstorm(&args)
}

/// Load `report.json` from a report directory.
pub fn load_report(dir: &Path) -> Report {
    report::load(dir).unwrap_or_else(|e| panic!("cannot load the report in {}: {e}", dir.display()))
}

// ---- report.json against the committed schema ----------------------------------------------

/// Schema violations of the `report.json` in `dir` (empty when valid).
pub fn schema_errors(dir: &Path) -> Vec<String> {
    let schema_path = Path::new(ROOT).join("reports/schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::new(&schema).expect("schema compiles");
    let text = std::fs::read_to_string(dir.join(report::REPORT_JSON)).expect("report.json");
    let instance: serde_json::Value = serde_json::from_str(&text).expect("report.json is JSON");
    validator
        .iter_errors(&instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

// ---- the checks every healthy run passes -------------------------------------------------------

/// Every section of the report with a label: each phase and the whole run, all groups together and
/// each group.
pub fn sections(r: &Report) -> Vec<(String, &GroupReport)> {
    let mut out = Vec::new();
    for (kind, p) in r
        .phases
        .iter()
        .map(|p| ("phase", p))
        .chain(std::iter::once(("run", &r.totals)))
    {
        out.push((format!("{kind} `{}` totals", p.name), &p.totals));
        for (g, gr) in &p.groups {
            out.push((format!("{kind} `{}` group `{g}`", p.name), gr));
        }
    }
    out
}

/// QoS 1/2: sent = acked + failed + in flight at end, in one section.
pub fn assert_conservation(label: &str, g: &GroupReport) {
    let c = &g.counters;
    let (published, acked, failed, inflight) = (
        c.get(Counter::Published),
        c.get(Counter::Acked),
        c.get(Counter::PublishFailed),
        c.get(Counter::InflightAtEnd),
    );
    assert_eq!(
        published,
        acked + failed + inflight,
        "{label}: published {published} != acked {acked} + publish_failed {failed} + inflight_at_end {inflight}"
    );
}

/// Corrected latency (from the intended time) is never below uncorrected (from the actual send),
/// at any percentile, and both bases count the same samples.
pub fn assert_corrected_dominates(label: &str, g: &GroupReport) {
    for (metric, l) in &g.latency {
        let (c, u) = (l.get(Basis::Corrected), l.get(Basis::Uncorrected));
        let m = metric.name();
        assert_eq!(
            c.count, u.count,
            "{label} {m}: corrected and uncorrected counts differ"
        );
        for (what, cv, uv) in [
            ("p50", c.p50_us, u.p50_us),
            ("p90", c.p90_us, u.p90_us),
            ("p99", c.p99_us, u.p99_us),
            ("max", c.max_us, u.max_us),
        ] {
            assert!(
                cv >= uv,
                "{label} {m}: corrected {what} {cv} µs < uncorrected {what} {uv} µs"
            );
        }
    }
}

/// The latency count of `metric` (corrected) in a section; 0 when absent.
pub fn latency_count(g: &GroupReport, metric: Metric) -> u64 {
    g.latency
        .get(&metric)
        .map_or(0, |l| l.get(Basis::Corrected).count)
}

/// Everything a completed run of `fleet` against a healthy broker must show. `run` is the finished
/// process, `dir` its `--out` directory.
pub fn check_healthy_run(fleet: &Fleet, run: &Finished, dir: &Path) {
    let ctx = run.describe();
    assert_eq!(run.code(), Some(0), "expected exit 0\n{ctx}");
    assert!(
        dir.join(report::REPORT_JSON).is_file(),
        "no report.json\n{ctx}"
    );
    assert!(
        dir.join(report::SUMMARY_MD).is_file(),
        "no summary.md\n{ctx}"
    );
    assert_eq!(
        schema_errors(dir),
        Vec::<String>::new(),
        "report.json vs reports/schema.json"
    );

    let r = load_report(dir);
    assert_eq!(
        r.outcome.status,
        RunStatus::Completed,
        "{:?}\n{ctx}",
        r.outcome
    );
    assert_eq!(r.scenario_name, fleet.name);
    let protocol = if fleet.mqtt5 { "5" } else { "3.1.1" };
    assert_eq!(
        r.scenario["broker"]["protocol"], protocol,
        "resolved scenario protocol"
    );
    assert_eq!(
        r.scenario["groups"][0]["qos"], fleet.qos,
        "resolved scenario QoS"
    );

    // Connections: every device connected once and stayed connected.
    let devices = u64::from(fleet.devices);
    let s = &r.summary;
    assert_eq!(s.connect_successes, devices, "connect_successes\n{ctx}");
    assert_eq!(
        s.connect_attempts, devices,
        "connect_attempts (no retries)\n{ctx}"
    );
    assert_eq!(s.connect_failures, 0, "connect_failures\n{ctx}");
    assert_eq!(s.devices_connected_peak, devices, "peak connected\n{ctx}");
    let totals = &r.totals.totals;
    assert_eq!(
        totals.counters.disconnects(),
        0,
        "disconnects from a healthy broker"
    );
    assert_eq!(
        latency_count(totals, Metric::Connect),
        devices,
        "one connect latency per device"
    );

    // Publishes: the steady phase holds its schedule's worth, give or take 25 %.
    let steady = r.summary_phase().expect("a steady phase");
    assert!(
        steady.name.starts_with("steady"),
        "summary phase {}",
        steady.name
    );
    let expected = fleet.expected_steady_publishes();
    let published = steady.totals.counters.get(Counter::Published);
    assert_eq!(
        s.published, published,
        "summary.published is the steady phase's"
    );
    assert!(
        published * 4 >= expected * 3 && published * 4 <= expected * 5,
        "steady published {published}, expected {expected} ± 25 % ({} devices × {} s / {} ms)\n{ctx}",
        fleet.devices,
        fleet.steady_s,
        fleet.interval_ms
    );
    let total_published = totals.counters.get(Counter::Published);
    assert!(
        total_published >= published,
        "run published {total_published} < steady {published}"
    );
    let phase_sum: u64 = r
        .phases
        .iter()
        .map(|p| p.totals.counters.get(Counter::Published))
        .sum();
    assert_eq!(phase_sum, total_published, "phases add up to the run");

    for (label, g) in sections(&r) {
        assert_corrected_dominates(&label, g);
        let c = &g.counters;
        assert_eq!(
            c.get(Counter::PublishFailed),
            0,
            "{label}: publish_failed against a healthy broker"
        );
        assert_eq!(
            c.get(Counter::InflightAtEnd),
            0,
            "{label}: inflight_at_end after the drain"
        );
        match fleet.ack_metric() {
            None => {
                assert_eq!(c.get(Counter::Acked), 0, "{label}: QoS 0 has no acks");
                assert_eq!(latency_count(g, Metric::Puback), 0, "{label}: QoS 0 puback");
                assert_eq!(
                    latency_count(g, Metric::Pubcomp),
                    0,
                    "{label}: QoS 0 pubcomp"
                );
            }
            Some(metric) => {
                let other = if metric == Metric::Puback {
                    Metric::Pubcomp
                } else {
                    Metric::Puback
                };
                assert_conservation(&label, g);
                let acked = c.get(Counter::Acked);
                assert_eq!(
                    latency_count(g, metric),
                    acked,
                    "{label}: {} corrected count == acked",
                    metric.name()
                );
                assert_eq!(
                    latency_count(g, other),
                    0,
                    "{label}: no {} latency",
                    other.name()
                );
            }
        }
    }
    if let Some(metric) = fleet.ack_metric() {
        assert!(s.acked > 0, "steady acked\n{ctx}");
        assert!(
            s.latency.contains_key(&metric),
            "summary latency lacks {}: {:?}",
            metric.name(),
            s.latency
        );
    }
}

// ---- raw MQTT, for scripted brokers and observers --------------------------------------------

/// Read one MQTT packet: `(first byte, body)`. `None` on EOF or error.
pub fn read_packet(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    s.read_exact(&mut first).ok()?;
    let mut len: usize = 0;
    let mut shift = 0;
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).ok()?;
        len |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return None;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((first[0], body))
}

/// An MQTT 3.1.1 client that subscribes to `filter` (QoS 0). `None` if the port does not answer
/// CONNECT with a successful CONNACK (e.g. an MQTT 5-only listener).
pub fn subscriber(port: u16, client_id: &str, filter: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut connect = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c];
    connect.extend_from_slice(&(u16::try_from(client_id.len()).ok()?).to_be_bytes());
    connect.extend_from_slice(client_id.as_bytes());
    s.write_all(&frame(0x10, &connect)).ok()?;
    let (kind, body) = read_packet(&mut s)?;
    if kind != 0x20 || body.get(1) != Some(&0) {
        return None;
    }
    let mut sub = vec![0x00, 0x01];
    sub.extend_from_slice(&(u16::try_from(filter.len()).ok()?).to_be_bytes());
    sub.extend_from_slice(filter.as_bytes());
    sub.push(0);
    s.write_all(&frame(0x82, &sub)).ok()?;
    Some(s)
}

/// A packet with its fixed header.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// TCP ports `pid` listens on (Linux: its socket inodes matched against /proc/net/tcp).
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: std::collections::HashSet<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            if *state != "0A" || !inodes.contains(*inode) {
                return None;
            }
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect()
}

/// Established TCP connections on this host whose remote end is 127.0.0.1:`port` (Linux:
/// /proc/net/tcp), i.e. clients connected to a broker on that port.
pub fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.get(2) == Some(&remote.as_str()) && f.get(3) == Some(&"01")
        })
        .count()
}

/// A loopback port that was free a moment ago (above the ephemeral range when possible).
pub fn free_port() -> u16 {
    // Start at a place of its own for each process and call, so tests running in parallel (each
    // its own process under nextest) do not all take the first free port.
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() * 37 + CALLS.fetch_add(1, Ordering::Relaxed) * 11) % 200;
    for i in 0..200u32 {
        let port = 65_300 + u16::try_from((start + i) % 200).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The OpenMetrics text a `--prometheus` endpoint on this port serves now, if it answers.
pub fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// A seed for choosing a test broker's port: different for every call, also between tests that
/// run as threads of one process (`cargo test`), where the process id alone is the same for all.
pub fn port_seed() -> u16 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = std::process::id()
        .wrapping_mul(7)
        .wrapping_add(CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(29))
        ^ (nanos >> 10);
    (mixed % 65_521) as u16
}

/// A fleet for capacity searches whose knee is known exactly on any machine: with the SLO
/// `connect_attempts <= 15` (one attempt per device), 14 devices pass and 16 fail.
pub fn knee_scenario(name: &str) -> String {
    format!(
        "\
name: {name}
seed: 3
broker:
  client_id: \"{name}-{{group}}-{{index}}\"
groups:
  - name: dev
    count: 10
    profile: energy-meter
    interval: 100ms
    qos: 1
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
observers:
  - name: audit
    count: 1
    qos: 1
phases:
  - ramp: {{ connect_rate: 500/s }}
  - steady: {{ duration: 30s }}
"
    )
}

/// `search FILE` of [`knee_scenario`] by devices from 4 to 64 (20% resolution), 500 ms settle and a
/// `window`, judged on `connect_attempts <= 15`; then `extra`.
pub fn knee_search<'a>(file: &'a Path, window: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "search",
        file.to_str().expect("a UTF-8 path"),
        "--slo",
        "connect_attempts <= 15",
        "--vary",
        "devices",
        "--from",
        "4",
        "--to",
        "64",
        "--resolution",
        "20%",
        "--settle",
        "500ms",
        "--window",
        window,
    ];
    args.extend_from_slice(extra);
    args
}
