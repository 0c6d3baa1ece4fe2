//! The abort rules: when a run stops failing instead of going its course. Pure: the coordinator hands
//! in cumulative counters, the number of connected devices and the time (µs since the Unix epoch) once
//! a second, and gets back `Some(Abort)` when a rule fires. No clock reads, no I/O; the words of the
//! outcome come from [`super::failure`].

use super::failure::{self, Refusal};
use super::outcome::{Outcome, RunStatus};
use crate::metrics::{Counter, Counters};
use crate::plan::Timeline;
use crate::scenario::MqttVersion;

/// Why the watchdog failed the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    /// No device could connect.
    Unreachable,
    /// Every connection was down for the loss budget.
    Lost,
    /// Devices connected, but every connection was dropped and none was held for a whole second
    /// between two checks (a broker that drops each connection right after CONNACK, or answers with
    /// garbage).
    NotHeld,
    /// Devices could not start at all.
    DevicesFailed,
}

/// Abort rules, checked once a second ([`Watchdog::check`]) and once at the end of a run that went
/// its course ([`Watchdog::final_check`]).
#[derive(Debug, Clone)]
pub(crate) struct Watchdog {
    /// With no connection ever made, fail once this time has passed...
    unreachable_after_us: u64,
    /// ... or once this many connects have failed.
    fail_fast_failures: u64,
    /// With connections made before, fail when none has been up for this long.
    loss_budget_us: u64,
    /// The end of the last phase: after it devices leave on purpose, and losing them is no failure.
    end_us: u64,
    had_connection: bool,
    zero_since_us: Option<u64>,
    /// Whether some connection was held for a whole second: up at two consecutive checks with fewer
    /// disconnects between them than connections up at the first (a connection that is dropped right
    /// after its CONNACK can still be caught up at one check; it is not held).
    held: bool,
    /// `(connected, disconnects)` at the previous check.
    previous: (i64, u64),
    /// The run's MQTT version, and the last CONNACK refusal (set before each check): for the message.
    version: MqttVersion,
    refusal: Option<Refusal>,
}

impl Watchdog {
    /// The rules for a shard of `devices` devices on `timeline`, with the scenario's connect timeout.
    pub fn new(
        timeline: &Timeline,
        devices: u64,
        connect_timeout_us: u64,
        version: MqttVersion,
    ) -> Watchdog {
        let start_us = timeline.start_us;
        let ramp_end_us = timeline.phases.first().map_or(start_us, |p| p.end_us);
        Watchdog::with_limits(
            ramp_end_us
                .max(start_us.saturating_add(connect_timeout_us))
                .saturating_add(connect_timeout_us),
            devices.clamp(1, 50),
            connect_timeout_us.saturating_mul(2).max(10_000_000),
            timeline.end_us(),
            version,
        )
    }

    /// The rules with explicit limits (see the fields).
    pub fn with_limits(
        unreachable_after_us: u64,
        fail_fast_failures: u64,
        loss_budget_us: u64,
        end_us: u64,
        version: MqttVersion,
    ) -> Watchdog {
        Watchdog {
            unreachable_after_us,
            fail_fast_failures,
            loss_budget_us,
            end_us,
            had_connection: false,
            zero_since_us: None,
            held: false,
            previous: (0, 0),
            version,
            refusal: None,
        }
    }

    /// The run's protocol version (to name CONNACK refusals).
    pub fn version(&self) -> MqttVersion {
        self.version
    }

    /// The last CONNACK refusal seen, for the outcome's message.
    pub fn set_refusal(&mut self, refusal: Option<Refusal>) {
        self.refusal = refusal;
    }

