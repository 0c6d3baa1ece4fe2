//! Building a `Report`: percentiles, summary choice, totals, round trips, writing and loading.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod report_fixture;

use fleetstorm::metrics::{Basis, Counter, Counters, Metric};
use fleetstorm::output;
use fleetstorm::report::{self, json, LatencyStats, Report, ReportError, RUN_SECTION_NAME};
use report_fixture::{hist, record_with_phases, sample, scratch_dir, unreachable};

fn stats_of(values: impl IntoIterator<Item = u64>) -> LatencyStats {
    let h = hist(values);
    LatencyStats {
        count: h.len(),
        min_us: h.min(),
        mean_us: h.mean(),
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        p99_9_us: h.value_at_quantile(0.999),
        p99_99_us: h.value_at_quantile(0.9999),
        max_us: h.max(),
    }
}

#[test]
fn percentiles_are_the_histograms_own() {
    let r = Report::build(&sample()).unwrap();
    let steady = &r.phases[1];
    assert_eq!(steady.name, "steady");
    let puback = steady.groups["sensors"].latency[&Metric::Puback];
    // 1..=1000 µs is below 2048, where 3 significant figures keep every value exact.
    let c = puback.corrected;
    assert_eq!(
        (c.count, c.min_us, c.p50_us, c.p90_us, c.p99_us, c.max_us),
        (1000, 2, 1000, 1800, 1980, 2000),
        "steady is phase 2: values are 2..=2000 step 2"
    );
    assert_eq!(c, stats_of((1..=1000).map(|v| v * 2)));
    assert_eq!(
        puback.uncorrected,
        stats_of((1..=1000u64).map(|v| v.div_ceil(2) * 2))
    );

    let ramp = r.phases[0].groups["sensors"].latency[&Metric::Puback].corrected;
    assert_eq!(
        (ramp.p50_us, ramp.p99_us, ramp.p99_9_us, ramp.max_us),
        (500, 990, 999, 1000)
    );
    assert!((ramp.mean_us - 500.5).abs() < 1e-9);

    // Larger values: equal to HDR's answer, and within its precision of the exact one.
    let e2e = r.phases[0].groups["gateways"].latency[&Metric::E2e].corrected;
    assert_eq!(e2e, stats_of((0..1200).map(|i| 100_000 + i * 1_000)));
    let exact_p50 = 100_000 + 599 * 1_000;
    assert!(e2e.p50_us.abs_diff(exact_p50) <= exact_p50 / 1000);

    // Only metrics that recorded something appear.
    assert!(!steady.groups["sensors"].latency.contains_key(&Metric::E2e));
    assert!(!steady.totals.latency.contains_key(&Metric::Connect));
}

#[test]
fn summary_shows_the_last_steady_phase_else_the_last() {
    let r = Report::build(&record_with_phases(&[
        "ramp", "steady-1", "steady-2", "cooldown",
    ]))
    .unwrap();
    assert_eq!(r.summary.phase.as_deref(), Some("steady-2"));
    assert_eq!(r.summary_phase().map(|p| p.name.as_str()), Some("steady-2"));
    // steady-2 is the third phase: factor 3, 5 s long (durations cycle 5, 60, 5).
    assert_eq!(r.summary.published, 3 * 60_000 + 3 * 6_000);
    assert_eq!(r.summary.acked, 3 * 60_000 - 10 + 3 * 6_000);
    assert_eq!(r.summary.publish_failed, 4);
    assert_eq!(r.summary.overrun, 9);
    assert!((r.summary.phase_duration_s - 5.0).abs() < 1e-9);
    assert!((r.summary.publish_rate_per_s - 198_000.0 / 5.0).abs() < 1e-6);
    // Above 2048 µs HDR buckets are 2 µs wide: compare with the histogram's own answer.
    let want = stats_of((1..=1000).map(|v| v * 3));
    let head = r.summary.latency[&Metric::Puback];
    assert_eq!(
        (head.p50_us, head.p99_us, head.max_us),
        (want.p50_us, want.p99_us, want.max_us)
    );
    assert_eq!(head.p50_us, 1500);
    // Connection figures are whole-run.
    assert_eq!(
        (
            r.summary.connect_attempts,
            r.summary.connect_successes,
            r.summary.connect_failures
        ),
        (152, 150, 2)
    );
    assert_eq!(r.summary.devices_connected_peak, 150);

    let r = Report::build(&record_with_phases(&["warmup", "spike", "cooldown"])).unwrap();
    assert_eq!(r.summary.phase.as_deref(), Some("cooldown"));
}

