//! Every scenario shipped in `scenarios/` parses and validates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::path::Path;

use fleetstorm::scenario::{self, MqttVersion, PhaseKind, Qos};

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/ exists") {
        let path = entry.expect("readable entry").path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if !is_yaml {
            continue;
        }
        match scenario::load(&path) {
            Ok(s) => {
                assert!(s.device_count() > 0, "{}", path.display());
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                assert_eq!(s.name, stem, "scenario name should match the file name");
            }
            Err(e) => panic!("{} does not validate:\n{e}", path.display()),
        }
        checked += 1;
    }
    assert!(checked >= 2, "expected shipped scenarios, found {checked}");
}

#[test]
fn quickstart_is_what_the_readme_promises() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.yaml");
    let s = scenario::load(&path).unwrap();
    assert_eq!(s.name, "quickstart");
    assert!(
        s.broker.url.is_none(),
        "quickstart uses the embedded broker"
    );
    assert_eq!(s.device_count(), 1000);
    assert_eq!(s.groups.len(), 3);
    assert!(
        matches!(s.phases[0].kind, PhaseKind::Ramp { connect_rate_per_s } if connect_rate_per_s == 500.0)
    );
    assert!(matches!(s.phases[1].kind, PhaseKind::Steady { duration } if duration.as_secs() == 30));
}

#[test]
fn factory_is_all_qos1_mqtt5() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/factory-qos1.yaml");
    let s = scenario::load(&path).unwrap();
    assert_eq!(s.device_count(), 5000);
    assert_eq!(s.broker.protocol, MqttVersion::V5);
    assert!(s.broker.url.is_none());
    assert!(s.groups.iter().all(|g| g.qos == Qos::AtLeastOnce));
    assert!(
        matches!(s.phases[0].kind, PhaseKind::Ramp { connect_rate_per_s } if connect_rate_per_s == 700.0)
    );
    assert!(matches!(s.phases[1].kind, PhaseKind::Steady { duration } if duration.as_secs() == 60));
}

#[test]
fn plant_commands_uses_commands_persistent_sessions_and_a_storm() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/plant-commands.yaml");
    let s = scenario::load(&path).unwrap();
    assert_eq!(s.broker.protocol, MqttVersion::V5);
    assert_eq!(s.device_count(), 50);
    let plcs = &s.groups[0];
    let session = plcs.session.as_ref().expect("a persistent session");
    assert!(!session.clean);
    assert_eq!(session.expiry, std::time::Duration::from_secs(600));
    let c = plcs.commands.as_ref().expect("commands");
    assert_eq!((c.rate_per_s, c.qos), (20.0, Qos::AtLeastOnce));
    assert!(s.groups[1].commands.is_none());
    assert!(s
        .phases
        .iter()
        .any(|p| matches!(p.kind, PhaseKind::Storm { .. })));
    let total: std::time::Duration = s.phases.iter().filter_map(|p| p.kind.duration()).sum();
    assert_eq!(total.as_secs(), 30);
}

#[test]
fn sparkplug_plant_has_a_primary_host_it_plays_itself() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/sparkplug-plant.yaml");
    let s = scenario::load(&path).unwrap();
    assert!(s.broker.url.is_none(), "runs against the embedded broker");
    assert!(s.groups.iter().all(|g| g.primary_host() == Some("scada-1")));
    let host = s
        .observers
        .iter()
        .find_map(|o| o.sparkplug_host.as_ref())
        .expect("an observer plays the primary host");
    assert_eq!(host.host_id, "scada-1");
}

#[test]
fn million_fits_this_kind_of_host_per_doctor() {
    // scripts/million.sh runs it on a 2-core / 24 GiB machine: sixty local brokers, each under a
    // 20,000 open-file limit, with a million devices in all
    let s = fleetstorm::scenario::load(std::path::Path::new("scenarios/million.yaml")).unwrap();
    let devices: u64 = s.groups.iter().map(|g| u64::from(g.count)).sum();
    assert_eq!(devices, 1_000_000);
    let brokers = s.broker.targets().len() as u64;
    assert!(devices.div_ceil(brokers) < 19_900, "{brokers} brokers");
    // one message per device per minute
    assert!(s.groups.iter().all(|g| g.interval.as_secs() == 60));
}
