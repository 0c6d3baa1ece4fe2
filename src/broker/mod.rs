//! The embedded default broker: rumqttd in-process on a free loopback port, so a first run needs no
//! setup. Behind the default `embedded-broker` cargo feature; only engine start-up uses it.

mod types;

pub use types::{BrokerError, EmbeddedBroker, EmbeddedLimits};

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
