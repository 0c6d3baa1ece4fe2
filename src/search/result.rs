//! A finished (or stopped) search as data: every step, the answer, the sentence that states it, and
//! the step table. Serialised as `search.json`; [`render`] is the console text. No I/O.

use serde::Serialize;

use super::ci::{
    check_require, compare_baseline, conclude, BaselineCheck, Conclusion, RequireCheck,
};
use super::judge::{Measures, Percentiles, SloCheck};
use super::policy::{Answer, Policy, Purpose, Verdict};
pub use super::text::thousands;
use crate::metrics::Metric;
use crate::report::latency_text;
use crate::threshold::{Quantity, Stat, Threshold};

/// The version of the search.json layout.
pub const SEARCH_SCHEMA_VERSION: u32 = 1;

/// What a search varies (the `search.vary` key of a scenario, or `--vary`).
pub use crate::scenario::Vary;

/// One step, as run and judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// From 1.
    pub index: u32,
    pub load: u64,
    pub purpose: Purpose,
    /// The publish rate the schedule asked for.
    pub intended_rate_per_s: f64,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// Each SLO as evaluated on the step (empty when the step did not run).
    pub slos: Vec<SloCheck>,
    /// The load generator fell behind its schedule.
    pub client_limited: bool,
    /// The measured window (absent when the step did not run or had no window).
    pub measures: Option<Measures>,
    /// The step's report.json, when written.
    pub report: Option<String>,
}

impl Step {
    /// The cells every step table shows beside the latency (console, HTML, Markdown): the achieved
    /// publish rate, the loss ratio, and the load generator's own send lag p99 ("-" when unmeasured).
    pub fn cells(&self) -> StepCells {
        let m = self.measures.as_ref();
        StepCells {
            achieved: m.map_or_else(
                || "-".to_owned(),
                |m| format!("{:.1}", m.achieved_rate_per_s),
            ),
            loss: m
                .and_then(|m| m.loss_ratio)
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.6}")),
            client_lag: cell(
                m.and_then(|m| m.metric(Metric::SendLag))
                    .map(|l| l.uncorrected.p99_us),
            ),
        }
    }
}

/// See [`Step::cells`].
pub struct StepCells {
    pub achieved: String,
    pub loss: String,
    pub client_lag: String,
}

/// A whole search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    pub schema_version: u32,
    pub scenario: String,
    pub broker: String,
    pub vary: Vary,
    /// `devices` or `msg/s`.
    pub unit: String,
    /// What one unit of load means, e.g. `at 1 msg/s each` or `from 1,000 devices`.
    pub load_note: String,
    pub slos: Vec<String>,
    pub policy: Policy,
    pub settle_s: f64,
    pub window_s: f64,
    pub steps: Vec<Step>,
    pub answer: Answer,
    /// The capacity found (0: below `--from`); absent when the search could not establish one.
    pub capacity: Option<u64>,
    /// The answer in one sentence.
    pub statement: String,
    /// `--require N`, judged (absent without it).
    pub require: Option<RequireCheck>,
    /// The capacity against a baseline search (absent without one).
    pub baseline: Option<BaselineCheck>,
    /// What the exit code says: `met` (0), `unmet` (1: below --require, or a capacity regression)
    /// or `unfinished` (3).
    pub conclusion: Conclusion,
}

