//! What a device encodes must fit MQTT: every topic, the client id, the user name and the password are
//! length-prefixed strings of at most 65,535 bytes. Templates are checked at their longest rendering
//! (the last device of each group has the longest `{index}` and `{global_index}`), so a scenario that
//! validates has no device that could not start.

use super::context::{loc, Validator};
use super::error::{ErrorKind, ScenarioError};
use super::model::{BrokerSettings, Group, PayloadKind};
use super::raw::{RawScenario, Scalar};
use super::template::Template;

/// The longest MQTT string (UTF-8 string or binary data): a two-byte length prefix.
pub const MAX_MQTT_STRING: usize = 65_535;

/// Room a Sparkplug topic needs besides the group id and the edge node id (the client id):
/// `spBv1.0/` + `/NDATA/` (or `DBIRTH`...) + `/` + a device name.
const SPARKPLUG_TOPIC_OVERHEAD: usize = 64;

/// Something a device would encode that does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    /// Key path, e.g. `groups[0].topic`.
    pub path: String,
    /// What, e.g. "the publish topic of the last device of group `a`".
    pub what: String,
    pub len: usize,
    pub hint: &'static str,
}

impl TooLong {
    pub fn message(&self) -> String {
        format!(
            "{} is {} bytes long, over MQTT's limit of {MAX_MQTT_STRING} bytes",
            self.what, self.len
        )
    }
}

/// Decimal digits of `n`.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

const TEMPLATE_HINT: &str = "shorten the template; placeholders render as the group name, the device's indices and its client id";

/// The first thing a device of this fleet could not encode, if any.
pub fn first_too_long(broker: &BrokerSettings, groups: &[Group]) -> Option<TooLong> {
    for (value, path, what) in [
        (&broker.username, "broker.username", "the user name"),
        (&broker.password, "broker.password", "the password"),
    ] {
        let len = value.as_ref().map_or(0, String::len);
        if len > MAX_MQTT_STRING {
            return Some(TooLong {
                path: path.into(),
                what: what.into(),
                len,
                hint: "shorten it",
            });
        }
    }
    let mut start = 0u64;
    for (i, g) in groups.iter().enumerate() {
        let last = u64::from(g.count).saturating_sub(1);
        let lens = (g.name.len(), digits(last), digits(start + last), 0);
        start += u64::from(g.count);
        let client_id = broker.client_id.max_rendered_len(lens);
        if client_id > MAX_MQTT_STRING {
            return Some(TooLong {
                path: "broker.client_id".into(),
                what: format!("the client id of the last device of group `{}`", g.name),
                len: client_id,
                hint: "shorten the client_id template (or the group name it uses)",
            });
        }
        let lens = (lens.0, lens.1, lens.2, client_id);
        let mut templates: Vec<(&Template, &str, &str)> =
            vec![(&g.topic, "topic", "the publish topic")];
        if let Some(c) = &g.commands {
            templates.push((&c.topic, "commands.topic", "the command topic"));
            templates.push((
                &c.reply_topic,
                "commands.reply_topic",
                "the command reply topic",
            ));
        }
        for (t, key, what) in templates {
            let len = t.max_rendered_len(lens);
            if len > MAX_MQTT_STRING {
                return Some(TooLong {
                    path: format!("groups[{i}].{key}"),
                    what: format!("{what} of the last device of group `{}`", g.name),
                    len,
                    hint: TEMPLATE_HINT,
                });
            }
        }
        if let PayloadKind::Sparkplug { group_id, .. } = &g.payload {
            let len = group_id
                .len()
                .saturating_add(client_id)
                .saturating_add(SPARKPLUG_TOPIC_OVERHEAD);
            if len > MAX_MQTT_STRING {
                return Some(TooLong {
                    path: format!("groups[{i}].sparkplug.group_id"),
                    what: format!(
                        "a Sparkplug topic of group `{}` (its group id and client id)",
                        g.name
                    ),
                    len,
                    hint: "shorten the Sparkplug group_id or the client_id template",
                });
            }
        }
    }
    None
}

impl Validator<'_> {
    /// [`first_too_long`] as a located error.
    pub(super) fn check_lengths(
        &self,
        raw: &RawScenario,
        broker: &BrokerSettings,
        groups: &[Group],
    ) -> Result<(), ScenarioError> {
        let Some(t) = first_too_long(broker, groups) else {
            return Ok(());
        };
        let rb = raw.broker.as_ref().map(|b| &b.value);
        let group = || -> Option<&Scalar> {
            let rest = t.path.strip_prefix("groups[")?;
            let (i, k) = rest.split_once("].")?;
            let g = &raw.groups.value.get(i.parse::<usize>().ok()?)?.value;
            let c = g.commands.as_ref().map(|c| &c.value);
            match k {
                "topic" => g.topic.as_ref(),
                "commands.topic" => c?.topic.as_ref(),
                "commands.reply_topic" => c?.reply_topic.as_ref(),
                _ => None,
            }
        };
        let at = match t.path.as_str() {
            "broker.username" => rb.and_then(|b| b.username.as_ref()),
            "broker.password" => rb.and_then(|b| b.password.as_ref()),
            "broker.client_id" => rb.and_then(|b| b.client_id.as_ref()),
            _ => group(),
        };
        Err(self.r.error(
            ErrorKind::InvalidValue,
            at.and_then(|v| loc(&v.referenced)),
            Some(t.path.clone()),
            t.message(),
            Some(t.hint.to_owned()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::digits;

    #[test]
    fn digits_of_indices() {
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(9_999_999), 7);
        assert_eq!(digits(u64::MAX), 20);
    }
}
