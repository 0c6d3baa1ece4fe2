//! What watches a run from above: the progress bar, the `--ui` live view. The engine owns this small
//! trait; the watchers live above it and are given in [`super::RunOptions::watchers`]. The coordinator
//! calls them once a second and at the run's edges, never from the hot path.

use crate::metrics::{Counters, SeriesPoint, GROUP_SLOTS};
use crate::plan::{Plan, Timeline};

/// One closed second, as the coordinator hands it to its watchers.
#[derive(Debug, Clone, Copy)]
pub struct Second<'a> {
    /// When the second was closed (µs since the Unix epoch).
    pub now_us: u64,
    /// Devices connected now.
    pub connected: i64,
    /// The second's series point (its rates and latency percentiles).
    pub point: &'a SeriesPoint,
    /// The cumulative counters now, and at the previous closed second.
    pub now: &'a Counters,
    pub prev: &'a Counters,
    /// The run's last, partial window (after the run stopped), not a whole second.
    pub last: bool,
}

/// A watcher of a running shard. Every method has a default that does nothing.
pub trait Watch: Send + Sync {
    /// The run starts: its plan, its timeline and how many devices this coordinator runs.
    fn start(&self, _plan: &Plan, _timeline: &Timeline, _devices: u64) {}

    /// A line for the user (a late start, an interrupt, an abort). Returns whether it was shown;
    /// when no watcher shows it, the engine prints it on stderr.
    fn note(&self, _text: &str) -> bool {
        false
    }

    /// Whether this watcher wants the per-group counters ([`Watch::groups`]).
    fn wants_groups(&self) -> bool {
        false
    }

    /// The cumulative per-group counters (`[group][slot]`, see [`crate::metrics::GROUP_SLOTS`]).
    fn groups(&self, _groups: &[[u64; GROUP_SLOTS]]) {}

    /// A second was closed.
    fn second(&self, _second: &Second<'_>) {}

    /// Every unit has finished (the last partial second may still follow).
    fn stop(&self) {}
}
