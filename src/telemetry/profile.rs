//! Built-in device profiles.

use serde::Serialize;

use super::json;
use super::rng::{unit_symmetric, vary, Rng};
use super::signal::{Counter, MachineState, OrnsteinUhlenbeck, SineNoise, StateMachine};

/// A built-in device profile: which metrics a device publishes and how they move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileKind {
    EnvironmentSensor,
    EnergyMeter,
    CncMachine,
}

impl ProfileKind {
    /// Every profile with the name used in scenario files.
    pub const ALL: [(&'static str, ProfileKind); 3] = [
        ("environment-sensor", ProfileKind::EnvironmentSensor),
        ("energy-meter", ProfileKind::EnergyMeter),
        ("cnc-machine", ProfileKind::CncMachine),
    ];

    /// Look a profile up by its scenario name.
    pub fn from_name(name: &str) -> Option<ProfileKind> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// The scenario name of this profile.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(n, _)| *n)
            .unwrap_or("unknown")
    }
}

/// Per-device signal state of one profile: only the values that evolve. Parameters (means, rates, setpoints)
/// are recomputed from the device key on every step, which keeps a device at a few dozen bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ProfileState {
    EnvironmentSensor {
        humidity_pct: f64,
        pressure_hpa: f64,
        co2_ppm: f64,
    },
    EnergyMeter {
        voltage_v: f64,
        current_a: f64,
        power_factor: f64,
        energy_kwh: f64,
    },
    CncMachine {
        state: MachineState,
        spindle_rpm: f64,
        motor_current_a: f64,
        spindle_temp_c: f64,
        part_count: f64,
        vibration_mm_s: f64,
    },
}

// Salts for per-device parameters: one per varied quantity, so they are independent.
const SALT_TEMP_OFFSET: u64 = 1;
const SALT_TEMP_AMPLITUDE: u64 = 2;
const SALT_TEMP_PHASE: u64 = 3;
const SALT_HUMIDITY: u64 = 4;
const SALT_PRESSURE: u64 = 5;
const SALT_CO2: u64 = 6;
const SALT_VOLTAGE: u64 = 10;
const SALT_LOAD: u64 = 11;
const SALT_POWER_FACTOR: u64 = 12;
const SALT_RPM: u64 = 20;
const SALT_CURRENT: u64 = 21;
const SALT_TEMP_RUN: u64 = 22;
const SALT_AMBIENT: u64 = 23;
const SALT_VIBRATION: u64 = 24;
const SALT_CYCLE: u64 = 25;
const SALT_DWELL: u64 = 30; // .. 33

/// Environment sensor: indoor climate of a plant hall.
mod env {
    use super::*;

    /// Air temperature: a daily cycle (peak/trough per device) with sensor noise.
    pub fn temperature(key: u64) -> SineNoise {
        SineNoise::new(
            86_400.0,
            vary(key, SALT_TEMP_AMPLITUDE, 2.5, 0.3),
            vary(key, SALT_TEMP_OFFSET, 21.5, 0.07),
            0.05,
            std::f64::consts::PI * unit_symmetric(key, SALT_TEMP_PHASE),
        )
    }

    pub fn humidity(key: u64) -> OrnsteinUhlenbeck {
        OrnsteinUhlenbeck::new(vary(key, SALT_HUMIDITY, 45.0, 0.15), 1.0 / 1800.0, 5.0)
            .with_bounds(5.0, 95.0)
    }

    pub fn pressure(key: u64) -> OrnsteinUhlenbeck {
        OrnsteinUhlenbeck::new(vary(key, SALT_PRESSURE, 1013.25, 0.004), 1.0 / 3600.0, 4.0)
            .with_bounds(950.0, 1060.0)
    }

    pub fn co2(key: u64) -> OrnsteinUhlenbeck {
        OrnsteinUhlenbeck::new(vary(key, SALT_CO2, 600.0, 0.2), 1.0 / 900.0, 120.0)
            .with_bounds(400.0, 5000.0)
    }
}

/// Three-phase energy meter: `voltage_v` is the phase voltage, `current_a` the mean phase current,
/// `power_kw = 3 · V · I · PF / 1000`, and `energy_kwh` integrates it.
mod energy {
    use super::*;

    pub fn voltage(key: u64) -> OrnsteinUhlenbeck {
        OrnsteinUhlenbeck::new(vary(key, SALT_VOLTAGE, 230.0, 0.01), 1.0 / 60.0, 2.0)
            .with_bounds(200.0, 253.0)
    }

    pub fn current(key: u64) -> OrnsteinUhlenbeck {
        let mean = vary(key, SALT_LOAD, 40.0, 0.5);
        OrnsteinUhlenbeck::new(mean, 1.0 / 300.0, 0.2 * mean).with_bounds(0.0, 125.0)
    }

    pub fn power_factor(key: u64) -> OrnsteinUhlenbeck {
        OrnsteinUhlenbeck::new(vary(key, SALT_POWER_FACTOR, 0.92, 0.03), 1.0 / 600.0, 0.02)
            .with_bounds(0.6, 1.0)
    }

