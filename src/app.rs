//! The commands: what `run` and `validate` do, start to end. Ties scenario → plan → engine → report
//! together and maps every outcome to an exit code. `main.rs` only parses and calls [`main`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app_gates;
use crate::cli::{Cli, Command, DoctorArgs, MergeArgs, ReportCommand, RunArgs, ValidateArgs};
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
        Command::Doctor(args) => doctor(&args),
        Command::Report(ReportCommand::Merge(args)) => merge(&args),
        Command::Report(ReportCommand::Render(args)) => app_gates::render(&args),
        Command::Report(ReportCommand::Compare(args)) => app_gates::compare(&args),
        Command::Preview(args) => crate::app_preview::preview(&args),
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
    let name_width = s
        .groups
        .iter()
        .map(|g| g.name.len())
        .max()
        .unwrap_or(0)
        .max(12);
    let profile_width = s
        .groups
        .iter()
        .map(|g| g.profile.name().len())
        .max()
        .unwrap_or(0);
    for g in &s.groups {
        out.push_str(&format!(
            "  group {:<name_width$} {:>7} x {:<profile_width$} every {:?}, QoS {}{}\n",
            g.name,
            g.count,
            g.profile.name(),
            g.interval,
            g.qos as u8,
            if g.retain { ", retained" } else { "" }
        ));
        if let Some(x) = g.session.as_ref().filter(|x| !x.clean) {
            out.push_str(&format!(
                "    persistent sessions (clean: false; MQTT 5 expiry {} s)
",
                x.expiry.as_secs()
            ));
        }
        if let Some(c) = &g.commands {
            out.push_str(&format!(
                "    commands at {}/s, QoS {}, to `{}`, replies on `{}`
",
                c.rate_per_s,
                c.qos as u8,
                c.topic.as_str(),
                c.reply_topic.as_str()
            ));
        }
    }
    let mut described: Vec<&str> = Vec::new();
    for g in &s.groups {
        let profile = &g.profile;
        if described.contains(&profile.name()) {
            continue;
        }
        described.push(profile.name());
        let outputs: Vec<&str> = profile.outputs().iter().map(|o| &*o.name).collect();
        out.push_str(&format!(
            "  profile {}: {} values ({}){}\n",
            profile.name(),
            outputs.len(),
            outputs.join(", "),
            match profile.def().states.len() {
                0 => String::new(),
                n => format!(", {n} machine states"),
            }
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
            PhaseKind::Churn { rate_per_s, .. } => out.push_str(&format!(
                "  phase {:<12} churn for {secs:.1} s: {rate_per_s} devices/s drop and reconnect\n",
                p.name
            )),
            PhaseKind::Storm { fraction, .. } => out.push_str(&format!(
                "  phase {:<12} storm for {secs:.1} s: {:.0}% of the fleet drops at its start\n",
                p.name,
                fraction * 100.0
            )),
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

/// Refuse a plan that cannot fit this host, before connecting anything, with the same advice
/// `doctor` prints.
fn check_fit(plan: &Plan, workers: u32, facts: &limits::Facts) -> Result<(), CommandError> {
    let problems: Vec<String> = limits::assess(plan, workers, facts)
        .into_iter()
        .filter(|f| !f.ok)
        .map(|f| format!("{}\n  hint: {}", f.what, f.fix))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(CommandError::Usage(format!(
        "the plan does not fit this host:\n{}\n  (`fleetstorm doctor {}` shows every limit)",
        problems.join("\n"),
        plan.scenario.name
    )))
}

fn doctor(args: &DoctorArgs) -> Result<Exit, CommandError> {
    let f = limits::Facts::gather();
    println!("host limits");
    println!("  cores                 {}", f.cores);
    println!(
        "  open files            {} (hard {}; raised to the hard limit at start)",
        f.open_files_soft, f.open_files_hard
    );
    println!(
        "  ephemeral ports       {}-{} ({} ports; ~{} usable by connect() per source address and broker address)",
        f.ephemeral_ports.0,
        f.ephemeral_ports.1,
        f.port_count(),
        f.usable_ports_per_pair()
    );
    println!("  listen backlog        somaxconn {}", f.somaxconn);
    println!(
        "  memory                {} MiB available of {} MiB",
        f.mem_available_bytes >> 20,
        f.mem_total_bytes >> 20
    );
    println!(
        "  devices per process   {} at most",
        f.open_files_soft.saturating_sub(limits::FD_RESERVE)
    );
    let Some(path) = &args.scenario else {
        return Ok(Exit::Success);
    };
    let overrides = Overrides {
        broker: args.broker.clone(),
        devices: args.devices,
        ..Overrides::default()
    };
    let (plan, auto_sources) =
        limits::with_auto_sources(Plan::new(load(path, &overrides)?, Shard::default()), &f);
    let workers = args
        .workers
        .unwrap_or_else(|| limits::workers_needed(plan.shard_devices(), f.open_files_soft));
    println!();
    print!("{}", describe(&plan));
    println!(
        "  sources/targets       {} source address(es), {} broker address(es)",
        plan.scenario.broker.source_addresses.len().max(1),
        plan.scenario.broker.targets().len().max(1)
    );
    if let Some(auto) = &auto_sources {
        println!("  {}", auto.describe());
    }
    println!(
        "  worker processes      {workers}{}",
        if args.workers.is_none() {
            " (the fewest the open-file limit allows)"
        } else {
            ""
        }
    );
    println!();
    let findings = limits::assess(&plan, workers, &f);
    let mut fits = true;
    for finding in &findings {
        if finding.ok {
            println!("  ok    {}", finding.what);
        } else {
            fits = false;
            println!("  FAIL  {}\n        fix: {}", finding.what, finding.fix);
        }
    }
    println!();
    if fits {
        let flag = if workers > 1 {
            format!(" --workers {workers}")
        } else {
            String::new()
        };
        println!(
            "fits: run it with `fleetstorm run {}{flag}`",
            path.display()
        );
        Ok(Exit::Success)
    } else {
        println!("does not fit: apply the fixes above");
        Ok(Exit::Usage)
    }
}

fn merge(args: &MergeArgs) -> Result<Exit, CommandError> {
    let mut reports = Vec::with_capacity(args.reports.len());
    for p in &args.reports {
        reports.push(report::load(p)?);
    }
    let record = report::merge::merge(&reports)?;
    let report = Report::build(&record)?;
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => report::default_dir(
            Path::new("reports"),
            &format!("{}-merged", record.scenario_name),
            record.started_at_us,
        ),
    };
    let written = report::write_all(&report, &dir)?;
    println!("{}", report::console::render(&report));
    println!("merged {} reports", reports.len());
    for p in &written {
        println!("wrote {}", p.display());
    }
    Ok(Exit::Success)
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
    let facts = limits::Facts::gather();
    // Loopback source addresses when one address has too few ports (every worker chooses the same).
    let (plan, auto_sources) = limits::with_auto_sources(Plan::new(scenario, shard), &facts);
    let soft = facts.open_files_soft;
    if args.worker_pipe {
        return run_worker_child(&plan, args);
    }
    if let Some(auto) = &auto_sources {
        eprintln!("{}", auto.describe());
    }
    let workers = worker_count(args, plan.shard_devices(), soft)?;
    check_fit(&plan, workers, &facts)?;
    let gates = app_gates::collect(args, &plan.scenario)?;
    eprint!("{}", describe(&plan));
    let options = RunOptions {
        threads: args.threads,
        progress: !args.no_progress,
        drain: Duration::from_secs(5),
        start_at_us: args.start_at_us,
        tick_hook: None,
        prometheus: args.prometheus,
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
    finish(&plan, args, &gates, output, soft)
}

/// As a worker process: run the shard, stream ticks and the final snapshot to the parent on stdout.
fn run_worker_child(plan: &Plan, args: &RunArgs) -> Result<Exit, CommandError> {
    let options = RunOptions {
        threads: args.threads,
        progress: false,
        drain: Duration::from_secs(5),
        start_at_us: args.start_at_us,
        tick_hook: Some(processes::stdout_tick_hook()),
        prometheus: None,
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
    gates: &app_gates::Gates,
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
    let (verdicts, comparison) = app_gates::evaluate(gates, &report);
    let written = report::write_with_gates(&report, &verdicts, comparison.as_ref(), &dir)?;
    println!("{}", report::console::render(&report));
    let passed = app_gates::print(gates, &report, &verdicts, comparison.as_ref());
    for p in &written {
        println!("wrote {}", p.display());
    }
    Ok(match record.outcome.status {
        RunStatus::Completed if passed => Exit::Success,
        RunStatus::Completed => {
            eprintln!("gates failed: see the thresholds / baseline table above");
            Exit::GateFailed
        }
        _ => {
            eprintln!("run did not complete: {}", record.outcome.message);
            Exit::Runtime
        }
    })
}
