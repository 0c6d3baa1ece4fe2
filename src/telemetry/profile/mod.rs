//! Device profiles as data: the metrics a device publishes, the signal model of each, and an optional machine
//! state machine that drives them. Built-in profiles and the ones a scenario defines are the same thing: a
//! [`Profile`] built from a [`ProfileDef`] (the scenario module reads both from YAML).
//!
//! A profile is shared (`Arc`) by every device that uses it; a device only holds its generator and a slice of
//! `f64` slots (one per evolving value), laid out once per profile by [`Profile::new`].

mod describe;
mod step;

use std::time::Duration;

/// One published value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample<'a> {
    Float(f64),
    Int(i64),
    Bool(bool),
    Text(&'a str),
}

/// Most states a profile's state machine may have.
pub const MAX_STATES: usize = 16;
/// Most metrics one profile may define.
pub const MAX_METRICS: usize = 64;

/// OPC UA style quality codes published in `<metric>_quality`.
pub const QUALITY_GOOD: i64 = 192;
pub const QUALITY_UNCERTAIN: i64 = 64;
pub const QUALITY_BAD: i64 = 0;

/// A model parameter: one value, or one value per state (indexed like [`StateDef::name`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Param(Box<[f64]>);

impl Param {
    /// The same value in every state.
    pub fn fixed(value: f64) -> Param {
        Param(Box::new([value]))
    }

    /// One value per state, in state order.
    pub fn by_state(values: Vec<f64>) -> Param {
        Param(values.into_boxed_slice())
    }

    /// The value in `state`.
    pub fn at(&self, state: usize) -> f64 {
        match &*self.0 {
            [one] => *one,
            many => many.get(state).copied().unwrap_or(0.0),
        }
    }

    /// Values per state (`len() == 1` for a fixed parameter).
    pub fn values(&self) -> &[f64] {
        &self.0
    }
}

/// What happens when a ramp reaches its end value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RampEnd {
    /// Stay at `to`.
    Hold,
    /// Start again from `from`.
    Repeat,
    /// Go back down to `from`, then up again (a triangle wave).
    Reverse,
}

/// How one metric's value moves.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// The name of the profile's current machine state.
    State,
    /// A random walk reverting to `mean` with time constant `tau_s` (Ornstein-Uhlenbeck); `sd` is the long-run
    /// standard deviation. Both may differ per state, so the value follows the machine state with a lag.
    Walk { mean: Param, sd: Param, tau_s: f64 },
    /// `offset + amplitude · sin(2π·t/period + phase) + noise`, from absolute time (a daily cycle has a period
    /// of 24 h). `phase` in cycles; `None`: a different phase per device.
    Sine {
        period_s: f64,
        amplitude: Param,
        offset: Param,
        noise: f64,
        phase: Option<f64>,
    },
    /// A straight line from `from` to `to` over `over_s`, from the device's first sample.
    Ramp {
        from: f64,
        to: f64,
        over_s: f64,
        end: RampEnd,
    },
    /// A value held for `every_s`, then the next of `values` (a setpoint schedule), cycling.
    Steps { values: Box<[f64]>, every_s: f64 },
    /// A monotonic counter growing at `rate` per second (per state: parts only count while running) with
    /// relative `jitter`, starting anywhere in `start`.
    Counter {
        rate: Param,
        jitter: f64,
        start: (f64, f64),
    },
    /// The running integral of an earlier metric times `scale` (energy from power: `scale: 1/3600`).
    Integral {
        of: usize,
        scale: f64,
        start: (f64, f64),
    },
    /// `offset + gain · <earlier metric>`, reached with time constant `tau_s`, plus noise of long-run standard
    /// deviation `sd` (motor current follows spindle speed).
    Follow {
        of: usize,
        gain: Param,
        offset: Param,
        sd: Param,
        tau_s: f64,
    },
}

impl Model {
    /// The metric this model reads, if any.
    pub fn source(&self) -> Option<usize> {
        match self {
            Model::Integral { of, .. } | Model::Follow { of, .. } => Some(*of),
            _ => None,
        }
    }

