//! Reports: a [`Report`] is built once from a [`RunRecord`] (percentiles computed here, once), then
//! written by separate writers. No network, no clock.

mod record;

pub use record::{Environment, Outcome, RunRecord, RunStatus};
