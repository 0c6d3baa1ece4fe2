//! A device task's Sparkplug B side: the edge node (births, data by alias, the NDEATH will) for one MQTT
//! connection and its devices, with metric values that follow the profile's kind of machine. The
//! protocol rules live in `telemetry::sparkplug`; this only feeds them and hands out messages.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::mqtt::Will;
use crate::plan::pacer::splitmix64;
use crate::scenario::{DeviceOutages, Qos};
use crate::telemetry::sparkplug::{
    DataType, DeviceSpec, EdgeNode, Message, MetricSpec, Outbox, QoS, Value,
};
use crate::telemetry::{DeviceTelemetry, OutputKind, Profile, Rng, Sample};

/// The Sparkplug schema of a profile's outputs: float → Double, int → Int64, bool → Boolean, text → String,
/// each carrying the profile's nominal value in the first birth.
fn build_schema(profile: &Profile) -> Option<Arc<[MetricSpec]>> {
    profile
        .outputs()
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let datatype = match o.kind {
                OutputKind::Float { .. } => DataType::Double,
                OutputKind::Int => DataType::Int64,
                OutputKind::Bool => DataType::Boolean,
                OutputKind::Text => DataType::String,
            };
            let initial = to_value(profile.nominal(i), o.kind);
            MetricSpec::new(&o.name, datatype)?.with_initial(initial)
        })
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .map(Arc::from)
}

/// The schema of a profile, built once per process and shared by every edge node using the profile.
fn schema(profile: &Arc<Profile>) -> Option<Arc<[MetricSpec]>> {
    type Cache = Vec<(Arc<Profile>, Arc<[MetricSpec]>)>;
    static CACHE: Mutex<Cache> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, s)) = cache.iter().find(|(p, _)| Arc::ptr_eq(p, profile)) {
        return Some(s.clone());
    }
    let built = build_schema(profile)?;
    cache.push((profile.clone(), built.clone()));
    Some(built)
}

/// A sample as a Sparkplug value; floats are rounded to the output's decimals, as JSON payloads are.
fn to_value(sample: Sample<'_>, kind: OutputKind) -> Value {
    match (sample, kind) {
        (Sample::Float(v), OutputKind::Float { decimals }) => {
            let scale = 10f64.powi(i32::from(decimals.min(9)));
            Value::Double((v * scale).round() / scale)
        }
        (Sample::Float(v), _) => Value::Double(v),
        (Sample::Int(i), _) => Value::Int(i),
        (Sample::Bool(b), _) => Value::Bool(b),
        (Sample::Text(t), _) => Value::Text(t.into()),
    }
}

/// Node metric: seconds since this session's first NBIRTH.
const NODE_UPTIME: usize = 0;
/// Node metric: DDATA messages sent in this session.
const NODE_DATA_SENT: usize = 1;
/// How often the node's own metrics go out as NDATA, in seconds of uptime.
pub const NODE_REPORT_S: u64 = 60;

/// The edge node's own metrics (in NBIRTH, then NDATA about once a minute): shared by every node.
fn node_schema() -> Option<Arc<[MetricSpec]>> {
    static NODE: OnceLock<Option<Arc<[MetricSpec]>>> = OnceLock::new();
    NODE.get_or_init(|| {
        let uptime = MetricSpec::new("Node Info/Uptime s", DataType::Int64).ok()?;
        let sent = MetricSpec::new("Node Info/DDATA sent", DataType::Int64).ok()?;
        Some(Arc::from(vec![uptime, sent]))
    })
    .clone()
}

/// One edge node: the MQTT connection of a device task in a Sparkplug group.
pub struct SparkplugNode {
    edge: EdgeNode,
    /// `spBv1.0/{group}/NCMD/{node}`: where a host asks this node for a rebirth.
    command_topic: Box<str>,
    outbox: Outbox,
    profile: Arc<Profile>,
    /// One telemetry state per Sparkplug device.
    devices: Box<[DeviceTelemetry]>,
    samples: Vec<(usize, Value)>,
    /// This session's first NBIRTH, µs since the Unix epoch.
    born_at_us: Option<u64>,
    /// DDATA messages sent in this session.
    data_sent: u64,
    /// Uptime (s) of the last NDATA.
    node_reported_s: u64,
    /// Devices going offline behind the live node: (rate per second, duration in µs).
    outages: Option<(f64, u64)>,
    /// Per device: end of its outage (µs since the Unix epoch), 0 while online.
    offline_until_us: Box<[u64]>,
    /// Intended time of the previous data slot.
    last_data_us: u64,
    /// Draws of outage starts, seeded per node.
    rng: Rng,
}

