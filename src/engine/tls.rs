//! `broker.tls` turned into wire-level TLS clients (one per broker target and worker), and the TLS step
//! of a connect. Certificate files are read here; their contents never reach a message.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;

use crate::mqtt::{
    tls_connect, ConnectError, Roots, TlsClient, TlsFailure, TlsHandshake, TlsOptions, Transport,
};
use crate::scenario::{BrokerSettings, BrokerUrl, ClientIdentity, TlsSettings, TlsVersion};
use crate::tls::Minter;

/// The client id whose certificate observers, commanders and Sparkplug hosts present when device
/// certificates are minted (`broker.tls.issue`): a broker that requires client certificates takes
/// them too.
pub(crate) const MONITOR_IDENTITY: &str = "fleetstorm-monitor";

/// Why `broker.tls` could not be turned into a client configuration (a usage error: exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{at}: broker.tls.{key}: {message}\n  hint: {hint}")]
pub struct TlsConfigError {
    pub at: String,
    pub key: &'static str,
    pub message: String,
    pub hint: &'static str,
}

fn err(t: &TlsSettings, key: &'static str, message: String, hint: &'static str) -> TlsConfigError {
    TlsConfigError {
        at: t.at.clone(),
        key,
        message,
        hint,
    }
}

/// The TLS settings of a target: `broker.tls`, or the defaults for an `mqtts://`/`wss://` URL without it.
fn settings_for(broker: &BrokerSettings, url: &BrokerUrl) -> Option<TlsSettings> {
    url.is_tls().then(|| broker.tls.clone().unwrap_or_default())
}

/// One TLS client per broker target (`None` for plain targets), index-aligned with
/// [`BrokerSettings::targets`]. Each call builds fresh clients, so each worker has its own session cache.
pub(crate) fn clients(broker: &BrokerSettings) -> Result<Vec<Option<TlsClient>>, TlsConfigError> {
    let minter = minter(broker)?;
    broker
        .targets()
        .iter()
        .map(|url| match settings_for(broker, url) {
            Some(t) => client(&t, &url.host, minter.as_deref()).map(Some),
            None => Ok(None),
        })
        .collect()
}

/// `broker.tls.issue`: the minter of device certificates, from the CA files it names (`None`
/// without `issue`). Built once per worker; [`Minter::issue`] signs one certificate per connect.
pub(crate) fn minter(broker: &BrokerSettings) -> Result<Option<Arc<Minter>>, TlsConfigError> {
    let Some(t) = &broker.tls else {
        return Ok(None);
    };
    let ClientIdentity::Issue(spec) = &t.identity else {
        return Ok(None);
    };
    let (Some(cert), Some(key)) = (&spec.ca_cert, &spec.ca_key) else {
        return Err(err(
            t,
            "issue",
            "no CA to sign device certificates with".into(),
            "give `ca_cert` and `ca_key` (the CA your broker trusts for client certificates); only the embedded broker (no `broker.url`) makes its own CA",
        ));
    };
    Minter::from_ca_files(cert, key, spec.subject.as_str(), spec.valid)
        .map(|m| Some(Arc::new(m)))
        .map_err(|e| {
            err(
                t,
                "issue",
                e.to_string(),
                "`ca_cert` and `ca_key` must be the PEM certificate of a CA and its private key",
            )
        })
}

/// Whether any target verifies nothing (`insecure_skip_verify: true`).
pub(crate) fn insecure(broker: &BrokerSettings) -> bool {
    broker
        .targets()
        .iter()
        .any(|u| settings_for(broker, u).is_some_and(|t| t.insecure_skip_verify))
}

