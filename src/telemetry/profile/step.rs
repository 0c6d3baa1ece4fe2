//! Advancing a device of a [`Profile`] by one sample: the state machine, every metric's model, anomalies,
//! alarms, quality codes and report-by-exception. Allocation-free; the caller's closure receives each output.

use std::f64::consts::TAU;

use super::{
    to_int, AnomalyKind, Layout, MetricDef, Model, Profile, RampEnd, Sample, ValueType,
    QUALITY_BAD, QUALITY_GOOD, QUALITY_UNCERTAIN,
};
use crate::telemetry::rng::{unit_symmetric, Rng};
use crate::telemetry::signal::{clamp, sanitize_dt, Counter, OrnsteinUhlenbeck, SineNoise};

// Salts of the per-device variations, combined with the metric index.
const SALT_LEVEL: u64 = 0x4C45_5645;
const SALT_AMPLITUDE: u64 = 0x414D_504C;
const SALT_PHASE: u64 = 0x5048_4153;
const SALT_STEPS: u64 = 0x5354_4550;

/// One metric while a device steps: its definition, the device's key for it, the machine state, and where
/// every metric of the profile keeps its value.
struct Metric<'a> {
    def: &'a MetricDef,
    key: u64,
    state: usize,
    layouts: &'a [Layout],
}

/// One exact Ornstein-Uhlenbeck step from `value` towards `mean` (time constant `tau_s`, long-run standard
/// deviation `sd`).
fn ou_step(rng: &mut Rng, value: f64, mean: f64, sd: f64, tau_s: f64, dt: f64) -> f64 {
    OrnsteinUhlenbeck::new(mean, 1.0 / tau_s, sd)
        .with_value(value)
        .step(rng, dt)
}

impl Profile {
    /// A fresh device: no sample yet, the state drawn from the long-run share of time in each state.
    pub(crate) fn init(&self, rng: &mut Rng, slots: &mut [f64]) {
        slots.fill(f64::NAN);
        let pick = rng.next_f64();
        let state = self
            .initial_cdf
            .iter()
            .position(|c| pick < *c)
            .unwrap_or(self.initial_cdf.len().saturating_sub(1));
        if let Some(s) = self.state_slot.and_then(|i| slots.get_mut(i)) {
            *s = state as f64;
        }
        for (metric, layout) in self.def.metrics.iter().zip(self.layout.iter()) {
            if let Some(a) = layout.alarm {
                slots[a] = 0.0;
            }
            if let Some(q) = layout.quality {
                slots[q] = QUALITY_GOOD as f64;
            }
            if let Some(a) = layout.anomaly {
                slots[a] = f64::NEG_INFINITY;
            }
            if let Model::Counter { start, .. } | Model::Integral { start, .. } = metric.model {
                slots[layout.value] = start.0 + (start.1 - start.0) * rng.next_f64();
            }
        }
    }

