//! Threshold evaluation: find the section a threshold is about, measure, compare.

use crate::report::{GroupReport, PhaseReport, Report, RUN_SECTION_NAME};
use crate::threshold::{format_value, Quantity, Threshold};

/// The result of one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub threshold: Threshold,
    /// In the threshold's unit (µs, per second, ratio, count); `None` when the run did not
    /// measure it (the verdict then fails and `detail` says why).
    pub measured: Option<f64>,
    pub passed: bool,
    /// The section measured, e.g. `phase steady, all groups` or `whole run, group cnc`.
    pub section: String,
    /// One line for people: what was measured against what, or why nothing was.
    pub detail: String,
}

/// Evaluate every threshold against the report, in order.
pub fn evaluate(report: &Report, thresholds: &[Threshold]) -> Vec<Verdict> {
    thresholds.iter().map(|t| evaluate_one(report, t)).collect()
}

/// Whether every verdict passed (true for none).
pub fn passed(verdicts: &[Verdict]) -> bool {
    verdicts.iter().all(|v| v.passed)
}

fn evaluate_one(report: &Report, t: &Threshold) -> Verdict {
    let limit = format!("{} {}", t.op.symbol(), t.value_text());
    let fail = |section: String, why: String| Verdict {
        threshold: t.clone(),
        measured: None,
        passed: false,
        section,
        detail: format!("not measured: {why} (limit {limit})"),
    };
    let (phase, phase_label) = match find_phase(report, t) {
        Ok(found) => found,
        Err(why) => return fail(String::new(), why),
    };
    let (group, group_label) = match &t.scope.group {
        None => (&phase.totals, "all groups".to_owned()),
        Some(g) => match phase.groups.get(g) {
            Some(gr) => (gr, format!("group {g}")),
            None => {
                let known: Vec<&str> = report
                    .histograms
                    .group_names
                    .iter()
                    .map(String::as_str)
                    .collect();
                return fail(
                    phase_label,
                    format!(
                        "group `{g}` is not in this run (groups: {})",
                        known.join(", ")
                    ),
                );
            }
        },
    };
    let section = format!("{phase_label}, {group_label}");
    match measure(&t.quantity, phase, group) {
        Err(why) => fail(section, why),
        Ok(m) => {
            let passed = t.op.holds(m, t.value);
            let shown = human(&t.quantity, m);
            let detail = if passed {
                format!("{shown} {} {} ({section})", t.op.symbol(), t.value_text())
            } else {
                format!("{shown}, limit {limit} ({section})")
            };
            Verdict {
                threshold: t.clone(),
                measured: Some(m),
                passed,
                section,
                detail,
            }
        }
    }
}

fn find_phase<'r>(report: &'r Report, t: &Threshold) -> Result<(&'r PhaseReport, String), String> {
    match &t.scope.phase {
        Some(name) => {
            if let Some(p) = report.phases.iter().rev().find(|p| &p.name == name) {
                Ok((p, format!("phase {name}")))
            } else if name == RUN_SECTION_NAME {
                Ok((&report.totals, "whole run".to_owned()))
            } else {
                let known: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
                Err(format!(
                    "phase `{name}` is not in this run (phases: {}; `{RUN_SECTION_NAME}` is the whole run)",
                    known.join(", ")
                ))
            }
        }
        None if t.quantity.is_setup() => Ok((&report.totals, "whole run".to_owned())),
        None => report
            .summary_phase()
            .map(|p| (p, format!("phase {}", p.name)))
            .ok_or_else(|| "the run had no phase".to_owned()),
    }
}

fn measure(q: &Quantity, phase: &PhaseReport, g: &GroupReport) -> Result<f64, String> {
    let c = &g.counters;
    Ok(match q {
        Quantity::Latency { metric, stat } => match g.latency.get(metric) {
            Some(l) if l.corrected.count > 0 => l.corrected.stat(*stat),
            _ => {
                return Err(format!(
                    "no {} latency was recorded here{}",
                    metric.name(),
                    match metric {
                        crate::metrics::Metric::E2e => " (does the scenario have observers?)",
                        crate::metrics::Metric::Puback => " (are publishes QoS 1?)",
                        crate::metrics::Metric::Pubcomp => " (are publishes QoS 2?)",
                        crate::metrics::Metric::CommandRtt => " (does a group have `commands:`?)",
                        _ => "",
                    }
                ))
            }
        },
        Quantity::LossRatio | Quantity::Lost => {
            if g.deliveries.expected == 0 {
                return Err(
                    "no observer deliveries were expected here (does the scenario have observers?)"
                        .to_owned(),
                );
            }
            if *q == Quantity::Lost {
                g.deliveries.lost as f64
            } else {
                g.deliveries.loss_ratio
            }
        }
        Quantity::PublishRate | Quantity::AckRate => {
            if phase.duration_s <= 0.0 {
                return Err("the section lasted no time, so it has no rate".to_owned());
            }
            if *q == Quantity::PublishRate {
                g.rates.published_per_s
            } else {
                g.rates.acked_per_s
            }
        }
        Quantity::ConnectFailures => c.connect_failures() as f64,
        Quantity::Disconnects => c.disconnects() as f64,
        Quantity::Counter(k) => c.get(*k) as f64,
    })
}

/// A measured value for people: latencies as the report tables print them (`1.76ms`), rates with
/// one decimal.
fn human(q: &Quantity, v: f64) -> String {
    match q {
        // `as` saturates: a negative or huge value cannot wrap.
        Quantity::Latency { .. } => crate::report::latency_text(v.round() as u64),
        Quantity::PublishRate | Quantity::AckRate => format!("{v:.1}/s"),
        Quantity::LossRatio => format!("{v:.6}"),
        _ => format_value(q, v),
    }
}
