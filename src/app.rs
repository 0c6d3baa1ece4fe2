//! The commands: what `run` and `validate` do, start to end. Ties scenario → plan → engine → report
//! together and maps every outcome to an exit code. `main.rs` only parses and calls [`main`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::app_common::{self, check_out, load, DEFAULT_OUT_ROOT};
use crate::app_gates;
use crate::cli::{Cli, Command, DoctorArgs, MergeArgs, ReportCommand, RunArgs, ValidateArgs};
use crate::engine::processes::{self, PipeMessage, WorkerCommand};
use crate::engine::{self, embedded_tls, limits, RunOptions};
use crate::error::{CommandError, Exit};
use crate::metrics::Clock;
use crate::output;
use crate::plan::{Plan, Shard};
use crate::progress::Progress;
use crate::report::{self, Report, RunStatus};
use crate::scenario::{self, Overrides, PhaseKind, Scenario};
use crate::ui::Ui;

/// Run a parsed command line; returns the exit code. Prints the summary to stdout, errors to stderr.
pub fn main(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Search(args) => crate::app_search::search(&args),
        Command::Validate(args) => validate(&args),
        Command::Doctor(args) => doctor(&args),
        Command::Report(ReportCommand::Merge(args)) => merge(&args),
        Command::Report(ReportCommand::Render(args)) => app_gates::render(&args),
        Command::Report(ReportCommand::Compare(args)) => app_gates::compare(&args),
        Command::Preview(args) => crate::app_preview::preview(&args),
        Command::Completions(args) => crate::app_docs::completions(&args),
        Command::Man => crate::app_docs::man(),
        Command::Schema(args) => crate::app_docs::schema(&args),
    };
    match result {
        Ok(exit) => exit,
        Err(e) => {
            // A last guard: no password in a URL reaches the terminal, whatever the error quoted.
            eprintln!(
                "error: {}",
                scenario::error::mask_url_credentials(&e.to_string())
            );
            e.exit()
        }
    }
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
        .map(|g| g.name.chars().count())
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
            "  group {} {:>7} x {} every {:?}, QoS {}{}\n",
            report::pad_right(&g.name, name_width),
            g.count,
            report::pad_right(g.profile.name(), profile_width),
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
        if let scenario::PayloadKind::Sparkplug {
            group_id,
            devices,
            primary_host,
            device_outages,
        } = &g.payload
        {
            out.push_str(&format!(
                "    Sparkplug B: each connection an edge node of group `{group_id}` with {devices} device(s){}{}\n",
                primary_host
                    .as_ref()
                    .map_or_else(String::new, |h| format!(", births wait for primary host `{h}`")),
                device_outages.as_ref().map_or_else(String::new, |o| format!(
                    ", device outages {} for {:?}",
                    if o.rate_per_s >= 1.0 {
                        format!("at {}/s", o.rate_per_s)
                    } else {
                        format!("one every {:.0} s", 1.0 / o.rate_per_s)
                    },
                    o.duration
                ))
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

/// The observers and gates of a scenario, for `validate`.
fn describe_checks(s: &Scenario) -> String {
    let mut out = String::new();
    if s.observers.is_empty() {
        out.push_str("  observers: none (no end-to-end latency or delivery audit)\n");
    }
    for o in &s.observers {
        let audited: Vec<&str> = o
            .groups
            .iter()
            .filter_map(|&i| s.groups.get(i))
            .map(|g| g.name.as_str())
            .collect();
        out.push_str(&format!(
            "  observer {}: {} session(s), QoS {}{}, on {}; audits group(s) {}{}\n",
            o.name,
            o.count,
            o.qos as u8,
            if o.shared {
                ", one shared subscription"
            } else {
                ""
            },
            o.topics.join(", "),
            if audited.is_empty() {
                "none".to_owned()
            } else {
                audited.join(", ")
            },
            o.sparkplug_host
                .as_ref()
                .map_or_else(String::new, |h| format!(
                    "; Sparkplug primary host `{}`",
                    h.host_id
                ))
        ));
    }
    if s.thresholds.is_empty() {
        out.push_str("  thresholds: none\n");
    } else {
        out.push_str(&format!("  thresholds: {}\n", s.thresholds.len()));
        for t in &s.thresholds {
            out.push_str(&format!("    {t}\n"));
        }
    }
    if let Some(b) = &s.baseline {
        out.push_str(&format!(
            "  baseline: {} (tolerance {}%)\n",
            b.report.display(),
            (b.max_regression * 1000.0).round() / 10.0
        ));
    }
    if let Some(b) = &s.search {
        out.push_str(&describe_search(b));
    }
    out
}

/// The `search:` block, for `validate`: only the keys written (the rest come from flags or defaults).
fn describe_search(b: &scenario::SearchSettings) -> String {
    let pct = |f: f64| format!("{}%", (f * 1000.0).round() / 10.0);
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs_f64());
    let keys: Vec<String> = [
        b.vary.map(|v| format!("vary {}", v.name())),
        b.from.map(|n| format!("from {n}")),
        b.to.map(|n| format!("to {n}")),
        b.growth.map(|g| format!("growth {g}")),
        b.resolution.map(|r| format!("resolution {}", pct(r))),
        b.max_steps.map(|n| format!("max_steps {n}")),
        b.settle.map(|d| format!("settle {}", secs(d))),
        b.window.map(|d| format!("window {}", secs(d))),
        b.require.map(|n| format!("require {n}")),
        b.baseline
            .as_ref()
            .map(|p| format!("baseline {}", p.display())),
        b.tolerance.map(|t| format!("tolerance {}", pct(t))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut out = format!(
        "  search: {}\n",
        if keys.is_empty() {
            "(flags and defaults)".to_owned()
        } else {
            keys.join(", ")
        }
    );
    for t in &b.slos {
        out.push_str(&format!("    slo {t}\n"));
    }
    out
}

fn validate(args: &ValidateArgs) -> Result<Exit, CommandError> {
    let s = load(&args.scenario, &Overrides::default())?;
    let plan = Plan::new(s, Shard::default());
    print!("{}", describe(&plan));
    print!("{}", describe_checks(&plan.scenario));
    println!("{}: valid", args.scenario.display());
    Ok(Exit::Success)
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

/// Refuse a plan that cannot fit this host, before connecting anything, with the same advice
/// `doctor` prints.
fn check_fit(
    plan: &Plan,
    (args, workers): (&RunArgs, u32),
    facts: &limits::Facts,
) -> Result<(), CommandError> {
    let problems: Vec<String> = limits::assess(plan, workers, facts)
        .into_iter()
        .filter(|f| !f.ok)
        .map(|f| format!("{}\n  hint: {}", f.what, f.fix))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    // The doctor command for this very run: the file as the user named it, with the same flags.
    let mut doctor = format!("fleetstorm doctor {}", shell_word(&args.scenario));
    if let Some(n) = args.devices {
        doctor.push_str(&format!(" --devices {n}"));
    }
    doctor.push_str(&format!(" --workers {workers}"));
    Err(CommandError::Usage(format!(
        "the plan does not fit this host:\n{}\n  (`{doctor}` shows every limit)",
        problems.join("\n"),
    )))
}

/// The latest `--start-at-us` accepted, ahead of now: shards are started together within minutes.
const START_AT_HORIZON_US: u64 = 24 * 3600 * 1_000_000;

/// Refuse a shared start time more than a day ahead (the run would wait that long, and times near the
/// end of the `u64` range overflow the schedule).
fn check_start_at(start_at_us: Option<u64>) -> Result<(), CommandError> {
    let Some(at) = start_at_us else {
        return Ok(());
    };
    let now = Clock::new().now_us();
    if at <= now.saturating_add(START_AT_HORIZON_US) {
        return Ok(());
    }
    Err(CommandError::Usage(format!(
        "--start-at-us: {at} is {} hours from now\n  hint: pass a start within 24 hours, in µs since the Unix epoch, e.g. `--start-at-us $(( ($(date +%s) + 30) * 1000000 ))` for 30 s from now",
        (at - now) / 3_600_000_000
    )))
}

/// A path as a shell word the user can paste: quoted when it holds anything but plain characters.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | ':' | ','));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
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
            shell_word(path)
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
        let r = app_gates::load_report(p, "report merge", "a shard report")?;
        reports.push((p.clone(), r));
    }
    let record = report::merge::merge(&reports)
        .map_err(|e| CommandError::Usage(format!("report merge: {e}")))?;
    let report = Report::build(&record)?;
    // Only once the inputs are known to merge and the gates to load: a refused merge leaves no
    // folder behind.
    let gates = app_gates::collect_for_merge(args, &report)?;
    check_out(args.out.as_deref())?;
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => report::default_dir(
            Path::new(DEFAULT_OUT_ROOT),
            &format!("{}-merged", record.scenario_name),
            record.started_at_us,
        ),
    };
    let (verdicts, comparison) = app_gates::judge(&gates, &report);
    let written = output::write_with_gates(&report, &verdicts, comparison.as_ref(), &dir)?;
    println!("{}", output::console::render(&report));
    println!("merged {} reports", reports.len());
    let passed = app_gates::print(&gates, &report, &verdicts, comparison.as_ref());
    for p in &written {
        println!("wrote {}", p.display());
    }
    let exit = app_gates::exit_for(report.outcome.status, passed);
    match exit {
        Exit::GateFailed => {
            for line in app_gates::failures(&verdicts, comparison.as_ref()) {
                eprintln!("{line}");
            }
            eprintln!("gates failed: see the thresholds / baseline table above");
        }
        Exit::Runtime => eprintln!(
            "the merged run did not complete ({}): {}",
            report.outcome.status.name(),
            report.outcome.message
        ),
        Exit::Success | Exit::Usage => {}
    }
    Ok(exit)
}

fn run(args: &RunArgs) -> Result<Exit, CommandError> {
    let overrides = Overrides {
        broker: args.broker.clone(),
        duration: args.duration.clone(),
        devices: args.devices,
        seed: args.seed,
    };
    let mut scenario = load(&args.scenario, &overrides)?;
    if let Some(step) = &args.search_step {
        // A worker process of `search --workers`: the step's scenario, as the parent runs it.
        scenario = crate::app_search::StepSpec::parse(step)?.apply(&scenario)?;
    }
    // Zero-setup TLS (`broker.tls` and no URL): the embedded broker behind a TLS front, kept until the
    // run ends; a worker process reads the parent's CA files.
    let _embedded_tls = if args.worker_pipe {
        if let Some(dir) = std::env::var_os(embedded_tls::DIR_ENV) {
            embedded_tls::adopt(&mut scenario, std::path::Path::new(&dir));
        }
        None
    } else {
        embedded_tls::start(&mut scenario)?
    };
    // `broker.tls` files (CA, fleet certificate and key) are read before anything connects: exit 2.
    crate::engine::tls::clients(&scenario.broker)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    if crate::engine::tls::insecure(&scenario.broker) && !args.worker_pipe {
        eprintln!("warning: broker.tls.insecure_skip_verify is true: the broker's certificate is NOT verified (anyone on the path can impersonate it); the report records this");
    }
    let shard = match &args.shard {
        Some(s) => parse_shard(s)?,
        None => Shard::default(),
    };
    check_start_at(args.start_at_us)?;
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
    let workers = app_common::worker_count(args.workers.as_deref(), plan.shard_devices(), soft)?;
    check_fit(&plan, (args, workers), &facts)?;
    let gates = app_gates::collect(args, &plan.scenario, plan.shard.count)?;
    check_out(args.out.as_deref())?;
    eprint!("{}", describe(&plan));
    let ui = app_common::start_ui(args.ui)?;
    let mut watchers: Vec<Arc<dyn engine::Watch>> =
        vec![Arc::new(Progress::new(!args.no_progress))];
    if let Some(ui) = &ui {
        watchers.push(Arc::new(ui.clone()));
    }
    let options = RunOptions {
        threads: args.threads,
        drain: Duration::from_secs(5),
        start_at_us: args.start_at_us,
        tick_hook: None,
        prometheus: args.prometheus.map(|addr| engine::Prometheus {
            addr,
            exposition: Arc::new(output::openmetrics::render),
        }),
        watchers,
        start_gate: None,
    };
    let ran = if workers > 1 {
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
    eprintln!("broker: {}", ran.broker_label);
    finish(&plan, args, &gates, ran, soft, ui.as_ref())
}

/// As a worker process: run the shard, stream ticks and the final snapshot to the parent on stdout.
fn run_worker_child(plan: &Plan, args: &RunArgs) -> Result<Exit, CommandError> {
    let options = RunOptions {
        threads: args.threads,
        drain: Duration::from_secs(5),
        start_at_us: args.start_at_us,
        tick_hook: Some(processes::stdout_tick_hook()),
        prometheus: None,
        watchers: Vec::new(),
        // without a shared start time, the parent gives one once every worker is ready
        start_gate: args.start_at_us.is_none().then(processes::stdin_start_gate),
    };
    let ran = engine::run(plan, &options)?;
    let status = ran.outcome.status;
    processes::write_line(&PipeMessage::Final {
        outcome: ran.outcome,
        snapshot: ran.snapshot,
        started_at_us: ran.started_at_us,
        ended_at_us: ran.ended_at_us,
        worker_threads: ran.worker_threads,
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
    ran: engine::EngineOutput,
    open_files: u64,
    ui: Option<&Ui>,
) -> Result<Exit, CommandError> {
    let record = crate::app_common::record(plan, ran, open_files);
    let report = Report::build(&record)?;
    // The report holds its own copy of the measurements; free this one before the writers run.
    drop(record.snapshot);
    let dir: PathBuf = match &args.out {
        Some(d) => d.clone(),
        None => report::default_dir(
            Path::new(DEFAULT_OUT_ROOT),
            &record.scenario_name,
            record.started_at_us,
        ),
    };
    let (verdicts, comparison) = app_gates::judge(gates, &report);
    let written = output::write_with_gates(&report, &verdicts, comparison.as_ref(), &dir);
    // The summary comes first, whatever happened to the files: the run is never lost.
    println!("{}", output::console::render(&report));
    let passed = app_gates::print(gates, &report, &verdicts, comparison.as_ref());
    if let Some(ui) = ui {
        ui.finish(&report, &verdicts, Duration::from_secs(3));
    }
    let misplaced = match written {
        Ok(w) => {
            for p in &w {
                println!("wrote {}", p.display());
            }
            false
        }
        Err(e) => {
            // The folder was writable before the run (checked); it no longer is (disk full,
            // removed, replaced). Write the report where it can go and say where.
            let fallback = report::default_dir(
                &std::env::temp_dir(),
                &format!("fleetstorm-{}", record.scenario_name),
                record.started_at_us,
            );
            eprintln!("error: cannot write the report to {}: {e}", dir.display());
            match output::write_with_gates(&report, &verdicts, comparison.as_ref(), &fallback) {
                Ok(w) => {
                    for p in &w {
                        println!("wrote {}", p.display());
                    }
                    eprintln!(
                        "the report was written to {} instead (exit 3: it is not where it was asked for)",
                        fallback.display()
                    );
                }
                Err(e2) => eprintln!(
                    "error: the fallback folder {} failed too: {e2}\n  the summary above is all that is left of this run",
                    fallback.display()
                ),
            }
            true
        }
    };
    let exit = app_gates::exit_for(record.outcome.status, passed);
    match exit {
        Exit::GateFailed => {
            for line in app_gates::failures(&verdicts, comparison.as_ref()) {
                eprintln!("{line}");
            }
            eprintln!("gates failed: see the thresholds / baseline table above");
        }
        Exit::Runtime => {
            eprintln!("run did not complete: {}", record.outcome.message);
            if matches!(
                record.outcome.status,
                RunStatus::BrokerUnreachable | RunStatus::BrokerLost
            ) {
                eprintln!(
                    "  hint: the broker settings are under `broker:` in {} (`--broker URL` overrides the address)",
                    shell_word(&args.scenario)
                );
            }
        }
        Exit::Success | Exit::Usage => {}
    }
    // A report that is not where it was asked for is a runtime failure, whatever the verdict.
    Ok(if misplaced { Exit::Runtime } else { exit })
}
