//! Cost benchmark: client memory per idle device, connect rate, and CPU per message, measured from outside.
//!
//! Run with `cargo bench --bench cost` (Linux only; needs `mosquitto` on the PATH or at
//! `/usr/sbin/mosquitto`, or set `FLEETSTORM_BENCH_MOSQUITTO`). It builds the release binary
//! (`cargo build --release --bin fleetstorm`, a no-op when it is fresh), starts its own mosquitto on a free
//! loopback port in 65001-65535 (or in `FLEETSTORM_BENCH_PORTS=LO-HI`), runs `fleetstorm run` as a child
//! process and samples the child's `/proc/<pid>/stat` (utime, stime) and `/proc/<pid>/status` (VmRSS, VmHWM) every 20 ms, each sample
//! stamped with the wall clock. After the run, the phase windows in `report.json` (µs since the Unix epoch,
//! from the same host clock) say which samples belong to which phase, so CPU time is taken over the steady
//! phase only and divided by the messages published in exactly that phase.
//!
//! The idle-memory and connect measurements run twice, plain TCP and TLS (a CA and a server certificate
//! made here with rcgen, mosquitto with a TLS listener, `broker.tls.ca` trusting it), in the same run.
//!
//! The TLS sections (full and resumed handshakes, CPU per message over TLS, plain vs TLS vs mTLS) are in
//! `tls.rs`. `FLEETSTORM_BENCH_ONLY=tls` runs only those and the plain runs they compare against.
//! `FLEETSTORM_BENCH_ONLY=idle` runs only section a. (idle memory, plain and TLS) and prints its summary;
//! `FLEETSTORM_BENCH_IDLE_TLS` adds `broker.tls` keys to its TLS runs (e.g. `resumption: false`, to
//! tell the session store's share of an idle TLS device).
//!
//! Section a3. (with `=idle` too) breaks an idle device down: the sizes of its future and parts as this
//! build lays them out, and the heap blocks one device adds, counted exactly by a counting allocator in a
//! child copy of this bench that runs fleetstorm in its own process (`FLEETSTORM_BENCH_CENSUS`, internal).
//! `FLEETSTORM_BENCH_FLEETSTORM=/path/to/fleetstorm` measures that binary instead of building this tree's
//! (a. and the other sections; a3. always measures this tree).
//!
//! It prints and never asserts. Reports and the generated scenarios stay in `<target>/cost-bench/`.
//!
//! The floor section (`floor.rs`) runs fleetstorm side by side with the simplest program that writes the
//! same PUBLISH packets (one `write` each) and prints CPU per message as a ratio to it;
//! `FLEETSTORM_BENCH_ONLY=floor` runs only that.
//!
//! First, in-process: device certificates minted per second on one thread (`tls::Minter`, ECDSA P-256
//! device keys, signed by a P-256 and by an RSA-2048 CA). `FLEETSTORM_BENCH_ONLY=mint` stops after that
//! (no release build, no mosquitto).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleetstorm::metrics::{Basis, Counter, Metric};
use fleetstorm::report::{self, PhaseReport, Report};

mod census;
mod floor;
mod idle;
mod tls;

#[global_allocator]
static ALLOC: census::Counting = census::Counting;

use idle::{idle_memory, idle_memory_ws};
use tls::{Comparison, Wire};

const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// How far outside the sampled span a phase edge may lie and still use the nearest sample.
const EDGE_SLACK_US: u64 = 100_000;
const PORTS: std::ops::RangeInclusive<u16> = 65001..=65535;
const IDLE_SETTLE_US: u64 = 5_000_000;

