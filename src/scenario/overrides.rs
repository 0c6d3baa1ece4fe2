//! Command-line overrides applied on top of a validated scenario.

use crate::scenario::context::MAX_DEVICES;
use crate::scenario::error::ScenarioError;
use crate::scenario::model::{PhaseKind, Scenario};
use crate::scenario::units::{parse_broker_url, parse_duration};

/// Values from `--broker`, `--duration`, `--devices` and `--seed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--broker URL`: use this broker instead of the file's (or the embedded one).
    pub broker: Option<String>,
    /// `--duration D`: the duration of every steady phase.
    pub duration: Option<String>,
    /// `--devices N`: total devices, spread over the groups in proportion to their counts.
    pub devices: Option<u64>,
    /// `--seed S`.
    pub seed: Option<u64>,
}

fn flag_err(
    flag: &'static str,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> ScenarioError {
    ScenarioError::Override {
        flag,
        message: message.into(),
        hint: hint.into(),
    }
}

impl Scenario {
    /// Apply command-line overrides; errors name the flag.
    pub fn apply_overrides(mut self, o: &Overrides) -> Result<Scenario, ScenarioError> {
        if let Some(url) = &o.broker {
            let parsed = parse_broker_url(url).map_err(|m| {
                flag_err(
                    "--broker",
                    m,
                    "pass e.g. `--broker mqtt://127.0.0.1:1883`; leave it out to use the scenario's broker or the embedded one",
                )
            })?;
            self.broker.url = Some(parsed);
            self.broker.urls.clear();
        }
        if let Some(d) = &o.duration {
            let hint = "pass a positive duration such as `--duration 30s`, `--duration 5m` or `--duration 1h`";
            let d = parse_duration(d).map_err(|m| flag_err("--duration", m, hint))?;
            if d.is_zero() {
                return Err(flag_err(
                    "--duration",
                    "the duration must be greater than zero",
                    hint,
                ));
            }
            for phase in &mut self.phases {
                if let PhaseKind::Steady { duration } = &mut phase.kind {
                    *duration = d;
                }
            }
        }
        if let Some(n) = o.devices {
            let counts: Vec<u64> = self.groups.iter().map(|g| u64::from(g.count)).collect();
            let new = distribute(n, &counts)?;
            for (g, c) in self.groups.iter_mut().zip(new) {
                g.count = u32::try_from(c).unwrap_or(u32::MAX);
            }
            // More devices render longer indices into topics and client ids.
            if let Some(t) = crate::scenario::lengths::first_too_long(&self.broker, &self.groups) {
                return Err(flag_err(
                    "--devices",
                    format!("with {n} devices, {} ({})", t.message(), t.path),
                    format!("pass fewer devices, or {}", t.hint),
                ));
            }
        }
        if let Some(seed) = o.seed {
            self.seed = seed;
        }
        Ok(self)
    }
}

/// Spread `n` devices over groups in proportion to `counts` (largest-remainder rounding); every group
/// keeps at least one device.
pub(crate) fn distribute(n: u64, counts: &[u64]) -> Result<Vec<u64>, ScenarioError> {
    let hint = format!(
        "pass a number of devices from {} to {MAX_DEVICES}, e.g. `--devices 1000`",
        counts.len().max(1)
    );
    if n == 0 {
        return Err(flag_err(
            "--devices",
            "the number of devices must be at least 1",
            hint,
        ));
    }
    if n > MAX_DEVICES {
        return Err(flag_err(
            "--devices",
            format!("at most {MAX_DEVICES} devices are supported, got {n}"),
            hint,
        ));
    }
    if (n as u128) < counts.len() as u128 {
        return Err(flag_err(
            "--devices",
            format!(
                "{n} devices cannot fill {} groups; every group needs at least one device",
                counts.len()
            ),
            hint,
        ));
    }
    let total: u128 = counts.iter().map(|c| u128::from(*c)).sum();
    if total == 0 {
        return Err(flag_err(
            "--devices",
            "the scenario has no devices to scale",
            hint,
        ));
    }
    let n128 = u128::from(n);
    let mut out: Vec<u64> = Vec::with_capacity(counts.len());
    let mut rems: Vec<(u128, usize)> = Vec::with_capacity(counts.len());
    for (i, c) in counts.iter().enumerate() {
        let exact = n128 * u128::from(*c);
        out.push(u64::try_from(exact / total).unwrap_or(u64::MAX));
        rems.push((exact % total, i));
    }
    let assigned: u64 = out.iter().sum();
    let mut left = n.saturating_sub(assigned);
    // Largest remainder first; ties go to the earlier group.
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rems {
        if left == 0 {
            break;
        }
        if let Some(slot) = out.get_mut(i) {
            *slot += 1;
            left -= 1;
        }
    }
    // Every group keeps at least one device: take from the currently largest group.
    for i in 0..out.len() {
        if out[i] == 0 {
            let donor = out
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
                .map(|(j, _)| j);
            if let Some(j) = donor {
                if out[j] > 1 {
                    out[j] -= 1;
                    out[i] = 1;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_remainder() {
        assert_eq!(distribute(10, &[1, 1, 1]).unwrap(), vec![4, 3, 3]);
        assert_eq!(
            distribute(1000, &[400, 400, 200]).unwrap(),
            vec![400, 400, 200]
        );
        assert_eq!(distribute(7, &[2, 3, 5]).unwrap(), vec![1, 2, 4]);
        assert_eq!(distribute(3, &[1000, 1, 1]).unwrap(), vec![1, 1, 1]);
        assert!(distribute(0, &[1]).is_err());
        assert!(distribute(2, &[1, 1, 1]).is_err());
    }
}
