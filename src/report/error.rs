//! What can go wrong building, writing or loading a report.

use std::path::{Path, PathBuf};

use crate::metrics::histogram::HistogramError;

/// What can go wrong building, writing or loading a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot merge histograms: {0}")]
    Histogram(#[from] HistogramError),
    #[error("{0}")]
    Snapshot(#[from] crate::metrics::SnapshotError),
    #[error("snapshot has an inconsistent shape: {0}")]
    Shape(String),
    #[error("group name `{0}` appears twice")]
    DuplicateGroup(String),
    #[error("timestamp {0} µs is outside the representable date range")]
    Timestamp(u64),
    #[error("cannot create report directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the report as JSON: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("{} is not a valid report: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_path_to_error::Error<serde_json::Error>,
    },
    #[error("{} is not a regular file ({kind}); a report is a report.json file or the directory holding one", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is larger than {limit} bytes, more than any report fleetstorm writes; refusing to read it", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{} has report schema version {found}; this build reads up to {supported}", path.display())]
    SchemaVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
}

impl ReportError {
    /// Name the file a parse error came from.
    pub(super) fn at(self, file: &Path) -> ReportError {
        match self {
            ReportError::Parse { source, .. } => ReportError::Parse {
                path: file.to_path_buf(),
                source,
            },
            ReportError::SchemaVersion {
                found, supported, ..
            } => ReportError::SchemaVersion {
                path: file.to_path_buf(),
                found,
                supported,
            },
            other => other,
        }
    }
}
