//! `fleetstorm search` end to end against the embedded broker: a tiny search whose knee is known
//! exactly (an SLO on the number of connect attempts, which is the number of devices), so the steps,
//! the answer and the exit code are the same on any machine; the table, search.json and each
//! step's report.json must agree with every step's verdict.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use common::{fleetstorm, load_report, unique, Workspace};
use fleetstorm::metrics::Counter;

fn scenario(name: &str) -> String {
    format!(
        "\
name: {name}
seed: 3
broker:
  client_id: \"{name}-{{group}}-{{index}}\"
groups:
  - name: dev
    count: 10
    profile: energy-meter
    interval: 100ms
    qos: 1
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
observers:
  - name: audit
    count: 1
    qos: 1
phases:
  - ramp: {{ connect_rate: 500/s }}
  - steady: {{ duration: 30s }}
"
    )
}

#[test]
fn a_tiny_search_finds_a_known_knee_and_every_output_agrees() {
    let ws = Workspace::new();
    let name = unique("search");
    let file = ws.file("s.yaml", &scenario(&name));
    let out = ws.out();
    let run = fleetstorm(&[
        "search",
        file.to_str().unwrap(),
        "--slo",
        "e2e.p99 < 10s",
        "--slo",
        "connect_attempts <= 15",
        "--vary",
        "devices",
        "--from",
        "4",
        "--to",
        "64",
        "--resolution",
        "20%",
        "--settle",
        "500ms",
        "--window",
        "1s",
        "--require",
        "15",
        "--out",
        out.to_str().unwrap(),
    ]);
    // 14 devices pass twice and 16 fail: below --require 15, exit 1.
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("capacity below --require 15"),
        "{}",
        run.describe()
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("search.json")).unwrap()).unwrap();
    assert_eq!(json["answer"]["kind"], "found", "{json:#}");
    assert_eq!(json["answer"]["capacity"], 14);
    assert_eq!(json["answer"]["first_failing"], 16);
    assert_eq!(json["capacity"], 14);
    let steps = json["steps"].as_array().unwrap();
    let loads: Vec<u64> = steps.iter().map(|s| s["load"].as_u64().unwrap()).collect();
    assert_eq!(loads, [4, 8, 16, 12, 14, 14], "{json:#}");
    let purposes: Vec<&str> = steps
        .iter()
        .map(|s| s["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(
        purposes,
        ["grow", "grow", "grow", "bisect", "bisect", "confirm"]
    );

    for (k, s) in steps.iter().enumerate() {
        let load = s["load"].as_u64().unwrap();
        let verdict = s["verdict"].as_str().unwrap();
        let want = if load <= 15 { "pass" } else { "fail" };
        assert_eq!(verdict, want, "step {}: {s:#}", k + 1);
        assert_eq!(s["index"].as_u64(), Some(k as u64 + 1));
        assert!(!s["client_limited"].as_bool().unwrap(), "{s:#}");

        // The step's own report is the run that was judged.
        let report = load_report(std::path::Path::new(s["report"].as_str().unwrap()));
        assert_eq!(
            report.outcome.status,
            fleetstorm::report::RunStatus::Completed
        );
        let names: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["ramp", "settle", "steady"], "step {}", k + 1);
        assert_eq!(
            report.totals.totals.counters.get(Counter::ConnectAttempts),
            load,
            "step {}: one connection per device",
            k + 1
        );
        let window = &report.phases[2].totals;
        let m = &s["measures"];
        assert_eq!(
            m["published"].as_u64(),
            Some(window.counters.get(Counter::Published)),
            "step {}",
            k + 1
        );
        let e2e = &window.latency[&fleetstorm::metrics::Metric::E2e];
        assert_eq!(
            m["latency"]["e2e"]["corrected"]["p99_us"].as_u64(),
            Some(e2e.corrected.p99_us)
        );
        assert_eq!(
            m["latency"]["e2e"]["uncorrected"]["p99_us"].as_u64(),
            Some(e2e.uncorrected.p99_us)
        );
        assert!(m["achieved_rate_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(m["loss_ratio"].as_f64(), Some(0.0), "step {}", k + 1);

        // Its row in the table: index, purpose, load and verdict.
        let row = run
            .stdout
            .lines()
            .find(|l| {
                l.split_whitespace().next() == Some(&(k + 1).to_string())
                    && l.contains(s["purpose"].as_str().unwrap())
            })
            .unwrap_or_else(|| panic!("no row for step {}:\n{}", k + 1, run.stdout));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[2], load.to_string(), "{row}");
        let shown = if verdict == "pass" { "pass" } else { "FAIL" };
        assert_eq!(cells.last().copied(), Some(shown), "{row}");
    }
    assert!(
        run.stdout
            .contains("capacity: 14 devices at 10 msg/s each: e2e p99 "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("; at 16: e2e p99 "), "{}", run.stdout);
    assert_eq!(
        json["statement"].as_str().map(|s| run.stdout.contains(s)),
        Some(true)
    );
}

#[test]
fn a_search_without_an_slo_is_refused_before_anything_runs() {
    let ws = Workspace::new();
    let file = ws.file("s.yaml", &scenario(&unique("search-no-slo")));
    let out = ws.out();
    let run = fleetstorm(&[
        "search",
        file.to_str().unwrap(),
        "--from",
        "4",
        "--to",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(run.stderr.contains("--slo"), "{}", run.describe());
    assert!(!out.join("search.json").exists());
}
