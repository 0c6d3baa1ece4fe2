//! `RunSnapshot`: everything measured, per phase and group, mergeable exactly with `+=` and
//! serialisable (histograms as base64 V2+DEFLATE) so shards and reports can be combined later.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::histogram::{self, HistogramError, LatencyHistogram};
use super::kinds::{Basis, Counter, Metric};

/// One value per [`Counter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters(pub [u64; Counter::COUNT]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; Counter::COUNT])
    }
}

impl Counters {
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }

    pub fn add(&mut self, c: Counter, n: u64) {
        self.0[c as usize] = self.0[c as usize].wrapping_add(n);
    }

    pub fn merge(&mut self, other: &Counters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// Add another set of counters, refusing (and changing nothing) if any sum would pass `u64::MAX`:
    /// a merged count is exact or an error, never wrapped.
    pub fn checked_merge(&mut self, other: &Counters) -> Result<(), SnapshotError> {
        let mut sum = self.0;
        for ((s, b), c) in sum.iter_mut().zip(other.0.iter()).zip(Counter::ALL) {
            *s = s.checked_add(*b).ok_or_else(|| {
                SnapshotError::Overflow(format!(
                    "counter `{}` ({s} + {b}) exceeds {}",
                    c.name(),
                    u64::MAX
                ))
            })?;
        }
        self.0 = sum;
        Ok(())
    }

    /// Connect failures of every reason.
    pub fn connect_failures(&self) -> u64 {
        [
            Counter::ConnectFailRefused,
            Counter::ConnectFailTimeout,
            Counter::ConnectFailReset,
            Counter::ConnectFailRejected,
            Counter::ConnectFailProtocol,
            Counter::ConnectFailNoPort,
            Counter::ConnectFailOther,
            Counter::ConnectFailTlsUnknownIssuer,
            Counter::ConnectFailTlsExpired,
            Counter::ConnectFailTlsNameMismatch,
            Counter::ConnectFailTlsTimeout,
            Counter::ConnectFailTlsAlert,
            Counter::ConnectFailTlsOther,
        ]
        .iter()
        .map(|&c| self.get(c))
        .sum()
    }

    /// Disconnects of every reason.
    pub fn disconnects(&self) -> u64 {
        [
            Counter::DisconnectClosed,
            Counter::DisconnectReset,
            Counter::DisconnectKeepalive,
            Counter::DisconnectProtocol,
            Counter::DisconnectServer,
        ]
        .iter()
        .map(|&c| self.get(c))
        .sum()
    }
}

impl Serialize for Counters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(Counter::COUNT))?;
        for &c in Counter::ALL {
            m.serialize_entry(c.name(), &self.get(c))?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Counters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: BTreeMap<String, u64> = BTreeMap::deserialize(d)?;
        let mut out = Counters::default();
        for (name, v) in raw {
            // Counters unknown to this version are ignored, so newer reports still load.
            if let Some(c) = Counter::from_name(&name) {
                out.add(c, v);
            }
        }
        Ok(out)
    }
}

/// The most phases a scenario may have (and a report may hold). Each phase keeps its own histograms
/// per group and worker thread (up to [`histogram::HISTOGRAM_BYTES`] each per metric and basis), so
/// memory grows with phases x groups; validation refuses more.
pub const MAX_PHASES: usize = 100;
/// The most phase x group cells a scenario may have (and a report may hold), for the same reason.
pub const MAX_PHASE_GROUPS: usize = 500;

impl Counters {
    /// Take `n` off `c` (never below zero): only to leave out what a missing shard's devices did.
    pub fn remove(&mut self, c: Counter, n: u64) {
        self.0[c as usize] = self.0[c as usize].saturating_sub(n);
    }
}

/// What the observers (which run in shard 0) saw of the devices of one worker shard, in one phase and
/// group: the observer counters split by the shard of the device stream. Kept only in runs with more
/// than one shard, so the parent can leave out what it observed of a shard whose snapshot is missing.
/// A breakdown of counters counted elsewhere, never a counter of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub received: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub unobserved: u64,
}

