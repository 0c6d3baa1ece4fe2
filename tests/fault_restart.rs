//! A broker restart mid-run (issue 11, item 1): devices and the observer both lose their connections,
//! both come back with backoff, and the audit tells what the observer could not see (`unobserved`) from
//! what the broker lost. The scripted fault broker is the witness: it counts what it forwarded to the
//! observer and what it received while nobody was subscribed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod fault;

use std::time::Duration;

use fault::{FaultBroker, Script};
use fleetstorm::engine::{self, EngineOutput, RunOptions};
use fleetstorm::metrics::Counter;
use fleetstorm::output::{console, markdown};
use fleetstorm::plan::{Plan, Shard};
use fleetstorm::report::{Deliveries, Environment, Report, RunRecord, RunStatus};

fn run(yaml: &str) -> EngineOutput {
    let s = fleetstorm::scenario::parse(yaml, "fault-restart.yaml").expect("valid scenario");
    engine::run(
        &Plan::new(s, Shard::default()),
        &RunOptions {
            threads: 1,
            drain: Duration::from_secs(2),
            ..RunOptions::default()
        },
    )
    .expect("the run completes")
}

#[test]
fn devices_and_observer_come_back_after_a_broker_restart_and_the_outage_is_unobserved_not_lost() {
    // Script times count from the observer's CONNECT (it subscribes before the run starts). The restart
    // falls in the steady phase; devices and observer reconnect within a few seconds of backoff.
    let broker = FaultBroker::start(
        Script::new().restart(Duration::from_millis(2500), Duration::from_millis(1500)),
    );
    let out = run(&format!(
        r#"
name: fault-restart
seed: 11
broker: {{ url: "{}", protocol: "3.1.1" }}
groups:
  - name: d
    count: 4
    profile: environment-sensor
    interval: 20ms
    qos: 1
phases:
  - ramp: {{ connect_rate: 20/s }}
  - steady: {{ duration: 9s }}
observers:
  - name: audit
    count: 1
"#,
        broker.url()
    ));
    let wire = broker.wait_all_closed(Duration::from_secs(5));
    let total = out.snapshot.total().expect("merge");
    let c = &total.counters;
    let d = Deliveries::from_counters(c);
    eprintln!(
        "restart: outcome {:?} | published {} expected {} received {} lost {} unobserved {} dup {} | \
         device disconnects {} connects {} connect failures {} | observer disconnects {} reconnects {} | \
         broker deliveries {} unforwarded {} refused while down {}",
        out.outcome.status,
        c.get(Counter::Published),
        d.expected,
        d.received,
        d.lost,
        d.unobserved,
        d.duplicates,
        c.disconnects(),
        c.get(Counter::ConnectSuccesses),
        c.connect_failures(),
        c.get(Counter::ObserverDisconnects),
        c.get(Counter::ObserverReconnects),
        wire.deliveries,
        wire.unforwarded,
        wire.refused_while_down,
    );
    // The run went on: a restart the fleet recovers from is not a failed run (exit 0).
    assert_eq!(
        out.outcome.status,
        RunStatus::Completed,
        "{:?}",
        out.outcome
    );
    assert!(
        wire.refused_while_down > 0,
        "the restart refused reconnects"
    );
    // Devices reconnected.
    assert_eq!(c.disconnects(), 4, "each device lost its connection once");
    assert_eq!(c.get(Counter::ConnectSuccesses), 8, "and came back");
    // The observer reconnected (and resubscribed: it received after the restart, below).
    assert_eq!(c.get(Counter::ObserverDisconnects), 1);
    assert_eq!(c.get(Counter::ObserverReconnects), 1);
    // What the broker forwarded, the observer received; nothing it forwarded was lost.
    assert_eq!(
        d.received + d.duplicates,
        wire.deliveries,
        "the observer received every delivery the broker wrote to it"
    );
    assert_eq!(d.duplicates, 0);
    assert_eq!(
        d.lost, 0,
        "no broker loss: every missing delivery fell in the observer's outage"
    );
    assert!(d.unobserved > 0, "the outage is visible");
    assert!(
        d.unobserved >= wire.unforwarded && wire.unforwarded > 0,
        "at least every publish the broker received while no observer was subscribed is unobserved"
    );
    // The identity holds in every phase and group, with nothing capped.
    for p in &out.snapshot.phases {
        for (g, name) in p.groups.iter().zip(&out.snapshot.group_names) {
            let c = &g.counters;
            let d = Deliveries::from_counters(c);
            assert_eq!(
                d.expected,
                d.received + d.lost + d.unobserved,
                "{}/{name}: expected = received + lost + unobserved",
                p.name
            );
            assert_eq!(
                d.unobserved,
                c.get(Counter::Unobserved),
                "{}/{name}: unobserved within what was missing",
                p.name
            );
            assert_eq!(d.lost, 0, "{}/{name}", p.name);
        }
    }
    assert_eq!(d.expected, c.get(Counter::ExpectedDeliveries));
    assert_eq!(
        c.get(Counter::ExpectedDeliveries),
        c.get(Counter::Published)
    );
    // The console and summary.md say so.
    let report = Report::build(&RunRecord {
        scenario: serde_json::json!({"name": "fault-restart"}),
        scenario_name: "fault-restart".into(),
        broker: broker.url(),
        environment: Environment {
            host: "test".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            cores: 1,
            fleetstorm_version: "test".into(),
            open_files_limit: 1024,
            clock_source: "test".into(),
            worker_threads: 1,
        },
        outcome: out.outcome.clone(),
        started_at_us: out.started_at_us,
        ended_at_us: out.ended_at_us,
        snapshot: out.snapshot.clone(),
        series: out.series.clone(),
        shards: None,
    })
    .expect("report");
    let text = console::render(&report);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .collect()
        })
        .collect();
    let unobserved = d.unobserved.to_string();
    for row in [
        ["observer sessions lost", "1"],
        ["observer sessions back", "1"],
        ["lost", "0"],
        ["unobserved (observer down)", unobserved.as_str()],
    ] {
        assert!(
            rows.iter().any(|r| r.as_slice() == row),
            "console lacks {row:?}:\n{text}"
        );
    }
    let md = markdown::render(&report, &[], None);
    assert!(
        md.contains(&format!(
            "| **all** | {} | {} | 0 | {} |",
            d.expected, d.received, d.unobserved
        )),
        "{md}"
    );
}

