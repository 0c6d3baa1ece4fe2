//! Command-line types (clap derive). No I/O here: `app` turns these into actions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::EXIT_CODES_HELP;

/// Load tester and simulator for fleets of industrial MQTT devices.
#[derive(Debug, Parser)]
#[command(name = "fleetstorm", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: connect the fleet, publish, measure, write a report.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(RunArgs),
    /// Check a scenario file and print what it would do, without connecting anything.
    #[command(after_help = EXIT_CODES_HELP)]
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
    /// Broker to load, e.g. mqtt://127.0.0.1:1883 (default: the scenario's, else an embedded broker).
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// Length of every steady phase, e.g. 30s, 5m.
    #[arg(long, value_name = "D")]
    pub duration: Option<String>,
    /// Total devices, spread over the groups in proportion to their counts.
    #[arg(long, value_name = "N")]
    pub devices: Option<u64>,
    /// Report directory (default: reports/<name>-<UTC stamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed for telemetry and schedule offsets.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Hide the live progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
}
