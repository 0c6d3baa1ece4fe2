//! Profiles as data: each signal model, the state machine, alarms, report-by-exception, quality codes and
//! anomalies, as table and statistical tests on small profiles; user-defined profiles in scenario files and
//! the errors they get.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::sync::Arc;
use std::time::Duration;

use fleetstorm::scenario::{parse, ErrorKind};
use fleetstorm::telemetry::{
    Alarm, Anomalies, AnomalyKind, DeviceTelemetry, MetricDef, Model, Param, Profile, ProfileDef,
    Quality, RampEnd, Sample, StateDef, ValueType, QUALITY_BAD, QUALITY_UNCERTAIN,
};

/// 2024-11-28T13:20:00Z in µs.
const T0_US: u64 = 1_732_800_000_000_000;

fn profile(states: Vec<StateDef>, metrics: Vec<MetricDef>) -> Arc<Profile> {
    let def = ProfileDef {
        name: "test".into(),
        interval: None,
        states,
        metrics,
    };
    Arc::new(Profile::new(def).unwrap_or_else(|e| panic!("{e}")))
}

fn float(name: &str, model: Model) -> MetricDef {
    MetricDef {
        value_type: ValueType::Float { decimals: 6 },
        ..MetricDef::new(name, model)
    }
}

/// One owned sample: (output index, value as f64 or state name, reported).
#[derive(Debug, Clone, PartialEq)]
enum Got {
    Num(f64),
    Flag(bool),
    Name(String),
}

/// Every output of `steps` samples `dt_s` apart: `out[step][output] = (value, reported)`.
fn run(profile: &Arc<Profile>, key: u64, steps: usize, dt_s: f64) -> Vec<Vec<(Got, bool)>> {
    let mut device = DeviceTelemetry::new(profile, 7, key);
    (0..steps)
        .map(|i| {
            let mut row = vec![(Got::Num(f64::NAN), false); profile.outputs().len()];
            let at = T0_US + (i as f64 * dt_s * 1e6) as u64;
            device.sample(at, |o, s, report| {
                row[o] = (
                    match s {
                        Sample::Float(v) => Got::Num(v),
                        Sample::Int(v) => Got::Num(v as f64),
                        Sample::Bool(b) => Got::Flag(b),
                        Sample::Text(t) => Got::Name(t.to_owned()),
                    },
                    report,
                );
            });
            row
        })
        .collect()
}

fn num(g: &Got) -> f64 {
    match g {
        Got::Num(v) => *v,
        other => panic!("not a number: {other:?}"),
    }
}

fn column(rows: &[Vec<(Got, bool)>], output: usize) -> Vec<f64> {
    rows.iter().map(|r| num(&r[output].0)).collect()
}

/// (name, mean dwell in s, exits as (state index, weight)).
type StateRow<'a> = (&'a str, f64, &'a [(usize, f64)]);

