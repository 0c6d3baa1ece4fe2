//! Threshold parsing: valid texts and their canonical form, invalid texts and their messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use fleetstorm::gate::{parse_percent, parse_threshold, Op, Quantity, Scope, Stat};
use fleetstorm::metrics::{Counter, Metric};

#[test]
fn valid_thresholds_parse_and_print_canonically() {
    // (input, canonical form, value in the quantity's unit)
    let cases: &[(&str, &str, f64)] = &[
        ("e2e.p99 < 50ms", "e2e.p99 < 50ms", 50_000.0),
        ("e2e.p99<50ms", "e2e.p99 < 50ms", 50_000.0),
        ("  puback.p50 <= 800us ", "puback.p50 <= 800us", 800.0),
        ("puback.p50 <= 800µs", "puback.p50 <= 800us", 800.0),
        ("connect.max < 1.5s", "connect.max < 1.5s", 1_500_000.0),
        ("connect.max < 2s", "connect.max < 2s", 2_000_000.0),
        ("pubcomp.p99.9 >= 1.5ms", "pubcomp.p99.9 >= 1.5ms", 1_500.0),
        ("suback.p99.99 == 250us", "suback.p99.99 == 250us", 250.0),
        ("e2e.mean < 0.1s", "e2e.mean < 100ms", 100_000.0),
        ("e2e.p90 < 1234us", "e2e.p90 < 1234us", 1_234.0),
        ("loss_ratio == 0", "loss_ratio == 0", 0.0),
        ("loss_ratio <= 0.001", "loss_ratio <= 0.001", 0.001),
        ("loss_ratio <= 0.5%", "loss_ratio <= 0.005", 0.005),
        ("publish_rate >= 9500/s", "publish_rate >= 9500/s", 9500.0),
        ("publish_rate >= 9500", "publish_rate >= 9500/s", 9500.0),
        ("ack_rate > 10.5/s", "ack_rate > 10.5/s", 10.5),
        ("connect_failures == 0", "connect_failures == 0", 0.0),
        ("publish_failed < 10", "publish_failed < 10", 10.0),
        ("overrun == 0", "overrun == 0", 0.0),
        ("duplicates == 0", "duplicates == 0", 0.0),
        ("reordered <= 5", "reordered <= 5", 5.0),
        ("lost == 0", "lost == 0", 0.0),
        ("disconnects < 3", "disconnects < 3", 3.0),
        (
            "connect_fail_timeout == 0",
            "connect_fail_timeout == 0",
            0.0,
        ),
        ("steady:e2e.p99 < 50ms", "steady:e2e.p99 < 50ms", 50_000.0),
        (
            "group=cnc:puback.p99 < 20ms",
            "group=cnc:puback.p99 < 20ms",
            20_000.0,
        ),
        (
            "steady-2/group=cnc_1:puback.p99 < 20ms",
            "steady-2/group=cnc_1:puback.p99 < 20ms",
            20_000.0,
        ),
        (
            "run: connect_failures == 0",
            "run:connect_failures == 0",
            0.0,
        ),
    ];
    for (input, canonical, value) in cases {
        let t = parse_threshold(input).unwrap_or_else(|e| panic!("{input}: {e} ({})", e.hint));
        assert_eq!(t.to_string(), *canonical, "{input}");
        assert_eq!(t.value, *value, "{input}");
        let again = parse_threshold(canonical).unwrap();
        assert_eq!(again, t, "{canonical} round-trips");
    }
}

#[test]
fn parts_are_typed() {
    let t = parse_threshold("steady/group=cnc:e2e.p99.9 >= 5ms").unwrap();
    assert_eq!(
        t.scope,
        Scope {
            phase: Some("steady".into()),
            group: Some("cnc".into())
        }
    );
    assert_eq!(
        t.quantity,
        Quantity::Latency {
            metric: Metric::E2e,
            stat: Stat::P99_9
        }
    );
    assert_eq!(t.op, Op::Ge);
    let t = parse_threshold("inflight_at_end == 0").unwrap();
    assert_eq!(t.quantity, Quantity::Counter(Counter::InflightAtEnd));
    assert_eq!(t.scope, Scope::default());
}

