//! `report.html`: one self-contained page (inline CSS, charts as inline SVG drawn here, no
//! scripts, no external references) for screens and demos.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::gate::Verdict;
use crate::metrics::histogram::LatencyHistogram;
use crate::metrics::{Basis, Counter, GroupSnapshot, Metric};
use crate::report::units::{latency, rate, seconds};
use crate::report::RunStatus;
use crate::report::{write_file, GroupReport, PhaseReport, Report, ReportError};

use super::html_chart::{esc, legend, Chart, Line, YFormat, CSS};

/// File name of the HTML report inside a report directory.
pub const REPORT_HTML: &str = "report.html";

/// Highest point of the percentile spectrum, in nines: 5 = 99.999 %.
const MAX_NINES: f64 = 5.0;
/// Points per nine on the spectrum.
const STEPS_PER_NINE: usize = 20;

const PHASE_COLORS: [&str; 8] = [
    "#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#65a30d",
];

/// Render the page. `verdicts` adds the gate table (pass/fail coloured) when not empty.
pub fn render(report: &Report, verdicts: &[Verdict]) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("fleetstorm · {}", report.scenario_name);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&title)
    );
    header(&mut out, report);
    cards(&mut out, report, verdicts);
    if let Some(note) = &report.gates_deferred {
        let _ = writeln!(
            out,
            "<section><h2>Gates</h2><p>Not evaluated here: {}.</p></section>",
            esc(note)
        );
    } else if !verdicts.is_empty() {
        gates(&mut out, verdicts);
    }
    latency_section(&mut out, report);
    time_series(&mut out, report);
    phases(&mut out, report);
    let _ = write!(
        out,
        "<footer>fleetstorm {} · {} · {} cores · started {} · this page is self-contained: \
         every chart is drawn from report.json, nothing is fetched</footer>\n</main>\n</body>\n</html>\n",
        esc(&report.fleetstorm_version),
        esc(&report.environment.host),
        report.environment.cores,
        esc(&report.started_at)
    );
    out
}

/// Write `dir/report.html` (creating `dir` if needed); returns its path.
pub fn write(report: &Report, verdicts: &[Verdict], dir: &Path) -> Result<PathBuf, ReportError> {
    write_file(dir, REPORT_HTML, render(report, verdicts).as_bytes())
}

// ---------------------------------------------------------------------------------------------
// Sections

fn header(out: &mut String, r: &Report) {
    let (class, label) = match r.outcome.status {
        RunStatus::Completed => ("ok", "completed"),
        RunStatus::Interrupted => ("warn", "interrupted"),
        RunStatus::BrokerUnreachable => ("bad", "broker unreachable"),
        RunStatus::BrokerLost => ("bad", "broker lost"),
        RunStatus::WorkerFailed => ("bad", "worker failed"),
        RunStatus::DevicesFailed => ("bad", "devices failed to start"),
    };
    let _ = write!(
        out,
        "<header><div class=\"brand\">fleetstorm report</div>\
         <h1>{} <span class=\"badge {class}\">{label}</span></h1>\
         <p class=\"meta\">broker <code>{}</code> · started {} · {} · ended {}</p>",
        esc(&r.scenario_name),
        esc(&r.broker),
        esc(&r.started_at),
        esc(&seconds(r.duration_s)),
        esc(&r.ended_at),
    );
    if !r.outcome.message.is_empty() {
        let _ = write!(
            out,
            "<p class=\"note {class}\">{}</p>",
            esc(&r.outcome.message)
        );
    }
    out.push_str("</header>\n");
}

