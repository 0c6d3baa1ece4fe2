//! Sparkplug B primary host STATE on both sides of a run: an edge node's gate (births wait for the
//! host's STATE `online: true`; the host going offline ends a born node's session) and the primary host
//! application an observer plays so a scenario needs no outside SCADA (STATE will, online after
//! subscribing, offline at a clean end). The rules themselves live in `telemetry::sparkplug::StateGate`.

use crate::mqtt::codec;
use crate::mqtt::Will;
use crate::scenario::{MqttVersion, Qos, SparkplugHost};
use crate::telemetry::sparkplug::StateGate;

/// What a STATE message did to an edge node's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostEvent {
    /// The gate opened: the node may publish its births now.
    Online,
    /// The gate closed while open: the node publishes NDEATH, disconnects and reconnects.
    Offline,
}

/// An edge node's view of its primary host.
pub struct HostGate {
    gate: StateGate,
    topic: Box<str>,
}

impl HostGate {
    /// A gate for `host_id`, closed until an online STATE arrives.
    pub fn new(host_id: &str) -> HostGate {
        let gate = StateGate::new(host_id);
        let topic = gate.topic().into();
        HostGate { gate, topic }
    }

    /// `spBv1.0/STATE/{host_id}`: subscribe at QoS 1 after CONNACK.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether births and data may go out.
    pub fn open(&self) -> bool {
        self.gate.births_allowed()
    }

    /// A new MQTT session: closed until the (retained) STATE is seen again.
    pub fn reconnected(&mut self) {
        self.gate.reconnected();
    }

    /// Feed a PUBLISH the node received; a transition of the gate, if it made one. Other topics, stale
    /// and unreadable STATE messages change nothing.
    pub fn on_publish(&mut self, topic: &[u8], payload: &[u8]) -> Option<HostEvent> {
        if topic != self.topic.as_bytes() {
            return None;
        }
        let was = self.gate.births_allowed();
        self.gate.on_message(&self.topic, payload).ok()?;
        match (was, self.gate.births_allowed()) {
            (false, true) => Some(HostEvent::Online),
            (true, false) => Some(HostEvent::Offline),
            _ => None,
        }
    }
}