    /// The name used in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            Model::State => "state",
            Model::Walk { .. } => "walk",
            Model::Sine { .. } => "sine",
            Model::Ramp { .. } => "ramp",
            Model::Steps { .. } => "steps",
            Model::Counter { .. } => "counter",
            Model::Integral { .. } => "integral",
            Model::Follow { .. } => "follow",
        }
    }
}

/// How a value is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A number with a fixed number of decimals.
    Float { decimals: u8 },
    /// A whole number (rounded).
    Int,
}

/// An alarm with hysteresis, published as `<metric>_alarm`: raised when the value goes beyond `trip`
/// (above it when `high`, below it otherwise), cleared only once it is back past `clear`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alarm {
    pub high: bool,
    pub trip: f64,
    pub clear: f64,
}

impl Alarm {
    /// The alarm state after seeing `value`, given whether it was `active`.
    pub fn next(&self, active: bool, value: f64) -> bool {
        match (self.high, active) {
            (true, false) => value > self.trip,
            (true, true) => value >= self.clear,
            (false, false) => value < self.trip,
            (false, true) => value <= self.clear,
        }
    }
}

/// Quality codes published as `<metric>_quality`: each sample is uncertain or bad with these probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub uncertain: f64,
    pub bad: f64,
}

/// Kinds of injected anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// One sample off by ± magnitude.
    Spike,
    /// An offset growing to ± magnitude over the duration, then gone.
    Drift,
    /// The published value freezes for the duration.
    Stuck,
}

impl AnomalyKind {
    pub const ALL: [(&'static str, AnomalyKind); 3] = [
        ("spike", AnomalyKind::Spike),
        ("drift", AnomalyKind::Drift),
        ("stuck", AnomalyKind::Stuck),
    ];

    fn code(self) -> f64 {
        match self {
            AnomalyKind::Spike => 1.0,
            AnomalyKind::Drift => 2.0,
            AnomalyKind::Stuck => 3.0,
        }
    }
}

/// Anomalies injected into a metric's published value (the underlying process is untouched): they start at
/// `rate_per_s` (a Poisson process per device) and last `duration_s`.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomalies {
    pub rate_per_s: f64,
    pub duration_s: f64,
    pub magnitude: f64,
    pub kinds: Box<[AnomalyKind]>,
}

/// One metric of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDef {
    pub name: String,
    pub model: Model,
    pub value_type: ValueType,
    pub min: f64,
    pub max: f64,
    /// Relative per-device variation of the model's level parameters (0.1: each device ±10 %).
    pub spread: f64,
    /// Report by exception: publish only when the value moved more than this since it was last published.
    pub deadband: Option<f64>,
    pub alarm: Option<Alarm>,
    pub quality: Option<Quality>,
    pub anomalies: Option<Anomalies>,
}

impl MetricDef {
    /// A float metric with two decimals, no bounds and none of the options.
    pub fn new(name: &str, model: Model) -> MetricDef {
        MetricDef {
            name: name.to_owned(),
            model,
            value_type: ValueType::Float { decimals: 2 },
            min: f64::NEG_INFINITY,
            max: f64::INFINITY,
            spread: 0.0,
            deadband: None,
            alarm: None,
            quality: None,
            anomalies: None,
        }
    }
}

/// One state of a profile's state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct StateDef {
    pub name: String,
    /// Mean time in the state (exponentially distributed).
    pub dwell_s: f64,
    /// Where the machine goes when it leaves: `(state index, weight)`; weights are normalised.
    pub next: Vec<(usize, f64)>,
}

/// A profile as written: what [`Profile::new`] checks and lays out.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileDef {
    pub name: String,
    /// Default publish interval of groups using the profile.
    pub interval: Option<Duration>,
    pub states: Vec<StateDef>,
    pub metrics: Vec<MetricDef>,
}

