//! `report.html`: structure (self-contained, every chart closed) and, when `FLEETSTORM_CHROMIUM`
//! names a Chromium binary, a headless render of the page.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod report_fixture;

use std::path::Path;
use std::process::Command;

use fleetstorm::gate::{evaluate, parse_threshold, Verdict};
use fleetstorm::metrics::Metric;
use fleetstorm::output::html;
use fleetstorm::report::Report;
use report_fixture::{sample, scratch_dir, unreachable};

fn verdicts(report: &Report) -> Vec<Verdict> {
    let thresholds: Vec<_> = [
        "puback.p99 < 5ms",
        "e2e.p99 < 1s",
        "steady/group=sensors:puback.max <= 2ms",
        "publish_rate >= 2000/s",
        "connect_failures == 0",
        "loss_ratio <= 0.1%",
    ]
    .iter()
    .map(|s| parse_threshold(s).unwrap())
    .collect();
    evaluate(report, &thresholds)
}

/// The number of `<svg` elements: one per measured metric, three for the time series, and one per
/// latency the series has a p99 of (latency over time).
fn expected_charts(report: &Report) -> usize {
    let metrics = report.totals.totals.latency.len();
    let over_time = Metric::ALL
        .into_iter()
        .filter(|m| report.series.iter().any(|p| p.latency(*m).1.is_some()))
        .count();
    metrics
        + if report.series.is_empty() {
            0
        } else {
            3 + over_time
        }
}

fn check_structure(page: &str, charts: usize) {
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.trim_end().ends_with("</html>"));
    assert_eq!(page.matches("<svg").count(), charts, "charts");
    assert_eq!(
        page.matches("</svg>").count(),
        charts,
        "every <svg> is closed"
    );
    // Self-contained: the only URL is the SVG namespace; no scripts, no links, no imports.
    let without_ns = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for bad in [
        "http://", "https://", "<script", "<link", "@import", "url(", "src=",
    ] {
        assert!(!without_ns.contains(bad), "page contains `{bad}`");
    }
    // Every chart is well-formed XML on its own.
    let mut rest = page;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").unwrap() + start + "</svg>".len();
        roxmltree::Document::parse(&rest[start..end])
            .unwrap_or_else(|e| panic!("chart is not well-formed: {e}"));
        rest = &rest[end..];
    }
    for tag in ["table", "section", "figure", "tr", "td", "th"] {
        let open =
            page.matches(&format!("<{tag}>")).count() + page.matches(&format!("<{tag} ")).count();
        let close = page.matches(&format!("</{tag}>")).count();
        assert_eq!(open, close, "<{tag}> opened {open}, closed {close}");
    }
}

#[test]
fn sample_page_is_self_contained_and_complete() {
    let report = Report::build(&sample()).unwrap();
    let v = verdicts(&report);
    let page = html::render(&report, &v);
    check_structure(&page, expected_charts(&report));
    // connect, puback, e2e by percentile; throughput, connections, errors; e2e and connect
    // latency over time (the fixture's series has those two).
    assert_eq!(expected_charts(&report), 8);
    assert!(page.contains("<h2>Gates</h2>"));
    assert_eq!(
        page.matches("class=\"pill pass\"").count(),
        v.iter().filter(|v| v.passed).count()
    );
    assert_eq!(
        page.matches("class=\"pill fail\"").count(),
        v.iter().filter(|v| !v.passed).count()
    );
    for text in [
        "99.999%",
        "puback latency by percentile",
        "Throughput",
        "Connections",
        "Errors",
        "phase steady",
        "whole run",
        "sensors",
        "gateways",
        "corrected",
        "e2e latency over time",
        "connect latency over time",
    ] {
        assert!(page.contains(text), "page lacks `{text}`");
    }
    // The threshold text is escaped.
    assert!(page.contains("puback.p99 &lt; 5ms"));
}

/// Group tables have at most five columns whatever the number of latency metrics, and let their
/// cells wrap: they never need to scroll sideways.
#[test]
fn group_tables_stay_narrow() {
    let report = Report::build(&sample()).unwrap();
    assert!(
        report.totals.totals.latency.len() >= 3,
        "the sample measures several metrics"
    );
    let page = html::render(&report, &[]);
    let tables: Vec<&str> = page.split("<table class=\"groups\">").skip(1).collect();
    assert_eq!(
        tables.len(),
        report.phases.len() + 1,
        "one per phase and the whole run"
    );
    for t in tables {
        let head = &t[..t.find("</thead>").unwrap()];
        let columns = head.matches("<th>").count();
        assert!((3..=5).contains(&columns), "{columns} columns: {head}");
        let body = &t[..t.find("</table>").unwrap()];
        for row in body.split("<tr").skip(2) {
            assert_eq!(row.matches("<td").count(), columns, "row {row}");
        }
    }
    let css = &page[page.find("<style>").unwrap()..page.find("</style>").unwrap()];
    assert!(css.contains("table.groups{table-layout:fixed}"));
    assert!(css.contains("table.groups td,table.groups th{white-space:normal"));
}

#[test]
fn page_without_gates_or_measurements_still_renders() {
    let report = Report::build(&sample()).unwrap();
    let page = html::render(&report, &[]);
    assert!(!page.contains("<h2>Gates</h2>"));
    check_structure(&page, expected_charts(&report));

    let report = Report::build(&unreachable()).unwrap();
    let page = html::render(&report, &[]);
    check_structure(&page, 0);
    assert!(page.contains("broker unreachable"));
    assert!(page.contains("no device connected within 10 s"));
    assert!(page.contains("No latency was recorded."));
}

#[test]
fn names_are_escaped() {
    let mut record = sample();
    record.scenario_name = "<script>alert('x')</script>".into();
    record.broker = "mqtt://a\"b".into();
    let report = Report::build(&record).unwrap();
    let page = html::render(&report, &[]);
    assert!(!page.contains("<script"));
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    check_structure(
        &page.replace("mqtt://a", "mqtt:a"),
        expected_charts(&report),
    );
}

/// Render the page in headless Chromium when `FLEETSTORM_CHROMIUM` names the binary.
#[test]
fn renders_in_headless_chromium() {
    let Some(chromium) = std::env::var_os("FLEETSTORM_CHROMIUM") else {
        println!("SKIPPED: FLEETSTORM_CHROMIUM not set");
        return;
    };
    let report = Report::build(&sample()).unwrap();
    let dir = scratch_dir("html-chromium");
    let path = html::write(&report, &verdicts(&report), &dir).unwrap();
    let profile = dir.join("profile");
    let mut cmd = Command::new(&chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    if let Some(shot) = std::env::var_os("FLEETSTORM_SCREENSHOT") {
        let mut shot_cmd = Command::new(&chromium);
        shot_cmd.args(cmd.get_args().collect::<Vec<_>>());
        let status = shot_cmd
            .arg(format!("--screenshot={}", Path::new(&shot).display()))
            .arg("--window-size=1400,2400")
            .arg(file_url(&path))
            .status()
            .unwrap();
        assert!(status.success(), "screenshot failed: {status}");
    }
    let output = cmd.arg("--dump-dom").arg(file_url(&path)).output().unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        dom.matches("<svg").count(),
        expected_charts(&report),
        "{dom}"
    );
    assert!(dom.contains("<polyline"), "no chart lines in the DOM");
    assert!(dom.contains("puback latency by percentile"));
    for bad in [
        "ERR_",
        "This page isn’t working",
        "Your file couldn’t be accessed",
    ] {
        assert!(!dom.contains(bad), "chromium shows an error: {bad}");
    }
}

fn file_url(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap();
    format!("file://{}", abs.display())
}
