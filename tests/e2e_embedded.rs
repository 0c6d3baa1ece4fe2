//! End to end against the embedded broker, through the binary: QoS 0 / 1 / 2 and MQTT 5 runs
//! complete, hold their schedule, conserve every publish and write a report that matches the schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use common::{check_healthy_run, run_fleet, Fleet, Workspace};

fn run_embedded(fleet: &Fleet) {
    let ws = Workspace::new();
    let run = run_fleet(&ws, fleet, &[]);
    assert!(
        run.stderr.contains("embedded rumqttd"),
        "the run should name the embedded broker\n{}",
        run.describe()
    );
    check_healthy_run(fleet, &run, &ws.out());
}

#[test]
fn embedded_qos0_run_completes_on_schedule() {
    run_embedded(&Fleet::new("emb-qos0", 0));
}

#[test]
fn embedded_qos1_run_conserves_publishes_and_records_puback() {
    run_embedded(&Fleet::new("emb-qos1", 1));
}

#[test]
fn embedded_qos2_run_conserves_publishes_and_records_pubcomp() {
    run_embedded(&Fleet::new("emb-qos2", 2));
}

#[test]
fn embedded_mqtt5_run_uses_the_v5_listener() {
    let mut fleet = Fleet::new("emb-v5", 1);
    fleet.mqtt5 = true;
    run_embedded(&fleet);
}
