//! One device: a task that connects at its slot in the ramp, publishes on its schedule (a formula of
//! the run's start, never a sleep loop), keeps the session alive, reconnects with backoff when the
//! connection drops, and drains its in-flight window at the end.

use std::rc::Rc;

use tokio::time::Instant;

use super::context::{GroupRuntime, WorkerCtx};
use crate::metrics::{Counter, Metric};
use crate::mqtt::codec::{self, ConnectOptions};
use crate::mqtt::ws::WsError;
use crate::mqtt::{
    bound_send_buffer, tcp_connect, ConnectError, Event, KeepAliveAction, ProtocolState, Session,
    SessionError,
};
use crate::plan::pacer::{self, Schedule};
use crate::plan::{DeviceRef, Disruption};
use crate::scenario::PayloadKind;
use crate::scenario::Qos;
use crate::telemetry::sparkplug::Message as SpbMessage;
use crate::telemetry::DeviceTelemetry;

use super::command::{Arrival, DeviceCommands};
use super::primary_host::{HostEvent, HostGate};
use super::sparkplug::{self, SparkplugNode};

/// First reconnect waits about this long; each further attempt doubles it, up to the cap.
/// Observers, commanders and Sparkplug hosts reconnect on the same schedule.
pub(super) const BACKOFF_BASE_US: u64 = 1_000_000;
pub(super) const BACKOFF_CAP_US: u64 = 30_000_000;
/// Most publishes written in one `write` when a device is behind.
const MAX_BATCH: usize = 64;
/// Timers fire on millisecond ticks, so a device wakes up to this much before a slot and sends then,
/// rather than up to a millisecond after it. A send ahead of its slot is measured from the actual send
/// time (its effective intended time is `min(intended, sent)`), so early never flatters the latency.
pub const EARLY_US: u64 = 1_000;
/// A phase ends on time: a slot still unsent this long after the end of its phase (or of the run) is
/// not sent any more but counted as `skipped`, so an overloaded phase does not run on into the next one
/// (or past the run's end) and its published rate is what went out during it.
pub const PHASE_GRACE_US: u64 = 500_000;
/// The kernel send buffer of a device socket (`SO_SNDBUF`; Linux doubles it). Small, so bytes a slow
/// broker does not take push back on the schedule instead of piling up in this host: 32 KiB in the
/// kernel is ~130 messages of 250 bytes, and ~650 KB/s per device even at 50 ms round trip.
pub const DEVICE_SEND_BUFFER: u32 = 16 * 1024;
/// After the run's end, how often a QoS 0 device looks whether its send queue has drained.
const UNSENT_POLL_US: u64 = 10_000;

/// What a QoS 1/2 publish of the schedule needs when its acknowledgement arrives.
#[derive(Debug, Clone, Copy)]
struct Pending {
    intended_us: u64,
    sent_us: u64,
}

/// A device's protocol state: in flight are publishes of the schedule (`Some`) and, uncounted,
/// subscriptions and command replies (`None`).
type State = ProtocolState<Option<Pending>>;

/// Why a connected period ended.
enum Ended {
    /// The schedule ran out and the window drained (or the drain time passed); QoS 0 publishes still
    /// queued in this host.
    Finished(Unsent),
    /// The run was stopped; QoS 0 publishes still queued in this host.
    Cancelled(Unsent),
    /// The connection was lost; the counter says why.
    Lost(Counter),
    /// The Sparkplug primary host went offline: NDEATH, DISCONNECT, reconnect.
    HostOffline,
}

/// Per-device state that survives reconnects.
struct Device {
    dev: DeviceRef,
    client_id: Box<str>,
    topic: Box<[u8]>,
    /// JSON telemetry; `None` for Sparkplug edge nodes (their devices keep their own).
    telemetry: Option<DeviceTelemetry>,
    schedule: Schedule,
    seq: u64,
    /// The packet id sequence, carried over reconnects.
    next_pkid: u16,
    /// The Sparkplug B edge node, for groups with `payload: sparkplug`.
    spb: Option<Box<SparkplugNode>>,
    /// Command subscription and replies, for groups with `commands:`.
    commands: Option<Box<DeviceCommands>>,
    /// The Sparkplug primary host whose STATE gates the node's births, if the group names one (boxed:
    /// rare, and 56 bytes inline).
    host: Option<Box<HostGate>>,
}

