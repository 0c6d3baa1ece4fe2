//! Report files a user hands to `report merge|render|compare` and `run --baseline` may be hostile or
//! simply wrong: a histogram header claiming gigabytes, `/dev/zero`, a FIFO, a huge file, the same
//! shard twice, shards of different runs, counts that overflow. Each is refused with exit 2 and a
//! message naming the file, quickly and without allocating what the file claims.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

mod common;
mod report_fixture;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Finished, Workspace, BIN, ROOT};
use fleetstorm::metrics::Counter;
use fleetstorm::report::{self, Report, RunRecord, Shards};
use report_fixture::{sample, START_US};

/// Address space the child may use: far below the 4 GiB a hostile header claims, far above what a
/// report command needs.
const CHILD_ADDRESS_SPACE: u64 = 1 << 30;

/// Run `fleetstorm <args>` as a child with a deadline (killed by its PID and failed if it runs past
/// it) and, when `limit_memory`, an address-space limit, so an allocation of what a hostile file
/// claims fails the child instead of the machine.
fn run(ws: &Workspace, args: &[&str], limit_memory: bool) -> Finished {
    let started = Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(ws.stdout_path()).unwrap())
        .stderr(std::fs::File::create(ws.stderr_path()).unwrap());
    if limit_memory {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: CHILD_ADDRESS_SPACE,
                    rlim_max: CHILD_ADDRESS_SPACE,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().unwrap();
    common::wait_within(ws, &mut child, started, Duration::from_secs(30))
}

fn assert_refused(f: &Finished, names: &[&Path], says: &str) {
    assert_eq!(f.code(), Some(2), "{}", f.describe());
    for n in names {
        assert!(
            f.stderr.contains(&n.display().to_string()),
            "message must name {}\n{}",
            n.display(),
            f.describe()
        );
    }
    assert!(
        f.stderr.contains(says),
        "message must say `{says}`\n{}",
        f.describe()
    );
}

/// Write `record` as a report directory `ws/name`; returns the directory.
fn write_report(ws: &Workspace, name: &str, record: &RunRecord) -> PathBuf {
    let dir = ws.path().join(name);
    report::json::write(&Report::build(record).unwrap(), &dir).unwrap();
    dir
}

/// The fixture as shard `index` of `count` of the run starting at `start_us`.
fn shard(index: u32, count: u32, start_us: u64) -> RunRecord {
    let mut r = sample();
    let shift = start_us - START_US;
    r.started_at_us += shift;
    r.ended_at_us += shift;
    for p in &mut r.snapshot.phases {
        p.start_us += shift;
        p.end_us += shift;
    }
    r.shards = Some(Shards::new(&r.scenario, r.started_at_us, index, count));
    r
}

