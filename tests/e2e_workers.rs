//! Worker processes under failure, and source-address pools on the wire.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::time::{Duration, Instant};

use common::{load_report, spawn, wait_within, Fleet, Workspace};
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

#[test]
fn a_dead_worker_is_named_and_the_run_still_reports() {
    let ws = Workspace::new();
    let mut fleet = Fleet::new("dead-worker", 1);
    fleet.devices = 40;
    fleet.steady_s = 4;
    let scenario = ws.file("w.yaml", &fleet.yaml());
    let out = ws.out();
    let started = Instant::now();
    let mut parent = spawn(
        &ws,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--workers",
            "2",
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    // Wait (with a deadline) until both workers run, then kill the second one hard.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut kids = Vec::new();
    while kids.len() < 2 && Instant::now() < deadline {
        kids = children(parent.id());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(kids.len(), 2, "workers did not start");
    // let them connect and publish for a moment: poll the first worker's sockets
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && std::fs::read_dir(format!("/proc/{}/fd", kids[1])).map_or(0, |d| d.count()) < 20
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let victim = *kids.iter().max().unwrap();
    // SAFETY: kill(2) on a PID this test's child started.
    unsafe {
        libc::kill(victim as libc::pid_t, libc::SIGKILL);
    }
    let done = wait_within(&ws, &mut parent, started, Duration::from_secs(40));
    assert_eq!(done.code(), Some(3), "{}", done.describe());
    let r = load_report(&out);
    assert_eq!(r.outcome.status, RunStatus::WorkerFailed, "{:?}", r.outcome);
    assert!(
        r.outcome.message.contains("/2 exited with"),
        "{}",
        r.outcome.message
    );
    // the surviving shard's measurements are all there
    let ok = r.totals.totals.counters.get(Counter::ConnectSuccesses);
    assert!(ok >= 20, "{ok}");
    assert!(r.totals.totals.counters.get(Counter::Published) > 0);
}

/// Local `address:port` of each established connection to `port` on loopback, from /proc/net/tcp, without
/// repeats: the kernel builds that file chunk by chunk, so while other tests open and close sockets one read can
/// list a connection twice (or miss one, which the caller's polling rides out).
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
