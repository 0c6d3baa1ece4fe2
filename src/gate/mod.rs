//! Gates: thresholds (`e2e.p99 < 50ms`) evaluated against a [`Report`](crate::report::Report),
//! and baseline comparison of two reports. Pure: no printing, no I/O, no clock.
//!
//! Entry points: [`parse_threshold`], [`evaluate`], [`compare`], [`parse_percent`]. The grammar
//! itself lives below in [`crate::threshold`] (the scenario reads it too); it is re-exported here.

mod baseline;
mod evaluate;

pub use crate::threshold::{
    format_value, parse_percent, parse_threshold, GateError, Op, Quantity, Scope, Stat, Threshold,
    DEFAULT_MAX_REGRESSION,
};
pub use baseline::{compare, Change, Comparison};
pub use evaluate::{evaluate, passed, Verdict};
