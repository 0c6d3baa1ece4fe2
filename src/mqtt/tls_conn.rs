//! One TLS client connection on rustls's unbuffered API, driven by the socket's non-blocking
//! `try_read`/`try_write`: ciphertext goes through scratch buffers owned by the worker thread, and a
//! connection keeps only what is in flight (a partial record, plaintext not yet read, records the
//! socket did not take), each freed once empty: nothing is kept while idle.

use std::cell::RefCell;
use std::io;

use rustls::client::UnbufferedClientConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError};
use tokio::net::TcpStream;

use super::tls_config::TlsClient;

/// What a finished TLS handshake was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsHandshake {
    /// The session was resumed (abbreviated handshake) rather than a full one.
    pub resumed: bool,
}

/// Plaintext taken by one [`super::Transport::try_write`] at most (two full records): what the buffered
/// connection used to hold before it reported back-pressure.
const MAX_PLAIN_PER_WRITE: usize = 32 * 1024;

/// Ciphertext read from the socket at once (after the carried partial record).
const READ_CHUNK: usize = 64 * 1024;

/// A thread's scratch buffers keep at most this much between uses.
const SCRATCH_KEEP: usize = 1 << 20;

thread_local! {
    /// Ciphertext read from the socket, decrypted in place: one per worker thread, shared by its sessions.
    static CIPHER_IN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Records encrypted for the socket before it takes them: one per worker thread.
    static CIPHER_OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with this thread's buffer from `key` (a buffer of its own if that one is in use).
fn with_scratch<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let r = f(&mut buf);
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// The non-blocking byte pipe under a TLS connection (the TCP socket; an in-memory pipe in tests).
pub(super) trait Wire {
    /// Like `TcpStream::try_read`.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Like `TcpStream::try_write`.
    fn send(&self, buf: &[u8]) -> io::Result<usize>;
}

impl Wire for TcpStream {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_read(buf)
    }
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_write(buf)
    }
}

/// What a TLS operation failed with: the socket, or TLS itself (to map to a [`TlsFailure`]).
#[derive(Debug)]
pub(super) enum TlsError {
    Io(io::Error),
    Tls(rustls::Error),
}

impl From<io::Error> for TlsError {
    fn from(e: io::Error) -> Self {
        TlsError::Io(e)
    }
}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> Self {
        match e {
            TlsError::Io(e) => e,
            TlsError::Tls(e) => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

/// What the handshake waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HandshakeStep {
    /// The socket must take more bytes.
    Write,
    /// The broker must send more bytes.
    Read,
    /// Established: application data may flow.
    Done,
}

/// How a pass over the received ciphertext ended.
#[derive(Debug, Default)]
pub(super) struct Pass {
    /// Bytes of the input rustls is done with (the rest is a partial record or handshake message).
    used: usize,
    /// Plaintext bytes put into the caller's buffer.
    produced: usize,
}

/// A TLS client connection whose buffers fleetstorm owns (rustls's unbuffered API). Ciphertext is read
/// into the worker thread's scratch buffer and decrypted there; per connection it keeps only what
/// could not be finished at once, each in a `Vec` freed (capacity 0) when it empties again: the bytes
/// of a partial record, plaintext the reader had no room for, records the socket did not take. An
/// idle connection holds no buffer.
pub(super) struct TlsConn {
    pub(super) conn: UnbufferedClientConnection,
    /// Ciphertext of a record (or handshake message) not complete yet.
    pub(super) partial_in: Vec<u8>,
    /// Decrypted bytes the last read had no room for.
    pub(super) plain_in: Vec<u8>,
    /// Encrypted records the socket has not taken yet.
    pub(super) out: Vec<u8>,
    /// The handshake finished (application data may be written).
    pub(super) established: bool,
    /// The broker closed (close_notify or the end of the TCP stream): reads return 0 once
    /// `plain_in` is empty.
    pub(super) peer_closed: bool,
}

/// Append what `f` writes to `out`, growing it to the size `f` asks for (`Err(Some(n))`: needs `n`
/// bytes; `Err(None)`: failed, nothing appended).
fn append_with(
    out: &mut Vec<u8>,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> Result<(), ()> {
    let start = out.len();
    let mut want = 256;
    loop {
        out.resize(start + want, 0);
        match f(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n.min(want));
                return Ok(());
            }
            Err(Some(n)) if n > want => want = n,
            Err(_) => {
                out.truncate(start);
                if out.is_empty() {
                    *out = Vec::new();
                }
                return Err(());
            }
        }
    }
}

