//! Pacers: the intended time of the n-th operation is a formula of the start, never the result of
//! sleeping in a loop. Pure functions, no clock; times are µs since the Unix epoch.

/// Intended time of the `n`-th connect when devices connect at `rate_per_s` from `start_us`.
pub fn connect_at(start_us: u64, n: u64, rate_per_s: f64) -> u64 {
    if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
        return start_us;
    }
    let offset = (n as f64) * 1_000_000.0 / rate_per_s;
    start_us.saturating_add(offset as u64)
}

/// A fixed-interval publish schedule: slot `n` is due at `anchor_us + offset_us + n * interval_us`.
///
/// `offset_us` spreads a fleet over the interval so devices do not publish in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub anchor_us: u64,
    pub offset_us: u64,
    pub interval_us: u64,
}

impl Schedule {
    /// Intended time of slot `n`.
    pub fn due(&self, n: u64) -> u64 {
        self.anchor_us
            .saturating_add(self.offset_us)
            .saturating_add(n.saturating_mul(self.interval_us))
    }

    /// The first slot due at or after `t_us`.
    pub fn first_slot_at_or_after(&self, t_us: u64) -> u64 {
        let base = self.anchor_us.saturating_add(self.offset_us);
        if t_us <= base || self.interval_us == 0 {
            return 0;
        }
        (t_us - base).div_ceil(self.interval_us)
    }

    /// Whether a send at `sent_us` for slot `n` is an overrun: it went out after slot `n + 1` was already due,
    /// i.e. the device fell a whole interval behind its schedule.
    pub fn is_overrun(&self, n: u64, sent_us: u64) -> bool {
        sent_us > self.due(n.saturating_add(1))
    }
}

/// A per-device phase offset in `[0, interval_us)`, a pure function of the seed and the device.
pub fn phase_offset_us(seed: u64, device: u64, interval_us: u64) -> u64 {
    if interval_us == 0 {
        return 0;
    }
    splitmix64(seed ^ splitmix64(device.wrapping_add(0x9E37_79B9_7F4A_7C15))) % interval_us
}

/// Exponential backoff with full jitter: attempt `k` (from 0) waits a value in `[0, min(cap, base * 2^k))`,
/// drawn from `(seed, device, k)` so that runs are reproducible.
pub fn backoff_us(base_us: u64, cap_us: u64, attempt: u32, seed: u64, device: u64) -> u64 {
    let ceiling = base_us
        .saturating_mul(1u64 << attempt.min(30))
        .min(cap_us)
        .max(1);
    let r = splitmix64(seed ^ splitmix64(device) ^ u64::from(attempt).rotate_left(32));
    base_us.min(ceiling) / 2 + r % ceiling.saturating_sub(base_us.min(ceiling) / 2).max(1)
}

/// SplitMix64 finaliser: a cheap, well-mixed hash of a u64.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_pacer_table() {
        let cases = [
            (0u64, 0u64, 500.0, 0u64),
            (1_000, 1, 500.0, 3_000),
            (0, 500, 500.0, 1_000_000),
            (0, 3, 3.0, 1_000_000),
            (10, 7, 0.0, 10),
            (10, 7, f64::NAN, 10),
        ];
        for (start, n, rate, want) in cases {
            assert_eq!(
                connect_at(start, n, rate),
                want,
                "start={start} n={n} rate={rate}"
            );
        }
    }

    #[test]
    fn schedule_is_a_formula_that_never_drifts() {
        let s = Schedule {
            anchor_us: 1_000_000,
            offset_us: 250,
            interval_us: 1_000_000,
        };
        let cases = [
            (0u64, 1_000_250u64),
            (1, 2_000_250),
            (1_000_000, 1_000_001_000_250),
        ];
        for (n, want) in cases {
            assert_eq!(s.due(n), want, "slot {n}");
        }
        // first slot at or after a time
        let after = [
            (0u64, 0u64),
            (1_000_250, 0),
            (1_000_251, 1),
            (2_000_250, 1),
            (2_000_251, 2),
        ];
        for (t, want) in after {
            assert_eq!(s.first_slot_at_or_after(t), want, "t={t}");
        }
    }

    #[test]
    fn overrun_means_a_whole_interval_behind() {
        let s = Schedule {
            anchor_us: 0,
            offset_us: 0,
            interval_us: 100,
        };
        assert!(!s.is_overrun(3, 300));
        assert!(!s.is_overrun(3, 400));
        assert!(s.is_overrun(3, 401));
    }

    #[test]
    fn phase_offsets_spread_and_repeat() {
        let a: Vec<u64> = (0..1000)
            .map(|d| phase_offset_us(7, d, 1_000_000))
            .collect();
        let b: Vec<u64> = (0..1000)
            .map(|d| phase_offset_us(7, d, 1_000_000))
            .collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|&o| o < 1_000_000));
        // spread: every tenth of the interval is used
        for decile in 0..10 {
            assert!(
                a.iter().any(|&o| o / 100_000 == decile),
                "decile {decile} empty"
            );
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..40 {
            let b = backoff_us(1_000_000, 30_000_000, attempt, 1, 2);
            assert!(b <= 30_000_000, "attempt {attempt}: {b}");
            assert!(b >= 500_000, "attempt {attempt}: {b}");
        }
        assert_eq!(
            backoff_us(1000, 8000, 3, 5, 6),
            backoff_us(1000, 8000, 3, 5, 6)
        );
    }
}
