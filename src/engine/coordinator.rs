//! One coordinator for every way a shard's fleet is split into units: worker threads in this process
//! ([`super::threads`]) and child processes of this binary ([`super::processes`]); shards on other
//! hosts are the same thing at a distance (their snapshots meet in `report merge`). The units do the
//! work; the coordinator starts nothing itself. It ticks once a second (reads the units' live
//! counters, closes a series second, feeds progress, the Prometheus and `--ui` live views and the tick
//! hook), applies the abort rules ([`Watchdog`]), stops the units on Ctrl-C / SIGTERM or an abort, and
//! ends with the last partial second and one [`EngineOutput`] from the units' merged snapshots.

use std::future::Future;

use tokio::time::Instant;

use super::prometheus;
use super::ticker::Seconds;
use super::watchdog::{Abort, Watchdog};
use super::{failure::Refusal, EngineError, EngineOutput, RunOptions, TickSample};
use crate::metrics::{Clock, Counters, IntervalHistograms, RunSnapshot, GROUP_SLOTS};
use crate::plan::{Plan, Timeline};
use crate::progress::Progress;
use crate::report::{Outcome, RunStatus};
use crate::scenario::MqttVersion;

/// The units' cumulative counters at one moment.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub counters: Counters,
    /// Devices connected now.
    pub connected: i64,
    /// Per-group counters (`[group][slot]`), when asked for.
    pub groups: Vec<[u64; GROUP_SLOTS]>,
}

/// What the units did while the coordinator waited.
pub(crate) enum Step {
    /// Latency histograms of the current second (from one unit).
    Latency(IntervalHistograms),
    /// Something the user should read.
    Note(String),
    /// The units' own bookkeeping (a unit finished, a sample arrived): nothing for the coordinator.
    Busy,
    /// Every unit has finished.
    Done,
}

/// What the units measured, once every unit has finished.
pub(crate) struct Ending {
    /// All units' snapshots, merged exactly.
    pub snapshot: RunSnapshot,
    /// The units' own verdict (shards that failed or stopped), which goes before an interrupt.
    pub outcome: Option<Outcome>,
    pub ended_at_us: u64,
    pub worker_threads: usize,
    /// The counters that close the last, partial second.
    pub last: Live,
    /// Latency histograms that arrived after the units finished (the partial second's).
    pub late: Vec<IntervalHistograms>,
}

/// The units of a run, as the coordinator drives them.
pub(crate) trait Units {
    /// How long after each second boundary the coordinator reads the units (once they have sent
    /// that second's histograms or samples).
    const TICK_LAG_US: u64;
    /// What the user reads when a signal stops the run.
    const INTERRUPT_NOTE: &'static str;

    /// Wait for what the units do next. Cancel-safe: it races the coordinator's tick and signal.
    fn next(&mut self) -> impl Future<Output = Step>;
    /// The cumulative counters now (per group too when `groups`).
    fn live(&self, groups: bool) -> Live;
    /// The last CONNACK refusal a unit saw, if it can tell (for the watchdog's message).
    fn refusal(&self, version: MqttVersion) -> Option<Refusal>;
    /// Stop every unit early (a signal, or an abort): each drains and still reports what it measured.
    fn stop(&mut self);
    /// After [`Step::Done`]: what the units measured. `now_us` is the coordinator's end, and
    /// `stopped_at_us` when the run was stopped early.
    fn finish(self, now_us: u64, stopped_at_us: Option<u64>) -> Result<Ending, EngineError>;
}

/// The run the units make up.
pub(crate) struct Run<'a> {
    pub plan: &'a Plan,
    pub opts: &'a RunOptions,
    pub clock: Clock,
    pub timeline: &'a Timeline,
    /// Devices run by these units (for the progress view).
    pub devices: u64,
    /// The abort rules, where this coordinator applies them.
    pub watchdog: Option<Watchdog>,
    pub broker_label: String,
}

