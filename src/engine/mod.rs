//! The engine: a run's shard on worker threads ([`threads`]) or over worker processes
//! ([`processes`]), both driven by one [`coordinator`] (the 1 Hz tick that feeds progress, the time
//! series and the live views, the abort rules of [`watchdog`], Ctrl-C / SIGTERM, the exact merge).

mod cancel_wait;
mod command;
mod commander;
mod context;
mod coordinator;
mod device;
pub mod embedded_tls;
mod failure;
pub mod footprint;
mod intervals;
pub mod limits;
mod monitor;
mod observer;
mod options;
mod outcome;
mod primary_host;
pub mod processes;
pub mod prometheus;
mod shard_audit;
mod sparkplug;
mod target;
mod threads;
mod ticker;
pub(crate) mod tls;
mod watch;
mod watchdog;
mod worker;

use crate::plan::Plan;

pub(crate) use intervals::{send_intervals, IntervalSender};
pub use options::{EngineError, EngineOutput, RunOptions, StartGate, TickHook, TickSample};
pub use outcome::{Outcome, RunStatus};
pub use prometheus::{Exposition, Prometheus};
pub(crate) use target::{broker_target, ws_endpoints};
pub use watch::{Second, Watch};

/// Run a plan to its end (or until interrupted / the broker is gone) and return what was measured.
pub fn run(plan: &Plan, opts: &RunOptions) -> Result<EngineOutput, EngineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EngineError::Runtime)?;
    rt.block_on(threads::run(plan, opts))
}
