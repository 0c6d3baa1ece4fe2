//! Golden files for the text writers. After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test report_golden` and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod report_fixture;

use std::path::PathBuf;

use fleetstorm::output::{console, markdown};
use fleetstorm::report::Report;
use report_fixture::{sample, unreachable};

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs; run with UPDATE_GOLDEN=1 to accept.\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[test]
fn console_golden() {
    check(
        "console.txt",
        &console::render(&Report::build(&sample()).unwrap()),
    );
}

#[test]
fn console_unreachable_golden() {
    check(
        "console_unreachable.txt",
        &console::render(&Report::build(&unreachable()).unwrap()),
    );
}

#[test]
fn markdown_golden() {
    check(
        "summary.md",
        &markdown::render(&Report::build(&sample()).unwrap(), &[], None),
    );
}

#[test]
fn markdown_unreachable_golden() {
    check(
        "summary_unreachable.md",
        &markdown::render(&Report::build(&unreachable()).unwrap(), &[], None),
    );
}

/// summary.md with gate results: a passing and a failing threshold, an unmeasured one, and a
/// baseline comparison (the run against itself: nothing regressed).
#[test]
fn markdown_gates_golden() {
    use fleetstorm::gate::{compare, evaluate, parse_threshold};
    let report = Report::build(&sample()).unwrap();
    let thresholds: Vec<_> = [
        "puback.p99 < 10s",
        "puback.p50 < 1us",
        "command_rtt.p99 < 1s",
    ]
    .iter()
    .map(|t| parse_threshold(t).unwrap())
    .collect();
    let verdicts = evaluate(&report, &thresholds);
    let comparison = compare(&report, &report, 0.1);
    let md = markdown::render(&report, &verdicts, Some(&comparison));
    assert!(md.contains("**FAIL:**"), "{md}");
    check("summary_gates.md", &md);
}

/// summary.md of one shard: it says that gates are evaluated at merge.
#[test]
fn markdown_shard_golden() {
    let mut record = sample();
    record.shards = Some(fleetstorm::report::Shards::new(
        &record.scenario,
        record.started_at_us,
        1,
        2,
    ));
    let md = markdown::render(&Report::build(&record).unwrap(), &[], None);
    assert!(md.contains("shard 1/2"), "{md}");
    assert!(md.contains("evaluated at merge"), "{md}");
    check("summary_shard.md", &md);
}