/// The named parts of a device's future and their sizes, for the footprint breakdown.
pub(super) fn parts() -> [(&'static str, usize); 4] {
    use std::mem::size_of;
    [
        (
            "  Device (state kept across reconnects)",
            size_of::<Device>(),
        ),
        (
            "    of which DeviceTelemetry",
            size_of::<Option<DeviceTelemetry>>(),
        ),
        (
            "  Session (socket, partial frames, pending writes)",
            size_of::<Session>(),
        ),
        (
            "  ProtocolState (in-flight table, keep-alive)",
            size_of::<State>(),
        ),
    ]
}

/// A connection that came up: the session, whether the broker kept a persistent session, and when
/// the CONNACK arrived (µs).
struct Up {
    session: Session,
    session_kept: bool,
    connack_us: u64,
}

/// The device's state at its start; `None` when it cannot run (counted). A plain function, so that
/// what only building it needs (the client id before it moves in, the Sparkplug node, the checks)
/// takes no room in the device's future for the rest of its life.
fn new_device(ctx: &WorkerCtx, group: &GroupRuntime, dev: DeviceRef) -> Option<Device> {
    let spec = ctx.plan.scenario.groups.get(dev.group)?;
    let seed = ctx.plan.scenario.seed;
    let client_id = ctx.client_id(dev);
    let timeline = ctx.recorder.timeline();
    // A device whose topic or CONNECT cannot be encoded can never run: counted, and the run fails
    // (validation refuses such scenarios; this catches what it could not foresee).
    let topic = codec::encode_topic(&ctx.topic(dev, &client_id)).ok();
    let connect_ok =
        codec::encode_connect(&connect_options(ctx, dev.group, client_id.clone(), None)).is_ok();
    let Some(topic) = topic.filter(|_| connect_ok) else {
        ctx.recorder
            .count(Counter::DevicesFailedToStart, dev.group, timeline.start_us);
        return None;
    };
    let spb = match &spec.payload {
        PayloadKind::Sparkplug {
            group_id,
            devices,
            device_outages,
            ..
        } => SparkplugNode::new(
            group_id,
            &client_id,
            *devices,
            &spec.profile,
            device_outages.as_ref(),
            seed,
            dev.global,
        )
        .map(Box::new),
        PayloadKind::Json => None,
    };
    Some(Device {
        dev,
        telemetry: spb
            .is_none()
            .then(|| DeviceTelemetry::new(&spec.profile, seed, dev.global)),
        schedule: Schedule {
            anchor_us: timeline.start_us,
            offset_us: pacer::phase_offset_us(seed, dev.global, group.interval_us),
            interval_us: group.interval_us,
        },
        spb,
        commands: spec.commands.as_ref().and_then(|c| {
            let vars = ctx.vars(dev, &client_id);
            DeviceCommands::new(c, dev.group, &vars).map(Box::new)
        }),
        host: spec.primary_host().map(|h| Box::new(HostGate::new(h))),
        client_id: client_id.into_boxed_str(),
        topic,
        seq: 0,
        next_pkid: 1,
    })
}

/// Run one device until the run ends. Its state is built when the task is spawned, and the future
/// works on it in place: an `async fn` would keep its arguments and the locals moved out of them side
/// by side in the future.
pub fn run(ctx: Rc<WorkerCtx>, dev: DeviceRef) -> impl std::future::Future<Output = ()> {
    let device = ctx
        .groups
        .get(dev.group)
        .and_then(|group| new_device(&ctx, group, dev));
    lifecycle(ctx, device)
}

/// What [`run`] runs: connect, stay connected, reconnect with backoff, until the run ends. Not an
/// `async fn` on purpose: one would move `device` (168 B) from its argument slot into a local, and the
/// future would keep both.
#[allow(clippy::manual_async_fn)]
fn lifecycle(
    ctx: Rc<WorkerCtx>,
    mut device: Option<Device>,
) -> impl std::future::Future<Output = ()> {
    async move {
        let Some(device) = device.as_mut() else {
            return;
        };
        let Some(group) = ctx.groups.get(device.dev.group) else {
            return;
        };
        let end_us = ctx.recorder.timeline().end_us();
        let mut intended_connect = pacer::connect_at(
            ctx.recorder.timeline().start_us,
            device.dev.global,
            ctx.connect_rate_per_s,
        );
        let mut attempt = 0u32;
        while intended_connect < end_us {
            if !sleep_until(&ctx, intended_connect.saturating_sub(EARLY_US)).await {
                return;
            }
            // Boxed: the connect step (TCP, TLS, WebSocket upgrade, CONNACK) is several KB of future state
            // that lives only while connecting; inline, every idle device would carry it. Taken apart at
            // once, so that no `Up` stays in the future beside the session.
            let lost = match Box::pin(connect(&ctx, device, intended_connect)).await {
                None => return,
                Some(Err(reason)) => reason,
                Some(Ok(Up {
                    mut session,
                    session_kept,
                    connack_us,
                })) => {
                    attempt = 0;
                    ctx.recorder.connected_delta(1);
                    // This connection's protocol state (freed with it); packet ids continue the device's
                    // sequence.
                    let mut state = State::new(group.max_inflight, ctx.keep_alive_us, connack_us)
                        .with_next_pkid(device.next_pkid);
                    let ended = connected(
                        &ctx,
                        group,
                        device,
                        (&mut session, &mut state),
                        (session_kept, connack_us),
                    )
                    .await;
                    device.next_pkid = state.next_pkid();
                    drop(state);
                    ctx.recorder.connected_delta(-1);
                    let reason = match ended {
                        Ended::Finished(unsent) | Ended::Cancelled(unsent) => {
                            goodbye(&ctx, device, session, unsent);
                            return;
                        }
                        Ended::HostOffline => {
                            goodbye(&ctx, device, session, Unsent::default());
                            Counter::SparkplugHostOffline
                        }
                        Ended::Lost(reason) => reason,
                    };
                    if let Some(spb) = device.spb.as_deref_mut() {
                        spb.disconnected();
                    }
                    reason
                }
            };
            let now = ctx.recorder.now_us();
            ctx.recorder.count(lost, device.dev.group, now);
            let seed = ctx.plan.scenario.seed;
            let wait = pacer::backoff_us(
                BACKOFF_BASE_US,
                BACKOFF_CAP_US,
                attempt,
                seed,
                device.dev.global,
            );
            attempt = attempt.saturating_add(1);
            intended_connect = now.saturating_add(wait);
        }
    }
}

/// End a session cleanly. A clean DISCONNECT suppresses the will, so a Sparkplug node that was born
/// announces its death (NDEATH) itself first (counted as published once the socket took it). With
/// `unsent` QoS 0 publishes still queued in this host, they are counted as `unsent_at_end` and the
/// connection is reset so they never arrive (the broker then publishes a Sparkplug node's will).
fn goodbye(ctx: &WorkerCtx, device: &Device, mut session: Session, unsent: Unsent) {
    let rec = &ctx.recorder;
    let g = device.dev.group;
    if unsent.messages > 0 {
        rec.count_n(Counter::UnsentAtEnd, g, unsent.last_us, unsent.messages);
        session.abort();
        return;
    }
    if let Some(spb) = device.spb.as_deref().filter(|s| s.born()) {
        let death = spb.will();
        let mut out = Vec::with_capacity(death.payload.len() + death.topic.len() + 8);
        if let Ok(t) = codec::encode_topic(&death.topic) {
            codec::encode_publish(
                &mut out,
                ctx.version,
                &t,
                death.qos,
                death.retain,
                false,
                1,
                &death.payload,
            );
            if let Ok(true) = session.try_send(&out) {
                count_published(rec, g, rec.now_us(), 1);
            }
        }
    }
    session.close();
}

/// Sleep until `t_us`; `false` when the run was cancelled first.
async fn sleep_until(ctx: &WorkerCtx, t_us: u64) -> bool {
    let at = Instant::from_std(ctx.recorder.clock().instant_at(t_us));
    tokio::select! {
        biased;
        _ = ctx.cancel_waiters.cancelled() => false,
        _ = tokio::time::sleep_until(at) => true,
    }
}

fn connect_failure(e: &ConnectError) -> Counter {
    match e {
        ConnectError::Refused => Counter::ConnectFailRefused,
        ConnectError::Timeout => Counter::ConnectFailTimeout,
        ConnectError::Reset => Counter::ConnectFailReset,
        ConnectError::Rejected { .. } => Counter::ConnectFailRejected,
        ConnectError::Protocol(_) | ConnectError::Upgrade(_) => Counter::ConnectFailProtocol,
        ConnectError::NoPort(_) => Counter::ConnectFailNoPort,
        ConnectError::Io(_) => Counter::ConnectFailOther,
        ConnectError::Tls { reason, .. } => super::failure::tls_failure_counter(*reason),
    }
}

/// One connect attempt. `None` when cancelled; otherwise the session or the failure counter (the
/// failure is counted by the caller, at one site with disconnects).
async fn connect(
    ctx: &WorkerCtx,
    device: &Device,
    intended_us: u64,
) -> Option<Result<Up, Counter>> {
    let _permit = tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => return None,
        p = ctx.connecting.acquire() => p.ok()?,
    };
    let rec = &ctx.recorder;
    let group = device.dev.group;
    let sent_us = rec.now_us();
    let intended_us = intended_us.min(sent_us);
    rec.count(Counter::ConnectAttempts, group, intended_us);
    let (clean_session, _) = ctx.session_of(group);
    let options = connect_options(
        ctx,
        group,
        device.client_id.to_string(),
        device.spb.as_ref().map(|s| s.will()),
    );
    let attempt = async {
        let packet =
            codec::encode_connect(&options).map_err(|e| ConnectError::Protocol(e.to_string()))?;
        let (broker, source) = ctx.broker_for(device.dev);
        let tls = match ctx.tls_for(device.dev)? {
            Some(base) => Some(device_tls(ctx, device, base)?),
            None => None,
        };
        let stream = tcp_connect(broker, source, ctx.connect_timeout).await?;
        bound_send_buffer(&stream, DEVICE_SEND_BUFFER);
        let remaining = |now: u64| {
            ctx.connect_timeout
                .saturating_sub(std::time::Duration::from_micros(
                    now.saturating_sub(sent_us),
                ))
        };
        let tcp_us = rec.now_us();
        let (stream, handshake) = super::tls::open(stream, tls.as_ref(), remaining(tcp_us)).await?;
        if let Some(h) = handshake {
            let done = rec.now_us();
            // Corrected from when the TLS step was due: the intended connect time plus the TCP connect.
            let due = intended_us.saturating_add(tcp_us.saturating_sub(sent_us));
            rec.latency(Metric::TlsHandshake, group, due, tcp_us, done);
            let kind = if h.resumed {
                Counter::TlsHandshakesResumed
            } else {
                Counter::TlsHandshakesFull
            };
            rec.count(kind, group, intended_us);
        }
        Session::handshake_with(
            stream,
            ctx.ws_for(device.dev),
            ctx.version,
            &packet,
            remaining(rec.now_us()),
        )
        .await
    };
    let result = tokio::select! {
        biased;
        _ = ctx.cancel.cancelled() => {
            rec.count(Counter::ConnectAbandoned, group, intended_us);
            return None;
        }
        r = attempt => r,
    };
    Some(match result {
        Ok((session, present)) => {
            let done = rec.now_us();
            rec.latency(Metric::Connect, group, intended_us, sent_us, done);
            rec.count(Counter::ConnectSuccesses, group, intended_us);
            Ok(Up {
                session,
                session_kept: present && !clean_session,
                connack_us: done,
            })
        }
        Err(e) => {
            if let ConnectError::Rejected { code, .. } = e {
                rec.refused(code);
            }
            Err(connect_failure(&e))
        }
    })
}

