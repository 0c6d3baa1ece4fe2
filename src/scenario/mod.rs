//! Scenario files: raw serde types mirroring the YAML, validation into a typed [`Scenario`] with YAML
//! paths and line numbers in every error, and name templates.
//!
//! Entry points: [`load`] (read a file), [`parse`] (text), [`Scenario::apply_overrides`] (CLI flags),
//! and the value parsers [`parse_duration`], [`parse_rate`], [`parse_broker_url`].

mod behaviours;
mod broker;
mod commands;
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
pub mod template;
mod tls;
pub mod topic;
mod units;
pub(crate) mod validate;

use std::path::Path;

use serde_path_to_error::Segment;
use serde_saphyr::MessageFormatter as _;

pub use error::{Diagnostic, ErrorKind, ScenarioError};
pub use model::*;
pub use overrides::Overrides;
pub use profiles::{builtin_profile, builtin_profiles, parse_profile, BUILTIN_NAMES};
pub use units::{parse_broker_url, parse_duration, parse_rate};
pub use validate::{DEFAULT_CLIENT_ID, DEFAULT_TOPIC, MAX_DEVICES, MAX_PHASES, MAX_PHASE_GROUPS};

use error::{did_you_mean, list_keys, Reporter};
use raw::RawScenario;

/// Largest scenario file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

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
    let raw: RawScenario = deserialize(&reporter, "the scenario is empty")?;
    validate::Validator { r: reporter }.scenario(raw)
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    if let Some(budget) = options.budget.as_mut() {
        budget.max_depth = 32;
        budget.max_nodes = 100_000;
        budget.max_events = 200_000;
        budget.max_aliases = 1_000;
        budget.max_anchors = 1_000;
        budget.max_documents = 2;
        budget.max_total_scalar_bytes = MAX_FILE_BYTES;
    }
    options
}

fn deserialize<T: serde::de::DeserializeOwned>(
    r: &Reporter<'_>,
    empty: &str,
) -> Result<T, ScenarioError> {
    let mut path: Option<String> = None;
    let result: Result<Option<T>, serde_saphyr::Error> =
        serde_saphyr::with_deserializer_from_str_with_options(r.text, yaml_options(), |d| {
            serde_path_to_error::deserialize(d).map_err(|e| {
                path = key_path(e.path());
                e.into_inner()
            })
        });
    match result {
        Ok(Some(raw)) => Ok(raw),
        Ok(None) => Err(r.error(
            ErrorKind::MissingKey,
            Some((1, 1)),
            None,
            empty,
            Some(format!(
                "a scenario needs at least `name:` and `groups:`; {MINIMAL}"
            )),
        )),
        Err(e) => Err(map_yaml_error(r, &e, path)),
    }
}

const MINIMAL: &str = "see scenarios/quickstart.yaml for a commented example";

/// The key path as we print it: `groups[1].qos`, without the internal `Spanned` layers.
fn key_path(p: &serde_path_to_error::Path) -> Option<String> {
    let mut out = String::new();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if key == "value" || key.starts_with("__serde_saphyr") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => return (!out.is_empty()).then_some(out),
        }
    }
    (!out.is_empty()).then_some(out)
}

fn join(parent: Option<&str>, key: &str) -> String {
    match parent {
        Some(p) if !p.is_empty() => format!("{p}.{key}"),
        _ => key.to_owned(),
    }
}

/// The section a key path points into, for "valid keys in ..." hints.
fn section_name(path: Option<&str>) -> String {
    match path {
        None => "the top level".to_owned(),
        Some(p) => format!("`{p}`"),
    }
}

/// What a container at `path` should look like, for wrong-type hints.
fn shape_hint(path: Option<&str>) -> String {
    let last = path
        .map(|p| p.rsplit('.').next().unwrap_or(p))
        .unwrap_or("");
    let is_item = last.ends_with(']');
    let base = last.split('[').next().unwrap_or("");
    match (base, is_item) {
        ("", _) => format!("a scenario is a mapping of keys such as `name:`, `groups:` and `phases:`; {MINIMAL}"),
        ("groups", false) => "`groups:` is a list; start each group with `- name: ...` on its own line".into(),
        ("groups", true) => "each group is a mapping, e.g. `- { name: sensors, count: 100, profile: environment-sensor }`".into(),
        ("phases", false) => "`phases:` is a list, e.g. `- ramp: { connect_rate: 500/s }` then `- steady: { duration: 30s }`".into(),
        ("phases", true) => "each phase is a mapping with `ramp:` or `steady:`, e.g. `- steady: { duration: 30s }`".into(),
        ("broker", _) => "`broker:` is a mapping of settings such as `url:` and `protocol:`".into(),
        ("ramp", _) => "write `ramp: { connect_rate: 500/s }`".into(),
        ("steady", _) => "write `steady: { duration: 30s }`".into(),
        ("session", _) => "write `session: { clean: false, expiry: 10m }`".into(),
        ("commands", _) => "write `commands: { rate: 20/s, qos: 1 }`".into(),
        _ => "write a single value here (text, a number or true/false), not a list or mapping".into(),
    }
}

