//! The exit-code contract (DESIGN.md §5), through the binary: 2 for usage and scenario errors (nothing
//! written), 3 for runtime failures with a partial report (broker unreachable, broker lost, Ctrl-C),
//! 0 for `validate` of a shipped scenario, and the table in `--help`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{
    established_to, fleetstorm, listening_ports, load_report, read_packet, schema_errors, spawn,
    subscriber, unique, wait_within, Fleet, Workspace,
};
use fleetstorm::metrics::Counter;
use fleetstorm::report::RunStatus;

/// A valid scenario with `line` appended to its only group (line 6 of the file).
fn scenario_with_group_line(line: &str) -> String {
    format!(
        "name: bad\ngroups:\n  - name: a\n    count: 2\n    profile: energy-meter\n    {line}\n"
    )
}

/// `fleetstorm run <bad file>` exits 2, names file, line and key path, and writes nothing.
fn assert_scenario_refused(line: &str, key_path: &str) {
    let ws = Workspace::new();
    let file = ws.file("bad.yaml", &scenario_with_group_line(line));
    let file = file.to_str().unwrap();
    let out = ws.out();
    let run = fleetstorm(&["run", file, "--no-progress", "--out", out.to_str().unwrap()]);
    let ctx = run.describe();
    assert_eq!(run.code(), Some(2), "{ctx}");
    assert!(
        run.stderr.contains(&format!("{file}:6:")),
        "file and line\n{ctx}"
    );
    assert!(
        run.stderr.contains(key_path),
        "key path `{key_path}`\n{ctx}"
    );
    assert!(run.stderr.contains("hint:"), "a hint\n{ctx}");
    assert!(!out.exists(), "nothing may be written under --out\n{ctx}");

    let check = fleetstorm(&["validate", file]);
    assert_eq!(check.code(), Some(2), "validate too\n{}", check.describe());
    assert!(check.stderr.contains(key_path), "{}", check.describe());
}

#[test]
fn unknown_key_exits_2_naming_file_line_and_key() {
    assert_scenario_refused("qoss: 1", "groups[0].qoss");
}

#[test]
fn qos_3_exits_2_naming_file_line_and_key() {
    assert_scenario_refused("qos: 3", "groups[0].qos");
}

#[test]
fn malformed_broker_flag_exits_2_naming_the_flag() {
    let ws = Workspace::new();
    let fleet = Fleet::new("bad-broker", 0);
    let file = ws.file("s.yaml", &fleet.yaml());
    let out = ws.out();
    for url in [
        "not a url",
        "http://127.0.0.1:1883",
        "mqtt://127.0.0.1:notaport",
    ] {
        let run = fleetstorm(&[
            "run",
            file.to_str().unwrap(),
            "--broker",
            url,
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ]);
        let ctx = run.describe();
        assert_eq!(run.code(), Some(2), "--broker {url}\n{ctx}");
        assert!(run.stderr.contains("--broker"), "names the flag\n{ctx}");
        assert!(!out.exists(), "nothing may be written under --out\n{ctx}");
    }
}

/// A loopback port nobody listens on: bound by the kernel, then closed.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

