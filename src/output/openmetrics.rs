//! Live metrics in the OpenMetrics text format (what Prometheus scrapes): counters by name, devices
//! connected, and latency summaries (corrected, cumulative since the start of the run).

use std::fmt::Write as _;

use crate::metrics::{Counter, Counters, IntervalHistograms, Metric};
use crate::search::LiveStep;

/// Quantiles exported for each latency summary.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

/// Render the exposition for `scenario`.
pub fn render(
    scenario: &str,
    counters: &Counters,
    connected: i64,
    latency: &IntervalHistograms,
) -> String {
    let mut out = String::with_capacity(4096);
    let label = scenario_label(scenario);
    let _ = writeln!(out, "# TYPE fleetstorm_devices_connected gauge");
    let _ = writeln!(
        out,
        "# HELP fleetstorm_devices_connected Devices with an open MQTT session."
    );
    let _ = writeln!(out, "fleetstorm_devices_connected{{{label}}} {connected}");
    for &c in Counter::ALL {
        let name = format!("fleetstorm_{}", c.name());
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "# HELP {name} {}.", c.describe());
        let _ = writeln!(out, "{name}_total{{{label}}} {}", counters.get(c));
    }
    for metric in Metric::ALL {
        let Some(h) = latency.get(metric) else {
            continue;
        };
        let name = format!("fleetstorm_{}_latency_seconds", metric.name());
        let _ = writeln!(out, "# TYPE {name} summary");
        let _ = writeln!(
            out,
            "# HELP {name} {} latency, corrected (from the intended time), since the start of the run.",
            metric.name()
        );
        for q in QUANTILES {
            let v = h.value_at_quantile(q) as f64 / 1e6;
            let _ = writeln!(out, "{name}{{{label},quantile=\"{q}\"}} {v}");
        }
        let sum = h.mean() * h.len() as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{label}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{label}}} {}", h.len());
    }
    out.push_str("# EOF\n");
    out
}

fn scenario_label(scenario: &str) -> String {
    format!("scenario=\"{}\"", scenario.replace(['\\', '"', '\n'], "_"))
}

/// The exposition of one step of a capacity search: the run's ([`render`]) plus where the search
/// stands (the step, its load, the highest passing and lowest failing load so far). The run's
/// counters start again at each step (a counter reset, as Prometheus' `rate()` expects).
pub fn render_search(
    scenario: &str,
    counters: &Counters,
    connected: i64,
    latency: &IntervalHistograms,
    step: &LiveStep,
) -> String {
    let mut out = render(scenario, counters, connected, latency);
    out.truncate(out.len().saturating_sub("# EOF\n".len()));
    let label = format!("{},unit=\"{}\"", scenario_label(scenario), step.vary.unit());
    let gauges: [(&str, &str, Option<u64>); 4] = [
        (
            "search_step",
            "The capacity search's step running now (from 1).",
            Some(u64::from(step.index)),
        ),
        (
            "search_load",
            "The load of the step running now.",
            Some(step.load),
        ),
        (
            "search_passing_load",
            "The highest load that passed so far (absent before any step passed).",
            step.passing,
        ),
        (
            "search_failing_load",
            "The lowest load that failed so far (absent before any step failed).",
            step.failing,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# TYPE fleetstorm_{name} gauge");
        let _ = writeln!(out, "# HELP fleetstorm_{name} {help}");
        if let Some(v) = value {
            let _ = writeln!(out, "fleetstorm_{name}{{{label}}} {v}");
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{new_histogram, record};

    #[test]
    fn exposition_has_counters_gauge_and_summaries() {
        let mut c = Counters::default();
        c.add(Counter::Published, 42);
        let mut h = new_histogram().unwrap();
        for v in 1..=100 {
            record(&mut h, v * 1000);
        }
        let lat = IntervalHistograms {
            by_metric: vec![(Metric::E2e, h)],
        };
        let text = render("s", &c, 7, &lat);
        assert!(text.contains("fleetstorm_devices_connected{scenario=\"s\"} 7"));
        assert!(text.contains("fleetstorm_published_total{scenario=\"s\"} 42"));
        assert!(
            text.contains("fleetstorm_e2e_latency_seconds{scenario=\"s\",quantile=\"0.5\"} 0.05")
        );
        assert!(text.contains("fleetstorm_e2e_latency_seconds_count{scenario=\"s\"} 100"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_search_step_adds_where_the_search_stands_before_the_end() {
        use crate::search::{Purpose, Vary, Verdict};
        let step = LiveStep::new(
            3,
            4_000,
            Purpose::Grow,
            Vary::Devices,
            &[(1_000, Verdict::Pass), (2_000, Verdict::Pass)],
        );
        let text = render_search(
            "s",
            &Counters::default(),
            5,
            &IntervalHistograms::default(),
            &step,
        );
        assert!(text.contains("fleetstorm_devices_connected{scenario=\"s\"} 5"));
        assert!(text.contains("fleetstorm_search_step{scenario=\"s\",unit=\"devices\"} 3"));
        assert!(text.contains("fleetstorm_search_load{scenario=\"s\",unit=\"devices\"} 4000"));
        assert!(
            text.contains("fleetstorm_search_passing_load{scenario=\"s\",unit=\"devices\"} 2000")
        );
        assert!(!text.contains("fleetstorm_search_failing_load{"));
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }
}
