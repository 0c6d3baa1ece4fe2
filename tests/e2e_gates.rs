//! CI gates end to end: thresholds (scenario and --threshold), exit code 1 with junit.xml, exit 2 for
//! malformed gates, baselines through `report compare` and `run --baseline`, and a multi-worker run whose
//! merged report equals the sum of its shards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use common::{fleetstorm, load_report, run_fleet, Fleet, Workspace};

#[test]
fn failing_threshold_exits_1_with_a_junit_failure() {
    let ws = Workspace::new();
    let fleet = Fleet::new("gate-fail", 1);
    let run = run_fleet(
        &ws,
        &fleet,
        &[
            "--threshold",
            "puback.p50 < 1us",
            "--threshold",
            "connect_failures == 0",
        ],
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stdout.contains("1 passed, 1 failed"),
        "{}",
        run.describe()
    );
    let junit = std::fs::read_to_string(ws.out().join("junit.xml")).expect("junit.xml");
    let doc = roxmltree::Document::parse(&junit).expect("junit parses");
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert_eq!((cases, failures), (2, 1), "{junit}");
    // the report is complete all the same
    let r = load_report(&ws.out());
    assert!(r.summary.published > 0);
    assert!(ws.out().join("report.html").exists());
}

#[test]
fn passing_thresholds_exit_0() {
    let ws = Workspace::new();
    let fleet = Fleet::new("gate-pass", 1);
    let run = run_fleet(
        &ws,
        &fleet,
        &[
            "--threshold",
            "puback.p99 < 60s",
            "--threshold",
            "publish_failed == 0",
        ],
    );
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(
        run.stdout.contains("2 passed, 0 failed"),
        "{}",
        run.describe()
    );
}

#[test]
fn malformed_thresholds_exit_2_before_running() {
    let ws = Workspace::new();
    let fleet = Fleet::new("gate-bad", 0);
    let run = run_fleet(&ws, &fleet, &["--threshold", "p99 of everything < soon"]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(run.stderr.contains("--threshold"), "{}", run.describe());
    assert!(!ws.out().exists(), "nothing may run");

    let text = format!("{}thresholds:\n  - \"e2e.p99 < fast\"\n", fleet.yaml());
    let line = text.lines().count();
    let file = ws.file("bad.yaml", &text);
    let v = fleetstorm(&["validate", file.to_str().unwrap()]);
    assert_eq!(v.code(), Some(2), "{}", v.describe());
    assert!(
        v.stderr.contains(&format!("bad.yaml:{line}:")) && v.stderr.contains("thresholds[0]"),
        "{}",
        v.describe()
    );
}

#[test]
fn baselines_flag_regressions() {
    let ws = Workspace::new();
    let fleet = Fleet::new("gate-base", 1);
    let run = run_fleet(&ws, &fleet, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let current = ws.out().join("report.json");
    // the same report against itself: no change
    let same = fleetstorm(&[
        "report",
        "compare",
        current.to_str().unwrap(),
        current.to_str().unwrap(),
    ]);
    assert_eq!(same.code(), Some(0), "{}", same.describe());
    // a baseline whose puback latencies were ten times better: a regression
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&current).unwrap()).unwrap();
    let mut scaled = 0;
    for phase in json["phases"].as_array_mut().unwrap() {
        let stats = &mut phase["totals"]["latency"]["puback"]["corrected"];
        for key in ["p50_us", "p90_us", "p99_us", "p99_9_us", "max_us"] {
            if let Some(v) = stats[key].as_u64() {
                stats[key] = serde_json::json!((v / 10).max(1));
                scaled += 1;
            }
        }
    }
    assert!(scaled > 0);
    let base = ws.file("base.json", &serde_json::to_string(&json).unwrap());
    let worse = fleetstorm(&[
        "report",
        "compare",
        base.to_str().unwrap(),
        current.to_str().unwrap(),
    ]);
    assert_eq!(worse.code(), Some(1), "{}", worse.describe());
    // and the same through run --baseline
    let ws2 = Workspace::new();
    let rerun = run_fleet(
        &ws2,
        &fleet,
        &[
            "--baseline",
            base.to_str().unwrap(),
            "--max-regression",
            "10%",
        ],
    );
    assert_eq!(rerun.code(), Some(1), "{}", rerun.describe());
    assert!(ws2.out().join("junit.xml").exists());
    // a missing baseline is a usage error, before anything runs
    let ws3 = Workspace::new();
    let missing = run_fleet(&ws3, &fleet, &["--baseline", "/nonexistent/report.json"]);
    assert_eq!(missing.code(), Some(2), "{}", missing.describe());
}

#[test]
fn three_workers_merge_into_the_sum_of_their_shards() {
    let ws = Workspace::new();
    let mut fleet = Fleet::new("workers", 1);
    fleet.devices = 300;
    fleet.interval_ms = 500;
    let run = run_fleet(&ws, &fleet, &["--workers", "3"]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    assert!(
        run.stderr.contains("workers: 3 processes"),
        "{}",
        run.describe()
    );
    let merged = load_report(&ws.out());
    assert_eq!(
        merged
            .totals
            .totals
            .counters
            .get(fleetstorm::metrics::Counter::ConnectSuccesses),
        300
    );

    // The same fleet run shard by shard by hand, then merged with `report merge`: identical counters,
    // and histograms that add up exactly.
    let scenario = ws.file("sharded.yaml", &fleet.yaml());
    let start = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
        + 2_000_000)
        .to_string();
    let dirs: Vec<std::path::PathBuf> = (0..3)
        .map(|i| ws.path().join(format!("shard{i}")))
        .collect();
    let children: Vec<std::process::Child> = (0..3)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_fleetstorm"))
                .args([
                    "run",
                    scenario.to_str().unwrap(),
                    "--duration",
                    "2s",
                    "--no-progress",
                ])
                .args(["--shard", &format!("{i}/3"), "--start-at-us", &start])
                .arg("--out")
                .arg(&dirs[i])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let shards: Vec<_> = dirs.iter().map(|d| load_report(d)).collect();
    let out = ws.path().join("merged");
    let m = fleetstorm(&[
        "report",
        "merge",
        dirs[0].to_str().unwrap(),
        dirs[1].to_str().unwrap(),
        dirs[2].to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(m.code(), Some(0), "{}", m.describe());
    let merged = load_report(&out);
    let mut sum = shards[0].snapshot().clone();
    for s in &shards[1..] {
        sum.merge(s.snapshot()).unwrap();
    }
    assert_eq!(merged.snapshot(), &sum);
    for c in fleetstorm::metrics::Counter::ALL {
        let total: u64 = shards
            .iter()
            .map(|s| s.totals.totals.counters.get(*c))
            .sum();
        assert_eq!(merged.totals.totals.counters.get(*c), total, "{}", c.name());
    }
    assert_eq!(
        merged
            .totals
            .totals
            .counters
            .get(fleetstorm::metrics::Counter::ConnectSuccesses),
        300
    );
    // percentiles come from the merged histogram, not from averaging
    let h = sum.total().unwrap();
    let p99 = h
        .histogram(
            fleetstorm::metrics::Metric::Puback,
            fleetstorm::metrics::Basis::Corrected,
        )
        .unwrap()
        .value_at_quantile(0.99);
    assert_eq!(
        merged.totals.totals.latency[&fleetstorm::metrics::Metric::Puback]
            .corrected
            .p99_us,
        p99
    );
}
