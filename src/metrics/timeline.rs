//! The run's phases laid out in time: which phase an instant belongs to. Built by `plan`, read by the
//! recorder (one histogram per phase) and everything that names a second's phase.

use serde::Serialize;

/// One phase as a window of time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseWindow {
    pub name: String,
    pub start_us: u64,
    pub end_us: u64,
}

/// Phases laid out in time from a start instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    pub start_us: u64,
    pub phases: Vec<PhaseWindow>,
}

impl Timeline {
    /// When publishing stops (the end of the last phase).
    pub fn end_us(&self) -> u64 {
        self.phases.last().map_or(self.start_us, |p| p.end_us)
    }

    /// The phase an operation intended at `t_us` belongs to. Before the start it is the first phase; after
    /// the end (draining) the last one.
    pub fn phase_at(&self, t_us: u64) -> usize {
        self.phases
            .iter()
            .position(|p| t_us < p.end_us)
            .unwrap_or(self.phases.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_at_attributes_edges_to_the_next_phase() {
        let tl = Timeline {
            start_us: 100,
            phases: vec![
                PhaseWindow {
                    name: "ramp".into(),
                    start_us: 100,
                    end_us: 200,
                },
                PhaseWindow {
                    name: "steady".into(),
                    start_us: 200,
                    end_us: 300,
                },
            ],
        };
        let cases = [
            (0, 0),
            (100, 0),
            (199, 0),
            (200, 1),
            (299, 1),
            (300, 1),
            (10_000, 1),
        ];
        for (t, want) in cases {
            assert_eq!(tl.phase_at(t), want, "t={t}");
        }
        assert_eq!(tl.end_us(), 300);
    }
}
