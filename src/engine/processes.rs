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

use super::coordinator::{self, Ending, Live, Step, Units};
use super::failure::Refusal;
use super::outcome::{Outcome, RunStatus};
use super::{broker_target, observer, EngineError, EngineOutput, RunOptions, TickSample};
use crate::metrics::{Clock, Counters, IntervalHistograms, MissingShard, RunSnapshot};
use crate::plan::{Plan, Shard};
use crate::scenario::MqttVersion;

/// One line a worker process writes on its stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipeMessage {
    /// Set up and waiting for the start time on stdin (observers subscribed).
    Ready,
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

/// Between the last worker saying it is ready and the first slot: time for the start line to reach
/// every worker and for each to start its worker threads.
const START_LEAD_US: u64 = 100_000;
/// The longest the parent waits for its workers to be ready before it starts without the late ones
/// (they start as soon as they can; their first slots count as late).
const READY_WAIT_US: u64 = 60_000_000;

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
    rt.block_on(drive_children(plan, opts, workers.max(1), cmd))
}

/// The worker processes of a run, as the coordinator's units.
///
/// The parent does not apply the abort rules ([`super::watchdog::Watchdog`]): each child runs its
/// shard under its own coordinator, which applies them with what only it sees (every connect and
/// CONNACK refusal of its devices, at its own ticks) and ends with that outcome; the parent's
/// counters are the children's samples of up to a second ago, so a second watchdog here could only
/// abort later, or twice (a SIGINT on top of a child's own abort would turn its verdict into
/// "interrupted"). The parent reports the first shard's failure instead ([`Ending::outcome`]).
struct Processes {
    children: Vec<Child>,
    /// What arrived while waiting for the workers to be ready, handled first.
    backlog: std::collections::VecDeque<Event>,
    events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    workers: u32,
    groups: usize,
    /// The plan's phase windows and group names, for an empty report when no shard reported.
    windows: Vec<(String, u64, u64)>,
    names: Vec<String>,
    total_devices: u64,
    /// Whether the observers run in shard 0 (its loss leaves the others' deliveries unobserved).
    observers_in_shard_0: bool,
    start_us: u64,
}

impl Units for Processes {
    /// After the children's samples of that second (they send theirs 50 ms past the boundary).
    const TICK_LAG_US: u64 = 200_000;
    const INTERRUPT_NOTE: &'static str =
        "interrupted: stopping the workers and writing the report…";

    async fn next(&mut self) -> Step {
        if self.children.iter().all(|c| c.exit.is_some()) {
            return Step::Done;
        }
        let event = match self.backlog.pop_front() {
            Some(e) => Some(e),
            None => self.events.recv().await,
        };
        match event {
            Some(Event::Line(i, line)) => match serde_json::from_str::<PipeMessage>(&line) {
                Ok(PipeMessage::Ready) => Step::Busy,
                Ok(PipeMessage::Tick(t)) => {
                    let h = IntervalHistograms::decode(&t.interval);
                    if let Some(c) = self.children.get_mut(i) {
                        c.latest = Some(*t);
                    }
                    Step::Latency(h)
                }
                Ok(PipeMessage::Final {
                    outcome,
                    snapshot,
                    started_at_us,
                    ended_at_us,
                    worker_threads,
                }) => {
                    if let Some(c) = self.children.get_mut(i) {
                        c.result = Some((
                            outcome,
                            snapshot,
                            started_at_us,
                            ended_at_us,
                            worker_threads,
                        ));
                    }
                    Step::Busy
                }
                Err(_) => Step::Note(format!("worker {i}: {line}")),
            },
            Some(Event::Exited(i, status)) => {
                if let Some(c) = self.children.get_mut(i) {
                    c.exit = Some(status);
                }
                Step::Busy
            }
            None => Step::Done,
        }
    }

    fn live(&self, groups: bool) -> Live {
        let mut live = Live::default();
        for t in self.children.iter().filter_map(|c| c.latest.as_ref()) {
            live.counters.merge(&t.counters);
            live.connected += t.connected;
        }
        if groups {
            live.groups = sum_groups(&self.children, self.groups);
        }
        live
    }

    fn refusal(&self, _version: MqttVersion) -> Option<Refusal> {
        None
    }

    fn stop(&mut self) {
        for c in &self.children {
            if let (Some(pid), None) = (c.pid, &c.exit) {
                forward_interrupt(pid);
            }
        }
    }

