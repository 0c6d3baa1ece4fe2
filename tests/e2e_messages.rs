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

/// Every file a run or a refused run left in `dir` (recursively), as text.
fn files_text(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_text(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// `secret` appears nowhere: not on stdout or stderr, not in any file the run wrote.
fn assert_secret_absent(secret: &str, run: &Finished, out: &std::path::Path) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the secret `{secret}` was printed\n{}",
        run.describe()
    );
    for (path, text) in files_text(out) {
        assert!(
            !text.contains(secret),
            "the secret `{secret}` is in {}",
            path.display()
        );
    }
}

#[test]
fn a_password_in_broker_is_masked_in_the_refusal() {
    let ws = Workspace::new();
    let secret = unique("Pw");
    let path = ws.file(
        "s.yaml",
        "name: x\ngroups:\n  - { name: a, count: 1, profile: environment-sensor }\n",
    );
    let out = ws.out();
    for url in [
        format!("mqtt://dev:{secret}@127.0.0.1:1883"),
        format!("mqtt://dev:{secret} x@127.0.0.1:1883"),
        format!("mqtt://dev:{secret}/x@127.0.0.1:1883"),
        format!("ws://dev:{secret}@127.0.0.1:1883"),
    ] {
        for command in ["run", "doctor"] {
            let mut args = vec![command, path.to_str().unwrap(), "--broker", &url];
            if command == "run" {
                args.extend(["--out", out.to_str().unwrap()]);
            }
            let run = fleetstorm(&args);
            assert_eq!(run.code(), Some(2), "{}", run.describe());
            assert_secret_absent(&secret, &run, &out);
            assert!(run.stderr.contains("--broker"), "{}", run.describe());
        }
    }
    // The refusal still names the URL, with the user and a mask where the password was.
    let run = fleetstorm(&[
        "run",
        path.to_str().unwrap(),
        "--broker",
        &format!("mqtt://dev:{secret}@127.0.0.1:1883"),
    ]);
    assert!(
        run.stderr.contains("mqtt://dev:****@127.0.0.1:1883"),
        "{}",
        run.describe()
    );
}

#[test]
fn scenario_errors_never_show_a_password() {
    let ws = Workspace::new();
    let secret = unique("Pw");
    // Each: a broker section whose error points at (or near) the secret.
    let cases = [
        format!("broker:\n  password: \"{secret}\"\n"),
        format!("broker:\n  username: u\n  pasword: {secret}\n"),
        format!("broker:\n  username: u\n  password: [{secret}]\n"),
        format!("broker:\n  username: u\n  password:\n    - {secret}\n"),
        format!("broker:\n  username: u\n  password: \"{secret}\n"),
        format!("broker: {{ username: u, password: '{secret}', url: 3 }}\n"),
        format!("broker: {{ password: \"{secret}\" }}\n"),
        format!("broker:\n  url: \"mqtt://u:{secret}@127.0.0.1:1883\"\n"),
        format!("broker:\n  urls: [\"mqtt://u:{secret}@127.0.0.1:1883\"]\n"),
    ];
    let out = ws.out();
    for (i, broker) in cases.iter().enumerate() {
        let path = ws.file(
            &format!("s{i}.yaml"),
            &format!(
                "name: x\n{broker}groups:\n  - {{ name: a, count: 1, profile: environment-sensor }}\n"
            ),
        );
        for command in ["validate", "run"] {
            let mut args = vec![command, path.to_str().unwrap()];
            if command == "run" {
                args.extend(["--out", out.to_str().unwrap()]);
            }
            let run = fleetstorm(&args);
            assert_eq!(run.code(), Some(2), "case {i}\n{}", run.describe());
            assert_secret_absent(&secret, &run, &out);
            // Still a located error: file and line.
            assert!(
                run.stderr.contains(&format!("s{i}.yaml:")),
                "case {i}\n{}",
                run.describe()
            );
        }
    }
}