fn main() {
    if let Ok(file) = std::env::var("FLEETSTORM_BENCH_CENSUS") {
        census::child(&file);
        return;
    }
    if !cfg!(target_os = "linux") {
        println!("cost bench: Linux only (reads /proc); skipped");
        return;
    }
    if floor::run_as_floor_child() {
        return;
    }
    let started = Instant::now();
    let mut rows: Vec<(String, String)> = Vec::new();
    let only = std::env::var("FLEETSTORM_BENCH_ONLY").unwrap_or_default();
    let tls_only = only == "tls";
    let idle_only = only == "idle";
    if !tls_only && !idle_only && only != "floor" {
        mint_rate(&mut rows);
    }
    if only == "mint" {
        print_summary(&rows, started);
        return;
    }
    let bench = match Bench::prepare() {
        Ok(b) => b,
        Err(e) => {
            println!("cost bench: cannot start: {e}");
            return;
        }
    };
    println!("{}", bench.machine_facts());
    let mut cmp = Comparison::default();
    if only == "floor" {
        floor::floor(&bench, &mut rows);
        print_summary(&rows, started);
        return;
    }

    if let Err(e) = idle_memory(&bench, &mut rows, &mut cmp) {
        println!("idle memory: failed: {e}");
    }
    if let Err(e) = census::idle_breakdown(&bench, &mut rows) {
        println!("idle memory breakdown: failed: {e}");
    }
    if idle_only {
        print_summary(&rows, started);
        return;
    }
    if !tls_only {
        if let Err(e) = idle_memory_ws(&bench, &mut rows) {
            println!("idle memory over WebSocket: failed: {e}");
        }
        if let Err(e) = startup(&bench, &mut rows) {
            println!("startup: failed: {e}");
        }
        if let Err(e) = connect_rate(&bench, &mut rows) {
            println!("connect rate: failed: {e}");
        }
    }
    tls::handshakes(&bench, &mut cmp);
    tls::storm(&bench, &mut cmp);
    for (qos, interval_ms) in [(0u8, 10u64), (1, 20)] {
        for wire in [Wire::Plain, Wire::Tls] {
            match cpu_per_message(&bench, qos, interval_ms, wire, &mut rows) {
                Ok(f) => cmp.cpu_per_msg(qos, wire, f),
                Err(e) => println!("cpu per message, QoS {qos}, {}: failed: {e}", wire.label()),
            }
        }
    }
    cmp.push_rows(&mut rows);
    if !tls_only {
        floor::floor(&bench, &mut rows);
    }

    print_summary(&rows, started);
    println!("  (reports and scenarios: {})", bench.work.display());
}

fn print_summary(rows: &[(String, String)], started: Instant) {
    println!();
    println!("== fleetstorm cost summary ==");
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("  {k:<width$}  {v}");
    }
    println!(
        "  {:<width$}  {:.0} s",
        "bench wall time",
        started.elapsed().as_secs_f64()
    );
}

