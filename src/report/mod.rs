//! The report model: a [`Report`] is built once from a [`RunRecord`] (percentiles computed here,
//! once), merged from shards ([`merge`]), saved and loaded as `report.json` ([`json`], [`load`]).
//! It sits below `gate`, which reads it; the writers that print reports and verdicts (console,
//! Markdown, HTML, hlog, JUnit, OpenMetrics, the compare text) are in [`crate::output`], above `gate`.
//! No network, no clock; only the functions that take a directory do I/O.

mod error;
mod files;
pub mod json;
pub mod merge;
mod model;
mod record;
pub(crate) mod units;

use std::path::{Path, PathBuf};

pub use error::ReportError;
pub(crate) use files::{create_dir, write_file};
pub use json::REPORT_JSON;
pub use model::{
    Deliveries, GroupReport, Headline, LatencyStats, MetricLatency, PhaseReport, Rates, Report,
    Summary, RUN_SECTION_NAME, SCHEMA_VERSION,
};
pub use record::{Environment, Outcome, RunRecord, RunStatus, Shards};
pub(crate) use units::{latency as latency_text, pad_right};

/// File name of the Markdown summary inside a report directory.
pub const SUMMARY_MD: &str = "summary.md";

/// The default report directory: `root/<scenario name>-<UTC start, YYYYMMDDTHHMMSSZ>`.
/// Characters that do not belong in a file name become `-`.
pub fn default_dir(root: &Path, scenario_name: &str, started_at_us: u64) -> PathBuf {
    let mut name: String = scenario_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.trim_matches('.').is_empty() {
        name = "run".to_owned();
    }
    let stamp =
        model::compact_stamp(started_at_us).unwrap_or_else(|_| format!("{started_at_us}us"));
    root.join(format!("{name}-{stamp}"))
}

/// The most a report file may hold: far above any report a run can write (the scenario limits bound
/// phases and groups), far below what would exhaust memory.
pub const MAX_REPORT_BYTES: u64 = 256 << 20;

/// What kind of non-regular file `meta` describes.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Read a `report.json`; `path` is the file or the report directory holding it. Only regular files
/// are read (a FIFO or `/dev/zero` is refused before it is opened), and at most
/// [`MAX_REPORT_BYTES`] of them.
pub fn load(path: &Path) -> Result<Report, ReportError> {
    use std::io::Read as _;
    let file = if path.is_dir() {
        path.join(REPORT_JSON)
    } else {
        path.to_path_buf()
    };
    let read_err = |source| ReportError::Read {
        path: file.clone(),
        source,
    };
    let meta = std::fs::metadata(&file).map_err(read_err)?;
    if !meta.is_file() {
        return Err(ReportError::NotRegular {
            path: file.clone(),
            kind: file_kind(&meta),
        });
    }
    let too_large = || ReportError::TooLarge {
        path: file.clone(),
        limit: MAX_REPORT_BYTES,
    };
    if meta.len() > MAX_REPORT_BYTES {
        return Err(too_large());
    }
    let mut text = String::new();
    // Bounded even if the file grows (or is swapped) after the check.
    std::fs::File::open(&file)
        .map_err(read_err)?
        .take(MAX_REPORT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_REPORT_BYTES {
        return Err(too_large());
    }
    json::parse(&text).map_err(|e| e.at(&file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_is_name_and_utc_stamp() {
        let d = default_dir(Path::new("reports"), "smoke test/1", 1_714_566_896_000_000);
        assert_eq!(d, Path::new("reports/smoke-test-1-20240501T123456Z"));
        let d = default_dir(Path::new("r"), "..", 0);
        assert_eq!(d, Path::new("r/run-19700101T000000Z"));
        let d = default_dir(Path::new("r"), "x", u64::MAX);
        assert_eq!(d, Path::new(&format!("r/x-{}us", u64::MAX)));
    }
}