/// The TLS client of one device: its target's, with its own certificate when `broker.tls.cert` is a
/// per-device template.
fn device_tls(
    ctx: &WorkerCtx,
    device: &Device,
    base: &crate::mqtt::TlsClient,
) -> Result<crate::mqtt::TlsClient, ConnectError> {
    let broker = &ctx.plan.scenario.broker;
    let per_device = matches!(
        broker.tls.as_ref().map(|t| &t.identity),
        Some(crate::scenario::ClientIdentity::Files { cert, .. }) if cert.as_str().contains('{')
    ) || matches!(
        broker.tls.as_ref().map(|t| &t.identity),
        Some(crate::scenario::ClientIdentity::Issue(_))
    );
    if !per_device {
        return Ok(base.clone());
    }
    let group = ctx
        .plan
        .groups()
        .get(device.dev.group)
        .map_or("", |g| g.name.as_str());
    let vars = crate::scenario::template::TemplateVars {
        group,
        index: device.dev.index,
        global_index: device.dev.global,
        client_id: &device.client_id,
    };
    super::tls::for_device(base, broker, ctx.minter.as_deref(), &vars)
}

/// The CONNECT of a device of group `group`.
fn connect_options(
    ctx: &WorkerCtx,
    group: usize,
    client_id: String,
    will: Option<crate::mqtt::codec::Will>,
) -> ConnectOptions {
    let broker = &ctx.plan.scenario.broker;
    let (clean_session, session_expiry_s) = ctx.session_of(group);
    ConnectOptions {
        version: ctx.version,
        client_id,
        keep_alive_s: u16::try_from(ctx.keep_alive_us / 1_000_000).unwrap_or(u16::MAX),
        clean_session,
        username: broker.username.clone(),
        password: broker.password.clone(),
        will,
        session_expiry_s,
    }
}

