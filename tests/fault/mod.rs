//! A scripted fault broker: a small MQTT 3.1.1 broker on `127.0.0.1:0` for the fault cases of the
//! measurement proofs. It is an independent witness (it counts what it really received) and a fault
//! injector (it withholds acknowledgements, drops connections, duplicates and reorders deliveries), so
//! tests can assert what fleetstorm measured against what actually happened on the wire.
//!
//! What it speaks: CONNECT → CONNACK (success, or as scripted: a refusal code, garbage, or a CONNACK
//! followed by malformed packets), PINGREQ → PINGRESP, PUBLISH QoS 1 → PUBACK, PUBLISH
//! QoS 2 → PUBREC and PUBREL → PUBCOMP, SUBSCRIBE → SUBACK (granted QoS 0), DISCONNECT closes. Every
//! PUBLISH is forwarded at QoS 0 to the subscribers whose filters match. It does not retain, queue for
//! offline sessions or speak MQTT 5. Malformed input closes that connection; nothing here panics on it.
//!
//! Hostile behaviours for lifecycle tests (each off by default): acknowledge nothing ever
//! ([`Script::never_ack`]), stop reading sockets at a time ([`Script::stop_reading_at`], with a small
//! receive buffer from [`Script::receive_buffer`] so a client's writes back up quickly), never answer
//! CONNECT ([`Script::no_connack`]), close each connection right after its CONNACK
//! ([`Script::drop_after_connack`]), or write arbitrary bytes right after the CONNACK
//! ([`Script::after_connack`], e.g. garbage or an oversized packet header).
//! A scripted DISCONNECT ([`Script::disconnect_at`]) sends every open connection a broker DISCONNECT and
//! leaves the socket open, so only a client that handles the packet ends its session.
//! A scripted restart (`restart`) closes every connection and, for a window, closes each new connection as soon
//! as it is accepted (a broker that is down or still starting), then serves again: every client must reconnect.
//!
//! Script times are measured from the first CONNECT the broker accepts, so a test can place faults
//! relative to the run it drives without sharing a clock with it.
//!
//! Plain std threads: one accepting, one per connection. Each connection thread reads with a timeout
//! so it also wakes up to release withheld acknowledgements and to drop its connection on time.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest packet accepted; anything larger closes the connection.
const MAX_PACKET: usize = 1 << 20;
/// How often an idle connection thread looks at the clock (stop flag, drop times).
const IDLE_TICK: Duration = Duration::from_millis(20);

/// A window during which acknowledgements are withheld.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// Start, from the first CONNECT.
    pub from: Duration,
    pub duration: Duration,
}

/// How the broker answers every CONNECT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ConnectReply {
    /// CONNACK with success (the default).
    #[default]
    Accept,
    /// CONNACK with this refusal code (a 3.1.1 return code, or an MQTT 5 reason code when the CONNECT
    /// was MQTT 5), then close the connection, as a refusing broker does.
    Refuse(u8),
    /// These bytes instead of a CONNACK, then close: a listener that is not an MQTT broker.
    Garbage(Vec<u8>),
}

/// What the broker does wrong, and when.
#[derive(Debug, Clone, Default)]
pub struct Script {
    stalls: Vec<Stall>,
    /// Windows during which connections are not read (a broker too slow to take what is sent).
    pauses: Vec<Stall>,
    drops: Vec<Duration>,
    /// Times at which every open connection is sent a DISCONNECT (and left open).
    disconnects: Vec<Duration>,
    /// `(from, duration)`: new connections are closed at once.
    down: Vec<(Duration, Duration)>,
    duplicate: HashSet<u64>,
    reorder: HashSet<u64>,
    connect_reply: ConnectReply,
    never_ack: bool,
    stop_reading: Option<Duration>,
    receive_buffer: Option<usize>,
    no_connack: bool,
    drop_after_connack: bool,
    after_connack: Vec<u8>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// Acknowledgements (PUBACK, PUBREC, PUBCOMP) owed for packets received in `[from, from + duration)`
    /// are withheld and released together, in order, when the window ends.
    pub fn stall(mut self, from: Duration, duration: Duration) -> Script {
        self.stalls.push(Stall { from, duration });
        self
    }

