//! The validated, typed scenario: what the YAML means once every default is filled in and every
//! value checked. Everything downstream (plan, engine, report) reads only these types.

use std::time::Duration;

use serde::Serialize;

use crate::scenario::template::Template;
use std::sync::Arc;

use crate::telemetry::Profile;

/// A whole scenario after validation.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub broker: BrokerSettings,
    /// Profiles defined in the scenario and used by its groups, written out in full in the resolved scenario.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "profile_definitions"
    )]
    pub profiles: Vec<Arc<Profile>>,
    pub groups: Vec<Group>,
    pub phases: Vec<Phase>,
    /// Subscriber sessions that audit what the broker delivers.
    pub observers: Vec<Observer>,
    /// Pass/fail gates evaluated on the report (exit code 1 when one fails).
    pub thresholds: Vec<crate::threshold::Threshold>,
    /// A previous report to compare against (exit code 1 on a regression beyond the tolerance).
    pub baseline: Option<Baseline>,
    /// `search:` the settings of `fleetstorm search` (flags override them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchSettings>,
}

/// What a capacity search varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Vary {
    /// The number of devices, each publishing at the scenario's interval.
    Devices,
    /// The fleet's total publish rate (msg/s), the scenario's devices publishing faster or slower.
    Rate,
}

impl Vary {
    /// The unit of a load.
    pub fn unit(self) -> &'static str {
        match self {
            Vary::Devices => "devices",
            Vary::Rate => "msg/s",
        }
    }

    /// As written in `search.vary` and `--vary`.
    pub fn name(self) -> &'static str {
        match self {
            Vary::Devices => "devices",
            Vary::Rate => "rate",
        }
    }
}

/// `search:` as written; every key is optional (a flag, else the command's default, fills it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SearchSettings {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<crate::threshold::Threshold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vary: Option<Vary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth: Option<f64>,
    /// A fraction (0.05 = 5%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "opt_duration_ms",
        rename = "settle_ms"
    )]
    pub settle: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "opt_duration_ms",
        rename = "window_ms"
    )]
    pub window: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require: Option<u64>,
    /// An earlier search.json (or its folder), as written (relative to the scenario file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<std::path::PathBuf>,
    /// The tolerated capacity regression against the baseline, a fraction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
}

mod opt_duration_ms {
    use serde::Serializer;
    use std::time::Duration;

    #[allow(clippy::ref_option)] // serde's `with` hands a reference to the field
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }
}

/// Baseline comparison settings.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// report.json (or its directory), relative paths resolved from the scenario file's directory.
    pub report: std::path::PathBuf,
    /// Largest tolerated regression, as a fraction (0.10 = 10%).
    pub max_regression: f64,
}

impl Scenario {
    /// Total number of devices over all groups.
    pub fn device_count(&self) -> u64 {
        self.groups.iter().map(|g| u64::from(g.count)).sum()
    }
}

// The protocol enums belong to the wire layer; scenario keys map onto them.
pub use crate::mqtt::{MqttVersion, Qos};

/// Where the broker is. `None` in [`BrokerSettings::url`] means: start the embedded broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerUrl {
    /// As written: `mqtt`/`tcp`, `mqtts`/`ssl`/`tls`, `ws` or `wss`.
    pub scheme: String,
    /// The transport stack the scheme selects.
    #[serde(skip)]
    pub transport: Transport,
    pub host: String,
    pub port: u16,
    /// WebSocket request path (with any query), default `/mqtt`; empty for `mqtt://` and `mqtts://`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
}

impl BrokerUrl {
    /// Whether sessions to this broker speak TLS (`mqtts://`, `wss://`).
    pub fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls | Transport::Wss)
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}{}",
                self.scheme, self.host, self.port, self.path
            )
        } else {
            write!(
                f,
                "{}://{}:{}{}",
                self.scheme, self.host, self.port, self.path
            )
        }
    }
}