impl Observed {
    /// The observer counters this breakdown splits.
    pub const COUNTERS: [Counter; 4] = [
        Counter::Received,
        Counter::Duplicates,
        Counter::Reordered,
        Counter::Unobserved,
    ];

    fn slot(&mut self, c: Counter) -> Option<&mut u64> {
        match c {
            Counter::Received => Some(&mut self.received),
            Counter::Duplicates => Some(&mut self.duplicates),
            Counter::Reordered => Some(&mut self.reordered),
            Counter::Unobserved => Some(&mut self.unobserved),
            _ => None,
        }
    }

    /// Add `n` to the part of `c` (other counters are not split).
    pub fn add(&mut self, c: Counter, n: u64) {
        if let Some(v) = self.slot(c) {
            *v = v.wrapping_add(n);
        }
    }

    pub fn get(&self, c: Counter) -> u64 {
        match c {
            Counter::Received => self.received,
            Counter::Duplicates => self.duplicates,
            Counter::Reordered => self.reordered,
            Counter::Unobserved => self.unobserved,
            _ => 0,
        }
    }

    fn merge(&mut self, o: &Observed) {
        for c in Observed::COUNTERS {
            self.add(c, o.get(c));
        }
    }
}

/// A worker shard whose snapshot is missing from a merged run (the process died before reporting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingShard {
    /// Its index, from 0.
    pub shard: u32,
    /// Out of how many shards.
    pub of: u32,
    /// Devices it ran.
    pub devices: u64,
    /// How the process ended.
    pub exit: String,
}

/// Histogram key: which metric, from which start.
pub type HistKey = (Metric, Basis);

/// Measurements of one group in one phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSnapshot {
    pub counters: Counters,
    pub histograms: BTreeMap<HistKey, LatencyHistogram>,
    /// Multi-shard runs: the observer counters split by device shard.
    pub observed_by_shard: BTreeMap<u32, Observed>,
}

impl GroupSnapshot {
    /// Add another group's measurements (exact: counters add, histograms add bucket by bucket). A
    /// count that would pass `u64::MAX` is an error, not a wrapped number.
    pub fn merge(&mut self, other: &GroupSnapshot) -> Result<(), SnapshotError> {
        for (key, h) in &other.histograms {
            if let Some(mine) = self.histograms.get(key) {
                if mine.len().checked_add(h.len()).is_none() {
                    return Err(SnapshotError::Overflow(format!(
                        "histogram `{}.{}` ({} + {} values) exceeds {}",
                        key.0.name(),
                        key.1.name(),
                        mine.len(),
                        h.len(),
                        u64::MAX
                    )));
                }
            }
        }
        self.counters.checked_merge(&other.counters)?;
        for (shard, o) in &other.observed_by_shard {
            self.observed_by_shard.entry(*shard).or_default().merge(o);
        }
        for (key, h) in &other.histograms {
            match self.histograms.get_mut(key) {
                Some(mine) => mine.add(h).map_err(HistogramError::Add)?,
                None => {
                    self.histograms.insert(*key, h.clone());
                }
            }
        }
        Ok(())
    }

    pub fn histogram(&self, metric: Metric, basis: Basis) -> Option<&LatencyHistogram> {
        self.histograms.get(&(metric, basis))
    }
}

/// Measurements of one phase, per group.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSnapshot {
    pub name: String,
    pub start_us: u64,
    pub end_us: u64,
    pub groups: Vec<GroupSnapshot>,
}

impl PhaseSnapshot {
    /// All groups of this phase added together.
    pub fn total(&self) -> Result<GroupSnapshot, SnapshotError> {
        let mut t = GroupSnapshot::default();
        for g in &self.groups {
            t.merge(g)?;
        }
        Ok(t)
    }
}

/// Everything one process (or a merge of many) measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSnapshot {
    pub group_names: Vec<String>,
    pub phases: Vec<PhaseSnapshot>,
    /// Worker shards whose snapshots this merge lacks (see [`RunSnapshot::leave_out_missing`]).
    pub missing_shards: Vec<MissingShard>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshots have different shapes: {0}")]
    Shape(String),
    #[error(transparent)]
    Histogram(#[from] HistogramError),
    #[error("a merged count would overflow: {0}")]
    Overflow(String),
}

