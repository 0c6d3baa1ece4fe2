//! Gates that agree across shards: a shard (`--shard I/N`) evaluates no fleet-wide gate (it exits 0
//! and says it is a shard), `report merge` evaluates the scenario's thresholds on the merged report
//! (junit.xml, summary.md, exit 0 or 1 naming the gate), and `report render --threshold` names the gate
//! that failed. Shards share one broker (the scripted fault broker, which forwards every publish to
//! the observers) and one start time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;
mod fault;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{fleetstorm, load_report, unique, Workspace};
use fault::{FaultBroker, Script};

/// 40 devices at 5/s each (200/s fleet-wide), an observer, and `thresholds`. The fleet-wide
/// `publish_rate >= 150/s` is one a single shard (100/s) cannot meet, and shard 1 holds no
/// observer, so a shard that evaluated the fleet's gates would fail them.
fn scenario(name: &str, broker: &str, extra_threshold: &str) -> String {
    format!(
        "\
name: {name}
seed: 5
broker:
  url: {broker}
  client_id: \"{name}-{{group}}-{{index}}\"
groups:
  - name: dev
    count: 40
    profile: energy-meter
    interval: 200ms
    qos: 1
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
observers:
  - name: audit
phases:
  - ramp: {{ connect_rate: 400/s }}
  - steady: {{ duration: 2s }}
thresholds:
  - \"connect_failures == 0\"
  - \"publish_failed == 0\"
  - \"publish_rate >= 150/s\"
  - \"e2e.p99 < 60s\"
  - \"{extra_threshold}\"
"
    )
}

struct Shard {
    child: Child,
    out: PathBuf,
    stdout: PathBuf,
}

fn start_shard(ws: &Workspace, scenario: &Path, tag: &str, i: u32, start_at: &str) -> Shard {
    let out = ws.path().join(format!("{tag}-shard{i}"));
    let stdout = ws.path().join(format!("{tag}-shard{i}.out"));
    let child = Command::new(env!("CARGO_BIN_EXE_fleetstorm"))
        .arg("run")
        .arg(scenario)
        .args(["--no-progress", "--shard", &format!("{i}/2")])
        .args(["--start-at-us", start_at])
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(ws.path().join(format!("{tag}-shard{i}.err"))).unwrap())
        .spawn()
        .unwrap();
    Shard { child, out, stdout }
}

/// Wait for a shard (bounded), check it ran as a shard and deferred its gates; its report dir.
fn finish_shard(mut s: Shard, i: u32) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = s.child.kill();
            let _ = s.child.wait();
            panic!("shard {i} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&s.stdout).unwrap();
    let stderr = std::fs::read_to_string(s.stdout.with_extension("err")).unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "shard {i}/2 must exit 0 (its gates are the merge's)\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("shard {i}/2")) && stdout.contains("evaluated at merge"),
        "shard {i} must say it is a shard whose gates are evaluated at merge:\n{stdout}"
    );
    assert!(
        !stdout.contains("FAIL"),
        "a shard prints no verdict:\n{stdout}"
    );
    let r = load_report(&s.out);
    let schema = common::schema_errors(&s.out);
    assert!(
        schema.is_empty(),
        "shard report.json vs reports/schema.json: {schema:?}"
    );
    let note = r.gates_deferred.as_deref().unwrap_or_default();
    assert!(
        note.contains(&format!("shard {i}/2")),
        "report.json: {note:?}"
    );
    assert!(
        !s.out.join("junit.xml").exists(),
        "a shard writes no junit.xml"
    );
    let md = std::fs::read_to_string(s.out.join("summary.md")).unwrap();
    assert!(
        md.contains("## Gates") && md.contains("evaluated at merge"),
        "{md}"
    );
    let html = std::fs::read_to_string(s.out.join("report.html")).unwrap();
    assert!(
        html.contains("evaluated at merge"),
        "report.html says so too"
    );
    s.out
}

fn junit_counts(dir: &Path) -> (usize, usize) {
    let junit = std::fs::read_to_string(dir.join("junit.xml")).expect("junit.xml");
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
    (count("testcase"), count("failure"))
}

