//! HdrHistogram interval logs (`<metric>.hlog`, the format HdrHistogram's own tools read): one
//! interval per phase, tagged with the phase name (corrected) and `<phase>.uncorrected`.
//! Values, including `Interval_Max`, are µs.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{
    IntervalLogWriterBuilder, IntervalLogWriterError, Tag,
};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::metrics::histogram::HistogramError;
use crate::metrics::{Basis, Metric};
use crate::report::{write_file, Report, ReportError};

/// The legend line HdrHistogram's Java `HistogramLogWriter` writes before the intervals.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";

/// `puback.hlog`.
pub fn file_name(metric: Metric) -> String {
    format!("{}.hlog", metric.name())
}

/// The interval tag for a phase: the phase name (`,` and whitespace become `_`), with
/// `.uncorrected` appended for the uncorrected basis.
pub fn tag(phase: &str, basis: Basis) -> String {
    let clean: String = phase
        .chars()
        .map(|c| {
            if c == ',' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match basis {
        Basis::Corrected => clean,
        Basis::Uncorrected => format!("{clean}.uncorrected"),
    }
}

/// The interval log of one metric, or `None` when no phase recorded it.
pub fn render(report: &Report, metric: Metric) -> Result<Option<String>, ReportError> {
    let start = UNIX_EPOCH + Duration::from_micros(report.started_at_us);
    // Whether any phase recorded the metric, without merging anything yet.
    let recorded = report.histograms.phases.iter().any(|p| {
        p.groups.iter().any(|g| {
            Basis::ALL
                .iter()
                .any(|&b| g.histogram(metric, b).is_some_and(|h| !h.is_empty()))
        })
    });
    if !recorded {
        return Ok(None);
    }
    let io = |source| ReportError::Write {
        path: PathBuf::from(file_name(metric)),
        source,
    };
    let mut buf = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "[Logged with fleetstorm {}]",
            report.fleetstorm_version
        ))
        .add_comment("[Histogram log format version 1.3]")
        .add_comment(&format!(
            "[{} latency in µs, scenario {}, one interval per phase; tag <phase> is corrected (from the intended send time), <phase>.uncorrected from the actual send]",
            metric.name(),
            report.scenario_name.replace('\n', " ")
        ))
        .with_start_time(start)
        .with_base_time(start)
        .begin_log_with(&mut buf, &mut serializer)
        .map_err(io)?;
    buf.extend_from_slice(LEGEND.as_bytes());
    let mut log = IntervalLogWriterBuilder::new()
        .begin_log_with(&mut buf, &mut serializer)
        .map_err(io)?;
    // One phase's merged histograms at a time: memory does not grow with the number of phases.
    for p in &report.histograms.phases {
        let total = p.total()?;
        for basis in Basis::ALL {
            let Some(h) = total.histogram(metric, basis).filter(|h| !h.is_empty()) else {
                continue;
            };
            let name = tag(&p.name, basis);
            let offset = Duration::from_micros(p.start_us.saturating_sub(report.started_at_us));
            let length = Duration::from_micros(p.end_us.saturating_sub(p.start_us));
            log.write_histogram(h, offset, length, Tag::new(&name))
                .map_err(|e| match e {
                    IntervalLogWriterError::SerializeError(e) => {
                        ReportError::Histogram(HistogramError::Serialize(e))
                    }
                    IntervalLogWriterError::IoError(e) => io(e),
                })?;
        }
    }
    // Only what this function wrote: ASCII and the UTF-8 of names.
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Write `dir/<metric>.hlog` for each metric that recorded anything; returns the paths.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut paths = Vec::new();
    for metric in Metric::ALL {
        if let Some(text) = render(report, metric)? {
            paths.push(write_file(dir, &file_name(metric), text.as_bytes())?);
        }
    }
    Ok(paths)
}
