//! `junit.xml` of a capacity search: one test case per SLO at the knee (the knee step's measured
//! value against the limit; the first failing load's is added as information), one for the search
//! itself (an error when it established no capacity), one for `--require` and one for the baseline
//! when given. A search that exits 0 has no failure and no error here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::super::junit::{esc, properties, JUNIT_XML};
use super::parts::slo_at;
use crate::report::{write_file, ReportError};
use crate::search::{thousands, Conclusion, SearchResult, Step};

/// What a test case says.
enum Outcome {
    Pass(String),
    Failure { kind: &'static str, text: String },
    Error(String),
    Skipped(String),
}

fn at(r: &SearchResult, s: &Step) -> String {
    format!("{} {} (step {})", thousands(s.load), r.unit, s.index)
}

/// The case of one SLO at the knee.
fn slo_case(r: &SearchResult, slo: &str) -> Outcome {
    let knee = r.knee();
    let fail = r.first_failure();
    let informative = slo_at(fail, slo)
        .filter(|c| !c.passed)
        .zip(fail)
        .map_or_else(String::new, |(c, s)| {
            format!(
                "; at the first failing load, {}: {} (information)",
                at(r, s),
                c.detail
            )
        });
    match (knee, slo_at(knee, slo)) {
        (Some(k), Some(c)) if c.passed => Outcome::Pass(format!(
            "at the knee, {}: {}{informative}",
            at(r, k),
            c.detail
        )),
        (Some(k), Some(c)) => Outcome::Failure {
            kind: "slo",
            text: format!("at the knee, {}: {}{informative}", at(r, k), c.detail),
        },
        (Some(k), None) => {
            Outcome::Skipped(format!("the knee, {}, has no value of this SLO", at(r, k)))
        }
        (None, _) => Outcome::Skipped(format!("no load passed, so there is no knee{informative}")),
    }
}

/// Render the JUnit XML (ends with a newline).
pub fn render(r: &SearchResult) -> String {
    let suite = format!("fleetstorm.search.{}", r.scenario);
    let mut cases: Vec<(String, &str, Outcome)> = r
        .slos
        .iter()
        .map(|slo| (slo.clone(), "knee", slo_case(r, slo)))
        .collect();
    cases.push((
        "capacity search".into(),
        "search",
        if r.conclusion == Conclusion::Unfinished {
            Outcome::Error(r.statement.clone())
        } else {
            Outcome::Pass(r.statement.clone())
        },
    ));
    if let Some(q) = &r.require {
        cases.push((
            format!("capacity >= {} {} (--require)", thousands(q.min), r.unit),
            "require",
            if q.passed {
                Outcome::Pass(q.detail.clone())
            } else {
                Outcome::Failure {
                    kind: "require",
                    text: q.detail.clone(),
                }
            },
        ));
    }
    if let Some(b) = &r.baseline {
        cases.push((
            "capacity against the baseline".into(),
            "baseline",
            if b.regressed {
                Outcome::Failure {
                    kind: "regression",
                    text: b.detail.clone(),
                }
            } else {
                Outcome::Pass(b.detail.clone())
            },
        ));
    }
    let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.2)).count();
    let failures = count(|o| matches!(o, Outcome::Failure { .. }));
    let errors = count(|o| matches!(o, Outcome::Error(_)));
    let skipped = count(|o| matches!(o, Outcome::Skipped(_)));
    let tests = cases.len();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"fleetstorm\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">",
        esc(&suite)
    );
    out.push_str("    <properties>\n");
    let props = [
        ("broker", r.broker.clone()),
        ("vary", r.vary.name().to_owned()),
        (
            "capacity",
            r.capacity
                .map_or_else(|| "none".to_owned(), |c| c.to_string()),
        ),
        ("answer", format!("{:?}", r.answer)),
    ];
    properties(&mut out, &props);
    for (name, class, outcome) in &cases {
        let _ = writeln!(
            out,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"0\">",
            esc(name),
            esc(&format!("{suite}.{class}"))
        );
        let _ = match outcome {
            Outcome::Pass(text) => writeln!(out, "      <system-out>{}</system-out>", esc(text)),
            Outcome::Failure { kind, text } => writeln!(
                out,
                "      <failure message=\"{}\" type=\"{kind}\">{}</failure>",
                esc(&format!("{name}: {text}")),
                esc(text)
            ),
            Outcome::Error(text) => writeln!(
                out,
                "      <error message=\"{}\" type=\"unfinished\">{}</error>",
                esc(text),
                esc(text)
            ),
            Outcome::Skipped(text) => writeln!(out, "      <skipped message=\"{}\"/>", esc(text)),
        };
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Write `dir/junit.xml`; returns its path.
pub fn write(r: &SearchResult, dir: &Path) -> Result<PathBuf, ReportError> {
    write_file(dir, JUNIT_XML, render(r).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::fixture::found;

    #[test]
    fn one_passing_case_per_slo_at_the_knee_and_the_first_failure_as_information() {
        let x = render(&found(Some(30_000), None));
        assert!(x.contains("tests=\"4\" failures=\"0\" errors=\"0\""), "{x}");
        assert!(x.contains("<testcase name=\"e2e.p99 &lt; 50ms\""), "{x}");
        assert!(
            x.contains("at the knee, 38,500 devices (step 6): measured 40ms, limit 50ms; at the first failing load, 40,000 devices (step 2): measured 60ms, limit 50ms (information)"),
            "{x}"
        );
        // loss held at the first failure too: nothing to add.
        assert!(x.contains("(step 6): measured 0</system-out>"), "{x}");
        assert!(
            x.contains("capacity &gt;= 30,000 devices (--require)"),
            "{x}"
        );
        assert!(roxmltree::Document::parse(&x).is_ok());
    }

    #[test]
    fn require_and_baseline_fail_as_their_own_cases() {
        let x = render(&found(Some(40_000), Some(("old/search.json", 50_000, 0.1))));
        assert!(x.contains("tests=\"5\" failures=\"2\" errors=\"0\""), "{x}");
        assert!(x.contains("type=\"require\""), "{x}");
        assert!(x.contains("type=\"regression\""), "{x}");
        assert!(x.contains("capacity regression: 38,500 devices is below the baseline&apos;s 50,000 devices x (1 - 10%) = 45000 (old/search.json)"), "{x}");
    }
}
