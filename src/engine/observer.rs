//! Observers: subscriber sessions on their own worker thread. Each decodes the stamp of every message
//! (device id, seq, intended and actual send time), records end-to-end latency and audits every device
//! stream for loss, duplicates and reordering. A session whose connection drops during the run
//! reconnects with the devices' backoff and subscribes again; what was due meanwhile is `unobserved`.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::primary_host::HostSession;
use super::EngineError;
use crate::metrics::audit::{Seen, StreamAudit};
use crate::metrics::{Clock, Counter, LiveCounters, Metric, Observed, Recorder, RunSnapshot};
use crate::mqtt::codec::{self, ConnectOptions, Incoming};
use crate::mqtt::{tcp_connect, KeepAlive, KeepAliveAction, Session};
use crate::plan::{pacer, Plan, Shard, Timeline};
use crate::scenario::template::TemplateVars;
use crate::scenario::topic::{group_filter, matches};
use crate::scenario::{MqttVersion, Qos};
use crate::telemetry::read_stamp;
use crate::telemetry::sparkplug::{Validator, Violation};

/// A session's start-up result: `Ok((subscribe sent, suback received))` or why it failed.
pub type Ready = Result<(u64, u64), String>;

/// Stream audits of one observer stream set (a session, or all sessions of a shared observer).
type Streams = RefCell<StreamSet>;

/// What one observer stream set has seen: per-device JSON stream audits and the Sparkplug rules.
#[derive(Default)]
struct StreamSet {
    json: HashMap<Box<str>, StreamAudit>,
    sparkplug: Validator,
    /// Reconnects of the set's sessions so far: a stream's first new message in a later epoch shows
    /// what was due while a session was down.
    epoch: u32,
}

/// What the sessions of the observer thread (observers and commanders) share.
pub(super) struct ObsCtx {
    pub(super) plan: Arc<Plan>,
    pub(super) clock: Clock,
    live: Arc<LiveCounters>,
    pub(super) recorder: OnceCell<Recorder>,
    /// Every broker target: each observer opens its sessions on each (independent brokers).
    pub(super) brokers: Vec<SocketAddr>,
    pub(super) cancel: CancellationToken,
    /// Cancelled once the recorder exists (the run has started).
    pub(super) started: CancellationToken,
    /// Commanders: groups whose commands are not all answered yet, and the token cancelled when none is.
    pub(super) commands: super::commander::Settling,
    /// `(filter, group)` for attributing a topic to its group.
    group_filters: Vec<(String, usize)>,
    /// `(Sparkplug group id, group)` for Sparkplug groups.
    sparkplug_groups: Vec<(String, usize)>,
    pub(super) read_buf: RefCell<Vec<u8>>,
    pub(super) write_buf: RefCell<Vec<u8>>,
    /// Runs with more than one worker shard: the observer counters split by device shard.
    shards: Option<ShardAudit>,
    /// TLS clients index-aligned with `brokers` (`None`: plain TCP), or why `broker.tls` failed.
    tls: Result<Vec<Option<crate::mqtt::TlsClient>>, String>,
}

/// Which worker shard each device stream belongs to, and the observer counters per phase, group and
/// shard, so the parent can leave out a dead shard's part (see `RunSnapshot::leave_out_missing`).
/// Built once, only when the plan has more than one shard; looked up once per new stream.
struct ShardAudit {
    of_client: HashMap<Box<str>, u16>,
    shards: usize,
    groups: usize,
    /// `[phase][group][shard]`.
    tally: RefCell<Vec<Observed>>,
}

