//! Memory grows with phases x groups (each phase keeps its own latency histograms per group and worker
//! thread). Validation refuses scenarios past the limits with a located error, and a run at the phase
//! limit stays within the memory `doctor` (and the check before every run) plans for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Workspace;
use fleetstorm::engine::limits;
use fleetstorm::plan::{Plan, Shard};
use fleetstorm::scenario::{self, ErrorKind, MAX_PHASES, MAX_PHASE_GROUPS};

/// One QoS 1 group observed end to end (histograms on device and observer threads), a ramp, then
/// `steadies` steady phases of 5 ms.
fn phases_yaml(name: &str, steadies: usize) -> String {
    let mut y = format!(
        "version: 1\nname: {name}\nseed: 1\ngroups:\n  - name: s\n    count: 20\n    profile: environment-sensor\n    interval: 10ms\n    qos: 1\n    topic: \"{name}/{{index}}\"\nobservers:\n  - name: audit\n    qos: 1\nphases:\n  - ramp: {{ connect_rate: 1000/s }}\n"
    );
    for _ in 0..steadies {
        y.push_str("  - steady: { duration: 5ms }\n");
    }
    y
}

#[test]
fn too_many_phases_is_a_located_error() {
    let text = phases_yaml("many", 2_000);
    let e = scenario::parse(&text, "many.yaml").unwrap_err();
    let shown = e.to_string();
    assert_eq!(e.kind(), ErrorKind::InvalidValue, "{shown}");
    assert_eq!(
        e.key_path(),
        Some(format!("phases[{MAX_PHASES}]").as_str()),
        "{shown}"
    );
    // The first phase too many: the ramp is phases[0] on line 15.
    assert_eq!(e.line(), Some(15 + MAX_PHASES), "{shown}");
    assert!(
        e.message().contains(&format!(
            "2001 phases; a scenario may have at most {MAX_PHASES}"
        )),
        "{shown}"
    );
    assert!(e.hint().unwrap().contains("memory grows"), "{shown}");
    // At the limit it is valid.
    scenario::parse(&phases_yaml("limit", MAX_PHASES - 1), "limit.yaml").unwrap();
}

#[test]
fn too_many_phase_group_cells_is_a_located_error() {
    // 10 phases (with the default ramp) x groups just past the cell limit.
    let groups = MAX_PHASE_GROUPS / 10 + 1;
    let mut y = String::from("version: 1\nname: cells\ngroups:\n");
    for i in 0..groups {
        y.push_str(&format!(
            "  - name: g{i}\n    count: 1\n    profile: environment-sensor\n    interval: 1s\n"
        ));
    }
    y.push_str("phases:\n");
    let phases_line = y.lines().count();
    for _ in 0..9 {
        y.push_str("  - steady: { duration: 1s }\n");
    }
    let e = scenario::parse(&y, "cells.yaml").unwrap_err();
    let shown = e.to_string();
    assert_eq!(e.key_path(), Some("phases"), "{shown}");
    assert!(e.line().unwrap() > phases_line - 1, "{shown}");
    assert!(
        e.message().contains(&format!(
            "10 phases (with the default ramp) x {groups} groups = {} phase x group cells",
            10 * groups
        )),
        "{shown}"
    );
    assert!(e.hint().unwrap().contains("memory grows"), "{shown}");
}

/// Run `fleetstorm run <file>` and return its exit code and peak resident memory (KiB), read with
/// wait4 for that child alone.
// The child is reaped with wait4 (for its rusage), not through `Child`.
#[allow(clippy::zombie_processes)]
fn run_peak_rss(ws: &Workspace, file: &Path, out: &Path) -> (i32, u64) {
    let child = common::spawn(
        ws,
        &[
            "run",
            file.to_str().unwrap(),
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut status = 0;
        // SAFETY: plain out-parameters; the pid is our own child, reaped here only.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            assert!(libc::WIFEXITED(status), "killed by a signal: {status}");
            return (
                libc::WEXITSTATUS(status),
                u64::try_from(usage.ru_maxrss).unwrap(),
            );
        }
        assert_eq!(r, 0, "wait4 failed");
        if Instant::now() > deadline {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!(
                "the run did not end in time\n{}",
                std::fs::read_to_string(ws.stderr_path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_run_at_the_phase_limit_stays_within_the_planned_memory() {
    let ws = Workspace::new();
    let small = ws.file("small.yaml", &phases_yaml(&common::unique("mem2"), 2));
    let many = ws.file(
        "many.yaml",
        &phases_yaml(&common::unique("mem100"), MAX_PHASES - 1),
    );
    let (code, small_kib) = run_peak_rss(&ws, &small, &ws.path().join("small"));
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(ws.stderr_path()).unwrap()
    );
    let (code, many_kib) = run_peak_rss(&ws, &many, &ws.path().join("many"));
    assert_eq!(
        code,
        0,
        "{}",
        std::fs::read_to_string(ws.stderr_path()).unwrap()
    );
    // What doctor and the check before the run plan for (one process, one thread per core).
    let plan = Plan::new(scenario::load(&many).unwrap(), Shard::default());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let planned_kib = limits::histogram_bytes(&plan, 1, cores) / 1024;
    eprintln!(
        "peak RSS: 2 steady phases {small_kib} KiB, {} phases {many_kib} KiB; planned histograms {planned_kib} KiB",
        MAX_PHASES
    );
    // The histograms were really allocated per phase (the many-phase run needs more) ...
    assert!(many_kib > small_kib, "{many_kib} vs {small_kib}");
    // ... and the growth stays within the plan.
    assert!(
        many_kib - small_kib <= planned_kib,
        "the run grew by {} KiB; doctor plans for {planned_kib} KiB",
        many_kib - small_kib
    );
    let r = common::load_report(&ws.path().join("many"));
    assert_eq!(r.phases.len(), MAX_PHASES);
}