/// Drive `units` to the end of the run (or until a signal or the watchdog stops it).
pub(crate) async fn drive<U: Units>(
    mut units: U,
    run: Run<'_>,
) -> Result<EngineOutput, EngineError> {
    let Run {
        plan,
        opts,
        clock,
        timeline,
        devices,
        mut watchdog,
        broker_label,
    } = run;
    let start_us = timeline.start_us;
    let live_view = match opts.prometheus {
        Some(at) => Some(prometheus::serve(at, plan.scenario.name.clone()).await?),
        None => None,
    };
    let mut seconds = Seconds::default().with_ui(opts.ui.as_ref(), plan, timeline);
    let progress = Progress::new(opts.progress, devices, timeline);
    let want_groups = opts.ui.is_some() || opts.tick_hook.is_some();
    // When the run was stopped early (signal or watchdog): its phases end there.
    let mut stopped_at_us: Option<u64> = None;
    let mut abort: Option<Abort> = None;
    let mut interrupted = false;
    // When the last second was closed (its counters read): the last, partial window starts there.
    let mut last_close_us = start_us;
    let mut tick: u32 = 1;
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        let tick_us = start_us + u64::from(tick) * 1_000_000 + U::TICK_LAG_US;
        let tick_at = Instant::from_std(clock.instant_at(tick_us));
        tokio::select! {
            step = units.next() => match step {
                Step::Latency(h) => seconds.add_latency(&h, live_view.as_ref()),
                Step::Note(text) => progress.note(&text),
                Step::Busy => {}
                Step::Done => break,
            },
            _ = &mut signal, if !interrupted => {
                interrupted = true;
                progress.note(U::INTERRUPT_NOTE);
                stopped_at_us.get_or_insert(clock.now_us());
                units.stop();
            }
            _ = tokio::time::sleep_until(tick_at) => {
                if clock.now_us() < tick_us {
                    continue;
                }
                let live = units.live(want_groups);
                if let Some(ui) = &opts.ui {
                    ui.set_groups(&live.groups);
                }
                if let Some(hook) = &opts.tick_hook {
                    hook(&TickSample {
                        tick,
                        connected: live.connected,
                        counters: live.counters.clone(),
                        interval: seconds.pending_encoded(),
                        groups: live.groups,
                    });
                }
                last_close_us = clock.now_us();
                seconds.close(tick, live.connected, live.counters, last_close_us, live_view.as_ref(), &progress);
                tick = tick.saturating_add(1);
                if let (Some(w), None) = (watchdog.as_mut(), stopped_at_us) {
                    w.set_refusal(units.refusal(w.version()));
                    if let Some(a) = w.check(clock.now_us(), seconds.last(), live.connected) {
                        let o = w.outcome(a, seconds.last());
                        progress.note(&o.message);
                        abort = Some(a);
                        stopped_at_us = Some(clock.now_us());
                        units.stop();
                    }
                }
            }
        }
    }
    progress.finish();
    let now_us = clock.now_us();
    let ending = units.finish(now_us, stopped_at_us)?;
    // The last, partial second: what the units counted after the last second the coordinator read.
    for h in &ending.late {
        seconds.add_latency(h, live_view.as_ref());
    }
    if let Some(ui) = &opts.ui {
        ui.set_groups(&ending.last.groups);
    }
    let window_s = now_us.saturating_sub(last_close_us) as f64 / 1e6;
    seconds.finish(
        tick,
        ending.last.connected,
        ending.last.counters,
        now_us,
        window_s,
    );
    // The failure message is built from the final counters, so it agrees with the report.
    let totals = ending.snapshot.counter_totals();
    let verdict = match (abort, ending.outcome, watchdog.as_ref()) {
        (Some(a), _, Some(w)) => Some(w.outcome(a, &totals)),
        (_, Some(o), _) => Some(o),
        _ if interrupted => Some(Outcome {
            status: RunStatus::Interrupted,
            message: "interrupted by signal; the report holds what was measured until then".into(),
        }),
        (_, _, Some(w)) => w.final_check(&totals).map(|a| w.outcome(a, &totals)),
        _ => None,
    };
    Ok(EngineOutput {
        snapshot: ending.snapshot,
        series: seconds.series,
        outcome: verdict.unwrap_or(Outcome {
            status: RunStatus::Completed,
            message: String::new(),
        }),
        started_at_us: start_us,
        ended_at_us: ending.ended_at_us,
        broker_label,
        worker_threads: ending.worker_threads,
    })
}

/// Ctrl-C, or SIGTERM where there is one.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
