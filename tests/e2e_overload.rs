//! Overload, the other thing stress tests provoke: local ports that run out, a broker that cannot keep
//! up with the schedule (phases still end on time; what could not go out is counted), and a send queue
//! that would otherwise hide what never left the host.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;
mod fault;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fleetstorm_env, load_report, local_addresses_to, Fleet, Workspace, BIN, ROOT};
use fault::{FaultBroker, Script};
use fleetstorm::metrics::Counter;

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
    // and so does the exit-3 message
    assert!(
        r.outcome
            .message
            .contains("found no local port or source address (connect_fail_no_port)"),
        "{}",
        r.outcome.message
    );
    // the console's failure breakdown names the reason
    assert!(done.stdout.contains("  no_port"), "{}", done.describe());
}

// ---- a broker that cannot keep up: phases end on time, what could not go out is counted ----------

/// A fleet of `devices` (QoS `qos`, every `interval_ms`, at most `max_inflight` unacknowledged) with
/// phases `warm` (1 s, everyone connects), `steady` (`steady_ms`) and `after` (`after_ms`).
fn overload_yaml(
    name: &str,
    url: &str,
    devices: u32,
    qos: u8,
    interval_ms: u64,
    max_inflight: u32,
) -> String {
    format!(
        "\
name: {name}
seed: 7
broker:
  url: {url}
  client_id: \"{name}-{{group}}-{{index}}\"
groups:
  - name: dev
    count: {devices}
    profile: energy-meter
    interval: {interval_ms}ms
    qos: {qos}
    max_inflight: {max_inflight}
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
phases:
  - ramp: {{ connect_rate: 200/s }}
  - name: warm
    steady: {{ duration: 1s }}
  - name: steady
    steady: {{ duration: 2s }}
  - name: after
    steady: {{ duration: 1500ms }}
"
    )
}

/// Publish slots the schedule holds in a phase for devices `0..devices` (seed 7): slot `n` of device `d`
/// is due at `start + offset(d) + n × interval` (the run's start is the first phase's).
fn scheduled(r: &fleetstorm::report::Report, phase: &str, devices: u64, interval_ms: u64) -> u64 {
    use fleetstorm::plan::pacer::{phase_offset_us, Schedule};
    let start = r.phases[0].start_us;
    let p = r.phases.iter().find(|p| p.name == phase).unwrap();
    let interval_us = interval_ms * 1000;
    (0..devices)
        .map(|d| {
            let s = Schedule {
                anchor_us: start,
                offset_us: phase_offset_us(7, d, interval_us),
                interval_us,
            };
            s.first_slot_at_or_after(p.end_us) - s.first_slot_at_or_after(p.start_us)
        })
        .sum()
}

fn counter(r: &fleetstorm::report::Report, phase: &str, c: Counter) -> u64 {
    r.phases
        .iter()
        .find(|p| p.name == phase)
        .unwrap()
        .totals
        .counters
        .get(c)
}

/// The run's phases last 1 s + 2 s + 1.5 s after a short ramp; the drain is 5 s.
const PHASES: Duration = Duration::from_millis(4_600);
const DRAIN: Duration = Duration::from_secs(5);