impl SearchResult {
    /// Assemble the result and its statement. `slos` decide which latency the statement quotes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        scenario: String,
        broker: String,
        vary: Vary,
        load_note: String,
        slos: &[Threshold],
        policy: Policy,
        (settle_s, window_s): (f64, f64),
        steps: Vec<Step>,
        answer: Answer,
    ) -> SearchResult {
        let mut r = SearchResult {
            schema_version: SEARCH_SCHEMA_VERSION,
            scenario,
            broker,
            vary,
            unit: vary.unit().to_owned(),
            load_note,
            slos: slos.iter().map(ToString::to_string).collect(),
            policy,
            settle_s,
            window_s,
            capacity: answer.capacity(),
            steps,
            conclusion: conclude(&answer, None, None),
            answer,
            statement: String::new(),
            require: None,
            baseline: None,
        };
        r.statement = statement(&r, headline_latency(slos));
        r
    }

    /// Judge `--require` and the baseline (its file and capacity, and the tolerance) on the answer.
    pub fn with_checks(mut self, require: Option<u64>, baseline: Option<(&str, u64, f64)>) -> Self {
        self.require = require.map(|n| check_require(n, &self.answer, &self.unit));
        self.baseline = baseline
            .map(|(file, cap, tol)| compare_baseline(file, cap, tol, &self.answer, &self.unit));
        self.conclusion = conclude(&self.answer, self.require.as_ref(), self.baseline.as_ref());
        self
    }

    /// The knee: the last passing step at the highest load that passed (the capacity's
    /// confirmation when one was found).
    pub fn knee(&self) -> Option<&Step> {
        let load = self.answer.passing()?;
        self.steps
            .iter()
            .rev()
            .find(|s| s.load == load && s.verdict == Verdict::Pass)
    }

    /// The first failure above the knee: a failing step at the lowest load that failed.
    pub fn first_failure(&self) -> Option<&Step> {
        let above = self.answer.passing().unwrap_or(0);
        self.steps
            .iter()
            .filter(|s| s.verdict == Verdict::Fail && s.load > above)
            .min_by_key(|s| (s.load, s.index))
    }
}

/// The metric and statistic the statement quotes: the first latency SLO's, else e2e p99.
fn headline_latency(slos: &[Threshold]) -> (Metric, Stat) {
    slos.iter()
        .find_map(|t| match t.quantity {
            Quantity::Latency { metric, stat } => Some((metric, stat)),
            _ => None,
        })
        .unwrap_or((Metric::E2e, Stat::P99))
}

fn pick(p: &Percentiles, stat: Stat) -> Option<u64> {
    match stat {
        Stat::P50 => Some(p.p50_us),
        Stat::P99 => Some(p.p99_us),
        Stat::P99_9 => Some(p.p99_9_us),
        _ => None,
    }
    .filter(|_| p.count > 0)
}

/// The quoted latency of the last step at `load` with `verdict`, e.g. `e2e p99 41.0ms`.
fn quoted(r: &SearchResult, load: u64, verdict: Verdict, (metric, stat): (Metric, Stat)) -> String {
    // The table holds p50, p99 and p99.9; another statistic is quoted as p99.
    let stat = if matches!(stat, Stat::P50 | Stat::P99 | Stat::P99_9) {
        stat
    } else {
        Stat::P99
    };
    r.steps
        .iter()
        .rev()
        .filter(|s| s.load == load && s.verdict == verdict)
        .find_map(|s| s.measures.as_ref()?.metric(metric))
        .and_then(|l| pick(&l.corrected, stat))
        .map_or_else(
            || format!("no {} latency measured", metric.name()),
            |v| format!("{} {} {}", metric.name(), stat.name(), latency_text(v)),
        )
}

/// The SLOs other than the quoted latency that the failing step at `load` broke, e.g. " (broke
/// loss_ratio == 0)": the quoted latency alone does not say why a step failed on loss.
fn broken(r: &SearchResult, load: u64, (metric, stat): (Metric, Stat)) -> String {
    let quoted = format!("{}.{} ", metric.name(), stat.name());
    let slos: Vec<&str> = r
        .steps
        .iter()
        .rev()
        .find(|s| s.load == load && s.verdict == Verdict::Fail)
        .map(|s| {
            s.slos
                .iter()
                .filter(|c| !c.passed && !c.slo.starts_with(&quoted))
                .map(|c| c.slo.as_str())
                .collect()
        })
        .unwrap_or_default();
    if slos.is_empty() {
        String::new()
    } else {
        format!(" (broke {})", slos.join(", "))
    }
}