impl RunSnapshot {
    /// An empty snapshot with the given phases (name, start, end) and groups.
    pub fn empty(phases: &[(String, u64, u64)], group_names: Vec<String>) -> RunSnapshot {
        let phases = phases
            .iter()
            .map(|(name, start_us, end_us)| PhaseSnapshot {
                name: name.clone(),
                start_us: *start_us,
                end_us: *end_us,
                groups: vec![GroupSnapshot::default(); group_names.len()],
            })
            .collect();
        RunSnapshot {
            group_names,
            phases,
            missing_shards: Vec::new(),
        }
    }

    /// End every phase window at `end_us` at the latest: a run that stopped early (interrupted, or
    /// aborted by a watchdog rule) ran its phases only until then, and rates are taken over what ran. A
    /// phase that had not started has zero length, at `end_us`.
    pub fn clip_to(&mut self, end_us: u64) {
        for p in &mut self.phases {
            p.start_us = p.start_us.min(end_us);
            p.end_us = p.end_us.min(end_us);
        }
    }

    /// Keep the accounting true when the snapshots of `missing` shards are not in this merge: their
    /// devices' expected deliveries are missing, so what the observers saw of those devices is left
    /// out too; and when shard 0 (where the observers run) is missing, nobody audited the deliveries of
    /// the surviving shards, so their expected deliveries not otherwise accounted for become
    /// `unobserved`. Then `expected = received + lost + unobserved` holds in every phase and group.
    pub fn leave_out_missing(&mut self, missing: Vec<MissingShard>) {
        let observers_missing = missing.iter().any(|m| m.shard == 0);
        for p in &mut self.phases {
            for g in &mut p.groups {
                for m in &missing {
                    if let Some(o) = g.observed_by_shard.remove(&m.shard) {
                        for c in Observed::COUNTERS {
                            g.counters.remove(c, o.get(c));
                        }
                    }
                }
                if observers_missing {
                    let c = &mut g.counters;
                    let accounted = c.get(Counter::Received) + c.get(Counter::Unobserved);
                    let unaudited = c.get(Counter::ExpectedDeliveries).saturating_sub(accounted);
                    c.add(Counter::Unobserved, unaudited);
                }
            }
        }
        self.missing_shards.extend(missing);
    }

    /// Add another snapshot of the same scenario (another worker, process or pod). Exact.
    pub fn merge(&mut self, other: &RunSnapshot) -> Result<(), SnapshotError> {
        if self.group_names != other.group_names {
            return Err(SnapshotError::Shape(format!(
                "groups {:?} vs {:?}",
                self.group_names, other.group_names
            )));
        }
        let mine: Vec<&str> = self.phases.iter().map(|p| p.name.as_str()).collect();
        let theirs: Vec<&str> = other.phases.iter().map(|p| p.name.as_str()).collect();
        if mine != theirs {
            return Err(SnapshotError::Shape(format!(
                "phases {mine:?} vs {theirs:?}"
            )));
        }
        self.missing_shards
            .extend(other.missing_shards.iter().cloned());
        for (p, o) in self.phases.iter_mut().zip(&other.phases) {
            // A window spans the time its phase ran anywhere; an empty one (a phase that never
            // started in that shard) adds no time.
            let (mine_empty, theirs_empty) = (p.end_us <= p.start_us, o.end_us <= o.start_us);
            if mine_empty && theirs_empty {
                p.start_us = p.start_us.min(o.start_us);
                p.end_us = p.start_us;
            } else if mine_empty {
                (p.start_us, p.end_us) = (o.start_us, o.end_us);
            } else if !theirs_empty {
                p.start_us = p.start_us.min(o.start_us);
                p.end_us = p.end_us.max(o.end_us);
            }
            for (g, og) in p.groups.iter_mut().zip(&o.groups) {
                g.merge(og)?;
            }
        }
        Ok(())
    }

