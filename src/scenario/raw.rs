//! Raw serde types mirroring the YAML scenario format, version 1.
//!
//! Every struct refuses unknown keys. Scalars are kept loosely typed ([`Value`]) and wrapped in
//! [`Spanned`] so validation can check them itself and point at the line and column they were
//! written on; only the shape (mappings, lists, required keys) is checked by serde.

use serde::Deserialize;
use serde_saphyr::Spanned;

pub use crate::scenario::value::{Scalar, Value};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub version: Option<Scalar>,
    pub name: Scalar,
    pub seed: Option<Scalar>,
    pub profiles: Option<Spanned<Vec<Spanned<super::profiles::RawProfile>>>>,
    pub broker: Option<Spanned<RawBroker>>,
    pub groups: Spanned<Vec<Spanned<RawGroup>>>,
    pub phases: Option<Spanned<Vec<Spanned<RawPhase>>>>,
    pub observers: Option<Spanned<Vec<Spanned<RawObserver>>>>,
    pub thresholds: Option<Spanned<Vec<Scalar>>>,
    pub baseline: Option<Spanned<RawBaseline>>,
    pub search: Option<Spanned<RawSearch>>,
}

/// `search:` the settings of `fleetstorm search`, the same as its flags (which override them).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSearch {
    pub slos: Option<Spanned<Vec<Scalar>>>,
    pub vary: Option<Scalar>,
    pub from: Option<Scalar>,
    pub to: Option<Scalar>,
    pub growth: Option<Scalar>,
    pub resolution: Option<Scalar>,
    pub max_steps: Option<Scalar>,
    pub settle: Option<Scalar>,
    pub window: Option<Scalar>,
    pub require: Option<Scalar>,
    pub baseline: Option<Scalar>,
    pub tolerance: Option<Scalar>,
}

/// `baseline:` a previous report to compare against.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBaseline {
    pub report: Scalar,
    pub max_regression: Option<Scalar>,
}

/// `broker:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    pub url: Option<Scalar>,
    pub protocol: Option<Scalar>,
    pub keep_alive: Option<Scalar>,
    pub client_id: Option<Scalar>,
    pub clean_session: Option<Scalar>,
    pub connect_timeout: Option<Scalar>,
    pub username: Option<Scalar>,
    pub password: Option<Scalar>,
    pub max_connecting: Option<Scalar>,
    pub urls: Option<Spanned<Vec<Scalar>>>,
    pub assign: Option<Scalar>,
    pub source_addresses: Option<Spanned<Vec<Scalar>>>,
    pub tls: Option<Spanned<RawTls>>,
}

/// `broker.tls:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub ca: Option<Scalar>,
    pub server_name: Option<Scalar>,
    pub alpn: Option<Spanned<Vec<Scalar>>>,
    pub versions: Option<Spanned<Vec<Scalar>>>,
    pub insecure_skip_verify: Option<Scalar>,
    pub resumption: Option<Scalar>,
    pub cert: Option<Scalar>,
    pub key: Option<Scalar>,
    pub issue: Option<Spanned<RawIssue>>,
}

/// `broker.tls.issue:` per-device certificates minted by fleetstorm.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssue {
    pub ca_cert: Option<Scalar>,
    pub ca_key: Option<Scalar>,
    pub subject: Option<Scalar>,
    pub valid: Option<Scalar>,
}

/// One item of `groups:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: Scalar,
    pub count: Scalar,
    pub profile: Scalar,
    pub interval: Option<Scalar>,
    pub qos: Option<Scalar>,
    pub retain: Option<Scalar>,
    pub topic: Option<Scalar>,
    pub max_inflight: Option<Scalar>,
    pub late_sends: Option<Scalar>,
    pub payload: Option<Scalar>,
    pub sparkplug: Option<Spanned<RawSparkplug>>,
    pub session: Option<Spanned<RawSession>>,
    pub commands: Option<Spanned<RawCommands>>,
}

/// `session:` of a group: `{ clean: false, expiry: 10m }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub clean: Option<Scalar>,
    pub expiry: Option<Scalar>,
}

/// `commands:` of a group: a commander publishes to the devices at `rate`, they reply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommands {
    pub rate: Scalar,
    pub qos: Option<Scalar>,
    pub topic: Option<Scalar>,
    pub reply_topic: Option<Scalar>,
}

/// One item of `phases:`: exactly one of `ramp` / `steady`, plus an optional `name`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    pub name: Option<Scalar>,
    pub ramp: Option<Spanned<RawRamp>>,
    pub steady: Option<Spanned<RawSteady>>,
    pub churn: Option<Spanned<RawChurn>>,
    pub storm: Option<Spanned<RawStorm>>,
}

/// `ramp: { connect_rate: 500/s }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRamp {
    pub connect_rate: Scalar,
}

/// `steady: { duration: 30s }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSteady {
    pub duration: Scalar,
}

/// One observer group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObserver {
    pub name: Scalar,
    pub count: Option<Scalar>,
    pub topics: Option<Spanned<Vec<Scalar>>>,
    pub qos: Option<Scalar>,
    pub shared: Option<Scalar>,
    pub sparkplug_host: Option<Scalar>,
    pub sparkplug_host_delay: Option<Scalar>,
}

/// `churn:` devices drop and reconnect at a rate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChurn {
    pub duration: Scalar,
    pub rate: Scalar,
}

/// `storm:` a fraction of the fleet drops at once at the start of the phase and reconnects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorm {
    pub duration: Scalar,
    pub fraction: Scalar,
}

/// `sparkplug:` of a group with `payload: sparkplug`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSparkplug {
    pub group_id: Option<Scalar>,
    pub devices: Option<Scalar>,
    pub primary_host: Option<Scalar>,
    pub device_outages: Option<Spanned<RawOutages>>,
}

/// `device_outages: { rate: 2/h, duration: 1m }`: Sparkplug devices going offline behind a live node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutages {
    pub rate: Scalar,
    pub duration: Scalar,
}
