//! Sparkplug B: schema field numbers, edge node sequencing, report by exception, rebirth, validator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap and panic

use std::sync::Arc;

use fleetstorm::telemetry::sparkplug::payload::{metric, MetaData, PropertySet, Template};
use fleetstorm::telemetry::sparkplug::{
    DataType, Deadband, DeviceSpec, EdgeNode, Message, Metric, MetricSpec, Outbox, Payload, QoS,
    Topic, Validator, Value, Violation, BD_SEQ, DEVICE_STATE_BYTES, REBIRTH,
};
use prost::Message as _;

const TS: u64 = 1_700_000_000_000;

/// Hand-computed wire bytes of a payload touching every Payload field and every scalar Metric field.
/// key = (field_number << 3) | wire_type; wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
#[rustfmt::skip]
const WIRE: &[u8] = &[
    0x08, 0xE8, 0x07,                   // Payload.timestamp (1, varint) = 1000 (0xE8 0x07)
    0x12, 0x12,                         // Payload.metrics (2, len) 18 bytes:
        0x0A, 0x01, b't',               //   name (1, len) "t"
        0x10, 0x05,                     //   alias (2) = 5
        0x18, 0xE8, 0x07,               //   timestamp (3) = 1000
        0x20, 0x03,                     //   datatype (4) = 3 (Int32)
        0x28, 0x00,                     //   is_historical (5) = false
        0x30, 0x01,                     //   is_transient (6) = true
        0x38, 0x00,                     //   is_null (7) = false
        0x50, 0x2A,                     //   int_value (10, varint) = 42
    0x12, 0x05, 0x10, 0x06, 0x58, 0xAC, 0x02,           // alias 6, long_value (11) = 300 (0xAC 0x02)
    0x12, 0x05, 0x65, 0x00, 0x00, 0xC0, 0x3F,           // float_value (12, fixed32) = 1.5f32
    0x12, 0x09, 0x69, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F,     // double_value (13, fixed64) = 1.5f64
    0x12, 0x02, 0x70, 0x01,                             // boolean_value (14) = true
    0x12, 0x04, 0x7A, 0x02, b'h', b'i',                 // string_value (15, len) = "hi"
    0x12, 0x05, 0x82, 0x01, 0x02, 0x01, 0x02,           // bytes_value (16 -> key 130 = 0x82 0x01) = [1, 2]
    0x12, 0x0A,                                         // metadata (8) + properties (9):
        0x42, 0x03, 0x12, 0x01, b'x',                   //   MetaData.content_type (2) = "x"
        0x4A, 0x03, 0x0A, 0x01, b'k',                   //   PropertySet.keys (1) = ["k"]
    0x12, 0x05, 0x8A, 0x01, 0x02, 0x08, 0x01,           // dataset_value (17 -> 0x8A 0x01) num_of_columns=1
    0x12, 0x03, 0x92, 0x01, 0x00,                       // template_value (18 -> 0x92 0x01), empty
    0x18, 0x07,                         // Payload.seq (3) = 7
    0x22, 0x01, b'u',                   // Payload.uuid (4, len) = "u"
    0x2A, 0x01, 0x09,                   // Payload.body (5, len) = [9]
];

fn valued(alias: u64, value: metric::Value) -> Metric {
    Metric {
        alias: Some(alias),
        value: Some(value),
        ..Metric::default()
    }
}

