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

pub use super::monitor::Ready;
use super::monitor::{backoff, subscribed, Ended, ObsCtx, Reconnecting, Settling, Subscribed};
use super::primary_host::HostSession;
use super::shard_audit::ShardAudit;
use super::EngineError;
use crate::metrics::audit::{Seen, StreamAudit};
use crate::metrics::{Clock, Counter, LiveCounters, Metric, Recorder, RunSnapshot};
use crate::mqtt::{Event, KeepAliveAction, ProtocolState, Session};
use crate::plan::{Plan, Timeline};
use crate::scenario::topic::group_filter;
use crate::scenario::{MqttVersion, Qos};
use crate::telemetry::read_stamp;
use crate::telemetry::sparkplug::{Validator, Violation};

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
    (observers + super::monitor::commander_count(plan)) * brokers.max(1)
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
        ws: super::ws_endpoints(&spec.plan),
        cancel: spec.cancel.clone(),
        started: CancellationToken::new(),
        commands: Settling::new(&spec.plan, spec.commands_done.clone()),
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
        let Subscribed {
            session: mut s,
            mut state,
            ..
        } = match started {
            Ok(up) => {
                let (sent, done) = (up.sent_us, up.done_us);
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
                up
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
        let ended = receive(&ctx, version, (&mut s, &mut state), &streams, host.as_mut()).await;
        if ended == Ended::Cancelled {
            if let (Some(h), Ok(pkid)) = (host.as_mut(), state.publish(Qos::AtLeastOnce, ())) {
                // A clean end: the host says it is going offline (the DISCONNECT suppresses its will).
                let mut out = Vec::new();
                h.go_offline(version, pkid, &mut out);
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

/// A distinct jitter stream for each observer session (devices use their global index).
fn session_jitter_id(observer: usize, broker: usize, index: u32) -> u64 {
    let (o, b) = (observer as u64, broker as u64);
    0xFEED_0000_0000_0000 ^ (o << 40) ^ (b << 24) ^ u64::from(index)
}

/// Receive until cancelled or the connection is lost; a primary host goes online when due.
async fn receive(
    ctx: &ObsCtx,
    version: MqttVersion,
    (s, state): (&mut Session, &mut ProtocolState<()>),
    streams: &Streams,
    mut host: Option<&mut HostSession>,
) -> Ended {
    loop {
        let now = ctx.clock.now_us();
        let ping = {
            let mut out = ctx.write_buf.borrow_mut();
            out.clear();
            match state.tick(now, &mut out) {
                KeepAliveAction::TimedOut => return Ended::Lost,
                KeepAliveAction::SendPing => s.try_send(&out).is_ok(),
                KeepAliveAction::Nothing => true,
            }
        };
        if !ping {
            return Ended::Lost;
        }
        let mut wake_us = state.next_deadline().min(now + 60_000_000);
        if let Some(h) = host.as_deref_mut() {
            match h.online_due_us() {
                Some(at) if at <= now => {
                    // The STATE message is acknowledged like any publish of ours; with every packet
                    // id in flight it waits for the next turn.
                    if let Ok(pkid) = state.publish(Qos::AtLeastOnce, ()) {
                        let mut out = Vec::new();
                        h.go_online(version, pkid, &mut out);
                        let sent = s.try_send(&out).is_ok();
                        state.sent(now);
                        if !sent || (s.has_pending_out() && s.flush().await.is_err()) {
                            return Ended::Lost;
                        }
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
                let result = {
                    let mut scratch = ctx.read_buf.borrow_mut();
                    let mut out = ctx.write_buf.borrow_mut();
                    out.clear();
                    let done = ctx.clock.now_us();
                    let r = s.read_available(&mut scratch, &mut |p| {
                        if let Event::Publish { retain: false, topic, payload, .. } = state.handle(p, &mut out) {
                            audit(ctx, streams, topic, payload, done, pending_host);
                        }
                    });
                    let wrote = !out.is_empty();
                    if wrote {
                        state.sent(done);
                    }
                    match r {
                        Ok(_) if wrote => s.try_send(&out).map(|_| ()).map_err(|_| ()),
                        Ok(_) => Ok(()),
                        Err(_) => Err(()),
                    }
                };
                // A broker DISCONNECT ends the session like a lost connection: counted, reconnected.
                if result.is_err() || state.ended() {
                    return Ended::Lost;
                }
                if s.has_pending_out() && s.flush().await.is_err() {
                    return Ended::Lost;
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
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