    /// Everything of every phase and group added together.
    pub fn total(&self) -> Result<GroupSnapshot, SnapshotError> {
        let mut t = GroupSnapshot::default();
        for p in &self.phases {
            for g in &p.groups {
                t.merge(g)?;
            }
        }
        Ok(t)
    }

    /// Every counter over all phases and groups (without touching the histograms).
    pub fn counter_totals(&self) -> Counters {
        let mut t = Counters::default();
        for p in &self.phases {
            for g in &p.groups {
                t.merge(&g.counters);
            }
        }
        t
    }

    /// One group over all phases.
    pub fn group_total(&self, group: usize) -> Result<GroupSnapshot, SnapshotError> {
        let mut t = GroupSnapshot::default();
        for p in &self.phases {
            if let Some(g) = p.groups.get(group) {
                t.merge(g)?;
            }
        }
        Ok(t)
    }
}

// ---- wire form: histograms as base64 V2+DEFLATE, keyed "metric.basis" ----

#[derive(Serialize, Deserialize)]
struct GroupWire {
    counters: Counters,
    #[serde(default)]
    histograms: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    observed_by_shard: BTreeMap<u32, Observed>,
}

#[derive(Serialize, Deserialize)]
struct PhaseWire {
    name: String,
    start_us: u64,
    end_us: u64,
    groups: Vec<GroupWire>,
}

#[derive(Serialize, Deserialize)]
struct RunWire {
    group_names: Vec<String>,
    phases: Vec<PhaseWire>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    missing_shards: Vec<MissingShard>,
}

fn hist_key_name((m, b): HistKey) -> String {
    format!("{}.{}", m.name(), b.name())
}

fn hist_key_parse(s: &str) -> Option<HistKey> {
    let (m, b) = s.split_once('.')?;
    let metric = Metric::ALL.into_iter().find(|x| x.name() == m)?;
    let basis = Basis::ALL.into_iter().find(|x| x.name() == b)?;
    Some((metric, basis))
}

