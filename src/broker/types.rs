//! What the embedded broker's users see: its limits, the running broker's addresses, its errors.
//! Shared by the start-up (`mod.rs`) and rumqttd's configuration (`embedded.rs`).

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("this build has no embedded broker (built without the `embedded-broker` feature); name a broker with --broker mqtt://HOST:PORT")]
    NotBuilt,
    #[error("could not find a free loopback port for the embedded broker: {0}")]
    NoPort(std::io::Error),
    #[error("could not start the embedded broker: {0}")]
    Start(String),
    #[error("the embedded broker did not start listening on {0} within 5 s")]
    NotListening(SocketAddr),
    #[error(transparent)]
    Front(#[from] super::tls_front::FrontError),
}

/// A running embedded broker. It lives as long as the process (rumqttd offers no shutdown).
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    /// MQTT 3.1.1 listener.
    pub v4: SocketAddr,
    /// MQTT 5 listener.
    pub v5: SocketAddr,
}

/// Broker-side limits that matter for a load test.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedLimits {
    /// Connections the router accepts.
    pub max_connections: usize,
    /// Unacknowledged outgoing QoS 1/2 messages per connection.
    pub max_inflight: usize,
    pub max_payload_size: usize,
}

impl Default for EmbeddedLimits {
    fn default() -> Self {
        EmbeddedLimits {
            max_connections: 100_000,
            max_inflight: 1000,
            max_payload_size: 256 * 1024,
        }
    }
}
