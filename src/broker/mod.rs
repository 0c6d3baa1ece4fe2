//! The embedded default broker: rumqttd in-process on a free loopback port, so a first run needs no
//! setup. Behind the default `embedded-broker` cargo feature; only engine start-up uses it.

mod types;

use rustls_pki_types::CertificateDer;

use crate::tls::LocalCa;

pub use types::{BrokerError, EmbeddedBroker, EmbeddedLimits};

pub mod tls_front;
pub use tls_front::{FrontError, FrontOptions, TlsFront};

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
