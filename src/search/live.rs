//! Where a running search stands, for the live views (progress, `--ui`, `--prometheus`): the step
//! being run, its load and why, and what the steps so far have shown. Pure data and text.

use super::policy::{Purpose, Verdict};
use super::result::{thousands, Vary};

/// The search as it stands while a step runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStep {
    /// The step running now (from 1).
    pub index: u32,
    /// Its load.
    pub load: u64,
    pub purpose: Purpose,
    pub vary: Vary,
    /// The highest load that passed so far.
    pub passing: Option<u64>,
    /// The lowest load that failed so far.
    pub failing: Option<u64>,
    /// Steps run before this one.
    pub done: u32,
}

impl LiveStep {
    /// The state before step `index` at `load`, from the verdicts of the steps before it.
    pub fn new(
        index: u32,
        load: u64,
        purpose: Purpose,
        vary: Vary,
        history: &[(u64, Verdict)],
    ) -> LiveStep {
        let passing = history
            .iter()
            .filter(|(_, v)| *v == Verdict::Pass)
            .map(|(l, _)| *l)
            .max();
        let failing = history
            .iter()
            .filter(|(_, v)| *v == Verdict::Fail)
            .map(|(l, _)| *l)
            .min();
        LiveStep {
            index,
            load,
            purpose,
            vary,
            passing,
            failing,
            done: u32::try_from(history.len()).unwrap_or(u32::MAX),
        }
    }

    /// One line for the live view's header, e.g. "capacity search, step 4 (bisect): 12,000
    /// devices; passed 8,000, failed 16,000".
    pub fn describe(&self) -> String {
        let unit = self.vary.unit();
        let mut out = format!(
            "capacity search, step {} ({}): {} {unit}",
            self.index,
            self.purpose.name(),
            thousands(self.load)
        );
        match (self.passing, self.failing) {
            (None, None) => {}
            (Some(p), None) => out.push_str(&format!("; passed up to {}", thousands(p))),
            (None, Some(f)) => out.push_str(&format!("; failed at {}", thousands(f))),
            (Some(p), Some(f)) => out.push_str(&format!(
                "; passed {}, failed {}",
                thousands(p),
                thousands(f)
            )),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bracket_is_the_highest_pass_and_the_lowest_failure() {
        let history = [
            (1_000, Verdict::Pass),
            (2_000, Verdict::Pass),
            (4_000, Verdict::Fail),
            (3_000, Verdict::CannotJudge),
            (8_000, Verdict::Fail),
        ];
        let s = LiveStep::new(6, 2_500, Purpose::Bisect, Vary::Devices, &history);
        assert_eq!(s.passing, Some(2_000));
        assert_eq!(s.failing, Some(4_000));
        assert_eq!(s.done, 5);
        assert_eq!(
            s.describe(),
            "capacity search, step 6 (bisect): 2,500 devices; passed 2,000, failed 4,000"
        );
    }

    #[test]
    fn the_first_step_names_only_its_load() {
        let s = LiveStep::new(1, 500, Purpose::Grow, Vary::Rate, &[]);
        assert_eq!(s.passing, None);
        assert_eq!(s.describe(), "capacity search, step 1 (grow): 500 msg/s");
    }
}
