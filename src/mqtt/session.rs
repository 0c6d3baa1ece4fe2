//! A lean MQTT session: one `TcpStream` and a few words of state. It holds no read or write buffer
//! while idle: reads go through a scratch buffer owned by the worker thread, and bytes are kept only
//! for a partial frame or a write the socket could not take at once.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use super::codec::{self, CodecError, Incoming};
use super::protocol::MqttVersion;
use super::transport::{TlsFailure, Transport};

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connection refused")]
    Refused,
    #[error("timed out")]
    Timeout,
    #[error("connection reset or closed during the handshake")]
    Reset,
    #[error("CONNACK refused the connection: {code:#04x} {}", codec::connack_meaning(*.version, *.code))]
    Rejected { code: u8, version: MqttVersion },
    #[error("protocol error during the handshake: {0}")]
    Protocol(String),
    /// No local address and port to connect from: `EADDRNOTAVAIL` / `EADDRINUSE` from `bind` or
    /// `connect`. Either the ephemeral ports for this (source address, broker address) pair ran out,
    /// or a configured source address is not an address of this host.
    #[error("no local port or address to connect from: {0}")]
    NoPort(io::Error),
    /// The TLS handshake failed (the broker's certificate did not verify, an alert, a timeout).
    #[error("TLS handshake failed: {detail}; {}", .reason.advice())]
    Tls { reason: TlsFailure, detail: String },
    #[error("socket error: {0}")]
    Io(io::Error),
}

impl ConnectError {
    pub(crate) fn tls(reason: TlsFailure, e: &rustls::Error) -> ConnectError {
        ConnectError::Tls {
            reason,
            detail: e.to_string(),
        }
    }

    pub(crate) fn from_io(e: io::Error) -> ConnectError {
        match e.kind() {
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => ConnectError::NoPort(e),
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::TimedOut => ConnectError::Timeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => ConnectError::Reset,
            _ => ConnectError::Io(e),
        }
    }
}

/// Why an established session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connection closed by the broker")]
    Closed,
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("protocol error: {0}")]
    Protocol(#[from] CodecError),
}

/// Ask the kernel to pick the local port at connect time, per destination, rather than at bind time
/// (Linux `IP_BIND_ADDRESS_NO_PORT`): with it one source address reaches ~64k ports per broker address
/// instead of ~64k in all.
fn bind_address_no_port(socket: &TcpSocket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                IP_BIND_ADDRESS_NO_PORT,
                std::ptr::addr_of!(one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// Cap the kernel's send buffer of a socket at about `bytes` (Linux doubles the value for its own
/// bookkeeping and turns off auto-tuning, which would grow it to megabytes). Bytes queued in this host
/// have not reached the broker; a small queue makes a slow broker push back on the schedule at once
/// (late and skipped slots) instead of hiding a backlog that "published" would count.
pub fn bound_send_buffer(stream: &TcpStream, bytes: u32) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                std::ptr::addr_of!(size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (stream, bytes);
}

/// Open the TCP connection (the first part of a connect), optionally from a given local address.
pub async fn tcp_connect(
    addr: SocketAddr,
    local: Option<std::net::IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(ConnectError::from_io)?;
    if let Some(ip) = local {
        bind_address_no_port(&socket);
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(ConnectError::from_io)?;
    }
    let stream = match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ConnectError::from_io(e)),
        Err(_) => return Err(ConnectError::Timeout),
    };
    stream.set_nodelay(true).map_err(ConnectError::from_io)?;
    Ok(stream)
}

/// An established MQTT session.
#[derive(Debug)]
pub struct Session {
    stream: Transport,
    version: MqttVersion,
    /// Bytes of a frame that arrived only in part; empty (unallocated) almost always.
    partial_in: Vec<u8>,
    /// Bytes the socket did not take yet; empty (unallocated) almost always.
    pending_out: Vec<u8>,
}

/// What a read pass saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Still open; everything available was consumed.
    Open,
    /// The broker closed the connection (after any complete frames were delivered).
    Closed,
}

