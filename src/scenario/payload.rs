//! Validation of a group's `payload:` and `sparkplug:` keys.

use crate::scenario::error::ScenarioError;
use crate::scenario::model::PayloadKind;
use crate::scenario::raw::RawGroup;
use crate::scenario::validate::Validator;

type Result<T> = std::result::Result<T, ScenarioError>;

/// Most Sparkplug devices behind one edge node (one MQTT connection).
pub const MAX_SPARKPLUG_DEVICES: i128 = 256;

/// A Sparkplug id: no `/`, `+`, `#`, not empty.
fn valid_sparkplug_id(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#'])
}

impl Validator<'_> {
    pub(super) fn payload(
        &self,
        g: &RawGroup,
        p: &dyn Fn(&str) -> String,
        group_name: &str,
    ) -> Result<PayloadKind> {
        let kind = match &g.payload {
            None => "json".to_owned(),
            Some(v) => self.text(v, &p("payload"), "`json` (default) or `sparkplug`")?,
        };
        match (kind.trim(), &g.sparkplug) {
            ("json", None) => Ok(PayloadKind::Json),
            ("json", Some(s)) => Err(self.r.error(
                crate::scenario::error::ErrorKind::InvalidValue,
                crate::scenario::validate::loc(&s.referenced),
                Some(p("sparkplug")),
                "`sparkplug:` settings need `payload: sparkplug`",
                Some("add `payload: sparkplug` to the group, or remove `sparkplug:`".into()),
            )),
            ("sparkplug", s) => {
                let (mut group_id, mut devices) = (group_name.to_owned(), 2u16);
                if let Some(s) = s {
                    if let Some(v) = &s.value.group_id {
                        let hint = "a Sparkplug group id without `/`, `+` or `#`, e.g. `group_id: plant-a`";
                        let id = self.text(v, &p("sparkplug.group_id"), hint)?;
                        if !valid_sparkplug_id(&id) {
                            return Err(self.invalid(
                                v,
                                &p("sparkplug.group_id"),
                                format!("`{id}` is not a valid Sparkplug group id"),
                                hint,
                            ));
                        }
                        group_id = id;
                    }
                    if let Some(v) = &s.value.devices {
                        let n = self.int_in(
                            v,
                            &p("sparkplug.devices"),
                            "devices",
                            1,
                            MAX_SPARKPLUG_DEVICES,
                            "Sparkplug devices behind each edge node, 1 to 256, e.g. `devices: 4`",
                        )?;
                        devices = u16::try_from(n).unwrap_or(2);
                    }
                }
                Ok(PayloadKind::Sparkplug { group_id, devices })
            }
            (other, _) => {
                let v = g.payload.as_ref().unwrap_or(&g.name);
                Err(self.invalid(
                    v,
                    &p("payload"),
                    format!(
                        "unknown payload `{}`",
                        crate::scenario::error::shorten(other, 40)
                    ),
                    "`json` (default) or `sparkplug`",
                ))
            }
        }
    }
}
