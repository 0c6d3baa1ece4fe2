//! The words of an exit-3 outcome: what failed, by reason, and what to do about it. Kept apart from
//! the abort rules (the [`super::watchdog::Watchdog`] decides *when*; this says *what happened*), and built
//! only from counters and the last CONNACK refusal, so it costs nothing while the run is healthy.

use std::sync::Arc;

use crate::metrics::{Counter, Counters, LiveCounters};
use crate::mqtt::codec::{connack_advice, connack_meaning};
use crate::mqtt::TlsFailure;
use crate::scenario::MqttVersion;

/// A CONNACK refusal code and the protocol version it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub version: MqttVersion,
    pub code: u8,
}

impl Refusal {
    /// `0x05 not authorized` / `0x87 Not authorized`.
    pub fn describe(self) -> String {
        format!(
            "{:#04x} {}",
            self.code,
            connack_meaning(self.version, self.code)
        )
    }
}

/// The most recent refusal any worker saw.
pub(crate) fn last_refusal(lives: &[Arc<LiveCounters>], version: MqttVersion) -> Option<Refusal> {
    lives
        .iter()
        .find_map(|l| l.refusal())
        .map(|code| Refusal { version, code })
}

/// Connect failures by reason, the non-zero ones only: `3 refused (TCP), 2 refused by CONNACK:
/// 0x05 not authorized`.
pub(crate) fn connect_breakdown(c: &Counters, refusal: Option<Refusal>) -> String {
    let mut parts = Vec::new();
    let mut part = |counter: Counter, what: String| {
        let n = c.get(counter);
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    };
    part(Counter::ConnectFailRefused, "refused (TCP)".into());
    part(Counter::ConnectFailTimeout, "timed out".into());
    part(
        Counter::ConnectFailReset,
        "reset or closed during the handshake".into(),
    );
    part(
        Counter::ConnectFailRejected,
        match refusal {
            Some(r) => format!("refused by CONNACK: {}", r.describe()),
            None => "refused by CONNACK".into(),
        },
    );
    part(
        Counter::ConnectFailProtocol,
        "protocol errors (malformed or unexpected reply to CONNECT)".into(),
    );
    part(
        Counter::ConnectFailNoPort,
        "found no local port or source address".into(),
    );
    part(Counter::ConnectFailOther, "other socket errors".into());
    for (counter, failure) in TLS_FAILURES {
        part(counter, tls_failure_name(failure).into());
    }
    parts.join(", ")
}

/// Disconnects by reason, the non-zero ones only.
pub(crate) fn disconnect_breakdown(c: &Counters) -> String {
    let mut parts = Vec::new();
    for (counter, what) in [
        (Counter::DisconnectClosed, "closed by the broker"),
        (Counter::DisconnectReset, "reset"),
        (Counter::DisconnectKeepalive, "keep-alive timeouts"),
        (
            Counter::DisconnectProtocol,
            "protocol errors (malformed or unexpected packet)",
        ),
        (Counter::DisconnectServer, "DISCONNECT from the broker"),
    ] {
        let n = c.get(counter);
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(", ")
}

/// The TLS handshake failure counters and the reasons they count.
const TLS_FAILURES: [(Counter, TlsFailure); 6] = [
    (
        Counter::ConnectFailTlsUnknownIssuer,
        TlsFailure::UnknownIssuer,
    ),
    (Counter::ConnectFailTlsExpired, TlsFailure::Expired),
    (
        Counter::ConnectFailTlsNameMismatch,
        TlsFailure::NameMismatch,
    ),
    (Counter::ConnectFailTlsTimeout, TlsFailure::Timeout),
    (Counter::ConnectFailTlsAlert, TlsFailure::Alert),
    (Counter::ConnectFailTlsOther, TlsFailure::Other),
];

/// The counter of a TLS handshake failure.
pub(crate) fn tls_failure_counter(f: TlsFailure) -> Counter {
    TLS_FAILURES
        .iter()
        .find(|(_, r)| *r == f)
        .map_or(Counter::ConnectFailTlsOther, |(c, _)| *c)
}

fn tls_failure_name(f: TlsFailure) -> &'static str {
    match f {
        TlsFailure::UnknownIssuer => "TLS: broker certificate from an unknown issuer",
        TlsFailure::Expired => "TLS: broker certificate expired or not yet valid",
        TlsFailure::NameMismatch => "TLS: broker certificate not valid for the server name",
        TlsFailure::Timeout => "TLS: handshake timed out",
        TlsFailure::Alert => "TLS: alert from the broker",
        TlsFailure::Other => "TLS: other handshake failures",
    }
}

/// What to do, judged from the reasons that occurred (a refusal first: it is the broker's own word).
fn advice(c: &Counters, refusal: Option<Refusal>, version: MqttVersion) -> String {
    if let (Some(r), true) = (refusal, c.get(Counter::ConnectFailRejected) > 0) {
        return connack_advice(r.version, r.code).to_owned();
    }
    // A certificate that does not verify: the reason and the key that fixes it.
    if let Some((_, f)) = TLS_FAILURES.iter().find(|(k, _)| c.get(*k) > 0) {
        return f.advice().to_owned();
    }
    if c.get(Counter::ConnectFailProtocol) > 0 || c.get(Counter::DisconnectProtocol) > 0 {
        let v = match version {
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5",
        };
        return format!(
            "the broker's replies are not valid MQTT {v} (or it refused the WebSocket upgrade): check that the URL's scheme matches the listener (mqtt:// for plain TCP; ws://host:port/path for a WebSocket listener, with the broker's path; an observer's message names the HTTP status) and that `broker.protocol` matches the broker"
        );
    }
    if c.get(Counter::ConnectFailTimeout) > 0 {
        return "is the broker reachable (address, firewall) and not overloaded? A longer `broker.connect_timeout` or a slower ramp helps a slow broker".into();
    }
    if c.get(Counter::ConnectFailReset) > 0 {
        return "the broker closed connections during the handshake: check its log (connection limits, TLS required, client id rules)".into();
    }
    "is the broker running and reachable?".into()
}

