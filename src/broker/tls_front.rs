//! A TLS front for the embedded broker: a loopback listener that terminates TLS 1.2 / 1.3 (rustls,
//! through tokio-rustls) and pipes the bytes to rumqttd's plain listener, so a TLS run needs no setup
//! and rumqttd's own TLS feature (a second rustls) stays off.
//!
//! Bounded: at most `max_connections` piped connections (more are accepted and closed at once), a
//! handshake that does not finish in `handshake_timeout` is dropped, and once one side closes the other
//! gets `close_grace` to finish before both sockets are dropped. Each connection holds two 4 KiB
//! buffers and two sockets; dropping the [`TlsFront`] closes the listener and every connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::tls::Identity;

const BUF: usize = 4096;

/// Why the front cannot start.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("TLS front: cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    #[error("TLS front: cannot start its runtime thread: {0}")]
    Runtime(std::io::Error),
    #[error("TLS front: invalid server certificate or key: {0}")]
    ServerCertificate(rustls::Error),
    #[error("TLS front: invalid client CA: {0}")]
    ClientCa(String),
}

/// How the front behaves.
#[derive(Debug, Clone)]
pub struct FrontOptions {
    /// Require a client certificate that chains to one of these CAs (mutual TLS). `None`: no client
    /// certificate is asked for.
    pub client_ca: Option<Vec<CertificateDer<'static>>>,
    /// Piped connections at once; more are closed right after accept.
    pub max_connections: usize,
    /// A TLS handshake not done within this is dropped.
    pub handshake_timeout: Duration,
    /// Once one side has closed, how long the other may go on before both are dropped.
    pub close_grace: Duration,
    /// Runtime worker threads for handshakes and piping (1: one thread).
    pub threads: usize,
}

impl Default for FrontOptions {
    fn default() -> Self {
        FrontOptions {
            client_ca: None,
            max_connections: 100_000,
            handshake_timeout: Duration::from_secs(10),
            close_grace: Duration::from_secs(5),
            threads: 1,
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    active: AtomicUsize,
    accepted: AtomicU64,
    handshake_failures: AtomicU64,
    refused: AtomicU64,
}

/// A running TLS front. Dropping it stops the listener and closes every connection it holds.
#[derive(Debug)]
pub struct TlsFront {
    addr: SocketAddr,
    stop: CancellationToken,
    stats: Arc<Stats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The rustls server configuration of the front: TLS 1.2 and 1.3, the ring provider, stateless
/// session tickets (resumption costs the front no memory per session), and a client-certificate
/// verifier when `client_ca` is given.
pub fn server_config(
    server: &Identity,
    client_ca: Option<&[CertificateDer<'static>]>,
) -> Result<ServerConfig, FrontError> {
    let provider = crate::tls::provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(FrontError::ServerCertificate)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in cas {
                roots
                    .add(ca.clone())
                    .map_err(|e| FrontError::ClientCa(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| FrontError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(server.chain.clone(), server.key.clone_key())
        .map_err(FrontError::ServerCertificate)?;
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(FrontError::ServerCertificate)?;
    Ok(config)
}

impl TlsFront {
    /// Listen on a free loopback port (127.0.0.1) and pipe every TLS connection to `plain`. Returns
    /// once the listener is bound; connections are served on a thread of its own.
    pub fn start(
        plain: SocketAddr,
        server: &Identity,
        opts: FrontOptions,
    ) -> Result<TlsFront, FrontError> {
        let config = server_config(server, opts.client_ca.as_deref())?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(FrontError::Bind)?;
        let addr = std_listener.local_addr().map_err(FrontError::Bind)?;
        let rt = if opts.threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(opts.threads)
                .thread_name("tls-front-worker")
                .enable_all()
                .build()
        }
        .map_err(FrontError::Runtime)?;
        let stop = CancellationToken::new();
        let stats = Arc::new(Stats::default());
        let thread = {
            let (stop, stats) = (stop.clone(), Arc::clone(&stats));
            std::thread::Builder::new()
                .name("tls-front".into())
                .spawn(move || {
                    rt.block_on(async move {
                        // Registering with the reactor needs the runtime: done here, on its thread.
                        let Ok(listener) = TcpListener::from_std(std_listener) else {
                            return;
                        };
                        accept_loop(listener, acceptor, plain, opts, stop, stats).await;
                    });
                    // Dropping the runtime drops any task still running, and its sockets.
                    rt.shutdown_timeout(Duration::from_secs(1));
                })
                .map_err(FrontError::Runtime)?
        };
        Ok(TlsFront {
            addr,
            stop,
            stats,
            thread: Some(thread),
        })
    }

    /// Where TLS clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections currently held (handshaking or piped).
    pub fn active(&self) -> usize {
        self.stats.active.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.stats.accepted.load(Ordering::Relaxed)
    }

    /// Handshakes that failed or timed out (e.g. a client without the certificate mTLS requires).
    pub fn handshake_failures(&self) -> u64 {
        self.stats.handshake_failures.load(Ordering::Relaxed)
    }

    /// Connections closed at once because `max_connections` were held.
    pub fn refused(&self) -> u64 {
        self.stats.refused.load(Ordering::Relaxed)
    }

    /// Stop listening, close every connection and wait for the front's thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Decrements the active count when a connection task ends, however it ends.
struct Active(Arc<Stats>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    plain: SocketAddr,
    opts: FrontOptions,
    stop: CancellationToken,
    stats: Arc<Stats>,
) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                // Out of descriptors or a reset before accept: do not spin.
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => continue,
                }
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        if stats.active.load(Ordering::Relaxed) >= opts.max_connections {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        }
        stats.active.fetch_add(1, Ordering::Relaxed);
        let guard = Active(Arc::clone(&stats));
        let (acceptor, stop, opts) = (acceptor.clone(), stop.clone(), opts.clone());
        tracker.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = serve(tcp, acceptor, plain, &opts, &guard.0) => {}
            }
            drop(guard);
        });
    }
    drop(listener);
    tracker.close();
    // Every task watches `stop`, so this ends promptly.
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
}

async fn serve(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    plain: SocketAddr,
    opts: &FrontOptions,
    stats: &Stats,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(opts.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(_)) | Err(_) => {
            stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let Ok(upstream) = TcpStream::connect(plain).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (tls_r, tls_w) = tokio::io::split(tls);
    let (up_r, up_w) = upstream.into_split();
    let client_to_broker = pump(tls_r, up_w);
    let broker_to_client = pump(up_r, tls_w);
    tokio::pin!(client_to_broker, broker_to_client);
    tokio::select! {
        _ = &mut client_to_broker => {
            let _ = tokio::time::timeout(opts.close_grace, broker_to_client).await;
        }
        _ = &mut broker_to_client => {
            let _ = tokio::time::timeout(opts.close_grace, client_to_broker).await;
        }
    }
}

/// Copy until end of stream or an error, flushing after each read, then shut the writer down (a TLS
/// close_notify, or a TCP FIN).
async fn pump<R, W>(mut r: R, mut w: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Some(chunk) = buf.get(..n) else { break };
        if w.write_all(chunk).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}
