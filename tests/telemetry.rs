//! Telemetry: determinism, golden payloads, the stamp contract, signal models and the no-allocation promise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use std::sync::Arc;

use fleetstorm::scenario::{builtin_profile, builtin_profiles};
use fleetstorm::telemetry::{
    read_stamp, Counter, DeviceTelemetry, OrnsteinUhlenbeck, OutputKind, Profile, Rng, SineNoise,
    QUALITY_BAD, QUALITY_GOOD, QUALITY_UNCERTAIN,
};
use serde_json::Value;

/// 2024-11-28T13:20:00Z in µs.
const T0_US: u64 = 1_732_800_000_000_000;
const SECOND_US: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------------------------
// Allocation counting, per thread (tests run in parallel threads).

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(|n| n.get())
}

// ---------------------------------------------------------------------------------------------------------
// Helpers.

fn builtin() -> Vec<Arc<Profile>> {
    builtin_profiles().unwrap_or_else(|e| panic!("{e}"))
}

fn profile(name: &str) -> Arc<Profile> {
    builtin_profile(name).unwrap_or_else(|| panic!("no built-in profile {name}"))
}

/// `steps` payloads of one device, one per second from `T0_US`.
fn payloads(profile: &Arc<Profile>, seed: u64, key: u64, steps: u64) -> Vec<String> {
    let mut device = DeviceTelemetry::new(profile, seed, key);
    let id = format!("fleetstorm-{}-{key}", profile.name());
    (0..steps)
        .map(|seq| {
            let mut out = Vec::new();
            device.encode_json(&id, seq, T0_US + seq * SECOND_US, &mut out);
            String::from_utf8(out).expect("payload is UTF-8")
        })
        .collect()
}

fn output_names(profile: &Profile) -> Vec<&str> {
    profile.outputs().iter().map(|o| &*o.name).collect()
}

/// The configured bounds of a metric (outputs that are not metrics: unbounded).
fn metric_range(profile: &Profile, name: &str) -> (f64, f64) {
    profile
        .def()
        .metrics
        .iter()
        .find(|m| m.name == name)
        .map_or((f64::NEG_INFINITY, f64::INFINITY), |m| (m.min, m.max))
}

/// The quoted `names` appear as keys in `payload` in this order (serde_json's map sorts its keys).
fn assert_in_order(payload: &[u8], names: &[&str]) {
    let text = String::from_utf8_lossy(payload);
    let mut from = 0;
    for name in names {
        let key = format!("\"{name}\":");
        let at = text[from..]
            .find(&key)
            .unwrap_or_else(|| panic!("{key} missing or out of order in {text}"));
        from += at + key.len();
    }
}

// ---------------------------------------------------------------------------------------------------------
// Determinism and golden payloads.

#[test]
fn same_inputs_give_identical_bytes() {
    for profile in &builtin() {
        assert_eq!(
            payloads(profile, 7, 3, 1000),
            payloads(profile, 7, 3, 1000),
            "{}",
            profile.name()
        );
    }
}

#[test]
fn different_seed_or_key_gives_a_different_sequence() {
    for profile in &builtin() {
        let base = payloads(profile, 7, 3, 50);
        let metrics = |p: &[String]| -> Vec<String> {
            p.iter()
                .map(|s| {
                    s.split_once("\"metrics\"")
                        .map(|(_, m)| m.to_owned())
                        .unwrap_or_default()
                })
                .collect()
        };
        assert_ne!(
            metrics(&base),
            metrics(&payloads(profile, 8, 3, 50)),
            "{} seed",
            profile.name()
        );
        assert_ne!(
            metrics(&base),
            metrics(&payloads(profile, 7, 4, 50)),
            "{} key",
            profile.name()
        );
    }
}

#[test]
fn golden_payloads_seed_42() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/telemetry_seed42.txt");
    let mut actual = String::new();
    for profile in &builtin() {
        for payload in payloads(profile, 42, 1, 3) {
            actual.push_str(&payload);
            actual.push('\n');
        }
    }
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, &actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `UPDATE_GOLDEN=1 cargo test --test telemetry`",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "payloads changed; if intended, run `UPDATE_GOLDEN=1 cargo test --test telemetry` and commit the file"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Payload shape and the stamp contract.

