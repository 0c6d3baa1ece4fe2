//! Per-stream delivery audit: from each device's sequence numbers, tell new, duplicate and reordered
//! messages apart with a fixed 64-message window. Pure, no clock.
//!
//! Memory: 24 bytes of state per stream (plus the map entry and the device id key that hold it,
//! about 100 bytes per stream in all).

/// What one received sequence number turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time, in order (possibly after a gap).
    New,
    /// First time, but after a later sequence number of the same stream.
    Reordered,
    /// Already received.
    Duplicate,
}

/// Window of sequence numbers remembered behind the highest one.
pub const WINDOW: u64 = 64;

/// The audit state of one device stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamAudit {
    /// Highest sequence number received.
    highest: u64,
    /// Bit `i` set: `highest - i` was received (or counted unobserved).
    window: u64,
    /// Index of the device group the stream belongs to.
    pub group: u32,
    /// Session epoch of the stream set when this stream last moved forward (low 16 bits; the set's
    /// epoch grows by one at each reconnect of one of its sessions).
    epoch: u16,
    /// The worker shard the stream's device runs in (0 in single-process runs).
    pub shard: u16,
}

/// What a received sequence number turned out to be, and the deliveries it showed unobservable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub seen: Seen,
    /// Sequence numbers skipped over by the first new message after an observer reconnect: they were
    /// due while the observer session was down, so nobody could see whether the broker delivered them.
    pub unobserved: u64,
}

/// `n` low bits set (`n` up to 64).
fn low_bits(n: u64) -> u64 {
    if n >= WINDOW {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

impl StreamAudit {
    /// A stream whose first received message is `seq`, seen in session epoch `epoch` of its stream set.
    /// `after_outage`: the set's sessions have reconnected since the run began, so the `seq` messages
    /// before this one may have been due while nobody observed; they count as unobserved, not lost.
    pub fn new(
        seq: u64,
        group: u32,
        shard: u16,
        epoch: u16,
        after_outage: bool,
    ) -> (StreamAudit, u64) {
        let unobserved = if after_outage { seq } else { 0 };
        let window = if after_outage {
            low_bits(seq.saturating_add(1))
        } else {
            1
        };
        let audit = StreamAudit {
            highest: seq,
            window,
            group,
            epoch,
            shard,
        };
        (audit, unobserved)
    }

    /// Account for receiving `seq` in session epoch `epoch` of the stream set. The first new message of
    /// a later epoch attributes the gap it jumps over to `unobserved` (those sequence numbers then count
    /// as seen, so a late copy of one is a duplicate, never a second count).
    pub fn observe(&mut self, seq: u64, epoch: u16) -> Observed {
        if seq > self.highest {
            let shift = seq - self.highest;
            let gap = shift - 1;
            let unobserved = if epoch != self.epoch { gap } else { 0 };
            let fill = if unobserved > 0 { low_bits(shift) } else { 1 };
            self.window = if shift >= WINDOW {
                fill
            } else {
                (self.window << shift) | fill
            };
            self.highest = seq;
            self.epoch = epoch;
            return Observed {
                seen: Seen::New,
                unobserved,
            };
        }
        let behind = self.highest - seq;
        let seen = if behind >= WINDOW {
            // Too old to tell; a message this late is far more likely reordered than duplicated.
            Seen::Reordered
        } else {
            let bit = 1u64 << behind;
            if self.window & bit != 0 {
                Seen::Duplicate
            } else {
                self.window |= bit;
                Seen::Reordered
            }
        };
        Observed {
            seen,
            unobserved: 0,
        }
    }

    /// Highest sequence number received so far.
    pub fn highest(&self) -> u64 {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_table() {
        // (sequence received, expected verdict)
        let steps = [
            (5, Seen::New),
            (6, Seen::New),
            (6, Seen::Duplicate),
            (9, Seen::New),
            (7, Seen::Reordered),
            (7, Seen::Duplicate),
            (8, Seen::Reordered),
            (5, Seen::Duplicate),
            (200, Seen::New),
            (136, Seen::Reordered), // 64 behind: outside the window
            (137, Seen::Reordered),
            (137, Seen::Duplicate),
        ];
        let (mut a, unobserved) = StreamAudit::new(4, 0, 0, 0, false);
        assert_eq!(unobserved, 0);
        for (seq, want) in steps {
            let o = a.observe(seq, 0);
            assert_eq!(o.seen, want, "seq {seq}");
            assert_eq!(o.unobserved, 0, "one session, no outage: gaps are loss");
        }
        assert_eq!(a.highest(), 200);
    }

    #[test]
    fn in_order_streams_are_all_new() {
        let (mut a, _) = StreamAudit::new(0, 0, 0, 0, false);
        for s in 1..10_000 {
            assert_eq!(a.observe(s, 0).seen, Seen::New);
        }
        assert_eq!(std::mem::size_of::<StreamAudit>(), 24);
    }

    #[test]
    fn a_gap_across_a_reconnect_is_unobserved_once() {
        let (mut a, _) = StreamAudit::new(0, 2, 1, 0, false);
        assert_eq!((a.group, a.shard), (2, 1));
        for s in 1..=10 {
            assert_eq!(a.observe(s, 0).unobserved, 0);
        }
        // A gap while the session stayed up: loss, not attributed.
        assert_eq!(a.observe(12, 0).unobserved, 0);
        // The session reconnected (epoch 1): 13..=19 were due while it was down.
        let o = a.observe(20, 1);
        assert_eq!((o.seen, o.unobserved), (Seen::New, 7));
        // Only the first new message of the epoch attributes; later gaps are loss again.
        assert_eq!(a.observe(22, 1).unobserved, 0);
        // A late copy of an unobserved seq is a duplicate (never received and unobserved both);
        // the lost 21 and 11 are still reorderable.
        assert_eq!(a.observe(15, 1).seen, Seen::Duplicate);
        assert_eq!(a.observe(21, 1).seen, Seen::Reordered);
        assert_eq!(a.observe(11, 1).seen, Seen::Reordered);
        // A duplicate first after a reconnect does not use up the attribution.
        assert_eq!(a.observe(22, 2).seen, Seen::Duplicate);
        let o = a.observe(100, 2);
        assert_eq!((o.seen, o.unobserved), (Seen::New, 77));
        assert_eq!(a.observe(99, 2).seen, Seen::Duplicate);
        // A gap wider than the window.
        let o = a.observe(1_000, 3);
        assert_eq!(o.unobserved, 899);
        assert_eq!(a.observe(950, 3).seen, Seen::Duplicate);
    }

    #[test]
    fn a_stream_first_seen_after_an_outage_counts_its_earlier_seqs_unobserved() {
        let (mut a, unobserved) = StreamAudit::new(30, 0, 0, 1, true);
        assert_eq!(unobserved, 30);
        assert_eq!(a.observe(5, 1).seen, Seen::Duplicate);
        assert_eq!(a.observe(31, 1).unobserved, 0);
        let (_, unobserved) = StreamAudit::new(30, 0, 0, 0, false);
        assert_eq!(unobserved, 0, "before any outage a late first seq is loss");
        let (_, unobserved) = StreamAudit::new(0, 0, 0, 4, true);
        assert_eq!(unobserved, 0);
    }
}
