//! The MQTT protocol state of one session, without I/O (in the spirit of rumqttc's `state.rs`): packets
//! in, events and reply bytes out. Devices, observers, commanders and Sparkplug hosts all keep their
//! session state here, so the protocol rules live once:
//!
//! - packet ids: allocated in sequence (1..=65535, wrapping), never one that is still in flight; when the
//!   caller's window is full, [`ProtocolState::allocate`] says so ([`WindowFull`]) instead of reusing one;
//! - the in-flight table, indexed by packet id (an ack finds its entry in O(1)); each entry carries the
//!   caller's metadata `M` (e.g. intended and actual send time), returned with the ack, once;
//! - QoS 1 and 2 in both directions: PUBACK / PUBREC+PUBREL / PUBCOMP for our publishes, and the PUBACK /
//!   PUBREC / PUBCOMP owed to the broker's;
//! - keep-alive (PINGREQ when quiet, the connection is dead when a PINGREQ goes unanswered);
//! - a broker DISCONNECT (MQTT 5, with its reason code) ends the session.
//!
//! Memory: nothing is allocated until the first packet id is taken; the table then grows (doubling) with
//! the number of ids in flight at once, never per message.

use super::codec::{self, Incoming};
use super::keepalive::{KeepAlive, KeepAliveAction};
use super::protocol::Qos;

/// Every packet id is in flight (or the caller's window is): nothing can be sent until an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the in-flight window is full ({0} packet ids awaiting their acknowledgement)")]
pub struct WindowFull(pub usize);

/// What a packet id in flight is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// A QoS 1 PUBLISH waiting for PUBACK.
    Puback,
    /// A QoS 2 PUBLISH waiting for PUBREC.
    Pubrec,
    /// A QoS 2 PUBLISH whose PUBREL went out, waiting for PUBCOMP.
    Pubcomp,
    /// A SUBSCRIBE waiting for SUBACK.
    Suback,
}

#[derive(Debug, Clone, Copy)]
struct Entry<M> {
    pkid: u16,
    stage: Stage,
    meta: M,
}

/// What one packet from the broker meant for the caller. Replies it owes the broker (PUBACK, PUBREC,
/// PUBREL, PUBCOMP) were already appended to the caller's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a, M> {
    /// One of our QoS 1 (PUBACK) or QoS 2 (PUBCOMP) publishes completed. Reported once per packet id.
    Acked { meta: M, qos: Qos },
    /// The broker refused one of our publishes (PUBACK, PUBREC or PUBCOMP with a reason >= 0x80). The
    /// packet id is free again; no PUBREL was sent.
    Refused { meta: M, reason: u8 },
    /// An application message from the broker (its PUBACK or PUBREC is already in the output).
    Publish {
        qos: u8,
        retain: bool,
        dup: bool,
        topic: &'a [u8],
        payload: &'a [u8],
    },
    /// A SUBACK; `meta` is the subscription's, when its packet id was ours and in flight.
    SubAck {
        pkid: u16,
        codes: &'a [u8],
        meta: Option<M>,
    },
    /// The broker ended the session with DISCONNECT (MQTT 5 reason code; 0 for 3.1.1 or none given).
    Disconnected { reason: u8 },
    /// Nothing for the caller: a PINGRESP, a PUBREC answered with PUBREL, a PUBREL answered with
    /// PUBCOMP, a duplicate or unknown acknowledgement, an UNSUBACK, AUTH.
    Handled,
    /// A packet that has no place in a connected session (a second CONNACK).
    Unexpected,
}

/// The in-flight table: open addressing by `pkid & (len - 1)` over a power-of-two slot array. Ids are
/// handed out in sequence, so with acks in order each id lands in a free slot; an id whose slot still
/// holds an older id in flight is skipped (never reused). Empty until the first allocation.
#[derive(Debug)]
struct Inflight<M> {
    slots: Vec<Option<Entry<M>>>,
    len: u16,
}

/// Slots at most: one per packet id (slot 0 holds ids that are multiples of the table size).
const MAX_SLOTS: usize = 1 << 16;
const FIRST_SLOTS: usize = 4;

impl<M: Copy> Inflight<M> {
    fn count(&self) -> usize {
        usize::from(self.len)
    }

