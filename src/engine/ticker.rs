//! The coordinator's once-a-second bookkeeping, shared by the in-process coordinator and the parent of
//! worker processes: a time-series point (with that second's latency percentiles), the live view for
//! `--prometheus`, and the progress bar.

use super::prometheus::LiveView;
use super::ui::Ui;
use crate::metrics::{Counters, IntervalHistograms, SeriesPoint};
use crate::plan::{Plan, Timeline};
use crate::progress::Progress;

/// Cumulative readings turned into one point per second.
#[derive(Default)]
pub struct Seconds {
    prev: Counters,
    pending: IntervalHistograms,
    pub series: Vec<SeriesPoint>,
    /// The `--ui` live view, with the timeline that names each second's phase.
    ui: Option<(Ui, Timeline)>,
}

impl Seconds {
    /// Also feed each closed second to the `--ui` live view (which learns the plan now).
    pub fn with_ui(mut self, ui: Option<&Ui>, plan: &Plan, timeline: &Timeline) -> Seconds {
        if let Some(ui) = ui {
            ui.set_plan(plan, timeline);
            self.ui = Some((ui.clone(), timeline.clone()));
        }
        self
    }

    fn to_ui(&self, point: &SeriesPoint, now_us: u64, now: &Counters) {
        if let Some((ui, timeline)) = &self.ui {
            ui.push(point, timeline.phase_at(now_us), now);
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
        progress: &Progress,
    ) {
        if let Some(view) = live {
            view.set_counters(&now, connected);
        }
        let mut point = SeriesPoint::from_delta(tick, connected, &self.prev, &now);
        self.pending.annotate(&mut point);
        self.pending = IntervalHistograms::default();
        progress.update(now_us, connected, &now, &self.prev, &point);
        self.to_ui(&point, now_us, &now);
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
        self.to_ui(&point, now_us, &now);
        self.series.push(point);
        self.prev = now;
    }

    /// The cumulative counters at the last closed second.
    pub fn last(&self) -> &Counters {
        &self.prev
    }
}