    /// The once-a-second rules, with the cumulative counters `c` and `connected` devices at `now_us`.
    pub fn check(&mut self, now_us: u64, c: &Counters, connected: i64) -> Option<Abort> {
        if c.get(Counter::DevicesFailedToStart) > 0 {
            return Some(Abort::DevicesFailed);
        }
        let ok = c.get(Counter::ConnectSuccesses);
        let failed = c.connect_failures();
        // A broker certificate that does not verify will not verify on the next try either.
        if ok == 0
            && failed > 0
            && (failed >= self.fail_fast_failures
                || now_us >= self.unreachable_after_us
                || certificate_refused(c))
        {
            return Some(Abort::Unreachable);
        }
        // A connection that came and went between two ticks still counts as having had one.
        if ok > 0 {
            self.had_connection = true;
        }
        let disconnects = c.disconnects();
        let (was_connected, was_disconnects) = self.previous;
        if connected > 0
            && was_connected > 0
            && disconnects.saturating_sub(was_disconnects) < was_connected.unsigned_abs()
        {
            self.held = true;
        }
        self.previous = (connected, disconnects);
        if connected > 0 {
            self.zero_since_us = None;
        } else if self.had_connection && now_us < self.end_us {
            let since = *self.zero_since_us.get_or_insert(now_us);
            if now_us.saturating_sub(since) >= self.loss_budget_us {
                return Some(Abort::Lost);
            }
        }
        None
    }

    /// Once, after a run that went its course: devices that could not start, or connections that
    /// were never held (every one dropped, none up for a whole second), fail it even when the run was too
    /// short for the once-a-second rules.
    pub fn final_check(&self, c: &Counters) -> Option<Abort> {
        if c.get(Counter::DevicesFailedToStart) > 0 {
            return Some(Abort::DevicesFailed);
        }
        let ok = c.get(Counter::ConnectSuccesses);
        if ok > 0 && !self.held && c.disconnects() >= ok {
            return Some(Abort::NotHeld);
        }
        if ok == 0 && certificate_refused(c) {
            return Some(Abort::Unreachable);
        }
        None
    }

    /// The outcome of `abort`, explained with counters `c` (the final ones, so the message and the
    /// report agree).
    pub fn outcome(&self, abort: Abort, c: &Counters) -> Outcome {
        let ok = c.get(Counter::ConnectSuccesses);
        match abort {
            Abort::Unreachable => Outcome {
                status: RunStatus::BrokerUnreachable,
                message: failure::unreachable(c, self.refusal, self.version),
            },
            Abort::Lost => Outcome {
                status: RunStatus::BrokerLost,
                message: failure::lost(
                    c,
                    self.refusal,
                    self.version,
                    self.loss_budget_us / 1_000_000,
                ),
            },
            Abort::NotHeld => Outcome {
                status: RunStatus::BrokerLost,
                message: format!(
                    "devices could not hold a connection: {ok} connections came up and {} were lost ({}) before any was held for a second between two once-a-second checks (published: {})",
                    c.disconnects(),
                    failure::disconnect_breakdown(c),
                    c.get(Counter::Published),
                ),
            },
            Abort::DevicesFailed => Outcome {
                status: RunStatus::DevicesFailed,
                message: format!(
                    "{} devices could not start: their topic or CONNECT packet cannot be encoded (an MQTT string is at most 65,535 bytes: check the topic and client_id templates, username and password; `fleetstorm validate` names the key)",
                    c.get(Counter::DevicesFailedToStart),
                ),
            },
        }
    }
}

