//! Certificates and private keys from PEM files, with errors that name the file and the reason, and
//! a check that a key belongs to its certificate.
//!
//! A file is read whole (certificate and key files are small) and parsed with rustls-pki-types'
//! [`PemObject`]; sections fleetstorm does not use (a CRL, a CSR) are ignored. A certificate and its
//! key may share one file.

use std::io;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::der::key_form;
use super::identity::Identity;

/// Why a certificate or key file cannot be used. Every variant names the file; none carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{}: file not found", path.display())]
    Missing { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{}: is a directory, not a PEM file", path.display())]
    Directory { path: PathBuf },
    #[error("{}: not valid PEM: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("{}: no certificate in it (expected a `-----BEGIN CERTIFICATE-----` block){found}", path.display())]
    NoCertificate { path: PathBuf, found: String },
    #[error("{}: no private key in it (expected `-----BEGIN PRIVATE KEY-----`, `EC PRIVATE KEY` or `RSA PRIVATE KEY`){found}", path.display())]
    NoKey { path: PathBuf, found: String },
    #[error("{}: the private key is encrypted; fleetstorm needs it unencrypted (e.g. `openssl pkey -in {} -out plain.key`)", path.display(), path.display())]
    EncryptedKey { path: PathBuf },
    #[error("{}: holds {count} private keys; give one key per file", path.display())]
    SeveralKeys { path: PathBuf, count: usize },
    #[error("{}: unsupported private key ({form}): {reason}; fleetstorm takes RSA, ECDSA P-256/P-384 and Ed25519 keys", path.display())]
    UnsupportedKey {
        path: PathBuf,
        form: &'static str,
        reason: String,
    },
    #[error("{}: certificate {index} is not a valid X.509 certificate: {reason}", path.display())]
    BadCertificate {
        path: PathBuf,
        /// 1-based position of the certificate in the file.
        index: usize,
        reason: String,
    },
    #[error("the private key in {} does not belong to the certificate in {} (their public keys differ); give the key the certificate was issued for", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

impl PemError {
    /// The file the error is about (the key file for a mismatch).
    pub fn path(&self) -> &Path {
        match self {
            PemError::Missing { path }
            | PemError::Unreadable { path, .. }
            | PemError::Directory { path }
            | PemError::Malformed { path, .. }
            | PemError::NoCertificate { path, .. }
            | PemError::NoKey { path, .. }
            | PemError::EncryptedKey { path }
            | PemError::SeveralKeys { path, .. }
            | PemError::UnsupportedKey { path, .. }
            | PemError::BadCertificate { path, .. } => path,
            PemError::KeyMismatch { key, .. } => key,
        }
    }
}

/// What a PEM file holds.
#[derive(Default)]
struct Contents {
    certs: Vec<CertificateDer<'static>>,
    keys: Vec<PrivateKeyDer<'static>>,
    /// Other recognised sections (public keys, CSRs, CRLs), for messages.
    other: Vec<&'static str>,
    encrypted_key: bool,
    looks_like_der: bool,
    /// `-----BEGIN` lines of blocks rustls-pki-types does not know (e.g. `TRUSTED CERTIFICATE`).
    unknown_blocks: usize,
}

impl Contents {
    /// "; it holds ..." for an error saying what was expected and not found.
    fn describe(&self) -> String {
        if self.looks_like_der {
            return "; it looks like binary DER: convert it with `openssl x509 -inform der -in FILE -out FILE.pem` (or `openssl pkey -inform der` for a key)".into();
        }
        let mut held = Vec::new();
        if !self.certs.is_empty() {
            held.push(format!("{} certificate(s)", self.certs.len()));
        }
        if !self.keys.is_empty() {
            held.push(format!("{} private key(s)", self.keys.len()));
        }
        if self.encrypted_key {
            held.push("an encrypted private key".into());
        }
        held.extend(self.other.iter().map(|s| (*s).to_owned()));
        if self.unknown_blocks > 0 {
            held.push(format!(
                "{} PEM block(s) of a kind fleetstorm does not read (e.g. `TRUSTED CERTIFICATE`)",
                self.unknown_blocks
            ));
        }
        let swapped = !self.certs.is_empty() || !self.keys.is_empty() || self.encrypted_key;
        match (held.is_empty(), swapped) {
            (true, _) => "; it holds no PEM block".into(),
            (false, true) => format!(
                "; it holds {} (are `cert` and `key` swapped?)",
                held.join(", ")
            ),
            (false, false) => format!("; it holds {}", held.join(", ")),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(PemError::Missing {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::IsADirectory || path.is_dir() => {
            Err(PemError::Directory {
                path: path.to_owned(),
            })
        }
        Err(source) => Err(PemError::Unreadable {
            path: path.to_owned(),
            source,
        }),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Contents, PemError> {
    let mut c = Contents {
        encrypted_key: contains(bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || contains(bytes, b"Proc-Type: 4,ENCRYPTED"),
        ..Contents::default()
    };
    if c.encrypted_key {
        // A legacy encrypted key (headers inside the block) does not parse as PEM at all.
        return Ok(c);
    }
    if !contains(bytes, b"-----BEGIN ") {
        c.looks_like_der = bytes.first() == Some(&0x30);
        return Ok(c);
    }
    for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
        let (kind, der) = item.map_err(|e| PemError::Malformed {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        match kind {
            SectionKind::Certificate => c.certs.push(CertificateDer::from(der)),
            SectionKind::PrivateKey => c.keys.push(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::EcPrivateKey => c.keys.push(PrivateKeyDer::Sec1(der.into())),
            SectionKind::RsaPrivateKey => c.keys.push(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::PublicKey => c.other.push("a public key (not a private key)"),
            SectionKind::Csr => c.other.push("a certificate request (not a certificate)"),
            SectionKind::Crl => c.other.push("a CRL"),
            _ => c.other.push("another PEM block"),
        }
    }
    let begins = bytes
        .windows(b"-----BEGIN ".len())
        .filter(|w| *w == b"-----BEGIN ")
        .count();
    c.unknown_blocks = begins.saturating_sub(c.certs.len() + c.keys.len() + c.other.len());
    Ok(c)
}

/// Every certificate in a PEM file, in file order (a chain: end-entity first; or a CA bundle).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let c = parse(path, &read(path)?)?;
    if c.certs.is_empty() {
        return Err(PemError::NoCertificate {
            path: path.to_owned(),
            found: c.describe(),
        });
    }
    Ok(c.certs)
}

/// The one private key in a PEM file (PKCS#8, SEC1 or PKCS#1), checked to be usable by rustls.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let mut c = parse(path, &read(path)?)?;
    if c.keys.is_empty() {
        if c.encrypted_key {
            return Err(PemError::EncryptedKey {
                path: path.to_owned(),
            });
        }
        return Err(PemError::NoKey {
            path: path.to_owned(),
            found: c.describe(),
        });
    }
    if c.keys.len() > 1 {
        return Err(PemError::SeveralKeys {
            path: path.to_owned(),
            count: c.keys.len(),
        });
    }
    let key = c.keys.swap_remove(0);
    if let Err(e) = rustls::crypto::ring::sign::any_supported_type(&key) {
        return Err(PemError::UnsupportedKey {
            path: path.to_owned(),
            form: key_form(&key),
            reason: e.to_string(),
        });
    }
    Ok(key)
}

/// Why a key and a certificate do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("the chain is empty")]
    NoCertificate,
    #[error("unsupported private key: {0}")]
    UnsupportedKey(String),
    #[error("the certificate does not parse: {0}")]
    BadCertificate(String),
    #[error("the key's public key differs from the certificate's")]
    Mismatch,
}

/// Check that `key` is the private key of `chain[0]`, comparing SubjectPublicKeyInfo (rustls'
/// `CertifiedKey::keys_match`). Keys whose public half rustls cannot derive are let through.
pub fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'_>,
) -> Result<(), MatchError> {
    if chain.is_empty() {
        return Err(MatchError::NoCertificate);
    }
    let signing = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|e| MatchError::UnsupportedKey(e.to_string()))?;
    match CertifiedKey::new(chain.to_vec(), signing).keys_match() {
        Ok(()) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(MatchError::Mismatch)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Ok(()),
        Err(e) => Err(MatchError::BadCertificate(e.to_string())),
    }
}

/// A certificate chain and its key from two PEM files (they may be the same file), checked to belong
/// together.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Identity, PemError> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    match check_key_matches(&chain, &key_der) {
        Ok(()) => Ok(Identity {
            chain,
            key: key_der,
        }),
        Err(MatchError::Mismatch) => Err(PemError::KeyMismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }),
        Err(MatchError::UnsupportedKey(reason)) => Err(PemError::UnsupportedKey {
            path: key.to_owned(),
            form: key_form(&key_der),
            reason,
        }),
        Err(MatchError::BadCertificate(reason)) => Err(PemError::BadCertificate {
            path: cert.to_owned(),
            index: 1,
            reason,
        }),
        Err(MatchError::NoCertificate) => Err(PemError::NoCertificate {
            path: cert.to_owned(),
            found: String::new(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Per-device files from a template

/// Which of a device's two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    Certificate,
    Key,
}

impl FileRole {
    fn name(self) -> &'static str {
        match self {
            FileRole::Certificate => "certificate",
            FileRole::Key => "key",
        }
    }
}

/// One device whose certificate or key file is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingFile {
    /// The device's position in the order the files were given (0-based).
    pub index: usize,
    pub client_id: String,
    pub role: FileRole,
    pub path: PathBuf,
    /// "does not exist", "is a directory", or the stat error.
    pub reason: String,
}

/// Why a fleet's per-device certificate files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateFilesError {
    /// Some files are missing: the first few, in device order, and how many in all.
    #[error("{}", missing_message(.devices, .total, .first))]
    Missing {
        devices: usize,
        total: usize,
        first: Vec<MissingFile>,
    },
    /// Every file is there, but the first device's pair does not load.
    #[error("device `{client_id}`: {source}")]
    Sample {
        client_id: String,
        #[source]
        source: PemError,
    },
}

fn missing_message(devices: &usize, total: &usize, first: &[MissingFile]) -> String {
    let mut s =
        format!("{total} certificate/key file(s) missing for a fleet of {devices} device(s)");
    for m in first {
        s.push_str(&format!(
            "\n  device `{}` (#{}): {} {}: {}",
            m.client_id,
            m.index,
            m.role.name(),
            m.path.display(),
            m.reason
        ));
    }
    if *total > first.len() {
        s.push_str(&format!("\n  ... and {} more", total - first.len()));
    }
    s
}

/// Above this many devices the files are checked on several threads.
const PARALLEL_ABOVE: usize = 4096;

/// The paths of one device's files, as the caller renders them from its templates.
pub struct DeviceFiles {
    pub client_id: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn stat_problem(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Some("is a directory".into()),
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some("does not exist".into()),
        Err(e) => Some(format!("cannot stat: {e}")),
    }
}

/// Check devices `range`: the first `show` problems in it and how many in all. A path equal to the
/// previous device's (a template that does not vary) is checked once.
fn check_range(
    range: std::ops::Range<usize>,
    files: &(dyn Fn(usize) -> DeviceFiles + Sync),
    show: usize,
) -> (Vec<MissingFile>, usize) {
    let mut first = Vec::new();
    let mut total = 0;
    let mut last: [(PathBuf, Option<String>); 2] = Default::default();
    for i in range {
        let d = files(i);
        for (slot, role, path) in [
            (0, FileRole::Certificate, d.cert),
            (1, FileRole::Key, d.key),
        ] {
            let Some(prev) = last.get_mut(slot) else {
                continue;
            };
            if prev.0.as_os_str().is_empty() || prev.0 != path {
                *prev = (path.clone(), stat_problem(&path));
            }
            if let Some(reason) = &prev.1 {
                total += 1;
                if first.len() < show {
                    first.push(MissingFile {
                        index: i,
                        client_id: d.client_id.clone(),
                        role,
                        path,
                        reason: reason.clone(),
                    });
                }
            }
        }
    }
    (first, total)
}

/// Check that every device's certificate and key file exists (one `stat` each, on several threads for a
/// large fleet; a file shared by consecutive devices is checked once), then load the first device's
/// pair in full so a wrong file type or a mismatched key is found before anything connects.
///
/// `files(i)` renders device `i`'s paths (`i` in `0..devices`). On failure the error lists the first
/// `show` missing files in device order, with the device they belong to, and how many are missing.
pub fn check_device_files(
    devices: usize,
    files: &(dyn Fn(usize) -> DeviceFiles + Sync),
    show: usize,
) -> Result<(), TemplateFilesError> {
    let threads = if devices > PARALLEL_ABOVE {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    } else {
        1
    };
    let (mut first, total) = if threads <= 1 {
        check_range(0..devices, files, show)
    } else {
        let chunk = devices.div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let start = (t * chunk).min(devices);
                    let end = ((t + 1) * chunk).min(devices);
                    s.spawn(move || check_range(start..end, files, show))
                })
                .collect();
            let mut first = Vec::new();
            let mut total = 0;
            for h in handles {
                // A panicking renderer is the caller's bug; count its range as unchecked.
                if let Ok((f, n)) = h.join() {
                    first.extend(f);
                    total += n;
                }
            }
            (first, total)
        })
    };
    if total > 0 {
        first.sort_by_key(|m| (m.index, m.role == FileRole::Key));
        first.truncate(show);
        return Err(TemplateFilesError::Missing {
            devices,
            total,
            first,
        });
    }
    if devices > 0 {
        let d = files(0);
        load_identity(&d.cert, &d.key).map_err(|source| TemplateFilesError::Sample {
            client_id: d.client_id,
            source,
        })?;
    }
    Ok(())
}

