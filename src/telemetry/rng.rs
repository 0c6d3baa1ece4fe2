//! A tiny seeded PRNG (SplitMix64): 8 bytes of state, fast, and good enough for simulated telemetry.
//!
//! We keep our own generator instead of `rand_chacha` because a device's whole state must stay a few dozen
//! bytes (a million devices per host), and because its output must never change under a dependency upgrade:
//! golden payloads depend on it.

use std::f64::consts::TAU;

/// The SplitMix64 increment (2^64 / golden ratio).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// 2^-53: turns the top 53 bits of a `u64` into a float in `[0, 1)`.
const UNIT_53: f64 = 1.0 / (1u64 << 53) as f64;

/// The SplitMix64 output function: a bijective 64-bit mixer. Also used to derive per-device parameters.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded SplitMix64 generator. Same seed, same sequence, on every platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator starting from `seed` (any value, including 0, is fine).
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * UNIT_53
    }

    /// A standard normal sample (Box-Muller; the second value is dropped to keep the state at 8 bytes).
    pub fn gaussian(&mut self) -> f64 {
        // 1 - [0, 1) = (0, 1]: ln never sees 0.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

/// A uniform value in `[-1, 1)` derived from `key` and `salt` without touching any generator state:
/// per-device parameters are recomputed from the device key when needed instead of being stored.
pub fn unit_symmetric(key: u64, salt: u64) -> f64 {
    let bits = mix64(key ^ mix64(salt.wrapping_mul(GOLDEN_GAMMA)));
    (bits >> 11) as f64 * UNIT_53 * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // Reference output of SplitMix64 seeded with 1234567 (from the algorithm's C reference).
        let mut rng = Rng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn uniform_and_gaussian_moments() {
        let mut rng = Rng::new(7);
        let n = 100_000;
        let (mut sum_u, mut sum_g, mut sum_g2) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            let u = rng.next_f64();
            assert!((0.0..1.0).contains(&u));
            sum_u += u;
            let g = rng.gaussian();
            assert!(g.is_finite());
            sum_g += g;
            sum_g2 += g * g;
        }
        let n = n as f64;
        assert!((sum_u / n - 0.5).abs() < 0.01);
        assert!((sum_g / n).abs() < 0.02);
        assert!((sum_g2 / n - 1.0).abs() < 0.03);
    }

    #[test]
    fn unit_symmetric_is_in_range_and_salt_dependent() {
        for key in 0..1000u64 {
            let a = unit_symmetric(key, 1);
            assert!((-1.0..1.0).contains(&a));
            assert_ne!(a, unit_symmetric(key, 2));
        }
    }
}
