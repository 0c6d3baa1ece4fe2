//! Device profiles, signal models and payload encoders. Seeded and reproducible; no I/O.

mod profile;

pub use profile::ProfileKind;

/// Temporary stand-in until the telemetry models land.
#[derive(Debug, Clone)]
pub struct DeviceTelemetry {
    profile: ProfileKind,
}

impl DeviceTelemetry {
    pub fn new(profile: ProfileKind, _seed: u64, _device_key: u64) -> Self {
        DeviceTelemetry { profile }
    }

    pub fn encode_json(&mut self, device_id: &str, seq: u64, intended_at_us: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"device\":\"");
        out.extend_from_slice(device_id.as_bytes());
        out.extend_from_slice(b"\",\"seq\":");
        out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        out.extend_from_slice(b",\"ts_us\":");
        out.extend_from_slice(itoa::Buffer::new().format(intended_at_us).as_bytes());
        out.extend_from_slice(b",\"profile\":\"");
        out.extend_from_slice(self.profile.name().as_bytes());
        out.extend_from_slice(b"\"}");
    }
}
