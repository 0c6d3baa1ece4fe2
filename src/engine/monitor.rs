//! What the sessions of the observer thread share: observers and commanders alike connect a clean
//! session, subscribe, receive through the protocol core, reconnect with the devices' backoff and count
//! their disconnects the same way. Both import this module; neither imports the other.

use std::cell::{Cell, OnceCell, RefCell};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::shard_audit::ShardAudit;
use crate::metrics::{Clock, Counter, LiveCounters, Recorder};
use crate::mqtt::codec::{self, ConnectOptions};
use crate::mqtt::{tcp_connect, Event, ProtocolState, Session};
use crate::plan::{pacer, Plan};
use crate::scenario::topic::matches;
use crate::scenario::Qos;

/// A session's start-up result: `Ok((subscribe sent, suback received))` or why it failed.
pub type Ready = Result<(u64, u64), String>;

/// What the sessions of the observer thread (observers and commanders) share.
pub(super) struct ObsCtx {
    pub(super) plan: Arc<Plan>,
    pub(super) clock: Clock,
    pub(super) live: Arc<LiveCounters>,
    pub(super) recorder: OnceCell<Recorder>,
    /// Every broker target: each observer opens its sessions on each (independent brokers).
    pub(super) brokers: Vec<SocketAddr>,
    /// The WebSocket endpoint of each broker target (ws://), by the index of `brokers`.
    pub(super) ws: Vec<Option<crate::mqtt::WsEndpoint>>,
    pub(super) cancel: CancellationToken,
    /// Cancelled once the recorder exists (the run has started).
    pub(super) started: CancellationToken,
    /// Commanders: groups whose commands are not all answered yet, and the token cancelled when none is.
    pub(super) commands: Settling,
    /// `(filter, group)` for attributing a topic to its group.
    pub(super) group_filters: Vec<(String, usize)>,
    /// `(Sparkplug group id, group)` for Sparkplug groups.
    pub(super) sparkplug_groups: Vec<(String, usize)>,
    pub(super) read_buf: RefCell<Vec<u8>>,
    pub(super) write_buf: RefCell<Vec<u8>>,
    /// Runs with more than one worker shard: the observer counters split by device shard.
    pub(super) shards: Option<ShardAudit>,
    /// TLS clients index-aligned with `brokers` (`None`: plain TCP), or why `broker.tls` failed.
    pub(super) tls: Result<Vec<Option<crate::mqtt::TlsClient>>, String>,
}

/// Commander connections per broker target: one per group with commands.
pub(super) fn commander_count(plan: &Plan) -> usize {
    plan.groups()
        .iter()
        .filter(|g| g.commands.is_some())
        .count()
}

/// Groups whose commands are not all answered yet; `done` is cancelled when none is left.
pub(super) struct Settling {
    open: Cell<usize>,
    done: CancellationToken,
}

impl Settling {
    pub(super) fn new(plan: &Plan, done: CancellationToken) -> Settling {
        let open = commander_count(plan);
        if open == 0 {
            done.cancel();
        }
        Settling {
            open: Cell::new(open),
            done,
        }
    }

    pub(super) fn settled(&self) {
        let left = self.open.get().saturating_sub(1);
        self.open.set(left);
        if left == 0 {
            self.done.cancel();
        }
    }
}

/// Why a session's receive loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// The run is over.
    Cancelled,
    /// The connection was lost (closed, reset, keep-alive timeout, protocol error).
    Lost,
}

/// Disconnects and reconnects of one observer-thread session, counted once the run has started: a
/// reconnect is counted only after a counted disconnect, so `observer_disconnects -
/// observer_reconnects` is the number of sessions still down when the run ended.
#[derive(Default)]
pub(super) struct Reconnecting {
    counted_down: bool,
}

impl Reconnecting {
    /// The session lost its connection.
    pub(super) fn down(&mut self, ctx: &ObsCtx, group: usize) {
        if let Some(rec) = ctx.recorder.get() {
            rec.count(Counter::ObserverDisconnects, group, rec.now_us());
            self.counted_down = true;
        }
    }

    /// The session is connected and subscribed again.
    pub(super) fn up(&mut self, ctx: &ObsCtx, group: usize) {
        if let (true, Some(rec)) = (self.counted_down, ctx.recorder.get()) {
            rec.count(Counter::ObserverReconnects, group, rec.now_us());
        }
        self.counted_down = false;
    }
}

