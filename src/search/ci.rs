//! What a search concludes for CI: `--require N` and the capacity baseline (an earlier search.json)
//! as checks, and the conclusion the exit code, junit.xml, summary.md and report.html all state.
//! Pure: the caller reads the baseline file.

use serde::Serialize;

use super::policy::Answer;
use super::text::thousands;
use crate::scenario::Vary;

/// The tolerated capacity regression when none is given: 10%.
pub const DEFAULT_TOLERANCE: f64 = 0.10;

/// `--require N`, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequireCheck {
    pub min: u64,
    pub passed: bool,
    pub detail: String,
}

/// What an earlier search.json says, as far as a baseline needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineSearch {
    /// Where it was read from, for messages.
    pub file: String,
    pub scenario: String,
    pub vary: Vary,
    /// Its `capacity` (`None`: it established none).
    pub capacity: Option<u64>,
}

/// A baseline that cannot be compared with this search.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BaselineError {
    #[error("{file} is a search of scenario `{theirs}`, this one is of `{ours}`")]
    Scenario {
        file: String,
        theirs: String,
        ours: String,
    },
    #[error("{file} varied {theirs}, this search varies {ours}")]
    Vary {
        file: String,
        theirs: &'static str,
        ours: &'static str,
    },
    #[error("{file} established no capacity (its search did not finish)")]
    NoCapacity { file: String },
}

impl BaselineError {
    pub fn hint(&self) -> &'static str {
        match self {
            BaselineError::Scenario { .. } | BaselineError::Vary { .. } => {
                "a capacity baseline must be the search.json of an earlier search of the same scenario and the same --vary"
            }
            BaselineError::NoCapacity { .. } => {
                "use the search.json of a search that found a capacity (its `capacity` is set)"
            }
        }
    }
}

/// The capacity against a baseline's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineCheck {
    pub file: String,
    pub baseline_capacity: u64,
    /// A fraction (0.1 = 10%).
    pub tolerance: f64,
    /// `baseline_capacity × (1 - tolerance)`: a capacity below it is a regression.
    pub floor: f64,
    /// This search's capacity (`None`: none established, nothing compared).
    pub capacity: Option<u64>,
    pub regressed: bool,
    /// One line for people.
    pub detail: String,
}

/// Whether `baseline` may be compared with a search of `scenario` varying `vary`.
pub fn check_baseline(
    baseline: &BaselineSearch,
    scenario: &str,
    vary: Vary,
) -> Result<u64, BaselineError> {
    if baseline.scenario != scenario {
        return Err(BaselineError::Scenario {
            file: baseline.file.clone(),
            theirs: baseline.scenario.clone(),
            ours: scenario.to_owned(),
        });
    }
    if baseline.vary != vary {
        return Err(BaselineError::Vary {
            file: baseline.file.clone(),
            theirs: baseline.vary.name(),
            ours: vary.name(),
        });
    }
    baseline.capacity.ok_or_else(|| BaselineError::NoCapacity {
        file: baseline.file.clone(),
    })
}

fn pct(f: f64) -> String {
    format!("{}%", (f * 1000.0).round() / 10.0)
}

/// Compare the answer's capacity with the baseline's (`baseline_capacity` from [`check_baseline`]).
pub fn compare_baseline(
    file: &str,
    baseline_capacity: u64,
    tolerance: f64,
    answer: &Answer,
    unit: &str,
) -> BaselineCheck {
    let floor = baseline_capacity as f64 * (1.0 - tolerance);
    let against = format!(
        "the baseline's {} {unit} x (1 - {}) = {:.0} ({file})",
        thousands(baseline_capacity),
        pct(tolerance),
        floor
    );
    let (capacity, regressed, detail) = match answer {
        Answer::Found { capacity, .. }
        | Answer::BelowRange {
            first_failing: capacity,
        } => {
            let c = if matches!(answer, Answer::BelowRange { .. }) {
                0
            } else {
                *capacity
            };
            let shown = if c == 0 {
                format!("below {}", thousands(*capacity))
            } else {
                thousands(c)
            };
            if (c as f64) < floor {
                (
                    Some(c),
                    true,
                    format!("capacity regression: {shown} {unit} is below {against}"),
                )
            } else {
                (
                    Some(c),
                    false,
                    format!("no capacity regression: {shown} {unit}, at least {against}"),
                )
            }
        }
        Answer::AboveRange { capacity } => (
            Some(*capacity),
            false,
            if (*capacity as f64) < floor {
                format!(
                    "not compared: the capacity is at least {} {unit} (every step up to --to passed), below {against}; raise --to",
                    thousands(*capacity)
                )
            } else {
                format!(
                    "no capacity regression: at least {} {unit}, at least {against}",
                    thousands(*capacity)
                )
            },
        ),
        Answer::CannotJudge { .. } | Answer::Aborted { .. } | Answer::OutOfSteps { .. } => (
            None,
            false,
            format!("not compared: the search established no capacity (baseline: {against})"),
        ),
    };
    BaselineCheck {
        file: file.to_owned(),
        baseline_capacity,
        tolerance,
        floor,
        capacity,
        regressed,
        detail,
    }
}

/// `--require min` on the answer: the capacity found, or when the search stopped early the highest
/// load that passed, must be at least `min`.
pub fn check_require(min: u64, answer: &Answer, unit: &str) -> RequireCheck {
    let (value, what) = match answer.capacity() {
        Some(c) => (Some(c), "capacity"),
        None => (answer.passing(), "highest load that passed"),
    };
    let passed = value.is_some_and(|v| v >= min);
    let shown = value.map_or_else(|| "none".to_owned(), thousands);
    let detail = if passed {
        format!("{what} {shown} {unit} >= required {}", thousands(min))
    } else {
        format!(
            "{what} {shown} {unit} is below the required {}",
            thousands(min)
        )
    };
    RequireCheck {
        min,
        passed,
        detail,
    }
}