fn sum<'a>(cs: impl IntoIterator<Item = &'a Counters>) -> Counters {
    let mut t = Counters::default();
    for c in cs {
        t.merge(c);
    }
    t
}

#[test]
fn totals_are_the_sum_of_groups_and_phases() {
    let r = Report::build(&sample()).unwrap();
    for p in &r.phases {
        assert_eq!(
            p.totals.counters,
            sum(p.groups.values().map(|g| &g.counters)),
            "{}",
            p.name
        );
        for (m, l) in &p.totals.latency {
            for basis in Basis::ALL {
                let by_group: u64 = p
                    .groups
                    .values()
                    .filter_map(|g| g.latency.get(m))
                    .map(|l| l.get(basis).count)
                    .sum();
                assert_eq!(l.get(basis).count, by_group, "{} {m:?} {basis:?}", p.name);
            }
        }
        let published = p.totals.counters.get(Counter::Published) as f64;
        assert!((p.totals.rates.published_per_s - published / p.duration_s).abs() < 1e-6);
    }
    let run = &r.totals;
    assert_eq!(run.name, RUN_SECTION_NAME);
    assert_eq!(
        run.totals.counters,
        sum(r.phases.iter().map(|p| &p.totals.counters))
    );
    assert_eq!(
        run.totals.counters,
        sum(run.groups.values().map(|g| &g.counters))
    );
    for (name, g) in &run.groups {
        assert_eq!(
            g.counters,
            sum(r.phases.iter().map(|p| &p.groups[name].counters))
        );
    }
    // Whole-run percentiles come from the merged histogram, not from phase percentiles.
    let all: Vec<u64> = (1..=3u64)
        .flat_map(|k| (1..=1000).map(move |v| v * k))
        .collect();
    assert_eq!(run.totals.latency[&Metric::Puback].corrected, stats_of(all));
    assert_eq!((run.start_us, run.end_us), (r.started_at_us, r.ended_at_us));
    assert!((r.duration_s - 70.0).abs() < 1e-9);
    assert_eq!(r.started_at, "2024-05-01T12:34:56Z");
    assert_eq!(r.ended_at, "2024-05-01T12:36:06Z");
}

#[test]
fn json_round_trip_keeps_percentiles_and_histograms() {
    let original = Report::build(&sample()).unwrap();
    let text = json::render(&original).unwrap();
    let back = json::parse(&text).unwrap();
    assert_eq!(back.snapshot(), original.snapshot());
    assert_eq!(back.summary.latency, original.summary.latency);
    for (a, b) in back
        .phases
        .iter()
        .zip(&original.phases)
        .chain([(&back.totals, &original.totals)])
    {
        assert_eq!(a.totals.counters, b.totals.counters);
        for (m, la) in &a.totals.latency {
            let lb = &b.totals.latency[m];
            for basis in Basis::ALL {
                let (x, y) = (la.get(basis), lb.get(basis));
                assert_eq!(
                    (
                        x.count,
                        x.min_us,
                        x.p50_us,
                        x.p90_us,
                        x.p99_us,
                        x.p99_9_us,
                        x.p99_99_us,
                        x.max_us
                    ),
                    (
                        y.count,
                        y.min_us,
                        y.p50_us,
                        y.p90_us,
                        y.p99_us,
                        y.p99_9_us,
                        y.p99_99_us,
                        y.max_us
                    )
                );
            }
        }
    }
    // Re-rendering from the embedded histograms gives the same report, exactly.
    assert_eq!(Report::build(&back.to_record()).unwrap(), original);
}

#[test]
fn reports_merge_exactly_through_their_histograms() {
    let a = Report::build(&sample()).unwrap();
    let b = Report::build(&sample()).unwrap();
    let mut record = a.to_record();
    record.snapshot.merge(b.snapshot()).unwrap();
    let merged = Report::build(&record).unwrap();
    let steady = merged.phases[1].groups["sensors"].latency[&Metric::Puback].corrected;
    assert_eq!(steady.count, 2000);
    assert_eq!(steady.p50_us, 1000);
    assert_eq!(merged.summary.published, 2 * a.summary.published);
}

