//! The writers: a [`Report`] (and the gates' verdicts, when there are some) printed for people and
//! tools: [`console`], [`markdown`] (`summary.md`), [`html`] (`report.html`), [`hlog`]
//! (`<metric>.hlog`), [`junit`] (`junit.xml`, gate results), [`openmetrics`] (the `--prometheus`
//! exposition) and [`compare`] (the text of `report compare`). Above `gate`, whose verdicts they
//! print; the report model and `report.json` are in [`crate::report`], below it.

pub mod compare;
pub mod console;
pub mod hlog;
pub mod html;
mod html_chart;
pub mod junit;
pub mod markdown;
pub mod openmetrics;
pub mod search;

use std::path::{Path, PathBuf};

use crate::gate::{Comparison, Verdict};
use crate::report::{create_dir, json, Report, ReportError};

/// Create `dir` and write `report.json`, `summary.md`, `report.html` and one `<metric>.hlog` per
/// measured metric into it; returns the paths written.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    write_with_gates(report, &[], None, dir)
}

/// Like [`write_all`], with the gate results: the HTML shows the verdicts, and `junit.xml` is
/// written when there are verdicts or a comparison.
pub fn write_with_gates(
    report: &Report,
    verdicts: &[Verdict],
    comparison: Option<&Comparison>,
    dir: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    create_dir(dir)?;
    let mut paths = vec![
        json::write(report, dir)?,
        markdown::write(report, verdicts, comparison, dir)?,
        html::write(report, verdicts, dir)?,
    ];
    paths.extend(hlog::write(report, dir)?);
    if !verdicts.is_empty() || comparison.is_some() {
        paths.push(junit::write(report, verdicts, comparison, dir)?);
    }
    Ok(paths)
}
