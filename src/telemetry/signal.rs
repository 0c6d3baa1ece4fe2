//! Signal models: small `Copy` structs holding their parameters and state, advanced by `step(rng, dt_s)`.
//!
//! All models accept any `dt_s`: zero, negative or NaN steps count as zero, and a huge step (a day) lands on a
//! sample of the model's long-run distribution instead of overflowing. None of them ever returns NaN from
//! finite parameters.

use super::rng::Rng;
use std::f64::consts::TAU;

/// Longest step honoured, in seconds (~31,700 years): keeps `rate * dt` finite.
const MAX_DT_S: f64 = 1e12;

/// A step length we can compute with: NaN and negatives become 0, absurd values are capped.
pub(crate) fn sanitize_dt(dt_s: f64) -> f64 {
    if dt_s > 0.0 {
        dt_s.min(MAX_DT_S)
    } else {
        0.0
    }
}

/// Ornstein-Uhlenbeck process: a random walk pulled back towards `mean`, optionally clamped to `[lo, hi]`.
///
/// `dx = rate * (mean - x) dt + volatility * dW`, discretised exactly, so one step of 10 s has the same
/// distribution as ten steps of 1 s. With `rate == 0` it is a plain (Brownian) random walk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrnsteinUhlenbeck {
    /// Current value.
    pub value: f64,
    /// Long-run mean the value reverts to.
    pub mean: f64,
    /// Reversion rate per second (1 / time constant).
    pub rate: f64,
    /// Diffusion coefficient (units per √s); the long-run standard deviation is `volatility / √(2·rate)`.
    pub volatility: f64,
    /// Lower clamp bound (`f64::NEG_INFINITY` for none).
    pub lo: f64,
    /// Upper clamp bound (`f64::INFINITY` for none).
    pub hi: f64,
}

impl OrnsteinUhlenbeck {
    /// A process starting at its mean, parametrised by its long-run standard deviation `stationary_sd`.
    pub fn new(mean: f64, rate: f64, stationary_sd: f64) -> Self {
        OrnsteinUhlenbeck {
            value: mean,
            mean,
            rate,
            volatility: stationary_sd * (2.0 * rate.max(0.0)).sqrt(),
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
        }
    }

    /// The same process clamped to `[lo, hi]`.
    pub fn with_bounds(self, lo: f64, hi: f64) -> Self {
        OrnsteinUhlenbeck { lo, hi, ..self }
    }

    /// The same process with its current value replaced (and clamped).
    pub fn with_value(self, value: f64) -> Self {
        OrnsteinUhlenbeck {
            value: clamp(value, self.lo, self.hi),
            ..self
        }
    }

    /// The long-run standard deviation (unclamped).
    pub fn stationary_sd(&self) -> f64 {
        if self.rate > 0.0 {
            self.volatility / (2.0 * self.rate).sqrt()
        } else {
            f64::INFINITY
        }
    }

    /// Advance by `dt_s` seconds and return the new value.
    pub fn step(&mut self, rng: &mut Rng, dt_s: f64) -> f64 {
        let dt = sanitize_dt(dt_s);
        let (decay, variance) = if self.rate > 0.0 {
            let variance = self.volatility * self.volatility * -(-2.0 * self.rate * dt).exp_m1()
                / (2.0 * self.rate);
            ((-self.rate * dt).exp(), variance)
        } else {
            (1.0, self.volatility * self.volatility * dt)
        };
        // Always draw, so the generator advances the same way whatever the parameters.
        let noise = variance.max(0.0).sqrt() * rng.gaussian();
        let next = self.mean + (self.value - self.mean) * decay + noise;
        if next.is_finite() {
            self.value = clamp(next, self.lo, self.hi);
        }
        self.value
    }
}

/// `value` limited to `[lo, hi]`; unlike `f64::clamp` it never panics (NaN or inverted bounds).
pub(crate) fn clamp(value: f64, lo: f64, hi: f64) -> f64 {
    value.max(lo).min(hi)
}

