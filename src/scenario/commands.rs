//! Validation of a group's `session:` (persistent sessions, MQTT 5 session expiry) and `commands:`
//! (a commander publishes commands to the devices, which reply).

use std::time::Duration;

use crate::scenario::context::{loc, Validator};
use crate::scenario::error::{ErrorKind, ScenarioError};
use crate::scenario::model::SessionSettings;
use crate::scenario::model::{BrokerSettings, Commands, MqttVersion, PayloadKind, Qos};
use crate::scenario::raw::{RawGroup, RawScenario};
use crate::scenario::template::{Template, Var};
use crate::scenario::topic::{filters_intersect, group_filter};
use crate::scenario::units::parse_rate;

type Result<T> = std::result::Result<T, ScenarioError>;

/// Session expiry of a persistent MQTT 5 session when `expiry` is not written.
pub const DEFAULT_SESSION_EXPIRY: Duration = Duration::from_secs(600);
/// Default command topic of a device.
pub const DEFAULT_COMMAND_TOPIC: &str = "fleetstorm/{group}/{client_id}/cmd";
/// Default reply topic of a device.
pub const DEFAULT_REPLY_TOPIC: &str = "fleetstorm/{group}/{client_id}/cmd/reply";
/// Most commands per second one commander sends.
pub const MAX_COMMAND_RATE: f64 = 1_000_000.0;