#[test]
fn every_payload_is_json_with_the_stamp_and_metrics() {
    for profile in &builtin() {
        let name = profile.name();
        let names = output_names(profile);
        for key in 0..20u64 {
            let id = format!("fleetstorm-{name}-{key}");
            let mut device = DeviceTelemetry::new(profile, 42, key);
            let mut at = T0_US + key * 137;
            for seq in 0..500u64 {
                // Irregular steps: 0 s to ~20 s, sometimes a repeated time.
                at += (seq * 7919 + key * 104_729) % 20 * SECOND_US + seq % 3 * 1234;
                let mut out = Vec::new();
                device.encode_json(&id, seq, at, &mut out);
                let json: Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                assert_in_order(&out, &["device", "seq", "ts_us", "profile", "metrics"]);
                assert_eq!(json["device"], id.as_str());
                assert_eq!(json["seq"], seq);
                assert_eq!(json["ts_us"], at);
                assert_eq!(json["profile"], name);
                let metrics = json["metrics"].as_object().expect("metrics object");
                // Report by exception may hold values back, never invent or reorder them.
                let present: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|n| metrics.contains_key(*n))
                    .collect();
                assert_eq!(present.len(), metrics.len(), "{name}: {metrics:?}");
                assert_in_order(&out, &present);
                for (output, value) in profile.outputs().iter().zip(&names) {
                    let Some(v) = metrics.get(*value) else {
                        continue;
                    };
                    match output.kind {
                        OutputKind::Text => {
                            let state = v.as_str().expect("state string");
                            assert!(
                                profile.def().states.iter().any(|s| s.name == state),
                                "{state}"
                            );
                        }
                        OutputKind::Bool => assert!(v.is_boolean(), "{value} = {v}"),
                        OutputKind::Int if value.ends_with("_quality") => {
                            let q = v.as_i64().expect("quality code");
                            assert!([QUALITY_GOOD, QUALITY_UNCERTAIN, QUALITY_BAD].contains(&q));
                        }
                        OutputKind::Int | OutputKind::Float { .. } => {
                            let x = v.as_f64().unwrap_or_else(|| panic!("{value} = {v}"));
                            if output.kind == OutputKind::Int {
                                assert!(v.is_i64() || v.is_u64(), "{value} = {v}");
                            }
                            let (lo, hi) = metric_range(profile, value);
                            // Rounding to the published decimals may cross a bound by half a unit.
                            assert!(
                                x >= lo - 0.5 && x <= hi + 0.5,
                                "{value} = {x} outside {lo}..{hi}"
                            );
                        }
                    }
                }
                let stamp = read_stamp(&out).expect("stamp");
                assert_eq!(
                    (stamp.device_id, stamp.seq, stamp.intended_at_us),
                    (id.as_str(), seq, at)
                );
            }
        }
    }
}

#[test]
fn encode_appends_to_existing_bytes() {
    let mut device = DeviceTelemetry::new(&profile("environment-sensor"), 1, 1);
    let mut out = b"prefix".to_vec();
    device.encode_json("d", 1, T0_US, &mut out);
    assert!(out.starts_with(b"prefix{\"device\":\"d\""));
    assert!(out.ends_with(b"}}"));
}

#[test]
fn device_ids_are_escaped() {
    let id = "we\"ird\\id\n\u{1}é";
    let mut device = DeviceTelemetry::new(&profile("cnc-machine"), 1, 1);
    let mut out = Vec::new();
    device.encode_json(id, 5, T0_US, &mut out);
    let json: Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(json["device"], id);
    // An id that needed escaping cannot be borrowed from the payload: the reader declines.
    assert_eq!(read_stamp(&out), None);
}