    pub fn power_kw(voltage_v: f64, current_a: f64, power_factor: f64) -> f64 {
        3.0 * voltage_v * current_a * power_factor / 1000.0
    }
}

/// CNC machine: a state machine drives spindle speed, and speed drives current, heat and vibration.
mod cnc {
    use super::*;

    /// The programmed spindle speed while running, a round number per device (9,000..15,000 rpm).
    pub fn rpm_setpoint(key: u64) -> f64 {
        (vary(key, SALT_RPM, 12_000.0, 0.25) / 100.0).round() * 100.0
    }

    pub fn machine(key: u64, state: MachineState) -> StateMachine {
        let base = [120.0, 900.0, 240.0, 1800.0];
        let mut dwell_s = [0.0; 4];
        for (i, (d, b)) in dwell_s.iter_mut().zip(base).enumerate() {
            *d = vary(key, SALT_DWELL + i as u64, b, 0.2);
        }
        StateMachine::new(state, dwell_s)
    }

    /// Spindle speed: spins up and down with a ~2 s time constant towards the state's target.
    pub fn rpm(key: u64, state: MachineState) -> OrnsteinUhlenbeck {
        let setpoint = rpm_setpoint(key);
        let (mean, sd) = match state {
            MachineState::Running => (setpoint, 0.004 * setpoint),
            _ => (0.0, 0.0),
        };
        OrnsteinUhlenbeck::new(mean, 0.5, sd).with_bounds(0.0, 40_000.0)
    }

    /// Motor current follows spindle load; the drive is powered in idle and running only.
    pub fn current(key: u64, state: MachineState, rpm: f64) -> OrnsteinUhlenbeck {
        let load = rpm / rpm_setpoint(key);
        let (mean, sd) = match state {
            MachineState::Running | MachineState::Idle => {
                let mean = 0.8 + vary(key, SALT_CURRENT, 17.0, 0.15) * load;
                (mean, 0.02 + 0.06 * mean)
            }
            MachineState::Fault | MachineState::Maintenance => (0.0, 0.0),
        };
        OrnsteinUhlenbeck::new(mean, 1.0, sd).with_bounds(0.0, 60.0)
    }

    /// Spindle temperature: warms towards its running temperature, cools towards ambient (5 min constant).
    pub fn temperature(key: u64, state: MachineState) -> OrnsteinUhlenbeck {
        let mean = match state {
            MachineState::Running => vary(key, SALT_TEMP_RUN, 52.0, 0.1),
            _ => ambient(key),
        };
        OrnsteinUhlenbeck::new(mean, 1.0 / 300.0, 0.25).with_bounds(-20.0, 120.0)
    }

    pub fn ambient(key: u64) -> f64 {
        vary(key, SALT_AMBIENT, 24.0, 0.1)
    }

    /// Vibration velocity (ISO 10816 style, mm/s RMS) grows with spindle speed.
    pub fn vibration(key: u64, rpm: f64) -> OrnsteinUhlenbeck {
        let level = vary(key, SALT_VIBRATION, 2.2, 0.25) * rpm / rpm_setpoint(key);
        OrnsteinUhlenbeck::new(0.1 + level, 0.2, 0.02 + 0.15 * level).with_bounds(0.0, 50.0)
    }

    /// Finished parts: one per cycle (45..115 s per device) while running.
    pub fn parts(key: u64, state: MachineState, value: f64) -> Counter {
        let rate = match state {
            MachineState::Running => 1.0 / vary(key, SALT_CYCLE, 80.0, 0.44),
            _ => 0.0,
        };
        Counter::new(value, rate, 0.5)
    }
}

impl ProfileState {
    /// A device's initial state: values drawn from each signal's long-run distribution, so a fleet does not
    /// start in lockstep.
    pub(crate) fn new(profile: ProfileKind, key: u64, rng: &mut Rng) -> Self {
        match profile {
            ProfileKind::EnvironmentSensor => ProfileState::EnvironmentSensor {
                humidity_pct: stationary(env::humidity(key), rng),
                pressure_hpa: stationary(env::pressure(key), rng),
                co2_ppm: stationary(env::co2(key), rng),
            },
            ProfileKind::EnergyMeter => ProfileState::EnergyMeter {
                voltage_v: stationary(energy::voltage(key), rng),
                current_a: stationary(energy::current(key), rng),
                power_factor: stationary(energy::power_factor(key), rng),
                energy_kwh: (1_000.0 + 199_000.0 * rng.next_f64()).floor(),
            },
            ProfileKind::CncMachine => {
                let pick = rng.next_f64();
                let state = match pick {
                    p if p < 0.70 => MachineState::Running,
                    p if p < 0.90 => MachineState::Idle,
                    p if p < 0.95 => MachineState::Maintenance,
                    _ => MachineState::Fault,
                };
                let spindle_rpm = cnc::rpm(key, state).mean;
                ProfileState::CncMachine {
                    state,
                    spindle_rpm,
                    motor_current_a: cnc::current(key, state, spindle_rpm).mean,
                    spindle_temp_c: stationary(cnc::temperature(key, state), rng),
                    part_count: (50_000.0 * rng.next_f64()).floor(),
                    vibration_mm_s: cnc::vibration(key, spindle_rpm).mean,
                }
            }
        }
    }

