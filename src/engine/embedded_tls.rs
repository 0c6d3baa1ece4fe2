//! Zero-setup TLS: with `broker.tls` and no broker URL, the embedded broker listens behind a TLS front
//! whose CA is generated at start. The run then connects as to any `mqtts://` broker: the CA's
//! certificate (and, to mint device certificates when `issue:` names no CA, its key) is written to a
//! private directory that `broker.tls` is pointed at, read by this process and its worker processes.

use std::path::{Path, PathBuf};

use super::options::EngineError;
use crate::broker::{self, EmbeddedLimits};
use crate::scenario::{BrokerUrl, ClientIdentity, MqttVersion, Scenario, Transport};
use crate::tls::LocalCa;

/// Worker processes find the parent's CA files in the directory this environment variable names.
pub const DIR_ENV: &str = "FLEETSTORM_EMBEDDED_TLS_DIR";

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";

/// The embedded broker's TLS front for this run; the CA files are removed when it is dropped (the
/// broker itself lives as long as the process).
#[derive(Debug)]
pub struct EmbeddedTls {
    dir: PathBuf,
    _front: broker::EmbeddedTls,
}

impl EmbeddedTls {
    /// The directory of the CA files (for [`DIR_ENV`]).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for EmbeddedTls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `scenario` asks for the embedded broker with TLS (`broker.tls` and no URL).
pub fn wanted(scenario: &Scenario) -> bool {
    let b = &scenario.broker;
    b.tls.is_some() && b.targets().is_empty()
}

/// Start the embedded broker behind TLS and point `scenario.broker` at it: `url` becomes its
/// `mqtts://` front, `tls.ca` its generated CA, and `issue:` without a CA mints with that CA (the
/// front then requires client certificates signed by it). `None` when `scenario` names a broker.
pub fn start(scenario: &mut Scenario) -> Result<Option<EmbeddedTls>, EngineError> {
    if !wanted(scenario) {
        return Ok(None);
    }
    let fail = |e: &dyn std::fmt::Display| EngineError::EmbeddedTls(e.to_string());
    let limits = EmbeddedLimits::default();
    let plain = broker::start_embedded(limits)?;
    let ca = LocalCa::generate().map_err(|e| fail(&e))?;
    let dir = private_dir().map_err(|e| fail(&e))?;
    write_private(&dir.join(CA_CERT), &ca.cert_pem()).map_err(|e| fail(&e))?;
    let mut client_ca = None;
    if let Some(ClientIdentity::Issue(spec)) = scenario.broker.tls.as_ref().map(|t| &t.identity) {
        match &spec.ca_cert {
            // the user's CA signs the devices: the front trusts it
            Some(path) => {
                client_ca = Some(crate::tls::pem::load_certs(path).map_err(|e| fail(&e))?);
            }
            None => {
                write_private(&dir.join(CA_KEY), &ca.ca().key_pem()).map_err(|e| fail(&e))?;
                client_ca = Some(vec![ca.cert_der().clone()]);
            }
        }
    }
    let front = broker::start_embedded_tls(&plain, ca, client_ca, limits)?;
    let addr = match scenario.broker.protocol {
        MqttVersion::V311 => front.v4.addr(),
        MqttVersion::V5 => front.v5.addr(),
    };
    scenario.broker.url = Some(BrokerUrl {
        scheme: "mqtts".into(),
        transport: Transport::Tls,
        host: addr.ip().to_string(),
        port: addr.port(),
        path: String::new(),
    });
    adopt(scenario, &dir);
    Ok(Some(EmbeddedTls { dir, _front: front }))
}

/// In a worker process of a zero-setup TLS run (its `--broker` is the parent's front): point
/// `broker.tls` at the parent's CA files in `dir`.
pub fn adopt(scenario: &mut Scenario, dir: &Path) {
    scenario.broker.embedded_tls = true;
    let Some(tls) = scenario.broker.tls.as_mut() else {
        return;
    };
    tls.ca = Some(dir.join(CA_CERT));
    if let ClientIdentity::Issue(spec) = &mut tls.identity {
        if spec.ca_cert.is_none() {
            spec.ca_cert = Some(dir.join(CA_CERT));
            spec.ca_key = Some(dir.join(CA_KEY));
        }
    }
}

/// A new directory under the system's temporary directory that only this user can enter.
fn private_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let dir = base.join(format!(
            "fleetstorm-tls-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        match b.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary directory name"))
}

/// Write `text` to a new file only this user can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)?.write_all(text.as_bytes())
}