    /// Stop reading every connection during `[from, from + duration)`: what clients send waits in the
    /// socket buffers (theirs and this broker's receive buffer), as with a broker that cannot keep up.
    pub fn pause_reading(mut self, from: Duration, duration: Duration) -> Script {
        self.pauses.push(Stall { from, duration });
        self
    }

    /// At `at`, close every connection that was open then (withheld acknowledgements are discarded).
    pub fn drop_connections_at(mut self, at: Duration) -> Script {
        self.drops.push(at);
        self
    }

    /// At `at`, write a DISCONNECT to every connection that was open then and keep serving it: the
    /// broker has ended the session but leaves closing the socket to the client (counted in
    /// [`Stats::disconnects_sent`]).
    pub fn disconnect_at(mut self, at: Duration) -> Script {
        self.disconnects.push(at);
        self
    }

    /// Answer every CONNECT this way (see [`ConnectReply`]).
    pub fn connect_reply(mut self, reply: ConnectReply) -> Script {
        self.connect_reply = reply;
        self
    }

    /// A broker restart: at `at`, close every open connection, then close every new connection as soon as it
    /// is accepted until `at + down_for` (its TCP handshake completes, the CONNECT is never answered);
    /// after that, serve normally again. Subscriptions do not survive (nothing is persisted).
    pub fn restart(mut self, at: Duration, down_for: Duration) -> Script {
        self.drops.push(at);
        self.down.push((at, down_for));
        self
    }

    /// Deliver forwarded message number `k` (from 0, counting every PUBLISH the broker forwards) twice.
    pub fn duplicate_delivery(mut self, k: u64) -> Script {
        self.duplicate.insert(k);
        self
    }

    /// Deliver forwarded messages `k` and `k + 1` in swapped order.
    pub fn reorder_pair(mut self, k: u64) -> Script {
        self.reorder.insert(k);
        self
    }

    /// Never acknowledge a publish (no PUBACK, PUBREC or PUBCOMP); everything else is answered.
    pub fn never_ack(mut self) -> Script {
        self.never_ack = true;
        self
    }

    /// From `at` on, stop reading every connection (they stay open; the client's writes back up in the
    /// socket buffers). Counted in [`Stats::stopped_reading`].
    pub fn stop_reading_at(mut self, at: Duration) -> Script {
        self.stop_reading = Some(at);
        self
    }

    /// Ask the kernel for a receive buffer of about `bytes` on accepted connections (`SO_RCVBUF` on
    /// the listener, inherited by each connection), so a broker that stops reading backs up quickly.
    pub fn receive_buffer(mut self, bytes: usize) -> Script {
        self.receive_buffer = Some(bytes);
        self
    }

    /// Read CONNECT but never answer it (a broker that accepts TCP and then says nothing).
    pub fn no_connack(mut self) -> Script {
        self.no_connack = true;
        self
    }

    /// Close each connection right after writing its CONNACK.
    pub fn drop_after_connack(mut self) -> Script {
        self.drop_after_connack = true;
        self
    }

    /// Write `bytes` right after each CONNACK (garbage, an oversized packet header, an unexpected
    /// packet), then carry on as usual.
    pub fn after_connack(mut self, bytes: &[u8]) -> Script {
        self.after_connack = bytes.to_vec();
        self
    }
}

