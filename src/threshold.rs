//! The threshold grammar: `[SCOPE:]QUANTITY OP VALUE`, parsed from text and printed back
//! canonically, and the baseline tolerance. Below both `scenario` (which reads `thresholds:` and
//! `baseline:`) and `gate` (which evaluates them against a report); it knows metrics and counters, not
//! reports.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::metrics::{Counter, Metric};

/// The tolerance used when none is given: 10 %.
pub const DEFAULT_MAX_REGRESSION: f64 = 0.10;

/// A threshold that could not be parsed: what is wrong, and an example of what would work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GateError {
    /// What is wrong, quoting the offending text.
    pub message: String,
    /// How to fix it, with an example.
    pub hint: String,
}

impl GateError {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> GateError {
        GateError {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// A statistic of a latency distribution (always of the corrected histogram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stat {
    P50,
    P90,
    P99,
    P99_9,
    P99_99,
    Max,
    Mean,
}

impl Stat {
    pub const ALL: [Stat; 7] = [
        Stat::P50,
        Stat::P90,
        Stat::P99,
        Stat::P99_9,
        Stat::P99_99,
        Stat::Max,
        Stat::Mean,
    ];

    /// As written in thresholds: `p50`, `p99.9`, `max`, `mean`.
    pub fn name(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P99 => "p99",
            Stat::P99_9 => "p99.9",
            Stat::P99_99 => "p99.99",
            Stat::Max => "max",
            Stat::Mean => "mean",
        }
    }

    pub fn from_name(s: &str) -> Option<Stat> {
        Stat::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantity {
    /// A corrected latency statistic, µs.
    Latency { metric: Metric, stat: Stat },
    /// Observer `lost / expected` (0..1).
    LossRatio,
    /// Publishes per second over the section.
    PublishRate,
    /// Acks per second over the section.
    AckRate,
    /// Connect failures of every reason.
    ConnectFailures,
    /// Disconnects of every reason.
    Disconnects,
    /// Observer deliveries lost (`expected - received - unobserved`).
    Lost,
    /// Any counter by its report name (`publish_failed`, `overrun`, `duplicates`, ...).
    Counter(Counter),
}

const NAMED: [(&str, Quantity); 6] = [
    ("loss_ratio", Quantity::LossRatio),
    ("publish_rate", Quantity::PublishRate),
    ("ack_rate", Quantity::AckRate),
    ("connect_failures", Quantity::ConnectFailures),
    ("disconnects", Quantity::Disconnects),
    ("lost", Quantity::Lost),
];

impl Quantity {
    /// As written in thresholds: `e2e.p99`, `loss_ratio`, `overrun`.
    pub fn name(&self) -> String {
        match self {
            Quantity::Latency { metric, stat } => format!("{}.{}", metric.name(), stat.name()),
            Quantity::Counter(c) => c.name().to_owned(),
            other => NAMED
                .iter()
                .find(|(_, q)| q == other)
                .map_or("?", |(n, _)| n)
                .to_owned(),
        }
    }

    /// Whether the default scope is the whole run rather than the summary phase: connections and
    /// subscriptions are made during ramps, so the steady phase normally has none of them.
    pub fn is_setup(&self) -> bool {
        match self {
            Quantity::Latency { metric, .. } => matches!(
                metric,
                Metric::Connect | Metric::Suback | Metric::TlsHandshake
            ),
            Quantity::ConnectFailures => true,
            Quantity::Counter(c) => {
                c.name().starts_with("connect_") || c.name().starts_with("tls_handshakes_")
            }
            _ => false,
        }
    }

    fn parse(s: &str) -> Result<Quantity, GateError> {
        if let Some((m, p)) = s.split_once('.') {
            let metric = Metric::ALL
                .into_iter()
                .find(|x| x.name() == m)
                .ok_or_else(|| {
                    GateError::new(
                        format!("unknown latency metric `{m}` in `{s}`"),
                        "latency metrics are connect, puback, pubcomp, suback, e2e and command_rtt, e.g. `e2e.p99 < 50ms`",
                    )
                })?;
            let stat = Stat::from_name(p).ok_or_else(|| {
                GateError::new(
                    format!("unknown percentile `{p}` in `{s}`"),
                    format!(
                        "use one of p50, p90, p99, p99.9, p99.99, max, mean, e.g. `{m}.p99 < 50ms`"
                    ),
                )
            })?;
            return Ok(Quantity::Latency { metric, stat });
        }
        if let Some((_, q)) = NAMED.iter().find(|(n, _)| *n == s) {
            return Ok(*q);
        }
        if let Some(c) = Counter::from_name(s) {
            return Ok(Quantity::Counter(c));
        }
        if let Some(metric) = Metric::ALL.into_iter().find(|x| x.name() == s) {
            return Err(GateError::new(
                format!("`{s}` needs a percentile"),
                format!("write e.g. `{}.p99 < 50ms`", metric.name()),
            ));
        }
        Err(GateError::new(
            format!("unknown quantity `{s}`"),
            "use a latency (`e2e.p99 < 50ms`), `loss_ratio`, `publish_rate`, `ack_rate`, \
             `connect_failures`, `disconnects`, `lost` or a counter name (`overrun == 0`)",
        ))
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
        }
    }

    /// Whether `measured OP limit` holds.
    pub fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
            Op::Eq => measured == limit,
        }
    }
}