fn states(dwell: &[StateRow<'_>]) -> Vec<StateDef> {
    dwell
        .iter()
        .map(|(name, dwell_s, next)| StateDef {
            name: (*name).into(),
            dwell_s: *dwell_s,
            next: next.to_vec(),
        })
        .collect()
}

// ---- models ------------------------------------------------------------------------------------------

#[test]
fn ramps_hold_repeat_and_reverse() {
    // (end, t in s, expected value) for a ramp 10 → 20 over 100 s from the first sample.
    let cases: &[(RampEnd, &[(usize, f64)])] = &[
        (
            RampEnd::Hold,
            &[(0, 10.0), (50, 15.0), (100, 20.0), (250, 20.0)],
        ),
        (
            RampEnd::Repeat,
            &[(0, 10.0), (50, 15.0), (100, 10.0), (130, 13.0)],
        ),
        (
            RampEnd::Reverse,
            &[
                (0, 10.0),
                (100, 20.0),
                (150, 15.0),
                (200, 10.0),
                (230, 13.0),
            ],
        ),
    ];
    for (end, expect) in cases {
        let p = profile(
            vec![],
            vec![float(
                "r",
                Model::Ramp {
                    from: 10.0,
                    to: 20.0,
                    over_s: 100.0,
                    end: *end,
                },
            )],
        );
        let values = column(&run(&p, 1, 260, 1.0), 0);
        for (t, v) in *expect {
            assert!(
                (values[*t] - v).abs() < 1e-9,
                "{end:?} at {t} s: {} != {v}",
                values[*t]
            );
        }
    }
}

#[test]
fn steps_cycle_through_their_values() {
    let p = profile(
        vec![],
        vec![float(
            "s",
            Model::Steps {
                values: Box::new([1.0, 2.0, 3.0]),
                every_s: 10.0,
            },
        )],
    );
    for key in 0..5 {
        let values = column(&run(&p, key, 120, 1.0), 0);
        let mut changes = 0;
        for pair in values.windows(2) {
            if pair[0] != pair[1] {
                changes += 1;
                // Always the next value in the cycle.
                let next = pair[0] % 3.0 + 1.0;
                assert_eq!(pair[1], next, "key {key}: {values:?}");
            }
        }
        // 120 s of 10 s holds: 11 or 12 changes depending on the device's phase.
        assert!((11..=12).contains(&changes), "key {key}: {changes} changes");
    }
}

#[test]
fn walk_reverts_to_its_mean_with_the_configured_spread() {
    let p = profile(
        vec![],
        vec![float(
            "w",
            Model::Walk {
                mean: Param::fixed(50.0),
                sd: Param::fixed(4.0),
                tau_s: 10.0,
            },
        )],
    );
    // Steps of 5 time constants: nearly independent samples of the long-run distribution.
    let values = column(&run(&p, 3, 20_000, 50.0), 0);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
    assert!((mean - 50.0).abs() < 0.2, "mean {mean}");
    assert!((sd - 4.0).abs() < 0.2, "sd {sd}");
}

#[test]
fn follow_tracks_its_source_and_integral_integrates_it() {
    let p = profile(
        vec![],
        vec![
            float(
                "src",
                Model::Ramp {
                    from: 0.0,
                    to: 100.0,
                    over_s: 100.0,
                    end: RampEnd::Reverse,
                },
            ),
            float(
                "f",
                Model::Follow {
                    of: 0,
                    gain: Param::fixed(2.0),
                    offset: Param::fixed(5.0),
                    sd: Param::fixed(0.0),
                    tau_s: 1e-3,
                },
            ),
            float(
                "i",
                Model::Integral {
                    of: 0,
                    scale: 0.5,
                    start: (1000.0, 1000.0),
                },
            ),
        ],
    );
    let rows = run(&p, 1, 400, 1.0);
    let (src, f, i) = (column(&rows, 0), column(&rows, 1), column(&rows, 2));
    let mut integral = 1000.0;
    for t in 1..rows.len() {
        // A time constant of 1 ms: one-second steps land on the target.
        assert!(
            (f[t] - (5.0 + 2.0 * src[t])).abs() < 1e-6,
            "t {t}: {} vs {}",
            f[t],
            src[t]
        );
        integral += 0.5 * src[t];
        assert!(
            (i[t] - integral).abs() < 1e-6,
            "t {t}: {} vs {integral}",
            i[t]
        );
        assert!(i[t] >= i[t - 1]);
    }
}

#[test]
fn counters_grow_at_their_per_state_rate() {
    let machine = states(&[("on", 100.0, &[(1, 1.0)]), ("off", 100.0, &[(0, 1.0)])]);
    let p = profile(
        machine,
        vec![
            MetricDef::new("state", Model::State),
            MetricDef {
                value_type: ValueType::Int,
                ..MetricDef::new(
                    "parts",
                    Model::Counter {
                        rate: Param::by_state(vec![0.5, 0.0]),
                        jitter: 0.0,
                        start: (0.0, 0.0),
                    },
                )
            },
        ],
    );
    let rows = run(&p, 4, 20_000, 1.0);
    let mut on_steps = 0;
    for pair in rows.windows(2) {
        let grew = num(&pair[1][1].0) - num(&pair[0][1].0);
        match &pair[1][0].0 {
            Got::Name(s) if s == "off" => assert_eq!(grew, 0.0, "parts counted while off"),
            Got::Name(_) => on_steps += 1,
            other => panic!("{other:?}"),
        }
        assert!(grew >= 0.0);
    }
    let total = num(&rows[rows.len() - 1][1].0);
    let expected = 0.5 * on_steps as f64;
    assert!(
        (total - expected).abs() <= 1.0,
        "{total} parts in {on_steps} s running"
    );
}

// ---- the state machine -----------------------------------------------------------------------------

#[test]
fn state_dwell_times_transitions_and_long_run_shares_match_the_definition() {
    let machine = states(&[
        ("idle", 20.0, &[(1, 0.9), (3, 0.1)]),
        ("running", 50.0, &[(0, 0.85), (2, 0.15)]),
        ("fault", 10.0, &[(0, 0.6), (3, 0.4)]),
        ("maintenance", 30.0, &[(0, 1.0)]),
    ]);
    let names = ["idle", "running", "fault", "maintenance"];
    let dwell: [f64; 4] = [20.0, 50.0, 10.0, 30.0];
    let p = profile(machine, vec![MetricDef::new("state", Model::State)]);
    let index = |g: &Got| match g {
        Got::Name(n) => names.iter().position(|x| x == n).expect("known state"),
        other => panic!("{other:?}"),
    };
    let rows = run(&p, 11, 400_000, 1.0);
    let mut time_in = [0.0f64; 4];
    let mut visits = [0u64; 4];
    let mut transitions = [[0u64; 4]; 4];
    let mut current = index(&rows[0][0].0);
    let mut elapsed = 0.0;
    for row in &rows[1..] {
        let next = index(&row[0].0);
        elapsed += 1.0;
        if next != current {
            time_in[current] += elapsed;
            visits[current] += 1;
            transitions[current][next] += 1;
            elapsed = 0.0;
            current = next;
        }
    }
    for s in 0..4 {
        assert!(visits[s] > 500, "{} visited {} times", names[s], visits[s]);
        // A per-step exit probability of 1 - exp(-dt/dwell) gives a mean of dt / p ≈ dwell + dt/2.
        let expected = 1.0 / -(-1.0 / dwell[s]).exp_m1();
        let mean = time_in[s] / visits[s] as f64;
        assert!(
            (mean - expected).abs() < 0.1 * expected,
            "{}: {mean} vs {expected}",
            names[s]
        );
        assert_eq!(transitions[s][s], 0);
    }
    // Only the configured edges occur.
    assert_eq!(transitions[3][1], 0, "maintenance → running");
    assert_eq!(transitions[0][2], 0, "idle → fault");
    let running_share = (transitions[1][0] + transitions[1][2]) as f64 / visits[1] as f64;
    assert!((running_share - 1.0).abs() < 1e-9);
    let to_fault = transitions[1][2] as f64 / visits[1] as f64;
    assert!(
        (to_fault - 0.15).abs() < 0.03,
        "running → fault share {to_fault}"
    );

    // Devices start spread over the states by their long-run share of time, not all in the first one.
    let mut starts = [0u32; 4];
    for key in 0..4000 {
        starts[index(&run(&p, key, 1, 1.0)[0][0].0)] += 1;
    }
    let total: f64 = time_in.iter().sum();
    for s in 0..4 {
        let share = f64::from(starts[s]) / 4000.0;
        let long_run = time_in[s] / total;
        assert!(
            (share - long_run).abs() < 0.04,
            "{}: starts {share}, long run {long_run}",
            names[s]
        );
    }
}

// ---- alarms, report by exception, quality, anomalies ---------------------------------------------------

fn triangle(deadband: Option<f64>, alarm: Option<Alarm>) -> Arc<Profile> {
    profile(
        vec![],
        vec![MetricDef {
            deadband,
            alarm,
            ..float(
                "x",
                Model::Ramp {
                    from: 0.0,
                    to: 100.0,
                    over_s: 100.0,
                    end: RampEnd::Reverse,
                },
            )
        }],
    )
}

#[test]
fn alarms_trip_and_clear_with_hysteresis() {
    let p = triangle(
        None,
        Some(Alarm {
            high: true,
            trip: 80.0,
            clear: 70.0,
        }),
    );
    let rows = run(&p, 1, 400, 1.0);
    for row in &rows {
        assert!(
            row[1].1,
            "alarms are reported every sample without a deadband"
        );
    }
    let mut changes = Vec::new();
    for (t, pair) in rows.windows(2).enumerate() {
        if pair[0][1].0 != pair[1][1].0 {
            changes.push((t + 1, pair[1][1].0.clone(), num(&pair[1][0].0)));
        }
    }
    // A triangle 0 → 100 → 0 every 200 s: raised above 80 (at 81), held down to 70 inclusive, cleared below
    // it (at 69).
    assert_eq!(
        changes,
        vec![
            (81, Got::Flag(true), 81.0),
            (131, Got::Flag(false), 69.0),
            (281, Got::Flag(true), 81.0),
            (331, Got::Flag(false), 69.0),
        ]
    );
}

#[test]
fn report_by_exception_publishes_only_moves_beyond_the_deadband() {
    let p = triangle(
        Some(4.5),
        Some(Alarm {
            high: true,
            trip: 50.0,
            clear: 50.0,
        }),
    );
    let rows = run(&p, 1, 101, 1.0);
    let reported: Vec<f64> = rows
        .iter()
        .filter(|r| r[0].1)
        .map(|r| num(&r[0].0))
        .collect();
    // 0, then every 5 units (a move of 5 > 4.5), up to 100.
    let expected: Vec<f64> = (0..=20).map(|k| 5.0 * f64::from(k)).collect();
    assert_eq!(reported.len(), expected.len(), "{reported:?}");
    for (r, e) in reported.iter().zip(&expected) {
        assert!((r - e).abs() < 1e-9, "{reported:?}");
    }
    // The alarm is reported when it changes (and on the first sample) only.
    let alarm_reports: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r[1].1)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(alarm_reports, vec![0, 51]);
}

