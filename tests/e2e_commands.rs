//! Commands end to end: a commander publishes commands at a rate to the devices of a group, the devices
//! reply, and `command_rtt` is recorded. Against the embedded broker: every command is answered and the
//! counts follow the schedule. Against mosquitto (`FLEETSTORM_MOSQUITTO_URL`): persistent sessions keep
//! the commands sent while devices were down in a storm and deliver them after the reconnect; clean
//! sessions lose them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::time::Duration;

use fleetstorm::engine::{run, EngineOutput, RunOptions};
use fleetstorm::metrics::{Basis, Counter, Counters, Metric};
use fleetstorm::plan::commands::CommandSchedule;
use fleetstorm::plan::{Plan, Shard};
use fleetstorm::report::RunStatus;

fn opts() -> RunOptions {
    RunOptions {
        threads: 2,
        drain: Duration::from_secs(3),
        ..RunOptions::default()
    }
}

fn plan(text: &str) -> Plan {
    Plan::new(
        fleetstorm::scenario::parse(text, "commands.yaml").unwrap(),
        Shard::default(),
    )
}

fn completed(out: &EngineOutput) {
    assert_eq!(
        out.outcome.status,
        RunStatus::Completed,
        "{:?}",
        out.outcome
    );
}

/// sent = replies + unanswered, in every phase and group and over the run.
fn assert_command_conservation(out: &EngineOutput) {
    let check = |label: &str, c: &Counters| {
        assert_eq!(
            c.get(Counter::CommandsSent),
            c.get(Counter::CommandReplies) + c.get(Counter::CommandsUnanswered),
            "{label}: commands_sent != command_replies + commands_unanswered"
        );
    };
    for p in &out.snapshot.phases {
        for (i, g) in p.groups.iter().enumerate() {
            check(&format!("phase {} group {i}", p.name), &g.counters);
        }
    }
    check("run", &out.snapshot.total().unwrap().counters);
}

/// Devices connect during a half-second ramp, so each has subscribed well before its first command
/// (a command sent before a clean session's SUBSCRIBE is lost, as it would be for a real device).
#[test]
fn commands_at_a_rate_are_all_answered_and_measured() {
    let tag = common::unique("cmd");
    for (protocol, qos) in [("\"3.1.1\"", 1), ("5", 2), ("\"3.1.1\"", 0)] {
        let text = format!(
            "name: {tag}\nbroker:\n  protocol: {protocol}\n  client_id: \"{tag}-{{group}}-{{index}}\"\ngroups:\n  - {{ name: plcs, count: 8, profile: cnc-machine, interval: 500ms, topic: \"t/{tag}/{{client_id}}\", commands: {{ rate: 25/s, qos: {qos}, topic: \"c/{tag}/{{client_id}}\", reply_topic: \"c/{tag}/{{client_id}}/reply\" }} }}\n  - {{ name: quiet, count: 2, profile: energy-meter, topic: \"t/{tag}/{{client_id}}\" }}\nphases:\n  - ramp: {{ connect_rate: 20/s }}\n  - steady: {{ duration: 2s }}\n"
        );
        let p = plan(&text);
        let out = run(&p, &opts()).unwrap();
        completed(&out);
        assert_command_conservation(&out);
        let tl = p.timeline(out.started_at_us);
        let expected = CommandSchedule::of_group(&p, &tl, 0).unwrap().len();
        assert_eq!(expected, 50, "25/s over the 2 s steady phase");
        let total = out.snapshot.total().unwrap();
        let c = &total.counters;
        let label = format!("protocol {protocol} qos {qos}");
        assert_eq!(c.get(Counter::CommandsSent), expected, "{label}");
        assert_eq!(
            c.get(Counter::CommandReplies),
            expected,
            "{label}: every command answered"
        );
        assert_eq!(c.get(Counter::CommandsUnanswered), 0, "{label}");
        assert_eq!(
            c.get(Counter::CommandsOfflineDelivered),
            0,
            "{label}: nobody was offline"
        );
        // the ramp has none: commands go out while devices publish after it
        assert_eq!(
            out.snapshot.phases[0]
                .total()
                .unwrap()
                .counters
                .get(Counter::CommandsSent),
            0
        );
        let corrected = total
            .histogram(Metric::CommandRtt, Basis::Corrected)
            .unwrap();
        let uncorrected = total
            .histogram(Metric::CommandRtt, Basis::Uncorrected)
            .unwrap();
        assert_eq!(corrected.len(), expected, "{label}: one RTT per reply");
        assert_eq!(uncorrected.len(), expected, "{label}");
        for q in [0.5, 0.9, 0.99, 1.0] {
            assert!(
                corrected.value_at_quantile(q) >= uncorrected.value_at_quantile(q),
                "{label}: corrected below uncorrected at {q}"
            );
        }
        // the group without commands is untouched
        let quiet = out.snapshot.group_total(1).unwrap();
        assert_eq!(quiet.counters.get(Counter::CommandsSent), 0);
        // devices subscribed once each: their SUBACK latencies are recorded
        let plcs = out.snapshot.group_total(0).unwrap();
        assert_eq!(
            plcs.histogram(Metric::Suback, Basis::Corrected)
                .map_or(0, |h| h.len()),
            8,
            "{label}"
        );
    }
}

