//! A lean MQTT session: one `TcpStream` and a few words of state. It holds no read or write buffer
//! while idle: reads go through a scratch buffer owned by the worker thread, and bytes are kept only
//! for a partial frame or a write the socket could not take at once.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use super::codec::{self, CodecError, Incoming};
use super::errors::ConnectError;
use super::protocol::MqttVersion;
use super::transport::Transport;
use super::ws::{self, UpgradeError, WsEndpoint, WsError, WsLink};

/// Why an established session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connection closed by the broker")]
    Closed,
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("protocol error: {0}")]
    Protocol(#[from] CodecError),
    /// A WebSocket close frame or a framing error (ws://).
    #[error("{0}")]
    WebSocket(#[from] WsError),
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

/// Wait until `stream` is readable and read once: `None` when the wake-up was spurious (nothing to
/// read after all, or interrupted), `Some(0)` when the peer closed.
async fn read_ready(stream: &mut Transport, buf: &mut [u8]) -> Result<Option<usize>, ConnectError> {
    stream.readable().await.map_err(ConnectError::from_io)?;
    match stream.try_read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(ConnectError::from_io(e)),
    }
}

/// Send the WebSocket upgrade request for `key` and read the reply; the wire bytes that followed it
/// (the first frames) are returned.
async fn upgrade(
    s: &mut Session,
    endpoint: &WsEndpoint,
    key: &str,
) -> Result<Vec<u8>, ConnectError> {
    s.write_all(&endpoint.request(key))
        .await
        .map_err(ConnectError::from_io)?;
    let stream = &mut s.stream;
    let mut got: Vec<u8> = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    loop {
        match read_ready(stream, &mut buf).await? {
            None => continue,
            Some(0) if got.is_empty() => return Err(ConnectError::Reset),
            Some(0) => {
                // A refusal whose header was cut short by the close still names its status.
                let ended = [got.as_slice(), b"\r\n\r\n"].concat();
                return Err(ConnectError::Upgrade(match ws::check_reply(&ended, key) {
                    Err(e @ UpgradeError::Refused { .. }) => e,
                    _ => UpgradeError::Closed(got.len()),
                }));
            }
            Some(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
        match ws::check_reply(&got, key) {
            Ok(None) => {}
            Ok(Some(header)) => {
                got.drain(..header.min(got.len()));
                return Ok(got);
            }
            Err(e) => return Err(ConnectError::Upgrade(e)),
        }
    }
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
    /// WebSocket framing (ws://): 12 bytes; the tail of `partial_in` may be wire bytes of it.
    ws: Option<WsLink>,
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
        Session::handshake_with(stream, None, version, connect_packet, timeout).await
    }

    /// [`Session::handshake`], first upgrading to WebSocket at `ws` when given (ws://): the timeout
    /// covers the upgrade too.
    pub async fn handshake_with(
        stream: impl Into<Transport>,
        ws: Option<&WsEndpoint>,
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
            ws: None,
        };
        let fut = async {
            // wire bytes that followed the upgrade reply (WebSocket frames)
            if let Some(endpoint) = ws {
                let seed = ws::seed();
                let rest = upgrade(&mut s, endpoint, &ws::client_key(seed)).await?;
                s.ws = Some(WsLink::new(seed));
                let n = rest.len();
                scratch.resize(n.max(256), 0);
                scratch[..n].copy_from_slice(&rest);
                filled = n;
            }
            s.try_send(connect_packet).map_err(ConnectError::from_io)?;
            s.flush().await.map_err(ConnectError::from_io)?;
            // what is unwrapped so far (the MQTT bytes; wire bytes follow up to `filled`)
            let mut mqtt_end = 0;
            let mut fresh = filled > 0;
            loop {
                if !fresh {
                    if filled == scratch.len() {
                        scratch.resize(filled * 2, 0);
                    }
                    let room = scratch.get_mut(filled..).unwrap_or_default();
                    match read_ready(&mut s.stream, room).await? {
                        None => continue,
                        // Closed with nothing said is a reset; closed in the middle of a reply is a
                        // malformed reply.
                        Some(0) if filled == 0 => return Err(ConnectError::Reset),
                        Some(0) => {
                            return Err(ConnectError::Protocol(format!(
                                "the broker closed the connection after {filled} bytes of an incomplete CONNACK"
                            )))
                        }
                        Some(n) => filled += n,
                    }
                }
                fresh = false;
                let (end, wire_end, closed) = s
                    .unframe(scratch.get_mut(..filled).unwrap_or_default(), mqtt_end)
                    .map_err(|e| ConnectError::Protocol(e.to_string()))?;
                (mqtt_end, filled) = (end, wire_end);
                if let Some(code) = closed {
                    return Err(ConnectError::Protocol(WsError::Closed { code }.to_string()));
                }
                let got = scratch.get(..mqtt_end).unwrap_or_default();
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
                // what followed: MQTT bytes, then wire bytes of an incomplete frame
                s.partial_in
                    .extend_from_slice(scratch.get(used..filled).unwrap_or_default());
                if let Some(link) = s.ws.as_mut() {
                    link.reader.set_raw_carry(filled - mqtt_end);
                }
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
            // WebSocket: unwrap the frames in place (the carry ends with `raw` wire bytes)
            let raw = self.ws.map_or(0, |l| l.reader.raw_carry());
            let (end, filled, closed) =
                self.unframe(&mut scratch[..filled], carry.saturating_sub(raw))?;
            let mut at = 0;
            while let Some((packet, used)) = codec::parse(&scratch[at..end], self.version)? {
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
            if let Some(code) = closed {
                return Err(WsError::Closed { code }.into());
            }
            if drained || n < room {
                return Ok(ReadStatus::Open);
            }
        }
    }

    /// Write `bytes` without waiting; whatever the socket does not take is kept and must be sent with
    /// [`Session::flush`] before anything else. Returns `true` when everything went out. Over
    /// WebSocket the bytes go out as one binary frame.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<bool> {
        let mask = match self.ws.as_mut() {
            Some(link) if !bytes.is_empty() => link.writer.next_mask(),
            _ => return self.send_wire(bytes),
        };
        ws::with_frame(bytes, mask, |frame| self.send_wire(frame))
    }

    /// Unwrap WebSocket frames in `buf` in place: `buf[..mqtt_end]` are MQTT bytes already, the rest
    /// wire bytes. Returns the end of the MQTT bytes, the end of the wire bytes still incomplete (moved
    /// to follow them) and, after a close frame, its code. Answers pings (a pong the socket does not
    /// take at once is queued like any write; a failing socket shows on the next read or write).
    /// Without WebSocket everything is MQTT bytes.
    #[allow(clippy::type_complexity)]
    fn unframe(
        &mut self,
        buf: &mut [u8],
        mqtt_end: usize,
    ) -> Result<(usize, usize, Option<Option<u16>>), WsError> {
        let Some(mut link) = self.ws else {
            return Ok((buf.len(), buf.len(), None));
        };
        let (mut out, mut at, mut closed) = (mqtt_end, mqtt_end, None);
        loop {
            let step = link.reader.unframe(buf, out, at);
            self.ws = Some(link);
            let step = step?;
            (out, at) = (step.out, step.at);
            match step.event {
                Some(ws::Event::Ping(payload)) => {
                    let pong = ws::ControlFrame::pong(
                        buf.get(payload).unwrap_or_default(),
                        link.writer.next_mask(),
                    );
                    let _ = self.send_wire(pong.as_bytes());
                }
                Some(ws::Event::Close { code }) => {
                    let echo =
                        ws::ControlFrame::close(code.unwrap_or(1000), link.writer.next_mask());
                    let _ = self.send_wire(echo.as_bytes());
                    closed = Some(code);
                    break;
                }
                None => break,
            }
        }
        let rest = buf.len() - at;
        buf.copy_within(at.., out);
        link.reader.set_raw_carry(rest);
        self.ws = Some(link);
        Ok((out, out + rest, closed))
    }

    /// Write bytes as they are (already framed).
    fn send_wire(&mut self, bytes: &[u8]) -> io::Result<bool> {
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

    /// Send DISCONNECT (and over WebSocket a close frame) if the socket takes it at once, and close.
    pub fn close(mut self) {
        let _ = self.try_send(&codec::DISCONNECT);
        if let Some(mask) = self.ws.as_mut().map(|l| l.writer.next_mask()) {
            let _ = self.send_wire(ws::ControlFrame::close(1000, mask).as_bytes());
        }
        self.stream.close_notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_source_address_of_another_host_is_no_port_not_other() {
        // 192.0.2.1 (TEST-NET-1) is not local: bind() fails with EADDRNOTAVAIL before anything is sent.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let local = Some(std::net::IpAddr::from([192, 0, 2, 1]));
        let r = tcp_connect(addr, local, Duration::from_secs(2)).await;
        assert!(matches!(r, Err(ConnectError::NoPort(_))), "{r:?}");
    }

    /// Read one masked client frame from `c`: (opcode, unmasked payload).
    async fn client_frame(c: &mut TcpStream) -> (u8, Vec<u8>) {
        use tokio::io::AsyncReadExt;
        let mut h = [0u8; 2];
        c.read_exact(&mut h).await.unwrap();
        assert_eq!(h[1] & 0x80, 0x80, "client frames are masked");
        let len = match h[1] & 0x7f {
            126 => usize::from(c.read_u16().await.unwrap()),
            127 => usize::try_from(c.read_u64().await.unwrap()).unwrap(),
            n => usize::from(n),
        };
        let mut mask = [0u8; 4];
        c.read_exact(&mut mask).await.unwrap();
        let mut p = vec![0u8; len];
        c.read_exact(&mut p).await.unwrap();
        ws::apply_mask(&mut p, mask);
        assert_eq!(h[0] & 0x80, 0x80, "FIN");
        (h[0] & 0x0f, p)
    }

    #[tokio::test]
    async fn a_websocket_session_upgrades_unwraps_answers_pings_and_ends_on_close() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connect: &[u8] = &[0x10, 3, 1, 2, 3];
        let server = tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut b = [0u8; 256];
                let n = c.read(&mut b).await.unwrap();
                req.extend_from_slice(&b[..n]);
            }
            let req = String::from_utf8(req).unwrap();
            assert!(req.starts_with("GET /mqtt HTTP/1.1\r\n"), "{req}");
            let key = req
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap();
            // The reply, and in the same write: CONNACK split over two frames, a ping, and a
            // PUBLISH split over a fragmented message.
            let mut out = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
                ws::accept_key(key)
            )
            .into_bytes();
            out.extend_from_slice(&[0x82, 2, 0x20, 2, 0x82, 2, 0, 0]);
            out.extend_from_slice(&[0x89, 2, b'h', b'i']);
            out.extend_from_slice(&[0x02, 3, 0x30, 4, 0, 0x80, 3, 1, b't', b'x']);
            c.write_all(&out).await.unwrap();
            let (op, p) = client_frame(&mut c).await;
            assert_eq!(
                (op, p.as_slice()),
                (2, connect),
                "CONNECT as one binary frame"
            );
            let (op, p) = client_frame(&mut c).await;
            assert_eq!(
                (op, p.as_slice()),
                (0xA, &b"hi"[..]),
                "the pong echoes the ping"
            );
            // then the broker closes with 1001
            c.write_all(&[0x88, 2, 0x03, 0xe9]).await.unwrap();
            let (op, p) = client_frame(&mut c).await;
            assert_eq!(
                (op, p.as_slice()),
                (8, &[0x03, 0xe9][..]),
                "the close is echoed"
            );
        });
        let stream = tcp_connect(addr, None, Duration::from_secs(5))
            .await
            .unwrap();
        let endpoint = WsEndpoint::new("127.0.0.1", addr.port(), 80, "/mqtt");
        let (mut s, present) = Session::handshake_with(
            stream,
            Some(&endpoint),
            MqttVersion::V311,
            connect,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(!present);
        let mut scratch = Vec::new();
        let mut publishes = Vec::new();
        let end = loop {
            let r = s.read_available(&mut scratch, &mut |p| {
                if let Incoming::Publish { topic, payload, .. } = p {
                    publishes.push((topic.to_vec(), payload.to_vec()));
                }
            });
            match r {
                Ok(_) => s.readable().await.unwrap(),
                Err(e) => break e,
            }
        };
        assert_eq!(publishes, vec![(b"t".to_vec(), b"x".to_vec())]);
        assert!(
            matches!(
                end,
                SessionError::WebSocket(WsError::Closed { code: Some(1001) })
            ),
            "{end:?}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_upgrade_is_an_upgrade_error_naming_the_status() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let _ = c.read(&mut b).await.unwrap();
            // the status line only, then close: the cut-short header still names its status
            c.write_all(b"HTTP/1.1 403 Forbidden\r\n").await.unwrap();
        });
        let stream = tcp_connect(addr, None, Duration::from_secs(5))
            .await
            .unwrap();
        let endpoint = WsEndpoint::new("127.0.0.1", addr.port(), 80, "/nope");
        let r = Session::handshake_with(
            stream,
            Some(&endpoint),
            MqttVersion::V311,
            &[0x10, 0],
            Duration::from_secs(5),
        )
        .await;
        let Err(ConnectError::Upgrade(UpgradeError::Refused { status, reason })) = r else {
            panic!("{r:?}");
        };
        assert_eq!((status, reason.as_str()), (403, "Forbidden"));
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
