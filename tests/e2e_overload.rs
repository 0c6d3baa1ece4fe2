//! Overload, the other thing stress tests provoke: local ports that run out, a broker that cannot keep
//! up with the schedule (phases still end on time; what could not go out is counted), and a send queue
//! that would otherwise hide what never left the host.

mod common;
mod fault;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{load_report, Fleet, Workspace, BIN, ROOT};
use fault::{FaultBroker, Script};
use fleetstorm::metrics::Counter;

/// `fleetstorm <args>` with extra environment variables, output captured.
fn fleetstorm_env(args: &[&str], env: &[(&str, &str)]) -> common::Finished {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .output()
        .expect("start fleetstorm");
    common::Finished {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// The kernel's ephemeral range, as `doctor` reads it.
fn port_range() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut it = text.split_whitespace().map(|x| x.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// The doctor line about local ports.
fn ports_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.contains("local ports:"))
        .unwrap_or("")
}

#[test]
fn doctor_predicts_the_port_stall_at_half_the_ephemeral_range() {
    let (lo, hi) = port_range();
    // connect() gets about half of the range per (source address, broker address); 5% kept back
    let ports = hi - lo + 1;
    let half = ports / 2;
    let usable = half - half / 20;
    let ws = Workspace::new();
    let fleet = Fleet::new("doctor-ports", 0);
    let scenario = ws.file("s.yaml", &fleet.yaml());
    let s = scenario.to_str().unwrap();
    // A broker off loopback (never contacted: doctor only plans), so no source address is added.
    let remote = "mqtt://192.0.2.1:1883";
    let below = usable.to_string();
    let fits = fleetstorm_env(&["doctor", s, "--broker", remote, "--devices", &below], &[]);
    assert_eq!(fits.code(), Some(0), "{}", fits.describe());
    assert!(
        ports_line(&fits.stdout).trim_start().starts_with("ok"),
        "{}",
        fits.stdout
    );
    let above = (usable + 1).to_string();
    let stall = fleetstorm_env(&["doctor", s, "--broker", remote, "--devices", &above], &[]);
    assert_eq!(stall.code(), Some(2), "{}", stall.describe());
    assert!(
        ports_line(&stall.stdout).trim_start().starts_with("FAIL"),
        "{}",
        stall.stdout
    );
    // The same plan against a broker on loopback: two loopback source addresses, and it fits.
    let local = "mqtt://127.0.0.1:1883";
    let auto = fleetstorm_env(&["doctor", s, "--broker", local, "--devices", &above], &[]);
    assert_eq!(auto.code(), Some(0), "{}", auto.describe());
    assert!(
        auto.stdout
            .contains("source addresses: 127.0.0.1-127.0.0.2 (2 chosen automatically"),
        "{}",
        auto.stdout
    );
    assert!(
        ports_line(&auto.stdout).trim_start().starts_with("ok"),
        "{}",
        auto.stdout
    );
}

/// Local addresses (`/proc/net/tcp` hex, e.g. `0200007F` for 127.0.0.2) of established connections to
/// 127.0.0.1:`port`, each connection once.
fn local_addresses_to(port: u16) -> Vec<String> {
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

#[test]
fn loopback_source_addresses_are_added_when_the_ports_would_run_out() {
    let broker = FaultBroker::start(Script::new());
    let port = broker.addr().port();
    let ws = Workspace::new();
    let mut fleet = Fleet::new("auto-sources", 0);
    fleet.devices = 30;
    fleet.steady_s = 3;
    let yaml = fleet
        .yaml()
        .replace("broker:\n", &format!("broker:\n  url: {}\n", broker.url()));
    let scenario = ws.file("s.yaml", &yaml);
    let out = ws.out();
    let started = Instant::now();
    // Plan with a 22-port range: 11 usable per (source, broker) pair, so 30 devices need 3 addresses.
    let mut child = Command::new(BIN)
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("FLEETSTORM_LOCAL_PORT_RANGE", "40000-40021")
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(ws.stdout_path()).unwrap())
        .stderr(std::fs::File::create(ws.stderr_path()).unwrap())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    fault::poll_until(Duration::from_secs(10), || {
        let a = local_addresses_to(port);
        if a.len() > seen.len() {
            seen = a;
        }
        seen.len() >= 30
    });
    let done = common::wait_within(&ws, &mut child, started, Duration::from_secs(30));
    assert_eq!(done.code(), Some(0), "{}", done.describe());
    assert!(
        done.stderr
            .contains("source addresses: 127.0.0.1-127.0.0.3 (3 chosen automatically"),
        "{}",
        done.describe()
    );
    let mut counts: Vec<(String, usize)> = Vec::new();
    for local in seen {
        let a = local.split(':').next().unwrap_or("").to_owned();
        match counts.iter_mut().find(|(x, _)| *x == a) {
            Some((_, n)) => *n += 1,
            None => counts.push((a, 1)),
        }
    }
    counts.sort();
    assert_eq!(
        counts,
        vec![
            ("0100007F".to_owned(), 10),
            ("0200007F".to_owned(), 10),
            ("0300007F".to_owned(), 10)
        ]
    );
    // the report's resolved scenario names the addresses used
    let r = load_report(&out);
    let text = serde_json::to_string(&r.scenario).unwrap();
    assert!(text.contains("127.0.0.3"), "{text}");
}

#[test]
fn a_connect_that_cannot_get_a_local_address_is_counted() {
    let broker = FaultBroker::start(Script::new());
    let ws = Workspace::new();
    let mut fleet = Fleet::new("no-port", 0);
    fleet.devices = 5;
    fleet.steady_s = 2;
    // 192.0.2.1 (TEST-NET-1) is not an address of this host: bind() fails with EADDRNOTAVAIL, as
    // connect() does when the ports of a (source, broker) pair have run out. Nothing is sent there.
    let yaml = fleet.yaml().replace(
        "broker:\n",
        &format!(
            "broker:\n  url: {}\n  source_addresses: [\"192.0.2.1\"]\n",
            broker.url()
        ),
    );
    let scenario = ws.file("s.yaml", &yaml);
    let out = ws.out();
    let done = fleetstorm_env(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(done.code(), Some(3), "{}", done.describe());
    let r = load_report(&out);
    let c = &r.totals.totals.counters;
    let attempts = c.get(Counter::ConnectAttempts);
    assert!(attempts >= 5, "{attempts}");
    assert_eq!(c.get(Counter::ConnectFailNoPort), attempts);
    assert_eq!(c.connect_failures(), attempts);
    assert_eq!(broker.stats().connections_opened, 0);
    // the console's failure breakdown names the reason
    assert!(done.stdout.contains("  no_port"), "{}", done.describe());
}
