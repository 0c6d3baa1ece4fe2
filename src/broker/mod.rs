//! The embedded default broker: rumqttd in-process on a free loopback port, so a first run needs no
//! setup. Behind the default `embedded-broker` cargo feature; only engine start-up uses it.

use std::net::SocketAddr;

use rustls_pki_types::CertificateDer;

use crate::tls::LocalCa;

pub mod tls_front;
pub use tls_front::{FrontError, FrontOptions, TlsFront};

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
    Front(#[from] FrontError),
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

#[cfg(feature = "embedded-broker")]
mod embedded;

/// Start the embedded broker on a free loopback port and wait until it accepts connections.
pub fn start_embedded(limits: EmbeddedLimits) -> Result<EmbeddedBroker, BrokerError> {
    #[cfg(feature = "embedded-broker")]
    {
        embedded::start(limits)
    }
    #[cfg(not(feature = "embedded-broker"))]
    {
        let _ = limits;
        Err(BrokerError::NotBuilt)
    }
}

/// The embedded broker's TLS listeners: a [`TlsFront`] before each of rumqttd's plain listeners, serving
/// the server certificate of a CA generated at start ([`LocalCa`]), which the run trusts.
#[derive(Debug)]
pub struct EmbeddedTls {
    pub ca: LocalCa,
    /// TLS in front of the MQTT 3.1.1 listener.
    pub v4: TlsFront,
    /// TLS in front of the MQTT 5 listener.
    pub v5: TlsFront,
}

/// Put TLS fronts before `broker`'s listeners, serving `ca`'s server certificate. With `client_ca`,
/// clients must present a certificate that chains to it (zero-setup mTLS passes `ca.cert_der()`, the
/// CA that also mints the devices' certificates).
pub fn start_embedded_tls(
    broker: &EmbeddedBroker,
    ca: LocalCa,
    client_ca: Option<Vec<CertificateDer<'static>>>,
    limits: EmbeddedLimits,
) -> Result<EmbeddedTls, BrokerError> {
    let opts = FrontOptions {
        client_ca,
        max_connections: limits.max_connections,
        ..FrontOptions::default()
    };
    let v4 = TlsFront::start(broker.v4, ca.server(), opts.clone())?;
    let v5 = TlsFront::start(broker.v5, ca.server(), opts)?;
    Ok(EmbeddedTls { ca, v4, v5 })
}