/// What the broker saw and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub connects: u64,
    /// PUBLISH packets received, by QoS.
    pub publishes: [u64; 3],
    /// Acknowledgements held back by a stall (released or discarded).
    pub acks_withheld: u64,
    /// Connections closed by `drop_connections_at`.
    pub dropped: u64,
    /// DISCONNECT packets written by `disconnect_at`.
    pub disconnects_sent: u64,
    /// PUBLISH packets written to subscribers (duplicates included).
    pub deliveries: u64,
    /// CONNACKs written.
    pub connacks: u64,
    /// Connections closed by `drop_after_connack`.
    pub dropped_after_connack: u64,
    /// Connections that stopped reading because of `stop_reading_at`.
    pub stopped_reading: u64,
    /// PUBLISH packets received that no subscriber's filter matched (nothing forwarded).
    pub unforwarded: u64,
    /// Connections closed on accept because a scripted restart had the broker down.
    pub refused_while_down: u64,
}

impl Stats {
    pub fn publishes_total(&self) -> u64 {
        self.publishes.iter().sum()
    }
}

struct Subscriber {
    conn: u64,
    filters: Vec<String>,
    out: Arc<Mutex<TcpStream>>,
}

#[derive(Default)]
struct Forwarding {
    subscribers: Vec<Subscriber>,
    /// Messages forwarded so far (the script's `k`).
    next: u64,
    /// A message held back to be delivered after the next one.
    held: Option<(String, Vec<u8>)>,
}

struct Shared {
    script: Script,
    first_connect: OnceLock<Instant>,
    stats: Mutex<Stats>,
    forwarding: Mutex<Forwarding>,
    stop: AtomicBool,
}

/// Lock, and keep going if a test thread panicked while holding the lock.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fault broker; stops when dropped.
pub struct FaultBroker {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultBroker {
    /// Start on a free loopback port.
    pub fn start(script: Script) -> FaultBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        if let Some(bytes) = script.receive_buffer {
            set_receive_buffer(&listener, bytes);
        }
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            script,
            first_connect: OnceLock::new(),
            stats: Mutex::new(Stats::default()),
            forwarding: Mutex::new(Forwarding::default()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            let mut next_conn = 0u64;
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if s.is_down() {
                    lock(&s.stats).refused_while_down += 1;
                    let _ = stream.shutdown(Shutdown::Both);
                    continue;
                }
                next_conn += 1;
                lock(&s.stats).connections_opened += 1;
                let s = s.clone();
                let id = next_conn;
                std::thread::spawn(move || {
                    connection(&s, id, stream);
                    lock(&s.stats).connections_closed += 1;
                    lock(&s.forwarding).subscribers.retain(|x| x.conn != id);
                });
            }
        });
        FaultBroker {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `mqtt://127.0.0.1:PORT`, for a scenario's `broker.url`.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    pub fn stats(&self) -> Stats {
        *lock(&self.shared.stats)
    }

    /// Poll until every connection the broker accepted has ended (the client closed it after its last
    /// packet, so every packet has been counted), or the deadline passes. Returns the stats either way.
    pub fn wait_all_closed(&self, timeout: Duration) -> Stats {
        poll_until(timeout, || {
            let s = self.stats();
            s.connections_opened > 0 && s.connections_closed == s.connections_opened
        });
        self.stats()
    }
}

impl Drop for FaultBroker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// `SO_RCVBUF` on the listener (accepted sockets inherit it, and it is in force before the handshake
/// sizes the window).
fn set_receive_buffer(listener: &TcpListener, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::addr_of!(v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Poll `cond` every few milliseconds until it holds or `timeout` passes; whether it held.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One frame: the first byte of the fixed header and the body (variable header and payload).
struct Frame<'a> {
    first: u8,
    body: &'a [u8],
}

/// Parse one frame from the front of `buf`: `Ok(None)` while incomplete, `Err` when malformed.
fn parse_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, &'static str> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len = 0usize;
    let mut i = 1;
    loop {
        if i > 4 {
            return Err("remaining length longer than 4 bytes");
        }
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7F) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    if len > MAX_PACKET {
        return Err("packet too large");
    }
    let Some(body) = buf.get(i..i + len) else {
        return Ok(None);
    };
    Ok(Some((Frame { first, body }, i + len)))
}

fn put_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
}

