//! How a run ends when things go wrong (issue 11, items 3-6 and the two "also" items): interrupted and
//! aborted runs report the time they really ran, a broker that never acknowledges or stops reading
//! cannot hold the run past its drain, devices that cannot hold a connection or cannot start fail the
//! run, the last partial second is in the series, and the connect counters agree with the failure
//! message. Each test runs the real binary against the scripted fault broker (tests/fault/).

mod common;
mod fault;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{load_report, schema_errors, spawn, Fleet, Workspace};
use fault::{FaultBroker, Script};
use fleetstorm::metrics::Counter;
use fleetstorm::report::{Report, RunStatus};

/// How a child process ended, with the CPU time it used (user + system) from `wait4`.
struct Ended {
    code: Option<i32>,
    wall: Duration,
    cpu: Duration,
    stdout: String,
    stderr: String,
}

impl Ended {
    fn describe(&self) -> String {
        format!(
            "exit {:?} after {:.1} s wall, {:.2} s CPU\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

/// Reap `child` (our own, not yet waited for) with `wait4`, polling until `limit` after `started`;
/// kill it by its PID and panic when it does not end in time.
fn reap(ws: &Workspace, child: &mut Child, started: Instant, limit: Duration) -> Ended {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child with pointers to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4 failed");
        if r == pid {
            let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            return Ended {
                code,
                wall: started.elapsed(),
                cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
                stdout: std::fs::read_to_string(ws.stdout_path()).unwrap_or_default(),
                stderr: std::fs::read_to_string(ws.stderr_path()).unwrap_or_default(),
            };
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "fleetstorm did not exit within {limit:?}\n--- stderr ---\n{}",
                std::fs::read_to_string(ws.stderr_path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start `fleetstorm run` on `yaml` against `url`, report into the workspace.
fn start(ws: &Workspace, yaml: &str, url: &str) -> Child {
    let file = ws.file("s.yaml", yaml);
    let out = ws.out();
    spawn(
        ws,
        &[
            "run",
            file.to_str().unwrap(),
            "--broker",
            url,
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
    )
}

/// The drain the CLI gives devices after the last phase (RunOptions' default, used by `run`).
const DRAIN: Duration = Duration::from_secs(5);
/// Start-up, ramp and report writing on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(10);

// ---- item 4: a broker that never acknowledges, or stops reading ---------------------------------

/// Run `fleet` against `broker` and check the run ends on time (steady + drain + slack) without
/// spinning: its CPU time stays a small fraction of its wall time.
fn run_ends_on_time(fleet: &Fleet, broker: &FaultBroker) -> (Ended, Report) {
    let ws = Workspace::new();
    let started = Instant::now();
    let mut child = start(&ws, &fleet.yaml(), &broker.url());
    let limit = Duration::from_secs(fleet.steady_s) + DRAIN + SLACK;
    let run = reap(&ws, &mut child, started, limit + Duration::from_secs(20));
    let ctx = run.describe();
    assert!(
        run.wall <= limit,
        "the drain must end the run: steady {} s + drain {} s + slack {} s\n{ctx}",
        fleet.steady_s,
        DRAIN.as_secs(),
        SLACK.as_secs()
    );
    // A busy loop shows as CPU time close to wall time; an idle waiting run uses a small share.
    assert!(
        run.cpu * 4 < run.wall,
        "the run used {:.2} s of CPU in {:.2} s: a busy loop?\n{ctx}",
        run.cpu.as_secs_f64(),
        run.wall.as_secs_f64()
    );
    assert_eq!(schema_errors(&ws.out()), Vec::<String>::new());
    let r = load_report(&ws.out());
    (run, r)
}

#[test]
fn a_broker_that_never_acknowledges_cannot_hold_the_run_past_the_drain() {
    let broker = FaultBroker::start(Script::new().never_ack());
    let mut fleet = Fleet::new("never-ack", 1);
    fleet.devices = 10;
    fleet.steady_s = 3;
    let (run, r) = run_ends_on_time(&fleet, &broker);
    let ctx = run.describe();
    // A broker that accepts and never acknowledges is a measured result (acked 0), not a runtime
    // failure: the run completes, and gates judge it.
    assert_eq!(run.code, Some(0), "{ctx}");
    assert_eq!(r.outcome.status, RunStatus::Completed, "{ctx}");
    let c = &r.totals.totals.counters;
    let published = c.get(Counter::Published);
    assert!(published > 0, "{ctx}");
    assert_eq!(c.get(Counter::Acked), 0, "{ctx}");
    assert_eq!(
        published,
        c.get(Counter::Acked) + c.get(Counter::PublishFailed) + c.get(Counter::InflightAtEnd),
        "published = acked + publish_failed + inflight_at_end\n{ctx}"
    );
    assert_eq!(c.get(Counter::InflightAtEnd), published, "{ctx}");
    let seen = broker.wait_all_closed(Duration::from_secs(5));
    assert_eq!(
        seen.publishes[1], published,
        "the broker's own count\n{ctx}"
    );
    for (label, g) in common::sections(&r) {
        common::assert_conservation(&label, g);
    }
}

/// A fleet whose payloads are large (a profile of `metrics` long-named values), so a few devices fill a
/// socket's send buffer within a second when the broker stops reading.
fn big_payload_yaml(name: &str, devices: u32, interval_ms: u64, steady_s: u64) -> String {
    let metrics: String = (0..40)
        .map(|i| {
            format!(
                "      - {{ name: m{i:02}_{pad}, model: sine, period: 1m, amplitude: 1 }}\n",
                pad = "x".repeat(100)
            )
        })
        .collect();
    format!(
        "\
name: {name}
seed: 7
broker:
  protocol: \"3.1.1\"
  keep_alive: 30s
  connect_timeout: 5s
  client_id: \"{name}-{{group}}-{{index}}\"
profiles:
  - name: wide
    interval: 1s
    metrics:
{metrics}groups:
  - name: dev
    count: {devices}
    profile: wide
    interval: {interval_ms}ms
    qos: 0
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
phases:
  - ramp: {{ connect_rate: 500/s }}
  - steady: {{ duration: {steady_s}s }}
"
    )
}

#[test]
fn a_broker_that_stops_reading_cannot_hold_the_run_past_the_drain() {
    let broker = FaultBroker::start(
        Script::new()
            .receive_buffer(4096)
            .stop_reading_at(Duration::from_millis(300)),
    );
    // QoS 0: nothing limits what a device writes, so its socket backs up and a flush would wait for a
    // broker that never reads again.
    let name = common::unique("stop-reading");
    let steady_s = 3;
    let yaml = big_payload_yaml(&name, 2, 1, steady_s);
    let ws = Workspace::new();
    let started = Instant::now();
    let mut child = start(&ws, &yaml, &broker.url());
    let limit = Duration::from_secs(steady_s) + DRAIN + SLACK;
    let run = reap(&ws, &mut child, started, limit + Duration::from_secs(20));
    let ctx = run.describe();
    assert!(run.wall <= limit, "the drain must end the run\n{ctx}");
    assert!(
        run.cpu * 4 < run.wall,
        "the run used {:.2} s of CPU in {:.2} s: a busy loop?\n{ctx}",
        run.cpu.as_secs_f64(),
        run.wall.as_secs_f64()
    );
    assert_eq!(run.code, Some(0), "{ctx}");
    let stats = broker.stats();
    assert!(stats.stopped_reading > 0, "{stats:?}\n{ctx}");
    let r = load_report(&ws.out());
    assert!(
        r.totals.totals.counters.get(Counter::Published) > 0,
        "{ctx}"
    );
}
