//! Command-line types (clap derive). No I/O here: `app` turns these into actions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::{
    COMPARE_EXIT_CODES, DOCTOR_EXIT_CODES, EXIT_CODES_HELP, MERGE_EXIT_CODES, PREVIEW_EXIT_CODES,
    PROGRAM_EXIT_CODES, RENDER_EXIT_CODES, SEARCH_EXIT_CODES, SIMPLE_EXIT_CODES,
    VALIDATE_EXIT_CODES,
};

/// Load tester and simulator for fleets of industrial MQTT devices.
#[derive(Debug, Parser)]
#[command(name = "fleetstorm", version, about, after_help = PROGRAM_EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: connect the fleet, publish, measure, write a report.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(Box<RunArgs>),
    /// Capacity search: find how much load a broker takes before its SLOs break. Steps the load up
    /// geometrically from --from, then bisects between the last passing and the first failing load;
    /// the answer must pass twice. Each step is one run of the scenario (ramp, settle, measured
    /// window), judged on the window's corrected latency.
    #[command(after_help = SEARCH_EXIT_CODES)]
    Search(Box<SearchArgs>),
    /// Check a scenario file and print what it would do (groups, Sparkplug, phases, observers,
    /// thresholds, baseline), without connecting anything.
    #[command(after_help = VALIDATE_EXIT_CODES)]
    Validate(ValidateArgs),
    /// Print the limits that decide how many devices fit (open files, ports, memory) and whether a
    /// scenario fits them, with the exact fix when it does not.
    #[command(after_help = DOCTOR_EXIT_CODES)]
    Doctor(DoctorArgs),
    /// Work with report.json files: merge the reports of shards into one and evaluate its gates
    /// (merge), write a report in another format and evaluate thresholds on it (render), compare two
    /// runs (compare).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Print what one device of a profile publishes over time, as CSV (no broker): to see and tune a
    /// profile's signals. Held-back values (report by exception) are empty cells.
    #[command(after_help = PREVIEW_EXIT_CODES)]
    Preview(PreviewArgs),
    /// Print a shell completion script to stdout, e.g.
    /// `fleetstorm completions bash > ~/.local/share/bash-completion/completions/fleetstorm`.
    #[command(after_help = SIMPLE_EXIT_CODES)]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) to stdout, e.g. `fleetstorm man > fleetstorm.1; man ./fleetstorm.1`.
    #[command(after_help = SIMPLE_EXIT_CODES)]
    Man,
    /// Print the JSON Schema of scenario files (for editors: key completion and checks while typing).
    #[command(after_help = SIMPLE_EXIT_CODES)]
    Schema(SchemaArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// What `fleetstorm schema` prints the schema of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    /// Scenario files (YAML).
    Scenario,
    /// report.json.
    Report,
    /// search.json (what `fleetstorm search` writes).
    Search,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema.
    #[arg(value_enum, default_value = "scenario")]
    pub kind: SchemaKind,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Profile name: a built-in one, or one defined in --scenario.
    pub profile: String,
    /// Scenario file whose `profiles:` to read (and whose seed to use).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Samples to print.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub samples: u32,
    /// Time between samples, e.g. 1s, 5m (default: the profile's interval, else 1s).
    #[arg(long, value_name = "D")]
    pub every: Option<String>,
    /// Device number (each device has its own parameters and values).
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub device: u64,
    /// Seed (default: the scenario's, else 1).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Scenario file to check (optional).
    pub scenario: Option<PathBuf>,
    /// Total devices, as `run --devices` would.
    #[arg(long, value_name = "N")]
    pub devices: Option<u64>,
    /// Worker processes, as `run --workers` would.
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// Broker, as `run --broker` would.
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Merge the reports of separate shards (e.g. pods of a Kubernetes Indexed Job) into one exact
    /// report: histograms and counters add up, percentiles are recomputed from the merged histograms.
    /// Then evaluates the scenario's `thresholds:` and `baseline:` (and `--threshold`) on the merged
    /// report, writes junit.xml, summary.md and report.html with the verdicts, and exits like `run`.
    #[command(after_help = MERGE_EXIT_CODES)]
    Merge(MergeArgs),
    /// Write a report in another format from its report.json; `--threshold` gates are evaluated on it
    /// (a failed one is named, exit 1).
    #[command(after_help = RENDER_EXIT_CODES)]
    Render(RenderArgs),
    /// Compare two reports metric by metric; exit 1 when CURRENT regressed beyond the tolerance.
    #[command(after_help = COMPARE_EXIT_CODES)]
    Compare(CompareArgs),
}

