//! What the search's writers share: verdict and conclusion labels, the SLOs as thresholds, the
//! metrics to chart and their limits, a step's latency trio, and a fixture for their tests.

use crate::metrics::Metric;
use crate::search::{Conclusion, SearchResult, SloCheck, Step, Verdict};
use crate::threshold::{parse_threshold, Quantity, Stat, Threshold};

/// A verdict's CSS class and label.
pub(super) fn verdict_class(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Pass => ("pass", "pass"),
        Verdict::Fail => ("fail", "FAIL"),
        Verdict::CannotJudge => ("cannot", "cannot judge"),
        Verdict::Fatal => ("aborted", "ABORTED"),
    }
}

/// The conclusion as one word and what it means for the exit code.
pub(super) fn conclusion_text(c: Conclusion) -> (&'static str, &'static str) {
    match c {
        Conclusion::Met => ("ok", "met (exit 0)"),
        Conclusion::Unmet => ("bad", "not met (exit 1)"),
        Conclusion::Unfinished => ("warn", "unfinished (exit 3)"),
    }
}

/// The SLOs as thresholds (search.json holds them in canonical text, which parses back).
pub(super) fn slos(r: &SearchResult) -> Vec<Threshold> {
    r.slos
        .iter()
        .filter_map(|t| parse_threshold(t).ok())
        .collect()
}

/// The latency metrics to chart: those an SLO names, in order, else the first of e2e, puback and
/// pubcomp any step measured.
pub(super) fn curve_metrics(r: &SearchResult) -> Vec<Metric> {
    let measured = |m: Metric| {
        r.steps
            .iter()
            .any(|s| s.measures.as_ref().is_some_and(|x| x.metric(m).is_some()))
    };
    let mut named: Vec<Metric> = Vec::new();
    for t in slos(r) {
        if let Quantity::Latency { metric, .. } = t.quantity {
            if !named.contains(&metric) && measured(metric) {
                named.push(metric);
            }
        }
    }
    if named.is_empty() {
        named.extend(
            [Metric::E2e, Metric::Puback, Metric::Pubcomp]
                .into_iter()
                .find(|m| measured(*m)),
        );
    }
    named
}

/// The latency SLOs on `metric`: (the SLO, its limit in µs, its statistic).
pub(super) fn limits(r: &SearchResult, metric: Metric) -> Vec<(Threshold, f64, Stat)> {
    slos(r)
        .into_iter()
        .filter_map(|t| match t.quantity {
            Quantity::Latency { metric: m, stat } if m == metric => {
                let v = t.value;
                Some((t, v, stat))
            }
            _ => None,
        })
        .collect()
}

/// The step's window latency of `metric`: corrected p50, p99, p99.9 and uncorrected p99 (µs).
pub(super) fn trio(s: &Step, metric: Metric) -> Option<[u64; 4]> {
    let l = s.measures.as_ref()?.metric(metric)?;
    (l.corrected.count > 0).then_some([
        l.corrected.p50_us,
        l.corrected.p99_us,
        l.corrected.p99_9_us,
        l.uncorrected.p99_us,
    ])
}

/// The knee's check of `slo` and the first failure's, for the SLO sections of every file.
pub(super) fn slo_at<'a>(step: Option<&'a Step>, slo: &str) -> Option<&'a SloCheck> {
    step?.slos.iter().find(|c| c.slo == slo)
}