#[test]
fn read_stamp_rejects_truncated_payloads() {
    for profile in &builtin() {
        let mut device = DeviceTelemetry::new(profile, 3, 3);
        let mut out = Vec::new();
        device.encode_json("fleetstorm-x-3", 17, T0_US, &mut out);
        assert!(read_stamp(&out).is_some());
        for len in 0..out.len() {
            assert_eq!(read_stamp(&out[..len]), None, "prefix of {len} bytes");
        }
        let mut extra = out.clone();
        extra.push(b'}');
        assert_eq!(read_stamp(&extra), None, "trailing byte");
    }
}

#[test]
fn read_stamp_rejects_garbage_and_other_json() {
    let cases: &[&[u8]] = &[
        b"",
        b"{",
        b"null",
        b"\xff\xfe\x00\x01",
        b"{}",
        b"[1,2,3]",
        b"{\"seq\":1,\"device\":\"a\",\"ts_us\":2}",
        b"{\"device\": \"a\", \"seq\": 1, \"ts_us\": 2}",
        b"{\"device\":\"a\",\"seq\":-1,\"ts_us\":2}",
        b"{\"device\":\"a\",\"seq\":1.5,\"ts_us\":2}",
        b"{\"device\":\"a\",\"seq\":01,\"ts_us\":2}",
        b"{\"device\":\"a\",\"seq\":1,\"ts_us\":1e6}",
        b"{\"device\":\"a\",\"seq\":1,\"ts_us\":99999999999999999999}",
        b"{\"device\":\"a\",\"seq\":\"1\",\"ts_us\":2}",
        b"{\"device\":\"\xff\",\"seq\":1,\"ts_us\":2}",
        b"{\"device\":\"a\",\"seq\":1,\"ts_us\":2,\"metrics\":{\"x\":1}",
        b"{\"device\":\"a\",\"seq\":1,\"ts_us\":2,\"metrics\":{\"x\":\"}\"}",
        b"{\"device\":\"a\",\"seq\":1,\"ts_us\":2}}",
        b"{\"device\":\"a\",\"seq\":1,\"ts_us\":2}junk",
    ];
    for case in cases {
        assert_eq!(read_stamp(case), None, "{}", String::from_utf8_lossy(case));
    }
    // The minimal forms it does accept.
    let minimal = read_stamp(b"{\"device\":\"a\",\"seq\":1,\"ts_us\":2}").expect("minimal stamp");
    assert_eq!(
        (minimal.device_id, minimal.seq, minimal.intended_at_us),
        ("a", 1, 2)
    );
    let nested = read_stamp(
        b"{\"device\":\"\",\"seq\":0,\"ts_us\":18446744073709551615,\"m\":{\"s\":\"}{\\\"\"}}",
    )
    .expect("stamp with nested object");
    assert_eq!(
        (nested.device_id, nested.seq, nested.intended_at_us),
        ("", 0, u64::MAX)
    );
    // Random bytes after a valid prefix, and random bytes alone: never a panic.
    let mut rng = Rng::new(99);
    let mut buf = Vec::new();
    for _ in 0..20_000 {
        buf.clear();
        if rng.next_u64() % 2 == 0 {
            buf.extend_from_slice(b"{\"device\":\"a\",\"seq\":1,\"ts_us\":2");
        }
        let len = rng.next_u64() % 40;
        for _ in 0..len {
            buf.push(b"{}[]\",:\\0123456789ae-."[(rng.next_u64() % 22) as usize]);
        }
        let _ = read_stamp(&buf);
    }
}

#[test]
fn encode_and_read_stamp_do_not_allocate() {
    let mut out = Vec::with_capacity(4096);
    for profile in &builtin() {
        let mut device = DeviceTelemetry::new(profile, 5, 5);
        let before = allocations();
        for seq in 0..1000u64 {
            out.clear();
            device.encode_json("fleetstorm-dev-5", seq, T0_US + seq * 250_000, &mut out);
            let stamp = read_stamp(&out);
            assert!(stamp.is_some_and(|s| s.seq == seq));
        }
        assert_eq!(
            allocations() - before,
            0,
            "{} allocated on the hot path",
            profile.name()
        );
    }
}