#[test]
fn field_numbers_match_the_official_encoding() {
    let expected = Payload {
        timestamp: Some(1000),
        metrics: vec![
            Metric {
                name: Some("t".into()),
                alias: Some(5),
                timestamp: Some(1000),
                datatype: Some(DataType::Int32.number()),
                is_historical: Some(false),
                is_transient: Some(true),
                is_null: Some(false),
                value: Some(metric::Value::IntValue(42)),
                ..Metric::default()
            },
            valued(6, metric::Value::LongValue(300)),
            Metric {
                value: Some(metric::Value::FloatValue(1.5)),
                ..Metric::default()
            },
            Metric {
                value: Some(metric::Value::DoubleValue(1.5)),
                ..Metric::default()
            },
            Metric {
                value: Some(metric::Value::BooleanValue(true)),
                ..Metric::default()
            },
            Metric {
                value: Some(metric::Value::StringValue("hi".into())),
                ..Metric::default()
            },
            Metric {
                value: Some(metric::Value::BytesValue(vec![1, 2])),
                ..Metric::default()
            },
            Metric {
                metadata: Some(MetaData {
                    content_type: Some("x".into()),
                    ..MetaData::default()
                }),
                properties: Some(PropertySet {
                    keys: vec!["k".into()],
                    values: vec![],
                }),
                ..Metric::default()
            },
            Metric {
                value: Some(metric::Value::DatasetValue(
                    fleetstorm::telemetry::sparkplug::payload::DataSet {
                        num_of_columns: Some(1),
                        ..Default::default()
                    },
                )),
                ..Metric::default()
            },
            Metric {
                value: Some(metric::Value::TemplateValue(Template::default())),
                ..Metric::default()
            },
        ],
        seq: Some(7),
        uuid: Some("u".into()),
        body: Some(vec![9]),
    };
    let decoded = Payload::decode(WIRE).expect("official bytes decode");
    assert_eq!(decoded, expected);
    assert_eq!(expected.encode_to_vec(), WIRE);
}

fn device_schema() -> Arc<[MetricSpec]> {
    Arc::from(vec![
        MetricSpec::new("Temperature", DataType::Double)
            .unwrap()
            .with_initial(Value::Double(20.0))
            .unwrap()
            .with_deadband(Deadband::Absolute(0.5)),
        MetricSpec::new("Count", DataType::Int32).unwrap(),
        MetricSpec::new("Running", DataType::Boolean).unwrap(),
        MetricSpec::new("Mode", DataType::String)
            .unwrap()
            .with_initial(Value::Text("auto".into()))
            .unwrap(),
    ])
}

fn node_with(devices: usize) -> EdgeNode {
    let schema = device_schema();
    let ids: Vec<String> = (0..devices).map(|i| format!("dev-{i}")).collect();
    let specs: Vec<DeviceSpec<'_>> = ids
        .iter()
        .map(|id| DeviceSpec {
            device_id: id,
            metrics: Arc::clone(&schema),
        })
        .collect();
    let node_metrics: Arc<[MetricSpec]> =
        Arc::from(vec![MetricSpec::new("Uptime", DataType::UInt64).unwrap()]);
    EdgeNode::new("plant-1", "edge-7", node_metrics, &specs).unwrap()
}

fn decode(m: &Message) -> Payload {
    Payload::decode(m.payload.as_slice()).expect("our payloads decode")
}

#[test]
fn births_carry_every_metric_and_nbirth_is_seq_zero_with_bd_seq() {
    let mut node = node_with(3);
    let mut out = Outbox::new();
    node.births(TS, &mut out);
    let msgs = out.messages();
    assert_eq!(msgs.len(), 4);
    for m in msgs {
        assert_eq!((m.qos, m.retain), (QoS::AtMostOnce, false), "{}", m.topic);
    }

    let nbirth = &msgs[0];
    assert_eq!(nbirth.topic, "spBv1.0/plant-1/NBIRTH/edge-7");
    let p = decode(nbirth);
    assert_eq!(p.seq, Some(0));
    assert_eq!(p.timestamp, Some(TS));
    let names: Vec<&str> = p.metrics.iter().filter_map(|m| m.name.as_deref()).collect();
    assert_eq!(names, [BD_SEQ, REBIRTH, "Uptime"]);
    assert_eq!(p.metrics[0].value, Some(metric::Value::LongValue(0)));
    assert_eq!(p.metrics[0].datatype, Some(DataType::Int64.number()));
    assert_eq!(p.metrics[1].value, Some(metric::Value::BooleanValue(false)));
    assert_eq!(p.metrics[1].datatype, Some(DataType::Boolean.number()));
    assert_eq!(p.metrics[2].alias, Some(1));

    let mut aliases = vec![1];
    for (d, m) in msgs[1..].iter().enumerate() {
        assert_eq!(m.topic, format!("spBv1.0/plant-1/DBIRTH/edge-7/dev-{d}"));
        let p = decode(m);
        assert_eq!(p.seq, Some(1 + d as u64));
        let expect = [
            (
                "Temperature",
                DataType::Double,
                metric::Value::DoubleValue(20.0),
            ),
            ("Count", DataType::Int32, metric::Value::IntValue(0)),
            (
                "Running",
                DataType::Boolean,
                metric::Value::BooleanValue(false),
            ),
            (
                "Mode",
                DataType::String,
                metric::Value::StringValue("auto".into()),
            ),
        ];
        assert_eq!(p.metrics.len(), expect.len());
        for (i, (metric, (name, datatype, value))) in p.metrics.iter().zip(expect).enumerate() {
            assert_eq!(metric.name.as_deref(), Some(name));
            assert_eq!(metric.datatype, Some(datatype.number()));
            assert_eq!(metric.value.as_ref(), Some(&value));
            assert_eq!(metric.timestamp, Some(TS));
            assert_eq!(metric.alias, node.alias(Some(d), i));
            aliases.push(metric.alias.unwrap());
        }
    }
    let count = aliases.len();
    aliases.sort_unstable();
    aliases.dedup();
    assert_eq!(aliases.len(), count, "aliases unique across the edge node");
}

