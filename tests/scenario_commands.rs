//! `session:` and `commands:` of a group: what they parse to, and every refusal with file, line, key
//! path and a hint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::time::Duration;

use fleetstorm::scenario::{parse, ErrorKind, Qos, ScenarioError};

const FILE: &str = "scenarios/cmd.yaml";

/// A valid one-group scenario (lines 1-6); tests append the group's keys from line 7.
const BASE: &str = "\
name: t
broker:
  protocol: 5
groups:
  - name: plcs
    count: 4
    profile: cnc-machine
";

fn err(text: &str) -> ScenarioError {
    match parse(text, FILE) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

/// The class, key path, line, message and hint, and the rendered `file:line:col: path:` head.
fn check(e: &ScenarioError, kind: ErrorKind, path: &str, line: usize, message: &str, hint: &str) {
    let shown = e.to_string();
    assert_eq!(e.kind(), kind, "{shown}");
    assert_eq!(e.key_path(), Some(path), "{shown}");
    assert_eq!(e.line(), Some(line), "{shown}");
    let (l, c) = e.location().expect("a location");
    assert!(
        shown.starts_with(&format!("{FILE}:{l}:{c}: {path}: ")),
        "{shown}"
    );
    assert!(e.message().contains(message), "{shown}");
    let h = e.hint().expect("a hint");
    assert!(h.contains(hint), "hint `{h}` lacks `{hint}`");
}

#[test]
fn commands_and_session_parse_with_their_defaults() {
    let s = parse(
        &format!("{BASE}    session: {{ clean: false }}\n    commands: {{ rate: 20/s }}\n"),
        FILE,
    )
    .unwrap();
    let g = &s.groups[0];
    let session = g.session.as_ref().unwrap();
    assert!(!session.clean);
    assert_eq!(session.expiry, Duration::from_secs(600));
    let c = g.commands.as_ref().unwrap();
    assert_eq!(c.rate_per_s, 20.0);
    assert_eq!(c.qos, Qos::AtLeastOnce);
    assert_eq!(c.topic.as_str(), "fleetstorm/{group}/{client_id}/cmd");
    assert_eq!(
        c.reply_topic.as_str(),
        "fleetstorm/{group}/{client_id}/cmd/reply"
    );

    let s = parse(
        &format!("{BASE}    session:\n      clean: false\n      expiry: 1h\n    commands:\n      rate: 600/min\n      qos: 2\n      topic: \"cmd/{{client_id}}\"\n      reply_topic: \"cmd/{{client_id}}/reply\"\n"),
        FILE,
    )
    .unwrap();
    let g = &s.groups[0];
    assert_eq!(
        g.session.as_ref().unwrap().expiry,
        Duration::from_secs(3600)
    );
    let c = g.commands.as_ref().unwrap();
    assert_eq!((c.rate_per_s, c.qos), (10.0, Qos::ExactlyOnce));
    assert_eq!(c.topic.as_str(), "cmd/{client_id}");

    // without the keys: clean sessions as the broker section says, no commands
    let s = parse(BASE, FILE).unwrap();
    assert!(s.groups[0].session.is_none() && s.groups[0].commands.is_none());
}

#[test]
fn bad_command_settings_are_located_and_explained() {
    let cases: [(&str, &str, usize, &str, &str); 7] = [
        (
            "    commands: { rate: 0/s }\n",
            "groups[0].commands.rate",
            8,
            "above 0",
            "rate: 20/s",
        ),
        (
            "    commands:\n      rate: 5/s\n      qos: 3\n",
            "groups[0].commands.qos",
            10,
            "QoS must be 0, 1 or 2",
            "at least once",
        ),
        (
            "    commands: { rate: 5/s, topic: \"cmd/all\" }\n",
            "groups[0].commands.topic",
            8,
            "the same for every device",
            "{client_id}",
        ),
        (
            "    commands: { rate: 5/s, topic: \"cmd/+/{index}\" }\n",
            "groups[0].commands.topic",
            8,
            "wildcards",
            "per-device topic",
        ),
        (
            "    commands: { rate: 5/s, topic: \"cmd/{client_id}\", reply_topic: \"cmd/{index}\" }\n",
            "groups[0].commands.reply_topic",
            8,
            "overlap",
            "reply_topic:",
        ),
        (
            "    topic: \"plant/{client_id}\"\n    commands: { rate: 5/s, topic: \"plant/{index}\" }\n",
            "groups[0].commands.topic",
            9,
            "telemetry topic",
            "different topic level",
        ),
        (
            "    payload: sparkplug\n    commands: { rate: 5/s }\n",
            "groups[0].commands",
            9,
            "payload: sparkplug",
            "NCMD",
        ),
    ];
    for (extra, path, line, message, hint) in cases {
        let e = err(&format!("{BASE}{extra}"));
        check(&e, ErrorKind::InvalidValue, path, line, message, hint);
    }
}

#[test]
fn command_keys_are_checked_by_shape_too() {
    let e = err(&format!("{BASE}    commands: {{ qos: 1 }}\n"));
    assert_eq!(e.kind(), ErrorKind::MissingKey, "{e}");
    assert!(e.to_string().contains("rate"), "{e}");
    assert!(e.hint().unwrap().contains("rate: 20/s"), "{e}");

    let e = err(&format!("{BASE}    commands: {{ rate: 5/s, rtae: 1 }}\n"));
    assert_eq!(e.kind(), ErrorKind::UnknownKey, "{e}");
    assert_eq!(e.line(), Some(8), "{e}");
    assert!(e.to_string().contains("rtae"), "{e}");

    let e = err(&format!("{BASE}    commands: 5/s\n"));
    assert_eq!(e.kind(), ErrorKind::WrongType, "{e}");
    assert!(e.hint().unwrap().contains("commands: { rate: 20/s"), "{e}");
}

#[test]
fn bad_session_settings_are_located_and_explained() {
    let cases: [(&str, &str, usize, &str, &str); 3] = [
        (
            "    session: { expiry: 10m }\n",
            "groups[0].session.expiry",
            8,
            "needs a persistent session",
            "clean: false",
        ),
        (
            "    session:\n      clean: false\n      expiry: 0s\n",
            "groups[0].session.expiry",
            10,
            "whole seconds",
            "expiry: 10m",
        ),
        (
            "    session: { clean: false, expiry: 10 }\n",
            "groups[0].session.expiry",
            8,
            "unit",
            "expiry: 10m",
        ),
    ];
    for (extra, path, line, message, hint) in cases {
        let e = err(&format!("{BASE}{extra}"));
        check(&e, ErrorKind::InvalidValue, path, line, message, hint);
    }
    let e = err(&format!("{BASE}    session: {{ clean: \"no\" }}\n"));
    check(
        &e,
        ErrorKind::WrongType,
        "groups[0].session.clean",
        8,
        "`true` or `false`",
        "clean: false",
    );
    // an expiry is MQTT 5 only
    let v311 = BASE.replace("protocol: 5", "protocol: \"3.1.1\"");
    let e = err(&format!(
        "{v311}    session: {{ clean: false, expiry: 5m }}\n"
    ));
    check(
        &e,
        ErrorKind::InvalidValue,
        "groups[0].session.expiry",
        8,
        "MQTT 5 feature",
        "broker.protocol: 5",
    );
    // ... and `clean: false` alone is fine there
    let s = parse(&format!("{v311}    session: {{ clean: false }}\n"), FILE).unwrap();
    assert!(!s.groups[0].session.as_ref().unwrap().clean);
}
