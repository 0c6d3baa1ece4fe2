//! The built-in device profiles: YAML files under `profiles/`, compiled in, and their names. Data
//! only; `profiles/mod.rs` reads them, and YAML error hints name them.

/// The built-in profiles: (name, file, text).
pub(crate) const BUILTIN: [(&str, &str, &str); 5] = [
    (
        "cnc-machine",
        "profiles/cnc-machine.yaml",
        include_str!("../../../profiles/cnc-machine.yaml"),
    ),
    (
        "plc-line",
        "profiles/plc-line.yaml",
        include_str!("../../../profiles/plc-line.yaml"),
    ),
    (
        "energy-meter",
        "profiles/energy-meter.yaml",
        include_str!("../../../profiles/energy-meter.yaml"),
    ),
    (
        "vibration-sensor",
        "profiles/vibration-sensor.yaml",
        include_str!("../../../profiles/vibration-sensor.yaml"),
    ),
    (
        "environment-sensor",
        "profiles/environment-sensor.yaml",
        include_str!("../../../profiles/environment-sensor.yaml"),
    ),
];

/// Names of the built-in profiles.
pub const BUILTIN_NAMES: [&str; 5] = [
    BUILTIN[0].0,
    BUILTIN[1].0,
    BUILTIN[2].0,
    BUILTIN[3].0,
    BUILTIN[4].0,
];
