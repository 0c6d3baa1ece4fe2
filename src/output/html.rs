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

#[derive(Clone, Copy)]
enum YFormat {
    Latency,
    Count,
}

impl YFormat {
    fn label(self, v: f64) -> String {
        match self {
            YFormat::Latency => latency(v.round().max(0.0) as u64),
            YFormat::Count => {
                if v >= 1e6 {
                    format!("{}M", v / 1e6)
                } else if v >= 1e4 {
                    format!("{}k", v / 1e3)
                } else {
                    format!("{v}")
                }
            }
        }
    }
}

struct Line {
    label: String,
    color: &'static str,
    dashed: bool,
    fill: bool,
    points: Vec<(f64, f64)>,
}

impl Line {
    fn new(label: &str, color: &'static str, points: Vec<(f64, f64)>) -> Line {
        Line {
            label: label.to_owned(),
            color,
            dashed: false,
            fill: false,
            points,
        }
    }
}

struct Chart {
    title: String,
    x_label: String,
    y_label: String,
    x_max: f64,
    x_ticks: Vec<(f64, String)>,
    y_format: YFormat,
    /// Shaded spans with a label (phases), in x units.
    bands: Vec<(f64, f64, String)>,
    lines: Vec<Line>,
}

const W: f64 = 960.0;
const H: f64 = 300.0;
const LEFT: f64 = 76.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 48.0;

impl Chart {
    fn svg(&self) -> String {
        let y_data_max = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        let (y_max, y_step) = nice_axis(y_data_max);
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let x_max = if self.x_max > 0.0 { self.x_max } else { 1.0 };
        let sx = |x: f64| LEFT + (x / x_max).clamp(0.0, 1.0) * pw;
        let sy = |y: f64| TOP + ph - (y / y_max).clamp(0.0, 1.0) * ph;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
            esc(&self.title)
        );
        let _ = write!(s, "<title>{}</title>", esc(&self.title));
        // Phase bands.
        for (i, (a, b, name)) in self.bands.iter().enumerate() {
            let (xa, xb) = (sx(*a), sx(*b));
            if xb - xa < 0.5 {
                continue;
            }
            let _ = write!(
                s,
                "<rect class=\"band{}\" x=\"{xa:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{ph}\"/>",
                i % 2,
                xb - xa
            );
            if xb - xa > 40.0 {
                let _ = write!(
                    s,
                    "<text class=\"bandlabel\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    xa + 6.0,
                    TOP + 14.0,
                    esc(name)
                );
            }
        }
        // Grid and y ticks.
        let mut y = 0.0;
        while y <= y_max + y_step * 1e-6 {
            let py = sy(y);
            let _ = write!(
                s,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/>\
                 <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                W - RIGHT,
                LEFT - 8.0,
                py + 4.0,
                esc(&self.y_format.label(y))
            );
            y += y_step;
        }
        // X ticks.
        for (x, label) in &self.x_ticks {
            let px = sx(*x);
            let _ = write!(
                s,
                "<line class=\"grid\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{:.1}\"/>\
                 <text class=\"tick\" x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                TOP + ph,
                TOP + ph + 18.0,
                esc(label)
            );
        }
        // Axes and labels.
        let _ = write!(
            s,
            "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\"/>\
             <line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
             <text class=\"axislabel\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text class=\"axislabel\" transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            TOP + ph,
            W - RIGHT,
            TOP + ph,
            TOP + ph,
            LEFT + pw / 2.0,
            H - 8.0,
            esc(&self.x_label),
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        // Lines.
        for l in &self.lines {
            if l.points.is_empty() {
                continue;
            }
            let path: Vec<String> = l
                .points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            let path = path.join(" ");
            if l.fill {
                let first = l.points.first().map_or(0.0, |p| p.0);
                let last = l.points.last().map_or(0.0, |p| p.0);
                let _ = write!(
                    s,
                    "<polygon points=\"{:.1},{:.1} {path} {:.1},{:.1}\" fill=\"{}\" fill-opacity=\"0.12\" stroke=\"none\"/>",
                    sx(first),
                    sy(0.0),
                    sx(last),
                    sy(0.0),
                    l.color
                );
            }
            // Each run of points without a gap (x more than 1.5 apart: a second with nothing
            // measured in a time chart) is its own polyline; a lone value shows as a dot.
            for run in l.points.chunk_by(|a, b| b.0 - a.0 <= 1.5) {
                if let [(x, y)] = run {
                    let _ = write!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{}\"><title>{}</title></circle>",
                        sx(*x),
                        sy(*y),
                        l.color,
                        esc(&l.label)
                    );
                    continue;
                }
                let path: Vec<String> = run
                    .iter()
                    .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                    .collect();
                let _ = write!(
                    s,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-linejoin=\"round\"{}><title>{}</title></polyline>",
                    path.join(" "),
                    l.color,
                    if l.dashed {
                        " stroke-dasharray=\"6 4\" stroke-opacity=\"0.75\""
                    } else {
                        ""
                    },
                    esc(&l.label)
                );
            }
        }
        s.push_str("</svg>");
        s
    }
}