/// Wait out reconnect attempt `attempt` with the devices' backoff (exponential, full jitter, seeded by
/// the scenario); `false` when the run ended meanwhile.
pub(super) async fn backoff(ctx: &ObsCtx, attempt: u32, jitter_id: u64) -> bool {
    let wait = pacer::backoff_us(
        super::device::BACKOFF_BASE_US,
        super::device::BACKOFF_CAP_US,
        attempt,
        ctx.plan.scenario.seed,
        jitter_id,
    );
    let at = Instant::from_std(
        ctx.clock
            .instant_at(ctx.clock.now_us().saturating_add(wait)),
    );
    tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => false,
        _ = tokio::time::sleep_until(at) => true,
    }
}

/// A session of the observer thread, connected and subscribed.
pub(super) struct Subscribed {
    pub(super) session: Session,
    /// Its protocol state (keep-alive counted from the CONNECT; nothing of ours in flight).
    pub(super) state: ProtocolState<()>,
    /// When SUBSCRIBE went out and when its SUBACK came back (µs).
    pub(super) sent_us: u64,
    pub(super) done_us: u64,
}

/// Connect a clean session `(client id, will)` to `target` and subscribe to `filters`, or say why it
/// failed (within twice the connect timeout). Messages that arrive before the SUBACK are acknowledged
/// as the protocol requires.
pub(super) async fn subscribed(
    ctx: &ObsCtx,
    target: SocketAddr,
    (client_id, will): (String, Option<codec::Will>),
    filters: &[(String, Qos)],
) -> Result<Subscribed, String> {
    let broker = &ctx.plan.scenario.broker;
    let version = broker.protocol;
    let options = ConnectOptions {
        version,
        client_id,
        keep_alive_s: u16::try_from(broker.keep_alive.as_secs()).unwrap_or(u16::MAX),
        clean_session: true,
        username: broker.username.clone(),
        password: broker.password.clone(),
        will,
        session_expiry_s: None,
    };
    let timeout = broker.connect_timeout;
    let keep_alive_us = u64::try_from(broker.keep_alive.as_micros()).unwrap_or(0);
    let start = async {
        let packet = codec::encode_connect(&options).map_err(|e| e.to_string())?;
        let connect_us = ctx.clock.now_us();
        let tls = match &ctx.tls {
            Ok(list) => ctx
                .brokers
                .iter()
                .position(|b| *b == target)
                .and_then(|i| list.get(i))
                .and_then(Option::as_ref),
            Err(m) => return Err(m.clone()),
        };
        let stream = tcp_connect(target, None, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let (stream, _) = super::tls::open(stream, tls, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let ws = ctx
            .brokers
            .iter()
            .position(|b| *b == target)
            .and_then(|i| ctx.ws.get(i))
            .and_then(Option::as_ref);
        let (mut s, _) = Session::handshake_with(stream, ws, version, &packet, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let mut state = ProtocolState::new(usize::from(u16::MAX), keep_alive_us, connect_us);
        let pkid = state
            .subscribe(())
            .map_err(|e| format!("cannot subscribe: {e}"))?;
        let sub = codec::encode_subscribe(version, pkid, filters).map_err(|e| e.to_string())?;
        let sent = ctx.clock.now_us();
        s.try_send(&sub).map_err(|e| e.to_string())?;
        state.sent(sent);
        s.flush().await.map_err(|e| e.to_string())?;
        // wait for SUBACK
        let mut codes: Option<Vec<u8>> = None;
        let mut ended: Option<u8> = None;
        let mut scratch = vec![0u8; 512];
        let mut out = Vec::new();
        while codes.is_none() {
            s.readable().await.map_err(|e| e.to_string())?;
            s.read_available(&mut scratch, &mut |p| match state.handle(p, &mut out) {
                Event::SubAck {
                    codes: c,
                    meta: Some(()),
                    ..
                } => codes = Some(c.to_vec()),
                Event::Disconnected { reason } => ended = Some(reason),
                _ => {}
            })
            .map_err(|e| e.to_string())?;
            if let Some(reason) = ended {
                return Err(format!(
                    "the broker ended the session before the SUBACK (DISCONNECT, reason {reason:#04x})"
                ));
            }
            if !out.is_empty() {
                s.try_send(&out).map_err(|e| e.to_string())?;
                out.clear();
            }
        }
        let done = ctx.clock.now_us();
        if let Some(bad) = codes.iter().flatten().find(|&&c| c >= 0x80) {
            return Err(format!(
                "the broker refused the subscription (code {bad:#04x})"
            ));
        }
        Ok::<_, String>(Subscribed {
            session: s,
            state,
            sent_us: sent,
            done_us: done,
        })
    };
    tokio::time::timeout(timeout * 2, start)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

impl ObsCtx {
    pub(super) fn group_of(&self, topic: &[u8]) -> Option<usize> {
        let topic = std::str::from_utf8(topic).ok()?;
        self.group_filters
            .iter()
            .find(|(f, _)| matches(f, topic))
            .map(|(_, g)| *g)
    }
}