/// The byte stream under MQTT, chosen by the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// `mqtt://`, `tcp://`: plain TCP.
    #[default]
    Tcp,
    /// `mqtts://` (`ssl://`, `tls://`): TLS over TCP.
    Tls,
    /// `ws://`: MQTT over WebSocket over TCP.
    Ws,
    /// `wss://`: MQTT over WebSocket over TLS.
    Wss,
}

/// `broker.tls`: how TLS sessions verify the broker and identify themselves.
#[derive(Debug, Clone, Serialize)]
pub struct TlsSettings {
    /// PEM file of the CA(s) to trust; `None`: the system trust store.
    pub ca: Option<std::path::PathBuf>,
    /// SNI and verification name; `None`: the URL host.
    pub server_name: Option<String>,
    /// ALPN protocols offered, in order (empty: none).
    pub alpn: Vec<String>,
    /// TLS versions allowed (at least one).
    pub versions: Vec<TlsVersion>,
    /// Accept any broker certificate (a warning is printed and recorded).
    pub insecure_skip_verify: bool,
    /// Resume TLS sessions on reconnect (a session cache per worker).
    pub resumption: bool,
    /// The client certificate, if any.
    pub identity: ClientIdentity,
    /// `file:line` of `broker.tls` in the scenario, for messages about its files.
    #[serde(skip)]
    pub at: String,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            ca: None,
            server_name: None,
            alpn: Vec::new(),
            versions: vec![TlsVersion::V12, TlsVersion::V13],
            insecure_skip_verify: false,
            resumption: true,
            identity: ClientIdentity::None,
            at: String::new(),
        }
    }
}

/// A TLS protocol version a scenario allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    V12,
    #[serde(rename = "1.3")]
    V13,
}

/// The client certificate sessions present (mutual TLS).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientIdentity {
    /// No client certificate.
    None,
    /// PEM files: the same for the fleet, or per device when the paths are templates
    /// (`{client_id}`, `{group}`, `{index}`, `{global_index}`). Only the paths are recorded.
    Files { cert: Template, key: Template },
    /// Per-device certificates minted by fleetstorm.
    Issue(IssueSpec),
}

/// `broker.tls.issue`: mint one certificate per device, signed by a CA.
#[derive(Debug, Clone, Serialize)]
pub struct IssueSpec {
    /// The signing CA's certificate (PEM); `None` with `ca_key` also `None`: fleetstorm generates a CA
    /// (with the embedded broker, which then trusts it).
    pub ca_cert: Option<std::path::PathBuf>,
    /// The signing CA's private key (PEM). Only the path is recorded, never the key.
    pub ca_key: Option<std::path::PathBuf>,
    /// Subject of each certificate, e.g. `CN={client_id}`.
    pub subject: Template,
    /// Validity of each minted certificate.
    #[serde(with = "duration_ms", rename = "valid_ms")]
    pub valid: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokerSettings {
    pub url: Option<BrokerUrl>,
    pub protocol: MqttVersion,
    #[serde(with = "duration_ms", rename = "keep_alive_ms")]
    pub keep_alive: Duration,
    pub client_id: Template,
    pub clean_session: bool,
    #[serde(with = "duration_ms", rename = "connect_timeout_ms")]
    pub connect_timeout: Duration,
    pub username: Option<String>,
    #[serde(skip)]
    pub password: Option<String>,
    /// At most this many CONNECT handshakes in flight at once.
    pub max_connecting: u32,
    /// Several brokers (a cluster, or several listeners): every target. Empty: just `url`.
    pub urls: Vec<BrokerUrl>,
    /// How devices are spread over `urls`.
    pub assign: BrokerAssign,
    /// Local addresses sessions bind to, round-robin (each reaches ~64k ports per broker address).
    pub source_addresses: Vec<std::net::IpAddr>,
    /// `broker.tls`; `None`: defaults for `mqtts://` / `wss://` targets, no TLS otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
    /// `url` is the embedded broker's TLS front, set at start (zero-setup TLS), not from the file.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub embedded_tls: bool,
}

impl BrokerSettings {
    /// Every broker target (empty when the embedded broker is used).
    pub fn targets(&self) -> Vec<BrokerUrl> {
        if !self.urls.is_empty() {
            return self.urls.clone();
        }
        self.url.iter().cloned().collect()
    }
}

/// How devices are spread over several brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerAssign {
    /// Device `i` (over the whole fleet) connects to broker `i mod n`.
    RoundRobin,
    /// Every device of group `g` connects to broker `g mod n`.
    ByGroup,
}

