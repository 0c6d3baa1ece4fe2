//! The byte stream under a [`super::Session`]: plain TCP, or TLS (rustls's unbuffered client connection
//! driven by the socket's `try_read`/`try_write`, no extra task per session, and no buffer kept while
//! idle: ciphertext goes through scratch buffers owned by the worker thread, see [`TlsConn`]). The stack is
//! TCP -> [TLS] -> [WebSocket framing, `ws.rs`] -> MQTT codec; the WebSocket layer slots in as one more
//! variant that wraps a TCP or TLS transport and frames what `try_read`/`try_write` carry.
//!
//! TLS configuration is wire-level here ([`TlsOptions`]): the engine turns `broker.tls` into it, so this
//! module knows nothing about scenarios.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

use super::errors::{ConnectError, TlsFailure};
use super::tls_config::TlsClient;
use super::tls_conn::{HandshakeStep, TlsConn, TlsError, TlsHandshake};

/// TLS over one TCP stream.
pub struct TlsStream {
    tcp: TcpStream,
    tls: TlsConn,
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

/// Run the TLS handshake on a connected stream (TCP connected -> TLS established).
pub async fn tls_connect(
    tcp: TcpStream,
    tls: &TlsClient,
    timeout: Duration,
) -> Result<(Transport, TlsHandshake), ConnectError> {
    let conn = TlsConn::start(tls).map_err(|e| ConnectError::tls(TlsFailure::Other, &e))?;
    let mut t = TlsStream { tcp, tls: conn };
    let fut = async {
        loop {
            match t.tls.handshake_step(&t.tcp) {
                Ok(HandshakeStep::Done) => return Ok(()),
                Ok(HandshakeStep::Write) => {
                    t.tcp.writable().await.map_err(ConnectError::from_io)?
                }
                Ok(HandshakeStep::Read) => t.tcp.readable().await.map_err(ConnectError::from_io)?,
                Err(TlsError::Tls(e)) => return Err(ConnectError::tls(TlsFailure::of(&e), &e)),
                Err(TlsError::Io(e)) => return Err(ConnectError::from_io(e)),
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
    let resumed = t.tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
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

    /// Wait until the socket has something to read (or TLS plaintext is waiting). Through the socket's
    /// one reader slot (`poll_read_ready`; one task per session): tokio's `readable()` future keeps an
    /// ~80-byte waiter inside every waiting device's future instead.
    pub async fn readable(&self) -> io::Result<()> {
        if let Transport::Tls(t) = self {
            // Plaintext decrypted already (or a close seen) is readable now.
            if !t.tls.plain_in.is_empty() || t.tls.peer_closed {
                return Ok(());
            }
        }
        let tcp = self.tcp();
        std::future::poll_fn(|cx| tcp.poll_read_ready(cx)).await
    }

    /// Wait until the socket takes bytes again.
    pub async fn writable(&self) -> io::Result<()> {
        let tcp = self.tcp();
        std::future::poll_fn(|cx| tcp.poll_write_ready(cx)).await
    }

    /// Like `TcpStream::try_read`: `Ok(0)` at the end of the stream, `WouldBlock` when nothing is there.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.try_read(buf),
            Transport::Tls(t) => t.tls.read(&t.tcp, buf),
        }
    }

    /// Like `TcpStream::try_write`: how many bytes were taken, `WouldBlock` when none could be. With TLS,
    /// taken bytes are encrypted at once; records the socket did not take wait
    /// ([`Transport::backlog`]) and go out with [`Transport::push_backlog`].
    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.try_write(buf),
            Transport::Tls(t) => t.tls.write(&t.tcp, buf),
        }
    }

    /// Whether encrypted bytes wait for the socket.
    pub fn backlog(&self) -> bool {
        match self {
            Transport::Tcp(_) => false,
            Transport::Tls(t) => !t.tls.out.is_empty(),
        }
    }

    /// Write what waits in the TLS layer, as far as the socket takes it now.
    pub fn push_backlog(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(_) => Ok(()),
            Transport::Tls(t) => t.tls.push(&t.tcp),
        }
    }

    /// Queue a TLS close_notify (sent with whatever else waits, if the socket takes it).
    pub fn close_notify(&mut self) {
        if let Transport::Tls(t) = self {
            t.tls.close_notify(&t.tcp);
        }
    }
}
