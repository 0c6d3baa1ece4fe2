//! Built-in device profiles.

use serde::Serialize;

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
