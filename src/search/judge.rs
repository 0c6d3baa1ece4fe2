//! The verdict of one step: its report's measured window against the SLOs (evaluated by the gates,
//! on corrected latency), after ruling out what would make the step say nothing about the broker:
//! a run that did not complete, and a load generator that fell behind its own schedule.

use std::collections::BTreeMap;

use serde::Serialize;

use super::policy::Verdict;
use crate::gate;
use crate::metrics::{Counter, Metric};
use crate::report::{LatencyStats, PhaseReport, Report, RunStatus};
use crate::threshold::{Quantity, Threshold};

/// The share of a window's publish slots that may go out late or not at all (overrun, skipped,
/// unsent at the end) before the step cannot be judged: the load generator, not the broker, then
/// set the pace.
pub const OVERLOAD_TOLERANCE: f64 = 0.01;

/// A latency SLO that failed while the load generator's own send lag (p99, what the broker did not
/// hold back) reached this share of the SLO's limit may have been failed by the client, not the
/// broker: the step cannot be judged.
pub const SEND_LAG_SHARE: f64 = 0.25;

/// p50, p99 and p99.9 of one latency distribution, µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
}

impl From<&LatencyStats> for Percentiles {
    fn from(s: &LatencyStats) -> Percentiles {
        Percentiles {
            count: s.count,
            p50_us: s.p50_us,
            p99_us: s.p99_us,
            p99_9_us: s.p99_9_us,
        }
    }
}

/// One metric in the measured window, from both starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WindowLatency {
    pub corrected: Percentiles,
    pub uncorrected: Percentiles,
}

/// What the measured window of a step shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measures {
    pub duration_s: f64,
    pub published: u64,
    /// Publishes per second over the window.
    pub achieved_rate_per_s: f64,
    /// Each latency metric recorded in the window, by name (`e2e`, `puback`, ...).
    pub latency: BTreeMap<String, WindowLatency>,
    /// Observer `lost / expected`; `None` when nothing was expected (no observers).
    pub loss_ratio: Option<f64>,
    pub lost: u64,
    /// Load-generator lag: publishes the client itself sent more than an interval late.
    pub overrun: u64,
    /// Slots that came due while the broker held the devices back (socket buffer or in-flight window
    /// full): their lateness, and their skipping, is the broker's.
    pub pushed_back: u64,
    /// Load-generator lag: slots not sent at all.
    pub skipped: u64,
    /// Load-generator lag: QoS 0 publishes still queued in this host at the end.
    pub unsent_at_end: u64,
}

impl Measures {
    /// The window of `report` named `window`.
    pub fn of(report: &Report, window: &str) -> Option<Measures> {
        let phase: &PhaseReport = report.phases.iter().rev().find(|p| p.name == window)?;
        let t = &phase.totals;
        let c = &t.counters;
        Some(Measures {
            duration_s: phase.duration_s,
            published: c.get(Counter::Published),
            achieved_rate_per_s: t.rates.published_per_s,
            latency: t
                .latency
                .iter()
                .map(|(m, l)| {
                    (
                        m.name().to_owned(),
                        WindowLatency {
                            corrected: (&l.corrected).into(),
                            uncorrected: (&l.uncorrected).into(),
                        },
                    )
                })
                .collect(),
            loss_ratio: (t.deliveries.expected > 0).then_some(t.deliveries.loss_ratio),
            lost: t.deliveries.lost,
            overrun: c.get(Counter::Overrun),
            pushed_back: c.get(Counter::PushedBack),
            skipped: c.get(Counter::Skipped),
            unsent_at_end: c.get(Counter::UnsentAtEnd),
        })
    }

    fn share(&self, n: u64) -> f64 {
        n as f64 / (self.published + self.skipped).max(1) as f64
    }

    /// The share of the window's slots the load generator itself did not send on time: its overruns,
    /// and, when the broker never held it back, what it skipped or left unsent too.
    pub fn lag_share(&self) -> f64 {
        let held = if self.pushed_back == 0 {
            self.skipped + self.unsent_at_end
        } else {
            0
        };
        self.share(self.overrun + held)
    }

    /// The share of the window's slots that never reached the broker (skipped, or still queued here
    /// at the end) while the broker held the devices back: the load it did not take.
    pub fn refused_share(&self) -> f64 {
        if self.pushed_back == 0 {
            return 0.0;
        }
        self.share(self.skipped + self.unsent_at_end)
    }