#[test]
fn payload_bytes_are_deterministic() {
    let run = || {
        let mut node = node_with(2);
        let mut out = Outbox::new();
        node.births(TS, &mut out);
        node.data(
            1,
            &[(0, Value::Double(30.0)), (3, Value::Text("manual".into()))],
            TS + 1,
            &mut out,
        )
        .unwrap();
        node.node_data(&[(0, Value::UInt(5))], TS + 2, &mut out)
            .unwrap();
        node.device_death(0, TS + 3, &mut out).unwrap();
        let mut all: Vec<Message> = out.messages().to_vec();
        all.push(node.will());
        all
    };
    assert_eq!(run(), run());
}

/// Drive 600 data messages over node and device metrics: aliases only, seq +1 across all, wrapping 255 -> 0.
#[test]
fn data_uses_aliases_only_and_seq_wraps() {
    let mut node = node_with(3);
    let mut out = Outbox::new();
    let mut validator = Validator::new();
    node.births(TS, &mut out);
    let mut expected_seq: u64 = 0;
    let mut stream: Vec<Message> = out.messages().to_vec();
    for m in out.messages() {
        assert_eq!(decode(m).seq, Some(expected_seq));
        expected_seq += 1;
    }
    let mut seqs = Vec::new();
    for k in 0..600u32 {
        out.clear();
        let ts = TS + u64::from(k) * 1000;
        let wrote = if k % 4 == 3 {
            node.node_data(&[(0, Value::UInt(u64::from(k)))], ts, &mut out)
                .unwrap()
        } else {
            let device = (k % 4) as usize;
            node.data(
                device,
                &[
                    (0, Value::Double(20.0 + f64::from(k))),
                    (1, Value::Int(i64::from(k) - 300)),
                ],
                ts,
                &mut out,
            )
            .unwrap()
        };
        assert!(wrote);
        assert_eq!(out.len(), 1);
        let m = &out.messages()[0];
        let p = decode(m);
        for metric in &p.metrics {
            assert!(metric.alias.is_some());
            assert_eq!(metric.name, None, "data by alias only");
            assert_eq!(metric.datatype, None);
        }
        assert_eq!(p.seq, Some(expected_seq % 256));
        seqs.push(p.seq.unwrap());
        expected_seq += 1;
        stream.push(m.clone());
    }
    assert!(seqs.windows(2).any(|w| w == [255, 0]), "seq wrapped");
    assert_eq!(node.next_seq(), (expected_seq % 256) as u8);
    for m in &stream {
        assert!(
            validator.observe(&m.topic, &m.payload, false).is_empty(),
            "{}",
            m.topic
        );
    }
    assert_eq!(validator.total_violations(), 0);
    assert_eq!(validator.births(), 4);
    assert_eq!(validator.data(), 600);
}

