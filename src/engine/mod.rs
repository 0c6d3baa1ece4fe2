//! All spawning and cancellation: worker threads with their device tasks, the 1 Hz ticker that feeds
//! progress and the time series, the abort rules (broker unreachable / lost), and Ctrl-C.

mod command;
mod commander;
mod context;
mod device;
mod failure;
pub mod limits;
mod observer;
mod primary_host;
pub mod processes;
pub mod prometheus;
mod sparkplug;
mod ticker;
pub mod ui;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::{self, BrokerError, EmbeddedLimits};
use crate::metrics::histogram::HistogramError;
use crate::metrics::{
    Clock, Counter, Counters, IntervalHistograms, LiveCounters, RunSnapshot, SeriesPoint,
    SnapshotError,
};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::report::{Outcome, RunStatus};
use crate::scenario::{BrokerUrl, MqttVersion};

/// After the devices are done, how long observers of a run with Sparkplug groups listen with nothing
/// arriving before they stop (bounded by the drain).
const SPARKPLUG_QUIET_US: u64 = 300_000;

/// One second of a running shard, as a worker process streams it to its parent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TickSample {
    pub tick: u32,
    pub connected: i64,
    pub counters: Counters,
    /// This second's corrected latency histograms (base64 V2+DEFLATE), for the parent's live view.
    #[serde(default)]
    pub interval: Vec<(crate::metrics::Metric, String)>,
    /// Cumulative per-group counters (`[group][slot]`, see [`crate::metrics::GROUP_SLOTS`]) for the
    /// parent's `--ui` group tiles; empty when nobody asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<[u64; crate::metrics::GROUP_SLOTS]>,
}

/// Called once a second with the shard's cumulative counters.
pub type TickHook = Arc<dyn Fn(&TickSample) + Send + Sync>;

/// How to run (things that are not part of the scenario).
#[derive(Clone)]
pub struct RunOptions {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Show live progress on stderr (only when it is a terminal).
    pub progress: bool,
    /// How long devices wait for outstanding acks after the last phase.
    pub drain: Duration,
    /// The run's start (µs since the Unix epoch) when shards must share it; default: now + 100 ms.
    pub start_at_us: Option<u64>,
    /// Receives the 1 Hz samples (worker processes stream them to their parent).
    pub tick_hook: Option<TickHook>,
    /// Serve live OpenMetrics text here during the run.
    pub prometheus: Option<SocketAddr>,
    /// Feed the `--ui` live view (already serving) once a second.
    pub ui: Option<ui::Ui>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("threads", &self.threads)
            .field("progress", &self.progress)
            .field("drain", &self.drain)
            .field("start_at_us", &self.start_at_us)
            .field("tick_hook", &self.tick_hook.is_some())
            .field("prometheus", &self.prometheus)
            .field("ui", &self.ui)
            .finish()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            threads: 0,
            progress: false,
            drain: Duration::from_secs(5),
            start_at_us: None,
            tick_hook: None,
            prometheus: None,
            ui: None,
        }
    }
}

/// What the engine hands back.
#[derive(Debug)]
pub struct EngineOutput {
    pub snapshot: RunSnapshot,
    pub series: Vec<SeriesPoint>,
    pub outcome: Outcome,
    pub started_at_us: u64,
    pub ended_at_us: u64,
    /// The broker as users should read it.
    pub broker_label: String,
    pub worker_threads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not build the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("cannot resolve broker address `{url}`: {reason}")]
    Resolve { url: String, reason: String },
    #[error(transparent)]
    Histogram(#[from] HistogramError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("internal error: {0}")]
    Internal(&'static str),
    #[error("could not start worker thread: {0}")]
    Spawn(std::io::Error),
    #[error("cannot serve live metrics on {0}: {1} (pick another --prometheus address)")]
    Prometheus(SocketAddr, std::io::Error),
}

/// Run a plan to its end (or until interrupted / the broker is gone) and return what was measured.
pub fn run(plan: &Plan, opts: &RunOptions) -> Result<EngineOutput, EngineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EngineError::Runtime)?;
    rt.block_on(coordinate(plan, opts))
}