/// What to say about connects that found no local port or source address (nothing when none did).
pub(crate) fn no_port_hint(c: &Counters) -> String {
    match c.get(Counter::ConnectFailNoPort) {
        0 => String::new(),
        n => format!(
            " {n} of them found no local port or source address (connect_fail_no_port): check that every `broker.source_addresses` entry is an address of this host, and see `fleetstorm doctor` for local ports"
        ),
    }
}

/// The message of a run in which no device could connect.
pub(crate) fn unreachable(c: &Counters, refusal: Option<Refusal>, version: MqttVersion) -> String {
    let abandoned = c.get(Counter::ConnectAbandoned);
    let waiting = if abandoned > 0 {
        format!(
            "; {} attempts in all, {abandoned} still waiting for the broker when the run stopped",
            c.get(Counter::ConnectAttempts)
        )
    } else {
        String::new()
    };
    format!(
        "no device could connect: {} attempts failed ({}){waiting}; {}",
        c.connect_failures(),
        connect_breakdown(c, refusal),
        advice(c, refusal, version)
    ) + &no_port_hint(c)
}

/// The message of a run whose every connection was lost for `budget_s` seconds.
pub(crate) fn lost(
    c: &Counters,
    refusal: Option<Refusal>,
    version: MqttVersion,
    budget_s: u64,
) -> String {
    let disconnects = c.disconnects();
    let failed = c.connect_failures();
    let mut out = format!(
        "every connection was lost and none came back within {budget_s} s ({disconnects} disconnects"
    );
    if disconnects > 0 {
        out.push_str(&format!(": {}", disconnect_breakdown(c)));
    }
    out.push_str(&format!("; {failed} reconnect attempts failed"));
    if failed > 0 {
        out.push_str(&format!(": {}", connect_breakdown(c, refusal)));
    }
    out.push(')');
    if failed > 0 || c.get(Counter::DisconnectProtocol) > 0 {
        out.push_str("; ");
        out.push_str(&advice(c, refusal, version));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(pairs: &[(Counter, u64)]) -> Counters {
        let mut c = Counters::default();
        for &(k, n) in pairs {
            c.add(k, n);
        }
        c
    }

    #[test]
    fn a_refusal_names_its_code_meaning_and_fix() {
        let c = counters(&[(Counter::ConnectFailRejected, 50)]);
        let v311 = Refusal {
            version: MqttVersion::V311,
            code: 5,
        };
        let m = unreachable(&c, Some(v311), MqttVersion::V311);
        assert!(
            m.starts_with("no device could connect: 50 attempts failed"),
            "{m}"
        );
        assert!(
            m.contains("50 refused by CONNACK: 0x05 not authorized"),
            "{m}"
        );
        assert!(m.contains("broker.username"), "{m}");
        let v5 = Refusal {
            version: MqttVersion::V5,
            code: 0x87,
        };
        let m = unreachable(&c, Some(v5), MqttVersion::V5);
        assert!(m.contains("CONNACK: 0x87 Not authorized"), "{m}");
        let bad = Refusal {
            version: MqttVersion::V311,
            code: 4,
        };
        assert!(unreachable(&c, Some(bad), MqttVersion::V311)
            .contains("0x04 bad user name or password"));
    }

    #[test]
    fn only_reasons_that_occurred_are_listed_and_protocol_errors_are_among_them() {
        let c = counters(&[
            (Counter::ConnectFailProtocol, 3),
            (Counter::ConnectFailRefused, 2),
        ]);
        let m = unreachable(&c, None, MqttVersion::V311);
        assert!(m.contains("5 attempts failed"), "{m}");
        assert!(m.contains("2 refused (TCP)"), "{m}");
        assert!(m.contains("3 protocol errors"), "{m}");
        assert!(!m.contains("timed out") && !m.contains("CONNACK"), "{m}");
        assert!(m.contains("not valid MQTT 3.1.1"), "{m}");
    }

    #[test]
    fn a_lost_run_lists_disconnects_by_reason() {
        let c = counters(&[
            (Counter::DisconnectProtocol, 4),
            (Counter::DisconnectClosed, 1),
            (Counter::ConnectFailRefused, 7),
        ]);
        let m = lost(&c, None, MqttVersion::V5, 10);
        assert!(
            m.contains("within 10 s (5 disconnects: 1 closed by the broker, 4 protocol errors"),
            "{m}"
        );
        assert!(
            m.contains("7 reconnect attempts failed: 7 refused (TCP)"),
            "{m}"
        );
    }

    #[test]
    fn every_code_has_a_meaning_for_its_version() {
        for code in 1..=5u8 {
            assert!(!connack_meaning(MqttVersion::V311, code).contains("not a valid"));
        }
        for code in [0x80u8, 0x86, 0x87, 0x8A, 0x9F] {
            assert!(!connack_meaning(MqttVersion::V5, code).contains("not a valid"));
        }
        assert!(connack_meaning(MqttVersion::V311, 0x87).contains("not a valid"));
        assert!(connack_meaning(MqttVersion::V5, 5).contains("not a valid"));
    }
}
