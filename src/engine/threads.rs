//! The units of an in-process run: worker threads (each a tokio runtime with a slice of the shard's
//! devices) and, on shard 0, the observer thread. They share this process's memory, so the coordinator
//! reads their live counters directly and merges their snapshots when they return. After the devices
//! are done the observers get the drain to receive what is still on its way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::coordinator::{self, Ending, Live, Step, Units};
use super::failure::{self, Refusal};
use super::outcome::{Outcome, RunStatus};
use super::watchdog::Watchdog;
use super::{
    broker_target, observer, worker, EngineError, EngineOutput, IntervalSender, RunOptions,
};
use crate::metrics::{Clock, Counter, IntervalHistograms, LiveCounters, RunSnapshot, GROUP_SLOTS};
use crate::plan::Plan;
use crate::scenario::MqttVersion;

/// After the devices are done, how long observers of a run with Sparkplug groups listen with nothing
/// arriving before they stop (bounded by the drain).
const SPARKPLUG_QUIET_US: u64 = 300_000;

/// How often the drain looks whether the observers have everything.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// Worker threads and the observer thread of one shard, as the coordinator's units.
struct Threads {
    clock: Clock,
    /// Every worker's live counters, and the observers' last.
    lives: Vec<Arc<LiveCounters>>,
    groups: usize,
    threads: usize,
    cancel: CancellationToken,
    results: mpsc::UnboundedReceiver<Result<RunSnapshot, EngineError>>,
    intervals: mpsc::UnboundedReceiver<IntervalHistograms>,
    snapshots: Vec<RunSnapshot>,
    errors: Vec<EngineError>,
    observers: Option<Drain>,
}

/// The observers, once the devices are done: they listen until every expected delivery and command
/// reply is in (and Sparkplug has been quiet for a moment), the drain ends, or the run is stopped.
struct Drain {
    cancel: CancellationToken,
    done: oneshot::Receiver<Result<RunSnapshot, EngineError>>,
    drain_us: u64,
    until_us: Option<u64>,
    /// Whether the run has Sparkplug groups (whose messages carry no stamp to count against).
    sparkplug: bool,
    /// The Sparkplug messages received, and when that count last changed.
    sparkplug_seen: (u64, u64),
    /// Told to stop: only their snapshot is awaited now.
    stopping: bool,
}

impl Threads {
    fn devices_done(&self) -> bool {
        self.snapshots.len() + self.errors.len() >= self.threads
    }

    /// Whether the observers should stop now (devices done).
    fn observers_finished(&mut self, now_us: u64) -> bool {
        let (c, _) = read_live(&self.lives);
        let cancelled = self.cancel.is_cancelled();
        let Some(d) = self.observers.as_mut() else {
            return true;
        };
        if d.stopping {
            return true;
        }
        let until = *d.until_us.get_or_insert(now_us.saturating_add(d.drain_us));
        let spb = c.get(Counter::SparkplugBirths)
            + c.get(Counter::SparkplugDeaths)
            + c.get(Counter::SparkplugData);
        if spb != d.sparkplug_seen.0 {
            d.sparkplug_seen = (spb, now_us);
        }
        let quiet = !d.sparkplug || now_us >= d.sparkplug_seen.1 + SPARKPLUG_QUIET_US;
        let complete = c.get(Counter::Received) + c.get(Counter::Unobserved)
            >= c.get(Counter::ExpectedDeliveries)
            && c.get(Counter::CommandReplies) >= c.get(Counter::CommandsSent)
            && quiet;
        d.stopping = complete || now_us >= until || cancelled;
        d.stopping
    }
}

impl Units for Threads {
    /// Workers send a second's histograms right at its boundary.
    const TICK_LAG_US: u64 = 50_000;
    const INTERRUPT_NOTE: &'static str = "interrupted: finishing and writing the report…";

    async fn next(&mut self) -> Step {
        if !self.devices_done() {
            return tokio::select! {
                Some(h) = self.intervals.recv() => Step::Latency(h),
                r = self.results.recv() => {
                    match r {
                        Some(Ok(s)) => self.snapshots.push(s),
                        Some(Err(e)) => self.errors.push(e),
                        None => self.errors.push(EngineError::Internal("a worker thread vanished")),
                    }
                    Step::Busy
                }
            };
        }
        if self.observers.is_none() {
            return Step::Done;
        }
        if !self.observers_finished(self.clock.now_us()) {
            return tokio::select! {
                Some(h) = self.intervals.recv() => Step::Latency(h),
                _ = tokio::time::sleep(DRAIN_POLL) => Step::Busy,
            };
        }
        let Some(d) = self.observers.as_mut() else {
            return Step::Done;
        };
        d.cancel.cancel();
        let r = (&mut d.done).await;
        self.observers = None;
        match r {
            Ok(Ok(s)) => self.snapshots.push(s),
            Ok(Err(e)) => self.errors.push(e),
            Err(_) => self
                .errors
                .push(EngineError::Internal("observer thread vanished")),
        }
        Step::Done
    }

