//! Raw serde types of a profile definition (an item of `profiles:` or a built-in profile file).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::scenario::value::{Scalar, Value};

/// A profile as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub name: Scalar,
    pub interval: Option<Scalar>,
    pub states: Option<Spanned<Vec<Spanned<RawState>>>>,
    pub metrics: Spanned<Vec<Spanned<RawMetric>>>,
}

/// One state of the machine: `{ name: running, dwell: 15m, next: { idle: 0.85, fault: 0.15 } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub name: Scalar,
    pub dwell: Scalar,
    pub next: Spanned<RawParam>,
}

/// One metric. Which model keys apply depends on `model`; validation refuses the others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    pub name: Scalar,
    pub model: Scalar,
    #[serde(rename = "type")]
    pub value_type: Option<Scalar>,
    pub decimals: Option<Scalar>,
    pub min: Option<Scalar>,
    pub max: Option<Scalar>,
    pub spread: Option<Scalar>,
    pub deadband: Option<Scalar>,
    pub mean: Option<Spanned<RawParam>>,
    pub sd: Option<Spanned<RawParam>>,
    pub tau: Option<Scalar>,
    pub period: Option<Scalar>,
    pub amplitude: Option<Spanned<RawParam>>,
    pub offset: Option<Spanned<RawParam>>,
    pub noise: Option<Scalar>,
    pub phase: Option<Scalar>,
    pub from: Option<Scalar>,
    pub to: Option<Scalar>,
    pub over: Option<Scalar>,
    pub then: Option<Scalar>,
    pub values: Option<Spanned<Vec<Scalar>>>,
    pub every: Option<Scalar>,
    pub rate: Option<Spanned<RawParam>>,
    pub jitter: Option<Scalar>,
    pub start: Option<Spanned<RawParam>>,
    pub of: Option<Scalar>,
    pub gain: Option<Spanned<RawParam>>,
    pub scale: Option<Scalar>,
    pub alarm: Option<Spanned<RawAlarm>>,
    pub quality: Option<Spanned<RawQuality>>,
    pub anomalies: Option<Spanned<RawAnomalies>>,
}

/// `alarm: { above: 80, clear: 75 }` or `{ below: 10, clear: 12 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlarm {
    pub above: Option<Scalar>,
    pub below: Option<Scalar>,
    pub clear: Option<Scalar>,
}

/// `quality: { uncertain: 1%, bad: 0.1% }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuality {
    pub uncertain: Option<Scalar>,
    pub bad: Option<Scalar>,
}

/// `anomalies: { rate: 2/h, duration: 30s, magnitude: 5, kinds: [spike, drift, stuck] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnomalies {
    pub rate: Scalar,
    pub duration: Option<Scalar>,
    pub magnitude: Option<Scalar>,
    pub kinds: Option<Spanned<Vec<Scalar>>>,
}

/// A parameter: one value, a value per state (`{ running: 12000, other: 0 }`) or a list (`[0, 50000]`).
#[derive(Debug)]
pub enum RawParam {
    One(Value),
    ByKey(Vec<(String, Scalar)>),
    List(Vec<Scalar>),
}

impl<'de> Deserialize<'de> for RawParam {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawParam, D::Error> {
        struct ParamVisitor;

        impl<'de> Visitor<'de> for ParamVisitor {
            type Value = RawParam;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a mapping of state names to numbers, or a list")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawParam, E> {
                Ok(RawParam::One(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawParam, E> {
                Ok(RawParam::One(Value::Int(v.into())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawParam, E> {
                Ok(RawParam::One(Value::Int(v.into())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawParam, E> {
                Ok(RawParam::One(Value::Float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawParam, E> {
                Ok(RawParam::One(Value::Str(v.to_owned())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawParam, E> {
                Ok(RawParam::One(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<RawParam, E> {
                Ok(RawParam::One(Value::Null))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawParam, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Scalar>()? {
                    entries.push((key, value));
                }
                Ok(RawParam::ByKey(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawParam, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Scalar>()? {
                    items.push(item);
                }
                Ok(RawParam::List(items))
            }
        }

        d.deserialize_any(ParamVisitor)
    }
}
