//! Commanders: for each group with `commands:`, one connection per broker target on the observer thread
//! (so once per run, also with worker processes: only shard 0 has an observer thread). Each publishes
//! the group's commands on their schedule (`start + n / rate`, round-robin over the devices, each via
//! the broker its device uses), subscribes to the group's replies, and records `command_rtt` from each
//! echoed stamp. A group's book says which commands went out and which were answered; at the end every
//! command sent without a reply is counted as unanswered, so sent = replies + unanswered holds.

use std::cell::RefCell;
use std::rc::Rc;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::command::CommandStamp;
use super::context::broker_index;
use super::monitor::{backoff, subscribed, Ended, ObsCtx, Ready, Reconnecting, Subscribed};
use crate::metrics::{Counter, Metric, Recorder};
use crate::mqtt::codec;
use crate::mqtt::{Event, KeepAliveAction, ProtocolState, Session};
use crate::plan::commands::CommandSchedule;
use crate::plan::{DeviceRef, Plan};
use crate::scenario::template::TemplateVars;
use crate::scenario::topic::group_filter;
use crate::scenario::Qos;

/// Most commands written in one `write` when the commander is behind.
const MAX_BATCH: u64 = 256;

/// Which commands of one group went out and which were answered.
pub(super) struct Book {
    group: usize,
    sent: Vec<u64>,
    answered: Vec<u64>,
    sent_count: u64,
    replies: u64,
    /// Commander connections of this group still sending.
    senders: usize,
    settled: bool,
}

fn bit(bits: &[u64], n: u64) -> bool {
    usize::try_from(n / 64)
        .ok()
        .and_then(|i| bits.get(i))
        .is_some_and(|w| w & (1 << (n % 64)) != 0)
}

fn set_bit(bits: &mut [u64], n: u64) {
    if let Some(w) = usize::try_from(n / 64).ok().and_then(|i| bits.get_mut(i)) {
        *w |= 1 << (n % 64);
    }
}

impl Book {
    /// Size the bit sets for `len` commands (once).
    fn prepare(&mut self, len: u64) {
        let words = usize::try_from(len.div_ceil(64)).unwrap_or(0);
        if self.sent.len() < words {
            self.sent.resize(words, 0);
            self.answered.resize(words, 0);
        }
    }

    fn mark_sent(&mut self, n: u64) {
        set_bit(&mut self.sent, n);
        self.sent_count += 1;
    }

    /// A reply to command `n`: `true` the first time for a command that was sent.
    fn answer(&mut self, n: u64) -> bool {
        if !bit(&self.sent, n) || bit(&self.answered, n) {
            return false;
        }
        set_bit(&mut self.answered, n);
        self.replies += 1;
        true
    }

    /// Whether this group just became settled: nothing more to send, every command answered.
    fn settles_now(&mut self) -> bool {
        if self.settled || self.senders > 0 || self.replies < self.sent_count {
            return false;
        }
        self.settled = true;
        true
    }
}

/// Start the commander connections; returns every group's book for [`finish`].
pub(super) fn spawn(
    ctx: &Rc<ObsCtx>,
    tracker: &TaskTracker,
    ready: &tokio::sync::mpsc::UnboundedSender<Ready>,
) -> Vec<Rc<RefCell<Book>>> {
    let mut books = Vec::new();
    for (group, g) in ctx.plan.groups().iter().enumerate() {
        if g.commands.is_none() {
            continue;
        }
        let book = Rc::new(RefCell::new(Book {
            group,
            sent: Vec::new(),
            answered: Vec::new(),
            sent_count: 0,
            replies: 0,
            senders: ctx.brokers.len(),
            settled: false,
        }));
        for b in 0..ctx.brokers.len() {
            tracker.spawn_local(commander(ctx.clone(), book.clone(), b, ready.clone()));
        }
        books.push(book);
    }
    books
}

/// At the end of the run: every command sent without a reply is unanswered (the counter's only site).
pub(super) fn finish(plan: &Plan, rec: &Recorder, books: &[Rc<RefCell<Book>>]) {
    for book in books {
        let book = book.borrow();
        let Some(schedule) = CommandSchedule::of_group(plan, rec.timeline(), book.group) else {
            continue;
        };
        for n in 0..schedule.len() {
            if bit(&book.sent, n) && !bit(&book.answered, n) {
                rec.count(Counter::CommandsUnanswered, book.group, schedule.due(n));
            }
        }
    }
}

