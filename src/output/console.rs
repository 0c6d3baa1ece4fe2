//! The end-of-run summary for a terminal: header, whole-run counters, the summary phase's latency
//! table, one line per other phase. Plain text, aligned columns, no colours.

use crate::metrics::{Basis, Counter, Counters};
use crate::report::units::{columns, latency, pad_left, pad_right, rate, seconds, Achieved};
use crate::report::{PhaseReport, Report};

/// Render the summary (ends with a newline).
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    out.push('\n');
    counters(&mut out, report);
    match report.summary_phase() {
        Some(shown) => {
            out.push('\n');
            phase_block(&mut out, shown);
            let others: Vec<&PhaseReport> = report
                .phases
                .iter()
                .filter(|p| !std::ptr::eq(*p, shown))
                .collect();
            if !others.is_empty() {
                out.push('\n');
                out.push_str("other phases\n");
                other_phases(&mut out, &others);
            }
        }
        None => out.push_str("\nno phase ran\n"),
    }
    out
}

fn header(out: &mut String, r: &Report) {
    out.push_str(&format!(
        "fleetstorm {}: scenario {}\n",
        r.fleetstorm_version, r.scenario_name
    ));
    let rows = [
        ("broker", r.broker.clone()),
        ("outcome", r.outcome.describe()),
        ("started", r.started_at.clone()),
        ("duration", seconds(r.duration_s)),
    ];
    // Left-aligned values: pad the label only.
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in rows {
        out.push_str(&format!("  {}  {value}\n", pad_right(label, width)));
    }
}

fn counters(out: &mut String, r: &Report) {
    let c = &r.totals.totals.counters;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row = |label: &str, n: u64| rows.push(vec![label.to_owned(), n.to_string()]);
    row("devices connected (peak)", r.summary.devices_connected_peak);
    row("connect attempts", c.get(Counter::ConnectAttempts));
    row("connect ok", c.get(Counter::ConnectSuccesses));
    row("connect failed", c.connect_failures());
    for (reason, n) in by_reason(c, "connect_fail_") {
        row(&format!("  {reason}"), n);
    }
    for (label, counter) in [
        ("connect abandoned at stop", Counter::ConnectAbandoned),
        ("devices failed to start", Counter::DevicesFailedToStart),
    ] {
        if c.get(counter) > 0 {
            row(label, c.get(counter));
        }
    }
    row("published", c.get(Counter::Published));
    row("acked", c.get(Counter::Acked));
    row("publish failed", c.get(Counter::PublishFailed));
    row("in flight at end", c.get(Counter::InflightAtEnd));
    if c.get(Counter::UnsentAtEnd) > 0 {
        row("unsent at end (QoS 0)", c.get(Counter::UnsentAtEnd));
    }
    row("overrun (client late)", c.get(Counter::Overrun));
    if c.get(Counter::PushedBack) > 0 {
        row("pushed back by the broker", c.get(Counter::PushedBack));
    }
    if c.get(Counter::Skipped) > 0 {
        row("skipped (late / phase over)", c.get(Counter::Skipped));
    }
    for (label, counter) in [
        ("dropped by churn", Counter::ChurnDrops),
        ("dropped by storm", Counter::StormDrops),
        ("sparkplug gated (host not online)", Counter::SparkplugGated),
        ("sparkplug host went offline", Counter::SparkplugHostOffline),
        ("observer sessions lost", Counter::ObserverDisconnects),
        ("observer sessions back", Counter::ObserverReconnects),
    ] {
        if c.get(counter) > 0 {
            row(label, c.get(counter));
        }
    }
    row("disconnects", c.disconnects());
    for (reason, n) in by_reason(c, "disconnect_") {
        row(&format!("  {reason}"), n);
    }
    if c.get(Counter::SparkplugBirths) > 0 {
        row("sparkplug births seen", c.get(Counter::SparkplugBirths));
        row("  deaths", c.get(Counter::SparkplugDeaths));
        row("  data", c.get(Counter::SparkplugData));
        let violations: u64 = [
            Counter::SparkplugSeqGap,
            Counter::SparkplugDataBeforeBirth,
            Counter::SparkplugBdSeqMismatch,
            Counter::SparkplugUnknownAlias,
            Counter::SparkplugMalformed,
            Counter::SparkplugBirthBeforeOnline,
        ]
        .iter()
        .map(|&k| c.get(k))
        .sum();
        row("  rule violations", violations);
    }
    if c.get(Counter::CommandsSent) > 0 {
        row("commands sent", c.get(Counter::CommandsSent));
        row("  replies", c.get(Counter::CommandReplies));
        row("  unanswered", c.get(Counter::CommandsUnanswered));
        if c.get(Counter::CommandsSkipped) > 0 {
            row(
                "  skipped (commander down)",
                c.get(Counter::CommandsSkipped),
            );
        }
        row(
            "  delivered after offline",
            c.get(Counter::CommandsOfflineDelivered),
        );
    }
    let d = &r.totals.totals.deliveries;
    if d.expected > 0 || d.received > 0 {
        row("observer deliveries expected", d.expected);
        row("  received", d.received);
        row("  lost", d.lost);
        row("  unobserved (observer down)", d.unobserved);
        row("  duplicates", d.duplicates);
        row("  reordered", d.reordered);
    }
    out.push_str("counters (whole run)\n");
    out.push_str(&columns(&rows, "  "));
}

