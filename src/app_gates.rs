//! Gates at the edge of the program: collect thresholds and the baseline from the scenario and the
//! command line, evaluate them on a finished report, and the `report render|compare` commands.

use std::path::{Path, PathBuf};

use crate::cli::{CompareArgs, MergeArgs, RenderArgs, RenderFormat, RunArgs};
use crate::error::{CommandError, Exit};
use crate::gate::{self, Comparison, Threshold, Verdict};
use crate::output;
use crate::report::{self, Report, RunStatus};
use crate::scenario::Scenario;

/// Everything that decides exit code 1.
pub struct Gates {
    pub thresholds: Vec<Threshold>,
    /// The baseline report and where it came from.
    pub baseline: Option<(PathBuf, Report)>,
    pub max_regression: f64,
}

fn parse_thresholds(texts: &[String]) -> Result<Vec<Threshold>, CommandError> {
    texts
        .iter()
        .map(|t| {
            gate::parse_threshold(t).map_err(|e| {
                CommandError::Usage(format!(
                    "--threshold `{t}`: {}\n  hint: {}",
                    e.message, e.hint
                ))
            })
        })
        .collect()
}

fn parse_regression(text: Option<&str>, default: f64) -> Result<f64, CommandError> {
    match text {
        None => Ok(default),
        Some(t) => gate::parse_percent(t).map_err(|e| {
            CommandError::Usage(format!(
                "--max-regression `{t}`: {}\n  hint: {}",
                e.message, e.hint
            ))
        }),
    }
}

fn load_baseline(path: &Path, flag: &str) -> Result<Report, CommandError> {
    load_report(path, flag, "a baseline")
}

/// Read a report given on the command line. Any problem with it is a usage error (exit 2) that names
/// the argument and the file, whichever argument it came in.
pub fn load_report(path: &Path, flag: &str, role: &str) -> Result<Report, CommandError> {
    report::load(path).map_err(|e| {
        CommandError::Usage(format!(
            "{flag}: cannot use `{}` as {role}: {e}\n  hint: point it at the report.json of a run (or the directory holding it)",
            path.display()
        ))
    })
}

impl Gates {
    /// No gate at all.
    pub fn none() -> Gates {
        Gates {
            thresholds: Vec::new(),
            baseline: None,
            max_regression: gate::DEFAULT_MAX_REGRESSION,
        }
    }
}