/// Device certificates minted per second on this thread: a fresh P-256 key, a subject from the
/// template, a signature by the CA. Lazy minting at first connect costs one such per device, so this
/// is the connect rate one core could sustain on minting alone.
fn mint_rate(rows: &mut Vec<(String, String)>) {
    use fleetstorm::tls::{CertificateAuthority, Minter};
    const BUDGET: Duration = Duration::from_secs(3);
    const MAX: u32 = 20_000;
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata");
    let valid = Duration::from_secs(30 * 86400);
    let minters: Vec<(&str, Result<Minter, String>)> = vec![
        (
            "P-256 CA",
            CertificateAuthority::generate("bench CA")
                .and_then(|ca| ca.minter("CN={client_id},O=fleetstorm", valid))
                .map_err(|e| e.to_string()),
        ),
        (
            "RSA-2048 CA",
            Minter::from_ca_files(
                &testdata.join("rsa-ca.crt"),
                &testdata.join("rsa-ca.key"),
                "CN={client_id},O=fleetstorm",
                valid,
            )
            .map_err(|e| e.to_string()),
        ),
    ];
    println!();
    println!("== certificate minting (one thread, ECDSA P-256 device keys) ==");
    for (ca, minter) in minters {
        let minter = match minter {
            Ok(m) => m,
            Err(e) => {
                println!("  {ca}: cannot build the minter: {e}");
                continue;
            }
        };
        for i in 0..50 {
            let _ = minter.issue(&format!("warm-{i}"));
        }
        let mut id = String::new();
        let start = Instant::now();
        let mut n = 0u32;
        while n < MAX && start.elapsed() < BUDGET {
            id.clear();
            let _ = write!(id, "fleetstorm-bench-{n}");
            if minter.issue(&id).is_err() {
                println!("  {ca}: minting failed");
                break;
            }
            n += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let per_s = f64::from(n) / secs.max(1e-9);
        println!(
            "  {ca}: {n} certificates in {secs:.2} s = {per_s:.0}/s ({:.0} µs each)",
            1e6 / per_s.max(1e-9)
        );
        rows.push((
            format!("certificates minted per second (1 thread, {ca})"),
            format!("{per_s:.0}/s"),
        ));
    }
}

/// Where things are, and the fixed facts of this machine.
struct Bench {
    fleetstorm: PathBuf,
    mosquitto: PathBuf,
    work: PathBuf,
    clk_tck: f64,
}

impl Bench {
    fn prepare() -> Result<Bench, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        // <target>/release/deps/cost-<hash> → <target>/release
        let release = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("cannot locate the target directory")?
            .to_path_buf();
        // `FLEETSTORM_BENCH_FLEETSTORM=/path/to/fleetstorm` measures that binary (e.g. one built before
        // a change) instead of building this tree's.
        let fleetstorm = match std::env::var_os("FLEETSTORM_BENCH_FLEETSTORM") {
            Some(p) => PathBuf::from(p),
            None => {
                let f = release.join("fleetstorm");
                build_release(&f)?;
                f
            }
        };
        let mosquitto = find_mosquitto().ok_or(
            "mosquitto not found (install it or set FLEETSTORM_BENCH_MOSQUITTO=/path/to/mosquitto)",
        )?;
        let work = release.parent().unwrap_or(&release).join("cost-bench");
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        // SAFETY: sysconf only reads a configuration value.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Ok(Bench {
            fleetstorm,
            mosquitto,
            work,
            clk_tck: if tck > 0 { tck as f64 } else { 100.0 },
        })
    }

    fn machine_facts(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let mem_gib = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| kb_field(&s, "MemTotal:"))
            .map_or(0.0, |kb| kb as f64 / (1024.0 * 1024.0));
        let version = command_line(&self.fleetstorm, &["--version"]);
        let mosq_version = command_line(&self.mosquitto, &["-h"]);
        let mut s = String::new();
        let _ = writeln!(s, "== machine ==");
        let _ = writeln!(s, "  cores            {cores} ({cpu})");
        let _ = writeln!(s, "  memory           {mem_gib:.1} GiB");
        let _ = writeln!(s, "  kernel           {}", kernel.trim());
        let _ = writeln!(s, "  fleetstorm       {version}");
        let _ = writeln!(s, "  mosquitto        {mosq_version}");
        let _ = writeln!(s, "  CLK_TCK          {}", self.clk_tck);
        let _ = writeln!(
            s,
            "  open files       {} (soft limit of this process)",
            open_files_limit()
        );
        let _ = write!(s, "  load average     {} (at start)", loadavg());
        s
    }
}

fn build_release(fleetstorm: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    println!("building the release binary (cargo build --release --bin fleetstorm)...");
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--bin", "fleetstorm"])
        .arg("--manifest-path")
        .arg(&manifest)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        other if fleetstorm.exists() => {
            println!("  build did not succeed ({other:?}); using the existing binary");
            Ok(())
        }
        other => Err(format!(
            "cargo build --release failed ({other:?}) and {} does not exist",
            fleetstorm.display()
        )),
    }
}

fn find_mosquitto() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FLEETSTORM_BENCH_MOSQUITTO") {
        return Some(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("mosquitto"))
                .collect()
        })
        .unwrap_or_default();
    candidates.push("/usr/sbin/mosquitto".into());
    candidates.push("/usr/local/sbin/mosquitto".into());
    candidates.into_iter().find(|p| p.is_file())
}

/// First line of a command's output (stdout, else stderr).
fn command_line(program: &Path, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        }
        Err(e) => format!("unknown ({e})"),
    }
}

fn open_files_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 {
        r.rlim_cur
    } else {
        0
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Busy ticks of the whole machine (all cores), from the first line of /proc/stat, stamped with the wall
/// clock: user + nice + system + irq + softirq + steal.
fn machine_busy() -> Option<Sample> {
    let at_us = now_us();
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let busy = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| v.get(i).copied().unwrap_or(0))
        .sum();
    Some(Sample {
        at_us,
        utime_ticks: busy,
        stime_ticks: 0,
        rss_kb: 0,
        hwm_kb: 0,
    })
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One reading of a process, stamped with the wall clock.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_us: u64,
    utime_ticks: u64,
    stime_ticks: u64,
    rss_kb: u64,
    hwm_kb: u64,
}

