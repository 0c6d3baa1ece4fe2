//! What is measured: latency metrics and counters, each a fixed enum with the name used in reports.

use serde::{Deserialize, Serialize};

/// A latency metric (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Intended connect time → CONNACK.
    Connect,
    /// Intended send → PUBACK (QoS 1).
    Puback,
    /// Intended send → PUBCOMP (QoS 2).
    Pubcomp,
    /// SUBSCRIBE → SUBACK.
    Suback,
    /// Intended send → receipt by an observer.
    E2e,
    /// Intended command send → the device's reply received by the commander.
    CommandRtt,
    /// TCP connected → TLS established (corrected: from the intended connect time plus the TCP connect).
    TlsHandshake,
    /// Intended send → the publish written to the socket: how late the load generator sent. Corrected:
    /// from the intended time (all of the lateness); uncorrected: from when nothing held the device
    /// back any more (its socket's send buffer or in-flight window was full: the broker's push-back),
    /// so only the client's own lateness (CPU, scheduling). A health figure of the load generator, not
    /// a latency of the broker.
    SendLag,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Connect,
        Metric::Puback,
        Metric::Pubcomp,
        Metric::Suback,
        Metric::E2e,
        Metric::CommandRtt,
        Metric::TlsHandshake,
        Metric::SendLag,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Whether this measures the load generator itself rather than the broker (left out of latency
    /// baselines and the headline).
    pub fn is_client(self) -> bool {
        self == Metric::SendLag
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Connect => "connect",
            Metric::Puback => "puback",
            Metric::Pubcomp => "pubcomp",
            Metric::Suback => "suback",
            Metric::E2e => "e2e",
            Metric::CommandRtt => "command_rtt",
            Metric::TlsHandshake => "tls_handshake",
            Metric::SendLag => "send_lag",
        }
    }
}

/// Which start a latency is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// From the intended time in the schedule (what reports and gates use).
    Corrected,
    /// From the moment the packet actually went out.
    Uncorrected,
}

impl Basis {
    pub const ALL: [Basis; 2] = [Basis::Corrected, Basis::Uncorrected];

    pub fn name(self) -> &'static str {
        match self {
            Basis::Corrected => "corrected",
            Basis::Uncorrected => "uncorrected",
        }
    }
}