fn statement(r: &SearchResult, headline: (Metric, Stat)) -> String {
    let unit = r.vary.unit();
    let at = |load: u64| format!("{} {unit} {}", thousands(load), r.load_note);
    match &r.answer {
        Answer::Found {
            capacity,
            first_failing,
        } => format!(
            "capacity: {}: {}; at {}: {}{}",
            at(*capacity),
            quoted(r, *capacity, Verdict::Pass, headline),
            thousands(*first_failing),
            quoted(r, *first_failing, Verdict::Fail, headline),
            broken(r, *first_failing, headline)
        ),
        Answer::AboveRange { capacity } => format!(
            "capacity: at least {}: {} (no step up to --to failed; raise --to to find the limit)",
            at(*capacity),
            quoted(r, *capacity, Verdict::Pass, headline)
        ),
        Answer::BelowRange { first_failing } => format!(
            "capacity: below {}: the first step already failed ({}{}); lower --from",
            at(*first_failing),
            quoted(r, *first_failing, Verdict::Fail, headline),
            broken(r, *first_failing, headline)
        ),
        Answer::CannotJudge { passing, at: limit } => {
            let client = r.steps.iter().any(|s| s.load == *limit && s.client_limited);
            format!(
                "no capacity found: {} could not be judged ({}){}",
                at(*limit),
                if client {
                    "the client machine was the limit, not the broker: give the load generator more cores (`--threads`), more processes (`--workers`) or more hosts"
                } else {
                    "see the reasons in the table"
                },
                passing.map_or_else(String::new, |p| format!(
                    "; the broker took {} ({})",
                    at(p),
                    quoted(r, p, Verdict::Pass, headline)
                ))
            )
        }
        Answer::Aborted { passing, at: load } => format!(
            "search stopped: the step at {} ended the run{}",
            at(*load),
            passing.map_or_else(String::new, |p| format!(
                "; the highest load that passed was {}",
                thousands(p)
            ))
        ),
        Answer::OutOfSteps { passing, failing } => format!(
            "no capacity confirmed within --max-steps {}: it lies between {} and {}",
            r.policy.max_steps,
            passing.map_or_else(|| "0".to_owned(), thousands),
            failing.map_or_else(|| "beyond --to".to_owned(), thousands)
        ),
    }
}

fn cell(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), latency_text)
}

/// The step table and the statement, for the console.
pub fn render(r: &SearchResult) -> String {
    let (metric, _) =
        r.steps
            .iter()
            .find_map(|s| s.measures.as_ref())
            .map_or((Metric::E2e, Stat::P99), |m| {
                let metric = [Metric::E2e, Metric::Puback, Metric::Pubcomp]
                    .into_iter()
                    .find(|x| m.metric(*x).is_some())
                    .unwrap_or(Metric::E2e);
                (metric, Stat::P99)
            });
    let mut out = format!(
        "capacity search: {} ({} from {} to {}; settle {:.1} s, window {:.1} s)\n",
        r.scenario,
        r.unit,
        thousands(r.policy.from),
        thousands(r.policy.to),
        r.settle_s,
        r.window_s
    );
    out.push_str(&format!(
        "  {:>4}  {:<7}  {:>10}  {:>10}  {:>30}  {:>30}  {:>9}  {:>10}  verdict\n",
        "step",
        "purpose",
        r.unit,
        "achieved/s",
        format!("{} corrected p50/p99/p99.9", metric.name()),
        "uncorrected p50/p99/p99.9",
        "loss",
        "client lag",
    ));
    for s in &r.steps {
        let l = s.measures.as_ref().and_then(|m| m.metric(metric));
        let cells = s.cells();
        let trio = |p: Option<&Percentiles>| {
            format!(
                "{} / {} / {}",
                cell(p.map(|p| p.p50_us)),
                cell(p.map(|p| p.p99_us)),
                cell(p.map(|p| p.p99_9_us))
            )
        };
        out.push_str(&format!(
            "  {:>4}  {:<7}  {:>10}  {:>10}  {:>30}  {:>30}  {:>9}  {:>10}  {}\n",
            s.index,
            s.purpose.name(),
            thousands(s.load),
            cells.achieved,
            trio(l.map(|l| &l.corrected)),
            trio(l.map(|l| &l.uncorrected)),
            cells.loss,
            cells.client_lag,
            s.verdict.name()
        ));
        if s.verdict != Verdict::Pass {
            for why in s.reasons.iter().take(3) {
                out.push_str(&format!("          {why}\n"));
            }
        }
    }
    out.push_str(&r.statement);
    out.push('\n');
    if let Some(q) = &r.require {
        out.push_str(&format!("--require {}: {}\n", q.min, q.detail));
    }
    if let Some(b) = &r.baseline {
        out.push_str(&format!("baseline: {}\n", b.detail));
    }
    out
}

#[cfg(test)]
#[path = "result_tests.rs"]
mod tests;
