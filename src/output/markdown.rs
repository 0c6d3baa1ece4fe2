//! `summary.md`: a Markdown summary sized for a CI job summary (e.g. `$GITHUB_STEP_SUMMARY`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::compare;
use crate::gate::{Comparison, Verdict};
use crate::metrics::{Counter, Metric};
use crate::report::units::{latency, rate, seconds, Achieved};
use crate::report::{write_file, PhaseReport, Report, ReportError, SUMMARY_MD};

/// Render the summary (ends with a newline), with the gate results: the verdict of each threshold
/// and of the baseline comparison, or why no gate was evaluated.
pub fn render(report: &Report, verdicts: &[Verdict], comparison: Option<&Comparison>) -> String {
    let mut out = String::new();
    header(&mut out, report);
    gates(&mut out, report, verdicts, comparison);
    headline(&mut out, report);
    latency_tables(&mut out, report);
    counters(&mut out, report);
    groups(&mut out, report);
    deliveries(&mut out, report);
    out
}

/// Write `dir/summary.md` (creating `dir` if needed); returns its path.
pub fn write(
    report: &Report,
    verdicts: &[Verdict],
    comparison: Option<&Comparison>,
    dir: &Path,
) -> Result<PathBuf, ReportError> {
    write_file(
        dir,
        SUMMARY_MD,
        render(report, verdicts, comparison).as_bytes(),
    )
}

/// The gate verdicts: one table row per threshold and per compared quantity, or one sentence
/// saying why there is none.
fn gates(out: &mut String, r: &Report, verdicts: &[Verdict], comparison: Option<&Comparison>) {
    out.push_str("## Gates\n\n");
    if let Some(note) = &r.gates_deferred {
        let _ = writeln!(out, "Not evaluated here: {}.\n", cell(note));
        return;
    }
    if verdicts.is_empty() && comparison.is_none() {
        let scenario_has = r
            .scenario
            .get("thresholds")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|t| !t.is_empty())
            || r.scenario.get("baseline").is_some_and(|b| !b.is_null());
        if scenario_has {
            out.push_str(
                "No gate was evaluated for this summary (the scenario's gates are evaluated by `fleetstorm run` and `fleetstorm report merge`; `report render --threshold EXPR` evaluates others).\n\n",
            );
        } else {
            out.push_str(
                "No gate was set: the scenario has no `thresholds:` or `baseline:`, and none was given on the command line.\n\n",
            );
        }
        return;
    }
    let failed = verdicts.iter().filter(|v| !v.passed).count()
        + comparison.map_or(0, |c| c.regressions().count());
    let total = verdicts.len() + comparison.map_or(0, |c| c.changes.len());
    let _ = writeln!(
        out,
        "**{}:** {} passed, {failed} failed\n",
        if failed == 0 { "PASS" } else { "FAIL" },
        total - failed
    );
    if !verdicts.is_empty() {
        let rows: Vec<Vec<String>> = verdicts
            .iter()
            .map(|v| {
                vec![
                    if v.passed { "pass" } else { "**FAIL**" }.to_owned(),
                    code(&v.threshold.to_string()),
                    cell(&v.detail),
                ]
            })
            .collect();
        table(
            out,
            &strings(&["result", "threshold", "measured"]),
            3,
            &rows,
        );
    }
    if let Some(c) = comparison {
        let rows: Vec<Vec<String>> = c
            .changes
            .iter()
            .map(|ch| {
                vec![
                    if ch.regressed { "**FAIL**" } else { "pass" }.to_owned(),
                    cell(&format!("baseline {}", ch.quantity.name())),
                    compare::value(&ch.quantity, ch.base),
                    compare::value(&ch.quantity, ch.current),
                    compare::change(ch),
                ]
            })
            .collect();
        table(
            out,
            &strings(&["result", "compared", "base", "current", "change"]),
            2,
            &rows,
        );
        let _ = writeln!(
            out,
            "Baseline tolerance: {}% (latency and loss up, rate down).\n",
            (c.max_regression * 1000.0).round() / 10.0
        );
    }
}

/// Text safe inside a table cell.
pub(super) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Text safe inside a code span.
pub(super) fn code(text: &str) -> String {
    format!("`{}`", cell(&text.replace('`', "'")))
}