    /// Advance a device to absolute time `t_s` (seconds since the Unix epoch), `dt_s` after its previous
    /// sample, and hand every output to `emit(output index, value, report)`; `report` is false for a value
    /// held back by its deadband (report by exception). `key` selects the device's own parameters.
    pub(crate) fn step<F>(
        &self,
        key: u64,
        rng: &mut Rng,
        slots: &mut [f64],
        t_s: f64,
        dt_s: f64,
        mut emit: F,
    ) where
        F: FnMut(usize, Sample<'_>, bool),
    {
        if slots.len() < self.slots {
            return;
        }
        let dt = sanitize_dt(dt_s);
        let since = match self.t0_slot {
            Some(i) => {
                if slots[i].is_nan() {
                    slots[i] = t_s;
                }
                (t_s - slots[i]).max(0.0)
            }
            None => 0.0,
        };
        let state = self.step_state(rng, slots, dt);
        for (i, (metric, layout)) in self.def.metrics.iter().zip(self.layout.iter()).enumerate() {
            let ctx = Metric {
                def: metric,
                key: key ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                state,
                layouts: &self.layout,
            };
            let value = ctx.advance(rng, slots, layout, t_s, since, dt);
            slots[layout.value] = value;
            let published = match layout.anomaly {
                Some(a) => ctx.anomaly(rng, &mut slots[a..a + 3], value, t_s, dt),
                None => value,
            };
            let published = clamp(published, metric.min, metric.max);
            self.publish(&ctx, layout, slots, published, rng, &mut emit);
        }
    }

    /// Move the state machine by `dt`; returns the state index (0 without states).
    fn step_state(&self, rng: &mut Rng, slots: &mut [f64], dt: f64) -> usize {
        let states = &self.def.states;
        let Some(slot) = self.state_slot.filter(|_| !states.is_empty()) else {
            return 0;
        };
        let current = (slots[slot] as usize).min(states.len() - 1);
        let leave = rng.next_f64();
        let pick = rng.next_f64();
        let s = &states[current];
        // NaN (dt = 0 and dwell = 0) compares false: stay.
        let p_leave = -(-dt / s.dwell_s).exp_m1();
        let next = if leave < p_leave {
            let total: f64 = s.next.iter().map(|(_, w)| w.max(0.0)).sum();
            let mut cumulative = 0.0;
            let mut chosen = s.next.last().map_or(current, |(t, _)| *t);
            for &(target, w) in &s.next {
                cumulative += w.max(0.0) / total;
                if pick < cumulative {
                    chosen = target;
                    break;
                }
            }
            chosen.min(states.len() - 1)
        } else {
            current
        };
        slots[slot] = next as f64;
        next
    }

    /// Alarm, quality, report-by-exception and the hand-over of one metric's outputs.
    fn publish<F>(
        &self,
        ctx: &Metric<'_>,
        layout: &Layout,
        slots: &mut [f64],
        published: f64,
        rng: &mut Rng,
        emit: &mut F,
    ) where
        F: FnMut(usize, Sample<'_>, bool),
    {
        let metric = ctx.def;
        let by_exception = metric.deadband.is_some();
        // Under report by exception, a metric's first sample reports everything once.
        let first = layout.reported.is_some_and(|r| slots[r].is_nan());
        let sample = match (&metric.model, metric.value_type) {
            (Model::State, _) => Sample::Text(
                self.def
                    .states
                    .get(ctx.state)
                    .map_or("", |s| s.name.as_str()),
            ),
            (_, ValueType::Int) => Sample::Int(to_int(published)),
            (_, ValueType::Float { .. }) => Sample::Float(published),
        };
        let compared = match sample {
            Sample::Int(i) => i as f64,
            Sample::Text(_) => ctx.state as f64,
            _ => published,
        };
        let report = match (layout.reported, metric.deadband) {
            (Some(r), Some(band)) => {
                let last = slots[r];
                let moved = if band > 0.0 {
                    (compared - last).abs() > band
                } else {
                    compared != last
                };
                if last.is_nan() || moved {
                    slots[r] = compared;
                    true
                } else {
                    false
                }
            }
            _ => true,
        };
        emit(layout.output, sample, report);
        let mut output = layout.output + 1;
        if let (Some(a), Some(alarm)) = (layout.alarm, metric.alarm) {
            let was = slots[a] > 0.5;
            let now = alarm.next(was, published);
            slots[a] = f64::from(u8::from(now));
            emit(
                output,
                Sample::Bool(now),
                !by_exception || first || was != now,
            );
            output += 1;
        }
        if let (Some(q), Some(quality)) = (layout.quality, metric.quality) {
            let u = rng.next_f64();
            let code = if u < quality.bad {
                QUALITY_BAD
            } else if u < quality.bad + quality.uncertain {
                QUALITY_UNCERTAIN
            } else {
                QUALITY_GOOD
            };
            let changed = slots[q] != code as f64;
            slots[q] = code as f64;
            emit(output, Sample::Int(code), !by_exception || first || changed);
        }
    }
}

impl Metric<'_> {
    /// A level parameter varied per device by the metric's spread.
    fn vary(&self, value: f64, salt: u64) -> f64 {
        if self.def.spread == 0.0 {
            value
        } else {
            value * (1.0 + self.def.spread * unit_symmetric(self.key, salt))
        }
    }

    /// The current underlying value of metric `of` (0 before it has one).
    fn source(&self, slots: &[f64], of: usize) -> f64 {
        let v = self
            .layouts
            .get(of)
            .and_then(|l| slots.get(l.value))
            .copied()
            .unwrap_or(0.0);
        if v.is_finite() {
            v
        } else {
            0.0
        }
    }

    /// The metric's next underlying value (before anomalies and bounds).
    fn advance(
        &self,
        rng: &mut Rng,
        slots: &[f64],
        layout: &Layout,
        t_s: f64,
        since: f64,
        dt: f64,
    ) -> f64 {
        let def: &MetricDef = self.def;
        let previous = slots[layout.value];
        let state = self.state;
        let next = match &def.model {
            Model::State => state as f64,
            Model::Walk { mean, sd, tau_s } => {
                let mean = self.vary(mean.at(state), SALT_LEVEL);
                let sd = sd.at(state);
                if previous.is_nan() {
                    mean + sd * rng.gaussian()
                } else {
                    ou_step(rng, previous, mean, sd, *tau_s, dt)
                }
            }
            Model::Sine {
                period_s,
                amplitude,
                offset,
                noise,
                phase,
            } => {
                let offset = self.vary(offset.at(state), SALT_LEVEL);
                let amplitude = self.vary(amplitude.at(state), SALT_AMPLITUDE);
                let phase = phase.unwrap_or_else(|| 0.5 * unit_symmetric(self.key, SALT_PHASE));
                SineNoise::new(*period_s, amplitude, offset, *noise, TAU * phase)
                    .sample_at(rng, t_s)
            }
            Model::Ramp {
                from,
                to,
                over_s,
                end,
            } => {
                let x = if *over_s > 0.0 { since / over_s } else { 1.0 };
                let fraction = match end {
                    RampEnd::Hold => x.min(1.0),
                    RampEnd::Repeat => x.rem_euclid(1.0),
                    RampEnd::Reverse => {
                        let r = x.rem_euclid(2.0);
                        if r <= 1.0 {
                            r
                        } else {
                            2.0 - r
                        }
                    }
                };
                from + (to - from) * fraction
            }
            Model::Steps { values, every_s } => {
                let n = values.len().max(1) as u64;
                let offset = (unit_symmetric(self.key, SALT_STEPS) + 1.0) * 0.5 * n as f64;
                let index = if *every_s > 0.0 {
                    ((since / every_s + offset) as u64) % n
                } else {
                    0
                };
                values.get(index as usize).copied().unwrap_or(0.0)
            }
            Model::Counter { rate, jitter, .. } => {
                let rate = self.vary(rate.at(state), SALT_LEVEL);
                let start = if previous.is_finite() { previous } else { 0.0 };
                Counter::new(start, rate, *jitter).step(rng, dt)
            }
            Model::Integral { of, scale, .. } => {
                let start = if previous.is_finite() { previous } else { 0.0 };
                Counter::new(start, self.source(slots, *of) * scale, 0.0).step(rng, dt)
            }
            Model::Follow {
                of,
                gain,
                offset,
                sd,
                tau_s,
            } => {
                let source = self.source(slots, *of);
                let target = self.vary(offset.at(state), SALT_LEVEL)
                    + self.vary(gain.at(state), SALT_AMPLITUDE) * source;
                let sd = sd.at(state);
                if previous.is_nan() {
                    target + sd * rng.gaussian()
                } else {
                    ou_step(rng, previous, target, sd, *tau_s, dt)
                }
            }
        };
        match def.model {
            // Counters keep their own value; bounds apply to what is published.
            Model::Counter { .. } | Model::Integral { .. } => next,
            _ => clamp(next, def.min, def.max),
        }
    }

    /// The published value of `value` under the metric's anomalies: `slots` = [end time, kind code, start
    /// time or frozen value].
    fn anomaly(&self, rng: &mut Rng, slots: &mut [f64], value: f64, t_s: f64, dt: f64) -> f64 {
        let Some(a) = &self.def.anomalies else {
            return value;
        };
        let start = rng.next_f64();
        let pick = rng.next_f64();
        let sign = if rng.next_f64() < 0.5 { -1.0 } else { 1.0 };
        let active = t_s < slots[0];
        if !active && start < -(-a.rate_per_s * dt).exp_m1() && !a.kinds.is_empty() {
            let kind = a.kinds[((pick * a.kinds.len() as f64) as usize).min(a.kinds.len() - 1)];
            slots[0] = t_s + a.duration_s;
            slots[1] = kind.code() * sign;
            slots[2] = match kind {
                AnomalyKind::Stuck => value,
                _ => t_s,
            };
            return match kind {
                AnomalyKind::Spike => value + sign * a.magnitude,
                AnomalyKind::Drift | AnomalyKind::Stuck => value,
            };
        }
        if !active {
            return value;
        }
        let code = slots[1];
        match code.abs() as u8 {
            2 => {
                let progress = if a.duration_s > 0.0 {
                    ((t_s - slots[2]) / a.duration_s).clamp(0.0, 1.0)
                } else {
                    1.0
                };
                value + code.signum() * a.magnitude * progress
            }
            3 => slots[2],
            // A spike is one sample; the rest of its duration is quiet.
            _ => value,
        }
    }
}
