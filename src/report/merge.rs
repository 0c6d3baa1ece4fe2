//! Merge reports of separate shards (processes, hosts, pods) into one exact report: histograms add
//! bucket by bucket, counters add, the time series adds second by second.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Outcome, Report, RunRecord, RunStatus, Shards};
use crate::metrics::SeriesPoint;

/// Why reports cannot be merged. Each names the files involved.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no reports to merge")]
    Empty,
    #[error("`{}` and `{}` are the same file: merging it twice would double every count\n  hint: list each shard's report once", .0.display(), .1.display())]
    SameFile(PathBuf, PathBuf),
    #[error("`{}` and `{}` hold the same measurements (same run, same shard): merging them would double every count\n  hint: list each shard's report once", .0.display(), .1.display())]
    SameContent(PathBuf, PathBuf),
    #[error("`{}` and `{}` both hold shard {index}/{count} of run {run_id}: merging them would count it twice\n  hint: list each shard's report once", .a.display(), .b.display())]
    SameShard {
        a: PathBuf,
        b: PathBuf,
        index: u32,
        count: u32,
        run_id: String,
    },
    #[error("`{}` and `{}` are not shards of one run: {what}\n  hint: merge only the reports of one sharded run (same scenario file, overrides, seed, `--shard I/N` count and `--start-at-us`)", .a.display(), .b.display())]
    OtherRun {
        a: PathBuf,
        b: PathBuf,
        what: String,
    },
    #[error("cannot merge `{}` into the others: {source}", .path.display())]
    Snapshot {
        path: PathBuf,
        source: crate::metrics::SnapshotError,
    },
    #[error("cannot merge `{}` into the others: the time series count of second {t_s} would overflow", .path.display())]
    SeriesOverflow { path: PathBuf, t_s: u32 },
}

/// What differs between two reports that claim to be shards of one run, or `None`.
fn run_difference(a: &Report, b: &Report) -> Option<String> {
    if a.scenario_name != b.scenario_name {
        return Some(format!(
            "scenario `{}` vs `{}`",
            a.scenario_name, b.scenario_name
        ));
    }
    let seed = |r: &Report| r.scenario.get("seed").cloned();
    if seed(a) != seed(b) {
        return Some(format!(
            "seed {} vs {}",
            seed(a).unwrap_or_default(),
            seed(b).unwrap_or_default()
        ));
    }
    if a.started_at_us != b.started_at_us {
        return Some(format!(
            "started at {} ({} µs) vs {} ({} µs); shards of one run share a start time (`--start-at-us`)",
            a.started_at, a.started_at_us, b.started_at, b.started_at_us
        ));
    }
    if a.scenario != b.scenario {
        return Some("the resolved scenarios differ (devices, phases, broker or overrides)".into());
    }
    match (&a.shards, &b.shards) {
        (Some(x), Some(y)) if x.count != y.count => Some(format!(
            "split into {} shards vs {} shards",
            x.count, y.count
        )),
        (Some(x), Some(y)) if x.run_id != y.run_id => {
            Some(format!("run id {} vs {}", x.run_id, y.run_id))
        }
        _ => None,
    }
}