fn cards(out: &mut String, r: &Report, verdicts: &[Verdict]) {
    let s = &r.summary;
    let phase = s.phase.as_deref().unwrap_or("no phase");
    let mut cards: Vec<(String, String, String, &str)> = Vec::new();
    if !verdicts.is_empty() {
        let passed = verdicts.iter().filter(|v| v.passed).count();
        let class = if passed == verdicts.len() {
            "ok"
        } else {
            "bad"
        };
        cards.push((
            "gates".into(),
            format!("{passed}/{}", verdicts.len()),
            if passed == verdicts.len() {
                "all passed".into()
            } else {
                format!("{} failed", verdicts.len() - passed)
            },
            class,
        ));
    }
    cards.push((
        "devices connected".into(),
        s.devices_connected_peak.to_string(),
        "peak, whole run".into(),
        "",
    ));
    cards.push((
        "publish rate".into(),
        rate(s.publish_rate_per_s),
        format!("phase {phase}"),
        "",
    ));
    cards.push((
        "published".into(),
        s.published.to_string(),
        format!(
            "{} acked · {} failed · {} overrun",
            s.acked, s.publish_failed, s.overrun
        ),
        if s.publish_failed > 0 { "warn" } else { "" },
    ));
    cards.push((
        "connect failures".into(),
        s.connect_failures.to_string(),
        format!("of {} attempts", s.connect_attempts),
        if s.connect_failures > 0 { "warn" } else { "" },
    ));
    for (m, h) in &s.latency {
        cards.push((
            format!("{} p99", m.name()),
            latency(h.p99_us),
            format!("p50 {} · max {}", latency(h.p50_us), latency(h.max_us)),
            "",
        ));
    }
    if let Some(p) = r.summary_phase() {
        let d = &p.totals.deliveries;
        if d.expected > 0 {
            cards.push((
                "loss ratio".into(),
                format!("{:.4}%", d.loss_ratio * 100.0),
                if d.unobserved > 0 {
                    format!(
                        "{} lost of {} · {} unobserved",
                        d.lost, d.expected, d.unobserved
                    )
                } else {
                    format!("{} lost of {}", d.lost, d.expected)
                },
                if d.lost > 0 { "warn" } else { "" },
            ));
        }
    }
    out.push_str("<section class=\"cards\">");
    for (label, value, sub, class) in cards {
        let _ = write!(
            out,
            "<div class=\"card {class}\"><div class=\"label\">{}</div><div class=\"value\">{}</div><div class=\"sub\">{}</div></div>",
            esc(&label),
            esc(&value),
            esc(&sub)
        );
    }
    out.push_str("</section>\n");
}

fn gates(out: &mut String, verdicts: &[Verdict]) {
    out.push_str(
        "<section><h2>Gates</h2><table class=\"gates\"><thead><tr><th>result</th><th>threshold</th>\
         <th>section</th><th>measured</th></tr></thead><tbody>",
    );
    for v in verdicts {
        let (class, label) = if v.passed {
            ("pass", "PASS")
        } else {
            ("fail", "FAIL")
        };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td><span class=\"pill {class}\">{label}</span></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&v.threshold.to_string()),
            esc(&v.section),
            esc(&v.detail)
        );
    }
    out.push_str("</tbody></table></section>\n");
}

/// The percentile spectrum of each non-empty histogram of each phase, all groups merged. One
/// phase's merged histograms exist at a time: only the (small) spectra are kept.
type Spectra = Vec<((Metric, Basis), Vec<(f64, f64)>)>;

fn phase_spectra(r: &Report) -> Vec<(String, Option<Spectra>)> {
    r.histograms
        .phases
        .iter()
        .map(|p| {
            let spectra = p.total().ok().map(|g: GroupSnapshot| {
                g.histograms
                    .iter()
                    .filter(|(_, h)| !h.is_empty())
                    .map(|(k, h)| (*k, spectrum(h)))
                    .collect()
            });
            (p.name.clone(), spectra)
        })
        .collect()
}

