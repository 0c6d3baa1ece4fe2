//! Scenario errors as a user sees them: file, line, column, key path, what is wrong, and a hint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::time::Duration;

use fleetstorm::scenario::{
    self, parse, parse_broker_url, parse_duration, parse_rate, ErrorKind, MqttVersion, Overrides,
    PhaseKind, Qos, Scenario, ScenarioError,
};

const FILE: &str = "scenarios/x.yaml";

/// A valid one-group scenario; tests append lines to it.
const BASE: &str = "\
name: t
groups:
  - name: a
    count: 2
    profile: energy-meter
";

fn err(text: &str) -> ScenarioError {
    match parse(text, FILE) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

/// Assert the class, key path, location and hint, and that the rendered message shows them all.
fn check(
    e: &ScenarioError,
    kind: ErrorKind,
    path: Option<&str>,
    line: usize,
    col: Option<usize>,
    message_has: &str,
    hint_has: &str,
) {
    let shown = e.to_string();
    assert_eq!(e.kind(), kind, "{shown}");
    assert_eq!(e.key_path(), path, "{shown}");
    assert_eq!(e.line(), Some(line), "{shown}");
    if let Some(col) = col {
        assert_eq!(e.location(), Some((line, col)), "{shown}");
    }
    let (l, c) = e.location().unwrap();
    let mut head = format!("{FILE}:{l}:{c}: ");
    if let Some(p) = path {
        head.push_str(p);
        head.push_str(": ");
    }
    assert!(
        shown.starts_with(&head),
        "expected `{head}` at the start of:\n{shown}"
    );
    assert!(e.message().contains(message_has), "{shown}");
    assert!(
        shown.contains(&format!("\n  {line} | ")),
        "no source line in:\n{shown}"
    );
    let hint = e.hint().expect("a hint");
    assert!(hint.contains(hint_has), "hint `{hint}` lacks `{hint_has}`");
    assert!(shown.contains(&format!("\n  hint: {hint}")), "{shown}");
}

// ---- one test per error class -------------------------------------------------------------

#[test]
fn malformed_yaml() {
    let e = err("name: t\ngroups: [\n  - name: a\n");
    assert_eq!(e.kind(), ErrorKind::Syntax, "{e}");
    assert!(e.line().is_some(), "{e}");
    assert!(e.message().contains("invalid YAML"), "{e}");
    assert!(e.hint().unwrap().contains("indentation"), "{e}");

    let e = err(&format!("{BASE}---\nname: u\n"));
    assert_eq!(e.kind(), ErrorKind::Syntax, "{e}");
    assert!(e.message().contains("more than one YAML document"), "{e}");
    assert_eq!(e.line(), Some(6), "{e}");

    let e = err("name: t\ngroups:\n  - name: a\n    count: 2\n   profile: x\n");
    assert!(e.line().is_some(), "{e}");
    assert!(e.to_string().starts_with("scenarios/x.yaml:"), "{e}");
}

#[test]
fn quickstart_display_format_matches_the_design() {
    let e = err(&format!(
        "{BASE}  - name: b\n    count: 1\n    profile: cnc-machine\n    qos: 3\n"
    ));
    assert_eq!(
        e.to_string(),
        "scenarios/x.yaml:9:10: groups[1].qos: QoS must be 0, 1 or 2, got 3\n  \
         9 |     qos: 3\n  \
         hint: use 0 (at most once), 1 (at least once) or 2 (exactly once)"
    );
}

#[test]
fn unknown_key_lists_valid_keys_and_suggests() {
    let e = err(&format!("{BASE}    intervall: 1s\n"));
    check(
        &e,
        ErrorKind::UnknownKey,
        Some("groups[0].intervall"),
        6,
        Some(5),
        "unknown key `intervall`",
        "did you mean `interval`?",
    );
    assert!(
        e.hint().unwrap().contains("`qos`"),
        "lists the valid keys: {e}"
    );

    let e = err(&format!("{BASE}broker:\n  keepalive: 10s\n"));
    check(
        &e,
        ErrorKind::UnknownKey,
        Some("broker.keepalive"),
        7,
        Some(3),
        "unknown key",
        "did you mean `keep_alive`?",
    );

    let e = err(&format!("{BASE}colour: blue\n"));
    check(
        &e,
        ErrorKind::UnknownKey,
        Some("colour"),
        6,
        Some(1),
        "unknown key",
        "`groups`",
    );
    assert!(
        !e.hint().unwrap().contains("did you mean"),
        "no far-fetched guess: {e}"
    );
}

#[test]
fn wrong_type_scalar() {
    let e = err("name: t\ngroups:\n  - name: a\n    count: many\n    profile: energy-meter\n");
    check(
        &e,
        ErrorKind::WrongType,
        Some("groups[0].count"),
        4,
        Some(12),
        "expected a whole number, got the text `many`",
        "count: 100",
    );
    let e = err(&format!("{BASE}    retain: maybe\n"));
    check(
        &e,
        ErrorKind::WrongType,
        Some("groups[0].retain"),
        6,
        Some(13),
        "`true` or `false`",
        "retain: true",
    );
}

#[test]
fn wrong_type_container() {
    let e = err("name: t\ngroups: 5\n");
    check(
        &e,
        ErrorKind::WrongType,
        Some("groups"),
        2,
        Some(9),
        "expected a list",
        "- name:",
    );
    let e = err(&format!("{BASE}broker: 5\n"));
    check(
        &e,
        ErrorKind::WrongType,
        Some("broker"),
        6,
        Some(9),
        "expected a mapping",
        "`url:`",
    );
    let e = err(&format!("{BASE}    qos: [1]\n"));
    assert_eq!(e.kind(), ErrorKind::WrongType, "{e}");
    assert_eq!(e.key_path(), Some("groups[0].qos"), "{e}");
    assert_eq!(e.line(), Some(6), "{e}");
}

#[test]
fn missing_required_key() {
    let e = err("name: t\ngroups:\n  - name: a\n    profile: energy-meter\n");
    check(
        &e,
        ErrorKind::MissingKey,
        Some("groups[0].count"),
        4,
        None,
        "missing required key `count`",
        "count: 100",
    );
    let e = err("groups:\n  - { name: a, count: 1, profile: cnc-machine }\n");
    check(
        &e,
        ErrorKind::MissingKey,
        Some("name"),
        1,
        None,
        "`name`",
        "name:",
    );
    let e = err(&format!("{BASE}phases:\n  - ramp: {{}}\n"));
    check(
        &e,
        ErrorKind::MissingKey,
        Some("phases[0].ramp.connect_rate"),
        7,
        None,
        "connect_rate",
        "500/s",
    );
}

#[test]
fn zero_and_negative_devices() {
    let e = err("name: t\ngroups:\n  - name: a\n    count: 0\n    profile: energy-meter\n");
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("groups[0].count"),
        4,
        Some(12),
        "at least 1 device",
        "count: 100",
    );
    let e = err("name: t\ngroups:\n  - name: a\n    count: -5\n    profile: energy-meter\n");
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("groups[0].count"),
        4,
        Some(12),
        "-5",
        "count: 100",
    );
    let e = err(&format!("{BASE}groups: []\n").replace(
        "groups:\n  - name: a\n    count: 2\n    profile: energy-meter\n",
        "",
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("groups"),
        2,
        None,
        "at least one device group",
        "- { name:",
    );
}