/// Non-zero counters whose name starts with `prefix`, labelled by the rest of the name.
fn by_reason<'a>(
    c: &'a Counters,
    prefix: &'a str,
) -> impl Iterator<Item = (&'static str, u64)> + 'a {
    Counter::ALL.iter().filter_map(move |&k| {
        let reason = k.name().strip_prefix(prefix)?;
        let n = c.get(k);
        (n > 0).then_some((reason, n))
    })
}

fn phase_block(out: &mut String, p: &PhaseReport) {
    let t = &p.totals;
    // What the schedule asked for next to what left this host (and what observers got through the
    // broker), so an overloaded phase shows its shortfall.
    let a = Achieved::of(&t.counters, p.duration_s);
    let received = if a.received_per_s > 0.0 {
        format!(", {} received by observers", rate(a.received_per_s))
    } else {
        String::new()
    };
    out.push_str(&format!(
        "{}: {}, {} intended, {} sent, {} acked{received}\n",
        p.name,
        seconds(p.duration_s),
        rate(a.intended_per_s),
        rate(a.sent_per_s),
        rate(t.rates.acked_per_s)
    ));
    if t.latency.is_empty() {
        out.push_str("  no latency recorded\n");
        return;
    }
    let mut rows: Vec<(&str, &str, [String; 6])> = vec![(
        "latency",
        "",
        ["count", "p50", "p90", "p99", "p99.9", "max"].map(str::to_owned),
    )];
    for (metric, l) in &t.latency {
        for basis in Basis::ALL {
            let s = l.get(basis);
            // The metric is named on its corrected row only.
            let label = if basis == Basis::Corrected {
                metric.name()
            } else {
                ""
            };
            rows.push((
                label,
                basis.name(),
                [
                    s.count.to_string(),
                    latency(s.p50_us),
                    latency(s.p90_us),
                    latency(s.p99_us),
                    latency(s.p99_9_us),
                    latency(s.max_us),
                ],
            ));
        }
    }
    // Metric and basis left-aligned in the first cell; the numbers right-aligned.
    let metric_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let basis_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let merged: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(m, b, numbers)| {
            let mut row = vec![format!(
                "{}  {}",
                pad_right(m, metric_width),
                pad_right(b, basis_width)
            )];
            row.extend(numbers);
            row
        })
        .collect();
    out.push_str(&columns(&merged, "  "));
}

fn other_phases(out: &mut String, phases: &[&PhaseReport]) {
    let rows: Vec<(String, String, String)> = phases
        .iter()
        .map(|p| {
            let c = &p.totals.counters;
            let mut parts = vec![
                format!("published {}", c.get(Counter::Published)),
                format!("acked {}", c.get(Counter::Acked)),
                format!("failed {}", c.get(Counter::PublishFailed)),
            ];
            if c.get(Counter::ConnectAttempts) > 0 {
                parts.push(format!(
                    "connect ok {}/{}",
                    c.get(Counter::ConnectSuccesses),
                    c.get(Counter::ConnectAttempts)
                ));
            }
            for (metric, l) in &p.totals.latency {
                if l.corrected.count > 0 {
                    parts.push(format!(
                        "{} p99 {}",
                        metric.name(),
                        latency(l.corrected.p99_us)
                    ));
                }
            }
            (p.name.clone(), seconds(p.duration_s), parts.join(", "))
        })
        .collect();
    // Name left, duration right, details left.
    let name_w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let dur_w = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    for (name, duration, details) in rows {
        out.push_str(&format!(
            "  {}  {}  {details}\n",
            pad_right(&name, name_w),
            pad_left(&duration, dur_w)
        ));
    }
}

/// The threshold verdicts as a terminal table: result, threshold, where, measured.
pub fn render_verdicts(verdicts: &[crate::gate::Verdict]) -> String {
    let mut out = String::new();
    if verdicts.is_empty() {
        return out;
    }
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    out.push_str(&format!(
        "thresholds: {} passed, {failed} failed\n",
        verdicts.len() - failed
    ));
    let mut rows: Vec<Vec<String>> =
        vec![vec!["result".into(), "threshold".into(), "measured".into()]];
    for v in verdicts {
        rows.push(vec![
            if v.passed { "pass" } else { "FAIL" }.into(),
            v.threshold.to_string(),
            v.detail.clone(),
        ]);
    }
    out.push_str(&columns(&rows, "  "));
    out
}
