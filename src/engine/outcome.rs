//! How a run ended, in the engine's own terms; the report states it as it is.

use serde::{Deserialize, Serialize};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every phase ran to its end.
    Completed,
    /// Stopped by Ctrl-C / SIGTERM.
    Interrupted,
    /// No device could connect within the allowed budget.
    BrokerUnreachable,
    /// Every connection was lost and could not be re-established within the budget.
    BrokerLost,
    /// A worker process died before it reported; the report holds the other shards.
    WorkerFailed,
    /// Devices could not start at all (their topic or CONNECT cannot be encoded).
    DevicesFailed,
}

/// The run's outcome, as the engine hands it up (and the report states it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: RunStatus,
    /// Human explanation (empty when completed).
    pub message: String,
}