fn encode_error(e: EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        EncodeError::AlreadyEncoded => None,
    }
}

fn encrypt_error(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

impl TlsConn {
    /// A connection to `tls`'s server, before the handshake.
    pub(super) fn start(tls: &TlsClient) -> Result<TlsConn, rustls::Error> {
        let conn = UnbufferedClientConnection::new(tls.config.clone(), tls.name.clone())?;
        Ok(TlsConn {
            conn,
            partial_in: Vec::new(),
            plain_in: Vec::new(),
            out: Vec::new(),
            established: false,
            peer_closed: false,
        })
    }

    /// Let rustls process `input` (complete records are decrypted in place): application data goes to
    /// `dst` (what does not fit to `plain_in`), records rustls wants sent are appended to `out`. Stops
    /// when rustls needs more input or the broker closed.
    pub(super) fn pass(&mut self, input: &mut [u8], dst: &mut [u8]) -> Result<Pass, rustls::Error> {
        let mut p = Pass::default();
        loop {
            let status = self.conn.process_tls_records(&mut input[p.used..]);
            let mut discard = status.discard;
            let state = match status.state {
                Ok(s) => s,
                Err(e) => {
                    // The connection is dead: what is left of the input does not matter.
                    self.queue_alert();
                    return Err(e);
                }
            };
            let mut stop = false;
            match state {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(record) = r.next_record() {
                        let record = record?;
                        discard += record.discard;
                        let payload = record.payload;
                        let fit = payload.len().min(dst.len() - p.produced);
                        dst[p.produced..p.produced + fit].copy_from_slice(&payload[..fit]);
                        p.produced += fit;
                        self.plain_in.extend_from_slice(&payload[fit..]);
                    }
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    if append_with(&mut self.out, |b| e.encode(b).map_err(encode_error)).is_err() {
                        stop = true;
                    }
                }
                // The records are in `out` now: the callers push them.
                ConnectionState::TransmitTlsData(t) => t.done(),
                ConnectionState::WriteTraffic(_) => {
                    // Only reached once the input holds no complete record.
                    self.established = true;
                    stop = true;
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.peer_closed = true;
                    stop = true;
                }
                // BlockedHandshake: more input needed; ReadEarlyData is a server's.
                _ => stop = true,
            }
            p.used += discard;
            if stop {
                return Ok(p);
            }
        }
    }

    /// After an error: the alert rustls queued for the broker, if any, goes to `out`.
    pub(super) fn queue_alert(&mut self) {
        let status = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::EncodeTlsData(mut e)) = status.state {
            let _ = append_with(&mut self.out, |b| e.encode(b).map_err(encode_error));
        }
    }

    /// Write `out` until the socket would block; `out` is freed once empty.
    pub(super) fn push(&mut self, wire: &impl Wire) -> io::Result<()> {
        let mut at = 0;
        let r = loop {
            if at == self.out.len() {
                break Ok(());
            }
            match wire.send(&self.out[at..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => at += n,
                Err(e) if would_block(&e) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if at == self.out.len() {
            self.out = Vec::new();
        } else {
            self.out.drain(..at);
        }
        r
    }

    /// Drive the handshake as far as the socket allows now.
    pub(super) fn handshake_step(&mut self, wire: &impl Wire) -> Result<HandshakeStep, TlsError> {
        loop {
            self.push(wire)?;
            if !self.out.is_empty() {
                return Ok(HandshakeStep::Write);
            }
            if self.established {
                return Ok(HandshakeStep::Done);
            }
            // What came so far (the first time: nothing, and rustls writes the ClientHello).
            let mut input = std::mem::take(&mut self.partial_in);
            let mut spill = [0u8; 0];
            let p = self.pass(&mut input, &mut spill).map_err(TlsError::Tls);
            let used = p.as_ref().map_or(input.len(), |p| p.used);
            input.drain(..used.min(input.len()));
            // Freed when nothing is left (the server's flight can be kilobytes).
            self.partial_in = if input.is_empty() { Vec::new() } else { input };
            if p.is_err() {
                let _ = self.push(wire);
            }
            p?;
            if self.established || !self.out.is_empty() {
                continue;
            }
            if self.peer_closed {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            let n = with_scratch(&CIPHER_IN, |s| -> io::Result<usize> {
                if s.len() < READ_CHUNK {
                    s.resize(READ_CHUNK, 0);
                }
                let n = wire.recv(s)?;
                self.partial_in.extend_from_slice(&s[..n]);
                Ok(n)
            });
            match n {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
                Ok(_) => {}
                Err(e) if would_block(&e) => return Ok(HandshakeStep::Read),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Like `TcpStream::try_read`, for the plaintext.
    pub(super) fn read(&mut self, wire: &impl Wire, dst: &mut [u8]) -> io::Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        if !self.plain_in.is_empty() {
            let n = dst.len().min(self.plain_in.len());
            dst[..n].copy_from_slice(&self.plain_in[..n]);
            if n == self.plain_in.len() {
                self.plain_in = Vec::new();
            } else {
                self.plain_in.drain(..n);
            }
            return Ok(n);
        }
        if self.peer_closed {
            return Ok(0);
        }
        let r = with_scratch(&CIPHER_IN, |s| self.read_records(wire, s, dst));
        // Answers rustls owes the broker (an alert) go out now if the socket takes them, or with the
        // next write.
        if !self.out.is_empty() {
            let _ = self.push(wire);
        }
        r
    }

    /// Read ciphertext after the carried partial record into `s` until a record yields plaintext, the
    /// socket has nothing more, or the broker closed.
    pub(super) fn read_records(
        &mut self,
        wire: &impl Wire,
        s: &mut Vec<u8>,
        dst: &mut [u8],
    ) -> io::Result<usize> {
        loop {
            let carry = self.partial_in.len();
            if s.len() < carry + READ_CHUNK {
                s.resize(carry + READ_CHUNK, 0);
            }
            s[..carry].copy_from_slice(&self.partial_in);
            let n = match wire.recv(&mut s[carry..]) {
                Ok(0) => {
                    // The end of the TCP stream (with or without a close_notify before it).
                    self.peer_closed = true;
                    self.partial_in = Vec::new();
                    return Ok(0);
                }
                Ok(n) => n,
                Err(e) => return Err(e),
            };
            let filled = carry + n;
            let p = self.pass(&mut s[..filled], dst);
            let used = p.as_ref().map_or(filled, |p| p.used).min(filled);
            if used == filled {
                self.partial_in = Vec::new();
            } else {
                self.partial_in.clear();
                self.partial_in.extend_from_slice(&s[used..filled]);
            }
            let p = p.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if p.produced > 0 {
                return Ok(p.produced);
            }
            if self.peer_closed {
                return Ok(0);
            }
        }
    }

    /// Like `TcpStream::try_write`, for plaintext: the bytes taken are encrypted at once; records the
    /// socket did not take wait in `out`, and nothing more is taken until they went out.
    pub(super) fn write(&mut self, wire: &impl Wire, buf: &[u8]) -> io::Result<usize> {
        self.push(wire)?;
        if !self.out.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let take = &buf[..buf.len().min(MAX_PLAIN_PER_WRITE)];
        // A few rounds at most: rustls may first want records of its own sent (an alert, a key update).
        for _ in 0..8 {
            let status = self.conn.process_tls_records(&mut []);
            let state = status
                .state
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            match state {
                ConnectionState::WriteTraffic(mut w) => {
                    let out = &mut self.out;
                    return with_scratch(&CIPHER_OUT, |s| {
                        // Records add a header and a tag (and maybe a queued key update) to the data.
                        let room = take.len() + (take.len() / 16_384 + 2) * 128;
                        if s.len() < room {
                            s.resize(room, 0);
                        }
                        let len = loop {
                            match w.encrypt(take, s) {
                                Ok(len) => break len,
                                Err(e) => match encrypt_error(&e) {
                                    Some(need) if need > s.len() => s.resize(need, 0),
                                    _ => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                                },
                            }
                        };
                        let mut at = 0;
                        while at < len {
                            match wire.send(&s[at..len]) {
                                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                                Ok(n) => at += n,
                                Err(e) if would_block(&e) => break,
                                Err(e) => return Err(e),
                            }
                        }
                        out.extend_from_slice(&s[at..len]);
                        Ok(take.len())
                    });
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    let _ = append_with(&mut self.out, |b| e.encode(b).map_err(encode_error));
                }
                ConnectionState::TransmitTlsData(t) => {
                    t.done();
                    self.push(wire)?;
                    if !self.out.is_empty() {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                }
                // Edge-triggered, once: reads return 0 from now on; writing may go on.
                ConnectionState::PeerClosed => self.peer_closed = true,
                ConnectionState::Closed => return Err(io::ErrorKind::BrokenPipe.into()),
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(Ok(record)) = r.next_record() {
                        self.plain_in.extend_from_slice(record.payload);
                    }
                }
                _ => return Err(io::ErrorKind::NotConnected.into()),
            }
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Queue a close_notify after what waits and write as much as the socket takes now.
    pub(super) fn close_notify(&mut self, wire: &impl Wire) {
        for _ in 0..4 {
            match self.conn.process_tls_records(&mut []).state {
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    let _ = append_with(&mut self.out, |b| {
                        w.queue_close_notify(b).map_err(|e| encrypt_error(&e))
                    });
                    break;
                }
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    let _ = append_with(&mut self.out, |b| e.encode(b).map_err(encode_error));
                }
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                Ok(ConnectionState::PeerClosed) => self.peer_closed = true,
                _ => break,
            }
        }
        let _ = self.push(wire);
    }
}

pub(super) fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    //! The TLS stream against real rustls server connections over an in-memory pipe whose reads and
    //! writes can be cut short, so partial records and back-pressure happen where the test says.
    use super::*;
    use crate::mqtt::errors::TlsFailure;
    use crate::mqtt::tls_config::{Roots, TlsOptions};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::ServerConnection;
    use std::cell::Cell;
    use std::collections::VecDeque;
    use std::io::{Read, Write};
    use std::sync::Arc;

    /// Client <-> server bytes; the client's side reads at most `recv_max` at once and writes at most
    /// `send_room` more bytes until the test makes room.
    struct Pipe {
        to_server: RefCell<Vec<u8>>,
        to_client: RefCell<VecDeque<u8>>,
        recv_max: Cell<usize>,
        send_room: Cell<usize>,
        eof: Cell<bool>,
        /// Plaintext the server received.
        server_got: RefCell<Vec<u8>>,
    }

    impl Pipe {
        fn new() -> Pipe {
            Pipe {
                to_server: RefCell::default(),
                to_client: RefCell::default(),
                recv_max: Cell::new(usize::MAX),
                send_room: Cell::new(usize::MAX),
                eof: Cell::new(false),
                server_got: RefCell::default(),
            }
        }
    }

    impl Wire for Pipe {
        fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
            let mut q = self.to_client.borrow_mut();
            if q.is_empty() {
                return if self.eof.get() {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = buf.len().min(q.len()).min(self.recv_max.get());
            for (d, s) in buf.iter_mut().zip(q.drain(..n)) {
                *d = s;
            }
            Ok(n)
        }

        fn send(&self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.send_room.get());
            if n == 0 && !buf.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.send_room.set(self.send_room.get() - n);
            self.to_server.borrow_mut().extend_from_slice(&buf[..n]);
            Ok(n)
        }
    }

    struct Pki {
        ca: CertificateDer<'static>,
        chain: Vec<CertificateDer<'static>>,
        key: Vec<u8>,
    }

    /// A CA called `ca_name` and a server certificate for `localhost` signed by it.
    fn pki_of(ca_name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = leaf
            .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
            .unwrap();
        Pki {
            ca: ca_cert.der().clone(),
            chain: vec![cert.der().clone(), ca_cert.der().clone()],
            key: key.serialize_der(),
        }
    }

    fn pki() -> Pki {
        pki_of("transport test CA")
    }

    fn server_config(pki: &Pki, tls13: bool) -> Arc<rustls::ServerConfig> {
        let version = if tls13 {
            &rustls::version::TLS13
        } else {
            &rustls::version::TLS12
        };
        let c = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            pki.chain.clone(),
            PrivateKeyDer::Pkcs8(pki.key.clone().into()),
        )
        .unwrap();
        Arc::new(c)
    }

    fn client(ca: &CertificateDer<'static>) -> TlsClient {
        TlsClient::new(
            TlsOptions {
                roots: Roots::Certs(vec![ca.clone()]),
                server_name: "localhost".into(),
                alpn: vec![b"mqtt".to_vec()],
                tls12: true,
                tls13: true,
                insecure_skip_verify: false,
                resumption: true,
            },
            None,
        )
        .unwrap()
    }

    /// Move what the client sent into the server, let it process, and queue what it answers.
    fn serve(server: &mut ServerConnection, pipe: &Pipe) -> Result<(), rustls::Error> {
        let inbound = std::mem::take(&mut *pipe.to_server.borrow_mut());
        let mut rd = &inbound[..];
        let mut r = Ok(());
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            if let Err(e) = server.process_new_packets() {
                r = Err(e);
                break;
            }
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = server.reader().read(&mut chunk) {
                pipe.server_got.borrow_mut().extend_from_slice(&chunk[..n]);
            }
        }
        let mut out = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut out).unwrap();
        }
        pipe.to_client.borrow_mut().extend(out);
        r
    }

    fn connect(
        tls: &TlsClient,
        server: &mut ServerConnection,
        pipe: &Pipe,
    ) -> Result<TlsConn, TlsError> {
        let mut c = TlsConn::start(tls).map_err(TlsError::Tls)?;
        for _ in 0..100 {
            let step = c.handshake_step(pipe)?;
            let _ = serve(server, pipe);
            if step == HandshakeStep::Done {
                return Ok(c);
            }
        }
        panic!("the handshake did not finish");
    }

    fn setup(tls13: bool) -> (TlsClient, ServerConnection, Pipe, TlsConn) {
        let pki = pki();
        let tls = client(&pki.ca);
        let mut server = ServerConnection::new(server_config(&pki, tls13)).unwrap();
        let pipe = Pipe::new();
        let c = connect(&tls, &mut server, &pipe).unwrap();
        (tls, server, pipe, c)
    }

    /// Read until `want` bytes came (the pipe holds them all already).
    fn read_all(c: &mut TlsConn, pipe: &Pipe, dst_len: usize, want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut dst = vec![0u8; dst_len];
        for _ in 0..1_000_000 {
            if got.len() >= want {
                break;
            }
            match c.read(pipe, &mut dst) {
                Ok(0) => panic!("closed after {} bytes", got.len()),
                Ok(n) => got.extend_from_slice(&dst[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    panic!("would block after {} of {want} bytes", got.len())
                }
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn assert_idle(c: &TlsConn) {
        assert_eq!(c.partial_in.capacity(), 0, "no partial record kept");
        assert_eq!(c.plain_in.capacity(), 0, "no plaintext kept");
        assert_eq!(c.out.capacity(), 0, "nothing waits for the socket");
    }

    #[test]
    fn both_versions_carry_data_both_ways_and_keep_no_buffer_while_idle() {
        for tls13 in [true, false] {
            let (_tls, mut server, pipe, mut c) = setup(tls13);
            assert_idle(&c);
            let expected = if tls13 {
                rustls::ProtocolVersion::TLSv1_3
            } else {
                rustls::ProtocolVersion::TLSv1_2
            };
            assert_eq!(c.conn.protocol_version(), Some(expected));
            assert_eq!(c.conn.alpn_protocol(), None, "the server offers no ALPN");
            // client -> server
            let up = pattern(3000);
            assert_eq!(c.write(&pipe, &up).unwrap(), up.len());
            serve(&mut server, &pipe).unwrap();
            assert_eq!(*pipe.server_got.borrow(), up);
            // server -> client
            let down = pattern(5000);
            server.writer().write_all(&down).unwrap();
            serve(&mut server, &pipe).unwrap();
            assert_eq!(read_all(&mut c, &pipe, 64 * 1024, down.len()), down);
            let mut dst = [0u8; 16];
            assert_eq!(
                c.read(&pipe, &mut dst).unwrap_err().kind(),
                io::ErrorKind::WouldBlock
            );
            assert_idle(&c);
        }
    }

    #[test]
    fn records_split_across_reads_come_out_whole() {
        let (_tls, mut server, pipe, mut c) = setup(true);
        let down = pattern(40_000);
        server.writer().write_all(&down).unwrap();
        serve(&mut server, &pipe).unwrap();
        // 7 bytes per socket read: every record arrives in many pieces, headers split too.
        pipe.recv_max.set(7);
        let mut got = Vec::new();
        let mut dst = vec![0u8; 64 * 1024];
        let mut would_block = 0;
        while got.len() < down.len() {
            match c.read(&pipe, &mut dst) {
                Ok(n) => {
                    assert!(n > 0, "no close here");
                    got.extend_from_slice(&dst[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    would_block += 1;
                    assert!(would_block < 10, "the pipe still holds bytes");
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, down);
        assert_idle(&c);
    }

    #[test]
    fn a_record_larger_than_the_readers_room_is_handed_out_in_parts() {
        let (_tls, mut server, pipe, mut c) = setup(true);
        // Several full 16 KB records read with room for 1000 bytes at a time.
        let down = pattern(50_000);
        server.writer().write_all(&down).unwrap();
        serve(&mut server, &pipe).unwrap();
        let mut got = Vec::new();
        let mut dst = vec![0u8; 1000];
        while got.len() < down.len() {
            let n = c.read(&pipe, &mut dst).unwrap();
            assert!(n > 0 && n <= dst.len());
            got.extend_from_slice(&dst[..n]);
        }
        assert_eq!(got, down);
        assert!(c.plain_in.is_empty());
        assert_idle(&c);
    }

    #[test]
    fn a_full_socket_keeps_the_records_and_reports_back_pressure() {
        let (_tls, mut server, pipe, mut c) = setup(true);
        pipe.send_room.set(100);
        let first = pattern(20_000);
        let taken = c.write(&pipe, &first).unwrap();
        assert_eq!(taken, first.len(), "taken and encrypted at once");
        assert!(!c.out.is_empty(), "what the socket did not take waits");
        // Nothing more is taken while records wait.
        assert_eq!(
            c.write(&pipe, b"more").unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let mut sent = first.clone();
        // Room again, a bit at a time: the waiting records go first, then new data.
        for _ in 0..1000 {
            if c.out.is_empty() {
                break;
            }
            pipe.send_room.set(1500);
            c.push(&pipe).unwrap();
        }
        assert!(c.out.is_empty());
        assert_eq!(c.out.capacity(), 0, "freed once sent");
        pipe.send_room.set(usize::MAX);
        let second = pattern(70_000);
        let mut at = 0;
        while at < second.len() {
            let n = c.write(&pipe, &second[at..]).unwrap();
            assert!(n <= MAX_PLAIN_PER_WRITE);
            at += n;
        }
        sent.extend_from_slice(&second);
        serve(&mut server, &pipe).unwrap();
        assert_eq!(*pipe.server_got.borrow(), sent, "in order, each byte once");
        assert_idle(&c);
    }

    #[test]
    fn close_notify_both_ways() {
        let (_tls, mut server, pipe, mut c) = setup(true);
        server.writer().write_all(b"last words").unwrap();
        server.send_close_notify();
        serve(&mut server, &pipe).unwrap();
        assert_eq!(read_all(&mut c, &pipe, 1024, 10), b"last words");
        let mut dst = [0u8; 64];
        assert_eq!(c.read(&pipe, &mut dst).unwrap(), 0, "closed by the broker");
        assert_eq!(c.read(&pipe, &mut dst).unwrap(), 0, "and stays closed");
        c.close_notify(&pipe);
        serve(&mut server, &pipe).unwrap();
        let state = server.process_new_packets().unwrap();
        assert!(state.peer_has_closed(), "the server saw our close_notify");
    }

    #[test]
    fn the_end_of_the_stream_reads_as_closed() {
        let (_tls, _server, pipe, mut c) = setup(true);
        pipe.eof.set(true);
        let mut dst = [0u8; 64];
        assert_eq!(c.read(&pipe, &mut dst).unwrap(), 0);
    }

    #[test]
    fn a_key_update_from_the_server_is_followed() {
        let (_tls, mut server, pipe, mut c) = setup(true);
        server.writer().write_all(b"before").unwrap();
        server.refresh_traffic_keys().unwrap();
        server.writer().write_all(b"after").unwrap();
        serve(&mut server, &pipe).unwrap();
        assert_eq!(read_all(&mut c, &pipe, 1024, 11), b"beforeafter");
        assert_eq!(c.write(&pipe, b"still fine").unwrap(), 10);
        serve(&mut server, &pipe).unwrap();
        assert_eq!(*pipe.server_got.borrow(), b"still fine");
    }

    #[test]
    fn an_unknown_issuer_fails_the_handshake_and_tells_the_server() {
        let pki = pki();
        let other = pki_of("another CA");
        let tls = client(&other.ca);
        let mut server = ServerConnection::new(server_config(&pki, true)).unwrap();
        let pipe = Pipe::new();
        let e = match connect(&tls, &mut server, &pipe) {
            Err(TlsError::Tls(e)) => e,
            Err(TlsError::Io(e)) => panic!("io: {e}"),
            Ok(_) => panic!("a certificate from an unknown CA was accepted"),
        };
        assert_eq!(TlsFailure::of(&e), TlsFailure::UnknownIssuer, "{e:?}");
        let told = serve(&mut server, &pipe);
        assert!(
            matches!(told, Err(rustls::Error::AlertReceived(_))),
            "the server got the alert: {told:?}"
        );
    }

    #[test]
    fn a_second_connection_resumes_with_a_ticket_read_after_the_handshake() {
        for tls13 in [true, false] {
            let pki = pki();
            let tls = client(&pki.ca);
            let config = server_config(&pki, tls13);
            let mut server = ServerConnection::new(config.clone()).unwrap();
            let pipe = Pipe::new();
            let mut c = connect(&tls, &mut server, &pipe).unwrap();
            assert_eq!(c.conn.handshake_kind(), Some(rustls::HandshakeKind::Full));
            // TLS 1.3 tickets come after the handshake: reading takes them in.
            let mut dst = [0u8; 64];
            let _ = c.read(&pipe, &mut dst);
            let mut server = ServerConnection::new(config).unwrap();
            let pipe = Pipe::new();
            let c = connect(&tls, &mut server, &pipe).unwrap();
            assert_eq!(
                c.conn.handshake_kind(),
                Some(rustls::HandshakeKind::Resumed),
                "TLS 1.3: {tls13}"
            );
        }
    }
}