/// Where a threshold applies. `phase: None` is the default: the summary phase (the last
/// `steady*` phase), or the whole run for connect/subscribe quantities. A phase named `run`
/// means the whole run unless the run has a phase of that name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Scope {
    pub phase: Option<String>,
    /// `None`: all groups together.
    pub group: Option<String>,
}

/// One gate: `[SCOPE:]QUANTITY OP VALUE`, e.g. `steady/group=cnc:puback.p99 < 20ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub scope: Scope,
    pub quantity: Quantity,
    pub op: Op,
    /// In the quantity's unit: µs for latencies, per second for rates, a ratio (0..1) for
    /// `loss_ratio`, a count otherwise.
    pub value: f64,
}

const EXAMPLE: &str =
    "write e.g. `e2e.p99 < 50ms`, `steady/group=cnc:puback.p99 <= 20ms` or `loss_ratio == 0`";

/// Parse `[SCOPE:]QUANTITY OP VALUE`.
pub fn parse_threshold(s: &str) -> Result<Threshold, GateError> {
    let text = s.trim();
    if text.is_empty() {
        return Err(GateError::new("empty threshold", EXAMPLE));
    }
    let (scope, rest) = match text.split_once(':') {
        Some((scope, rest)) => (parse_scope(scope.trim(), text)?, rest.trim()),
        None => (Scope::default(), text),
    };
    let op_at = rest.find(['<', '>', '=', '!']).ok_or_else(|| {
        GateError::new(
            format!("threshold `{text}` has no comparison"),
            format!("use one of < <= > >= ==; {EXAMPLE}"),
        )
    })?;
    let (name, tail) = rest.split_at(op_at);
    let name = name.trim();
    let (op, value) = if let Some(v) = tail.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = tail.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = tail.strip_prefix("==") {
        (Op::Eq, v)
    } else if let Some(v) = tail.strip_prefix('<') {
        (Op::Lt, v)
    } else if let Some(v) = tail.strip_prefix('>') {
        (Op::Gt, v)
    } else {
        let bad: String = tail.chars().take(2).collect();
        return Err(GateError::new(
            format!("unknown comparison `{}` in `{text}`", bad.trim()),
            "use one of < <= > >= == (a single `=` is not a comparison)",
        ));
    };
    if name.is_empty() {
        return Err(GateError::new(
            format!(
                "threshold `{text}` names no quantity before `{}`",
                op.symbol()
            ),
            EXAMPLE,
        ));
    }
    let quantity = Quantity::parse(name)?;
    let value = value.trim();
    if value.is_empty() {
        return Err(GateError::new(
            format!("threshold `{text}` has no value after `{}`", op.symbol()),
            example_for(&quantity),
        ));
    }
    let value = parse_value(&quantity, value).map_err(|message| {
        GateError::new(format!("{message} in `{text}`"), example_for(&quantity))
    })?;
    Ok(Threshold {
        scope,
        quantity,
        op,
        value,
    })
}

fn parse_scope(scope: &str, text: &str) -> Result<Scope, GateError> {
    let hint = "a scope is a phase name, `group=NAME`, or both: `steady/group=cnc:e2e.p99 < 50ms`";
    let (phase, group) = match scope.split_once('/') {
        Some((p, g)) => (Some(p.trim()), Some(g.trim())),
        None if scope.starts_with("group=") => (None, Some(scope)),
        None => (Some(scope), None),
    };
    let phase = match phase {
        Some(p) => {
            if !valid_name(p) {
                return Err(GateError::new(
                    format!("invalid phase name `{p}` in scope of `{text}`"),
                    hint,
                ));
            }
            Some(p.to_owned())
        }
        None => None,
    };
    let group = match group {
        Some(g) => {
            let name = g.strip_prefix("group=").ok_or_else(|| {
                GateError::new(
                    format!("expected `group=NAME` after `/`, found `{g}` in `{text}`"),
                    hint,
                )
            })?;
            if !valid_name(name.trim()) {
                return Err(GateError::new(
                    format!("invalid group name `{name}` in scope of `{text}`"),
                    hint,
                ));
            }
            Some(name.trim().to_owned())
        }
        None => None,
    };
    Ok(Scope { phase, group })
}