#[test]
fn unreachable_broker_exits_3_quickly_with_a_report() {
    let ws = Workspace::new();
    let mut fleet = Fleet::new("unreachable", 1);
    fleet.devices = 10;
    fleet.steady_s = 30;
    fleet.connect_timeout_s = 1;
    let file = ws.file("s.yaml", &fleet.yaml());
    let url = format!("mqtt://127.0.0.1:{}", closed_port());
    let out = ws.out();
    let started = Instant::now();
    let mut child = spawn(
        &ws,
        &[
            "run",
            file.to_str().unwrap(),
            "--broker",
            &url,
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let run = wait_within(&ws, &mut child, started, Duration::from_secs(25));
    let ctx = run.describe();
    assert_eq!(run.code(), Some(3), "{ctx}");
    assert!(
        run.elapsed < Duration::from_secs(15),
        "an unreachable broker must end the run well before the 30 s steady phase\n{ctx}"
    );
    assert!(
        run.stderr.contains("no device could connect"),
        "explains why\n{ctx}"
    );
    assert!(
        run.stderr.contains("reachable"),
        "suggests checking the broker\n{ctx}"
    );

    assert_eq!(schema_errors(&out), Vec::<String>::new());
    let r = load_report(&out);
    assert_eq!(r.outcome.status, RunStatus::BrokerUnreachable, "{ctx}");
    assert!(r.summary.connect_failures > 0, "{:?}", r.summary);
    assert_eq!(r.summary.connect_successes, 0);
    assert!(r.totals.totals.counters.get(Counter::ConnectFailRefused) > 0);
    assert_eq!(r.totals.totals.counters.get(Counter::Published), 0);
}

/// Wait until every device of `fleet` is connected to the child's embedded broker and publishing:
/// find the broker's listeners, subscribe to the fleet's topics, count the connections to that port
/// (devices + this observer), then read until a PUBLISH arrives.
fn wait_until_fleet_publishes(pid: u32, fleet: &Fleet, deadline: Instant) {
    let filter = format!("fleetstorm-test/{}/#", fleet.name);
    let (port, mut sub) = loop {
        assert!(
            Instant::now() < deadline,
            "no embedded broker listener showed up"
        );
        let found = listening_ports(pid)
            .into_iter()
            .find_map(|port| subscriber(port, &unique("observer"), &filter).map(|s| (port, s)));
        match found {
            Some(f) => break f,
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let want = fleet.devices as usize + 1;
    while established_to(port) < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} connections to the embedded broker came up",
            established_to(port)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        assert!(Instant::now() < deadline, "no PUBLISH observed on {filter}");
        match read_packet(&mut sub) {
            Some((first, _)) if first >> 4 == 3 => return,
            // other packets (SUBACK), or a read timeout: keep reading until the deadline
            Some(_) | None => {}
        }
    }
}

#[test]
fn ctrl_c_exits_3_with_an_interrupted_report() {
    let ws = Workspace::new();
    let mut fleet = Fleet::new("ctrl-c", 1);
    fleet.devices = 20;
    fleet.steady_s = 60;
    let file = ws.file("s.yaml", &fleet.yaml());
    let out = ws.out();
    let started = Instant::now();
    let mut child = spawn(
        &ws,
        &[
            "run",
            file.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    wait_until_fleet_publishes(child.id(), &fleet, started + Duration::from_secs(15));
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: `pid` is our own child, which has not been waited for, so it cannot have been reused.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "send SIGINT");
    let signalled = Instant::now();
    let run = wait_within(&ws, &mut child, started, Duration::from_secs(40));
    let ctx = run.describe();
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "the run must stop within a few seconds of SIGINT\n{ctx}"
    );
    assert_eq!(run.code(), Some(3), "{ctx}");
    assert!(run.stderr.contains("interrupted"), "{ctx}");

    assert_eq!(schema_errors(&out), Vec::<String>::new());
    let r = load_report(&out);
    assert_eq!(r.outcome.status, RunStatus::Interrupted, "{ctx}");
    let totals = &r.totals.totals.counters;
    assert!(
        totals.get(Counter::Published) > 0,
        "published before the signal\n{ctx}"
    );
    assert_eq!(
        r.summary.connect_successes,
        u64::from(fleet.devices),
        "{ctx}"
    );
    common::assert_conservation("run totals", &r.totals.totals);
}

#[test]
fn help_lists_the_exit_codes() {
    // The top level and `run` list all four codes (each other command lists its own: tests/cli_docs.rs).
    for args in [&["--help"][..], &["run", "--help"]] {
        let h = fleetstorm(args);
        let ctx = h.describe();
        assert_eq!(h.code(), Some(0), "{args:?}\n{ctx}");
        assert!(h.stdout.contains("Exit codes"), "{args:?}\n{ctx}");
        let zero = if args.len() == 1 {
            "success"
        } else {
            "completed"
        };
        for (code, words) in [
            ("0", zero),
            ("1", "gate failed"),
            ("2", "usage or scenario error"),
            ("3", "runtime failure"),
        ] {
            let listed = h
                .stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{code} ")) && l.contains(words));
            assert!(
                listed,
                "{args:?}: no line for exit code {code} ({words})\n{ctx}"
            );
        }
    }
}

#[test]
fn validate_quickstart_exits_0() {
    let v = fleetstorm(&["validate", "scenarios/quickstart.yaml"]);
    let ctx = v.describe();
    assert_eq!(v.code(), Some(0), "{ctx}");
    assert!(
        v.stdout.contains("scenarios/quickstart.yaml: valid"),
        "{ctx}"
    );
    assert!(v.stdout.contains("1000 devices"), "{ctx}");
}

// ---- broker lost: a scripted fake broker --------------------------------------------------------

/// A fake MQTT broker on 127.0.0.1:0: answers every CONNECT with a successful CONNACK, reads and
/// discards whatever follows, and once `devices` clients have connected and `serve_for` has passed,
/// closes every connection and stops listening.
struct FlakyBroker {
    port: u16,
    thread: JoinHandle<usize>,
}

impl FlakyBroker {
    fn start(devices: usize, serve_for: Duration) -> FlakyBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let thread = std::thread::spawn(move || {
            let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
            let mut connacked = 0usize;
            let mut readers = Vec::new();
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let give_up = Instant::now() + Duration::from_secs(20);
            let mut all_since: Option<Instant> = None;
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        conns.lock().unwrap().push(stream.try_clone().unwrap());
                        let tx = tx.clone();
                        readers.push(std::thread::spawn(move || serve(stream, &tx)));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
                connacked += rx.try_iter().count();
                if all_since.is_none() && connacked >= devices {
                    all_since = Some(Instant::now());
                }
                let now = Instant::now();
                if all_since.is_some_and(|t| now >= t + serve_for) || now >= give_up {
                    break;
                }
            }
            drop(listener);
            for c in conns.lock().unwrap().iter() {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
            for r in readers {
                let _ = r.join();
            }
            connacked
        });
        FlakyBroker { port, thread }
    }
}

/// One connection: CONNECT → CONNACK (accepted), then read and discard until closed.
fn serve(mut s: TcpStream, connacked: &std::sync::mpsc::Sender<()>) {
    match read_packet(&mut s) {
        Some((first, _)) if first >> 4 == 1 => {}
        _ => return,
    }
    if std::io::Write::write_all(&mut s, &[0x20, 0x02, 0x00, 0x00]).is_err() {
        return;
    }
    let _ = connacked.send(());
    while read_packet(&mut s).is_some() {}
}

/// Run a fleet of 10 QoS 0 devices against a broker that vanishes after `serve_for`.
fn run_against_vanishing_broker(tag: &str, serve_for: Duration) {
    let mut fleet = Fleet::new(tag, 0);
    fleet.devices = 10;
    fleet.steady_s = 30;
    fleet.connect_timeout_s = 1;
    fleet.keep_alive_s = 0;
    let broker = FlakyBroker::start(fleet.devices as usize, serve_for);
    let ws = Workspace::new();
    let file = ws.file("s.yaml", &fleet.yaml());
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let out = ws.out();
    let started = Instant::now();
    let mut child = spawn(
        &ws,
        &[
            "run",
            file.to_str().unwrap(),
            "--broker",
            &url,
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let run = wait_within(&ws, &mut child, started, Duration::from_secs(45));
    let served = broker.thread.join().expect("fake broker");
    let ctx = run.describe();
    assert_eq!(
        served, fleet.devices as usize,
        "every device connected once\n{ctx}"
    );
    assert_eq!(run.code(), Some(3), "{ctx}");
    assert!(
        run.elapsed < Duration::from_secs(25),
        "a lost broker must end the run well before the 30 s steady phase (loss budget 10 s)\n{ctx}"
    );
    assert!(run.stderr.contains("lost"), "explains why\n{ctx}");

    assert_eq!(schema_errors(&out), Vec::<String>::new());
    let r = load_report(&out);
    assert_eq!(r.outcome.status, RunStatus::BrokerLost, "{ctx}");
    let c = &r.totals.totals.counters;
    assert_eq!(
        r.summary.connect_successes,
        u64::from(fleet.devices),
        "{ctx}"
    );
    assert!(c.disconnects() > 0, "disconnects counted\n{ctx}");
    assert!(
        r.summary.connect_failures > 0,
        "failed reconnects counted\n{ctx}"
    );
}

#[test]
fn broker_lost_after_a_second_exits_3_with_a_report() {
    run_against_vanishing_broker("lost", Duration::from_millis(1500));
}

/// Regression: a broker that accepts CONNECT and then drops everyone at once (before the 1 Hz
/// watchdog ever sees a device connected) is still a lost broker, not a completed run.
#[test]
fn broker_that_drops_every_connection_at_once_is_lost() {
    run_against_vanishing_broker("lost-at-once", Duration::ZERO);
}
