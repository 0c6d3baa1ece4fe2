//! TLS client configuration at the wire level ([`TlsOptions`] -> [`TlsClient`]): trust roots, client
//! identity, SNI and ALPN, protocol versions, session resumption through the worker's ticket pool,
//! and the explicit `insecure_skip_verify` verifier. The engine turns `broker.tls` into it.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::tickets::{TicketPool, TICKETS_PER_SERVER};

/// Where trusted CA certificates come from.
#[derive(Debug, Clone)]
pub enum Roots {
    /// The system's trust store (rustls-native-certs).
    System,
    /// These certificates (DER), e.g. from `broker.tls.ca` or the embedded broker's generated CA.
    Certs(Vec<CertificateDer<'static>>),
}

/// Wire-level TLS settings of a run (built by the engine from `broker.tls`).
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub roots: Roots,
    /// SNI and verification name.
    pub server_name: String,
    pub alpn: Vec<Vec<u8>>,
    pub tls12: bool,
    pub tls13: bool,
    pub insecure_skip_verify: bool,
    pub resumption: bool,
}

/// Why TLS settings could not be turned into a client configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("`{0}` is not a valid TLS server name")]
    ServerName(String),
    #[error("no usable CA certificate: {0}")]
    Roots(String),
    #[error("the client certificate or key is not usable: {0}")]
    Identity(rustls::Error),
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// Everything a TLS connect needs, shared by the sessions of one worker (its session cache too).
#[derive(Clone)]
pub struct TlsClient {
    pub(super) config: Arc<ClientConfig>,
    pub(super) name: ServerName<'static>,
    /// The builder inputs, to derive per-device configurations sharing verifier and cache.
    verifier: Arc<dyn ServerCertVerifier>,
    resumption: Resumption,
    options: Arc<TlsOptions>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.options.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// A client configuration without a client certificate (or with one for the whole fleet).
    pub fn new(
        options: TlsOptions,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<TlsClient, TlsSetupError> {
        let name = ServerName::try_from(options.server_name.clone())
            .map_err(|_| TlsSetupError::ServerName(options.server_name.clone()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = if options.insecure_skip_verify {
            Arc::new(AcceptAny(provider.clone()))
        } else {
            let mut store = RootCertStore::empty();
            match &options.roots {
                Roots::Certs(certs) => {
                    for c in certs {
                        store
                            .add(c.clone())
                            .map_err(|e| TlsSetupError::Roots(e.to_string()))?;
                    }
                }
                Roots::System => {
                    let found = rustls_native_certs::load_native_certs();
                    for c in found.certs {
                        let _ = store.add(c);
                    }
                }
            }
            if store.is_empty() {
                return Err(TlsSetupError::Roots(
                    "the trust store is empty (set `broker.tls.ca`)".into(),
                ));
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(store),
                provider.clone(),
            )
            .build()
            .map_err(|e| TlsSetupError::Roots(e.to_string()))?
        };
        let resumption = if options.resumption {
            ticket_pool()
        } else {
            Resumption::disabled()
        };
        let identity = match identity {
            Some((chain, key)) => Identity::Pair(chain, key),
            None => Identity::None,
        };
        let config = build(&options, &verifier, &resumption, identity)?;
        Ok(TlsClient {
            config,
            name,
            verifier,
            resumption,
            options: Arc::new(options),
        })
    }

    /// The same settings and session cache with another client identity (a per-device certificate).
    pub fn with_identity(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsClient, TlsSetupError> {
        // Its own session cache: a resumed session carries the identity it was made with, so one
        // device must never resume another's.
        let mut c = self.clone();
        if self.options.resumption {
            c.resumption = Resumption::in_memory_sessions(4);
        }
        c.config = build(
            &self.options,
            &self.verifier,
            &c.resumption,
            Identity::Pair(chain, key),
        )?;
        Ok(c)
    }

    /// A copy with its own session cache (one per worker thread: no lock shared across threads),
    /// keeping a fleet-wide client identity.
    pub fn per_worker(&self) -> Result<TlsClient, TlsSetupError> {
        let mut c = self.clone();
        if self.options.resumption {
            c.resumption = ticket_pool();
        }
        c.config = build(
            &self.options,
            &self.verifier,
            &c.resumption,
            Identity::Resolver(self.config.client_auth_cert_resolver.clone()),
        )?;
        Ok(c)
    }

    /// Whether verification of the broker's certificate is off.
    pub fn insecure(&self) -> bool {
        self.options.insecure_skip_verify
    }
}

/// Resumption from a store deep enough for a reconnect storm ([`TicketPool`]).
fn ticket_pool() -> Resumption {
    Resumption::store(Arc::new(TicketPool::new(TICKETS_PER_SERVER)))
}

/// The client certificate of a configuration.
enum Identity {
    None,
    Pair(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    Resolver(Arc<dyn rustls::client::ResolvesClientCert>),
}

fn build(
    o: &TlsOptions,
    verifier: &Arc<dyn ServerCertVerifier>,
    resumption: &Resumption,
    identity: Identity,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if o.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if o.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&versions)
            .map_err(TlsSetupError::Config)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
    let mut config = match identity {
        Identity::Pair(chain, key) => builder
            .with_client_auth_cert(chain, key)
            .map_err(TlsSetupError::Identity)?,
        Identity::None => builder.with_no_client_auth(),
        Identity::Resolver(r) => builder.with_client_cert_resolver(r),
    };
    config.alpn_protocols = o.alpn.clone();
    config.resumption = resumption.clone();
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        config.key_log = Arc::new(rustls::KeyLogFile::new());
    }
    Ok(Arc::new(config))
}

/// `insecure_skip_verify`: accept any certificate, still check handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