/// Refuse inputs whose merge would not be the measurement of one run: the same file twice, the same
/// shard twice, or shards of different runs.
fn check_inputs(reports: &[(PathBuf, Report)]) -> Result<(), MergeError> {
    let canonical: Vec<PathBuf> = reports
        .iter()
        .map(|(p, _)| {
            let file = if p.is_dir() {
                p.join(super::REPORT_JSON)
            } else {
                p.clone()
            };
            std::fs::canonicalize(&file).unwrap_or(file)
        })
        .collect();
    for (i, (pa, a)) in reports.iter().enumerate() {
        for (j, (pb, b)) in reports.iter().enumerate().skip(i + 1) {
            if canonical.get(i) == canonical.get(j) {
                return Err(MergeError::SameFile(pa.clone(), pb.clone()));
            }
            if let Some(what) = run_difference(a, b) {
                return Err(MergeError::OtherRun {
                    a: pa.clone(),
                    b: pb.clone(),
                    what,
                });
            }
            match (&a.shards, &b.shards) {
                (Some(x), Some(y)) => {
                    if let Some(&index) = x.indices.iter().find(|i| y.indices.contains(i)) {
                        return Err(MergeError::SameShard {
                            a: pa.clone(),
                            b: pb.clone(),
                            index,
                            count: x.count,
                            run_id: x.run_id.clone(),
                        });
                    }
                }
                // Reports of older versions do not say which shard they hold: refuse at least
                // an identical copy.
                _ => {
                    if a.ended_at_us == b.ended_at_us && a.histograms == b.histograms {
                        return Err(MergeError::SameContent(pa.clone(), pb.clone()));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The shards a merge holds: the union of its inputs' (when every input says).
fn merged_shards(reports: &[(PathBuf, Report)]) -> Option<Shards> {
    let mut out: Option<Shards> = None;
    for (_, r) in reports {
        let s = r.shards.as_ref()?;
        match &mut out {
            None => out = Some(s.clone()),
            Some(o) => o.indices.extend(&s.indices),
        }
    }
    if let Some(o) = &mut out {
        o.indices.sort_unstable();
        o.indices.dedup();
    }
    out
}

fn add(a: &mut u64, b: u64, path: &Path, t_s: u32) -> Result<(), MergeError> {
    *a = a.checked_add(b).ok_or_else(|| MergeError::SeriesOverflow {
        path: path.to_path_buf(),
        t_s,
    })?;
    Ok(())
}

/// Worst-first order of outcomes: the merged report keeps the worst.
fn severity(s: RunStatus) -> u8 {
    match s {
        RunStatus::Completed => 0,
        RunStatus::Interrupted => 1,
        RunStatus::BrokerLost => 2,
        RunStatus::WorkerFailed => 3,
        RunStatus::DevicesFailed => 4,
        RunStatus::BrokerUnreachable => 5,
    }
}

/// One record from several shard reports (each with the path it came from, for messages) of one
/// run. Refuses the same file or shard twice, shards of different runs, and counts that would
/// overflow.
pub fn merge(reports: &[(PathBuf, Report)]) -> Result<RunRecord, MergeError> {
    let Some((_, first)) = reports.first() else {
        return Err(MergeError::Empty);
    };
    check_inputs(reports)?;
    let mut record = first.to_record();
    record.shards = merged_shards(reports);
    let mut series: BTreeMap<u32, SeriesPoint> = BTreeMap::new();
    let mut messages = Vec::new();
    for (i, (path, r)) in reports.iter().enumerate() {
        if i > 0 {
            record
                .snapshot
                .merge(&r.histograms)
                .map_err(|source| MergeError::Snapshot {
                    path: path.clone(),
                    source,
                })?;
            record.started_at_us = record.started_at_us.min(r.started_at_us);
            record.ended_at_us = record.ended_at_us.max(r.ended_at_us);
            record.environment.worker_threads = record
                .environment
                .worker_threads
                .saturating_add(r.environment.worker_threads);
        }
        if severity(r.outcome.status) > severity(record.outcome.status) {
            record.outcome.status = r.outcome.status;
        }
        if !r.outcome.message.is_empty() {
            messages.push(format!("shard {i}: {}", r.outcome.message));
        }
        // Shards share a start time (same timeline), so second t of each adds up.
        for p in &r.series {
            let e = series.entry(p.t_s).or_insert_with(|| SeriesPoint {
                t_s: p.t_s,
                connected: 0,
                publishes_per_s: 0,
                acks_per_s: 0,
                receives_per_s: 0,
                errors_per_s: 0,
                // Per-second percentiles cannot be merged from shard reports (they keep no
                // per-second histograms); the whole-run percentiles are exact.
                e2e_p50_us: None,
                e2e_p99_us: None,
                puback_p99_us: None,
                puback_p50_us: None,
                pubcomp_p50_us: None,
                pubcomp_p99_us: None,
                connect_p50_us: None,
                connect_p99_us: None,
                tls_handshake_p50_us: None,
                tls_handshake_p99_us: None,
                send_lag_p99_us: None,
                command_rtt_p50_us: None,
                command_rtt_p99_us: None,
                window_s: p.window_s,
            });
            e.connected =
                e.connected
                    .checked_add(p.connected)
                    .ok_or_else(|| MergeError::SeriesOverflow {
                        path: path.clone(),
                        t_s: p.t_s,
                    })?;
            add(&mut e.publishes_per_s, p.publishes_per_s, path, p.t_s)?;
            add(&mut e.acks_per_s, p.acks_per_s, path, p.t_s)?;
            add(&mut e.receives_per_s, p.receives_per_s, path, p.t_s)?;
            add(&mut e.errors_per_s, p.errors_per_s, path, p.t_s)?;
            // Shards end within moments of each other; the longest last window stands for all.
            e.window_s = e.window_s.max(p.window_s);
        }
    }
    record.outcome = Outcome {
        status: record.outcome.status,
        message: messages.join("; "),
    };
    record.series = series.into_values().collect();
    if reports.len() > 1 {
        record.broker = reports
            .iter()
            .map(|(_, r)| r.broker.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ");
    }
    Ok(record)
}