    fn index(&self, pkid: u16) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        Some(usize::from(pkid) & mask)
    }

    fn get(&self, pkid: u16) -> Option<&Entry<M>> {
        let i = self.index(pkid)?;
        self.slots
            .get(i)
            .and_then(Option::as_ref)
            .filter(|e| e.pkid == pkid)
    }

    fn get_mut(&mut self, pkid: u16) -> Option<&mut Entry<M>> {
        let i = self.index(pkid)?;
        self.slots
            .get_mut(i)
            .and_then(Option::as_mut)
            .filter(|e| e.pkid == pkid)
    }

    fn take(&mut self, pkid: u16) -> Option<Entry<M>> {
        let i = self.index(pkid)?;
        let slot = self.slots.get_mut(i)?;
        if slot.as_ref().is_some_and(|e| e.pkid == pkid) {
            self.len -= 1;
            slot.take()
        } else {
            None
        }
    }

    /// Make room when three quarters of the slots are taken (amortised: a handful of times per table).
    fn grow_if_needed(&mut self) {
        let cap = self.slots.len();
        if cap >= MAX_SLOTS || (cap > 0 && self.count() * 4 < cap * 3) {
            return;
        }
        let new_cap = if cap == 0 { FIRST_SLOTS } else { cap * 2 };
        let old = std::mem::take(&mut self.slots);
        self.slots = vec![None; new_cap];
        let mask = new_cap - 1;
        for e in old.into_iter().flatten() {
            // Distinct ids never share a slot of a larger table: the low bits of a smaller table's
            // index are kept.
            if let Some(s) = self.slots.get_mut(usize::from(e.pkid) & mask) {
                *s = Some(e);
            }
        }
    }
}

fn stage_of(qos: Qos) -> Stage {
    match qos {
        Qos::ExactlyOnce => Stage::Pubrec,
        Qos::AtLeastOnce | Qos::AtMostOnce => Stage::Puback,
    }
}

/// The protocol state of one MQTT session (see the module documentation).
#[derive(Debug)]
pub struct ProtocolState<M> {
    inflight: Inflight<M>,
    next_pkid: u16,
    /// At most this many packet ids in flight (1..=65535).
    window: u16,
    keepalive: KeepAlive,
    /// The broker ended the session (DISCONNECT).
    ended: bool,
}

impl<M: Copy> ProtocolState<M> {
    /// A session state for a fresh connection: `window` packet ids in flight at most (clamped to
    /// 1..=65535), keep-alive `keep_alive_us` (0: none) from `now_us`.
    pub fn new(window: usize, keep_alive_us: u64, now_us: u64) -> ProtocolState<M> {
        ProtocolState {
            inflight: Inflight {
                slots: Vec::new(),
                len: 0,
            },
            next_pkid: 1,
            window: u16::try_from(window).unwrap_or(u16::MAX).max(1),
            keepalive: KeepAlive::new(keep_alive_us, now_us),
            ended: false,
        }
    }

    /// A new connection of the same client (after a reconnect): keep-alive starts again from `now_us`,
    /// packet ids continue where they were (a broker keeping a persistent session may still know the
    /// old ones), and whatever was in flight must have been taken with [`ProtocolState::drain`] first.
    pub fn reconnected(&mut self, now_us: u64) {
        self.keepalive = KeepAlive::new(self.keepalive.interval_us(), now_us);
        self.ended = false;
        self.clear();
    }

    /// Take the next free packet id for a QoS 1/2 PUBLISH with its metadata. Ids still in flight are
    /// skipped; when `window` ids are in flight, nothing is taken.
    pub fn publish(&mut self, qos: Qos, meta: M) -> Result<u16, WindowFull> {
        if self.inflight.len >= self.window {
            return Err(WindowFull(self.inflight.count()));
        }
        self.allocate(stage_of(qos), meta)
    }

    /// [`ProtocolState::publish`] for a message that answers the broker (a command reply): in flight
    /// like any other, but not held back by the window. Fails only when every packet id is in flight.
    pub fn publish_reply(&mut self, qos: Qos, meta: M) -> Result<u16, WindowFull> {
        self.allocate(stage_of(qos), meta)
    }

