//! Threshold evaluation against the synthetic report: edges, scopes, and unmeasured quantities.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod report_fixture;

use fleetstorm::gate::{evaluate, parse_threshold, passed, Threshold};
use fleetstorm::metrics::{Counter, Metric};
use fleetstorm::report::Report;
use report_fixture::{sample, unreachable};

fn report() -> Report {
    Report::build(&sample()).unwrap()
}

fn t(s: &str) -> Threshold {
    parse_threshold(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// `(threshold, passes, measured)`; `measured: None` means "not measured".
fn check(report: &Report, cases: &[(String, bool, Option<f64>)]) {
    let thresholds: Vec<Threshold> = cases.iter().map(|(s, _, _)| t(s)).collect();
    let verdicts = evaluate(report, &thresholds);
    assert_eq!(verdicts.len(), cases.len());
    for ((s, pass, measured), v) in cases.iter().zip(&verdicts) {
        assert_eq!(v.passed, *pass, "{s}: {}", v.detail);
        assert_eq!(v.measured, *measured, "{s}: {}", v.detail);
        assert_eq!(v.threshold.to_string(), t(s).to_string());
        assert!(!v.detail.is_empty());
    }
}

#[test]
fn latency_edges_in_the_summary_phase() {
    let r = report();
    let steady = &r.phases[1];
    assert_eq!(r.summary.phase.as_deref(), Some("steady"));
    let p99 = steady.totals.latency[&Metric::Puback].corrected.p99_us;
    let max = steady.totals.latency[&Metric::Puback].corrected.max_us;
    let m = Some(p99 as f64);
    let cases = vec![
        (format!("puback.p99 < {p99}us"), false, m),
        (format!("puback.p99 <= {p99}us"), true, m),
        (format!("puback.p99 == {p99}us"), true, m),
        (format!("puback.p99 >= {p99}us"), true, m),
        (format!("puback.p99 > {p99}us"), false, m),
        (format!("puback.p99 < {}us", p99 + 1), true, m),
        (format!("puback.max <= {max}us"), true, Some(max as f64)),
        (format!("puback.max < {max}us"), false, Some(max as f64)),
        (
            "e2e.p50 < 1s".to_owned(),
            false,
            Some(steady.totals.latency[&Metric::E2e].corrected.p50_us as f64),
        ),
        // Scoped to another phase: ramp puback is half of steady.
        (
            format!("ramp:puback.p99 < {p99}us"),
            true,
            Some(r.phases[0].totals.latency[&Metric::Puback].corrected.p99_us as f64),
        ),
        // Scoped to a group: gateways have no puback, sensors have all of it.
        (format!("group=sensors:puback.p99 <= {p99}us"), true, m),
        ("group=gateways:puback.p99 < 1s".to_owned(), false, None),
        (
            "steady/group=gateways:e2e.max < 10s".to_owned(),
            true,
            Some(
                steady.groups["gateways"].latency[&Metric::E2e]
                    .corrected
                    .max_us as f64,
            ),
        ),
        // Not measured anywhere: fails with a reason.
        ("pubcomp.p99 < 1s".to_owned(), false, None),
        ("suback.p99 < 1s".to_owned(), false, None),
    ];
    check(&r, &cases);
}

#[test]
fn connect_quantities_default_to_the_whole_run() {
    let r = report();
    let connect_p99 = r.totals.totals.latency[&Metric::Connect].corrected.p99_us as f64;
    let cases = vec![
        ("connect.p99 < 1s".to_owned(), true, Some(connect_p99)),
        ("connect_failures == 0".to_owned(), false, Some(2.0)),
        ("connect_failures <= 2".to_owned(), true, Some(2.0)),
        ("connect_fail_timeout == 2".to_owned(), true, Some(2.0)),
        // Explicitly the steady phase: nothing connected there.
        ("steady:connect.p99 < 1s".to_owned(), false, None),
        ("steady:connect_failures == 0".to_owned(), true, Some(0.0)),
        ("run:publish_failed == 12".to_owned(), true, Some(12.0)),
    ];
    check(&r, &cases);
}

#[test]
fn counters_rates_and_deliveries() {
    let r = report();
    let steady = &r.phases[1].totals;
    let rate = steady.rates.published_per_s;
    assert_eq!(rate, 2200.0);
    let cases = vec![
        ("publish_rate >= 2200/s".to_owned(), true, Some(rate)),
        ("publish_rate > 2200/s".to_owned(), false, Some(rate)),
        (
            "ack_rate >= 2200".to_owned(),
            false,
            Some(steady.rates.acked_per_s),
        ),
        (
            "overrun == 0".to_owned(),
            false,
            Some(steady.counters.get(Counter::Overrun) as f64),
        ),
        ("overrun <= 6".to_owned(), true, Some(6.0)),
        ("publish_failed < 5".to_owned(), true, Some(4.0)),
        ("cooldown:disconnects == 51".to_owned(), true, Some(51.0)),
        ("disconnects == 0".to_owned(), true, Some(0.0)),
        ("duplicates == 0".to_owned(), true, Some(0.0)),
        // The fixture has no observers: loss cannot be judged.
        ("loss_ratio == 0".to_owned(), false, None),
        ("lost == 0".to_owned(), false, None),
    ];
    check(&r, &cases);
}

#[test]
fn unknown_scopes_fail_with_the_known_names() {
    let r = report();
    let v = evaluate(&r, &[t("warmup:e2e.p99 < 1s"), t("group=cnc:e2e.p99 < 1s")]);
    assert!(!v[0].passed && v[0].measured.is_none());
    assert!(
        v[0].detail
            .contains("phase `warmup` is not in this run (phases: ramp, steady, cooldown"),
        "{}",
        v[0].detail
    );
    assert!(
        v[1].detail
            .contains("group `cnc` is not in this run (groups: sensors, gateways)"),
        "{}",
        v[1].detail
    );
    assert!(!passed(&v));
    assert!(passed(&[]));
}

#[test]
fn a_run_without_measurements_fails_its_gates() {
    let r = Report::build(&unreachable()).unwrap();
    let v = evaluate(
        &r,
        &[t("e2e.p99 < 1s"), t("overrun == 0"), t("publish_rate >= 1")],
    );
    assert!(!v[0].passed, "{}", v[0].detail);
    assert!(v[1].passed, "{}", v[1].detail);
    assert!(!v[2].passed, "{}", v[2].detail);
    assert!(!passed(&v));
}

#[test]
fn details_read_well() {
    let r = report();
    let v = evaluate(
        &r,
        &[
            t("puback.p99 < 1ms"),
            t("puback.p99 < 1s"),
            t("e2e.p99 < 1s"),
        ],
    );
    assert_eq!(
        v[0].detail,
        "1.98ms, limit < 1ms (phase steady, all groups)"
    );
    assert_eq!(v[1].detail, "1.98ms < 1s (phase steady, all groups)");
    assert_eq!(v[0].section, "phase steady, all groups");
    assert!(v[2].detail.starts_with("2.4"), "{}", v[2].detail);
}

/// A gate line prints a latency exactly as the summary tables do (one formatter): the p99 in the
/// verdict is the p99 in the headline row of summary.md.
#[test]
fn gate_lines_and_tables_print_the_same_latency() {
    let r = report();
    assert!(
        !r.summary.latency.is_empty(),
        "the fixture measures latency"
    );
    let md = fleetstorm::output::markdown::render(&r, &[], None);
    for metric in r.summary.latency.keys() {
        let v = &evaluate(&r, &[t(&format!("{}.p99 < 1000s", metric.name()))])[0];
        assert!(v.passed, "{}", v.detail);
        let shown = v.detail.split(' ').next().unwrap();
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {} p50 / p99 / max", metric.name())))
            .unwrap_or_else(|| panic!("no headline row for {}:\n{md}", metric.name()));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let p99 = cells[2].split(" / ").nth(1).unwrap();
        assert_eq!(shown, p99, "gate line `{}` vs table row `{row}`", v.detail);
    }
}
