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

/// Histogram key: which metric, from which start.
pub type HistKey = (Metric, Basis);

/// Measurements of one group in one phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSnapshot {
    pub counters: Counters,
    pub histograms: BTreeMap<HistKey, LatencyHistogram>,
}

impl GroupSnapshot {
    /// Add another group's measurements (exact: counters add, histograms add bucket by bucket).
    pub fn merge(&mut self, other: &GroupSnapshot) -> Result<(), HistogramError> {
        self.counters.merge(&other.counters);
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
    pub fn total(&self) -> Result<GroupSnapshot, HistogramError> {
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
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshots have different shapes: {0}")]
    Shape(String),
    #[error(transparent)]
    Histogram(#[from] HistogramError),
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
        }
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
        for (p, o) in self.phases.iter_mut().zip(&other.phases) {
            p.start_us = p.start_us.min(o.start_us);
            p.end_us = p.end_us.max(o.end_us);
            for (g, og) in p.groups.iter_mut().zip(&o.groups) {
                g.merge(og)?;
            }
        }
        Ok(())
    }

    /// Everything of every phase and group added together.
    pub fn total(&self) -> Result<GroupSnapshot, HistogramError> {
        let mut t = GroupSnapshot::default();
        for p in &self.phases {
            for g in &p.groups {
                t.merge(g)?;
            }
        }
        Ok(t)
    }

    /// One group over all phases.
    pub fn group_total(&self, group: usize) -> Result<GroupSnapshot, HistogramError> {
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
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RunSnapshot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let wire = RunWire::deserialize(d)?;
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
    fn merge_refuses_other_shapes() {
        let mut a = sample(1);
        let mut b = sample(1);
        b.group_names.push("c".into());
        assert!(a.merge(&b).is_err());
    }
}
