//! The step policy of a capacity search: grow the load geometrically from `--from` until a step
//! fails (or `--to`), then bisect between the highest passing and the lowest failing load down to
//! the resolution, and run the answer once more: it must pass twice. Pure: it decides the next load
//! from the verdicts so far and knows nothing of how a step is run.

use serde::Serialize;

/// How one step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every SLO held in the measured window.
    Pass,
    /// An SLO broke: the broker did not take this load.
    Fail,
    /// The step says nothing about the broker: the load generator fell behind its schedule (the
    /// client machine was the limit), or an SLO could not be measured. Not a failure.
    CannotJudge,
    /// The run ended in a way that ends the search (broker unreachable or lost, interrupted).
    Fatal,
}

impl Verdict {
    /// As printed in the step table.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::CannotJudge => "cannot judge",
            Verdict::Fatal => "ABORTED",
        }
    }
}

/// Why a step was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Stepping up geometrically, before any failure.
    Grow,
    /// Halving the interval between the last passing and the first failing load.
    Bisect,
    /// Running the candidate answer again: it must pass twice.
    Confirm,
}

impl Purpose {
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Grow => "grow",
            Purpose::Bisect => "bisect",
            Purpose::Confirm => "confirm",
        }
    }
}

/// The bounds and pace of a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// The first load.
    pub from: u64,
    /// The highest load tried.
    pub to: u64,
    /// Each growing step multiplies the load by this (> 1).
    pub growth: f64,
    /// Bisection stops when the failing load is within this fraction above the passing one.
    pub resolution: f64,
    /// Steps at most, confirmations included.
    pub max_steps: u32,
}

/// A policy that cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("--from must be at least 1")]
    FromZero,
    #[error("--to ({to}) is below --from ({from})")]
    Inverted { from: u64, to: u64 },
    #[error("--growth {0} must be above 1 and at most 100")]
    Growth(f64),
    #[error("--resolution {0} must be above 0% and below 100%")]
    Resolution(f64),
    #[error("--max-steps must be at least 2 (a step and its confirmation)")]
    MaxSteps,
}

impl Policy {
    pub fn new(
        from: u64,
        to: u64,
        growth: f64,
        resolution: f64,
        max_steps: u32,
    ) -> Result<Policy, PolicyError> {
        if from == 0 {
            return Err(PolicyError::FromZero);
        }
        if to < from {
            return Err(PolicyError::Inverted { from, to });
        }
        if !(growth > 1.0 && growth <= 100.0) {
            return Err(PolicyError::Growth(growth));
        }
        if !(resolution > 0.0 && resolution < 1.0) {
            return Err(PolicyError::Resolution(resolution));
        }
        if max_steps < 2 {
            return Err(PolicyError::MaxSteps);
        }
        Ok(Policy {
            from,
            to,
            growth,
            resolution,
            max_steps,
        })
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// `capacity` passed twice and `first_failing`, within the resolution above it, failed.
    Found { capacity: u64, first_failing: u64 },
    /// Every step up to `--to` passed, the highest twice: the capacity is at least `capacity`.
    AboveRange { capacity: u64 },
    /// The first load (`--from`) failed: the capacity is below it.
    BelowRange { first_failing: u64 },
    /// No failure was found below `at`, where a step could not be judged (the load generator was
    /// the limit, or an SLO was not measured); `passing` is the highest load that passed twice.
    CannotJudge { passing: Option<u64>, at: u64 },
    /// A step at `at` ended in a way that ends the search (broker unreachable or lost,
    /// interrupted); `passing` is the highest load that passed so far (maybe only once).
    Aborted { passing: Option<u64>, at: u64 },
    /// `--max-steps` ran out before the answer was confirmed: it lies between `passing` and
    /// `failing`.
    OutOfSteps {
        passing: Option<u64>,
        failing: Option<u64>,
    },
}

impl Answer {
    /// The capacity, when the search established one (0 below `--from`).
    pub fn capacity(&self) -> Option<u64> {
        match self {
            Answer::Found { capacity, .. } | Answer::AboveRange { capacity } => Some(*capacity),
            Answer::BelowRange { .. } => Some(0),
            Answer::CannotJudge { .. } | Answer::Aborted { .. } | Answer::OutOfSteps { .. } => None,
        }
    }

