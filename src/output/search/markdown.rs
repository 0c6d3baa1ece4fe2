//! `summary.md` of a capacity search, sized for a CI job summary: the statement, the conclusion with
//! `--require` and the baseline, the SLOs at the knee, the step table and the capacity curve in words.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::super::markdown::{cell, code, table};
use super::parts::{conclusion_text, curve_metrics, limits, slo_at, trio, verdict_class};
use crate::report::units::latency;
use crate::report::{write_file, ReportError, SUMMARY_MD};
use crate::search::{thousands, SearchResult, Verdict};

/// Render the Markdown (ends with a newline).
pub fn render(r: &SearchResult) -> String {
    let mut out = String::with_capacity(4096);
    let _ = writeln!(out, "# fleetstorm capacity search: {}\n", cell(&r.scenario));
    let _ = writeln!(
        out,
        "**Broker:** {} · **Load:** {} from {} to {} · settle {} s, window {} s · **Conclusion:** {}\n",
        code(&r.broker),
        r.unit,
        thousands(r.policy.from),
        thousands(r.policy.to),
        r.settle_s,
        r.window_s,
        conclusion_text(r.conclusion).1
    );
    let _ = writeln!(out, "> {}\n", cell(&r.statement));
    if let Some(q) = &r.require {
        let mark = if q.passed { "✅" } else { "❌" };
        let _ = writeln!(out, "- {mark} `--require {}`: {}", q.min, cell(&q.detail));
    }
    if let Some(b) = &r.baseline {
        let mark = if b.regressed { "❌" } else { "✅" };
        let _ = writeln!(out, "- {mark} baseline: {}", cell(&b.detail));
    }
    if r.require.is_some() || r.baseline.is_some() {
        out.push('\n');
    }
    slos(&mut out, r);
    steps(&mut out, r);
    curve(&mut out, r);
    out
}

/// Write `dir/summary.md`; returns its path.
pub fn write(r: &SearchResult, dir: &Path) -> Result<PathBuf, ReportError> {
    write_file(dir, SUMMARY_MD, render(r).as_bytes())
}

fn slos(out: &mut String, r: &SearchResult) {
    let knee = r.knee();
    let fail = r.first_failure();
    let _ = writeln!(out, "## SLOs\n");
    let head = |s: Option<&crate::search::Step>, what: &str| {
        s.map_or_else(
            || format!("{what}: none"),
            |s| format!("{what}: {} (step {})", thousands(s.load), s.index),
        )
    };
    let shown = |s: Option<&crate::search::Step>, slo: &str| {
        slo_at(s, slo).map_or_else(
            || "-".to_owned(),
            |c| {
                format!(
                    "{} {}",
                    if c.passed { "pass" } else { "**FAIL**" },
                    cell(&c.detail)
                )
            },
        )
    };
    let rows: Vec<Vec<String>> = r
        .slos
        .iter()
        .map(|slo| vec![code(slo), shown(knee, slo), shown(fail, slo)])
        .collect();
    table(
        out,
        &[
            "SLO".to_owned(),
            head(knee, "knee"),
            head(fail, "first failing load"),
        ],
        3,
        &rows,
    );
}

fn steps(out: &mut String, r: &SearchResult) {
    let metric = curve_metrics(r).first().copied();
    let _ = writeln!(out, "## Steps\n");
    let name = metric.map_or("latency", |m| m.name());
    let rows: Vec<Vec<String>> = r
        .steps
        .iter()
        .map(|s| {
            let cells = s.cells();
            let t = metric.and_then(|metric| trio(s, metric));
            let lat = |i: usize| t.map_or_else(|| "-".to_owned(), |t| latency(t[i]));
            let (_, label) = verdict_class(s.verdict);
            let why = if s.verdict == Verdict::Pass {
                String::new()
            } else {
                s.reasons.first().map_or_else(String::new, |w| cell(w))
            };
            vec![
                s.index.to_string(),
                s.purpose.name().to_owned(),
                thousands(s.load),
                cells.achieved,
                lat(0),
                lat(1),
                lat(2),
                lat(3),
                cells.loss,
                cells.client_lag,
                if s.verdict == Verdict::Pass {
                    label.to_owned()
                } else {
                    format!("**{label}**")
                },
                why,
            ]
        })
        .collect();
    table(
        out,
        &[
            "step".to_owned(),
            "purpose".to_owned(),
            r.unit.clone(),
            "achieved/s".to_owned(),
            format!("{name} p50"),
            format!("{name} p99"),
            format!("{name} p99.9"),
            "p99 uncorrected".to_owned(),
            "loss".to_owned(),
            "client lag".to_owned(),
            "verdict".to_owned(),
            "why".to_owned(),
        ],
        2,
        &rows,
    );
}

