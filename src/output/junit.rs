//! `junit.xml`: one test suite per run, one test case per threshold and per compared quantity, so
//! CI systems show gate results next to unit tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::compare;
use crate::gate::{Comparison, Verdict};
use crate::report::{write_file, Report, ReportError};

/// File name of the JUnit report inside a report directory.
pub const JUNIT_XML: &str = "junit.xml";

/// Render the JUnit XML (ends with a newline).
pub fn render(report: &Report, verdicts: &[Verdict], comparison: Option<&Comparison>) -> String {
    let suite = format!("fleetstorm.{}", report.scenario_name);
    let mut cases = String::new();
    let mut tests = 0usize;
    let mut failures = 0usize;
    for v in verdicts {
        tests += 1;
        let name = v.threshold.to_string();
        let _ = writeln!(
            cases,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"0\">",
            esc(&name),
            esc(&format!("{suite}.thresholds"))
        );
        if v.passed {
            let _ = writeln!(cases, "      <system-out>{}</system-out>", esc(&v.detail));
        } else {
            failures += 1;
            let _ = writeln!(
                cases,
                "      <failure message=\"{}\" type=\"threshold\">{}</failure>",
                esc(&format!("{name}: {}", v.detail)),
                esc(&v.detail)
            );
        }
        cases.push_str("    </testcase>\n");
    }
    if let Some(c) = comparison {
        for ch in &c.changes {
            tests += 1;
            let name = format!("baseline {}", ch.quantity.name());
            let text = format!(
                "base {}, current {}, change {} (tolerance {}%)",
                compare::value(&ch.quantity, ch.base),
                compare::value(&ch.quantity, ch.current),
                compare::change(ch),
                (c.max_regression * 1000.0).round() / 10.0
            );
            let _ = writeln!(
                cases,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"0\">",
                esc(&name),
                esc(&format!("{suite}.baseline"))
            );
            if ch.regressed {
                failures += 1;
                let _ = writeln!(
                    cases,
                    "      <failure message=\"{}\" type=\"regression\">{}</failure>",
                    esc(&format!("{name} regressed: {text}")),
                    esc(&text)
                );
            } else {
                let _ = writeln!(cases, "      <system-out>{}</system-out>", esc(&text));
            }
            cases.push_str("    </testcase>\n");
        }
    }
    let time = format!("{:.3}", report.duration_s);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"fleetstorm\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{time}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{time}\" timestamp=\"{}\" hostname=\"{}\">",
        esc(&suite),
        esc(report.started_at.trim_end_matches('Z')),
        esc(&report.environment.host)
    );
    out.push_str("    <properties>\n");
    let props = [
        ("broker", report.broker.clone()),
        ("outcome", report.outcome.describe()),
        (
            "summary_phase",
            report.summary.phase.clone().unwrap_or_default(),
        ),
        ("fleetstorm_version", report.fleetstorm_version.clone()),
    ];
    properties(&mut out, &props);
    out.push_str(&cases);
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Write `dir/junit.xml` (creating `dir` if needed); returns its path.
pub fn write(
    report: &Report,
    verdicts: &[Verdict],
    comparison: Option<&Comparison>,
    dir: &Path,
) -> Result<PathBuf, ReportError> {
    write_file(
        dir,
        JUNIT_XML,
        render(report, verdicts, comparison).as_bytes(),
    )
}

/// The `<property>` lines of a test suite and the end of its `<properties>`.
pub(super) fn properties(out: &mut String, props: &[(&str, String)]) {
    for (k, v) in props {
        let _ = writeln!(
            out,
            "      <property name=\"{}\" value=\"{}\"/>",
            esc(k),
            esc(v)
        );
    }
    out.push_str("    </properties>\n");
}

/// Text safe in XML 1.0 content and attribute values; characters XML cannot carry become `?`.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            esc("a<b & \"c\" 'd'>\u{1}\n"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;?&#10;"
        );
    }
}
