//! `fleetstorm search`: each step of the capacity search is one run of the scenario through the
//! engine, at the step's load, with its steady phases replaced by a settle time and the measured
//! window; the pure `search` module decides the steps and judges each one. Every step reconnects its
//! fleet (one embedded broker serves them all when the scenario names none).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::app_common::{self, DEFAULT_OUT_ROOT};
use crate::app_search_args::{self, usage, SEARCH_JSON};
use crate::broker::{self, EmbeddedLimits};
use crate::cli::SearchArgs;
use crate::engine::processes::{self, WorkerCommand};
use crate::engine::{self, embedded_tls, limits, EngineError, RunOptions};
use crate::error::{CommandError, Exit};
use crate::gate::Threshold;
use crate::metrics::Clock;
use crate::output;
use crate::plan::{Plan, Shard};
use crate::progress::Progress;
use crate::report::{self, Report};
use crate::scenario::{self, BrokerUrl, Overrides, Phase, PhaseKind, Scenario, Transport};
use crate::search::{self, Conclusion, LiveStep, Next, Purpose, Search, SearchResult, Step, Vary};
use crate::ui::Ui;

/// The name of the settle phase of a step.
const SETTLE: &str = "settle";
/// The name of the measured window: the summary phase of each step's report.
const WINDOW: &str = "steady";

/// One step as a worker process of `search --workers` is told it (`--search-step`): the load applied
/// to the scenario file, and the settle time and window that replace its steady phases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StepSpec {
    pub vary: Vary,
    pub load: u64,
    pub settle: Duration,
    pub window: Duration,
}

impl StepSpec {
    /// `VARY:LOAD:SETTLE_MS:WINDOW_MS`, e.g. `devices:1000:5000:20000`.
    pub fn arg(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.vary.name(),
            self.load,
            self.settle.as_millis(),
            self.window.as_millis()
        )
    }

    pub fn parse(text: &str) -> Result<StepSpec, CommandError> {
        let bad = || {
            usage(
                "--search-step",
                format!("`{text}` is not a search step"),
                "it is set by `fleetstorm search --workers` for its worker processes: write `VARY:LOAD:SETTLE_MS:WINDOW_MS`, e.g. `devices:1000:5000:20000`",
            )
        };
        let parts: Vec<&str> = text.split(':').collect();
        let [vary, load, settle, window] = parts.as_slice() else {
            return Err(bad());
        };
        let vary = match *vary {
            "devices" => Vary::Devices,
            "rate" => Vary::Rate,
            _ => return Err(bad()),
        };
        let number = |t: &str| t.parse::<u64>().map_err(|_| bad());
        Ok(StepSpec {
            vary,
            load: number(load)?,
            settle: Duration::from_millis(number(settle)?),
            window: Duration::from_millis(number(window)?),
        })
    }

    /// The step's scenario from the base one.
    pub fn apply(&self, base: &Scenario) -> Result<Scenario, CommandError> {
        step_scenario(base, self.vary, self.load, self.settle, self.window)
    }
}

/// How a step runs in several worker processes (`--workers`): this program and the arguments every
/// worker shares (each gets its shard and the step from the parent).
struct Workers {
    /// `--workers` as given (a count, or `auto`).
    count: String,
    exe: PathBuf,
    /// `run FILE [--broker URL] [--devices N] [--seed S]`.
    args: Vec<std::ffi::OsString>,
}

/// Everything a step needs that does not change between steps.
struct Setup {
    base: Scenario,
    vary: Vary,
    slos: Vec<Threshold>,
    settle: Duration,
    window: Duration,
    threads: usize,
    dir: PathBuf,
    facts: limits::Facts,
    /// The embedded broker runs in this process (it holds the other end of every socket).
    embedded: bool,
    live: Live,
    workers: Option<Workers>,
}

/// What shows a step while it runs: the progress bar, the `--ui` view, the `--prometheus` endpoint.
struct Live {
    progress: bool,
    ui: Option<Ui>,
    prometheus: Option<std::net::SocketAddr>,
}

impl Live {
    /// The run options of one step, its live views told where the search stands.
    fn options(&self, threads: usize, step: &LiveStep) -> RunOptions {
        if let Some(ui) = &self.ui {
            ui.set_context(&step.describe());
        }
        let mut watchers: Vec<Arc<dyn engine::Watch>> =
            vec![Arc::new(Progress::new(self.progress))];
        if let Some(ui) = &self.ui {
            watchers.push(Arc::new(ui.clone()));
        }
        let shown = step.clone();
        RunOptions {
            threads,
            drain: Duration::from_secs(5),
            prometheus: self.prometheus.map(|addr| engine::Prometheus {
                addr,
                exposition: Arc::new(move |scenario, counters, connected, latency| {
                    output::openmetrics::render_search(
                        scenario, counters, connected, latency, &shown,
                    )
                }),
            }),
            watchers,
            ..RunOptions::default()
        }
    }
}