impl Session {
    /// Send CONNECT on an open stream and wait for CONNACK. Returns the session and `session_present`.
    pub async fn handshake(
        stream: impl Into<Transport>,
        version: MqttVersion,
        connect_packet: &[u8],
        timeout: Duration,
    ) -> Result<(Session, bool), ConnectError> {
        // A CONNACK is a handful of bytes: a small private buffer, freed when the handshake ends. What
        // follows the CONNACK (a persistent session's queued messages) stays in `partial_in` for the
        // first read of the connected session.
        let mut scratch = vec![0u8; 256];
        let mut filled = 0;
        let mut s = Session {
            stream: stream.into(),
            version,
            partial_in: Vec::new(),
            pending_out: Vec::new(),
        };
        let fut = async {
            s.write_all(connect_packet)
                .await
                .map_err(ConnectError::from_io)?;
            loop {
                s.stream.readable().await.map_err(ConnectError::from_io)?;
                if filled == scratch.len() {
                    scratch.resize(filled * 2, 0);
                }
                match s.stream.try_read(scratch.get_mut(filled..).unwrap_or_default()) {
                    // Closed with nothing said is a reset; closed in the middle of a reply is a
                    // malformed reply.
                    Ok(0) if filled == 0 => return Err(ConnectError::Reset),
                    Ok(0) => {
                        return Err(ConnectError::Protocol(format!(
                            "the broker closed the connection after {filled} bytes of an incomplete CONNACK"
                        )))
                    }
                    Ok(n) => filled += n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(e) => return Err(ConnectError::from_io(e)),
                }
                let got = scratch.get(..filled).unwrap_or_default();
                // The first packet a broker sends must be CONNACK: anything else is known to be
                // wrong from its first byte, without waiting for a length that may never come.
                if let Some(&first) = got.first() {
                    if first != 0x20 {
                        return Err(ConnectError::Protocol(format!(
                            "expected CONNACK, got a reply starting with byte {first:#04x}"
                        )));
                    }
                }
                let parsed = codec::parse(got, version)
                    .map_err(|e| ConnectError::Protocol(e.to_string()))?;
                let Some((packet, used)) = parsed else {
                    continue;
                };
                s.partial_in
                    .extend_from_slice(got.get(used..).unwrap_or_default());
                return match packet {
                    Incoming::ConnAck {
                        session_present,
                        code: 0,
                    } => Ok(session_present),
                    Incoming::ConnAck { code, .. } => Err(ConnectError::Rejected { code, version }),
                    other => Err(ConnectError::Protocol(format!(
                        "expected CONNACK, got {other:?}"
                    ))),
                };
            }
        };
        let present = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r?,
            Err(_) => return Err(ConnectError::Timeout),
        };
        Ok((s, present))
    }

    /// Acknowledge what arrived at once instead of delaying the TCP ACK (Linux `TCP_QUICKACK`, which the
    /// kernel turns off again, so call it after each read). For a session that both publishes and
    /// waits for a reply, like a commander: a broker without `TCP_NODELAY` holds the reply (Nagle) until
    /// the ACK of its previous small packet (the PUBACK) arrives, and a delayed ACK adds ~40 ms.
    pub fn quick_ack(&self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let one: libc::c_int = 1;
            // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
            unsafe {
                libc::setsockopt(
                    self.stream.tcp().as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    std::ptr::addr_of!(one).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }

    /// The protocol level of this session.
    pub fn version(&self) -> MqttVersion {
        self.version
    }

    /// Wait until the socket has something to read (or an error / EOF).
    pub async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Read everything available without waiting and hand each complete packet to `on`. `scratch` is the
    /// worker thread's read buffer (reused across sessions).
    pub fn read_available(
        &mut self,
        scratch: &mut Vec<u8>,
        on: &mut dyn FnMut(Incoming<'_>),
    ) -> Result<ReadStatus, SessionError> {
        const CHUNK: usize = 64 * 1024;
        const MIN_ROOM: usize = 128;
        loop {
            let carry = self.partial_in.len();
            if scratch.len() < carry + MIN_ROOM {
                scratch.resize(carry + CHUNK, 0);
            }
            scratch[..carry].copy_from_slice(&self.partial_in);
            let room = scratch.len() - carry;
            // Nothing more to read still parses what is carried (bytes that followed the CONNACK).
            let (n, drained) = match self.stream.try_read(&mut scratch[carry..]) {
                Ok(0) => return Err(SessionError::Closed),
                Ok(n) => (n, false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && carry == 0 => {
                    return Ok(ReadStatus::Open)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (0, true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SessionError::Io(e)),
            };
            let filled = carry + n;
            let mut at = 0;
            while let Some((packet, used)) = codec::parse(&scratch[at..filled], self.version)? {
                on(packet);
                at += used;
            }
            // keep only an incomplete frame, and free the buffer when there is none
            if at == filled {
                self.partial_in = Vec::new();
            } else {
                self.partial_in.clear();
                self.partial_in.extend_from_slice(&scratch[at..filled]);
            }
            if drained || n < room {
                return Ok(ReadStatus::Open);
            }
        }
    }

    /// Write `bytes` without waiting; whatever the socket does not take is kept and must be sent with
    /// [`Session::flush`] before anything else. Returns `true` when everything went out.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<bool> {
        if !self.pending_out.is_empty() || self.stream.backlog() {
            self.pending_out.extend_from_slice(bytes);
            return Ok(false);
        }
        let mut at = 0;
        while at < bytes.len() {
            match self.stream.try_write(&bytes[at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if at < bytes.len() {
            self.pending_out.extend_from_slice(&bytes[at..]);
            return Ok(false);
        }
        Ok(!self.stream.backlog())
    }

    /// Whether bytes are waiting for [`Session::flush`].
    pub fn has_pending_out(&self) -> bool {
        !self.pending_out.is_empty() || self.stream.backlog()
    }

    /// Write all of `bytes`, waiting for the socket (the CONNECT).
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut at = 0;
        while at < bytes.len() || self.stream.backlog() {
            if at < bytes.len() {
                match self.stream.try_write(&bytes[at..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => at += n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) =>
                    {
                        self.stream.writable().await?
                    }
                    Err(e) => return Err(e),
                }
            } else {
                self.stream.push_backlog()?;
                if self.stream.backlog() {
                    self.stream.writable().await?;
                }
            }
        }
        Ok(())
    }

    /// Write what [`Session::try_send`] kept. Cancel-safe: bytes leave the buffer only once the socket
    /// took them, so a caller may stop waiting (a deadline) and call again later.
    pub async fn flush(&mut self) -> io::Result<()> {
        while self.stream.backlog() {
            self.stream.writable().await?;
            self.stream.push_backlog()?;
        }
        while !self.pending_out.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(&self.pending_out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) if n >= self.pending_out.len() => {
                    self.pending_out = Vec::new();
                    while self.stream.backlog() {
                        self.stream.writable().await?;
                        self.stream.push_backlog()?;
                    }
                }
                Ok(n) => {
                    self.pending_out.drain(..n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Bytes written by this program that the broker's TCP has not yet taken: what [`Session::try_send`]
    /// kept, plus the kernel's send queue (`SIOCOUTQ`: unsent and unacknowledged bytes). One `ioctl`;
    /// for end-of-run accounting, not for the per-message path.
    pub fn unsent_bytes(&self) -> u64 {
        let kernel: u64 = {
            #[cfg(target_os = "linux")]
            {
                use std::os::fd::AsRawFd;
                let mut queued: libc::c_int = 0;
                // SAFETY: TIOCOUTQ (= SIOCOUTQ) on a socket we own writes one c_int we pass.
                let rc = unsafe {
                    libc::ioctl(
                        self.stream.tcp().as_raw_fd(),
                        libc::TIOCOUTQ,
                        std::ptr::addr_of_mut!(queued),
                    )
                };
                if rc == 0 {
                    u64::try_from(queued).unwrap_or(0)
                } else {
                    0
                }
            }
            #[cfg(not(target_os = "linux"))]
            {
                0
            }
        };
        kernel + self.pending_out.len() as u64
    }

    /// Close at once with a reset (`SO_LINGER` 0): whatever is still queued is discarded instead of
    /// being delivered after the run, so what was counted as never sent really never arrives.
    pub fn abort(self) {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt on a socket we own, with a pointer to a live struct and its size.
            unsafe {
                libc::setsockopt(
                    self.stream.tcp().as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    std::ptr::addr_of!(linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
    }

    /// Send DISCONNECT if the socket takes it at once, and close.
    pub fn close(mut self) {
        let _ = self.try_send(&codec::DISCONNECT);
        self.stream.close_notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_source_address_of_another_host_is_no_port_not_other() {
        // 192.0.2.1 (TEST-NET-1) is not local: bind() fails with EADDRNOTAVAIL before anything is sent.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let local = Some(std::net::IpAddr::from([192, 0, 2, 1]));
        let r = tcp_connect(addr, local, Duration::from_secs(2)).await;
        assert!(matches!(r, Err(ConnectError::NoPort(_))), "{r:?}");
    }

    #[test]
    fn address_errors_map_to_no_port() {
        for kind in [io::ErrorKind::AddrNotAvailable, io::ErrorKind::AddrInUse] {
            let e = ConnectError::from_io(io::Error::from(kind));
            assert!(matches!(e, ConnectError::NoPort(_)), "{kind:?}");
        }
        let e = ConnectError::from_io(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(e, ConnectError::Io(_)));
    }
}
