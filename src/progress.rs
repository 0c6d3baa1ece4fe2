//! Live progress on stderr: one indicatif bar fed once a second from the workers' atomic counters.
//! Hidden when stderr is not a terminal or when disabled. Never on the hot path.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::{Counter, Counters, SeriesPoint};
use crate::plan::Timeline;

pub struct Progress {
    bar: Option<ProgressBar>,
    devices: u64,
    timeline: Timeline,
}

impl Progress {
    /// A progress view for `devices` over the timeline; inert unless `enabled` and stderr is a terminal.
    pub fn new(enabled: bool, devices: u64, timeline: &Timeline) -> Progress {
        let total_ms = (timeline.end_us().saturating_sub(timeline.start_us)) / 1000;
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total_ms),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            let style = ProgressStyle::with_template(
                "{spinner} {prefix:>8} [{elapsed_precise}] {wide_bar:.cyan/blue} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            bar,
            devices,
            timeline: timeline.clone(),
        }
    }

    /// Refresh from cumulative counters now and one second ago, and the second's series point (for
    /// its latency).
    pub fn update(
        &self,
        now_us: u64,
        connected: i64,
        now: &Counters,
        prev: &Counters,
        point: &SeriesPoint,
    ) {
        let Some(bar) = &self.bar else {
            return;
        };
        let phase = self
            .timeline
            .phases
            .get(self.timeline.phase_at(now_us))
            .map_or("", |p| p.name.as_str());
        bar.set_prefix(phase.to_owned());
        bar.set_position(now_us.saturating_sub(self.timeline.start_us) / 1000);
        let rate = now
            .get(Counter::Published)
            .saturating_sub(prev.get(Counter::Published));
        let errors = now.connect_failures() + now.disconnects() + now.get(Counter::PublishFailed);
        bar.set_message(format!(
            "connected {connected}/{} | {rate} msg/s | acked {} | {} | errors {errors}",
            self.devices,
            now.get(Counter::Acked),
            latency_text(point),
        ));
    }

    /// Print a line above the bar (or to stderr when there is no bar).
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The second's headline p99 for the progress line, e.g. `e2e p99 12.4ms` (`p99 -` when nothing was
/// measured that second).
pub fn latency_text(point: &SeriesPoint) -> String {
    match point.headline_p99() {
        Some((metric, us)) => format!(
            "{} p99 {}",
            metric.name(),
            crate::report::units::latency(us)
        ),
        None => "p99 -".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Counters;

    #[test]
    fn progress_line_shows_the_current_p99() {
        let c = Counters::default();
        let mut p = SeriesPoint::from_delta(3, 10, &c, &c);
        assert_eq!(latency_text(&p), "p99 -");
        p.puback_p99_us = Some(2_500);
        assert!(
            latency_text(&p).starts_with("puback p99 "),
            "{}",
            latency_text(&p)
        );
        assert!(latency_text(&p).contains("2.5"), "{}", latency_text(&p));
        p.e2e_p99_us = Some(40_000);
        assert!(
            latency_text(&p).starts_with("e2e p99 "),
            "{}",
            latency_text(&p)
        );
        assert!(latency_text(&p).contains("40"), "{}", latency_text(&p));
    }
}
