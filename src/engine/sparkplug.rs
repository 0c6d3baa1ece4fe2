//! A device task's Sparkplug B side: the edge node (births, data by alias, the NDEATH will) for one MQTT
//! connection and its devices, with metric values that follow the profile's kind of machine. The
//! protocol rules live in `telemetry::sparkplug`; this only feeds them and hands out messages.

use std::sync::{Arc, Mutex, PoisonError};

use crate::mqtt::Will;
use crate::plan::pacer::splitmix64;
use crate::scenario::Qos;
use crate::telemetry::sparkplug::{
    DataType, DeviceSpec, EdgeNode, Message, MetricSpec, Outbox, QoS, Value,
};
use crate::telemetry::{DeviceTelemetry, OutputKind, Profile, Sample};

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
}

impl SparkplugNode {
    /// An edge node `node_id` (the client id) in `group_id` with `devices` devices `d0`, `d1`, ...
    pub fn new(
        group_id: &str,
        node_id: &str,
        devices: u16,
        profile: &Arc<Profile>,
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
        let edge = EdgeNode::new(group_id, node_id, Arc::from(Vec::new()), &specs).ok()?;
        Some(SparkplugNode {
            edge,
            command_topic: format!("spBv1.0/{group_id}/NCMD/{node_id}").into(),
            outbox: Outbox::new(),
            profile: profile.clone(),
            devices: (0..u64::from(devices))
                .map(|d| DeviceTelemetry::new(profile, seed, splitmix64(node_key ^ d)))
                .collect(),
            samples: Vec::with_capacity(profile.outputs().len()),
        })
    }

    /// The NDEATH to register as the MQTT will of the next CONNECT.
    pub fn will(&self) -> Will {
        to_will(self.edge.will())
    }

    /// NBIRTH and every DBIRTH, after CONNACK.
    pub fn births(&mut self, t_us: u64) -> &[Message] {
        self.outbox.clear();
        self.edge.births(t_us / 1000, &mut self.outbox);
        self.outbox.messages()
    }

    /// DDATA of every device whose values changed, for the slot intended at `t_us`.
    pub fn data(&mut self, t_us: u64) -> &[Message] {
        self.outbox.clear();
        for (d, telemetry) in self.devices.iter_mut().enumerate() {
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
            let _ = self
                .edge
                .data(d, &self.samples, t_us / 1000, &mut self.outbox);
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

    /// The connection ended: the next session uses the next bdSeq.
    pub fn disconnected(&mut self) {
        self.edge.disconnected();
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
