//! Validation of `broker:`: where and how devices connect, and the client-id template.

use std::time::Duration;

use crate::scenario::context::{loc, Validator, DEFAULT_CLIENT_ID};
use crate::scenario::error::{ErrorKind, ScenarioError};
use crate::scenario::model::{BrokerAssign, BrokerSettings, MqttVersion};
use crate::scenario::raw::{RawBroker, RawScenario, Value};
use crate::scenario::template::{Template, Var};
use crate::scenario::units::parse_broker_url;

type Result<T> = std::result::Result<T, ScenarioError>;

impl Validator<'_> {
    pub(super) fn broker(&self, b: &RawBroker) -> Result<BrokerSettings> {
        let mut out = default_broker()?;
        if let Some(v) = &b.url {
            let hint = "write `url: mqtt://host:1883` (or tcp://); leave `url` out to use the embedded broker";
            if !matches!(v.value, Value::Null) {
                let s = self.text(v, "broker.url", hint)?;
                out.url =
                    Some(parse_broker_url(&s).map_err(|m| self.invalid(v, "broker.url", m, hint))?);
            }
        }
        if let Some(v) = &b.protocol {
            let hint = "use `protocol: \"3.1.1\"` (MQTT 3.1.1) or `protocol: 5` (MQTT 5)";
            out.protocol = match &v.value {
                Value::Int(4) | Value::Float(4.0) => MqttVersion::V311,
                Value::Int(5) | Value::Float(5.0) => MqttVersion::V5,
                Value::Str(s) if matches!(s.trim(), "3.1.1" | "4" | "v3.1.1") => MqttVersion::V311,
                Value::Str(s) if matches!(s.trim(), "5" | "5.0" | "v5") => MqttVersion::V5,
                Value::Int(_) | Value::Float(_) | Value::Str(_) => {
                    return Err(self.invalid(
                        v,
                        "broker.protocol",
                        format!("unsupported MQTT protocol version: {}", v.value.describe()),
                        hint,
                    ))
                }
                _ => return Err(self.wrong_type(v, "broker.protocol", "a protocol version", hint)),
            };
        }
        if let Some(v) = &b.keep_alive {
            let hint = "use whole seconds from `0s` (disabled) to `65535s`, e.g. `keep_alive: 30s`";
            let d = self.duration(v, "broker.keep_alive", hint)?;
            if d > Duration::from_secs(65_535) {
                return Err(self.invalid(
                    v,
                    "broker.keep_alive",
                    format!("keep_alive must be at most 65535s, got {}s", d.as_secs()),
                    hint,
                ));
            }
            if d.subsec_nanos() != 0 {
                return Err(self.invalid(
                    v,
                    "broker.keep_alive",
                    "keep_alive must be whole seconds (MQTT counts it in seconds)".into(),
                    hint,
                ));
            }
            out.keep_alive = d;
        }
        if let Some(v) = &b.client_id {
            out.client_id = self.template(
                v,
                "broker.client_id",
                "placeholders are {group}, {index} and {global_index}, e.g. `fleetstorm-{group}-{index}`",
            )?;
        }
        if let Some(v) = &b.clean_session {
            out.clean_session = self.boolean(
                v,
                "broker.clean_session",
                "write `clean_session: true` or `false`",
            )?;
        }
        if let Some(v) = &b.connect_timeout {
            let hint = "use a positive duration, e.g. `connect_timeout: 10s`";
            let d = self.duration(v, "broker.connect_timeout", hint)?;
            if d.is_zero() {
                return Err(self.invalid(
                    v,
                    "broker.connect_timeout",
                    "connect_timeout must be greater than zero".into(),
                    hint,
                ));
            }
            out.connect_timeout = d;
        }
        if let Some(v) = &b.username {
            out.username = Some(self.text(
                v,
                "broker.username",
                "write the user name as text, e.g. `username: \"device\"`",
            )?);
        }
        if let Some(v) = &b.password {
            out.password = Some(self.text(
                v,
                "broker.password",
                "write the password as quoted text, e.g. `password: \"secret\"`",
            )?);
            if out.username.is_none() {
                return Err(self.r.error(
                    ErrorKind::InvalidValue,
                    loc(&v.referenced),
                    Some("broker.password".into()),
                    "a password needs a username",
                    Some("add `username: ...` to the broker section, or remove `password`".into()),
                ));
            }
        }
        if let Some(v) = &b.max_connecting {
            let i = self.int_in(
                v,
                "broker.max_connecting",
                "max_connecting",
                1,
                i128::from(u32::MAX),
                "the number of CONNECT handshakes in flight at once; at least 1, e.g. `max_connecting: 100`",
            )?;
            out.max_connecting = u32::try_from(i).unwrap_or(u32::MAX);
        }
        self.network(b, &mut out)?;
        if let Some(t) = &b.tls {
            out.tls = Some(self.tls(t)?);
        }
        self.check_tls_scheme(b, &out)?;
        Ok(out)
    }

    pub(super) fn check_client_id(
        &self,
        raw: &RawScenario,
        broker: &mut BrokerSettings,
        group_count: usize,
    ) -> Result<()> {
        let t = &broker.client_id;
        let err = |message: String, hint: &str| {
            let (location, path) =
                match raw.broker.as_ref().and_then(|b| b.value.client_id.as_ref()) {
                    Some(v) => (loc(&v.referenced), "broker.client_id"),
                    None => (None, "broker.client_id"),
                };
            self.r.error(
                ErrorKind::InvalidValue,
                location,
                Some(path.into()),
                message,
                Some(hint.to_owned()),
            )
        };
        if t.uses(Var::ClientId) {
            return Err(err(
                "the client id cannot use `{client_id}` (it would refer to itself)".into(),
                "use {group}, {index} and {global_index}, e.g. `fleetstorm-{group}-{index}`",
            ));
        }
        if !t.uses(Var::Index) && !t.uses(Var::GlobalIndex) {
            return Err(err(
                format!(
                    "client id `{}` would be the same for every device",
                    crate::scenario::error::shorten(t.as_str(), 60)
                ),
                "include {index} (per group) or {global_index} (fleet-wide), e.g. `fleetstorm-{group}-{index}`",
            ));
        }
        if group_count > 1 && !t.uses(Var::GlobalIndex) && !t.uses(Var::Group) {
            return Err(err(
                format!(
                    "client id `{}` uses {{index}} without {{group}}, so devices of different groups would share ids",
                    crate::scenario::error::shorten(t.as_str(), 60)
                ),
                "add {group} (e.g. `dev-{group}-{index}`) or use {global_index}",
            ));
        }
        Ok(())
    }
}

/// Broker settings with every default filled in.
pub(crate) fn default_broker() -> Result<BrokerSettings> {
    let client_id = Template::parse(DEFAULT_CLIENT_ID).map_err(|e| ScenarioError::Override {
        flag: "internal",
        message: e.to_string(),
        hint: String::new(),
    })?;
    Ok(BrokerSettings {
        url: None,
        protocol: MqttVersion::V311,
        keep_alive: Duration::from_secs(30),
        client_id,
        clean_session: true,
        connect_timeout: Duration::from_secs(10),
        username: None,
        password: None,
        max_connecting: 100,
        urls: Vec::new(),
        assign: BrokerAssign::RoundRobin,
        source_addresses: Vec::new(),
        tls: None,
        embedded_tls: false,
    })
}