/// One commander: group `book.group`, broker target `broker`. A connection lost during the run is
/// counted and re-established with the devices' backoff; commands whose slot falls while it is down
/// are not sent (`commands_skipped`). Only a failure of the very first start is final.
async fn commander(
    ctx: Rc<ObsCtx>,
    book: Rc<RefCell<Book>>,
    broker: usize,
    ready: tokio::sync::mpsc::UnboundedSender<Ready>,
) {
    let group = book.borrow().group;
    let (Some(g), Some(&target)) = (ctx.plan.groups().get(group), ctx.brokers.get(broker)) else {
        return;
    };
    let Some(spec) = g.commands.as_ref() else {
        return;
    };
    let client_id = format!(
        "fleetstorm-commander-{}-{}-{broker}",
        ctx.plan.scenario.name, g.name
    );
    let filters = [(group_filter(&spec.reply_topic, &g.name), spec.qos)];
    let jitter_id = 0xC0DE_0000_0000_0000 ^ ((group as u64) << 24) ^ broker as u64;
    let mut first = Some(ready);
    let mut attempt: u32 = 0;
    let mut reconnecting = Reconnecting::default();
    let mut sender = Sender {
        n: 0,
        sending: true,
        resumed: false,
    };
    loop {
        let started = tokio::select! {
            _ = ctx.cancel.cancelled() => None,
            r = subscribed(&ctx, target, (client_id.clone(), None), &filters) => Some(r),
        };
        let Subscribed {
            mut session,
            mut state,
            ..
        } = match started {
            None => break,
            Some(Ok(up)) => {
                let (sent, done) = (up.sent_us, up.done_us);
                match first.take() {
                    Some(ready) => {
                        let _ = ready.send(Ok((sent, done)));
                    }
                    None => {
                        reconnecting.up(&ctx, group);
                        sender.resumed = true;
                    }
                }
                attempt = 0;
                up
            }
            Some(Err(e)) => {
                if let Some(ready) = first.take() {
                    let _ = ready.send(Err(format!("commander of group `{}`: {e}", g.name)));
                    break;
                }
                if !backoff(&ctx, attempt, jitter_id).await {
                    break;
                }
                attempt = attempt.saturating_add(1);
                continue;
            }
        };
        let rec = tokio::select! {
            _ = ctx.cancel.cancelled() => None,
            _ = ctx.started.cancelled() => ctx.recorder.get(),
        };
        let Some(rec) = rec else {
            session.close();
            break;
        };
        let ended = run(
            &ctx,
            rec,
            &book,
            broker,
            (&mut session, &mut state),
            &mut sender,
        )
        .await;
        session.close();
        if ended == Ended::Cancelled {
            break;
        }
        reconnecting.down(&ctx, group);
        if !backoff(&ctx, attempt, jitter_id).await {
            break;
        }
        attempt = attempt.saturating_add(1);
    }
    if sender.sending {
        sender_done(&ctx, &book);
    }
}

/// Where a commander is in its group's schedule; survives reconnects.
struct Sender {
    /// Next command of the schedule.
    n: u64,
    /// Still has commands to send ([`sender_done`] not yet called).
    sending: bool,
    /// The connection was re-established: commands due before now fell in the outage.
    resumed: bool,
}

/// A commander connection stopped sending (its schedule ran out, or it failed).
fn sender_done(ctx: &ObsCtx, book: &RefCell<Book>) {
    let settled = {
        let mut b = book.borrow_mut();
        b.senders = b.senders.saturating_sub(1);
        b.settles_now()
    };
    if settled {
        ctx.commands.settled();
    }
}

