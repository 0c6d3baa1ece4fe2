//! What a run is given and what it hands back: [`RunOptions`], the 1 Hz [`TickSample`], the
//! [`EngineOutput`] and the [`EngineError`]s. Shared by the coordinator and its units.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::outcome::Outcome;
use super::prometheus::Prometheus;
use super::watch::Watch;
use crate::broker::BrokerError;
use crate::metrics::histogram::HistogramError;
use crate::metrics::{Counters, RunSnapshot, SeriesPoint, SnapshotError};

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
/// Called once by a worker process when it is ready to start (observers subscribed): says so to the
/// parent and returns the start time the parent chose for every worker (`None`: start on its own).
pub type StartGate = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// How to run (things that are not part of the scenario).
#[derive(Clone)]
pub struct RunOptions {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// How long devices wait for outstanding acks after the last phase.
    pub drain: Duration,
    /// The run's start (µs since the Unix epoch) when shards must share it; default: now + 100 ms.
    pub start_at_us: Option<u64>,
    /// Receives the 1 Hz samples (worker processes stream them to their parent).
    pub tick_hook: Option<TickHook>,
    /// Serve live metrics (OpenMetrics text, written by the given exposition) during the run.
    pub prometheus: Option<Prometheus>,
    /// Fed once a second (the progress bar, the `--ui` live view); notes nobody shows go to stderr.
    pub watchers: Vec<Arc<dyn Watch>>,
    /// A worker process without `start_at_us`: wait here for the parent's start time.
    pub start_gate: Option<StartGate>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("threads", &self.threads)
            .field("drain", &self.drain)
            .field("start_at_us", &self.start_at_us)
            .field("tick_hook", &self.tick_hook.is_some())
            .field("prometheus", &self.prometheus)
            .field("watchers", &self.watchers.len())
            .field("start_gate", &self.start_gate.is_some())
            .finish()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            threads: 0,
            drain: Duration::from_secs(5),
            start_at_us: None,
            tick_hook: None,
            prometheus: None,
            watchers: Vec::new(),
            start_gate: None,
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
    #[error("cannot start the embedded broker's TLS listener: {0}")]
    EmbeddedTls(String),
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