/// `fleetstorm search`.
pub fn search(args: &SearchArgs) -> Result<Exit, CommandError> {
    let overrides = Overrides {
        broker: args.broker.clone(),
        devices: args.devices,
        seed: args.seed,
        ..Overrides::default()
    };
    let mut base = app_common::load(&args.scenario, &overrides)?;
    if app_search_args::vary(args, &base) == Vary::Devices && args.devices.is_some() {
        return Err(usage(
            "--devices",
            "with --vary devices the number of devices is the load",
            "leave out --devices and set the range with --from and --to, or pass --vary rate",
        ));
    }
    let settings = app_search_args::resolve(args, &base)?;
    let (vary, slos, policy) = (
        settings.vary,
        settings.slos.clone(),
        settings.policy.clone(),
    );
    let (settle, window) = (settings.settle, settings.window);
    // Both ends of the range must make a valid scenario before anything runs.
    for load in [policy.from, policy.to] {
        step_scenario(&base, vary, load, settle, window)?;
    }
    app_common::check_out(args.out.as_deref())?;
    // Zero-setup TLS, or one embedded broker for every step (rumqttd cannot be stopped, so a
    // broker per step would pile up).
    let _embedded_tls = embedded_tls::start(&mut base)?;
    let embedded = base.broker.targets().is_empty() || base.broker.embedded_tls;
    let broker_label = if base.broker.targets().is_empty() {
        let b = broker::start_embedded(EmbeddedLimits::default()).map_err(EngineError::from)?;
        let addr = match base.broker.protocol {
            scenario::MqttVersion::V311 => b.v4,
            scenario::MqttVersion::V5 => b.v5,
        };
        base.broker.url = Some(BrokerUrl {
            scheme: "mqtt".into(),
            transport: Transport::Tcp,
            host: addr.ip().to_string(),
            port: addr.port(),
            path: String::new(),
        });
        format!("embedded rumqttd (mqtt://{addr})")
    } else {
        base.broker
            .targets()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let dir = args.out.clone().unwrap_or_else(|| {
        report::default_dir(
            Path::new(DEFAULT_OUT_ROOT),
            &format!("{}-search", base.name),
            Clock::new().now_us(),
        )
    });
    let load_note = load_note(&base, vary);
    let workers = match &args.workers {
        None => None,
        Some(count) => {
            // Checked now, with the largest load: a bad count is a usage error before anything runs.
            app_common::worker_count(
                Some(count),
                policy.to,
                limits::Facts::gather().open_files_soft,
            )?;
            let exe = std::env::current_exe().map_err(|e| {
                CommandError::Usage(format!("cannot find this program's path: {e}"))
            })?;
            let mut argv: Vec<std::ffi::OsString> =
                vec!["run".into(), args.scenario.clone().into_os_string()];
            // The broker the steps load: the one given, or the embedded one of this process
            // (the embedded TLS front's address is passed on by the worker launcher itself).
            let broker = args.broker.clone().or_else(|| {
                (embedded && !base.broker.embedded_tls)
                    .then(|| base.broker.url.as_ref().map(ToString::to_string))
                    .flatten()
            });
            if let Some(b) = broker {
                argv.extend(["--broker".into(), b.into()]);
            }
            if let Some(n) = args.devices {
                argv.extend(["--devices".into(), n.to_string().into()]);
            }
            if let Some(seed) = args.seed {
                argv.extend(["--seed".into(), seed.to_string().into()]);
            }
            Some(Workers {
                count: count.clone(),
                exe,
                args: argv,
            })
        }
    };
    let live = Live {
        progress: !args.no_progress,
        ui: app_common::start_ui(args.ui)?,
        prometheus: args.prometheus,
    };
    let setup = Setup {
        base,
        vary,
        slos,
        settle,
        window,
        threads: args.threads,
        dir,
        facts: limits::Facts::gather(),
        embedded,
        live,
        workers,
    };
    eprintln!(
        "capacity search of {}: {} from {} to {}, broker {broker_label}",
        setup.base.name,
        vary.unit(),
        search::thousands(policy.from),
        search::thousands(policy.to)
    );
    let mut s = Search::new(policy.clone());
    let mut steps: Vec<Step> = Vec::new();
    let answer = loop {
        match s.next() {
            Next::Done(a) => break a,
            Next::Run { load, purpose } => {
                let index = u32::try_from(steps.len() + 1).unwrap_or(u32::MAX);
                eprintln!(
                    "step {index}: {} {} ({})",
                    search::thousands(load),
                    vary.unit(),
                    purpose.name()
                );
                let history: Vec<(u64, search::Verdict)> =
                    steps.iter().map(|s| (s.load, s.verdict)).collect();
                let live = LiveStep::new(index, load, purpose, vary, &history);
                let step = run_step(&setup, &live);
                eprintln!("  {}", step.verdict.name());
                s.record(load, step.verdict);
                steps.push(step);
            }
        }
    };
    let result = SearchResult::new(
        setup.base.name.clone(),
        broker_label,
        vary,
        load_note,
        &setup.slos,
        policy,
        (settle.as_secs_f64(), window.as_secs_f64()),
        steps,
        answer,
    )
    .with_checks(
        settings.require,
        settings
            .baseline
            .as_ref()
            .map(|b| (b.file.as_str(), b.capacity, b.tolerance)),
    );
    print!("{}", search::render(&result));
    if let Some(ui) = &setup.live.ui {
        ui.set_context(&result.statement);
    }
    if !write_outputs(&result, &setup.dir) {
        return Ok(Exit::Runtime);
    }
    Ok(conclude(&result))
}

/// Write search.json, then report.html, summary.md and junit.xml beside it; false when search.json
/// could not be written (the other files are warned about, not fatal).
fn write_outputs(result: &SearchResult, dir: &Path) -> bool {
    let path = dir.join(SEARCH_JSON);
    let written = serde_json::to_string_pretty(result)
        .map_err(|e| e.to_string())
        .and_then(|text| std::fs::write(&path, text + "\n").map_err(|e| e.to_string()));
    match written {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            return false;
        }
    }
    match output::search::write_all(result, dir) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
        }
        Err(e) => eprintln!("warning: {e}"),
    }
    true
}

