//! Unit tests of `result.rs`: the statement, the table and the JSON of a finished search.

use super::*;
use crate::search::fixture::step;

#[test]
fn the_statement_quotes_the_capacity_and_the_first_failure() {
    let slos = [crate::threshold::parse_threshold("e2e.p99 < 50ms").unwrap()];
    let steps = vec![
        step(1, 38_500, Purpose::Bisect, Verdict::Pass, 41),
        step(2, 43_000, Purpose::Bisect, Verdict::Fail, 73),
        step(3, 38_500, Purpose::Confirm, Verdict::Pass, 40),
    ];
    let r = SearchResult::new(
        "s".into(),
        "b".into(),
        Vary::Devices,
        "at 1 msg/s each".into(),
        &slos,
        Policy::new(1000, 200_000, 2.0, 0.05, 20).unwrap(),
        (5.0, 20.0),
        steps,
        Answer::Found {
            capacity: 38_500,
            first_failing: 43_000,
        },
    );
    assert_eq!(
        r.statement,
        "capacity: 38,500 devices at 1 msg/s each: e2e p99 40.0ms; at 43,000: e2e p99 73.0ms"
    );
    assert_eq!(r.capacity, Some(38_500));
    let text = render(&r);
    assert_eq!(text.lines().filter(|l| l.contains("38,500")).count(), 3);
    assert!(text.contains("FAIL"), "{text}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["answer"]["kind"], "found");
    assert_eq!(json["steps"][1]["verdict"], "fail");
}

#[test]
fn a_failure_on_another_slo_than_the_quoted_latency_is_named() {
    let slos = [
        crate::threshold::parse_threshold("e2e.p99 < 50ms").unwrap(),
        crate::threshold::parse_threshold("loss_ratio == 0").unwrap(),
    ];
    let mut fail = step(2, 57_500, Purpose::Bisect, Verdict::Fail, 48);
    // The fixture's step checks e2e.p99 < 50ms, then loss_ratio == 0: here only the loss broke.
    fail.slos[0].passed = true;
    fail.slos[1].passed = false;
    let r = SearchResult::new(
        "s".into(),
        "b".into(),
        Vary::Rate,
        "from 1,000 devices".into(),
        &slos,
        Policy::new(10_000, 160_000, 2.0, 0.05, 20).unwrap(),
        (3.0, 8.0),
        vec![
            step(1, 52_500, Purpose::Bisect, Verdict::Pass, 5),
            fail,
            step(3, 52_500, Purpose::Confirm, Verdict::Pass, 5),
        ],
        Answer::Found {
            capacity: 52_500,
            first_failing: 57_500,
        },
    );
    assert_eq!(
        r.statement,
        "capacity: 52,500 msg/s from 1,000 devices: e2e p99 5.00ms; at 57,500: e2e p99 48.0ms (broke loss_ratio == 0)"
    );
}

#[test]
fn thousands_are_grouped() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(38_500), "38,500");
    assert_eq!(thousands(1_234_567), "1,234,567");
}
