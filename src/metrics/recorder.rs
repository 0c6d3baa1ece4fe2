//! The per-worker recorder. One lives on each worker thread (single-threaded runtime), so recording
//! takes no lock: counters go to a plain table and to owner-written atomics that the 1 Hz ticker reads;
//! latencies go to one histogram per metric × basis × phase × group, allocated on first use.

use std::cell::RefCell;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::clock::Clock;
use super::histogram::{self, new_histogram, HistogramError, LatencyHistogram};
use super::kinds::{Basis, Counter, Metric};
use super::series::IntervalHistograms;
use super::snapshot::{Counters, RunSnapshot};
use super::timeline::Timeline;

/// Counters of one worker, readable from any thread at any time (for progress and the time series).
/// Only the owning worker writes them.
#[derive(Debug)]
#[repr(align(128))]
pub struct LiveCounters {
    counters: [AtomicU64; Counter::COUNT],
    connected: AtomicI64,
    /// The most recent CONNACK refusal code, `0x100 | code`; 0 while there was none.
    refusal: AtomicU32,
    /// `[group][slot]`: a few counters per group (see [`group_slot`]) for the live view's tiles;
    /// empty when the worker was made without groups.
    groups: Box<[AtomicU64]>,
}

/// Counters also kept per group while the run goes on (for the `--ui` group tiles), in this order:
/// published, acked, received, disconnects (all kinds), publish_failed, sparkplug_births,
/// sparkplug_deaths. A breakdown of counters counted once, never counters of their own.
pub const GROUP_SLOTS: usize = 7;

/// Names of the [`GROUP_SLOTS`] slots, in order.
pub const GROUP_SLOT_NAMES: [&str; GROUP_SLOTS] = [
    "published",
    "acked",
    "received",
    "disconnects",
    "publish_failed",
    "sparkplug_births",
    "sparkplug_deaths",
];

/// The live per-group slot `c` also adds to, if any.
#[inline]
const fn group_slot(c: Counter) -> Option<usize> {
    match c {
        Counter::Published => Some(0),
        Counter::Acked => Some(1),
        Counter::Received => Some(2),
        Counter::DisconnectClosed
        | Counter::DisconnectReset
        | Counter::DisconnectKeepalive
        | Counter::DisconnectProtocol
        | Counter::DisconnectServer => Some(3),
        Counter::PublishFailed => Some(4),
        Counter::SparkplugBirths => Some(5),
        Counter::SparkplugDeaths => Some(6),
        _ => None,
    }
}

/// The [`GROUP_SLOTS`] figures of a group's counters (what the live breakdown holds at the end).
pub fn group_slots_of(c: &Counters) -> [u64; GROUP_SLOTS] {
    let mut out = [0u64; GROUP_SLOTS];
    for &k in Counter::ALL {
        if let Some(v) = group_slot(k).and_then(|slot| out.get_mut(slot)) {
            *v = v.wrapping_add(c.get(k));
        }
    }
    out
}

impl Default for LiveCounters {
    fn default() -> Self {
        LiveCounters::with_groups(0)
    }
}

