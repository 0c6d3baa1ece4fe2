//! MQTT over WebSocket (RFC 6455), client side, without I/O: the HTTP upgrade request and the check of
//! its reply, and the framing of the MQTT byte stream. [`super::Session`] puts it between its byte I/O
//! and the MQTT codec.
//!
//! Costs: idle state is [`WsLink`] (12 bytes, no buffer). Outgoing MQTT bytes become one masked binary
//! frame per write, assembled in a per-thread buffer (no per-message allocation). Incoming frames are
//! unwrapped in place in the reader's buffer: payload bytes move down over the headers, so the MQTT
//! codec sees a plain byte stream; only an incomplete frame header or control frame (at most 135 bytes)
//! is carried between reads, in the session's existing carry buffer.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};

use base64::Engine as _;

/// The GUID of RFC 6455 section 1.3 that the accept key hashes with the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest upgrade reply header accepted.
pub const MAX_REPLY_HEADER: usize = 8 * 1024;

/// Largest frame payload accepted from a broker. Data frames stream through without being buffered,
/// so this guards against a broken length, not memory; it is well above the codec's largest packet.
pub const MAX_FRAME: u64 = 16 << 20;

/// Longest frame header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER: usize = 14;

/// Longest control frame payload (RFC 6455 5.5).
const MAX_CONTROL: usize = 125;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Where to upgrade: the `Host` header value and the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsEndpoint {
    host: String,
    path: String,
}

impl WsEndpoint {
    /// `host` as in the URL (an IPv6 address without brackets); the port is left out of the `Host`
    /// header when it is the scheme's default (`default_port`: 80 for ws, 443 for wss).
    pub fn new(host: &str, port: u16, default_port: u16, path: &str) -> WsEndpoint {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let host = if port == default_port {
            host
        } else {
            format!("{host}:{port}")
        };
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        WsEndpoint { host, path }
    }

    /// The request path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The upgrade request for a client `key` (see [`client_key`]).
    pub fn request(&self, key: &str) -> Vec<u8> {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
            self.path, self.host
        )
        .into_bytes()
    }
}

/// A cheap per-connection random number: std's per-thread random hash keys, which change with every
/// `RandomState` (not for cryptography; RFC 6455 needs unpredictability against a proxy's cache, not
/// secrecy).
pub fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// The `Sec-WebSocket-Key` for a random `seed`: 16 bytes, base64.
pub fn client_key(seed: u64) -> String {
    let mut bytes = [0u8; 16];
    let mut x = seed;
    for chunk in bytes.chunks_mut(8) {
        x = splitmix(x);
        let b = x.to_le_bytes();
        let n = chunk.len();
        chunk.copy_from_slice(b.get(..n).unwrap_or_default());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `Sec-WebSocket-Accept` a server must answer to `key`: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.digest().bytes())
}

/// Why an upgrade failed. Each message says what the broker did and what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    #[error("the reply to the WebSocket upgrade is not HTTP (it starts with {start:?}): is the port a WebSocket listener? (plain MQTT wants mqtt://, TLS wants wss://)")]
    NotHttp { start: String },
    #[error("the broker refused the WebSocket upgrade: HTTP {status} {reason}; check the path in the broker URL (e.g. ws://host:port/mqtt) and that the port is the broker's WebSocket listener")]
    Refused { status: u16, reason: String },
    #[error("the broker's upgrade reply is malformed: {0}")]
    Malformed(String),
    #[error("the broker's Sec-WebSocket-Accept does not match the key sent (a proxy or a broken server)")]
    Accept,
    #[error("the broker did not select the `mqtt` WebSocket subprotocol (it answered {0:?}); MQTT over WebSocket requires it")]
    Subprotocol(Option<String>),
    #[error("the broker's upgrade reply header is longer than {MAX_REPLY_HEADER} bytes")]
    TooLong,
    #[error("the broker closed the connection after {0} bytes of an incomplete upgrade reply")]
    Closed(usize),
}

