//! Worker processes: the parent starts N copies of this binary, each running one shard of the
//! device-id range from a shared start time. Children stream a JSON line per second (cumulative
//! counters) and a final line with their exact snapshot over stdout; the parent shows one progress
//! view and merges the snapshots. A child that dies is reported by shard and exit status, and the run
//! still ends with a report of the others.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use super::{
    broker_target, observer, shutdown_signal, EngineError, EngineOutput, RunOptions, TickSample,
};
use crate::metrics::{Clock, Counters, IntervalHistograms, MissingShard, RunSnapshot};
use crate::plan::{Plan, Shard};
use crate::progress::Progress;
use crate::report::{Outcome, RunStatus};

/// One line a worker process writes on its stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipeMessage {
    Tick(Box<TickSample>),
    Final {
        outcome: Outcome,
        snapshot: RunSnapshot,
        started_at_us: u64,
        ended_at_us: u64,
        worker_threads: usize,
    },
}

/// How to start a worker process: this binary, and the arguments every shard shares (scenario path and
/// overrides). The parent appends `--shard i/N --start-at-us T --broker URL --worker-pipe`.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub exe: PathBuf,
    pub args: Vec<OsString>,
}

/// Time the children get to start before the first connect slot.
const START_LEAD_US: u64 = 1_500_000;

struct Child {
    latest: Option<TickSample>,
    result: Option<(Outcome, RunSnapshot, u64, u64, usize)>,
    exit: Option<String>,
    pid: Option<u32>,
}

enum Event {
    Line(usize, String),
    Exited(usize, String),
}

/// Run the plan's fleet over `workers` child processes and merge what they measured.
pub fn run(
    plan: &Plan,
    opts: &RunOptions,
    workers: u32,
    cmd: &WorkerCommand,
) -> Result<EngineOutput, EngineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EngineError::Runtime)?;
    rt.block_on(coordinate(plan, opts, workers.max(1), cmd))
}

fn sum(children: &[Child]) -> (Counters, i64) {
    let mut total = Counters::default();
    let mut connected = 0;
    for c in children {
        if let Some(t) = &c.latest {
            total.merge(&t.counters);
            connected += t.connected;
        }
    }
    (total, connected)
}

/// The shards' latest per-group counters, added up.
fn sum_groups(children: &[Child], groups: usize) -> Vec<[u64; crate::metrics::GROUP_SLOTS]> {
    let mut out = vec![[0u64; crate::metrics::GROUP_SLOTS]; groups];
    for t in children.iter().filter_map(|c| c.latest.as_ref()) {
        for (o, g) in out.iter_mut().zip(&t.groups) {
            for (a, b) in o.iter_mut().zip(g) {
                *a = a.wrapping_add(*b);
            }
        }
    }
    out
}