impl SparkplugNode {
    /// An edge node `node_id` (the client id) in `group_id` with `devices` devices `d0`, `d1`, ...
    pub fn new(
        group_id: &str,
        node_id: &str,
        devices: u16,
        profile: &Arc<Profile>,
        outages: Option<&DeviceOutages>,
        seed: u64,
        key: u64,
    ) -> Option<SparkplugNode> {
        let metrics = schema(profile)?;
        let node_key = splitmix64(seed ^ splitmix64(key));
        let ids: Vec<String> = (0..devices).map(|i| format!("d{i}")).collect();
        let specs: Vec<DeviceSpec<'_>> = ids
            .iter()
            .map(|id| DeviceSpec {
                device_id: id,
                metrics: metrics.clone(),
            })
            .collect();
        let edge = EdgeNode::new(group_id, node_id, node_schema()?, &specs).ok()?;
        Some(SparkplugNode {
            edge,
            command_topic: format!("spBv1.0/{group_id}/NCMD/{node_id}").into(),
            outbox: Outbox::new(),
            profile: profile.clone(),
            devices: (0..u64::from(devices))
                .map(|d| DeviceTelemetry::new(profile, seed, splitmix64(node_key ^ d)))
                .collect(),
            samples: Vec::with_capacity(profile.outputs().len()),
            born_at_us: None,
            data_sent: 0,
            node_reported_s: 0,
            outages: outages.map(|o| {
                let us = u64::try_from(o.duration.as_micros()).unwrap_or(u64::MAX);
                (o.rate_per_s, us)
            }),
            offline_until_us: vec![0; usize::from(devices)].into_boxed_slice(),
            last_data_us: 0,
            rng: Rng::new(splitmix64(node_key ^ 0x0DD_EA7)),
        })
    }

    /// The NDEATH to register as the MQTT will of the next CONNECT.
    pub fn will(&self) -> Will {
        to_will(self.edge.will())
    }

    /// NBIRTH and every DBIRTH, after CONNACK.
    pub fn births(&mut self, t_us: u64) -> &[Message] {
        self.outbox.clear();
        self.born_at_us.get_or_insert(t_us);
        // A (re)birth brings every device back.
        self.offline_until_us.fill(0);
        self.edge.births(t_us / 1000, &mut self.outbox);
        self.outbox.messages()
    }

    /// DDATA of every device whose values changed, for the slot intended at `t_us`.
    pub fn data(&mut self, t_us: u64) -> &[Message] {
        self.outbox.clear();
        let dt_s = match self.last_data_us {
            0 => 0.0,
            last => t_us.saturating_sub(last) as f64 / 1e6,
        };
        self.last_data_us = t_us;
        for (d, telemetry) in self.devices.iter_mut().enumerate() {
            if let Some((rate_per_s, duration_us)) = self.outages {
                let until = &mut self.offline_until_us[d];
                let start = self.rng.next_f64() < -(-rate_per_s * dt_s).exp_m1();
                if *until != 0 && t_us >= *until {
                    // Back: DBIRTH with the last reported values, then data as usual.
                    *until = 0;
                    let _ = self.edge.device_birth(d, t_us / 1000, &mut self.outbox);
                } else if *until != 0 {
                    continue;
                } else if start {
                    *until = t_us.saturating_add(duration_us).max(1);
                    let _ = self.edge.device_death(d, t_us / 1000, &mut self.outbox);
                    continue;
                }
            }
            self.samples.clear();
            let (edge, samples, outputs) = (&self.edge, &mut self.samples, self.profile.outputs());
            telemetry.sample(t_us, |i, sample, report| {
                let Some(output) = outputs.get(i).filter(|_| report) else {
                    return;
                };
                // Text only when it changed: no allocation for an unchanged state name.
                if let (Sample::Text(t), Some(Value::Text(current))) =
                    (sample, edge.value(Some(d), i))
                {
                    if **current == *t {
                        return;
                    }
                }
                samples.push((i, to_value(sample, output.kind)));
            });
            if let Ok(true) = self
                .edge
                .data(d, &self.samples, t_us / 1000, &mut self.outbox)
            {
                self.data_sent += 1;
            }
        }
        let uptime_s = self
            .born_at_us
            .map_or(0, |born| t_us.saturating_sub(born) / 1_000_000);
        if uptime_s >= self.node_reported_s + NODE_REPORT_S {
            self.node_reported_s = uptime_s;
            let node = [
                (
                    NODE_UPTIME,
                    Value::Int(i64::try_from(uptime_s).unwrap_or(i64::MAX)),
                ),
                (
                    NODE_DATA_SENT,
                    Value::Int(i64::try_from(self.data_sent).unwrap_or(i64::MAX)),
                ),
            ];
            let _ = self.edge.node_data(&node, t_us / 1000, &mut self.outbox);
        }
        self.outbox.messages()
    }

    /// The topic this node subscribes to for commands.
    pub fn command_topic(&self) -> &str {
        &self.command_topic
    }

    /// Whether a message on `topic` is an NCMD asking this node for a rebirth.
    pub fn wants_rebirth(&self, topic: &[u8], payload: &[u8]) -> bool {
        topic == self.command_topic.as_bytes()
            && self.edge.on_command(payload).is_ok_and(|c| c.rebirth)
    }

