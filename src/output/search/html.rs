//! `report.html` of a capacity search: one self-contained page (the run report's stylesheet and
//! charts, inline SVG, no scripts, nothing fetched) with the statement, the capacity curve of each
//! latency the SLOs name (load on x; corrected p50/p99/p99.9 and uncorrected p99 on y; each limit as
//! a line; the knee marked; every step a dot coloured by its verdict), the SLOs at the knee and the
//! step table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::super::html::REPORT_HTML;
use super::super::html_chart::{esc, legend, nice_axis, Chart, Line, Mark, YFormat, CSS};
use super::parts::{conclusion_text, curve_metrics, limits, slo_at, trio, verdict_class};
use crate::metrics::Metric;
use crate::report::units::latency;
use crate::report::{write_file, ReportError};
use crate::search::{thousands, SearchResult, Step, Verdict};

/// Render the page.
pub fn render(r: &SearchResult) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&format!("fleetstorm · capacity search · {}", r.scenario))
    );
    header(&mut out, r);
    curves(&mut out, r);
    slo_table(&mut out, r);
    step_table(&mut out, r);
    out.push_str(
        "<footer>fleetstorm capacity search · this page is self-contained: every chart is drawn \
         from search.json, nothing is fetched; each step's full report is its report.json</footer>\n\
         </main>\n</body>\n</html>\n",
    );
    out
}

/// Write `dir/report.html`; returns its path.
pub fn write(r: &SearchResult, dir: &Path) -> Result<PathBuf, ReportError> {
    write_file(dir, REPORT_HTML, render(r).as_bytes())
}

fn header(out: &mut String, r: &SearchResult) {
    let (class, label) = conclusion_text(r.conclusion);
    let _ = write!(
        out,
        "<header><div class=\"brand\">fleetstorm capacity search</div>\
         <h1>{} <span class=\"badge {class}\">{label}</span></h1>\
         <p class=\"meta\">broker <code>{}</code> · {} from {} to {} (× {} per growing step, \
         resolution {}%) · settle {} s, window {} s · SLOs {}</p>\
         <p class=\"statement\">{}</p>",
        esc(&r.scenario),
        esc(&r.broker),
        esc(&r.unit),
        thousands(r.policy.from),
        thousands(r.policy.to),
        r.policy.growth,
        (r.policy.resolution * 1000.0).round() / 10.0,
        r.settle_s,
        r.window_s,
        r.slos
            .iter()
            .map(|s| format!("<code>{}</code>", esc(s)))
            .collect::<Vec<_>>()
            .join(" "),
        esc(&r.statement)
    );
    if let Some(q) = &r.require {
        let _ = write!(
            out,
            "<p class=\"note {}\">--require {}: {}</p>",
            if q.passed { "ok" } else { "bad" },
            thousands(q.min),
            esc(&q.detail)
        );
    }
    if let Some(b) = &r.baseline {
        let _ = write!(
            out,
            "<p class=\"note {}\">baseline: {}</p>",
            if b.regressed { "bad" } else { "ok" },
            esc(&b.detail)
        );
    }
    out.push_str("</header>\n");
}

/// Load ticks: about five at a round step.
fn load_ticks(x_max: f64, step: f64) -> Vec<(f64, String)> {
    let mut ticks = Vec::new();
    let mut x = 0.0;
    while x <= x_max + step * 1e-6 {
        ticks.push((x, YFormat::Count.label(x)));
        x += step;
    }
    ticks
}

/// The curve of `metric`: the last measurement at each load, by load.
fn curve_points(r: &SearchResult, metric: Metric) -> Vec<(u64, [u64; 4])> {
    let mut points: Vec<(u64, [u64; 4])> = Vec::new();
    for s in &r.steps {
        if let Some(t) = trio(s, metric) {
            points.retain(|p| p.0 != s.load);
            points.push((s.load, t));
        }
    }
    points.sort_by_key(|p| p.0);
    points
}