macro_rules! counters {
    ($($variant:ident => $name:literal : $doc:literal,)*) => {
        /// Every counter. Each has exactly one increment site in the code (see `Recorder::count`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Counter {
            $(#[doc = $doc] $variant,)*
        }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// The name used in reports.
            pub fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)*
                }
            }

            /// What the counter counts.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Counter::$variant => $doc,)*
                }
            }

            /// Look a counter up by its report name.
            pub fn from_name(name: &str) -> Option<Counter> {
                match name {
                    $($name => Some(Counter::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

counters! {
    ConnectAttempts => "connect_attempts": "CONNECT handshakes started (TCP connect begun)",
    ConnectSuccesses => "connect_successes": "CONNACK received with success",
    TlsHandshakesFull => "tls_handshakes_full": "TLS handshakes completed in full (no session resumed)",
    TlsHandshakesResumed => "tls_handshakes_resumed": "TLS handshakes that resumed an earlier session (`broker.tls.resumption`)",
    ConnectFailRefused => "connect_fail_refused": "TCP connection refused",
    ConnectFailTimeout => "connect_fail_timeout": "no CONNACK within the connect timeout",
    ConnectFailReset => "connect_fail_reset": "connection reset or closed during the handshake",
    ConnectFailRejected => "connect_fail_rejected": "CONNACK with a refusal code",
    ConnectFailProtocol => "connect_fail_protocol": "malformed or unexpected reply to CONNECT",
    ConnectFailNoPort => "connect_fail_no_port": "no local port or source address to connect from (EADDRNOTAVAIL / EADDRINUSE): the ephemeral ports of a (source address, broker address) pair ran out, or a source address is not local",
    ConnectFailOther => "connect_fail_other": "other socket error while connecting",
    ConnectFailTlsUnknownIssuer => "connect_fail_tls_unknown_issuer": "TLS handshake failed: the broker's certificate is not signed by a trusted CA (`broker.tls.ca`)",
    ConnectFailTlsExpired => "connect_fail_tls_expired": "TLS handshake failed: the broker's certificate has expired or is not valid yet",
    ConnectFailTlsNameMismatch => "connect_fail_tls_name_mismatch": "TLS handshake failed: the broker's certificate is not valid for the server name (`broker.tls.server_name`)",
    ConnectFailTlsTimeout => "connect_fail_tls_timeout": "TLS handshake not finished within the connect timeout",
    ConnectFailTlsAlert => "connect_fail_tls_alert": "TLS handshake ended by an alert from the broker (e.g. client certificate refused)",
    ConnectFailTlsOther => "connect_fail_tls_other": "TLS handshake failed for another reason (bad signature, no common version or cipher, not a TLS listener)",
    ConnectAbandoned => "connect_abandoned": "connect attempts still waiting for the TCP connection or the CONNACK when the run stopped (connect_attempts = connect_successes + connect_fail_* + connect_abandoned)",
    DevicesFailedToStart => "devices_failed_to_start": "devices that could not start at all (their topic or CONNECT packet cannot be encoded); any makes the run fail",
    DisconnectClosed => "disconnect_closed": "connection closed by the broker",
    DisconnectReset => "disconnect_reset": "connection reset or other socket error",
    DisconnectKeepalive => "disconnect_keepalive": "no PINGRESP within the keep-alive interval",
    DisconnectProtocol => "disconnect_protocol": "malformed or unexpected packet from the broker",
    DisconnectServer => "disconnect_server": "DISCONNECT sent by the broker (MQTT 5)",
    ChurnDrops => "churn_drops": "connections a churn phase dropped on purpose (each device then reconnects)",
    StormDrops => "storm_drops": "connections a storm phase dropped on purpose at its start (each device then reconnects)",
    Published => "published": "PUBLISH packets written to the socket (a small send buffer keeps what waits in this host bounded; see unsent_at_end), Sparkplug births, data, device deaths and the NDEATH of a clean end included",
    Acked => "acked": "QoS 1/2 publishes acknowledged (PUBACK / PUBCOMP) with success",
    PublishFailed => "publish_failed": "QoS 1/2 publishes lost: connection dropped before the ack, or a refusal reason code",
    InflightAtEnd => "inflight_at_end": "QoS 1/2 publishes still unacknowledged when the run ended",
    UnsentAtEnd => "unsent_at_end": "QoS 0 publishes still queued in this host (not yet taken by the broker's TCP) when the drain ended, estimated from the queued bytes; the connection is then reset so they never arrive (published - unsent_at_end left the host)",
    Overrun => "overrun": "publishes the load generator itself sent more than one interval after their intended time (CPU, scheduling): nothing held them back (slots the broker held back are pushed_back)",
    PushedBack => "pushed_back": "publish slots that came due while the broker held the device back (its socket's send buffer or its in-flight window was full), counted once when sent or skipped: their lateness is the broker's, not the client's",
    Skipped => "skipped": "scheduled publish slots not sent: a whole interval late (late_sends: skip), or still unsent when their phase had ended (plus a 500 ms grace)",
    PingSent => "ping_sent": "PINGREQ packets sent",
    ExpectedDeliveries => "expected_deliveries": "deliveries observers should receive: each publish times the observer fan-out of its group",
    Received => "received": "distinct messages observers received (each device sequence number once per observer stream)",
    Duplicates => "duplicates": "messages observers received again (a sequence number already seen on that stream)",
    Reordered => "reordered": "messages observers received after a later message of the same device stream",
    Unobserved => "unobserved": "deliveries observers could not see because their session was down: the sequence gap a device stream shows across an observer reconnect (or the seqs before a stream's first message after one), and with worker processes the deliveries of surviving shards when the observing shard 0 died",
    ObserverDisconnects => "observer_disconnects": "observer, commander and Sparkplug host sessions that lost their connection during the run (each reconnects with the devices' backoff)",
    ObserverReconnects => "observer_reconnects": "observer, commander and Sparkplug host sessions connected and subscribed again after a disconnect",
    SparkplugBirths => "sparkplug_births": "NBIRTH and DBIRTH messages observers received",
    SparkplugDeaths => "sparkplug_deaths": "NDEATH and DDEATH messages observers received (an NDEATH is usually the broker delivering a will)",
    SparkplugData => "sparkplug_data": "NDATA and DDATA messages observers received",
    SparkplugSeqGap => "sparkplug_seq_gap": "Sparkplug messages whose seq was not the previous one + 1 (mod 256) within a session",
    SparkplugDataBeforeBirth => "sparkplug_data_before_birth": "Sparkplug data or device births seen before the node's (or device's) birth",
    SparkplugBdSeqMismatch => "sparkplug_bdseq_mismatch": "NDEATH whose bdSeq differs from the current NBIRTH's",
    SparkplugUnknownAlias => "sparkplug_unknown_alias": "Sparkplug data using an alias that was never born",
    SparkplugMalformed => "sparkplug_malformed": "Sparkplug messages that did not decode",
    SparkplugGated => "sparkplug_gated": "Sparkplug publish slots not sent because the edge node was waiting for its primary host's STATE online",
    SparkplugHostOffline => "sparkplug_host_offline": "edge node sessions ended on purpose because their primary host went offline (NDEATH, DISCONNECT, then reconnect)",
    SparkplugBirthBeforeOnline => "sparkplug_birth_before_online": "NBIRTH and DBIRTH a simulated primary host (observer with sparkplug_host) received from its edge nodes before it published STATE online",
    CommandsSent => "commands_sent": "commands the commander published to devices",
    CommandReplies => "command_replies": "distinct device replies to commands the commander received",
    CommandsSkipped => "commands_skipped": "commands not sent because their slot fell while the commander's connection was down",
    CommandsUnanswered => "commands_unanswered": "commands sent that had no reply when the run ended (commands_sent = command_replies + commands_unanswered)",
    CommandsOfflineDelivered => "commands_offline_delivered": "commands a device received that were sent before its current connection's CONNACK (queued by the broker while it was offline)",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &c in Counter::ALL {
            assert!(seen.insert(c.name()), "duplicate {}", c.name());
            assert_eq!(Counter::from_name(c.name()), Some(c));
        }
    }
}