#[test]
fn the_commander_comes_back_after_a_broker_restart_and_skips_the_slots_it_was_down_for() {
    let broker = FaultBroker::start(
        Script::new().restart(Duration::from_millis(2500), Duration::from_millis(1500)),
    );
    let yaml = format!(
        r#"
name: fault-restart-commands
seed: 12
broker: {{ url: "{}", protocol: "3.1.1", client_id: "restart-{{group}}-{{index}}" }}
groups:
  - name: plcs
    count: 3
    profile: cnc-machine
    interval: 500ms
    topic: "t/{{client_id}}"
    commands: {{ rate: 20/s, qos: 1, topic: "c/{{client_id}}", reply_topic: "c/{{client_id}}/reply" }}
phases:
  - ramp: {{ connect_rate: 20/s }}
  - steady: {{ duration: 8s }}
"#,
        broker.url()
    );
    let s = fleetstorm::scenario::parse(&yaml, "fault-restart.yaml").expect("valid scenario");
    let plan = Plan::new(s, Shard::default());
    let out = run(&yaml);
    let c = out.snapshot.total().expect("merge").counters;
    let timeline = plan.timeline(out.started_at_us);
    let slots = fleetstorm::plan::commands::CommandSchedule::of_group(&plan, &timeline, 0)
        .expect("the group has commands")
        .len();
    eprintln!(
        "restart commands: outcome {:?} | slots {slots} sent {} replies {} unanswered {} skipped {} | \
         commander disconnects {} reconnects {}",
        out.outcome.status,
        c.get(Counter::CommandsSent),
        c.get(Counter::CommandReplies),
        c.get(Counter::CommandsUnanswered),
        c.get(Counter::CommandsSkipped),
        c.get(Counter::ObserverDisconnects),
        c.get(Counter::ObserverReconnects),
    );
    assert_eq!(
        out.outcome.status,
        RunStatus::Completed,
        "{:?}",
        out.outcome
    );
    assert_eq!(
        c.get(Counter::ObserverDisconnects),
        1,
        "the commander lost its connection"
    );
    assert_eq!(c.get(Counter::ObserverReconnects), 1, "and came back");
    assert!(
        c.get(Counter::CommandsSkipped) > 0,
        "slots fell while it was down"
    );
    assert_eq!(
        c.get(Counter::CommandsSent) + c.get(Counter::CommandsSkipped),
        slots,
        "every command slot was either sent or skipped"
    );
    assert_eq!(
        c.get(Counter::CommandsSent),
        c.get(Counter::CommandReplies) + c.get(Counter::CommandsUnanswered)
    );
    assert!(
        c.get(Counter::CommandReplies) > c.get(Counter::CommandsUnanswered),
        "commands went on and were answered after the restart"
    );
}

#[test]
fn a_broker_disconnect_ends_device_and_observer_sessions_even_when_the_socket_stays_open() {
    // The broker sends DISCONNECT at 2.5 s and leaves every socket open: devices and the observer must
    // end their sessions on the packet itself, count it, and reconnect.
    let broker = FaultBroker::start(Script::new().disconnect_at(Duration::from_millis(2500)));
    let out = run(&format!(
        r#"
name: fault-disconnect
seed: 13
broker: {{ url: "{}", protocol: "3.1.1", client_id: "disc-{{group}}-{{index}}" }}
groups:
  - name: d
    count: 3
    profile: environment-sensor
    interval: 50ms
    qos: 1
phases:
  - ramp: {{ connect_rate: 20/s }}
  - steady: {{ duration: 6s }}
observers:
  - name: audit
    count: 1
"#,
        broker.url()
    ));
    let wire = broker.wait_all_closed(Duration::from_secs(5));
    let c = out.snapshot.total().expect("merge").counters;
    eprintln!(
        "disconnect: outcome {:?} | sent {} | server disconnects {} connects {} | observer disconnects {} reconnects {}",
        out.outcome.status,
        wire.disconnects_sent,
        c.get(Counter::DisconnectServer),
        c.get(Counter::ConnectSuccesses),
        c.get(Counter::ObserverDisconnects),
        c.get(Counter::ObserverReconnects),
    );
    assert_eq!(
        wire.disconnects_sent, 4,
        "three devices and the observer were told"
    );
    assert_eq!(
        c.get(Counter::DisconnectServer),
        3,
        "each device ended on the DISCONNECT"
    );
    assert_eq!(c.disconnects(), 3, "and for no other reason");
    assert_eq!(c.get(Counter::ConnectSuccesses), 6, "and came back");
    assert_eq!(
        c.get(Counter::ObserverDisconnects),
        1,
        "the observer ended its session too"
    );
    assert_eq!(
        c.get(Counter::ObserverReconnects),
        1,
        "and subscribed again"
    );
    // Conservation holds across the forced reconnect.
    assert_eq!(
        c.get(Counter::Published),
        c.get(Counter::Acked) + c.get(Counter::PublishFailed) + c.get(Counter::InflightAtEnd)
    );
}