/// Check the reply to an upgrade request sent with `key`, given every byte received so far (it may
/// arrive in pieces). `Ok(None)`: incomplete, read more. `Ok(Some(n))`: the upgrade succeeded and its
/// header is the first `n` bytes; what follows is the first WebSocket frames.
pub fn check_reply(got: &[u8], key: &str) -> Result<Option<usize>, UpgradeError> {
    const PREFIX: &[u8] = b"HTTP/";
    let k = got.len().min(PREFIX.len());
    if got.get(..k) != PREFIX.get(..k) {
        let start = String::from_utf8_lossy(got.get(..got.len().min(16)).unwrap_or_default());
        return Err(UpgradeError::NotHttp {
            start: start.into_owned(),
        });
    }
    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
        if got.len() > MAX_REPLY_HEADER {
            return Err(UpgradeError::TooLong);
        }
        return Ok(None);
    };
    let header = std::str::from_utf8(got.get(..end).unwrap_or_default())
        .map_err(|_| UpgradeError::Malformed("the header is not UTF-8".into()))?;
    let mut lines = header.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| UpgradeError::Malformed(format!("status line {status_line:?}")))?;
    if status != 101 {
        return Err(UpgradeError::Refused {
            status,
            reason: parts.next().unwrap_or_default().trim().to_owned(),
        });
    }
    let (mut upgrade, mut connection, mut accept, mut protocol) = (None, None, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(UpgradeError::Malformed(format!("header line {line:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade = Some(value),
            "connection" => connection = Some(value),
            "sec-websocket-accept" => accept = Some(value),
            "sec-websocket-protocol" => protocol = Some(value),
            _ => {}
        }
    }
    if !upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        return Err(UpgradeError::Malformed(format!(
            "Upgrade: {:?} (expected websocket)",
            upgrade.unwrap_or("<missing>")
        )));
    }
    if !connection.is_some_and(|c| {
        c.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    }) {
        return Err(UpgradeError::Malformed(format!(
            "Connection: {:?} (expected Upgrade)",
            connection.unwrap_or("<missing>")
        )));
    }
    if accept != Some(accept_key(key).as_str()) {
        return Err(UpgradeError::Accept);
    }
    if protocol != Some("mqtt") {
        return Err(UpgradeError::Subprotocol(protocol.map(str::to_owned)));
    }
    Ok(Some(end + 4))
}

/// Why a WebSocket session ended or was broken by the broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("the broker closed the WebSocket (close code {})", match .code { Some(c) => c.to_string(), None => "none".into() })]
    Closed { code: Option<u16> },
    #[error("the broker sent a text frame; MQTT over WebSocket uses binary frames only")]
    Text,
    #[error("the broker sent a masked frame (a server must not mask, RFC 6455 5.1)")]
    Masked,
    #[error("the broker set reserved bits {0:#04x} of a frame (no extension was negotiated)")]
    Reserved(u8),
    #[error("the broker sent a frame with the unknown opcode {0:#x}")]
    Opcode(u8),
    #[error("the broker sent a continuation frame outside a fragmented message")]
    Continuation,
    #[error("the broker started a new message inside a fragmented one")]
    Interleaved,
    #[error("the broker sent a fragmented or over-long ({0} bytes) control frame")]
    Control(u64),
    #[error("the broker sent a frame of {0} bytes (limit {MAX_FRAME})")]
    Oversized(u64),
}

/// A control frame the reader stopped at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A ping: its payload is `buf[range]` (still intact until the next call); a pong is owed.
    Ping(std::ops::Range<usize>),
    /// A close frame: the session is over.
    Close { code: Option<u16> },
}

/// How far [`WsReader::unframe`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// End of the MQTT bytes written so far.
    pub out: usize,
    /// First wire byte not consumed: `buf[at..]` is an incomplete header or control frame when no
    /// event stopped the reader.
    pub at: usize,
    pub event: Option<Event>,
}

const FRAGMENTED: u8 = 1;

/// The reading side of a WebSocket session: a few bytes of state between reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsReader {
    /// Payload bytes still to come in the current data frame.
    remaining: u32,
    /// How many bytes at the end of the carried input are wire bytes not yet unwrapped.
    raw_carry: u16,
    flags: u8,
}