#[test]
fn invalid_thresholds_say_what_is_wrong() {
    // (input, words the message must contain, words the hint must contain)
    let cases: &[(&str, &str, &str)] = &[
        ("", "empty threshold", "e2e.p99 < 50ms"),
        ("e2e.p99 50ms", "has no comparison", "<="),
        ("e2e.p99 = 50ms", "unknown comparison `=`", "single `=`"),
        ("e2e.p99 != 50ms", "unknown comparison `!=`", "< <= > >= =="),
        ("e2e.p99 =< 50ms", "unknown comparison `=<`", "< <= > >= =="),
        ("e2e.p99 <", "has no value after `<`", "e2e.p99 < 50ms"),
        ("< 50ms", "names no quantity", "e2e.p99 < 50ms"),
        ("e2e.p95 < 50ms", "unknown percentile `p95`", "p99.9"),
        (
            "latency.p99 < 50ms",
            "unknown latency metric `latency`",
            "e2e",
        ),
        ("e2e < 50ms", "`e2e` needs a percentile", "e2e.p99 < 50ms"),
        ("e2e.p99 < 50", "has no unit", "e2e.p99 < 50ms"),
        (
            "e2e.p99 < 50min",
            "unknown duration unit `min`",
            "us, µs, ms, s",
        ),
        ("e2e.p99 < fast", "not a number", "e2e.p99 < 50ms"),
        ("e2e.p99 < -5ms", "not a number", "50ms"),
        (
            "throughput > 5",
            "unknown quantity `throughput`",
            "loss_ratio",
        ),
        ("publish_rate > 9500/min", "not a number", "9500/s"),
        ("loss_ratio < 2", "above 1", "0.1%"),
        ("overrun < 1.5", "not a whole number", "overrun == 0"),
        ("overrun < 1e3", "not a number", "overrun == 0"),
        (
            ":e2e.p99 < 5ms",
            "invalid phase name ``",
            "steady/group=cnc",
        ),
        (
            "ste ady:e2e.p99 < 5ms",
            "invalid phase name `ste ady`",
            "group=NAME",
        ),
        (
            "steady/cnc:e2e.p99 < 5ms",
            "expected `group=NAME` after `/`",
            "steady/group=cnc",
        ),
        (
            "group=:e2e.p99 < 5ms",
            "invalid group name ``",
            "group=NAME",
        ),
    ];
    for (input, message, hint) in cases {
        let e = parse_threshold(input).expect_err(input);
        assert!(
            e.message.contains(message),
            "{input}: message `{}` lacks `{message}`",
            e.message
        );
        assert!(
            e.hint.contains(hint),
            "{input}: hint `{}` lacks `{hint}`",
            e.hint
        );
    }
}

#[test]
fn thresholds_serialise_as_their_text() {
    let t = parse_threshold("steady:e2e.p99<50ms").unwrap();
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        "\"steady:e2e.p99 < 50ms\""
    );
    let back: fleetstorm::gate::Threshold = serde_json::from_str("\"e2e.p99 < 50ms\"").unwrap();
    assert_eq!(back.value, 50_000.0);
    let err = serde_json::from_str::<fleetstorm::gate::Threshold>("\"e2e.p99 50ms\"").unwrap_err();
    assert!(err.to_string().contains("has no comparison"), "{err}");
}

#[test]
fn percentages() {
    let cases: &[(&str, Option<f64>)] = &[
        ("10%", Some(0.10)),
        (" 2.5 % ", Some(0.025)),
        ("0%", Some(0.0)),
        ("0.1", Some(0.1)),
        ("", None),
        ("%", None),
        ("ten%", None),
        ("-5%", None),
    ];
    for (input, want) in cases {
        match (parse_percent(input), want) {
            (Ok(v), Some(w)) => assert!((v - w).abs() < 1e-12, "{input}: {v}"),
            (Err(e), None) => assert!(e.hint.contains("10%"), "{input}: {}", e.hint),
            (got, _) => panic!("{input}: {got:?}"),
        }
    }
}