/// Flags the read handler sets for the loop.
#[derive(Default)]
struct ReadFlags {
    server_disconnect: bool,
    /// A Sparkplug host asked for a rebirth (NCMD `Node Control/Rebirth`).
    rebirth: bool,
    /// The Sparkplug primary host's STATE opened or closed the gate.
    host: Option<HostEvent>,
}

/// The connected period: publish on schedule, handle acks, keep alive. `(session_kept, connack_us)`:
/// whether the broker kept a persistent session, and when this connection's CONNACK arrived;
/// `inflight`: this connection's protocol state.
async fn connected(
    ctx: &WorkerCtx,
    group: &GroupRuntime,
    device: &mut Device,
    (session, inflight): (&mut Session, &mut State),
    (session_kept, connack_us): (bool, u64),
) -> Ended {
    if let Some(h) = device.host.as_mut() {
        h.reconnected();
    }
    let rec = &ctx.recorder;
    let g = device.dev.group;
    let end_us = rec.timeline().end_us();
    let drain_until = end_us.saturating_add(ctx.drain_us);
    // Sparkplug data goes at QoS 0, as the specification requires.
    let acked = group.qos != Qos::AtMostOnce && device.spb.is_none();
    // Births go out once the primary host (if any) is online; a new session waits for its STATE again.
    let mut births_due = device.spb.is_some();
    // Devices with commands listen until the commander has its replies (or the drain ends).
    let listening = device.commands.is_some();
    let mut subscribe_due = listening;
    let mut subscribed = false;
    let mut topic_buf: Vec<u8> = Vec::new();
    let now = rec.now_us();
    let mut next_slot = device.schedule.first_slot_at_or_after(now);
    // When a churn or storm phase makes this device drop (computed, like every time here).
    let disruption = ctx.plan.next_disruption(rec.timeline(), device.dev, now);
    // What this session wrote, to turn queued bytes into messages at the end.
    let mut sent = Sent::default();
    // The broker's push-back: while a due slot waits for the socket or the in-flight window the
    // device is held; when it is free again, the lateness of what came due meanwhile is the broker's.
    let mut held = Held::default();

    // The one place a lost connection fails what it had in flight.
    let lose = |reason: Counter, inflight: &mut State| {
        inflight.drain(|f| {
            if let Some(f) = f {
                rec.count(Counter::PublishFailed, g, f.intended_us);
            }
        });
        Ended::Lost(reason)
    };

    // One cancellation waiter and one timer for the whole connected period, re-armed each turn:
    // registering a fresh waiter and timer entry per message was a large share of the per-message CPU.
    let cancelled = ctx.cancel_waiters.cancelled();
    tokio::pin!(cancelled);
    let timer = tokio::time::sleep_until(Instant::from_std(rec.clock().instant_at(now)));
    tokio::pin!(timer);
    // Only devices with commands wait for the commander: boxed, not 72 bytes in every device's future.
    let mut commands_done = listening.then(|| Box::pin(ctx.commands_done.cancelled()));
    loop {
        let now = rec.now_us();
        if held.now && !session.has_pending_out() && (!acked || inflight.has_room()) {
            held = Held {
                now: false,
                released_us: now,
            };
        }
        // 0. a phase ends on time: its slots that could not go out by then are skipped
        skip_closed_phases(
            rec,
            g,
            &device.schedule,
            &mut next_slot,
            (now, held.until()),
        );
        // A slot is never sent (early) before its phase began, so each phase counts its own slots.
        let phase_end_now = phase_end_at(rec, now);
        // 1. everything due goes out, in one write
        let mut batch = 0;
        {
            let mut out = ctx.write_buf.borrow_mut();
            out.clear();
            let mut payload = ctx.payload_buf.borrow_mut();
            if subscribe_due {
                subscribe_due = false;
                if let (Some(c), Ok(pkid)) =
                    (device.commands.as_deref_mut(), inflight.subscribe(None))
                {
                    let before = out.len();
                    c.on_connected(&mut out, ctx.version, pkid, now, session_kept);
                    if out.len() > before {
                        batch += 1;
                    } else {
                        // The broker kept the subscription: the id was not used.
                        inflight.forget(pkid);
                    }
                }
            }
            if !subscribed {
                if let Some(spb) = device.spb.as_deref() {
                    // Listen for NCMD (rebirth requests) and the primary host's STATE before announcing
                    // the node.
                    subscribed = true;
                    let mut filters = vec![(spb.command_topic().to_owned(), Qos::AtMostOnce)];
                    if let Some(h) = &device.host {
                        filters.push((h.topic().to_owned(), Qos::AtLeastOnce));
                    }
                    if let Ok(pkid) = inflight.subscribe(None) {
                        match codec::encode_subscribe(ctx.version, pkid, &filters) {
                            Ok(sub) => {
                                out.extend_from_slice(&sub);
                                batch += 1;
                            }
                            Err(_) => {
                                inflight.forget(pkid);
                            }
                        }
                    }
                }
            }
            let gated = device.host.as_ref().is_some_and(|h| !h.open());
            if births_due && !gated {
                births_due = false;
                if let Some(spb) = device.spb.as_deref_mut() {
                    let births = spb.births(now);
                    for m in births {
                        encode_spb(&mut out, &mut topic_buf, ctx.version, m);
                    }
                    count_published(rec, g, now, births.len() as u64);
                    sent.messages += births.len() as u64;
                    batch += 1;
                }
            }
            // Nothing new while the socket has not taken the last write: the slots wait (late, then
            // skipped) rather than pile up in this host.
            while batch < MAX_BATCH
                && !session.has_pending_out()
                && device.schedule.due(next_slot) <= now.saturating_add(EARLY_US)
                && (device.schedule.due(next_slot) <= now
                    || device.schedule.due(next_slot) < phase_end_now)
                && device.schedule.due(next_slot) < end_us
                && (!acked || inflight.has_room())
            {
                if group.skip_late && device.schedule.is_overrun(next_slot, now) {
                    // A whole interval late: drop the slots already missed rather than send them late.
                    let resume = device
                        .schedule
                        .first_slot_at_or_after(now.saturating_sub(group.interval_us));
                    skip_to(
                        rec,
                        g,
                        &device.schedule,
                        &mut next_slot,
                        (resume, held.until()),
                    );
                    continue;
                }
                if gated {
                    // The primary host is not online: no data before births, and nobody expects it.
                    rec.count(Counter::SparkplugGated, g, device.schedule.due(next_slot));
                    next_slot += 1;
                    continue;
                }
                let intended = device.schedule.due(next_slot).min(now);
                let pkid = if acked {
                    let pending = Pending {
                        intended_us: intended,
                        sent_us: now,
                    };
                    match inflight.publish(group.qos, Some(pending)) {
                        Ok(p) => p,
                        Err(_) => break,
                    }
                } else {
                    0
                };
                let messages = match device.spb.as_deref_mut() {
                    Some(spb) => {
                        let data = spb.data(intended);
                        for m in data {
                            encode_spb(&mut out, &mut topic_buf, ctx.version, m);
                        }
                        data.len() as u64
                    }
                    None => {
                        payload.clear();
                        if let Some(telemetry) = device.telemetry.as_mut() {
                            telemetry.encode_json_sent(
                                &device.client_id,
                                device.seq,
                                intended,
                                now,
                                &mut payload,
                            );
                        }
                        codec::encode_publish(
                            &mut out,
                            ctx.version,
                            &device.topic,
                            group.qos,
                            group.retain,
                            false,
                            pkid,
                            &payload,
                        );
                        1
                    }
                };
                late(rec, g, &device.schedule, next_slot, (now, &held));
                count_published(rec, g, intended, messages);
                sent.messages += messages;
                sent.last_us = intended;
                if group.fanout > 0 {
                    rec.count_n(Counter::ExpectedDeliveries, g, intended, group.fanout);
                }
                device.seq += 1;
                next_slot += 1;
                batch += 1;
            }
            if batch > 0 {
                if let Err(_e) = session.try_send(&out) {
                    return lose(Counter::DisconnectReset, inflight);
                }
                sent.bytes += out.len() as u64;
                inflight.sent(now);
            }
            // Blocked until the socket takes the rest or an ack frees the window: the device does not
            // wake for slots meanwhile, so when it is free again every slot due by then was held.
            if session.has_pending_out() || (acked && !inflight.has_room()) {
                held.now = true;
            }
        }
        if session.has_pending_out() {
            // Wait for the socket, but not past the moment the next slot's phase closes (its slots are
            // then skipped), the drain's end, or a keep-alive deadline.
            let until = phase_close_us(rec, &device.schedule, next_slot)
                .min(drain_until)
                .min(inflight.next_deadline())
                .max(now.saturating_add(1));
            timer
                .as_mut()
                .reset(Instant::from_std(rec.clock().instant_at(until)));
            let flushed = tokio::select! {
                biased;
                _ = &mut cancelled => None,
                r = session.flush() => Some(r),
                _ = &mut timer => Some(Ok(())),
            };
            match flushed {
                None => return Ended::Cancelled(at_end(rec, g, inflight, session, (!acked, sent))),
                Some(Err(_)) => return lose(Counter::DisconnectReset, inflight),
                Some(Ok(())) => {}
            }
        }

        if let Some((at, why)) = disruption {
            if now >= at {
                let reason = match why {
                    Disruption::Churn => Counter::ChurnDrops,
                    Disruption::Storm => Counter::StormDrops,
                };
                return lose(reason, inflight);
            }
        }

        // 2. keep-alive
        let (action, ping_ok) = {
            let mut out = ctx.write_buf.borrow_mut();
            out.clear();
            let a = inflight.tick(now, &mut out);
            (
                a,
                a != KeepAliveAction::SendPing || session.try_send(&out).is_ok(),
            )
        };
        match action {
            KeepAliveAction::TimedOut => return lose(Counter::DisconnectKeepalive, inflight),
            KeepAliveAction::SendPing if !ping_ok => {
                return lose(Counter::DisconnectReset, inflight)
            }
            KeepAliveAction::SendPing => rec.count(Counter::PingSent, g, now),
            KeepAliveAction::Nothing => {}
        }

        // 3. done?
        let publishing = device.schedule.due(next_slot) < end_us;
        // A device stays connected until the run ends, even when its next slot is beyond the end.
        let answered = !listening || ctx.commands_done.is_cancelled() || now >= drain_until;
        // QoS 0 has no ack to wait for: the drain waits until the send queue has left this host. The
        // drain ends the device whatever the broker does (a full in-flight window, a broker that stopped
        // reading): what is unacknowledged is in flight at the end, what is still queued is unsent.
        let queued = !publishing && now >= end_us && !acked && session.unsent_bytes() > 0;
        if now >= drain_until
            || (!publishing && now >= end_us && inflight.inflight() == 0 && !queued && answered)
        {
            return Ended::Finished(at_end(rec, g, inflight, session, (!acked, sent)));
        }

        // 4. sleep until the next thing to do, or until the broker says something
        let mut wake = u64::MAX;
        if publishing && (!acked || inflight.has_room()) {
            let due = device.schedule.due(next_slot);
            // Early, but not before the slot's phase began.
            wake = due.saturating_sub(EARLY_US);
            if due >= phase_end_now {
                wake = wake.max(phase_end_now);
            }
        }
        if publishing {
            wake = wake.min(phase_close_us(rec, &device.schedule, next_slot));
        } else {
            wake = wake.min(if now < end_us { end_us } else { drain_until });
        }
        if queued {
            wake = wake.min(now.saturating_add(UNSENT_POLL_US));
        }
        wake = wake.min(inflight.next_deadline());
        if let Some((at, _)) = disruption {
            wake = wake.min(at);
        }
        timer.as_mut().reset(Instant::from_std(
            rec.clock().instant_at(wake.min(drain_until)),
        ));
        tokio::select! {
            biased;
            _ = &mut cancelled => return Ended::Cancelled(at_end(rec, g, inflight, session, (!acked, sent))),
            _ = async {
                if let Some(done) = commands_done.as_mut() {
                    done.await;
                }
            }, if listening && !ctx.commands_done.is_cancelled() => {}
            r = session.readable() => {
                if r.is_err() {
                    return lose(Counter::DisconnectReset, inflight);
                }
                let mut flags = ReadFlags::default();
                let status = {
                    let mut scratch = ctx.read_buf.borrow_mut();
                    let mut out = ctx.write_buf.borrow_mut();
                    out.clear();
                    let done_us = rec.now_us();
                    let spb = device.spb.as_deref();
                    let mut commands = device.commands.as_deref_mut();
                    let mut host = device.host.as_mut();
                    let result = session.read_available(&mut scratch, &mut |p| {
                        let event = inflight.handle(p, &mut out);
                        if let Event::Publish { topic, payload, .. } = event {
                            if let Some(s) = spb {
                                flags.rebirth |= s.wants_rebirth(topic, payload);
                            }
                            let event = host.as_deref_mut().and_then(|h| h.on_publish(topic, payload));
                            // Offline wins within one read: the session ends either way.
                            if event.is_some() && flags.host != Some(HostEvent::Offline) {
                                flags.host = event;
                            }
                        }
                        if let Some(c) = commands.as_deref_mut() {
                            match event {
                                Event::Publish { payload, .. } => {
                                    let mut reply_pkid = |q| inflight.publish_reply(q, None).ok();
                                    let a = Arrival { rec, version: ctx.version, connack_us, take_pkid: &mut reply_pkid, out: &mut out };
                                    c.on_publish(a, g, payload);
                                }
                                Event::SubAck { pkid, .. } => c.on_suback(rec, g, pkid, done_us),
                                _ => {}
                            }
                        }
                        on_event(rec, g, done_us, event, &mut flags);
                    });
                    match result {
                        Ok(_) if !out.is_empty() => session.try_send(&out).map_err(SessionError::Io),
                        Ok(_) => Ok(true),
                        Err(e) => Err(e),
                    }
                };
                match flags.host {
                    Some(HostEvent::Online) => births_due = true,
                    // Sparkplug publishes are QoS 0: nothing is in flight.
                    Some(HostEvent::Offline) => return Ended::HostOffline,
                    None => {}
                }
                if flags.rebirth {
                    births_due = true;
                }
                if flags.server_disconnect {
                    return lose(Counter::DisconnectServer, inflight);
                }
                match status {
                    Ok(_) => {}
                    Err(SessionError::Closed) => return lose(Counter::DisconnectClosed, inflight),
                    Err(SessionError::Io(_)) => return lose(Counter::DisconnectReset, inflight),
                    Err(SessionError::Protocol(_)) => return lose(Counter::DisconnectProtocol, inflight),
                    Err(SessionError::WebSocket(WsError::Closed { .. })) => return lose(Counter::DisconnectClosed, inflight),
                    Err(SessionError::WebSocket(_)) => return lose(Counter::DisconnectProtocol, inflight),
                }
            }
            _ = &mut timer => {}
        }
    }
}

