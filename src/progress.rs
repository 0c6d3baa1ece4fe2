//! Live progress on stderr: one indicatif bar fed once a second from the workers' atomic counters,
//! as one of the engine's [`Watch`]ers. Hidden when stderr is not a terminal or when disabled.
//! Never on the hot path.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::{Second, Watch};
use crate::metrics::{Counter, SeriesPoint};
use crate::plan::{Plan, Timeline};

/// The bar, once the run has started.
struct Bar {
    bar: ProgressBar,
    devices: u64,
    timeline: Timeline,
}

/// The progress view: one of the engine's watchers ([`Watch`]).
pub struct Progress {
    enabled: bool,
    bar: OnceLock<Bar>,
}

impl Progress {
    /// A progress view; inert unless `enabled` and stderr is a terminal. The bar appears when the
    /// run starts.
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled: enabled && std::io::stderr().is_terminal(),
            bar: OnceLock::new(),
        }
    }
}

impl Watch for Progress {
    fn start(&self, _plan: &Plan, timeline: &Timeline, devices: u64) {
        if !self.enabled {
            return;
        }
        let total_ms = (timeline.end_us().saturating_sub(timeline.start_us)) / 1000;
        let bar =
            ProgressBar::with_draw_target(Some(total_ms), ProgressDrawTarget::stderr_with_hz(4));
        let style = ProgressStyle::with_template(
            "{spinner} {prefix:>8} [{elapsed_precise}] {wide_bar:.cyan/blue} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        let _ = self.bar.set(Bar {
            bar,
            devices,
            timeline: timeline.clone(),
        });
    }

    /// Refresh from cumulative counters now and one second ago, and the second's series point (for
    /// its latency).
    fn second(&self, s: &Second<'_>) {
        let Some(Bar {
            bar,
            devices,
            timeline,
        }) = self.bar.get()
        else {
            return;
        };
        if s.last || bar.is_finished() {
            return;
        }
        let phase = timeline
            .phases
            .get(timeline.phase_at(s.now_us))
            .map_or("", |p| p.name.as_str());
        bar.set_prefix(phase.to_owned());
        bar.set_position(s.now_us.saturating_sub(timeline.start_us) / 1000);
        let rate = s
            .now
            .get(Counter::Published)
            .saturating_sub(s.prev.get(Counter::Published));
        let errors =
            s.now.connect_failures() + s.now.disconnects() + s.now.get(Counter::PublishFailed);
        bar.set_message(format!(
            "connected {}/{devices} | {rate} msg/s | acked {} | {}{} | errors {errors}",
            s.connected,
            s.now.get(Counter::Acked),
            latency_text(s.point),
            lag_text(s.point),
        ));
    }

    /// Print a line above the bar (when there is none, the engine prints it on stderr).
    fn note(&self, text: &str) -> bool {
        match self.bar.get() {
            Some(b) => {
                b.bar.println(text);
                true
            }
            None => false,
        }
    }

    /// Remove the bar.
    fn stop(&self) {
        if let Some(b) = self.bar.get() {
            b.bar.finish_and_clear();
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

/// The load generator's own send lag p99 this second, when it reaches 1 ms (below that it says
/// nothing a person watching needs), e.g. ` | client lag 12.4ms`.
pub fn lag_text(point: &SeriesPoint) -> String {
    match point.send_lag_p99_us.filter(|&us| us >= 1_000) {
        Some(us) => format!(" | client lag {}", crate::report::units::latency(us)),
        None => String::new(),
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

    #[test]
    fn progress_line_shows_client_lag_only_from_a_millisecond() {
        let c = Counters::default();
        let mut p = SeriesPoint::from_delta(3, 10, &c, &c);
        assert_eq!(lag_text(&p), "");
        p.send_lag_p99_us = Some(999);
        assert_eq!(lag_text(&p), "");
        p.send_lag_p99_us = Some(12_400);
        assert_eq!(lag_text(&p), " | client lag 12.4ms");
    }
}