/// Why a profile definition was refused (the scenario validator reports most of these with a location first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("profile `{0}` has no metrics")]
    NoMetrics(String),
    #[error("profile `{profile}` has {count} metrics; at most {MAX_METRICS} are supported")]
    TooManyMetrics { profile: String, count: usize },
    #[error("profile `{profile}` has {count} states; at most {MAX_STATES} are supported")]
    TooManyStates { profile: String, count: usize },
    #[error("metric `{0}` is defined twice (alarms and quality codes add `<name>_alarm` and `<name>_quality`)")]
    DuplicateName(String),
    #[error("metric `{metric}` reads metric #{of}, which is not defined before it")]
    BadSource { metric: String, of: usize },
    #[error("metric `{0}` uses the machine state, but the profile has no `states`")]
    NoStates(String),
    #[error("metric `{metric}` has {got} per-state values; the profile has {states} states")]
    ParamStates {
        metric: String,
        got: usize,
        states: usize,
    },
    #[error("state `{state}` leads to state #{target}, which does not exist")]
    BadTransition { state: String, target: usize },
    #[error("state `{0}` has no way out (an empty `next`)")]
    DeadEnd(String),
}

/// How a published value is typed, for encoders that need a schema (Sparkplug births).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Float { decimals: u8 },
    Int,
    Bool,
    Text,
}

/// One published value: a metric, or a metric's alarm or quality code.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: Box<str>,
    pub kind: OutputKind,
    /// The name as a JSON object key with its colon (`"name":`), escaped once here, not per payload.
    pub(crate) json_key: Box<[u8]>,
}

impl Output {
    fn new(name: String, kind: OutputKind) -> Output {
        let mut json_key = Vec::with_capacity(name.len() + 3);
        super::json::write_str(&mut json_key, &name);
        json_key.push(b':');
        Output {
            name: name.into(),
            kind,
            json_key: json_key.into(),
        }
    }
}

/// Where a metric keeps its evolving values in a device's slots.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    value: usize,
    /// Last published value (report by exception).
    reported: Option<usize>,
    /// Alarm active (1) or not (0).
    alarm: Option<usize>,
    /// Current quality code.
    quality: Option<usize>,
    /// Three slots: end time, kind code, start time or frozen value.
    anomaly: Option<usize>,
    /// Index of the metric's first output.
    output: usize,
}

/// A checked profile, shared by every device that uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    def: ProfileDef,
    /// Cumulative stationary distribution of the states: where a device starts.
    initial_cdf: Box<[f64]>,
    layout: Box<[Layout]>,
    outputs: Box<[Output]>,
    slots: usize,
    /// Slot of the device's first sample time, seconds since the Unix epoch (NaN before it); only for
    /// models that count time from it (ramps, steps).
    t0_slot: Option<usize>,
    /// Slot of the state machine's state index, with states.
    state_slot: Option<usize>,
}