impl Validator<'_> {
    /// A group's `session:`.
    pub(super) fn session(
        &self,
        g: &RawGroup,
        p: &dyn Fn(&str) -> String,
    ) -> Result<Option<SessionSettings>> {
        let Some(s) = &g.session else {
            return Ok(None);
        };
        let clean = match &s.value.clean {
            None => true,
            Some(v) => self.boolean(
                v,
                &p("session.clean"),
                "write `clean: false` for a persistent session (kept across reconnects) or `clean: true`",
            )?,
        };
        let expiry = match &s.value.expiry {
            None => DEFAULT_SESSION_EXPIRY,
            Some(v) => {
                let path = p("session.expiry");
                let hint = "how long the broker keeps the session after a disconnect (MQTT 5), whole seconds from `1s`, e.g. `expiry: 10m`";
                if clean {
                    return Err(self.invalid(
                        v,
                        &path,
                        "a session expiry needs a persistent session".into(),
                        "add `clean: false` to `session:`, or remove `expiry`",
                    ));
                }
                let d = self.duration(v, &path, hint)?;
                if d.is_zero() || d.subsec_nanos() != 0 || d.as_secs() > u64::from(u32::MAX) {
                    return Err(self.invalid(
                        v,
                        &path,
                        format!(
                            "expiry must be whole seconds from 1s to {}s, got {d:?}",
                            u32::MAX
                        ),
                        hint,
                    ));
                }
                d
            }
        };
        Ok(Some(SessionSettings { clean, expiry }))
    }

    /// A session expiry is an MQTT 5 property: refuse it in a file that speaks 3.1.1.
    pub(super) fn check_session_protocol(
        &self,
        raw: &RawScenario,
        broker: &BrokerSettings,
    ) -> Result<()> {
        if broker.protocol != MqttVersion::V311 {
            return Ok(());
        }
        for (i, g) in raw.groups.value.iter().enumerate() {
            if let Some(v) = g
                .value
                .session
                .as_ref()
                .and_then(|s| s.value.expiry.as_ref())
            {
                return Err(self.invalid(
                    v,
                    &format!("groups[{i}].session.expiry"),
                    "a session expiry is an MQTT 5 feature, and this scenario speaks MQTT 3.1.1".into(),
                    "set `broker.protocol: 5`, or remove `expiry` (3.1.1 brokers keep a `clean: false` session until they drop it)",
                ));
            }
        }
        Ok(())
    }

    /// A group's `commands:`.
    pub(super) fn commands(
        &self,
        g: &RawGroup,
        p: &dyn Fn(&str) -> String,
        group_name: &str,
        telemetry: &Template,
        payload: &PayloadKind,
    ) -> Result<Option<Commands>> {
        let Some(c) = &g.commands else {
            return Ok(None);
        };
        if !matches!(payload, PayloadKind::Json) {
            return Err(self.r.error(
                ErrorKind::InvalidValue,
                loc(&c.referenced),
                Some(p("commands")),
                "`commands:` cannot be combined with `payload: sparkplug`",
                Some("Sparkplug edge nodes take their commands as NCMD/DCMD; remove `commands:` or use `payload: json`".into()),
            ));
        }
        let c = &c.value;
        let rpath = p("commands.rate");
        let hint = "commands per second over the whole group, e.g. `rate: 20/s` or `rate: 600/min`";
        let text = self.unit_text(&c.rate, &rpath, "a rate such as `20/s`", hint)?;
        let rate = parse_rate(&text).map_err(|m| self.invalid(&c.rate, &rpath, m, hint))?;
        if !(rate > 0.0 && rate <= MAX_COMMAND_RATE) {
            return Err(self.invalid(
                &c.rate,
                &rpath,
                format!("the command rate must be above 0 and at most {MAX_COMMAND_RATE}/s, got {rate}/s"),
                hint,
            ));
        }
        let qos = match &c.qos {
            None => Qos::AtLeastOnce,
            Some(v) => {
                let hint = "use 0 (at most once), 1 (at least once, default) or 2 (exactly once)";
                match self.int(v, &p("commands.qos"), hint)? {
                    0 => Qos::AtMostOnce,
                    1 => Qos::AtLeastOnce,
                    2 => Qos::ExactlyOnce,
                    q => {
                        return Err(self.invalid(
                            v,
                            &p("commands.qos"),
                            format!("QoS must be 0, 1 or 2, got {q}"),
                            hint,
                        ))
                    }
                }
            }
        };
        let topic = self.command_topic(
            c.topic.as_ref(),
            &p("commands.topic"),
            DEFAULT_COMMAND_TOPIC,
        )?;
        let reply_topic = self.command_topic(
            c.reply_topic.as_ref(),
            &p("commands.reply_topic"),
            DEFAULT_REPLY_TOPIC,
        )?;
        // The commander subscribes to the replies of the group: that filter must not receive commands,
        // and the devices must not receive telemetry on their command subscriptions.
        let cmd_filter = group_filter(&topic, group_name);
        let reply_filter = group_filter(&reply_topic, group_name);
        let clash = |a: &str, b: &str| filters_intersect(a, b);
        if clash(&cmd_filter, &reply_filter) {
            let v = c
                .reply_topic
                .as_ref()
                .or(c.topic.as_ref())
                .unwrap_or(&c.rate);
            return Err(self.invalid(
                v,
                &p("commands.reply_topic"),
                format!("reply topics (`{reply_filter}`) and command topics (`{cmd_filter}`) overlap"),
                "give replies their own topic level, e.g. `reply_topic: \"cmd/{client_id}/reply\"` next to `topic: \"cmd/{client_id}\"`",
            ));
        }
        let telemetry_filter = group_filter(telemetry, group_name);
        if clash(&cmd_filter, &telemetry_filter) || clash(&reply_filter, &telemetry_filter) {
            let v = c
                .topic
                .as_ref()
                .or(c.reply_topic.as_ref())
                .unwrap_or(&c.rate);
            return Err(self.invalid(
                v,
                &p("commands.topic"),
                format!(
                    "command or reply topics overlap the group's telemetry topic `{}`",
                    telemetry.as_str()
                ),
                "use a different topic level for commands, e.g. `topic: \"cmd/{client_id}\"`",
            ));
        }
        Ok(Some(Commands {
            rate_per_s: rate,
            qos,
            topic,
            reply_topic,
        }))
    }

    /// A per-device topic template (command or reply).
    fn command_topic(
        &self,
        v: Option<&crate::scenario::raw::Scalar>,
        path: &str,
        default: &str,
    ) -> Result<Template> {
        let Some(v) = v else {
            return Template::parse(default).map_err(|e| self.invalid_internal(e.to_string()));
        };
        let hint = "a per-device topic with {client_id}, {index} or {global_index}, e.g. `cmd/{group}/{client_id}`";
        let t = self.template(v, path, hint)?;
        if t.as_str().is_empty() {
            return Err(self.invalid(v, path, "the topic is empty".into(), hint));
        }
        if t.as_str().contains(['+', '#']) {
            return Err(self.invalid(
                v,
                path,
                "a topic may not contain the wildcards `+` or `#`".into(),
                hint,
            ));
        }
        if ![Var::ClientId, Var::Index, Var::GlobalIndex]
            .iter()
            .any(|&x| t.uses(x))
        {
            return Err(self.invalid(
                v,
                path,
                format!("topic `{}` would be the same for every device", t.as_str()),
                hint,
            ));
        }
        Ok(t)
    }

    fn invalid_internal(&self, message: String) -> ScenarioError {
        self.r
            .error(ErrorKind::InvalidValue, None, None, message, None)
    }
}
