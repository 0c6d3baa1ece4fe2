//! The 1-second time series, sampled from live counters by the coordinator's ticker.

use serde::{Deserialize, Serialize};

use super::kinds::Counter;
use super::snapshot::Counters;

/// One second of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Seconds since the run's start (end of this one-second window).
    pub t_s: u32,
    /// Devices connected at the end of the window.
    pub connected: i64,
    pub publishes_per_s: u64,
    pub acks_per_s: u64,
    pub receives_per_s: u64,
    pub errors_per_s: u64,
    /// End-to-end latency (corrected) over this second: median and p99; `None` when nothing arrived.
    #[serde(default)]
    pub e2e_p50_us: Option<u64>,
    #[serde(default)]
    pub e2e_p99_us: Option<u64>,
    /// PUBACK latency (corrected) p99 over this second.
    #[serde(default)]
    pub puback_p99_us: Option<u64>,
}

impl SeriesPoint {
    /// The point for window `t_s` from two cumulative readings one second apart.
    pub fn from_delta(t_s: u32, connected: i64, before: &Counters, now: &Counters) -> SeriesPoint {
        let d = |c: Counter| now.get(c).saturating_sub(before.get(c));
        let errors = now
            .connect_failures()
            .saturating_sub(before.connect_failures())
            + now.disconnects().saturating_sub(before.disconnects())
            + d(Counter::PublishFailed);
        SeriesPoint {
            t_s,
            connected,
            publishes_per_s: d(Counter::Published),
            acks_per_s: d(Counter::Acked),
            receives_per_s: d(Counter::Received),
            errors_per_s: errors,
            e2e_p50_us: None,
            e2e_p99_us: None,
            puback_p99_us: None,
        }
    }
}

/// Histograms of one second (corrected latency), per metric, as workers hand them to the coordinator.
#[derive(Debug, Clone, Default)]
pub struct IntervalHistograms {
    pub by_metric: Vec<(super::Metric, super::histogram::LatencyHistogram)>,
}

impl IntervalHistograms {
    /// Add another worker's second.
    pub fn merge(&mut self, other: &IntervalHistograms) {
        for (m, h) in &other.by_metric {
            match self.by_metric.iter_mut().find(|(x, _)| x == m) {
                Some((_, mine)) => {
                    let _ = mine.add(h);
                }
                None => self.by_metric.push((*m, h.clone())),
            }
        }
    }

    pub fn get(&self, m: super::Metric) -> Option<&super::histogram::LatencyHistogram> {
        self.by_metric
            .iter()
            .find(|(x, h)| *x == m && !h.is_empty())
            .map(|(_, h)| h)
    }

    /// Fill the latency fields of a series point from this second.
    pub fn annotate(&self, p: &mut SeriesPoint) {
        if let Some(h) = self.get(super::Metric::E2e) {
            p.e2e_p50_us = Some(h.value_at_quantile(0.5));
            p.e2e_p99_us = Some(h.value_at_quantile(0.99));
        }
        if let Some(h) = self.get(super::Metric::Puback) {
            p.puback_p99_us = Some(h.value_at_quantile(0.99));
        }
    }

    /// As base64 V2+DEFLATE, for the pipe from worker processes.
    pub fn encode(&self) -> Vec<(super::Metric, String)> {
        self.by_metric
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .filter_map(|(m, h)| super::histogram::encode(h).ok().map(|t| (*m, t)))
            .collect()
    }

    /// From [`IntervalHistograms::encode`]; undecodable entries are skipped.
    pub fn decode(parts: &[(super::Metric, String)]) -> IntervalHistograms {
        IntervalHistograms {
            by_metric: parts
                .iter()
                .filter_map(|(m, t)| super::histogram::decode(t).ok().map(|h| (*m, h)))
                .collect(),
        }
    }
}
