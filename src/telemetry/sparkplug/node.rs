//! The edge node state machine: one edge node, its devices and their metrics; what to publish, when.
//!
//! Pure: no I/O, no clock (the caller passes timestamps in ms since the Unix epoch), deterministic bytes.
//! Messages are written into an [`Outbox`] whose topic and payload buffers are reused from call to call.

use std::sync::Arc;

use prost::Message as _;

use super::error::SparkplugError;
use super::payload::{metric, DataType, Metric, Payload};
use super::topic::{self, MessageType};
use super::value::{Deadband, Value};

/// Name of the node birth/death sequence metric (Int64) in NBIRTH and NDEATH.
pub const BD_SEQ: &str = "bdSeq";
/// Name of the rebirth request metric (Boolean) in NBIRTH and NCMD.
pub const REBIRTH: &str = "Node Control/Rebirth";

/// MQTT quality of service (this module does not depend on the MQTT layer's types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
}

/// One MQTT message to publish.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
}

/// A reusable list of messages to publish. [`Outbox::clear`] keeps the buffers for the next call, so a
/// steady-state edge node allocates nothing per message.
#[derive(Debug, Default)]
pub struct Outbox {
    messages: Vec<Message>,
    spare: Vec<Message>,
}

impl Outbox {
    pub fn new() -> Self {
        Outbox::default()
    }

    /// The messages written since the last [`Outbox::clear`], in publish order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Forget the messages, keeping their buffers.
    pub fn clear(&mut self) {
        self.spare.append(&mut self.messages);
    }

    fn take(&mut self, qos: QoS, retain: bool) -> Message {
        let mut m = self.spare.pop().unwrap_or_default();
        m.topic.clear();
        m.payload.clear();
        m.qos = qos;
        m.retain = retain;
        m
    }

    fn commit(&mut self, m: Message) {
        self.messages.push(m);
    }

    fn give_back(&mut self, m: Message) {
        self.spare.push(m);
    }
}

/// One metric of a node or device schema. Schemas are shared (`Arc<[MetricSpec]>`) by every device of a
/// profile, so their size does not count per device.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    pub name: Box<str>,
    pub datatype: DataType,
    /// Value carried by the first birth.
    pub initial: Value,
    pub deadband: Deadband,
}

impl MetricSpec {
    /// A metric starting at the data type's zero, reported on any change.
    pub fn new(name: &str, datatype: DataType) -> Result<MetricSpec, SparkplugError> {
        Ok(MetricSpec {
            name: Box::from(name),
            datatype,
            initial: Value::zero(datatype)?,
            deadband: Deadband::Exact,
        })
    }

    /// Replace the initial value (checked against the data type).
    pub fn with_initial(mut self, initial: Value) -> Result<MetricSpec, SparkplugError> {
        initial.check(self.datatype)?;
        self.initial = initial;
        Ok(self)
    }

    pub fn with_deadband(mut self, deadband: Deadband) -> MetricSpec {
        self.deadband = deadband;
        self
    }
}

/// A device attached to an edge node.
#[derive(Debug, Clone)]
pub struct DeviceSpec<'a> {
    pub device_id: &'a str,
    pub metrics: Arc<[MetricSpec]>,
}

/// What an NCMD asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeCommand {
    /// `Node Control/Rebirth` = true: publish [`EdgeNode::births`] again (seq restarts at 0, same bdSeq).
    pub rebirth: bool,
    /// Metrics of the command this model does not act on.
    pub ignored_metrics: u32,
}

/// Bytes of fixed per-device state inside an [`EdgeNode`] (values and id bytes come on top).
pub const DEVICE_STATE_BYTES: usize = std::mem::size_of::<DeviceState>();

/// Per-device state: 56 bytes plus `24 * metrics` bytes of values and the id's bytes on the heap.
#[derive(Debug)]
struct DeviceState {
    device_id: Box<str>,
    metrics: Arc<[MetricSpec]>,
    /// Last reported value of each metric (what the host applications know).
    values: Box<[Value]>,
    /// Alias of metric 0; metric i has alias `alias_base + i`.
    alias_base: u32,
    born: bool,
}

