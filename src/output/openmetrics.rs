//! Live metrics in the OpenMetrics text format (what Prometheus scrapes): counters by name, devices
//! connected, and latency summaries (corrected, cumulative since the start of the run).

use std::fmt::Write as _;

use crate::metrics::{Counter, Counters, IntervalHistograms, Metric};

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
    let label = format!("scenario=\"{}\"", scenario.replace(['\\', '"', '\n'], "_"));
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
}