    pub fn metric(&self, m: Metric) -> Option<&WindowLatency> {
        self.latency.get(m.name())
    }
}

/// One SLO as evaluated on a step's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloCheck {
    /// The SLO as given (canonical, unscoped as in the result's `slos`), e.g. `e2e.p99 < 50ms`.
    pub slo: String,
    pub passed: bool,
    /// In the SLO's unit (µs for latency, per second, ratio, count); `None` when not measured.
    pub measured: Option<f64>,
    /// The SLO's limit, in the same unit.
    pub limit: f64,
    /// What was measured against what, or why nothing was.
    pub detail: String,
}

impl From<&gate::Verdict> for SloCheck {
    fn from(v: &gate::Verdict) -> SloCheck {
        SloCheck {
            slo: v.threshold.to_string(),
            passed: v.passed,
            measured: v.measured,
            limit: v.threshold.value,
            detail: v.detail.clone(),
        }
    }
}

/// Why a step is what it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    pub verdict: Verdict,
    /// One line each: the SLOs as measured, or what made the step fatal or unjudgeable.
    pub reasons: Vec<String>,
    /// Set when the load generator fell behind (the client machine was the limit).
    pub client_limited: bool,
    /// Each SLO as the gates evaluated it on the step's report.
    pub slos: Vec<SloCheck>,
}

/// The SLOs as evaluated on a step: unscoped ones (other than connection set-up, which is the whole
/// run's) are about the measured window.
pub fn scoped(slos: &[Threshold], window: &str) -> Vec<Threshold> {
    slos.iter()
        .map(|t| {
            let mut t = t.clone();
            if t.scope.phase.is_none() && !t.quantity.is_setup() {
                t.scope.phase = Some(window.to_owned());
            }
            t
        })
        .collect()
}

/// Judge a step from its report: its outcome, the window's lag, and the SLOs.
pub fn judge(report: &Report, window: &str, slos: &[Threshold]) -> (Judgement, Option<Measures>) {
    let measures = Measures::of(report, window);
    let verdicts = gate::evaluate(report, &scoped(slos, window));
    let mut j = classify(
        report.outcome.status,
        &report.outcome.message,
        measures.as_ref(),
        &verdicts,
    );
    // Each check is named by the SLO as given (unscoped), as search.json lists them.
    for (check, slo) in j.slos.iter_mut().zip(slos) {
        check.slo = slo.to_string();
    }
    (j, measures)
}

/// The verdict from what a step shows (pure; [`judge`] gathers the inputs).
pub fn classify(
    status: RunStatus,
    message: &str,
    measures: Option<&Measures>,
    slos: &[gate::Verdict],
) -> Judgement {
    let checks: Vec<SloCheck> = slos.iter().map(SloCheck::from).collect();
    let done = |verdict, reasons, client_limited| Judgement {
        verdict,
        reasons,
        client_limited,
        slos: checks.clone(),
    };
    match status {
        RunStatus::Completed => {}
        RunStatus::WorkerFailed => {
            return done(
                Verdict::CannotJudge,
                vec![format!("a worker of the load generator failed: {message}")],
                true,
            )
        }
        RunStatus::BrokerUnreachable
        | RunStatus::BrokerLost
        | RunStatus::Interrupted
        | RunStatus::DevicesFailed => {
            return done(
                Verdict::Fatal,
                vec![format!(
                    "the run ended early ({}): {message}",
                    status.name()
                )],
                false,
            )
        }
    }
    let Some(m) = measures else {
        return done(
            Verdict::CannotJudge,
            vec!["the run has no measured window".to_owned()],
            false,
        );
    };
    if m.lag_share() > OVERLOAD_TOLERANCE {
        return done(
            Verdict::CannotJudge,
            vec![format!(
                "the load generator fell behind its schedule: {} overrun, {} skipped, {} unsent of {} publishes ({:.1}% > {:.0}%): the client machine was the limit, not the broker",
                m.overrun,
                m.skipped,
                m.unsent_at_end,
                m.published,
                m.lag_share() * 100.0,
                OVERLOAD_TOLERANCE * 100.0
            )],
            true,
        );
    }
    if m.refused_share() > OVERLOAD_TOLERANCE {
        let mut reasons = vec![format!(
            "the broker did not take the load: {} slots came due while it held the devices back (socket buffer or in-flight window full), and {} skipped + {} unsent of {} slots never reached it ({:.1}% > {:.0}%)",
            m.pushed_back,
            m.skipped,
            m.unsent_at_end,
            m.published + m.skipped,
            m.refused_share() * 100.0,
            OVERLOAD_TOLERANCE * 100.0
        )];
        reasons.extend(
            slos.iter()
                .map(|v| format!("{}: {}", v.threshold, v.detail)),
        );
        return done(Verdict::Fail, reasons, false);
    }
    if let Some(why) = lag_blamed(m, slos) {
        return done(Verdict::CannotJudge, vec![why], true);
    }
    let unmeasured: Vec<String> = slos
        .iter()
        .filter(|v| v.measured.is_none())
        .map(|v| format!("{}: {}", v.threshold, v.detail))
        .collect();
    if !unmeasured.is_empty() {
        return done(Verdict::CannotJudge, unmeasured, false);
    }
    let reasons = slos
        .iter()
        .map(|v| format!("{}: {}", v.threshold, v.detail))
        .collect();
    let verdict = if gate::passed(slos) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    done(verdict, reasons, false)
}