/// The Sparkplug 3.0 STATE payload.
pub fn state_payload(online: bool, timestamp_ms: u64) -> Vec<u8> {
    format!(r#"{{"online":{online},"timestamp":{timestamp_ms}}}"#).into_bytes()
}

/// The primary host application an observer session plays.
pub struct HostSession {
    host_id: Box<str>,
    topic: String,
    /// One timestamp for the will, the online and the offline STATE of this session, as Sparkplug 3.0
    /// asks: a host's later session has a later one, so edge nodes drop this session's will as stale.
    timestamp_ms: u64,
    online_delay_us: u64,
    /// When the host publishes STATE online; `None` until it has subscribed.
    online_at_us: Option<u64>,
    online: bool,
}

impl HostSession {
    /// A host session connecting at `now_us`.
    pub fn new(host: &SparkplugHost, now_us: u64) -> HostSession {
        HostSession {
            host_id: host.host_id.as_str().into(),
            topic: StateGate::new(&host.host_id).topic(),
            timestamp_ms: now_us / 1000,
            online_delay_us: u64::try_from(host.online_delay.as_micros()).unwrap_or(u64::MAX),
            online_at_us: None,
            online: false,
        }
    }

    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// The CONNECT will: STATE offline, QoS 1, retained.
    pub fn will(&self) -> Will {
        Will {
            topic: self.topic.clone(),
            payload: state_payload(false, self.timestamp_ms),
            qos: Qos::AtLeastOnce,
            retain: true,
        }
    }

    /// The subscription is acknowledged: go online after the delay.
    pub fn subscribed(&mut self, now_us: u64) {
        self.online_at_us = Some(now_us.saturating_add(self.online_delay_us));
    }

    /// When the host should publish STATE online, while it has not yet.
    pub fn online_due_us(&self) -> Option<u64> {
        self.online_at_us.filter(|_| !self.online)
    }

    /// Whether the host has published STATE online.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Append the STATE online PUBLISH (QoS 1, retained, packet id `pkid` from the session's protocol
    /// state) and count the host as online.
    pub fn go_online(&mut self, version: MqttVersion, pkid: u16, out: &mut Vec<u8>) {
        self.online = self.encode(version, true, pkid, out);
    }

    /// Append the STATE offline PUBLISH (QoS 1, retained, packet id `pkid`) for a clean end.
    pub fn go_offline(&mut self, version: MqttVersion, pkid: u16, out: &mut Vec<u8>) {
        self.encode(version, false, pkid, out);
        self.online = false;
    }

    fn encode(&self, version: MqttVersion, online: bool, pkid: u16, out: &mut Vec<u8>) -> bool {
        let Ok(topic) = codec::encode_topic(&self.topic) else {
            return false;
        };
        let payload = state_payload(online, self.timestamp_ms);
        codec::encode_publish(
            out,
            version,
            &topic,
            Qos::AtLeastOnce,
            true,
            false,
            pkid,
            &payload,
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_gate_reports_transitions_only() {
        let mut g = HostGate::new("scada-1");
        assert_eq!(g.topic(), "spBv1.0/STATE/scada-1");
        assert!(!g.open());
        let topic = b"spBv1.0/STATE/scada-1";
        assert_eq!(
            g.on_publish(topic, &state_payload(false, 10)),
            None,
            "offline while closed changes nothing"
        );
        assert_eq!(
            g.on_publish(topic, &state_payload(true, 10)),
            Some(HostEvent::Online)
        );
        assert_eq!(
            g.on_publish(topic, &state_payload(true, 11)),
            None,
            "still online"
        );
        assert_eq!(
            g.on_publish(b"spBv1.0/plant/NCMD/n", b"x"),
            None,
            "not the STATE topic"
        );
        assert_eq!(g.on_publish(topic, b"{"), None, "unreadable");
        assert_eq!(
            g.on_publish(topic, &state_payload(false, 5)),
            None,
            "stale offline"
        );
        assert!(g.open());
        assert_eq!(
            g.on_publish(topic, &state_payload(false, 12)),
            Some(HostEvent::Offline)
        );
        assert!(!g.open());
        assert_eq!(
            g.on_publish(topic, &state_payload(true, 13)),
            Some(HostEvent::Online)
        );
        g.reconnected();
        assert!(!g.open());
        assert_eq!(
            g.on_publish(topic, &state_payload(true, 13)),
            Some(HostEvent::Online),
            "the retained STATE opens a new session"
        );
    }

    #[test]
    fn host_session_uses_one_timestamp_and_goes_online_after_the_delay() {
        let host = SparkplugHost {
            host_id: "scada-1".into(),
            online_delay: Duration::from_secs(2),
        };
        let mut h = HostSession::new(&host, 1_700_000_000_123_456);
        let will = h.will();
        assert_eq!(will.topic, "spBv1.0/STATE/scada-1");
        assert_eq!(
            will.payload,
            br#"{"online":false,"timestamp":1700000000123}"#
        );
        assert_eq!(will.qos, Qos::AtLeastOnce);
        assert!(will.retain);
        assert_eq!(h.online_due_us(), None, "not before subscribing");
        h.subscribed(1_000_000);
        assert_eq!(h.online_due_us(), Some(3_000_000));
        let mut out = Vec::new();
        h.go_online(MqttVersion::V311, 2, &mut out);
        assert!(h.is_online());
        assert_eq!(h.online_due_us(), None);
        let (packet, used) = codec::parse(&out, MqttVersion::V311).unwrap().unwrap();
        assert_eq!(used, out.len());
        match packet {
            codec::Incoming::Publish {
                qos,
                retain,
                topic,
                payload,
                ..
            } => {
                assert_eq!((qos, retain), (1, true));
                assert_eq!(topic, b"spBv1.0/STATE/scada-1");
                assert_eq!(payload, br#"{"online":true,"timestamp":1700000000123}"#);
            }
            other => panic!("{other:?}"),
        }
        // what the edge node side makes of the host's messages
        let mut gate = HostGate::new("scada-1");
        assert_eq!(
            gate.on_publish(b"spBv1.0/STATE/scada-1", &will.payload),
            None
        );
        assert_eq!(
            gate.on_publish(
                b"spBv1.0/STATE/scada-1",
                &state_payload(true, 1_700_000_000_123)
            ),
            Some(HostEvent::Online)
        );
        out.clear();
        h.go_offline(MqttVersion::V311, 3, &mut out);
        assert!(!h.is_online());
        assert!(!out.is_empty());
    }
}
