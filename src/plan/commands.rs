//! The command schedule of a group: command `n` is intended at `start + n / rate` and goes to device
//! `n mod count` of the group (round-robin). Commands go out while devices publish after the ramp: from
//! the end of the ramp to the end of the last phase. Pure: no clock.

use super::{pacer, Plan, Timeline};
use crate::scenario::PhaseKind;

/// When and to whom one group's commands go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandSchedule {
    /// Intended time of command 0.
    pub start_us: u64,
    /// No command is intended at or after this.
    pub end_us: u64,
    pub rate_per_s: f64,
    /// Devices in the group.
    pub devices: u64,
}

impl CommandSchedule {
    /// The schedule of group `group`, if it has commands.
    pub fn of_group(plan: &Plan, timeline: &Timeline, group: usize) -> Option<CommandSchedule> {
        let g = plan.groups().get(group)?;
        let c = g.commands.as_ref()?;
        // The first phase after the ramp(s): devices are connected and publishing.
        let start_us = plan
            .scenario
            .phases
            .iter()
            .zip(&timeline.phases)
            .find(|(p, _)| !matches!(p.kind, PhaseKind::Ramp { .. }))
            .map_or(timeline.end_us(), |(_, w)| w.start_us);
        Some(CommandSchedule {
            start_us,
            end_us: timeline.end_us(),
            rate_per_s: c.rate_per_s,
            devices: u64::from(g.count).max(1),
        })
    }

    /// Intended send time of command `n`.
    pub fn due(&self, n: u64) -> u64 {
        pacer::connect_at(self.start_us, n, self.rate_per_s)
    }

    /// How many commands the schedule holds (every `n` with `due(n) < end_us`).
    pub fn len(&self) -> u64 {
        if self.end_us <= self.start_us || !self.rate_per_s.is_finite() || self.rate_per_s <= 0.0 {
            return 0;
        }
        let span = (self.end_us - self.start_us) as f64;
        let mut n = (span * self.rate_per_s / 1e6).ceil() as u64;
        // Float rounding: settle on the exact boundary of the formula.
        while n > 0 && self.due(n - 1) >= self.end_us {
            n -= 1;
        }
        while self.due(n) < self.end_us {
            n += 1;
        }
        n
    }

    /// Whether the schedule holds no command.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device (index inside the group) command `n` goes to.
    pub fn target(&self, n: u64) -> u64 {
        n % self.devices
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Shard;

    fn plan(phases: &str, commands: &str) -> (Plan, Timeline) {
        let text = format!(
            "name: c\ngroups:\n  - {{ name: a, count: 4, profile: energy-meter }}\n  - {{ name: b, count: 3, profile: energy-meter{commands} }}\nphases:\n{phases}"
        );
        let s = crate::scenario::parse(&text, "c.yaml").unwrap();
        let p = Plan::new(s, Shard::default());
        let t = p.timeline(1_000_000);
        (p, t)
    }

    #[test]
    fn window_starts_after_the_ramp_and_counts_are_rate_times_duration() {
        let (p, t) = plan(
            "  - ramp: { connect_rate: 7/s }\n  - steady: { duration: 2s }\n  - storm: { duration: 1500ms, fraction: 0.5 }\n",
            ", commands: { rate: 20/s }",
        );
        assert_eq!(CommandSchedule::of_group(&p, &t, 0), None);
        let s = CommandSchedule::of_group(&p, &t, 1).unwrap();
        assert_eq!(s.start_us, t.phases[1].start_us);
        assert_eq!(s.end_us, t.end_us());
        assert_eq!(s.len(), 70, "20/s over 3.5 s");
        assert_eq!(s.due(0), s.start_us);
        assert_eq!(s.due(20), s.start_us + 1_000_000);
        assert!(s.due(s.len() - 1) < s.end_us && s.due(s.len()) >= s.end_us);
        let targets: Vec<u64> = (0..7).map(|n| s.target(n)).collect();
        assert_eq!(targets, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn odd_rates_land_exactly_on_the_formula_boundary() {
        for (rate, dur_ms) in [(3.0, 1000u64), (7.0, 999), (0.5, 10_000), (1000.0, 1)] {
            let s = CommandSchedule {
                start_us: 5,
                end_us: 5 + dur_ms * 1000,
                rate_per_s: rate,
                devices: 1,
            };
            let n = s.len();
            assert!(n == 0 || s.due(n - 1) < s.end_us, "{rate} {dur_ms}");
            assert!(s.due(n) >= s.end_us, "{rate} {dur_ms}");
        }
    }
}