    /// Whether this session sent its NBIRTH (a node never born announces no death at a clean end).
    pub fn born(&self) -> bool {
        self.born_at_us.is_some()
    }

    /// The connection ended: the next session uses the next bdSeq.
    pub fn disconnected(&mut self) {
        self.edge.disconnected();
        self.born_at_us = None;
        self.data_sent = 0;
        self.node_reported_s = 0;
    }
}

fn to_will(m: Message) -> Will {
    Will {
        topic: m.topic,
        payload: m.payload,
        qos: match m.qos {
            QoS::AtMostOnce => Qos::AtMostOnce,
            QoS::AtLeastOnce => Qos::AtLeastOnce,
        },
        retain: m.retain,
    }
}

/// The MQTT QoS of a Sparkplug message.
pub fn qos(m: &Message) -> Qos {
    match m.qos {
        QoS::AtMostOnce => Qos::AtMostOnce,
        QoS::AtLeastOnce => Qos::AtLeastOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::sparkplug::Validator;

    /// 2026-01-01T00:00:00Z in µs.
    const T0_US: u64 = 1_767_225_600_000_000;

    fn observe(v: &mut Validator, messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .map(|m| {
                assert!(
                    v.observe(&m.topic, &m.payload, false).is_empty(),
                    "{}",
                    m.topic
                );
                m.topic.clone()
            })
            .collect()
    }

    #[test]
    fn node_metrics_go_out_as_ndata_once_a_minute_and_obey_the_rules() {
        let profile = crate::scenario::builtin_profile("cnc-machine").expect("built in");
        let mut node = SparkplugNode::new("g", "n1", 2, &profile, None, 1, 1).expect("node");
        let mut v = Validator::new();
        let births = observe(&mut v, node.births(T0_US));
        assert_eq!(
            births,
            [
                "spBv1.0/g/NBIRTH/n1",
                "spBv1.0/g/DBIRTH/n1/d0",
                "spBv1.0/g/DBIRTH/n1/d1"
            ]
        );
        let mut ndata = Vec::new();
        for k in 1..=150u64 {
            let t = T0_US + k * 1_000_000;
            for topic in observe(&mut v, node.data(t)) {
                if topic == "spBv1.0/g/NDATA/n1" {
                    ndata.push(k);
                }
            }
        }
        // Once a minute of uptime, by alias, with no rule broken along the way (checked per message).
        assert_eq!(ndata, [60, 120]);
        assert_eq!(v.total_violations(), 0);
        assert_eq!(v.data(), 2 + node.data_sent);
        // A new session counts from its own birth.
        node.disconnected();
        let _ = node.births(T0_US + 1_000_000_000);
        assert_eq!(node.node_reported_s, 0);
        assert!(node
            .data(T0_US + 1_030_000_000)
            .iter()
            .all(|m| !m.topic.contains("NDATA")));
    }

    #[test]
    fn devices_die_and_are_reborn_behind_a_live_node() {
        let profile = crate::scenario::builtin_profile("energy-meter").expect("built in");
        let outages = DeviceOutages {
            rate_per_s: 0.05,
            duration: std::time::Duration::from_secs(10),
        };
        let mut node =
            SparkplugNode::new("g", "n1", 4, &profile, Some(&outages), 1, 1).expect("node");
        let mut v = Validator::new();
        observe(&mut v, node.births(T0_US));
        let (mut deaths, mut births) = (0u64, 0u64);
        let mut dead: Vec<Option<u64>> = vec![None; 4];
        for k in 1..=2_000u64 {
            let t = T0_US + k * 1_000_000;
            for topic in observe(&mut v, node.data(t)) {
                let device = topic.rsplit('/').next().and_then(|d| d.strip_prefix('d'));
                let device: usize = device.and_then(|d| d.parse().ok()).unwrap_or(usize::MAX);
                if topic.contains("/DDEATH/") {
                    deaths += 1;
                    dead[device] = Some(k);
                } else if topic.contains("/DBIRTH/") {
                    births += 1;
                    // Back after the configured 10 s.
                    assert_eq!(dead[device].map(|at| k - at), Some(10), "{topic}");
                    dead[device] = None;
                } else if topic.contains("/DDATA/") {
                    assert_eq!(dead[device], None, "data from a dead device: {topic}");
                }
            }
        }
        // 4 devices, 2000 s, an outage starts at 0.05/s while online (20 s on average), lasts 10 s:
        // about 2000 / 30 per device.
        let expected = 4.0 * 2000.0 / 30.0;
        assert!(
            (deaths as f64 - expected).abs() < 0.25 * expected,
            "{deaths} outages, expected {expected}"
        );
        assert!(births + 4 >= deaths && births <= deaths);
        assert_eq!(v.total_violations(), 0);
    }
}
