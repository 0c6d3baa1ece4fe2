//! A device task's Sparkplug B side: the edge node (births, data by alias, the NDEATH will) for one MQTT
//! connection and its devices, with metric values that follow the profile's kind of machine. The
//! protocol rules live in `telemetry::sparkplug`; this only feeds them and hands out messages.

use std::f64::consts::TAU;
use std::sync::{Arc, OnceLock};

use crate::mqtt::Will;
use crate::plan::pacer::splitmix64;
use crate::scenario::Qos;
use crate::telemetry::sparkplug::{
    DataType, DeviceSpec, EdgeNode, Message, MetricSpec, Outbox, QoS, Value,
};
use crate::telemetry::ProfileKind;

/// How one metric moves: `base + amplitude * sin(2π t / period + phase)` plus a little seeded noise,
/// or a counter growing at `base` per second.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    base: f64,
    amplitude: f64,
    period_s: f64,
    counter: bool,
}

const ENV: [Shape; 3] = [
    Shape {
        name: "temperature_c",
        base: 21.0,
        amplitude: 2.5,
        period_s: 600.0,
        counter: false,
    },
    Shape {
        name: "humidity_pct",
        base: 45.0,
        amplitude: 8.0,
        period_s: 900.0,
        counter: false,
    },
    Shape {
        name: "pressure_hpa",
        base: 1013.0,
        amplitude: 4.0,
        period_s: 3600.0,
        counter: false,
    },
];
const ENERGY: [Shape; 3] = [
    Shape {
        name: "power_kw",
        base: 25.0,
        amplitude: 6.0,
        period_s: 300.0,
        counter: false,
    },
    Shape {
        name: "voltage_v",
        base: 230.0,
        amplitude: 3.0,
        period_s: 120.0,
        counter: false,
    },
    Shape {
        name: "energy_wh",
        base: 7.0,
        amplitude: 0.0,
        period_s: 1.0,
        counter: true,
    },
];
const CNC: [Shape; 3] = [
    Shape {
        name: "spindle_rpm",
        base: 12_000.0,
        amplitude: 2_500.0,
        period_s: 45.0,
        counter: false,
    },
    Shape {
        name: "spindle_temp_c",
        base: 48.0,
        amplitude: 6.0,
        period_s: 400.0,
        counter: false,
    },
    Shape {
        name: "part_count",
        base: 0.2,
        amplitude: 0.0,
        period_s: 1.0,
        counter: true,
    },
];

fn shapes(profile: ProfileKind) -> &'static [Shape; 3] {
    match profile {
        ProfileKind::EnvironmentSensor => &ENV,
        ProfileKind::EnergyMeter => &ENERGY,
        ProfileKind::CncMachine => &CNC,
    }
}

/// The metric schema of a profile, built once and shared by every device of the process.
fn schema(profile: ProfileKind) -> Option<Arc<[MetricSpec]>> {
    static CACHE: [OnceLock<Option<Arc<[MetricSpec]>>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match profile {
        ProfileKind::EnvironmentSensor => &CACHE[0],
        ProfileKind::EnergyMeter => &CACHE[1],
        ProfileKind::CncMachine => &CACHE[2],
    };
    slot.get_or_init(|| {
        shapes(profile)
            .iter()
            .map(|s| {
                if s.counter {
                    MetricSpec::new(s.name, DataType::UInt64)?.with_initial(Value::UInt(0))
                } else {
                    MetricSpec::new(s.name, DataType::Double)?.with_initial(Value::Double(s.base))
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .map(Arc::from)
    })
    .clone()
}

/// One edge node: the MQTT connection of a device task in a Sparkplug group.
pub struct SparkplugNode {
    edge: EdgeNode,
    /// `spBv1.0/{group}/NCMD/{node}`: where a host asks this node for a rebirth.
    command_topic: Box<str>,
    outbox: Outbox,
    profile: ProfileKind,
    key: u64,
    samples: Vec<(usize, Value)>,
}

impl SparkplugNode {
    /// An edge node `node_id` (the client id) in `group_id` with `devices` devices `d0`, `d1`, ...
    pub fn new(
        group_id: &str,
        node_id: &str,
        devices: u16,
        profile: ProfileKind,
        seed: u64,
        key: u64,
    ) -> Option<SparkplugNode> {
        let metrics = schema(profile)?;
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
            profile,
            key: splitmix64(seed ^ splitmix64(key)),
            samples: Vec::with_capacity(3),
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
        let t_s = t_us as f64 / 1e6;
        for d in 0..self.edge.device_count() {
            self.samples.clear();
            let dkey = splitmix64(self.key ^ d as u64);
            for (m, s) in shapes(self.profile).iter().enumerate() {
                let mkey = splitmix64(dkey ^ m as u64);
                let value = if s.counter {
                    Value::UInt((t_s * s.base * (0.9 + (mkey % 200) as f64 / 1000.0)) as u64)
                } else {
                    let phase = (mkey % 10_000) as f64 / 10_000.0 * TAU;
                    let noise = ((splitmix64(mkey ^ t_us) % 2001) as f64 / 1000.0 - 1.0)
                        * s.amplitude
                        * 0.02;
                    let v = s.base + s.amplitude * (TAU * t_s / s.period_s + phase).sin() + noise;
                    Value::Double((v * 100.0).round() / 100.0)
                };
                self.samples.push((m, value));
            }
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
