//! Gates: thresholds (`e2e.p99 < 50ms`) evaluated against a [`Report`](crate::report::Report),
//! and baseline comparison of two reports. Pure: no printing, no I/O, no clock.
//!
//! Entry points: [`parse_threshold`], [`evaluate`], [`compare`], [`parse_percent`].

mod baseline;
mod evaluate;
mod threshold;

pub use baseline::{compare, Change, Comparison, DEFAULT_MAX_REGRESSION};
pub use evaluate::{evaluate, passed, Verdict};
pub use threshold::{
    format_value, parse_percent, parse_threshold, GateError, Op, Quantity, Scope, Stat, Threshold,
};
