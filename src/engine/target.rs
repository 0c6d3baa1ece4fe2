//! Where the fleet connects: the scenario's brokers resolved, or the embedded broker started.

use std::net::SocketAddr;

use super::options::EngineError;
use crate::broker::{self, EmbeddedLimits};
use crate::plan::Plan;
use crate::scenario::{BrokerUrl, MqttVersion, Transport};

async fn resolve(url: &BrokerUrl) -> Result<SocketAddr, EngineError> {
    let mut addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| EngineError::Resolve {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    addrs.next().ok_or_else(|| EngineError::Resolve {
        url: url.to_string(),
        reason: "no address found".into(),
    })
}

/// Where to connect (every broker target, in scenario order), and how to name it in reports.
pub(crate) async fn broker_target(plan: &Plan) -> Result<(Vec<SocketAddr>, String), EngineError> {
    let targets = plan.scenario.broker.targets();
    if targets.is_empty() {
        let b = broker::start_embedded(EmbeddedLimits::default())?;
        let addr = match plan.scenario.broker.protocol {
            MqttVersion::V311 => b.v4,
            MqttVersion::V5 => b.v5,
        };
        return Ok((vec![addr], format!("embedded rumqttd (mqtt://{addr})")));
    }
    let mut addrs = Vec::with_capacity(targets.len());
    for u in &targets {
        addrs.push(resolve(u).await?);
    }
    let mut label = targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if plan.scenario.broker.embedded_tls {
        label = format!("embedded rumqttd behind TLS ({label})");
    }
    if super::tls::insecure(&plan.scenario.broker) {
        label.push_str(" (TLS certificate not verified: insecure_skip_verify)");
    }
    Ok((addrs, label))
}

/// The WebSocket endpoint of each broker target (`None`: plain MQTT), in the order of
/// [`broker_target`]'s addresses (none with the embedded broker).
pub(crate) fn ws_endpoints(plan: &Plan) -> Vec<Option<crate::mqtt::WsEndpoint>> {
    plan.scenario
        .broker
        .targets()
        .iter()
        .map(|u| {
            let default_port = match u.transport {
                Transport::Ws => 80,
                Transport::Wss => 443,
                Transport::Tcp | Transport::Tls => return None,
            };
            Some(crate::mqtt::WsEndpoint::new(
                &u.host,
                u.port,
                default_port,
                &u.path,
            ))
        })
        .collect()
}