fn dot_title(r: &SearchResult, s: &Step, p99: Option<u64>, metric: Metric) -> String {
    let (_, label) = verdict_class(s.verdict);
    let mut t = format!(
        "step {} ({}): {} {}: {label}",
        s.index,
        s.purpose.name(),
        thousands(s.load),
        r.unit
    );
    if let Some(v) = p99 {
        let _ = write!(t, ", {} p99 {}", metric.name(), latency(v));
    }
    if s.verdict != Verdict::Pass {
        if let Some(why) = s.reasons.first() {
            let _ = write!(t, " ({why})");
        }
    }
    t
}

/// The chart of one metric and its marks.
fn curve_chart(r: &SearchResult, metric: Metric) -> (Chart, Vec<Mark>) {
    let points = curve_points(r, metric);
    let max_load = r.steps.iter().map(|s| s.load).max().unwrap_or(1) as f64;
    let (x_max, x_step) = nice_axis(max_load);
    let line = |label: &str, color: &'static str, i: usize, dashed: bool| Line {
        dashed,
        gap: f64::INFINITY,
        ..Line::new(
            label,
            color,
            points
                .iter()
                .map(|(l, t)| (*l as f64, t[i] as f64))
                .collect(),
        )
    };
    let chart = Chart {
        title: format!("{} latency by load", metric.name()),
        x_label: format!("load ({})", r.unit),
        y_label: "latency in the measured window".into(),
        x_max,
        x_ticks: load_ticks(x_max, x_step),
        y_format: YFormat::Latency,
        bands: Vec::new(),
        lines: vec![
            line("p50 corrected", "#059669", 0, false),
            line("p99 corrected", "#dc2626", 1, false),
            line("p99.9 corrected", "#7c3aed", 2, false),
            line("p99 uncorrected", "#dc2626", 3, true),
        ],
    };
    let mut marks: Vec<Mark> = limits(r, metric)
        .into_iter()
        .map(|(t, limit, _)| Mark::Level {
            y: limit,
            label: format!("SLO {t}"),
            color: "#b45309",
        })
        .collect();
    if let Some(k) = r.knee() {
        marks.push(Mark::At {
            x: k.load as f64,
            label: format!("knee {}", thousands(k.load)),
            color: "#15803d",
            dashed: false,
        });
    }
    if let Some(f) = r.first_failure() {
        marks.push(Mark::At {
            x: f.load as f64,
            label: format!("first failure {}", thousands(f.load)),
            color: "#b91c1c",
            dashed: true,
        });
    }
    for s in &r.steps {
        let p99 = trio(s, metric).map(|t| t[1]);
        marks.push(Mark::Dot {
            x: s.load as f64,
            y: p99.unwrap_or(0) as f64,
            class: verdict_class(s.verdict).0,
            title: dot_title(r, s, p99, metric),
        });
    }
    (chart, marks)
}

fn curves(out: &mut String, r: &SearchResult) {
    out.push_str("<section><h2>Capacity curve</h2>");
    out.push_str(
        "<p class=\"explain\">Each step's measured window: latency percentiles <b>corrected</b> \
         (from the intended send time, what the SLOs judge; solid) and the p99 <b>uncorrected</b> \
         (dashed), against the load. Each dot is a step (its p99), coloured by its verdict; a step \
         without a measured latency sits on the axis. Dashed horizontal lines are the SLO limits.</p>",
    );
    let metrics = curve_metrics(r);
    if metrics.is_empty() {
        out.push_str("<p class=\"empty\">No step measured a latency.</p>");
    }
    for metric in metrics {
        let (chart, marks) = curve_chart(r, metric);
        let _ = write!(
            out,
            "<figure class=\"chart\"><figcaption>{}</figcaption>",
            esc(&chart.title)
        );
        out.push_str(&chart.svg_with(&marks));
        legend(out, &chart.lines);
        out.push_str("<div class=\"legend\">");
        for v in [
            Verdict::Pass,
            Verdict::Fail,
            Verdict::CannotJudge,
            Verdict::Fatal,
        ] {
            let (class, label) = verdict_class(v);
            let n = r.steps.iter().filter(|s| s.verdict == v).count();
            if n > 0 {
                let _ = write!(
                    out,
                    "<span class=\"key\"><span class=\"pill {class}\">{label}</span>{n} step{}</span>",
                    if n == 1 { "" } else { "s" }
                );
            }
        }
        out.push_str("</div></figure>");
    }
    out.push_str("</section>\n");
}

