//! Messages a person can act on (issue 11, items 9-11), through the binary: a CONNACK refusal names
//! its code and meaning, protocol errors appear in the failure breakdown, secrets never appear in any
//! output, and no input makes the program panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use common::{fleetstorm, unique, Finished, Workspace};

/// A run or validate must end by its own exit code, never by a panic (exit 101).
fn assert_no_panic(run: &Finished) {
    assert_ne!(run.code(), Some(101), "panicked\n{}", run.describe());
    assert!(
        !run.stderr.contains("panicked"),
        "panicked\n{}",
        run.describe()
    );
}

#[test]
fn names_of_65536_characters_are_printed_not_panicked_on() {
    // `format!("{:<width$}")` panics on widths over 65,535: the plan description and the console
    // summary pad group and phase names to the longest one.
    let ws = Workspace::new();
    let group = "g".repeat(65_536);
    let phase = "p".repeat(65_536);
    let name = unique("long-names");
    let path = ws.file(
        "long.yaml",
        &format!(
            "name: {name}
broker:
  client_id: \"{name}-{{global_index}}\"
groups:
  - name: {group}
    count: 2
    profile: environment-sensor
    interval: 200ms
    topic: \"fleetstorm-test/{name}/{{client_id}}\"
phases:
  - name: {phase}
    steady: {{ duration: 1s }}
  - name: {phase}x
    steady: {{ duration: 1s }}
"
        ),
    );
    let path = path.to_str().unwrap();
    let validate = fleetstorm(&["validate", path]);
    assert_no_panic(&validate);
    assert_eq!(validate.code(), Some(0), "{}", validate.describe());
    assert!(validate.stderr.contains(&group) || validate.stdout.contains(&group));

    let out = ws.out();
    let run = fleetstorm(&["run", path, "--out", out.to_str().unwrap(), "--no-progress"]);
    assert_no_panic(&run);
    assert_eq!(run.code(), Some(0), "{}", run.describe());
    // The summary lists both phases by their full names.
    assert!(
        run.stdout.contains(&format!("{phase}x")),
        "{}",
        run.describe()
    );
}
