//! The coordinator's once-a-second bookkeeping (see [`super::coordinator`], which drives threads and
//! worker processes alike): a time-series point (with that second's latency percentiles), the live view for
//! `--prometheus`, and the watchers (progress bar, `--ui` live view).

use std::sync::Arc;

use super::prometheus::LiveView;
use super::watch::{Second, Watch};
use crate::metrics::{Counters, IntervalHistograms, SeriesPoint};

/// Cumulative readings turned into one point per second.
#[derive(Default)]
pub struct Seconds {
    prev: Counters,
    pending: IntervalHistograms,
    pub series: Vec<SeriesPoint>,
    /// Who is told of each closed second.
    watchers: Vec<Arc<dyn Watch>>,
}

impl Seconds {
    /// Also tell these watchers of each closed second.
    pub fn with_watchers(mut self, watchers: &[Arc<dyn Watch>]) -> Seconds {
        self.watchers = watchers.to_vec();
        self
    }

    fn tell(&self, now_us: u64, connected: i64, point: &SeriesPoint, now: &Counters, last: bool) {
        let second = Second {
            now_us,
            connected,
            point,
            now,
            prev: &self.prev,
            last,
        };
        for w in &self.watchers {
            w.second(&second);
        }
    }

    /// Latency histograms that arrived for the current second.
    pub fn add_latency(&mut self, h: &IntervalHistograms, live: Option<&LiveView>) {
        self.pending.merge(h);
        if let Some(view) = live {
            view.add_latency(h);
        }
    }

    /// The current second's histograms, encoded for a parent process.
    pub fn pending_encoded(&self) -> Vec<(crate::metrics::Metric, String)> {
        self.pending.encode()
    }

    /// Close second `tick` with the cumulative counters read now.
    pub fn close(
        &mut self,
        tick: u32,
        connected: i64,
        now: Counters,
        now_us: u64,
        live: Option<&LiveView>,
    ) {
        if let Some(view) = live {
            view.set_counters(&now, connected);
        }
        let mut point = SeriesPoint::from_delta(tick, connected, &self.prev, &now);
        self.pending.annotate(&mut point);
        self.pending = IntervalHistograms::default();
        self.tell(now_us, connected, &point, &now, false);
        self.series.push(point);
        self.prev = now;
    }

    /// Close the run's last, partial window (`window_s` seconds after the last closed second, at most
    /// a little over one) with the final counters, so what happened after the last whole second is in
    /// the series too, at its real rate. Nothing is added when the window is empty and nothing
    /// happened in it.
    pub fn finish(&mut self, tick: u32, connected: i64, now: Counters, now_us: u64, window_s: f64) {
        if window_s <= 0.0 && now == self.prev {
            return;
        }
        let mut point =
            SeriesPoint::from_window(tick, connected, &self.prev, &now, window_s.max(1e-3));
        self.pending.annotate(&mut point);
        self.pending = IntervalHistograms::default();
        self.tell(now_us, connected, &point, &now, true);
        self.series.push(point);
        self.prev = now;
    }

    /// The cumulative counters at the last closed second.
    pub fn last(&self) -> &Counters {
        &self.prev
    }
}
