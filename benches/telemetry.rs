//! Telemetry hot-path benchmark: memory per device and CPU per payload, std only.
//!
//! Run with `cargo bench --bench telemetry` (needs `[[bench]] name = "telemetry", harness = false` in
//! Cargo.toml). Prints, per profile: bytes of state per device, ns per `encode_json`, payload size, and ns per
//! `read_stamp`. Devices are stepped round-robin over a large fleet so the state does not sit in L1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// tests may unwrap and panic

// Under the default libtest harness (before the stanza is added) `main` is unused; keep clippy quiet then.
#![cfg_attr(test, allow(dead_code))]

use std::hint::black_box;
use std::time::{Duration, Instant};

use fleetstorm::scenario::builtin_profiles;
use fleetstorm::telemetry::{read_stamp, DeviceTelemetry};

const DEVICES: usize = 100_000;
const T0_US: u64 = 1_732_800_000_000_000;
const RUN: Duration = Duration::from_millis(800);

fn main() {
    let ids: Vec<String> = (0..DEVICES)
        .map(|i| format!("fleetstorm-dev-{i}"))
        .collect();
    for profile in builtin_profiles().unwrap_or_default() {
        let name = profile.name();
        let mut fleet: Vec<DeviceTelemetry> = (0..DEVICES as u64)
            .map(|key| DeviceTelemetry::new(&profile, 42, key))
            .collect();
        let bytes = fleet.first().map_or(0, DeviceTelemetry::memory_bytes);
        println!(
            "{name}: telemetry state {bytes} bytes per device ({:.1} MB per million devices)",
            bytes as f64
        );
        let mut out = Vec::with_capacity(1024);
        let mut payload_bytes = 0usize;
        let mut encoded = 0u64;
        let start = Instant::now();
        while start.elapsed() < RUN {
            // Check the clock once per 10k payloads.
            for _ in 0..10_000 {
                let i = (encoded % DEVICES as u64) as usize;
                let round = encoded / DEVICES as u64;
                out.clear();
                fleet[i].encode_json(&ids[i], round, T0_US + round * 1_000_000, &mut out);
                payload_bytes += out.len();
                black_box(&out);
                encoded += 1;
            }
        }
        let encode_ns = start.elapsed().as_nanos() as f64 / encoded as f64;

        let mut stamps = 0u64;
        let start = Instant::now();
        while start.elapsed() < RUN {
            for _ in 0..10_000 {
                black_box(read_stamp(black_box(&out)));
                stamps += 1;
            }
        }
        let stamp_ns = start.elapsed().as_nanos() as f64 / stamps as f64;
        println!(
            "{name:>20}: encode_json {encode_ns:6.1} ns/payload, {:5.1} bytes/payload, read_stamp {stamp_ns:5.1} ns",
            payload_bytes as f64 / encoded as f64
        );
    }
}
