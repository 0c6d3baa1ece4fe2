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
    /// Bit `i` set: `highest - i` was received.
    window: u64,
    /// Index of the device group the stream belongs to.
    pub group: u32,
}

impl StreamAudit {
    /// A stream whose first received message is `seq`.
    pub fn new(seq: u64, group: u32) -> StreamAudit {
        StreamAudit {
            highest: seq,
            window: 1,
            group,
        }
    }

    /// Account for receiving `seq`.
    pub fn observe(&mut self, seq: u64) -> Seen {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.window = if shift >= WINDOW {
                1
            } else {
                (self.window << shift) | 1
            };
            self.highest = seq;
            return Seen::New;
        }
        let behind = self.highest - seq;
        if behind >= WINDOW {
            // Too old to tell; a message this late is far more likely reordered than duplicated.
            return Seen::Reordered;
        }
        let bit = 1u64 << behind;
        if self.window & bit != 0 {
            Seen::Duplicate
        } else {
            self.window |= bit;
            Seen::Reordered
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
        let mut a = StreamAudit::new(4, 0);
        for (seq, want) in steps {
            assert_eq!(a.observe(seq), want, "seq {seq}");
        }
        assert_eq!(a.highest(), 200);
    }

    #[test]
    fn in_order_streams_are_all_new() {
        let mut a = StreamAudit::new(0, 0);
        for s in 1..10_000 {
            assert_eq!(a.observe(s), Seen::New);
        }
        assert_eq!(std::mem::size_of::<StreamAudit>(), 24);
    }
}
