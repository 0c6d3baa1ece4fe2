//! Worker processes under failure, and source-address pools on the wire.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::time::{Duration, Instant};

use common::{load_report, local_addresses_to, spawn, wait_within, Fleet, Workspace};
use fleetstorm::metrics::Counter;
use fleetstorm::report::RunStatus;

/// Child PIDs of `pid` (Linux: /proc/<pid>/task/<pid>/children).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The shard a worker process runs (`--shard i/N` on its command line).
fn shard_of(pid: u32) -> Option<u32> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let at = args.iter().position(|a| *a == b"--shard")?;
    let value = std::str::from_utf8(args.get(at + 1)?).ok()?;
    value.split('/').next()?.parse().ok()
}

/// Bytes a process wrote so far through write(2) (/proc/<pid>/io `wchar`; socket sends are not
/// counted), 0 when unreadable. A worker writes little else than its once-a-second tick line (about
/// 1.4 KB of JSON) to the parent's pipe.
fn writes_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `wchar` once a worker wrote two tick lines.
const TWO_TICKS: u64 = 2_500;

/// Run 60 devices and an observer over 3 worker processes, SIGKILL the worker of shard `victim` once
/// its devices are publishing, and return the merged report.
fn run_and_kill_shard(tag: &str, victim: u32) -> fleetstorm::report::Report {
    let ws = Workspace::new();
    let mut fleet = Fleet::new(tag, 1);
    fleet.devices = 60;
    fleet.steady_s = 4;
    let yaml = format!(
        "{}observers:\n  - name: audit\n    count: 1\n",
        fleet.yaml()
    );
    let scenario = ws.file("w.yaml", &yaml);
    let out = ws.out();
    let started = Instant::now();
    let mut parent = spawn(
        &ws,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--workers",
            "3",
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    // Wait (with a deadline) until the three workers run, then find the victim's process.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut kids = Vec::new();
    while kids.len() < 3 && Instant::now() < deadline {
        kids = children(parent.id());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(kids.len(), 3, "workers did not start");
    let pid = *kids
        .iter()
        .find(|&&k| shard_of(k) == Some(victim))
        .unwrap_or_else(|| panic!("no worker runs shard {victim}"));
    // Let its devices connect and publish for a while: wait until the worker has sent two tick lines
    // (two seconds into the run; the ramp takes 0.12 s, the steady phase 4 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && writes_of(pid) < TWO_TICKS {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        writes_of(pid) >= TWO_TICKS,
        "shard {victim} did not get going"
    );
    // SAFETY: kill(2) on a PID this test's child started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    let done = wait_within(&ws, &mut parent, started, Duration::from_secs(40));
    assert_eq!(done.code(), Some(3), "{}", done.describe());
    assert!(
        common::schema_errors(&out).is_empty(),
        "{:?}",
        common::schema_errors(&out)
    );
    let r = load_report(&out);
    assert_eq!(r.outcome.status, RunStatus::WorkerFailed, "{:?}", r.outcome);
    assert!(
        r.outcome
            .message
            .contains(&format!("shard {victim}/3 exited with")),
        "{}",
        r.outcome.message
    );
    assert_eq!(r.missing_shards.len(), 1, "{:?}", r.missing_shards);
    let m = &r.missing_shards[0];
    assert_eq!((m.shard, m.of, m.devices), (victim, 3, 20));
    assert!(m.exit.contains('9'), "{}", m.exit);
    r
}

/// Every identity of reports/README.md, in every section (each phase and the run; each group and all).
fn assert_identities(r: &fleetstorm::report::Report) {
    for p in r.phases.iter().chain(std::iter::once(&r.totals)) {
        for (g, section) in p
            .groups
            .iter()
            .chain(std::iter::once((&"all".to_owned(), &p.totals)))
        {
            let at = format!("{}/{g}", p.name);
            let c = &section.counters;
            let d = &section.deliveries;
            assert_eq!(
                c.get(Counter::Published),
                c.get(Counter::Acked)
                    + c.get(Counter::PublishFailed)
                    + c.get(Counter::InflightAtEnd),
                "{at}: published = acked + publish_failed + inflight_at_end"
            );
            assert_eq!(d.expected, c.get(Counter::ExpectedDeliveries), "{at}");
            assert!(
                d.received + d.unobserved <= d.expected,
                "{at}: received {} + unobserved {} beyond expected {}",
                d.received,
                d.unobserved,
                d.expected
            );
            assert_eq!(d.received, c.get(Counter::Received), "{at}");
            assert_eq!(
                d.unobserved,
                c.get(Counter::Unobserved),
                "{at}: nothing capped"
            );
            assert_eq!(
                d.expected,
                d.received + d.lost + d.unobserved,
                "{at}: expected = received + lost + unobserved"
            );
        }
    }
}

#[test]
fn a_dead_worker_is_named_and_the_accounting_leaves_its_devices_out() {
    let r = run_and_kill_shard("dead-worker", 1);
    assert!(
        r.outcome.message.contains("left out"),
        "{}",
        r.outcome.message
    );
    assert_identities(&r);
    let t = &r.totals.totals;
    // the surviving shards' measurements are all there, and the observer saw all their deliveries
    let ok = t.counters.get(Counter::ConnectSuccesses);
    assert!(ok >= 40, "{ok}");
    assert!(t.counters.get(Counter::Published) > 0);
    assert!(t.deliveries.received > 0);
    assert_eq!(t.deliveries.unobserved, 0);
    assert_eq!(t.deliveries.lost, 0, "{:?}", t.deliveries);
    // the observed counts of the dead shard were removed, not merely capped
    assert!(r
        .histograms
        .phases
        .iter()
        .flat_map(|p| &p.groups)
        .all(|g| !g.observed_by_shard.contains_key(&1)));
}

#[test]
fn without_the_observing_shard_the_other_shards_deliveries_are_unobserved() {
    let r = run_and_kill_shard("dead-observer", 0);
    assert!(
        r.outcome.message.contains("observers ran in it"),
        "{}",
        r.outcome.message
    );
    assert_identities(&r);
    let t = &r.totals.totals;
    assert!(t.counters.get(Counter::ConnectSuccesses) >= 40);
    assert!(t.deliveries.expected > 0);
    assert_eq!(t.deliveries.received, 0, "nobody observed");
    assert_eq!(t.deliveries.unobserved, t.deliveries.expected);
    assert_eq!(t.deliveries.lost, 0);
}

#[test]
fn source_address_pool_spreads_connections() {
    let ws = Workspace::new();
    let mut fleet = Fleet::new("srcpool", 0);
    fleet.devices = 30;
    fleet.steady_s = 3;
    let yaml = fleet.yaml().replace(
        "broker:\n",
        "broker:\n  source_addresses: [\"127.0.0.2-127.0.0.4\"]\n",
    );
    let scenario = ws.file("s.yaml", &yaml);
    let out = ws.out();
    let started = Instant::now();
    let mut child = spawn(
        &ws,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    // the embedded broker's port: the one the child listens on
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while seen.len() < 30 && Instant::now() < deadline {
        for port in common::listening_ports(child.id()) {
            let a = local_addresses_to(port);
            if a.len() > seen.len() {
                seen = a;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let done = wait_within(&ws, &mut child, started, Duration::from_secs(30));
    assert_eq!(done.code(), Some(0), "{}", done.describe());
    seen.sort();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for local in seen {
        let a = local.split(':').next().unwrap_or("").to_owned();
        match counts.iter_mut().find(|(x, _)| *x == a) {
            Some((_, n)) => *n += 1,
            None => counts.push((a, 1)),
        }
    }
    // 127.0.0.2, .3, .4 as /proc/net/tcp writes them (little-endian hex), 10 devices each
    assert_eq!(
        counts,
        vec![
            ("0200007F".to_owned(), 10),
            ("0300007F".to_owned(), 10),
            ("0400007F".to_owned(), 10)
        ]
    );
}