impl ShardAudit {
    fn new(plan: &Plan) -> Option<ShardAudit> {
        let count = plan.shard.count;
        if count <= 1 {
            return None;
        }
        let total = plan.total_devices();
        let scenario = &plan.scenario;
        let mut of_client = HashMap::new();
        let mut shard: u32 = 0;
        let mut shard_end = Shard { index: 0, count }.range(total).1;
        for global in 0..total {
            while global >= shard_end && shard + 1 < count {
                shard += 1;
                shard_end = Shard {
                    index: shard,
                    count,
                }
                .range(total)
                .1;
            }
            let d = plan.device(global);
            let Some(g) = plan.groups().get(d.group) else {
                continue;
            };
            if g.sparkplug_group().is_some() {
                continue;
            }
            let id = scenario.broker.client_id.render(&TemplateVars {
                group: &g.name,
                index: d.index,
                global_index: d.global,
                client_id: "",
            });
            of_client.insert(
                id.into_boxed_str(),
                u16::try_from(shard).unwrap_or(u16::MAX),
            );
        }
        let shards = count as usize;
        let groups = plan.groups().len();
        let phases = plan.timeline(0).phases.len().max(1);
        Some(ShardAudit {
            of_client,
            shards,
            groups,
            tally: RefCell::new(vec![Observed::default(); phases * groups * shards]),
        })
    }

    fn shard_of(&self, device_id: &str) -> u16 {
        self.of_client.get(device_id).copied().unwrap_or(0)
    }

    fn add(&self, phase: usize, group: usize, shard: u16, c: Counter, n: u64) {
        let cell = (phase * self.groups + group) * self.shards + usize::from(shard);
        if let Some(o) = self.tally.borrow_mut().get_mut(cell) {
            o.add(c, n);
        }
    }