/// The capacity curve in words: per metric, the p99 at each load in order, and where it crosses
/// each limit.
fn curve(out: &mut String, r: &SearchResult) {
    let _ = writeln!(out, "## Capacity curve\n");
    let metrics = curve_metrics(r);
    if metrics.is_empty() {
        let _ = writeln!(out, "No step measured a latency.\n");
        return;
    }
    for metric in metrics {
        let mut points: Vec<(u64, [u64; 4], Verdict)> = Vec::new();
        for s in &r.steps {
            if let Some(t) = trio(s, metric) {
                points.retain(|p| p.0 != s.load);
                points.push((s.load, t, s.verdict));
            }
        }
        points.sort_by_key(|p| p.0);
        let walk: Vec<String> = points
            .iter()
            .map(|(load, t, v)| {
                format!(
                    "{} → {}{}",
                    thousands(*load),
                    latency(t[1]),
                    if *v == Verdict::Pass { "" } else { " ✗" }
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "- {} p99 (corrected) by load, {}: {}",
            metric.name(),
            r.unit,
            walk.join(", ")
        );
        for (t, limit, stat) in limits(r, metric) {
            let pick = |p: &[u64; 4]| match stat {
                crate::threshold::Stat::P50 => Some(p[0]),
                crate::threshold::Stat::P99 => Some(p[1]),
                crate::threshold::Stat::P99_9 => Some(p[2]),
                _ => None,
            };
            let over = points
                .iter()
                .find(|(_, p, _)| pick(p).is_some_and(|v| !t.op.holds(v as f64, limit)));
            let line = match over {
                Some((load, p, _)) => format!(
                    "crosses `{t}` first at {} {} ({})",
                    thousands(*load),
                    r.unit,
                    latency(pick(p).unwrap_or(0))
                ),
                None if pick(&[0; 4]).is_none() => {
                    format!("`{t}`: the table has no such percentile; see the steps' report.json")
                }
                None => format!("stays within `{t}` at every load measured"),
            };
            let _ = writeln!(out, "  - {line}");
        }
    }
    if let Some(k) = r.knee() {
        let _ = writeln!(
            out,
            "- knee: {} {} (step {}){}",
            thousands(k.load),
            r.unit,
            k.index,
            r.first_failure().map_or_else(String::new, |f| format!(
                "; first failing load {} (step {})",
                thousands(f.load),
                f.index
            ))
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::fixture::found;

    #[test]
    fn the_summary_states_the_answer_the_checks_and_the_curve() {
        let md = render(&found(Some(30_000), Some(("old/search.json", 50_000, 0.1))));
        assert!(
            md.contains("> capacity: 38,500 devices at 1 msg/s each"),
            "{md}"
        );
        assert!(md.contains("**Conclusion:** not met (exit 1)"), "{md}");
        assert!(md.contains("- ✅ `--require 30000`"), "{md}");
        assert!(md.contains("- ❌ baseline: capacity regression"), "{md}");
        assert!(
            md.contains("20,000 → 20.0ms, 38,500 → 40.0ms, 40,000 → 60.0ms ✗, 43,000 → 73.0ms ✗"),
            "{md}"
        );
        assert!(
            md.contains("crosses `e2e.p99 < 50ms` first at 40,000 devices (60.0ms)"),
            "{md}"
        );
        assert!(
            md.contains("knee: 38,500 devices (step 6); first failing load 40,000 (step 2)"),
            "{md}"
        );
        // One table row per step, the unjudged one with its reason.
        assert_eq!(md.lines().filter(|l| l.starts_with("| 3 |")).count(), 1);
        assert!(
            md.contains("**cannot judge** | the client machine was the limit |"),
            "{md}"
        );
    }
}