/// From the command line: `command_rtt` and the command counters reach every report, and a
/// `command_rtt` threshold gates the run.
#[test]
fn command_rtt_reaches_every_report_and_gates() {
    let tag = common::unique("cmdcli");
    let ws = common::Workspace::new();
    let scenario = ws.file(
        "scenario.yaml",
        &format!(
            "name: {tag}\nbroker:\n  client_id: \"{tag}-{{index}}\"\ngroups:\n  - {{ name: plcs, count: 4, profile: cnc-machine, topic: \"t/{tag}/{{client_id}}\", commands: {{ rate: 10/s, topic: \"c/{tag}/{{client_id}}\", reply_topic: \"r/{tag}/{{client_id}}\" }} }}\nphases:\n  - ramp: {{ connect_rate: 10/s }}\n  - steady: {{ duration: 2s }}\nthresholds:\n  - \"command_rtt.p99 < 10s\"\n  - \"run:commands_unanswered == 0\"\n"
        ),
    );
    let out = ws.out();
    let run = common::fleetstorm(&[
        "run",
        scenario.to_str().unwrap(),
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(
        run.stdout.contains("command_rtt  corrected"),
        "{}",
        run.describe()
    );
    assert!(run.stdout.contains("commands sent"), "{}", run.describe());
    assert_eq!(common::schema_errors(&out), Vec::<String>::new());
    let report = common::load_report(&out);
    let steady = &report.phases[1].totals;
    let replies = steady.counters.get(Counter::CommandReplies);
    assert_eq!(replies, 20, "10/s over 2 s");
    assert_eq!(common::latency_count(steady, Metric::CommandRtt), replies);
    common::assert_corrected_dominates("steady", steady);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert!(read("summary.md").contains("| command_rtt |"));
    assert!(read("report.html").contains("command_rtt"));
    assert!(read("junit.xml").contains("command_rtt.p99 &lt; 10s"));
    assert!(out.join("command_rtt.hlog").exists());
}

/// The broker URL, or `None` (after saying so) when the variable is not set.
fn mosquitto_url() -> Option<String> {
    match std::env::var("FLEETSTORM_MOSQUITTO_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED: FLEETSTORM_MOSQUITTO_URL not set (CI always sets it)");
            None
        }
    }
}

/// A storm drops every device for a while (backoff 0.5-1 s) while commands keep going out.
fn storm_plan(url: &str, tag: &str, protocol: &str, session: &str) -> Plan {
    plan(&format!(
        "name: {tag}\nseed: 9\nbroker:\n  url: {url}\n  protocol: {protocol}\n  client_id: \"{tag}-{{index}}\"\ngroups:\n  - {{ name: plcs, count: 10, profile: cnc-machine, interval: 1s, topic: \"t/{tag}/{{client_id}}\", session: {session}, commands: {{ rate: 20/s, qos: 1, topic: \"c/{tag}/{{client_id}}\", reply_topic: \"r/{tag}/{{client_id}}\" }} }}\nphases:\n  - ramp: {{ connect_rate: 20/s }}\n  - steady: {{ duration: 1s }}\n  - storm: {{ duration: 3s, fraction: 1 }}\n  - steady: {{ duration: 1s }}\n"
    ))
}

#[test]
fn mosquitto_persistent_sessions_deliver_commands_sent_while_offline() {
    let Some(url) = mosquitto_url() else {
        return;
    };
    for (protocol, session) in [
        ("5", "{ clean: false, expiry: 2m }"),
        ("\"3.1.1\"", "{ clean: false }"),
    ] {
        let tag = common::unique("cmdkeep");
        let p = storm_plan(&url, &tag, protocol, session);
        let out = run(&p, &opts()).unwrap();
        completed(&out);
        assert_command_conservation(&out);
        let c = out.snapshot.total().unwrap().counters;
        let label = format!("protocol {protocol}");
        assert_eq!(c.get(Counter::StormDrops), 10, "{label}");
        assert_eq!(c.get(Counter::CommandsSent), 100, "{label}: 20/s for 5 s");
        assert!(
            c.get(Counter::CommandsOfflineDelivered) > 0,
            "{label}: commands queued while offline arrive after the reconnect"
        );
        assert_eq!(
            c.get(Counter::CommandReplies),
            c.get(Counter::CommandsSent),
            "{label}: nothing is lost with a persistent session"
        );
        assert_eq!(c.get(Counter::CommandsUnanswered), 0, "{label}");
    }
}

#[test]
fn mosquitto_clean_sessions_lose_commands_sent_while_offline() {
    let Some(url) = mosquitto_url() else {
        return;
    };
    let tag = common::unique("cmdclean");
    let p = storm_plan(&url, &tag, "5", "{ clean: true }");
    let out = run(&p, &opts()).unwrap();
    completed(&out);
    assert_command_conservation(&out);
    let c = out.snapshot.total().unwrap().counters;
    assert_eq!(c.get(Counter::StormDrops), 10);
    assert_eq!(c.get(Counter::CommandsOfflineDelivered), 0);
    assert!(
        c.get(Counter::CommandsUnanswered) > 0,
        "commands sent while the devices were down are gone with a clean session"
    );
}
