//! How a run ends when things go wrong (issue 11, items 3-6 and the two "also" items): interrupted and
//! aborted runs report the time they really ran, a broker that never acknowledges or stops reading
//! cannot hold the run past its drain, devices that cannot hold a connection or cannot start fail the
//! run, the last partial second is in the series, and the connect counters agree with the failure
//! message. Each test runs the real binary against the scripted fault broker (tests/fault/).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

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
    start_with(ws, yaml, url, &[])
}

/// [`start`] with more arguments.
fn start_with(ws: &Workspace, yaml: &str, url: &str, extra: &[&str]) -> Child {
    let file = ws.file("s.yaml", yaml);
    let out = ws.out();
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--broker",
        url,
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    spawn(ws, &args)
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

// ---- item 3: an interrupted or aborted run reports the time it really ran ------------------------

/// Wait until the broker has received `n` publishes (the steady phase is under way).
fn wait_for_publishes(broker: &FaultBroker, n: u64, ws: &Workspace) {
    let ok = fault::poll_until(Duration::from_secs(20), || {
        broker.stats().publishes_total() >= n
    });
    assert!(
        ok,
        "only {} publishes arrived\n{}",
        broker.stats().publishes_total(),
        std::fs::read_to_string(ws.stderr_path()).unwrap_or_default()
    );
}

/// The steady phase of `r` ended early, at the run's stop, and its rate is over the time it ran: the
/// schedule's rate (devices / interval) within one slot per device at each end of the window.
fn assert_steady_clipped(r: &Report, fleet: &Fleet, ctx: &str) {
    let p = steady(r);
    let planned_s = fleet.steady_s as f64;
    assert!(
        p.duration_s < planned_s,
        "steady lasted {} s of {planned_s} s planned: its window must end when the run stopped\n{ctx}",
        p.duration_s
    );
    assert!(p.end_us <= r.ended_at_us, "{ctx}");
    let ran_s = (p.end_us - p.start_us) as f64 / 1e6;
    assert!((p.duration_s - ran_s).abs() < 1e-6, "{ctx}");
    let published = p.totals.counters.get(Counter::Published) as f64;
    let rate = p.totals.rates.published_per_s;
    assert!(
        (rate * p.duration_s - published).abs() < 1.0,
        "published_per_s {rate} is not published {published} over {} s\n{ctx}",
        p.duration_s
    );
    assert!(
        r.summary.phase_duration_s == p.duration_s,
        "summary phase duration\n{ctx}"
    );
    // The phases after the stop did not run: zero length.
    let after: Vec<_> = r
        .phases
        .iter()
        .skip_while(|x| x.name != p.name)
        .skip(1)
        .collect();
    for x in after {
        assert_eq!(x.duration_s, 0.0, "phase {} never started\n{ctx}", x.name);
    }
    let _ = fleet;
}

fn steady(r: &Report) -> &fleetstorm::report::PhaseReport {
    r.phases
        .iter()
        .find(|p| p.name.starts_with("steady"))
        .expect("a steady phase")
}

/// Interrupt a run (started with `extra` arguments) two seconds into a 36 s steady phase.
fn interrupted_run(tag: &str, extra: &[&str]) {
    let broker = FaultBroker::start(Script::new());
    let mut fleet = Fleet::new(tag, 1);
    fleet.devices = 10;
    fleet.steady_s = 36;
    let yaml = fleet.yaml().replace(
        "  - steady: { duration: 36s }\n",
        "  - steady: { duration: 36s }\n  - { name: tail, steady: { duration: 5s } }\n",
    );
    let ws = Workspace::new();
    let started = Instant::now();
    let mut child = start_with(&ws, &yaml, &broker.url(), extra);
    // Two seconds of the schedule (10 devices every 100 ms) have arrived: well inside the steady phase.
    wait_for_publishes(&broker, 200, &ws);
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: `pid` is our own child, which has not been waited for, so it cannot have been reused.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "send SIGINT");
    let run = reap(&ws, &mut child, started, Duration::from_secs(40));
    let ctx = run.describe();
    assert_eq!(run.code, Some(3), "{ctx}");
    assert_eq!(schema_errors(&ws.out()), Vec::<String>::new());
    let r = load_report(&ws.out());
    assert_eq!(r.outcome.status, RunStatus::Interrupted, "{ctx}");
    assert_steady_clipped(&r, &fleet, &ctx);
    // The schedule's rate, within one slot per device at each end of the window it ran.
    let p = steady(&r);
    let nominal = f64::from(fleet.devices) * 1000.0 / fleet.interval_ms as f64;
    let tolerance = 2.0 * f64::from(fleet.devices) / p.duration_s;
    assert!(
        (p.totals.rates.published_per_s - nominal).abs() <= tolerance,
        "steady published_per_s {} vs the schedule's {nominal}/s ± {tolerance:.1}\n{ctx}",
        p.totals.rates.published_per_s
    );
    // The signal came once the broker had its 200 publishes: the phase ran at least ~2 s.
    assert!(p.duration_s >= 1.0, "{ctx}");
}

