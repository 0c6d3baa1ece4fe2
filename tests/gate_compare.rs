//! Baseline comparison: direction of each quantity, the tolerance edge, zero bases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod report_fixture;

use fleetstorm::gate::{compare, Quantity, Stat, DEFAULT_MAX_REGRESSION};
use fleetstorm::metrics::{Counter, Metric};
use fleetstorm::report::{Report, RunRecord};
use report_fixture::{hist, sample};

fn build(r: &RunRecord) -> Report {
    Report::build(r).unwrap()
}

/// The sample with steady-phase sensors puback values scaled by `num/den` and published
/// counts scaled by `pub_num/100`.
fn scaled(num: u64, den: u64, pub_pct: u64) -> RunRecord {
    let mut r = sample();
    let steady = &mut r.snapshot.phases[1];
    let sensors = &mut steady.groups[0];
    sensors.histograms.insert(
        (Metric::Puback, fleetstorm::metrics::Basis::Corrected),
        hist((1..=1000u64).map(|v| v * 2 * num / den)),
    );
    for g in &mut steady.groups {
        let p = g.counters.get(Counter::Published);
        g.counters.0[Counter::Published as usize] = p * pub_pct / 100;
    }
    r
}

fn find(c: &fleetstorm::gate::Comparison, q: Quantity) -> &fleetstorm::gate::Change {
    c.changes
        .iter()
        .find(|x| x.quantity == q)
        .unwrap_or_else(|| panic!("{q:?} not compared"))
}

const PUBACK_P50: Quantity = Quantity::Latency {
    metric: Metric::Puback,
    stat: Stat::P50,
};

#[test]
fn same_report_has_no_changes() {
    let r = build(&sample());
    let c = compare(&r, &r, DEFAULT_MAX_REGRESSION);
    assert!(!c.regressed());
    // puback and e2e, five statistics each, plus the publish rate (no observers: no loss ratio).
    assert_eq!(c.changes.len(), 2 * 5 + 1);
    assert!(c
        .changes
        .iter()
        .all(|x| x.change == 0.0 && x.relative && !x.improved));
    assert_eq!(c.base_phase.as_deref(), Some("steady"));
}

#[test]
fn tolerance_edges_and_directions() {
    let base = build(&scaled(1, 1, 100));
    // (latency scale num/den, publish %, puback p50 regressed?, improved?, rate regressed?)
    let cases = [
        (11, 10, 100, false, false, false), // +10 %: at the tolerance, not beyond
        (12, 10, 100, true, false, false),  // +20 %
        (8, 10, 100, false, true, false),   // -20 %: better
        (1, 1, 90, false, false, false),    // rate -10 %: at the tolerance
        (1, 1, 85, false, false, true),     // rate -15 %
        (1, 1, 150, false, false, false),   // rate +50 %: better
    ];
    for (num, den, pct, lat_reg, lat_imp, rate_reg) in cases {
        let cur = build(&scaled(num, den, pct));
        let c = compare(&base, &cur, 0.10);
        let p50 = find(&c, PUBACK_P50);
        let rate = find(&c, Quantity::PublishRate);
        let label = format!("{num}/{den} {pct}%: p50 {p50:?} rate {rate:?}");
        assert_eq!(p50.regressed, lat_reg, "{label}");
        assert_eq!(p50.improved, lat_imp, "{label}");
        assert_eq!(rate.regressed, rate_reg, "{label}");
        if lat_reg || rate_reg {
            assert!(c.regressed(), "{label}");
        }
        if num == den {
            // Latency unchanged: only the rate can regress.
            assert_eq!(c.regressed(), rate_reg, "{label}");
        }
    }
}

fn with_deliveries(expected: u64, received: u64) -> RunRecord {
    let mut r = sample();
    let g = &mut r.snapshot.phases[1].groups[1];
    g.counters.add(Counter::ExpectedDeliveries, expected);
    g.counters.add(Counter::Received, received);
    r
}

#[test]
fn loss_ratio_is_relative_unless_the_base_is_zero() {
    let zero = build(&with_deliveries(1000, 1000));
    let small = build(&with_deliveries(1000, 999)); // 0.001
    let more = build(&with_deliveries(1000, 998)); // 0.002
    let c = compare(&zero, &small, 0.10);
    let l = find(&c, Quantity::LossRatio);
    assert!(!l.relative && !l.regressed, "{l:?}"); // absolute +0.001 ≤ 0.10
    let c = compare(&small, &more, 0.10);
    let l = find(&c, Quantity::LossRatio);
    assert!(
        l.relative && l.regressed && (l.change - 1.0).abs() < 1e-9,
        "{l:?}"
    );
    let c = compare(&more, &small, 0.10);
    assert!(find(&c, Quantity::LossRatio).improved);
    // No observers on one side: loss is not compared.
    let c = compare(&build(&sample()), &small, 0.10);
    assert!(c.changes.iter().all(|x| x.quantity != Quantity::LossRatio));
}

#[test]
fn metrics_in_one_run_only_are_listed_not_compared() {
    let base = build(&sample());
    let mut r = sample();
    for g in &mut r.snapshot.phases[1].groups {
        g.histograms.retain(|(m, _), _| *m != Metric::E2e);
    }
    let cur = build(&r);
    let c = compare(&base, &cur, 0.10);
    assert_eq!(c.only_in_base, vec![Metric::E2e]);
    assert!(c.only_in_current.is_empty());
    assert!(c.changes.iter().all(|x| !matches!(
        x.quantity,
        Quantity::Latency {
            metric: Metric::E2e,
            ..
        }
    )));
    assert!(!c.regressed());
}

#[test]
fn compare_text_lists_every_quantity_and_flags_regressions() {
    let base = build(&scaled(1, 1, 100));
    let cur = build(&scaled(12, 10, 150));
    let c = compare(&base, &cur, 0.10);
    let text = fleetstorm::output::compare::render(&base, &cur, &c);
    assert!(text.contains("tolerance 10%"), "{text}");
    let p50 = text
        .lines()
        .find(|l| l.trim_start().starts_with("puback.p50"))
        .unwrap();
    assert!(
        p50.contains("1.00ms")
            && p50.contains("1.20ms")
            && p50.contains("+20.0%")
            && p50.ends_with("REGRESSED"),
        "{p50}"
    );
    let rate = text
        .lines()
        .find(|l| l.trim_start().starts_with("publish_rate"))
        .unwrap();
    assert!(
        rate.contains("+50.0%") && rate.ends_with("improved"),
        "{rate}"
    );
    assert!(text.contains("regressions beyond 10%"), "{text}");
}