#[test]
fn device_state_size() {
    let size = std::mem::size_of::<DeviceTelemetry>();
    println!("size_of::<DeviceTelemetry>() = {size} bytes");
    assert!(size <= 128, "DeviceTelemetry is {size} bytes");
}

#[test]
fn zero_and_huge_steps_stay_finite() {
    for profile in &builtin() {
        let mut device = DeviceTelemetry::new(profile, 11, 11);
        let mut at = T0_US;
        let steps = [
            0,
            0,
            SECOND_US,
            86_400 * SECOND_US,
            0,
            1,
            365 * 86_400 * SECOND_US,
            SECOND_US,
        ];
        for (seq, step) in steps.into_iter().enumerate() {
            at += step;
            let mut out = Vec::new();
            device.encode_json("d", seq as u64, at, &mut out);
            assert!(
                !out.windows(4).any(|w| w == b"null"),
                "{}",
                String::from_utf8_lossy(&out)
            );
            let json: Value = serde_json::from_slice(&out).expect("valid JSON");
            assert!(json["metrics"].is_object());
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Signal models.

#[test]
fn ou_stays_in_bounds_and_reverts_to_its_mean() {
    // (mean, rate, stationary sd, bounds, start, dt)
    let cases = [
        (45.0, 1.0 / 1800.0, 5.0, (5.0, 95.0), 90.0, 60.0),
        (230.0, 1.0 / 60.0, 2.0, (200.0, 253.0), 200.0, 1.0),
        (0.92, 1.0 / 600.0, 0.02, (0.6, 1.0), 0.6, 30.0),
        (0.0, 0.5, 3.0, (-1.0, 1.0), 0.0, 1.0),
        (
            100.0,
            0.1,
            10.0,
            (f64::NEG_INFINITY, f64::INFINITY),
            -500.0,
            5.0,
        ),
    ];
    for (i, &(mean, rate, sd, (lo, hi), start, dt)) in cases.iter().enumerate() {
        let mut ou = OrnsteinUhlenbeck::new(mean, rate, sd)
            .with_bounds(lo, hi)
            .with_value(start);
        let mut rng = Rng::new(1000 + i as u64);
        // Burn in ten time constants, then average 10k samples.
        let burn_in = (10.0 / (rate * dt)).ceil() as usize;
        for _ in 0..burn_in {
            ou.step(&mut rng, dt);
        }
        let n = 10_000;
        let mut sum = 0.0;
        for _ in 0..n {
            let v = ou.step(&mut rng, dt);
            assert!((lo..=hi).contains(&v), "case {i}: {v}");
            sum += v;
        }
        let average = sum / n as f64;
        // Samples are autocorrelated: allow a generous 0.5 sd (clamping is symmetric around these means).
        assert!(
            (average - mean).abs() < 0.5 * sd,
            "case {i}: average {average}, mean {mean}"
        );
    }
}

#[test]
fn ou_stationary_spread_matches_configuration() {
    let mut ou = OrnsteinUhlenbeck::new(10.0, 0.5, 2.0);
    let mut rng = Rng::new(5);
    let n = 20_000;
    let (mut sum, mut sum2) = (0.0, 0.0);
    for _ in 0..n {
        // Steps of 10 time constants: nearly independent samples.
        let v = ou.step(&mut rng, 20.0);
        sum += v;
        sum2 += v * v;
    }
    let mean = sum / n as f64;
    let sd = (sum2 / n as f64 - mean * mean).sqrt();
    assert!((mean - 10.0).abs() < 0.1, "{mean}");
    assert!((sd - 2.0).abs() < 0.1, "{sd}");
    assert!((ou.stationary_sd() - 2.0).abs() < 1e-12);
}

#[test]
fn random_walk_without_reversion_is_finite() {
    let mut walk = OrnsteinUhlenbeck {
        rate: 0.0,
        volatility: 1.0,
        ..OrnsteinUhlenbeck::new(0.0, 0.0, 0.0)
    };
    let mut rng = Rng::new(3);
    for dt in [0.0, 1.0, 86_400.0, f64::NAN, -5.0, f64::INFINITY] {
        assert!(walk.step(&mut rng, dt).is_finite(), "dt {dt}");
    }
}

#[test]
fn counter_never_decreases() {
    // (rate per s, jitter, dt, check the long-run rate)
    let cases = [
        (1.0, 0.0, 1.0, true),
        (1.0 / 80.0, 0.5, 1.0, true),
        (10.0, 2.0, 0.1, false),
        (0.0, 1.0, 1.0, true),
        (5.0, 0.3, 3600.0, true),
    ];
    for (i, &(rate, jitter, dt, check_rate)) in cases.iter().enumerate() {
        let mut counter = Counter::new(100.0, rate, jitter);
        let mut rng = Rng::new(i as u64);
        let mut previous = counter.value;
        let steps = 10_000;
        for _ in 0..steps {
            let v = counter.step(&mut rng, dt);
            assert!(v >= previous, "case {i}: {v} < {previous}");
            previous = v;
        }
        if !check_rate {
            continue;
        }
        // The long-run rate is close to configured (the max(0, ·) floor biases it up when jitter is high
        // relative to the step, as in the unchecked case).
        let expected = rate * dt * steps as f64;
        let grown = counter.value - 100.0;
        assert!(
            grown >= expected * 0.95 && grown <= expected * 1.3 + 1e-9,
            "case {i}: {grown} vs {expected}"
        );
    }
}

#[test]
fn counter_whole_floors_and_saturates() {
    assert_eq!(Counter::new(41.999, 0.0, 0.0).whole(), 41);
    assert_eq!(Counter::new(-3.0, 0.0, 0.0).whole(), 0);
    assert_eq!(Counter::new(f64::NAN, 0.0, 0.0).whole(), 0);
}

#[test]
fn sine_has_the_configured_period_and_no_drift() {
    for (i, &(period, phase)) in [(86_400.0, 0.3), (60.0, -2.0), (3600.0, 3.0)]
        .iter()
        .enumerate()
    {
        let clean = SineNoise::new(period, 5.0, 20.0, 0.0, phase);
        let t0 = T0_US as f64 / 1e6;
        for k in 0..100 {
            let t = t0 + k as f64 * period / 37.0;
            let a = clean.clean_at(t);
            assert!(
                (a - clean.clean_at(t + period)).abs() < 1e-6,
                "case {i}: not periodic"
            );
            assert!(
                (a - clean.clean_at(t + 1000.0 * period)).abs() < 1e-6,
                "case {i}: drifts"
            );
            assert!((15.0..=25.0).contains(&a));
        }
        // Half a period apart the wave mirrors around the offset.
        let t = t0 + 123.0;
        assert!((clean.clean_at(t) - 20.0 + clean.clean_at(t + period / 2.0) - 20.0).abs() < 1e-6);
        // Stepping in small increments lands where absolute time says, up to the rounding of adding small
        // steps to an epoch-sized time (~1e-7 s each); the device encoder uses `sample_at` and never adds.
        let mut stepped = clean;
        let mut rng = Rng::new(1);
        stepped.sample_at(&mut rng, t0);
        for _ in 0..1000 {
            stepped.step(&mut rng, period / 250.0);
        }
        assert!((stepped.clean_at(stepped.t_s) - clean.clean_at(t0 + 4.0 * period)).abs() < 1e-3);
    }
}

#[test]
fn sine_noise_has_the_configured_spread() {
    let mut wave = SineNoise::new(0.0, 5.0, 20.0, 0.5, 0.0);
    let mut rng = Rng::new(8);
    let n = 20_000;
    let (mut sum, mut sum2) = (0.0, 0.0);
    for _ in 0..n {
        let v = wave.step(&mut rng, 1.0);
        sum += v;
        sum2 += v * v;
    }
    let mean = sum / n as f64;
    let sd = (sum2 / n as f64 - mean * mean).sqrt();
    assert!(
        (mean - 20.0).abs() < 0.02 && (sd - 0.5).abs() < 0.02,
        "{mean} {sd}"
    );
}

#[test]
fn signals_with_zero_and_huge_dt_are_finite() {
    let mut rng = Rng::new(77);
    for dt in [
        0.0,
        1e-9,
        1.0,
        86_400.0,
        1e15,
        f64::INFINITY,
        f64::NAN,
        -1.0,
    ] {
        let mut ou = OrnsteinUhlenbeck::new(5.0, 0.01, 1.0).with_bounds(0.0, 10.0);
        assert!(ou.step(&mut rng, dt).is_finite(), "ou dt {dt}");
        let mut wave = SineNoise::new(60.0, 1.0, 0.0, 0.1, 0.0);
        assert!(wave.step(&mut rng, dt).is_finite(), "sine dt {dt}");
        let mut counter = Counter::new(0.0, 1.0, 0.5);
        let v = counter.step(&mut rng, dt);
        assert!(v.is_finite() && v >= 0.0, "counter dt {dt}");
    }
}

#[test]
fn cnc_metrics_follow_the_machine_state() {
    let cnc = profile("cnc-machine");
    let mut checked_running = 0;
    let mut checked_stopped = 0;
    for key in 0..40u64 {
        let mut device = DeviceTelemetry::new(&cnc, 9, key);
        let mut previous_state = String::new();
        let mut same_for = 0;
        let mut previous_parts = 0;
        for seq in 0..3_000u64 {
            let mut out = Vec::new();
            device.encode_json("cnc", seq, T0_US + seq * SECOND_US, &mut out);
            let json: Value = serde_json::from_slice(&out).expect("valid JSON");
            let m = &json["metrics"];
            let state = m["state"].as_str().unwrap_or_default().to_owned();
            let rpm = m["spindle_rpm"].as_f64().unwrap_or(f64::NAN);
            let current = m["motor_current_a"].as_f64().unwrap_or(f64::NAN);
            let parts = m["part_count"].as_u64().expect("integer part count");
            assert!(parts >= previous_parts);
            previous_parts = parts;
            same_for = if state == previous_state {
                same_for + 1
            } else {
                0
            };
            // After 30 s in a state the spindle has settled.
            if same_for >= 30 {
                if state == "running" {
                    assert!(
                        rpm > 8_000.0 && current > 10.0,
                        "running: {rpm} rpm, {current} A"
                    );
                    checked_running += 1;
                } else {
                    assert!(rpm < 1.0, "{state}: {rpm} rpm");
                    if state != "idle" {
                        assert!(current < 0.5, "{state}: {current} A");
                    }
                    checked_stopped += 1;
                }
            }
            previous_state = state;
        }
    }
    assert!(
        checked_running > 1000 && checked_stopped > 1000,
        "{checked_running} {checked_stopped}"
    );
}

#[test]
fn energy_counter_integrates_power() {
    let mut device = DeviceTelemetry::new(&profile("energy-meter"), 4, 4);
    let mut first = None;
    let mut integral = 0.0;
    let mut previous_energy: f64 = 0.0;
    for seq in 0..3_600u64 {
        let mut out = Vec::new();
        device.encode_json("meter", seq, T0_US + seq * SECOND_US, &mut out);
        let json: Value = serde_json::from_slice(&out).expect("valid JSON");
        let m = &json["metrics"];
        let power = m["power_kw"].as_f64().unwrap_or(f64::NAN);
        let energy = m["energy_kwh"].as_f64().unwrap_or(f64::NAN);
        assert!(energy >= previous_energy);
        previous_energy = energy;
        match first {
            None => first = Some(energy),
            Some(_) => integral += power / 3600.0,
        }
    }
    let grown = previous_energy - first.unwrap_or_default();
    assert!(
        (grown - integral).abs() < 0.01 * integral + 0.01,
        "{grown} kWh vs {integral} kWh"
    );
}