async fn resolve(url: &BrokerUrl) -> Result<SocketAddr, EngineError> {
    let mut addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| EngineError::Resolve {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    addrs.next().ok_or_else(|| EngineError::Resolve {
        url: url.to_string(),
        reason: "no address found".into(),
    })
}

/// Where to connect (every broker target, in scenario order), and how to name it in reports.
pub(crate) async fn broker_target(plan: &Plan) -> Result<(Vec<SocketAddr>, String), EngineError> {
    let targets = plan.scenario.broker.targets();
    if targets.is_empty() {
        let b = broker::start_embedded(EmbeddedLimits::default())?;
        let addr = match plan.scenario.broker.protocol {
            MqttVersion::V311 => b.v4,
            MqttVersion::V5 => b.v5,
        };
        return Ok((vec![addr], format!("embedded rumqttd (mqtt://{addr})")));
    }
    let mut addrs = Vec::with_capacity(targets.len());
    for u in &targets {
        addrs.push(resolve(u).await?);
    }
    let label = targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Ok((addrs, label))
}

/// Where a worker thread sends its one-second latency histograms.
pub(crate) type IntervalSender = tokio::sync::mpsc::UnboundedSender<IntervalHistograms>;

/// On a worker thread: every second (on the run's second boundaries) hand the recorder's interval
/// histograms to the coordinator, until `done`; then once more with what is left.
pub(crate) async fn send_intervals(
    take: impl Fn() -> Option<IntervalHistograms>,
    clock: Clock,
    start_us: u64,
    tx: IntervalSender,
    done: CancellationToken,
) {
    let mut k: u64 = 1;
    loop {
        let at = Instant::from_std(clock.instant_at(start_us + k * 1_000_000));
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tokio::time::sleep_until(at) => {}
        }
        if let Some(h) = take() {
            let _ = tx.send(h);
        }
        k += 1;
    }
    if let Some(h) = take() {
        let _ = tx.send(h);
    }
}

/// Sum of every worker's live counters.
/// The per-group live counters of all workers, for `groups` groups.
pub(crate) fn read_live_groups(
    lives: &[Arc<LiveCounters>],
    groups: usize,
) -> Vec<[u64; crate::metrics::GROUP_SLOTS]> {
    let mut out = vec![[0; crate::metrics::GROUP_SLOTS]; groups];
    for l in lives {
        l.read_groups(&mut out);
    }
    out
}

pub(crate) fn read_live(lives: &[Arc<LiveCounters>]) -> (Counters, i64) {
    let mut total = Counters::default();
    let mut connected = 0;
    for l in lives {
        total.merge(&l.read());
        connected += l.connected();
    }
    (total, connected)
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Why the watchdog failed the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    /// No device could connect.
    Unreachable,
    /// Every connection was down for the loss budget.
    Lost,
    /// Devices connected, but every connection was dropped before a device was ever seen connected
    /// at a one-second check (a broker that drops each connection right after CONNACK, or answers
    /// with garbage).
    NotHeld,
    /// Devices could not start at all.
    DevicesFailed,
}

/// Abort rules, checked once a second (and [`Watchdog::final_check`] once at the end).
struct Watchdog {
    unreachable_after_us: u64,
    loss_budget_us: u64,
    fail_fast_failures: u64,
    had_connection: bool,
    zero_since_us: Option<u64>,
    /// The run's MQTT version, and the last CONNACK refusal (set before each check): for the message.
    version: MqttVersion,
    refusal: Option<failure::Refusal>,
    /// Whether any device was connected at any check.
    seen_connected: bool,
}