#[test]
fn an_interrupted_run_reports_the_phase_it_cut_short_at_its_real_rate() {
    interrupted_run("interrupted-rate", &[]);
}

/// The same through worker processes: the parent merges its shards' phases, clipped too.
#[test]
fn an_interrupted_run_of_worker_processes_reports_the_phase_it_cut_short() {
    interrupted_run("interrupted-workers", &["--workers", "2"]);
}

#[test]
fn a_run_aborted_as_broker_lost_reports_the_phase_until_the_abort() {
    let broker = FaultBroker::start(Script::new());
    let mut fleet = Fleet::new("lost-rate", 1);
    fleet.devices = 10;
    fleet.steady_s = 60;
    fleet.connect_timeout_s = 1;
    let ws = Workspace::new();
    let started = Instant::now();
    let mut child = start(&ws, &fleet.yaml(), &broker.url());
    wait_for_publishes(&broker, 100, &ws);
    // The broker goes away for good: the loss budget (max(2 × 1 s, 10 s)) ends the run.
    drop(broker);
    let run = reap(&ws, &mut child, started, Duration::from_secs(50));
    let ctx = run.describe();
    assert_eq!(run.code, Some(3), "{ctx}");
    assert_eq!(schema_errors(&ws.out()), Vec::<String>::new());
    let r = load_report(&ws.out());
    assert_eq!(r.outcome.status, RunStatus::BrokerLost, "{ctx}");
    assert_steady_clipped(&r, &fleet, &ctx);
    // The phase ran until the watchdog stopped the run: past the loss budget, and the run ended
    // right after (the stop is within one watchdog tick of the budget).
    let p = steady(&r);
    assert!(p.duration_s >= 10.0, "{ctx}");
    assert!(r.ended_at_us - p.end_us < 1_000_000, "{ctx}");
}

// ---- item 5: devices that cannot hold a connection fail the run ----------------------------------

/// A short QoS 1 run against `broker`, which lets devices connect but not stay: exit 3, broker lost,
/// a message saying so, and the report written with the disconnect reason counted.
fn run_that_cannot_hold_connections(tag: &str, broker: &FaultBroker, reason: Counter, words: &str) {
    let mut fleet = Fleet::new(tag, 1);
    fleet.devices = 10;
    fleet.steady_s = 3;
    fleet.connect_timeout_s = 1;
    let ws = Workspace::new();
    let started = Instant::now();
    let mut child = start(&ws, &fleet.yaml(), &broker.url());
    let run = reap(&ws, &mut child, started, Duration::from_secs(40));
    let ctx = run.describe();
    assert_eq!(run.code, Some(3), "{ctx}");
    assert!(
        run.stderr.contains("could not hold a connection"),
        "says what happened\n{ctx}"
    );
    assert!(
        run.stderr.contains(words),
        "names the reason `{words}`\n{ctx}"
    );
    assert_eq!(schema_errors(&ws.out()), Vec::<String>::new());
    let r = load_report(&ws.out());
    assert_eq!(r.outcome.status, RunStatus::BrokerLost, "{ctx}");
    let c = &r.totals.totals.counters;
    assert!(c.get(Counter::ConnectSuccesses) > 0, "{ctx}");
    assert!(c.get(reason) > 0, "{} counted\n{ctx}", reason.name());
    assert!(broker.stats().connacks > 0, "{ctx}");
    // The message's figures are the report's.
    assert!(
        r.outcome.message.contains(&format!(
            "{} connections came up",
            c.get(Counter::ConnectSuccesses)
        )),
        "{}\n{ctx}",
        r.outcome.message
    );
}

