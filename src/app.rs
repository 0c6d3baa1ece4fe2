//! The commands: what `run` and `validate` do, start to end. Ties scenario → plan → engine → report
//! together and maps every outcome to an exit code. `main.rs` only parses and calls [`main`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{Cli, Command, RunArgs, ValidateArgs};
use crate::engine::{self, limits, RunOptions};
use crate::error::{CommandError, Exit};
use crate::metrics::Clock;
use crate::plan::{Plan, Shard};
use crate::report::{self, Environment, Report, RunRecord, RunStatus};
use crate::scenario::{self, Overrides, PhaseKind, Scenario};

/// Run a parsed command line; returns the exit code. Prints the summary to stdout, errors to stderr.
pub fn main(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Validate(args) => validate(&args),
    };
    match result {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit()
        }
    }
}

fn load(path: &Path, overrides: &Overrides) -> Result<Scenario, CommandError> {
    let s = scenario::load(path)?;
    Ok(s.apply_overrides(overrides)?)
}

/// One line per phase, for `validate` and the start of `run`.
fn describe(plan: &Plan) -> String {
    let s = &plan.scenario;
    let mut out = format!(
        "scenario `{}`: {} devices in {} group(s), MQTT {}, broker {}\n",
        s.name,
        plan.total_devices(),
        s.groups.len(),
        match s.broker.protocol {
            scenario::MqttVersion::V311 => "3.1.1",
            scenario::MqttVersion::V5 => "5",
        },
        s.broker
            .url
            .as_ref()
            .map_or_else(|| "embedded".to_owned(), |u| u.to_string())
    );
    for g in &s.groups {
        out.push_str(&format!(
            "  group {:<12} {:>7} x {:<20} every {:?}, QoS {}{}\n",
            g.name,
            g.count,
            g.profile.name(),
            g.interval,
            g.qos as u8,
            if g.retain { ", retained" } else { "" }
        ));
    }
    let timeline = plan.timeline(0);
    for (p, w) in s.phases.iter().zip(&timeline.phases) {
        let secs = (w.end_us - w.start_us) as f64 / 1e6;
        match &p.kind {
            PhaseKind::Ramp { connect_rate_per_s } => out.push_str(&format!(
                "  phase {:<12} ramp at {connect_rate_per_s}/s ({secs:.1} s)\n",
                p.name
            )),
            PhaseKind::Steady { .. } => {
                out.push_str(&format!("  phase {:<12} steady for {secs:.1} s\n", p.name))
            }
        }
    }
    out
}

fn validate(args: &ValidateArgs) -> Result<Exit, CommandError> {
    let s = load(&args.scenario, &Overrides::default())?;
    let plan = Plan::new(s, Shard::default());
    print!("{}", describe(&plan));
    println!("{}: valid", args.scenario.display());
    Ok(Exit::Success)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

fn environment(open_files: u64, worker_threads: usize) -> Environment {
    Environment {
        host: hostname(),
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        fleetstorm_version: env!("CARGO_PKG_VERSION").to_owned(),
        open_files_limit: open_files,
        clock_source: Clock::new().source().to_owned(),
        worker_threads,
    }
}

fn run(args: &RunArgs) -> Result<Exit, CommandError> {
    let overrides = Overrides {
        broker: args.broker.clone(),
        duration: args.duration.clone(),
        devices: args.devices,
        seed: args.seed,
    };
    let scenario = load(&args.scenario, &overrides)?;
    let plan = Plan::new(scenario, Shard::default());
    let (soft, hard) = limits::raise_open_files();
    let embedded = plan.scenario.broker.url.is_none();
    if soft > 0 && !limits::fits(plan.shard_devices(), soft, embedded) {
        return Err(CommandError::Usage(format!(
            "{} devices need about {} open files{}, but this process may open {soft} (hard limit {hard}).\n  \
             hint: run fewer devices per process (--devices), raise the hard limit (ulimit -Hn / LimitNOFILE), \
             or point --broker at an external broker so the embedded one does not share the limit",
            plan.shard_devices(),
            plan.shard_devices() * if embedded { 2 } else { 1 } + limits::FD_RESERVE,
            if embedded { " (the embedded broker holds the other end of each socket)" } else { "" },
        )));
    }
    eprint!("{}", describe(&plan));
    let options = RunOptions {
        threads: args.threads,
        progress: !args.no_progress,
        drain: Duration::from_secs(5),
    };
    let output = engine::run(&plan, &options)?;
    eprintln!("broker: {}", output.broker_label);
    let record = RunRecord {
        scenario: serde_json::to_value(plan.scenario.as_ref()).unwrap_or(serde_json::Value::Null),
        scenario_name: plan.scenario.name.clone(),
        broker: output.broker_label.clone(),
        environment: environment(soft, output.worker_threads),
        outcome: output.outcome.clone(),
        started_at_us: output.started_at_us,
        ended_at_us: output.ended_at_us,
        snapshot: output.snapshot,
        series: output.series,
    };
    let report = Report::build(&record)?;
    let dir: PathBuf = match &args.out {
        Some(d) => d.clone(),
        None => report::default_dir(
            Path::new("reports"),
            &record.scenario_name,
            record.started_at_us,
        ),
    };
    let written = report::write_all(&report, &dir)?;
    println!("{}", report::console::render(&report));
    for p in &written {
        println!("wrote {}", p.display());
    }
    Ok(match record.outcome.status {
        RunStatus::Completed => Exit::Success,
        RunStatus::Interrupted | RunStatus::BrokerUnreachable | RunStatus::BrokerLost => {
            eprintln!("run did not complete: {}", record.outcome.message);
            Exit::Runtime
        }
    })
}