    /// Take the next free packet id for a SUBSCRIBE (its SUBACK frees it). Not held back by the
    /// window; fails only when every packet id is in flight.
    pub fn subscribe(&mut self, meta: M) -> Result<u16, WindowFull> {
        self.allocate(Stage::Suback, meta)
    }

    /// The packet id the next allocation tries first (to carry the sequence over a reconnect).
    pub fn next_pkid(&self) -> u16 {
        self.next_pkid
    }

    /// Start the packet id sequence at `pkid` (0 is taken as 1).
    pub fn with_next_pkid(mut self, pkid: u16) -> ProtocolState<M> {
        self.next_pkid = pkid.max(1);
        self
    }

    fn allocate(&mut self, stage: Stage, meta: M) -> Result<u16, WindowFull> {
        if self.inflight.len == u16::MAX {
            return Err(WindowFull(self.inflight.count()));
        }
        self.inflight.grow_if_needed();
        // With fewer ids in flight than slots, a free slot is found within one pass over the ids.
        for _ in 0..=u16::MAX {
            let pkid = self.next_pkid;
            self.next_pkid = if pkid == u16::MAX { 1 } else { pkid + 1 };
            let Some(i) = self.inflight.index(pkid) else {
                break;
            };
            if let Some(slot @ None) = self.inflight.slots.get_mut(i) {
                *slot = Some(Entry { pkid, stage, meta });
                self.inflight.len += 1;
                return Ok(pkid);
            }
        }
        Err(WindowFull(self.inflight.count()))
    }

    /// Give back a packet id that was taken but never sent (its packet could not be built, or was not
    /// needed after all); its metadata, if it was in flight.
    pub fn forget(&mut self, pkid: u16) -> Option<M> {
        self.inflight.take(pkid).map(|e| e.meta)
    }

    /// Packet ids in flight (publishes and subscriptions awaiting their acknowledgement).
    pub fn inflight(&self) -> usize {
        self.inflight.count()
    }

    /// Whether another packet id can be taken now.
    pub fn has_room(&self) -> bool {
        self.inflight.len < self.window
    }

    /// Whether `pkid` is in flight.
    pub fn is_inflight(&self, pkid: u16) -> bool {
        self.inflight.get(pkid).is_some()
    }

    /// Whether the broker ended the session with DISCONNECT.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Hand every entry still in flight to `each` (publishes and subscriptions alike) and empty the
    /// table, keeping its memory for the next connection.
    pub fn drain(&mut self, mut each: impl FnMut(M)) {
        for e in self.inflight.slots.iter_mut().filter_map(Option::take) {
            each(e.meta);
        }
        self.inflight.len = 0;
    }

    fn clear(&mut self) {
        self.drain(|_| {});
    }

    /// Something was written to the broker at `now_us` (keep-alive counts from the last write).
    pub fn sent(&mut self, now_us: u64) {
        self.keepalive.sent(now_us);
    }

    /// Keep-alive at `now_us`: on [`KeepAliveAction::SendPing`] a PINGREQ was appended to `out` (the
    /// caller sends it); on [`KeepAliveAction::TimedOut`] the connection is dead.
    pub fn tick(&mut self, now_us: u64, out: &mut Vec<u8>) -> KeepAliveAction {
        let action = self.keepalive.poll(now_us);
        if action == KeepAliveAction::SendPing {
            out.extend_from_slice(&codec::PINGREQ);
            self.keepalive.ping_sent(now_us);
        }
        action
    }

    /// When [`ProtocolState::tick`] may next do something (`u64::MAX`: never).
    pub fn next_deadline(&self) -> u64 {
        self.keepalive.next_deadline()
    }

