//! A synthetic, fully deterministic `RunRecord` for the report tests.
#![allow(dead_code)] // each test crate uses a different part

use std::path::PathBuf;

use fleetstorm::metrics::histogram::{new_histogram, record, LatencyHistogram};
use fleetstorm::metrics::{Basis, Counter, Metric, RunSnapshot, SeriesPoint};
use fleetstorm::report::{Environment, Outcome, RunRecord, RunStatus};

/// 2024-05-01T12:34:56Z.
pub const START_US: u64 = 1_714_566_896_000_000;
const S: u64 = 1_000_000;

pub fn hist(values: impl IntoIterator<Item = u64>) -> LatencyHistogram {
    let mut h = new_histogram().unwrap();
    for v in values {
        record(&mut h, v);
    }
    h
}

pub fn environment() -> Environment {
    Environment {
        host: "ci-runner".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        cores: 8,
        fleetstorm_version: "0.1.0".into(),
        open_files_limit: 1_048_576,
        clock_source: "CLOCK_MONOTONIC anchored to CLOCK_REALTIME at start".into(),
        worker_threads: 8,
    }
}

/// Phases `ramp` (5 s), `steady` (60 s), `cooldown` (5 s); groups `sensors` and `gateways`.
/// Steady `sensors` puback corrected = 1..=1000 µs exactly, uncorrected = 1..=500 twice.
pub fn record_with_phases(names: &[&str]) -> RunRecord {
    let durations = [5 * S, 60 * S, 5 * S];
    let mut t = START_US;
    let phases: Vec<(String, u64, u64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let d = durations[i % durations.len()];
            let p = ((*n).to_owned(), t, t + d);
            t += d;
            p
        })
        .collect();
    let end = t;
    let mut snapshot = RunSnapshot::empty(&phases, vec!["sensors".into(), "gateways".into()]);
    for (pi, p) in snapshot.phases.iter_mut().enumerate() {
        let k = pi as u64 + 1;
        let [sensors, gateways] = &mut p.groups[..] else {
            unreachable!()
        };
        if p.name == "ramp" {
            sensors.counters.add(Counter::ConnectAttempts, 102);
            sensors.counters.add(Counter::ConnectSuccesses, 100);
            sensors.counters.add(Counter::ConnectFailTimeout, 2);
            gateways.counters.add(Counter::ConnectAttempts, 50);
            gateways.counters.add(Counter::ConnectSuccesses, 50);
            sensors.histograms.insert(
                (Metric::Connect, Basis::Corrected),
                hist((0..400).map(|i| 10_000 + i * 100)),
            );
            sensors.histograms.insert(
                (Metric::Connect, Basis::Uncorrected),
                hist((0..400).map(|i| 9_000 + i * 90)),
            );
        }
        sensors.counters.add(Counter::Published, 60_000 * k);
        sensors.counters.add(Counter::Acked, 60_000 * k - 10);
        sensors.counters.add(Counter::PublishFailed, 4);
        sensors.counters.add(Counter::Overrun, 3 * k);
        gateways.counters.add(Counter::Published, 6_000 * k);
        gateways.counters.add(Counter::Acked, 6_000 * k);
        sensors.histograms.insert(
            (Metric::Puback, Basis::Corrected),
            hist((1..=1000).map(|v| v * k)),
        );
        sensors.histograms.insert(
            (Metric::Puback, Basis::Uncorrected),
            hist((1..=1000u64).map(|v| v.div_ceil(2) * k)),
        );
        gateways.histograms.insert(
            (Metric::E2e, Basis::Corrected),
            hist((0..1200).map(|i| 100_000 + i * 1_000 * k)),
        );
        gateways.histograms.insert(
            (Metric::E2e, Basis::Uncorrected),
            hist((0..1200).map(|i| 90_000 + i * 900 * k)),
        );
        if pi + 1 == names.len() {
            sensors.counters.add(Counter::InflightAtEnd, 6);
            sensors.counters.add(Counter::DisconnectKeepalive, 1);
            gateways.counters.add(Counter::DisconnectClosed, 50);
        }
    }
    let total_s = u32::try_from((end - START_US) / S).unwrap();
    let series = (1..=total_s)
        .map(|t_s| SeriesPoint {
            t_s,
            connected: if t_s == total_s {
                0
            } else {
                i64::from(t_s.min(5) * 30)
            },
            publishes_per_s: 1_100,
            acks_per_s: 1_100,
            receives_per_s: 0,
            errors_per_s: 0,
            e2e_p50_us: Some(1_000 + u64::from(t_s)),
            e2e_p99_us: Some(5_000 + u64::from(t_s)),
            puback_p99_us: None,
            puback_p50_us: None,
            pubcomp_p50_us: None,
            pubcomp_p99_us: None,
            connect_p50_us: Some(200 + u64::from(t_s)),
            connect_p99_us: Some(900 + u64::from(t_s)),
            tls_handshake_p50_us: None,
            tls_handshake_p99_us: None,
            send_lag_p99_us: None,
            command_rtt_p50_us: None,
            command_rtt_p99_us: None,
            window_s: 1.0,
        })
        .collect();
    RunRecord {
        scenario: serde_json::json!({
            "name": "smoke",
            "groups": [{"name": "sensors", "count": 100}, {"name": "gateways", "count": 50}],
        }),
        scenario_name: "smoke".into(),
        broker: "mqtt://127.0.0.1:1883".into(),
        environment: environment(),
        outcome: Outcome {
            status: RunStatus::Completed,
            message: String::new(),
        },
        started_at_us: START_US,
        ended_at_us: end,
        snapshot,
        series,
        shards: None,
    }
}

/// The standard fixture: ramp, steady, cooldown.
pub fn sample() -> RunRecord {
    record_with_phases(&["ramp", "steady", "cooldown"])
}

/// The broker never answered: one phase, nothing measured, no time series.
pub fn unreachable() -> RunRecord {
    RunRecord {
        scenario: serde_json::json!({"name": "nobody-home"}),
        scenario_name: "nobody-home".into(),
        broker: "mqtt://10.255.255.1:1883".into(),
        environment: environment(),
        outcome: Outcome {
            status: RunStatus::BrokerUnreachable,
            message: "no device connected within 10 s".into(),
        },
        started_at_us: START_US,
        ended_at_us: START_US + 10 * S,
        snapshot: RunSnapshot::empty(
            &[("ramp".into(), START_US, START_US + 10 * S)],
            vec!["sensors".into()],
        ),
        series: Vec::new(),
        shards: None,
    }
}

/// A fresh, empty directory for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("report-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
