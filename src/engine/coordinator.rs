//! One coordinator for every way a shard's fleet is split into units: worker threads in this process
//! ([`super::threads`]) and child processes of this binary ([`super::processes`]); shards on other
//! hosts are the same thing at a distance (their snapshots meet in `report merge`). The units do the
//! work; the coordinator starts nothing itself. It ticks once a second (reads the units' live
//! counters, closes a series second, feeds progress, the Prometheus and `--ui` live views and the tick
//! hook), applies the abort rules ([`Watchdog`]), stops the units on Ctrl-C / SIGTERM or an abort, and
//! ends with the last partial second and one [`EngineOutput`] from the units' merged snapshots.

use std::future::Future;

use tokio::time::Instant;

use super::outcome::{Outcome, RunStatus};
use super::prometheus;
use super::ticker::Seconds;
use super::watchdog::{Abort, Watchdog};
use super::{failure::Refusal, EngineError, EngineOutput, RunOptions, TickSample};
use crate::metrics::{Clock, Counters, IntervalHistograms, RunSnapshot, GROUP_SLOTS};
use crate::plan::{Plan, Timeline};
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
    let live_view = match &opts.prometheus {
        Some(at) => Some(
            prometheus::serve(at, plan.scenario.name.clone())
                .await
                .map_err(|e| EngineError::Prometheus(at.addr, e))?,
        ),
        None => None,
    };
    let mut seconds = Seconds::default().with_watchers(&opts.watchers);
    for w in &opts.watchers {
        w.start(plan, timeline, devices);
    }
    let note = |text: &str| {
        // `|` not `||`: every watcher hears the note.
        let shown = opts
            .watchers
            .iter()
            .fold(false, |shown, w| w.note(text) | shown);
        if !shown {
            eprintln!("{text}");
        }
    };
    let watch_groups = opts.watchers.iter().any(|w| w.wants_groups());
    let tell_groups = |groups: &[[u64; GROUP_SLOTS]]| {
        if watch_groups {
            for w in &opts.watchers {
                w.groups(groups);
            }
        }
    };
    let want_groups = watch_groups || opts.tick_hook.is_some();
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
                Step::Note(text) => note(&text),
                Step::Busy => {}
                Step::Done => break,
            },
            _ = &mut signal, if !interrupted => {
                interrupted = true;
                note(U::INTERRUPT_NOTE);
                stopped_at_us.get_or_insert(clock.now_us());
                units.stop();
            }
            _ = tokio::time::sleep_until(tick_at) => {
                if clock.now_us() < tick_us {
                    continue;
                }
                let live = units.live(want_groups);
                tell_groups(&live.groups);
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
                seconds.close(tick, live.connected, live.counters, last_close_us, live_view.as_ref());
                tick = tick.saturating_add(1);
                if let (Some(w), None) = (watchdog.as_mut(), stopped_at_us) {
                    w.set_refusal(units.refusal(w.version()));
                    if let Some(a) = w.check(clock.now_us(), seconds.last(), live.connected) {
                        let o = w.outcome(a, seconds.last());
                        note(&o.message);
                        abort = Some(a);
                        stopped_at_us = Some(clock.now_us());
                        units.stop();
                    }
                }
            }
        }
    }
    for w in &opts.watchers {
        w.stop();
    }
    let now_us = clock.now_us();
    let ending = units.finish(now_us, stopped_at_us)?;
    // The last, partial second: what the units counted after the last second the coordinator read.
    for h in &ending.late {
        seconds.add_latency(h, live_view.as_ref());
    }
    tell_groups(&ending.last.groups);
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::metrics::Counter;
    use crate::plan::Shard;

    /// Units that report fixed live counters and, when finished, a fixed ending.
    struct Fake {
        live: Counters,
        connected: i64,
        /// When they finish unless stopped before.
        until: std::time::Instant,
        stopped: Rc<Cell<bool>>,
        totals: Counters,
        outcome: Option<Outcome>,
        windows: Vec<(String, u64, u64)>,
    }

    impl Units for Fake {
        const TICK_LAG_US: u64 = 10_000;
        const INTERRUPT_NOTE: &'static str = "interrupted";

        async fn next(&mut self) -> Step {
            if std::time::Instant::now() >= self.until || self.stopped.get() {
                return Step::Done;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Step::Busy
        }

        fn live(&self, _groups: bool) -> Live {
            Live {
                counters: self.live.clone(),
                connected: self.connected,
                groups: Vec::new(),
            }
        }

        fn refusal(&self, _version: MqttVersion) -> Option<Refusal> {
            None
        }

        fn stop(&mut self) {
            self.stopped.set(true);
        }

        fn finish(self, now_us: u64, _stopped: Option<u64>) -> Result<Ending, EngineError> {
            let mut snapshot = RunSnapshot::empty(&self.windows, vec!["a".into()]);
            if let Some(g) = snapshot
                .phases
                .first_mut()
                .and_then(|p| p.groups.first_mut())
            {
                g.counters.merge(&self.totals);
            }
            Ok(Ending {
                snapshot,
                outcome: self.outcome,
                ended_at_us: now_us,
                worker_threads: 1,
                last: Live {
                    counters: self.totals,
                    connected: 0,
                    groups: Vec::new(),
                },
                late: Vec::new(),
            })
        }
    }

    fn counters(pairs: &[(Counter, u64)]) -> Counters {
        let mut c = Counters::default();
        for (k, n) in pairs {
            c.add(*k, *n);
        }
        c
    }

    /// Drive `units` over a 4-device plan starting now, with or without the abort rules.
    fn drive_fake(units: Fake, with_watchdog: bool) -> EngineOutput {
        let text = "name: c\ngroups:\n  - { name: a, count: 4, profile: energy-meter }\nphases:\n  - ramp: { connect_rate: 1000/s }\n  - steady: { duration: 30s }\n";
        let plan = Plan::new(
            crate::scenario::parse(text, "c.yaml").unwrap(),
            Shard::default(),
        );
        let clock = Clock::new();
        let timeline = plan.timeline(clock.now_us());
        let opts = RunOptions::default();
        let watchdog = with_watchdog
            .then(|| Watchdog::new(&timeline, 4, 1_000_000, plan.scenario.broker.protocol));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(drive(
            units,
            Run {
                plan: &plan,
                opts: &opts,
                clock,
                timeline: &timeline,
                devices: 4,
                watchdog,
                broker_label: "fake".into(),
            },
        ))
        .unwrap()
    }

    /// Units that run for `secs` seconds unless stopped.
    fn fake(live: Counters, connected: i64, secs: f64, totals: Counters) -> (Fake, Rc<Cell<bool>>) {
        let stopped = Rc::new(Cell::new(false));
        let units = Fake {
            live,
            connected,
            until: std::time::Instant::now() + std::time::Duration::from_secs_f64(secs),
            stopped: stopped.clone(),
            totals,
            outcome: None,
            windows: vec![("steady".into(), 0, 1)],
        };
        (units, stopped)
    }

    #[test]
    fn the_watchdog_stops_the_units_at_a_tick_and_explains_with_the_final_counters() {
        let refused = counters(&[
            (Counter::ConnectAttempts, 4),
            (Counter::ConnectFailRefused, 4),
        ]);
        let (units, stopped) = fake(refused.clone(), 0, 60.0, refused);
        let out = drive_fake(units, true);
        assert!(stopped.get(), "the units were told to stop");
        assert_eq!(out.outcome.status, RunStatus::BrokerUnreachable);
        assert!(
            out.outcome.message.contains("4 refused (TCP)"),
            "{}",
            out.outcome.message
        );
        assert!(
            !out.series.is_empty(),
            "the stopped run still has its seconds"
        );
    }

    #[test]
    fn without_the_abort_rules_a_failing_shard_is_not_stopped_by_the_coordinator() {
        // Worker processes: each child applies the rules itself; the parent only reports.
        let refused = counters(&[
            (Counter::ConnectAttempts, 4),
            (Counter::ConnectFailRefused, 4),
        ]);
        // They run past the first tick, which sees nothing but refusals.
        let (mut units, stopped) = fake(refused.clone(), 0, 1.3, refused);
        units.outcome = Some(Outcome {
            status: RunStatus::BrokerUnreachable,
            message: "shard 0/2: unreachable".into(),
        });
        let out = drive_fake(units, false);
        assert!(!stopped.get());
        assert!(!out.series.is_empty(), "a second was closed before the end");
        assert_eq!(out.outcome.status, RunStatus::BrokerUnreachable);
        assert_eq!(out.outcome.message, "shard 0/2: unreachable");
    }

    #[test]
    fn verdicts_at_the_end_abort_rules_then_units_then_completed() {
        let not_held = counters(&[
            (Counter::ConnectSuccesses, 4),
            (Counter::DisconnectClosed, 4),
        ]);
        // (units' outcome, watchdog, final counters) -> status
        let cases = [
            (None, true, not_held.clone(), RunStatus::BrokerLost),
            (None, false, not_held.clone(), RunStatus::Completed),
            (
                Some(RunStatus::WorkerFailed),
                true,
                not_held.clone(),
                RunStatus::WorkerFailed,
            ),
            (
                None,
                true,
                counters(&[(Counter::ConnectSuccesses, 4)]),
                RunStatus::Completed,
            ),
        ];
        for (units_outcome, with_watchdog, totals, want) in cases {
            let (mut units, _) = fake(Counters::default(), 0, 0.0, totals);
            units.outcome = units_outcome.map(|status| Outcome {
                status,
                message: "from the units".into(),
            });
            let out = drive_fake(units, with_watchdog);
            assert_eq!(
                out.outcome.status, want,
                "{units_outcome:?} watchdog {with_watchdog}"
            );
        }
    }
}
