//! The 1-second time series, sampled from live counters by the coordinator's ticker.

use serde::{Deserialize, Serialize};

use super::kinds::Counter;
use super::snapshot::Counters;

/// One second of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Seconds since the run's start (end of this one-second window).
    pub t_s: u32,
    /// Devices connected at the end of the window.
    pub connected: i64,
    pub publishes_per_s: u64,
    pub acks_per_s: u64,
    pub receives_per_s: u64,
    pub errors_per_s: u64,
}

impl SeriesPoint {
    /// The point for window `t_s` from two cumulative readings one second apart.
    pub fn from_delta(t_s: u32, connected: i64, before: &Counters, now: &Counters) -> SeriesPoint {
        let d = |c: Counter| now.get(c).saturating_sub(before.get(c));
        let errors = now
            .connect_failures()
            .saturating_sub(before.connect_failures())
            + now.disconnects().saturating_sub(before.disconnects())
            + d(Counter::PublishFailed);
        SeriesPoint {
            t_s,
            connected,
            publishes_per_s: d(Counter::Published),
            acks_per_s: d(Counter::Acked),
            receives_per_s: d(Counter::Received),
            errors_per_s: errors,
        }
    }
}
