//! Validation of `broker.tls:`: trust, server name, ALPN, versions, resumption and client identities.
//! Files are checked here (exit 2 before anything connects): the CA, a fleet certificate and key, and
//! for per-device templates every device's files.

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use crate::scenario::context::{loc, Validator};
use crate::scenario::error::{ErrorKind, ScenarioError};
use crate::scenario::model::{
    BrokerSettings, ClientIdentity, Group, IssueSpec, TlsSettings, TlsVersion,
};
use crate::scenario::raw::{RawBroker, RawIssue, RawScenario, RawTls, Scalar};
use crate::scenario::template::{Template, TemplateVars, Var};

type Result<T> = std::result::Result<T, ScenarioError>;

/// Default validity of a minted certificate.
const DEFAULT_VALID: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

impl Validator<'_> {
    pub(super) fn tls(&self, t: &Spanned<RawTls>) -> Result<TlsSettings> {
        let raw = &t.value;
        let mut out = TlsSettings {
            at: match loc(&t.referenced) {
                Some((line, _)) => format!("{}:{line}", self.r.file),
                None => self.r.file.to_owned(),
            },
            ..TlsSettings::default()
        };
        if let Some(v) = &raw.ca {
            let path = self.pem_file(
                v,
                "broker.tls.ca",
                "CERTIFICATE",
                "point `ca:` at the PEM file of the CA that signed the broker's certificate, or remove it to use the system trust store",
            )?;
            out.ca = Some(path);
        }
        if let Some(v) = &raw.server_name {
            let hint = "the name in the broker's certificate, e.g. `server_name: broker.local`";
            let name = self.text(v, "broker.tls.server_name", hint)?;
            if rustls_pki_types::ServerName::try_from(name.trim()).is_err() {
                return Err(self.invalid(
                    v,
                    "broker.tls.server_name",
                    format!("`{}` is not a DNS name or IP address", name.trim()),
                    hint,
                ));
            }
            out.server_name = Some(name.trim().to_owned());
        }
        if let Some(list) = &raw.alpn {
            let hint =
                "list protocol names, e.g. `alpn: [mqtt]` (AWS IoT on port 443 needs `mqtt`)";
            for (i, v) in list.value.iter().enumerate() {
                let path = format!("broker.tls.alpn[{i}]");
                let p = self.text(v, &path, hint)?;
                if p.is_empty() || p.len() > 255 {
                    return Err(self.invalid(
                        v,
                        &path,
                        "an ALPN protocol name has 1 to 255 bytes".into(),
                        hint,
                    ));
                }
                out.alpn.push(p);
            }
        }
        if let Some(list) = &raw.versions {
            let hint = "list `\"1.2\"` and/or `\"1.3\"`, e.g. `versions: [\"1.3\"]`";
            out.versions.clear();
            for (i, v) in list.value.iter().enumerate() {
                let path = format!("broker.tls.versions[{i}]");
                let version = match &v.value {
                    crate::scenario::raw::Value::Float(f) if *f == 1.2 => TlsVersion::V12,
                    crate::scenario::raw::Value::Float(f) if *f == 1.3 => TlsVersion::V13,
                    crate::scenario::raw::Value::Str(s) if s.trim() == "1.2" => TlsVersion::V12,
                    crate::scenario::raw::Value::Str(s) if s.trim() == "1.3" => TlsVersion::V13,
                    other => {
                        return Err(self.invalid(
                            v,
                            &path,
                            format!("unsupported TLS version {}", other.describe()),
                            hint,
                        ))
                    }
                };
                if !out.versions.contains(&version) {
                    out.versions.push(version);
                }
            }
            if out.versions.is_empty() {
                return Err(self.r.error(
                    ErrorKind::InvalidValue,
                    loc(&list.referenced),
                    Some("broker.tls.versions".into()),
                    "`versions` is empty",
                    Some(hint.into()),
                ));
            }
        }
        if let Some(v) = &raw.insecure_skip_verify {
            out.insecure_skip_verify = self.boolean(
                v,
                "broker.tls.insecure_skip_verify",
                "write `insecure_skip_verify: true` only for a test broker whose certificate cannot be verified",
            )?;
        }
        if let Some(v) = &raw.resumption {
            out.resumption = self.boolean(
                v,
                "broker.tls.resumption",
                "write `resumption: true` (default: reconnects resume the TLS session) or `false` (every handshake is full)",
            )?;
        }
        out.identity = self.identity(t)?;
        Ok(out)
    }

    fn identity(&self, t: &Spanned<RawTls>) -> Result<ClientIdentity> {
        let raw = &t.value;
        let template_hint = "a PEM file, one for the fleet (`cert: certs/fleet.crt`) or per device (`cert: certs/{client_id}.crt`, `key: certs/{client_id}.key`)";
        match (&raw.cert, &raw.key, &raw.issue) {
            (None, None, None) => Ok(ClientIdentity::None),
            (Some(_), _, Some(i)) | (_, Some(_), Some(i)) => Err(self.r.error(
                ErrorKind::InvalidValue,
                loc(&i.referenced),
                Some("broker.tls.issue".into()),
                "`issue` and `cert`/`key` cannot both be set",
                Some("keep `cert` and `key` for certificates you have, or `issue` to have fleetstorm mint one per device".into()),
            )),
            (Some(c), None, None) => Err(self.r.error(
                ErrorKind::MissingKey,
                loc(&c.referenced),
                Some("broker.tls.key".into()),
                "a client certificate (`cert`) needs its private key (`key`)",
                Some("add `key: ...` next to `cert:` in `broker.tls`".into()),
            )),
            (None, Some(k), None) => Err(self.r.error(
                ErrorKind::MissingKey,
                loc(&k.referenced),
                Some("broker.tls.cert".into()),
                "a private key (`key`) needs its certificate (`cert`)",
                Some("add `cert: ...` next to `key:` in `broker.tls`".into()),
            )),
            (Some(c), Some(k), None) => {
                let cert = self.template(c, "broker.tls.cert", template_hint)?;
                let key = self.template(k, "broker.tls.key", template_hint)?;
                if per_device(&cert) != per_device(&key) {
                    return Err(self.invalid(
                        k,
                        "broker.tls.key",
                        "`cert` and `key` must both be one file for the fleet or both be per-device templates".into(),
                        template_hint,
                    ));
                }
                if !per_device(&cert) {
                    self.pem_file(c, "broker.tls.cert", "CERTIFICATE", template_hint)?;
                    self.pem_file(k, "broker.tls.key", "PRIVATE KEY", template_hint)?;
                }
                Ok(ClientIdentity::Files { cert, key })
            }
            (None, None, Some(i)) => Ok(ClientIdentity::Issue(self.issue(i)?)),
        }
    }

    fn issue(&self, i: &Spanned<RawIssue>) -> Result<IssueSpec> {
        let raw = &i.value;
        let hint = "give both `ca_cert` and `ca_key` (PEM files of the CA that signs the device certificates), or neither with the embedded broker";
        let ca_cert = match &raw.ca_cert {
            Some(v) => Some(self.pem_file(v, "broker.tls.issue.ca_cert", "CERTIFICATE", hint)?),
            None => None,
        };
        let ca_key = match &raw.ca_key {
            Some(v) => Some(self.pem_file(v, "broker.tls.issue.ca_key", "PRIVATE KEY", hint)?),
            None => None,
        };
        if ca_cert.is_some() != ca_key.is_some() {
            let missing = if ca_cert.is_none() {
                "broker.tls.issue.ca_cert"
            } else {
                "broker.tls.issue.ca_key"
            };
            return Err(self.r.error(
                ErrorKind::MissingKey,
                loc(&i.referenced),
                Some(missing.into()),
                "minting certificates needs both the CA certificate and its key",
                Some(hint.into()),
            ));
        }
        let subject = match &raw.subject {
            Some(v) => self.template(
                v,
                "broker.tls.issue.subject",
                "e.g. `subject: \"CN={client_id}\"`",
            )?,
            None => Template::parse("CN={client_id}").map_err(|e| ScenarioError::Override {
                flag: "internal",
                message: e.to_string(),
                hint: String::new(),
            })?,
        };
        let valid = match &raw.valid {
            Some(v) => {
                let hint = "a positive duration, e.g. `valid: 30d`";
                let d = self.duration(v, "broker.tls.issue.valid", hint)?;
                if d.is_zero() {
                    return Err(self.invalid(
                        v,
                        "broker.tls.issue.valid",
                        "valid must be greater than zero".into(),
                        hint,
                    ));
                }
                d
            }
            None => DEFAULT_VALID,
        };
        Ok(IssueSpec {
            ca_cert,
            ca_key,
            subject,
            valid,
        })
    }

    /// A PEM file that exists and holds at least one block of `label` (`CERTIFICATE`, or any
    /// `... PRIVATE KEY`). Only the labels are looked at here; the contents never reach a message.
    fn pem_file(&self, v: &Scalar, path: &str, label: &str, hint: &str) -> Result<PathBuf> {
        let file = PathBuf::from(self.text(v, path, hint)?);
        check_pem(&file, label).map_err(|m| self.invalid(v, path, m, hint))?;
        Ok(file)
    }

    /// `broker.tls` only makes sense with a TLS target (or the embedded broker, which then listens
    /// with TLS too).
    pub(super) fn check_tls_scheme(&self, b: &RawBroker, out: &BrokerSettings) -> Result<()> {
        let (Some(t), Some(_)) = (&b.tls, &out.url) else {
            return Ok(());
        };
        let targets = out.targets();
        if let Some(plain) = targets.iter().find(|u| !u.is_tls()) {
            return Err(self.r.error(
                ErrorKind::InvalidValue,
                loc(&t.referenced),
                Some("broker.tls".into()),
                format!("`broker.tls` is set but `{plain}` is not a TLS URL"),
                Some("use `mqtts://` (or `wss://`) in `broker.url`/`broker.urls`, or remove `broker.tls`".into()),
            ));
        }
        Ok(())
    }

    /// Per-device certificate templates: every device's files must exist (checked before anything
    /// connects). Names the first missing file and how many devices miss theirs.
    pub(super) fn check_identity_files(
        &self,
        raw: &RawScenario,
        broker: &BrokerSettings,
        groups: &[Group],
    ) -> Result<()> {
        let Some(ClientIdentity::Files { cert, key }) = broker.tls.as_ref().map(|t| &t.identity)
        else {
            return Ok(());
        };
        if !per_device(cert) {
            return Ok(());
        }
        let raw_tls = raw
            .broker
            .as_ref()
            .and_then(|b| b.value.tls.as_ref())
            .map(|t| &t.value);
        let mut first: Option<(&'static str, String)> = None;
        let mut missing: u64 = 0;
        let mut global: u64 = 0;
        let mut client_id = String::new();
        let mut file = String::new();
        for g in groups {
            for index in 0..u64::from(g.count) {
                let mut vars = TemplateVars {
                    group: &g.name,
                    index,
                    global_index: global,
                    client_id: "",
                };
                client_id.clear();
                broker.client_id.render_into(&mut client_id, &vars);
                vars.client_id = &client_id;
                global += 1;
                let mut bad = None;
                for (which, t) in [("broker.tls.cert", cert), ("broker.tls.key", key)] {
                    file.clear();
                    t.render_into(&mut file, &vars);
                    if !Path::new(&file).is_file() {
                        bad.get_or_insert((which, file.clone()));
                    }
                }
                if let Some(b) = bad {
                    missing += 1;
                    first.get_or_insert(b);
                }
            }
        }
        let Some((which, path)) = first else {
            return Ok(());
        };
        let scalar = raw_tls.and_then(|t| {
            if which == "broker.tls.cert" {
                t.cert.as_ref()
            } else {
                t.key.as_ref()
            }
        });
        let others = match missing {
            1 => String::new(),
            n => format!(" ({} other devices miss theirs too)", n - 1),
        };
        Err(self.r.error(
            ErrorKind::InvalidValue,
            scalar.and_then(|s| loc(&s.referenced)),
            Some(which.into()),
            format!("`{path}` does not exist{others}"),
            Some(format!(
                "create a certificate and key for every device ({global} devices: the template renders per client id), use one fleet-wide file, or let fleetstorm mint them with `broker.tls.issue`"
            )),
        ))
    }
}

/// Whether a file template differs per device.
fn per_device(t: &Template) -> bool {
    [Var::ClientId, Var::Index, Var::GlobalIndex, Var::Group]
        .into_iter()
        .any(|v| t.uses(v))
}

/// Check that `file` is a readable PEM file with a block whose label ends with `label`.
pub(crate) fn check_pem(file: &Path, label: &str) -> std::result::Result<(), String> {
    let text = std::fs::read(file).map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let found = text
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = std::str::from_utf8(line).ok()?.trim();
            line.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
        })
        .any(|l| l.ends_with(label));
    if found {
        Ok(())
    } else {
        Err(format!(
            "`{}` holds no PEM `{label}` block (expected `-----BEGIN {label}-----`)",
            file.display()
        ))
    }
}