    fn live(&self, groups: bool) -> Live {
        let (counters, connected) = read_live(&self.lives);
        Live {
            counters,
            connected,
            groups: if groups {
                read_live_groups(&self.lives, self.groups)
            } else {
                Vec::new()
            },
        }
    }

    fn refusal(&self, version: MqttVersion) -> Option<Refusal> {
        failure::last_refusal(&self.lives, version)
    }

    fn stop(&mut self) {
        self.cancel.cancel();
    }

    fn finish(mut self, now_us: u64, stopped_at_us: Option<u64>) -> Result<Ending, EngineError> {
        if let Some(e) = std::mem::take(&mut self.errors).into_iter().next() {
            return Err(e);
        }
        // The workers sent their last histograms before they returned.
        let mut late = Vec::new();
        while let Ok(h) = self.intervals.try_recv() {
            late.push(h);
        }
        let last = self.live(true);
        let mut snapshots = self.snapshots.into_iter();
        let mut snapshot = snapshots
            .next()
            .ok_or(EngineError::Internal("no worker returned"))?;
        for s in snapshots {
            snapshot.merge(&s)?;
        }
        if let Some(t) = stopped_at_us {
            snapshot.clip_to(t);
        }
        Ok(Ending {
            snapshot,
            outcome: None,
            ended_at_us: now_us,
            worker_threads: self.threads,
            last,
            late,
        })
    }
}

/// Sum of every worker's live counters, and the devices connected now.
pub(crate) fn read_live(lives: &[Arc<LiveCounters>]) -> (crate::metrics::Counters, i64) {
    let mut total = crate::metrics::Counters::default();
    let mut connected = 0;
    for l in lives {
        total.merge(&l.read());
        connected += l.connected();
    }
    (total, connected)
}

/// The per-group live counters of all workers, for `groups` groups.
pub(crate) fn read_live_groups(
    lives: &[Arc<LiveCounters>],
    groups: usize,
) -> Vec<[u64; GROUP_SLOTS]> {
    let mut out = vec![[0; GROUP_SLOTS]; groups];
    for l in lives {
        l.read_groups(&mut out);
    }
    out
}

/// Start the observer thread (shard 0 only) and wait until every session has subscribed. Returns the
/// channel that hands it the timeline and its result receiver, or the outcome when observers failed.
struct Observers {
    timeline_tx: tokio::sync::oneshot::Sender<Arc<crate::plan::Timeline>>,
    done: tokio::sync::oneshot::Receiver<Result<RunSnapshot, EngineError>>,
    live: Arc<LiveCounters>,
}