/// One Sparkplug B edge node and its devices.
///
/// Life cycle, per MQTT connection:
/// 1. [`EdgeNode::will`] gives the NDEATH to register as the CONNECT will (QoS 1, not retained);
/// 2. after CONNACK (and, with a primary host, once [`StateGate`](super::StateGate) allows), publish
///    [`EdgeNode::births`]: NBIRTH (seq 0) then one DBIRTH per device;
/// 3. [`EdgeNode::data`] / [`EdgeNode::node_data`] on new samples (report by exception);
///    [`EdgeNode::device_death`] / [`EdgeNode::device_birth`] when a device goes away / comes back;
///    [`EdgeNode::on_command`] on NCMD, and births again if it asks for a rebirth;
/// 4. on disconnect (after publishing the will's NDEATH explicitly if it was a clean one),
///    [`EdgeNode::disconnected`], which advances bdSeq for the next connection.
#[derive(Debug)]
pub struct EdgeNode {
    group_id: Box<str>,
    node_id: Box<str>,
    node_metrics: Arc<[MetricSpec]>,
    node_values: Box<[Value]>,
    devices: Box<[DeviceState]>,
    bd_seq: u8,
    next_seq: u8,
    born: bool,
}

impl EdgeNode {
    /// An edge node with `node_metrics` (aliases 1..) and `devices` (aliases continue after, device by device).
    /// bdSeq starts at 0.
    pub fn new(
        group_id: &str,
        node_id: &str,
        node_metrics: Arc<[MetricSpec]>,
        devices: &[DeviceSpec<'_>],
    ) -> Result<EdgeNode, SparkplugError> {
        topic::check_id(group_id).map_err(|source| SparkplugError::InvalidId {
            what: "group",
            source,
        })?;
        topic::check_id(node_id).map_err(|source| SparkplugError::InvalidId {
            what: "edge node",
            source,
        })?;
        check_schema(&node_metrics, true)?;
        let node_values = initial_values(&node_metrics)?;
        let mut next_alias = u32::try_from(node_metrics.len())
            .ok()
            .and_then(|n| n.checked_add(1))
            .ok_or(SparkplugError::TooManyMetrics)?;
        let mut states = Vec::with_capacity(devices.len());
        let mut ids = std::collections::HashSet::with_capacity(devices.len());
        let mut previous: Option<&Arc<[MetricSpec]>> = None;
        for device in devices {
            topic::check_id(device.device_id).map_err(|source| SparkplugError::InvalidId {
                what: "device",
                source,
            })?;
            if !ids.insert(device.device_id) {
                return Err(SparkplugError::DuplicateId(Box::from(device.device_id)));
            }
            if !previous.is_some_and(|p| Arc::ptr_eq(p, &device.metrics)) {
                check_schema(&device.metrics, false)?;
            }
            previous = Some(&device.metrics);
            let alias_base = next_alias;
            next_alias = u32::try_from(device.metrics.len())
                .ok()
                .and_then(|n| next_alias.checked_add(n))
                .ok_or(SparkplugError::TooManyMetrics)?;
            states.push(DeviceState {
                device_id: Box::from(device.device_id),
                metrics: Arc::clone(&device.metrics),
                values: initial_values(&device.metrics)?,
                alias_base,
                born: false,
            });
        }
        Ok(EdgeNode {
            group_id: Box::from(group_id),
            node_id: Box::from(node_id),
            node_metrics,
            node_values,
            devices: states.into_boxed_slice(),
            bd_seq: 0,
            next_seq: 0,
            born: false,
        })
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// bdSeq of the current (or next) connection: the one in the will and in the NBIRTH.
    pub fn bd_seq(&self) -> u8 {
        self.bd_seq
    }

    /// seq the next NDATA/DBIRTH/DDATA/DDEATH will carry.
    pub fn next_seq(&self) -> u8 {
        self.next_seq
    }

    /// True between [`EdgeNode::births`] and [`EdgeNode::disconnected`].
    pub fn is_born(&self) -> bool {
        self.born
    }

    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    pub fn device_id(&self, device: usize) -> Option<&str> {
        self.devices.get(device).map(|d| &*d.device_id)
    }

    /// Alias of node metric `metric` (`device` = None) or of a device's metric.
    pub fn alias(&self, device: Option<usize>, metric: usize) -> Option<u64> {
        let (base, len) = match device {
            None => (1, self.node_metrics.len()),
            Some(d) => {
                let d = self.devices.get(d)?;
                (d.alias_base, d.metrics.len())
            }
        };
        (metric < len).then(|| u64::from(base) + metric as u64)
    }

    /// Bytes this edge node owns (struct, per-device state, values, ids), excluding the shared metric
    /// schemas and allocator overhead.
    pub fn memory_bytes(&self) -> usize {
        let values = |v: &[Value]| {
            std::mem::size_of_val(v)
                + v.iter()
                    .map(|v| match v {
                        Value::Text(s) => s.len(),
                        _ => 0,
                    })
                    .sum::<usize>()
        };
        std::mem::size_of::<EdgeNode>()
            + self.group_id.len()
            + self.node_id.len()
            + values(&self.node_values)
            + self
                .devices
                .iter()
                .map(|d| std::mem::size_of::<DeviceState>() + d.device_id.len() + values(&d.values))
                .sum::<usize>()
    }

    /// Last reported value of a node metric (`device` = None) or device metric.
    pub fn value(&self, device: Option<usize>, metric: usize) -> Option<&Value> {
        match device {
            None => self.node_values.get(metric),
            Some(d) => self.devices.get(d)?.values.get(metric),
        }
    }

    /// The NDEATH to register as the MQTT will of the next CONNECT: QoS 1, not retained, a `bdSeq` metric
    /// equal to the next NBIRTH's, no seq and no timestamp (the will is written before the connection exists).
    pub fn will(&self) -> Message {
        let mut m = Message {
            qos: QoS::AtLeastOnce,
            retain: false,
            ..Message::default()
        };
        topic::write_edge(
            &mut m.topic,
            &self.group_id,
            MessageType::NDeath,
            &self.node_id,
            None,
        );
        let bd_seq = Metric {
            name: Some(String::from(BD_SEQ)),
            datatype: Some(DataType::Int64.number()),
            value: Some(metric::Value::LongValue(u64::from(self.bd_seq))),
            ..Metric::default()
        };
        prost::encoding::message::encode(2, &bd_seq, &mut m.payload);
        m
    }

    /// Start a new seq sequence and write NBIRTH (seq 0: `bdSeq`, `Node Control/Rebirth` = false, then every
    /// node metric) and one DBIRTH per device (every metric with name, alias, datatype, value, timestamp).
    /// Also how to answer a rebirth request: same bdSeq, seq from 0 again.
    pub fn births(&mut self, timestamp_ms: u64, out: &mut Outbox) {
        self.born = true;
        self.next_seq = 0;
        let mut m = out.take(QoS::AtMostOnce, false);
        topic::write_edge(
            &mut m.topic,
            &self.group_id,
            MessageType::NBirth,
            &self.node_id,
            None,
        );
        begin_payload(&mut m.payload, timestamp_ms);
        let control = [
            (BD_SEQ, DataType::Int64, Value::Int(i64::from(self.bd_seq))),
            (REBIRTH, DataType::Boolean, Value::Bool(false)),
        ];
        for (name, datatype, value) in control {
            encode_birth_metric(&mut m.payload, name, None, datatype, &value, timestamp_ms);
        }
        for (i, (spec, value)) in self
            .node_metrics
            .iter()
            .zip(self.node_values.iter())
            .enumerate()
        {
            let alias = 1 + i as u64;
            encode_birth_metric(
                &mut m.payload,
                &spec.name,
                Some(alias),
                spec.datatype,
                value,
                timestamp_ms,
            );
        }
        end_payload(&mut m.payload, take_seq(&mut self.next_seq));
        out.commit(m);
        for device in self.devices.iter_mut() {
            write_device_birth(
                &self.group_id,
                &self.node_id,
                &mut self.next_seq,
                device,
                timestamp_ms,
                out,
            );
        }
    }

    /// One DBIRTH for a device (after [`EdgeNode::device_death`], or a device added later in the session).
    pub fn device_birth(
        &mut self,
        device: usize,
        timestamp_ms: u64,
        out: &mut Outbox,
    ) -> Result<(), SparkplugError> {
        if !self.born {
            return Err(SparkplugError::NotBorn);
        }
        let state = self
            .devices
            .get_mut(device)
            .ok_or(SparkplugError::NoSuchDevice(device))?;
        write_device_birth(
            &self.group_id,
            &self.node_id,
            &mut self.next_seq,
            state,
            timestamp_ms,
            out,
        );
        Ok(())
    }

    /// Report-by-exception DDATA for `device`: of `samples` (metric index, new value), only those beyond the
    /// metric's deadband from the last reported value are sent, by alias (no name, no datatype), and become
    /// the last reported values. Returns whether a message was written (no change: nothing, no seq used).
    /// All samples are checked before anything changes.
    pub fn data(
        &mut self,
        device: usize,
        samples: &[(usize, Value)],
        timestamp_ms: u64,
        out: &mut Outbox,
    ) -> Result<bool, SparkplugError> {
        if !self.born {
            return Err(SparkplugError::NotBorn);
        }
        let state = self
            .devices
            .get_mut(device)
            .ok_or(SparkplugError::NoSuchDevice(device))?;
        if !state.born {
            return Err(SparkplugError::NotBorn);
        }
        check_samples(&state.metrics, samples)?;
        let mut m = out.take(QoS::AtMostOnce, false);
        begin_payload(&mut m.payload, timestamp_ms);
        let changed = encode_changes(
            &mut m.payload,
            &state.metrics,
            &mut state.values,
            state.alias_base,
            samples,
            timestamp_ms,
        );
        if changed == 0 {
            out.give_back(m);
            return Ok(false);
        }
        end_payload(&mut m.payload, take_seq(&mut self.next_seq));
        topic::write_edge(
            &mut m.topic,
            &self.group_id,
            MessageType::DData,
            &self.node_id,
            Some(&state.device_id),
        );
        out.commit(m);
        Ok(true)
    }

    /// As [`EdgeNode::data`], for the node's own metrics (NDATA).
    pub fn node_data(
        &mut self,
        samples: &[(usize, Value)],
        timestamp_ms: u64,
        out: &mut Outbox,
    ) -> Result<bool, SparkplugError> {
        if !self.born {
            return Err(SparkplugError::NotBorn);
        }
        check_samples(&self.node_metrics, samples)?;
        let mut m = out.take(QoS::AtMostOnce, false);
        begin_payload(&mut m.payload, timestamp_ms);
        let changed = encode_changes(
            &mut m.payload,
            &self.node_metrics,
            &mut self.node_values,
            1,
            samples,
            timestamp_ms,
        );
        if changed == 0 {
            out.give_back(m);
            return Ok(false);
        }
        end_payload(&mut m.payload, take_seq(&mut self.next_seq));
        topic::write_edge(
            &mut m.topic,
            &self.group_id,
            MessageType::NData,
            &self.node_id,
            None,
        );
        out.commit(m);
        Ok(true)
    }

    /// DDEATH for a born device (timestamp and seq, no metrics); its data is refused until
    /// [`EdgeNode::device_birth`].
    pub fn device_death(
        &mut self,
        device: usize,
        timestamp_ms: u64,
        out: &mut Outbox,
    ) -> Result<(), SparkplugError> {
        if !self.born {
            return Err(SparkplugError::NotBorn);
        }
        let state = self
            .devices
            .get_mut(device)
            .ok_or(SparkplugError::NoSuchDevice(device))?;
        if !state.born {
            return Err(SparkplugError::NotBorn);
        }
        state.born = false;
        let mut m = out.take(QoS::AtMostOnce, false);
        topic::write_edge(
            &mut m.topic,
            &self.group_id,
            MessageType::DDeath,
            &self.node_id,
            Some(&state.device_id),
        );
        begin_payload(&mut m.payload, timestamp_ms);
        end_payload(&mut m.payload, take_seq(&mut self.next_seq));
        out.commit(m);
        Ok(())
    }

    /// Read an NCMD payload. A `Node Control/Rebirth` metric (by name) with boolean value true asks for a
    /// rebirth: the caller then publishes [`EdgeNode::births`] again.
    pub fn on_command(&self, payload: &[u8]) -> Result<NodeCommand, SparkplugError> {
        let decoded = Payload::decode(payload)?;
        let mut command = NodeCommand::default();
        for metric in &decoded.metrics {
            match (&metric.name, &metric.value) {
                (Some(name), Some(metric::Value::BooleanValue(true))) if name == REBIRTH => {
                    command.rebirth = true;
                }
                _ => command.ignored_metrics = command.ignored_metrics.saturating_add(1),
            }
        }
        Ok(command)
    }

    /// The MQTT connection is gone (clean or not): the session ends, every device is unborn, and bdSeq
    /// advances (mod 256) for the next connection's will and NBIRTH.
    pub fn disconnected(&mut self) {
        self.born = false;
        for device in self.devices.iter_mut() {
            device.born = false;
        }
        self.bd_seq = self.bd_seq.wrapping_add(1);
    }
}

fn take_seq(next: &mut u8) -> u8 {
    let seq = *next;
    *next = next.wrapping_add(1);
    seq
}

fn check_schema(metrics: &[MetricSpec], node: bool) -> Result<(), SparkplugError> {
    for (i, spec) in metrics.iter().enumerate() {
        if spec.name.is_empty() {
            return Err(SparkplugError::InvalidMetric(spec.name.clone()));
        }
        spec.initial.check(spec.datatype)?;
        let reserved = node && (&*spec.name == BD_SEQ || &*spec.name == REBIRTH);
        let duplicate = metrics
            .get(..i)
            .is_some_and(|before| before.iter().any(|b| b.name == spec.name));
        if reserved || duplicate {
            return Err(SparkplugError::InvalidMetric(spec.name.clone()));
        }
    }
    Ok(())
}

fn initial_values(metrics: &[MetricSpec]) -> Result<Box<[Value]>, SparkplugError> {
    metrics
        .iter()
        .map(|spec| {
            spec.initial.check(spec.datatype)?;
            Ok(spec.initial.clone())
        })
        .collect()
}

fn check_samples(metrics: &[MetricSpec], samples: &[(usize, Value)]) -> Result<(), SparkplugError> {
    for (index, value) in samples {
        let spec = metrics
            .get(*index)
            .ok_or(SparkplugError::NoSuchMetric(*index))?;
        value.check(spec.datatype)?;
    }
    Ok(())
}

/// Encode the samples that exceed their deadband, update the stored values; returns how many were encoded.
fn encode_changes(
    buf: &mut Vec<u8>,
    metrics: &[MetricSpec],
    values: &mut [Value],
    alias_base: u32,
    samples: &[(usize, Value)],
    timestamp_ms: u64,
) -> usize {
    let mut changed = 0;
    for (index, value) in samples {
        let (Some(spec), Some(last)) = (metrics.get(*index), values.get_mut(*index)) else {
            continue;
        };
        if !spec.deadband.exceeded(last, value) {
            continue;
        }
        let wire = Metric {
            alias: Some(u64::from(alias_base) + *index as u64),
            timestamp: Some(timestamp_ms),
            value: Some(value.to_wire(spec.datatype)),
            ..Metric::default()
        };
        prost::encoding::message::encode(2, &wire, buf);
        last.clone_from(value);
        changed += 1;
    }
    changed
}

fn write_device_birth(
    group_id: &str,
    node_id: &str,
    next_seq: &mut u8,
    device: &mut DeviceState,
    timestamp_ms: u64,
    out: &mut Outbox,
) {
    device.born = true;
    let mut m = out.take(QoS::AtMostOnce, false);
    topic::write_edge(
        &mut m.topic,
        group_id,
        MessageType::DBirth,
        node_id,
        Some(&device.device_id),
    );
    begin_payload(&mut m.payload, timestamp_ms);
    for (i, (spec, value)) in device.metrics.iter().zip(device.values.iter()).enumerate() {
        let alias = u64::from(device.alias_base) + i as u64;
        encode_birth_metric(
            &mut m.payload,
            &spec.name,
            Some(alias),
            spec.datatype,
            value,
            timestamp_ms,
        );
    }
    end_payload(&mut m.payload, take_seq(next_seq));
    out.commit(m);
}

/// Payload field 1 (timestamp). Fields go out in number order, exactly as `Payload::encode` writes them.
fn begin_payload(buf: &mut Vec<u8>, timestamp_ms: u64) {
    buf.clear();
    prost::encoding::uint64::encode(1, &timestamp_ms, buf);
}

/// Payload field 3 (seq).
fn end_payload(buf: &mut Vec<u8>, seq: u8) {
    prost::encoding::uint64::encode(3, &u64::from(seq), buf);
}

fn encode_birth_metric(
    buf: &mut Vec<u8>,
    name: &str,
    alias: Option<u64>,
    datatype: DataType,
    value: &Value,
    timestamp_ms: u64,
) {
    let wire = Metric {
        name: Some(String::from(name)),
        alias,
        timestamp: Some(timestamp_ms),
        datatype: Some(datatype.number()),
        value: Some(value.to_wire(datatype)),
        ..Metric::default()
    };
    prost::encoding::message::encode(2, &wire, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> EdgeNode {
        let schema: Arc<[MetricSpec]> = Arc::from(vec![
            MetricSpec::new("temp", DataType::Double)
                .unwrap()
                .with_deadband(Deadband::Absolute(0.5)),
            MetricSpec::new("on", DataType::Boolean).unwrap(),
        ]);
        let devices = [
            DeviceSpec {
                device_id: "d0",
                metrics: Arc::clone(&schema),
            },
            DeviceSpec {
                device_id: "d1",
                metrics: schema,
            },
        ];
        let node_metrics: Arc<[MetricSpec]> =
            Arc::from(vec![MetricSpec::new("uptime", DataType::UInt64).unwrap()]);
        EdgeNode::new("g", "n", node_metrics, &devices).unwrap()
    }

    #[test]
    fn sizes() {
        let device = std::mem::size_of::<DeviceState>();
        let node = std::mem::size_of::<EdgeNode>();
        println!("size_of::<DeviceState>() = {device}, size_of::<EdgeNode>() = {node}");
        assert!(device <= 56);
        assert!(node <= 96);
    }

    #[test]
    fn aliases_are_unique_across_the_node() {
        let n = node();
        assert_eq!(n.alias(None, 0), Some(1));
        assert_eq!(n.alias(Some(0), 0), Some(2));
        assert_eq!(n.alias(Some(0), 1), Some(3));
        assert_eq!(n.alias(Some(1), 0), Some(4));
        assert_eq!(n.alias(Some(1), 2), None);
    }

    #[test]
    fn direct_encoding_matches_prost() {
        let mut n = node();
        let mut out = Outbox::new();
        n.births(1_000, &mut out);
        n.data(0, &[(0, Value::Double(3.0))], 2_000, &mut out)
            .unwrap();
        for m in out.messages() {
            let decoded = Payload::decode(m.payload.as_slice()).unwrap();
            assert_eq!(decoded.encode_to_vec(), m.payload, "{}", m.topic);
        }
        let will = n.will();
        let decoded = Payload::decode(will.payload.as_slice()).unwrap();
        assert_eq!(decoded.encode_to_vec(), will.payload);
    }

    #[test]
    fn invalid_configuration_is_refused() {
        let bad = Arc::from(vec![MetricSpec::new(BD_SEQ, DataType::Int64).unwrap()]);
        assert!(EdgeNode::new("g", "n", bad, &[]).is_err());
        assert!(EdgeNode::new("g/x", "n", Arc::from(Vec::new()), &[]).is_err());
        let schema: Arc<[MetricSpec]> = Arc::from(Vec::new());
        let twice = [
            DeviceSpec {
                device_id: "d",
                metrics: Arc::clone(&schema),
            },
            DeviceSpec {
                device_id: "d",
                metrics: schema,
            },
        ];
        assert!(matches!(
            EdgeNode::new("g", "n", Arc::from(Vec::new()), &twice),
            Err(SparkplugError::DuplicateId(_))
        ));
    }

    #[test]
    fn data_before_births_is_refused() {
        let mut n = node();
        let mut out = Outbox::new();
        assert!(matches!(
            n.data(0, &[(0, Value::Double(1.0))], 0, &mut out),
            Err(SparkplugError::NotBorn)
        ));
        n.births(0, &mut out);
        assert!(matches!(
            n.data(0, &[(0, Value::Bool(true))], 0, &mut out),
            Err(SparkplugError::ValueMismatch(DataType::Double))
        ));
        assert!(matches!(
            n.data(9, &[], 0, &mut out),
            Err(SparkplugError::NoSuchDevice(9))
        ));
    }
}