/// The exit code of a search (see `SEARCH_EXIT_CODES`), with the line that explains it.
fn conclude(result: &SearchResult) -> Exit {
    match result.conclusion {
        Conclusion::Met => Exit::Success,
        Conclusion::Unmet => {
            if let Some(r) = result.require.as_ref().filter(|r| !r.passed) {
                eprintln!(
                    "capacity below --require {}: {}",
                    search::thousands(r.min),
                    r.detail
                );
            }
            if let Some(b) = result.baseline.as_ref().filter(|b| b.regressed) {
                eprintln!("{}", b.detail);
            }
            Exit::GateFailed
        }
        Conclusion::Unfinished => {
            eprintln!(
                "the search did not establish a capacity: {}",
                result.statement
            );
            Exit::Runtime
        }
    }
}

/// Publishes per second the scenario's fleet asks for.
fn fleet_rate(s: &Scenario) -> f64 {
    s.groups
        .iter()
        .map(|g| f64::from(g.count) / g.interval.as_secs_f64().max(1e-6))
        .sum()
}

/// What one unit of load means, for the statement.
fn load_note(base: &Scenario, vary: Vary) -> String {
    match vary {
        Vary::Devices => {
            let devices = base.groups.iter().map(|g| u64::from(g.count)).sum::<u64>();
            let each = fleet_rate(base) / devices.max(1) as f64;
            let each = if (each - each.round()).abs() < 0.005 {
                format!("{}", each.round())
            } else {
                format!("{each:.2}")
            };
            format!("at {each} msg/s each")
        }
        Vary::Rate => format!(
            "from {} devices",
            search::thousands(base.groups.iter().map(|g| u64::from(g.count)).sum())
        ),
    }
}

/// The scenario of one step: the load applied, the leading ramps kept, then settle and window.
fn step_scenario(
    base: &Scenario,
    vary: Vary,
    load: u64,
    settle: Duration,
    window: Duration,
) -> Result<Scenario, CommandError> {
    let mut s = match vary {
        Vary::Devices => base.clone().apply_overrides(&Overrides {
            devices: Some(load),
            ..Overrides::default()
        })?,
        Vary::Rate => {
            let mut s = base.clone();
            let factor = load as f64 / fleet_rate(&s);
            for g in &mut s.groups {
                let interval = Duration::try_from_secs_f64(g.interval.as_secs_f64() / factor)
                    .ok()
                    .filter(|d| *d >= Duration::from_millis(1))
                    .ok_or_else(|| {
                        usage(
                            "--vary rate",
                            format!(
                                "{load} msg/s would give group `{}` an interval below 1 ms (or out of range)",
                                g.name
                            ),
                            "lower --to, or give the fleet more devices with --devices N",
                        )
                    })?;
                g.interval = interval;
            }
            s
        }
    };
    let mut phases: Vec<Phase> = s
        .phases
        .iter()
        .take_while(|p| matches!(p.kind, PhaseKind::Ramp { .. }))
        .cloned()
        .collect();
    if !settle.is_zero() {
        phases.push(Phase {
            name: SETTLE.into(),
            kind: PhaseKind::Steady { duration: settle },
        });
    }
    phases.push(Phase {
        name: WINDOW.into(),
        kind: PhaseKind::Steady { duration: window },
    });
    s.phases = phases;
    Ok(s)
}