/// Phase and group names, as the scenario allows them.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn example_for(q: &Quantity) -> String {
    let name = q.name();
    match q {
        Quantity::Latency { .. } => {
            format!("a latency takes a duration with a unit (us, µs, ms, s), e.g. `{name} < 50ms`")
        }
        Quantity::PublishRate | Quantity::AckRate => {
            format!("a rate is a number per second, e.g. `{name} >= 9500/s`")
        }
        Quantity::LossRatio => {
            format!("a ratio is a number from 0 to 1 or a percentage, e.g. `{name} <= 0.001` or `{name} <= 0.1%`")
        }
        _ => format!("a count is a whole number, e.g. `{name} == 0`"),
    }
}

fn parse_number(s: &str) -> Result<f64, String> {
    let ok = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_digit() || c == '.')
        && s.chars().next().is_some_and(|c| c.is_ascii_digit());
    match s.parse::<f64>() {
        Ok(v) if ok && v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a number")),
    }
}

fn parse_value(q: &Quantity, s: &str) -> Result<f64, String> {
    match q {
        Quantity::Latency { .. } => parse_latency_us(s),
        Quantity::PublishRate | Quantity::AckRate => {
            let num = s.strip_suffix("/s").unwrap_or(s).trim();
            parse_number(num)
        }
        Quantity::LossRatio => {
            let v = match s.strip_suffix('%') {
                Some(p) => parse_number(p.trim())? / 100.0,
                None => parse_number(s)?,
            };
            if v > 1.0 {
                return Err(format!("loss ratio `{s}` is above 1"));
            }
            Ok(v)
        }
        _ => {
            let v = parse_number(s)?;
            if v.fract() != 0.0 {
                return Err(format!("`{s}` is not a whole number"));
            }
            Ok(v)
        }
    }
}

/// `800us`, `800µs`, `50ms`, `1.5s` → µs.
fn parse_latency_us(s: &str) -> Result<f64, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!("`{s}` is not a number"));
    }
    let factor = match unit.trim() {
        "us" | "µs" | "μs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "" => return Err(format!("duration `{s}` has no unit")),
        other => return Err(format!("unknown duration unit `{other}`")),
    };
    // Keep nanosecond precision only, so `0.1s` is exactly 100000 µs.
    Ok((parse_number(num)? * factor * 1e3).round() / 1e3)
}

/// A latency in µs as the shortest exact text: `50ms`, `1.5s`, `800us`.
fn format_latency_us(us: f64) -> String {
    let whole = us.fract() == 0.0;
    if whole && us >= 1e6 && us % 1e5 == 0.0 {
        format!("{}s", us / 1e6)
    } else if whole && us >= 1e3 && us % 100.0 == 0.0 {
        format!("{}ms", us / 1e3)
    } else {
        format!("{us}us")
    }
}

impl Threshold {
    /// The value as written: `50ms`, `9500/s`, `0.001`, `0`.
    pub fn value_text(&self) -> String {
        format_value(&self.quantity, self.value)
    }

    /// The scope as written (`steady/group=cnc`), empty for the default scope.
    pub fn scope_text(&self) -> String {
        match (&self.scope.phase, &self.scope.group) {
            (None, None) => String::new(),
            (Some(p), None) => p.clone(),
            (None, Some(g)) => format!("group={g}"),
            (Some(p), Some(g)) => format!("{p}/group={g}"),
        }
    }
}

/// A value of `q` in its unit, as thresholds write it.
pub fn format_value(q: &Quantity, v: f64) -> String {
    match q {
        Quantity::Latency { .. } => format_latency_us(v),
        Quantity::PublishRate | Quantity::AckRate => format!("{v}/s"),
        _ => format!("{v}"),
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = self.scope_text();
        if !scope.is_empty() {
            write!(f, "{scope}:")?;
        }
        write!(
            f,
            "{} {} {}",
            self.quantity.name(),
            self.op.symbol(),
            self.value_text()
        )
    }
}

impl FromStr for Threshold {
    type Err = GateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_threshold(s)
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_threshold(&s)
            .map_err(|e| serde::de::Error::custom(format!("{}; {}", e.message, e.hint)))
    }
}

/// Parse a tolerance such as `10%` (or a fraction, `0.1`) into a fraction.
pub fn parse_percent(s: &str) -> Result<f64, GateError> {
    let text = s.trim();
    let hint = "write a percentage, e.g. `10%` (or a fraction, `0.1`)";
    let v = match text.strip_suffix('%') {
        Some(p) => parse_number(p.trim()).map(|v| v / 100.0),
        None => parse_number(text),
    }
    .map_err(|_| GateError::new(format!("invalid percentage `{text}`"), hint))?;
    Ok(v)
}