    /// Move the tallies into the snapshot's groups.
    fn into_snapshot(self, snap: &mut RunSnapshot) {
        let tally = self.tally.into_inner();
        for (pi, p) in snap.phases.iter_mut().enumerate() {
            for (gi, g) in p.groups.iter_mut().enumerate() {
                for shard in 0..self.shards {
                    let cell = (pi * self.groups + gi) * self.shards + shard;
                    match (tally.get(cell), u32::try_from(shard)) {
                        (Some(o), Ok(shard)) if *o != Observed::default() => {
                            g.observed_by_shard.insert(shard, *o);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// What the observer thread needs.
pub struct ObserverSpec {
    pub plan: Arc<Plan>,
    pub clock: Clock,
    pub live: Arc<LiveCounters>,
    pub brokers: Vec<SocketAddr>,
    pub cancel: CancellationToken,
    /// One message per session once it has subscribed (or failed).
    pub ready: mpsc::UnboundedSender<Ready>,
    /// The timeline, sent once every session is ready.
    pub timeline: oneshot::Receiver<Arc<Timeline>>,
    /// One-second latency histograms for the live view.
    pub intervals: super::IntervalSender,
    /// Cancelled once every command sent has its reply.
    pub commands_done: CancellationToken,
}

/// Sessions the scenario's observers and commanders open.
pub fn session_count(plan: &Plan, brokers: usize) -> usize {
    let observers: usize = plan
        .scenario
        .observers
        .iter()
        .map(|o| o.count as usize)
        .sum();
    (observers + super::commander::count(plan)) * brokers.max(1)
}

/// Run every observer session on this thread until cancelled; returns what they measured.
pub fn run(spec: ObserverSpec) -> Result<RunSnapshot, EngineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EngineError::Runtime)?;
    let local = tokio::task::LocalSet::new();
    let group_filters = spec
        .plan
        .groups()
        .iter()
        .enumerate()
        .map(|(i, g)| (group_filter(&g.topic, &g.name), i))
        .collect();
    let ctx = Rc::new(ObsCtx {
        tls: super::tls::clients(&spec.plan.scenario.broker).map_err(|e| e.to_string()),
        plan: spec.plan.clone(),
        clock: spec.clock,
        live: spec.live.clone(),
        recorder: OnceCell::new(),
        brokers: spec.brokers.clone(),
        cancel: spec.cancel.clone(),
        started: CancellationToken::new(),
        commands: super::commander::Settling::new(&spec.plan, spec.commands_done.clone()),
        group_filters,
        sparkplug_groups: spec
            .plan
            .groups()
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.sparkplug_group().map(|id| (id.to_owned(), i)))
            .collect(),
        read_buf: RefCell::new(Vec::new()),
        write_buf: RefCell::new(Vec::with_capacity(4096)),
        shards: ShardAudit::new(&spec.plan),
    });
    let group_names: Vec<String> = spec.plan.groups().iter().map(|g| g.name.clone()).collect();
    let task_ctx = ctx.clone();
    let ready = spec.ready;
    let timeline_rx = spec.timeline;
    let intervals = spec.intervals;
    local.block_on(&rt, async move {
        let ctx = task_ctx;
        let tracker = TaskTracker::new();
        let (suback_tx, mut suback_rx) = mpsc::unbounded_channel::<(usize, u64, u64)>();
        for (oi, o) in ctx.plan.scenario.observers.iter().enumerate() {
            for (bi, broker) in ctx.brokers.iter().enumerate() {
                let shared_streams: Rc<Streams> = Rc::new(RefCell::new(StreamSet::default()));
                for si in 0..o.count {
                    let streams = if o.shared {
                        shared_streams.clone()
                    } else {
                        Rc::new(RefCell::new(StreamSet::default()))
                    };
                    let group = o.groups.first().copied().unwrap_or(0);
                    tracker.spawn_local(session(
                        ctx.clone(),
                        SessionId {
                            observer: oi,
                            broker: *broker,
                            broker_index: bi,
                            index: si,
                        },
                        streams,
                        ready.clone(),
                        suback_tx.clone(),
                        group,
                    ));
                }
            }
        }
        let books = super::commander::spawn(&ctx, &tracker, &ready);
        drop(ready);
        drop(suback_tx);
        // The recorder needs the timeline, which starts once every session has subscribed.
        let timeline = tokio::select! {
            _ = ctx.cancel.cancelled() => None,
            t = timeline_rx => t.ok(),
        };
        if let Some(timeline) = timeline {
            let groups = ctx.plan.groups().len();
            let rec = Recorder::new(ctx.clock, timeline, groups, ctx.live.clone());
            // SUBACK latencies measured before the recorder existed
            while let Ok((group, sent, done)) = suback_rx.try_recv() {
                rec.latency(Metric::Suback, group, sent, sent, done);
            }
            let _ = ctx.recorder.set(rec);
            ctx.started.cancel();
        }
        let done = CancellationToken::new();
        let ticker_ctx = ctx.clone();
        let start_us = ctx.recorder.get().map_or(0, |r| r.timeline().start_us);
        let ticker = tokio::task::spawn_local(super::send_intervals(
            move || ticker_ctx.recorder.get().map(Recorder::take_interval),
            ctx.clock,
            start_us,
            intervals,
            done.clone(),
        ));
        tracker.close();
        tracker.wait().await;
        if let Some(rec) = ctx.recorder.get() {
            super::commander::finish(&ctx.plan, rec, &books);
        }
        done.cancel();
        let _ = ticker.await;
    });
    let ctx = Rc::try_unwrap(ctx)
        .map_err(|_| EngineError::Internal("observer sessions outlived their thread"))?;
    let mut snap = match ctx.recorder.into_inner() {
        Some(rec) => rec
            .into_snapshot(group_names)
            .map_err(EngineError::Histogram)?,
        None => {
            return Err(EngineError::Internal(
                "observers stopped before the run started",
            ))
        }
    };
    if let Some(shards) = ctx.shards {
        shards.into_snapshot(&mut snap);
    }
    Ok(snap)
}

/// Which session of which observer, on which broker.
struct SessionId {
    observer: usize,
    broker: SocketAddr,
    broker_index: usize,
    index: u32,
}

/// One subscriber session: subscribes (the run waits for it), then receives until the run ends. A
/// connection lost during the run is counted and re-established with the devices' backoff; the
/// stream set's epoch moves on so the audit tells the deliveries missed meanwhile from broker loss.
/// Only a failure of the very first start is final (the run then never starts).
async fn session(
    ctx: Rc<ObsCtx>,
    id: SessionId,
    streams: Rc<Streams>,
    ready: mpsc::UnboundedSender<Ready>,
    suback: mpsc::UnboundedSender<(usize, u64, u64)>,
    group: usize,
) {
    let SessionId {
        observer,
        broker: target,
        broker_index,
        index,
    } = id;
    let Some(o) = ctx.plan.scenario.observers.get(observer) else {
        return;
    };
    let version = ctx.plan.scenario.broker.protocol;
    let timeout = ctx.plan.scenario.broker.connect_timeout;
    let client_id = format!(
        "fleetstorm-observer-{}-{}-{broker_index}-{index}",
        ctx.plan.scenario.name, o.name
    );
    let filters: Vec<(String, Qos)> = o
        .topics
        .iter()
        .map(|f| {
            let f = if o.shared {
                format!("$share/{}/{f}", o.name)
            } else {
                f.clone()
            };
            (f, o.qos)
        })
        .collect();
    let jitter_id = session_jitter_id(observer, broker_index, index);
    let mut first = Some((ready, suback));
    let mut attempt: u32 = 0;
    let mut reconnecting = Reconnecting::default();
    loop {
        // A primary host starts each MQTT session with a new STATE timestamp (Sparkplug 3.0): its
        // will and its online STATE of this session supersede the last session's.
        let mut host = o
            .sparkplug_host
            .as_ref()
            .map(|h| HostSession::new(h, ctx.clock.now_us()));
        let will = host.as_ref().map(HostSession::will);
        let started = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = subscribed(&ctx, target, (client_id.clone(), will), &filters) => r,
        };
        let mut s = match started {
            Ok((s, sent, done)) => {
                if let Some(h) = host.as_mut() {
                    h.subscribed(done);
                }
                match first.take() {
                    Some((ready, suback)) => {
                        let _ = suback.send((group, sent, done));
                        let _ = ready.send(Ok((sent, done)));
                    }
                    None => {
                        streams.borrow_mut().epoch += 1;
                        reconnecting.up(&ctx, group);
                    }
                }
                attempt = 0;
                s
            }
            Err(e) => {
                if let Some((ready, _)) = first.take() {
                    let _ = ready.send(Err(format!("observer `{}` session {index}: {e}", o.name)));
                    return;
                }
                if !backoff(&ctx, attempt, jitter_id).await {
                    return;
                }
                attempt = attempt.saturating_add(1);
                continue;
            }
        };
        if receive(&ctx, version, &mut s, &streams, host.as_mut()).await == Ended::Cancelled {
            if let Some(h) = host.as_mut() {
                // A clean end: the host says it is going offline (the DISCONNECT suppresses its will).
                let mut out = Vec::new();
                h.go_offline(version, &mut out);
                if s.try_send(&out).is_ok() {
                    let _ = tokio::time::timeout(timeout, s.flush()).await;
                }
            }
            s.close();
            return;
        }
        s.close();
        reconnecting.down(&ctx, group);
        if !backoff(&ctx, attempt, jitter_id).await {
            return;
        }
        attempt = attempt.saturating_add(1);
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

/// A distinct jitter stream for each observer session (devices use their global index).
fn session_jitter_id(observer: usize, broker: usize, index: u32) -> u64 {
    let (o, b) = (observer as u64, broker as u64);
    0xFEED_0000_0000_0000 ^ (o << 40) ^ (b << 24) ^ u64::from(index)
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

/// Connect a clean session `(client id, will)` to `target` and subscribe to `filters`: the session,
/// with when SUBSCRIBE went out and when its SUBACK came back (µs), or why it failed (within twice the
/// connect timeout).
pub(super) async fn subscribed(
    ctx: &ObsCtx,
    target: SocketAddr,
    (client_id, will): (String, Option<codec::Will>),
    filters: &[(String, Qos)],
) -> Result<(Session, u64, u64), String> {
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
    let start = async {
        let packet = codec::encode_connect(&options).map_err(|e| e.to_string())?;
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
        let (mut s, _) = Session::handshake(stream, version, &packet, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let sub = codec::encode_subscribe(version, 1, filters).map_err(|e| e.to_string())?;
        let sent = ctx.clock.now_us();
        s.try_send(&sub).map_err(|e| e.to_string())?;
        s.flush().await.map_err(|e| e.to_string())?;
        // wait for SUBACK
        let mut codes: Option<Vec<u8>> = None;
        let mut scratch = vec![0u8; 512];
        while codes.is_none() {
            s.readable().await.map_err(|e| e.to_string())?;
            s.read_available(&mut scratch, &mut |p| {
                if let Incoming::SubAck { codes: c, .. } = p {
                    codes = Some(c.to_vec());
                }
            })
            .map_err(|e| e.to_string())?;
        }
        let done = ctx.clock.now_us();
        if let Some(bad) = codes.iter().flatten().find(|&&c| c >= 0x80) {
            return Err(format!(
                "the broker refused the subscription (code {bad:#04x})"
            ));
        }
        Ok::<_, String>((s, sent, done))
    };
    tokio::time::timeout(timeout * 2, start)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

impl ObsCtx {
    fn group_of(&self, topic: &[u8]) -> Option<usize> {
        let topic = std::str::from_utf8(topic).ok()?;
        self.group_filters
            .iter()
            .find(|(f, _)| matches(f, topic))
            .map(|(_, g)| *g)
    }
}

/// Receive until cancelled or the connection is lost; a primary host goes online when due.
async fn receive(
    ctx: &ObsCtx,
    version: MqttVersion,
    s: &mut Session,
    streams: &Streams,
    mut host: Option<&mut HostSession>,
) -> Ended {
    let keep_alive_us = u64::try_from(ctx.plan.scenario.broker.keep_alive.as_micros()).unwrap_or(0);
    let mut keepalive = KeepAlive::new(keep_alive_us, ctx.clock.now_us());
    loop {
        let now = ctx.clock.now_us();
        match keepalive.poll(now) {
            KeepAliveAction::TimedOut => return Ended::Lost,
            KeepAliveAction::SendPing => {
                if s.try_send(&codec::PINGREQ).is_err() {
                    return Ended::Lost;
                }
                keepalive.ping_sent(now);
            }
            KeepAliveAction::Nothing => {}
        }
        let mut wake_us = keepalive.next_deadline().min(now + 60_000_000);
        if let Some(h) = host.as_deref_mut() {
            match h.online_due_us() {
                Some(at) if at <= now => {
                    let mut out = Vec::new();
                    h.go_online(version, &mut out);
                    let sent = s.try_send(&out).is_ok();
                    if !sent || (s.has_pending_out() && s.flush().await.is_err()) {
                        return Ended::Lost;
                    }
                }
                Some(at) => wake_us = wake_us.min(at),
                None => {}
            }
        }
        // Births from this host's edge nodes before it went online break the STATE rules.
        let pending_host = host
            .as_deref()
            .filter(|h| !h.is_online())
            .map(HostSession::host_id);
        let wake = Instant::from_std(ctx.clock.instant_at(wake_us));
        tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return Ended::Cancelled,
            r = s.readable() => {
                if r.is_err() {
                    return Ended::Lost;
                }
                let mut pong = false;
                let result = {
                    let mut scratch = ctx.read_buf.borrow_mut();
                    let mut out = ctx.write_buf.borrow_mut();
                    out.clear();
                    let done = ctx.clock.now_us();
                    let r = s.read_available(&mut scratch, &mut |p| match p {
                        Incoming::Publish { qos, pkid, retain, topic, payload, .. } => {
                            if !retain {
                                audit(ctx, streams, topic, payload, done, pending_host);
                            }
                            match qos {
                                1 => codec::encode_ack(&mut out, codec::PUBACK, pkid),
                                2 => codec::encode_ack(&mut out, codec::PUBREC, pkid),
                                _ => {}
                            }
                        }
                        Incoming::PubRel { pkid } => codec::encode_ack(&mut out, codec::PUBCOMP, pkid),
                        Incoming::PingResp => pong = true,
                        _ => {}
                    });
                    match r {
                        Ok(_) if !out.is_empty() => s.try_send(&out).map(|_| ()).map_err(|_| ()),
                        Ok(_) => Ok(()),
                        Err(_) => Err(()),
                    }
                };
                if pong {
                    keepalive.pong();
                }
                if result.is_err() {
                    return Ended::Lost;
                }
                if s.has_pending_out() && s.flush().await.is_err() {
                    return Ended::Lost;
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        let _ = version;
    }
}

/// Audit one delivered message. `pending_host`: the primary host this session plays, while it has not
/// yet published STATE online.
fn audit(
    ctx: &ObsCtx,
    streams: &Streams,
    topic: &[u8],
    payload: &[u8],
    done_us: u64,
    pending_host: Option<&str>,
) {
    let Some(rec) = ctx.recorder.get() else {
        return;
    };
    if topic.starts_with(b"spBv1.0/") {
        sparkplug_audit(ctx, rec, streams, topic, payload, done_us, pending_host);
        return;
    }
    let Some(stamp) = read_stamp(payload) else {
        return;
    };
    let Some(group) = ctx.group_of(topic) else {
        return;
    };
    let (seen, unobserved, shard) = {
        let mut set = streams.borrow_mut();
        let epoch = set.epoch;
        // The low 16 bits tell epochs apart; only equality matters.
        let tag = epoch as u16;
        match set.json.get_mut(stamp.device_id) {
            Some(a) => {
                let o = a.observe(stamp.seq, tag);
                (o.seen, o.unobserved, a.shard)
            }
            None => {
                let shard = ctx
                    .shards
                    .as_ref()
                    .map_or(0, |s| s.shard_of(stamp.device_id));
                let (a, unobserved) = StreamAudit::new(
                    stamp.seq,
                    u32::try_from(group).unwrap_or(0),
                    shard,
                    tag,
                    epoch > 0,
                );
                set.json.insert(stamp.device_id.into(), a);
                (Seen::New, unobserved, shard)
            }
        }
    };
    let at = stamp.intended_at_us;
    // Multi-shard runs split each observer counter by the stream's shard, next to its one count.
    let by_shard = |c: Counter, n: u64| {
        if let Some(s) = &ctx.shards {
            s.add(rec.timeline().phase_at(at), group, shard, c, n);
        }
    };
    if unobserved > 0 {
        rec.count_n(Counter::Unobserved, group, at, unobserved);
        by_shard(Counter::Unobserved, unobserved);
    }
    if seen == Seen::Duplicate {
        rec.count(Counter::Duplicates, group, at);
        by_shard(Counter::Duplicates, 1);
        return;
    }
    rec.count(Counter::Received, group, at);
    by_shard(Counter::Received, 1);
    if seen == Seen::Reordered {
        rec.count(Counter::Reordered, group, at);
        by_shard(Counter::Reordered, 1);
    }
    rec.latency(
        Metric::E2e,
        group,
        stamp.intended_at_us,
        stamp.sent_at_us,
        done_us,
    );
}

/// Check a Sparkplug message against the protocol rules and count what it was.
fn sparkplug_audit(
    ctx: &ObsCtx,
    rec: &Recorder,
    streams: &Streams,
    topic: &[u8],
    payload: &[u8],
    at: u64,
    pending_host: Option<&str>,
) {
    let Ok(topic) = std::str::from_utf8(topic) else {
        return;
    };
    let mut levels = topic.split('/');
    let (Some(_), Some(gid), Some(kind)) = (levels.next(), levels.next(), levels.next()) else {
        return;
    };
    let Some(group) = ctx
        .sparkplug_groups
        .iter()
        .find(|(id, _)| id == gid)
        .map(|(_, g)| *g)
    else {
        return;
    };
    let found = streams
        .borrow_mut()
        .sparkplug
        .observe(topic, payload, false);
    let what = match kind {
        "NBIRTH" | "DBIRTH" => Some(Counter::SparkplugBirths),
        "NDEATH" | "DDEATH" => Some(Counter::SparkplugDeaths),
        "NDATA" | "DDATA" => Some(Counter::SparkplugData),
        _ => None,
    };
    if let Some(c) = what {
        rec.count(c, group, at);
    }
    let born_early = what == Some(Counter::SparkplugBirths)
        && pending_host.is_some()
        && ctx.plan.groups().get(group).and_then(|g| g.primary_host()) == pending_host;
    if born_early {
        rec.count(Counter::SparkplugBirthBeforeOnline, group, at);
    }
    for v in found.iter() {
        let c = match v {
            Violation::SeqGap => Counter::SparkplugSeqGap,
            Violation::DataBeforeBirth => Counter::SparkplugDataBeforeBirth,
            Violation::BdSeqMismatch => Counter::SparkplugBdSeqMismatch,
            Violation::UnknownAlias => Counter::SparkplugUnknownAlias,
            Violation::Malformed => Counter::SparkplugMalformed,
        };
        rec.count(c, group, at);
    }
}
