//! Gates at the edge of the program: collect thresholds and the baseline from the scenario and the
//! command line, evaluate them on a finished report, and the `report render|compare` commands.

use std::path::{Path, PathBuf};

use crate::cli::{CompareArgs, RenderArgs, RenderFormat, RunArgs};
use crate::error::{CommandError, Exit};
use crate::gate::{self, Comparison, Threshold, Verdict};
use crate::report::{self, Report};
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

/// Gather the gates before anything runs, so a bad threshold or a missing baseline costs nothing.
pub fn collect(args: &RunArgs, scenario: &Scenario) -> Result<Gates, CommandError> {
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

/// Print verdicts and the comparison; whether every gate passed.
pub fn print(
    gates: &Gates,
    report: &Report,
    verdicts: &[Verdict],
    comparison: Option<&Comparison>,
) -> bool {
    if !verdicts.is_empty() {
        println!("{}", report::console::render_verdicts(verdicts));
    }
    if let (Some(c), Some((path, base))) = (comparison, &gates.baseline) {
        println!("baseline {}:", path.display());
        println!("{}", report::compare::render(base, report, c));
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
            println!("{}", report::console::render(&r));
            print!("{}", report::console::render_verdicts(&verdicts));
            Vec::new()
        }
        RenderFormat::Html => vec![report::html::write(&r, &verdicts, &dir)?],
        RenderFormat::Md => vec![report::markdown::write(&r, &dir)?],
        RenderFormat::Json => vec![report::json::write(&r, &dir)?],
        RenderFormat::Junit => vec![report::junit::write(&r, &verdicts, None, &dir)?],
        RenderFormat::Hlog => report::hlog::write(&r, &dir)?,
    };
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(if gate::passed(&verdicts) {
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
    println!("{}", report::compare::render(&base, &current, &c));
    Ok(if c.regressed() {
        Exit::GateFailed
    } else {
        Exit::Success
    })
}
