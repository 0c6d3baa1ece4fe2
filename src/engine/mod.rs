//! The engine: a run's shard on worker threads ([`threads`]) or over worker processes
//! ([`processes`]), both driven by one [`coordinator`] (the 1 Hz tick that feeds progress, the time
//! series and the live views, the abort rules of [`watchdog`], Ctrl-C / SIGTERM, the exact merge).

mod command;
mod commander;
mod context;
mod coordinator;
mod device;
mod failure;
pub mod limits;
mod observer;
mod primary_host;
pub mod processes;
pub mod prometheus;
mod sparkplug;
mod threads;
mod ticker;
pub(crate) mod tls;
pub mod ui;
mod watchdog;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::{self, BrokerError, EmbeddedLimits};
use crate::metrics::histogram::HistogramError;
use crate::metrics::{
    Clock, Counters, IntervalHistograms, RunSnapshot, SeriesPoint, SnapshotError,
};
use crate::plan::Plan;
use crate::report::Outcome;
use crate::scenario::{BrokerUrl, MqttVersion};

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
    rt.block_on(threads::run(plan, opts))
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
    let mut label = targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if tls::insecure(&plan.scenario.broker) {
        label.push_str(" (TLS certificate not verified: insecure_skip_verify)");
    }
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