    /// One packet from the broker: update the state, append the replies owed to `out`, and say what it
    /// meant for the caller.
    pub fn handle<'a>(&mut self, packet: Incoming<'a>, out: &mut Vec<u8>) -> Event<'a, M> {
        match packet {
            Incoming::PubAck { pkid, reason } => self.complete(pkid, Stage::Puback, reason),
            Incoming::PubComp { pkid, reason } => self.complete(pkid, Stage::Pubcomp, reason),
            Incoming::PubRec { pkid, reason } => {
                let Some(e) = self.inflight.get_mut(pkid) else {
                    // Not ours (any more): release it anyway, so the broker can let go of its state.
                    if reason < 0x80 {
                        codec::encode_ack(out, codec::PUBREL, pkid);
                    }
                    return Event::Handled;
                };
                match e.stage {
                    _ if reason >= 0x80 && e.stage == Stage::Pubrec => {
                        let meta = e.meta;
                        self.inflight.take(pkid);
                        Event::Refused { meta, reason }
                    }
                    Stage::Pubrec | Stage::Pubcomp if reason < 0x80 => {
                        // A repeated PUBREC (our PUBREL may have been lost) gets the PUBREL again.
                        e.stage = Stage::Pubcomp;
                        codec::encode_ack(out, codec::PUBREL, pkid);
                        Event::Handled
                    }
                    _ => Event::Handled,
                }
            }
            Incoming::Publish {
                qos,
                retain,
                dup,
                pkid,
                topic,
                payload,
            } => {
                match qos {
                    1 => codec::encode_ack(out, codec::PUBACK, pkid),
                    2 => codec::encode_ack(out, codec::PUBREC, pkid),
                    _ => {}
                }
                Event::Publish {
                    qos,
                    retain,
                    dup,
                    topic,
                    payload,
                }
            }
            Incoming::PubRel { pkid } => {
                codec::encode_ack(out, codec::PUBCOMP, pkid);
                Event::Handled
            }
            Incoming::SubAck { pkid, codes } => {
                let meta = match self.inflight.get(pkid) {
                    Some(e) if e.stage == Stage::Suback => self.inflight.take(pkid).map(|e| e.meta),
                    _ => None,
                };
                Event::SubAck { pkid, codes, meta }
            }
            Incoming::PingResp => {
                self.keepalive.pong();
                Event::Handled
            }
            Incoming::Disconnect { reason } => {
                self.ended = true;
                Event::Disconnected { reason }
            }
            Incoming::UnsubAck { .. } | Incoming::Auth => Event::Handled,
            Incoming::ConnAck { .. } => Event::Unexpected,
        }
    }

    /// PUBACK (`Stage::Puback`) or PUBCOMP (`Stage::Pubcomp`) for `pkid`.
    fn complete(&mut self, pkid: u16, stage: Stage, reason: u8) -> Event<'static, M> {
        let matches = self.inflight.get(pkid).is_some_and(|e| {
            e.stage == stage
                // a PUBCOMP whose PUBREC we never saw still completes the exchange
                || (stage == Stage::Pubcomp && e.stage == Stage::Pubrec)
        });
        if !matches {
            return Event::Handled;
        }
        let Some(e) = self.inflight.take(pkid) else {
            return Event::Handled;
        };
        if reason >= 0x80 {
            return Event::Refused {
                meta: e.meta,
                reason,
            };
        }
        let qos = if stage == Stage::Puback {
            Qos::AtLeastOnce
        } else {
            Qos::ExactlyOnce
        };
        Event::Acked { meta: e.meta, qos }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(window: usize) -> ProtocolState<u64> {
        ProtocolState::new(window, 0, 0)
    }

    fn ack(s: &mut ProtocolState<u64>, pkid: u16) -> Event<'static, u64> {
        let mut out = Vec::new();
        let e = s.handle(Incoming::PubAck { pkid, reason: 0 }, &mut out);
        assert!(out.is_empty(), "a PUBACK owes no reply");
        e
    }

    #[test]
    fn nothing_is_allocated_before_the_first_packet_id() {
        let s = state(100);
        assert_eq!(s.inflight.slots.capacity(), 0);
        assert_eq!(s.inflight(), 0);
    }

    #[test]
    fn acks_in_any_order_return_each_publish_once() {
        let mut s = state(64);
        let ids: Vec<u16> = (0..10u64)
            .map(|m| s.publish(Qos::AtLeastOnce, m * 100).unwrap())
            .collect();
        assert_eq!(s.inflight(), 10);
        // acknowledge in a scrambled order
        let order = [7usize, 0, 9, 3, 1, 8, 2, 6, 4, 5];
        for &i in &order {
            match ack(&mut s, ids[i]) {
                Event::Acked { meta, qos } => {
                    assert_eq!(meta, i as u64 * 100, "the ack finds its own publish");
                    assert_eq!(qos, Qos::AtLeastOnce);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(s.inflight(), 0);
    }

    #[test]
    fn a_duplicate_or_unknown_ack_is_not_counted_again() {
        let mut s = state(8);
        let p = s.publish(Qos::AtLeastOnce, 5).unwrap();
        assert!(matches!(ack(&mut s, p), Event::Acked { meta: 5, .. }));
        assert_eq!(ack(&mut s, p), Event::Handled, "duplicate PUBACK");
        assert_eq!(
            ack(&mut s, p.wrapping_add(1000)),
            Event::Handled,
            "never sent"
        );
        let mut out = Vec::new();
        assert_eq!(
            s.handle(Incoming::PubComp { pkid: p, reason: 0 }, &mut out),
            Event::Handled,
            "a PUBCOMP for a QoS 1 id that is done"
        );
        assert_eq!(s.inflight(), 0);
    }

    #[test]
    fn a_packet_id_is_reused_only_after_its_ack() {
        // Window 3 and ids allocated across the whole range: the id still in flight is skipped on
        // every wrap, the acknowledged ones come back.
        let mut s = state(3);
        let stuck = s.publish(Qos::AtLeastOnce, 0).unwrap();
        assert_eq!(stuck, 1);
        let mut seen_after_wrap = Vec::new();
        for n in 0..(2 * u32::from(u16::MAX)) {
            let p = s.publish(Qos::AtLeastOnce, u64::from(n) + 1).unwrap();
            assert_ne!(p, stuck, "an id in flight is never handed out again");
            assert_ne!(p, 0);
            if n >= u32::from(u16::MAX) - 3 && seen_after_wrap.len() < 4 {
                seen_after_wrap.push(p);
            }
            assert!(
                matches!(ack(&mut s, p), Event::Acked { meta, .. } if meta == u64::from(n) + 1)
            );
        }
        assert!(s.is_inflight(stuck));
        assert!(
            !seen_after_wrap.contains(&stuck),
            "wrap-around skipped the id in flight: {seen_after_wrap:?}"
        );
        // once acknowledged, it is handed out again when its turn comes
        assert!(matches!(ack(&mut s, stuck), Event::Acked { meta: 0, .. }));
        let mut reused = false;
        for n in 0..u32::from(u16::MAX) {
            let p = s.publish(Qos::AtLeastOnce, u64::from(n)).unwrap();
            reused |= p == stuck;
            ack(&mut s, p);
        }
        assert!(reused);
    }

    #[test]
    fn wrap_around_skips_every_id_still_in_flight() {
        let mut s = state(1000);
        // ids 1..=5 stay in flight; everything else is acknowledged at once
        let held: Vec<u16> = (0..5)
            .map(|m| s.publish(Qos::AtLeastOnce, m).unwrap())
            .collect();
        assert_eq!(held, [1, 2, 3, 4, 5]);
        let mut handed = std::collections::HashSet::new();
        for _ in 0..(u32::from(u16::MAX) + 20) {
            let p = s.publish(Qos::AtLeastOnce, 99).unwrap();
            assert!(!held.contains(&p), "id {p} is in flight");
            handed.insert(p);
            ack(&mut s, p);
        }
        // Ids whose slot is held are skipped too (harmless: any free id will do); at most three quarters
        // of the slots are ever taken, so most ids stay usable.
        assert!(
            handed.len() > usize::from(u16::MAX) / 4,
            "{} ids used",
            handed.len()
        );
        for (m, p) in held.iter().enumerate() {
            assert!(matches!(ack(&mut s, *p), Event::Acked { meta, .. } if meta == m as u64));
        }
    }

    #[test]
    fn a_full_window_is_an_answer_not_a_reused_id() {
        let mut s = state(4);
        for m in 0..4 {
            s.publish(Qos::AtLeastOnce, m).unwrap();
        }
        assert!(!s.has_room());
        assert_eq!(s.publish(Qos::AtLeastOnce, 9), Err(WindowFull(4)));
        // answers and subscriptions are not held back by the window, but take their own ids
        let reply = s.publish_reply(Qos::AtLeastOnce, 9).unwrap();
        let sub = s.subscribe(9).unwrap();
        assert_eq!((reply, sub), (5, 6));
        assert!(matches!(ack(&mut s, reply), Event::Acked { meta: 9, .. }));
        let mut out = Vec::new();
        s.handle(
            Incoming::SubAck {
                pkid: sub,
                codes: &[0],
            },
            &mut out,
        );
        ack(&mut s, 2);
        assert_eq!(s.publish(Qos::AtLeastOnce, 9), Ok(7));
        // the sequence carries over to a new state
        let s2: ProtocolState<u64> = ProtocolState::new(4, 0, 0).with_next_pkid(s.next_pkid());
        assert_eq!(s2.next_pkid(), 8);
        // every id of the protocol in flight at once
        let mut s = state(usize::from(u16::MAX));
        for m in 0..u64::from(u16::MAX) {
            s.publish(Qos::AtLeastOnce, m).unwrap();
        }
        assert_eq!(
            s.publish(Qos::AtLeastOnce, 0),
            Err(WindowFull(usize::from(u16::MAX)))
        );
        assert_eq!(
            s.publish_reply(Qos::AtLeastOnce, 0),
            Err(WindowFull(usize::from(u16::MAX))),
            "no id left at all"
        );
        ack(&mut s, 40_000);
        assert_eq!(s.publish(Qos::AtLeastOnce, 0), Ok(40_000));
    }

    #[test]
    fn qos2_outgoing_pubrec_pubrel_pubcomp() {
        let mut s = state(8);
        let p = s.publish(Qos::ExactlyOnce, 7).unwrap();
        let mut out = Vec::new();
        // a PUBACK is not the answer to a QoS 2 publish
        assert_eq!(ack(&mut s, p), Event::Handled);
        assert_eq!(
            s.handle(Incoming::PubRec { pkid: p, reason: 0 }, &mut out),
            Event::Handled
        );
        let mut rel = Vec::new();
        codec::encode_ack(&mut rel, codec::PUBREL, p);
        assert_eq!(out, rel, "PUBREC is answered with PUBREL");
        // a repeated PUBREC (PUBREL lost) gets PUBREL again, and still one completion
        out.clear();
        s.handle(Incoming::PubRec { pkid: p, reason: 0 }, &mut out);
        assert_eq!(out, rel);
        out.clear();
        assert_eq!(
            s.handle(Incoming::PubComp { pkid: p, reason: 0 }, &mut out),
            Event::Acked {
                meta: 7,
                qos: Qos::ExactlyOnce
            }
        );
        assert!(out.is_empty());
        assert_eq!(
            s.handle(Incoming::PubComp { pkid: p, reason: 0 }, &mut out),
            Event::Handled,
            "duplicate PUBCOMP"
        );
        // a refused QoS 2 publish: no PUBREL, the id is free
        let q = s.publish(Qos::ExactlyOnce, 8).unwrap();
        assert_eq!(
            s.handle(
                Incoming::PubRec {
                    pkid: q,
                    reason: 0x97
                },
                &mut out
            ),
            Event::Refused {
                meta: 8,
                reason: 0x97
            }
        );
        assert!(out.is_empty());
        assert_eq!(s.inflight(), 0);
    }

    #[test]
    fn qos_1_and_2_incoming_get_their_replies() {
        let mut s = state(8);
        let mut out = Vec::new();
        for (qos, first) in [
            (0u8, None),
            (1, Some(codec::PUBACK)),
            (2, Some(codec::PUBREC)),
        ] {
            out.clear();
            let e = s.handle(
                Incoming::Publish {
                    qos,
                    retain: false,
                    dup: false,
                    pkid: 300,
                    topic: b"t",
                    payload: b"p",
                },
                &mut out,
            );
            assert!(
                matches!(e, Event::Publish { qos: q, topic: b"t", payload: b"p", .. } if q == qos)
            );
            let mut want = Vec::new();
            if let Some(f) = first {
                codec::encode_ack(&mut want, f, 300);
            }
            assert_eq!(out, want, "QoS {qos}");
        }
        out.clear();
        assert_eq!(
            s.handle(Incoming::PubRel { pkid: 300 }, &mut out),
            Event::Handled
        );
        let mut want = Vec::new();
        codec::encode_ack(&mut want, codec::PUBCOMP, 300);
        assert_eq!(out, want, "PUBREL is answered with PUBCOMP");
        assert_eq!(s.inflight(), 0, "the broker's ids are not ours");
    }

    #[test]
    fn refused_publishes_free_their_id_once() {
        let mut s = state(8);
        let p = s.publish(Qos::AtLeastOnce, 3).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            s.handle(
                Incoming::PubAck {
                    pkid: p,
                    reason: 0x87
                },
                &mut out
            ),
            Event::Refused {
                meta: 3,
                reason: 0x87
            }
        );
        assert_eq!(ack(&mut s, p), Event::Handled);
    }

    #[test]
    fn suback_frees_the_subscription_id() {
        let mut s = state(8);
        let sub = s.subscribe(11).unwrap();
        let p = s.publish(Qos::AtLeastOnce, 12).unwrap();
        assert_ne!(sub, p);
        let mut out = Vec::new();
        // a PUBACK for the subscription's id is not a publish completing
        assert_eq!(ack(&mut s, sub), Event::Handled);
        assert_eq!(
            s.handle(
                Incoming::SubAck {
                    pkid: sub,
                    codes: &[1]
                },
                &mut out
            ),
            Event::SubAck {
                pkid: sub,
                codes: &[1],
                meta: Some(11)
            }
        );
        assert_eq!(s.inflight(), 1);
        // an id taken for a packet that was never sent is given back
        let unused = s.subscribe(13).unwrap();
        assert_eq!(s.forget(unused), Some(13));
        assert_eq!(s.forget(unused), None);
        assert_eq!(s.inflight(), 1);
        assert_eq!(
            s.handle(
                Incoming::SubAck {
                    pkid: 900,
                    codes: &[0]
                },
                &mut out
            ),
            Event::SubAck {
                pkid: 900,
                codes: &[0],
                meta: None
            }
        );
    }

    #[test]
    fn broker_disconnect_ends_the_session_with_its_reason() {
        let mut s = state(8);
        s.publish(Qos::AtLeastOnce, 1).unwrap();
        let mut out = Vec::new();
        assert!(!s.ended());
        assert_eq!(
            s.handle(Incoming::Disconnect { reason: 0x8B }, &mut out),
            Event::Disconnected { reason: 0x8B }
        );
        assert!(s.ended());
        assert!(out.is_empty());
        // what was in flight is the caller's to account for
        let mut left = Vec::new();
        s.drain(|m| left.push(m));
        assert_eq!(left, [1]);
        assert_eq!(s.inflight(), 0);
        s.reconnected(10);
        assert!(!s.ended());
    }

    #[test]
    fn keep_alive_pings_and_times_out() {
        let mut s: ProtocolState<()> = ProtocolState::new(1, 100, 0);
        let mut out = Vec::new();
        assert_eq!(s.tick(50, &mut out), KeepAliveAction::Nothing);
        s.sent(60);
        assert_eq!(s.next_deadline(), 160);
        assert_eq!(s.tick(160, &mut out), KeepAliveAction::SendPing);
        assert_eq!(out, codec::PINGREQ);
        out.clear();
        // answered: quiet again
        s.handle(Incoming::PingResp, &mut out);
        assert_eq!(s.tick(200, &mut out), KeepAliveAction::Nothing);
        assert_eq!(s.tick(260, &mut out), KeepAliveAction::SendPing);
        // unanswered for a whole interval: dead
        assert_eq!(s.tick(360, &mut out), KeepAliveAction::Nothing);
        assert_eq!(s.tick(361, &mut out), KeepAliveAction::TimedOut);
        // a reconnect starts the clock again
        s.reconnected(1000);
        assert_eq!(s.tick(1099, &mut out), KeepAliveAction::Nothing);
        assert_eq!(s.next_deadline(), 1100);
        let off: ProtocolState<()> = ProtocolState::new(1, 0, 0);
        assert_eq!(off.next_deadline(), u64::MAX);
    }

    #[test]
    fn the_table_grows_with_ids_in_flight_not_with_messages() {
        let mut s = state(usize::from(u16::MAX));
        for n in 0..100_000u64 {
            let p = s.publish(Qos::AtLeastOnce, n).unwrap();
            ack(&mut s, p);
        }
        assert_eq!(
            s.inflight.slots.len(),
            FIRST_SLOTS,
            "one at a time: the first table"
        );
        for n in 0..100 {
            s.publish(Qos::AtLeastOnce, n).unwrap();
        }
        assert!(s.inflight.slots.len() <= 256);
    }
}