/// The run is over for this device (it finished, or the run was cancelled): what is still
/// unacknowledged is in flight at the end, what is still queued (QoS 0) is unsent.
fn at_end(
    rec: &crate::metrics::Recorder,
    g: usize,
    inflight: &mut State,
    session: &Session,
    (qos0, sent): (bool, Sent),
) -> Unsent {
    inflight_at_end(rec, g, inflight);
    unsent_messages(session, qos0, sent)
}

/// The one place `inflight_at_end` is counted.
fn inflight_at_end(rec: &crate::metrics::Recorder, g: usize, inflight: &mut State) {
    inflight.drain(|f| {
        if let Some(f) = f {
            rec.count(Counter::InflightAtEnd, g, f.intended_us);
        }
    });
}

/// Publishes and bytes one connected period wrote.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    messages: u64,
    bytes: u64,
    /// Intended time of the last publish (the queued ones are the last written).
    last_us: u64,
}

/// QoS 0 publishes still queued in this host at the end, attributed to the last publish's phase.
#[derive(Debug, Clone, Copy, Default)]
struct Unsent {
    messages: u64,
    last_us: u64,
}

/// QoS 0 publishes still queued in this host (not yet taken by the broker's TCP) at the end of a
/// session: the queued bytes over this session's average bytes per message, rounded up (QoS 1/2 ones
/// are `inflight_at_end` already). One `ioctl`, at the end only.
fn unsent_messages(session: &Session, qos0: bool, sent: Sent) -> Unsent {
    if !qos0 || sent.messages == 0 || sent.bytes == 0 {
        return Unsent::default();
    }
    let queued = session.unsent_bytes();
    if queued == 0 {
        return Unsent::default();
    }
    let estimate = u128::from(queued) * u128::from(sent.messages);
    let n = estimate.div_ceil(u128::from(sent.bytes));
    Unsent {
        messages: u64::try_from(n).unwrap_or(u64::MAX).min(sent.messages),
        last_us: sent.last_us,
    }
}