async fn start_observers(
    plan: &Arc<Plan>,
    clock: Clock,
    brokers: &[SocketAddr],
    (cancel, commands_done): (CancellationToken, CancellationToken),
    intervals: IntervalSender,
) -> Result<Option<Result<Observers, Outcome>>, EngineError> {
    let sessions = observer::session_count(plan, brokers.len());
    if sessions == 0 || plan.shard.index != 0 {
        return Ok(None);
    }
    let live = Arc::new(LiveCounters::with_groups(plan.groups().len()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let (timeline_tx, timeline_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let spec = observer::ObserverSpec {
        plan: plan.clone(),
        clock,
        live: live.clone(),
        brokers: brokers.to_vec(),
        cancel: cancel.clone(),
        ready: ready_tx,
        timeline: timeline_rx,
        intervals,
        commands_done,
    };
    std::thread::Builder::new()
        .name("fleetstorm-observers".into())
        .spawn(move || {
            let _ = done_tx.send(observer::run(spec));
        })
        .map_err(EngineError::Spawn)?;
    let mut up = 0;
    while up < sessions {
        match ready_rx.recv().await {
            Some(Ok(_)) => up += 1,
            Some(Err(message)) => {
                cancel.cancel();
                return Ok(Some(Err(Outcome {
                    status: RunStatus::BrokerUnreachable,
                    message: format!("observers could not start: {message}"),
                })));
            }
            None => break,
        }
    }
    Ok(Some(Ok(Observers {
        timeline_tx,
        done,
        live,
    })))
}

/// The output of a run that could not start: every phase empty, the outcome saying why.
fn never_started(
    plan: &Plan,
    clock: Clock,
    outcome: Outcome,
    broker_label: String,
) -> EngineOutput {
    let timeline = plan.timeline(clock.now_us());
    let windows: Vec<(String, u64, u64)> = timeline
        .phases
        .iter()
        .map(|p| (p.name.clone(), p.start_us, p.end_us))
        .collect();
    let names = plan.groups().iter().map(|g| g.name.clone()).collect();
    EngineOutput {
        snapshot: RunSnapshot::empty(&windows, names),
        series: Vec::new(),
        outcome,
        started_at_us: timeline.start_us,
        ended_at_us: clock.now_us(),
        broker_label,
        worker_threads: 0,
    }
}

fn progress_note_late(start_us: u64, now_us: u64) {
    eprintln!(
        "warning: the shared start time passed {} ms before this shard was ready; its first slots are late",
        now_us.saturating_sub(start_us) / 1000
    );
}

/// Run this process's shard of the plan on worker threads (and the observers, on shard 0).
pub(crate) async fn run(plan: &Plan, opts: &RunOptions) -> Result<EngineOutput, EngineError> {
    let clock = Clock::new();
    let (addrs, broker_label) = match broker_target(plan).await {
        Ok(t) => t,
        // A broker name that does not resolve is an unreachable broker: report it like one.
        Err(EngineError::Resolve { url, reason }) => {
            let outcome = Outcome {
                status: RunStatus::BrokerUnreachable,
                message: format!("cannot resolve broker address `{url}`: {reason}"),
            };
            return Ok(never_started(plan, clock, outcome, url));
        }
        Err(e) => return Err(e),
    };
    let devices = plan.shard_devices();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if opts.threads == 0 {
        cores
    } else {
        opts.threads
    }
    .clamp(1, usize::try_from(devices.max(1)).unwrap_or(usize::MAX));
    let cancel = CancellationToken::new();
    let observer_cancel = cancel.child_token();
    // Cancelled by the commanders once every command has its reply; devices with commands listen
    // until then (or until the drain ends).
    let commands_done = CancellationToken::new();
    let plan_arc = Arc::new(plan.clone());

    let (interval_tx, interval_rx) = mpsc::unbounded_channel();
    // Observers subscribe before anything is published.
    let observers = match start_observers(
        &plan_arc,
        clock,
        &addrs,
        (observer_cancel.clone(), commands_done.clone()),
        interval_tx.clone(),
    )
    .await?
    {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(outcome)) => return Ok(never_started(plan, clock, outcome, broker_label)),
    };

    // A short lead so every worker is up before the first intended connect (or the shared start).
    let shared = match (opts.start_at_us, &opts.start_gate) {
        (Some(t), _) => Some(t),
        // a worker process: the parent picks the start once every worker is ready
        (None, Some(gate)) => {
            let gate = gate.clone();
            tokio::task::spawn_blocking(move || gate())
                .await
                .ok()
                .flatten()
        }
        (None, None) => None,
    };
    let start_us = match shared {
        Some(t) => {
            if clock.now_us() > t {
                progress_note_late(t, clock.now_us());
            }
            t
        }
        None => clock.now_us() + 100_000,
    };
    let timeline = Arc::new(plan.timeline(start_us));
    let max_connecting = plan.scenario.broker.max_connecting as usize;
    let drain_us = u64::try_from(opts.drain.as_micros()).unwrap_or(u64::MAX);

    let groups = plan.groups().len();
    let mut lives: Vec<Arc<LiveCounters>> = (0..threads)
        .map(|_| Arc::new(LiveCounters::with_groups(groups)))
        .collect();
    let (tx, results) = mpsc::unbounded_channel();
    for (index, live) in lives.iter().enumerate() {
        let spec = worker::WorkerSpec {
            index,
            count: threads,
            plan: plan_arc.clone(),
            timeline: timeline.clone(),
            clock,
            live: live.clone(),
            cancel: cancel.clone(),
            commands_done: commands_done.clone(),
            brokers: addrs.clone(),
            handshake_permits: max_connecting.div_ceil(threads),
            drain_us,
            intervals: interval_tx.clone(),
        };
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("fleetstorm-worker-{index}"))
            .spawn(move || {
                let r = worker::run(spec);
                let _ = tx.send(r);
            })
            .map_err(EngineError::Spawn)?;
    }
    drop(tx);
    drop(interval_tx);
    let observers = observers.map(|o| {
        let _ = o.timeline_tx.send(timeline.clone());
        lives.push(o.live);
        Drain {
            cancel: observer_cancel,
            done: o.done,
            drain_us,
            until_us: None,
            // Sparkplug messages carry no audit stamp to count against: observers listen until none
            // has arrived for a moment (the NDEATHs of the clean end, wills the broker still delivers).
            sparkplug: plan
                .scenario
                .groups
                .iter()
                .any(|g| matches!(g.payload, crate::scenario::PayloadKind::Sparkplug { .. })),
            sparkplug_seen: (u64::MAX, 0),
            stopping: false,
        }
    });
    let connect_timeout_us =
        u64::try_from(plan.scenario.broker.connect_timeout.as_micros()).unwrap_or(u64::MAX);
    let units = Threads {
        clock,
        lives,
        groups,
        threads,
        cancel,
        results,
        intervals: interval_rx,
        snapshots: Vec::with_capacity(threads + 1),
        errors: Vec::new(),
        observers,
    };
    coordinator::drive(
        units,
        coordinator::Run {
            plan,
            opts,
            clock,
            timeline: &timeline,
            devices,
            // In one process the coordinator sees every device: it applies the abort rules itself.
            watchdog: Some(Watchdog::new(
                &timeline,
                devices,
                connect_timeout_us,
                plan.scenario.broker.protocol,
            )),
            broker_label,
        },
    )
    .await
}
