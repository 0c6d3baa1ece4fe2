//! Keep-alive bookkeeping: when to send PINGREQ and when the broker has gone silent. Pure: the caller
//! passes the time.

/// What the session should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveAction {
    Nothing,
    /// Nothing was sent for a whole keep-alive interval: send PINGREQ.
    SendPing,
    /// A PINGREQ went unanswered for a whole interval: the connection is dead.
    TimedOut,
}

#[derive(Debug, Clone, Copy)]
pub struct KeepAlive {
    interval_us: u64,
    last_out_us: u64,
    ping_sent_us: Option<u64>,
}

impl KeepAlive {
    /// `interval_us == 0` disables keep-alive.
    pub fn new(interval_us: u64, now_us: u64) -> KeepAlive {
        KeepAlive {
            interval_us,
            last_out_us: now_us,
            ping_sent_us: None,
        }
    }

    /// The keep-alive interval (0: none).
    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }

    /// Something was written to the broker.
    pub fn sent(&mut self, now_us: u64) {
        self.last_out_us = now_us;
    }

    /// PINGRESP arrived.
    pub fn pong(&mut self) {
        self.ping_sent_us = None;
    }

    /// Decide; after `SendPing` the caller sends PINGREQ and calls [`KeepAlive::ping_sent`].
    pub fn poll(&self, now_us: u64) -> KeepAliveAction {
        if self.interval_us == 0 {
            return KeepAliveAction::Nothing;
        }
        match self.ping_sent_us {
            Some(at) if now_us.saturating_sub(at) > self.interval_us => KeepAliveAction::TimedOut,
            Some(_) => KeepAliveAction::Nothing,
            None if now_us.saturating_sub(self.last_out_us) >= self.interval_us => {
                KeepAliveAction::SendPing
            }
            None => KeepAliveAction::Nothing,
        }
    }

    /// PINGREQ was written.
    pub fn ping_sent(&mut self, now_us: u64) {
        self.ping_sent_us = Some(now_us);
        self.last_out_us = now_us;
    }

    /// When [`KeepAlive::poll`] may next say something other than `Nothing` (`u64::MAX`: never).
    pub fn next_deadline(&self) -> u64 {
        if self.interval_us == 0 {
            return u64::MAX;
        }
        match self.ping_sent_us {
            Some(at) => at.saturating_add(self.interval_us).saturating_add(1),
            None => self.last_out_us.saturating_add(self.interval_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_then_timeout() {
        let mut k = KeepAlive::new(100, 0);
        assert_eq!(k.poll(50), KeepAliveAction::Nothing);
        k.sent(60);
        assert_eq!(k.poll(159), KeepAliveAction::Nothing);
        assert_eq!(k.next_deadline(), 160);
        assert_eq!(k.poll(160), KeepAliveAction::SendPing);
        k.ping_sent(160);
        assert_eq!(k.poll(260), KeepAliveAction::Nothing);
        assert_eq!(k.next_deadline(), 261);
        assert_eq!(k.poll(261), KeepAliveAction::TimedOut);
        // answered in time: quiet again until an interval after the ping
        let mut k = KeepAlive::new(100, 0);
        k.ping_sent(100);
        k.pong();
        assert_eq!(k.poll(199), KeepAliveAction::Nothing);
        assert_eq!(k.poll(200), KeepAliveAction::SendPing);
        assert_eq!(KeepAlive::new(0, 0).poll(1 << 40), KeepAliveAction::Nothing);
        assert_eq!(KeepAlive::new(0, 0).next_deadline(), u64::MAX);
    }
}