#[test]
fn a_broker_that_drops_every_connection_after_connack_fails_the_run() {
    let broker = FaultBroker::start(Script::new().drop_after_connack());
    run_that_cannot_hold_connections(
        "drop-after-connack",
        &broker,
        Counter::DisconnectClosed,
        "closed by the broker",
    );
    assert!(broker.stats().dropped_after_connack > 0);
}

#[test]
fn a_broker_that_sends_garbage_after_connack_fails_the_run() {
    // A PUBLISH with QoS 3: malformed.
    let broker = FaultBroker::start(Script::new().after_connack(&[0x36, 0x00]));
    run_that_cannot_hold_connections(
        "garbage-after-connack",
        &broker,
        Counter::DisconnectProtocol,
        "protocol errors",
    );
}

#[test]
fn a_broker_that_sends_an_oversized_packet_after_connack_fails_the_run() {
    // A PUBLISH header claiming 256 MiB - 1 bytes: over what a client accepts.
    let broker = FaultBroker::start(Script::new().after_connack(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F]));
    run_that_cannot_hold_connections(
        "oversized-after-connack",
        &broker,
        Counter::DisconnectProtocol,
        "protocol errors",
    );
}

// ---- also (a): the last partial second is in the series -----------------------------------------

/// A 2.5 s steady phase run with `extra` arguments: its series ends with the partial last second.
fn series_with_partial_second(tag: &str, extra: &[&str]) {
    let broker = FaultBroker::start(Script::new());
    let mut fleet = Fleet::new(tag, 0);
    fleet.devices = 10;
    fleet.steady_s = 2;
    // 2.5 s of steady: the run ends half-way through a second.
    let yaml = fleet
        .yaml()
        .replace("steady: { duration: 2s }", "steady: { duration: 2500ms }");
    let ws = Workspace::new();
    let started = Instant::now();
    let mut child = start_with(&ws, &yaml, &broker.url(), extra);
    let run = reap(&ws, &mut child, started, Duration::from_secs(30));
    let ctx = run.describe();
    assert_eq!(run.code, Some(0), "{ctx}");
    assert_eq!(schema_errors(&ws.out()), Vec::<String>::new());
    let r = load_report(&ws.out());
    let last = r.series.last().expect("a series");
    assert!(
        last.window_s > 0.0 && last.window_s < 1.0,
        "the last point is the partial second: {last:?}\n{ctx}"
    );
    for p in &r.series[..r.series.len() - 1] {
        assert_eq!(p.window_s, 1.0, "{p:?}");
    }
    // The series adds up to the run: every publish is in some point (the partial one scaled back).
    let in_series: f64 = r
        .series
        .iter()
        .map(|p| p.publishes_per_s as f64 * p.window_s)
        .sum();
    let published = r.totals.totals.counters.get(Counter::Published) as f64;
    assert!(
        (in_series - published).abs() <= 1.0,
        "series holds {in_series} publishes, the run {published}\n{ctx}"
    );
    // And at its real rate: the schedule's, within one slot per device over the window.
    let nominal = f64::from(fleet.devices) * 1000.0 / fleet.interval_ms as f64;
    let tolerance = 2.0 * f64::from(fleet.devices) / last.window_s;
    assert!(
        (last.publishes_per_s as f64 - nominal).abs() <= tolerance,
        "last point {}/s vs {nominal}/s ± {tolerance:.0}\n{ctx}",
        last.publishes_per_s
    );
}

#[test]
fn the_series_ends_with_the_last_partial_second_at_its_real_rate() {
    series_with_partial_second("partial-second", &[]);
}

#[test]
fn the_series_of_worker_processes_ends_with_the_last_partial_second() {
    series_with_partial_second("partial-second-workers", &["--workers", "2"]);
}

// ---- also (b): connect counters agree with the failure message -----------------------------------

