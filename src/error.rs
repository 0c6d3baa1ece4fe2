//! The exit-code contract and the top-level error of a command.

use crate::engine::EngineError;
use crate::report::ReportError;
use crate::scenario::ScenarioError;

/// Exit codes, documented in README.md and `--help`. Scripts and CI build on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The run completed and every gate passed.
    Success = 0,
    /// A threshold or baseline gate failed.
    GateFailed = 1,
    /// Usage or scenario error; nothing ran.
    Usage = 2,
    /// Runtime failure (broker unreachable or lost, devices that could not hold a connection or could
    /// not start, interrupted); a partial report was still written.
    Runtime = 3,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The exit-code table of `run` (and of the program as a whole), as printed by `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the run completed and every gate passed (a shard, `--shard I/N`: it ran; its gates are
     evaluated by `fleetstorm report merge`)
  1  a threshold or baseline gate failed
  2  usage or scenario error: nothing ran (the message names file, line, key and a fix)
  3  runtime failure: broker unreachable or lost (or devices could not hold a connection),
     devices that could not start, or interrupted (Ctrl-C); a partial report is still written";

/// The exit codes of the program, as `fleetstorm --help` prints them: each command's own
/// `--help` says what they mean for it.
pub const PROGRAM_EXIT_CODES: &str = "\
Exit codes (`fleetstorm COMMAND --help` gives each command's):
  0  success (a run or merge: every gate passed)
  1  a threshold or baseline gate failed
  2  usage or scenario error: nothing ran (the message names file, line, key and a fix)
  3  runtime failure (a run or merge that did not complete); a partial report is still written";

/// The exit codes of `completions`, `man` and `schema`.
pub const SIMPLE_EXIT_CODES: &str = "\
Exit codes:
  0  printed
  2  usage error (e.g. an unknown shell)";

/// The exit codes of `validate`.
pub const VALIDATE_EXIT_CODES: &str = "\
Exit codes:
  0  the scenario is valid (what it would do is printed)
  2  it is not: the message names file, line, key and a fix";

/// The exit codes of `doctor`.
pub const DOCTOR_EXIT_CODES: &str = "\
Exit codes:
  0  the limits are printed and, with a scenario, it fits this host
  2  the scenario does not fit this host (each FAIL line has its fix), or it is not valid";

/// The exit codes of `preview`.
pub const PREVIEW_EXIT_CODES: &str = "\
Exit codes:
  0  the CSV is printed
  2  unknown profile, invalid scenario file or option (the message says which, and the fix)";

/// The exit codes of `search`.
pub const SEARCH_EXIT_CODES: &str = "\
Exit codes:
  0  a capacity was found (or every step up to --to passed), at least --require when given and not
     below the baseline's capacity x (1 - tolerance) when a baseline is given; with --require, also
     when the search stopped early but a load of at least N passed
  1  the capacity found is below --require (or below --from), or regressed: below --baseline's
     capacity x (1 - --tolerance, default 10%); named on stderr, in junit.xml and summary.md
  2  usage or scenario error (a bad flag or `search:` key, a baseline that cannot be read or is of
     another scenario or --vary): nothing ran
  3  the search could not finish: a run ended early (broker unreachable or lost, interrupted), a
     step could not be judged before any failure (the load generator was the limit), or
     --max-steps ran out; search.json and the other files hold every step so far";

/// The exit codes of `report merge`.
pub const MERGE_EXIT_CODES: &str = "\
Exit codes:
  0  merged, and every gate passed (or none is set; a merge of only some shards defers the gates to
     the merge of all of them)
  1  a threshold or baseline gate failed on the merged report (named on stderr, in junit.xml and
     summary.md)
  2  a report cannot be read, the reports are not shards of one run (or one shard is given twice),
     or a gate is malformed: nothing was written
  3  the merged run did not complete (a shard failed or was interrupted), or the merged report
     cannot be written";

/// The exit codes of `report render`.
pub const RENDER_EXIT_CODES: &str = "\
Exit codes:
  0  written, and every --threshold passed
  1  a --threshold failed (named on stderr)
  2  the report cannot be read, or a threshold is malformed
  3  the output cannot be written";

/// The exit codes of `report compare`.
pub const COMPARE_EXIT_CODES: &str = "\
Exit codes:
  0  no quantity regressed beyond the tolerance
  1  CURRENT regressed beyond the tolerance (latency or loss up, rate down)
  2  a report cannot be read, or the tolerance is malformed";

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Report(#[from] ReportError),
}

impl CommandError {
    /// The exit code this error maps to.
    pub fn exit(&self) -> Exit {
        match self {
            CommandError::Scenario(_) | CommandError::Usage(_) => Exit::Usage,
            CommandError::Engine(_) | CommandError::Report(_) => Exit::Runtime,
        }
    }
}
