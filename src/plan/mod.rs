//! The plan: what will happen and when, computed from a validated scenario. Phases become time windows,
//! devices become global indices sliced into shards and worker threads, and every intended time is a
//! formula ([`pacer`]). No clock reads, no spawning.

pub mod commands;
pub mod pacer;

use std::sync::Arc;

use serde::Serialize;

pub use crate::metrics::{PhaseWindow, Timeline};
use crate::scenario::{Group, PhaseKind, Scenario};

/// Which slice of the fleet this process runs: shard `index` of `count` (contiguous device-id ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// The global device indices `[lo, hi)` owned by this shard out of `total`.
    pub fn range(&self, total: u64) -> (u64, u64) {
        let count = u64::from(self.count.max(1));
        let index = u64::from(self.index).min(count - 1);
        let lo = total * index / count;
        let hi = total * (index + 1) / count;
        (lo, hi)
    }
}

/// A prime above the largest fleet, so `g * CHURN_PRIME mod n` is a permutation of the fleet.
const CHURN_PRIME: u64 = 10_000_019;
const STORM_SALT: u64 = 0x5707_0000_0000_0001;

/// Why a device drops its connection on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    Churn,
    Storm,
}

/// A device's place in the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRef {
    /// Index of the group in the scenario.
    pub group: usize,
    /// Index inside the group, from 0.
    pub index: u64,
    /// Index over the whole fleet, from 0.
    pub global: u64,
}

/// Everything the engine needs to run a scenario (or one shard of it).
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: Arc<Scenario>,
    pub shard: Shard,
    /// First global index of each group.
    group_starts: Vec<u64>,
    total_devices: u64,
}

impl Plan {
    /// Lower a validated scenario into a plan for one shard.
    pub fn new(scenario: Scenario, shard: Shard) -> Plan {
        let mut group_starts = Vec::with_capacity(scenario.groups.len());
        let mut next = 0u64;
        for g in &scenario.groups {
            group_starts.push(next);
            next += u64::from(g.count);
        }
        Plan {
            scenario: Arc::new(scenario),
            shard,
            group_starts,
            total_devices: next,
        }
    }

    /// Devices in the whole fleet (all shards).
    pub fn total_devices(&self) -> u64 {
        self.total_devices
    }

    /// The global device range this shard runs.
    pub fn shard_range(&self) -> (u64, u64) {
        self.shard.range(self.total_devices)
    }

    /// Devices this shard runs.
    pub fn shard_devices(&self) -> u64 {
        let (lo, hi) = self.shard_range();
        hi - lo
    }

    /// The groups, in scenario order.
    pub fn groups(&self) -> &[Group] {
        &self.scenario.groups
    }

    /// Where global device `global` sits.
    pub fn device(&self, global: u64) -> DeviceRef {
        let group = self
            .group_starts
            .partition_point(|&s| s <= global)
            .saturating_sub(1);
        let start = self.group_starts.get(group).copied().unwrap_or(0);
        DeviceRef {
            group,
            index: global - start,
            global,
        }
    }

    /// The connect rate of the ramp (devices per second); without a ramp, everyone connects at once,
    /// bounded only by the handshake limit.
    pub fn connect_rate_per_s(&self) -> f64 {
        self.scenario
            .phases
            .iter()
            .find_map(|p| match p.kind {
                PhaseKind::Ramp { connect_rate_per_s } => Some(connect_rate_per_s),
                _ => None,
            })
            .unwrap_or(f64::INFINITY)
    }

    /// Lay the phases out in time from `start_us`. The ramp lasts until the last device's connect slot.
    pub fn timeline(&self, start_us: u64) -> Timeline {
        let mut t = start_us;
        let mut phases = Vec::with_capacity(self.scenario.phases.len());
        for p in &self.scenario.phases {
            let duration_us = match (&p.kind, p.kind.duration()) {
                (PhaseKind::Ramp { connect_rate_per_s }, _) => {
                    pacer::connect_at(0, self.total_devices, *connect_rate_per_s)
                }
                (_, Some(d)) => u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
                (_, None) => 0,
            };
            let end = t.saturating_add(duration_us);
            phases.push(PhaseWindow {
                name: p.name.clone(),
                start_us: t,
                end_us: end,
            });
            t = end;
        }
        Timeline { start_us, phases }
    }