#[test]
fn a_broker_that_never_sends_connack_gets_a_message_that_matches_the_counters() {
    let broker = FaultBroker::start(Script::new().no_connack());
    let mut fleet = Fleet::new("no-connack", 1);
    fleet.devices = 10;
    fleet.steady_s = 30;
    // Connects spread over 2 s with a 3 s timeout: when the watchdog gives up (all 10 failed, about
    // 4.8 s in), retries that started after the first failures are still waiting.
    fleet.connect_rate_per_s = 5;
    fleet.connect_timeout_s = 3;
    let ws = Workspace::new();
    let started = Instant::now();
    let mut child = start(&ws, &fleet.yaml(), &broker.url());
    let run = reap(&ws, &mut child, started, Duration::from_secs(40));
    let ctx = run.describe();
    assert_eq!(run.code, Some(3), "{ctx}");
    assert_eq!(schema_errors(&ws.out()), Vec::<String>::new());
    let r = load_report(&ws.out());
    assert_eq!(r.outcome.status, RunStatus::BrokerUnreachable, "{ctx}");
    let c = &r.totals.totals.counters;
    let attempts = c.get(Counter::ConnectAttempts);
    let failed = c.connect_failures();
    let waiting = c.get(Counter::ConnectAbandoned);
    assert_eq!(
        attempts,
        c.get(Counter::ConnectSuccesses) + failed + waiting,
        "connect_attempts = connect_successes + connect_fail_* + connect_abandoned\n{ctx}"
    );
    assert!(
        waiting > 0,
        "retries were in flight when the run stopped\n{ctx}"
    );
    assert_eq!(c.get(Counter::ConnectFailTimeout), failed, "{ctx}");
    let m = &r.outcome.message;
    for part in [
        format!("{attempts} attempts in all"),
        format!("{failed} attempts failed"),
        format!("{failed} timed out"),
        format!("{waiting} still waiting"),
    ] {
        assert!(m.contains(&part), "message lacks `{part}`: {m}\n{ctx}");
    }
    assert!(run.stderr.contains(m.as_str()), "{ctx}");
    assert_eq!(r.summary.connect_attempts, attempts);
}

// ---- item 6: a device that cannot start is counted and fails the run -----------------------------

#[test]
fn devices_that_cannot_start_at_runtime_are_counted_and_fail_the_run() {
    use fleetstorm::engine::{self, RunOptions};
    use fleetstorm::plan::{Plan, Shard};
    use fleetstorm::scenario::template::Template;
    use fleetstorm::scenario::Overrides;

    let broker = FaultBroker::start(Script::new());
    // Two groups: `dev` is fine, `bad` gets a topic no MQTT packet can carry. Validation refuses such
    // a file, so the scenario is changed after it: what the engine does with what validation missed.
    let mut fleet = Fleet::new("cannot-start", 0);
    fleet.devices = 3;
    fleet.steady_s = 30;
    let yaml = fleet.yaml().replace(
        "phases:\n",
        "  - { name: bad, count: 2, profile: energy-meter, interval: 100ms }\nphases:\n",
    );
    let scenario = fleetstorm::scenario::parse(&yaml, "x.yaml");
    let mut scenario = scenario
        .expect("a valid scenario")
        .apply_overrides(&Overrides {
            broker: Some(broker.url()),
            ..Overrides::default()
        })
        .expect("broker override");
    let bad = scenario
        .groups
        .iter()
        .position(|g| g.name == "bad")
        .expect("group bad");
    scenario.groups[bad].topic = Template::parse(&"t".repeat(70_000)).unwrap();
    let plan = Plan::new(scenario, Shard::default());
    let started = Instant::now();
    let out = engine::run(
        &plan,
        &RunOptions {
            threads: 1,
            drain: Duration::from_secs(1),
            ..RunOptions::default()
        },
    )
    .expect("the run returns a report");
    assert_eq!(
        out.outcome.status,
        RunStatus::DevicesFailed,
        "{:?}",
        out.outcome
    );
    assert!(
        out.outcome.message.contains("2 devices could not start"),
        "{}",
        out.outcome.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(fleet.steady_s),
        "the run stops at the next watchdog check, not at the end of the 30 s phase"
    );
    let c = out.snapshot.counter_totals();
    assert_eq!(c.get(Counter::DevicesFailedToStart), 2);
    // The healthy group did run.
    assert_eq!(c.get(Counter::ConnectSuccesses), u64::from(fleet.devices));
}
