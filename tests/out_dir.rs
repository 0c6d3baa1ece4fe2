//! The report folder is checked before anything connects, and a report that cannot be written at the
//! end still leaves the summary on stdout and the report in a fallback folder the message names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Finished, Workspace, BIN};
use fleetstorm::metrics::Counter;

fn scenario(ws: &Workspace, steady: &str) -> PathBuf {
    let name = common::unique("outdir");
    ws.file(
        "scenario.yaml",
        &format!(
            "version: 1\nname: {name}\ngroups:\n  - name: s\n    count: 5\n    profile: environment-sensor\n    interval: 100ms\n    qos: 1\n    topic: \"{name}/{{index}}\"\nphases:\n  - ramp: {{ connect_rate: 500/s }}\n  - steady: {{ duration: {steady} }}\n"
        ),
    )
}

/// `fleetstorm <args>` in `cwd`, with TMPDIR pointing into the workspace, waited for with a deadline.
fn run_in(ws: &Workspace, cwd: &Path, args: &[&str]) -> Finished {
    let started = Instant::now();
    let mut child = spawn_in(ws, cwd, args);
    common::wait_within(ws, &mut child, started, Duration::from_secs(60))
}

fn tmpdir(ws: &Workspace) -> PathBuf {
    let t = ws.path().join("tmp");
    std::fs::create_dir_all(&t).unwrap();
    t
}

fn spawn_in(ws: &Workspace, cwd: &Path, args: &[&str]) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("TMPDIR", tmpdir(ws))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(ws.stdout_path()).unwrap())
        .stderr(std::fs::File::create(ws.stderr_path()).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn an_unusable_out_folder_exits_2_before_connecting() {
    let ws = Workspace::new();
    let file = ws.file("file.txt", "not a folder\n");
    let sc = scenario(&ws, "1s");
    // A broker that only counts connections: none may arrive.
    let broker = TcpListener::bind("127.0.0.1:0").unwrap();
    broker.set_nonblocking(true).unwrap();
    let url = format!("mqtt://{}", broker.local_addr().unwrap());
    let under_file = file.join("sub");
    // A folder named `reports` cannot be made where a file of that name is (the default root).
    let cwd_with_file = ws.path().join("cwd");
    std::fs::create_dir(&cwd_with_file).unwrap();
    std::fs::write(cwd_with_file.join("reports"), "a file\n").unwrap();
    let cases: Vec<(Option<&Path>, &Path, &str, &Path)> = vec![
        (Some(&file), &file, "exists and is not a folder", ws.path()),
        (
            Some(&under_file),
            &under_file,
            "cannot create it",
            ws.path(),
        ),
        // /proc refuses new entries even to root.
        (
            Some(Path::new("/proc/fleetstorm-out-test/report")),
            Path::new("/proc/fleetstorm-out-test/report"),
            "cannot create it",
            ws.path(),
        ),
        (
            None,
            Path::new("reports"),
            "the default report folder",
            &cwd_with_file,
        ),
    ];
    for (out, named, says, cwd) in cases {
        let mut args = vec![
            "run",
            sc.to_str().unwrap(),
            "--broker",
            &url,
            "--no-progress",
        ];
        if let Some(o) = out {
            args.extend(["--out", o.to_str().unwrap()]);
        }
        let f = run_in(&ws, cwd, &args);
        assert_eq!(f.code(), Some(2), "{}", f.describe());
        assert!(
            f.stderr.contains(&format!("`{}`", named.display())),
            "names the folder\n{}",
            f.describe()
        );
        assert!(f.stderr.contains(says), "{}", f.describe());
        assert!(
            f.stderr.contains("hint: pass `--out DIR`"),
            "{}",
            f.describe()
        );
        // Nothing started: no scenario description, no connection to the broker.
        assert!(!f.stderr.contains("scenario `"), "{}", f.describe());
        assert!(
            matches!(broker.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a device connected although the run was refused"
        );
    }
    assert!(std::fs::read_to_string(&file).unwrap() == "not a folder\n");
}

#[test]
fn a_folder_that_breaks_during_the_run_still_leaves_the_summary_and_a_fallback_report() {
    let ws = Workspace::new();
    let sc = scenario(&ws, "3s");
    let parent = ws.path().join("parent");
    let out = parent.join("report");
    let started = Instant::now();
    let mut child = spawn_in(
        &ws,
        ws.path(),
        &[
            "run",
            sc.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    // The folder was checked (and created) before the description is printed; wait for it, then
    // replace the folder's parent by a file, as if the disk had been unmounted or the folder
    // removed while the run went on.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let err = std::fs::read_to_string(ws.stderr_path()).unwrap_or_default();
        if err.contains("scenario `") {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended before it started: {status:?}\n{err}");
        }
        assert!(Instant::now() < deadline, "the run never started\n{err}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(out.is_dir(), "the folder is created by the check");
    std::fs::remove_dir_all(&parent).unwrap();
    std::fs::write(&parent, "in the way\n").unwrap();
    let f = common::wait_within(&ws, &mut child, started, Duration::from_secs(60));
    assert_eq!(f.code(), Some(3), "{}", f.describe());
    // The summary was printed anyway.
    assert!(f.stdout.contains("published"), "{}", f.describe());
    assert!(
        f.stderr
            .contains(&format!("cannot write the report to {}", out.display())),
        "{}",
        f.describe()
    );
    // The fallback folder is under TMPDIR, named in the message, and holds the whole report.
    let tmp = tmpdir(&ws);
    let fallback: Vec<PathBuf> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("fleetstorm-outdir-")
        })
        .collect();
    assert_eq!(fallback.len(), 1, "{fallback:?}\n{}", f.describe());
    let fallback = &fallback[0];
    assert!(
        f.stderr.contains(&format!(
            "the report was written to {} instead",
            fallback.display()
        )),
        "{}",
        f.describe()
    );
    let r = common::load_report(fallback);
    assert!(r.totals.totals.counters.get(Counter::Published) > 0);
    assert!(fallback.join("summary.md").is_file());
    assert!(
        f.stdout
            .contains(&format!("wrote {}", fallback.join("report.json").display())),
        "{}",
        f.describe()
    );
}
