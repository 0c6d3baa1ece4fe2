//! The byte stream under a [`super::Session`]: plain TCP, or TLS (a rustls `ClientConnection` driven by
//! the socket's `try_read`/`try_write`, no extra task or buffer pair per session). The stack is
//! TCP -> [TLS] -> [WebSocket framing, `ws.rs`] -> MQTT codec; the WebSocket layer slots in as one more
//! variant that wraps a TCP or TLS transport and frames what `try_read`/`try_write` carry.
//!
//! TLS configuration is wire-level here ([`TlsOptions`]): the engine turns `broker.tls` into it, so this
//! module knows nothing about scenarios.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;

use super::errors::{ConnectError, TlsFailure};
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
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
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

/// What a finished TLS handshake was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsHandshake {
    /// The session was resumed (abbreviated handshake) rather than a full one.
    pub resumed: bool,
}

/// Bytes of TLS records rustls may hold for sending before `try_write` reports back-pressure.
const TLS_SEND_LIMIT: usize = 32 * 1024;

/// TLS over one TCP stream.
pub struct TlsStream {
    tcp: TcpStream,
    conn: ClientConnection,
}

/// The byte stream a session reads and writes.
pub enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
            Transport::Tls(t) => f.debug_tuple("Tls").field(&t.tcp).finish(),
        }
    }
}

impl From<TcpStream> for Transport {
    fn from(s: TcpStream) -> Self {
        Transport::Tcp(s)
    }
}

/// `io::Read`/`io::Write` over a tokio socket's non-blocking `try_read`/`try_write`.
struct Sock<'a>(&'a TcpStream);

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Run the TLS handshake on a connected stream (TCP connected -> TLS established).
pub async fn tls_connect(
    tcp: TcpStream,
    tls: &TlsClient,
    timeout: Duration,
) -> Result<(Transport, TlsHandshake), ConnectError> {
    let mut conn = ClientConnection::new(tls.config.clone(), tls.name.clone())
        .map_err(|e| ConnectError::tls(TlsFailure::Other, &e))?;
    conn.set_buffer_limit(Some(TLS_SEND_LIMIT));
    let mut t = TlsStream { tcp, conn };
    let fut = async {
        loop {
            while t.conn.wants_write() {
                match t.conn.write_tls(&mut Sock(&t.tcp)) {
                    Ok(_) => {}
                    Err(e) if would_block(&e) => {
                        t.tcp.writable().await.map_err(ConnectError::from_io)?;
                    }
                    Err(e) => return Err(ConnectError::from_io(e)),
                }
            }
            if !t.conn.is_handshaking() {
                return Ok(());
            }
            t.tcp.readable().await.map_err(ConnectError::from_io)?;
            match t.conn.read_tls(&mut Sock(&t.tcp)) {
                Ok(0) => return Err(ConnectError::Reset),
                Ok(_) => {}
                Err(e) if would_block(&e) => continue,
                Err(e) => return Err(ConnectError::from_io(e)),
            }
            if let Err(e) = t.conn.process_new_packets() {
                // Tell the broker why (the alert rustls queued), then report.
                let _ = t.conn.write_tls(&mut Sock(&t.tcp));
                return Err(ConnectError::tls(TlsFailure::of(&e), &e));
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(ConnectError::Tls {
                reason: TlsFailure::Timeout,
                detail: "no TLS handshake within the connect timeout".into(),
            })
        }
    }
    let resumed = t.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    Ok((Transport::Tls(Box::new(t)), TlsHandshake { resumed }))
}

impl Transport {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Tcp(s) => s,
            Transport::Tls(t) => &t.tcp,
        }
    }

    pub async fn readable(&self) -> io::Result<()> {
        if let Transport::Tls(t) = self {
            // Plaintext rustls already decrypted (or a close it saw) is readable now.
            if !t.conn.wants_read() {
                return Ok(());
            }
        }
        self.tcp().readable().await
    }

    pub async fn writable(&self) -> io::Result<()> {
        self.tcp().writable().await
    }

    /// Like `TcpStream::try_read`: `Ok(0)` at the end of the stream, `WouldBlock` when nothing is there.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let t = match self {
            Transport::Tcp(s) => return s.try_read(buf),
            Transport::Tls(t) => t,
        };
        loop {
            match t.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if t.conn.read_tls(&mut Sock(&t.tcp))? == 0 {
                return Ok(0);
            }
            let state = t
                .conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // Answers rustls owes the broker (alerts, key updates) go out with the next write.
            if t.conn.wants_write() {
                let _ = t.conn.write_tls(&mut Sock(&t.tcp));
            }
            if state.peer_has_closed() && state.plaintext_bytes_to_read() == 0 {
                return Ok(0);
            }
        }
    }

    /// Like `TcpStream::try_write`: how many bytes were taken, `WouldBlock` when none could be. With TLS,
    /// taken bytes are encrypted at once; records the socket did not take wait in rustls
    /// ([`Transport::backlog`]) and go out with [`Transport::push_backlog`].
    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let t = match self {
            Transport::Tcp(s) => return s.try_write(buf),
            Transport::Tls(t) => t,
        };
        push(t)?;
        if t.conn.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = t.conn.writer().write(buf)?;
        push(t)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Whether encrypted bytes wait for the socket.
    pub fn backlog(&self) -> bool {
        match self {
            Transport::Tcp(_) => false,
            Transport::Tls(t) => t.conn.wants_write(),
        }
    }

    /// Write what waits in the TLS layer, as far as the socket takes it now.
    pub fn push_backlog(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(_) => Ok(()),
            Transport::Tls(t) => push(t),
        }
    }

    /// Queue a TLS close_notify (sent with whatever else waits, if the socket takes it).
    pub fn close_notify(&mut self) {
        if let Transport::Tls(t) = self {
            t.conn.send_close_notify();
            let _ = push(t);
        }
    }
}

/// Write queued TLS records until the socket would block.
fn push(t: &mut TlsStream) -> io::Result<()> {
    while t.conn.wants_write() {
        match t.conn.write_tls(&mut Sock(&t.tcp)) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if would_block(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