/// Output formats of `report render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    Html,
    Md,
    Json,
    Junit,
    Hlog,
    Console,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// report.json or its directory.
    pub report: PathBuf,
    #[arg(long, value_enum, default_value = "html")]
    pub format: RenderFormat,
    /// Directory to write into (default: the report's own directory; `console` prints).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A threshold to evaluate on the report, e.g. `--threshold 'e2e.p99 < 50ms'` (repeatable): its
    /// verdict is printed, shown in the html, md and junit formats, and a failure exits 1.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline report.json (or its directory).
    pub base: PathBuf,
    /// The report to judge.
    pub current: PathBuf,
    /// Largest tolerated regression (default 10%).
    #[arg(long, value_name = "PCT")]
    pub max_regression: Option<String>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// report.json files or the directories holding them.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Where to write the merged report (default: reports/<name>-merged-<UTC stamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Add a threshold gate, evaluated on the merged report (repeatable; adds to the scenario's).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// Compare the merged report with an earlier report.json (replaces the scenario's baseline).
    #[arg(long, value_name = "REPORT")]
    pub baseline: Option<PathBuf>,
    /// Largest tolerated regression against the baseline (default: the scenario's, else 10%).
    #[arg(long, value_name = "PCT")]
    pub max_regression: Option<String>,
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
    /// Worker threads per process (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Split the fleet over N worker processes of this binary (`auto`: as many as the open-file
    /// limit requires). One merged report.
    #[arg(long, value_name = "N|auto")]
    pub workers: Option<String>,
    /// Run only shard I of N (a contiguous slice of the device ids), e.g. on one of N hosts; combine the
    /// reports with `fleetstorm report merge`, which evaluates the gates (a shard evaluates none).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Shared start time of all shards, µs since the Unix epoch (set by the parent for its workers;
    /// by hand when shards on several hosts must start together).
    #[arg(long, value_name = "US")]
    pub start_at_us: Option<u64>,
    /// Add a threshold gate, e.g. `--threshold 'e2e.p99 < 50ms'` (repeatable; adds to the scenario's).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// Compare with an earlier report.json (or its directory); exit 1 on a regression.
    #[arg(long, value_name = "REPORT")]
    pub baseline: Option<PathBuf>,
    /// Largest tolerated regression against the baseline (default 10%).
    #[arg(long, value_name = "PCT")]
    pub max_regression: Option<String>,
    /// Serve live metrics in the OpenMetrics text format at this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<std::net::SocketAddr>,
    /// Serve a live view of the run (a self-contained web page) at this address, e.g.
    /// 127.0.0.1:8080 (port 0 picks a free one; the address is printed at start).
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<std::net::SocketAddr>,
    /// Internal: stream JSON lines to a parent process instead of writing a report.
    #[arg(long, hide = true)]
    pub worker_pipe: bool,
    /// Internal: run one step of a capacity search, `VARY:LOAD:SETTLE_MS:WINDOW_MS` (set by
    /// `search --workers` for its worker processes).
    #[arg(long, hide = true, value_name = "STEP")]
    pub search_step: Option<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
}

/// What `search` varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VaryArg {
    /// The number of devices (each publishing at its group's interval).
    Devices,
    /// The fleet's total publish rate in msg/s (every group's interval scaled).
    Rate,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Scenario file (YAML): its groups, observers and ramp; its steady phases are replaced by the
    /// settle time and the measured window. Its `search:` block gives every setting below that no
    /// flag gives.
    pub scenario: PathBuf,
    /// A service-level objective each step must meet, in the threshold grammar, e.g.
    /// `--slo 'e2e.p99 < 50ms' --slo 'loss_ratio == 0'` (repeatable; default: the scenario's
    /// `search.slos`, else its `thresholds:`). Unscoped ones are evaluated on the measured window.
    #[arg(long = "slo", value_name = "EXPR")]
    pub slos: Vec<String>,
    /// What to vary: the number of devices, or the fleet's publish rate (msg/s) [default: devices].
    #[arg(long, value_enum)]
    pub vary: Option<VaryArg>,
    /// The first load (devices, or msg/s with --vary rate); or `search.from`.
    #[arg(long, value_name = "N")]
    pub from: Option<u64>,
    /// The highest load tried; or `search.to`.
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,
    /// Each growing step multiplies the load by this [default: 2].
    #[arg(long, value_name = "X")]
    pub growth: Option<f64>,
    /// Stop bisecting when the first failing load is within this much above the capacity
    /// [default: 5%].
    #[arg(long, value_name = "PCT")]
    pub resolution: Option<String>,
    /// Steps at most, confirmations included [default: 20].
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u32>,
    /// Time each step publishes at its load before the window is measured (0s: none) [default: 5s].
    #[arg(long, value_name = "D")]
    pub settle: Option<String>,
    /// The measured window of each step, the only part judged [default: 20s].
    #[arg(long, value_name = "D")]
    pub window: Option<String>,
    /// Exit 1 when the capacity found is below N.
    #[arg(long, value_name = "N")]
    pub require: Option<u64>,
    /// The search.json of an earlier search (or its folder): a capacity below its capacity x
    /// (1 - tolerance) is a regression (exit 1). Must be a search of the same scenario and load.
    #[arg(long, value_name = "SEARCH_JSON")]
    pub baseline: Option<PathBuf>,
    /// The tolerated capacity regression against --baseline [default: 10%].
    #[arg(long, value_name = "PCT")]
    pub tolerance: Option<String>,
    /// With --vary rate: the fleet size (default: the scenario's).
    #[arg(long, value_name = "N")]
    pub devices: Option<u64>,
    /// Broker to load (default: the scenario's, else one embedded broker for every step).
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// Where to write search.json, report.html, summary.md, junit.xml and each step's report.json
    /// (default: reports/<name>-search-<UTC stamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed for telemetry and schedule offsets.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Split each step's fleet over N worker processes of this binary (`auto`: as many as the
    /// open-file limit requires for the step's load), as `run --workers` does.
    #[arg(long, value_name = "N|auto")]
    pub workers: Option<String>,
    /// Hide each step's live progress bar (hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Serve live metrics in the OpenMetrics text format at this address during each step, with
    /// the search's own gauges (fleetstorm_search_step, _load, _passing_load, _failing_load).
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<std::net::SocketAddr>,
    /// Serve a live view at this address (port 0 picks one): each step's run, under a line saying
    /// which step it is and what the steps so far have shown.
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<std::net::SocketAddr>,
}
