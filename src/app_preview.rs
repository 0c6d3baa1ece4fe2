//! `fleetstorm preview`: one device of a profile stepped over time, printed as CSV, without a broker.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::PreviewArgs;
use crate::error::{CommandError, Exit};
use crate::scenario;
use crate::telemetry::{DeviceTelemetry, OutputKind, Profile, Sample};

/// 2026-01-01T00:00:00Z in µs: a fixed start, so previews are reproducible.
const START_US: u64 = 1_767_225_600_000_000;

pub fn preview(args: &PreviewArgs) -> Result<Exit, CommandError> {
    let (profiles, scenario_seed) = match &args.scenario {
        Some(path) => {
            let s = scenario::load(path)?;
            let mut profiles: Vec<Arc<Profile>> = scenario::builtin_profiles()?;
            for g in &s.groups {
                if !profiles.iter().any(|p| Arc::ptr_eq(p, &g.profile)) {
                    profiles.push(g.profile.clone());
                }
            }
            (profiles, Some(s.seed))
        }
        None => (scenario::builtin_profiles()?, None),
    };
    let Some(profile) = profiles.iter().find(|p| p.name() == args.profile) else {
        let names: Vec<&str> = profiles.iter().map(|p| p.name()).collect();
        return Err(CommandError::Usage(format!(
            "no profile `{}`; known: {}{}",
            args.profile,
            names.join(", "),
            if args.scenario.is_none() {
                " (a scenario's own profiles need --scenario FILE; only those its groups use are known)"
            } else {
                ""
            }
        )));
    };
    let every = match &args.every {
        Some(text) => scenario::parse_duration(text)
            .map_err(|m| CommandError::Usage(format!("--every: {m}")))?,
        None => profile.interval().unwrap_or(Duration::from_secs(1)),
    };
    if every.is_zero() {
        return Err(CommandError::Usage(
            "--every must be longer than zero".into(),
        ));
    }
    let seed = args.seed.or(scenario_seed).unwrap_or(1);
    print!("{}", csv(profile, seed, args.device, args.samples, every));
    Ok(Exit::Success)
}

/// The CSV text: a header (`t_s` and every output), then one row per sample.
pub fn csv(
    profile: &Arc<Profile>,
    seed: u64,
    device: u64,
    samples: u32,
    every: Duration,
) -> String {
    let outputs = profile.outputs();
    let mut out = String::from("t_s");
    for o in outputs {
        out.push(',');
        out.push_str(&o.name);
    }
    out.push('\n');
    let mut telemetry = DeviceTelemetry::new(profile, seed, device);
    let step_us = u64::try_from(every.as_micros()).unwrap_or(u64::MAX);
    let mut cells = vec![String::new(); outputs.len()];
    for k in 0..u64::from(samples) {
        let t_us = START_US.saturating_add(k.saturating_mul(step_us));
        cells.iter_mut().for_each(String::clear);
        telemetry.sample(t_us, |i, sample, report| {
            let (Some(cell), Some(output)) = (cells.get_mut(i), outputs.get(i)) else {
                return;
            };
            if !report {
                return;
            }
            let _ = match (sample, output.kind) {
                (Sample::Float(v), OutputKind::Float { decimals }) => {
                    write!(cell, "{v:.prec$}", prec = usize::from(decimals))
                }
                (Sample::Float(v), _) => write!(cell, "{v}"),
                (Sample::Int(v), _) => write!(cell, "{v}"),
                (Sample::Bool(b), _) => write!(cell, "{b}"),
                (Sample::Text(t), _) => write!(cell, "{t}"),
            };
        });
        let _ = write!(out, "{}", (t_us - START_US) as f64 / 1e6);
        for c in &cells {
            out.push(',');
            out.push_str(c);
        }
        out.push('\n');
    }
    out
}