impl Profile {
    /// Check a definition and lay out its slots.
    pub fn new(def: ProfileDef) -> Result<Profile, ProfileError> {
        check(&def)?;
        let mut layout = Vec::with_capacity(def.metrics.len());
        let mut outputs = Vec::new();
        let mut next = 0;
        let mut take = |n: usize| {
            let at = next;
            next += n;
            at
        };
        let uses_t0 = def
            .metrics
            .iter()
            .any(|m| matches!(m.model, Model::Ramp { .. } | Model::Steps { .. }));
        let t0_slot = uses_t0.then(|| take(1));
        let state_slot = (!def.states.is_empty()).then(|| take(1));
        for m in &def.metrics {
            let output = outputs.len();
            let kind = match (&m.model, m.value_type) {
                (Model::State, _) => OutputKind::Text,
                (_, ValueType::Int) => OutputKind::Int,
                (_, ValueType::Float { decimals }) => OutputKind::Float { decimals },
            };
            outputs.push(Output::new(m.name.clone(), kind));
            if m.alarm.is_some() {
                outputs.push(Output::new(format!("{}_alarm", m.name), OutputKind::Bool));
            }
            if m.quality.is_some() {
                outputs.push(Output::new(format!("{}_quality", m.name), OutputKind::Int));
            }
            layout.push(Layout {
                value: take(1),
                reported: m.deadband.map(|_| take(1)),
                alarm: m.alarm.map(|_| take(1)),
                quality: m.quality.map(|_| take(1)),
                anomaly: m.anomalies.as_ref().map(|_| take(3)),
                output,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for o in &outputs {
            if !seen.insert(o.name.clone()) {
                return Err(ProfileError::DuplicateName(o.name.to_string()));
            }
        }
        Ok(Profile {
            initial_cdf: stationary_cdf(&def.states),
            def,
            layout: layout.into_boxed_slice(),
            outputs: outputs.into_boxed_slice(),
            slots: next,
            t0_slot,
            state_slot,
        })
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The definition it was built from.
    pub fn def(&self) -> &ProfileDef {
        &self.def
    }

    /// Default publish interval of groups using it.
    pub fn interval(&self) -> Option<Duration> {
        self.def.interval
    }

    /// Every published value, in payload order.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// `f64` slots a device of this profile keeps.
    pub fn slot_count(&self) -> usize {
        self.slots
    }

    /// A representative value of each output before any sample (Sparkplug births of a fresh session):
    /// the level of each model in the first state.
    pub fn nominal(&self, output: usize) -> Sample<'_> {
        let Some((metric, layout)) = self
            .def
            .metrics
            .iter()
            .zip(self.layout.iter())
            .rev()
            .find(|(_, l)| l.output <= output)
        else {
            return Sample::Float(0.0);
        };
        if output > layout.output {
            let is_alarm = metric.alarm.is_some() && output == layout.output + 1;
            return if is_alarm {
                Sample::Bool(false)
            } else {
                Sample::Int(QUALITY_GOOD)
            };
        }
        let level = match &metric.model {
            Model::State => {
                let name = self.def.states.first().map_or("", |s| s.name.as_str());
                return Sample::Text(name);
            }
            Model::Walk { mean, .. } => mean.at(0),
            Model::Sine { offset, .. } => offset.at(0),
            Model::Ramp { from, .. } => *from,
            Model::Steps { values, .. } => values.first().copied().unwrap_or(0.0),
            Model::Counter { start, .. } | Model::Integral { start, .. } => start.0,
            Model::Follow { offset, .. } => offset.at(0),
        };
        let level = level.max(metric.min).min(metric.max);
        match metric.value_type {
            ValueType::Int => Sample::Int(to_int(level)),
            ValueType::Float { .. } => Sample::Float(level),
        }
    }
}

fn check(def: &ProfileDef) -> Result<(), ProfileError> {
    let profile = || def.name.clone();
    if def.metrics.is_empty() {
        return Err(ProfileError::NoMetrics(profile()));
    }
    if def.metrics.len() > MAX_METRICS {
        return Err(ProfileError::TooManyMetrics {
            profile: profile(),
            count: def.metrics.len(),
        });
    }
    let states = def.states.len();
    if states > MAX_STATES {
        return Err(ProfileError::TooManyStates {
            profile: profile(),
            count: states,
        });
    }
    for s in &def.states {
        if s.next.is_empty() {
            return Err(ProfileError::DeadEnd(s.name.clone()));
        }
        if let Some(&(target, _)) = s.next.iter().find(|(t, _)| *t >= states) {
            return Err(ProfileError::BadTransition {
                state: s.name.clone(),
                target,
            });
        }
    }
    for (i, m) in def.metrics.iter().enumerate() {
        if let Some(of) = m.model.source() {
            if of >= i {
                return Err(ProfileError::BadSource {
                    metric: m.name.clone(),
                    of,
                });
            }
        }
        if matches!(m.model, Model::State) && states == 0 {
            return Err(ProfileError::NoStates(m.name.clone()));
        }
        for p in params(&m.model) {
            let got = p.values().len();
            if got != 1 && got != states {
                if states == 0 {
                    return Err(ProfileError::NoStates(m.name.clone()));
                }
                return Err(ProfileError::ParamStates {
                    metric: m.name.clone(),
                    got,
                    states,
                });
            }
        }
    }
    Ok(())
}

/// The parameters of a model that may vary per state.
fn params(model: &Model) -> Vec<&Param> {
    match model {
        Model::Walk { mean, sd, .. } => vec![mean, sd],
        Model::Sine {
            amplitude, offset, ..
        } => vec![amplitude, offset],
        Model::Counter { rate, .. } => vec![rate],
        Model::Follow {
            gain, offset, sd, ..
        } => vec![gain, offset, sd],
        Model::State | Model::Ramp { .. } | Model::Steps { .. } | Model::Integral { .. } => vec![],
    }
}

/// Cumulative long-run share of time in each state: the embedded chain's stationary distribution (power
/// iteration) weighted by the mean dwell times. Empty without states.
fn stationary_cdf(states: &[StateDef]) -> Box<[f64]> {
    let n = states.len();
    if n == 0 {
        return Box::new([]);
    }
    let mut visits = vec![1.0 / n as f64; n];
    for _ in 0..200 {
        let mut next = vec![0.0; n];
        for (from, s) in states.iter().enumerate() {
            let total: f64 = s.next.iter().map(|(_, w)| w.max(0.0)).sum();
            for &(to, w) in &s.next {
                if total > 0.0 && to < n {
                    next[to] += visits[from] * w.max(0.0) / total;
                }
            }
        }
        // Lazy chain (half stays): converges even when the chain is periodic.
        for (v, x) in visits.iter_mut().zip(next) {
            *v = 0.5 * *v + 0.5 * x;
        }
    }
    let weights: Vec<f64> = visits
        .iter()
        .zip(states)
        .map(|(v, s)| v * s.dwell_s.max(0.0))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|w| {
            cumulative += if total > 0.0 {
                w / total
            } else {
                1.0 / n as f64
            };
            cumulative
        })
        .collect()
}

/// A whole number from a float: rounded, saturating, NaN as 0.
fn to_int(value: f64) -> i64 {
    value.round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_states(dwell_a: f64, dwell_b: f64) -> Vec<StateDef> {
        vec![
            StateDef {
                name: "a".into(),
                dwell_s: dwell_a,
                next: vec![(1, 1.0)],
            },
            StateDef {
                name: "b".into(),
                dwell_s: dwell_b,
                next: vec![(0, 1.0)],
            },
        ]
    }

    #[test]
    fn stationary_share_is_weighted_by_dwell() {
        let cdf = stationary_cdf(&two_states(100.0, 300.0));
        assert!((cdf[0] - 0.25).abs() < 1e-9, "{cdf:?}");
        assert!((cdf[1] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn alarm_hysteresis() {
        let high = Alarm {
            high: true,
            trip: 80.0,
            clear: 75.0,
        };
        assert!(!high.next(false, 80.0));
        assert!(high.next(false, 80.1));
        assert!(high.next(true, 76.0), "stays raised inside the band");
        assert!(!high.next(true, 74.9));
        let low = Alarm {
            high: false,
            trip: 10.0,
            clear: 12.0,
        };
        assert!(low.next(false, 9.0));
        assert!(low.next(true, 11.0));
        assert!(!low.next(true, 12.5));
    }

    #[test]
    fn definitions_are_checked() {
        let walk = Model::Walk {
            mean: Param::by_state(vec![1.0, 2.0]),
            sd: Param::fixed(0.1),
            tau_s: 10.0,
        };
        let mut def = ProfileDef {
            name: "p".into(),
            interval: None,
            states: vec![],
            metrics: vec![MetricDef::new("x", walk)],
        };
        assert_eq!(
            Profile::new(def.clone()),
            Err(ProfileError::NoStates("x".into()))
        );
        def.states = two_states(1.0, 1.0);
        let profile = Profile::new(def.clone()).expect("valid");
        assert_eq!(profile.slot_count(), 2, "the state and one value");
        def.metrics.push(MetricDef::new(
            "y",
            Model::Follow {
                of: 1,
                gain: Param::fixed(1.0),
                offset: Param::fixed(0.0),
                sd: Param::fixed(0.0),
                tau_s: 1.0,
            },
        ));
        assert!(matches!(
            Profile::new(def.clone()),
            Err(ProfileError::BadSource { .. })
        ));
        def.metrics[1].name = "x_alarm".into();
        def.metrics[1].model = Model::State;
        def.metrics[0].alarm = Some(Alarm {
            high: true,
            trip: 1.0,
            clear: 0.5,
        });
        assert_eq!(
            Profile::new(def),
            Err(ProfileError::DuplicateName("x_alarm".into()))
        );
    }
}