/// A report directory whose first histogram is replaced by `hist` (base64).
fn with_histogram(ws: &Workspace, name: &str, hist: &str) -> PathBuf {
    let dir = write_report(ws, name, &sample());
    let file = dir.join("report.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let hs = v["histograms"]["phases"][1]["groups"][0]["histograms"]
        .as_object_mut()
        .unwrap();
    let key = hs.keys().next().unwrap().clone();
    hs.insert(key, serde_json::Value::String(hist.to_owned()));
    std::fs::write(&file, serde_json::to_string(&v).unwrap()).unwrap();
    dir
}

fn scenario_file(ws: &Workspace) -> PathBuf {
    ws.file(
        "scenario.yaml",
        "version: 1\nname: baseline-test\ngroups:\n  - name: s\n    count: 1\n    profile: environment-sensor\n    interval: 1s\nphases:\n  - steady: { duration: 1s }\n",
    )
}

#[test]
fn a_histogram_header_claiming_4_gib_is_refused_by_every_report_command() {
    let ws = Workspace::new();
    // The 40-byte V2 header: cookie, payload length 0xFFFFFFFF, offset, 3 digits, 1 .. 1 h, ratio 1.
    let mut h = Vec::new();
    h.extend(0x1c84_9313u32.to_be_bytes());
    h.extend(u32::MAX.to_be_bytes());
    h.extend(0u32.to_be_bytes());
    h.extend(3u32.to_be_bytes());
    h.extend(1u64.to_be_bytes());
    h.extend(3_600_000_000u64.to_be_bytes());
    h.extend(1.0f64.to_be_bytes());
    assert_eq!(h.len(), 40);
    let hostile = with_histogram(
        &ws,
        "hostile",
        &base64::engine::general_purpose::STANDARD.encode(&h),
    );
    let good = write_report(&ws, "good", &sample());
    let file = hostile.join("report.json");
    let (hs, gs) = (hostile.to_str().unwrap(), good.to_str().unwrap());
    let scenario = scenario_file(&ws);
    let out = ws.path().join("out");
    let out = out.to_str().unwrap();
    for args in [
        vec!["report", "render", hs, "--out", out],
        vec!["report", "compare", hs, gs],
        vec!["report", "compare", gs, hs],
        vec!["report", "merge", gs, hs, "--out", out],
        vec![
            "run",
            scenario.to_str().unwrap(),
            "--baseline",
            hs,
            "--no-progress",
        ],
    ] {
        let f = run(&ws, &args, true);
        assert_refused(&f, &[&file], "4294967295-byte payload");
    }
}

#[test]
fn dev_zero_a_fifo_and_a_huge_file_are_refused_without_reading_them() {
    let ws = Workspace::new();
    let good = write_report(&ws, "good", &sample());
    let gs = good.to_str().unwrap();
    // A FIFO nobody writes to: opening it for reading would block forever.
    let fifo = ws.path().join("report.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // A report directory whose report.json is a FIFO.
    let fifo_dir = ws.path().join("fifo-dir");
    std::fs::create_dir(&fifo_dir).unwrap();
    let inner = fifo_dir.join("report.json");
    let c = std::ffi::CString::new(inner.to_str().unwrap()).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // A sparse file just over the cap: refused by its size, not read.
    let huge = ws.path().join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(report::MAX_REPORT_BYTES + 1)
        .unwrap();
    let zero = Path::new("/dev/zero");
    let scenario = scenario_file(&ws);
    let out = ws.path().join("out");
    let out = out.to_str().unwrap();
    for (path, shown, says) in [
        (zero, zero, "a character device"),
        (fifo.as_path(), fifo.as_path(), "a named pipe"),
        (fifo_dir.as_path(), inner.as_path(), "a named pipe"),
        (
            huge.as_path(),
            huge.as_path(),
            "larger than 268435456 bytes",
        ),
    ] {
        let p = path.to_str().unwrap();
        for args in [
            vec!["report", "render", p, "--out", out],
            vec!["report", "compare", p, gs],
            vec!["report", "compare", gs, p],
            vec!["report", "merge", gs, p, "--out", out],
            vec![
                "run",
                scenario.to_str().unwrap(),
                "--baseline",
                p,
                "--no-progress",
            ],
        ] {
            let f = run(&ws, &args, true);
            assert_refused(&f, &[shown], says);
        }
    }
}

#[test]
fn an_invalid_report_exits_2_as_base_and_as_current() {
    let ws = Workspace::new();
    let good = write_report(&ws, "good", &sample());
    let bad = ws.file("bad.json", "{\"schema_version\": 1, \"broker\": 3}");
    let missing = ws.path().join("missing.json");
    let (g, b, m) = (
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
        missing.to_str().unwrap(),
    );
    for (args, file, role) in [
        (["report", "compare", b, g], &bad, "BASE"),
        (["report", "compare", g, b], &bad, "CURRENT"),
        (["report", "compare", m, g], &missing, "BASE"),
        (["report", "compare", g, m], &missing, "CURRENT"),
    ] {
        let f = run(&ws, &args, false);
        assert_refused(&f, &[file], role);
    }
    let f = run(&ws, &["report", "compare", g, g], false);
    assert_eq!(f.code(), Some(0), "{}", f.describe());
}

#[test]
fn merging_the_same_shard_twice_is_refused() {
    let ws = Workspace::new();
    let start = START_US + 3_600_000_000;
    let a = write_report(&ws, "a", &shard(0, 2, start));
    let b = write_report(&ws, "b", &shard(1, 2, start));
    let out = ws.path().join("merged");
    let (as_, bs, outs) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        out.to_str().unwrap(),
    );

    // The same file twice (once as the directory, once as the file in it).
    let a_file = a.join("report.json");
    let f = run(
        &ws,
        &[
            "report",
            "merge",
            as_,
            a_file.to_str().unwrap(),
            "--out",
            outs,
        ],
        false,
    );
    assert_refused(&f, &[&a, &a_file], "same file");
    assert!(!out.exists(), "nothing may be written");

    // A copy of a shard's report under another name.
    let copy = ws.path().join("a-copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(&a_file, copy.join("report.json")).unwrap();
    let f = run(
        &ws,
        &[
            "report",
            "merge",
            as_,
            bs,
            copy.to_str().unwrap(),
            "--out",
            outs,
        ],
        false,
    );
    assert_refused(&f, &[&a, &copy], "both hold shard 0/2");
    assert!(!out.exists(), "nothing may be written");

    // Reports of older versions carry no shard identity: an identical copy is still refused.
    let mut old = sample();
    old.shards = None;
    let o1 = write_report(&ws, "old1", &old);
    let o2 = write_report(&ws, "old2", &old);
    let f = run(
        &ws,
        &[
            "report",
            "merge",
            o1.to_str().unwrap(),
            o2.to_str().unwrap(),
            "--out",
            outs,
        ],
        false,
    );
    assert_refused(&f, &[&o1, &o2], "same measurements");

    // An --out that is a file is refused before anything is written.
    let file = ws.file("not-a-folder", "x\n");
    let f = run(
        &ws,
        &["report", "merge", as_, bs, "--out", file.to_str().unwrap()],
        false,
    );
    assert_refused(&f, &[&file], "exists and is not a folder");

    // The two shards merge, and the result says it holds both.
    let f = run(&ws, &["report", "merge", as_, bs, "--out", outs], false);
    assert_eq!(f.code(), Some(0), "{}", f.describe());
    let merged = report::load(&out).unwrap();
    let shards = merged.shards.clone().unwrap();
    assert_eq!((shards.count, shards.indices.clone()), (2, vec![0, 1]));
    let one = report::load(&a).unwrap();
    assert_eq!(
        merged.totals.totals.counters.get(Counter::Published),
        2 * one.totals.totals.counters.get(Counter::Published)
    );
    // ... and a merged report cannot take one of its shards again.
    let out2 = ws.path().join("merged2");
    let f = run(
        &ws,
        &[
            "report",
            "merge",
            outs,
            as_,
            "--out",
            out2.to_str().unwrap(),
        ],
        false,
    );
    assert_refused(&f, &[&out, &a], "both hold shard 0/2");
}

#[test]
fn shards_of_different_runs_are_refused() {
    let ws = Workspace::new();
    let start = START_US + 3_600_000_000;
    let a = write_report(&ws, "a", &shard(0, 2, start));
    let out = ws.path().join("merged");
    let cases: Vec<(&str, RunRecord, &str)> = vec![
        ("later", shard(1, 2, start + 1_000_000), "started at"),
        (
            "seed",
            {
                let mut r = shard(1, 2, start);
                r.scenario["seed"] = serde_json::json!(7);
                r.shards = Some(Shards::new(&r.scenario, r.started_at_us, 1, 2));
                r
            },
            "seed",
        ),
        (
            "renamed",
            {
                let mut r = shard(1, 2, start);
                r.scenario_name = "other".into();
                r
            },
            "scenario `smoke` vs `other`",
        ),
        ("of-three", shard(1, 3, start), "split into 2 shards vs 3"),
    ];
    for (name, record, says) in cases {
        let b = write_report(&ws, name, &record);
        let f = run(
            &ws,
            &[
                "report",
                "merge",
                a.to_str().unwrap(),
                b.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            false,
        );
        assert_refused(&f, &[&a, &b], says);
        assert!(
            f.stderr.contains("not shards of one run"),
            "{}",
            f.describe()
        );
        assert!(!out.exists(), "nothing may be written");
    }
}

#[test]
fn counts_that_would_overflow_on_merge_are_an_error() {
    let ws = Workspace::new();
    let start = START_US + 3_600_000_000;
    // A counter the fixture leaves at zero, so each report on its own sums fine.
    let mut one = shard(0, 2, start);
    one.snapshot.phases[1].groups[0].counters.0[Counter::PingSent as usize] = 1;
    let a = write_report(&ws, "a", &one);
    let mut big = shard(1, 2, start);
    big.snapshot.phases[1].groups[0].counters.0[Counter::PingSent as usize] = u64::MAX;
    let b = write_report(&ws, "b", &big);
    let out = ws.path().join("merged");
    let f = run(
        &ws,
        &[
            "report",
            "merge",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        false,
    );
    assert_refused(&f, &[&b], "counter `ping_sent`");
    assert!(f.stderr.contains("overflow"), "{}", f.describe());
    assert!(!out.exists(), "nothing may be written");
}