/// The axis top and the tick step: a round step (1, 2 or 5 × 10^k) giving at most 5 intervals.
fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 1.0);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let step = if step < 1.0 { 1.0 } else { step };
    ((max / step).ceil() * step, step)
}

fn legend(out: &mut String, lines: &[Line]) {
    out.push_str("<div class=\"legend\">");
    for l in lines {
        let _ = write!(
            out,
            "<span class=\"key\"><span class=\"swatch{}\" style=\"border-color:{}\"></span>{}</span>",
            if l.dashed { " dashed" } else { "" },
            l.color,
            esc(&l.label)
        );
    }
    out.push_str("</div>");
}

/// Text safe in HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root{--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--card:#fff;--ok:#15803d;--okbg:#dcfce7;--bad:#b91c1c;--badbg:#fee2e2;--warn:#b45309;--warnbg:#fef3c7}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;font-variant-numeric:tabular-nums}
main{max-width:1240px;margin:0 auto;padding:32px 28px 48px}
header{margin-bottom:24px}
.brand{font-size:12px;font-weight:600;letter-spacing:.12em;text-transform:uppercase;color:var(--muted)}
h1{font-size:32px;margin:4px 0 6px;letter-spacing:-.02em;display:flex;align-items:center;gap:12px}
h2{font-size:20px;margin:36px 0 12px;letter-spacing:-.01em}
h3{font-size:15px;margin:22px 0 8px}
.meta{color:var(--muted);margin:0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em;background:#eef2f7;padding:1px 5px;border-radius:4px}
.badge{font-size:13px;font-weight:600;padding:3px 10px;border-radius:999px;letter-spacing:.02em}
.badge.ok{background:var(--okbg);color:var(--ok)}.badge.bad{background:var(--badbg);color:var(--bad)}.badge.warn{background:var(--warnbg);color:var(--warn)}
.note{padding:8px 12px;border-radius:8px}.note.bad{background:var(--badbg);color:var(--bad)}.note.warn{background:var(--warnbg);color:var(--warn)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px;box-shadow:0 1px 2px rgba(15,23,42,.04)}
.card .label{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.06em}
.card .value{font-size:26px;font-weight:650;letter-spacing:-.02em;margin:2px 0}
.card .sub{font-size:12.5px;color:var(--muted)}
.card.ok{border-color:#86efac;background:#f0fdf4}.card.ok .value{color:var(--ok)}
.card.bad{border-color:#fca5a5;background:#fef2f2}.card.bad .value{color:var(--bad)}
.card.warn .value{color:var(--warn)}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden;font-size:13.5px;margin:8px 0}
th,td{padding:7px 12px;text-align:right;border-bottom:1px solid var(--line);white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{background:#f1f5f9;font-weight:600;color:#334155;font-size:12.5px}
tbody tr:last-child td{border-bottom:none}
tr.total td{font-weight:600;background:#f8fafc}
table.gates td,table.gates th{text-align:left;white-space:normal}
table.groups{table-layout:fixed}
table.groups td,table.groups th{white-space:normal;overflow-wrap:anywhere;vertical-align:top;line-height:1.5}
.tablewrap{overflow-x:auto}
tr.fail td{background:#fff7f7}
.pill{display:inline-block;min-width:48px;text-align:center;font-weight:700;font-size:12px;padding:2px 8px;border-radius:6px}
.pill.pass{background:var(--okbg);color:var(--ok)}.pill.fail{background:var(--bad);color:#fff}
.muted{color:var(--muted)}.warnc{color:var(--warn);font-weight:600}
.explain{color:var(--muted);max-width:860px}
.empty{color:var(--muted);font-style:italic}
figure.chart{margin:0 0 20px;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px 10px}
figcaption{font-weight:600;margin-bottom:4px}
svg{display:block;width:100%;height:auto}
svg .grid{stroke:#e2e8f0;stroke-width:1}
svg .axis{stroke:#94a3b8;stroke-width:1}
svg .tick{fill:#64748b;font-size:11px}
svg .axislabel{fill:#475569;font-size:12px;font-weight:600}
svg .band0{fill:#f1f5f9}svg .band1{fill:#ffffff}
svg .bandlabel{fill:#94a3b8;font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.06em}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;font-size:12.5px;color:#334155;margin:4px 0 8px}
.key{display:inline-flex;align-items:center;gap:6px}
.swatch{display:inline-block;width:22px;border-top:3px solid}
.swatch.dashed{border-top-style:dashed}
footer{margin-top:40px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:12px}
"#;

#[cfg(test)]
mod tests {
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
