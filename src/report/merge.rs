//! Merge reports of separate shards (processes, hosts, pods) into one exact report: histograms add
//! bucket by bucket, counters add, the time series adds second by second.

use std::collections::BTreeMap;

use super::{Outcome, Report, ReportError, RunRecord, RunStatus};
use crate::metrics::SeriesPoint;

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

/// One record from several shard reports of the same scenario.
pub fn merge(reports: &[Report]) -> Result<RunRecord, ReportError> {
    let Some(first) = reports.first() else {
        return Err(ReportError::Shape("no reports to merge".into()));
    };
    let mut record = first.to_record();
    let mut series: BTreeMap<u32, SeriesPoint> = BTreeMap::new();
    let mut messages = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        if r.scenario_name != first.scenario_name {
            return Err(ReportError::Shape(format!(
                "report {i} is of scenario `{}`, the first of `{}`",
                r.scenario_name, first.scenario_name
            )));
        }
        if i > 0 {
            record
                .snapshot
                .merge(&r.histograms)
                .map_err(|e| ReportError::Shape(e.to_string()))?;
            record.started_at_us = record.started_at_us.min(r.started_at_us);
            record.ended_at_us = record.ended_at_us.max(r.ended_at_us);
            record.environment.worker_threads += r.environment.worker_threads;
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
                window_s: p.window_s,
            });
            e.connected += p.connected;
            e.publishes_per_s += p.publishes_per_s;
            e.acks_per_s += p.acks_per_s;
            e.receives_per_s += p.receives_per_s;
            e.errors_per_s += p.errors_per_s;
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
            .map(|r| r.broker.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ");
    }
    Ok(record)
}