/// Whether a connect failed because the broker's certificate did not verify (unknown issuer, expired,
/// wrong name): the same on every attempt, so a run without any connection ends at once.
fn certificate_refused(c: &Counters) -> bool {
    [
        Counter::ConnectFailTlsUnknownIssuer,
        Counter::ConnectFailTlsExpired,
        Counter::ConnectFailTlsNameMismatch,
    ]
    .iter()
    .any(|&k| c.get(k) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Counter::*;

    const END: u64 = 60_000_000;

    /// Unreachable after 5 s or 10 failures, a 10 s loss budget, phases ending at 60 s.
    fn watchdog() -> Watchdog {
        Watchdog::with_limits(5_000_000, 10, 10_000_000, END, MqttVersion::V311)
    }

    fn counters(pairs: &[(Counter, u64)]) -> Counters {
        let mut c = Counters::default();
        for (k, n) in pairs {
            c.add(*k, *n);
        }
        c
    }

    /// One check: at `now` (µs), these cumulative counters and this many connected, expect this.
    type Check = (u64, &'static [(Counter, u64)], i64, Option<Abort>);

    const UP: &[(Counter, u64)] = &[(ConnectAttempts, 10), (ConnectSuccesses, 10)];
    const NONE: &[(Counter, u64)] = &[];

    /// Each row: what it proves, then its checks in order on one fresh watchdog.
    const TABLE: &[(&str, &[Check])] = &[
        (
            "unreachable by count: as many failures as the fail-fast bound, none connected",
            &[(
                1_000_000,
                &[(ConnectAttempts, 10), (ConnectFailRefused, 10)],
                0,
                Some(Abort::Unreachable),
            )],
        ),
        (
            "not unreachable yet: fewer failures than the bound, before the deadline",
            &[(
                1_000_000,
                &[(ConnectAttempts, 9), (ConnectFailTimeout, 3)],
                0,
                None,
            )],
        ),
        (
            "unreachable by time: the deadline passed with failures and no success",
            &[
                (
                    4_000_000,
                    &[(ConnectAttempts, 9), (ConnectFailTimeout, 3)],
                    0,
                    None,
                ),
                (
                    5_000_000,
                    &[(ConnectAttempts, 9), (ConnectFailTimeout, 3)],
                    0,
                    Some(Abort::Unreachable),
                ),
            ],
        ),
        (
            "nothing tried yet is not unreachable, even past the deadline",
            &[(6_000_000, NONE, 0, None)],
        ),
        (
            "one success is enough: failures after it are not unreachable",
            &[(
                6_000_000,
                &[
                    (ConnectAttempts, 60),
                    (ConnectSuccesses, 1),
                    (ConnectFailTimeout, 59),
                ],
                1,
                None,
            )],
        ),
        ("healthy: connected", &[(2_000_000, UP, 10, None)]),
        (
            "devices failed to start, whatever else is going on",
            &[(
                2_000_000,
                &[(DevicesFailedToStart, 1), (ConnectSuccesses, 10)],
                10,
                Some(Abort::DevicesFailed),
            )],
        ),
        (
            "lost after the budget, counted from the first check that saw none connected",
            &[
                (1_000_000, UP, 10, None),
                (2_000_000, UP, 0, None),
                (11_000_000, UP, 0, None),
                (12_000_000, UP, 0, Some(Abort::Lost)),
            ],
        ),
        (
            "recovered before the budget: the count starts again",
            &[
                (1_000_000, UP, 10, None),
                (2_000_000, UP, 0, None),
                (11_000_000, UP, 3, None),
                (12_000_000, UP, 0, None),
                (21_000_000, UP, 0, None),
                (22_000_000, UP, 0, Some(Abort::Lost)),
            ],
        ),
        (
            "a connection between two ticks counts as having had one (never seen connected)",
            &[
                (1_000_000, UP, 0, None),
                (10_000_000, UP, 0, None),
                (11_000_000, UP, 0, Some(Abort::Lost)),
            ],
        ),
        (
            "never connected and no failure: nothing to lose",
            &[(1_000_000, NONE, 0, None), (30_000_000, NONE, 0, None)],
        ),
        (
            "nothing after the end: devices leave on purpose then",
            &[(END, UP, 0, None), (END + 20_000_000, UP, 0, None)],
        ),
        (
            "down before the end, still down after it: no loss once the phases are over",
            &[
                (END - 2_000_000, UP, 0, None),
                (END + 20_000_000, UP, 0, None),
            ],
        ),
    ];

    #[test]
    fn abort_rules_once_a_second() {
        for (what, checks) in TABLE {
            let mut w = watchdog();
            for (i, (now, pairs, connected, want)) in checks.iter().enumerate() {
                let got = w.check(*now, &counters(pairs), *connected);
                assert_eq!(got, *want, "{what}: check {i} at {now} µs");
            }
        }
    }

    /// Each row: what it proves, the checks before the end, the final counters, the verdict.
    type Final = (
        &'static str,
        &'static [Check],
        &'static [(Counter, u64)],
        Option<Abort>,
    );

    const DROPPED: &[(Counter, u64)] = &[
        (ConnectSuccesses, 49),
        (DisconnectClosed, 40),
        (DisconnectProtocol, 9),
    ];

    const HALF: &[(Counter, u64)] = &[(ConnectSuccesses, 40), (DisconnectClosed, 10)];

    const FINAL_TABLE: &[Final] = &[
        (
            "not held: every connection dropped, none seen up at a check",
            &[],
            DROPPED,
            Some(Abort::NotHeld),
        ),
        (
            "not held, with checks that saw none connected",
            &[(1_000_000, DROPPED, 0, None)],
            DROPPED,
            Some(Abort::NotHeld),
        ),
        (
            "one up at a single check, dropped right after: caught, not held",
            &[(1_000_000, DROPPED, 3, None)],
            DROPPED,
            Some(Abort::NotHeld),
        ),
        (
            "up at two checks with fewer drops between them: held, so a broker that dropped everyone late is the lost rule's",
            &[(1_000_000, HALF, 30, None), (2_000_000, HALF, 30, None)],
            DROPPED,
            None,
        ),
        (
            "up at two checks, but every one of them dropped in between: not held",
            &[(1_000_000, HALF, 3, None), (2_000_000, DROPPED, 3, None)],
            DROPPED,
            Some(Abort::NotHeld),
        ),
        (
            "some connection was never lost (still up at the end)",
            &[],
            &[(ConnectSuccesses, 49), (DisconnectClosed, 48)],
            None,
        ),
        ("nothing happened", &[], NONE, None),
        (
            "devices failed to start",
            &[],
            &[(DevicesFailedToStart, 2)],
            Some(Abort::DevicesFailed),
        ),
    ];

    #[test]
    fn abort_rules_at_the_end() {
        for (what, checks, last, want) in FINAL_TABLE {
            let mut w = watchdog();
            for (now, pairs, connected, _) in checks.iter() {
                let _ = w.check(*now, &counters(pairs), *connected);
            }
            assert_eq!(w.final_check(&counters(last)), *want, "{what}");
        }
    }

    #[test]
    fn limits_follow_the_timeline_and_the_connect_timeout() {
        let window = |name: &str, start_us, end_us| crate::plan::PhaseWindow {
            name: name.into(),
            start_us,
            end_us,
        };
        // A ramp that ends 1 s after the start, longer than the connect timeout...
        let timeline = Timeline {
            start_us: 1_000_000_000,
            phases: vec![
                window("ramp", 1_000_000_000, 1_004_000_000),
                window("steady", 1_004_000_000, 1_030_000_000),
            ],
        };
        let ramp_end: u64 = 1_004_000_000;
        let w = Watchdog::new(&timeline, 1_000, 2_000_000, MqttVersion::V5);
        assert_eq!(w.fail_fast_failures, 50);
        assert_eq!(w.loss_budget_us, 10_000_000);
        assert_eq!(w.unreachable_after_us, ramp_end + 2_000_000);
        assert_eq!(w.end_us, timeline.end_us());
        // ... and one shorter than it: then the connect timeout counts from the start.
        let w = Watchdog::new(&timeline, 3, 8_000_000, MqttVersion::V5);
        assert_eq!(w.fail_fast_failures, 3);
        assert_eq!(w.loss_budget_us, 16_000_000);
        assert_eq!(w.unreachable_after_us, 1_008_000_000 + 8_000_000);
    }

    #[test]
    fn not_held_message_names_the_drops() {
        let o = watchdog().outcome(Abort::NotHeld, &counters(DROPPED));
        assert_eq!(o.status, RunStatus::BrokerLost);
        assert!(
            o.message
                .contains("49 connections came up and 49 were lost"),
            "{}",
            o.message
        );
        assert!(
            o.message
                .contains("40 closed by the broker, 9 protocol errors"),
            "{}",
            o.message
        );
    }

    #[test]
    fn the_unreachable_message_adds_up_like_the_counters() {
        let c = counters(&[
            (ConnectAttempts, 16),
            (ConnectFailTimeout, 8),
            (ConnectFailRefused, 2),
            (ConnectAbandoned, 6),
        ]);
        let o = watchdog().outcome(Abort::Unreachable, &c);
        assert_eq!(o.status, RunStatus::BrokerUnreachable);
        for part in [
            "16 attempts in all",
            "10 attempts failed",
            "2 refused (TCP)",
            "8 timed out",
            "6 still waiting",
        ] {
            assert!(o.message.contains(part), "`{part}` in {}", o.message);
        }
    }
}