impl WsReader {
    /// Wire bytes at the end of the carry buffer (an incomplete header or control frame).
    pub fn raw_carry(&self) -> usize {
        usize::from(self.raw_carry)
    }

    /// Record how many carried bytes are wire bytes (`buf[at..]` of the last [`Step`]).
    pub fn set_raw_carry(&mut self, n: usize) {
        self.raw_carry = u16::try_from(n).unwrap_or(u16::MAX);
    }

    /// Unwrap the wire bytes `buf[at..]` in place: payload bytes of data frames are moved to
    /// `buf[out..]` (`out <= at`; they only move down), headers dropped, pongs skipped. Stops at the
    /// end of the input, at an incomplete header or control frame, or after a ping or close.
    pub fn unframe(
        &mut self,
        buf: &mut [u8],
        mut out: usize,
        mut at: usize,
    ) -> Result<Step, WsError> {
        let end = buf.len();
        while at < end {
            if self.remaining > 0 {
                let n = (end - at).min(self.remaining as usize);
                buf.copy_within(at..at + n, out);
                out += n;
                at += n;
                // n <= remaining, which fits in u32
                self.remaining -= u32::try_from(n).unwrap_or(self.remaining);
                continue;
            }
            let avail = buf.get(at..).unwrap_or_default();
            let Some((b0, b1, hlen, len)) = parse_header(avail)? else {
                break;
            };
            let fin = b0 & 0x80 != 0;
            let opcode = b0 & 0x0f;
            match opcode {
                OP_BINARY | OP_CONTINUATION => {
                    let fragmented = self.flags & FRAGMENTED != 0;
                    if opcode == OP_BINARY && fragmented {
                        return Err(WsError::Interleaved);
                    }
                    if opcode == OP_CONTINUATION && !fragmented {
                        return Err(WsError::Continuation);
                    }
                    if len > MAX_FRAME {
                        return Err(WsError::Oversized(len));
                    }
                    if fin {
                        self.flags &= !FRAGMENTED;
                    } else {
                        self.flags |= FRAGMENTED;
                    }
                    self.remaining = u32::try_from(len).map_err(|_| WsError::Oversized(len))?;
                    at += hlen;
                }
                OP_TEXT => return Err(WsError::Text),
                OP_CLOSE | OP_PING | OP_PONG => {
                    if !fin || len > MAX_CONTROL as u64 {
                        return Err(WsError::Control(len));
                    }
                    let total = hlen + len as usize;
                    if avail.len() < total {
                        break;
                    }
                    let start = at + hlen;
                    at += total;
                    let _ = b1;
                    match opcode {
                        OP_PING => {
                            return Ok(Step {
                                out,
                                at,
                                event: Some(Event::Ping(start..at)),
                            })
                        }
                        OP_CLOSE => {
                            let code = buf
                                .get(start..start + 2)
                                .filter(|_| len >= 2)
                                .map(|c| u16::from_be_bytes([c[0], c[1]]));
                            return Ok(Step {
                                out,
                                at,
                                event: Some(Event::Close { code }),
                            });
                        }
                        _ => {}
                    }
                }
                other => return Err(WsError::Opcode(other)),
            }
        }
        Ok(Step {
            out,
            at,
            event: None,
        })
    }
}

/// `(b0, b1, header length, payload length)` of a server frame at the start of `b`, or `None` when the
/// header is incomplete.
fn parse_header(b: &[u8]) -> Result<Option<(u8, u8, usize, u64)>, WsError> {
    let (Some(&b0), Some(&b1)) = (b.first(), b.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WsError::Reserved(b0 & 0x70));
    }
    if b1 & 0x80 != 0 {
        return Err(WsError::Masked);
    }
    let (hlen, len) = match b1 & 0x7f {
        126 => {
            let Some(x) = b.get(2..4) else {
                return Ok(None);
            };
            (4, u64::from(u16::from_be_bytes([x[0], x[1]])))
        }
        127 => {
            let Some(x) = b.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(x);
            let len = u64::from_be_bytes(a);
            if len >> 63 != 0 {
                return Err(WsError::Oversized(len));
            }
            (10, len)
        }
        n => (2, u64::from(n)),
    };
    Ok(Some((b0, b1, hlen, len)))
}