fn check_cell(step: Option<&Step>, slo: &str) -> String {
    slo_at(step, slo).map_or_else(
        || "<td class=\"muted\">-</td>".to_owned(),
        |c| {
            let (class, label) = if c.passed {
                ("pass", "PASS")
            } else {
                ("fail", "FAIL")
            };
            format!(
                "<td><span class=\"pill {class}\">{label}</span> {}</td>",
                esc(&c.detail)
            )
        },
    )
}

fn slo_table(out: &mut String, r: &SearchResult) {
    let knee = r.knee();
    let fail = r.first_failure();
    let head = |s: Option<&Step>, what: &str| {
        s.map_or_else(
            || format!("{what}: none"),
            |s| {
                format!(
                    "{what}: {} {} (step {})",
                    thousands(s.load),
                    r.unit,
                    s.index
                )
            },
        )
    };
    let _ = write!(
        out,
        "<section><h2>SLOs</h2><table class=\"gates\"><thead><tr><th>SLO</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        esc(&head(knee, "at the knee")),
        esc(&head(fail, "at the first failing load"))
    );
    for slo in &r.slos {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td>{}{}</tr>",
            esc(slo),
            check_cell(knee, slo),
            check_cell(fail, slo)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn step_table(out: &mut String, r: &SearchResult) {
    let metric = curve_metrics(r).first().copied();
    let name = metric.map_or("latency", |m| m.name());
    let _ = write!(
        out,
        "<section><h2>Steps</h2><div class=\"tablewrap\"><table class=\"steps\"><thead><tr><th>step</th>\
         <th>purpose</th><th>{}</th><th>achieved/s</th><th>{name} p50</th><th>p99</th><th>p99.9</th>\
         <th>p99 uncorrected</th><th>loss</th><th title=\"the load generator's own send lag p99\">client lag</th><th>verdict</th></tr></thead><tbody>",
        esc(&r.unit)
    );
    for s in &r.steps {
        let cells = s.cells();
        let t = metric.and_then(|metric| trio(s, metric));
        let lat = |i: usize| t.map_or_else(|| "-".to_owned(), |t| latency(t[i]));
        let (class, label) = verdict_class(s.verdict);
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"muted\">{}</td><td>{}</td><td class=\"muted\">{}</td><td><span class=\"pill {class}\">{label}</span></td></tr>",
            s.index,
            s.purpose.name(),
            thousands(s.load),
            cells.achieved,
            lat(0),
            lat(1),
            lat(2),
            lat(3),
            cells.loss,
            cells.client_lag,
        );
        if s.verdict != Verdict::Pass && !s.reasons.is_empty() {
            let _ = write!(
                out,
                "<tr class=\"why\"><td></td><td colspan=\"10\" class=\"muted\">{}</td></tr>",
                s.reasons
                    .iter()
                    .map(|w| esc(w))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
    }
    out.push_str("</tbody></table></div></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::fixture::found;

    #[test]
    fn the_page_holds_the_statement_the_curve_and_every_step() {
        let r = found(None, Some(("old/search.json", 30_000, 0.1)));
        let page = render(&r);
        assert!(page.contains(&esc(&r.statement)));
        assert_eq!(page.matches("<svg").count(), 1, "one latency SLO metric");
        // One dot per step, coloured by its verdict.
        assert_eq!(page.matches("class=\"dot pass\"").count(), 3);
        assert_eq!(page.matches("class=\"dot fail\"").count(), 2);
        assert_eq!(page.matches("class=\"dot cannot\"").count(), 1);
        assert!(page.contains("SLO e2e.p99 &lt; 50ms"), "the limit is drawn");
        assert!(page.contains("knee 38,500"));
        assert!(page.contains("first failure 40,000"));
        for l in [
            "p50 corrected",
            "p99 corrected",
            "p99.9 corrected",
            "p99 uncorrected",
        ] {
            assert!(page.contains(l), "{l}");
        }
        assert!(page.contains("no capacity regression"));
        // Each line is one polyline through the loads, not dots split by a time gap.
        assert_eq!(page.matches("<polyline").count(), 4);
        assert!(!page.contains("<script"));
    }
}
