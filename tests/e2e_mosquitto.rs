//! End to end against a real mosquitto named by `FLEETSTORM_MOSQUITTO_URL` (CI starts one: see
//! `.ci/run`): the same QoS 0 / 1 / 2 and MQTT 5 checks as against the embedded broker, with the
//! broker given by `--broker`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use common::{check_healthy_run, run_fleet, Fleet, Workspace};

/// The broker URL, or `None` (after saying so) when the variable is not set.
fn mosquitto_url() -> Option<String> {
    match std::env::var("FLEETSTORM_MOSQUITTO_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // .ci/run sets FLEETSTORM_REQUIRE_BROKERS: there a missing broker is a failure
            assert!(
                std::env::var_os("FLEETSTORM_REQUIRE_BROKERS").is_none(),
                "FLEETSTORM_MOSQUITTO_URL not set although FLEETSTORM_REQUIRE_BROKERS is"
            );
            eprintln!("SKIPPED: FLEETSTORM_MOSQUITTO_URL not set (CI always sets it)");
            None
        }
    }
}

fn run_mosquitto(fleet: &Fleet) {
    let Some(url) = mosquitto_url() else {
        return;
    };
    let ws = Workspace::new();
    let run = run_fleet(&ws, fleet, &["--broker", &url]);
    assert!(
        !run.stderr.contains("embedded rumqttd"),
        "--broker should replace the embedded broker\n{}",
        run.describe()
    );
    check_healthy_run(fleet, &run, &ws.out());
    let report = common::load_report(&ws.out());
    assert!(
        report.broker.contains(url.trim_start_matches("mqtt://")),
        "report broker `{}` should name {url}",
        report.broker
    );
}

#[test]
fn mosquitto_qos0_run_completes_on_schedule() {
    run_mosquitto(&Fleet::new("mosq-qos0", 0));
}

#[test]
fn mosquitto_qos1_run_conserves_publishes_and_records_puback() {
    run_mosquitto(&Fleet::new("mosq-qos1", 1));
}

#[test]
fn mosquitto_qos2_run_conserves_publishes_and_records_pubcomp() {
    run_mosquitto(&Fleet::new("mosq-qos2", 2));
}

#[test]
fn mosquitto_mqtt5_run_completes() {
    let mut fleet = Fleet::new("mosq-v5", 1);
    fleet.mqtt5 = true;
    run_mosquitto(&fleet);
}