    /// The next time at or after `after_us` when device `d` is made to drop its connection by a churn
    /// or storm phase. A pure function of the plan: every device computes its own disruptions.
    pub fn next_disruption(
        &self,
        timeline: &Timeline,
        d: DeviceRef,
        after_us: u64,
    ) -> Option<(u64, Disruption)> {
        let n = self.total_devices.max(1);
        let seed = self.scenario.seed;
        let mut best: Option<(u64, Disruption)> = None;
        for (p, w) in self.scenario.phases.iter().zip(&timeline.phases) {
            let hit = match p.kind {
                PhaseKind::Churn { rate_per_s, .. } if rate_per_s > 0.0 => {
                    // Churn event k (from the phase start) drops device pos⁻¹(k mod n); the permutation
                    // spreads events over the fleet instead of walking it in order.
                    let pos = (u128::from(d.global) * u128::from(CHURN_PRIME % n)
                        + u128::from(seed % n))
                        % u128::from(n);
                    let pos = pos as f64;
                    let from = after_us.max(w.start_us).saturating_sub(w.start_us) as f64
                        * rate_per_s
                        / 1e6;
                    let j = ((from - pos) / n as f64).ceil().max(0.0);
                    let k = pos + j * n as f64;
                    let t = w.start_us.saturating_add((k * 1e6 / rate_per_s) as u64);
                    (t >= after_us && t < w.end_us).then_some((t, Disruption::Churn))
                }
                PhaseKind::Storm { fraction, .. } => {
                    let draw = pacer::splitmix64(seed ^ pacer::splitmix64(d.global ^ STORM_SALT))
                        % 1_000_000;
                    let chosen = (draw as f64) < fraction * 1_000_000.0;
                    (chosen && w.start_us >= after_us).then_some((w.start_us, Disruption::Storm))
                }
                _ => None,
            };
            if let Some(h) = hit {
                if best.is_none_or(|b| h.0 < b.0) {
                    best = Some(h);
                }
            }
        }
        best
    }

    /// Global indices run by worker thread `worker` of `workers` inside this shard (a stride over the
    /// shard's range, so every thread takes part in the ramp at once).
    pub fn worker_devices(&self, worker: usize, workers: usize) -> impl Iterator<Item = u64> {
        let (lo, hi) = self.shard_range();
        let workers = workers.max(1) as u64;
        let worker = worker as u64;
        (lo..hi).filter(move |g| g % workers == worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_range_exactly_once() {
        for total in [0u64, 1, 7, 1000, 100_003] {
            for count in 1..=7u32 {
                let mut next = 0;
                for index in 0..count {
                    let (lo, hi) = Shard { index, count }.range(total);
                    assert_eq!(lo, next, "total {total} shard {index}/{count}");
                    next = hi;
                }
                assert_eq!(next, total);
            }
        }
    }

    fn behaviour_plan(devices: u32, kind: &str) -> (Plan, Timeline) {
        let text = format!(
            "name: b\nseed: 3\ngroups:\n  - {{ name: a, count: {devices}, profile: energy-meter }}\nphases:\n  - ramp: {{ connect_rate: 1000/s }}\n  - {kind}\n  - steady: {{ duration: 1s }}\n"
        );
        let s = crate::scenario::parse(&text, "b.yaml").unwrap();
        let plan = Plan::new(s, Shard::default());
        let tl = plan.timeline(1_000_000);
        (plan, tl)
    }

    fn disruptions(plan: &Plan, tl: &Timeline, g: u64) -> Vec<(u64, Disruption)> {
        let mut out = Vec::new();
        let mut after = 0;
        while let Some((t, d)) = plan.next_disruption(tl, plan.device(g), after) {
            out.push((t, d));
            after = t + 1;
        }
        out
    }

    #[test]
    fn churn_drops_every_device_in_turn_at_the_rate() {
        // 10 devices, 10 drops/s for 2 s: 20 events, each device exactly twice, one every 100 ms.
        let (plan, tl) = behaviour_plan(10, "churn: { duration: 2s, rate: 10/s }");
        let w = &tl.phases[1];
        let mut all: Vec<u64> = Vec::new();
        for g in 0..10 {
            let d = disruptions(&plan, &tl, g);
            assert_eq!(d.len(), 2, "device {g}: {d:?}");
            assert!(d
                .iter()
                .all(|(t, k)| *k == Disruption::Churn && *t >= w.start_us && *t < w.end_us));
            all.extend(d.iter().map(|(t, _)| *t));
        }
        all.sort_unstable();
        let expected: Vec<u64> = (0..20).map(|k| w.start_us + k * 100_000).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn storm_drops_the_fraction_at_once() {
        let (plan, tl) = behaviour_plan(2000, "storm: { duration: 2s, fraction: 0.25 }");
        let start = tl.phases[1].start_us;
        let hit: Vec<u64> = (0..2000)
            .filter_map(|g| plan.next_disruption(&tl, plan.device(g), 0).map(|(t, _)| t))
            .collect();
        assert!(hit.iter().all(|&t| t == start));
        assert!((400..600).contains(&hit.len()), "{} of 2000", hit.len());
        // once past the storm, nothing more
        assert_eq!(plan.next_disruption(&tl, plan.device(0), start + 1), None);
    }
}