#[test]
fn quality_codes_have_the_configured_shares() {
    let p = profile(
        vec![],
        vec![MetricDef {
            quality: Some(Quality {
                uncertain: 0.05,
                bad: 0.01,
            }),
            ..float(
                "x",
                Model::Steps {
                    values: Box::new([1.0]),
                    every_s: 1.0,
                },
            )
        }],
    );
    let n = 200_000;
    let codes = column(&run(&p, 2, n, 1.0), 1);
    let share = |code: i64| codes.iter().filter(|c| **c == code as f64).count() as f64 / n as f64;
    assert!(
        (share(QUALITY_UNCERTAIN) - 0.05).abs() < 0.003,
        "{}",
        share(QUALITY_UNCERTAIN)
    );
    assert!(
        (share(QUALITY_BAD) - 0.01).abs() < 0.001,
        "{}",
        share(QUALITY_BAD)
    );
}

fn with_anomaly(kind: AnomalyKind, base: Model) -> Arc<Profile> {
    profile(
        vec![],
        vec![MetricDef {
            anomalies: Some(Anomalies {
                rate_per_s: 0.01,
                duration_s: 20.0,
                magnitude: 5.0,
                kinds: Box::new([kind]),
            }),
            ..float("x", base)
        }],
    )
}

#[test]
fn spikes_drifts_and_stuck_values_come_at_the_configured_rate() {
    let flat = Model::Steps {
        values: Box::new([10.0]),
        every_s: 1.0,
    };
    let n = 200_000;
    // Spikes: single samples at 10 ± 5; a start can only come when no anomaly is active (20 s after one).
    let spikes = column(
        &run(&with_anomaly(AnomalyKind::Spike, flat.clone()), 5, n, 1.0),
        0,
    );
    assert!(spikes.iter().all(|v| [5.0, 10.0, 15.0].contains(v)));
    let count = spikes.iter().filter(|v| **v != 10.0).count() as f64;
    let p = -(-0.01f64).exp_m1();
    let expected = n as f64 / (1.0 / p + 20.0);
    assert!(
        (count - expected).abs() < 0.1 * expected,
        "{count} spikes, expected {expected}"
    );

    // Drifts: an offset growing linearly to ±5 over 20 s, then back to the true value.
    let drift = column(&run(&with_anomaly(AnomalyKind::Drift, flat), 6, n, 1.0), 0);
    assert!(drift.iter().all(|v| (5.0..=15.0).contains(v)));
    let drifting = drift.iter().filter(|v| **v != 10.0).count() as f64;
    assert!(
        drifting > 0.5 * expected * 19.0,
        "{drifting} drifting samples"
    );
    for w in drift.windows(2) {
        let step = (w[1] - w[0]).abs();
        // Moves by 5/20 per second while drifting, or jumps back when the drift ends.
        assert!(step < 0.25 + 1e-9 || (w[1] == 10.0), "{w:?}");
    }

    // Stuck: the published value freezes while the underlying ramp goes on.
    let ramp = Model::Ramp {
        from: 0.0,
        to: 1e6,
        over_s: 1e6,
        end: RampEnd::Hold,
    };
    let stuck = column(
        &run(&with_anomaly(AnomalyKind::Stuck, ramp), 7, 20_000, 1.0),
        0,
    );
    let frozen = stuck.windows(2).filter(|w| w[0] == w[1]).count();
    assert!(frozen > 1000, "{frozen} frozen steps");
    for (t, v) in stuck.iter().enumerate() {
        assert!(*v <= t as f64 + 1e-9, "a stuck value is an old value");
    }
}

