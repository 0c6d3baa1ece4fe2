//! Validation of a profile definition: raw YAML → [`ProfileDef`], with a located error for every refusal.

use serde_saphyr::{Location, Spanned};

use super::raw::{RawAlarm, RawAnomalies, RawMetric, RawParam, RawProfile, RawQuality, RawState};
use crate::scenario::context::{loc, valid_name, Validator};
use crate::scenario::error::{did_you_mean, list_keys, ErrorKind, ScenarioError};
use crate::scenario::raw::{Scalar, Value};
use crate::scenario::units::parse_rate;
use crate::telemetry::{
    Alarm, Anomalies, AnomalyKind, MetricDef, Model, Param, ProfileDef, Quality, RampEnd, StateDef,
    ValueType, MAX_METRICS, MAX_STATES,
};

type Result<T> = std::result::Result<T, ScenarioError>;

/// The models and the keys each one takes (besides the common ones).
const MODELS: [(&str, &[&str]); 8] = [
    ("walk", &["mean", "sd", "tau"]),
    ("sine", &["period", "amplitude", "offset", "noise", "phase"]),
    ("ramp", &["from", "to", "over", "then"]),
    ("steps", &["values", "every"]),
    ("counter", &["rate", "jitter", "start"]),
    ("integral", &["of", "scale", "start"]),
    ("follow", &["of", "gain", "offset", "sd", "tau"]),
    ("state", &[]),
];

/// A metric name: letters, digits, `_`, `.`, `-` and `/` (Sparkplug folders).
fn valid_metric_name(s: &str) -> bool {
    valid_name(&s.replace('/', "_")) && !s.starts_with('/') && !s.ends_with('/')
}

