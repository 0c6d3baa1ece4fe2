//! Primary host application STATE gating.
//!
//! An edge node configured with a primary host subscribes to that host's STATE topic and publishes births
//! only while the host is online; when the host goes offline the edge node should disconnect (and,
//! with several servers, move to the next one). Sparkplug 3.0: topic `spBv1.0/STATE/{host_id}`, retained,
//! QoS 1, payload JSON `{"online": true|false, "timestamp": <ms>}`; a message with a timestamp older than
//! the last one accepted is stale and ignored. The 2.2 form (`STATE/{host_id}`, payload `ONLINE` /
//! `OFFLINE`) is understood too.

use serde::Deserialize;
use thiserror::Error;

use super::topic::{Topic, NAMESPACE};

/// Why a STATE message could not be read.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("STATE payload is not `{{\"online\":bool,\"timestamp\":ms}}`: {0}")]
    Json(#[from] serde_json::Error),
    #[error("legacy STATE payload is neither ONLINE nor OFFLINE")]
    Legacy,
}

/// What a message did to the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    /// The primary host is (now or still) online: births may go out.
    Online,
    /// The primary host is offline: no births; a connected edge node should disconnect.
    Offline,
    /// Older timestamp than the last accepted STATE: ignored.
    Stale,
    /// Not this primary host's STATE topic: ignored.
    OtherTopic,
}

#[derive(Deserialize)]
struct StatePayload {
    online: bool,
    timestamp: u64,
}

/// Tracks one primary host application's STATE.
#[derive(Debug, Clone)]
pub struct StateGate {
    host_id: Box<str>,
    online: bool,
    last_timestamp_ms: Option<u64>,
}

impl StateGate {
    /// A gate for `primary_host_id`; closed until an online STATE arrives.
    pub fn new(primary_host_id: &str) -> StateGate {
        StateGate {
            host_id: Box::from(primary_host_id),
            online: false,
            last_timestamp_ms: None,
        }
    }

    /// The 3.0 topic to subscribe to (QoS 1): `spBv1.0/STATE/{host_id}`.
    pub fn topic(&self) -> String {
        format!("{NAMESPACE}/STATE/{}", self.host_id)
    }

    /// Whether births may be published now.
    pub fn births_allowed(&self) -> bool {
        self.online
    }

    /// A new MQTT session: closed until the (retained) STATE is seen again. The last timestamp is kept,
    /// so a retained STATE older than one already seen stays ignored.
    pub fn reconnected(&mut self) {
        self.online = false;
    }

    /// Feed a message received on a STATE topic.
    pub fn on_message(&mut self, topic: &str, payload: &[u8]) -> Result<StateChange, StateError> {
        let legacy = match Topic::parse(topic) {
            Ok(Topic::State { host_id, legacy }) if host_id == &*self.host_id => legacy,
            _ => return Ok(StateChange::OtherTopic),
        };
        if legacy {
            self.online = match payload {
                b"ONLINE" => true,
                b"OFFLINE" => false,
                _ => return Err(StateError::Legacy),
            };
        } else {
            let state: StatePayload = serde_json::from_slice(payload)?;
            if self
                .last_timestamp_ms
                .is_some_and(|last| state.timestamp < last)
            {
                return Ok(StateChange::Stale);
            }
            self.last_timestamp_ms = Some(state.timestamp);
            self.online = state.online;
        }
        Ok(if self.online {
            StateChange::Online
        } else {
            StateChange::Offline
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_follows_the_primary_host() {
        let mut gate = StateGate::new("scada");
        let topic = gate.topic();
        assert_eq!(topic, "spBv1.0/STATE/scada");
        assert!(!gate.births_allowed());
        let online = br#"{"online":true,"timestamp":1000}"#;
        assert_eq!(
            gate.on_message(&topic, online).unwrap(),
            StateChange::Online
        );
        assert!(gate.births_allowed());
        let stale = br#"{"online":false,"timestamp":999}"#;
        assert_eq!(gate.on_message(&topic, stale).unwrap(), StateChange::Stale);
        assert!(gate.births_allowed());
        let offline = br#"{"timestamp":2000,"online":false}"#;
        assert_eq!(
            gate.on_message(&topic, offline).unwrap(),
            StateChange::Offline
        );
        assert!(!gate.births_allowed());
        assert_eq!(
            gate.on_message("spBv1.0/STATE/other", online).unwrap(),
            StateChange::OtherTopic
        );
        assert!(gate.on_message(&topic, b"{").is_err());
        assert_eq!(
            gate.on_message("STATE/scada", b"ONLINE").unwrap(),
            StateChange::Online
        );
        assert!(gate.on_message("STATE/scada", b"MAYBE").is_err());
    }

    #[test]
    fn a_new_session_waits_for_the_state_again() {
        let mut gate = StateGate::new("scada");
        let topic = gate.topic();
        let online = br#"{"online":true,"timestamp":1000}"#;
        gate.on_message(&topic, online).unwrap();
        gate.reconnected();
        assert!(!gate.births_allowed());
        // the retained online STATE of the same host session opens it again (same timestamp is not stale)
        assert_eq!(
            gate.on_message(&topic, online).unwrap(),
            StateChange::Online
        );
        // an older one, seen before the reconnect, stays stale
        gate.reconnected();
        let old = br#"{"online":true,"timestamp":500}"#;
        assert_eq!(gate.on_message(&topic, old).unwrap(), StateChange::Stale);
        assert!(!gate.births_allowed());
    }
}
