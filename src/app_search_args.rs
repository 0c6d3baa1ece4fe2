//! The settings of `fleetstorm search`: each from its flag, else the scenario's `search:` block, else
//! the default; and the capacity baseline (an earlier search.json) read and checked before anything
//! runs. No step runs here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{SearchArgs, VaryArg};
use crate::error::CommandError;
use crate::gate::{self, Threshold};
use crate::scenario::{self, Scenario, SearchSettings};
use crate::search::{self, BaselineSearch, Policy, Vary};

/// The defaults of the settings neither a flag nor the block gives.
const DEFAULT_GROWTH: f64 = 2.0;
const DEFAULT_RESOLUTION: f64 = 0.05;
const DEFAULT_MAX_STEPS: u32 = 20;
const DEFAULT_SETTLE: Duration = Duration::from_secs(5);
const DEFAULT_WINDOW: Duration = Duration::from_secs(20);
/// The file a search writes (and a baseline folder is expected to hold).
pub const SEARCH_JSON: &str = "search.json";

pub(crate) fn usage(flag: &str, message: impl std::fmt::Display, hint: &str) -> CommandError {
    CommandError::Usage(format!("{flag}: {message}\n  hint: {hint}"))
}

/// A capacity baseline, checked against this search.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The file, as the user should read it.
    pub file: String,
    pub capacity: u64,
    /// A fraction (0.1 = 10%).
    pub tolerance: f64,
}

/// Everything the search needs from its flags and the scenario's `search:` block.
#[derive(Debug, Clone)]
pub struct Settings {
    pub vary: Vary,
    pub slos: Vec<Threshold>,
    pub policy: Policy,
    pub settle: Duration,
    pub window: Duration,
    pub require: Option<u64>,
    pub baseline: Option<Baseline>,
}

/// The `--vary` flag, else `search.vary`, else devices.
pub fn vary(args: &SearchArgs, base: &Scenario) -> Vary {
    match args.vary {
        Some(VaryArg::Devices) => Vary::Devices,
        Some(VaryArg::Rate) => Vary::Rate,
        None => base
            .search
            .as_ref()
            .and_then(|b| b.vary)
            .unwrap_or(Vary::Devices),
    }
}

/// Merge flags over the block (`base` is the loaded scenario; `scenario_file` its path, for the
/// block's relative baseline).
pub fn resolve(args: &SearchArgs, base: &Scenario) -> Result<Settings, CommandError> {
    let empty = SearchSettings::default();
    let block = base.search.as_ref().unwrap_or(&empty);
    let vary = vary(args, base);
    let slos = collect_slos(&args.slos, block, base)?;
    let missing = |flag: &str, key: &str| {
        usage(
            flag,
            "no load given",
            &format!("pass `{flag} N`, or write `search: {{ {key}: N }}` in the scenario"),
        )
    };
    let from = args
        .from
        .or(block.from)
        .ok_or_else(|| missing("--from", "from"))?;
    let to = args.to.or(block.to).ok_or_else(|| missing("--to", "to"))?;
    let growth = args.growth.or(block.growth).unwrap_or(DEFAULT_GROWTH);
    let resolution = match &args.resolution {
        Some(text) => {
            gate::parse_percent(text).map_err(|e| usage("--resolution", e.message, &e.hint))?
        }
        None => block.resolution.unwrap_or(DEFAULT_RESOLUTION),
    };
    let max_steps = args
        .max_steps
        .or(block.max_steps)
        .unwrap_or(DEFAULT_MAX_STEPS);
    let policy = Policy::new(from, to, growth, resolution, max_steps).map_err(|e| {
        usage(
            "search",
            e,
            "set with the flags or the scenario's `search:` keys (`from`, `to`, `growth`, `resolution`, `max_steps`), e.g. `--from 1000 --to 200000 --growth 2 --resolution 5% --max-steps 20`",
        )
    })?;
    let require = args.require.or(block.require);
    if let Some(n) = require.filter(|&n| n > to) {
        return Err(usage(
            "--require",
            format!("{n} is above --to ({to})"),
            "the search never tries a load above --to: raise --to (or `search.to`) to at least --require (or `search.require`)",
        ));
    }
    let duration = |flag: &str, text: &Option<String>, key: Option<Duration>, default| match text {
        Some(t) => scenario::parse_duration(t)
            .map_err(|m| usage(flag, m, "pass a duration such as `5s` or `1m`")),
        None => Ok(key.unwrap_or(default)),
    };
    let settle = duration("--settle", &args.settle, block.settle, DEFAULT_SETTLE)?;
    let window = duration("--window", &args.window, block.window, DEFAULT_WINDOW)?;
    if window.is_zero() {
        return Err(usage(
            "--window",
            "the measured window must be longer than zero",
            "pass e.g. `--window 20s`",
        ));
    }
    let tolerance = match &args.tolerance {
        Some(text) => {
            let t =
                gate::parse_percent(text).map_err(|e| usage("--tolerance", e.message, &e.hint))?;
            if !(0.0..1.0).contains(&t) {
                return Err(usage(
                    "--tolerance",
                    format!("{text} must be at least 0% and below 100%"),
                    "pass e.g. `--tolerance 10%`",
                ));
            }
            t
        }
        None => block.tolerance.unwrap_or(search::DEFAULT_TOLERANCE),
    };
    let baseline = match (&args.baseline, &block.baseline) {
        (Some(p), _) => Some((p.clone(), "--baseline")),
        (None, Some(p)) => {
            let dir = args.scenario.parent().unwrap_or(Path::new("."));
            Some((
                if p.is_absolute() {
                    p.clone()
                } else {
                    dir.join(p)
                },
                "search.baseline",
            ))
        }
        (None, None) => None,
    };
    let baseline = match baseline {
        None => None,
        Some((path, flag)) => {
            let b = load_baseline(&path, flag)?;
            let capacity = search::check_baseline(&b, &base.name, vary)
                .map_err(|e| usage(flag, &e, e.hint()))?;
            Some(Baseline {
                file: b.file,
                capacity,
                tolerance,
            })
        }
    };
    Ok(Settings {
        vary,
        slos,
        policy,
        settle,
        window,
        require,
        baseline,
    })
}