#[test]
fn too_many_devices() {
    let e = err("name: t\ngroups:\n  - { name: a, count: 6000000, profile: energy-meter }\n  - { name: b, count: 6000000, profile: energy-meter }\n");
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("groups[1].count"),
        4,
        None,
        "10000000",
        "sharding",
    );
    let e = err("name: t\ngroups:\n  - { name: a, count: 99999999999999999999999999, profile: energy-meter }\n");
    assert_eq!(e.key_path(), Some("groups[0].count"), "{e}");
}

#[test]
fn zero_interval() {
    let e = err(&format!("{BASE}    interval: 0s\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("groups[0].interval"),
        6,
        Some(15),
        "at least 1ms",
        "interval: 1s",
    );
}

#[test]
fn qos_out_of_range() {
    let e = err(&format!("{BASE}    qos: 3\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("groups[0].qos"),
        6,
        Some(10),
        "QoS must be 0, 1 or 2, got 3",
        "exactly once",
    );
}

#[test]
fn malformed_and_unsupported_urls() {
    let e = err(&format!("{BASE}broker:\n  url: mqtt://[::1\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.url"),
        7,
        Some(8),
        "malformed broker URL",
        "mqtt://host:1883",
    );
    let e = err(&format!("{BASE}broker:\n  url: localhost:1883\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.url"),
        7,
        Some(8),
        "no scheme",
        "mqtt://",
    );
    let e = err(&format!("{BASE}broker:\n  url: quic://h\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.url"),
        7,
        Some(8),
        "unknown broker URL scheme",
        "embedded broker",
    );
}

#[test]
fn bad_duration() {
    let e = err(&format!(
        "{BASE}phases:\n  - steady: {{ duration: 10 seconds }}\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("phases[0].steady.duration"),
        7,
        Some(25),
        "invalid duration `10 seconds`",
        "30s",
    );
    assert!(e.message().contains("e.g."), "suggests the format: {e}");
    let e = err(&format!("{BASE}broker:\n  keep_alive: 30\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.keep_alive"),
        7,
        Some(15),
        "no unit",
        "keep_alive: 30s",
    );
    let e = err(&format!("{BASE}broker:\n  keep_alive: 70000s\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.keep_alive"),
        7,
        Some(15),
        "65535",
        "65535s",
    );
}

#[test]
fn bad_rate() {
    let e = err(&format!(
        "{BASE}phases:\n  - ramp: {{ connect_rate: fast }}\n  - steady: {{ duration: 1s }}\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("phases[0].ramp.connect_rate"),
        7,
        Some(27),
        "invalid rate `fast`",
        "500/s",
    );
    let e = err(&format!(
        "{BASE}phases:\n  - ramp: {{ connect_rate: 0/s }}\n  - steady: {{ duration: 1s }}\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("phases[0].ramp.connect_rate"),
        7,
        Some(27),
        "greater than zero",
        "500/s",
    );
}

#[test]
fn duplicate_group_names() {
    let e = err(&format!(
        "{BASE}  - name: a\n    count: 1\n    profile: cnc-machine\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("groups[1].name"),
        6,
        Some(11),
        "duplicate group name `a`",
        "rename",
    );
}

#[test]
fn bad_names() {
    let e = err("name: my test\ngroups:\n  - { name: a, count: 1, profile: cnc-machine }\n");
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("name"),
        1,
        Some(7),
        "letters, digits",
        "name: factory-test-1",
    );
}

#[test]
fn bad_template_placeholder() {
    let e = err(&format!("{BASE}    topic: \"plant/{{grp}}/data\"\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("groups[0].topic"),
        6,
        Some(12),
        "unknown placeholder `{grp}`",
        "{group}",
    );
    let e = err(&format!(
        "{BASE}broker:\n  client_id: \"dev-{{client_id}}\"\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.client_id"),
        7,
        Some(14),
        "{client_id}",
        "{index}",
    );
}

#[test]
fn client_ids_must_be_unique() {
    let e = err(&format!("{BASE}broker:\n  client_id: \"dev\"\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.client_id"),
        7,
        Some(14),
        "same for every device",
        "{index}",
    );
    let two = "name: t\ngroups:\n  - { name: a, count: 1, profile: cnc-machine }\n  - { name: b, count: 1, profile: cnc-machine }\n";
    let e = err(&format!("{two}broker:\n  client_id: \"dev-{{index}}\"\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.client_id"),
        6,
        Some(14),
        "without {group}",
        "{global_index}",
    );
    // Both are fine.
    parse(
        &format!("{two}broker:\n  client_id: \"dev-{{global_index}}\"\n"),
        FILE,
    )
    .unwrap();
    parse(
        &format!("{two}broker:\n  client_id: \"{{group}}/{{index}}\"\n"),
        FILE,
    )
    .unwrap();
}

#[test]
fn unknown_profile() {
    let e = err("name: t\ngroups:\n  - name: a\n    count: 2\n    profile: energy-metre\n");
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("groups[0].profile"),
        5,
        Some(14),
        "unknown profile `energy-metre`",
        "did you mean `energy-meter`?",
    );
    for name in fleetstorm::scenario::BUILTIN_NAMES {
        assert!(e.hint().unwrap().contains(name), "lists {name}: {e}");
    }
}

#[test]
fn wrong_version() {
    let e = err(&format!("version: 2\n{BASE}"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("version"),
        1,
        Some(10),
        "unsupported scenario format version",
        "version: 1",
    );
}

#[test]
fn wrong_protocol() {
    let e = err(&format!("{BASE}broker:\n  protocol: 3\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.protocol"),
        7,
        Some(13),
        "unsupported MQTT protocol",
        "\"3.1.1\"",
    );
}

#[test]
fn duplicate_key() {
    let e = err(&format!("{BASE}    count: 3\n"));
    check(
        &e,
        ErrorKind::DuplicateKey,
        Some("groups[0].count"),
        6,
        Some(5),
        "appears twice",
        "remove one",
    );
}

#[test]
fn password_needs_username() {
    let e = err(&format!("{BASE}broker:\n  password: x\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.password"),
        7,
        Some(13),
        "needs a username",
        "username:",
    );
}

#[test]
fn phase_rules() {
    let e = err(&format!(
        "{BASE}phases:\n  - steady: {{ duration: 5s }}\n  - ramp: {{ connect_rate: 5 }}\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("phases[1].ramp"),
        8,
        None,
        "must come first",
        "single ramp",
    );
    let e = err(&format!(
        "{BASE}phases:\n  - ramp: {{ connect_rate: 5 }}\n  - ramp: {{ connect_rate: 5 }}\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("phases[1].ramp"),
        8,
        None,
        "only one ramp",
        "single ramp",
    );
    let e = err(&format!(
        "{BASE}phases:\n  - steady: {{ duration: 5s }}\n    ramp: {{ connect_rate: 5 }}\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("phases[0]"),
        7,
        None,
        "only one of `ramp`, `steady`",
        "own list item",
    );
    let e = err(&format!("{BASE}phases:\n  - name: x\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("phases[0]"),
        7,
        None,
        "needs one of `ramp`, `steady`, `churn` or `storm`",
        "steady:",
    );
    let e = err(&format!("{BASE}phases:\n  - ramp: {{ connect_rate: 5 }}\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("phases"),
        7,
        None,
        "at least one steady phase",
        "steady",
    );
    let e = err(&format!(
        "{BASE}phases:\n  - {{ name: warm, steady: {{ duration: 5s }} }}\n  - {{ name: warm, steady: {{ duration: 5s }} }}\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("phases[1].name"),
        8,
        None,
        "duplicate phase name `warm`",
        "unique",
    );
    let e = err(&format!("{BASE}phases:\n  - steady: {{ duration: 0s }}\n"));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("phases[0].steady.duration"),
        7,
        None,
        "longer than zero",
        "30s",
    );
}

#[test]
fn empty_file_and_io_errors() {
    for text in ["", "# only a comment\n", "~\n"] {
        let e = err(text);
        assert_eq!(e.kind(), ErrorKind::MissingKey, "{e}");
        assert!(e.to_string().starts_with(FILE), "{e}");
        assert!(e.hint().unwrap().contains("quickstart"), "{e}");
    }
    let e = scenario::load(std::path::Path::new("scenarios/does-not-exist.yaml")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        e.to_string().contains("scenarios/does-not-exist.yaml"),
        "{e}"
    );
}

// ---- defaults and overrides ---------------------------------------------------------------

#[test]
fn ten_line_scenario_gets_every_default() {
    let s = parse(
        "name: small\ngroups:\n  - name: env\n    count: 10\n    profile: environment-sensor\n",
        FILE,
    )
    .unwrap();
    assert_eq!(s.name, "small");
    assert_eq!(s.seed, 1);
    assert!(s.broker.url.is_none());
    assert_eq!(s.broker.protocol, MqttVersion::V311);
    assert_eq!(s.broker.keep_alive, Duration::from_secs(30));
    assert_eq!(s.broker.client_id.as_str(), "fleetstorm-{group}-{index}");
    assert!(s.broker.clean_session);
    assert_eq!(s.broker.connect_timeout, Duration::from_secs(10));
    assert_eq!(s.broker.max_connecting, 100);
    let g = &s.groups[0];
    // No `interval`: the profile's publish cadence (profiles/environment-sensor.yaml).
    assert_eq!(g.interval, Duration::from_secs(5));
    assert_eq!(g.qos, Qos::AtMostOnce);
    assert!(!g.retain);
    assert_eq!(g.topic.as_str(), "fleetstorm/{group}/{client_id}/telemetry");
    assert_eq!(s.phases.len(), 2);
    assert_eq!(s.phases[0].name, "ramp");
    assert!(
        matches!(s.phases[0].kind, PhaseKind::Ramp { connect_rate_per_s } if connect_rate_per_s == 500.0)
    );
    assert_eq!(s.phases[1].name, "steady");
    assert!(
        matches!(s.phases[1].kind, PhaseKind::Steady { duration } if duration == Duration::from_secs(30))
    );
}

#[test]
fn phases_without_ramp_get_a_default_ramp_and_names() {
    let s = parse(
        &format!("{BASE}phases:\n  - steady: {{ duration: 5s }}\n  - steady: {{ duration: 1m }}\n"),
        FILE,
    )
    .unwrap();
    let names: Vec<&str> = s.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["ramp", "steady", "steady-2"]);
}

#[test]
fn full_scenario_values() {
    let s = parse(
        &format!(
            "{BASE}broker:\n  url: tcp://[::1]:1884\n  protocol: 5\n  keep_alive: 0s\n  username: u\n  password: p\n  max_connecting: 7\n\
             phases:\n  - name: up\n    ramp: {{ connect_rate: 30000/min }}\n  - steady: {{ duration: 2m30s }}\n"
        ),
        FILE,
    )
    .unwrap();
    let url = s.broker.url.as_ref().unwrap();
    assert_eq!(
        (url.scheme.as_str(), url.host.as_str(), url.port),
        ("tcp", "::1", 1884)
    );
    assert_eq!(s.broker.protocol, MqttVersion::V5);
    assert_eq!(s.broker.keep_alive, Duration::ZERO);
    assert_eq!(s.broker.password.as_deref(), Some("p"));
    assert_eq!(s.broker.max_connecting, 7);
    assert_eq!(s.phases[0].name, "up");
    assert!(
        matches!(s.phases[0].kind, PhaseKind::Ramp { connect_rate_per_s } if connect_rate_per_s == 500.0)
    );
    assert!(
        matches!(s.phases[1].kind, PhaseKind::Steady { duration } if duration == Duration::from_secs(150))
    );
    for proto in ["\"3.1.1\"", "3.1.1", "\"4\"", "4"] {
        let s = parse(&format!("{BASE}broker:\n  protocol: {proto}\n"), FILE).unwrap();
        assert_eq!(s.broker.protocol, MqttVersion::V311, "{proto}");
    }
}

fn three_groups() -> Scenario {
    parse(
        "name: t\ngroups:\n  - { name: a, count: 500, profile: energy-meter }\n  - { name: b, count: 300, profile: energy-meter }\n  - { name: c, count: 200, profile: cnc-machine }\n\
         phases:\n  - steady: { duration: 5s }\n  - steady: { duration: 6s }\n",
        FILE,
    )
    .unwrap()
}

fn counts(s: &Scenario) -> Vec<u32> {
    s.groups.iter().map(|g| g.count).collect()
}

#[test]
fn devices_override_uses_largest_remainder() {
    let o = |n| Overrides {
        devices: Some(n),
        ..Overrides::default()
    };
    assert_eq!(
        counts(&three_groups().apply_overrides(&o(1000)).unwrap()),
        [500, 300, 200]
    );
    // 7 * 0.5 = 3.5, 7 * 0.3 = 2.1, 7 * 0.2 = 1.4 → 3, 2, 1 + the one left goes to the largest remainder (a).
    assert_eq!(
        counts(&three_groups().apply_overrides(&o(7)).unwrap()),
        [4, 2, 1]
    );
    // 11: 5.5, 3.3, 2.2 → 5, 3, 2 + 1 to a.
    assert_eq!(
        counts(&three_groups().apply_overrides(&o(11)).unwrap()),
        [6, 3, 2]
    );
    // Every group keeps one device.
    assert_eq!(
        counts(&three_groups().apply_overrides(&o(3)).unwrap()),
        [1, 1, 1]
    );
    let s = three_groups().apply_overrides(&o(123_457)).unwrap();
    assert_eq!(s.device_count(), 123_457);
}

#[test]
fn override_errors_name_the_flag() {
    let cases = [
        (
            Overrides {
                devices: Some(0),
                ..Overrides::default()
            },
            "--devices",
        ),
        (
            Overrides {
                devices: Some(2),
                ..Overrides::default()
            },
            "--devices",
        ),
        (
            Overrides {
                devices: Some(20_000_000),
                ..Overrides::default()
            },
            "--devices",
        ),
        (
            Overrides {
                duration: Some("10 seconds".into()),
                ..Overrides::default()
            },
            "--duration",
        ),
        (
            Overrides {
                duration: Some("0s".into()),
                ..Overrides::default()
            },
            "--duration",
        ),
        (
            Overrides {
                broker: Some("quic://h".into()),
                ..Overrides::default()
            },
            "--broker",
        ),
        (
            Overrides {
                broker: Some("nonsense".into()),
                ..Overrides::default()
            },
            "--broker",
        ),
    ];
    for (o, flag) in cases {
        let e = three_groups().apply_overrides(&o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Override);
        assert_eq!(e.flag(), Some(flag));
        assert!(e.to_string().starts_with(&format!("{flag}: ")), "{e}");
        assert!(e.hint().is_some_and(|h| !h.is_empty()), "{e}");
        assert_eq!(e.location(), None);
    }
}

#[test]
fn duration_broker_and_seed_overrides() {
    let o = Overrides {
        broker: Some("mqtt://broker.local".into()),
        duration: Some("1m".into()),
        devices: None,
        seed: Some(99),
    };
    let s = three_groups().apply_overrides(&o).unwrap();
    assert_eq!(s.seed, 99);
    assert_eq!(
        s.broker.url.as_ref().unwrap().to_string(),
        "mqtt://broker.local:1883"
    );
    let steady: Vec<Duration> = s
        .phases
        .iter()
        .filter_map(|p| match p.kind {
            PhaseKind::Steady { duration } => Some(duration),
            _ => None,
        })
        .collect();
    assert_eq!(steady, [Duration::from_secs(60), Duration::from_secs(60)]);
    // No overrides: unchanged.
    let s = three_groups()
        .apply_overrides(&Overrides::default())
        .unwrap();
    assert_eq!(counts(&s), [500, 300, 200]);
    assert_eq!(s.seed, 1);
}

// ---- value parsers -----------------------------------------------------------------------

#[test]
fn parse_duration_table() {
    let ok = [
        ("250ms", Duration::from_millis(250)),
        ("30s", Duration::from_secs(30)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("1.5s", Duration::from_millis(1500)),
        ("2m30s", Duration::from_secs(150)),
        ("1h30m", Duration::from_secs(5400)),
        ("0s", Duration::ZERO),
        ("100us", Duration::from_micros(100)),
        (" 10s ", Duration::from_secs(10)),
    ];
    for (s, want) in ok {
        assert_eq!(parse_duration(s), Ok(want), "{s}");
    }
    for s in [
        "",
        "10",
        "10 seconds",
        "s",
        "-5s",
        "1.s",
        ".5s",
        "5x",
        "1e3s",
        "99999999999999999999999h",
    ] {
        let e = parse_duration(s).unwrap_err();
        assert!(e.contains("e.g.") || e.contains("too large"), "{s}: {e}");
    }
}

#[test]
fn parse_rate_table() {
    let ok = [
        ("500/s", 500.0),
        ("30000/min", 500.0),
        ("2/h", 2.0 / 3600.0),
        ("42", 42.0),
        ("1.5/s", 1.5),
        ("60 / m", 1.0),
    ];
    for (s, want) in ok {
        let got = parse_rate(s).unwrap();
        assert!((got - want).abs() < 1e-12, "{s}: {got}");
    }
    for s in [
        "", "fast", "500/day", "/s", "-1/s", "inf/s", "NaN", "1e999/s",
    ] {
        let e = parse_rate(s).unwrap_err();
        assert!(e.contains("500/s"), "{s}: {e}");
    }
}

#[test]
fn parse_broker_url_table() {
    let ok = [
        ("mqtt://127.0.0.1:1883", "mqtt", "127.0.0.1", 1883),
        ("tcp://broker.local", "tcp", "broker.local", 1883),
        ("mqtt://[::1]:1884", "mqtt", "::1", 1884),
        ("mqtt://h:1/", "mqtt", "h", 1),
        ("MQTT://h:2", "mqtt", "h", 2),
        ("ws://h", "ws", "h", 80),
        ("ws://[::1]:8080/mqtt", "ws", "::1", 8080),
    ];
    for (s, scheme, host, port) in ok {
        let u = parse_broker_url(s).unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port),
            (scheme, host, port),
            "{s}"
        );
    }
    for (s, port, path) in [
        ("mqtts://h", 8883, ""),
        ("ssl://h:8884", 8884, ""),
        ("ws://h", 80, "/mqtt"),
        ("wss://h", 443, "/mqtt"),
        ("wss://h:8443/ws", 8443, "/ws"),
    ] {
        let u = parse_broker_url(s).unwrap();
        assert_eq!((u.port, u.path.as_str()), (port, path), "{s}");
    }
    assert!(parse_broker_url("mqtts://h/x")
        .unwrap_err()
        .contains("no path"));
    for s in [
        "",
        "localhost:1883",
        "http://h",
        "mqtt://",
        "mqtt://h:99999",
        "mqtt://h:0",
        "mqtt://h/path",
        "mqtt://u:p@h",
    ] {
        assert!(parse_broker_url(s).is_err(), "{s}");
    }
}

// ---- no panics on garbage ---------------------------------------------------------------

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut inputs: Vec<String> = vec![
        String::new(),
        "[".into(),
        "]".into(),
        "{".into(),
        ":".into(),
        "- - - -".into(),
        "\u{0}\u{1}\u{2}\u{7f}\u{fffd}binary".into(),
        "name: t\ngroups: [".into(),
        "[".repeat(10_000),
        format!("{}: 1\n", "k".repeat(500_000)),
        format!("{BASE}{}: 1\n{}: 2\n", "k".repeat(300_000), "k".repeat(300_000)),
        format!("name: \"{}\n", "x".repeat(500_000)),
        "{a: ".repeat(10_000),
        "- ".repeat(10_000),
        format!("name: t\ngroups:\n  - {{ name: a, count: {}, profile: cnc-machine }}\n", "9".repeat(400)),
        "name: t\ngroups:\n  - { name: a, count: -99999999999999999999, profile: cnc-machine }\n".into(),
        "name: t\ngroups:\n  - { name: a, count: 1e999, profile: cnc-machine }\n".into(),
        "name: t\nseed: -1\ngroups:\n  - { name: a, count: 1, profile: cnc-machine }\n".into(),
        "name: t\nseed: 18446744073709551616\ngroups:\n  - { name: a, count: 1, profile: cnc-machine }\n".into(),
        format!("name: \"{}\"\ngroups: []\n", "x".repeat(2 * 1024 * 1024)),
        "a: &a [*a]".into(),
        "a: &x b\nc: *y\n".into(),
        "--- \n...\n--- \n".into(),
        "name: t\n\tgroups: 1".into(),
        "!!binary name: t".into(),
        "name: !custom t\ngroups: !!map {}\n".into(),
        "name: t\ngroups:\n  - name: a\n    count: 1\n    profile: cnc-machine\n    interval: 99999999999999999h\n".into(),
        "name: t\ngroups:\n  - name: ÿ€\n    count: 1\n    profile: cnc-machine\n".into(),
        "name: t\ngroups:\n  - { name: a, count: 1, profile: cnc-machine, topic: \"{\" }\n".into(),
    ];
    // Billion laughs.
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..10 {
        laughs.push_str(&format!(
            "b{i}: &b{i} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n",
            p = if i == 0 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            }
        ));
    }
    inputs.push(laughs);
    for text in &inputs {
        let e = parse(text, FILE).unwrap_err();
        let shown = e.to_string();
        assert!(shown.starts_with(FILE), "{shown}");
        assert!(!e.message().is_empty());
        assert!(
            shown.len() < 4_000,
            "error message is huge: {} bytes",
            shown.len()
        );
    }
    // Binary junk through `load`.
    let dir = std::env::temp_dir().join(format!("fleetstorm-scenario-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.yaml");
    std::fs::write(&junk, [0xff, 0xfe, 0x00, 0x80, b'\n', 0xc3]).unwrap();
    let e = scenario::load(&junk).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Syntax, "{e}");
    let big = dir.join("big.yaml");
    std::fs::write(&big, "#".repeat(2 * 1024 * 1024)).unwrap();
    assert_eq!(
        scenario::load(&big).unwrap_err().kind(),
        ErrorKind::TooLarge
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- everything a device encodes fits MQTT (issue 11, item 6) -----------------------------

#[test]
fn a_topic_that_renders_over_65535_bytes_is_refused_at_its_line() {
    // 65,530 literal bytes + `/{index}`: with 100,000 devices the last renders `/99999`, 65,536
    // bytes; with 10,000 (`/9999`) it fits.
    let topic = "t".repeat(65_530);
    let text = format!(
        "name: t\ngroups:\n  - name: a\n    count: 100000\n    profile: energy-meter\n    topic: \"{topic}/{{index}}\"\n"
    );
    let e = err(&text);
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("groups[0].topic"),
        6,
        Some(12),
        "65536 bytes long, over MQTT's limit of 65535 bytes",
        "shorten the template",
    );
    assert!(e.message().contains("last device of group `a`"), "{e}");
    // The same template with fewer devices renders short enough: the check is at the longest
    // rendering, not the template's own length.
    let fits = text.replace("count: 100000", "count: 10000");
    assert!(parse(&fits, FILE).is_ok());
}

#[test]
fn a_client_id_and_credentials_over_65535_bytes_are_refused() {
    let long = "c".repeat(65_536);
    let e = err(&format!(
        "{BASE}broker:\n  client_id: \"{long}-{{index}}\"\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.client_id"),
        7,
        None,
        "the client id of the last device of group `a`",
        "shorten the client_id template",
    );
    let e = err(&format!(
        "{BASE}broker:\n  username: u\n  password: \"{long}\"\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        Some("broker.password"),
        8,
        None,
        "the password is 65536 bytes long",
        "shorten it",
    );
    // A client id used in the topic counts at its rendered length there too.
    let id = "c".repeat(40_000);
    let e = err(&format!(
        "{BASE}    topic: \"{}/{{client_id}}\"\nbroker:\n  client_id: \"{id}-{{index}}\"\n",
        "t".repeat(30_000)
    ));
    assert_eq!(e.key_path(), Some("groups[0].topic"), "{e}");
}

#[test]
fn more_devices_from_the_command_line_cannot_overflow_a_topic() {
    let text = format!(
        "name: t\ngroups:\n  - name: a\n    count: 10\n    profile: energy-meter\n    topic: \"{}/{{index}}\"\n",
        "t".repeat(65_531)
    );
    let s = parse(&text, FILE).expect("10 devices fit");
    let o = Overrides {
        devices: Some(100_000),
        ..Overrides::default()
    };
    let e = s.apply_overrides(&o).expect_err("100000 devices do not");
    assert_eq!(e.kind(), ErrorKind::Override, "{e}");
    let shown = e.to_string();
    assert!(shown.starts_with("--devices: "), "{shown}");
    assert!(shown.contains("groups[0].topic"), "{shown}");
}