/// Gather the gates before anything runs, so a bad threshold or a missing baseline costs nothing.
/// A shard (`--shard I/N` with N > 1) evaluates no fleet-wide gate: gates given on its command line
/// are refused (they belong to `report merge`), and the scenario's are left to the merge.
pub fn collect(
    args: &RunArgs,
    scenario: &Scenario,
    shard_count: u32,
) -> Result<Gates, CommandError> {
    if shard_count > 1 {
        let given: Vec<&str> = [
            (!args.thresholds.is_empty()).then_some("--threshold"),
            args.baseline.is_some().then_some("--baseline"),
            args.max_regression.is_some().then_some("--max-regression"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !given.is_empty() {
            return Err(CommandError::Usage(format!(
                "{} with --shard: a shard holds part of the fleet, so it evaluates no fleet-wide gate\n  hint: pass {} to `fleetstorm report merge` of every shard's report (the scenario's `thresholds:` and `baseline:` are evaluated there too); nothing was run",
                given.join(", "),
                given.join(", ")
            )));
        }
        return Ok(Gates::none());
    }
    let mut thresholds = scenario.thresholds.clone();
    thresholds.extend(parse_thresholds(&args.thresholds)?);
    let (baseline_path, flag, scenario_tolerance) = match (&args.baseline, &scenario.baseline) {
        (Some(p), _) => (Some(p.clone()), "--baseline", None),
        (None, Some(b)) => {
            // relative to the scenario file
            let base = args.scenario.parent().unwrap_or(Path::new("."));
            let p = if b.report.is_absolute() {
                b.report.clone()
            } else {
                base.join(&b.report)
            };
            (Some(p), "baseline.report", Some(b.max_regression))
        }
        (None, None) => (None, "", None),
    };
    let max_regression = parse_regression(
        args.max_regression.as_deref(),
        scenario_tolerance.unwrap_or(gate::DEFAULT_MAX_REGRESSION),
    )?;
    let baseline = match baseline_path {
        Some(p) => {
            let r = load_baseline(&p, flag)?;
            Some((p, r))
        }
        None => None,
    };
    Ok(Gates {
        thresholds,
        baseline,
        max_regression,
    })
}

/// The verdicts and the comparison of a finished report.
pub fn evaluate(gates: &Gates, report: &Report) -> (Vec<Verdict>, Option<Comparison>) {
    let verdicts = gate::evaluate(report, &gates.thresholds);
    let comparison = gates
        .baseline
        .as_ref()
        .map(|(_, base)| gate::compare(base, report, gates.max_regression));
    (verdicts, comparison)
}

/// The gates `report merge` evaluates on the merged report: the scenario's `thresholds:` and
/// `baseline:` (read from the resolved scenario in report.json) and those on its command line. A
/// relative `baseline.report` is resolved from the working folder (the scenario file's folder is not
/// known at merge); `--baseline` replaces it.
pub fn collect_for_merge(args: &MergeArgs, merged: &Report) -> Result<Gates, CommandError> {
    let scenario_texts: Vec<String> = match merged.scenario.get("thresholds") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
        Some(other) => vec![other.to_string()],
    };
    let mut thresholds = Vec::with_capacity(scenario_texts.len() + args.thresholds.len());
    for (i, t) in scenario_texts.iter().enumerate() {
        let parsed = gate::parse_threshold(t).map_err(|e| {
            CommandError::Usage(format!(
                "report merge: the shards' scenario.thresholds[{i}] `{t}`: {}\n  hint: {} (the shard reports were written by another fleetstorm version?)",
                e.message, e.hint
            ))
        })?;
        thresholds.push(parsed);
    }
    thresholds.extend(parse_thresholds(&args.thresholds)?);
    let scenario_baseline = merged
        .scenario
        .get("baseline")
        .filter(|b| !b.is_null())
        .map(|b| {
            (
                b.get("report")
                    .and_then(serde_json::Value::as_str)
                    .map(PathBuf::from),
                b.get("max_regression").and_then(serde_json::Value::as_f64),
            )
        });
    let (path, flag, tolerance) = match (&args.baseline, scenario_baseline) {
        (Some(p), _) => (Some(p.clone()), "--baseline", None),
        (None, Some((Some(p), tol))) => (Some(p), "the scenario's baseline.report", tol),
        (None, _) => (None, "", None),
    };
    let max_regression = parse_regression(
        args.max_regression.as_deref(),
        tolerance.unwrap_or(gate::DEFAULT_MAX_REGRESSION),
    )?;
    let baseline = match path {
        None => None,
        Some(p) => {
            let r = report::load(&p).map_err(|e| {
                CommandError::Usage(format!(
                    "report merge: {flag}: cannot use `{}` as a baseline: {e}\n  hint: `report merge` resolves a relative baseline.report from the working folder; pass `--baseline PATH` to the report.json of the earlier run",
                    p.display()
                ))
            })?;
            Some((p, r))
        }
    };
    Ok(Gates {
        thresholds,
        baseline,
        max_regression,
    })
}

/// The verdicts of a report: none when it holds only some shards of a run (gates are evaluated at
/// merge), else every threshold and the baseline comparison.
pub fn judge(gates: &Gates, report: &Report) -> (Vec<Verdict>, Option<Comparison>) {
    if report.gates_deferred.is_some() {
        return (Vec::new(), None);
    }
    evaluate(gates, report)
}

/// The exit code of a finished run or merge: 3 when it did not complete, 1 when a gate failed.
pub fn exit_for(status: RunStatus, passed: bool) -> Exit {
    match status {
        RunStatus::Completed if passed => Exit::Success,
        RunStatus::Completed => Exit::GateFailed,
        _ => Exit::Runtime,
    }
}

/// The failed gates, one line each, for stderr: what failed and by how much.
pub fn failures(verdicts: &[Verdict], comparison: Option<&Comparison>) -> Vec<String> {
    let mut out: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| format!("gate failed: {}: {}", v.threshold, v.detail))
        .collect();
    if let Some(c) = comparison {
        out.extend(c.regressions().map(|ch| {
            format!(
                "gate failed: baseline {}: {} -> {} ({}, tolerance {}%)",
                ch.quantity.name(),
                output::compare::value(&ch.quantity, ch.base),
                output::compare::value(&ch.quantity, ch.current),
                output::compare::change(ch),
                (c.max_regression * 1000.0).round() / 10.0
            )
        }));
    }
    out
}