fn client(
    t: &TlsSettings,
    host: &str,
    minter: Option<&Minter>,
) -> Result<TlsClient, TlsConfigError> {
    let roots = match &t.ca {
        None => Roots::System,
        Some(path) => Roots::Certs(certs(path).map_err(|m| {
            err(
                t,
                "ca",
                m,
                "point `ca:` at the PEM file of the CA that signed the broker's certificate",
            )
        })?),
    };
    let options = TlsOptions {
        roots,
        server_name: t.server_name.clone().unwrap_or_else(|| host.to_owned()),
        alpn: t.alpn.iter().map(|a| a.as_bytes().to_vec()).collect(),
        tls12: t.versions.contains(&TlsVersion::V12),
        tls13: t.versions.contains(&TlsVersion::V13),
        insecure_skip_verify: t.insecure_skip_verify,
        resumption: t.resumption,
    };
    let fleet = match &t.identity {
        ClientIdentity::Files { cert, key } if !per_device(cert.as_str()) => Some(identity(
            t,
            Path::new(cert.as_str()),
            Path::new(key.as_str()),
        )?),
        ClientIdentity::Issue(_) => match minter {
            Some(m) => {
                let id = m.issue(MONITOR_IDENTITY).map_err(|e| {
                    err(
                        t,
                        "issue",
                        e.to_string(),
                        "check `broker.tls.issue` (subject, valid)",
                    )
                })?;
                Some((id.chain, id.key))
            }
            None => None,
        },
        _ => None,
    };
    TlsClient::new(options, fleet).map_err(|e| {
        err(
            t,
            "cert",
            e.to_string(),
            "check `broker.tls` (ca, server_name, cert/key: the key must belong to the certificate)",
        )
    })
}

fn per_device(template: &str) -> bool {
    template.contains('{')
}

/// Every certificate of a PEM file.
fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let list = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}` is not valid PEM: {e}", path.display()))?;
    if list.is_empty() {
        return Err(format!("`{}` holds no certificate", path.display()));
    }
    Ok(list)
}

/// A certificate chain and its key from PEM files.
fn identity(
    t: &TlsSettings,
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsConfigError> {
    let hint = "a PEM certificate (`cert`) and its PEM private key (`key`)";
    let chain = certs(cert).map_err(|m| err(t, "cert", m, hint))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        err(
            t,
            "key",
            format!("no usable private key in `{}`: {e}", key.display()),
            hint,
        )
    })?;
    Ok((chain, key))
}

/// The TLS client of one device: the target's, with the device's own certificate when `cert`/`key`
/// are per-device templates (read at each connect; rendered with the device's client id).
pub(crate) fn for_device(
    base: &TlsClient,
    broker: &BrokerSettings,
    minter: Option<&Minter>,
    vars: &crate::scenario::template::TemplateVars<'_>,
) -> Result<TlsClient, ConnectError> {
    let Some(t) = &broker.tls else {
        return Ok(base.clone());
    };
    match &t.identity {
        ClientIdentity::Issue(_) => {
            let fail = |detail: String| ConnectError::Tls {
                reason: TlsFailure::Other,
                detail,
            };
            let Some(m) = minter else {
                return Err(fail("no CA to mint device certificates with".into()));
            };
            let id = m.issue(vars.client_id).map_err(|e| fail(e.to_string()))?;
            base.with_identity(id.chain, id.key)
                .map_err(|e| fail(e.to_string()))
        }
        ClientIdentity::Files { cert, key } if per_device(cert.as_str()) => {
            let (c, k) = (cert.render(vars), key.render(vars));
            let fail = |e: String| ConnectError::Tls {
                reason: TlsFailure::Other,
                detail: e,
            };
            let (chain, key) =
                identity(t, Path::new(&c), Path::new(&k)).map_err(|e| fail(e.message))?;
            base.with_identity(chain, key)
                .map_err(|e| fail(e.to_string()))
        }
        _ => Ok(base.clone()),
    }
}

/// The TLS step of a connect on an open TCP stream (or nothing for a plain target).
pub(crate) async fn open(
    tcp: TcpStream,
    tls: Option<&TlsClient>,
    timeout: Duration,
) -> Result<(Transport, Option<TlsHandshake>), ConnectError> {
    match tls {
        None => Ok((Transport::Tcp(tcp), None)),
        Some(c) => {
            let (t, h) = tls_connect(tcp, c, timeout).await?;
            Ok((t, Some(h)))
        }
    }
}
