//! The pieces every self-contained page shares (`report.html` of a run, `report.html` of a capacity
//! search): the stylesheet, HTML escaping, and line charts drawn as inline SVG (no scripts, no
//! external references).

use std::fmt::Write as _;

use crate::report::units::latency;

#[derive(Clone, Copy)]
pub(super) enum YFormat {
    Latency,
    Count,
}

impl YFormat {
    pub(super) fn label(self, v: f64) -> String {
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

pub(super) struct Line {
    pub(super) label: String,
    pub(super) color: &'static str,
    pub(super) dashed: bool,
    pub(super) fill: bool,
    pub(super) points: Vec<(f64, f64)>,
    /// Points further apart on x than this start a new polyline (a gap in a time chart).
    pub(super) gap: f64,
}

impl Line {
    pub(super) fn new(label: &str, color: &'static str, points: Vec<(f64, f64)>) -> Line {
        Line {
            label: label.to_owned(),
            color,
            dashed: false,
            fill: false,
            points,
            gap: 1.5,
        }
    }
}

pub(super) struct Chart {
    pub(super) title: String,
    pub(super) x_label: String,
    pub(super) y_label: String,
    pub(super) x_max: f64,
    pub(super) x_ticks: Vec<(f64, String)>,
    pub(super) y_format: YFormat,
    /// Shaded spans with a label (phases), in x units.
    pub(super) bands: Vec<(f64, f64, String)>,
    pub(super) lines: Vec<Line>,
}

const W: f64 = 960.0;
const H: f64 = 300.0;
const LEFT: f64 = 76.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 48.0;

impl Chart {
    pub(super) fn svg(&self) -> String {
        self.svg_with(&[])
    }

    /// The chart with marks drawn over it. A level far above the data (more than 4 times its
    /// highest point) does not stretch the axis: it is named at the top edge instead.
    pub(super) fn svg_with(&self, marks: &[Mark]) -> String {
        let y_data_max = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .chain(marks.iter().filter_map(|m| match m {
                Mark::Dot { y, .. } => Some(*y),
                _ => None,
            }))
            .fold(0.0, f64::max);
        let y_data_max = marks
            .iter()
            .filter_map(|m| match m {
                Mark::Level { y, .. } if y_data_max <= 0.0 || *y <= 4.0 * y_data_max => Some(*y),
                _ => None,
            })
            .fold(y_data_max, f64::max);
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
            for run in l.points.chunk_by(|a, b| b.0 - a.0 <= l.gap) {
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
        for m in marks {
            m.draw(&mut s, &sx, &sy, y_max);
        }
        s.push_str("</svg>");
        s
    }
}

/// What is drawn over a chart's lines.
pub(super) enum Mark {
    /// A horizontal line at `y` (a limit), labelled.
    Level {
        y: f64,
        label: String,
        color: &'static str,
    },
    /// A vertical line at `x`, labelled at its top; dashed when `dashed`.
    At {
        x: f64,
        label: String,
        color: &'static str,
        dashed: bool,
    },
    /// A point of class `class` (styled by the stylesheet: `dot pass`, `dot fail`, ...), with a
    /// tooltip.
    Dot {
        x: f64,
        y: f64,
        class: &'static str,
        title: String,
    },
}

impl Mark {
    fn draw(&self, s: &mut String, sx: &dyn Fn(f64) -> f64, sy: &dyn Fn(f64) -> f64, y_max: f64) {
        let (left, right) = (LEFT, W - RIGHT);
        match self {
            Mark::Level { y, label, color } if *y > y_max => {
                let _ = write!(
                    s,
                    "<text class=\"marklabel\" x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\">{} (above the chart)</text>",
                    left + 6.0,
                    TOP + 12.0,
                    esc(label)
                );
            }
            Mark::Level { y, label, color } => {
                let py = sy(*y);
                let _ = write!(
                    s,
                    "<line class=\"level\" x1=\"{left}\" x2=\"{right:.1}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"{color}\"><title>{label}</title></line>\
                     <text class=\"marklabel\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{color}\">{label}</text>",
                    right - 4.0,
                    py - 5.0,
                    label = esc(label)
                );
            }
            Mark::At {
                x,
                label,
                color,
                dashed,
            } => {
                let px = sx(*x);
                let _ = write!(
                    s,
                    "<line class=\"at\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"{color}\"{}><title>{label}</title></line>\
                     <text class=\"marklabel\" x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\">{label}</text>",
                    H - BOTTOM,
                    if *dashed {
                        " stroke-dasharray=\"5 4\""
                    } else {
                        ""
                    },
                    px + 5.0,
                    TOP + 26.0,
                    label = esc(label)
                );
            }
            Mark::Dot { x, y, class, title } => {
                let _ = write!(
                    s,
                    "<circle class=\"dot {class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"6\"><title>{}</title></circle>",
                    sx(*x),
                    sy(*y),
                    esc(title)
                );
            }
        }
    }
}

/// The axis top and the tick step: a round step (1, 2 or 5 × 10^k) giving at most 5 intervals.
pub(super) fn nice_axis(max: f64) -> (f64, f64) {
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

pub(super) fn legend(out: &mut String, lines: &[Line]) {
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
pub(super) fn esc(s: &str) -> String {
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

pub(super) const CSS: &str = r#"
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
.note{padding:8px 12px;border-radius:8px}.note.ok{background:var(--okbg);color:var(--ok)}.note.bad{background:var(--badbg);color:var(--bad)}.note.warn{background:var(--warnbg);color:var(--warn)}
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
svg .level{stroke-width:1.5;stroke-dasharray:8 4}
svg .at{stroke-width:1.5}
svg .marklabel{font-size:11.5px;font-weight:600}
tr.why td{text-align:left;white-space:normal}
svg .dot{stroke:#fff;stroke-width:2}
svg .dot.pass{fill:var(--ok)}svg .dot.fail{fill:var(--bad)}svg .dot.cannot{fill:#94a3b8}svg .dot.aborted{fill:var(--warn)}
.pill.cannot{background:#e2e8f0;color:#334155}.pill.aborted{background:var(--warnbg);color:var(--warn)}
.statement{font-size:20px;font-weight:600;letter-spacing:-.01em;margin:8px 0 4px}
footer{margin-top:40px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:12px}
"#;