// ---- scenario files ----------------------------------------------------------------------------------

const USER_PROFILE: &str = "\
name: custom
profiles:
  - name: press
    interval: 2s
    states:
      - { name: idle, dwell: 1m, next: pressing }
      - { name: pressing, dwell: 5m, next: { idle: 0.9, jammed: 0.1 } }
      - { name: jammed, dwell: 30s, next: idle }
    metrics:
      - { name: state, model: state }
      - { name: force_kn, model: walk, mean: { pressing: 800, other: 0 }, sd: { pressing: 20, other: 0 }, tau: 2s, min: 0 }
      - { name: ram_temp_c, model: follow, of: force_kn, gain: 0.02, offset: 30, tau: 5m, decimals: 1, alarm: { above: 60, clear: 55 } }
      - { name: strokes, model: counter, rate: { pressing: 0.5, other: 0 }, type: int }
      - { name: oil_bar, model: sine, period: 10m, amplitude: 3, offset: 180, noise: 0.2, deadband: 1, quality: { bad: 1% } }
      - { name: die_wear, model: ramp, from: 0, to: 100, over: 1000h, anomalies: { rate: 1/h, duration: 1m, kinds: [stuck] } }
groups:
  - { name: presses, count: 3, profile: press }
  - { name: meters, count: 2, profile: energy-meter }