fn ack(first: u8, pkid: u16) -> [u8; 4] {
    let [hi, lo] = pkid.to_be_bytes();
    [first, 2, hi, lo]
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// A length-prefixed UTF-8 string at `at`, and the offset after it.
fn str_at(b: &[u8], at: usize) -> Option<(&str, usize)> {
    let n = usize::from(u16_at(b, at)?);
    let s = std::str::from_utf8(b.get(at + 2..at + 2 + n)?).ok()?;
    Some((s, at + 2 + n))
}

/// MQTT topic matching with `+` and `#`.
fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn publish_frame(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(topic.len() + payload.len() + 8);
    out.push(0x30);
    put_remaining_length(&mut out, 2 + topic.len() + payload.len());
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(payload);
    out
}

impl Shared {
    /// Time since the first CONNECT (zero before it).
    fn elapsed(&self) -> Duration {
        self.first_connect
            .get()
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Whether a scripted restart has the broker down now.
    fn is_down(&self) -> bool {
        let now = self.elapsed();
        self.first_connect.get().is_some()
            && self
                .script
                .down
                .iter()
                .any(|&(from, d)| now >= from && now < from + d)
    }

    /// When a withheld ack received now is released, if now is inside a stall.
    fn stalled_until(&self) -> Option<Instant> {
        let t0 = *self.first_connect.get()?;
        let now = t0.elapsed();
        self.script
            .stalls
            .iter()
            .find(|s| now >= s.from && now < s.from + s.duration)
            .map(|s| t0 + s.from + s.duration)
    }

    /// When reading resumes, if now is inside a reading pause.
    fn paused_until(&self) -> Option<Instant> {
        let t0 = *self.first_connect.get()?;
        let now = t0.elapsed();
        self.script
            .pauses
            .iter()
            .find(|s| now >= s.from && now < s.from + s.duration)
            .map(|s| t0 + s.from + s.duration)
    }

    /// Forward one PUBLISH to the matching subscribers, following the script.
    fn forward(&self, topic: &str, payload: &[u8]) {
        let mut fw = lock(&self.forwarding);
        if !fw
            .subscribers
            .iter()
            .any(|s| s.filters.iter().any(|f| matches(f, topic)))
        {
            drop(fw);
            lock(&self.stats).unforwarded += 1;
            return;
        }
        let k = fw.next;
        fw.next += 1;
        if self.script.reorder.contains(&k) {
            fw.held = Some((topic.to_owned(), payload.to_vec()));
            return;
        }
        let times = if self.script.duplicate.contains(&k) {
            2
        } else {
            1
        };
        let mut delivered = 0;
        for _ in 0..times {
            delivered += deliver(&fw, topic, payload);
        }
        if let Some((t, p)) = fw.held.take() {
            delivered += deliver(&fw, &t, &p);
        }
        drop(fw);
        lock(&self.stats).deliveries += delivered;
    }
}

fn deliver(fw: &Forwarding, topic: &str, payload: &[u8]) -> u64 {
    let frame = publish_frame(topic, payload);
    let mut n = 0;
    for s in &fw.subscribers {
        if s.filters.iter().any(|f| matches(f, topic)) && lock(&s.out).write_all(&frame).is_ok() {
            n += 1;
        }
    }
    n
}

/// Acknowledgements owed but held back, in the order they are owed.
#[derive(Default)]
struct Withheld {
    acks: Vec<u8>,
    release_at: Option<Instant>,
    /// `drop_after_connack`: close once the CONNACK is written.
    drop_now: bool,
}

/// Serve one connection until it closes, is dropped by the script, or the broker stops.
fn connection(shared: &Shared, id: u64, stream: TcpStream) {
    let opened_at = Instant::now();
    let _ = stream.set_nodelay(true);
    let Ok(out) = stream.try_clone() else { return };
    let out = Arc::new(Mutex::new(out));
    let mut stream = stream;
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut withheld = Withheld::default();
    // Scripted DISCONNECTs already written to this connection.
    let mut disconnected: HashSet<usize> = HashSet::new();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        // Scripted DISCONNECTs: a connection open at that time is told once, and stays open.
        if let Some(t0) = shared.first_connect.get() {
            for (i, d) in shared.script.disconnects.iter().enumerate() {
                let at = *t0 + *d;
                if opened_at < at && Instant::now() >= at && disconnected.insert(i) {
                    let _ = lock(&out).write_all(&[0xE0, 0]);
                    lock(&shared.stats).disconnects_sent += 1;
                }
            }
        }
        // Release withheld acks once their stall is over.
        if withheld.release_at.is_some_and(|t| Instant::now() >= t) {
            let _ = lock(&out).write_all(&withheld.acks);
            withheld = Withheld::default();
        }
        // Scripted drops: a connection open at a drop time is closed then.
        if let Some(t0) = shared.first_connect.get() {
            let due = shared
                .script
                .drops
                .iter()
                .map(|d| *t0 + *d)
                .any(|at| opened_at < at && Instant::now() >= at);
            if due {
                lock(&shared.stats).dropped += 1;
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
        // Scripted stop: the connection stays open, unread, until the broker stops.
        if let (Some(t0), Some(at)) = (shared.first_connect.get(), shared.script.stop_reading) {
            if Instant::now() >= *t0 + at {
                lock(&shared.stats).stopped_reading += 1;
                while !shared.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(IDLE_TICK);
                }
                break;
            }
        }
        // Sleep in `read` until data, the next release, the next drop or the idle tick.
        let now = Instant::now();
        let mut wake = now + IDLE_TICK;
        if let Some(t) = withheld.release_at {
            wake = wake.min(t);
        }
        if let Some(t0) = shared.first_connect.get() {
            for d in shared.script.drops.iter().chain(&shared.script.disconnects) {
                let at = *t0 + *d;
                if at > now && opened_at < at {
                    wake = wake.min(at);
                }
            }
        }
        if let Some(until) = shared.paused_until() {
            // Not reading: sleep until the pause ends (or the next tick, to honour stop and drops).
            std::thread::sleep(until.min(wake).saturating_duration_since(now));
            continue;
        }
        let timeout = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        if stream.set_read_timeout(Some(timeout)).is_err() {
            break;
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        let mut close = false;
        let mut reply: Vec<u8> = Vec::new();
        loop {
            let (frame, used) = match parse_frame(&buf[at..]) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => {
                    close = true;
                    break;
                }
            };
            at += used;
            match handle(shared, id, &out, &frame, &mut withheld, &mut reply) {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    close = true;
                    break;
                }
            }
        }
        buf.drain(..at);
        if !reply.is_empty() && lock(&out).write_all(&reply).is_err() {
            break;
        }
        if close {
            break;
        }
        if withheld.drop_now {
            lock(&shared.stats).dropped_after_connack += 1;
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Handle one frame; `Ok(false)` closes the connection, `Err` means it was malformed.
fn handle(
    shared: &Shared,
    id: u64,
    out: &Arc<Mutex<TcpStream>>,
    frame: &Frame<'_>,
    withheld: &mut Withheld,
    reply: &mut Vec<u8>,
) -> Result<bool, &'static str> {
    // An ack owed now: withheld during a stall, and behind any ack already withheld (order is kept).
    let never = shared.script.never_ack;
    let mut owe = |bytes: [u8; 4], reply: &mut Vec<u8>| {
        if never {
            lock(&shared.stats).acks_withheld += 1;
            return;
        }
        let stalled = shared.stalled_until();
        if stalled.is_some() || withheld.release_at.is_some() {
            let until = match (stalled, withheld.release_at) {
                (Some(a), Some(b)) => a.max(b),
                (a, b) => a.or(b).unwrap_or_else(Instant::now),
            };
            withheld.release_at = Some(until);
            withheld.acks.extend_from_slice(&bytes);
            lock(&shared.stats).acks_withheld += 1;
        } else {
            reply.extend_from_slice(&bytes);
        }
    };
    let body = frame.body;
    match frame.first >> 4 {
        1 => {
            // CONNECT
            let _ = shared.first_connect.set(Instant::now());
            lock(&shared.stats).connects += 1;
            if shared.script.no_connack {
                return Ok(true);
            }
            // Protocol level after the protocol name `MQTT`: 4 = 3.1.1, 5 = MQTT 5.
            let v5 = body.get(6) == Some(&5);
            match &shared.script.connect_reply {
                ConnectReply::Accept => {
                    reply.extend_from_slice(&[0x20, 2, 0, 0]);
                    lock(&shared.stats).connacks += 1;
                    reply.extend_from_slice(&shared.script.after_connack);
                    withheld.drop_now = shared.script.drop_after_connack;
                }
                ConnectReply::Refuse(code) => {
                    if v5 {
                        // MQTT 5: flags, reason code, empty properties.
                        reply.extend_from_slice(&[0x20, 3, 0, *code, 0]);
                    } else {
                        reply.extend_from_slice(&[0x20, 2, 0, *code]);
                    }
                    return Ok(false);
                }
                ConnectReply::Garbage(bytes) => {
                    reply.extend_from_slice(bytes);
                    return Ok(false);
                }
            }
        }
        3 => {
            // PUBLISH
            let qos = (frame.first >> 1) & 3;
            let (topic, mut at) = str_at(body, 0).ok_or("bad PUBLISH topic")?;
            if qos == 3 {
                return Err("PUBLISH with QoS 3");
            }
            lock(&shared.stats).publishes[usize::from(qos)] += 1;
            let mut pkid = 0;
            if qos > 0 {
                pkid = u16_at(body, at).ok_or("PUBLISH without packet id")?;
                at += 2;
            }
            let payload = body.get(at..).unwrap_or(&[]);
            shared.forward(topic, payload);
            match qos {
                1 => owe(ack(0x40, pkid), reply),
                2 => owe(ack(0x50, pkid), reply),
                _ => {}
            }
        }
        6 => {
            // PUBREL
            let pkid = u16_at(body, 0).ok_or("short PUBREL")?;
            owe(ack(0x70, pkid), reply);
        }
        8 => {
            // SUBSCRIBE: grant QoS 0 (deliveries are forwarded at QoS 0)
            let pkid = u16_at(body, 0).ok_or("short SUBSCRIBE")?;
            let mut at = 2;
            let mut filters = Vec::new();
            while at < body.len() {
                let (f, next) = str_at(body, at).ok_or("bad SUBSCRIBE filter")?;
                filters.push(f.to_owned());
                at = next + 1;
            }
            if filters.is_empty() {
                return Err("SUBSCRIBE without filters");
            }
            let n = filters.len();
            lock(&shared.forwarding).subscribers.push(Subscriber {
                conn: id,
                filters,
                out: out.clone(),
            });
            reply.push(0x90);
            put_remaining_length(reply, 2 + n);
            reply.extend_from_slice(&pkid.to_be_bytes());
            reply.extend(std::iter::repeat_n(0u8, n));
        }
        12 => reply.extend_from_slice(&[0xD0, 0]), // PINGREQ
        14 => return Ok(false),                    // DISCONNECT
        _ => {}                                    // PUBACK etc. from subscribers: nothing to do
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_in_pieces() {
        let frame = publish_frame("a/b", &[7; 200]);
        for cut in 0..frame.len() {
            assert!(parse_frame(&frame[..cut]).unwrap().is_none(), "cut {cut}");
        }
        let (f, used) = parse_frame(&frame).unwrap().unwrap();
        assert_eq!((f.first, used), (0x30, frame.len()));
        assert!(parse_frame(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
    }

    #[test]
    fn topic_filters() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/#", "a/b/c"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("a/b", "a/c"));
    }
}
