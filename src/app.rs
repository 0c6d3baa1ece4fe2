//! The commands: what `run` and `validate` do, start to end. Ties scenario → plan → engine → report
//! together and maps every outcome to an exit code. `main.rs` only parses and calls [`main`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{Cli, Command, RunArgs, ValidateArgs};
use crate::engine::processes::{self, PipeMessage, WorkerCommand};
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

/// Parse `I/N` (shard I of N, from 0).
fn parse_shard(text: &str) -> Result<Shard, CommandError> {
    let bad = || {
        CommandError::Usage(format!(
            "--shard: `{text}` is not a shard\n  hint: write `--shard I/N` with 0 <= I < N, e.g. `--shard 0/4` for the first of four"
        ))
    };
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let index: u32 = i.trim().parse().map_err(|_| bad())?;
    let count: u32 = n.trim().parse().map_err(|_| bad())?;
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

/// How many worker processes: none asked → 1; `auto` → as many as the open-file limit requires.
fn worker_count(args: &RunArgs, devices: u64, soft: u64) -> Result<u32, CommandError> {
    let Some(text) = &args.workers else {
        return Ok(1);
    };
    if text.trim() == "auto" {
        let per_process = soft.saturating_sub(limits::FD_RESERVE).max(1);
        return Ok(u32::try_from(devices.div_ceil(per_process))
            .unwrap_or(u32::MAX)
            .max(1));
    }
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(CommandError::Usage(format!(
            "--workers: `{text}` is not a worker count\n  hint: pass a number from 1 to 1024, or `auto` to size it from the open-file limit"
        ))),
    }
}

/// Refuse a plan that cannot fit under the open-file limit, before connecting anything.
fn check_fit(plan: &Plan, workers: u32, soft: u64, hard: u64) -> Result<(), CommandError> {
    if soft == 0 {
        return Ok(());
    }
    let embedded = plan.scenario.broker.url.is_none();
    let devices = plan.shard_devices();
    let per_process = devices.div_ceil(u64::from(workers.max(1)));
    let process_ok = limits::fits(per_process, soft, embedded && workers <= 1);
    // With workers, the embedded broker lives in the parent and holds one socket per device.
    let broker_ok = !(embedded && workers > 1) || limits::fits(devices, soft, false);
    if process_ok && broker_ok {
        return Ok(());
    }
    let needed = soft.saturating_sub(limits::FD_RESERVE).max(1);
    let suggestion = devices.div_ceil(needed);
    Err(CommandError::Usage(format!(
        "{devices} devices do not fit: {per_process} per process need about {} open files{}, but a process may open {soft} (hard limit {hard}).\n  \
         hint: run `--workers {}` (or `--workers auto`) to spread the fleet over processes{}; or raise the hard limit (ulimit -Hn / LimitNOFILE). `fleetstorm doctor SCENARIO` shows every limit",
        per_process * if embedded && workers <= 1 { 2 } else { 1 } + limits::FD_RESERVE,
        if embedded { " (the embedded broker holds the other end of each socket)" } else { "" },
        suggestion.max(2),
        if embedded { ", and point --broker at an external broker (the embedded one is a single process)" } else { "" },
    )))
}

fn run(args: &RunArgs) -> Result<Exit, CommandError> {
    let overrides = Overrides {
        broker: args.broker.clone(),
        duration: args.duration.clone(),
        devices: args.devices,
        seed: args.seed,
    };
    let scenario = load(&args.scenario, &overrides)?;
    let shard = match &args.shard {
        Some(s) => parse_shard(s)?,
        None => Shard::default(),
    };
    let plan = Plan::new(scenario, shard);
    let (soft, hard) = limits::raise_open_files();
    if args.worker_pipe {
        return run_worker_child(&plan, args);
    }
    let workers = worker_count(args, plan.shard_devices(), soft)?;
    check_fit(&plan, workers, soft, hard)?;
    eprint!("{}", describe(&plan));
    let options = RunOptions {
        threads: args.threads,
        progress: !args.no_progress,
        drain: Duration::from_secs(5),
        start_at_us: args.start_at_us,
        tick_hook: None,
    };
    let output = if workers > 1 {
        eprintln!("workers: {workers} processes");
        let exe = std::env::current_exe()
            .map_err(|e| CommandError::Usage(format!("cannot find this program's path: {e}")))?;
        let mut shared = vec![args.scenario.clone().into_os_string()];
        if let Some(b) = &args.broker {
            shared.extend(["--broker".into(), b.into()]);
        }
        if let Some(d) = &args.duration {
            shared.extend(["--duration".into(), d.into()]);
        }
        if let Some(n) = args.devices {
            shared.extend(["--devices".into(), n.to_string().into()]);
        }
        if let Some(seed) = args.seed {
            shared.extend(["--seed".into(), seed.to_string().into()]);
        }
        let mut argv: Vec<std::ffi::OsString> = vec!["run".into()];
        argv.extend(shared);
        processes::run(&plan, &options, workers, &WorkerCommand { exe, args: argv })?
    } else {
        engine::run(&plan, &options)?
    };
    eprintln!("broker: {}", output.broker_label);
    finish(&plan, args, output, soft)
}

/// As a worker process: run the shard, stream ticks and the final snapshot to the parent on stdout.
fn run_worker_child(plan: &Plan, args: &RunArgs) -> Result<Exit, CommandError> {
    let options = RunOptions {
        threads: args.threads,
        progress: false,
        drain: Duration::from_secs(5),
        start_at_us: args.start_at_us,
        tick_hook: Some(processes::stdout_tick_hook()),
    };
    let output = engine::run(plan, &options)?;
    let status = output.outcome.status;
    processes::write_line(&PipeMessage::Final {
        outcome: output.outcome,
        snapshot: output.snapshot,
        started_at_us: output.started_at_us,
        ended_at_us: output.ended_at_us,
        worker_threads: output.worker_threads,
    });
    Ok(if status == RunStatus::Completed {
        Exit::Success
    } else {
        Exit::Runtime
    })
}

/// Build the report, write it, print the summary, and map the outcome to the exit code.
fn finish(
    plan: &Plan,
    args: &RunArgs,
    output: engine::EngineOutput,
    open_files: u64,
) -> Result<Exit, CommandError> {
    let record = RunRecord {
        scenario: serde_json::to_value(plan.scenario.as_ref()).unwrap_or(serde_json::Value::Null),
        scenario_name: plan.scenario.name.clone(),
        broker: output.broker_label.clone(),
        environment: environment(open_files, output.worker_threads),
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
        _ => {
            eprintln!("run did not complete: {}", record.outcome.message);
            Exit::Runtime
        }
    })
}