/// The writing side: the masking keys' generator (xorshift32; never zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsWriter {
    rng: u32,
}

impl WsWriter {
    pub fn new(seed: u64) -> WsWriter {
        let x = (seed ^ (seed >> 32)) as u32;
        WsWriter {
            rng: if x == 0 { 0x9E37_79B9 } else { x },
        }
    }

    /// The next frame's masking key.
    pub fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x.to_le_bytes()
    }
}

/// Bytes of a client frame carrying `n` payload bytes.
pub fn frame_len(n: usize) -> usize {
    header_len(n) + n
}

fn header_len(n: usize) -> usize {
    match n {
        0..=125 => 6,
        126..=0xffff => 8,
        _ => 14,
    }
}

/// Write a client frame header (FIN, `opcode`, MASK, length, `mask`) into `out`; returns its length.
fn write_header(out: &mut [u8; MAX_HEADER], opcode: u8, n: usize, mask: [u8; 4]) -> usize {
    out[0] = 0x80 | opcode;
    let at = match n {
        0..=125 => {
            out[1] = 0x80 | n as u8;
            2
        }
        126..=0xffff => {
            out[1] = 0x80 | 126;
            out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = 0x80 | 127;
            out[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            10
        }
    };
    out[at..at + 4].copy_from_slice(&mask);
    at + 4
}

/// XOR `buf` with `mask` (RFC 6455 5.3), in place; `buf[0]` is payload byte 0.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = buf.chunks_exact_mut(4);
    for c in &mut chunks {
        let mut w = [0u8; 4];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u32::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    for (b, m) in chunks.into_remainder().iter_mut().zip(mask) {
        *b ^= m;
    }
}

/// Append `payload` to `out` as one binary client frame (FIN, masked with `mask`). The payload is
/// copied and masked in place in `out`, which the caller reuses: no allocation once it has grown.
pub fn encode_binary(payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    encode(OP_BINARY, payload, mask, out);
}

fn encode(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    let mut h = [0u8; MAX_HEADER];
    let hl = write_header(&mut h, opcode, payload.len(), mask);
    out.extend_from_slice(h.get(..hl).unwrap_or_default());
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(p) = out.get_mut(start..) {
        apply_mask(p, mask);
    }
}

/// A control frame from the client, on the stack.
#[derive(Debug, Clone, Copy)]
pub struct ControlFrame {
    bytes: [u8; MAX_HEADER + MAX_CONTROL],
    len: usize,
}

impl ControlFrame {
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    fn new(opcode: u8, payload: &[u8], mask: [u8; 4]) -> ControlFrame {
        let payload = payload
            .get(..payload.len().min(MAX_CONTROL))
            .unwrap_or_default();
        let mut h = [0u8; MAX_HEADER];
        let hl = write_header(&mut h, opcode, payload.len(), mask);
        let mut bytes = [0u8; MAX_HEADER + MAX_CONTROL];
        bytes[..hl].copy_from_slice(&h[..hl]);
        let end = hl + payload.len();
        bytes[hl..end].copy_from_slice(payload);
        apply_mask(&mut bytes[hl..end], mask);
        ControlFrame { bytes, len: end }
    }

    /// The pong answering a ping with `payload`.
    pub fn pong(payload: &[u8], mask: [u8; 4]) -> ControlFrame {
        ControlFrame::new(OP_PONG, payload, mask)
    }

    /// A close frame with `code` (1000: normal closure).
    pub fn close(code: u16, mask: [u8; 4]) -> ControlFrame {
        ControlFrame::new(OP_CLOSE, &code.to_be_bytes(), mask)
    }
}

thread_local! {
    /// Frame assembly buffer of this thread, reused by every session on it.
    static FRAME_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Assemble `payload` as a binary frame masked with `mask` in this thread's buffer and hand it to
/// `send`. The buffer keeps its size (up to 1 MiB) for the next frame on this thread.
pub fn with_frame<R>(payload: &[u8], mask: [u8; 4], send: impl FnOnce(&[u8]) -> R) -> R {
    const KEEP: usize = 1 << 20;
    FRAME_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            encode_binary(payload, mask, &mut buf);
            let r = send(&buf);
            if buf.capacity() > KEEP {
                *buf = Vec::new();
            }
            r
        }
        // Re-entered from `send` (not done today): a buffer of its own.
        Err(_) => {
            let mut buf = Vec::with_capacity(frame_len(payload.len()));
            encode_binary(payload, mask, &mut buf);
            send(&buf)
        }
    })
}