/// Hint for a required key.
fn missing_hint(field: &str) -> String {
    match field {
        "name" => "add a name, e.g. `name: line-3` (letters, digits, `_`, `.`, `-`)".into(),
        "groups" => "add a `groups:` list, e.g.\n    groups:\n      - { name: sensors, count: 100, profile: environment-sensor }".into(),
        "count" => "add the number of devices, e.g. `count: 100`".into(),
        "profile" => format!(
            "add a device profile: one of {} or one defined under `profiles:`",
            list_keys(&BUILTIN_NAMES)
        ),
        "connect_rate" => "write `ramp: { connect_rate: 500/s }`".into(),
        "duration" => "write `steady: { duration: 30s }`".into(),
        "rate" => "add a rate, e.g. `rate: 20/s` (commands per second over the group, or churn drops per second)".into(),
        other => format!("add `{other}: ...`"),
    }
}

/// The `---` line at or before `location` (saphyr reports the start of the second document's content).
fn separator_line(text: &str, location: Option<(usize, usize)>) -> Option<(usize, usize)> {
    let (line, _) = location?;
    text.lines()
        .take(line)
        .enumerate()
        .filter(|(_, l)| l.starts_with("---"))
        .map(|(i, _)| (i + 1, 1))
        .last()
        .or(location)
}

fn map_yaml_error(
    r: &Reporter<'_>,
    e: &serde_saphyr::Error,
    path: Option<String>,
) -> ScenarioError {
    use serde_saphyr::Error as E;
    let e = e.without_snippet();
    let location = e.location().and_then(|l| validate::loc(&l));
    let message = error::shorten(
        &serde_saphyr::DefaultMessageFormatter.format_message(e),
        300,
    );
    match e {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            // The path already ends with the unknown key.
            let parent = path
                .as_deref()
                .and_then(|p| p.strip_suffix(field.as_str()))
                .map(|p| p.trim_end_matches('.').to_owned())
                .filter(|p| !p.is_empty());
            let mut hint = format!(
                "valid keys in {} are {}",
                section_name(parent.as_deref()),
                list_keys(expected)
            );
            if let Some(m) = did_you_mean(field, expected.iter().copied()) {
                hint.push_str(&format!("; did you mean `{m}`?"));
            }
            r.error(
                ErrorKind::UnknownKey,
                location,
                Some(join(parent.as_deref(), &error::shorten(field, 60))),
                format!("unknown key `{}`", error::shorten(field, 60)),
                Some(hint),
            )
        }
        E::SerdeMissingField { field, .. } => r.error(
            ErrorKind::MissingKey,
            location,
            Some(join(path.as_deref(), field)),
            format!(
                "missing required key `{field}` in {}",
                section_name(path.as_deref())
            ),
            Some(missing_hint(field)),
        ),
        E::DuplicateMappingKey { key, .. } => {
            let key_txt = key.as_deref().unwrap_or("?");
            let parent = path.filter(|p| p != "?");
            r.error(
                ErrorKind::DuplicateKey,
                location,
                Some(join(parent.as_deref(), &error::shorten(key_txt, 60))),
                format!("the key `{}` appears twice", error::shorten(key_txt, 60)),
                Some("remove one of the two lines; each key may appear once per section".into()),
            )
        }
        E::MultipleDocuments { .. }
        | E::Budget {
            breach: serde_saphyr::budget::BudgetBreach::Documents { .. },
            ..
        } => r.error(
            ErrorKind::Syntax,
            separator_line(r.text, location),
            None,
            "the file holds more than one YAML document (a second `---`)",
            Some("put one scenario per file and remove the extra `---` line".into()),
        ),
        E::Budget { .. } => r.error(
            ErrorKind::TooLarge,
            location,
            path,
            format!("the input is too large or too deeply nested ({message})"),
            Some(
                "scenario files are small: a few groups and phases, nested a few levels deep"
                    .into(),
            ),
        ),
        E::SerdeInvalidType { .. }
        | E::SerdeInvalidValue { .. }
        | E::SerdeInvalidLength { .. }
        | E::SerdeUnknownVariant { .. }
        | E::InvalidScalar { .. }
        | E::NullIntoString { .. }
        | E::Unexpected { .. }
        | E::NonFiniteFloat { .. }
        | E::UnexpectedValueForUnit { .. }
        | E::ExternallyTaggedEnumExpectedScalarOrMapping { .. } => {
            let what = match e {
                E::Unexpected { expected, .. } => {
                    let want = match *expected {
                        "sequence start" => "a list (`- item` lines or `[a, b]`)",
                        "mapping start" => "a mapping (`key: value` lines or `{ key: value }`)",
                        other => other,
                    };
                    format!("wrong type: expected {want}")
                }
                E::NonFiniteFloat { value, .. } => {
                    format!("`{}` is not a finite number", error::shorten(value, 40))
                }
                _ => message.clone(),
            };
            let hint = if matches!(e, E::NonFiniteFloat { .. }) {
                "write an ordinary number here".to_owned()
            } else {
                shape_hint(path.as_deref())
            };
            r.error(ErrorKind::WrongType, location, path, what, Some(hint))
        }
        _ => {
            // Syntax: the path is where the parser was, which helps even when the error is not about it.
            let msg = if message.to_ascii_lowercase().contains("recursion") {
                return r.error(
                    ErrorKind::TooLarge,
                    location,
                    None,
                    format!("the input is nested too deeply ({message})"),
                    Some("scenario files are nested only a few levels deep".into()),
                );
            } else {
                format!("invalid YAML: {message}")
            };
            r.error(
                ErrorKind::Syntax,
                location,
                None,
                msg,
                Some("check indentation (spaces, not tabs), `key: value` colons, quotes and brackets around this spot".into()),
            )
        }
    }
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