/// A group of identical devices.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub name: String,
    pub count: u32,
    #[serde(serialize_with = "profile_name")]
    pub profile: Arc<Profile>,
    #[serde(with = "duration_ms", rename = "interval_ms")]
    pub interval: Duration,
    pub qos: Qos,
    pub retain: bool,
    pub topic: Template,
    /// Most unacknowledged QoS 1/2 publishes per device; a full window delays sends (shows as latency).
    pub max_inflight: u16,
    /// What a device that fell a whole interval behind does with the slots it missed.
    pub late_sends: LateSends,
    /// How telemetry goes on the wire.
    pub payload: PayloadKind,
    /// Session persistence; `None`: the broker section's `clean_session`, no expiry.
    pub session: Option<SessionSettings>,
    /// Commands sent to the devices of this group, which reply (measured as `command_rtt`).
    pub commands: Option<Commands>,
}

/// A group's session persistence (`session:`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSettings {
    /// Clean session (3.1.1) / clean start (5): `false` keeps subscriptions and queued messages across
    /// reconnects.
    pub clean: bool,
    /// MQTT 5 Session Expiry Interval for persistent sessions (ignored by 3.1.1, where the broker keeps
    /// the session until it decides otherwise).
    #[serde(with = "duration_ms", rename = "expiry_ms")]
    pub expiry: Duration,
}

/// A group's commands (`commands:`): one commander connection publishes commands at `rate_per_s` over
/// the group's devices; each device replies on its reply topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Commands {
    pub rate_per_s: f64,
    /// QoS of the command publishes, the devices' subscriptions and the replies.
    pub qos: Qos,
    /// Per-device command topic.
    pub topic: Template,
    /// Per-device reply topic.
    pub reply_topic: Template,
}

/// The payload encoding of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PayloadKind {
    /// One JSON message per slot on the group's topic, stamped with device, seq and intended time.
    Json,
    /// Each connection is a Sparkplug B edge node with `devices` devices: NBIRTH/DBIRTH after connect,
    /// DDATA by alias each slot, NDEATH as the MQTT will, topics `spBv1.0/{group_id}/...`.
    /// With `primary_host`, births wait for that host's STATE `online: true` (Sparkplug 3.0).
    Sparkplug {
        group_id: String,
        devices: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        primary_host: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        device_outages: Option<DeviceOutages>,
    },
}

/// Sparkplug devices dropping off behind an edge node that stays online (a PLC losing its fieldbus): each
/// device goes offline at `rate_per_s` (DDEATH) and comes back after `duration` (DBIRTH).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DeviceOutages {
    pub rate_per_s: f64,
    #[serde(with = "duration_ms", rename = "duration_ms")]
    pub duration: Duration,
}

impl Group {
    /// The Sparkplug group id, if this group speaks Sparkplug B.
    pub fn sparkplug_group(&self) -> Option<&str> {
        match &self.payload {
            PayloadKind::Sparkplug { group_id, .. } => Some(group_id),
            PayloadKind::Json => None,
        }
    }

    /// The Sparkplug primary host whose STATE gates this group's births, if any.
    pub fn primary_host(&self) -> Option<&str> {
        match &self.payload {
            PayloadKind::Sparkplug { primary_host, .. } => primary_host.as_deref(),
            PayloadKind::Json => None,
        }
    }
}

/// Policy for sends that are already late by more than one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LateSends {
    /// Send every scheduled message, late (counted as `overrun`); latency shows the delay.
    Send,
    /// Drop the slots that are already a whole interval late (counted as `skipped`).
    Skip,
}

