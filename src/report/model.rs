//! The [`Report`]: everything the writers show, built once from a [`RunRecord`]. Percentiles are
//! computed here and only here, from exactly merged histograms; the writers only format.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ReportError;
use super::record::{Environment, Outcome, RunRecord, Shards};
use crate::metrics::histogram::LatencyHistogram;
use crate::metrics::{
    Basis, Counter, Counters, GroupSnapshot, Metric, MissingShard, PhaseSnapshot, RunSnapshot,
    SeriesPoint,
};
use crate::threshold::Stat;

/// The version of the report.json layout this build writes (and the newest it reads).
pub const SCHEMA_VERSION: u32 = 1;

/// The name of the whole-run section in [`Report::totals`].
pub const RUN_SECTION_NAME: &str = "run";

/// The prefix that marks a phase as the one the summary shows first.
const STEADY_PREFIX: &str = "steady";

/// A finished run, ready to be written in any format. Deserialisable from `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub fleetstorm_version: String,
    pub scenario_name: String,
    pub broker: String,
    /// RFC 3339, UTC, whole seconds.
    pub started_at: String,
    /// RFC 3339, UTC, whole seconds.
    pub ended_at: String,
    /// µs since the Unix epoch.
    pub started_at_us: u64,
    /// µs since the Unix epoch.
    pub ended_at_us: u64,
    pub duration_s: f64,
    pub outcome: Outcome,
    /// Worker shards whose data is missing (their process died before reporting); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<MissingShard>,
    pub environment: Environment,
    /// The resolved scenario, as the run used it.
    pub scenario: serde_json::Value,
    pub summary: Summary,
    pub phases: Vec<PhaseReport>,
    /// The whole run (all phases), in the same shape as a phase; its name is [`RUN_SECTION_NAME`].
    pub totals: PhaseReport,
    /// The 1 s time series.
    pub series: Vec<SeriesPoint>,
    /// The raw, mergeable measurements (histograms as base64 HdrHistogram V2+DEFLATE).
    pub histograms: RunSnapshot,
    /// Which shards of which run this report holds (absent in reports of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Shards>,
    /// Set when this report holds only some shards of a run (`--shard I/N`, or a merge of some of
    /// them): why no fleet-wide gate was evaluated on it. Gates are evaluated by `report merge` on
    /// the merge of every shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates_deferred: Option<String>,
}

/// The headline figures: the phase shown first, plus whole-run connection figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The phase the publish and latency figures are for: the last phase whose name starts with
    /// `steady`, else the last phase; `None` when the run had no phase.
    pub phase: Option<String>,
    /// That phase's duration.
    pub phase_duration_s: f64,
    /// Highest `connected` in the time series (whole run).
    pub devices_connected_peak: u64,
    /// Whole run (devices connect during ramps, not in the steady phase).
    pub connect_attempts: u64,
    /// Whole run.
    pub connect_successes: u64,
    /// Whole run, every reason.
    pub connect_failures: u64,
    /// In the summary phase.
    pub published: u64,
    /// In the summary phase.
    pub acked: u64,
    /// In the summary phase.
    pub publish_failed: u64,
    /// In the summary phase.
    pub overrun: u64,
    /// `published / phase_duration_s`.
    pub publish_rate_per_s: f64,
    /// Corrected latency of each metric present in the summary phase.
    pub latency: BTreeMap<Metric, Headline>,
}

/// Corrected p50 / p99 / max of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headline {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// One phase (or the whole run): totals over groups, and each group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    pub name: String,
    /// µs since the Unix epoch.
    pub start_us: u64,
    /// µs since the Unix epoch.
    pub end_us: u64,
    pub duration_s: f64,
    /// All groups together.
    pub totals: GroupReport,
    /// Per group, keyed by group name.
    pub groups: BTreeMap<String, GroupReport>,
}

/// Counters, rates and latency of one group (or of all groups) over one phase (or the run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// Every counter, by its report name.
    pub counters: Counters,
    pub rates: Rates,
    /// Each metric that recorded anything.
    pub latency: BTreeMap<Metric, MetricLatency>,
    /// What the observers received of what they should have.
    pub deliveries: Deliveries,
}

