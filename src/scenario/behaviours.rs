//! Validation of the behaviour phases: `churn` (devices drop and reconnect at a rate) and `storm` (a
//! fraction of the fleet drops at once and reconnects).

use crate::scenario::context::Validator;
use crate::scenario::error::ScenarioError;
use crate::scenario::model::PhaseKind;
use crate::scenario::raw::{RawPhase, Value};
use crate::scenario::units::parse_rate;

type Result<T> = std::result::Result<T, ScenarioError>;

impl Validator<'_> {
    /// A `churn:` or `storm:` phase (the caller checked exactly one kind is present).
    pub(super) fn behaviour(&self, p: &RawPhase, path: &str) -> Result<PhaseKind> {
        let dhint = "use a positive duration such as `30s` or `5m`";
        if let Some(c) = &p.churn {
            let dpath = format!("{path}.churn.duration");
            let duration = self.duration(&c.value.duration, &dpath, dhint)?;
            if duration.is_zero() {
                return Err(self.invalid(
                    &c.value.duration,
                    &dpath,
                    "a churn phase must last longer than zero".into(),
                    dhint,
                ));
            }
            let v = &c.value.rate;
            let rpath = format!("{path}.churn.rate");
            let hint = "devices dropping (and reconnecting) per second, e.g. `rate: 20/s` or `rate: 600/min`";
            let text = self.unit_text(v, &rpath, "a rate such as `20/s`", hint)?;
            let rate = parse_rate(&text).map_err(|m| self.invalid(v, &rpath, m, hint))?;
            if rate <= 0.0 || !rate.is_finite() {
                return Err(self.invalid(
                    v,
                    &rpath,
                    "the churn rate must be greater than zero".into(),
                    hint,
                ));
            }
            return Ok(PhaseKind::Churn {
                duration,
                rate_per_s: rate,
            });
        }
        if let Some(s) = &p.storm {
            let dpath = format!("{path}.storm.duration");
            let duration = self.duration(&s.value.duration, &dpath, dhint)?;
            if duration.is_zero() {
                return Err(self.invalid(
                    &s.value.duration,
                    &dpath,
                    "a storm phase must last longer than zero".into(),
                    dhint,
                ));
            }
            let v = &s.value.fraction;
            let fpath = format!("{path}.storm.fraction");
            let hint = "the share of the fleet that drops at once, from 0 to 1 (e.g. `fraction: 0.3`) or a percentage (`30%`)";
            let fraction = match &v.value {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                Value::Str(t) => match t.trim().strip_suffix('%') {
                    Some(n) => n.trim().parse::<f64>().map(|x| x / 100.0).map_err(|_| {
                        self.invalid(v, &fpath, format!("`{t}` is not a percentage"), hint)
                    })?,
                    None => t.trim().parse::<f64>().map_err(|_| {
                        self.invalid(v, &fpath, format!("`{t}` is not a fraction"), hint)
                    })?,
                },
                _ => return Err(self.wrong_type(v, &fpath, "a fraction", hint)),
            };
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(self.invalid(
                    v,
                    &fpath,
                    format!("the storm fraction must be above 0 and at most 1, got {fraction}"),
                    hint,
                ));
            }
            return Ok(PhaseKind::Storm { duration, fraction });
        }
        Err(self.r.error(
            crate::scenario::error::ErrorKind::InvalidValue,
            None,
            Some(path.to_owned()),
            "not a behaviour phase",
            None,
        ))
    }
}
