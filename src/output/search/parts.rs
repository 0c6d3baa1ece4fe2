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

#[cfg(test)]
pub(super) mod fixture {
    //! A small finished search for the writers' unit tests.
    use std::collections::BTreeMap;

    use crate::search::{
        Answer, Measures, Percentiles, Policy, Purpose, SearchResult, SloCheck, Step, Vary,
        Verdict, WindowLatency,
    };
    use crate::threshold::parse_threshold;

    pub fn step(index: u32, load: u64, purpose: Purpose, verdict: Verdict, p99_ms: u64) -> Step {
        let p = Percentiles {
            count: 100,
            p50_us: 1000,
            p99_us: p99_ms * 1000,
            p99_9_us: p99_ms * 1500,
        };
        let mut latency = BTreeMap::new();
        latency.insert(
            "e2e".to_owned(),
            WindowLatency {
                corrected: p,
                uncorrected: p,
            },
        );
        let pass = verdict == Verdict::Pass;
        Step {
            index,
            load,
            purpose,
            intended_rate_per_s: load as f64,
            verdict,
            reasons: vec![format!("e2e.p99 < 50ms: {p99_ms} ms")],
            slos: vec![
                SloCheck {
                    slo: "e2e.p99 < 50ms".into(),
                    passed: pass,
                    measured: Some(p99_ms as f64 * 1000.0),
                    limit: 50_000.0,
                    detail: format!("measured {p99_ms}ms, limit 50ms"),
                },
                SloCheck {
                    slo: "loss_ratio == 0".into(),
                    passed: true,
                    measured: Some(0.0),
                    limit: 0.0,
                    detail: "measured 0".into(),
                },
            ],
            client_limited: false,
            measures: Some(Measures {
                duration_s: 10.0,
                published: load * 10,
                achieved_rate_per_s: load as f64,
                latency,
                loss_ratio: Some(0.0),
                lost: 0,
                overrun: 0,
                skipped: 0,
                unsent_at_end: 0,
            }),
            report: None,
        }
    }

    /// 38,500 passes twice, 43,000 fails; `--require`, a baseline.
    pub fn found(require: Option<u64>, baseline: Option<(&str, u64, f64)>) -> SearchResult {
        let slos = [
            parse_threshold("e2e.p99 < 50ms").unwrap(),
            parse_threshold("loss_ratio == 0").unwrap(),
        ];
        let mut cannot = step(3, 48_000, Purpose::Grow, Verdict::CannotJudge, 0);
        cannot.measures = None;
        cannot.slos.clear();
        cannot.reasons = vec!["the client machine was the limit".into()];
        let steps = vec![
            step(1, 20_000, Purpose::Grow, Verdict::Pass, 20),
            step(2, 40_000, Purpose::Grow, Verdict::Fail, 60),
            cannot,
            step(4, 38_500, Purpose::Bisect, Verdict::Pass, 41),
            step(5, 43_000, Purpose::Bisect, Verdict::Fail, 73),
            step(6, 38_500, Purpose::Confirm, Verdict::Pass, 40),
        ];
        SearchResult::new(
            "factory".into(),
            "mqtt://127.0.0.1:1883".into(),
            Vary::Devices,
            "at 1 msg/s each".into(),
            &slos,
            Policy::new(20_000, 80_000, 2.0, 0.12, 20).unwrap(),
            (5.0, 20.0),
            steps,
            Answer::Found {
                capacity: 38_500,
                first_failing: 40_000,
            },
        )
        .with_checks(require, baseline)
    }
}