fn sample(pid: u32) -> Option<Sample> {
    let at_us = now_us();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime_ticks = fields.get(11)?.parse().ok()?;
    let stime_ticks = fields.get(12)?.parse().ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Sample {
        at_us,
        utime_ticks,
        stime_ticks,
        rss_kb: kb_field(&status, "VmRSS:")?,
        hwm_kb: kb_field(&status, "VmHWM:")?,
    })
}

/// A value at `t_us`, linearly interpolated between the samples around it; at either end, the first or
/// last sample when it is within [`EDGE_SLACK_US`] (the process may exit right after the steady phase).
fn interpolate(samples: &[Sample], t_us: u64, f: impl Fn(&Sample) -> f64) -> Option<f64> {
    let Some(after) = samples.iter().position(|s| s.at_us >= t_us) else {
        let last = samples.last()?;
        return (t_us - last.at_us <= EDGE_SLACK_US).then(|| f(last));
    };
    let b = &samples[after];
    if after == 0 {
        return (b.at_us - t_us <= EDGE_SLACK_US).then(|| f(b));
    }
    let a = &samples[after - 1];
    let span = (b.at_us - a.at_us).max(1) as f64;
    let w = (t_us - a.at_us) as f64 / span;
    Some(f(a) + (f(b) - f(a)) * w)
}

/// The sample nearest to `t_us`.
fn nearest(samples: &[Sample], t_us: u64) -> Option<Sample> {
    samples
        .iter()
        .copied()
        .min_by_key(|s| s.at_us.abs_diff(t_us))
}

/// A mosquitto started by the bench; killed (by its own PID) on drop.
struct Broker {
    child: Child,
    port: u16,
    wire: Wire,
}

impl Broker {
    /// A mosquitto with one listener: plain TCP, TLS, or TLS requiring a client certificate signed by
    /// the bench CA (`require_certificate true`).
    fn start(bench: &Bench, tag: &str, wire: Wire) -> Result<Broker, String> {
        let port = free_port().ok_or("no free port in the bench's range")?;
        let conf = bench.work.join(format!("mosquitto-{tag}.conf"));
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_connections -1\nmax_queued_messages 100000\nlog_dest none\nset_tcp_nodelay true\n\
             sys_interval 1\n"
        );
        if wire != Wire::Plain {
            let f = tls_files(bench)?;
            text.push_str(&format!(
                "user root\ncafile {}\ncertfile {}\nkeyfile {}\n",
                f.ca.display(),
                f.server_cert.display(),
                f.server_key.display()
            ));
        }
        if wire == Wire::Mtls {
            text.push_str("require_certificate true\n");
        }
        fs::write(&conf, text).map_err(|e| format!("{}: {e}", conf.display()))?;
        let child = Command::new(&bench.mosquitto)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bench.mosquitto.display()))?;
        let broker = Broker { child, port, wire };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("mosquitto did not listen on {addr} within 5 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    fn url(&self) -> String {
        let scheme = if self.wire == Wire::Plain {
            "mqtt"
        } else {
            "mqtts"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PEM files in the work directory (made afresh by each [`tls_files`] call).
struct TlsFiles {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    /// The fleet's client certificate (for mTLS: `broker.tls.cert` / `key`).
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate for the whole fleet
/// (`CN=fleetstorm-bench-fleet`, client auth), all ECDSA P-256.
fn tls_files(bench: &Bench) -> Result<TlsFiles, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair,
    };
    let e = |e: rcgen::Error| e.to_string();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca = ca_params.self_signed(&ca_key).map_err(e)?;
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).map_err(e)?;
    let key = KeyPair::generate().map_err(e)?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).map_err(e)?;
    let mut client_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "fleetstorm-bench-fleet");
    client_params.distinguished_name = dn;
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().map_err(e)?;
    let client = client_params.signed_by(&client_key, &issuer).map_err(e)?;
    let files = TlsFiles {
        ca: bench.work.join("bench-ca.pem"),
        server_cert: bench.work.join("bench-server.pem"),
        server_key: bench.work.join("bench-server.key"),
        client_cert: bench.work.join("bench-client.pem"),
        client_key: bench.work.join("bench-client.key"),
    };
    for (path, text) in [
        (&files.ca, ca.pem()),
        (&files.server_cert, cert.pem()),
        (&files.server_key, key.serialize_pem()),
        (&files.client_cert, client.pem()),
        (&files.client_key, client_key.serialize_pem()),
    ] {
        fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(files)
}