";

#[test]
fn a_scenario_defines_its_own_profile() {
    let s = parse(USER_PROFILE, "custom.yaml").unwrap_or_else(|e| panic!("{e}"));
    let press = &s.groups[0].profile;
    assert_eq!(press.name(), "press");
    assert_eq!(
        s.groups[0].interval,
        Duration::from_secs(2),
        "the profile's cadence"
    );
    assert_eq!(
        s.groups[1].interval,
        Duration::from_secs(10),
        "energy-meter's cadence"
    );
    let names: Vec<&str> = press.outputs().iter().map(|o| &*o.name).collect();
    assert_eq!(
        names,
        [
            "state",
            "force_kn",
            "ram_temp_c",
            "ram_temp_c_alarm",
            "strokes",
            "oil_bar",
            "oil_bar_quality",
            "die_wear"
        ]
    );
    // The force follows the state: zero unless pressing, near 800 kN after settling while pressing.
    let rows = run(press, 1, 3000, 2.0);
    let (mut pressing, mut stopped) = (0, 0);
    let mut same_for = 0;
    for pair in rows.windows(2) {
        let (before, now) = (&pair[0][0].0, &pair[1][0].0);
        same_for = if before == now { same_for + 1 } else { 0 };
        let force = num(&pair[1][1].0);
        // After 20 s (10 samples, ten time constants) in a state the force has settled.
        if same_for < 10 {
            continue;
        }
        match now {
            Got::Name(s) if s == "pressing" => {
                assert!((700.0..900.0).contains(&force), "pressing at {force} kN");
                pressing += 1;
            }
            Got::Name(s) => {
                assert!(force < 1.0, "{s} at {force} kN");
                stopped += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        pressing > 100 && stopped > 100,
        "{pressing} pressing, {stopped} stopped"
    );
    // Serialised scenario (report.json) names the profile.
    let json = serde_json::to_value(&s).expect("serialise");
    assert_eq!(json["groups"][0]["profile"], "press");
    // ... and writes the scenario's own profile out in full, in the scenario's words; built-ins by name only.
    let press_json = &json["profiles"][0];
    assert_eq!(json["profiles"].as_array().map(Vec::len), Some(1));
    assert_eq!(press_json["name"], "press");
    assert_eq!(press_json["interval_s"], 2.0);
    assert_eq!(press_json["states"][1]["next"]["jammed"], 0.1);
    let metrics = &press_json["metrics"];
    assert_eq!(metrics[1]["mean"]["pressing"], 800.0);
    assert_eq!(metrics[1]["mean"]["idle"], 0.0);
    assert_eq!(metrics[2]["of"], "force_kn");
    assert_eq!(metrics[2]["alarm"]["above"], 60.0);
    assert_eq!(metrics[2]["alarm"]["clear"], 55.0);
    assert_eq!(metrics[3]["type"], "int");
    assert_eq!(metrics[4]["deadband"], 1.0);
    assert_eq!(metrics[4]["quality"]["bad"], 0.01);
    assert_eq!(metrics[5]["anomalies"]["kinds"][0], "stuck");
    assert!((metrics[5]["anomalies"]["rate_per_s"].as_f64().unwrap() - 1.0 / 3600.0).abs() < 1e-12);
    let builtin_only = parse(
        "name: b\ngroups:\n  - { name: m, count: 1, profile: energy-meter }\n",
        "b.yaml",
    )
    .expect("valid");
    let json = serde_json::to_value(&builtin_only).expect("serialise");
    assert!(json.get("profiles").is_none(), "{json}");
}

fn error(text: &str) -> fleetstorm::scenario::ScenarioError {
    match parse(text, "p.yaml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn profile_mistakes_are_located_and_explained() {
    // (replace this, with this, key path, line, message part, hint part)
    let cases: &[(&str, &str, &str, usize, &str, &str)] = &[
        (
            "model: walk, mean: { pressing",
            "model: walkk, mean: { pressing",
            "profiles[0].metrics[1].model",
            11,
            "unknown model `walkk`",
            "did you mean `walk`?",
        ),
        (
            "of: force_kn, gain",
            "of: strokes, gain",
            "profiles[0].metrics[2].of",
            12,
            "no metric `strokes` above",
            "force_kn",
        ),
        (
            "period: 10m,",
            "period: 10m, tau: 5s,",
            "profiles[0].metrics[4].tau",
            14,
            "`tau` does not apply to model `sine`",
            "takes `period`",
        ),
        (
            "mean: { pressing: 800, other: 0 }",
            "mean: { presing: 800, other: 0 }",
            "profiles[0].metrics[1].mean.presing",
            11,
            "unknown state `presing`",
            "did you mean `pressing`?",
        ),
        (
            "mean: { pressing: 800, other: 0 }",
            "mean: { pressing: 800 }",
            "profiles[0].metrics[1].mean",
            11,
            "no value for state `idle`",
            "other",
        ),
        (
            "alarm: { above: 60, clear: 55 }",
            "alarm: { above: 60, clear: 65 }",
            "profiles[0].metrics[2].alarm.clear",
            12,
            "beyond where it trips",
            "hysteresis",
        ),
        (
            "next: { idle: 0.9, jammed: 0.1 }",
            "next: { idle: 0.9, jamed: 0.1 }",
            "profiles[0].states[1].next",
            7,
            "unknown state `jamed`",
            "jammed",
        ),
        (
            "  - name: press\n",
            "  - name: cnc-machine\n",
            "profiles[0].name",
            3,
            "is built in",
            "own name",
        ),
        (
            "quality: { bad: 1% }",
            "quality: { bad: 120% }",
            "profiles[0].metrics[4].quality.bad",
            14,
            "between 0 and 1",
            "uncertain",
        ),
        (
            "rate: { pressing: 0.5, other: 0 }",
            "rate: { pressing: -0.5, other: 0 }",
            "profiles[0].metrics[3].rate",
            13,
            "never decreases",
            "zero or more",
        ),
        (
            "kinds: [stuck]",
            "kinds: [stuk]",
            "profiles[0].metrics[5].anomalies.kinds",
            15,
            "unknown anomaly kind `stuk`",
            "spike",
        ),
        (
            "profile: press }",
            "profile: pres }",
            "groups[0].profile",
            17,
            "unknown profile `pres`",
            "did you mean `press`?",
        ),
    ];
    for (from, to, path, line, message, hint) in cases {
        assert!(USER_PROFILE.contains(from), "{from}");
        let e = error(&USER_PROFILE.replacen(from, to, 1));
        let shown = e.to_string();
        assert_eq!(e.kind(), ErrorKind::InvalidValue, "{shown}");
        assert_eq!(e.key_path(), Some(*path), "{shown}");
        assert_eq!(e.line(), Some(*line), "{shown}");
        assert!(shown.starts_with("p.yaml:"), "{shown}");
        assert!(e.message().contains(message), "{shown}");
        assert!(e.hint().is_some_and(|h| h.contains(hint)), "{shown}");
    }
    // A key that no metric knows is refused by the format itself, with the known keys suggested.
    let e = error(&USER_PROFILE.replacen("tau: 2s, min: 0", "tau: 2s, minimum: 0", 1));
    assert_eq!(e.kind(), ErrorKind::UnknownKey, "{e}");
    assert_eq!(e.line(), Some(11), "{e}");
}

// ---- fleetstorm preview --------------------------------------------------------------------------------

fn preview(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fleetstorm"))
        .arg("preview")
        .args(args)
        .output()
        .expect("run fleetstorm preview")
}

#[test]
fn preview_prints_a_reproducible_csv_of_a_profile() {
    let out = preview(&[
        "plc-line",
        "--samples",
        "30",
        "--every",
        "1s",
        "--device",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 31);
    let plc = fleetstorm::scenario::builtin_profile("plc-line").expect("built in");
    let header: Vec<String> = std::iter::once("t_s".to_owned())
        .chain(plc.outputs().iter().map(|o| o.name.to_string()))
        .collect();
    assert_eq!(lines[0], header.join(","));
    for (k, line) in lines[1..].iter().enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        assert_eq!(cells[0].parse::<f64>().ok(), Some(k as f64), "{line}");
    }
    // Same arguments, same bytes; another device, other values.
    let again = preview(&[
        "plc-line",
        "--samples",
        "30",
        "--every",
        "1s",
        "--device",
        "3",
    ]);
    assert_eq!(again.stdout, text.as_bytes());
    let other = preview(&[
        "plc-line",
        "--samples",
        "30",
        "--every",
        "1s",
        "--device",
        "4",
    ]);
    assert_ne!(other.stdout, text.as_bytes());
}

#[test]
fn preview_reads_a_scenario_profile_and_refuses_unknown_names() {
    let dir = std::env::temp_dir().join(format!("fleetstorm-preview-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("custom.yaml");
    std::fs::write(&file, USER_PROFILE).expect("write scenario");
    let path = file.to_str().expect("UTF-8 path");
    let out = preview(&["press", "--scenario", path, "--samples", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("t_s,state,force_kn,ram_temp_c,ram_temp_c_alarm,strokes,"),
        "{text}"
    );
    // The profile's interval (2s) is the default step.
    assert!(
        text.lines().nth(2).is_some_and(|l| l.starts_with("2,")),
        "{text}"
    );

    let missing = preview(&["press", "--samples", "3"]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("no profile `press`") && stderr.contains("--scenario"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
