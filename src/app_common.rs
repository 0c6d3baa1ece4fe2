//! What the commands that run the engine share (`run` in `app.rs`, `search` in `app_search.rs`):
//! loading a scenario with its overrides, the report folder checked before anything runs, and the
//! record of a finished run.

use std::path::Path;

use crate::engine::{self, limits};
use crate::error::CommandError;
use crate::metrics::Clock;
use crate::plan::Plan;
use crate::report::{Environment, RunRecord, Shards};
use crate::scenario::{self, Overrides, Scenario};
use crate::ui::Ui;

/// Where reports go when `--out` is not given: `reports/<name>-<UTC stamp>/` under the working folder.
pub(crate) const DEFAULT_OUT_ROOT: &str = "reports";

pub(crate) fn load(path: &Path, overrides: &Overrides) -> Result<Scenario, CommandError> {
    let s = scenario::load(path)?;
    Ok(s.apply_overrides(overrides)?)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

pub(crate) fn environment(open_files: u64, worker_threads: usize) -> Environment {
    Environment {
        host: hostname(),
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        fleetstorm_version: env!("CARGO_PKG_VERSION").to_owned(),
        open_files_limit: open_files,
        clock_source: Clock::new().source().to_owned(),
        worker_threads,
    }
}

/// The record of a finished run of `plan`, ready for [`crate::report::Report::build`].
pub(crate) fn record(plan: &Plan, ran: engine::EngineOutput, open_files: u64) -> RunRecord {
    let scenario = serde_json::to_value(plan.scenario.as_ref()).unwrap_or(serde_json::Value::Null);
    let shards = Shards::new(
        &scenario,
        ran.started_at_us,
        plan.shard.index,
        plan.shard.count,
    );
    RunRecord {
        scenario,
        scenario_name: plan.scenario.name.clone(),
        broker: ran.broker_label.clone(),
        environment: environment(open_files, ran.worker_threads),
        outcome: ran.outcome,
        started_at_us: ran.started_at_us,
        ended_at_us: ran.ended_at_us,
        snapshot: ran.snapshot,
        series: ran.series,
        shards: Some(shards),
    }
}

/// Make sure reports can be written under `dir` before anything runs: create it, write and remove a
/// probe file. A run must not be lost to a folder that turns out to be a file, read-only or missing
/// only when the report is written.
pub(crate) fn check_out_dir(dir: &Path, what: &str) -> Result<(), CommandError> {
    let fail = |why: String| {
        CommandError::Usage(format!(
            "{what} `{}`: reports cannot be written there: {why}\n  hint: pass `--out DIR` with a folder this user can write (it is created if missing), e.g. `--out /tmp/fleetstorm-reports`; nothing was run",
            dir.display()
        ))
    };
    if let Ok(meta) = std::fs::metadata(dir) {
        if !meta.is_dir() {
            return Err(fail("it exists and is not a folder".into()));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let probe = dir.join(format!(".fleetstorm-write-probe-{}", std::process::id()));
    let written = std::fs::write(
        &probe,
        b"fleetstorm checks that reports can be written here\n",
    );
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| fail(format!("cannot write a file in it: {e}")))
}

/// Check `--out` (or the default root) of a command that writes reports.
pub(crate) fn check_out(out: Option<&Path>) -> Result<(), CommandError> {
    match out {
        Some(d) => check_out_dir(d, "--out"),
        None => check_out_dir(Path::new(DEFAULT_OUT_ROOT), "the default report folder"),
    }
}

/// Start the `--ui` live view and say where it is.
pub(crate) fn start_ui(at: Option<std::net::SocketAddr>) -> Result<Option<Ui>, CommandError> {
    let Some(at) = at else {
        return Ok(None);
    };
    let ui = Ui::start(at).map_err(|e| CommandError::Usage(e.to_string()))?;
    eprintln!("live view: http://{}/", ui.addr());
    Ok(Some(ui))
}

/// How many worker processes: none asked → 1; `auto` → as many as the open-file limit requires.
pub(crate) fn worker_count(
    workers: Option<&str>,
    devices: u64,
    soft: u64,
) -> Result<u32, CommandError> {
    let Some(text) = workers else {
        return Ok(1);
    };
    if text.trim() == "auto" {
        let per_process = soft.saturating_sub(limits::FD_RESERVE).max(1);
        return Ok(u32::try_from(devices.div_ceil(per_process))
            .unwrap_or(u32::MAX)
            .max(1));
    }
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(CommandError::Usage(format!(
            "--workers: `{text}` is not a worker count\n  hint: pass a number from 1 to 1024, or `auto` to size it from the open-file limit"
        ))),
    }
}
