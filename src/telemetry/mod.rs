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

pub use json::{read_stamp, write_fixed, Stamp};
pub use profile::ProfileKind;
pub use rng::Rng;
pub use signal::{Counter, MachineState, OrnsteinUhlenbeck, SineNoise, StateMachine};

use profile::ProfileState;

/// Step length assumed for a device's first sample, in seconds.
const FIRST_STEP_S: f64 = 1.0;

/// Salt separating the generator's seed from the key used for per-device parameters.
const RNG_SALT: u64 = 0x05EE_D0FF_1EE7;

/// Per-device telemetry state: a generator and the evolving signal values (80 bytes on 64-bit targets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceTelemetry {
    rng: Rng,
    /// Derived from (seed, device key); per-device parameters are recomputed from it.
    key: u64,
    /// Intended time of the previous sample, µs since the Unix epoch.
    last_at_us: Option<u64>,
    state: ProfileState,
}

impl DeviceTelemetry {
    /// `seed`: scenario seed; `device_key`: global device index. Same inputs -> same sequence.
    pub fn new(profile: ProfileKind, seed: u64, device_key: u64) -> Self {
        let key = rng::mix64(rng::mix64(seed) ^ device_key);
        let mut rng = Rng::new(rng::mix64(key ^ RNG_SALT));
        let state = ProfileState::new(profile, key, &mut rng);
        DeviceTelemetry {
            rng,
            key,
            last_at_us: None,
            state,
        }
    }

    /// The device's profile.
    pub fn profile(&self) -> ProfileKind {
        self.state.kind()
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
        let dt_s = match self.last_at_us {
            Some(previous) => intended_at_us.saturating_sub(previous) as f64 / 1e6,
            None => FIRST_STEP_S,
        };
        self.last_at_us = Some(
            self.last_at_us
                .map_or(intended_at_us, |p| p.max(intended_at_us)),
        );
        let t_s = intended_at_us as f64 / 1e6;

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
        out.extend_from_slice(b",\"profile\":\"");
        out.extend_from_slice(self.state.kind().name().as_bytes());
        out.extend_from_slice(b"\",\"metrics\":{");
        self.state
            .step_json(self.key, &mut self.rng, t_s, dt_s, out);
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
        assert!(size <= 96, "DeviceTelemetry grew to {size} bytes");
    }

    #[test]
    fn first_step_is_nominal_and_backwards_time_holds() {
        let mut device = DeviceTelemetry::new(ProfileKind::EnergyMeter, 1, 2);
        let mut out = Vec::new();
        device.encode_json("d", 0, 5_000_000, &mut out);
        assert_eq!(device.last_at_us, Some(5_000_000));
        device.encode_json("d", 1, 4_000_000, &mut out);
        assert_eq!(device.last_at_us, Some(5_000_000));
    }

    #[test]
    fn profile_round_trips() {
        for (_, kind) in ProfileKind::ALL {
            assert_eq!(DeviceTelemetry::new(kind, 0, 0).profile(), kind);
        }
    }
}
