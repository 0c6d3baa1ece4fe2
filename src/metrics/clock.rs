//! The one clock reader. Times are µs since the Unix epoch, read from a monotonic clock anchored once
//! to the wall clock, so they never jump backwards and still match timestamps other processes on this
//! host put in payloads.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_unix_us: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// Anchor a clock now.
    pub fn new() -> Clock {
        let base = Instant::now();
        let base_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Clock { base, base_unix_us }
    }

    /// Now, in µs since the Unix epoch.
    pub fn now_us(&self) -> u64 {
        let elapsed = u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.base_unix_us.saturating_add(elapsed)
    }

    /// The monotonic instant that corresponds to `t_us` (for timers).
    pub fn instant_at(&self, t_us: u64) -> Instant {
        let offset = std::time::Duration::from_micros(t_us.saturating_sub(self.base_unix_us));
        self.base.checked_add(offset).unwrap_or(self.base)
    }

    /// Name of the clock source, for reports.
    pub fn source(&self) -> &'static str {
        "CLOCK_MONOTONIC anchored to CLOCK_REALTIME at start"
    }
}
