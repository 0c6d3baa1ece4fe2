//! Device profiles, signal models and payload encoders. Seeded and reproducible; no I/O, no clock.
//!
//! The engine keeps one [`DeviceTelemetry`] per simulated device and calls
//! [`DeviceTelemetry::encode_json`] with the intended send time of each message; observers read the stamp
//! back with [`read_stamp`].

mod json;
mod profile;
mod rng;
mod signal;
pub mod sparkplug;

use std::sync::Arc;

pub use json::{read_stamp, write_fixed, Stamp};
pub use profile::{
    Alarm, Anomalies, AnomalyKind, MetricDef, Model, Output, OutputKind, Param, Profile,
    ProfileDef, ProfileError, Quality, RampEnd, Sample, StateDef, ValueType, MAX_METRICS,
    MAX_STATES, QUALITY_BAD, QUALITY_GOOD, QUALITY_UNCERTAIN,
};
pub use rng::Rng;
pub use signal::{Counter, OrnsteinUhlenbeck, SineNoise};

/// Step length assumed for a device's first sample, in seconds.
const FIRST_STEP_S: f64 = 1.0;

/// Salt separating the generator's seed from the key used for per-device parameters.
const RNG_SALT: u64 = 0x05EE_D0FF_1EE7;

/// Per-device telemetry state: a generator, the shared profile and the evolving values (48 bytes on 64-bit
/// targets, plus `8 × profile.slot_count()` bytes on the heap).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceTelemetry {
    rng: Rng,
    /// Derived from (seed, device key); per-device parameters are recomputed from it.
    key: u64,
    /// Intended time of the previous sample, µs since the Unix epoch; 0 before the first.
    last_at_us: u64,
    profile: Arc<Profile>,
    slots: Box<[f64]>,
}

impl DeviceTelemetry {
    /// `seed`: scenario seed; `device_key`: global device index. Same inputs -> same sequence.
    pub fn new(profile: &Arc<Profile>, seed: u64, device_key: u64) -> Self {
        let key = rng::mix64(rng::mix64(seed) ^ device_key);
        let mut rng = Rng::new(rng::mix64(key ^ RNG_SALT));
        let mut slots = vec![0.0; profile.slot_count()].into_boxed_slice();
        profile.init(&mut rng, &mut slots);
        DeviceTelemetry {
            rng,
            key,
            last_at_us: 0,
            profile: Arc::clone(profile),
            slots,
        }
    }

    /// Bytes this device's telemetry holds: the struct and its value slots.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + std::mem::size_of_val(&*self.slots)
    }

    /// The device's profile.
    pub fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    /// Advance to the sample intended at `intended_at_us` and hand each output to `emit(output index, value,
    /// report)` (see [`Profile::outputs`]); `report` is false for values held back by report-by-exception.
    pub fn sample<F>(&mut self, intended_at_us: u64, emit: F)
    where
        F: FnMut(usize, Sample<'_>, bool),
    {
        let (t_s, dt_s) = self.advance_clock(intended_at_us);
        self.profile
            .step(self.key, &mut self.rng, &mut self.slots, t_s, dt_s, emit);
    }

    /// Move the device's clock to `intended_at_us`: (absolute time, step) in seconds.
    fn advance_clock(&mut self, intended_at_us: u64) -> (f64, f64) {
        let dt_s = match self.last_at_us {
            0 => FIRST_STEP_S,
            previous => intended_at_us.saturating_sub(previous) as f64 / 1e6,
        };
        self.last_at_us = self.last_at_us.max(intended_at_us);
        (intended_at_us as f64 / 1e6, dt_s)
    }

    /// Advance every signal to the sample at `intended_at_us` (µs since the Unix epoch; the step size is the
    /// difference from the previous call's intended time, first call: a nominal step of 1 s) and APPEND one
    /// JSON payload to `out`. Allocates nothing except for `out` growing.
    ///
    /// An intended time earlier than the previous one is a step of 0 (signals hold; time never runs back).
    pub fn encode_json(
        &mut self,
        device_id: &str,
        seq: u64,
        intended_at_us: u64,
        out: &mut Vec<u8>,
    ) {
        self.encode_json_sent(device_id, seq, intended_at_us, intended_at_us, out);
    }

    /// As [`DeviceTelemetry::encode_json`], for a message actually sent at `sent_at_us`. When it differs
    /// from the intended time, the stamp carries it too (`"sent_us"`), so observers can measure end-to-end
    /// latency both corrected (from the intended time) and uncorrected (from the actual send).
    pub fn encode_json_sent(
        &mut self,
        device_id: &str,
        seq: u64,
        intended_at_us: u64,
        sent_at_us: u64,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(b"{\"device\":");
        json::write_str(out, device_id);
        out.extend_from_slice(b",\"seq\":");
        json::write_u64(out, seq);
        out.extend_from_slice(b",\"ts_us\":");
        json::write_u64(out, intended_at_us);
        if sent_at_us != intended_at_us {
            out.extend_from_slice(b",\"sent_us\":");
            json::write_u64(out, sent_at_us);
        }
        out.extend_from_slice(b",\"profile\":");
        json::write_str(out, self.profile.name());
        out.extend_from_slice(b",\"metrics\":{");
        let (t_s, dt_s) = self.advance_clock(intended_at_us);
        let outputs = self.profile.outputs();
        let mut first = true;
        let emit = |i: usize, value: Sample<'_>, report: bool| {
            let Some(output) = outputs.get(i).filter(|_| report) else {
                return;
            };
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&output.json_key);
            match (value, output.kind) {
                (Sample::Float(v), OutputKind::Float { decimals }) => {
                    json::write_fixed(out, v, decimals)
                }
                (Sample::Float(v), _) => json::write_fixed(out, v, 2),
                (Sample::Int(v), _) => json::write_i64(out, v),
                (Sample::Bool(b), _) => out.extend_from_slice(if b { b"true" } else { b"false" }),
                (Sample::Text(t), _) => json::write_str(out, t),
            }
        };
        self.profile
            .step(self.key, &mut self.rng, &mut self.slots, t_s, dt_s, emit);
        out.extend_from_slice(b"}}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_state_is_small() {
        let size = std::mem::size_of::<DeviceTelemetry>();
        println!("size_of::<DeviceTelemetry>() = {size} bytes");
        assert!(size <= 48, "DeviceTelemetry grew to {size} bytes");
    }

    #[test]
    fn first_step_is_nominal_and_backwards_time_holds() {
        let def = ProfileDef {
            name: "p".into(),
            interval: None,
            states: vec![],
            metrics: vec![MetricDef::new(
                "x",
                Model::Steps {
                    values: Box::new([1.0]),
                    every_s: 1.0,
                },
            )],
        };
        let profile = Arc::new(Profile::new(def).expect("valid"));
        let mut device = DeviceTelemetry::new(&profile, 1, 2);
        let mut out = Vec::new();
        device.encode_json("d", 0, 5_000_000, &mut out);
        assert_eq!(device.last_at_us, 5_000_000);
        device.encode_json("d", 1, 4_000_000, &mut out);
        assert_eq!(device.last_at_us, 5_000_000);
    }
}