impl Serialize for RunSnapshot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut phases = Vec::with_capacity(self.phases.len());
        for p in &self.phases {
            let mut groups = Vec::with_capacity(p.groups.len());
            for g in &p.groups {
                let mut histograms = BTreeMap::new();
                for (k, h) in &g.histograms {
                    let text = histogram::encode(h).map_err(serde::ser::Error::custom)?;
                    histograms.insert(hist_key_name(*k), text);
                }
                groups.push(GroupWire {
                    counters: g.counters.clone(),
                    histograms,
                    observed_by_shard: g.observed_by_shard.clone(),
                });
            }
            phases.push(PhaseWire {
                name: p.name.clone(),
                start_us: p.start_us,
                end_us: p.end_us,
                groups,
            });
        }
        RunWire {
            group_names: self.group_names.clone(),
            phases,
            missing_shards: self.missing_shards.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RunSnapshot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let wire = RunWire::deserialize(d)?;
        // Bound what decoding may allocate (every histogram becomes a dense one) by what a run
        // can produce, before decoding any.
        let cells = wire.phases.len().saturating_mul(wire.group_names.len());
        if wire.phases.len() > MAX_PHASES || cells > MAX_PHASE_GROUPS {
            return Err(D::Error::custom(format!(
                "{} phases x {} groups: a run has at most {MAX_PHASES} phases and {MAX_PHASE_GROUPS} phase x group cells",
                wire.phases.len(),
                wire.group_names.len()
            )));
        }
        let mut phases = Vec::with_capacity(wire.phases.len());
        for p in wire.phases {
            if p.groups.len() != wire.group_names.len() {
                return Err(D::Error::custom(format!(
                    "phase `{}` has {} groups, expected {}",
                    p.name,
                    p.groups.len(),
                    wire.group_names.len()
                )));
            }
            let mut groups = Vec::with_capacity(p.groups.len());
            for g in p.groups {
                let mut histograms = BTreeMap::new();
                for (k, text) in g.histograms {
                    let key = hist_key_parse(&k)
                        .ok_or_else(|| D::Error::custom(format!("unknown histogram `{k}`")))?;
                    let h = histogram::decode(&text).map_err(D::Error::custom)?;
                    histograms.insert(key, h);
                }
                groups.push(GroupSnapshot {
                    counters: g.counters,
                    histograms,
                    observed_by_shard: g.observed_by_shard,
                });
            }
            phases.push(PhaseSnapshot {
                name: p.name,
                start_us: p.start_us,
                end_us: p.end_us,
                groups,
            });
        }
        Ok(RunSnapshot {
            group_names: wire.group_names,
            phases,
            missing_shards: wire.missing_shards,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{new_histogram, record};

    fn sample(seed: u64) -> RunSnapshot {
        let mut s = RunSnapshot::empty(
            &[("ramp".into(), 0, 10), ("steady".into(), 10, 20)],
            vec!["a".into(), "b".into()],
        );
        for (pi, p) in s.phases.iter_mut().enumerate() {
            for (gi, g) in p.groups.iter_mut().enumerate() {
                g.counters
                    .add(Counter::Published, seed + pi as u64 * 10 + gi as u64);
                let mut h = new_histogram().unwrap();
                for v in 0..100 {
                    record(&mut h, seed * 1000 + v * (gi as u64 + 1));
                }
                g.histograms.insert((Metric::Puback, Basis::Corrected), h);
            }
        }
        s
    }

    #[test]
    fn json_round_trip_is_exact() {
        let s = sample(3);
        let text = serde_json::to_string(&s).unwrap();
        let back: RunSnapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(s, back);
    }

    #[test]
    fn merge_adds_counters_and_histograms() {
        let mut a = sample(1);
        let b = sample(2);
        a.merge(&b).unwrap();
        let g = &a.phases[1].groups[1];
        assert_eq!(g.counters.get(Counter::Published), (1 + 11) + (2 + 11));
        assert_eq!(
            g.histogram(Metric::Puback, Basis::Corrected).unwrap().len(),
            200
        );
        let total = a.total().unwrap();
        assert_eq!(
            total
                .histogram(Metric::Puback, Basis::Corrected)
                .unwrap()
                .len(),
            800
        );
    }

    #[test]
    fn merge_refuses_overflowing_counters_and_changes_nothing() {
        let mut a = sample(1);
        let mut b = sample(1);
        b.phases[1].groups[0].counters.0[Counter::Published as usize] = u64::MAX;
        let before = a.clone();
        let e = a.merge(&b).unwrap_err().to_string();
        assert!(e.contains("published"), "{e}");
        assert!(e.contains("overflow"), "{e}");
        // the phase that overflowed is untouched (earlier phases may have merged)
        assert_eq!(a.phases[1].groups[0], before.phases[1].groups[0]);
        // a sum that fits exactly is fine
        let mut c = sample(0);
        let mut d = sample(0);
        let have = c.phases[1].groups[0].counters.get(Counter::Published);
        d.phases[1].groups[0].counters.0[Counter::Published as usize] = u64::MAX - have;
        c.merge(&d).unwrap();
        assert_eq!(
            c.phases[1].groups[0].counters.get(Counter::Published),
            u64::MAX
        );
    }

    #[test]
    fn a_serialised_snapshot_past_the_limits_is_refused_before_decoding() {
        let phases: Vec<(String, u64, u64)> = (0..=MAX_PHASES)
            .map(|i| (format!("p{i}"), i as u64, i as u64 + 1))
            .collect();
        let s = RunSnapshot::empty(&phases, vec!["a".into()]);
        let e = serde_json::from_str::<RunSnapshot>(&serde_json::to_string(&s).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("101 phases x 1 groups"), "{e}");
        let groups: Vec<String> = (0..MAX_PHASE_GROUPS / 2 + 1)
            .map(|i| format!("g{i}"))
            .collect();
        let s = RunSnapshot::empty(&phases[..2], groups);
        let e = serde_json::from_str::<RunSnapshot>(&serde_json::to_string(&s).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("phase x group cells"), "{e}");
        let ok = RunSnapshot::empty(&phases[..MAX_PHASES], vec!["a".into()]);
        let back: RunSnapshot = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
    }

    #[test]
    fn clipped_windows_merge_to_the_time_phases_ran() {
        // Two shards stopped at 15 and 17: the second phase ran until 17; a third phase never
        // started in either, so it stays empty.
        let windows = [
            ("ramp".to_owned(), 0, 10),
            ("steady".to_owned(), 10, 20),
            ("tail".to_owned(), 20, 30),
        ];
        let mut a = RunSnapshot::empty(&windows, vec!["g".into()]);
        let mut b = a.clone();
        a.clip_to(15);
        b.clip_to(17);
        a.merge(&b).unwrap();
        let w: Vec<(u64, u64)> = a.phases.iter().map(|p| (p.start_us, p.end_us)).collect();
        assert_eq!(w, vec![(0, 10), (10, 17), (15, 15)]);
        // An empty window does not shorten or stretch a phase that ran.
        let mut c = RunSnapshot::empty(&windows, vec!["g".into()]);
        c.clip_to(5);
        let mut full = RunSnapshot::empty(&windows, vec!["g".into()]);
        full.merge(&c).unwrap();
        let w: Vec<(u64, u64)> = full.phases.iter().map(|p| (p.start_us, p.end_us)).collect();
        assert_eq!(w, vec![(0, 10), (10, 20), (20, 30)]);
    }

    #[test]
    fn merge_refuses_other_shapes() {
        let mut a = sample(1);
        let mut b = sample(1);
        b.group_names.push("c".into());
        assert!(a.merge(&b).is_err());
    }

    /// Shard `k`'s devices published `expected[k]`; the observer (shard 0) received `received[k]` of them.
    fn sharded(present: &[usize], expected: [u64; 3], received: [u64; 3]) -> RunSnapshot {
        let mut merged = RunSnapshot::empty(&[("steady".into(), 0, 10)], vec!["a".into()]);
        for &k in present {
            let mut s = RunSnapshot::empty(&[("steady".into(), 0, 10)], vec!["a".into()]);
            let g = &mut s.phases[0].groups[0];
            g.counters.add(Counter::ExpectedDeliveries, expected[k]);
            if k == 0 {
                for (shard, &r) in received.iter().enumerate() {
                    g.counters.add(Counter::Received, r);
                    g.counters.add(Counter::Unobserved, 1);
                    let o = g.observed_by_shard.entry(shard as u32).or_default();
                    o.add(Counter::Received, r);
                    o.add(Counter::Unobserved, 1);
                }
            }
            merged.merge(&s).unwrap();
        }
        merged
    }

    fn missing(shard: u32) -> MissingShard {
        MissingShard {
            shard,
            of: 3,
            devices: 5,
            exit: "signal: 9 (SIGKILL)".into(),
        }
    }

    #[test]
    fn a_missing_shard_leaves_its_observed_part_out() {
        let mut s = sharded(&[0, 2], [100, 100, 100], [98, 97, 96]);
        s.leave_out_missing(vec![missing(1)]);
        let c = &s.phases[0].groups[0].counters;
        assert_eq!(c.get(Counter::ExpectedDeliveries), 200);
        assert_eq!(c.get(Counter::Received), 98 + 96);
        assert_eq!(c.get(Counter::Unobserved), 2);
        assert!(!s.phases[0].groups[0].observed_by_shard.contains_key(&1));
        assert_eq!(s.missing_shards, vec![missing(1)]);
        // survives the wire
        let back: RunSnapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn without_the_observer_shard_the_rest_is_unobserved() {
        let mut s = sharded(&[1, 2], [100, 90, 80], [98, 97, 96]);
        s.leave_out_missing(vec![missing(0)]);
        let c = &s.phases[0].groups[0].counters;
        assert_eq!(c.get(Counter::ExpectedDeliveries), 170);
        assert_eq!(c.get(Counter::Received), 0);
        assert_eq!(c.get(Counter::Unobserved), 170);
    }
}
