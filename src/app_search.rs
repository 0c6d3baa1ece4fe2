//! `fleetstorm search`: each step of the capacity search is one run of the scenario through the
//! engine, at the step's load, with its steady phases replaced by a settle time and the measured
//! window; the pure `search` module decides the steps and judges each one. Every step reconnects its
//! fleet (one embedded broker serves them all when the scenario names none).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app_common::{self, DEFAULT_OUT_ROOT};
use crate::broker::{self, EmbeddedLimits};
use crate::cli::{SearchArgs, VaryArg};
use crate::engine::{self, embedded_tls, limits, EngineError, RunOptions};
use crate::error::{CommandError, Exit};
use crate::gate::{self, Threshold};
use crate::metrics::Clock;
use crate::plan::{Plan, Shard};
use crate::report::{self, Report};
use crate::scenario::{self, BrokerUrl, Overrides, Phase, PhaseKind, Scenario, Transport};
use crate::search::{self, Answer, Next, Policy, Purpose, Search, SearchResult, Step, Vary};

/// The name of the settle phase of a step.
const SETTLE: &str = "settle";
/// The name of the measured window: the summary phase of each step's report.
const WINDOW: &str = "steady";
/// The file the search writes in its folder.
pub const SEARCH_JSON: &str = "search.json";

fn usage(flag: &str, message: impl std::fmt::Display, hint: &str) -> CommandError {
    CommandError::Usage(format!("{flag}: {message}\n  hint: {hint}"))
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
}

/// `fleetstorm search`.
pub fn search(args: &SearchArgs) -> Result<Exit, CommandError> {
    let vary = match args.vary {
        VaryArg::Devices => Vary::Devices,
        VaryArg::Rate => Vary::Rate,
    };
    if vary == Vary::Devices && args.devices.is_some() {
        return Err(usage(
            "--devices",
            "with --vary devices the number of devices is the load",
            "leave out --devices and set the range with --from and --to, or pass --vary rate",
        ));
    }
    let overrides = Overrides {
        broker: args.broker.clone(),
        devices: args.devices,
        seed: args.seed,
        ..Overrides::default()
    };
    let mut base = app_common::load(&args.scenario, &overrides)?;
    let slos = collect_slos(&args.slos, &base)?;
    let resolution = gate::parse_percent(&args.resolution)
        .map_err(|e| usage("--resolution", e.message, &e.hint))?;
    let policy =
        Policy::new(args.from, args.to, args.growth, resolution, args.max_steps).map_err(|e| {
            usage(
                "search",
                e,
                "e.g. `--from 1000 --to 200000 --growth 2 --resolution 5% --max-steps 20`",
            )
        })?;
    if let Some(n) = args.require.filter(|&n| n > args.to) {
        return Err(usage(
            "--require",
            format!("{n} is above --to ({})", args.to),
            "the search never tries a load above --to: raise --to to at least --require",
        ));
    }
    let duration = |flag: &str, text: &str| {
        scenario::parse_duration(text)
            .map_err(|m| usage(flag, m, "pass a duration such as `5s` or `1m`"))
    };
    let settle = duration("--settle", &args.settle)?;
    let window = duration("--window", &args.window)?;
    if window.is_zero() {
        return Err(usage(
            "--window",
            "the measured window must be longer than zero",
            "pass e.g. `--window 20s`",
        ));
    }
    // Both ends of the range must make a valid scenario before anything runs.
    for load in [args.from, args.to] {
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
    };
    eprintln!(
        "capacity search of {}: {} from {} to {}, broker {broker_label}",
        setup.base.name,
        vary.unit(),
        search::thousands(args.from),
        search::thousands(args.to)
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
                let step = run_step(&setup, index, load, purpose);
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
    );
    print!("{}", search::render(&result));
    let path = setup.dir.join(SEARCH_JSON);
    let text = serde_json::to_string_pretty(&result)
        .map_err(|e| CommandError::Usage(format!("cannot encode {SEARCH_JSON}: {e}")))?;
    let exit = exit_for(&result.answer, args.require);
    match std::fs::write(&path, text + "\n") {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Ok(Exit::Runtime);
        }
    }
    match exit {
        Exit::GateFailed => eprintln!(
            "capacity below --require {}",
            search::thousands(args.require.unwrap_or(0))
        ),
        Exit::Runtime => eprintln!(
            "the search did not establish a capacity: {}",
            result.statement
        ),
        Exit::Success | Exit::Usage => {}
    }
    Ok(exit)
}

/// The SLOs: `--slo` flags, else the scenario's `thresholds:`.
fn collect_slos(texts: &[String], base: &Scenario) -> Result<Vec<Threshold>, CommandError> {
    let mut slos = Vec::with_capacity(texts.len());
    for t in texts {
        slos.push(
            gate::parse_threshold(t)
                .map_err(|e| usage(&format!("--slo `{t}`"), e.message, &e.hint))?,
        );
    }
    if slos.is_empty() {
        slos = base.thresholds.clone();
    }
    if slos.is_empty() {
        return Err(usage(
            "search",
            "no SLO to judge the steps by",
            "pass e.g. `--slo 'e2e.p99 < 50ms' --slo 'loss_ratio == 0'`, or give the scenario `thresholds:`",
        ));
    }
    Ok(slos)
}

/// The exit code of a search (see `SEARCH_EXIT_CODES`).
fn exit_for(answer: &Answer, require: Option<u64>) -> Exit {
    match answer {
        Answer::Aborted { .. } => Exit::Runtime,
        Answer::Found { .. } | Answer::AboveRange { .. } | Answer::BelowRange { .. } => {
            match (answer.capacity(), require) {
                (Some(c), Some(n)) if c < n => Exit::GateFailed,
                _ => Exit::Success,
            }
        }
        Answer::CannotJudge { .. } | Answer::OutOfSteps { .. } => {
            match (answer.passing(), require) {
                (Some(p), Some(n)) if p >= n => Exit::Success,
                _ => Exit::Runtime,
            }
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
        client_limited: verdict == search::Verdict::CannotJudge,
        measures: None,
        report: None,
    }
}

/// Run one step and judge it. Never fails: what goes wrong is the step's verdict.
fn run_step(setup: &Setup, index: u32, load: u64, purpose: Purpose) -> Step {
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
    let misfits: Vec<String> =
        limits::assess(&Plan::new(assessed, Shard::default()), 1, &setup.facts)
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
    let options = RunOptions {
        threads: setup.threads,
        drain: Duration::from_secs(5),
        ..RunOptions::default()
    };
    let built = engine::run(&plan, &options)
        .map_err(|e| e.to_string())
        .and_then(|ran| {
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
        client_limited: j.client_limited,
        measures,
        report: written,
    }
}
