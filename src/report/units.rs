//! Human-readable numbers shared by the text writers (console and Markdown).

/// A latency in µs with about three significant figures: `812µs`, `3.41ms`, `12.3ms`, `1.20s`.
/// The one formatter of latencies for people: tables, gate lines and comparisons all use it, so a
/// value reads the same everywhere. Rounds half up in integers (no binary-fraction surprises:
/// 1755 µs is `1.76ms`, never `1.75ms` in one place and `1.76ms` in another).
pub(crate) fn latency(us: u64) -> String {
    /// `us` in units of `unit` µs, rounded half up, with `decimals` decimals.
    fn fixed(us: u64, unit: u64, decimals: u32) -> String {
        let scale = 10u64.pow(decimals);
        let step = unit / scale;
        let n = us.saturating_add(step / 2) / step;
        if decimals == 0 {
            n.to_string()
        } else {
            format!(
                "{}.{:0width$}",
                n / scale,
                n % scale,
                width = decimals as usize
            )
        }
    }
    match us {
        0..=999 => format!("{us}µs"),
        1_000..=9_994 => format!("{}ms", fixed(us, 1_000, 2)),
        9_995..=99_949 => format!("{}ms", fixed(us, 1_000, 1)),
        99_950..=999_499 => format!("{}ms", fixed(us, 1_000, 0)),
        999_500..=9_994_999 => format!("{}s", fixed(us, 1_000_000, 2)),
        9_995_000..=99_949_999 => format!("{}s", fixed(us, 1_000_000, 1)),
        _ => format!("{}s", fixed(us, 1_000_000, 0)),
    }
}

/// A duration in seconds: `65.0 s`.
pub(crate) fn seconds(s: f64) -> String {
    format!("{s:.1} s")
}

/// A rate: `10000.0/s`.
pub(crate) fn rate(per_s: f64) -> String {
    format!("{per_s:.1}/s")
}

/// `s` followed by spaces up to `width` characters. Use this (not `{:<width$}`) whenever the width comes
/// from user data: `format!` panics on widths over 65,535, and names can be that long.
pub(crate) fn pad_right(s: &str, width: usize) -> String {
    let pad = width.saturating_sub(s.chars().count());
    let mut out = String::with_capacity(s.len() + pad);
    out.push_str(s);
    out.extend(std::iter::repeat_n(' ', pad));
    out
}

/// Spaces up to `width` characters, then `s` (see [`pad_right`]).
pub(crate) fn pad_left(s: &str, width: usize) -> String {
    let pad = width.saturating_sub(s.chars().count());
    let mut out = String::with_capacity(s.len() + pad);
    out.extend(std::iter::repeat_n(' ', pad));
    out.push_str(s);
    out
}

/// What a phase asked for and what it achieved, per second of the phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Achieved {
    /// Slots the schedule asked for: sent or skipped (`published + skipped`).
    pub intended_per_s: f64,
    /// Publishes that left this host during the phase (`published - unsent_at_end`).
    pub sent_per_s: f64,
    /// Deliveries observers received (0 without observers): what the broker really passed on.
    pub received_per_s: f64,
}

impl Achieved {
    pub(crate) fn of(c: &crate::metrics::Counters, duration_s: f64) -> Achieved {
        use crate::metrics::Counter;
        let per_s = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let published = c.get(Counter::Published);
        Achieved {
            intended_per_s: per_s(published.saturating_add(c.get(Counter::Skipped))),
            sent_per_s: per_s(published.saturating_sub(c.get(Counter::UnsentAtEnd))),
            received_per_s: per_s(c.get(Counter::Received)),
        }
    }
}

/// Right-align `rows` into columns (the first column left-aligned), two spaces apart, no trailing
/// spaces. Widths count characters, so `µ` takes one column.
pub(crate) fn columns(rows: &[Vec<String>], indent: &str) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(indent);
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            if i == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_well() {
        let cases = [
            (0, "0µs"),
            (812, "812µs"),
            (999, "999µs"),
            (1_000, "1.00ms"),
            (3_412, "3.41ms"),
            (9_994, "9.99ms"),
            (9_995, "10.0ms"),
            (12_345, "12.3ms"),
            (99_950, "100ms"),
            (999_499, "999ms"),
            (999_500, "1.00s"),
            (1_204_000, "1.20s"),
            (12_345_678, "12.3s"),
            (3_600_000_000, "3600s"),
            // Half up, exactly: the f64 1.755 is 1.75499..., which `{:.2}` would print as 1.75.
            (1_755, "1.76ms"),
            (1_754, "1.75ms"),
            (12_350, "12.4ms"),
            (2_505_000, "2.51s"),
        ];
        for (us, want) in cases {
            assert_eq!(latency(us), want, "{us} µs");
        }
        // The largest value formats without overflow.
        assert!(latency(u64::MAX).ends_with('s'));
    }

    #[test]
    fn columns_align_by_characters() {
        let rows = vec![
            vec!["a".to_owned(), "812µs".to_owned()],
            vec!["long".to_owned(), "3.41ms".to_owned()],
        ];
        assert_eq!(columns(&rows, " "), " a      812µs\n long  3.41ms\n");
    }

    #[test]
    fn padding_counts_characters_and_takes_any_width() {
        assert_eq!(pad_right("µs", 4), "µs  ");
        assert_eq!(pad_left("µs", 4), "  µs");
        assert_eq!(pad_right("long", 2), "long");
        // `format!("{:<w$}")` panics above u16::MAX; these must not.
        let huge = "g".repeat(70_000);
        assert_eq!(pad_right(&huge, 70_001).len(), 70_001);
        assert_eq!(pad_left("x", 70_000).len(), 70_000);
    }
}