async fn coordinate(
    plan: &Plan,
    opts: &RunOptions,
    workers: u32,
    cmd: &WorkerCommand,
) -> Result<EngineOutput, EngineError> {
    let (addrs, broker_label) = broker_target(plan).await?;
    // Children get the embedded broker's address; named brokers come from the scenario itself.
    let embedded_url = match (&plan.scenario.broker.url, addrs.first()) {
        (None, Some(addr)) => Some(format!("mqtt://{addr}")),
        _ => None,
    };
    let clock = Clock::new();
    let start_us = opts
        .start_at_us
        .unwrap_or_else(|| clock.now_us() + START_LEAD_US);
    let timeline = plan.timeline(start_us);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut children: Vec<Child> = Vec::with_capacity(workers as usize);
    for i in 0..workers {
        let mut command = tokio::process::Command::new(&cmd.exe);
        command
            .args(&cmd.args)
            .arg("--shard")
            .arg(format!("{i}/{workers}"))
            .arg("--start-at-us")
            .arg(start_us.to_string())
            .arg("--worker-pipe")
            .arg("--no-progress")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(false);
        if let Some(url) = &embedded_url {
            command.arg("--broker").arg(url);
        }
        if opts.threads > 0 {
            command.arg("--threads").arg(opts.threads.to_string());
        }
        let mut child = command.spawn().map_err(EngineError::Spawn)?;
        let pid = child.id();
        let index = children.len();
        let stdout = child.stdout.take();
        let tx = tx.clone();
        tokio::spawn(async move {
            if let Some(out) = stdout {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send(Event::Line(index, line));
                }
            }
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("unknown ({e})"),
            };
            let _ = tx.send(Event::Exited(index, status));
        });
        children.push(Child {
            latest: None,
            result: None,
            exit: None,
            pid,
        });
    }
    drop(tx);

    let progress = Progress::new(opts.progress, plan.total_devices(), &timeline);
    let live_view = match opts.prometheus {
        Some(at) => Some(super::prometheus::serve(at, plan.scenario.name.clone()).await?),
        None => None,
    };
    let mut seconds = super::ticker::Seconds::default().with_ui(opts.ui.as_ref(), plan, &timeline);
    let mut tick: u32 = 1;
    let mut last_close_us = start_us;
    let mut interrupted = false;
    let signal = shutdown_signal();
    tokio::pin!(signal);
    while children.iter().any(|c| c.exit.is_none()) {
        // After the children's samples of that second (they send theirs 50 ms past the boundary).
        let tick_us = start_us + u64::from(tick) * 1_000_000 + 200_000;
        let tick_at = Instant::from_std(clock.instant_at(tick_us));
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Event::Line(i, line)) => match serde_json::from_str::<PipeMessage>(&line) {
                    Ok(PipeMessage::Tick(t)) => {
                        seconds.add_latency(&IntervalHistograms::decode(&t.interval), live_view.as_ref());
                        if let Some(c) = children.get_mut(i) {
                            c.latest = Some(*t);
                        }
                    }
                    Ok(PipeMessage::Final { outcome, snapshot, started_at_us, ended_at_us, worker_threads }) => {
                        if let Some(c) = children.get_mut(i) {
                            c.result = Some((outcome, snapshot, started_at_us, ended_at_us, worker_threads));
                        }
                    }
                    Err(_) => progress.note(&format!("worker {i}: {line}")),
                },
                Some(Event::Exited(i, status)) => {
                    if let Some(c) = children.get_mut(i) {
                        c.exit = Some(status);
                    }
                }
                None => break,
            },
            _ = &mut signal, if !interrupted => {
                interrupted = true;
                progress.note("interrupted: stopping the workers and writing the report…");
                for c in &children {
                    if let (Some(pid), None) = (c.pid, &c.exit) {
                        forward_interrupt(pid);
                    }
                }
            }
            _ = tokio::time::sleep_until(tick_at) => {
                let (now, connected) = sum(&children);
                if let Some(ui) = &opts.ui {
                    ui.set_groups(&sum_groups(&children, plan.groups().len()));
                }
                last_close_us = clock.now_us();
                seconds.close(tick, connected, now, last_close_us, live_view.as_ref(), &progress);
                tick = tick.saturating_add(1);
            }
        }
    }
    progress.finish();

    // Merge what the shards reported; name the ones that did not.
    let windows: Vec<(String, u64, u64)> = timeline
        .phases
        .iter()
        .map(|p| (p.name.clone(), p.start_us, p.end_us))
        .collect();
    let names = plan.groups().iter().map(|g| g.name.clone()).collect();
    // Phase windows come from the shards (a stopped shard ended its phases early); the plan's windows
    // only when no shard reported.
    let mut snapshot: Option<RunSnapshot> = None;
    let mut outcome = Outcome {
        status: RunStatus::Completed,
        message: String::new(),
    };
    let mut failed = Vec::new();
    let mut missing = Vec::new();
    let mut ended_at_us = start_us;
    let mut threads = 0;
    for (i, c) in children.iter().enumerate() {
        match &c.result {
            Some((o, s, _, end, t)) => {
                match snapshot.as_mut() {
                    Some(m) => m.merge(s)?,
                    None => snapshot = Some(s.clone()),
                }
                ended_at_us = ended_at_us.max(*end);
                threads += t;
                if o.status != RunStatus::Completed && outcome.status == RunStatus::Completed {
                    outcome = Outcome {
                        status: o.status,
                        message: format!("shard {i}/{workers}: {}", o.message),
                    };
                }
            }
            None => {
                let exit = c.exit.as_deref().unwrap_or("unknown status").to_owned();
                let shard = u32::try_from(i).unwrap_or(u32::MAX);
                let (lo, hi) = Shard {
                    index: shard,
                    count: workers,
                }
                .range(plan.total_devices());
                let left_out = if shard == 0 && observer::session_count(plan, addrs.len()) > 0 {
                    "its devices are left out, and the observers ran in it: the other shards' \
                     expected deliveries are counted as unobserved"
                } else {
                    "its devices are left out of the report and its deliveries of the accounting"
                };
                failed.push(format!(
                    "shard {i}/{workers} exited with {exit} before reporting ({} devices); {left_out}",
                    hi - lo
                ));
                missing.push(MissingShard {
                    shard,
                    of: workers,
                    devices: hi - lo,
                    exit,
                });
            }
        }
    }
    let mut snapshot = snapshot.unwrap_or_else(|| RunSnapshot::empty(&windows, names));
    snapshot.leave_out_missing(missing);
    if !failed.is_empty() {
        outcome = Outcome {
            status: RunStatus::WorkerFailed,
            message: failed.join("; "),
        };
    } else if interrupted && outcome.status == RunStatus::Completed {
        outcome = Outcome {
            status: RunStatus::Interrupted,
            message: "interrupted by signal; the report holds what was measured until then".into(),
        };
    }
    // The last, partial window: what the shards counted after the last second the parent read.
    let now_us = clock.now_us();
    let window_s = now_us.saturating_sub(last_close_us) as f64 / 1e6;
    if let Some(ui) = &opts.ui {
        // The shards' own final counts, per group (their last ticks may predate their end).
        let groups: Vec<_> = (0..snapshot.group_names.len())
            .map(|g| {
                let mut c = Counters::default();
                for p in &snapshot.phases {
                    if let Some(s) = p.groups.get(g) {
                        c.merge(&s.counters);
                    }
                }
                crate::metrics::group_slots_of(&c)
            })
            .collect();
        ui.set_groups(&groups);
    }
    seconds.finish(tick, 0, snapshot.counter_totals(), now_us, window_s);
    Ok(EngineOutput {
        snapshot,
        series: seconds.series,
        outcome,
        started_at_us: start_us,
        ended_at_us: ended_at_us.max(clock.now_us().min(ended_at_us.saturating_add(1))),
        broker_label,
        worker_threads: threads,
    })
}

fn forward_interrupt(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a PID we spawned and still own.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
    }
}

/// The tick hook a worker process uses: one JSON line per second on stdout.
pub fn stdout_tick_hook() -> super::TickHook {
    Arc::new(|t: &TickSample| {
        write_line(&PipeMessage::Tick(Box::new(t.clone())));
    })
}

/// Write one pipe message as a JSON line on stdout.
pub fn write_line(msg: &PipeMessage) {
    use std::io::Write;
    if let Ok(text) = serde_json::to_string(msg) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}