#[test]
fn bd_seq_advances_per_connection_and_the_will_matches_the_next_nbirth() {
    let mut node = node_with(1);
    let mut out = Outbox::new();
    for connection in 0..300u64 {
        let will = node.will();
        assert_eq!(will.topic, "spBv1.0/plant-1/NDEATH/edge-7");
        assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, false));
        let w = decode(&will);
        assert_eq!(w.seq, None, "NDEATH carries no seq");
        assert_eq!(w.metrics.len(), 1);
        assert_eq!(w.metrics[0].name.as_deref(), Some(BD_SEQ));
        let will_bd_seq = w.metrics[0].value.clone();
        assert_eq!(
            will_bd_seq,
            Some(metric::Value::LongValue(connection % 256))
        );

        out.clear();
        node.births(TS, &mut out);
        let nbirth = decode(&out.messages()[0]);
        assert_eq!(nbirth.metrics[0].value, will_bd_seq);
        assert_eq!(nbirth.seq, Some(0));
        node.disconnected();
        assert!(!node.is_born());
    }
}

fn ncmd(rebirth: bool) -> Vec<u8> {
    Payload {
        timestamp: Some(TS),
        metrics: vec![Metric {
            name: Some(REBIRTH.into()),
            datatype: Some(DataType::Boolean.number()),
            value: Some(metric::Value::BooleanValue(rebirth)),
            ..Metric::default()
        }],
        ..Payload::default()
    }
    .encode_to_vec()
}

#[test]
fn rebirth_on_ncmd_restarts_seq_and_keeps_bd_seq() {
    let mut node = node_with(2);
    node.disconnected(); // second connection: bdSeq 1
    let mut out = Outbox::new();
    let mut validator = Validator::new();
    node.births(TS, &mut out);
    for k in 0..10 {
        node.data(0, &[(1, Value::Int(k + 1))], TS, &mut out)
            .unwrap();
    }
    assert_eq!(node.next_seq(), 13);

    assert!(!node.on_command(&ncmd(false)).unwrap().rebirth);
    assert!(node.on_command(&[0xFF]).is_err());
    let command = node.on_command(&ncmd(true)).unwrap();
    assert!(command.rebirth);
    assert_eq!(command.ignored_metrics, 0);

    node.births(TS + 5, &mut out);
    let rebirth = &out.messages()[13];
    assert!(rebirth.topic.ends_with("/NBIRTH/edge-7"));
    let p = decode(rebirth);
    assert_eq!(p.seq, Some(0));
    assert_eq!(p.metrics[0].value, Some(metric::Value::LongValue(1)));
    // The rebirth carries the last reported values.
    let dbirth = decode(&out.messages()[14]);
    assert_eq!(dbirth.metrics[1].value, Some(metric::Value::IntValue(10)));
    for m in out.messages() {
        validator.observe(&m.topic, &m.payload, false);
    }
    assert_eq!(validator.total_violations(), 0);
    assert_eq!(validator.births(), 6);
}

#[test]
fn report_by_exception_sends_only_changes_beyond_the_deadband() {
    let mut node = node_with(1);
    let mut out = Outbox::new();
    node.births(TS, &mut out);
    out.clear();
    let seq = node.next_seq();

    // Unchanged values and a temperature inside the 0.5 band: nothing to publish, no seq used.
    let quiet = [
        (0, Value::Double(20.4)),
        (1, Value::Int(0)),
        (2, Value::Bool(false)),
        (3, Value::Text("auto".into())),
    ];
    assert!(!node.data(0, &quiet, TS + 1, &mut out).unwrap());
    assert!(out.is_empty());
    assert_eq!(node.next_seq(), seq);

    // Temperature beyond the band, Running flipped: exactly those two, by alias.
    let loud = [
        (0, Value::Double(20.6)),
        (1, Value::Int(0)),
        (2, Value::Bool(true)),
        (3, Value::Text("auto".into())),
    ];
    assert!(node.data(0, &loud, TS + 2, &mut out).unwrap());
    let p = decode(&out.messages()[0]);
    let sent: Vec<_> = p
        .metrics
        .iter()
        .map(|m| (m.alias, m.value.clone()))
        .collect();
    assert_eq!(
        sent,
        [
            (
                node.alias(Some(0), 0),
                Some(metric::Value::DoubleValue(20.6))
            ),
            (
                node.alias(Some(0), 2),
                Some(metric::Value::BooleanValue(true))
            ),
        ]
    );
    // The band is measured from the last *reported* value: 20.6 -> 21.0 is inside it.
    out.clear();
    assert!(!node
        .data(0, &[(0, Value::Double(21.0))], TS + 3, &mut out)
        .unwrap());
    assert_eq!(node.value(Some(0), 0), Some(&Value::Double(20.6)));
    assert!(node
        .data(0, &[(0, Value::Double(21.2))], TS + 4, &mut out)
        .unwrap());
    // A bad sample changes nothing, even next to a good one.
    assert!(node
        .data(
            0,
            &[(1, Value::Int(7)), (2, Value::Double(1.0))],
            TS,
            &mut out
        )
        .is_err());
    assert_eq!(node.value(Some(0), 1), Some(&Value::Int(0)));
}

