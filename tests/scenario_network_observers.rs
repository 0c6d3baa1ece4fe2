//! Scenario keys for observers, in-flight windows, late sends, several brokers and source addresses:
//! what they become, and the located errors when they are wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use fleetstorm::scenario::{parse, BrokerAssign, ErrorKind, LateSends, MqttVersion, Qos};

const FILE: &str = "scenarios/n.yaml";

const GROUPS: &str = "\
name: net
groups:
  - name: a
    count: 3
    profile: energy-meter
  - name: b
    count: 2
    profile: cnc-machine
";

fn with(extra: &str) -> String {
    format!("{GROUPS}{extra}")
}

/// Error at `line` with this key path, naming `has` and carrying a hint.
fn refused(text: &str, line: usize, path: &str, has: &str) {
    let e = match parse(text, FILE) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    };
    let shown = e.to_string();
    assert_eq!(e.kind(), ErrorKind::InvalidValue, "{shown}");
    assert_eq!(e.line(), Some(line), "{shown}");
    assert_eq!(e.key_path(), Some(path), "{shown}");
    assert!(shown.contains(has), "`{has}` not in:\n{shown}");
    assert!(e.hint().is_some_and(|h| !h.is_empty()), "{shown}");
}

#[test]
fn observer_defaults_cover_every_group() {
    let s = parse(&with("observers:\n  - name: audit\n"), FILE).unwrap();
    let o = &s.observers[0];
    assert_eq!((o.count, o.qos, o.shared), (1, Qos::AtLeastOnce, false));
    assert_eq!(o.topics, vec!["fleetstorm/+/+/telemetry".to_string()]);
    assert_eq!(o.groups, vec![0, 1]);
    assert_eq!(s.fanout(), vec![1, 1]);
}

#[test]
fn observer_fanout_counts_sessions_unless_shared() {
    let text = format!(
        "{}broker:\n  protocol: 5\nobservers:\n  - name: all\n    count: 3\n  - name: share\n    count: 4\n    shared: true\n    topics: [\"fleetstorm/a/#\"]\n",
        GROUPS
    );
    let s = parse(&text, FILE).unwrap();
    assert_eq!(s.broker.protocol, MqttVersion::V5);
    // group a: 3 (every session of `all`) + 1 (the shared group); group b: 3
    assert_eq!(s.fanout(), vec![4, 3]);
}

#[test]
fn observer_errors_are_located() {
    refused(
        &with("observers:\n  - name: o\n    shared: true\n"),
        11,
        "observers[0].shared",
        "shared subscriptions need MQTT 5",
    );
    refused(
        &with("observers:\n  - name: o\n    topics: [\"a/#/b\"]\n"),
        11,
        "observers[0].topics[0]",
        "not a valid topic filter",
    );
    refused(
        &with("observers:\n  - name: o\n    topics: [\"nothing/here\"]\n"),
        10,
        "observers[0].topics",
        "matches no group",
    );
    refused(
        &with("observers:\n  - name: o\n    count: 0\n"),
        11,
        "observers[0].count",
        "between 1 and 1000",
    );
    refused(
        &with("observers:\n  - name: o\n  - name: o\n"),
        11,
        "observers[1].name",
        "duplicate observer name",
    );
    // a filter that covers only some devices of a group
    refused(
        "name: net\ngroups:\n  - name: a\n    count: 20\n    profile: energy-meter\n    topic: \"t/{index}\"\nobservers:\n  - name: o\n    topics: [\"t/1\"]\n",
        8,
        "observers[0].topics",
        "only part of group",
    );
    // groups whose topics cannot be told apart
    refused(
        "name: net\ngroups:\n  - { name: a, count: 1, profile: energy-meter, topic: \"t/{client_id}\" }\n  - { name: b, count: 1, profile: energy-meter, topic: \"t/{client_id}\" }\nobservers:\n  - name: o\n",
        6,
        "observers",
        "cannot tell group",
    );
}