fn latency_section(out: &mut String, r: &Report) {
    out.push_str("<section><h2>Latency</h2>");
    out.push_str(
        "<p class=\"explain\">Percentile spectrum per phase: solid lines are <b>corrected</b> \
         (from the intended send time in the schedule, what gates use), dashed lines \
         <b>uncorrected</b> (from the moment the packet went out). The x axis is in nines.</p>",
    );
    let totals = phase_spectra(r);
    let mut drawn = 0;
    for metric in Metric::ALL {
        let mut lines = Vec::new();
        for (i, (name, total)) in totals.iter().enumerate() {
            let Some(g) = total else { continue };
            let color = PHASE_COLORS[i % PHASE_COLORS.len()];
            for basis in Basis::ALL {
                if let Some((_, points)) = g.iter().find(|(k, _)| *k == (metric, basis)) {
                    lines.push(Line {
                        label: format!("{name} · {}", basis.name()),
                        color,
                        dashed: basis == Basis::Uncorrected,
                        fill: false,
                        points: points.clone(),
                        gap: 1.5,
                    });
                }
            }
        }
        if lines.is_empty() {
            continue;
        }
        drawn += 1;
        let chart = Chart {
            title: format!("{} latency by percentile", metric.name()),
            x_label: "percentile".into(),
            y_label: "latency".into(),
            x_max: MAX_NINES,
            x_ticks: (0..=MAX_NINES as u32)
                .map(|k| (f64::from(k), nines_label(k)))
                .collect(),
            y_format: YFormat::Latency,
            bands: Vec::new(),
            lines,
        };
        let _ = write!(
            out,
            "<figure class=\"chart\"><figcaption>{}</figcaption>",
            esc(&chart.title)
        );
        out.push_str(&chart.svg());
        legend(out, &chart.lines);
        latency_table(out, r, metric);
        out.push_str("</figure>");
    }
    if drawn == 0 {
        out.push_str("<p class=\"empty\">No latency was recorded.</p>");
    }
    out.push_str("</section>\n");
}

fn latency_table(out: &mut String, r: &Report, metric: Metric) {
    out.push_str(
        "<table><thead><tr><th>phase</th><th>count</th><th>p50</th><th>p90</th><th>p99</th>\
         <th>p99.9</th><th>p99.99</th><th>max</th><th>p99 uncorrected</th></tr></thead><tbody>",
    );
    for p in &r.phases {
        let Some(l) = p.totals.latency.get(&metric) else {
            continue;
        };
        let s = &l.corrected;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
            esc(&p.name),
            s.count,
            latency(s.p50_us),
            latency(s.p90_us),
            latency(s.p99_us),
            latency(s.p99_9_us),
            latency(s.p99_99_us),
            latency(s.max_us),
            latency(l.uncorrected.p99_us)
        );
    }
    out.push_str("</tbody></table>");
}

fn time_series(out: &mut String, r: &Report) {
    out.push_str("<section><h2>Over time</h2>");
    if r.series.is_empty() {
        out.push_str("<p class=\"empty\">No time series was recorded.</p></section>\n");
        return;
    }
    let x_max = r
        .series
        .iter()
        .map(|p| f64::from(p.t_s))
        .fold(r.duration_s, f64::max)
        .max(1.0);
    let bands = bands_at(r);
    let x_ticks = time_ticks(x_max);
    let pts = |f: &dyn Fn(&crate::metrics::SeriesPoint) -> f64| -> Vec<(f64, f64)> {
        r.series.iter().map(|p| (f64::from(p.t_s), f(p))).collect()
    };
    let mut charts = vec![
        Chart {
            title: "Throughput".into(),
            x_label: "time since start".into(),
            y_label: "messages per second".into(),
            x_max,
            x_ticks: x_ticks.clone(),
            y_format: YFormat::Count,
            bands: bands.clone(),
            lines: vec![
                Line::new("publishes/s", "#2563eb", pts(&|p| p.publishes_per_s as f64)),
                Line::new("acks/s", "#059669", pts(&|p| p.acks_per_s as f64)),
                Line::new("receives/s", "#7c3aed", pts(&|p| p.receives_per_s as f64)),
            ],
        },
        Chart {
            title: "Connections".into(),
            x_label: "time since start".into(),
            y_label: "devices connected".into(),
            x_max,
            x_ticks: x_ticks.clone(),
            y_format: YFormat::Count,
            bands: bands.clone(),
            lines: vec![Line {
                fill: true,
                ..Line::new("connected", "#0891b2", pts(&|p| p.connected as f64))
            }],
        },
        Chart {
            title: "Errors".into(),
            x_label: "time since start".into(),
            y_label: "errors per second".into(),
            x_max,
            x_ticks,
            y_format: YFormat::Count,
            bands,
            lines: vec![Line {
                fill: true,
                ..Line::new(
                    "errors/s (connect failures, disconnects, failed publishes)",
                    "#dc2626",
                    pts(&|p| p.errors_per_s as f64),
                )
            }],
        },
    ];
    for metric in SERIES_LATENCY {
        let at = |p99: bool| -> Vec<(f64, f64)> {
            r.series
                .iter()
                .filter_map(|p| {
                    let (lo, hi) = p.latency(metric);
                    Some((f64::from(p.t_s), (if p99 { hi } else { lo })? as f64))
                })
                .collect()
        };
        let (p50, p99) = (at(false), at(true));
        if p99.is_empty() {
            continue;
        }
        charts.push(Chart {
            title: format!("{} latency over time", metric.name()),
            x_label: "time since start".into(),
            y_label: "corrected latency, per second".into(),
            x_max,
            x_ticks: time_ticks(x_max),
            y_format: YFormat::Latency,
            bands: bands_at(r),
            lines: vec![
                Line::new("p50", "#d97706", p50),
                Line::new("p99", "#dc2626", p99),
            ],
        });
    }
    out.push_str("<div class=\"charts\">");
    for chart in &charts {
        let _ = write!(
            out,
            "<figure class=\"chart\"><figcaption>{}</figcaption>",
            esc(&chart.title)
        );
        out.push_str(&chart.svg());
        legend(out, &chart.lines);
        out.push_str("</figure>");
    }
    out.push_str("</div></section>\n");
}

