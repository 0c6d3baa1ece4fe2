//! Certificates minted by fleetstorm: per-device client certificates signed by a CA the user gives
//! (`broker.tls.issue`) or by one fleetstorm generates, and the embedded broker's zero-setup CA and
//! server certificate.
//!
//! Device keys are ECDSA P-256 (fast to generate and to sign with). A [`Minter`] is `Send + Sync`:
//! worker threads share one behind an `Arc` and mint lazily at a device's first connect.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use time::OffsetDateTime;

use super::der::{basic_constraints_ca, key_form, rcgen_key_pair};
use super::identity::Identity;
use super::pem::{self, pem_block, MatchError, PemError};

/// How far back a minted certificate's validity starts, so a broker whose clock is a little behind
/// ours still accepts it.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Lifetime of a CA and server certificate fleetstorm generates for itself.
const LOCAL_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// The names the embedded broker's server certificate is valid for.
pub const LOCAL_SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Why a certificate cannot be minted or a CA cannot be used for minting. No variant carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("{}: the CA key is not one fleetstorm can sign with ({form}); use an ECDSA P-256/P-384, RSA or Ed25519 key", path.display())]
    UnsupportedCaKey { path: PathBuf, form: &'static str },
    #[error("the CA key in {} does not belong to the CA certificate in {} (their public keys differ)", key.display(), cert.display())]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{}: not a CA certificate (its basicConstraints say CA:FALSE); give the certificate of the CA that signs device certificates", path.display())]
    NotACa { path: PathBuf },
    #[error("{}: cannot read the CA certificate's subject: {reason}", path.display())]
    CaCertificate { path: PathBuf, reason: String },
    #[error("{}: a certificate signed with this CA does not verify against it ({reason}); is it a CA certificate (basicConstraints CA:TRUE, keyCertSign) that has not expired?", path.display())]
    CaUnusable { path: PathBuf, reason: String },
    #[error("subject `{subject}`: {reason}")]
    Subject { subject: String, reason: String },
    #[error("validity {0:?} is out of range (give a duration between 1s and 100 years)")]
    Validity(Duration),
    #[error("cannot generate or sign a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

// ---------------------------------------------------------------------------------------------
// Subject template

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    ClientId,
}

/// A subject such as `CN={client_id},O=fleetstorm`: comma-separated `ATTR=value` pairs (CN, O, OU, C,
/// ST, L; `\,` is a literal comma), where `{client_id}` is replaced by the device's client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    source: String,
    attrs: Vec<(DnType, Vec<Piece>)>,
}

const ATTRS: [(&str, DnType); 6] = [
    ("CN", DnType::CommonName),
    ("O", DnType::OrganizationName),
    ("OU", DnType::OrganizationalUnitName),
    ("C", DnType::CountryName),
    ("ST", DnType::StateOrProvinceName),
    ("L", DnType::LocalityName),
];

impl SubjectTemplate {
    pub fn parse(source: &str) -> Result<SubjectTemplate, MintError> {
        let err = |reason: String| MintError::Subject {
            subject: source.to_owned(),
            reason,
        };
        // Split on unescaped commas.
        let mut parts = vec![String::new()];
        let mut chars = source.chars();
        while let Some(ch) = chars.next() {
            match ch {
                '\\' => match chars.next() {
                    Some(next) => {
                        if let Some(p) = parts.last_mut() {
                            p.push(next);
                        }
                    }
                    None => return Err(err("ends with a lone `\\`".into())),
                },
                ',' => parts.push(String::new()),
                c => {
                    if let Some(p) = parts.last_mut() {
                        p.push(c);
                    }
                }
            }
        }
        let mut attrs = Vec::new();
        for part in &parts {
            let Some((name, value)) = part.split_once('=') else {
                return Err(err(format!(
                    "`{}` is not ATTR=value (e.g. `CN={{client_id}}`)",
                    part.trim()
                )));
            };
            let name = name.trim();
            let Some((_, ty)) = ATTRS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
                return Err(err(format!(
                    "unknown attribute `{name}`; known: CN, O, OU, C, ST, L"
                )));
            };
            let pieces = pieces(value.trim()).map_err(err)?;
            if pieces.is_empty() {
                return Err(err(format!("`{name}` has an empty value")));
            }
            attrs.push((ty.clone(), pieces));
        }
        if !attrs.iter().any(|(t, _)| *t == DnType::CommonName) {
            return Err(err(
                "no CN: brokers map the certificate's CN to the device (e.g. `CN={client_id}`)"
                    .into(),
            ));
        }
        Ok(SubjectTemplate {
            source: source.to_owned(),
            attrs,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the subject differs per device (names `{client_id}`).
    pub fn per_device(&self) -> bool {
        self.attrs.iter().any(|(_, p)| p.contains(&Piece::ClientId))
    }

    /// The subject of `client_id`'s certificate.
    pub fn render(&self, client_id: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        for (ty, pieces) in &self.attrs {
            let mut v = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => v.push_str(t),
                    Piece::ClientId => v.push_str(client_id),
                }
            }
            dn.push(ty.clone(), v);
        }
        dn
    }
}