#[test]
fn inflight_window_and_late_sends() {
    let s = parse(
        "name: net\ngroups:\n  - { name: a, count: 1, profile: energy-meter, qos: 1, max_inflight: 1, late_sends: skip }\n",
        FILE,
    )
    .unwrap();
    assert_eq!(s.groups[0].max_inflight, 1);
    assert_eq!(s.groups[0].late_sends, LateSends::Skip);
    let d = parse(&with(""), FILE).unwrap();
    assert_eq!(
        (d.groups[0].max_inflight, d.groups[0].late_sends),
        (16, LateSends::Send)
    );
    refused(
        &with("    max_inflight: 0\n"),
        9,
        "groups[1].max_inflight",
        "between 1 and 65535",
    );
    refused(
        &with("    late_sends: drop\n"),
        9,
        "groups[1].late_sends",
        "unknown late_sends policy",
    );
}

#[test]
fn several_brokers_and_source_addresses() {
    let s = parse(
        &format!("{GROUPS}broker:\n  urls: [mqtt://127.0.0.1:65001, \"mqtt://127.0.0.1:65002\"]\n  assign: by_group\n  source_addresses: [\"127.0.0.2-127.0.0.11\", 127.0.0.20]\n"),
        FILE,
    )
    .unwrap();
    assert_eq!(s.broker.targets().len(), 2);
    assert_eq!(s.broker.url.as_ref().map(|u| u.port), Some(65001));
    assert_eq!(s.broker.assign, BrokerAssign::ByGroup);
    assert_eq!(s.broker.source_addresses.len(), 11);
    refused(
        &format!("{GROUPS}broker:\n  url: mqtt://127.0.0.1:1\n  urls: [mqtt://127.0.0.1:2]\n"),
        11,
        "broker.urls",
        "cannot both be set",
    );
    refused(
        &format!("{GROUPS}broker:\n  urls: [mqtt://127.0.0.1:2, \"http://x\"]\n"),
        10,
        "broker.urls[1]",
        "",
    );
    refused(
        &format!("{GROUPS}broker:\n  source_addresses: [\"127.0.0.9-127.0.0.2\"]\n"),
        10,
        "broker.source_addresses[0]",
        "ends before it starts",
    );
    refused(
        &format!("{GROUPS}broker:\n  url: mqtt://127.0.0.1:1\n  source_addresses: [\"::1\"]\n"),
        11,
        "broker.source_addresses",
        "wrong address family",
    );
    refused(
        &format!("{GROUPS}broker:\n  assign: random\n"),
        10,
        "broker.assign",
        "unknown assignment",
    );
}

#[test]
fn sparkplug_payload_keys() {
    let s = parse(
        "name: net\ngroups:\n  - { name: a, count: 2, profile: cnc-machine, payload: sparkplug, sparkplug: { group_id: plant, devices: 3 } }\n  - { name: b, count: 1, profile: energy-meter }\nobservers:\n  - name: o\n",
        FILE,
    )
    .unwrap();
    assert_eq!(s.groups[0].sparkplug_group(), Some("plant"));
    assert_eq!(s.groups[1].sparkplug_group(), None);
    // the default observer covers both; only the JSON group is audited by stamps
    assert_eq!(s.observers[0].groups, vec![0, 1]);
    assert_eq!(s.fanout(), vec![0, 1]);
    refused(
        &with("    payload: xml\n"),
        9,
        "groups[1].payload",
        "unknown payload",
    );
    refused(
        &with("    payload: sparkplug\n    sparkplug: { group_id: \"a/b\" }\n"),
        10,
        "groups[1].sparkplug.group_id",
        "not a valid Sparkplug group id",
    );
    refused(
        &with("    payload: sparkplug\n    sparkplug: { devices: 0 }\n"),
        10,
        "groups[1].sparkplug.devices",
        "between 1 and 256",
    );
    refused(
        &with("    sparkplug: { devices: 2 }\n"),
        9,
        "groups[1].sparkplug",
        "need `payload: sparkplug`",
    );
}