/// The latency metrics the time series keeps p50/p99 of, charted over time when measured.
pub const SERIES_LATENCY: [Metric; 6] = [
    Metric::E2e,
    Metric::Puback,
    Metric::Pubcomp,
    Metric::Connect,
    Metric::TlsHandshake,
    Metric::CommandRtt,
];

/// The phases as shaded spans of the time charts (seconds since the start).
fn bands_at(r: &Report) -> Vec<(f64, f64, String)> {
    r.phases
        .iter()
        .map(|p| {
            (
                p.start_us.saturating_sub(r.started_at_us) as f64 / 1e6,
                p.end_us.saturating_sub(r.started_at_us) as f64 / 1e6,
                p.name.clone(),
            )
        })
        .collect()
}

fn phases(out: &mut String, r: &Report) {
    out.push_str("<section><h2>Phases and groups</h2>");
    if r.phases.is_empty() {
        out.push_str("<p class=\"empty\">No phase ran.</p>");
    }
    let sections = r.phases.iter().chain(std::iter::once(&r.totals));
    for p in sections {
        phase_table(out, r, p);
    }
    out.push_str("</section>\n");
}

fn phase_table(out: &mut String, r: &Report, p: &PhaseReport) {
    let title = if std::ptr::eq(p, &r.totals) {
        "whole run".to_owned()
    } else {
        format!("phase {}", p.name)
    };
    let _ = write!(
        out,
        "<h3>{} <span class=\"muted\">{}</span></h3>",
        esc(&title),
        esc(&seconds(p.duration_s))
    );
    let metrics: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| p.totals.latency.contains_key(m))
        .collect();
    let observed = p.totals.deliveries.expected > 0 || p.totals.deliveries.received > 0;
    // At most five columns whatever the number of metrics: figures stack inside a cell and wrap,
    // so the table never scrolls sideways.
    out.push_str(
        "<div class=\"tablewrap\"><table class=\"groups\"><thead><tr><th>group</th>\
         <th>connects<br>ok / failed</th><th>publishes<br>rate · acked · failed · overrun</th>",
    );
    if !metrics.is_empty() {
        out.push_str("<th>latency, corrected<br>p50 / <b>p99</b> / max</th>");
    }
    if observed {
        out.push_str("<th>deliveries<br>received / expected · loss</th>");
    }
    out.push_str("</tr></thead><tbody>");
    let rows = r
        .histograms
        .group_names
        .iter()
        .filter_map(|n| Some((n.as_str(), p.groups.get(n)?, false)))
        .chain(std::iter::once(("all groups", &p.totals, true)));
    for (name, g, total) in rows {
        group_row(out, name, g, total, &metrics, observed);
    }
    out.push_str("</tbody></table></div>");
}