/// Whether the broker holds the device back: the socket's send buffer or the in-flight window is full
/// (`now`), and when that last ended.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    now: bool,
    released_us: u64,
}

impl Held {
    /// Slots due before this time came due while the broker held the device back.
    fn until(&self) -> u64 {
        if self.now {
            u64::MAX
        } else {
            self.released_us
        }
    }
}

/// How late slot `n` went out at `now`, and why: the one place `overrun` and `pushed_back` are
/// counted for sent slots, and the `send_lag` of every publish of the schedule (corrected: from the
/// intended time; uncorrected: from when the broker let the device go, i.e. the client's own lag).
fn late(
    rec: &crate::metrics::Recorder,
    g: usize,
    schedule: &Schedule,
    n: u64,
    (now, held): (u64, &Held),
) {
    let due = schedule.due(n);
    let intended = due.min(now);
    let pushed = due < held.until();
    let free = if pushed {
        held.released_us.max(intended)
    } else {
        intended
    };
    if pushed {
        rec.count(Counter::PushedBack, g, intended);
    } else if schedule.is_overrun(n, now) {
        rec.count(Counter::Overrun, g, intended);
    }
    rec.latency(Metric::SendLag, g, intended, free.min(now), now);
}

/// Count messages written to the socket: the one place `published` is incremented.
fn count_published(rec: &crate::metrics::Recorder, g: usize, at_us: u64, n: u64) {
    rec.count_n(Counter::Published, g, at_us, n);
}