/// A sine wave plus Gaussian noise, evaluated from absolute time so it is continuous across any step pattern
/// and never drifts: `offset + amplitude · sin(2π·t/period + phase) + noise`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SineNoise {
    /// Period in seconds (<= 0: a constant `offset` plus noise).
    pub period_s: f64,
    /// Peak deviation from `offset`.
    pub amplitude: f64,
    /// Centre value.
    pub offset: f64,
    /// Standard deviation of the independent noise added to every sample.
    pub noise_sd: f64,
    /// Phase in radians (per device, so devices do not move in lockstep).
    pub phase: f64,
    /// Time of the last sample, seconds since the Unix epoch.
    pub t_s: f64,
}

impl SineNoise {
    /// A wave positioned at `t_s = 0`.
    pub fn new(period_s: f64, amplitude: f64, offset: f64, noise_sd: f64, phase: f64) -> Self {
        SineNoise {
            period_s,
            amplitude,
            offset,
            noise_sd,
            phase,
            t_s: 0.0,
        }
    }

    /// The noiseless value at absolute time `t_s`.
    pub fn clean_at(&self, t_s: f64) -> f64 {
        if self.period_s.is_nan() || self.period_s <= 0.0 || !t_s.is_finite() {
            return self.offset;
        }
        // Reduce first: sin of a 1.7e9-second argument loses precision, the fraction of a cycle does not.
        let cycles = (t_s / self.period_s).rem_euclid(1.0);
        self.offset + self.amplitude * (TAU * cycles + self.phase).sin()
    }

    /// Sample at absolute time `t_s` (seconds since the Unix epoch).
    pub fn sample_at(&mut self, rng: &mut Rng, t_s: f64) -> f64 {
        self.t_s = t_s;
        let noise = self.noise_sd * rng.gaussian();
        let value = self.clean_at(t_s) + noise;
        if value.is_finite() {
            value
        } else {
            self.offset
        }
    }

    /// Advance by `dt_s` seconds from the last sample and return the new value.
    pub fn step(&mut self, rng: &mut Rng, dt_s: f64) -> f64 {
        self.sample_at(rng, self.t_s + sanitize_dt(dt_s))
    }
}

/// A monotonic counter growing at `rate_per_s` with relative `jitter`; it never decreases.
///
/// Each step adds `max(0, rate · (dt + jitter · √dt · N(0,1)))`, so the jitter averages out over long steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counter {
    /// Current (fractional) count; integer counters publish `floor(value)`.
    pub value: f64,
    /// Mean increase per second.
    pub rate_per_s: f64,
    /// Relative standard deviation of the increase over one second.
    pub jitter: f64,
}

impl Counter {
    /// A counter starting at `value`.
    pub fn new(value: f64, rate_per_s: f64, jitter: f64) -> Self {
        Counter {
            value,
            rate_per_s,
            jitter,
        }
    }

    /// Advance by `dt_s` seconds and return the new value.
    pub fn step(&mut self, rng: &mut Rng, dt_s: f64) -> f64 {
        let dt = sanitize_dt(dt_s);
        let noise = rng.gaussian();
        let increase = self.rate_per_s * (dt + self.jitter * dt.sqrt() * noise);
        if increase > 0.0 && (self.value + increase).is_finite() {
            self.value += increase;
        }
        self.value
    }

    /// The count as an integer (`floor`, saturating; 0 for negative or NaN).
    pub fn whole(&self) -> u64 {
        // `as` saturates and maps NaN to 0.
        self.value.floor() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ou_exact_discretisation_matches_many_small_steps_in_mean() {
        let ou = OrnsteinUhlenbeck::new(0.0, 0.1, 0.0).with_value(10.0);
        let (mut big, mut small) = (ou, ou);
        let mut rng = Rng::new(1);
        big.step(&mut rng, 10.0);
        for _ in 0..10 {
            small.step(&mut rng, 1.0);
        }
        assert!((big.value - small.value).abs() < 1e-9);
        assert!((big.value - 10.0 * (-1.0f64).exp()).abs() < 1e-9);
    }
}
