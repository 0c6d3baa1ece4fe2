//! rumqttd, configured in code.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use super::{BrokerError, EmbeddedBroker, EmbeddedLimits};

/// Ports above the ephemeral range (1024-65000 here), so client sockets cannot take the broker's port.
const PORT_RANGE: std::ops::RangeInclusive<u16> = 65001..=65535;

fn free_port(not: u16) -> Result<u16, BrokerError> {
    // Start somewhere different each time so parallel tests rarely collide; bind to check.
    let span = u32::from(*PORT_RANGE.end() - *PORT_RANGE.start()) + 1;
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for i in 0..span {
        let port = *PORT_RANGE.start() + u16::try_from((seed + i) % span).unwrap_or(0);
        if port != not && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    // Fall back to any port the kernel gives.
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(BrokerError::NoPort)
}

fn config(v4_addr: SocketAddr, v5_addr: SocketAddr, limits: EmbeddedLimits) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: limits.max_payload_size,
        max_inflight_count: limits.max_inflight,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = |name: &str, addr| ServerSettings {
        name: name.to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections: connections.clone(),
    };
    let router = RouterConfig {
        max_connections: limits.max_connections,
        max_outgoing_packet_count: 200,
        max_segment_size: 100 * 1024 * 1024,
        max_segment_count: 10,
        ..RouterConfig::default()
    };
    let mut v4 = HashMap::new();
    v4.insert("v4".to_owned(), server("fleetstorm-embedded-v4", v4_addr));
    let mut v5 = HashMap::new();
    v5.insert("v5".to_owned(), server("fleetstorm-embedded-v5", v5_addr));
    Config {
        id: 0,
        router,
        v4: Some(v4),
        v5: Some(v5),
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    }
}

pub(super) fn start(limits: EmbeddedLimits) -> Result<EmbeddedBroker, BrokerError> {
    let mut last = None;
    for _ in 0..5 {
        let v4 = SocketAddr::from(([127, 0, 0, 1], free_port(0)?));
        let v5 = SocketAddr::from(([127, 0, 0, 1], free_port(v4.port())?));
        let mut broker = Broker::new(config(v4, v5, limits));
        std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                let _ = broker.start();
            })
            .map_err(|e| BrokerError::Start(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let up = |a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok();
            if up(v4) && up(v5) {
                return Ok(EmbeddedBroker { v4, v5 });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last = Some(v4);
    }
    Err(BrokerError::NotListening(last.unwrap_or_else(|| {
        SocketAddr::from(([127, 0, 0, 1], *PORT_RANGE.start()))
    })))
}