    /// The highest load known to pass, even when the search did not finish.
    pub fn passing(&self) -> Option<u64> {
        match self {
            Answer::Found { capacity, .. } | Answer::AboveRange { capacity } => Some(*capacity),
            Answer::BelowRange { .. } => None,
            Answer::CannotJudge { passing, .. }
            | Answer::Aborted { passing, .. }
            | Answer::OutOfSteps { passing, .. } => *passing,
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Run { load: u64, purpose: Purpose },
    Done(Answer),
}

/// A search in progress: the policy and every verdict so far.
#[derive(Debug, Clone)]
pub struct Search {
    policy: Policy,
    history: Vec<(u64, Verdict)>,
}

/// What the verdicts so far establish.
struct Bracket {
    /// Highest load that passed, below every failing and unjudgeable load.
    pass: Option<u64>,
    /// How many times `pass` passed.
    pass_count: usize,
    /// Lowest load that failed.
    fail: Option<u64>,
    /// Lowest load that could not be judged.
    limit: Option<u64>,
}

impl Bracket {
    /// The lowest load not known to pass.
    fn upper(&self) -> Option<u64> {
        match (self.fail, self.limit) {
            (Some(f), Some(l)) => Some(f.min(l)),
            (f, l) => f.or(l),
        }
    }
}

impl Search {
    pub fn new(policy: Policy) -> Search {
        Search {
            policy,
            history: Vec::new(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Record how the step at `load` went.
    pub fn record(&mut self, load: u64, verdict: Verdict) {
        self.history.push((load, verdict));
    }

    fn bracket(&self) -> Bracket {
        let lowest = |want: Verdict| {
            self.history
                .iter()
                .filter(|(_, v)| *v == want)
                .map(|(l, _)| *l)
                .min()
        };
        let fail = lowest(Verdict::Fail);
        let limit = lowest(Verdict::CannotJudge);
        let mut b = Bracket {
            pass: None,
            pass_count: 0,
            fail,
            limit,
        };
        let upper = b.upper();
        b.pass = self
            .history
            .iter()
            .filter(|(l, v)| *v == Verdict::Pass && upper.is_none_or(|u| *l < u))
            .map(|(l, _)| *l)
            .max();
        b.pass_count = self
            .history
            .iter()
            .filter(|(l, v)| *v == Verdict::Pass && Some(*l) == b.pass)
            .count();
        b
    }

    /// The next step, or the answer.
    pub fn next(&self) -> Next {
        let b = self.bracket();
        if let Some(&(at, _)) = self.history.iter().find(|(_, v)| *v == Verdict::Fatal) {
            return Next::Done(Answer::Aborted {
                passing: b.pass,
                at,
            });
        }
        let p = &self.policy;
        let next = match (b.pass, b.upper()) {
            (None, None) => Next::Run {
                load: p.from,
                purpose: Purpose::Grow,
            },
            (None, Some(u)) => Next::Done(if b.fail == Some(u) {
                Answer::BelowRange { first_failing: u }
            } else {
                Answer::CannotJudge {
                    passing: None,
                    at: u,
                }
            }),
            (Some(pass), None) if pass >= p.to => {
                if b.pass_count >= 2 {
                    Next::Done(Answer::AboveRange { capacity: pass })
                } else {
                    Next::Run {
                        load: pass,
                        purpose: Purpose::Confirm,
                    }
                }
            }
            (Some(pass), None) => Next::Run {
                load: nice(pass as f64 * p.growth).clamp(pass + 1, p.to),
                purpose: Purpose::Grow,
            },
            (Some(pass), Some(upper)) if self.converged(pass, upper) => {
                if b.pass_count >= 2 {
                    Next::Done(if b.fail == Some(upper) {
                        Answer::Found {
                            capacity: pass,
                            first_failing: upper,
                        }
                    } else {
                        Answer::CannotJudge {
                            passing: Some(pass),
                            at: upper,
                        }
                    })
                } else {
                    Next::Run {
                        load: pass,
                        purpose: Purpose::Confirm,
                    }
                }
            }
            (Some(pass), Some(upper)) => Next::Run {
                load: midpoint(pass, upper),
                purpose: Purpose::Bisect,
            },
        };
        if matches!(next, Next::Run { .. }) && self.history.len() >= p.max_steps as usize {
            return Next::Done(Answer::OutOfSteps {
                passing: b.pass,
                failing: b.upper(),
            });
        }
        next
    }

    /// Whether `upper` is close enough above `pass` to stop bisecting.
    fn converged(&self, pass: u64, upper: u64) -> bool {
        upper <= pass + 1 || (upper - pass) as f64 <= self.policy.resolution * pass as f64
    }
}

/// `x` rounded to three significant digits (38,527 → 38,500), as people write loads.
fn nice(x: f64) -> u64 {
    if !x.is_finite() || x < 1.0 {
        return 1;
    }
    let digits = x.log10().floor() as i32;
    let step = 10f64.powi((digits - 2).max(0));
    // `as` saturates: a huge load cannot wrap.
    ((x / step).round() * step) as u64
}

/// A load strictly between `low` and `high` (which differ by at least 2), near the middle and
/// rounded like [`nice`] when that stays strictly between.
fn midpoint(low: u64, high: u64) -> u64 {
    let exact = low + (high - low) / 2;
    let rounded = nice(exact as f64);
    if rounded > low && rounded < high {
        rounded
    } else {
        exact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(1000, 200_000, 2.0, 0.05, 30).unwrap()
    }

    /// Run a search against a simulated broker; the loads run, in order, and the answer.
    fn drive(
        policy: Policy,
        mut broker: impl FnMut(u64) -> Verdict,
    ) -> (Vec<(u64, Purpose, Verdict)>, Answer) {
        let mut s = Search::new(policy);
        let mut steps = Vec::new();
        loop {
            match s.next() {
                Next::Run { load, purpose } => {
                    let v = broker(load);
                    steps.push((load, purpose, v));
                    s.record(load, v);
                }
                Next::Done(a) => return (steps, a),
            }
            assert!(steps.len() <= 100, "the search does not end: {steps:?}");
        }
    }

    /// A broker whose latency rises past the SLO above `knee`: 10 ms up to it, 100 ms above.
    fn knee_at(knee: u64) -> impl FnMut(u64) -> Verdict {
        move |load| {
            let latency_ms = if load <= knee { 10 } else { 100 };
            if latency_ms < 50 {
                Verdict::Pass
            } else {
                Verdict::Fail
            }
        }
    }

    #[test]
    fn the_knee_is_found_within_the_resolution_and_confirmed() {
        for knee in [1000, 1500, 3999, 38_500, 41_234, 99_999, 150_000, 199_999] {
            let (steps, answer) = drive(policy(), knee_at(knee));
            let Answer::Found {
                capacity,
                first_failing,
            } = answer
            else {
                panic!("knee {knee}: {answer:?} after {steps:?}");
            };
            assert!(
                capacity <= knee && knee < first_failing,
                "knee {knee}: {answer:?}"
            );
            assert!(
                (first_failing - capacity) as f64 <= 0.05 * capacity as f64
                    || first_failing == capacity + 1,
                "knee {knee}: {capacity}..{first_failing} is wider than 5%"
            );
            let passes = steps
                .iter()
                .filter(|(l, _, v)| *l == capacity && *v == Verdict::Pass)
                .count();
            assert_eq!(passes, 2, "knee {knee}: the answer passed twice: {steps:?}");
            assert_eq!(
                steps.last().map(|s| s.1),
                Some(Purpose::Confirm),
                "knee {knee}: {steps:?}"
            );
            assert!(steps.len() <= 20, "knee {knee}: {} steps", steps.len());
        }
    }

    #[test]
    fn growth_is_geometric_and_bisection_halves_the_bracket() {
        let (steps, _) = drive(policy(), knee_at(5000));
        let loads: Vec<u64> = steps.iter().map(|s| s.0).collect();
        assert_eq!(&loads[..4], &[1000, 2000, 4000, 8000]);
        assert!(steps[..4].iter().all(|s| s.1 == Purpose::Grow));
        assert_eq!(steps[4].0, 6000, "the middle of 4000..8000");
        assert_eq!(steps[4].1, Purpose::Bisect);
    }

    #[test]
    fn loads_are_rounded_to_three_digits() {
        assert_eq!(nice(38_527.0), 38_500);
        assert_eq!(nice(99.4), 99);
        assert_eq!(nice(1234.0), 1230);
        assert_eq!(midpoint(38_000, 39_000), 38_500);
        assert_eq!(midpoint(10, 12), 11);
        assert_eq!(
            midpoint(1000, 1003),
            1001,
            "rounding would leave the bracket"
        );
    }

    #[test]
    fn no_failure_up_to_to_is_above_range_after_a_confirmation() {
        let p = Policy::new(1000, 5000, 2.0, 0.05, 30).unwrap();
        let (steps, answer) = drive(p, |_| Verdict::Pass);
        let loads: Vec<u64> = steps.iter().map(|s| s.0).collect();
        assert_eq!(loads, [1000, 2000, 4000, 5000, 5000]);
        assert_eq!(answer, Answer::AboveRange { capacity: 5000 });
        assert_eq!(answer.capacity(), Some(5000));
    }

    #[test]
    fn a_failing_first_step_is_below_range() {
        let (steps, answer) = drive(policy(), |_| Verdict::Fail);
        assert_eq!(steps.len(), 1);
        assert_eq!(
            answer,
            Answer::BelowRange {
                first_failing: 1000
            }
        );
        assert_eq!(answer.capacity(), Some(0));
    }

    #[test]
    fn cannot_judge_is_not_a_failure() {
        // The client machine cannot produce more than 3000; the broker would take 10000.
        let broker = |load: u64| {
            if load > 3000 {
                Verdict::CannotJudge
            } else {
                knee_at(10_000)(load)
            }
        };
        let (steps, answer) = drive(policy(), broker);
        assert!(
            steps.iter().all(|s| s.2 != Verdict::Fail),
            "no step failed: {steps:?}"
        );
        let Answer::CannotJudge {
            passing: Some(passing),
            at,
        } = answer
        else {
            panic!("{answer:?} after {steps:?}");
        };
        assert!(passing <= 3000 && at > 3000, "{answer:?}");
        assert!((at - passing) as f64 <= 0.05 * passing as f64, "{answer:?}");
        assert_eq!(answer.capacity(), None, "no capacity is claimed");
        assert_eq!(answer.passing(), Some(passing));
    }

    #[test]
    fn a_failure_below_the_client_limit_is_still_found() {
        let broker = |load: u64| {
            if load > 30_000 {
                Verdict::CannotJudge
            } else {
                knee_at(9000)(load)
            }
        };
        let (_, answer) = drive(policy(), broker);
        assert!(
            matches!(answer, Answer::Found { capacity, .. } if capacity <= 9000 && capacity > 8500),
            "{answer:?}"
        );
    }

    #[test]
    fn a_failed_confirmation_moves_the_knee_down() {
        // A broker that passes 6000 only the first time it sees it (a slow leak, say).
        let mut seen_6000 = 0;
        let broker = move |load: u64| {
            if load == 6000 {
                seen_6000 += 1;
                if seen_6000 > 1 {
                    return Verdict::Fail;
                }
            }
            knee_at(6200)(load)
        };
        let (steps, answer) = drive(policy(), broker);
        let Answer::Found {
            capacity,
            first_failing,
        } = answer
        else {
            panic!("{answer:?} after {steps:?}");
        };
        assert!(capacity < 6000, "{answer:?}: {steps:?}");
        assert!(first_failing <= 6000, "{answer:?}");
        let at_6000: Vec<Verdict> = steps.iter().filter(|s| s.0 == 6000).map(|s| s.2).collect();
        assert_eq!(at_6000, [Verdict::Pass, Verdict::Fail], "{steps:?}");
        let confirmed = steps
            .iter()
            .filter(|s| s.0 == capacity && s.2 == Verdict::Pass)
            .count();
        assert_eq!(confirmed, 2, "the new answer passed twice too: {steps:?}");
    }

    #[test]
    fn a_fatal_step_ends_the_search() {
        let broker = |load: u64| {
            if load >= 4000 {
                Verdict::Fatal
            } else {
                Verdict::Pass
            }
        };
        let (steps, answer) = drive(policy(), broker);
        assert_eq!(steps.len(), 3);
        assert_eq!(
            answer,
            Answer::Aborted {
                passing: Some(2000),
                at: 4000
            }
        );
        assert_eq!(answer.capacity(), None);
    }

    #[test]
    fn max_steps_ends_with_the_bracket() {
        let p = Policy::new(1000, 200_000, 2.0, 0.001, 6).unwrap();
        let (steps, answer) = drive(p, knee_at(5000));
        assert_eq!(steps.len(), 6);
        let Answer::OutOfSteps {
            passing: Some(lo),
            failing: Some(hi),
        } = answer
        else {
            panic!("{answer:?}");
        };
        assert!(lo <= 5000 && 5000 < hi, "{answer:?}");
    }

    #[test]
    fn policies_that_cannot_run_are_refused() {
        assert_eq!(
            Policy::new(0, 10, 2.0, 0.05, 10),
            Err(PolicyError::FromZero)
        );
        assert_eq!(
            Policy::new(10, 5, 2.0, 0.05, 10),
            Err(PolicyError::Inverted { from: 10, to: 5 })
        );
        assert!(Policy::new(10, 50, 1.0, 0.05, 10).is_err());
        assert!(Policy::new(10, 50, f64::NAN, 0.05, 10).is_err());
        assert!(Policy::new(10, 50, 2.0, 0.0, 10).is_err());
        assert!(Policy::new(10, 50, 2.0, 0.05, 1).is_err());
        assert!(Policy::new(10, 10, 2.0, 0.05, 2).is_ok());
    }
}