fn group_row(
    out: &mut String,
    name: &str,
    g: &GroupReport,
    total: bool,
    metrics: &[Metric],
    observed: bool,
) {
    let c = &g.counters;
    let bad = |n: u64| if n > 0 { " class=\"warnc\"" } else { "" };
    let _ = write!(
        out,
        "<tr{}><td>{}</td><td>{} / <span{}>{}</span></td>\
         <td>{} published<br>{} · {} acked · <span{}>{}</span> failed · <span{}>{}</span> overrun</td>",
        if total { " class=\"total\"" } else { "" },
        esc(name),
        c.get(Counter::ConnectSuccesses),
        bad(c.connect_failures()),
        c.connect_failures(),
        c.get(Counter::Published),
        rate(g.rates.published_per_s),
        c.get(Counter::Acked),
        bad(c.get(Counter::PublishFailed)),
        c.get(Counter::PublishFailed),
        bad(c.get(Counter::Overrun)),
        c.get(Counter::Overrun),
    );
    if !metrics.is_empty() {
        out.push_str("<td>");
        let mut first = true;
        for m in metrics {
            if let Some(l) = g.latency.get(m).filter(|l| l.corrected.count > 0) {
                let s = &l.corrected;
                let _ = write!(
                    out,
                    "{}<span class=\"muted\">{}</span> {} / <b>{}</b> / {}",
                    if first { "" } else { "<br>" },
                    m.name(),
                    latency(s.p50_us),
                    latency(s.p99_us),
                    latency(s.max_us)
                );
                first = false;
            }
        }
        if first {
            out.push_str("<span class=\"muted\">–</span>");
        }
        out.push_str("</td>");
    }
    if observed {
        let d = &g.deliveries;
        let _ = write!(
            out,
            "<td>{} / {} · <span{}>{:.4}%</span> lost<br>{} unobserved · {} dup · {} reord</td>",
            d.received,
            d.expected,
            bad(d.lost),
            d.loss_ratio * 100.0,
            d.unobserved,
            d.duplicates,
            d.reordered
        );
    }
    out.push_str("</tr>");
}

// ---------------------------------------------------------------------------------------------
// Charts

/// The latency at `1 - 10^-x` for x from 0 to [`MAX_NINES`] (x = 0 is the minimum).
fn spectrum(h: &LatencyHistogram) -> Vec<(f64, f64)> {
    let steps = MAX_NINES as usize * STEPS_PER_NINE;
    (0..=steps)
        .map(|i| {
            let x = i as f64 / STEPS_PER_NINE as f64;
            let q = 1.0 - 10f64.powf(-x);
            let v = if i == 0 {
                h.min()
            } else {
                h.value_at_quantile(q)
            };
            (x, v as f64)
        })
        .collect()
}

/// `0%`, `90%`, `99%`, `99.9%`, ...
fn nines_label(k: u32) -> String {
    match k {
        0 => "0%".into(),
        1 => "90%".into(),
        k => format!("99.{}%", "9".repeat(k as usize - 2)).replace("99.%", "99%"),
    }
}

/// About six ticks at a round number of seconds or minutes.
fn time_ticks(x_max: f64) -> Vec<(f64, String)> {
    let step = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ]
    .into_iter()
    .find(|s| x_max / s <= 8.0)
    .unwrap_or((x_max / 6.0).ceil());
    let mut ticks = Vec::new();
    let mut t = 0.0;
    while t <= x_max + 1e-9 {
        let label = if t >= 60.0 && t % 60.0 == 0.0 {
            format!("{}m", t / 60.0)
        } else if t >= 60.0 {
            format!("{}m{}s", (t / 60.0).floor(), t % 60.0)
        } else {
            format!("{t}s")
        };
        ticks.push((t, label));
        t += step;
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::super::html_chart::nice_axis;
    use super::*;

    #[test]
    fn nines_and_axes() {
        let labels: Vec<String> = (0..=5).map(nines_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert_eq!(nice_axis(0.0), (1.0, 1.0));
        assert_eq!(nice_axis(2000.0), (2000.0, 500.0));
        assert_eq!(nice_axis(2_480_000.0), (2_500_000.0, 500_000.0));
        assert_eq!(nice_axis(7.0), (8.0, 2.0));
        let t = time_ticks(70.0);
        assert_eq!(t.first().unwrap().1, "0s");
        assert!(t.len() <= 9, "{t:?}");
        assert_eq!(time_ticks(3600.0).last().unwrap().1, "60m");
    }

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
