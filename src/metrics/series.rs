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
    /// PUBACK latency (corrected) median over this second (written only when measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub puback_p50_us: Option<u64>,
    /// PUBCOMP (QoS 2) latency (corrected) median and p99 over this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubcomp_p50_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubcomp_p99_us: Option<u64>,
    /// CONNECT-to-CONNACK latency (corrected) median and p99 of the connections made this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_p50_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_p99_us: Option<u64>,
    /// Command round trip (corrected) median and p99 of the replies received this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_rtt_p50_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_rtt_p99_us: Option<u64>,
    /// TLS handshake latency (corrected) median and p99 of the handshakes finished this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_p50_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_p99_us: Option<u64>,
    /// The load generator's own send lag p99 over this second (the uncorrected `send_lag`: from when
    /// nothing held the device back to the write); written only when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_p99_us: Option<u64>,
    /// Length of this window in seconds: 1 except for the run's last, partial window, whose per-second
    /// figures are its counts divided by its length (so a short last window does not understate them).
    /// Written only when it is not 1.
    #[serde(default = "one_second", skip_serializing_if = "is_one_second")]
    pub window_s: f64,
}

fn one_second() -> f64 {
    1.0
}

fn is_one_second(w: &f64) -> bool {
    *w == 1.0
}

impl SeriesPoint {
    /// The point for window `t_s` from two cumulative readings one second apart.
    pub fn from_delta(t_s: u32, connected: i64, before: &Counters, now: &Counters) -> SeriesPoint {
        SeriesPoint::from_window(t_s, connected, before, now, 1.0)
    }

    /// The point for a window of `window_s` seconds (in (0, 1] for the last, partial one) ending at
    /// `t_s`: each figure is the window's count divided by its length, rounded.
    pub fn from_window(
        t_s: u32,
        connected: i64,
        before: &Counters,
        now: &Counters,
        window_s: f64,
    ) -> SeriesPoint {
        let window_s = if window_s > 0.0 && window_s.is_finite() {
            window_s
        } else {
            1.0
        };
        let per_s = |n: u64| -> u64 {
            if window_s == 1.0 {
                n
            } else {
                // Saturating float-to-int conversion; exact for counts below 2^53.
                (n as f64 / window_s).round() as u64
            }
        };
        let d = |c: Counter| per_s(now.get(c).saturating_sub(before.get(c)));
        let errors = now
            .connect_failures()
            .saturating_sub(before.connect_failures())
            + now.disconnects().saturating_sub(before.disconnects())
            + now
                .get(Counter::PublishFailed)
                .saturating_sub(before.get(Counter::PublishFailed));
        SeriesPoint {
            t_s,
            connected,
            publishes_per_s: d(Counter::Published),
            acks_per_s: d(Counter::Acked),
            receives_per_s: d(Counter::Received),
            errors_per_s: per_s(errors),
            e2e_p50_us: None,
            e2e_p99_us: None,
            puback_p99_us: None,
            puback_p50_us: None,
            pubcomp_p50_us: None,
            pubcomp_p99_us: None,
            connect_p50_us: None,
            connect_p99_us: None,
            command_rtt_p50_us: None,
            command_rtt_p99_us: None,
            tls_handshake_p50_us: None,
            tls_handshake_p99_us: None,
            send_lag_p99_us: None,
            window_s,
        }
    }

    /// The (p50, p99) of `metric` in this second, when the series keeps it and it was measured.
    pub fn latency(&self, metric: super::Metric) -> (Option<u64>, Option<u64>) {
        use super::Metric;
        match metric {
            Metric::E2e => (self.e2e_p50_us, self.e2e_p99_us),
            Metric::Puback => (self.puback_p50_us, self.puback_p99_us),
            Metric::Pubcomp => (self.pubcomp_p50_us, self.pubcomp_p99_us),
            Metric::Connect => (self.connect_p50_us, self.connect_p99_us),
            Metric::CommandRtt => (self.command_rtt_p50_us, self.command_rtt_p99_us),
            Metric::TlsHandshake => (self.tls_handshake_p50_us, self.tls_handshake_p99_us),
            Metric::SendLag => (None, self.send_lag_p99_us),
            Metric::Suback => (None, None),
        }
    }

    /// The p99 a person watching cares about first: end-to-end, else the publish ack, else none.
    pub fn headline_p99(&self) -> Option<(super::Metric, u64)> {
        use super::Metric;
        [Metric::E2e, Metric::Puback, Metric::Pubcomp]
            .into_iter()
            .find_map(|m| self.latency(m).1.map(|v| (m, v)))
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
        let q = |m| {
            self.get(m)
                .map(|h| (h.value_at_quantile(0.5), h.value_at_quantile(0.99)))
                .unzip()
        };
        (p.puback_p50_us, p.puback_p99_us) = q(super::Metric::Puback);
        (p.pubcomp_p50_us, p.pubcomp_p99_us) = q(super::Metric::Pubcomp);
        (p.connect_p50_us, p.connect_p99_us) = q(super::Metric::Connect);
        (p.command_rtt_p50_us, p.command_rtt_p99_us) = q(super::Metric::CommandRtt);
        (p.tls_handshake_p50_us, p.tls_handshake_p99_us) = q(super::Metric::TlsHandshake);
        p.send_lag_p99_us = q(super::Metric::SendLag).1;
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
