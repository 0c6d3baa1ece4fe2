//! Live views of a running test: the OpenMetrics endpoint scraped during a run, and the per-second
//! end-to-end percentiles in the report's time series.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::time::{Duration, Instant};

use common::{free_port, load_report, scrape, spawn, wait_within, Fleet, Workspace};

fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_endpoint_serves_live_counters_and_latency() {
    let ws = Workspace::new();
    let mut fleet = Fleet::new("live", 1);
    fleet.steady_s = 4;
    let yaml = format!("{}observers:\n  - name: audit\n", fleet.yaml());
    let scenario = ws.file("live.yaml", &yaml);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let out = ws.out();
    let started = Instant::now();
    let mut child = spawn(
        &ws,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--no-progress",
            "--prometheus",
            &addr,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    // Poll until the run is publishing and the scrape shows it (deadline, no fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < deadline {
        if let Some(text) = scrape(port) {
            let connected = value(&text, "fleetstorm_devices_connected{").unwrap_or(0.0);
            let published = value(&text, "fleetstorm_published_total{").unwrap_or(0.0);
            if connected >= f64::from(fleet.devices)
                && published > 0.0
                && text.contains("fleetstorm_e2e_latency_seconds{")
            {
                seen = Some(text);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = seen.expect("the endpoint never showed a connected, publishing fleet");
    assert!(
        text.contains("# TYPE fleetstorm_published counter"),
        "{text}"
    );
    assert!(
        text.contains("fleetstorm_puback_latency_seconds{scenario=\""),
        "{text}"
    );
    assert!(text.contains("quantile=\"0.99\""), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let done = wait_within(&ws, &mut child, started, Duration::from_secs(40));
    assert_eq!(done.code(), Some(0), "{}", done.describe());

    // The report's series carries per-second e2e percentiles.
    let r = load_report(&out);
    let with_e2e = r.series.iter().filter(|p| p.e2e_p99_us.is_some()).count();
    assert!(with_e2e >= 3, "{:?}", r.series);
    for p in &r.series {
        if let (Some(p50), Some(p99)) = (p.e2e_p50_us, p.e2e_p99_us) {
            assert!(p50 <= p99, "{p:?}");
        }
    }
}

#[test]
fn grafana_dashboard_queries_metrics_we_export() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/fleetstorm.json"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() >= 5);
    let counters = fleetstorm::output::openmetrics::render(
        "x",
        &fleetstorm::metrics::Counters::default(),
        0,
        &fleetstorm::metrics::IntervalHistograms::default(),
    );
    for e in &exprs {
        // every metric name a panel queries is one we export (counters end in _total; summaries by metric)
        let names: Vec<&str> = e
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("fleetstorm_"))
            .collect();
        assert!(!names.is_empty(), "{e}");
        for n in names {
            let known = counters.contains(n)
                || (n.ends_with("_latency_seconds")
                    && fleetstorm::metrics::Metric::ALL
                        .iter()
                        .any(|m| n == format!("fleetstorm_{}_latency_seconds", m.name())));
            assert!(known, "panel queries unknown metric {n}");
        }
    }
}