/// What the search concludes; the exit code follows it (0, 1, 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// A capacity was found (or every step passed), meeting `--require` and the baseline.
    Met,
    /// The capacity is below `--require`, or regressed against the baseline.
    Unmet,
    /// The search could not establish a capacity (and `--require` is not met by a passing load).
    Unfinished,
}

/// The conclusion from the answer and the checks.
pub fn conclude(
    answer: &Answer,
    require: Option<&RequireCheck>,
    baseline: Option<&BaselineCheck>,
) -> Conclusion {
    let regressed = baseline.is_some_and(|b| b.regressed);
    match answer {
        Answer::Aborted { .. } => Conclusion::Unfinished,
        Answer::Found { .. } | Answer::AboveRange { .. } | Answer::BelowRange { .. } => {
            if regressed || require.is_some_and(|r| !r.passed) {
                Conclusion::Unmet
            } else {
                Conclusion::Met
            }
        }
        Answer::CannotJudge { .. } | Answer::OutOfSteps { .. } => {
            if require.is_some_and(|r| r.passed) {
                Conclusion::Met
            } else {
                Conclusion::Unfinished
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOUND: Answer = Answer::Found {
        capacity: 14,
        first_failing: 16,
    };

    fn base(scenario: &str, vary: Vary, capacity: Option<u64>) -> BaselineSearch {
        BaselineSearch {
            file: "old/search.json".into(),
            scenario: scenario.into(),
            vary,
            capacity,
        }
    }

    #[test]
    fn a_capacity_below_the_floor_is_a_regression() {
        // 14 < 20 × 0.9 = 18
        let c = compare_baseline("old/search.json", 20, 0.10, &FOUND, "devices");
        assert!(c.regressed, "{c:?}");
        assert_eq!(c.capacity, Some(14));
        assert!((c.floor - 18.0).abs() < 1e-9);
        assert!(
            c.detail.starts_with("capacity regression: 14 devices"),
            "{c:?}"
        );
        // 14 ≥ 15 × 0.9 = 13.5
        let c = compare_baseline("old/search.json", 15, 0.10, &FOUND, "devices");
        assert!(!c.regressed, "{c:?}");
        assert!(c.detail.starts_with("no capacity regression"), "{c:?}");
        // Below --from: capacity 0, a regression against any baseline above 0.
        let c = compare_baseline(
            "f",
            10,
            0.1,
            &Answer::BelowRange { first_failing: 4 },
            "devices",
        );
        assert!(c.regressed);
        assert_eq!(c.capacity, Some(0));
    }

    #[test]
    fn a_lower_bound_or_no_capacity_is_not_a_regression() {
        let c = compare_baseline(
            "f",
            100,
            0.1,
            &Answer::AboveRange { capacity: 50 },
            "devices",
        );
        assert!(!c.regressed);
        assert!(c.detail.contains("raise --to"), "{c:?}");
        let c = compare_baseline(
            "f",
            100,
            0.1,
            &Answer::Aborted {
                passing: Some(10),
                at: 20,
            },
            "devices",
        );
        assert!(!c.regressed);
        assert_eq!(c.capacity, None);
    }

    #[test]
    fn only_a_search_of_the_same_scenario_and_load_is_a_baseline() {
        assert_eq!(
            check_baseline(&base("s", Vary::Devices, Some(7)), "s", Vary::Devices),
            Ok(7)
        );
        let e =
            check_baseline(&base("other", Vary::Devices, Some(7)), "s", Vary::Devices).unwrap_err();
        assert!(e.to_string().contains("`other`"), "{e}");
        let e = check_baseline(&base("s", Vary::Rate, Some(7)), "s", Vary::Devices).unwrap_err();
        assert!(e.to_string().contains("varied rate"), "{e}");
        assert!(e.hint().contains("same --vary"));
        let e = check_baseline(&base("s", Vary::Devices, None), "s", Vary::Devices).unwrap_err();
        assert!(matches!(e, BaselineError::NoCapacity { .. }));
    }

    #[test]
    fn the_conclusion_follows_require_and_the_baseline() {
        let req = |n| check_require(n, &FOUND, "devices");
        assert!(req(14).passed && !req(15).passed);
        assert_eq!(conclude(&FOUND, None, None), Conclusion::Met);
        assert_eq!(conclude(&FOUND, Some(&req(15)), None), Conclusion::Unmet);
        let regressed = compare_baseline("f", 20, 0.1, &FOUND, "devices");
        assert_eq!(
            conclude(&FOUND, Some(&req(10)), Some(&regressed)),
            Conclusion::Unmet
        );
        let stuck = Answer::CannotJudge {
            passing: Some(12),
            at: 14,
        };
        assert_eq!(conclude(&stuck, None, None), Conclusion::Unfinished);
        let r = check_require(10, &stuck, "devices");
        assert!(r.passed, "{r:?}");
        assert_eq!(conclude(&stuck, Some(&r), None), Conclusion::Met);
        let aborted = Answer::Aborted {
            passing: Some(12),
            at: 14,
        };
        let r = check_require(10, &aborted, "devices");
        assert_eq!(conclude(&aborted, Some(&r), None), Conclusion::Unfinished);
    }
}
