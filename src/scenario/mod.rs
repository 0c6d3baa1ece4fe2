//! Scenario files: raw serde types mirroring the YAML, validation into a typed [`Scenario`] with YAML
//! paths and line numbers in every error, and name templates.
//!
//! Entry points: [`load`] (read a file), [`parse`] (text), [`Scenario::apply_overrides`] (CLI flags),
//! and the value parsers [`parse_duration`], [`parse_rate`], [`parse_broker_url`].

mod behaviours;
mod broker;
mod commands;
pub(crate) mod context;
pub mod error;
mod gates;
mod lengths;
pub mod model;
mod network;
mod observers;
mod overrides;
mod payload;
mod profiles;
pub mod raw;
#[cfg(test)]
mod schema_keys;
mod search;
pub mod template;
mod tls;
pub mod topic;
mod units;
pub(crate) mod validate;
mod value;
mod yaml;

use std::path::Path;

pub use context::{DEFAULT_CLIENT_ID, DEFAULT_TOPIC, MAX_DEVICES, MAX_PHASES, MAX_PHASE_GROUPS};
pub use error::{Diagnostic, ErrorKind, ScenarioError};
pub use model::*;
pub use overrides::Overrides;
pub use profiles::{builtin_profile, builtin_profiles, parse_profile, BUILTIN_NAMES};
pub use units::{parse_broker_url, parse_duration, parse_rate};
pub use yaml::MAX_FILE_BYTES;

use error::Reporter;
use raw::RawScenario;

/// Read and validate a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let io = |source| ScenarioError::Io {
        file: file.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(too_large(&file, meta.len()));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse(text, &file),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            let col = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            Err(Reporter {
                file: &file,
                text: "",
            }
            .error(
                ErrorKind::Syntax,
                Some((line, col)),
                None,
                "the file is not UTF-8 text",
                Some("save the scenario as UTF-8 (plain text YAML)".into()),
            ))
        }
    }
}

fn too_large(file: &str, len: u64) -> ScenarioError {
    Reporter { file, text: "" }.error(
        ErrorKind::TooLarge,
        None,
        None,
        format!("the file is {len} bytes; scenario files may be at most {MAX_FILE_BYTES} bytes (1 MiB)"),
        Some("a scenario describes groups, not individual devices; use `count:` instead of listing devices".into()),
    )
}

/// Parse and validate scenario text. `file` names the source in error messages.
pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(too_large(file, text.len() as u64));
    }
    let reporter = Reporter { file, text };
    let raw: RawScenario = yaml::deserialize(&reporter, "the scenario is empty")?;
    context::Validator { r: reporter }.scenario(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = "name: t\ngroups:\n  - { name: a, count: 2, profile: energy-meter }\n";

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = parse(MINI, "t.yaml").unwrap();
        assert_eq!(s.seed, 1);
        assert_eq!(s.phases.len(), 2);
        assert_eq!(s.broker.max_connecting, 100);
        assert_eq!(s.groups[0].qos, Qos::AtMostOnce);
    }

    #[test]
    fn key_path_strips_spanned_layers() {
        let e = parse(
            "name: t\ngroups:\n  - name: a\n    count: 2\n    profile: energy-meter\n    qos: 3\n",
            "t.yaml",
        )
        .unwrap_err();
        assert_eq!(e.key_path(), Some("groups[0].qos"));
        assert_eq!(e.location(), Some((6, 10)));
    }

    #[test]
    fn unknown_key_in_nested_section() {
        let e = parse(&format!("{MINI}broker:\n  keepalive: 5s\n"), "t.yaml").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownKey);
        assert_eq!(e.key_path(), Some("broker.keepalive"));
        assert!(
            e.hint().unwrap().contains("did you mean `keep_alive`"),
            "{e}"
        );
    }
}