/// A failed latency SLO the client's own send lag could account for, as a reason.
fn lag_blamed(m: &Measures, slos: &[gate::Verdict]) -> Option<String> {
    let lag = m.metric(Metric::SendLag)?.uncorrected;
    slos.iter().find_map(|v| match v.threshold.quantity {
        Quantity::Latency { metric, .. }
            if !v.passed
                && !metric.is_client()
                && lag.p99_us as f64 >= SEND_LAG_SHARE * v.threshold.value =>
        {
            Some(format!(
                "{} failed, but the load generator's own send lag p99 was {} (at least {:.0}% of the limit): the client machine, not only the broker, made it late",
                v.threshold,
                crate::report::latency_text(lag.p99_us),
                SEND_LAG_SHARE * 100.0
            ))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measures(published: u64, overrun: u64, skipped: u64) -> Measures {
        Measures {
            duration_s: 10.0,
            published,
            achieved_rate_per_s: published as f64 / 10.0,
            latency: BTreeMap::new(),
            loss_ratio: Some(0.0),
            lost: 0,
            overrun,
            pushed_back: 0,
            skipped,
            unsent_at_end: 0,
        }
    }

    fn slo(text: &str, measured: Option<f64>, passed: bool) -> gate::Verdict {
        gate::Verdict {
            threshold: gate::parse_threshold(text).unwrap(),
            measured,
            passed,
            section: "phase steady, all groups".into(),
            detail: "detail".into(),
        }
    }

    #[test]
    fn slos_decide_a_clean_step() {
        let m = measures(10_000, 0, 0);
        let pass = classify(
            RunStatus::Completed,
            "",
            Some(&m),
            &[slo("e2e.p99 < 50ms", Some(41_000.0), true)],
        );
        assert_eq!(pass.verdict, Verdict::Pass);
        assert_eq!(pass.reasons, ["e2e.p99 < 50ms: detail"]);
        let fail = classify(
            RunStatus::Completed,
            "",
            Some(&m),
            &[
                slo("e2e.p99 < 50ms", Some(41_000.0), true),
                slo("loss_ratio == 0", Some(0.01), false),
            ],
        );
        assert_eq!(fail.verdict, Verdict::Fail);
        assert!(!fail.client_limited);
    }

    #[test]
    fn a_lagging_load_generator_cannot_be_judged_even_when_slos_fail() {
        let m = measures(10_000, 150, 50);
        let j = classify(
            RunStatus::Completed,
            "",
            Some(&m),
            &[slo("e2e.p99 < 50ms", Some(90_000.0), false)],
        );
        assert_eq!(j.verdict, Verdict::CannotJudge);
        assert!(j.client_limited);
        assert!(
            j.reasons[0].contains("client machine was the limit"),
            "{j:?}"
        );
        // Within the tolerance, lag does not hide the broker's verdict.
        let small = measures(10_000, 5, 0);
        let j = classify(
            RunStatus::Completed,
            "",
            Some(&small),
            &[slo("e2e.p99 < 50ms", Some(90_000.0), false)],
        );
        assert_eq!(j.verdict, Verdict::Fail);
    }

    #[test]
    fn slots_the_broker_held_back_and_never_took_fail_the_step() {
        // 3% of the slots were skipped while the socket or the in-flight window was full: the broker
        // did not take the load; that is its failure even when the latency of what went out passed.
        let mut m = measures(9_700, 0, 300);
        m.pushed_back = 2_000;
        let j = classify(
            RunStatus::Completed,
            "",
            Some(&m),
            &[slo("e2e.p99 < 50ms", Some(41_000.0), true)],
        );
        assert_eq!(j.verdict, Verdict::Fail, "{j:?}");
        assert!(!j.client_limited);
        assert!(j.reasons[0].contains("did not take the load"), "{j:?}");
        // The same skipping with nothing held back is the client's.
        m.pushed_back = 0;
        let j = classify(
            RunStatus::Completed,
            "",
            Some(&m),
            &[slo("e2e.p99 < 50ms", Some(41_000.0), true)],
        );
        assert_eq!(j.verdict, Verdict::CannotJudge);
        assert!(j.client_limited);
        // Slots pushed back but all sent (late) are judged by the SLOs alone.
        let mut m = measures(10_000, 0, 0);
        m.pushed_back = 2_000;
        let j = classify(
            RunStatus::Completed,
            "",
            Some(&m),
            &[slo("e2e.p99 < 50ms", Some(90_000.0), false)],
        );
        assert_eq!(j.verdict, Verdict::Fail);
        assert!(!j.client_limited);
    }

    fn with_send_lag(client_p99_us: u64) -> Measures {
        let mut m = measures(10_000, 0, 0);
        let p = |p99_us| Percentiles {
            count: 10_000,
            p50_us: 100,
            p99_us,
            p99_9_us: p99_us,
        };
        m.latency.insert(
            "send_lag".into(),
            WindowLatency {
                corrected: p(client_p99_us.max(30_000)),
                uncorrected: p(client_p99_us),
            },
        );
        m
    }

    #[test]
    fn a_latency_failure_the_clients_own_send_lag_can_explain_cannot_be_judged() {
        let failed = [slo("e2e.p99 < 50ms", Some(90_000.0), false)];
        // The client itself sent 20 ms late at p99: 40% of the 50 ms limit.
        let j = classify(
            RunStatus::Completed,
            "",
            Some(&with_send_lag(20_000)),
            &failed,
        );
        assert_eq!(j.verdict, Verdict::CannotJudge, "{j:?}");
        assert!(j.client_limited);
        assert!(j.reasons[0].contains("send lag p99"), "{j:?}");
        // Lag the broker caused (corrected 30 ms) with a prompt client (1 ms) is the broker's failure.
        let j = classify(
            RunStatus::Completed,
            "",
            Some(&with_send_lag(1_000)),
            &failed,
        );
        assert_eq!(j.verdict, Verdict::Fail, "{j:?}");
        // A pass stands whatever the lag: lag only adds latency.
        let passed = [slo("e2e.p99 < 50ms", Some(30_000.0), true)];
        let j = classify(
            RunStatus::Completed,
            "",
            Some(&with_send_lag(20_000)),
            &passed,
        );
        assert_eq!(j.verdict, Verdict::Pass);
    }

    #[test]
    fn an_unmeasured_slo_cannot_be_judged() {
        let m = measures(10_000, 0, 0);
        let j = classify(
            RunStatus::Completed,
            "",
            Some(&m),
            &[slo("e2e.p99 < 50ms", None, false)],
        );
        assert_eq!(j.verdict, Verdict::CannotJudge);
        assert!(!j.client_limited);
    }

    #[test]
    fn runs_that_end_early_are_fatal() {
        for s in [
            RunStatus::BrokerLost,
            RunStatus::BrokerUnreachable,
            RunStatus::Interrupted,
        ] {
            let j = classify(s, "gone", None, &[]);
            assert_eq!(j.verdict, Verdict::Fatal, "{s:?}");
            assert!(j.reasons[0].contains("gone"));
        }
        let j = classify(RunStatus::WorkerFailed, "died", None, &[]);
        assert_eq!(j.verdict, Verdict::CannotJudge);
    }

    #[test]
    fn unscoped_slos_are_about_the_window_and_connect_slos_the_whole_run() {
        let slos = [
            gate::parse_threshold("e2e.p99 < 50ms").unwrap(),
            gate::parse_threshold("connect.p99 < 1s").unwrap(),
            gate::parse_threshold("ramp:puback.p99 < 1s").unwrap(),
        ];
        let s = scoped(&slos, "steady");
        assert_eq!(s[0].scope.phase.as_deref(), Some("steady"));
        assert_eq!(s[1].scope.phase, None);
        assert_eq!(s[2].scope.phase.as_deref(), Some("ramp"));
    }
}