/// The broker's port range: `FLEETSTORM_BENCH_PORTS=LO-HI` (e.g. `65401-65420`, when several
/// engineers share a machine), else [`PORTS`].
fn port_range() -> std::ops::RangeInclusive<u16> {
    std::env::var("FLEETSTORM_BENCH_PORTS")
        .ok()
        .and_then(|v| {
            let (lo, hi) = v.split_once('-')?;
            let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
            (lo <= hi).then_some(lo..=hi)
        })
        .unwrap_or(PORTS)
}

fn free_port() -> Option<u16> {
    // Start somewhere in the range that depends on our PID, so parallel benches rarely collide.
    let ports = port_range();
    let span = u32::from(ports.end() - ports.start()) + 1;
    let offset = std::process::id() % span;
    (0..span)
        .map(|i| ports.start() + ((offset + i) % span) as u16)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// A finished `fleetstorm run`: the report plus both processes' samples.
struct Run {
    report: Report,
    client: Vec<Sample>,
    broker: Vec<Sample>,
    /// Whole-machine busy ticks (in `utime_ticks`).
    machine: Vec<Sample>,
    /// Broker reading just before the client started.
    broker_before: Option<Sample>,
}

fn run_fleetstorm(bench: &Bench, name: &str, scenario: &str) -> Result<Run, String> {
    run_fleetstorm_over(bench, name, scenario, Wire::Plain, "")
}

/// Run `scenario` against a fresh mosquitto listening as `wire` says. Over TLS the scenario trusts the
/// bench CA (and, for mTLS, presents the fleet certificate); `tls_extra` adds lines under
/// `broker.tls:` (indented by four spaces, each ending in a newline).
fn run_fleetstorm_over(
    bench: &Bench,
    name: &str,
    scenario: &str,
    wire: Wire,
    tls_extra: &str,
) -> Result<Run, String> {
    let broker = Broker::start(bench, name, wire)?;
    let run = run_fleetstorm_on(bench, name, scenario, &broker, tls_extra);
    drop(broker);
    run
}

/// Run `scenario` against `broker` (which stays up), as [`run_fleetstorm_over`] says.
fn run_fleetstorm_on(
    bench: &Bench,
    name: &str,
    scenario: &str,
    broker: &Broker,
    tls_extra: &str,
) -> Result<Run, String> {
    let wire = broker.wire;
    let dir = bench.work.join(name);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let scenario_path = dir.join("scenario.yaml");
    let scenario = if wire == Wire::Plain {
        scenario.to_owned()
    } else {
        let mut tls = format!(
            "broker:\n  tls:\n    ca: {}\n",
            bench.work.join("bench-ca.pem").display()
        );
        if wire == Wire::Mtls {
            let _ = write!(
                tls,
                "    cert: {}\n    key: {}\n",
                bench.work.join("bench-client.pem").display(),
                bench.work.join("bench-client.key").display()
            );
        }
        tls.push_str(tls_extra);
        scenario.replacen("broker:\n", &tls, 1)
    };
    fs::write(&scenario_path, scenario).map_err(|e| format!("{e}"))?;
    let broker_before = sample(broker.pid());
    let stdout = fs::File::create(dir.join("stdout.txt")).map_err(|e| format!("{e}"))?;
    let stderr = fs::File::create(dir.join("stderr.txt")).map_err(|e| format!("{e}"))?;
    let out = dir.join("report");
    let mut child = Command::new(&bench.fleetstorm)
        .arg("run")
        .arg(&scenario_path)
        .args(["--broker", &broker.url(), "--no-progress", "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bench.fleetstorm.display()))?;
    let pid = child.id();
    let mut client = Vec::new();
    let mut broker_samples = Vec::new();
    let mut machine = Vec::new();
    let load_before = loadavg();
    let mut next = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break s;
        }
        if let Some(s) = sample(pid) {
            client.push(s);
        }
        if let Some(s) = sample(broker.pid()) {
            broker_samples.push(s);
        }
        if let Some(s) = machine_busy() {
            machine.push(s);
        }
        next += SAMPLE_EVERY;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    };
    let report = report::load(&out.join(report::REPORT_JSON)).map_err(|e| {
        let err = fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
        format!("no report ({e}); fleetstorm exited with {status}; stderr:\n{err}")
    })?;
    println!("  load average before this run: {load_before}");
    if !status.success() {
        println!(
            "  note: fleetstorm exited with {status} ({:?}: {})",
            report.outcome.status, report.outcome.message
        );
    }
    Ok(Run {
        report,
        client,
        broker: broker_samples,
        machine,
        broker_before,
    })
}

/// Startup: from spawning `fleetstorm run` to its first connect slot (the report's `started_at_us`,
/// the start of the first phase, where a ramp's first device connects), in one process and over
/// two worker processes (which start together once both say they are ready). Median of 3.
fn startup(bench: &Bench, rows: &mut Vec<(String, String)>) -> Result<(), String> {
    println!();
    println!("startup to the first connect slot (10 devices, median of 3):");
    let broker = Broker::start(bench, "startup", Wire::Plain)?;
    let dir = bench.work.join("startup");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let scenario = dir.join("scenario.yaml");
    fs::write(
        &scenario,
        scenario_yaml("startup", 10, "1s", 0, "1000/s", 10, "1s"),
    )
    .map_err(|e| format!("{e}"))?;
    for (label, extra) in [
        ("one process", &[][..]),
        ("--workers 2", &["--workers", "2"][..]),
    ] {
        let mut took = Vec::new();
        for i in 0..3 {
            let out = dir.join(format!("report-{}-{i}", extra.len()));
            let spawned_us = now_us();
            let status = Command::new(&bench.fleetstorm)
                .arg("run")
                .arg(&scenario)
                .args(["--broker", &broker.url(), "--no-progress", "--out"])
                .arg(&out)
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("spawn {}: {e}", bench.fleetstorm.display()))?;
            let report = report::load(&out.join(report::REPORT_JSON))
                .map_err(|e| format!("no report ({e}); fleetstorm exited with {status}"))?;
            took.push(report.started_at_us.saturating_sub(spawned_us));
        }
        took.sort_unstable();
        let median = took.get(1).copied().unwrap_or(0);
        println!(
            "  {label:<12} {} (runs: {})",
            fmt_us(median),
            took.iter()
                .map(|t| fmt_us(*t))
                .collect::<Vec<_>>()
                .join(", ")
        );
        rows.push((format!("startup to first connect, {label}"), fmt_us(median)));
    }
    Ok(())
}

