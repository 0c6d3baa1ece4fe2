//! Golden files for the text writers. After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test report_golden` and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod report_fixture;

use std::path::PathBuf;

use fleetstorm::report::{console, markdown, Report};
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
        &markdown::render(&Report::build(&sample()).unwrap()),
    );
}

#[test]
fn markdown_unreachable_golden() {
    check(
        "summary_unreachable.md",
        &markdown::render(&Report::build(&unreachable()).unwrap()),
    );
}
