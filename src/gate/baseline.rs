//! Baseline comparison: the summary phase of two reports, metric by metric.

use crate::metrics::Metric;
use crate::report::{GroupReport, Report};
use crate::threshold::{Quantity, Stat};

/// The percentiles compared for each latency metric.
const COMPARED_STATS: [Stat; 5] = [Stat::P50, Stat::P90, Stat::P99, Stat::P99_9, Stat::Max];

/// How one quantity moved from the base to the current run.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// A corrected latency statistic, [`Quantity::PublishRate`] or [`Quantity::LossRatio`].
    pub quantity: Quantity,
    pub base: f64,
    pub current: f64,
    /// `(current - base) / base` when `relative`, else `current - base` (when the base is 0).
    pub change: f64,
    pub relative: bool,
    /// Worse by more than the tolerance (latency or loss up, rate down).
    pub regressed: bool,
    /// Better by more than the tolerance.
    pub improved: bool,
}

/// Every compared quantity of two runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The summary phase of each run (the sections compared).
    pub base_phase: Option<String>,
    pub current_phase: Option<String>,
    /// The tolerance as a fraction (0.10 = 10 %).
    pub max_regression: f64,
    pub changes: Vec<Change>,
    /// Latency metrics measured in only one of the two runs (not compared).
    pub only_in_base: Vec<Metric>,
    pub only_in_current: Vec<Metric>,
}

impl Comparison {
    /// Whether any quantity got worse beyond the tolerance.
    pub fn regressed(&self) -> bool {
        self.changes.iter().any(|c| c.regressed)
    }

    /// The changes that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.regressed)
    }
}

/// Compare the summary-phase totals of `current` against `base`. `max_regression` is a fraction
/// (0.10 = 10 %); a change exactly at the tolerance is not flagged.
pub fn compare(base: &Report, current: &Report, max_regression: f64) -> Comparison {
    let empty = GroupReport {
        counters: Default::default(),
        rates: crate::report::Rates {
            published_per_s: 0.0,
            acked_per_s: 0.0,
        },
        latency: Default::default(),
        deliveries: Default::default(),
    };
    let b = base.summary_phase().map_or(&empty, |p| &p.totals);
    let c = current.summary_phase().map_or(&empty, |p| &p.totals);
    let measured = |g: &GroupReport, m: Metric| {
        g.latency
            .get(&m)
            .filter(|l| l.corrected.count > 0)
            .map(|l| l.corrected)
    };
    let mut changes = Vec::new();
    let mut only_in_base = Vec::new();
    let mut only_in_current = Vec::new();
    // The load generator's own send lag is no figure of the broker's: never a regression.
    for metric in Metric::ALL.into_iter().filter(|m| !m.is_client()) {
        match (measured(b, metric), measured(c, metric)) {
            (Some(bs), Some(cs)) => {
                for stat in COMPARED_STATS {
                    changes.push(change(
                        Quantity::Latency { metric, stat },
                        bs.stat(stat),
                        cs.stat(stat),
                        max_regression,
                    ));
                }
            }
            (Some(_), None) => only_in_base.push(metric),
            (None, Some(_)) => only_in_current.push(metric),
            (None, None) => {}
        }
    }
    changes.push(change(
        Quantity::PublishRate,
        b.rates.published_per_s,
        c.rates.published_per_s,
        max_regression,
    ));
    if b.deliveries.expected > 0 && c.deliveries.expected > 0 {
        changes.push(change(
            Quantity::LossRatio,
            b.deliveries.loss_ratio,
            c.deliveries.loss_ratio,
            max_regression,
        ));
    }
    Comparison {
        base_phase: base.summary.phase.clone(),
        current_phase: current.summary.phase.clone(),
        max_regression,
        changes,
        only_in_base,
        only_in_current,
    }
}

fn change(quantity: Quantity, base: f64, current: f64, tolerance: f64) -> Change {
    let relative = base != 0.0;
    let delta = if relative {
        (current - base) / base
    } else {
        current - base
    };
    // Positive `worse` means the change hurts: latency and loss up, rate down.
    let worse = match quantity {
        Quantity::PublishRate | Quantity::AckRate => -delta,
        _ => delta,
    };
    Change {
        quantity,
        base,
        current,
        change: delta,
        relative,
        regressed: worse > tolerance,
        improved: -worse > tolerance,
    }
}