#[test]
fn an_overloaded_phase_ends_on_time_and_counts_what_it_could_not_send() {
    // Acks withheld from 1.6 s to 4.0 s: with 2 publishes in flight per device the `steady` phase
    // (1.0-3.0 s) cannot send its last ~1.4 s, even after its end; `after` sends its backlog late.
    let broker = FaultBroker::start(
        Script::new().stall(Duration::from_millis(1_600), Duration::from_millis(2_400)),
    );
    let ws = Workspace::new();
    let name = common::unique("overload-qos1");
    let (devices, interval_ms) = (4u64, 20u64);
    let yaml = overload_yaml(&name, &broker.url(), devices as u32, 1, interval_ms, 2);
    let scenario = ws.file("s.yaml", &yaml);
    let out = ws.out();
    let run = fleetstorm_env(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    // the run ends on time: phases, the grace, the drain, and slack for a loaded machine
    assert!(
        run.elapsed < PHASES + DRAIN + Duration::from_secs(5),
        "{}",
        run.describe()
    );
    let r = load_report(&out);
    assert_eq!(
        r.totals.totals.counters.disconnects(),
        0,
        "{}",
        run.describe()
    );
    for phase in ["steady", "after"] {
        let published = counter(&r, phase, Counter::Published);
        let skipped = counter(&r, phase, Counter::Skipped);
        assert_eq!(
            published + skipped,
            scheduled(&r, phase, devices, interval_ms),
            "{phase}: published {published} + skipped {skipped}\n{}",
            run.describe()
        );
        let c = &r
            .phases
            .iter()
            .find(|p| p.name == phase)
            .unwrap()
            .totals
            .counters;
        assert_eq!(
            published,
            c.get(Counter::Acked) + c.get(Counter::PublishFailed) + c.get(Counter::InflightAtEnd),
            "{phase}"
        );
    }
    let skipped = counter(&r, "steady", Counter::Skipped);
    assert!(skipped > 0, "{}", run.describe());
    // `after` sent its backlog within its own time
    assert_eq!(
        counter(&r, "after", Counter::Skipped),
        0,
        "{}",
        run.describe()
    );
    // The stall held the devices back (their in-flight windows full): the slots skipped in `steady`
    // and sent late in `after` were the broker's push-back, not the load generator's lateness.
    assert!(
        counter(&r, "after", Counter::PushedBack) > 0,
        "{}",
        run.describe()
    );
    assert!(
        counter(&r, "steady", Counter::PushedBack) >= skipped,
        "{}",
        run.describe()
    );
    // the broker saw exactly what fleetstorm counted as published
    let seen = broker.wait_all_closed(Duration::from_secs(10));
    assert_eq!(
        seen.publishes[1],
        r.totals.totals.counters.get(Counter::Published),
        "{}",
        run.describe()
    );
    // the summary prints the achieved rate next to the intended one
    let steady = r.phases.iter().find(|p| p.name == "steady").unwrap();
    let published = counter(&r, "steady", Counter::Published);
    let intended = (published + skipped) as f64 / steady.duration_s;
    let sent = published as f64 / steady.duration_s;
    let line = format!("steady: 2.0 s, {intended:.1}/s intended, {sent:.1}/s sent");
    assert!(run.stdout.contains(&line), "{line}\n{}", run.describe());
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let row = format!("| publish rate intended / sent | {intended:.1}/s / {sent:.1}/s |");
    assert!(md.contains(&row), "{row}\n{md}");
}

#[test]
fn acks_that_never_come_end_the_run_at_the_drain_with_every_slot_accounted() {
    // No ack after 1.5 s, ever: every device fills its window; the rest of the schedule is skipped.
    let broker = FaultBroker::start(
        Script::new().stall(Duration::from_millis(1_500), Duration::from_secs(600)),
    );
    let ws = Workspace::new();
    let name = common::unique("overload-noack");
    let (devices, interval_ms) = (3u64, 10u64);
    let yaml = overload_yaml(&name, &broker.url(), devices as u32, 1, interval_ms, 4);
    let scenario = ws.file("s.yaml", &yaml);
    let out = ws.out();
    let run = fleetstorm_env(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        run.elapsed < PHASES + DRAIN + Duration::from_secs(5),
        "{}",
        run.describe()
    );
    let r = load_report(&out);
    let t = &r.totals.totals.counters;
    assert_eq!(
        t.get(Counter::InflightAtEnd),
        devices * 4,
        "{}",
        run.describe()
    );
    for phase in ["steady", "after"] {
        let published = counter(&r, phase, Counter::Published);
        let skipped = counter(&r, phase, Counter::Skipped);
        assert_eq!(
            published + skipped,
            scheduled(&r, phase, devices, interval_ms),
            "{phase}\n{}",
            run.describe()
        );
    }
    assert_eq!(counter(&r, "after", Counter::Published), 0);
}

#[test]
fn qos0_publishes_count_what_left_the_host_not_what_entered_a_buffer() {
    // The broker stops reading from 1.5 s to 3.8 s. A QoS 0 device writes into its socket until the
    // (small) send buffer is full; then its slots wait, and those of `steady` (1.0-3.0 s) that could
    // not leave by the phase's end are skipped, not counted as published into a kernel queue.
    let broker = FaultBroker::start(
        Script::new().pause_reading(Duration::from_millis(1_500), Duration::from_millis(2_300)),
    );
    let ws = Workspace::new();
    let name = common::unique("overload-qos0");
    let (devices, interval_ms) = (4u64, 1u64);
    let yaml = overload_yaml(&name, &broker.url(), devices as u32, 0, interval_ms, 1);
    let scenario = ws.file("s.yaml", &yaml);
    let out = ws.out();
    let run = fleetstorm_env(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(
        run.elapsed < PHASES + DRAIN + Duration::from_secs(5),
        "{}",
        run.describe()
    );
    let r = load_report(&out);
    assert_eq!(
        r.totals.totals.counters.disconnects(),
        0,
        "{}",
        run.describe()
    );
    let skipped = counter(&r, "steady", Counter::Skipped);
    assert!(skipped > 0, "{}", run.describe());
    for phase in ["steady", "after"] {
        let published = counter(&r, phase, Counter::Published);
        let skipped = counter(&r, phase, Counter::Skipped);
        assert_eq!(
            published + skipped,
            scheduled(&r, phase, devices, interval_ms),
            "{phase}\n{}",
            run.describe()
        );
    }
    // Reading resumed before the end: the queue drained, nothing was left unsent, and the broker
    // received exactly what was counted as published.
    let t = &r.totals.totals.counters;
    assert_eq!(t.get(Counter::UnsentAtEnd), 0, "{}", run.describe());
    let seen = broker.wait_all_closed(Duration::from_secs(10));
    assert_eq!(
        seen.publishes[0],
        t.get(Counter::Published),
        "{}",
        run.describe()
    );
}

#[test]
fn qos0_publishes_still_queued_at_the_end_are_unsent_not_published() {
    // The broker stops reading at 1.5 s and never resumes: at the drain's end the devices' queues are
    // full; those publishes are `unsent_at_end` and their connections are reset.
    let broker = FaultBroker::start(
        Script::new().pause_reading(Duration::from_millis(1_500), Duration::from_secs(600)),
    );
    let ws = Workspace::new();
    let name = common::unique("overload-unsent");
    let (devices, interval_ms) = (3u64, 1u64);
    let yaml = overload_yaml(&name, &broker.url(), devices as u32, 0, interval_ms, 1);
    let scenario = ws.file("s.yaml", &yaml);
    let out = ws.out();
    let run = fleetstorm_env(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        run.elapsed < PHASES + DRAIN + Duration::from_secs(5),
        "{}",
        run.describe()
    );
    let r = load_report(&out);
    let t = &r.totals.totals.counters;
    let unsent = t.get(Counter::UnsentAtEnd);
    assert!(unsent > 0, "{}", run.describe());
    // the queued publishes were the last ones written, in `steady`: that phase's sent rate excludes them
    assert_eq!(counter(&r, "steady", Counter::UnsentAtEnd), unsent);
    let steady = r.phases.iter().find(|p| p.name == "steady").unwrap();
    let sent = (counter(&r, "steady", Counter::Published) - unsent) as f64 / steady.duration_s;
    assert!(
        run.stdout.contains(&format!(", {sent:.1}/s sent, ")),
        "{sent}\n{}",
        run.describe()
    );
    assert!(
        run.stdout.contains("unsent at end (QoS 0)"),
        "{}",
        run.describe()
    );
    assert_eq!(
        counter(&r, "after", Counter::Published),
        0,
        "{}",
        run.describe()
    );
    for phase in ["steady", "after"] {
        let published = counter(&r, phase, Counter::Published);
        let skipped = counter(&r, phase, Counter::Skipped);
        assert_eq!(
            published + skipped,
            scheduled(&r, phase, devices, interval_ms),
            "{phase}\n{}",
            run.describe()
        );
    }
}