/// Skip the slots from `next_slot` up to `resume` (exclusive), no further than the end of the phase of
/// the first one, so each phase counts its own: the one place `skipped` is incremented.
/// The skipped slots that came due before `held_until` were held back by the broker: the one place
/// `pushed_back` is counted for skipped slots.
fn skip_to(
    rec: &crate::metrics::Recorder,
    g: usize,
    schedule: &Schedule,
    next_slot: &mut u64,
    (resume, held_until): (u64, u64),
) {
    let due = schedule.due(*next_slot);
    let phase_end = phase_end_at(rec, due);
    let resume = resume
        .min(schedule.first_slot_at_or_after(phase_end))
        .max(*next_slot + 1);
    rec.count_n(Counter::Skipped, g, due, resume - *next_slot);
    let pushed = resume
        .min(schedule.first_slot_at_or_after(held_until))
        .saturating_sub(*next_slot);
    if pushed > 0 {
        rec.count_n(Counter::PushedBack, g, due, pushed);
    }
    *next_slot = resume;
}

/// The end of the phase `t_us` is in.
fn phase_end_at(rec: &crate::metrics::Recorder, t_us: u64) -> u64 {
    let t = rec.timeline();
    t.phases
        .get(t.phase_at(t_us))
        .map_or(u64::MAX, |p| p.end_us)
}