/// The SLOs: `--slo` flags, else the block's `slos`, else the scenario's `thresholds:`.
fn collect_slos(
    texts: &[String],
    block: &SearchSettings,
    base: &Scenario,
) -> Result<Vec<Threshold>, CommandError> {
    let mut slos = Vec::with_capacity(texts.len());
    for t in texts {
        slos.push(
            gate::parse_threshold(t)
                .map_err(|e| usage(&format!("--slo `{t}`"), e.message, &e.hint))?,
        );
    }
    if slos.is_empty() {
        slos = block.slos.clone();
    }
    if slos.is_empty() {
        slos = base.thresholds.clone();
    }
    if slos.is_empty() {
        return Err(usage(
            "search",
            "no SLO to judge the steps by",
            "pass e.g. `--slo 'e2e.p99 < 50ms' --slo 'loss_ratio == 0'`, or write `search: { slos: [...] }` or `thresholds:` in the scenario",
        ));
    }
    Ok(slos)
}

/// Read what a baseline search.json (or its folder) says; a file that is not one is refused.
fn load_baseline(path: &Path, flag: &str) -> Result<BaselineSearch, CommandError> {
    let file: PathBuf = if path.is_dir() {
        path.join(SEARCH_JSON)
    } else {
        path.to_owned()
    };
    let shown = file.display().to_string();
    let hint = "pass the search.json an earlier `fleetstorm search` wrote (or its folder)";
    let text = std::fs::read_to_string(&file)
        .map_err(|e| usage(flag, format!("cannot read {shown}: {e}"), hint))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| usage(flag, format!("{shown} is not JSON: {e}"), hint))?;
    let not_search =
        |what: &str| usage(flag, format!("{shown} is not a search.json: {what}"), hint);
    match json
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v == u64::from(search::SEARCH_SCHEMA_VERSION) => {}
        Some(v) => {
            return Err(usage(
                flag,
                format!(
                    "{shown} has search.json version {v}; this fleetstorm reads version {}",
                    search::SEARCH_SCHEMA_VERSION
                ),
                "run the baseline search again with this fleetstorm",
            ))
        }
        None => return Err(not_search("no `schema_version`")),
    }
    let scenario = json
        .get("scenario")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| not_search("no `scenario`"))?;
    let vary = match json.get("vary").and_then(serde_json::Value::as_str) {
        Some("devices") => Vary::Devices,
        Some("rate") => Vary::Rate,
        _ => return Err(not_search("no `vary` (`devices` or `rate`)")),
    };
    let capacity = match json.get("capacity") {
        None | Some(serde_json::Value::Null) => None,
        Some(c) => Some(
            c.as_u64()
                .ok_or_else(|| not_search("`capacity` is not a whole number"))?,
        ),
    };
    Ok(BaselineSearch {
        file: shown,
        scenario: scenario.to_owned(),
        vary,
        capacity,
    })
}