/// A valid session: births, data, a device death and re-birth, a clean reconnect with the will delivered.
fn valid_stream() -> Vec<(Message, bool)> {
    let mut node = node_with(2);
    let mut out = Outbox::new();
    let mut stream = Vec::new();
    let mut take = |out: &mut Outbox, will: bool| {
        stream.extend(out.messages().iter().cloned().map(|m| (m, will)));
        out.clear();
    };
    let will = node.will();
    node.births(TS, &mut out);
    node.data(0, &[(0, Value::Double(25.0))], TS + 1, &mut out)
        .unwrap();
    node.node_data(&[(0, Value::UInt(9))], TS + 2, &mut out)
        .unwrap();
    node.device_death(1, TS + 3, &mut out).unwrap();
    node.device_birth(1, TS + 4, &mut out).unwrap();
    node.data(1, &[(2, Value::Bool(true))], TS + 5, &mut out)
        .unwrap();
    take(&mut out, false);
    stream.push((will, true));
    node.disconnected();
    let _ = node.will();
    node.births(TS + 10, &mut out);
    node.data(0, &[(0, Value::Double(30.0))], TS + 11, &mut out)
        .unwrap();
    stream.extend(out.messages().iter().cloned().map(|m| (m, false)));
    stream
}

fn run(stream: &[(Message, bool)]) -> Validator {
    let mut v = Validator::new();
    for (m, will) in stream {
        v.observe(&m.topic, &m.payload, *will);
    }
    v
}

#[test]
fn validator_accepts_a_valid_stream() {
    let v = run(&valid_stream());
    assert_eq!(v.total_violations(), 0);
    assert_eq!(v.births(), 2 * 3 + 1);
    assert_eq!(v.deaths(), 2);
    assert_eq!(v.wills(), 1);
    assert_eq!(v.data(), 4);
}

fn message(topic: &str, payload: Vec<u8>) -> (Message, bool) {
    (
        Message {
            topic: topic.into(),
            payload,
            qos: QoS::AtMostOnce,
            retain: false,
        },
        false,
    )
}

