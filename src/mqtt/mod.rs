//! The connection layer: lean MQTT 3.1.1 / 5 sessions over TCP, TLS and WebSocket, and the wire codec. The only module that
//! imports rumqttc. Knows nothing about phases or reports.

pub mod codec;
mod errors;
mod keepalive;
mod protocol;
mod session;
mod state;
mod tickets;
mod tls_config;
mod tls_conn;
mod transport;
pub mod ws;

pub use codec::{ConnectOptions, Incoming, Will};
pub use errors::{ConnectError, TlsFailure};
pub use keepalive::{KeepAlive, KeepAliveAction};
pub use protocol::{MqttVersion, Qos};
pub use session::{bound_send_buffer, tcp_connect, ReadStatus, Session, SessionError};
pub use state::{Event, ProtocolState, WindowFull};
pub use tls_config::{Roots, TlsClient, TlsOptions, TlsSetupError};
pub use tls_conn::TlsHandshake;
pub use transport::{tls_connect, Transport};
pub use ws::WsEndpoint;
