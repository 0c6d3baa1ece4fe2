//! `fleetstorm search` end to end against the embedded broker: a tiny search whose knee is known
//! exactly (an SLO on the number of connect attempts, which is the number of devices), so the steps,
//! the answer and the exit code are the same on any machine; the table, search.json and each
//! step's report.json must agree with every step's verdict.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use common::{fleetstorm, knee_scenario, knee_search, load_report, unique, Workspace};
use fleetstorm::metrics::Counter;

#[test]
fn a_tiny_search_finds_a_known_knee_and_every_output_agrees() {
    let ws = Workspace::new();
    let name = unique("search");
    let file = ws.file("s.yaml", &knee_scenario(&name));
    let out = ws.out();
    let run = fleetstorm(&knee_search(
        &file,
        "1s",
        &[
            "--slo",
            "e2e.p99 < 10s",
            "--require",
            "15",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
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
    check_files(&out, &json);
    assert_eq!(json["conclusion"], "unmet");
    assert_eq!(json["require"]["min"], 15);
    assert_eq!(json["require"]["passed"], false);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let require = case(&junit, "capacity &gt;= 15 devices (--require)");
    assert!(require.contains("type=\"require\""), "{require}");
}

/// The test case named `name` in junit.xml (its element text).
fn case<'a>(junit: &'a str, name: &str) -> &'a str {
    let start = junit
        .find(&format!("<testcase name=\"{name}\""))
        .unwrap_or_else(|| panic!("no test case `{name}` in\n{junit}"));
    let end = junit[start..].find("</testcase>").unwrap() + start;
    &junit[start..end]
}

/// report.html, summary.md and junit.xml exist and agree with search.json, which validates against
/// the committed schema.
fn check_files(out: &std::path::Path, json: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/reports/search.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(jsonschema::draft202012::meta::is_valid(&schema));
    let v = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(json)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert_eq!(
        errors,
        Vec::<String>::new(),
        "search.json against its schema"
    );

    let steps = json["steps"].as_array().unwrap();
    let statement = json["statement"].as_str().unwrap();
    let capacity = json["capacity"].as_u64().unwrap();
    // The knee: the last passing step at the capacity.
    let knee = steps
        .iter()
        .rev()
        .find(|s| s["load"] == capacity && s["verdict"] == "pass")
        .unwrap();

    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    roxmltree::Document::parse(&junit).unwrap();
    for slo in json["slos"].as_array().unwrap() {
        let slo = slo.as_str().unwrap();
        let name = slo.replace('<', "&lt;").replace('>', "&gt;");
        let c = case(&junit, &name);
        assert!(!c.contains("<failure"), "the knee's cases pass: {c}");
        let check = knee["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["slo"] == slo)
            .unwrap();
        assert_eq!(check["passed"], true);
        let detail = check["detail"]
            .as_str()
            .unwrap()
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(
            c.contains(&format!(
                "at the knee, {capacity} devices (step {}): {detail}",
                knee["index"]
            )),
            "{c}"
        );
    }
    assert!(case(&junit, "capacity search").contains("<system-out>"));

    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains(statement), "{md}");
    for s in steps {
        let row = format!(
            "| {} | {} | {} |",
            s["index"],
            s["purpose"].as_str().unwrap(),
            s["load"]
        );
        assert_eq!(md.matches(&row).count(), 1, "{row} in\n{md}");
    }

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains(&statement.replace('<', "&lt;").replace('>', "&gt;")));
    for (verdict, class) in [("pass", "pass"), ("fail", "fail")] {
        let n = steps.iter().filter(|s| s["verdict"] == verdict).count();
        assert_eq!(
            html.matches(&format!("class=\"dot {class}\"")).count(),
            n,
            "{verdict}"
        );
    }
    assert!(html.contains(&format!("knee {capacity}")));
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for bad in ["http://", "https://", "<script", "<link", "url("] {
        assert!(!without_ns.contains(bad), "report.html contains `{bad}`");
    }
    if let Some(chromium) = std::env::var_os("FLEETSTORM_CHROMIUM") {
        let dom = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!(
                "--user-data-dir={}",
                out.join("chromium").display()
            ))
            .arg("--dump-dom")
            .arg(format!(
                "file://{}",
                std::fs::canonicalize(out.join("report.html"))
                    .unwrap()
                    .display()
            ))
            .output()
            .unwrap();
        assert!(
            dom.status.success(),
            "{}",
            String::from_utf8_lossy(&dom.stderr)
        );
        let dom = String::from_utf8_lossy(&dom.stdout);
        assert_eq!(dom.matches("<svg").count(), 1, "one curve (e2e)");
        assert_eq!(
            dom.matches("<polyline").count(),
            4,
            "p50, p99, p99.9, p99 uncorrected"
        );
        assert!(dom.contains("Capacity curve"));
    }
}