/// Observer accounting: `expected = received + lost + unobserved`; duplicates and reordered come on
/// top.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Deliveries {
    pub expected: u64,
    pub received: u64,
    /// Expected, not received, and not unobserved: what the broker (or the network) lost.
    pub lost: u64,
    /// Expected deliveries nobody could observe: due while an observer session was down (or, with
    /// worker processes, audited by a shard that died). Not counted as loss.
    #[serde(default)]
    pub unobserved: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// lost / expected (0 when nothing was expected).
    pub loss_ratio: f64,
}

impl Deliveries {
    /// From a section's counters. Received beyond expected (possible only for a phase boundary edge
    /// case or a broker delivering unsolicited copies) never makes `lost` negative; `unobserved` is at
    /// most what was expected and not received (an outage gap that straddles a phase boundary is
    /// counted in the phase of the message that revealed it), so the identity holds in every section.
    pub fn from_counters(c: &Counters) -> Deliveries {
        let expected = c.get(Counter::ExpectedDeliveries);
        let received = c.get(Counter::Received);
        let missing = expected.saturating_sub(received);
        let unobserved = c.get(Counter::Unobserved).min(missing);
        let lost = missing - unobserved;
        Deliveries {
            expected,
            received,
            lost,
            unobserved,
            duplicates: c.get(Counter::Duplicates),
            reordered: c.get(Counter::Reordered),
            loss_ratio: if expected == 0 {
                0.0
            } else {
                lost as f64 / expected as f64
            },
        }
    }
}

/// Rates over the section's duration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub published_per_s: f64,
    pub acked_per_s: f64,
}

/// One metric measured from both starts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricLatency {
    /// From the intended time in the schedule (what gates use).
    pub corrected: LatencyStats,
    /// From the moment the packet went out.
    pub uncorrected: LatencyStats,
}

impl MetricLatency {
    pub fn get(&self, basis: Basis) -> &LatencyStats {
        match basis {
            Basis::Corrected => &self.corrected,
            Basis::Uncorrected => &self.uncorrected,
        }
    }
}

/// Distribution of one histogram. All values are in µs; all zero when `count` is zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
    pub p99_99_us: u64,
    pub max_us: u64,
}

impl LatencyStats {
    /// The value of a threshold's statistic in this distribution, µs.
    pub fn stat(&self, stat: Stat) -> f64 {
        match stat {
            Stat::P50 => self.p50_us as f64,
            Stat::P90 => self.p90_us as f64,
            Stat::P99 => self.p99_us as f64,
            Stat::P99_9 => self.p99_9_us as f64,
            Stat::P99_99 => self.p99_99_us as f64,
            Stat::Max => self.max_us as f64,
            Stat::Mean => self.mean_us,
        }
    }

    /// Read a histogram (values at quantiles as HdrHistogram defines them).
    pub fn from_histogram(h: &LatencyHistogram) -> LatencyStats {
        if h.is_empty() {
            return LatencyStats::default();
        }
        let mean = h.mean();
        LatencyStats {
            count: h.len(),
            min_us: h.min(),
            mean_us: if mean.is_finite() { mean } else { 0.0 },
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p99_9_us: h.value_at_quantile(0.999),
            p99_99_us: h.value_at_quantile(0.9999),
            max_us: h.max(),
        }
    }
}