#[test]
fn shards_defer_gates_and_merge_evaluates_them() {
    let broker = FaultBroker::start(Script::new());
    let ws = Workspace::new();
    let pass_name = unique("shard-gates-pass");
    let fail_name = unique("shard-gates-fail");
    let passing = ws.file(
        "pass.yaml",
        &scenario(&pass_name, &broker.url(), "duplicates == 0"),
    );
    // Fleet-wide 200/s: this gate fails on the merged report (and names itself).
    let failing = ws.file(
        "fail.yaml",
        &scenario(&fail_name, &broker.url(), "publish_rate >= 1000000/s"),
    );
    let start_at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
        + 2_000_000)
        .to_string();
    let shards: Vec<(Shard, u32)> = [(&passing, "pass"), (&failing, "fail")]
        .into_iter()
        .flat_map(|(file, tag)| {
            let ws = &ws;
            let start_at = &start_at;
            (0..2).map(move |i| (start_shard(ws, file, tag, i, start_at), i))
        })
        .collect();
    let dirs: Vec<PathBuf> = shards
        .into_iter()
        .map(|(s, i)| finish_shard(s, i))
        .collect();
    let [pass0, pass1, fail0, fail1] = <[PathBuf; 4]>::try_from(dirs).unwrap();

    // The passing set: exit 0, every scenario threshold evaluated, junit.xml without failures.
    let merged = ws.path().join("merged-pass");
    let m = fleetstorm(&[
        "report",
        "merge",
        pass0.to_str().unwrap(),
        pass1.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(m.code(), Some(0), "{}", m.describe());
    assert!(m.stdout.contains("5 passed, 0 failed"), "{}", m.describe());
    assert_eq!(junit_counts(&merged), (5, 0));
    let md = std::fs::read_to_string(merged.join("summary.md")).unwrap();
    assert!(md.contains("**PASS:** 5 passed, 0 failed"), "{md}");
    assert!(md.contains("`publish_rate >= 150/s`"), "{md}");
    assert!(load_report(&merged).gates_deferred.is_none());
    let html = std::fs::read_to_string(merged.join("report.html")).unwrap();
    assert!(
        html.contains("publish_rate &gt;= 150/s"),
        "report.html shows the verdicts"
    );

    // The failing set: exit 1, and the failing gate named on stderr, in junit.xml and summary.md.
    let merged_fail = ws.path().join("merged-fail");
    let f = fleetstorm(&[
        "report",
        "merge",
        fail0.to_str().unwrap(),
        fail1.to_str().unwrap(),
        "--out",
        merged_fail.to_str().unwrap(),
    ]);
    assert_eq!(f.code(), Some(1), "{}", f.describe());
    assert!(
        f.stderr.contains("gate failed: publish_rate >= 1000000/s"),
        "{}",
        f.describe()
    );
    assert_eq!(junit_counts(&merged_fail), (5, 1));
    let md = std::fs::read_to_string(merged_fail.join("summary.md")).unwrap();
    assert!(
        md.contains("| **FAIL** | `publish_rate >= 1000000/s` |"),
        "{md}"
    );

    // A threshold given to merge adds to the scenario's.
    let extra = ws.path().join("merged-extra");
    let e = fleetstorm(&[
        "report",
        "merge",
        pass0.to_str().unwrap(),
        pass1.to_str().unwrap(),
        "--out",
        extra.to_str().unwrap(),
        "--threshold",
        "connect_failures > 5",
    ]);
    assert_eq!(e.code(), Some(1), "{}", e.describe());
    assert!(e.stdout.contains("5 passed, 1 failed"), "{}", e.describe());
    assert!(
        e.stderr.contains("gate failed: connect_failures > 5"),
        "{}",
        e.describe()
    );

    // One shard alone is still a shard: merged, it defers its gates (exit 0, says so).
    let alone = ws.path().join("merged-alone");
    let a = fleetstorm(&[
        "report",
        "merge",
        fail1.to_str().unwrap(),
        "--out",
        alone.to_str().unwrap(),
    ]);
    assert_eq!(a.code(), Some(0), "{}", a.describe());
    assert!(
        a.stdout.contains("shard 1/2") && a.stdout.contains("evaluated at merge"),
        "{}",
        a.describe()
    );

    // Shards of two different runs are refused (exit 2), and so is one shard twice.
    let mixed = fleetstorm(&[
        "report",
        "merge",
        pass0.to_str().unwrap(),
        fail1.to_str().unwrap(),
        "--out",
        ws.path().join("mixed").to_str().unwrap(),
    ]);
    assert_eq!(mixed.code(), Some(2), "{}", mixed.describe());
    let twice = fleetstorm(&[
        "report",
        "merge",
        pass0.to_str().unwrap(),
        pass0.to_str().unwrap(),
        "--out",
        ws.path().join("twice").to_str().unwrap(),
    ]);
    assert_eq!(twice.code(), Some(2), "{}", twice.describe());

    // render --threshold names the gate that failed, in every format.
    let rendered = ws.path().join("rendered");
    for format in ["md", "junit", "console"] {
        let r = fleetstorm(&[
            "report",
            "render",
            merged.to_str().unwrap(),
            "--format",
            format,
            "--out",
            rendered.to_str().unwrap(),
            "--threshold",
            "publish_rate >= 1000000/s",
            "--threshold",
            "publish_failed == 0",
        ]);
        assert_eq!(r.code(), Some(1), "{format}: {}", r.describe());
        assert!(
            r.stderr.contains("gate failed: publish_rate >= 1000000/s"),
            "{format}: {}",
            r.describe()
        );
        assert!(r.stdout.contains("1 passed, 1 failed"), "{}", r.describe());
    }
    let md = std::fs::read_to_string(rendered.join("summary.md")).unwrap();
    assert!(
        md.contains("| **FAIL** | `publish_rate >= 1000000/s` |"),
        "{md}"
    );
}

#[test]
fn a_shard_refuses_command_line_gates() {
    let ws = Workspace::new();
    let name = unique("shard-cli-gates");
    let file = ws.file(
        "s.yaml",
        &scenario(&name, "mqtt://127.0.0.1:1", "duplicates == 0"),
    );
    let r = fleetstorm(&[
        "run",
        file.to_str().unwrap(),
        "--shard",
        "0/2",
        "--threshold",
        "e2e.p99 < 1s",
        "--out",
        ws.out().to_str().unwrap(),
    ]);
    assert_eq!(r.code(), Some(2), "{}", r.describe());
    assert!(
        r.stderr.contains("report merge") && r.stderr.contains("--threshold"),
        "{}",
        r.describe()
    );
    assert!(!ws.out().join("report.json").exists(), "nothing ran");
}