fn pieces(value: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let (text, after) = rest.split_at(open);
        if !text.is_empty() {
            out.push(Piece::Text(text.to_owned()));
        }
        let Some(close) = after.find('}') else {
            return Err("unclosed `{`".into());
        };
        let name = after.get(1..close).unwrap_or("");
        if name != "client_id" {
            return Err(format!(
                "unknown placeholder `{{{name}}}`; a subject may use {{client_id}}"
            ));
        }
        out.push(Piece::ClientId);
        rest = after.get(close + 1..).unwrap_or("");
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Certificate authority

struct CaInner {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
}

/// A CA that signs certificates: the user's (`ca_cert` + `ca_key`) or one fleetstorm generates.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct CertificateAuthority {
    inner: Arc<CaInner>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert", &format_args!("{} bytes", self.inner.cert.len()))
            .field("key", &"[secret]")
            .finish()
    }
}

fn window(valid: Duration) -> Result<(OffsetDateTime, OffsetDateTime), MintError> {
    const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    if valid.is_zero() || valid > MAX {
        return Err(MintError::Validity(valid));
    }
    let now = OffsetDateTime::now_utc();
    let valid_t = time::Duration::try_from(valid).map_err(|_| MintError::Validity(valid))?;
    let back = time::Duration::try_from(BACKDATE).map_err(|_| MintError::Validity(valid))?;
    let not_after = now.checked_add(valid_t).ok_or(MintError::Validity(valid))?;
    let not_before = now.checked_sub(back).ok_or(MintError::Validity(valid))?;
    Ok((not_before, not_after))
}

impl CertificateAuthority {
    /// A CA from the user's PEM files. The key must belong to the certificate, and a certificate signed
    /// with it must verify against it (so a leaf certificate given as CA, an expired CA or one without
    /// keyCertSign is refused now rather than at every handshake).
    pub fn from_files(cert: &Path, key: &Path) -> Result<CertificateAuthority, MintError> {
        let chain = pem::load_certs(cert)?;
        let key_der = pem::load_key(key)?;
        match pem::check_key_matches(&chain, &key_der) {
            Ok(()) => {}
            Err(MatchError::Mismatch) => {
                return Err(MintError::CaKeyMismatch {
                    cert: cert.to_owned(),
                    key: key.to_owned(),
                })
            }
            Err(e) => {
                return Err(MintError::CaCertificate {
                    path: cert.to_owned(),
                    reason: e.to_string(),
                })
            }
        }
        let Some(ca_cert) = chain.into_iter().next() else {
            return Err(MintError::CaCertificate {
                path: cert.to_owned(),
                reason: "no certificate".into(),
            });
        };
        if basic_constraints_ca(&ca_cert) == Some(false) {
            return Err(MintError::NotACa {
                path: cert.to_owned(),
            });
        }
        let signing = rcgen_key_pair(&key_der).ok_or(MintError::UnsupportedCaKey {
            path: key.to_owned(),
            form: key_form(&key_der),
        })?;
        let issuer =
            Issuer::from_ca_cert_der(&ca_cert, signing).map_err(|e| MintError::CaCertificate {
                path: cert.to_owned(),
                reason: e.to_string(),
            })?;
        let ca = CertificateAuthority {
            inner: Arc::new(CaInner {
                issuer,
                cert: ca_cert,
            }),
        };
        ca.self_test().map_err(|reason| MintError::CaUnusable {
            path: cert.to_owned(),
            reason,
        })?;
        Ok(ca)
    }