fn scenario_yaml(
    name: &str,
    devices: u64,
    interval: &str,
    qos: u8,
    connect_rate: &str,
    max_connecting: u32,
    steady: &str,
) -> String {
    format!(
        "version: 1\nname: {name}\nseed: 42\n\
         broker:\n  keep_alive: 60s\n  max_connecting: {max_connecting}\n\
         groups:\n  - name: bench\n    count: {devices}\n    profile: environment-sensor\n    \
         interval: {interval}\n    qos: {qos}\n\
         phases:\n  - name: ramp\n    ramp: {{ connect_rate: {connect_rate} }}\n  \
         - name: steady\n    steady: {{ duration: {steady} }}\n"
    )
}

fn phase<'a>(report: &'a Report, name: &str) -> Result<&'a PhaseReport, String> {
    report
        .phases
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("report has no phase `{name}`"))
}

fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

// ---- b. connect rate ----

fn connect_rate(bench: &Bench, rows: &mut Vec<(String, String)>) -> Result<(), String> {
    const DEVICES: u64 = 10_000;
    println!();
    println!(
        "== b. connect rate ({DEVICES} devices, connect_rate 1000000/s so the schedule spans 10 ms, \
         max_connecting 500) =="
    );
    let yaml = scenario_yaml("connect", DEVICES, "1h", 0, "1000000/s", 500, "3s");
    let run = run_fleetstorm(bench, "connect", &yaml)?;
    let ramp = phase(&run.report, "ramp")?;
    let c = &run.report.totals.totals.counters;
    let successes = c.get(Counter::ConnectSuccesses);
    let failures = c.connect_failures();
    let lat = run
        .report
        .totals
        .totals
        .latency
        .get(&Metric::Connect)
        .ok_or("no connect latency in the report")?;
    let corr = lat.get(Basis::Corrected);
    let uncorr = lat.get(Basis::Uncorrected);
    // Every connect is intended inside the ramp window, so the last CONNACK arrives between
    // max(corrected) and ramp length + max(corrected) after the run's start.
    let ramp_us = ramp.end_us - ramp.start_us;
    let all_lo_us = corr.max_us;
    let all_hi_us = corr.max_us + ramp_us;
    let rate_lo = successes as f64 / (all_hi_us as f64 / 1e6);
    let rate_hi = successes as f64 / (all_lo_us.max(1) as f64 / 1e6);
    let first_full_s = run
        .report
        .series
        .iter()
        .find(|p| p.connected >= DEVICES as i64)
        .map(|p| p.t_s);
    // CPU spent by the client from the run's start until everyone was connected (upper bound window).
    let cpu_us = |s: &Sample| (s.utime_ticks + s.stime_ticks) as f64 * 1e6 / bench.clk_tck;
    let cpu_connect = interpolate(&run.client, run.report.started_at_us + all_hi_us, cpu_us)
        .zip(interpolate(&run.client, run.report.started_at_us, cpu_us))
        .map(|(b, a)| b - a);
    println!(
        "  connect successes {successes}, failures {failures}; connect latency corrected p50 {} p99 {} max {}, \
         uncorrected (TCP connect → CONNACK) p50 {} p99 {} max {}",
        fmt_us(corr.p50_us),
        fmt_us(corr.p99_us),
        fmt_us(corr.max_us),
        fmt_us(uncorr.p50_us),
        fmt_us(uncorr.p99_us),
        fmt_us(uncorr.max_us)
    );
    println!(
        "  all {successes} connected {:.3}-{:.3} s after the start → {:.0}-{:.0} connects/s \
         (1 Hz series: all connected at the t={}s tick)",
        all_lo_us as f64 / 1e6,
        all_hi_us as f64 / 1e6,
        rate_lo,
        rate_hi,
        first_full_s.map_or("never".into(), |t| t.to_string())
    );
    if let Some(cpu) = cpu_connect {
        println!(
            "  client CPU during the connect storm: {:.0} ms ({:.1} µs per connect)",
            cpu / 1000.0,
            cpu / successes.max(1) as f64
        );
    }
    rows.push((
        "connect rate (10k, max_connecting 500)".into(),
        format!("{rate_lo:.0}-{rate_hi:.0} /s  ({successes} ok, {failures} failed)"),
    ));
    rows.push((
        "connect latency corrected p50 / p99".into(),
        format!("{} / {}", fmt_us(corr.p50_us), fmt_us(corr.p99_us)),
    ));
    Ok(())
}