/// A step that did not get as far as a report.
fn unjudged(
    index: u32,
    load: u64,
    purpose: Purpose,
    verdict: search::Verdict,
    why: String,
) -> Step {
    Step {
        index,
        load,
        purpose,
        intended_rate_per_s: 0.0,
        verdict,
        reasons: vec![why],
        slos: Vec::new(),
        client_limited: verdict == search::Verdict::CannotJudge,
        measures: None,
        report: None,
    }
}

/// Run one step and judge it. Never fails: what goes wrong is the step's verdict.
fn run_step(setup: &Setup, live: &LiveStep) -> Step {
    let (index, load, purpose) = (live.index, live.load, live.purpose);
    let scenario = match step_scenario(&setup.base, setup.vary, load, setup.settle, setup.window) {
        Ok(s) => s,
        Err(e) => return unjudged(index, load, purpose, search::Verdict::Fatal, e.to_string()),
    };
    let intended = fleet_rate(&scenario);
    let (plan, _) = limits::with_auto_sources(Plan::new(scenario, Shard::default()), &setup.facts);
    // The fit of the plan as run (with the loopback source addresses chosen for it), assessed as
    // for the embedded broker when it runs here (two sockets per device), though the scenario now
    // names its address.
    let mut assessed = (*plan.scenario).clone();
    if setup.embedded {
        assessed.broker.url = None;
        assessed.broker.urls.clear();
    }
    let processes = match &setup.workers {
        None => 1,
        Some(w) => {
            app_common::worker_count(Some(&w.count), load, setup.facts.open_files_soft).unwrap_or(1)
        }
    };
    let misfits: Vec<String> = limits::assess(
        &Plan::new(assessed, Shard::default()),
        processes,
        &setup.facts,
    )
    .into_iter()
    .filter(|f| !f.ok)
    .map(|f| format!("{} (fix: {})", f.what, f.fix))
    .collect();
    if !misfits.is_empty() {
        let mut s = unjudged(
            index,
            load,
            purpose,
            search::Verdict::CannotJudge,
            format!(
                "this load does not fit the client machine: {}",
                misfits.join("; ")
            ),
        );
        s.intended_rate_per_s = intended;
        return s;
    }
    let options = setup.live.options(setup.threads, live);
    let ran = match &setup.workers {
        Some(w) if processes > 1 => {
            let spec = StepSpec {
                vary: setup.vary,
                load,
                settle: setup.settle,
                window: setup.window,
            };
            let mut args = w.args.clone();
            args.extend(["--search-step".into(), spec.arg().into()]);
            let cmd = WorkerCommand {
                exe: w.exe.clone(),
                args,
            };
            processes::run(&plan, &options, processes, &cmd)
        }
        _ => engine::run(&plan, &options),
    };
    let built = ran.map_err(|e| e.to_string()).and_then(|ran| {
        let record = app_common::record(&plan, ran, setup.facts.open_files_soft);
        Report::build(&record).map_err(|e| e.to_string())
    });
    let report = match built {
        Ok(r) => r,
        Err(why) => {
            let mut s = unjudged(index, load, purpose, search::Verdict::Fatal, why);
            s.intended_rate_per_s = intended;
            return s;
        }
    };
    let (j, measures) = search::judge(&report, WINDOW, &setup.slos);
    let step_dir = setup.dir.join(format!("step-{index:02}-{load}"));
    let written = match report::json::write(&report, &step_dir) {
        Ok(p) => Some(p.display().to_string()),
        Err(e) => {
            eprintln!("warning: cannot write step {index}'s report: {e}");
            None
        }
    };
    Step {
        index,
        load,
        purpose,
        intended_rate_per_s: intended,
        verdict: j.verdict,
        reasons: j.reasons,
        slos: j.slos,
        client_limited: j.client_limited,
        measures,
        report: written,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_goes_to_a_worker_and_back_unchanged() {
        for spec in [
            StepSpec {
                vary: Vary::Devices,
                load: 14,
                settle: Duration::from_millis(500),
                window: Duration::from_secs(1),
            },
            StepSpec {
                vary: Vary::Rate,
                load: 52_500,
                settle: Duration::ZERO,
                window: Duration::from_secs(20),
            },
        ] {
            assert_eq!(
                StepSpec::parse(&spec.arg()).unwrap(),
                spec,
                "{}",
                spec.arg()
            );
        }
    }

    #[test]
    fn a_malformed_step_is_a_usage_error_naming_the_flag() {
        for bad in [
            "",
            "devices:14:500",
            "cpu:1:2:3",
            "devices:-1:0:1000",
            "rate:1:x:1",
        ] {
            let e = StepSpec::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("--search-step") && e.contains("hint"),
                "{bad}: {e}"
            );
        }
    }
}
