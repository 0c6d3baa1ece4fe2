//! `report.json`: the [`Report`] as pretty JSON (layout in `reports/schema.json`).

use std::path::{Path, PathBuf};

use super::error::ReportError;
use super::files::write_file;
use super::model::{Report, SCHEMA_VERSION};

/// File name of the JSON report inside a report directory.
pub const REPORT_JSON: &str = "report.json";

/// The report as pretty-printed JSON text (with a final newline).
pub fn render(report: &Report) -> Result<String, ReportError> {
    let mut text = serde_json::to_string_pretty(report).map_err(ReportError::Encode)?;
    text.push('\n');
    Ok(text)
}

/// Write `dir/report.json` (creating `dir` if needed); returns its path.
pub fn write(report: &Report, dir: &Path) -> Result<PathBuf, ReportError> {
    write_file(dir, REPORT_JSON, render(report)?.as_bytes())
}

/// Parse report.json text. Refuses reports written with a newer schema version.
pub fn parse(text: &str) -> Result<Report, ReportError> {
    // Check the version first, so a newer layout gets a clear message rather than a field error.
    #[derive(serde::Deserialize)]
    struct Version {
        schema_version: Option<u64>,
    }
    if let Ok(Version {
        schema_version: Some(found),
    }) = serde_json::from_str::<Version>(text)
    {
        if found > u64::from(SCHEMA_VERSION) {
            return Err(ReportError::SchemaVersion {
                path: PathBuf::new(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|source| ReportError::Parse {
        path: PathBuf::new(),
        source,
    })
}