/// `-----BEGIN label-----`, base64 in 64-column lines, `-----END label-----`.
pub fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        s.push_str(line);
        s.push('\n');
        rest = tail;
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tls/testdata");

    fn data(name: &str) -> PathBuf {
        Path::new(TESTDATA).join(name)
    }

    /// A device certificate signed by a CA, both made here (not by the minter, which builds on this
    /// module): the chain is leaf then CA.
    fn minted() -> Identity {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "pem test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "dev-0");
        let key = KeyPair::generate().unwrap();
        let cert = leaf
            .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
            .unwrap();
        Identity {
            chain: vec![cert.der().clone(), ca_cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }

    fn chain_pem(id: &Identity) -> String {
        id.chain
            .iter()
            .map(|c| pem_block("CERTIFICATE", c))
            .collect()
    }

    fn key_pem(id: &Identity) -> String {
        pem_block("PRIVATE KEY", id.key.secret_der())
    }

    #[test]
    fn a_chain_and_its_key_load_and_match() {
        let dir = tempfile::tempdir().unwrap();
        let id = minted();
        let (c, k) = (dir.path().join("d.crt"), dir.path().join("d.key"));
        std::fs::write(&c, chain_pem(&id)).unwrap();
        std::fs::write(&k, key_pem(&id)).unwrap();
        let got = load_identity(&c, &k).unwrap();
        assert_eq!(got.chain, id.chain);
        assert_eq!(got.key.secret_der(), id.key.secret_der());
        // One file holding both works too.
        let both = dir.path().join("both.pem");
        std::fs::write(&both, format!("{}{}", chain_pem(&id), key_pem(&id))).unwrap();
        assert_eq!(load_identity(&both, &both).unwrap().chain.len(), 2);
    }

    #[test]
    fn sec1_and_pkcs1_keys_load() {
        let ca = load_certs(&data("ec-ca.crt")).unwrap();
        let key = load_key(&data("ec-ca.key")).unwrap();
        assert!(matches!(key, PrivateKeyDer::Sec1(_)));
        check_key_matches(&ca, &key).unwrap();
        let rsa = load_identity(&data("rsa-ca.crt"), &data("rsa-ca.key")).unwrap();
        assert!(matches!(rsa.key, PrivateKeyDer::Pkcs1(_)));
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch_naming_both_files() {
        let e = load_identity(&data("rsa-ca.crt"), &data("ec-ca.key")).unwrap_err();
        assert!(matches!(e, PemError::KeyMismatch { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("ec-ca.key")
                && msg.contains("rsa-ca.crt")
                && msg.contains("does not belong"),
            "{msg}"
        );
        assert_eq!(e.path(), data("ec-ca.key"));
    }

    #[test]
    fn each_unusable_file_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("empty.pem"), "").unwrap();
        std::fs::write(p("text.pem"), "hello\n").unwrap();
        std::fs::write(
            p("trusted.pem"),
            "-----BEGIN TRUSTED CERTIFICATE-----\nMIIB\n-----END TRUSTED CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(p("der.crt"), minted().chain[0].as_ref()).unwrap();
        std::fs::write(p("broken.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        std::fs::write(
            p("two-keys.pem"),
            format!("{}{}", key_pem(&minted()), key_pem(&minted())),
        )
        .unwrap();
        std::fs::write(
            p("pub.pem"),
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        std::fs::write(
            p("bad-key.pem"),
            pem_block("PRIVATE KEY", b"\x30\x03\x02\x01\x00"),
        )
        .unwrap();

        let cases: Vec<(PemError, &str)> = vec![
            (
                load_certs(&p("absent.crt")).unwrap_err(),
                "absent.crt: file not found",
            ),
            (load_certs(dir.path()).unwrap_err(), "is a directory"),
            (
                load_certs(&p("empty.pem")).unwrap_err(),
                "no certificate in it",
            ),
            (
                load_certs(&p("text.pem")).unwrap_err(),
                "holds no PEM block",
            ),
            (
                load_certs(&p("der.crt")).unwrap_err(),
                "looks like binary DER",
            ),
            (load_certs(&p("broken.pem")).unwrap_err(), "not valid PEM"),
            (
                load_certs(&data("ec-ca.key")).unwrap_err(),
                "1 private key(s) (are `cert` and `key` swapped?)",
            ),
            (
                load_key(&data("ec-ca.crt")).unwrap_err(),
                "no private key in it",
            ),
            (
                load_key(&p("pub.pem")).unwrap_err(),
                "a public key (not a private key)",
            ),
            (
                load_key(&p("two-keys.pem")).unwrap_err(),
                "holds 2 private keys",
            ),
            (
                load_key(&p("bad-key.pem")).unwrap_err(),
                "unsupported private key (PKCS#8 `PRIVATE KEY`)",
            ),
            (
                load_key(&data("encrypted-pkcs8.key")).unwrap_err(),
                "the private key is encrypted",
            ),
            (
                load_key(&data("encrypted-legacy.key")).unwrap_err(),
                "the private key is encrypted",
            ),
        ];
        for (e, want) in cases {
            let msg = e.to_string();
            assert!(msg.contains(want), "want `{want}` in: {msg}");
            assert!(
                msg.contains(&e.path().display().to_string()),
                "names the file: {msg}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn an_unreadable_file_is_not_called_missing() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("locked.key");
        std::fs::write(&f, key_pem(&minted())).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
        match load_key(&f) {
            // root reads anything: nothing to check then.
            Ok(_) => {}
            Err(e) => {
                assert!(matches!(e, PemError::Unreadable { .. }), "{e}");
                assert!(e.to_string().contains("cannot read"), "{e}");
            }
        }
    }

    #[test]
    fn errors_never_carry_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let id = minted();
        let k = dir.path().join("k.pem");
        std::fs::write(&k, key_pem(&id)).unwrap();
        let e = load_identity(&data("rsa-ca.crt"), &k).unwrap_err();
        let shown = format!("{e} {e:?}");
        let pem = key_pem(&id);
        let body = pem.lines().nth(1).unwrap();
        assert!(!shown.contains(body), "{shown}");
    }

    fn fleet(dir: &Path, n: usize, skip: &[usize]) -> Vec<String> {
        let id = minted();
        let (c, k) = (chain_pem(&id), key_pem(&id));
        let ids: Vec<String> = (0..n).map(|i| format!("dev-{i}")).collect();
        for (i, cid) in ids.iter().enumerate() {
            if !skip.contains(&i) {
                std::fs::write(dir.join(format!("{cid}.crt")), &c).unwrap();
            }
            std::fs::write(dir.join(format!("{cid}.key")), &k).unwrap();
        }
        ids
    }

    #[test]
    fn a_complete_fleet_of_files_passes() {
        let dir = tempfile::tempdir().unwrap();
        let ids = fleet(dir.path(), 20, &[]);
        let files = |i: usize| DeviceFiles {
            client_id: ids[i].clone(),
            cert: dir.path().join(format!("{}.crt", ids[i])),
            key: dir.path().join(format!("{}.key", ids[i])),
        };
        check_device_files(ids.len(), &files, 3).unwrap();
    }

    #[test]
    fn the_first_missing_files_are_named_with_their_device() {
        let dir = tempfile::tempdir().unwrap();
        let ids = fleet(dir.path(), 30, &[4, 9, 17, 25]);
        let files = |i: usize| DeviceFiles {
            client_id: ids[i].clone(),
            cert: dir.path().join(format!("{}.crt", ids[i])),
            key: dir.path().join(format!("{}.key", ids[i])),
        };
        let e = check_device_files(ids.len(), &files, 3).unwrap_err();
        let TemplateFilesError::Missing {
            devices,
            total,
            first,
        } = &e
        else {
            panic!("{e}");
        };
        assert_eq!((*devices, *total), (30, 4));
        let firsts: Vec<(usize, &str)> = first
            .iter()
            .map(|m| (m.index, m.client_id.as_str()))
            .collect();
        assert_eq!(firsts, [(4, "dev-4"), (9, "dev-9"), (17, "dev-17")]);
        assert!(first
            .iter()
            .all(|m| m.role == FileRole::Certificate && m.reason == "does not exist"));
        let msg = e.to_string();
        assert!(
            msg.starts_with("4 certificate/key file(s) missing for a fleet of 30 device(s)"),
            "{msg}"
        );
        assert!(msg.contains("device `dev-4` (#4): certificate "), "{msg}");
        assert!(msg.contains("dev-4.crt: does not exist"), "{msg}");
        assert!(msg.contains("... and 1 more"), "{msg}");
    }

    #[test]
    fn a_large_fleet_is_checked_on_threads_and_keeps_device_order() {
        // Above PARALLEL_ABOVE devices, one shared (present) key and per-device certificates of which
        // only a few exist: the first missing must still come in device order across threads.
        let dir = tempfile::tempdir().unwrap();
        let id = minted();
        let key = dir.path().join("shared.key");
        std::fs::write(&key, key_pem(&id)).unwrap();
        let present = [0usize, 1, 2];
        for i in present {
            std::fs::write(dir.path().join(format!("c{i}.crt")), chain_pem(&id)).unwrap();
        }
        let n = PARALLEL_ABOVE * 2 + 7;
        let files = |i: usize| DeviceFiles {
            client_id: format!("d{i}"),
            cert: dir.path().join(format!("c{i}.crt")),
            key: key.clone(),
        };
        let e = check_device_files(n, &files, 5).unwrap_err();
        let TemplateFilesError::Missing { total, first, .. } = &e else {
            panic!("{e}");
        };
        assert_eq!(*total, n - present.len());
        let idx: Vec<usize> = first.iter().map(|m| m.index).collect();
        assert_eq!(idx, [3, 4, 5, 6, 7]);
    }

    #[test]
    fn present_files_of_the_wrong_kind_are_caught_by_the_sample_load() {
        let dir = tempfile::tempdir().unwrap();
        let ids = fleet(dir.path(), 3, &[]);
        // Device 0's key file holds a certificate.
        std::fs::write(dir.path().join("dev-0.key"), chain_pem(&minted())).unwrap();
        let files = |i: usize| DeviceFiles {
            client_id: ids[i].clone(),
            cert: dir.path().join(format!("{}.crt", ids[i])),
            key: dir.path().join(format!("{}.key", ids[i])),
        };
        let e = check_device_files(3, &files, 3).unwrap_err();
        assert!(matches!(e, TemplateFilesError::Sample { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with("device `dev-0`: ") && msg.contains("no private key in it"),
            "{msg}"
        );
    }
}
