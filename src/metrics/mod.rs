//! Measurement: metric and counter kinds, the one clock reader, the per-worker lock-free [`Recorder`],
//! and the mergeable, serialisable [`RunSnapshot`]. Nothing here prints or computes report percentiles.

pub mod audit;
mod clock;
pub mod histogram;
mod kinds;
mod recorder;
mod series;
mod snapshot;
mod timeline;

pub use clock::Clock;
pub use kinds::{Basis, Counter, Metric};
pub use recorder::{group_slots_of, LiveCounters, Recorder, GROUP_SLOTS, GROUP_SLOT_NAMES};
pub use series::{IntervalHistograms, SeriesPoint};
pub use snapshot::{
    Counters, GroupSnapshot, HistKey, MissingShard, Observed, PhaseSnapshot, RunSnapshot,
    SnapshotError, MAX_PHASES, MAX_PHASE_GROUPS,
};
pub use timeline::{PhaseWindow, Timeline};