impl LiveCounters {
    /// Live counters that also keep [`GROUP_SLOTS`] counters for each of `groups` groups.
    pub fn with_groups(groups: usize) -> Self {
        LiveCounters {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            connected: AtomicI64::new(0),
            refusal: AtomicU32::new(0),
            groups: (0..groups.saturating_mul(GROUP_SLOTS))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Add this worker's per-group counters to `out` (`[group][slot]`, as many groups as both have).
    pub fn read_groups(&self, out: &mut [[u64; GROUP_SLOTS]]) {
        for (o, g) in out.iter_mut().zip(self.groups.chunks_exact(GROUP_SLOTS)) {
            for (v, a) in o.iter_mut().zip(g) {
                *v = v.wrapping_add(a.load(Ordering::Relaxed));
            }
        }
    }

    #[inline]
    fn bump_group(&self, c: Counter, group: usize, n: u64) {
        if let Some(slot) = group_slot(c) {
            if let Some(a) = self.groups.get(group * GROUP_SLOTS + slot) {
                a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
            }
        }
    }

    /// Read every counter (relaxed; exact once the worker has stopped).
    pub fn read(&self) -> Counters {
        let mut out = Counters::default();
        for (o, c) in out.0.iter_mut().zip(self.counters.iter()) {
            *o = c.load(Ordering::Relaxed);
        }
        out
    }

    /// The most recent CONNACK refusal code this worker saw, if any (for the exit-3 message).
    pub fn refusal(&self) -> Option<u8> {
        let v = self.refusal.load(Ordering::Relaxed);
        (v & 0x100 != 0).then_some((v & 0xFF) as u8)
    }

    /// Devices currently connected.
    pub fn connected(&self) -> i64 {
        self.connected.load(Ordering::Relaxed)
    }

    #[inline]
    fn bump(&self, c: Counter, n: u64) {
        // Single writer: a load and a store, no locked read-modify-write.
        let a = &self.counters[c as usize];
        a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

const HISTS_PER_GROUP: usize = Metric::COUNT * 2;

struct Tables {
    /// `[phase][group]` counters.
    counters: Vec<Counters>,
    /// `[phase][group][metric][basis]` histograms, allocated on first record.
    histograms: Vec<Option<Box<LatencyHistogram>>>,
}

/// Records measurements of one worker thread.
pub struct Recorder {
    clock: Clock,
    timeline: Arc<Timeline>,
    groups: usize,
    live: Arc<LiveCounters>,
    tables: RefCell<Tables>,
    /// Corrected latency since the last [`Recorder::take_interval`], per metric (live view, 1 Hz).
    interval: RefCell<Vec<Option<Box<LatencyHistogram>>>>,
    alloc_error: RefCell<Option<HistogramError>>,
}

impl Recorder {
    pub fn new(
        clock: Clock,
        timeline: Arc<Timeline>,
        groups: usize,
        live: Arc<LiveCounters>,
    ) -> Self {
        let cells = timeline.phases.len().max(1) * groups;
        Recorder {
            clock,
            timeline,
            groups,
            live,
            tables: RefCell::new(Tables {
                counters: vec![Counters::default(); cells],
                histograms: (0..cells * HISTS_PER_GROUP).map(|_| None).collect(),
            }),
            interval: RefCell::new((0..Metric::COUNT).map(|_| None).collect()),
            alloc_error: RefCell::new(None),
        }
    }

    /// Hand over the corrected latencies recorded since the last call (for the 1 Hz live view).
    pub fn take_interval(&self) -> IntervalHistograms {
        let mut out = IntervalHistograms::default();
        for (i, slot) in self.interval.borrow_mut().iter_mut().enumerate() {
            if let (Some(h), Some(metric)) = (slot.as_deref_mut(), Metric::ALL.get(i)) {
                if !h.is_empty() {
                    out.by_metric.push((*metric, h.clone()));
                    h.reset();
                }
            }
        }
        out
    }

    /// Now, µs since the Unix epoch.
    #[inline]
    pub fn now_us(&self) -> u64 {
        self.clock.now_us()
    }

    /// The shared clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The run's timeline.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    #[inline]
    fn cell(&self, group: usize, at_us: u64) -> usize {
        self.timeline.phase_at(at_us) * self.groups + group.min(self.groups.saturating_sub(1))
    }

    /// Count `n` occurrences of `c` for `group`, attributed to the phase of `at_us`. The only place any
    /// counter is incremented.
    #[inline]
    pub fn count_n(&self, c: Counter, group: usize, at_us: u64, n: u64) {
        self.live.bump(c, n);
        self.live.bump_group(c, group, n);
        let cell = self.cell(group, at_us);
        if let Some(cs) = self.tables.borrow_mut().counters.get_mut(cell) {
            cs.add(c, n);
        }
    }

    /// Count one occurrence of `c`.
    #[inline]
    pub fn count(&self, c: Counter, group: usize, at_us: u64) {
        self.count_n(c, group, at_us, 1);
    }

    /// A CONNACK refused a connection with `code` (remembered, not counted: the refusal is counted
    /// as `connect_fail_rejected` like every other connect failure). Off the hot path: once per refusal.
    pub fn refused(&self, code: u8) {
        self.live
            .refusal
            .store(0x100 | u32::from(code), Ordering::Relaxed);
    }

    /// A device connected (+1) or disconnected (-1).
    #[inline]
    pub fn connected_delta(&self, delta: i64) {
        let a = &self.live.connected;
        a.store(a.load(Ordering::Relaxed) + delta, Ordering::Relaxed);
    }

    /// Record one latency twice: corrected (done - intended) and uncorrected (done - sent). Attributed to
    /// the phase of the intended time.
    #[inline]
    pub fn latency(
        &self,
        metric: Metric,
        group: usize,
        intended_us: u64,
        sent_us: u64,
        done_us: u64,
    ) {
        let base = self.cell(group, intended_us) * HISTS_PER_GROUP + metric as usize * 2;
        let mut tables = self.tables.borrow_mut();
        for (slot, from) in [(base, intended_us), (base + 1, sent_us)] {
            let Some(entry) = tables.histograms.get_mut(slot) else {
                continue;
            };
            if entry.is_none() {
                match new_histogram() {
                    Ok(h) => *entry = Some(Box::new(h)),
                    Err(e) => {
                        *self.alloc_error.borrow_mut() = Some(e);
                        continue;
                    }
                }
            }
            if let Some(h) = entry.as_deref_mut() {
                histogram::record(h, done_us.saturating_sub(from));
            }
        }
        drop(tables);
        if let Some(slot) = self.interval.borrow_mut().get_mut(metric as usize) {
            if slot.is_none() {
                *slot = new_histogram().ok().map(Box::new);
            }
            if let Some(h) = slot.as_deref_mut() {
                // Corrected, except the load generator's send lag: its own part (what a person
                // watching wants to know is whether the client keeps up).
                let from = if metric.is_client() {
                    sent_us
                } else {
                    intended_us
                };
                histogram::record(h, done_us.saturating_sub(from));
            }
        }
    }

    /// Move everything recorded out into a snapshot.
    pub fn into_snapshot(self, group_names: Vec<String>) -> Result<RunSnapshot, HistogramError> {
        if let Some(e) = self.alloc_error.into_inner() {
            return Err(e);
        }
        let windows: Vec<(String, u64, u64)> = self
            .timeline
            .phases
            .iter()
            .map(|p| (p.name.clone(), p.start_us, p.end_us))
            .collect();
        let mut snap = RunSnapshot::empty(&windows, group_names);
        // Histograms are moved out, not copied: at the end of a run every worker thread hands its
        // tables over at about the same time, and a copy would double the peak.
        let mut tables = self.tables.into_inner();
        let groups = self.groups;
        for (pi, phase) in snap.phases.iter_mut().enumerate() {
            for (gi, g) in phase.groups.iter_mut().enumerate() {
                let cell = pi * groups + gi;
                if let Some(c) = tables.counters.get(cell) {
                    g.counters = c.clone();
                }
                for (mi, metric) in Metric::ALL.iter().enumerate() {
                    for (bi, basis) in Basis::ALL.iter().enumerate() {
                        let slot = cell * HISTS_PER_GROUP + mi * 2 + bi;
                        if let Some(h) = tables.histograms.get_mut(slot).and_then(Option::take) {
                            g.histograms.insert((*metric, *basis), *h);
                        }
                    }
                }
            }
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PhaseWindow;

    fn timeline() -> Arc<Timeline> {
        Arc::new(Timeline {
            start_us: 0,
            phases: vec![
                PhaseWindow {
                    name: "ramp".into(),
                    start_us: 0,
                    end_us: 100,
                },
                PhaseWindow {
                    name: "steady".into(),
                    start_us: 100,
                    end_us: 200,
                },
            ],
        })
    }

    #[test]
    fn live_group_breakdown_adds_up_to_the_live_counters() {
        let live = Arc::new(LiveCounters::with_groups(2));
        let r = Recorder::new(Clock::new(), timeline(), 2, live.clone());
        r.count(Counter::Published, 0, 50);
        r.count_n(Counter::Published, 1, 150, 4);
        r.count(Counter::DisconnectReset, 1, 150);
        r.count(Counter::DisconnectKeepalive, 1, 160);
        r.count(Counter::SparkplugBirths, 0, 10);
        r.count(Counter::ConnectAttempts, 0, 10);
        let mut g = [[0u64; GROUP_SLOTS]; 2];
        live.read_groups(&mut g);
        assert_eq!(g[0], [1, 0, 0, 0, 0, 1, 0]);
        assert_eq!(g[1], [4, 0, 0, 2, 0, 0, 0]);
        let c = live.read();
        assert_eq!(g[0][0] + g[1][0], c.get(Counter::Published));
        assert_eq!(g[0][3] + g[1][3], c.disconnects());
        assert_eq!(GROUP_SLOT_NAMES[3], "disconnects");
        // The same figures from the group's recorded counters.
        let snap = r.into_snapshot(vec!["a".into(), "b".into()]).unwrap();
        for (i, want) in g.iter().enumerate() {
            let mut total = Counters::default();
            for p in &snap.phases {
                total.merge(&p.groups[i].counters);
            }
            assert_eq!(&group_slots_of(&total), want);
        }
    }

    #[test]
    fn counts_land_in_phase_and_group_and_live() {
        let live = Arc::new(LiveCounters::default());
        let r = Recorder::new(Clock::new(), timeline(), 2, live.clone());
        r.count(Counter::Published, 0, 50);
        r.count(Counter::Published, 1, 150);
        r.count(Counter::Published, 1, 5_000);
        r.latency(Metric::Puback, 1, 150, 160, 190);
        assert_eq!(live.read().get(Counter::Published), 3);
        // Made without groups: no per-group breakdown.
        let mut none = [[0u64; GROUP_SLOTS]; 2];
        live.read_groups(&mut none);
        assert_eq!(none, [[0; GROUP_SLOTS]; 2]);
        let s = r.into_snapshot(vec!["a".into(), "b".into()]).unwrap();
        assert_eq!(s.phases[0].groups[0].counters.get(Counter::Published), 1);
        assert_eq!(s.phases[1].groups[1].counters.get(Counter::Published), 2);
        let g = &s.phases[1].groups[1];
        let c = g.histogram(Metric::Puback, Basis::Corrected).unwrap();
        let u = g.histogram(Metric::Puback, Basis::Uncorrected).unwrap();
        assert_eq!((c.len(), c.max()), (1, 40));
        assert_eq!((u.len(), u.max()), (1, 30));
        assert!(s.phases[0].groups[0].histograms.is_empty());
    }
}