/// What a WebSocket session keeps between reads and writes: 12 bytes, no buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsLink {
    pub reader: WsReader,
    pub writer: WsWriter,
}

impl WsLink {
    pub fn new(seed: u64) -> WsLink {
        WsLink {
            reader: WsReader::default(),
            writer: WsWriter::new(seed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame (unmasked).
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n @ 0..=125 => v.push(n as u8),
            n @ 126..=0xffff => {
                v.push(126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(payload);
        v
    }

    /// MQTT bytes, pings' payloads, the close code (if a close came).
    type Read = (Vec<u8>, Vec<Vec<u8>>, Option<Option<u16>>);

    /// What a client that reads `wire` in the given pieces sees: the MQTT bytes, pings' payloads and
    /// the close code, carrying incomplete wire bytes between pieces like the session does.
    fn read_in_pieces(wire: &[u8], cuts: &[usize]) -> Result<Read, WsError> {
        let mut r = WsReader::default();
        let mut carry: Vec<u8> = Vec::new(); // wire bytes only (the MQTT bytes go to `mqtt`)
        let mut mqtt = Vec::new();
        let mut pings = Vec::new();
        let mut bounds = cuts.to_vec();
        bounds.push(wire.len());
        let mut from = 0;
        for &to in &bounds {
            let mut buf = carry.clone();
            buf.extend_from_slice(&wire[from..to]);
            from = to;
            let mut out = 0;
            let mut at = 0;
            loop {
                let s = r.unframe(&mut buf, out, at)?;
                out = s.out;
                at = s.at;
                match s.event {
                    Some(Event::Ping(range)) => pings.push(buf[range].to_vec()),
                    Some(Event::Close { code }) => {
                        mqtt.extend_from_slice(&buf[..out]);
                        return Ok((mqtt, pings, Some(code)));
                    }
                    None => break,
                }
            }
            mqtt.extend_from_slice(&buf[..out]);
            carry = buf[at..].to_vec();
            r.set_raw_carry(carry.len());
            assert!(carry.len() <= 10 + MAX_CONTROL, "carry is bounded");
        }
        Ok((mqtt, pings, None))
    }

    #[test]
    fn accept_key_of_the_rfc_example() {
        // RFC 6455 section 1.3
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn client_keys_are_16_random_bytes_and_differ_per_seed() {
        let a = client_key(seed());
        let b = client_key(seed());
        assert_eq!(a.len(), 24);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 16);
        assert_ne!(a, b);
        assert_eq!(client_key(7), client_key(7));
    }

    #[test]
    fn the_request_names_path_host_key_version_and_subprotocol() {
        let e = WsEndpoint::new("broker.local", 8080, 80, "/mqtt");
        let r = String::from_utf8(e.request("KEY")).unwrap();
        assert!(r.starts_with("GET /mqtt HTTP/1.1\r\n"), "{r}");
        for h in [
            "Host: broker.local:8080\r\n",
            "Upgrade: websocket\r\n",
            "Connection: Upgrade\r\n",
            "Sec-WebSocket-Key: KEY\r\n",
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Protocol: mqtt\r\n",
        ] {
            assert!(r.contains(h), "{h} in {r}");
        }
        assert!(r.ends_with("\r\n\r\n"));
        let e = WsEndpoint::new("::1", 80, 80, "ws");
        let r = String::from_utf8(e.request("K")).unwrap();
        assert!(
            r.contains("Host: [::1]\r\n") && r.starts_with("GET /ws "),
            "{r}"
        );
    }

    fn reply(key: &str, protocol: Option<&str>) -> String {
        let mut s = format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            accept_key(key)
        );
        if let Some(p) = protocol {
            s.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
        }
        s.push_str("\r\n");
        s
    }

    #[test]
    fn a_reply_arriving_in_pieces_is_complete_only_at_its_blank_line() {
        let key = client_key(1);
        let mut wire = reply(&key, Some("mqtt")).into_bytes();
        let header = wire.len();
        wire.extend_from_slice(&server_frame(true, OP_BINARY, &[0x20, 2, 0, 0]));
        for cut in 0..header {
            assert_eq!(check_reply(&wire[..cut], &key), Ok(None), "cut at {cut}");
        }
        for cut in header..=wire.len() {
            assert_eq!(
                check_reply(&wire[..cut], &key),
                Ok(Some(header)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn refusals_and_bad_replies_name_the_reason() {
        let key = client_key(2);
        let e =
            check_reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", &key).unwrap_err();
        assert_eq!(
            e,
            UpgradeError::Refused {
                status: 404,
                reason: "Not Found".into()
            }
        );
        assert!(e.to_string().contains("HTTP 404 Not Found"), "{e}");
        assert!(e.to_string().contains("path"), "{e}");
        // an MQTT listener answers nothing; a TLS one or another protocol answers non-HTTP at once
        let e = check_reply(&[0x15, 0x03, 0x01], &key).unwrap_err();
        assert!(matches!(e, UpgradeError::NotHttp { .. }), "{e}");
        assert_eq!(check_reply(b"HTT", &key), Ok(None));
        // wrong accept
        let bad = reply(&client_key(3), Some("mqtt"));
        assert_eq!(check_reply(bad.as_bytes(), &key), Err(UpgradeError::Accept));
        // no or another subprotocol
        assert_eq!(
            check_reply(reply(&key, None).as_bytes(), &key),
            Err(UpgradeError::Subprotocol(None))
        );
        assert_eq!(
            check_reply(reply(&key, Some("mqttv3.1")).as_bytes(), &key),
            Err(UpgradeError::Subprotocol(Some("mqttv3.1".into())))
        );
        // not an upgrade
        let no_upgrade = format!(
            "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(&key)
        );
        assert!(matches!(
            check_reply(no_upgrade.as_bytes(), &key),
            Err(UpgradeError::Malformed(_))
        ));
        // a header that never ends
        let mut long = b"HTTP/1.1 101 x\r\n".to_vec();
        long.resize(MAX_REPLY_HEADER + 1, b'a');
        assert_eq!(check_reply(&long, &key), Err(UpgradeError::TooLong));
    }

    #[test]
    fn client_frames_are_masked_binary_with_fin_at_each_length_form() {
        let mut w = WsWriter::new(42);
        for n in [0usize, 1, 125, 126, 0xffff, 0x10000] {
            let payload: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let mask = w.next_mask();
            let mut out = vec![0xEE]; // appends after what is there
            encode_binary(&payload, mask, &mut out);
            let f = &out[1..];
            assert_eq!(f.len(), frame_len(n));
            assert_eq!(f[0], 0x82, "FIN + binary");
            assert_eq!(f[1] & 0x80, 0x80, "masked");
            let (len, hl) = match f[1] & 0x7f {
                126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                l => (l as usize, 2),
            };
            assert_eq!(len, n);
            assert_eq!(&f[hl..hl + 4], &mask);
            let mut body = f[hl + 4..].to_vec();
            apply_mask(&mut body, mask);
            assert_eq!(body, payload, "unmasks to the payload at n = {n}");
            if n >= 8 {
                assert_ne!(&f[hl + 4..], &payload[..], "masked on the wire");
            }
        }
    }

    #[test]
    fn masks_change_per_frame_and_are_never_stuck() {
        let mut w = WsWriter::new(0);
        let a = w.next_mask();
        let b = w.next_mask();
        assert_ne!(a, b);
        assert_ne!(a, [0; 4]);
    }

    #[test]
    fn control_frames_from_the_client() {
        let mask = [1, 2, 3, 4];
        let p = ControlFrame::pong(b"hi", mask);
        let b = p.as_bytes();
        assert_eq!(b[0], 0x8A);
        assert_eq!(b[1], 0x80 | 2);
        assert_eq!(&b[2..6], &mask);
        assert_eq!([b[6] ^ 1, b[7] ^ 2], *b"hi");
        let c = ControlFrame::close(1000, mask);
        let b = c.as_bytes();
        assert_eq!(b[0], 0x88);
        assert_eq!([b[6] ^ 1, b[7] ^ 2], 1000u16.to_be_bytes());
    }

    #[test]
    fn with_frame_reuses_the_thread_buffer() {
        let got = with_frame(b"abc", [0; 4], |f| f.to_vec());
        assert_eq!(got, [0x82, 0x83, 0, 0, 0, 0, b'a', b'b', b'c']);
        let cap = FRAME_BUF.with(|b| b.borrow().capacity());
        with_frame(b"de", [9; 4], |f| assert_eq!(f.len(), 8));
        assert_eq!(
            FRAME_BUF.with(|b| b.borrow().capacity()),
            cap,
            "no new allocation"
        );
    }

    /// A stream exercising every case: 7/16/64-bit lengths, a fragmented message with a ping and a
    /// pong in the middle, an empty frame, several frames, then a close with a code.
    fn mixed_stream() -> (Vec<u8>, Vec<u8>) {
        let mut wire = Vec::new();
        let mut mqtt = Vec::new();
        let push =
            |fin: bool, op: u8, p: Vec<u8>, data: bool, wire: &mut Vec<u8>, mqtt: &mut Vec<u8>| {
                wire.extend(server_frame(fin, op, &p));
                if data {
                    mqtt.extend(p);
                }
            };
        push(
            true,
            OP_BINARY,
            vec![0x20, 2, 0, 0],
            true,
            &mut wire,
            &mut mqtt,
        );
        push(
            true,
            OP_BINARY,
            (0..300).map(|i| i as u8).collect(),
            true,
            &mut wire,
            &mut mqtt,
        );
        push(false, OP_BINARY, vec![0x30, 5], true, &mut wire, &mut mqtt);
        push(
            true,
            OP_PING,
            b"ping!".to_vec(),
            false,
            &mut wire,
            &mut mqtt,
        );
        push(
            false,
            OP_CONTINUATION,
            vec![0, 1, b't'],
            true,
            &mut wire,
            &mut mqtt,
        );
        push(true, OP_PONG, b"p".to_vec(), false, &mut wire, &mut mqtt);
        push(
            true,
            OP_CONTINUATION,
            vec![b'x', b'y'],
            true,
            &mut wire,
            &mut mqtt,
        );
        push(true, OP_BINARY, vec![], true, &mut wire, &mut mqtt);
        // a 64-bit length form carrying a short payload (legal, if wasteful)
        wire.extend_from_slice(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0, 3, 0xd0, 0, 0xc0]);
        mqtt.extend_from_slice(&[0xd0, 0, 0xc0]);
        push(
            true,
            OP_BINARY,
            (0..70_000).map(|i| (i % 251) as u8).collect(),
            true,
            &mut wire,
            &mut mqtt,
        );
        push(
            true,
            OP_CLOSE,
            vec![0x03, 0xe8, b'b', b'y', b'e'],
            false,
            &mut wire,
            &mut mqtt,
        );
        (wire, mqtt)
    }

    #[test]
    fn one_read_unwraps_every_frame() {
        let (wire, mqtt) = mixed_stream();
        let (got, pings, close) = read_in_pieces(&wire, &[]).unwrap();
        assert_eq!(got, mqtt);
        assert_eq!(pings, vec![b"ping!".to_vec()]);
        assert_eq!(close, Some(Some(1000)));
    }

    #[test]
    fn a_stream_split_at_every_offset_reads_the_same() {
        let (wire, mqtt) = mixed_stream();
        // every single cut (the 70 000-byte frame is the tail: cut through its header and start, and
        // every 997th byte of its body)
        let big_start = wire.len() - 70_000 - 10 - 7;
        let offsets = (1..wire.len())
            .filter(|&c| c < big_start + 200 || c % 997 == 0 || c > wire.len() - 200);
        for cut in offsets {
            let (got, pings, close) = read_in_pieces(&wire, &[cut]).unwrap();
            assert_eq!(got, mqtt, "cut at {cut}");
            assert_eq!(pings.len(), 1, "cut at {cut}");
            assert_eq!(close, Some(Some(1000)), "cut at {cut}");
        }
        // byte by byte, over the short frames
        let cuts: Vec<usize> = (1..big_start + 20).collect();
        let (got, _, close) = read_in_pieces(&wire, &cuts).unwrap();
        assert_eq!(got, mqtt);
        assert_eq!(close, Some(Some(1000)));
    }

    proptest::proptest! {
        #[test]
        fn any_split_into_pieces_reads_the_same(mut cuts in proptest::collection::vec(0usize..71_000, 0..12)) {
            let (wire, mqtt) = mixed_stream();
            for c in &mut cuts { *c %= wire.len(); }
            cuts.sort_unstable();
            let (got, pings, close) = read_in_pieces(&wire, &cuts).unwrap();
            proptest::prop_assert_eq!(got, mqtt);
            proptest::prop_assert_eq!(pings.len(), 1);
            proptest::prop_assert_eq!(close, Some(Some(1000)));
        }
    }

    #[test]
    fn protocol_errors_from_the_server() {
        let cases: Vec<(Vec<u8>, WsError)> = vec![
            (server_frame(true, OP_TEXT, b"hi"), WsError::Text),
            (vec![0x82, 0x81, 1, 2, 3, 4, 5], WsError::Masked),
            (vec![0xC2, 0], WsError::Reserved(0x40)),
            (server_frame(true, 0x3, b""), WsError::Opcode(3)),
            (
                server_frame(true, OP_CONTINUATION, b"x"),
                WsError::Continuation,
            ),
            (
                [
                    server_frame(false, OP_BINARY, b"a"),
                    server_frame(true, OP_BINARY, b"b"),
                ]
                .concat(),
                WsError::Interleaved,
            ),
            (server_frame(false, OP_PING, b""), WsError::Control(0)),
            (vec![0x89, 126, 0, 200], WsError::Control(200)),
            (
                [&[0x82u8, 127][..], &(MAX_FRAME + 1).to_be_bytes()].concat(),
                WsError::Oversized(MAX_FRAME + 1),
            ),
            (
                [&[0x82u8, 127][..], &(1u64 << 63).to_be_bytes()].concat(),
                WsError::Oversized(1 << 63),
            ),
        ];
        for (wire, want) in cases {
            assert_eq!(read_in_pieces(&wire, &[]).unwrap_err(), want, "{wire:?}");
        }
    }

    #[test]
    fn a_close_without_a_code_and_an_empty_ping() {
        let wire = [
            server_frame(true, OP_PING, b""),
            server_frame(true, OP_CLOSE, b""),
        ]
        .concat();
        let (got, pings, close) = read_in_pieces(&wire, &[]).unwrap();
        assert!(got.is_empty());
        assert_eq!(pings, vec![Vec::<u8>::new()]);
        assert_eq!(close, Some(None));
        assert_eq!(
            WsError::Closed { code: Some(1001) }.to_string(),
            "the broker closed the WebSocket (close code 1001)"
        );
    }

    #[test]
    fn idle_state_is_a_few_bytes() {
        assert!(
            std::mem::size_of::<WsLink>() <= 12,
            "{}",
            std::mem::size_of::<WsLink>()
        );
        assert!(std::mem::size_of::<Option<WsLink>>() <= 16);
    }
}
