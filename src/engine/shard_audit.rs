//! Multi-shard runs: which worker shard each device stream belongs to, and the observer counters
//! split by it.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::metrics::{Counter, Observed, RunSnapshot};
use crate::plan::{Plan, Shard};
use crate::scenario::template::TemplateVars;

/// Which worker shard each device stream belongs to, and the observer counters per phase, group and
/// shard, so the parent can leave out a dead shard's part (see `RunSnapshot::leave_out_missing`).
/// Built once, only when the plan has more than one shard; looked up once per new stream.
pub(super) struct ShardAudit {
    of_client: HashMap<Box<str>, u16>,
    shards: usize,
    groups: usize,
    /// `[phase][group][shard]`.
    tally: RefCell<Vec<Observed>>,
}

impl ShardAudit {
    pub(super) fn new(plan: &Plan) -> Option<ShardAudit> {
        let count = plan.shard.count;
        if count <= 1 {
            return None;
        }
        let total = plan.total_devices();
        let scenario = &plan.scenario;
        let mut of_client = HashMap::new();
        let mut shard: u32 = 0;
        let mut shard_end = Shard { index: 0, count }.range(total).1;
        for global in 0..total {
            while global >= shard_end && shard + 1 < count {
                shard += 1;
                shard_end = Shard {
                    index: shard,
                    count,
                }
                .range(total)
                .1;
            }
            let d = plan.device(global);
            let Some(g) = plan.groups().get(d.group) else {
                continue;
            };
            if g.sparkplug_group().is_some() {
                continue;
            }
            let id = scenario.broker.client_id.render(&TemplateVars {
                group: &g.name,
                index: d.index,
                global_index: d.global,
                client_id: "",
            });
            of_client.insert(
                id.into_boxed_str(),
                u16::try_from(shard).unwrap_or(u16::MAX),
            );
        }
        let shards = count as usize;
        let groups = plan.groups().len();
        let phases = plan.timeline(0).phases.len().max(1);
        Some(ShardAudit {
            of_client,
            shards,
            groups,
            tally: RefCell::new(vec![Observed::default(); phases * groups * shards]),
        })
    }

    pub(super) fn shard_of(&self, device_id: &str) -> u16 {
        self.of_client.get(device_id).copied().unwrap_or(0)
    }

    pub(super) fn add(&self, phase: usize, group: usize, shard: u16, c: Counter, n: u64) {
        let cell = (phase * self.groups + group) * self.shards + usize::from(shard);
        if let Some(o) = self.tally.borrow_mut().get_mut(cell) {
            o.add(c, n);
        }
    }

    /// Move the tallies into the snapshot's groups.
    pub(super) fn into_snapshot(self, snap: &mut RunSnapshot) {
        let tally = self.tally.into_inner();
        for (pi, p) in snap.phases.iter_mut().enumerate() {
            for (gi, g) in p.groups.iter_mut().enumerate() {
                for shard in 0..self.shards {
                    let cell = (pi * self.groups + gi) * self.shards + shard;
                    match (tally.get(cell), u32::try_from(shard)) {
                        (Some(o), Ok(shard)) if *o != Observed::default() => {
                            g.observed_by_shard.insert(shard, *o);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