impl Watchdog {
    fn check(&mut self, now_us: u64, end_us: u64, c: &Counters, connected: i64) -> Option<Abort> {
        if c.get(Counter::DevicesFailedToStart) > 0 {
            return Some(Abort::DevicesFailed);
        }
        let ok = c.get(Counter::ConnectSuccesses);
        let failed = c.connect_failures();
        if ok == 0
            && failed > 0
            && (failed >= self.fail_fast_failures || now_us >= self.unreachable_after_us)
        {
            return Some(Abort::Unreachable);
        }
        // A connection that came and went between two ticks still counts as having had one.
        if ok > 0 {
            self.had_connection = true;
        }
        if connected > 0 {
            self.seen_connected = true;
            self.zero_since_us = None;
        } else if self.had_connection && now_us < end_us {
            let since = *self.zero_since_us.get_or_insert(now_us);
            if now_us.saturating_sub(since) >= self.loss_budget_us {
                return Some(Abort::Lost);
            }
        }
        None
    }

    /// Once, after a run that went its course: devices that could not start, or connections that
    /// were never held (every one dropped, none ever seen up), fail it even when the run was too
    /// short for the once-a-second rules.
    fn final_check(&self, c: &Counters) -> Option<Abort> {
        if c.get(Counter::DevicesFailedToStart) > 0 {
            return Some(Abort::DevicesFailed);
        }
        let ok = c.get(Counter::ConnectSuccesses);
        if ok > 0 && !self.seen_connected && c.disconnects() >= ok {
            return Some(Abort::NotHeld);
        }
        None
    }