/// Print verdicts and the comparison (or, for a shard, that gates are evaluated at merge); whether
/// every gate passed.
pub fn print(
    gates: &Gates,
    report: &Report,
    verdicts: &[Verdict],
    comparison: Option<&Comparison>,
) -> bool {
    if let Some(note) = &report.gates_deferred {
        println!("gates: not evaluated here: {note}");
        return true;
    }
    if !verdicts.is_empty() {
        println!("{}", output::console::render_verdicts(verdicts));
    }
    if let (Some(c), Some((path, base))) = (comparison, &gates.baseline) {
        println!("baseline {}:", path.display());
        println!("{}", output::compare::render(base, report, c));
    }
    gate::passed(verdicts) && !comparison.is_some_and(Comparison::regressed)
}

/// `fleetstorm report render`.
pub fn render(args: &RenderArgs) -> Result<Exit, CommandError> {
    let r = load_report(&args.report, "REPORT", "a report")?;
    let thresholds = parse_thresholds(&args.thresholds)?;
    let verdicts = gate::evaluate(&r, &thresholds);
    let dir = match &args.out {
        Some(d) => d.clone(),
        None if args.report.is_dir() => args.report.clone(),
        None => args
            .report
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    let written: Vec<PathBuf> = match args.format {
        RenderFormat::Console => {
            println!("{}", output::console::render(&r));
            Vec::new()
        }
        RenderFormat::Html => vec![output::html::write(&r, &verdicts, &dir)?],
        RenderFormat::Md => vec![output::markdown::write(&r, &verdicts, None, &dir)?],
        RenderFormat::Json => vec![report::json::write(&r, &dir)?],
        RenderFormat::Junit => vec![output::junit::write(&r, &verdicts, None, &dir)?],
        RenderFormat::Hlog => output::hlog::write(&r, &dir)?,
    };
    // The verdicts in every format: `--threshold` is a gate, and a gate says what it found.
    print!("{}", output::console::render_verdicts(&verdicts));
    for p in written {
        println!("wrote {}", p.display());
    }
    let failed = failures(&verdicts, None);
    for line in &failed {
        eprintln!("{line}");
    }
    Ok(if failed.is_empty() {
        Exit::Success
    } else {
        Exit::GateFailed
    })
}

/// `fleetstorm report compare`.
pub fn compare(args: &CompareArgs) -> Result<Exit, CommandError> {
    let base = load_baseline(&args.base, "BASE")?;
    let current = load_report(&args.current, "CURRENT", "the current report")?;
    let tolerance = parse_regression(args.max_regression.as_deref(), gate::DEFAULT_MAX_REGRESSION)?;
    let c = gate::compare(&base, &current, tolerance);
    println!("{}", output::compare::render(&base, &current, &c));
    Ok(if c.regressed() {
        Exit::GateFailed
    } else {
        Exit::Success
    })
}