    /// The profile this state belongs to.
    pub(crate) fn kind(&self) -> ProfileKind {
        match self {
            ProfileState::EnvironmentSensor { .. } => ProfileKind::EnvironmentSensor,
            ProfileState::EnergyMeter { .. } => ProfileKind::EnergyMeter,
            ProfileState::CncMachine { .. } => ProfileKind::CncMachine,
        }
    }

    /// Advance every signal by `dt_s` to absolute time `t_s` and append the metrics' JSON members
    /// (without the enclosing braces).
    pub(crate) fn step_json(
        &mut self,
        key: u64,
        rng: &mut Rng,
        t_s: f64,
        dt_s: f64,
        out: &mut Vec<u8>,
    ) {
        match self {
            ProfileState::EnvironmentSensor {
                humidity_pct,
                pressure_hpa,
                co2_ppm,
            } => {
                let temperature_c = env::temperature(key).sample_at(rng, t_s);
                *humidity_pct = advance(env::humidity(key), *humidity_pct, rng, dt_s);
                *pressure_hpa = advance(env::pressure(key), *pressure_hpa, rng, dt_s);
                *co2_ppm = advance(env::co2(key), *co2_ppm, rng, dt_s);
                member(out, b"\"temperature_c\":", temperature_c, 2);
                member(out, b",\"humidity_pct\":", *humidity_pct, 2);
                member(out, b",\"pressure_hpa\":", *pressure_hpa, 2);
                member(out, b",\"co2_ppm\":", *co2_ppm, 0);
            }
            ProfileState::EnergyMeter {
                voltage_v,
                current_a,
                power_factor,
                energy_kwh,
            } => {
                *voltage_v = advance(energy::voltage(key), *voltage_v, rng, dt_s);
                *current_a = advance(energy::current(key), *current_a, rng, dt_s);
                *power_factor = advance(energy::power_factor(key), *power_factor, rng, dt_s);
                let power_kw = energy::power_kw(*voltage_v, *current_a, *power_factor);
                // A meter integrates exactly: no jitter beyond what the power already carries.
                let mut counter = Counter::new(*energy_kwh, power_kw / 3600.0, 0.0);
                *energy_kwh = counter.step(rng, dt_s);
                member(out, b"\"voltage_v\":", *voltage_v, 1);
                member(out, b",\"current_a\":", *current_a, 2);
                member(out, b",\"power_kw\":", power_kw, 3);
                member(out, b",\"energy_kwh\":", *energy_kwh, 3);
                member(out, b",\"power_factor\":", *power_factor, 3);
            }
            ProfileState::CncMachine {
                state,
                spindle_rpm,
                motor_current_a,
                spindle_temp_c,
                part_count,
                vibration_mm_s,
            } => {
                *state = cnc::machine(key, *state).step(rng, dt_s);
                *spindle_rpm = advance(cnc::rpm(key, *state), *spindle_rpm, rng, dt_s);
                let current = cnc::current(key, *state, *spindle_rpm);
                *motor_current_a = advance(current, *motor_current_a, rng, dt_s);
                let temperature = cnc::temperature(key, *state);
                *spindle_temp_c = advance(temperature, *spindle_temp_c, rng, dt_s);
                let vibration = cnc::vibration(key, *spindle_rpm);
                *vibration_mm_s = advance(vibration, *vibration_mm_s, rng, dt_s);
                let mut parts = cnc::parts(key, *state, *part_count);
                parts.step(rng, dt_s);
                *part_count = parts.value;
                out.extend_from_slice(b"\"state\":\"");
                out.extend_from_slice(state.name().as_bytes());
                out.push(b'"');
                member(out, b",\"spindle_rpm\":", *spindle_rpm, 0);
                member(out, b",\"motor_current_a\":", *motor_current_a, 2);
                member(out, b",\"spindle_temp_c\":", *spindle_temp_c, 2);
                out.extend_from_slice(b",\"part_count\":");
                json::write_u64(out, parts.whole());
                member(out, b",\"vibration_mm_s\":", *vibration_mm_s, 2);
            }
        }
    }
}

/// A draw from the process's long-run (stationary) distribution, clamped to its bounds.
fn stationary(process: OrnsteinUhlenbeck, rng: &mut Rng) -> f64 {
    let value = process.mean + process.stationary_sd() * rng.gaussian();
    process.with_value(value).value
}

/// Step `process` from `value` by `dt_s` and return the new value.
fn advance(process: OrnsteinUhlenbeck, value: f64, rng: &mut Rng, dt_s: f64) -> f64 {
    process.with_value(value).step(rng, dt_s)
}

/// Append `prefix` (the quoted name and colon, with a leading comma after the first member) and the value.
fn member(out: &mut Vec<u8>, prefix: &[u8], value: f64, decimals: u8) {
    out.extend_from_slice(prefix);
    json::write_fixed(out, value, decimals);
}