#[test]
fn write_all_then_load_from_dir_or_file() {
    let report = Report::build(&sample()).unwrap();
    let dir = scratch_dir("write_all").join("nested");
    let paths = output::write_all(&report, &dir).unwrap();
    assert_eq!(
        paths,
        vec![
            dir.join("report.json"),
            dir.join("summary.md"),
            dir.join("report.html"),
            dir.join("connect.hlog"),
            dir.join("puback.hlog"),
            dir.join("e2e.hlog"),
        ]
    );
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert_eq!(md, output::markdown::render(&report, &[], None));
    assert_eq!(report::load(&dir).unwrap().snapshot(), report.snapshot());
    let from_file = report::load(&dir.join("report.json")).unwrap();
    assert_eq!(from_file.summary.latency, report.summary.latency);
    // No temporary files left behind.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "connect.hlog",
            "e2e.hlog",
            "puback.hlog",
            "report.html",
            "report.json",
            "summary.md"
        ]
    );
}

#[test]
fn load_errors_name_the_file() {
    let dir = scratch_dir("load_errors");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(matches!(report::load(&dir), Err(ReportError::Read { .. })));

    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"schema_version": 1, "scenario_name": 3}"#).unwrap();
    let err = report::load(&bad).unwrap_err();
    assert!(
        matches!(&err, ReportError::Parse { path, .. } if path == &bad),
        "{err}"
    );
    assert!(err.to_string().contains("bad.json"), "{err}");

    let newer = dir.join("newer.json");
    std::fs::write(&newer, r#"{"schema_version": 2}"#).unwrap();
    let err = report::load(&newer).unwrap_err();
    assert!(
        matches!(err, ReportError::SchemaVersion { found: 2, supported: 1, ref path } if path == &newer),
        "{err}"
    );
}

#[test]
fn unreachable_broker_still_renders_and_writes() {
    let report = Report::build(&unreachable()).unwrap();
    assert_eq!(report.summary.phase.as_deref(), Some("ramp"));
    assert_eq!(report.summary.devices_connected_peak, 0);
    assert_eq!(report.summary.publish_rate_per_s, 0.0);
    assert!(report.summary.latency.is_empty());
    assert!(report.totals.totals.latency.is_empty());
    let console = output::console::render(&report);
    assert!(
        console.contains("broker_unreachable: no device connected within 10 s"),
        "{console}"
    );
    assert!(console.contains("no latency recorded"), "{console}");
    let md = output::markdown::render(&report, &[], None);
    assert!(md.contains("_All counters are zero._"), "{md}");
    let dir = scratch_dir("unreachable");
    let paths = output::write_all(&report, &dir).unwrap();
    assert_eq!(paths.len(), 3);
    assert_eq!(report::load(&dir).unwrap(), report);
}

#[test]
fn a_run_without_phases_still_renders() {
    let mut record = unreachable();
    record.snapshot.phases.clear();
    record.ended_at_us = record.started_at_us; // zero duration: rates stay finite
    let report = Report::build(&record).unwrap();
    assert_eq!(report.summary.phase, None);
    assert!(output::console::render(&report).contains("no phase ran"));
    assert!(output::markdown::render(&report, &[], None).contains("no phase ran"));
    let text = json::render(&report).unwrap();
    assert!(text.contains("\"phase\": null"));
    assert_eq!(json::parse(&text).unwrap(), report);
}

#[test]
fn build_refuses_inconsistent_snapshots() {
    let mut record = sample();
    record.snapshot.phases[1].groups.pop();
    assert!(matches!(Report::build(&record), Err(ReportError::Shape(_))));

    let mut record = sample();
    record.snapshot.group_names[1] = "sensors".into();
    assert!(
        matches!(Report::build(&record), Err(ReportError::DuplicateGroup(g)) if g == "sensors")
    );

    let mut record = sample();
    record.ended_at_us = u64::MAX;
    assert!(matches!(
        Report::build(&record),
        Err(ReportError::Timestamp(_))
    ));
}