#[test]
fn validator_reports_exactly_one_violation_of_each_kind() {
    let base = valid_stream();
    let first_session = &base[..7]; // NBIRTH, 2 DBIRTH, DDATA, NDATA, DDEATH, DBIRTH
    let seq_of = |m: &Message| decode(m).seq.unwrap();
    let mut cases: Vec<(Violation, Vec<(Message, bool)>)> = Vec::new();

    // SeqGap: drop one message from the middle of a session.
    let mut gap = base.clone();
    gap.remove(4);
    cases.push((Violation::SeqGap, gap));

    // DataBeforeBirth: a DDATA for a device whose DBIRTH has not been seen (DDEATH'd device, valid seq).
    let mut early = first_session[..6].to_vec();
    let p = Payload {
        timestamp: Some(TS),
        metrics: vec![valued(2, metric::Value::DoubleValue(1.0))],
        seq: Some(seq_of(&early[5].0) + 1),
        ..Payload::default()
    };
    early.push(message(
        "spBv1.0/plant-1/DDATA/edge-7/dev-1",
        p.encode_to_vec(),
    ));
    cases.push((Violation::DataBeforeBirth, early));

    // BdSeqMismatch: a stale will (bdSeq 1) while the session of bdSeq 0 is live.
    let mut stale = first_session.to_vec();
    let mut later = node_with(2);
    later.disconnected();
    stale.push((later.will(), true));
    cases.push((Violation::BdSeqMismatch, stale));

    // UnknownAlias: DDATA with an alias no DBIRTH declared.
    let mut alias = first_session.to_vec();
    let p = Payload {
        timestamp: Some(TS),
        metrics: vec![valued(999, metric::Value::DoubleValue(1.0))],
        seq: Some(seq_of(&alias[6].0) + 1),
        ..Payload::default()
    };
    alias.push(message(
        "spBv1.0/plant-1/DDATA/edge-7/dev-0",
        p.encode_to_vec(),
    ));
    cases.push((Violation::UnknownAlias, alias));

    // Malformed: a payload that is not protobuf.
    let mut garbage = first_session.to_vec();
    garbage.push(message("spBv1.0/plant-1/DDATA/edge-7/dev-0", vec![0xFF]));
    cases.push((Violation::Malformed, garbage));

    for (kind, stream) in cases {
        let v = run(&stream);
        assert_eq!(v.violations(kind), 1, "{kind:?}");
        assert_eq!(
            v.total_violations(),
            1,
            "{kind:?}: {:?}",
            Violation::ALL.map(|k| v.violations(k))
        );
    }

    // A device data message before any NBIRTH at all.
    let mut v = Validator::new();
    let found = v.observe(&base[3].0.topic, &base[3].0.payload, false);
    assert!(found.contains(Violation::DataBeforeBirth));
    assert_eq!(v.total_violations(), 1);
}

/// xorshift64*: deterministic pseudo-random bytes without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn decoding_random_bytes_never_panics() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let node = node_with(1);
    let mut v = Validator::new();
    let topics = [
        "spBv1.0/g/NBIRTH/n",
        "spBv1.0/g/NDEATH/n",
        "spBv1.0/g/NDATA/n",
        "spBv1.0/g/DBIRTH/n/d",
        "spBv1.0/g/DDATA/n/d",
        "spBv1.0/g/DDEATH/n/d",
    ];
    let mut valid_births = [0u8; 0].to_vec();
    let mut bytes = Vec::new();
    for i in 0..20_000 {
        bytes.clear();
        let len = (rng.next() % 96) as usize;
        // Half the inputs: mutate a real payload, to get deep into the decoder.
        if i % 2 == 0 {
            if valid_births.is_empty() {
                let mut n = node_with(1);
                let mut out = Outbox::new();
                n.births(TS, &mut out);
                valid_births = out.messages()[1].payload.clone();
            }
            bytes.extend_from_slice(&valid_births);
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % bytes.len();
                bytes[at] = rng.next() as u8;
            }
        } else {
            bytes.extend((0..len).map(|_| rng.next() as u8));
        }
        let _ = Payload::decode(bytes.as_slice());
        let _ = node.on_command(&bytes);
        let topic = topics[(rng.next() % topics.len() as u64) as usize];
        v.observe(topic, &bytes, rng.next() % 2 == 0);
        let _ = Topic::parse(&String::from_utf8_lossy(&bytes));
    }
    assert!(v.violations(Violation::Malformed) > 0);
}

#[test]
fn per_device_state_is_small() {
    let devices = 1000;
    let node = node_with(devices);
    let total = node.memory_bytes();
    let per_device = total as f64 / devices as f64;
    println!(
        "DEVICE_STATE_BYTES = {DEVICE_STATE_BYTES}, size_of::<Value>() = {}, size_of::<EdgeNode>() = {}, \
         edge node with {devices} devices x 4 metrics = {total} bytes ({per_device:.0} per device, schema shared)",
        std::mem::size_of::<Value>(),
        std::mem::size_of::<EdgeNode>(),
    );
    const { assert!(DEVICE_STATE_BYTES <= 56) };
    assert!(per_device < 200.0, "{per_device} bytes per device");
}
