//! The validation context: the scenario's limits and defaults, and the [`Validator`] with its readers
//! of located scalars (numbers, text, names, durations, templates). Every part of validation
//! (`validate.rs`, `broker.rs`, `profiles/`, ...) builds on it; it imports none of them.

use std::time::Duration;

use serde_saphyr::Location;

use crate::scenario::error::{ErrorKind, Reporter, ScenarioError};
use crate::scenario::raw::{Scalar, Value};
use crate::scenario::template::Template;
use crate::scenario::units::parse_duration;

/// Most phases, and phase x group cells, a scenario may have (memory grows with them).
pub use crate::metrics::{MAX_PHASES, MAX_PHASE_GROUPS};

/// Most devices one scenario may describe.
pub const MAX_DEVICES: u64 = 10_000_000;
/// Default connect rate of the ramp phase, per second.
pub const DEFAULT_CONNECT_RATE: f64 = 500.0;
/// Default duration of the steady phase.
pub const DEFAULT_STEADY: Duration = Duration::from_secs(30);
/// Default client-id template.
pub const DEFAULT_CLIENT_ID: &str = "fleetstorm-{group}-{index}";
/// Default topic template.
pub const DEFAULT_TOPIC: &str = "fleetstorm/{group}/{client_id}/telemetry";
/// Default in-flight window of QoS 1/2 publishes per device.
pub const DEFAULT_MAX_INFLIGHT: u16 = 16;

type Result<T> = std::result::Result<T, ScenarioError>;

/// 1-based (line, column) of a span, `None` when unknown.
pub(crate) fn loc(l: &Location) -> Option<(usize, usize)> {
    let line = usize::try_from(l.line()).ok()?;
    let col = usize::try_from(l.column()).ok()?;
    (line > 0).then_some((line, col))
}

/// Whether `s` is a valid name: `[A-Za-z0-9_.-]+`.
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(crate) struct Validator<'a> {
    pub r: Reporter<'a>,
}

impl Validator<'_> {
    pub(super) fn invalid(
        &self,
        v: &Scalar,
        path: &str,
        message: String,
        hint: &str,
    ) -> ScenarioError {
        self.r.error(
            ErrorKind::InvalidValue,
            loc(&v.referenced),
            Some(path.to_owned()),
            message,
            Some(hint.to_owned()),
        )
    }

    pub(super) fn wrong_type(
        &self,
        v: &Scalar,
        path: &str,
        expected: &str,
        hint: &str,
    ) -> ScenarioError {
        self.r.error(
            ErrorKind::WrongType,
            loc(&v.referenced),
            Some(path.to_owned()),
            format!("expected {expected}, got {}", v.value.describe()),
            Some(hint.to_owned()),
        )
    }

    /// A whole number.
    pub(super) fn int(&self, v: &Scalar, path: &str, hint: &str) -> Result<i128> {
        match &v.value {
            Value::Int(i) => Ok(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(*f as i128),
            Value::Float(f) if f.is_finite() && f.fract() != 0.0 => {
                Err(self.invalid(v, path, format!("expected a whole number, got `{f}`"), hint))
            }
            Value::Float(f) => {
                Err(self.invalid(v, path, format!("the number `{f}` is far too large"), hint))
            }
            _ => Err(self.wrong_type(v, path, "a whole number", hint)),
        }
    }

    /// A whole number in `min..=max`.
    pub(super) fn int_in(
        &self,
        v: &Scalar,
        path: &str,
        what: &str,
        min: i128,
        max: i128,
        hint: &str,
    ) -> Result<i128> {
        let i = self.int(v, path, hint)?;
        if i < min || i > max {
            let msg = if i < 0 && min >= 0 {
                format!("{what} must not be negative, got {i}")
            } else {
                format!("{what} must be between {min} and {max}, got {i}")
            };
            return Err(self.invalid(v, path, msg, hint));
        }
        Ok(i)
    }

    /// Text (numbers are accepted as their decimal text).
    pub(super) fn text(&self, v: &Scalar, path: &str, hint: &str) -> Result<String> {
        match &v.value {
            Value::Str(s) => Ok(s.clone()),
            Value::Int(i) => Ok(i.to_string()),
            _ => Err(self.wrong_type(v, path, "text", hint)),
        }
    }

    pub(super) fn boolean(&self, v: &Scalar, path: &str, hint: &str) -> Result<bool> {
        match &v.value {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.wrong_type(v, path, "`true` or `false`", hint)),
        }
    }

    /// Text of a duration or rate (a bare number becomes its text, so the parser can say "no unit").
    pub(super) fn unit_text(
        &self,
        v: &Scalar,
        path: &str,
        expected: &str,
        hint: &str,
    ) -> Result<String> {
        match &v.value {
            Value::Str(s) => Ok(s.clone()),
            Value::Int(i) => Ok(i.to_string()),
            Value::Float(f) => Ok(f.to_string()),
            _ => Err(self.wrong_type(v, path, expected, hint)),
        }
    }

    pub(super) fn duration(&self, v: &Scalar, path: &str, hint: &str) -> Result<Duration> {
        let text = self.unit_text(v, path, "a duration such as `30s`", hint)?;
        parse_duration(&text).map_err(|m| self.invalid(v, path, m, hint))
    }

    pub(super) fn name(&self, v: &Scalar, path: &str, what: &str, hint: &str) -> Result<String> {
        let s = self.text(v, path, hint)?;
        if !valid_name(&s) {
            return Err(self.invalid(
                v,
                path,
                format!(
                    "{what} `{}` may only contain letters, digits, `_`, `.` and `-`",
                    crate::scenario::error::shorten(&s, 60)
                ),
                hint,
            ));
        }
        Ok(s)
    }

    pub(super) fn template(&self, v: &Scalar, path: &str, hint: &str) -> Result<Template> {
        let s = self.text(v, path, hint)?;
        Template::parse(&s).map_err(|e| self.invalid(v, path, e.to_string(), hint))
    }
}
