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

/// The exit-code table as printed by `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  the run completed and every gate passed
  1  a threshold or baseline gate failed
  2  usage or scenario error: nothing ran (the message names file, line, key and a fix)
  3  runtime failure: broker unreachable or lost (or devices could not hold a connection), devices that
     could not start, or interrupted (Ctrl-C); a partial report is still written";

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
