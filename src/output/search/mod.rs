//! The files of a capacity search's folder, beside `search.json`: `report.html` (the statement, the
//! capacity curve and the step table), `summary.md` (the same for a CI job summary) and `junit.xml`
//! (one test case per SLO at the knee, plus `--require` and the baseline).

pub mod html;
pub mod junit;
pub mod markdown;
mod parts;

use std::path::{Path, PathBuf};

use crate::report::{create_dir, ReportError};
use crate::search::SearchResult;

/// Write `report.html`, `summary.md` and `junit.xml` into `dir`; returns their paths.
pub fn write_all(r: &SearchResult, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    create_dir(dir)?;
    Ok(vec![
        html::write(r, dir)?,
        markdown::write(r, dir)?,
        junit::write(r, dir)?,
    ])
}
