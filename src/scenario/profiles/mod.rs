//! Device profiles in scenario files: the built-in ones (YAML files under `profiles/`, compiled in) and the
//! ones a scenario defines under `profiles:`. Both are read by the same validator.

pub(crate) mod builtin;
pub(crate) mod raw;
mod validate;

use std::sync::Arc;

pub use builtin::BUILTIN_NAMES;
pub(crate) use raw::RawProfile;

use crate::scenario::context::Validator;
use crate::scenario::error::{ErrorKind, Reporter, ScenarioError};
use crate::scenario::yaml::deserialize;
use crate::telemetry::Profile;
use builtin::BUILTIN;

/// Every built-in profile, read from its compiled-in YAML.
pub fn builtin_profiles() -> Result<Vec<Arc<Profile>>, ScenarioError> {
    BUILTIN
        .iter()
        .map(|(_, file, text)| parse_profile(text, file))
        .collect()
}

/// One built-in profile by name.
pub fn builtin_profile(name: &str) -> Option<Arc<Profile>> {
    let (_, file, text) = BUILTIN.iter().find(|(n, _, _)| *n == name)?;
    parse_profile(text, file).ok()
}

/// Read a profile definition file (the format of one item of a scenario's `profiles:` list).
pub fn parse_profile(text: &str, file: &str) -> Result<Arc<Profile>, ScenarioError> {
    let r = Reporter { file, text };
    let raw: RawProfile = deserialize(&r, "the profile is empty")?;
    let v = Validator { r };
    let def = v.profile(&raw, "")?;
    v.build_profile(def, &raw.name.referenced, "name")
}

impl Validator<'_> {
    /// The profiles a scenario can use: the built-in ones and those under `profiles:`.
    pub(crate) fn scenario_profiles(
        &self,
        list: Option<&serde_saphyr::Spanned<Vec<serde_saphyr::Spanned<RawProfile>>>>,
    ) -> Result<Vec<Arc<Profile>>, ScenarioError> {
        let mut profiles = builtin_profiles()?;
        let Some(list) = list else {
            return Ok(profiles);
        };
        for (i, raw) in list.value.iter().enumerate() {
            let path = format!("profiles[{i}]");
            let def = self.profile(&raw.value, &path)?;
            if profiles.iter().any(|p| p.name() == def.name) {
                let builtin = BUILTIN_NAMES.contains(&def.name.as_str());
                return Err(self.invalid(
                    &raw.value.name,
                    &format!("{path}.name"),
                    format!(
                        "profile `{}` is {}",
                        def.name,
                        if builtin { "built in" } else { "defined twice" }
                    ),
                    "give the profile its own name (a copy of a built-in one may change anything)",
                ));
            }
            profiles.push(self.build_profile(
                def,
                &raw.value.name.referenced,
                &format!("{path}.name"),
            )?);
        }
        Ok(profiles)
    }

    /// Lay out a checked definition (what the validator has not caught is reported at the profile name).
    pub(crate) fn build_profile(
        &self,
        def: crate::telemetry::ProfileDef,
        at: &serde_saphyr::Location,
        path: &str,
    ) -> Result<Arc<Profile>, ScenarioError> {
        Profile::new(def).map(Arc::new).map_err(|e| {
            self.r.error(
                ErrorKind::InvalidValue,
                crate::scenario::context::loc(at),
                Some(path.to_owned()),
                e.to_string(),
                Some("see profiles/cnc-machine.yaml for a complete example".into()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_reads() {
        let profiles = builtin_profiles().unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = profiles.iter().map(|p| p.name()).collect();
        assert_eq!(names, BUILTIN_NAMES);
    }
}
