//! `sparkplug.primary_host` and the observer's `sparkplug_host`: what parses, and the errors a user sees
//! (file:line:col, key path, message, hint).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::time::Duration;

use fleetstorm::scenario::{parse, ErrorKind, PayloadKind, ScenarioError};

const FILE: &str = "scenarios/spb.yaml";

fn scenario(sparkplug: &str, observer: &str) -> String {
    format!(
        "name: t\ngroups:\n  - name: line\n    count: 2\n    profile: cnc-machine\n    payload: sparkplug\n    sparkplug: {sparkplug}\nobservers:\n  - name: scada\n    topics: [\"spBv1.0/#\"]\n{observer}"
    )
}

fn err(text: &str) -> ScenarioError {
    match parse(text, FILE) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

fn check(e: &ScenarioError, path: &str, line: usize, message_has: &str, hint_has: &str) {
    let shown = e.to_string();
    assert_eq!(e.kind(), ErrorKind::InvalidValue, "{shown}");
    assert_eq!(e.key_path(), Some(path), "{shown}");
    assert_eq!(e.line(), Some(line), "{shown}");
    let (l, c) = e.location().unwrap();
    assert!(
        shown.starts_with(&format!("{FILE}:{l}:{c}: {path}: ")),
        "{shown}"
    );
    assert!(e.message().contains(message_has), "{shown}");
    assert!(e.hint().unwrap().contains(hint_has), "{shown}");
}

#[test]
fn primary_host_and_simulated_host_parse() {
    let text = scenario(
        "{ group_id: plant-a, devices: 4, primary_host: scada-1 }",
        "    qos: 0\n    sparkplug_host: scada-1\n    sparkplug_host_delay: 2s\n",
    );
    let s = parse(&text, FILE).unwrap();
    assert_eq!(
        s.groups[0].payload,
        PayloadKind::Sparkplug {
            group_id: "plant-a".into(),
            devices: 4,
            primary_host: Some("scada-1".into()),
            device_outages: None,
        }
    );
    assert_eq!(s.groups[0].primary_host(), Some("scada-1"));
    let host = s.observers[0].sparkplug_host.as_ref().unwrap();
    assert_eq!(host.host_id, "scada-1");
    assert_eq!(host.online_delay, Duration::from_secs(2));
    // Sparkplug groups stay out of the JSON loss audit, host or not
    assert_eq!(s.fanout(), vec![0]);

    // both keys are optional: no gate, no host
    let s = parse(&scenario("{ group_id: plant-a }", ""), FILE).unwrap();
    assert_eq!(s.groups[0].primary_host(), None);
    assert!(s.observers[0].sparkplug_host.is_none());
    // the resolved scenario in reports shows the keys only when set
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("primary_host") && !json.contains("sparkplug_host"));

    // a host without delay goes online at once
    let s = parse(
        &scenario("{ primary_host: h }", "    sparkplug_host: h\n"),
        FILE,
    )
    .unwrap();
    assert_eq!(
        s.observers[0].sparkplug_host.as_ref().unwrap().online_delay,
        Duration::ZERO
    );
}

#[test]
fn primary_host_must_be_a_sparkplug_id() {
    let e = err(&scenario("{ primary_host: \"scada/1\" }", ""));
    check(
        &e,
        "groups[0].sparkplug.primary_host",
        7,
        "`scada/1` is not a valid Sparkplug host id",
        "primary_host: scada-1",
    );
    let e = err(&scenario("{ primary_host: \"\" }", ""));
    check(
        &e,
        "groups[0].sparkplug.primary_host",
        7,
        "not a valid Sparkplug host id",
        "without `/`, `+` or `#`",
    );
}

#[test]
fn state_is_not_a_group_id() {
    let e = err(&scenario("{ group_id: STATE }", ""));
    check(
        &e,
        "groups[0].sparkplug.group_id",
        7,
        "`STATE` is reserved",
        "group_id: plant-a",
    );
}

#[test]
fn simulated_host_errors() {
    let e = err(&scenario("{}", "    sparkplug_host: \"a+b\"\n"));
    check(
        &e,
        "observers[0].sparkplug_host",
        11,
        "`a+b` is not a valid Sparkplug host id",
        "sparkplug_host: scada-1",
    );
    let e = err(&scenario("{}", "    count: 2\n    sparkplug_host: h\n"));
    check(
        &e,
        "observers[0].sparkplug_host",
        12,
        "a Sparkplug primary host is one MQTT session",
        "remove `count:`",
    );
    let e = err(&scenario("{}", "    sparkplug_host_delay: 2s\n"));
    check(
        &e,
        "observers[0].sparkplug_host_delay",
        11,
        "`sparkplug_host_delay` needs `sparkplug_host`",
        "add `sparkplug_host:",
    );
    let e = err(&scenario(
        "{}",
        "    sparkplug_host: h\n    sparkplug_host_delay: soon\n",
    ));
    check(
        &e,
        "observers[0].sparkplug_host_delay",
        12,
        "",
        "sparkplug_host_delay: 2s",
    );
    let twice = format!(
        "{}  - name: backup\n    topics: [\"spBv1.0/#\"]\n    sparkplug_host: h\n",
        scenario("{}", "    sparkplug_host: h\n")
    );
    let e = err(&twice);
    check(
        &e,
        "observers[1].sparkplug_host",
        14,
        "two observers act as Sparkplug primary host `h`",
        "each primary host id belongs to one observer",
    );
}

#[test]
fn device_outages_parse_and_bad_ones_are_explained() {
    let s = parse(
        &scenario(
            "{ devices: 3, device_outages: { rate: 6/h, duration: 90s } }",
            "",
        ),
        FILE,
    )
    .unwrap();
    let PayloadKind::Sparkplug {
        device_outages: Some(o),
        ..
    } = &s.groups[0].payload
    else {
        panic!("{:?}", s.groups[0].payload);
    };
    assert!((o.rate_per_s - 6.0 / 3600.0).abs() < 1e-12);
    assert_eq!(o.duration, Duration::from_secs(90));
    let e = err(&scenario(
        "{ device_outages: { rate: 0/h, duration: 90s } }",
        "",
    ));
    check(
        &e,
        "groups[0].sparkplug.device_outages.rate",
        7,
        "greater than zero",
        "DDEATH",
    );
    let e = err(&scenario(
        "{ device_outages: { rate: 1/h, duration: 0s } }",
        "",
    ));
    check(
        &e,
        "groups[0].sparkplug.device_outages.duration",
        7,
        "longer than zero",
        "DBIRTH",
    );
}