    /// The outcome of `abort`, explained with counters `c` (the final ones, so the message and the
    /// report agree).
    fn outcome(&self, abort: Abort, c: &Counters) -> Outcome {
        let ok = c.get(Counter::ConnectSuccesses);
        match abort {
            Abort::Unreachable => Outcome {
                status: RunStatus::BrokerUnreachable,
                message: failure::unreachable(c, self.refusal, self.version),
            },
            Abort::Lost => Outcome {
                status: RunStatus::BrokerLost,
                message: failure::lost(
                    c,
                    self.refusal,
                    self.version,
                    self.loss_budget_us / 1_000_000,
                ),
            },
            Abort::NotHeld => Outcome {
                status: RunStatus::BrokerLost,
                message: format!(
                    "devices could not hold a connection: {ok} connections came up and {} were lost ({}) before any device was seen connected at a one-second check (published: {})",
                    c.disconnects(),
                    failure::disconnect_breakdown(c),
                    c.get(Counter::Published),
                ),
            },
            Abort::DevicesFailed => Outcome {
                status: RunStatus::DevicesFailed,
                message: format!(
                    "{} devices could not start: their topic or CONNECT packet cannot be encoded (an MQTT string is at most 65,535 bytes: check the topic and client_id templates, username and password; `fleetstorm validate` names the key)",
                    c.get(Counter::DevicesFailedToStart),
                ),
            },
        }
    }
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

async fn coordinate(plan: &Plan, opts: &RunOptions) -> Result<EngineOutput, EngineError> {
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

    let (interval_tx, mut interval_rx) = tokio::sync::mpsc::unbounded_channel();
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
    let start_us = match opts.start_at_us {
        Some(t) => {
            if clock.now_us() > t {
                progress_note_late(t, clock.now_us());
            }
            t
        }
        None => clock.now_us() + 100_000,
    };
    let timeline = Arc::new(plan.timeline(start_us));
    let end_us = timeline.end_us();
    let max_connecting = plan.scenario.broker.max_connecting as usize;
    let drain_us = u64::try_from(opts.drain.as_micros()).unwrap_or(u64::MAX);

    let mut lives: Vec<Arc<LiveCounters>> = (0..threads)
        .map(|_| Arc::new(LiveCounters::with_groups(plan.groups().len())))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
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
    let mut seconds = ticker::Seconds::default().with_ui(opts.ui.as_ref(), plan, &timeline);
    let live_view = match opts.prometheus {
        Some(at) => Some(prometheus::serve(at, plan.scenario.name.clone()).await?),
        None => None,
    };
    let mut observer_done = None;
    if let Some(o) = observers {
        let _ = o.timeline_tx.send(timeline.clone());
        lives.push(o.live);
        observer_done = Some(o.done);
    }

    let connect_timeout_us =
        u64::try_from(plan.scenario.broker.connect_timeout.as_micros()).unwrap_or(u64::MAX);
    let ramp_end_us = timeline.phases.first().map_or(start_us, |p| p.end_us);
    let mut watchdog = Watchdog {
        unreachable_after_us: ramp_end_us.max(start_us + connect_timeout_us) + connect_timeout_us,
        loss_budget_us: (2 * connect_timeout_us).max(10_000_000),
        fail_fast_failures: devices.clamp(1, 50),
        had_connection: false,
        zero_since_us: None,
        version: plan.scenario.broker.protocol,
        refusal: None,
        seen_connected: false,
    };
    // When the run was stopped early (signal or watchdog): its phases end there.
    let mut stopped_at_us: Option<u64> = None;
    let mut abort: Option<Abort> = None;
    // When the last second was closed (its counters read): the last, partial window starts there.
    let mut last_close_us = start_us;
    let progress = Progress::new(opts.progress, devices, &timeline);
    let mut outcome = Outcome {
        status: RunStatus::Completed,
        message: String::new(),
    };
    let mut snapshots = Vec::with_capacity(threads + 1);
    let mut errors = Vec::new();
    let mut tick: u32 = 1;
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut signalled = false;
    // Once the devices are done: observers wait for the deliveries still on their way, up to the drain.
    let mut observers_until: Option<u64> = None;
    // Sparkplug messages carry no audit stamp to count against: observers listen until none has
    // arrived for a moment (the NDEATHs of the clean end, wills the broker still delivers).
    let sparkplug = plan
        .scenario
        .groups
        .iter()
        .any(|g| matches!(g.payload, crate::scenario::PayloadKind::Sparkplug { .. }));
    let mut sparkplug_seen = (u64::MAX, 0u64);
    loop {
        let devices_done = snapshots.len() + errors.len() >= threads;
        if devices_done {
            let Some(done) = observer_done.as_mut() else {
                break;
            };
            let (c, _) = read_live(&lives);
            let until = *observers_until.get_or_insert(clock.now_us() + drain_us);
            let now = clock.now_us();
            let spb = c.get(Counter::SparkplugBirths)
                + c.get(Counter::SparkplugDeaths)
                + c.get(Counter::SparkplugData);
            if spb != sparkplug_seen.0 {
                sparkplug_seen = (spb, now);
            }
            let quiet = !sparkplug || now >= sparkplug_seen.1 + SPARKPLUG_QUIET_US;
            let complete = c.get(Counter::Received) + c.get(Counter::Unobserved)
                >= c.get(Counter::ExpectedDeliveries)
                && c.get(Counter::CommandReplies) >= c.get(Counter::CommandsSent)
                && quiet;
            if complete || clock.now_us() >= until || cancel.is_cancelled() {
                observer_cancel.cancel();
                match done.await {
                    Ok(Ok(s)) => snapshots.push(s),
                    Ok(Err(e)) => errors.push(e),
                    Err(_) => errors.push(EngineError::Internal("observer thread vanished")),
                }
                break;
            }
        }
        // Sample just after each second boundary, once the workers have sent that second's histograms.
        let tick_us = start_us + u64::from(tick) * 1_000_000 + 50_000;
        let tick_at = Instant::from_std(clock.instant_at(if devices_done {
            tick_us.min(clock.now_us() + 50_000)
        } else {
            tick_us
        }));
        tokio::select! {
            Some(h) = interval_rx.recv() => seconds.add_latency(&h, live_view.as_ref()),
            r = rx.recv(), if !devices_done => match r {
                Some(Ok(s)) => snapshots.push(s),
                Some(Err(e)) => errors.push(e),
                None => errors.push(EngineError::Internal("a worker thread vanished")),
            },
            _ = &mut signal, if !signalled => {
                signalled = true;
                outcome = Outcome {
                    status: RunStatus::Interrupted,
                    message: "interrupted by signal; the report holds what was measured until then".into(),
                };
                progress.note("interrupted: finishing and writing the report…");
                stopped_at_us.get_or_insert(clock.now_us());
                cancel.cancel();
            }
            _ = tokio::time::sleep_until(tick_at) => {
                if clock.now_us() >= tick_us {
                    let (now_counters, connected) = read_live(&lives);
                    let groups = if opts.ui.is_some() || opts.tick_hook.is_some() {
                        read_live_groups(&lives, plan.groups().len())
                    } else {
                        Vec::new()
                    };
                    if let Some(ui) = &opts.ui {
                        ui.set_groups(&groups);
                    }
                    if let Some(hook) = &opts.tick_hook {
                        hook(&TickSample {
                            tick,
                            connected,
                            counters: now_counters.clone(),
                            interval: seconds.pending_encoded(),
                            groups,
                        });
                    }
                    last_close_us = clock.now_us();
                    seconds.close(tick, connected, now_counters, last_close_us, live_view.as_ref(), &progress);
                    tick = tick.saturating_add(1);
                    if !cancel.is_cancelled() {
                        watchdog.refusal = failure::last_refusal(&lives, watchdog.version);
                        if let Some(a) = watchdog.check(clock.now_us(), end_us, seconds.last(), connected) {
                            let o = watchdog.outcome(a, seconds.last());
                            progress.note(&o.message);
                            outcome = o;
                            abort = Some(a);
                            stopped_at_us.get_or_insert(clock.now_us());
                            cancel.cancel();
                        }
                    }
                }
            }
        }
    }
    progress.finish();
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    // The last, partial second: the workers sent their last histograms before they returned.
    let ended_at_us = clock.now_us();
    while let Ok(h) = interval_rx.try_recv() {
        seconds.add_latency(&h, live_view.as_ref());
    }
    let (final_counters, connected) = read_live(&lives);
    if let Some(ui) = &opts.ui {
        ui.set_groups(&read_live_groups(&lives, plan.groups().len()));
    }
    let window_s = ended_at_us.saturating_sub(last_close_us) as f64 / 1e6;
    seconds.finish(tick, connected, final_counters, ended_at_us, window_s);

    let mut snapshots = snapshots.into_iter();
    let mut snapshot = snapshots
        .next()
        .ok_or(EngineError::Internal("no worker returned"))?;
    for s in snapshots {
        snapshot.merge(&s)?;
    }
    if let Some(t) = stopped_at_us {
        snapshot.clip_to(t);
    }
    // The failure message is built from the final counters, so it agrees with the report.
    let totals = snapshot.counter_totals();
    if let Some(a) = abort {
        outcome = watchdog.outcome(a, &totals);
    } else if outcome.status == RunStatus::Completed {
        if let Some(a) = watchdog.final_check(&totals) {
            outcome = watchdog.outcome(a, &totals);
        }
    }
    Ok(EngineOutput {
        snapshot,
        series: seconds.series,
        outcome,
        started_at_us: start_us,
        ended_at_us,
        broker_label,
        worker_threads: threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watchdog() -> Watchdog {
        Watchdog {
            unreachable_after_us: 5_000_000,
            loss_budget_us: 10_000_000,
            fail_fast_failures: 10,
            had_connection: false,
            zero_since_us: None,
            version: MqttVersion::V311,
            refusal: None,
            seen_connected: false,
        }
    }

    fn counters(pairs: &[(Counter, u64)]) -> Counters {
        let mut c = Counters::default();
        for (k, n) in pairs {
            c.add(*k, *n);
        }
        c
    }

    #[test]
    fn abort_rules_once_a_second() {
        use Counter::*;
        let end = 60_000_000;
        // (counters, connected, now) -> verdict, each from a fresh watchdog
        type Case = (Vec<(Counter, u64)>, i64, u64, Option<Abort>);
        let cases: Vec<Case> = vec![
            (
                vec![(ConnectAttempts, 10), (ConnectFailRefused, 10)],
                0,
                1_000_000,
                Some(Abort::Unreachable),
            ),
            (
                vec![(ConnectAttempts, 9), (ConnectFailTimeout, 3)],
                0,
                1_000_000,
                None,
            ),
            (
                vec![(ConnectAttempts, 9), (ConnectFailTimeout, 3)],
                0,
                5_000_000,
                Some(Abort::Unreachable),
            ),
            (
                vec![(ConnectAttempts, 10), (ConnectSuccesses, 10)],
                10,
                2_000_000,
                None,
            ),
            (
                vec![(DevicesFailedToStart, 1), (ConnectSuccesses, 10)],
                10,
                2_000_000,
                Some(Abort::DevicesFailed),
            ),
        ];
        for (pairs, connected, now, want) in cases {
            let got = watchdog().check(now, end, &counters(&pairs), connected);
            assert_eq!(got, want, "{pairs:?} connected {connected} at {now}");
        }
        // Lost: every connection down for the loss budget, counted from the first check that saw none.
        let mut w = watchdog();
        let up = counters(&[(Counter::ConnectSuccesses, 10)]);
        assert_eq!(w.check(1_000_000, end, &up, 10), None);
        assert_eq!(w.check(2_000_000, end, &up, 0), None);
        assert_eq!(w.check(11_000_000, end, &up, 0), None);
        assert_eq!(w.check(12_000_000, end, &up, 0), Some(Abort::Lost));
        // ... but not once the phases are over (devices leave on purpose then).
        let mut w = watchdog();
        assert_eq!(w.check(end, end, &up, 0), None);
        assert_eq!(w.check(end + 20_000_000, end, &up, 0), None);
    }

    #[test]
    fn connections_never_held_fail_the_run_at_its_end() {
        use Counter::*;
        let dropped = counters(&[
            (ConnectSuccesses, 49),
            (DisconnectClosed, 40),
            (DisconnectProtocol, 9),
        ]);
        assert_eq!(watchdog().final_check(&dropped), Some(Abort::NotHeld));
        // Seen connected at a check: a broker that dropped everyone late is the lost rule's business.
        let mut w = watchdog();
        let _ = w.check(1_000_000, 60_000_000, &dropped, 3);
        assert_eq!(w.final_check(&dropped), None);
        // Some connection was never lost (still up at the end).
        let held = counters(&[(ConnectSuccesses, 49), (DisconnectClosed, 48)]);
        assert_eq!(watchdog().final_check(&held), None);
        assert_eq!(watchdog().final_check(&Counters::default()), None);
        assert_eq!(
            watchdog().final_check(&counters(&[(DevicesFailedToStart, 2)])),
            Some(Abort::DevicesFailed)
        );
        let o = watchdog().outcome(Abort::NotHeld, &dropped);
        assert_eq!(o.status, RunStatus::BrokerLost);
        assert!(
            o.message
                .contains("49 connections came up and 49 were lost"),
            "{}",
            o.message
        );
        assert!(
            o.message
                .contains("40 closed by the broker, 9 protocol errors"),
            "{}",
            o.message
        );
    }

    #[test]
    fn the_unreachable_message_adds_up_like_the_counters() {
        use Counter::*;
        let c = counters(&[
            (ConnectAttempts, 16),
            (ConnectFailTimeout, 8),
            (ConnectFailRefused, 2),
            (ConnectAbandoned, 6),
        ]);
        let o = watchdog().outcome(Abort::Unreachable, &c);
        assert_eq!(o.status, RunStatus::BrokerUnreachable);
        for part in [
            "16 attempts in all",
            "10 attempts failed",
            "2 refused (TCP)",
            "8 timed out",
            "6 still waiting",
        ] {
            assert!(o.message.contains(part), "`{part}` in {}", o.message);
        }
    }
}