/// When the slot `n`'s phase closes for sending: its end plus [`PHASE_GRACE_US`] (never, for a slot
/// after the run's end).
fn phase_close_us(rec: &crate::metrics::Recorder, schedule: &Schedule, n: u64) -> u64 {
    let t = rec.timeline();
    let due = schedule.due(n);
    if due >= t.end_us() {
        return u64::MAX;
    }
    phase_end_at(rec, due).saturating_add(PHASE_GRACE_US)
}

/// Skip every slot whose phase closed (ended more than the grace ago) before `now`: such a slot can no
/// longer be sent inside its phase. Once per loop turn, not per message.
fn skip_closed_phases(
    rec: &crate::metrics::Recorder,
    g: usize,
    schedule: &Schedule,
    next_slot: &mut u64,
    (now, held_until): (u64, u64),
) {
    let end_us = rec.timeline().end_us();
    while schedule.due(*next_slot) < end_us && phase_close_us(rec, schedule, *next_slot) <= now {
        skip_to(rec, g, schedule, next_slot, (u64::MAX, held_until));
    }
}

/// What one packet from the broker means for the device's counters (the protocol state already
/// matched acks to their publishes, once each, and wrote the replies owed).
fn on_event(
    rec: &crate::metrics::Recorder,
    g: usize,
    done_us: u64,
    event: Event<'_, Option<Pending>>,
    flags: &mut ReadFlags,
) {
    match event {
        Event::Acked { meta: Some(f), qos } => {
            let metric = if qos == Qos::ExactlyOnce {
                Metric::Pubcomp
            } else {
                Metric::Puback
            };
            rec.latency(metric, g, f.intended_us, f.sent_us, done_us);
            rec.count(Counter::Acked, g, f.intended_us);
        }
        Event::Refused { meta: Some(f), .. } => {
            rec.count(Counter::PublishFailed, g, f.intended_us);
        }
        Event::Disconnected { .. } => flags.server_disconnect = true,
        // Command replies and subscriptions (no counters here), deliveries (handled by the caller).
        Event::Acked { meta: None, .. }
        | Event::Refused { meta: None, .. }
        | Event::Publish { .. }
        | Event::SubAck { .. }
        | Event::Handled
        | Event::Unexpected => {}
    }
}

/// Append one Sparkplug message as a PUBLISH (QoS 0 data and births carry no packet id).
fn encode_spb(
    out: &mut Vec<u8>,
    topic_buf: &mut Vec<u8>,
    version: crate::scenario::MqttVersion,
    m: &SpbMessage,
) {
    if codec::encode_topic_into(topic_buf, &m.topic).is_err() {
        return;
    }
    codec::encode_publish(
        out,
        version,
        topic_buf,
        sparkplug::qos(m),
        m.retain,
        false,
        1,
        &m.payload,
    );
}
