//! The connection layer: lean MQTT 3.1.1 / 5 sessions over TCP and the wire codec. The only module that
//! imports rumqttc. Knows nothing about phases or reports.

pub mod codec;
mod keepalive;
mod protocol;
mod session;
mod transport;

pub use codec::{ConnectOptions, Incoming, Will};
pub use keepalive::{KeepAlive, KeepAliveAction};
pub use protocol::{MqttVersion, Qos};
pub use session::{
    bound_send_buffer, tcp_connect, ConnectError, ReadStatus, Session, SessionError,
};
pub use transport::{
    tls_connect, Roots, TlsClient, TlsFailure, TlsHandshake, TlsOptions, TlsSetupError, Transport,
};
