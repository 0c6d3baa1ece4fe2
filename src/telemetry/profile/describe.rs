//! A profile written back in the scenario format's words (for the resolved scenario in report.json), so a report
//! says exactly which signals a scenario-defined profile produced.

use serde_json::{json, Map, Value};

use super::{Model, Param, Profile, RampEnd, ValueType};

impl Profile {
    /// The definition as the keys of a scenario's `profiles:` item (durations in seconds, rates per second).
    pub fn describe(&self) -> Value {
        let def = &self.def;
        let states: Vec<&str> = def.states.iter().map(|s| s.name.as_str()).collect();
        let param = |p: &Param| match p.values() {
            [one] => json!(one),
            many => Value::Object(
                states
                    .iter()
                    .zip(many)
                    .map(|(s, v)| ((*s).to_owned(), json!(v)))
                    .collect(),
            ),
        };
        let name_of = |i: usize| def.metrics.get(i).map_or("", |m| m.name.as_str());
        let mut out = Map::new();
        out.insert("name".into(), json!(def.name));
        if let Some(d) = def.interval {
            out.insert("interval_s".into(), json!(d.as_secs_f64()));
        }
        if !def.states.is_empty() {
            let list: Vec<Value> = def
                .states
                .iter()
                .map(|s| {
                    let next: Map<String, Value> = s
                        .next
                        .iter()
                        .map(|(t, w)| (states.get(*t).copied().unwrap_or("").to_owned(), json!(w)))
                        .collect();
                    json!({ "name": s.name, "dwell_s": s.dwell_s, "next": next })
                })
                .collect();
            out.insert("states".into(), Value::Array(list));
        }
        let metrics: Vec<Value> = def
            .metrics
            .iter()
            .map(|m| {
                let mut o = Map::new();
                o.insert("name".into(), json!(m.name));
                o.insert("model".into(), json!(m.model.name()));
                let mut put = |k: &str, v: Value| {
                    o.insert(k.into(), v);
                };
                match &m.model {
                    Model::State => {}
                    Model::Walk { mean, sd, tau_s } => {
                        put("mean", param(mean));
                        put("sd", param(sd));
                        put("tau_s", json!(tau_s));
                    }
                    Model::Sine { period_s, amplitude, offset, noise, phase } => {
                        put("period_s", json!(period_s));
                        put("amplitude", param(amplitude));
                        put("offset", param(offset));
                        put("noise", json!(noise));
                        put("phase", phase.map_or(json!("random"), |p| json!(p)));
                    }
                    Model::Ramp { from, to, over_s, end } => {
                        put("from", json!(from));
                        put("to", json!(to));
                        put("over_s", json!(over_s));
                        let then = match end {
                            RampEnd::Hold => "hold",
                            RampEnd::Repeat => "repeat",
                            RampEnd::Reverse => "reverse",
                        };
                        put("then", json!(then));
                    }
                    Model::Steps { values, every_s } => {
                        put("values", json!(values));
                        put("every_s", json!(every_s));
                    }
                    Model::Counter { rate, jitter, start } => {
                        put("rate_per_s", param(rate));
                        put("jitter", json!(jitter));
                        put("start", json!([start.0, start.1]));
                    }
                    Model::Integral { of, scale, start } => {
                        put("of", json!(name_of(*of)));
                        put("scale", json!(scale));
                        put("start", json!([start.0, start.1]));
                    }
                    Model::Follow { of, gain, offset, sd, tau_s } => {
                        put("of", json!(name_of(*of)));
                        put("gain", param(gain));
                        put("offset", param(offset));
                        put("sd", param(sd));
                        put("tau_s", json!(tau_s));
                    }
                }
                match m.value_type {
                    ValueType::Int => put("type", json!("int")),
                    ValueType::Float { decimals } => {
                        put("type", json!("float"));
                        put("decimals", json!(decimals));
                    }
                }
                // Infinite bounds are no bounds (JSON has no infinity).
                if m.min.is_finite() {
                    put("min", json!(m.min));
                }
                if m.max.is_finite() {
                    put("max", json!(m.max));
                }
                if m.spread != 0.0 {
                    put("spread", json!(m.spread));
                }
                if let Some(d) = m.deadband {
                    put("deadband", json!(d));
                }
                if let Some(a) = m.alarm {
                    let side = if a.high { "above" } else { "below" };
                    put("alarm", json!({ side: a.trip, "clear": a.clear }));
                }
                if let Some(q) = m.quality {
                    put("quality", json!({ "uncertain": q.uncertain, "bad": q.bad }));
                }
                if let Some(a) = &m.anomalies {
                    let kinds: Vec<&str> = a
                        .kinds
                        .iter()
                        .filter_map(|k| super::AnomalyKind::ALL.iter().find(|(_, x)| x == k))
                        .map(|(n, _)| *n)
                        .collect();
                    put(
                        "anomalies",
                        json!({ "rate_per_s": a.rate_per_s, "duration_s": a.duration_s, "magnitude": a.magnitude, "kinds": kinds }),
                    );
                }
                Value::Object(o)
            })
            .collect();
        out.insert("metrics".into(), Value::Array(metrics));
        Value::Object(out)
    }
}
