//! What a TLS endpoint presents (a chain and its key) and the one crypto provider.

use std::fmt;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain (end-entity first) and its private key: what a TLS client presents, or what
/// a TLS server serves.
///
/// `Debug` never prints the key (secrets stay out of logs and reports).
pub struct Identity {
    /// End-entity certificate first, then the certificates that lead to a trusted root.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// The end-entity certificate, if the chain is not empty.
    pub fn leaf(&self) -> Option<&CertificateDer<'static>> {
        self.chain.first()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field(
                "chain",
                &format_args!("{} certificate(s)", self.chain.len()),
            )
            .field("key", &"[secret]")
            .finish()
    }
}

/// The ring crypto provider every TLS object fleetstorm builds uses (never the process default, which
/// another crate could set).
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
