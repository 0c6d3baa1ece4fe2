//! The protocol's own enums: which MQTT version a session speaks and a message's quality of service.
//! They live in the wire layer; `scenario` maps its YAML keys onto them.

use serde::Serialize;

/// MQTT protocol level spoken by the sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MqttVersion {
    #[serde(rename = "3.1.1")]
    V311,
    #[serde(rename = "5")]
    V5,
}

/// MQTT quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "u8")]
pub enum Qos {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl From<Qos> for u8 {
    fn from(q: Qos) -> u8 {
        q as u8
    }
}