/// Send on schedule and receive replies until cancelled or the connection is lost.
async fn run(
    ctx: &ObsCtx,
    rec: &Recorder,
    book: &RefCell<Book>,
    broker: usize,
    (session, state): (&mut Session, &mut ProtocolState<()>),
    sender: &mut Sender,
) -> Ended {
    let plan = &ctx.plan;
    let group = book.borrow().group;
    let (Some(g), Some(schedule)) = (
        plan.groups().get(group),
        CommandSchedule::of_group(plan, rec.timeline(), group),
    ) else {
        return Ended::Cancelled;
    };
    let Some(spec) = g.commands.as_ref() else {
        return Ended::Cancelled;
    };
    let s = &plan.scenario;
    let version = s.broker.protocol;
    let len = schedule.len();
    book.borrow_mut().prepare(len);
    let first_global: u64 = plan.groups()[..group]
        .iter()
        .map(|x| u64::from(x.count))
        .sum();
    let run_id = rec.timeline().start_us;
    let stamp_group = u32::try_from(group).unwrap_or(u32::MAX);
    let (mut client_id, mut topic) = (String::new(), String::new());
    let mut topic_bytes: Vec<u8> = Vec::new();
    let device = |n: u64| {
        let index = schedule.target(n);
        DeviceRef {
            group,
            index,
            global: first_global + index,
        }
    };
    if std::mem::take(&mut sender.resumed) {
        // Back after an outage: the slots that fell while the connection was down are not sent.
        let now = rec.now_us();
        while sender.n < len && schedule.due(sender.n) < now {
            if broker_index(s.broker.assign, ctx.brokers.len(), device(sender.n)) == broker {
                rec.count(Counter::CommandsSkipped, group, schedule.due(sender.n));
            }
            sender.n += 1;
        }
    }
    loop {
        let now = rec.now_us();
        if sender.sending {
            let mut out = ctx.write_buf.borrow_mut();
            out.clear();
            let mut batch = 0;
            // Never ahead of the slot: a command's phase is that of its intended time, for its
            // counters and its latency alike (a timer fires up to a millisecond late, which the
            // corrected latency shows).
            // With every packet id in flight (a broker that stopped acknowledging), commands wait.
            while sender.n < len
                && schedule.due(sender.n) <= now
                && batch < MAX_BATCH
                && (spec.qos == Qos::AtMostOnce || state.has_room())
            {
                let n = sender.n;
                let d = device(n);
                if broker_index(s.broker.assign, ctx.brokers.len(), d) == broker {
                    let vars = TemplateVars {
                        group: &g.name,
                        index: d.index,
                        global_index: d.global,
                        client_id: "",
                    };
                    s.broker.client_id.render_into(&mut client_id, &vars);
                    let vars = TemplateVars {
                        client_id: &client_id,
                        ..vars
                    };
                    spec.topic.render_into(&mut topic, &vars);
                    if codec::encode_topic_into(&mut topic_bytes, &topic).is_ok() {
                        let intended = schedule.due(n);
                        let stamp = CommandStamp {
                            group: stamp_group,
                            run: run_id,
                            seq: n,
                            intended_us: intended,
                            sent_us: now,
                        };
                        let pkid = if spec.qos == Qos::AtMostOnce {
                            0
                        } else {
                            match state.publish(spec.qos, ()) {
                                Ok(p) => p,
                                Err(_) => break,
                            }
                        };
                        codec::encode_publish(
                            &mut out,
                            version,
                            &topic_bytes,
                            spec.qos,
                            false,
                            false,
                            pkid,
                            &stamp.encode(),
                        );
                        book.borrow_mut().mark_sent(n);
                        rec.count(Counter::CommandsSent, group, intended);
                        batch += 1;
                    }
                }
                sender.n += 1;
            }
            let failed = !out.is_empty() && session.try_send(&out).is_err();
            if !out.is_empty() {
                state.sent(now);
            }
            drop(out);
            if failed {
                return Ended::Lost;
            }
            if sender.n >= len {
                sender.sending = false;
                sender_done(ctx, book);
            }
        }
        if session.has_pending_out() {
            let flushed = tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => return Ended::Cancelled,
                r = session.flush() => r,
            };
            if flushed.is_err() {
                return Ended::Lost;
            }
        }
        let ping = {
            let mut out = ctx.write_buf.borrow_mut();
            out.clear();
            match state.tick(now, &mut out) {
                KeepAliveAction::TimedOut => return Ended::Lost,
                KeepAliveAction::SendPing => session.try_send(&out).is_ok(),
                KeepAliveAction::Nothing => true,
            }
        };
        if !ping {
            return Ended::Lost;
        }
        let mut wake = state.next_deadline().min(now.saturating_add(60_000_000));
        if sender.sending {
            wake = wake.min(schedule.due(sender.n));
        }
        let at = Instant::from_std(ctx.clock.instant_at(wake));
        tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return Ended::Cancelled,
            r = session.readable() => {
                if r.is_err() || !receive(ctx, rec, book, run_id, (session, state)) {
                    return Ended::Lost;
                }
            }
            _ = tokio::time::sleep_until(at) => {}
        }
    }
}

/// Read what arrived: replies (recorded once each), acks of our commands, pings. `false` when the
/// connection is gone.
fn receive(
    ctx: &ObsCtx,
    rec: &Recorder,
    book: &RefCell<Book>,
    run_id: u64,
    (session, state): (&mut Session, &mut ProtocolState<()>),
) -> bool {
    let group = book.borrow().group;
    let stamp_group = u32::try_from(group).unwrap_or(u32::MAX);
    let mut settled = false;
    let result = {
        let mut scratch = ctx.read_buf.borrow_mut();
        let mut out = ctx.write_buf.borrow_mut();
        out.clear();
        let done = rec.now_us();
        let r = session.read_available(&mut scratch, &mut |p| {
            if let Event::Publish { payload, .. } = state.handle(p, &mut out) {
                if let Some(st) = CommandStamp::decode(payload) {
                    if st.group == stamp_group && st.run == run_id {
                        let mut b = book.borrow_mut();
                        if b.answer(st.seq) {
                            rec.latency(
                                Metric::CommandRtt,
                                group,
                                st.intended_us,
                                st.sent_us,
                                done,
                            );
                            rec.count(Counter::CommandReplies, group, st.intended_us);
                            settled |= b.settles_now();
                        }
                    }
                }
            }
        });
        session.quick_ack();
        match r {
            Ok(_) if !out.is_empty() => {
                state.sent(done);
                session.try_send(&out).is_ok()
            }
            Ok(_) => true,
            Err(_) => false,
        }
    };
    if settled {
        ctx.commands.settled();
    }
    // A broker DISCONNECT ends the connection.
    result && !state.ended()
}
