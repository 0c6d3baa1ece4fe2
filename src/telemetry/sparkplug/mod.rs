//! Sparkplug B 3.0 for simulated edge nodes: payload schema, topics, the edge node state machine, primary
//! host STATE gating and an observer-side stream validator. Pure: no I/O, no clock, no async.
//!
//! # What this relies on from Eclipse Sparkplug B 3.0
//!
//! - **Topics**: `spBv1.0/{group_id}/{NBIRTH|NDEATH|NDATA|NCMD}/{edge_node_id}`,
//!   `spBv1.0/{group_id}/{DBIRTH|DDEATH|DDATA|DCMD}/{edge_node_id}/{device_id}`, host state
//!   `spBv1.0/STATE/{host_id}` (2.2: `STATE/{host_id}`). Ids are non-empty and free of `/`, `+`, `#`.
//! - **Payload**: the `sparkplug_b.proto` `Payload` message (proto2), see [`payload`]. Timestamps are
//!   milliseconds since the Unix epoch, UTC.
//! - **bdSeq**: an Int64 metric named `bdSeq`, 0..=255, in the NDEATH registered as the MQTT will and in the
//!   NBIRTH that follows on the same connection (they must be equal); it advances once per connection.
//!   Hosts ignore an NDEATH whose bdSeq differs from the current NBIRTH's (a stale will).
//! - **seq**: one counter per edge node shared by NBIRTH, DBIRTH, NDATA, DDATA and DDEATH; NBIRTH carries 0, each
//!   following message the previous + 1, wrapping 255 -> 0. NDEATH, NCMD, DCMD carry no seq. A rebirth
//!   (NBIRTH again) restarts seq at 0 and keeps bdSeq.
//! - **Births** carry every metric with name, alias, datatype, value and timestamp; NBIRTH also carries
//!   `bdSeq` and `Node Control/Rebirth` (Boolean, false). Aliases are unique within the edge node (node and all
//!   its devices). **Data** messages carry only changed metrics (report by exception), by alias, without
//!   datatype. An NCMD setting `Node Control/Rebirth` = true asks for a rebirth.
//! - **QoS / retain**: NBIRTH, NDATA, DBIRTH, DDATA, DDEATH: QoS 0, not retained. NDEATH will: QoS 1, not
//!   retained. STATE (published by hosts): QoS 1, retained, JSON `{"online":bool,"timestamp":ms}`.
//! - **Primary host**: an edge node configured with one waits for its STATE `online: true` before births
//!   and disconnects when it goes offline; a STATE older than the last one seen is ignored.
//!
//! Integer encoding: Int8/16/32 and UInt8/16/32 in `int_value` (signed: two's complement sign-extended to 32
//! bits), Int64/UInt64/DateTime in `long_value`; readers truncate, so zero-extended narrow negatives also read
//! correctly.

mod error;
mod node;
pub mod payload;
mod state;
pub mod topic;
mod validator;
mod value;

pub use error::SparkplugError;
pub use node::{
    DeviceSpec, EdgeNode, Message, MetricSpec, NodeCommand, Outbox, QoS, BD_SEQ,
    DEVICE_STATE_BYTES, REBIRTH,
};
pub use payload::{DataType, Metric, Payload};
pub use state::{StateChange, StateError, StateGate};
pub use topic::{MessageType, Topic, TopicError};
pub use validator::{Validator, Violation, Violations};
pub use value::{Deadband, Value};

/// An NCMD payload asking an edge node for a rebirth (`Node Control/Rebirth` = true), as a primary host
/// sends it.
pub fn rebirth_request(timestamp_ms: u64) -> Vec<u8> {
    use prost::Message as _;
    let payload = Payload {
        timestamp: Some(timestamp_ms),
        metrics: vec![Metric {
            name: Some(REBIRTH.to_owned()),
            timestamp: Some(timestamp_ms),
            datatype: Some(DataType::Boolean.number()),
            value: Some(payload::metric::Value::BooleanValue(true)),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    payload.encode_to_vec()
}
