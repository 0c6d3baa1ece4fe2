//! `fleetstorm report compare BASE CURRENT`: a [`Comparison`] as a text table.

use std::fmt::Write as _;

use crate::gate::{Change, Comparison, Quantity};
use crate::report::units::{columns, latency, rate};
use crate::report::Report;

/// Render the comparison of `current` against `base` (ends with a newline).
pub fn render(base: &Report, current: &Report, comparison: &Comparison) -> String {
    let mut out = String::new();
    let phase = |p: &Option<String>| p.clone().unwrap_or_else(|| "(none)".to_owned());
    let _ = writeln!(out, "fleetstorm report compare");
    let ident = [
        vec![
            "base".to_owned(),
            base.scenario_name.clone(),
            base.started_at.clone(),
            format!("phase {}", phase(&comparison.base_phase)),
        ],
        vec![
            "current".to_owned(),
            current.scenario_name.clone(),
            current.started_at.clone(),
            format!("phase {}", phase(&comparison.current_phase)),
        ],
    ];
    out.push_str(&columns(&ident, "  "));
    let _ = writeln!(
        out,
        "  tolerance {} (latency and loss up, rate down)\n",
        percent(comparison.max_regression)
    );
    if comparison.base_phase != comparison.current_phase {
        let _ = writeln!(
            out,
            "  note: the runs' summary phases have different names\n"
        );
    }
    let mut rows = vec![vec![
        "quantity".to_owned(),
        "base".to_owned(),
        "current".to_owned(),
        "change".to_owned(),
        "flag".to_owned(),
    ]];
    for c in &comparison.changes {
        rows.push(vec![
            c.quantity.name(),
            value(&c.quantity, c.base),
            value(&c.quantity, c.current),
            change(c),
            flag(c).to_owned(),
        ]);
    }
    out.push_str(&columns(&rows, "  "));
    for (metrics, which) in [
        (&comparison.only_in_base, "base"),
        (&comparison.only_in_current, "current"),
    ] {
        if !metrics.is_empty() {
            let names: Vec<&str> = metrics.iter().map(|m| m.name()).collect();
            let _ = writeln!(
                out,
                "\n  not compared (measured only in the {which} run): {}",
                names.join(", ")
            );
        }
    }
    let n = comparison.regressions().count();
    let _ = writeln!(
        out,
        "\n  {}",
        if n == 0 {
            format!(
                "no regression beyond {}",
                percent(comparison.max_regression)
            )
        } else {
            format!(
                "{n} regression{} beyond {}",
                if n == 1 { "" } else { "s" },
                percent(comparison.max_regression)
            )
        }
    );
    out
}

/// `REGRESSED`, `improved` or empty.
pub fn flag(c: &Change) -> &'static str {
    if c.regressed {
        "REGRESSED"
    } else if c.improved {
        "improved"
    } else {
        ""
    }
}

/// A compared value in its unit: `1.98ms`, `2200.0/s`, `0.001000`.
pub fn value(q: &Quantity, v: f64) -> String {
    match q {
        Quantity::Latency { .. } => latency(v.round().max(0.0) as u64),
        Quantity::PublishRate | Quantity::AckRate => rate(v),
        Quantity::LossRatio => format!("{v:.6}"),
        _ => format!("{v}"),
    }
}

/// `+12.3%`, or `+0.001000 (abs)` when the base was zero.
pub fn change(c: &Change) -> String {
    if c.relative {
        format!("{:+.1}%", c.change * 100.0)
    } else {
        format!("{:+.6} (abs)", c.change)
    }
}

fn percent(fraction: f64) -> String {
    format!("{}%", (fraction * 1000.0).round() / 10.0)
}