/// The tiny search again, with every setting in the scenario's `search:` block and a baseline.
fn block(name: &str, baseline: &str) -> String {
    format!(
        "{}search:
  slos: [\"e2e.p99 < 10s\", \"connect_attempts <= 15\"]
  vary: devices
  from: 8
  to: 32
  resolution: 20%
  settle: 500ms
  window: 1s
  baseline: {baseline}
  tolerance: 10%
",
        knee_scenario(name)
    )
}

#[test]
fn a_search_from_the_block_alone_judges_its_capacity_against_a_baseline() {
    let ws = Workspace::new();
    let name = unique("search-block");
    // An earlier search of the same scenario that found 20 devices: 14 < 20 x 0.9 is a regression.
    ws.file(
        "old.json",
        &format!(
            "{{\"schema_version\": 1, \"scenario\": \"{name}\", \"vary\": \"devices\", \"capacity\": 20}}"
        ),
    );
    let file = ws.file("s.yaml", &block(&name, "old.json"));
    let out = ws.out();
    let run = fleetstorm(&[
        "search",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains(
            "capacity regression: 14 devices is below the baseline's 20 devices x (1 - 10%) = 18"
        ),
        "{}",
        run.describe()
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("search.json")).unwrap()).unwrap();
    let loads: Vec<u64> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["load"].as_u64().unwrap())
        .collect();
    assert_eq!(
        loads,
        [8, 16, 12, 14, 14],
        "the block's from, to and resolution"
    );
    assert_eq!(json["window_s"], 1.0);
    assert_eq!(json["capacity"], 14);
    assert_eq!(json["conclusion"], "unmet");
    assert_eq!(json["baseline"]["regressed"], true);
    assert_eq!(json["baseline"]["baseline_capacity"], 20);
    assert!(json["require"].is_null());
    check_files(&out, &json);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(case(&junit, "capacity against the baseline").contains("type=\"regression\""));
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("- ❌ baseline: capacity regression"), "{md}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<p class=\"note bad\">baseline: capacity regression"));

    // --baseline overrides the block: against its own search.json (14 ≥ 12.6) nothing regressed.
    let again = ws.path().join("again");
    let run = fleetstorm(&[
        "search",
        file.to_str().unwrap(),
        "--baseline",
        out.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("search.json")).unwrap()).unwrap();
    assert_eq!(json["conclusion"], "met");
    assert_eq!(json["baseline"]["regressed"], false);
    assert_eq!(json["baseline"]["baseline_capacity"], 14);
    assert!(
        run.stdout.contains("baseline: no capacity regression"),
        "{}",
        run.stdout
    );
    let junit = std::fs::read_to_string(again.join("junit.xml")).unwrap();
    assert!(junit.contains("failures=\"0\" errors=\"0\""), "{junit}");
}

#[test]
fn a_bad_block_or_a_foreign_baseline_is_refused_before_anything_runs() {
    let ws = Workspace::new();
    let name = unique("search-bad");
    let text = block(&name, "old.json").replace("vary: devices", "vary: cpu");
    let line = text.lines().position(|l| l.contains("vary: cpu")).unwrap() + 1;
    let file = ws.file("s.yaml", &text);
    let out = ws.out();
    let run = fleetstorm(&[
        "search",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr.contains(&format!("s.yaml:{line}:")) && run.stderr.contains("search.vary"),
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains("hint:"), "{}", run.describe());

    // A baseline of another scenario, then of another load, are no baselines.
    for (old, words) in [
        ("{\"schema_version\": 1, \"scenario\": \"other\", \"vary\": \"devices\", \"capacity\": 20}".to_owned(), "scenario `other`"),
        (format!("{{\"schema_version\": 1, \"scenario\": \"{name}\", \"vary\": \"rate\", \"capacity\": 20}}"), "varied rate"),
    ] {
        ws.file("old.json", &old);
        let file = ws.file("s.yaml", &block(&name, "old.json"));
        let run = fleetstorm(&["search", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(run.code(), Some(2), "{}", run.describe());
        assert!(run.stderr.contains("search.baseline:") && run.stderr.contains(words), "{}", run.describe());
        assert!(run.stderr.contains("same scenario and the same --vary"), "{}", run.describe());
        assert!(!out.join("search.json").exists());
    }
}

#[test]
fn a_search_without_an_slo_is_refused_before_anything_runs() {
    let ws = Workspace::new();
    let file = ws.file("s.yaml", &knee_scenario(&unique("search-no-slo")));
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

/// `--workers 2`: every step runs its fleet in two worker processes of this binary (each told the
/// step by the parent), against the one embedded broker of the search, and the knee is the same.
#[test]
fn a_search_over_worker_processes_finds_the_same_knee() {
    let ws = Workspace::new();
    let name = unique("search-workers");
    let file = ws.file("s.yaml", &knee_scenario(&name));
    let out = ws.out();
    let run = fleetstorm(&knee_search(
        &file,
        "1s",
        &[
            "--workers",
            "2",
            "--threads",
            "1",
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("search.json")).unwrap()).unwrap();
    assert_eq!(json["capacity"], 14, "{json:#}");
    let steps = json["steps"].as_array().unwrap();
    assert!(steps.len() >= 4, "{json:#}");
    for s in steps {
        let report = load_report(std::path::Path::new(s["report"].as_str().unwrap()));
        // One worker thread in each of two processes (in-process it would be one).
        assert_eq!(report.environment.worker_threads, 2, "step {}", s["index"]);
        let c = &report.totals.totals.counters;
        assert_eq!(
            c.get(Counter::ConnectAttempts),
            s["load"].as_u64().unwrap(),
            "step {}: each device connects once, in one of the two processes",
            s["index"]
        );
    }
}