// ---- c. CPU per message ----

/// Client CPU per message over one steady phase.
#[derive(Debug, Clone, Copy)]
struct CpuFigures {
    /// Messages published per second in the steady phase.
    rate: f64,
    user_us_per_msg: f64,
    total_us_per_msg: f64,
    /// Over the steady phase (`None` without broker samples).
    broker_us_per_msg: Option<f64>,
}

/// Section c. (plain) and its counterpart over TLS (`mqtts://`, the same fleet).
fn cpu_per_message(
    bench: &Bench,
    qos: u8,
    interval_ms: u64,
    wire: Wire,
    rows: &mut Vec<(String, String)>,
) -> Result<CpuFigures, String> {
    const DEVICES: u64 = 1_000;
    let target = DEVICES as f64 * 1000.0 / interval_ms as f64;
    let (over, tag, key) = match wire {
        Wire::Plain => ("", String::new(), String::new()),
        w => (
            " over TLS (mqtts://, as c.)",
            format!("-{}", w.tag()),
            format!(" {}", w.label()),
        ),
    };
    println!();
    println!(
        "== c. CPU per message{over}, QoS {qos}: {DEVICES} devices every {interval_ms} ms \
         (target {target:.0} msg/s), steady 20 s, no observers =="
    );
    let name = format!("cpu-qos{qos}{tag}");
    let yaml = scenario_yaml(
        &name,
        DEVICES,
        &format!("{interval_ms}ms"),
        qos,
        "2000/s",
        500,
        "20s",
    );
    let run = run_fleetstorm_over(bench, &name, &yaml, wire, "")?;
    let steady = phase(&run.report, "steady")?;
    let c = &steady.totals.counters;
    let published = c.get(Counter::Published);
    let acked = c.get(Counter::Acked);
    let overrun = c.get(Counter::Overrun);
    let ticks = |f: fn(&Sample) -> u64| {
        let at = |t| interpolate(&run.client, t, |s| f(s) as f64);
        Some((at(steady.end_us)? - at(steady.start_us)?) * 1e6 / bench.clk_tck)
    };
    let user_us = ticks(|s| s.utime_ticks).ok_or("no client samples over the steady phase")?;
    let sys_us = ticks(|s| s.stime_ticks).ok_or("no client samples over the steady phase")?;
    let broker_cpu_us = {
        let f = |s: &Sample| (s.utime_ticks + s.stime_ticks) as f64 * 1e6 / bench.clk_tck;
        interpolate(&run.broker, steady.end_us, f)
            .zip(interpolate(&run.broker, steady.start_us, f))
            .map(|(b, a)| b - a)
    };
    let machine_cpu_us = {
        let f = |s: &Sample| s.utime_ticks as f64 * 1e6 / bench.clk_tck;
        interpolate(&run.machine, steady.end_us, f)
            .zip(interpolate(&run.machine, steady.start_us, f))
            .map(|(b, a)| b - a)
    };
    let msgs = published.max(1) as f64;
    let rate = published as f64 / steady.duration_s.max(1e-9);
    println!(
        "  published {published} in {:.2} s = {rate:.0} msg/s ({:.1} % of target); overrun {overrun}{}",
        steady.duration_s,
        100.0 * rate / target,
        if qos > 0 {
            format!(
                "; acked {acked}; in flight at end {}; failed {}",
                c.get(Counter::InflightAtEnd),
                c.get(Counter::PublishFailed)
            )
        } else {
            String::new()
        }
    );
    println!(
        "  client CPU over the steady phase: user {:.2} s, sys {:.2} s ({:.0} % of one core) → \
         user {:.2} µs/msg, user+sys {:.2} µs/msg",
        user_us / 1e6,
        sys_us / 1e6,
        100.0 * (user_us + sys_us) / 1e6 / steady.duration_s.max(1e-9),
        user_us / msgs,
        (user_us + sys_us) / msgs
    );
    if let Some(b) = broker_cpu_us {
        println!(
            "  mosquitto CPU over the steady phase: {:.2} s ({:.2} µs/msg)",
            b / 1e6,
            b / msgs
        );
    }
    if let (Some(m), Some(b)) = (machine_cpu_us, broker_cpu_us) {
        let others = (m - b - user_us - sys_us).max(0.0) / 1e6 / steady.duration_s.max(1e-9);
        println!(
            "  whole machine busy {:.2} of {} cores over the steady phase; other processes {others:.2} cores \
             (contention: latency and overrun figures are only clean when this is near 0)",
            m / 1e6 / steady.duration_s.max(1e-9),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        );
        rows.push((
            format!("QoS {qos}{key} CPU used by other processes"),
            format!("{others:.2} cores"),
        ));
    }
    rows.push((
        format!("QoS {qos}{key} publish rate (target {target:.0}/s)"),
        format!("{rate:.0} /s, overrun {overrun}"),
    ));
    rows.push((
        format!("QoS {qos}{key} client CPU user / user+sys per msg"),
        format!(
            "{:.2} µs / {:.2} µs   (target user <= 1 µs)",
            user_us / msgs,
            (user_us + sys_us) / msgs
        ),
    ));
    if qos > 0 {
        if let Some(l) = steady.totals.latency.get(&Metric::Puback) {
            let (co, un) = (l.get(Basis::Corrected), l.get(Basis::Uncorrected));
            println!(
                "  puback corrected p50 {} p99 {} max {}; uncorrected p50 {} p99 {} max {}",
                fmt_us(co.p50_us),
                fmt_us(co.p99_us),
                fmt_us(co.max_us),
                fmt_us(un.p50_us),
                fmt_us(un.p99_us),
                fmt_us(un.max_us)
            );
            rows.push((
                format!("QoS {qos}{key} puback p50 / p99 corrected"),
                format!("{} / {}", fmt_us(co.p50_us), fmt_us(co.p99_us)),
            ));
            rows.push((
                format!("QoS {qos}{key} puback p50 / p99 uncorrected"),
                format!("{} / {}", fmt_us(un.p50_us), fmt_us(un.p99_us)),
            ));
        }
    }
    Ok(CpuFigures {
        rate,
        user_us_per_msg: user_us / msgs,
        total_us_per_msg: (user_us + sys_us) / msgs,
        broker_us_per_msg: broker_cpu_us.map(|b| b / msgs),
    })
}
