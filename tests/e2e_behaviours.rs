//! Behaviour phases against the embedded broker: churn drops devices at the configured rate and every
//! one reconnects; a storm drops the chosen fraction at once and the fleet comes back. (A storm drops
//! the chosen devices that are connected at its start, so the fleet settles in a steady phase first.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::time::Duration;

use fleetstorm::engine::{run, RunOptions};
use fleetstorm::metrics::Counter;
use fleetstorm::plan::{Plan, Shard};
use fleetstorm::report::RunStatus;

fn plan(devices: u32, behaviour: &str, tag: &str) -> Plan {
    let text = format!(
        "name: {tag}\nseed: 5\nbroker:\n  client_id: \"{tag}-{{index}}\"\ngroups:\n  - {{ name: a, count: {devices}, profile: energy-meter, interval: 200ms, qos: 1, topic: \"t/{tag}/{{client_id}}\" }}\nphases:\n  - ramp: {{ connect_rate: 1000/s }}\n  - steady: {{ duration: 1s }}\n  - {behaviour}\n  - steady: {{ duration: 3s }}\n"
    );
    Plan::new(
        fleetstorm::scenario::parse(&text, "b.yaml").unwrap(),
        Shard::default(),
    )
}

fn opts() -> RunOptions {
    RunOptions {
        threads: 1,
        drain: Duration::from_secs(2),
        ..RunOptions::default()
    }
}

#[test]
fn churn_reconnects_match_the_configured_rate() {
    // 5 drops/s for 3 s = 15 drops, one every 200 ms, each a different device (30 devices).
    let p = plan(
        30,
        "churn: { duration: 3s, rate: 5/s }",
        &format!("churn{}", std::process::id()),
    );
    let out = run(&p, &opts()).unwrap();
    assert_eq!(
        out.outcome.status,
        RunStatus::Completed,
        "{:?}",
        out.outcome
    );
    let t = out.snapshot.total().unwrap().counters;
    assert_eq!(t.get(Counter::ChurnDrops), 15);
    // every dropped device came back (backoff 0.5-1 s, well inside the steady phase after)
    assert_eq!(t.get(Counter::ConnectSuccesses), 30 + 15);
    assert_eq!(t.get(Counter::ConnectAttempts), 30 + 15);
    assert_eq!(
        t.disconnects(),
        0,
        "deliberate drops are not broker disconnects"
    );
    // conservation still holds: in-flight QoS 1 messages of a dropped connection count as failed
    assert_eq!(
        t.get(Counter::Published),
        t.get(Counter::Acked) + t.get(Counter::PublishFailed) + t.get(Counter::InflightAtEnd)
    );
    // the churn phase has its own reconnect latencies
    let churn = &out.snapshot.phases[2];
    assert_eq!(churn.name, "churn");
    assert_eq!(churn.total().unwrap().counters.get(Counter::ChurnDrops), 15);
}

#[test]
fn storm_drops_the_fraction_at_once_and_the_fleet_returns() {
    let p = plan(
        40,
        "storm: { duration: 3s, fraction: 0.5 }",
        &format!("storm{}", std::process::id()),
    );
    let timeline = p.timeline(0);
    let chosen = (0..40)
        .filter(|&g| p.next_disruption(&timeline, p.device(g), 0).is_some())
        .count() as u64;
    assert!(chosen > 5 && chosen < 35, "{chosen}");
    let out = run(&p, &opts()).unwrap();
    assert_eq!(
        out.outcome.status,
        RunStatus::Completed,
        "{:?}",
        out.outcome
    );
    let t = out.snapshot.total().unwrap().counters;
    assert_eq!(t.get(Counter::StormDrops), chosen);
    assert_eq!(t.get(Counter::ConnectSuccesses), 40 + chosen);
    let storm = out.snapshot.phases[2].total().unwrap();
    assert_eq!(
        storm.counters.get(Counter::ConnectSuccesses),
        chosen,
        "reconnects belong to the storm phase"
    );
}