pub(super) fn table(out: &mut String, head: &[String], right_from: usize, rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", head.join(" | "));
    let align: Vec<&str> = (0..head.len())
        .map(|i| if i < right_from { "---" } else { "---:" })
        .collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out.push('\n');
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn header(out: &mut String, r: &Report) {
    let _ = writeln!(out, "# fleetstorm: {}\n", cell(&r.scenario_name));
    let _ = writeln!(
        out,
        "**Outcome:** {} · **Broker:** {} · **Started:** {} · **Duration:** {} · fleetstorm {}\n",
        cell(&r.outcome.describe()),
        code(&r.broker),
        r.started_at,
        seconds(r.duration_s),
        cell(&r.fleetstorm_version)
    );
}

fn headline(out: &mut String, r: &Report) {
    let s = &r.summary;
    match &s.phase {
        Some(name) => {
            let _ = writeln!(
                out,
                "## Headline: phase {} ({})\n",
                code(name),
                seconds(s.phase_duration_s)
            );
        }
        None => out.push_str("## Headline: no phase ran\n\n"),
    }
    let mut rows = vec![
        vec![
            "devices connected (peak)".to_owned(),
            s.devices_connected_peak.to_string(),
        ],
        vec![
            "connects attempted / ok / failed (whole run)".to_owned(),
            format!(
                "{} / {} / {}",
                s.connect_attempts, s.connect_successes, s.connect_failures
            ),
        ],
        vec!["published".to_owned(), s.published.to_string()],
        vec!["acked".to_owned(), s.acked.to_string()],
        vec!["publish failed".to_owned(), s.publish_failed.to_string()],
        vec!["overrun".to_owned(), s.overrun.to_string()],
        vec!["publish rate".to_owned(), rate(s.publish_rate_per_s)],
    ];
    if let Some(p) = r.summary_phase() {
        // What the schedule asked for next to what left this host and what observers received.
        let a = Achieved::of(&p.totals.counters, p.duration_s);
        rows.push(vec![
            "publish rate intended / sent".to_owned(),
            format!("{} / {}", rate(a.intended_per_s), rate(a.sent_per_s)),
        ]);
        if a.received_per_s > 0.0 {
            rows.push(vec![
                "received by observers".to_owned(),
                rate(a.received_per_s),
            ]);
        }
    }
    for (metric, h) in &s.latency {
        rows.push(vec![
            format!("{} p50 / p99 / max (corrected)", metric.name()),
            format!(
                "{} / {} / {}",
                latency(h.p50_us),
                latency(h.p99_us),
                latency(h.max_us)
            ),
        ]);
    }
    table(out, &strings(&["figure", "value"]), 1, &rows);
}

fn latency_tables(out: &mut String, r: &Report) {
    out.push_str("## Latency (corrected)\n\n");
    if r.phases.is_empty() {
        out.push_str("_No phase ran._\n\n");
    }
    for p in &r.phases {
        phase_latency(out, p);
    }
}

fn phase_latency(out: &mut String, p: &PhaseReport) {
    let _ = writeln!(out, "### {} ({})\n", cell(&p.name), seconds(p.duration_s));
    if p.totals.latency.is_empty() {
        out.push_str("_No latency recorded._\n\n");
        return;
    }
    let head = strings(&[
        "metric", "count", "p50", "p90", "p99", "p99.9", "p99.99", "max",
    ]);
    let rows: Vec<Vec<String>> = p
        .totals
        .latency
        .iter()
        .map(|(m, l)| {
            let s = &l.corrected;
            vec![
                m.name().to_owned(),
                s.count.to_string(),
                latency(s.p50_us),
                latency(s.p90_us),
                latency(s.p99_us),
                latency(s.p99_9_us),
                latency(s.p99_99_us),
                latency(s.max_us),
            ]
        })
        .collect();
    table(out, &head, 1, &rows);
}

fn counters(out: &mut String, r: &Report) {
    out.push_str("## Counters\n\n");
    let run = &r.totals.totals.counters;
    let shown: Vec<Counter> = Counter::ALL
        .iter()
        .copied()
        .filter(|&c| run.get(c) > 0)
        .collect();
    if shown.is_empty() {
        out.push_str("_All counters are zero._\n\n");
        return;
    }
    let mut head = vec!["counter".to_owned()];
    head.extend(r.phases.iter().map(|p| cell(&p.name)));
    head.push("whole run".to_owned());
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|&c| {
            let mut row = vec![c.name().to_owned()];
            row.extend(
                r.phases
                    .iter()
                    .map(|p| p.totals.counters.get(c).to_string()),
            );
            row.push(run.get(c).to_string());
            row
        })
        .collect();
    table(out, &head, 1, &rows);
}

fn groups(out: &mut String, r: &Report) {
    out.push_str("## Groups (whole run)\n\n");
    if r.totals.groups.is_empty() {
        out.push_str("_No groups._\n\n");
        return;
    }
    let metrics: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| r.totals.totals.latency.contains_key(m))
        .collect();
    let mut head = strings(&[
        "group",
        "connect ok",
        "published",
        "acked",
        "publish failed",
        "publish rate",
    ]);
    head.extend(metrics.iter().map(|m| format!("{} p99", m.name())));
    // Scenario order, as the snapshot lists the groups.
    let rows: Vec<Vec<String>> = r
        .histograms
        .group_names
        .iter()
        .filter_map(|name| Some((name, r.totals.groups.get(name)?)))
        .map(|(name, g)| {
            let c = &g.counters;
            let mut row = vec![
                cell(name),
                c.get(Counter::ConnectSuccesses).to_string(),
                c.get(Counter::Published).to_string(),
                c.get(Counter::Acked).to_string(),
                c.get(Counter::PublishFailed).to_string(),
                rate(g.rates.published_per_s),
            ];
            row.extend(metrics.iter().map(|m| {
                g.latency
                    .get(m)
                    .filter(|l| l.corrected.count > 0)
                    .map_or_else(|| "-".to_owned(), |l| latency(l.corrected.p99_us))
            }));
            row
        })
        .collect();
    table(out, &head, 1, &rows);
}

fn deliveries(out: &mut String, r: &Report) {
    if r.totals.totals.deliveries.expected == 0 && r.totals.totals.deliveries.received == 0 {
        return;
    }
    out.push_str("## Observer deliveries (whole run)\n\n");
    let head = strings(&[
        "group",
        "expected",
        "received",
        "lost",
        "unobserved",
        "loss ratio",
        "duplicates",
        "reordered",
    ]);
    let all = "**all**".to_owned();
    let rows: Vec<Vec<String>> = r
        .histograms
        .group_names
        .iter()
        .filter_map(|name| Some((name, r.totals.groups.get(name)?)))
        .chain(std::iter::once((&all, &r.totals.totals)))
        .map(|(name, g)| {
            let d = &g.deliveries;
            vec![
                cell(name),
                d.expected.to_string(),
                d.received.to_string(),
                d.lost.to_string(),
                d.unobserved.to_string(),
                format!("{:.6}", d.loss_ratio),
                d.duplicates.to_string(),
                d.reordered.to_string(),
            ]
        })
        .collect();
    table(out, &head, 1, &rows);
}
