//! Validation of a group's `payload:` and `sparkplug:` keys.

use crate::scenario::context::Validator;
use crate::scenario::error::ScenarioError;
use crate::scenario::model::{DeviceOutages, PayloadKind};
use crate::scenario::raw::{RawGroup, RawOutages};
use crate::scenario::units::parse_rate;

type Result<T> = std::result::Result<T, ScenarioError>;

/// Most Sparkplug devices behind one edge node (one MQTT connection).
pub const MAX_SPARKPLUG_DEVICES: i128 = 256;

/// A Sparkplug id: no `/`, `+`, `#`, not empty.
pub(crate) fn valid_sparkplug_id(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#'])
}

impl Validator<'_> {
    /// A Sparkplug id (group, host) at `path`: text free of `/`, `+`, `#`.
    pub(super) fn sparkplug_id(
        &self,
        v: &crate::scenario::raw::Scalar,
        path: &str,
        what: &str,
        hint: &str,
    ) -> Result<String> {
        let id = self.text(v, path, hint)?;
        if !valid_sparkplug_id(&id) {
            return Err(self.invalid(
                v,
                path,
                format!(
                    "`{}` is not a valid Sparkplug {what}",
                    crate::scenario::error::shorten(&id, 60)
                ),
                hint,
            ));
        }
        Ok(id)
    }
}

impl Validator<'_> {
    fn outages(&self, o: &RawOutages, p: &dyn Fn(&str) -> String) -> Result<DeviceOutages> {
        let hint = "each device goes offline (DDEATH) at this rate and is back (DBIRTH) after `duration`, e.g. `device_outages: { rate: 2/h, duration: 1m }`";
        let rpath = p("sparkplug.device_outages.rate");
        let text = self.unit_text(&o.rate, &rpath, "a rate such as `2/h`", hint)?;
        let rate_per_s = parse_rate(&text).map_err(|m| self.invalid(&o.rate, &rpath, m, hint))?;
        if rate_per_s <= 0.0 {
            return Err(self.invalid(
                &o.rate,
                &rpath,
                "the rate must be greater than zero".into(),
                hint,
            ));
        }
        let dpath = p("sparkplug.device_outages.duration");
        let duration = self.duration(&o.duration, &dpath, hint)?;
        if duration.is_zero() {
            return Err(self.invalid(
                &o.duration,
                &dpath,
                "an outage must last longer than zero".into(),
                hint,
            ));
        }
        Ok(DeviceOutages {
            rate_per_s,
            duration,
        })
    }

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
                crate::scenario::context::loc(&s.referenced),
                Some(p("sparkplug")),
                "`sparkplug:` settings need `payload: sparkplug`",
                Some("add `payload: sparkplug` to the group, or remove `sparkplug:`".into()),
            )),
            ("sparkplug", s) => {
                let (mut group_id, mut devices) = (group_name.to_owned(), 2u16);
                let mut primary_host = None;
                let mut device_outages = None;
                if let Some(s) = s {
                    if let Some(o) = &s.value.device_outages {
                        device_outages = Some(self.outages(&o.value, p)?);
                    }
                    if let Some(v) = &s.value.group_id {
                        let hint = "a Sparkplug group id without `/`, `+` or `#`, e.g. `group_id: plant-a`";
                        group_id =
                            self.sparkplug_id(v, &p("sparkplug.group_id"), "group id", hint)?;
                        if group_id == "STATE" {
                            return Err(self.invalid(
                                v,
                                &p("sparkplug.group_id"),
                                "`STATE` is reserved: `spBv1.0/STATE/...` carries primary host state".into(),
                                hint,
                            ));
                        }
                    }
                    if let Some(v) = &s.value.primary_host {
                        let hint = "the primary host application id whose STATE gates the births, without `/`, `+` or `#`, e.g. `primary_host: scada-1`";
                        primary_host = Some(self.sparkplug_id(
                            v,
                            &p("sparkplug.primary_host"),
                            "host id",
                            hint,
                        )?);
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
                Ok(PayloadKind::Sparkplug {
                    group_id,
                    devices,
                    primary_host,
                    device_outages,
                })
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