/// A group of subscriber sessions that receive the fleet's messages and audit them.
#[derive(Debug, Clone, Serialize)]
pub struct Observer {
    pub name: String,
    /// Sessions in this observer group.
    pub count: u32,
    /// Topic filters each session subscribes to.
    pub topics: Vec<String>,
    pub qos: Qos,
    /// Use one MQTT 5 shared subscription (`$share/<name>/<filter>`): the sessions split the messages
    /// instead of each receiving all of them.
    pub shared: bool,
    /// Indices of the device groups whose messages this observer receives (each matched by exactly one
    /// of its filters, for every device of the group).
    pub groups: Vec<usize>,
    /// Act as this Sparkplug primary host application: STATE will, online after subscribing, offline at
    /// a clean end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sparkplug_host: Option<SparkplugHost>,
}

/// An observer's simulated Sparkplug primary host application.
#[derive(Debug, Clone, Serialize)]
pub struct SparkplugHost {
    /// The host id: STATE goes to `spBv1.0/STATE/{host_id}`.
    pub host_id: String,
    /// How long after subscribing the host publishes STATE online.
    #[serde(with = "duration_ms", rename = "online_delay_ms")]
    pub online_delay: Duration,
}

impl Observer {
    /// Deliveries each message of a matched group yields to this observer.
    pub fn fanout(&self) -> u64 {
        if self.shared {
            1
        } else {
            u64::from(self.count)
        }
    }
}

impl Scenario {
    /// Per group: deliveries the observers should receive for each message the group publishes.
    pub fn fanout(&self) -> Vec<u64> {
        let mut out = vec![0; self.groups.len()];
        for o in &self.observers {
            for &g in &o.groups {
                // Sparkplug groups are audited by the Sparkplug rules, not by per-message stamps.
                if self
                    .groups
                    .get(g)
                    .is_some_and(|g| g.sparkplug_group().is_some())
                {
                    continue;
                }
                if let Some(slot) = out.get_mut(g) {
                    *slot += o.fanout();
                }
            }
        }
        out
    }
}

/// One phase of the run, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub kind: PhaseKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PhaseKind {
    /// Devices connect at `connect_rate_per_s`; the phase lasts until every device had its connect slot.
    Ramp { connect_rate_per_s: f64 },
    /// Everyone connected publishes on schedule for `duration`.
    Steady {
        #[serde(with = "duration_ms", rename = "duration_ms")]
        duration: Duration,
    },
    /// Steady publishing while devices drop their connection (no DISCONNECT, like a power cut) at
    /// `rate_per_s` and reconnect after a backoff.
    Churn {
        #[serde(with = "duration_ms", rename = "duration_ms")]
        duration: Duration,
        rate_per_s: f64,
    },
    /// A `fraction` of the fleet drops at the same instant at the start of the phase and reconnects
    /// with exponential backoff and jitter: a reconnect storm.
    Storm {
        #[serde(with = "duration_ms", rename = "duration_ms")]
        duration: Duration,
        fraction: f64,
    },
}

impl PhaseKind {
    /// How long the phase lasts (`None` for the ramp, whose length follows from the fleet size).
    pub fn duration(&self) -> Option<Duration> {
        match self {
            PhaseKind::Ramp { .. } => None,
            PhaseKind::Steady { duration }
            | PhaseKind::Churn { duration, .. }
            | PhaseKind::Storm { duration, .. } => Some(*duration),
        }
    }

    /// The kind's name in scenario files.
    pub fn kind_name(&self) -> &'static str {
        match self {
            PhaseKind::Ramp { .. } => "ramp",
            PhaseKind::Steady { .. } => "steady",
            PhaseKind::Churn { .. } => "churn",
            PhaseKind::Storm { .. } => "storm",
        }
    }
}

/// Serialise durations as whole milliseconds in the resolved scenario of a report.
pub(crate) mod duration_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A group's profile in the resolved scenario: its name.
fn profile_name<S: serde::Serializer>(profile: &Arc<Profile>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(profile.name())
}

/// Scenario-defined profiles in the resolved scenario: their whole definitions.
fn profile_definitions<S: serde::Serializer>(
    profiles: &[Arc<Profile>],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(profiles.iter().map(|p| p.describe()))
}
