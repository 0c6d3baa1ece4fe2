//! What a finished (or interrupted) run hands to the report writers.

use serde::{Deserialize, Serialize};

use crate::metrics::{RunSnapshot, SeriesPoint};

pub use crate::engine::{Outcome, RunStatus};

/// Where and with what the run happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub host: String,
    pub os: String,
    pub arch: String,
    pub cores: usize,
    pub fleetstorm_version: String,
    /// Soft open-file limit in force during the run.
    pub open_files_limit: u64,
    pub clock_source: String,
    /// Worker threads used by this process.
    pub worker_threads: usize,
}

/// Which shards of which run a report holds, so `report merge` can refuse to count a shard twice or
/// to mix runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shards {
    /// The same for every shard of one run: a hash of the resolved scenario (seed, overrides and
    /// shard count included) and the shared start time.
    pub run_id: String,
    /// How many shards the run was split into (1: not sharded).
    pub count: u32,
    /// The shards this report holds, ascending (a merge of all of them holds `0..count`).
    pub indices: Vec<u32>,
}

impl Shards {
    /// The identity of shard `index` of `count` of the run of `scenario` (resolved, as JSON) that
    /// started at `started_at_us`.
    pub fn new(scenario: &serde_json::Value, started_at_us: u64, index: u32, count: u32) -> Shards {
        // FNV-1a, 64 bit: stable across builds and platforms (std's hasher is not).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let text = format!("{scenario}\n{started_at_us}\n{count}");
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Shards {
            run_id: format!("{h:016x}"),
            count,
            indices: vec![index],
        }
    }

    /// `I/N` (or `I,J/N`) when this holds only some of the run's shards; `None` when it holds the whole
    /// run (every shard, or a run that was not sharded).
    pub fn partial_label(&self) -> Option<String> {
        let complete = (0..self.count).all(|i| self.indices.contains(&i));
        if complete {
            return None;
        }
        let held: Vec<String> = self.indices.iter().map(u32::to_string).collect();
        Some(format!("{}/{}", held.join(","), self.count))
    }
}

/// Everything the writers need.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The resolved scenario (every default filled in, overrides applied), as JSON.
    pub scenario: serde_json::Value,
    pub scenario_name: String,
    /// The broker as the user should read it, e.g. `mqtt://127.0.0.1:1883` or `embedded (127.0.0.1:65123)`.
    pub broker: String,
    pub environment: Environment,
    pub outcome: Outcome,
    pub started_at_us: u64,
    pub ended_at_us: u64,
    pub snapshot: RunSnapshot,
    pub series: Vec<SeriesPoint>,
    /// Which shards of which run this is; `None` for reports written before it was recorded.
    pub shards: Option<Shards>,
}

impl RunStatus {
    /// The name used in reports (as serialised).
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::BrokerUnreachable => "broker_unreachable",
            RunStatus::BrokerLost => "broker_lost",
            RunStatus::WorkerFailed => "worker_failed",
            RunStatus::DevicesFailed => "devices_failed",
        }
    }
}

impl Outcome {
    /// `completed`, or `interrupted: <message>`.
    pub fn describe(&self) -> String {
        if self.message.is_empty() {
            self.status.name().to_owned()
        } else {
            format!("{}: {}", self.status.name(), self.message)
        }
    }
}