impl Validator<'_> {
    /// An error at a location that is not a scalar (a mapping, a list).
    fn at(&self, l: &Location, path: &str, message: String, hint: &str) -> ScenarioError {
        self.r.error(
            ErrorKind::InvalidValue,
            loc(l),
            Some(path.to_owned()),
            message,
            Some(hint.to_owned()),
        )
    }

    /// A finite number.
    pub(crate) fn number(&self, v: &Scalar, path: &str, hint: &str) -> Result<f64> {
        let n = match &v.value {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            _ => return Err(self.wrong_type(v, path, "a number", hint)),
        };
        if !n.is_finite() {
            return Err(self.invalid(v, path, format!("`{n}` is not a usable number"), hint));
        }
        Ok(n)
    }

    /// A fraction from 0 to 1, written as a number (`0.1`) or a percentage (`10%`).
    fn fraction(&self, v: &Scalar, path: &str, hint: &str) -> Result<f64> {
        let f = match &v.value {
            Value::Str(s) if s.trim().ends_with('%') => {
                let t = s.trim().trim_end_matches('%').trim();
                t.parse::<f64>().map(|p| p / 100.0).map_err(|_| {
                    self.invalid(v, path, format!("`{s}` is not a percentage"), hint)
                })?
            }
            _ => self.number(v, path, hint)?,
        };
        if !(0.0..=1.0).contains(&f) {
            return Err(self.invalid(
                v,
                path,
                format!("must be between 0 and 1 (0% and 100%), got {f}"),
                hint,
            ));
        }
        Ok(f)
    }

    /// A number greater than zero.
    fn positive(&self, v: &Scalar, path: &str, hint: &str) -> Result<f64> {
        let n = self.number(v, path, hint)?;
        if n <= 0.0 {
            return Err(self.invalid(v, path, format!("must be greater than zero, got {n}"), hint));
        }
        Ok(n)
    }

    /// A duration in seconds, greater than zero.
    fn seconds(&self, v: &Scalar, path: &str, hint: &str) -> Result<f64> {
        let d = self.duration(v, path, hint)?;
        if d.is_zero() {
            return Err(self.invalid(v, path, "must be longer than zero".into(), hint));
        }
        Ok(d.as_secs_f64())
    }

    /// A rate per second: a number or `2/h`-style text.
    fn per_second(&self, v: &Scalar, path: &str, hint: &str) -> Result<f64> {
        match &v.value {
            Value::Str(s) => parse_rate(s).map_err(|m| self.invalid(v, path, m, hint)),
            _ => {
                let n = self.number(v, path, hint)?;
                if n < 0.0 {
                    return Err(self.invalid(
                        v,
                        path,
                        format!("must not be negative, got {n}"),
                        hint,
                    ));
                }
                Ok(n)
            }
        }
    }

    /// A parameter: one number, or one per state (`other` fills the states not named).
    fn param(
        &self,
        p: &Spanned<RawParam>,
        path: &str,
        states: &[String],
        hint: &str,
    ) -> Result<Param> {
        match &p.value {
            RawParam::One(value) => {
                let scalar = Spanned {
                    value: value.clone(),
                    referenced: p.referenced,
                    defined: p.defined,
                };
                Ok(Param::fixed(self.number(&scalar, path, hint)?))
            }
            RawParam::List(_) => Err(self.at(
                &p.referenced,
                path,
                "expected a number or a mapping of state names to numbers, got a list".into(),
                hint,
            )),
            RawParam::ByKey(entries) => {
                if states.is_empty() {
                    return Err(self.at(
                        &p.referenced,
                        path,
                        "per-state values need a state machine, and this profile has no `states`"
                            .into(),
                        "write one number, or add `states:` to the profile",
                    ));
                }
                let mut values = vec![None; states.len()];
                let mut other = None;
                for (key, v) in entries {
                    let vpath = format!("{path}.{key}");
                    let n = self.number(v, &vpath, hint)?;
                    if key == "other" {
                        other = Some(n);
                        continue;
                    }
                    let Some(i) = states.iter().position(|s| s == key) else {
                        let names: Vec<&str> = states.iter().map(String::as_str).collect();
                        let mut h = format!(
                            "the states are {} (and `other` for the rest)",
                            list_keys(&names)
                        );
                        if let Some(m) = did_you_mean(key, names.iter().copied()) {
                            h = format!("did you mean `{m}`? {h}");
                        }
                        return Err(self.invalid(v, &vpath, format!("unknown state `{key}`"), &h));
                    };
                    values[i] = Some(n);
                }
                let mut out = Vec::with_capacity(states.len());
                for (state, v) in states.iter().zip(values) {
                    match v.or(other) {
                        Some(n) => out.push(n),
                        None => {
                            return Err(self.at(
                                &p.referenced,
                                path,
                                format!("no value for state `{state}`"),
                                "give every state a value, or add `other: <value>` for the rest",
                            ))
                        }
                    }
                }
                Ok(Param::by_state(out))
            }
        }
    }

    /// A profile definition. `path` prefixes key paths in errors (`profiles[0]` or empty).
    pub(crate) fn profile(&self, raw: &RawProfile, path: &str) -> Result<ProfileDef> {
        let p = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        let name = self.name(
            &raw.name,
            &p("name"),
            "profile name",
            "e.g. `name: press-line`",
        )?;
        let interval = match &raw.interval {
            None => None,
            Some(v) => {
                let hint =
                    "the default time between two publishes of a device, e.g. `interval: 5s`";
                let d = self.duration(v, &p("interval"), hint)?;
                if d.as_millis() < 1 {
                    return Err(self.invalid(
                        v,
                        &p("interval"),
                        "interval must be at least 1ms".into(),
                        hint,
                    ));
                }
                Some(d)
            }
        };
        let states = self.states(raw, &p("states"))?;
        let names: Vec<String> = states.iter().map(|s| s.name.clone()).collect();
        let list = &raw.metrics;
        if list.value.is_empty() {
            return Err(self.at(
                &list.referenced,
                &p("metrics"),
                "a profile needs at least one metric".into(),
                "e.g. `metrics: [{ name: temperature_c, model: walk, mean: 21, sd: 0.5, tau: 10m }]`",
            ));
        }
        if list.value.len() > MAX_METRICS {
            return Err(self.at(
                &list.referenced,
                &p("metrics"),
                format!(
                    "{} metrics; a profile may have at most {MAX_METRICS}",
                    list.value.len()
                ),
                "split the device into two profiles",
            ));
        }
        let mut metrics: Vec<MetricDef> = Vec::with_capacity(list.value.len());
        for (i, m) in list.value.iter().enumerate() {
            let mpath = p(&format!("metrics[{i}]"));
            let def = self.metric(&m.value, &mpath, &names, &metrics)?;
            let taken = |n: &str| {
                metrics.iter().any(|d| {
                    d.name == n
                        || (d.alarm.is_some() && format!("{}_alarm", d.name) == n)
                        || (d.quality.is_some() && format!("{}_quality", d.name) == n)
                })
            };
            for generated in [
                Some(def.name.clone()),
                def.alarm.map(|_| format!("{}_alarm", def.name)),
                def.quality.map(|_| format!("{}_quality", def.name)),
            ]
            .into_iter()
            .flatten()
            {
                if taken(&generated) {
                    return Err(self.invalid(
                        &m.value.name,
                        &format!("{mpath}.name"),
                        format!("metric `{generated}` is defined twice"),
                        "metric names must be unique (alarms add `<name>_alarm`, quality codes `<name>_quality`)",
                    ));
                }
            }
            metrics.push(def);
        }
        Ok(ProfileDef {
            name,
            interval,
            states,
            metrics,
        })
    }

    fn states(&self, raw: &RawProfile, path: &str) -> Result<Vec<StateDef>> {
        let Some(list) = &raw.states else {
            return Ok(Vec::new());
        };
        if list.value.is_empty() || list.value.len() > MAX_STATES {
            return Err(self.at(
                &list.referenced,
                path,
                format!("{} states; a state machine has 1 to {MAX_STATES}", list.value.len()),
                "e.g. `states: [{ name: idle, dwell: 2m, next: running }, { name: running, dwell: 15m, next: idle }]`",
            ));
        }
        let mut names: Vec<String> = Vec::new();
        for (i, s) in list.value.iter().enumerate() {
            let spath = format!("{path}[{i}].name");
            let n = self.name(&s.value.name, &spath, "state name", "e.g. `name: running`")?;
            if names.contains(&n) {
                return Err(self.invalid(
                    &s.value.name,
                    &spath,
                    format!("state `{n}` is defined twice"),
                    "state names must be unique",
                ));
            }
            if n == "other" {
                return Err(self.invalid(
                    &s.value.name,
                    &spath,
                    "`other` is reserved (it fills per-state values of the states not named)"
                        .into(),
                    "pick another name",
                ));
            }
            names.push(n);
        }
        list.value
            .iter()
            .enumerate()
            .map(|(i, s)| self.state(&s.value, &format!("{path}[{i}]"), &names, i))
            .collect()
    }

    fn state(&self, s: &RawState, path: &str, names: &[String], index: usize) -> Result<StateDef> {
        let dwell_s = self.seconds(
            &s.dwell,
            &format!("{path}.dwell"),
            "the mean time spent in the state, e.g. `dwell: 15m`",
        )?;
        let npath = format!("{path}.next");
        let hint = format!(
            "where the machine goes next: one state (`next: idle`) or weights (`next: {{ idle: 0.9, fault: 0.1 }}`); states are {}",
            list_keys(&names.iter().map(String::as_str).collect::<Vec<_>>())
        );
        let lookup = |key: &str, at: &Location| -> Result<usize> {
            let found = names.iter().position(|n| n == key);
            match found {
                Some(t) if t != index => Ok(t),
                Some(_) => Err(self.at(
                    at,
                    &npath,
                    format!("state `{key}` cannot lead to itself"),
                    &hint,
                )),
                None => Err(self.at(at, &npath, format!("unknown state `{key}`"), &hint)),
            }
        };
        let next = match &s.next.value {
            RawParam::One(Value::Str(target)) => {
                vec![(lookup(target.trim(), &s.next.referenced)?, 1.0)]
            }
            RawParam::ByKey(entries) if !entries.is_empty() => {
                let mut out = Vec::new();
                for (key, v) in entries {
                    let w = self.positive(v, &format!("{npath}.{key}"), &hint)?;
                    out.push((lookup(key, &v.referenced)?, w));
                }
                out
            }
            _ => {
                return Err(self.at(
                    &s.next.referenced,
                    &npath,
                    "expected a state name or a mapping of state names to weights".into(),
                    &hint,
                ))
            }
        };
        Ok(StateDef {
            name: names.get(index).cloned().unwrap_or_default(),
            dwell_s,
            next,
        })
    }

    fn metric(
        &self,
        m: &RawMetric,
        path: &str,
        states: &[String],
        earlier: &[MetricDef],
    ) -> Result<MetricDef> {
        let k = |key: &str| format!("{path}.{key}");
        let name = self.text(&m.name, &k("name"), "e.g. `name: spindle_rpm`")?;
        if !valid_metric_name(&name) {
            return Err(self.invalid(
                &m.name,
                &k("name"),
                format!(
                    "metric name `{}` may only contain letters, digits, `_`, `.`, `-` and `/`",
                    crate::scenario::error::shorten(&name, 60)
                ),
                "e.g. `name: spindle_rpm` or `name: spindle/rpm`",
            ));
        }
        let model_names: Vec<&str> = MODELS.iter().map(|(n, _)| *n).collect();
        let model_hint = |got: &str| {
            let mut h = format!("the models are {}", list_keys(&model_names));
            if let Some(s) = did_you_mean(got, model_names.iter().copied()) {
                h = format!("did you mean `{s}`? {h}");
            }
            h
        };
        let model_name = self.text(&m.model, &k("model"), &model_hint(""))?;
        let Some((model_name, allowed)) = MODELS.iter().find(|(n, _)| *n == model_name.trim())
        else {
            return Err(self.invalid(
                &m.model,
                &k("model"),
                format!("unknown model `{model_name}`"),
                &model_hint(&model_name),
            ));
        };
        self.model_keys(m, path, model_name, allowed)?;
        let model = self.model(m, path, model_name, states, earlier)?;
        let mut def = MetricDef::new(&name, model);
        if let Some(v) = &m.value_type {
            let hint = "`type: float` (default, with `decimals`) or `type: int`";
            def.value_type = match self.text(v, &k("type"), hint)?.trim() {
                "float" | "double" => def.value_type,
                "int" | "integer" => ValueType::Int,
                other => {
                    return Err(self.invalid(
                        v,
                        &k("type"),
                        format!("unknown type `{other}`"),
                        hint,
                    ))
                }
            };
        }
        if let Some(v) = &m.decimals {
            let hint = "digits after the decimal point, 0 to 9, e.g. `decimals: 1`";
            if def.value_type == ValueType::Int {
                return Err(self.invalid(
                    v,
                    &k("decimals"),
                    "`decimals` applies to `type: float` only".into(),
                    hint,
                ));
            }
            let d = self.int_in(v, &k("decimals"), "decimals", 0, 9, hint)?;
            def.value_type = ValueType::Float { decimals: d as u8 };
        }
        let bound_hint = "the lowest / highest value the metric can take, e.g. `min: 0`";
        if let Some(v) = &m.min {
            def.min = self.number(v, &k("min"), bound_hint)?;
        }
        if let Some(v) = &m.max {
            def.max = self.number(v, &k("max"), bound_hint)?;
            if def.max < def.min {
                return Err(self.invalid(
                    v,
                    &k("max"),
                    format!("max {} is below min {}", def.max, def.min),
                    bound_hint,
                ));
            }
        }
        if let Some(v) = &m.spread {
            def.spread = self.fraction(
                v,
                &k("spread"),
                "how much each device's levels differ, e.g. `spread: 10%` (each device ±10 %)",
            )?;
        }
        if let Some(v) = &m.deadband {
            let hint = "report by exception: publish only when the value moved more than this, e.g. `deadband: 0.5` (0: on any change)";
            let d = self.number(v, &k("deadband"), hint)?;
            if d < 0.0 {
                return Err(self.invalid(
                    v,
                    &k("deadband"),
                    format!("must not be negative, got {d}"),
                    hint,
                ));
            }
            def.deadband = Some(d);
        }
        if let Some(a) = &m.alarm {
            def.alarm = Some(self.alarm(&a.value, &a.referenced, &k("alarm"))?);
        }
        if let Some(q) = &m.quality {
            def.quality = Some(self.quality(&q.value, &q.referenced, &k("quality"))?);
        }
        if let Some(a) = &m.anomalies {
            def.anomalies = Some(self.anomalies(&a.value, &k("anomalies"))?);
        }
        Ok(def)
    }

    /// Refuse keys that the chosen model does not take.
    fn model_keys(&self, m: &RawMetric, path: &str, model: &str, allowed: &[&str]) -> Result<()> {
        let p = |x: &Option<Spanned<RawParam>>| x.as_ref().map(|s| s.referenced);
        let s = |x: &Option<Scalar>| x.as_ref().map(|s| s.referenced);
        let present = [
            ("mean", p(&m.mean)),
            ("sd", p(&m.sd)),
            ("tau", s(&m.tau)),
            ("period", s(&m.period)),
            ("amplitude", p(&m.amplitude)),
            ("offset", p(&m.offset)),
            ("noise", s(&m.noise)),
            ("phase", s(&m.phase)),
            ("from", s(&m.from)),
            ("to", s(&m.to)),
            ("over", s(&m.over)),
            ("then", s(&m.then)),
            ("values", m.values.as_ref().map(|v| v.referenced)),
            ("every", s(&m.every)),
            ("rate", p(&m.rate)),
            ("jitter", s(&m.jitter)),
            ("start", p(&m.start)),
            ("of", s(&m.of)),
            ("gain", p(&m.gain)),
            ("scale", s(&m.scale)),
        ];
        for (key, at) in present {
            if let Some(at) = at {
                if !allowed.contains(&key) {
                    let takes = if allowed.is_empty() {
                        "no model keys".to_owned()
                    } else {
                        list_keys(allowed)
                    };
                    return Err(self.at(
                        &at,
                        &format!("{path}.{key}"),
                        format!("`{key}` does not apply to model `{model}`"),
                        &format!(
                            "model `{model}` takes {takes}; remove `{key}` or change the model"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn model(
        &self,
        m: &RawMetric,
        path: &str,
        model: &str,
        states: &[String],
        earlier: &[MetricDef],
    ) -> Result<Model> {
        let k = |key: &str| format!("{path}.{key}");
        let missing = |key: &str, example: &str| {
            self.at(
                &m.model.referenced,
                &k(key),
                format!("model `{model}` needs `{key}`"),
                &format!("add e.g. `{key}: {example}`"),
            )
        };
        let param = |x: &Option<Spanned<RawParam>>,
                     key: &str,
                     example: &str,
                     default: Option<f64>|
         -> Result<Param> {
            match (x, default) {
                (Some(v), _) => self.param(
                    v,
                    &k(key),
                    states,
                    &format!("a number or per-state numbers, e.g. `{key}: {example}`"),
                ),
                (None, Some(d)) => Ok(Param::fixed(d)),
                (None, None) => Err(missing(key, example)),
            }
        };
        let num =
            |x: &Option<Scalar>, key: &str, example: &str, default: Option<f64>| -> Result<f64> {
                match (x, default) {
                    (Some(v), _) => self.number(v, &k(key), &format!("e.g. `{key}: {example}`")),
                    (None, Some(d)) => Ok(d),
                    (None, None) => Err(missing(key, example)),
                }
            };
        let secs = |x: &Option<Scalar>, key: &str, example: &str| -> Result<f64> {
            match x {
                Some(v) => {
                    self.seconds(v, &k(key), &format!("a duration, e.g. `{key}: {example}`"))
                }
                None => Err(missing(key, example)),
            }
        };
        let source = |x: &Option<Scalar>| -> Result<usize> {
            let Some(v) = x else {
                return Err(missing("of", "<an earlier metric>"));
            };
            let names: Vec<&str> = earlier.iter().map(|d| d.name.as_str()).collect();
            let hint = if names.is_empty() {
                "`of` names a metric defined above this one; this is the first metric".to_owned()
            } else {
                format!(
                    "`of` names a metric defined above this one: {}",
                    list_keys(&names)
                )
            };
            let name = self.text(v, &k("of"), &hint)?;
            names.iter().position(|n| *n == name.trim()).ok_or_else(|| {
                self.invalid(
                    v,
                    &k("of"),
                    format!("no metric `{name}` above this one"),
                    &hint,
                )
            })
        };
        let start = |x: &Option<Spanned<RawParam>>| -> Result<(f64, f64)> {
            let hint = "a starting value or range, e.g. `start: 0` or `start: [1000, 200000]`";
            let Some(v) = x else { return Ok((0.0, 0.0)) };
            let scalar = |value: &Value| Spanned {
                value: value.clone(),
                referenced: v.referenced,
                defined: v.defined,
            };
            match &v.value {
                RawParam::One(value) => {
                    let n = self.number(&scalar(value), &k("start"), hint)?;
                    Ok((n, n))
                }
                RawParam::List(items) if items.len() == 2 => {
                    let lo = self.number(&items[0], &k("start"), hint)?;
                    let hi = self.number(&items[1], &k("start"), hint)?;
                    if hi < lo {
                        return Err(self.invalid(
                            &items[1],
                            &k("start"),
                            format!("the range ends ({hi}) below its start ({lo})"),
                            hint,
                        ));
                    }
                    Ok((lo, hi))
                }
                _ => Err(self.at(
                    &v.referenced,
                    &k("start"),
                    "expected a number or a list of two numbers".into(),
                    hint,
                )),
            }
        };
        Ok(match model {
            "state" => {
                if states.is_empty() {
                    return Err(self.invalid(&m.model, &k("model"), "model `state` publishes the machine state, and this profile has no `states`".into(), "add `states:` to the profile"));
                }
                Model::State
            }
            "walk" => Model::Walk {
                mean: param(&m.mean, "mean", "21.5", None)?,
                sd: param(&m.sd, "sd", "0.5", None)?,
                tau_s: secs(&m.tau, "tau", "10m")?,
            },
            "sine" => Model::Sine {
                period_s: secs(&m.period, "period", "24h")?,
                amplitude: param(&m.amplitude, "amplitude", "2.5", None)?,
                offset: param(&m.offset, "offset", "21", Some(0.0))?,
                noise: num(&m.noise, "noise", "0.1", Some(0.0))?.abs(),
                phase: match &m.phase {
                    None => None,
                    Some(v) if matches!(&v.value, Value::Str(s) if s.trim() == "random") => None,
                    Some(v) => Some(self.number(v, &k("phase"), "a fraction of a cycle (0.25 = a quarter) or `random` (default: each device its own)")?),
                },
            },
            "ramp" => Model::Ramp {
                from: num(&m.from, "from", "0", None)?,
                to: num(&m.to, "to", "100", None)?,
                over_s: secs(&m.over, "over", "10m")?,
                end: match &m.then {
                    None => RampEnd::Hold,
                    Some(v) => {
                        let hint = "`then: hold` (default), `repeat` or `reverse`";
                        match self.text(v, &k("then"), hint)?.trim() {
                            "hold" => RampEnd::Hold,
                            "repeat" => RampEnd::Repeat,
                            "reverse" => RampEnd::Reverse,
                            other => return Err(self.invalid(v, &k("then"), format!("unknown ramp end `{other}`"), hint)),
                        }
                    }
                },
            },
            "steps" => {
                let hint = "the values to step through, e.g. `values: [100, 120, 140]`";
                let Some(list) = &m.values else {
                    return Err(missing("values", "[100, 120, 140]"));
                };
                if list.value.is_empty() {
                    return Err(self.at(&list.referenced, &k("values"), "the list is empty".into(), hint));
                }
                let values = list
                    .value
                    .iter()
                    .map(|v| self.number(v, &k("values"), hint))
                    .collect::<Result<Vec<_>>>()?;
                Model::Steps {
                    values: values.into_boxed_slice(),
                    every_s: secs(&m.every, "every", "1h")?,
                }
            }
            "counter" => {
                let rate = match &m.rate {
                    Some(Spanned { value: RawParam::One(Value::Str(s)), referenced, defined }) => {
                        let scalar = Spanned { value: Value::Str(s.clone()), referenced: *referenced, defined: *defined };
                        Param::fixed(self.per_second(&scalar, &k("rate"), "increase per second, e.g. `rate: 0.5` or `rate: 30/h`")?)
                    }
                    other => param(other, "rate", "0.5", None)?,
                };
                if let (Some(bad), Some(at)) =
                    (rate.values().iter().find(|r| **r < 0.0), &m.rate)
                {
                    return Err(self.at(
                        &at.referenced,
                        &k("rate"),
                        format!("a counter never decreases; the rate {bad} is negative"),
                        "use a rate of zero or more, e.g. `rate: 0.5` or `rate: { running: 0.5, other: 0 }`",
                    ));
                }
                Model::Counter {
                    rate,
                    jitter: num(&m.jitter, "jitter", "0.1", Some(0.0))?.abs(),
                    start: start(&m.start)?,
                }
            }
            "integral" => Model::Integral {
                of: source(&m.of)?,
                scale: num(&m.scale, "scale", "0.000277778", Some(1.0))?,
                start: start(&m.start)?,
            },
            _ => Model::Follow {
                of: source(&m.of)?,
                gain: param(&m.gain, "gain", "1.5", Some(1.0))?,
                offset: param(&m.offset, "offset", "0", Some(0.0))?,
                sd: param(&m.sd, "sd", "0.1", Some(0.0))?,
                tau_s: secs(&m.tau, "tau", "5s")?,
            },
        })
    }

    fn alarm(&self, a: &RawAlarm, at: &Location, path: &str) -> Result<Alarm> {
        let hint = "`alarm: { above: 80, clear: 75 }` (raised above 80, cleared below 75) or `{ below: 10, clear: 12 }`";
        let (high, trip) = match (&a.above, &a.below) {
            (Some(v), None) => (true, self.number(v, &format!("{path}.above"), hint)?),
            (None, Some(v)) => (false, self.number(v, &format!("{path}.below"), hint)?),
            _ => {
                return Err(self.at(
                    at,
                    path,
                    "an alarm needs exactly one of `above` and `below`".into(),
                    hint,
                ))
            }
        };
        let clear = match &a.clear {
            Some(v) => {
                let c = self.number(v, &format!("{path}.clear"), hint)?;
                if (high && c > trip) || (!high && c < trip) {
                    return Err(self.invalid(
                        v,
                        &format!("{path}.clear"),
                        format!("the alarm would clear at {c}, beyond where it trips ({trip})"),
                        "hysteresis: `clear` lies on the normal side of the trip point",
                    ));
                }
                c
            }
            None => trip,
        };
        Ok(Alarm { high, trip, clear })
    }

    fn quality(&self, q: &RawQuality, at: &Location, path: &str) -> Result<Quality> {
        let hint = "shares of samples published with a non-good quality code, e.g. `quality: { uncertain: 1%, bad: 0.1% }`";
        let get = |v: &Option<Scalar>, key: &str| match v {
            Some(v) => self.fraction(v, &format!("{path}.{key}"), hint),
            None => Ok(0.0),
        };
        let quality = Quality {
            uncertain: get(&q.uncertain, "uncertain")?,
            bad: get(&q.bad, "bad")?,
        };
        if quality.uncertain + quality.bad > 1.0 {
            return Err(self.at(
                at,
                path,
                "uncertain and bad add up to more than 100%".into(),
                hint,
            ));
        }
        Ok(quality)
    }

    fn anomalies(&self, a: &RawAnomalies, path: &str) -> Result<Anomalies> {
        let hint = "e.g. `anomalies: { rate: 2/h, duration: 30s, magnitude: 5, kinds: [spike, drift, stuck] }`";
        let rate_per_s = self.per_second(&a.rate, &format!("{path}.rate"), hint)?;
        let duration_s = match &a.duration {
            Some(v) => self.seconds(v, &format!("{path}.duration"), hint)?,
            None => 60.0,
        };
        let magnitude = match &a.magnitude {
            Some(v) => self.number(v, &format!("{path}.magnitude"), hint)?.abs(),
            None => 0.0,
        };
        let names: Vec<&str> = AnomalyKind::ALL.iter().map(|(n, _)| *n).collect();
        let kinds = match &a.kinds {
            None => AnomalyKind::ALL.iter().map(|(_, k)| *k).collect(),
            Some(list) => {
                let mut kinds = Vec::new();
                for v in &list.value {
                    let khint = format!("anomaly kinds are {}", list_keys(&names));
                    let t = self.text(v, &format!("{path}.kinds"), &khint)?;
                    let kind = AnomalyKind::ALL
                        .iter()
                        .find(|(n, _)| *n == t.trim())
                        .map(|(_, k)| *k)
                        .ok_or_else(|| {
                            self.invalid(
                                v,
                                &format!("{path}.kinds"),
                                format!("unknown anomaly kind `{t}`"),
                                &khint,
                            )
                        })?;
                    kinds.push(kind);
                }
                if kinds.is_empty() {
                    return Err(self.at(
                        &list.referenced,
                        &format!("{path}.kinds"),
                        "the list is empty".into(),
                        hint,
                    ));
                }
                kinds
            }
        };
        if magnitude == 0.0 && kinds.iter().any(|k| *k != AnomalyKind::Stuck) {
            return Err(self.invalid(
                &a.rate,
                &format!("{path}.magnitude"),
                "spikes and drifts need a `magnitude`".into(),
                hint,
            ));
        }
        Ok(Anomalies {
            rate_per_s,
            duration_s,
            magnitude,
            kinds: kinds.into_boxed_slice(),
        })
    }
}