    /// A fresh CA (ECDSA P-256, valid 30 days), its key only in memory. Its CN is `name` and a random
    /// suffix: two generated CAs never share a subject, so a peer trusting the wrong one reports an
    /// unknown issuer rather than a bad signature.
    pub fn generate(name: &str) -> Result<CertificateAuthority, MintError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("{name} {:08x}", rand::random::<u32>()),
        );
        dn.push(DnType::OrganizationName, "fleetstorm");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (params.not_before, params.not_after) = window(LOCAL_VALIDITY)?;
        let cert = params.self_signed(&key)?;
        Ok(CertificateAuthority {
            inner: Arc::new(CaInner {
                issuer: Issuer::new(params, key),
                cert: cert.der().clone(),
            }),
        })
    }

    /// The CA certificate (what a peer must trust).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.inner.cert
    }

    /// The CA certificate as PEM (to write next to a report, or for `openssl s_client -CAfile`).
    pub fn cert_pem(&self) -> String {
        pem_block("CERTIFICATE", &self.inner.cert)
    }

    /// The CA's private key as PKCS#8 PEM. A secret: only for a file only this user can read, so that
    /// worker processes of the same run can sign with a CA generated at start.
    pub fn key_pem(&self) -> String {
        self.inner.issuer.key().serialize_pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by this CA: chain is
    /// leaf + CA.
    pub fn server_identity(&self, names: &[&str], valid: Duration) -> Result<Identity, MintError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName((*n).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("fleetstorm"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = window(valid)?;
        self.sign(params, key)
    }

    /// A minter of device certificates signed by this CA.
    pub fn minter(&self, subject: &str, valid: Duration) -> Result<Minter, MintError> {
        window(valid)?;
        Ok(Minter {
            ca: self.clone(),
            subject: SubjectTemplate::parse(subject)?,
            valid,
        })
    }

    fn sign(&self, params: CertificateParams, key: KeyPair) -> Result<Identity, MintError> {
        let cert = params.signed_by(&key, &self.inner.issuer)?;
        Ok(Identity {
            chain: vec![cert.der().clone(), self.inner.cert.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// Mint a client certificate and verify it against this CA as a broker would.
    fn self_test(&self) -> Result<(), String> {
        let m = self
            .minter("CN=fleetstorm-self-test", Duration::from_secs(3600))
            .map_err(|e| e.to_string())?;
        let id = m.issue("fleetstorm-self-test").map_err(|e| e.to_string())?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.inner.cert.clone())
            .map_err(|e| e.to_string())?;
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            super::identity::provider(),
        )
        .build()
        .map_err(|e| e.to_string())?;
        let (leaf, rest) = id.chain.split_first().ok_or("no certificate minted")?;
        verifier
            .verify_client_cert(leaf, rest, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Minter

/// Issues per-device client certificates: subject from a template, ECDSA P-256 key, signed by a CA.
/// `Send + Sync`; share it behind an `Arc` and call [`Minter::issue`] from any thread.
#[derive(Clone, Debug)]
pub struct Minter {
    ca: CertificateAuthority,
    subject: SubjectTemplate,
    valid: Duration,
}

impl Minter {
    /// A minter signing with the user's CA (`broker.tls.issue.ca_cert` / `ca_key`).
    pub fn from_ca_files(
        ca_cert: &Path,
        ca_key: &Path,
        subject: &str,
        valid: Duration,
    ) -> Result<Minter, MintError> {
        CertificateAuthority::from_files(ca_cert, ca_key)?.minter(subject, valid)
    }

    /// A minter signing with a CA fleetstorm generates (trust it with [`Minter::ca`]).
    pub fn self_generated(subject: &str, valid: Duration) -> Result<Minter, MintError> {
        CertificateAuthority::generate("fleetstorm device CA")?.minter(subject, valid)
    }

    /// The CA that signs (its certificate is what a broker must trust for client certificates).
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    pub fn subject(&self) -> &SubjectTemplate {
        &self.subject
    }

    /// A new key and a client certificate for `client_id`: chain is leaf + CA, key is PKCS#8. The leaf
    /// is valid from a few minutes ago for the minter's validity, for TLS client authentication.
    pub fn issue(&self, client_id: &str) -> Result<Identity, MintError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = self.subject.render(client_id);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = window(self.valid)?;
        self.ca.sign(params, key)
    }
}

// ---------------------------------------------------------------------------------------------
// Zero-setup material for the embedded broker

/// What the embedded broker's TLS front serves with no setup: a CA generated at start and a server
/// certificate from it for `localhost`, `127.0.0.1` and `::1`. The run trusts [`LocalCa::ca`]'s
/// certificate; for zero-setup mTLS the same CA mints the devices' certificates ([`LocalCa::minter`]).
#[derive(Clone, Debug)]
pub struct LocalCa {
    ca: CertificateAuthority,
    server: Identity,
}

impl LocalCa {
    pub fn generate() -> Result<LocalCa, MintError> {
        let ca = CertificateAuthority::generate("fleetstorm embedded broker CA")?;
        let server = ca.server_identity(&LOCAL_SERVER_NAMES, LOCAL_VALIDITY)?;
        Ok(LocalCa { ca, server })
    }

    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The CA certificate the run must trust.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        self.ca.cert_der()
    }

    pub fn cert_pem(&self) -> String {
        self.ca.cert_pem()
    }

    /// The server certificate chain and key the TLS front serves.
    pub fn server(&self) -> &Identity {
        &self.server
    }

    /// Device certificates from this CA (zero-setup mTLS: the front requires client certificates
    /// signed by [`LocalCa::cert_der`]).
    pub fn minter(&self, subject: &str, valid: Duration) -> Result<Minter, MintError> {
        self.ca.minter(subject, valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier as _;

    const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tls/testdata");

    fn data(name: &str) -> PathBuf {
        Path::new(TESTDATA).join(name)
    }

    fn verify(ca: &CertificateDer<'static>, id: &Identity) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let v =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
                .build()
                .unwrap();
        let (leaf, rest) = id.chain.split_first().unwrap();
        v.verify_client_cert(leaf, rest, UnixTime::now())
            .map(|_| ())
    }

    /// Whether `cert` holds the name attribute `2.5.4.<attr>` = `value` as a UTF8String (CN is 3,
    /// O is 10), as rcgen writes subjects.
    fn has_attr(cert: &CertificateDer<'_>, attr: u8, value: &str) -> bool {
        let mut needle = vec![0x06, 0x03, 0x55, 0x04, attr, 0x0c, value.len() as u8];
        needle.extend_from_slice(value.as_bytes());
        cert.windows(needle.len()).any(|w| w == needle)
    }

    fn common_name_is(cert: &CertificateDer<'_>, value: &str) -> bool {
        has_attr(cert, 3, value)
    }

    #[test]
    fn minter_is_send_and_sync() {
        fn both<T: Send + Sync>() {}
        both::<Minter>();
        both::<LocalCa>();
        both::<CertificateAuthority>();
    }

    #[test]
    fn a_self_generated_minter_issues_one_verified_identity_per_device() {
        let m = Minter::self_generated("CN={client_id},O=fleetstorm", Duration::from_secs(86400))
            .unwrap();
        let a = m.issue("plant-a-0").unwrap();
        let b = m.issue("plant-a-1").unwrap();
        assert_eq!(a.chain.len(), 2, "leaf + CA");
        assert_eq!(&a.chain[1], m.ca().cert_der());
        assert!(common_name_is(&a.chain[0], "plant-a-0"));
        assert!(common_name_is(&b.chain[0], "plant-a-1"));
        assert!(!common_name_is(&b.chain[0], "plant-a-0"));
        assert!(has_attr(&a.chain[0], 10, "fleetstorm"));
        assert_ne!(
            a.key.secret_der(),
            b.key.secret_der(),
            "a fresh key per device"
        );
        verify(m.ca().cert_der(), &a).unwrap();
        verify(m.ca().cert_der(), &b).unwrap();
        crate::tls::pem::check_key_matches(&a.chain, &a.key).unwrap();
        assert_eq!(
            crate::tls::pem::check_key_matches(&a.chain, &b.key),
            Err(MatchError::Mismatch)
        );
    }

    #[test]
    fn a_certificate_from_another_ca_does_not_verify() {
        let m1 = Minter::self_generated("CN={client_id}", Duration::from_secs(600)).unwrap();
        let m2 = Minter::self_generated("CN={client_id}", Duration::from_secs(600)).unwrap();
        let id = m2.issue("dev").unwrap();
        assert!(verify(m1.ca().cert_der(), &id).is_err());
    }

    #[test]
    fn minting_from_many_threads_at_once_works() {
        let m =
            Arc::new(Minter::self_generated("CN={client_id}", Duration::from_secs(600)).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    (0..5)
                        .map(|i| {
                            let id = format!("t{t}-d{i}");
                            let ident = m.issue(&id).unwrap();
                            (id.clone(), common_name_is(&ident.chain[0], &id))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (id, ok) in h.join().unwrap() {
                assert!(ok, "{id}'s certificate names {id}");
            }
        }
    }

    #[test]
    fn a_user_ec_ca_in_sec1_form_signs_and_its_key_id_is_kept() {
        let m = Minter::from_ca_files(
            &data("ec-ca.crt"),
            &data("ec-ca.key"),
            "CN={client_id}",
            Duration::from_secs(3600),
        )
        .unwrap();
        let id = m.issue("sensor-7").unwrap();
        verify(m.ca().cert_der(), &id).unwrap();
        assert!(common_name_is(&id.chain[0], "sensor-7"));
        // OpenSSL (mosquitto) matches the leaf's authority key id to the CA's subject key id: the
        // fixture's SKI (SHA-1, as openssl wrote it) must appear in the leaf.
        let ski: [u8; 20] = [
            0xF0, 0x3F, 0xD5, 0x81, 0x98, 0x3A, 0x38, 0x2E, 0x5E, 0x5F, 0x15, 0x85, 0xC5, 0x64,
            0xC0, 0xAC, 0x20, 0x63, 0xCD, 0x44,
        ];
        assert!(id.chain[0].windows(20).any(|w| w == ski));
    }

    #[test]
    fn a_user_rsa_ca_in_pkcs1_form_signs() {
        let m = Minter::from_ca_files(
            &data("rsa-ca.crt"),
            &data("rsa-ca.key"),
            "CN={client_id},OU=line 1,O=ACME\\, Inc.",
            Duration::from_secs(3600),
        )
        .unwrap();
        let id = m.issue("plc-1").unwrap();
        verify(m.ca().cert_der(), &id).unwrap();
        assert!(has_attr(&id.chain[0], 10, "ACME, Inc."));
        assert!(has_attr(&id.chain[0], 11, "line 1"));
        assert!(common_name_is(&id.chain[0], "plc-1"));
    }

    #[test]
    fn a_ca_key_that_is_not_the_certificates_is_refused() {
        let e = Minter::from_ca_files(
            &data("rsa-ca.crt"),
            &data("ec-ca.key"),
            "CN={client_id}",
            Duration::from_secs(60),
        )
        .unwrap_err();
        assert!(matches!(e, MintError::CaKeyMismatch { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("ec-ca.key") && msg.contains("rsa-ca.crt"),
            "{msg}"
        );
    }

    #[test]
    fn a_leaf_certificate_given_as_ca_is_refused_at_start() {
        let e = Minter::from_ca_files(
            &data("ec-leaf.crt"),
            &data("ec-ca.key"),
            "CN={client_id}",
            Duration::from_secs(60),
        )
        .unwrap_err();
        assert!(matches!(e, MintError::NotACa { .. }), "{e}");
        assert!(
            e.to_string().contains("ec-leaf.crt: not a CA certificate"),
            "{e}"
        );
    }

    #[test]
    fn missing_ca_files_name_the_file() {
        let e = Minter::from_ca_files(
            &data("nope.crt"),
            &data("ec-ca.key"),
            "CN={client_id}",
            Duration::from_secs(60),
        )
        .unwrap_err();
        assert!(matches!(e, MintError::Pem(PemError::Missing { .. })), "{e}");
        assert!(e.to_string().contains("nope.crt: file not found"), "{e}");
    }

    #[test]
    fn subjects_parse_or_say_why_not() {
        let t = SubjectTemplate::parse("CN={client_id}, O=fleetstorm").unwrap();
        assert!(t.per_device());
        assert!(!SubjectTemplate::parse("CN=shared").unwrap().per_device());
        let t = SubjectTemplate::parse("cn=dev-{client_id}-x").unwrap();
        let dn = t.render("7");
        assert_eq!(
            dn.get(&DnType::CommonName),
            Some(&rcgen::DnValue::Utf8String("dev-7-x".into()))
        );
        for (bad, why) in [
            ("O=fleetstorm", "no CN"),
            ("CN={group}", "unknown placeholder `{group}`"),
            ("CN={client_id", "unclosed"),
            ("XX=1,CN=a", "unknown attribute `XX`"),
            ("CN", "not ATTR=value"),
            ("CN=", "empty value"),
            ("CN=a\\", "lone"),
        ] {
            let e = SubjectTemplate::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(bad), "the message quotes the subject: {e}");
        }
    }

    #[test]
    fn validity_is_bounded() {
        let ca = CertificateAuthority::generate("t").unwrap();
        assert!(matches!(
            ca.minter("CN=a", Duration::ZERO),
            Err(MintError::Validity(_))
        ));
        assert!(matches!(
            ca.minter("CN=a", Duration::from_secs(u64::MAX / 2)),
            Err(MintError::Validity(_))
        ));
    }

    #[test]
    fn the_local_ca_serves_loopback_names() {
        let local = LocalCa::generate().unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(local.cert_der().clone()).unwrap();
        let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        let (leaf, rest) = local.server().chain.split_first().unwrap();
        for name in LOCAL_SERVER_NAMES {
            let sn = rustls_pki_types::ServerName::try_from(name).unwrap();
            v.verify_server_cert(leaf, rest, &sn, &[], UnixTime::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls_pki_types::ServerName::try_from("broker.example").unwrap();
        assert!(v
            .verify_server_cert(leaf, rest, &other, &[], UnixTime::now())
            .is_err());
        assert!(local
            .cert_pem()
            .starts_with("-----BEGIN CERTIFICATE-----\n"));
        use rustls_pki_types::pem::PemObject as _;
        let parsed = CertificateDer::from_pem_slice(local.cert_pem().as_bytes()).unwrap();
        assert_eq!(&parsed, local.cert_der());
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let m = Minter::self_generated("CN={client_id}", Duration::from_secs(60)).unwrap();
        let id = m.issue("d").unwrap();
        let shown = format!("{id:?} {m:?} {:?}", LocalCa::generate().unwrap());
        assert!(shown.contains("[secret]"));
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(id.key.secret_der());
        assert!(!shown.contains(&b64[..16]));
    }
}

/// OpenSSL (what Mosquitto verifies with) accepts what fleetstorm mints: run when the `openssl` command
/// is installed.
#[cfg(test)]
mod openssl_interop {
    use super::*;

    fn openssl_verify(
        dir: &Path,
        ca: &CertificateDer<'_>,
        leaf: &CertificateDer<'_>,
        purpose: &str,
    ) {
        let (ca_path, leaf_path) = (dir.join("ca.pem"), dir.join("leaf.pem"));
        std::fs::write(&ca_path, pem_block("CERTIFICATE", ca)).unwrap();
        std::fs::write(&leaf_path, pem_block("CERTIFICATE", leaf)).unwrap();
        let out = match std::process::Command::new("openssl")
            .args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
            .arg(&ca_path)
            .arg(&leaf_path)
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("openssl not runnable ({e}); interop not checked");
                return;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains(": OK"),
            "{purpose}: {text}"
        );
    }

    #[test]
    fn openssl_verifies_minted_client_and_local_server_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalCa::generate().unwrap();
        openssl_verify(
            dir.path(),
            local.cert_der(),
            &local.server().chain[0],
            "sslserver",
        );
        let id = local
            .minter("CN={client_id}", Duration::from_secs(600))
            .unwrap()
            .issue("d-1")
            .unwrap();
        openssl_verify(dir.path(), local.cert_der(), &id.chain[0], "sslclient");
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata");
        for (c, k) in [("ec-ca.crt", "ec-ca.key"), ("rsa-ca.crt", "rsa-ca.key")] {
            let m = Minter::from_ca_files(
                &data.join(c),
                &data.join(k),
                "CN={client_id}",
                Duration::from_secs(600),
            )
            .unwrap();
            let id = m.issue("d-2").unwrap();
            openssl_verify(dir.path(), m.ca().cert_der(), &id.chain[0], "sslclient");
        }
    }
}
