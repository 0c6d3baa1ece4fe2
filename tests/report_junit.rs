//! `junit.xml` parsed back with an XML parser; and the interval logs read back with
//! HdrHistogram's own `IntervalLogIterator`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod report_fixture;

use fleetstorm::gate::{compare, evaluate, parse_threshold, Verdict};
use fleetstorm::metrics::histogram::decode;
use fleetstorm::metrics::{Basis, Metric};
use fleetstorm::output::{self, hlog, junit};
use fleetstorm::report::Report;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use report_fixture::{sample, scratch_dir};

fn verdicts(report: &Report) -> Vec<Verdict> {
    let thresholds: Vec<_> = [
        "puback.p99 < 5ms",
        "e2e.p99 < 1s",
        "group=sensors:overrun <= 6",
        "loss_ratio == 0",
    ]
    .iter()
    .map(|s| parse_threshold(s).unwrap())
    .collect();
    evaluate(report, &thresholds)
}

#[test]
fn junit_has_one_case_per_threshold_and_comparison() {
    let mut record = sample();
    record.scenario_name = "smoke & <friends>".into();
    let report = Report::build(&record).unwrap();
    let v = verdicts(&report);
    let c = compare(&report, &report, 0.10);
    let text = junit::render(&report, &v, Some(&c));
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    assert_eq!(
        suite.attribute("name"),
        Some("fleetstorm.smoke & <friends>")
    );
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let failures: Vec<_> = cases
        .iter()
        .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
        .collect();
    let want_tests = v.len() + c.changes.len();
    let want_failures = v.iter().filter(|v| !v.passed).count();
    assert_eq!(want_failures, 2); // e2e.p99 and loss_ratio (not measured)
    assert_eq!(cases.len(), want_tests);
    assert_eq!(failures.len(), want_failures);
    for node in [root, suite] {
        assert_eq!(
            node.attribute("tests"),
            Some(want_tests.to_string().as_str())
        );
        assert_eq!(
            node.attribute("failures"),
            Some(want_failures.to_string().as_str())
        );
    }
    // Threshold cases are named by their canonical text (escaped in the file, intact when read).
    assert_eq!(cases[0].attribute("name"), Some("puback.p99 < 5ms"));
    assert_eq!(
        cases[0].attribute("classname"),
        Some("fleetstorm.smoke & <friends>.thresholds")
    );
    let failure = cases[1]
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(failure
        .attribute("message")
        .unwrap()
        .starts_with("e2e.p99 < 1s: 2.4"));
    assert_eq!(
        cases[v.len()].attribute("name"),
        Some("baseline puback.p50")
    );
    let props: Vec<_> = suite
        .descendants()
        .filter(|n| n.has_tag_name("property"))
        .map(|n| (n.attribute("name").unwrap(), n.attribute("value").unwrap()))
        .collect();
    assert!(props.contains(&("outcome", "completed")));
    assert!(props.contains(&("summary_phase", "steady")));
}

#[test]
fn junit_counts_regressions_as_failures() {
    let base = Report::build(&sample()).unwrap();
    let mut record = sample();
    for g in &mut record.snapshot.phases[1].groups {
        let p = g.counters.get(fleetstorm::metrics::Counter::Published);
        g.counters.0[fleetstorm::metrics::Counter::Published as usize] = p / 2;
    }
    let current = Report::build(&record).unwrap();
    let c = compare(&base, &current, 0.10);
    assert!(c.regressed());
    let text = junit::render(&current, &[], Some(&c));
    let doc = roxmltree::Document::parse(&text).unwrap();
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].attribute("type"), Some("regression"));
    assert!(failures[0].attribute("message").unwrap().contains(
        "baseline publish_rate regressed: base 2200.0/s, current 1100.0/s, change -50.0%"
    ));
}

#[test]
fn hlog_intervals_match_the_report() {
    let report = Report::build(&sample()).unwrap();
    for metric in Metric::ALL {
        let Some(text) = hlog::render(&report, metric).unwrap() else {
            assert!(!report.totals.totals.latency.contains_key(&metric));
            continue;
        };
        assert!(text.contains("#[StartTime: 1714566896.000"));
        assert!(text.contains("#[BaseTime: 1714566896.000"));
        assert!(text.contains(
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"
        ));
        let mut intervals = 0;
        for entry in IntervalLogIterator::new(text.as_bytes()) {
            let LogEntry::Interval(i) = entry.unwrap() else {
                continue;
            };
            intervals += 1;
            let tag = i
                .tag()
                .expect("every interval is tagged")
                .as_str()
                .to_owned();
            let (phase_name, basis) = match tag.strip_suffix(".uncorrected") {
                Some(p) => (p, Basis::Uncorrected),
                None => (tag.as_str(), Basis::Corrected),
            };
            let phase = report.phases.iter().find(|p| p.name == phase_name).unwrap();
            let stats = phase.totals.latency[&metric].get(basis);
            let h = decode(i.encoded_histogram()).unwrap();
            assert_eq!(h.len(), stats.count, "{metric:?} {tag}");
            assert_eq!(h.max(), stats.max_us, "{metric:?} {tag}");
            assert_eq!(h.value_at_quantile(0.99), stats.p99_us, "{metric:?} {tag}");
            let offset = (phase.start_us - report.started_at_us) as f64 / 1e6;
            assert!((i.start_timestamp().as_secs_f64() - offset).abs() < 1e-3);
            assert!((i.duration().as_secs_f64() - phase.duration_s).abs() < 1e-3);
            assert!(
                i.max() == stats.max_us as f64,
                "{} vs {}",
                i.max(),
                stats.max_us
            );
        }
        let expected: usize = report
            .phases
            .iter()
            .filter_map(|p| p.totals.latency.get(&metric))
            .map(|l| usize::from(l.corrected.count > 0) + usize::from(l.uncorrected.count > 0))
            .sum();
        assert_eq!(intervals, expected, "{metric:?}");
    }
}

#[test]
fn write_with_gates_writes_everything() {
    let report = Report::build(&sample()).unwrap();
    let v = verdicts(&report);
    let dir = scratch_dir("write_with_gates");
    let paths = output::write_with_gates(&report, &v, None, &dir).unwrap();
    let mut names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "connect.hlog",
            "e2e.hlog",
            "junit.xml",
            "puback.hlog",
            "report.html",
            "report.json",
            "summary.md"
        ]
    );
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, names, "no temporary files left behind");
    // Without gates: no junit.xml.
    let dir = scratch_dir("write_all_html");
    let paths = output::write_all(&report, &dir).unwrap();
    assert_eq!(paths.len(), 6);
    assert!(!dir.join("junit.xml").exists());
}
