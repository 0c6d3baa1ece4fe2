//! A worker thread: a single-threaded tokio runtime running a slice of the shard's devices, with its
//! own lock-free recorder. Devices are spawned at their connect slot, not all up front, so a million
//! waiting devices cost nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::context::WorkerCtx;
use super::{device, EngineError};
use crate::metrics::{Clock, LiveCounters, Recorder, RunSnapshot};
use crate::plan::{pacer, Plan, Timeline};

/// What a worker needs to start.
pub struct WorkerSpec {
    pub index: usize,
    pub count: usize,
    pub plan: Arc<Plan>,
    pub timeline: Arc<Timeline>,
    pub clock: Clock,
    pub live: Arc<LiveCounters>,
    pub cancel: CancellationToken,
    /// Cancelled once every command has its reply.
    pub commands_done: CancellationToken,
    pub brokers: Vec<SocketAddr>,
    pub handshake_permits: usize,
    pub drain_us: u64,
    /// One-second latency histograms for the live view.
    pub intervals: super::IntervalSender,
}

/// Run the worker to completion on the current thread and return what it measured.
pub fn run(spec: WorkerSpec) -> Result<RunSnapshot, EngineError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EngineError::Runtime)?;
    let local = tokio::task::LocalSet::new();
    let group_names: Vec<String> = spec.plan.groups().iter().map(|g| g.name.clone()).collect();
    let recorder = Recorder::new(
        spec.clock,
        spec.timeline.clone(),
        group_names.len(),
        spec.live.clone(),
    );
    let ctx = WorkerCtx::new(
        spec.plan.clone(),
        recorder,
        spec.brokers.clone(),
        (spec.cancel.clone(), spec.commands_done.clone()),
        spec.handshake_permits,
        spec.drain_us,
    );
    let rate = spec.plan.connect_rate_per_s();
    let start_us = spec.timeline.start_us;
    let end_us = spec.timeline.end_us();
    let task_ctx = ctx.clone();
    local.block_on(&rt, async move {
        let ctx = task_ctx;
        let tracker = TaskTracker::new();
        let done = CancellationToken::new();
        // The one waiter on the run's token for this thread's devices: wakes them all at cancel.
        let waker_ctx = ctx.clone();
        let woken = done.clone();
        let cancel_waker = tokio::task::spawn_local(async move {
            tokio::select! {
                _ = waker_ctx.cancel.cancelled() => waker_ctx.cancel_waiters.wake_all(),
                _ = woken.cancelled() => {}
            }
        });
        let ticker_ctx = ctx.clone();
        let ticker = tokio::task::spawn_local(super::send_intervals(
            move || Some(ticker_ctx.recorder.take_interval()),
            spec.clock,
            start_us,
            spec.intervals.clone(),
            done.clone(),
        ));
        for global in spec.plan.worker_devices(spec.index, spec.count) {
            let at_us = pacer::connect_at(start_us, global, rate);
            if at_us >= end_us {
                break;
            }
            let at = Instant::from_std(
                spec.clock
                    .instant_at(at_us.saturating_sub(device::EARLY_US)),
            );
            tokio::select! {
                biased;
                _ = spec.cancel.cancelled() => break,
                _ = tokio::time::sleep_until(at) => {}
            }
            tracker.spawn_local(device::run(ctx.clone(), spec.plan.device(global)));
        }
        tracker.close();
        tracker.wait().await;
        done.cancel();
        let _ = ticker.await;
        let _ = cancel_waker.await;
    });
    let ctx = std::rc::Rc::try_unwrap(ctx)
        .map_err(|_| EngineError::Internal("device tasks outlived their worker"))?;
    ctx.recorder
        .into_snapshot(group_names)
        .map_err(EngineError::Histogram)
}