impl Report {
    /// Build the report: merge groups and phases exactly and compute every percentile, once.
    pub fn build(record: &RunRecord) -> Result<Report, ReportError> {
        // No phase outlasts the run: a run that stopped early (interrupted, aborted, a worker process
        // that stopped) ran its phases only until it ended, and rates are over what ran.
        let mut clipped = record.snapshot.clone();
        clipped.clip_to(record.ended_at_us);
        let snapshot = &clipped;
        check_shape(snapshot)?;

        let phases = snapshot
            .phases
            .iter()
            .map(|p| phase_report(p, &snapshot.group_names))
            .collect::<Result<Vec<_>, _>>()?;
        let totals = run_report(record, snapshot)?;
        let summary = summary(record, &phases, &totals);

        Ok(Report {
            schema_version: SCHEMA_VERSION,
            fleetstorm_version: record.environment.fleetstorm_version.clone(),
            scenario_name: record.scenario_name.clone(),
            broker: record.broker.clone(),
            started_at: rfc3339(record.started_at_us)?,
            ended_at: rfc3339(record.ended_at_us)?,
            started_at_us: record.started_at_us,
            ended_at_us: record.ended_at_us,
            duration_s: seconds_between(record.started_at_us, record.ended_at_us),
            outcome: record.outcome.clone(),
            missing_shards: snapshot.missing_shards.clone(),
            environment: record.environment.clone(),
            scenario: record.scenario.clone(),
            summary,
            phases,
            totals,
            series: record.series.clone(),
            histograms: clipped,
            shards: record.shards.clone(),
            gates_deferred: record.shards.as_ref().and_then(Shards::partial_label).map(|label| {
                format!(
                    "shard {label}: fleet-wide gates are evaluated at merge (`fleetstorm report merge` of every shard's report.json)"
                )
            }),
        })
    }

    /// The raw measurements, to merge with other reports or re-render.
    pub fn snapshot(&self) -> &RunSnapshot {
        &self.histograms
    }

    /// The record this report was built from (to merge reports: load, merge the records'
    /// snapshots, build again).
    pub fn to_record(&self) -> RunRecord {
        RunRecord {
            scenario: self.scenario.clone(),
            scenario_name: self.scenario_name.clone(),
            broker: self.broker.clone(),
            environment: self.environment.clone(),
            outcome: self.outcome.clone(),
            started_at_us: self.started_at_us,
            ended_at_us: self.ended_at_us,
            snapshot: self.histograms.clone(),
            series: self.series.clone(),
            shards: self.shards.clone(),
        }
    }

    /// The phase the summary shows first, if any.
    pub fn summary_phase(&self) -> Option<&PhaseReport> {
        let name = self.summary.phase.as_deref()?;
        self.phases.iter().rev().find(|p| p.name == name)
    }
}

fn check_shape(snapshot: &RunSnapshot) -> Result<(), ReportError> {
    let mut seen = std::collections::BTreeSet::new();
    for name in &snapshot.group_names {
        if !seen.insert(name.as_str()) {
            return Err(ReportError::DuplicateGroup(name.clone()));
        }
    }
    for p in &snapshot.phases {
        if p.groups.len() != snapshot.group_names.len() {
            return Err(ReportError::Shape(format!(
                "phase `{}` has {} groups, expected {}",
                p.name,
                p.groups.len(),
                snapshot.group_names.len()
            )));
        }
    }
    Ok(())
}

fn phase_report(p: &PhaseSnapshot, group_names: &[String]) -> Result<PhaseReport, ReportError> {
    let duration_s = seconds_between(p.start_us, p.end_us);
    let total = p.total()?;
    let groups = group_names
        .iter()
        .zip(&p.groups)
        .map(|(name, g)| (name.clone(), group_report(g, duration_s)))
        .collect();
    Ok(PhaseReport {
        name: p.name.clone(),
        start_us: p.start_us,
        end_us: p.end_us,
        duration_s,
        totals: group_report(&total, duration_s),
        groups,
    })
}

fn run_report(record: &RunRecord, snapshot: &RunSnapshot) -> Result<PhaseReport, ReportError> {
    let duration_s = seconds_between(record.started_at_us, record.ended_at_us);
    let total = snapshot.total()?;
    let mut groups = BTreeMap::new();
    for (i, name) in snapshot.group_names.iter().enumerate() {
        let g = snapshot.group_total(i)?;
        groups.insert(name.clone(), group_report(&g, duration_s));
    }
    Ok(PhaseReport {
        name: RUN_SECTION_NAME.to_owned(),
        start_us: record.started_at_us,
        end_us: record.ended_at_us,
        duration_s,
        totals: group_report(&total, duration_s),
        groups,
    })
}