    /// Merge what the shards reported; name the ones that did not. The children clip their own
    /// phases when stopped, so `stopped_at_us` is not needed here.
    fn finish(self, now_us: u64, _stopped_at_us: Option<u64>) -> Result<Ending, EngineError> {
        let workers = self.workers;
        // Phase windows come from the shards (a stopped shard ended its phases early); the plan's
        // windows only when no shard reported.
        let mut snapshot: Option<RunSnapshot> = None;
        let mut outcome = None;
        let mut failed = Vec::new();
        let mut missing = Vec::new();
        let mut ended_at_us = self.start_us;
        let mut threads = 0;
        for (i, c) in self.children.iter().enumerate() {
            match &c.result {
                Some((o, s, _, end, t)) => {
                    match snapshot.as_mut() {
                        Some(m) => m.merge(s)?,
                        None => snapshot = Some(s.clone()),
                    }
                    ended_at_us = ended_at_us.max(*end);
                    threads += t;
                    if o.status != RunStatus::Completed && outcome.is_none() {
                        outcome = Some(Outcome {
                            status: o.status,
                            message: format!("shard {i}/{workers}: {}", o.message),
                        });
                    }
                }
                None => {
                    let exit = c.exit.as_deref().unwrap_or("unknown status").to_owned();
                    let shard = u32::try_from(i).unwrap_or(u32::MAX);
                    let (lo, hi) = Shard {
                        index: shard,
                        count: workers,
                    }
                    .range(self.total_devices);
                    let left_out = if shard == 0 && self.observers_in_shard_0 {
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
        let mut snapshot =
            snapshot.unwrap_or_else(|| RunSnapshot::empty(&self.windows, self.names.clone()));
        snapshot.leave_out_missing(missing);
        if !failed.is_empty() {
            outcome = Some(Outcome {
                status: RunStatus::WorkerFailed,
                message: failed.join("; "),
            });
        }
        // The last, partial window: the shards' own final counts (their last ticks may predate
        // their end), per group too.
        let groups = (0..snapshot.group_names.len())
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
        let last = Live {
            counters: snapshot.counter_totals(),
            connected: 0,
            groups,
        };
        Ok(Ending {
            snapshot,
            outcome,
            ended_at_us: ended_at_us.max(now_us.min(ended_at_us.saturating_add(1))),
            worker_threads: threads,
            last,
            late: Vec::new(),
        })
    }
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

/// Start the children (one shard each, from a shared start time) and drive them to the end.
async fn drive_children(
    plan: &Plan,
    opts: &RunOptions,
    workers: u32,
    cmd: &WorkerCommand,
) -> Result<EngineOutput, EngineError> {
    let (addrs, broker_label) = broker_target(plan).await?;
    // Children get the embedded broker's address; named brokers come from the scenario itself.
    let broker = &plan.scenario.broker;
    let embedded_url = match (&broker.url, addrs.first()) {
        (None, Some(addr)) => Some(format!("mqtt://{addr}")),
        (Some(url), _) if broker.embedded_tls => Some(url.to_string()),
        _ => None,
    };
    // Zero-setup TLS: the children read the CA files the parent wrote.
    let embedded_tls_dir = broker
        .embedded_tls
        .then(|| broker.tls.as_ref().and_then(|t| t.ca.as_ref()))
        .flatten()
        .and_then(|ca| ca.parent());
    let clock = Clock::new();
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut children: Vec<Child> = Vec::with_capacity(workers as usize);
    // Without a start time given, each worker says when it is ready and the parent starts them all
    // together right after the last one: no fixed lead to guess.
    let mut gates = Vec::new();
    for i in 0..workers {
        let mut command = tokio::process::Command::new(&cmd.exe);
        command
            .args(&cmd.args)
            .arg("--shard")
            .arg(format!("{i}/{workers}"))
            .arg("--worker-pipe")
            .arg("--no-progress")
            .stdin(if opts.start_at_us.is_some() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(false);
        if let Some(url) = &embedded_url {
            command.arg("--broker").arg(url);
        }
        if let Some(dir) = embedded_tls_dir {
            command.env(super::embedded_tls::DIR_ENV, dir);
        }
        if opts.threads > 0 {
            command.arg("--threads").arg(opts.threads.to_string());
        }
        if let Some(t) = opts.start_at_us {
            command.arg("--start-at-us").arg(t.to_string());
        }
        let mut child = command.spawn().map_err(EngineError::Spawn)?;
        gates.extend(child.stdin.take());
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
    let (start_us, backlog) = match opts.start_at_us {
        Some(t) => (t, std::collections::VecDeque::new()),
        None => start_when_ready(&clock, &mut events, gates, children.len()).await,
    };
    let timeline = plan.timeline(start_us);

    let units = Processes {
        children,
        backlog,
        events,
        workers,
        groups: plan.groups().len(),
        windows: timeline
            .phases
            .iter()
            .map(|p| (p.name.clone(), p.start_us, p.end_us))
            .collect(),
        names: plan.groups().iter().map(|g| g.name.clone()).collect(),
        total_devices: plan.total_devices(),
        observers_in_shard_0: observer::session_count(plan, addrs.len()) > 0,
        start_us,
    };
    coordinator::drive(
        units,
        coordinator::Run {
            plan,
            opts,
            clock,
            timeline: &timeline,
            devices: plan.total_devices(),
            watchdog: None,
            broker_label,
        },
    )
    .await
}

/// Wait until every worker said it is ready (or exited, or [`READY_WAIT_US`] passed), then send them
/// all the same start time. Returns it, and the other events that arrived meanwhile.
async fn start_when_ready(
    clock: &Clock,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    gates: Vec<tokio::process::ChildStdin>,
    workers: usize,
) -> (u64, std::collections::VecDeque<Event>) {
    use tokio::io::AsyncWriteExt;
    let mut backlog = std::collections::VecDeque::new();
    let mut waiting = vec![true; workers];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_micros(READY_WAIT_US);
    while waiting.iter().any(|w| *w) {
        let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await else {
            break;
        };
        match &event {
            Event::Line(i, line)
                if matches!(
                    serde_json::from_str::<PipeMessage>(line),
                    Ok(PipeMessage::Ready)
                ) =>
            {
                if let Some(w) = waiting.get_mut(*i) {
                    *w = false;
                }
                continue;
            }
            Event::Exited(i, _) => {
                if let Some(w) = waiting.get_mut(*i) {
                    *w = false;
                }
            }
            Event::Line(..) => {}
        }
        backlog.push_back(event);
    }
    let start_us = clock.now_us() + START_LEAD_US;
    let line = format!("{start_us}\n");
    for mut gate in gates {
        // a worker that exited cannot read it; the parent learns of it from its exit
        let _ = gate.write_all(line.as_bytes()).await;
        let _ = gate.flush().await;
    }
    (start_us, backlog)
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

/// The start gate a worker process uses: say `Ready` on stdout, read the start time from stdin.
pub fn stdin_start_gate() -> super::StartGate {
    Arc::new(|| {
        write_line(&PipeMessage::Ready);
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).ok()?;
        line.trim().parse().ok()
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
