//! Criterion micro-benchmarks of the per-message hot path: what a device does for every PUBLISH (encode the
//! JSON payload, frame the PUBLISH), what it does for every PUBACK (parse it, record latency and count),
//! and what an observer does for every delivery (read the payload stamp).
//!
//! Run with `cargo bench --bench hot_path` (about a minute). Measurement windows are kept short on purpose;
//! these are nanosecond-scale functions, so 2 s per benchmark is plenty.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use fleetstorm::metrics::{Clock, Counter, LiveCounters, Metric, Recorder};
use fleetstorm::mqtt::codec::{self, Incoming};
use fleetstorm::plan::{PhaseWindow, Timeline};
use fleetstorm::scenario::{builtin_profile, builtin_profiles};
use fleetstorm::scenario::{MqttVersion, Qos};
use fleetstorm::telemetry::{read_stamp, DeviceTelemetry};

/// A fixed instant (µs since the Unix epoch) so payload sizes do not depend on when the bench runs.
const T0_US: u64 = 1_732_800_000_000_000;
const INTERVAL_US: u64 = 1_000_000;
const DEVICE_ID: &str = "fleetstorm-env-123456";

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

/// One JSON payload per call, a device stepping one interval each time (as a device does per slot);
/// sent 250 µs after the intended time, so the `sent_us` field is present as in a loaded run.
fn telemetry(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_json_sent");
    for profile in builtin_profiles().unwrap_or_default() {
        let name = profile.name();
        let mut device = DeviceTelemetry::new(&profile, 42, 7);
        let mut out = Vec::with_capacity(512);
        let mut seq = 0u64;
        out.clear();
        device
            .clone()
            .encode_json_sent(DEVICE_ID, 0, T0_US, T0_US + 250, &mut out);
        g.throughput(Throughput::Bytes(out.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let intended = T0_US + seq * INTERVAL_US;
                device.encode_json_sent(
                    black_box(DEVICE_ID),
                    seq,
                    intended,
                    intended + 250,
                    &mut out,
                );
                seq += 1;
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn stamp(c: &mut Criterion) {
    let mut payload = Vec::new();
    DeviceTelemetry::new(
        &builtin_profile("environment-sensor").expect("built-in profile"),
        42,
        7,
    )
    .encode_json_sent(DEVICE_ID, 123_456, T0_US, T0_US + 250, &mut payload);
    c.bench_function("read_stamp", |b| {
        b.iter(|| black_box(read_stamp(black_box(&payload))))
    });
}

fn codec_bench(c: &mut Criterion) {
    let topic = codec::encode_topic("fleetstorm/env/fleetstorm-env-123456/telemetry")
        .expect("a valid topic");
    let payload = [b'x'; 200];
    let mut out = Vec::with_capacity(512);
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    for (name, qos) in [
        ("encode_publish_200B_qos0", Qos::AtMostOnce),
        ("encode_publish_200B_qos1", Qos::AtLeastOnce),
    ] {
        let mut pkid = 1u16;
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                codec::encode_publish(
                    &mut out,
                    MqttVersion::V311,
                    black_box(&topic),
                    qos,
                    false,
                    false,
                    pkid,
                    black_box(&payload),
                );
                pkid = pkid.wrapping_add(1).max(1);
                black_box(&out);
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    let mut puback = Vec::new();
    codec::encode_ack(&mut puback, codec::PUBACK, 4242);
    g.bench_function("parse_puback", |b| {
        b.iter(|| {
            let parsed = codec::parse(black_box(&puback), MqttVersion::V311);
            debug_assert!(matches!(
                parsed,
                Ok(Some((Incoming::PubAck { pkid: 4242, .. }, 4)))
            ));
            black_box(parsed)
        })
    });
    g.finish();
}

fn recorder(groups: usize) -> Recorder {
    let start_us = T0_US;
    let timeline = Timeline {
        start_us,
        phases: vec![
            PhaseWindow {
                name: "ramp".into(),
                start_us,
                end_us: start_us + 5_000_000,
            },
            PhaseWindow {
                name: "steady".into(),
                start_us: start_us + 5_000_000,
                end_us: start_us + 3_600_000_000,
            },
        ],
    };
    Recorder::new(
        Clock::new(),
        Arc::new(timeline),
        groups,
        Arc::new(LiveCounters::default()),
    )
}

/// What a device records per PUBACK: one latency (two histograms) plus the `acked` count, in the steady
/// phase; and the single `published` count it does per PUBLISH.
fn recording(c: &mut Criterion) {
    let mut g = c.benchmark_group("recorder");
    let rec = recorder(3);
    // Allocate the histograms outside the measurement (first use allocates).
    let intended0 = T0_US + 10_000_000;
    rec.latency(
        Metric::Puback,
        1,
        intended0,
        intended0 + 100,
        intended0 + 900,
    );
    let mut n = 0u64;
    g.bench_function("latency_and_count", |b| {
        b.iter(|| {
            let intended = intended0 + (n % 1_000_000);
            // a spread of latencies so several HDR buckets are hit
            let done = intended + 200 + (n * 7919) % 5_000;
            rec.latency(Metric::Puback, 1, intended, intended + 150, black_box(done));
            rec.count(Counter::Acked, 1, intended);
            n += 1;
        })
    });
    g.bench_function("count", |b| {
        b.iter(|| {
            rec.count(Counter::Published, black_box(1), black_box(intended0));
        })
    });
    // Building a recorder is per worker, not per message; measured to show it is off the hot path.
    g.bench_function("new_recorder_3_groups", |b| {
        b.iter_batched(|| (), |()| recorder(3), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group! {
    name = hot_path;
    config = config();
    targets = telemetry, stamp, codec_bench, recording
}
criterion_main!(hot_path);