fn group_report(g: &GroupSnapshot, duration_s: f64) -> GroupReport {
    let mut latency = BTreeMap::new();
    for metric in Metric::ALL {
        let corrected = g.histogram(metric, Basis::Corrected);
        let uncorrected = g.histogram(metric, Basis::Uncorrected);
        let present = [corrected, uncorrected]
            .iter()
            .any(|h| h.is_some_and(|h| !h.is_empty()));
        if present {
            latency.insert(
                metric,
                MetricLatency {
                    corrected: corrected
                        .map(LatencyStats::from_histogram)
                        .unwrap_or_default(),
                    uncorrected: uncorrected
                        .map(LatencyStats::from_histogram)
                        .unwrap_or_default(),
                },
            );
        }
    }
    GroupReport {
        rates: Rates {
            published_per_s: per_second(g.counters.get(Counter::Published), duration_s),
            acked_per_s: per_second(g.counters.get(Counter::Acked), duration_s),
        },
        deliveries: Deliveries::from_counters(&g.counters),
        counters: g.counters.clone(),
        latency,
    }
}

fn summary(record: &RunRecord, phases: &[PhaseReport], run: &PhaseReport) -> Summary {
    let shown = phases
        .iter()
        .rev()
        .find(|p| p.name.starts_with(STEADY_PREFIX))
        .or_else(|| phases.last());
    let peak = record.series.iter().map(|s| s.connected).max().unwrap_or(0);
    let run_counters = &run.totals.counters;
    let phase_counter = |c: Counter| shown.map_or(0, |p| p.totals.counters.get(c));
    let latency = shown
        .map(|p| {
            p.totals
                .latency
                .iter()
                .filter(|(_, l)| l.corrected.count > 0)
                .map(|(m, l)| {
                    (
                        *m,
                        Headline {
                            p50_us: l.corrected.p50_us,
                            p99_us: l.corrected.p99_us,
                            max_us: l.corrected.max_us,
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let phase_duration_s = shown.map_or(0.0, |p| p.duration_s);
    Summary {
        phase: shown.map(|p| p.name.clone()),
        phase_duration_s,
        devices_connected_peak: u64::try_from(peak).unwrap_or(0),
        connect_attempts: run_counters.get(Counter::ConnectAttempts),
        connect_successes: run_counters.get(Counter::ConnectSuccesses),
        connect_failures: run_counters.connect_failures(),
        published: phase_counter(Counter::Published),
        acked: phase_counter(Counter::Acked),
        publish_failed: phase_counter(Counter::PublishFailed),
        overrun: phase_counter(Counter::Overrun),
        publish_rate_per_s: per_second(phase_counter(Counter::Published), phase_duration_s),
        latency,
    }
}

/// Seconds from `start_us` to `end_us` (zero if the end is not after the start).
fn seconds_between(start_us: u64, end_us: u64) -> f64 {
    end_us.saturating_sub(start_us) as f64 / 1e6
}

/// `n / duration_s`, zero for an empty duration (JSON has no infinity).
fn per_second(n: u64, duration_s: f64) -> f64 {
    if duration_s > 0.0 {
        n as f64 / duration_s
    } else {
        0.0
    }
}

fn utc(t_us: u64) -> Result<time::OffsetDateTime, ReportError> {
    let secs = i64::try_from(t_us / 1_000_000).map_err(|_| ReportError::Timestamp(t_us))?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| ReportError::Timestamp(t_us))
}

/// `2024-05-01T12:00:00Z` (RFC 3339, UTC, whole seconds).
pub(crate) fn rfc3339(t_us: u64) -> Result<String, ReportError> {
    let t = utc(t_us)?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// `20240501T120000Z` (for directory names).
pub(crate) fn compact_stamp(t_us: u64) -> Result<String, ReportError> {
    let t = utc(t_us)?;
    Ok(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc() {
        // 2024-05-01T12:34:56Z
        let t = 1_714_566_896_000_000 + 999_999;
        assert_eq!(rfc3339(t).unwrap(), "2024-05-01T12:34:56Z");
        assert_eq!(compact_stamp(t).unwrap(), "20240501T123456Z");
        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
        assert!(rfc3339(u64::MAX).is_err());
    }

    #[test]
    fn rates_never_divide_by_zero() {
        assert_eq!(per_second(10, 0.0), 0.0);
        assert_eq!(per_second(10, 2.0), 5.0);
        assert_eq!(seconds_between(5, 3), 0.0);
    }
}
