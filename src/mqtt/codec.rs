//! Wire codec. Rare packets (CONNECT, SUBSCRIBE) are encoded with rumqttc's public `mqttbytes`; the
//! per-message packets (PUBLISH out, acks in) are encoded and parsed here without allocation, from
//! pre-encoded topic bytes and borrowed slices.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5 as mq5;

use super::protocol::{MqttVersion, Qos};

/// Largest packet we accept from a broker.
pub const MAX_INCOMING_PACKET: usize = 1 << 20;

/// What a CONNECT carries. Its `Debug` shows the password as `****`.
#[derive(Clone)]
pub struct ConnectOptions {
    pub version: MqttVersion,
    pub client_id: String,
    pub keep_alive_s: u16,
    pub clean_session: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The message the broker publishes if the connection dies without DISCONNECT.
    pub will: Option<Will>,
    /// MQTT 5 Session Expiry Interval, seconds (ignored by 3.1.1).
    pub session_expiry_s: Option<u32>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("version", &self.version)
            .field("client_id", &self.client_id)
            .field("keep_alive_s", &self.keep_alive_s)
            .field("clean_session", &self.clean_session)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .field("will", &self.will)
            .field("session_expiry_s", &self.session_expiry_s)
            .finish()
    }
}

/// An MQTT last will.
#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
    pub retain: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("cannot encode {0}: {1}")]
    Encode(&'static str, String),
    #[error("malformed remaining length")]
    RemainingLength,
    #[error("packet of {0} bytes is larger than the {MAX_INCOMING_PACKET} bytes accepted")]
    TooLarge(usize),
    #[error("malformed {0} packet")]
    Malformed(&'static str),
    #[error("unexpected packet type {0} from the broker")]
    Unexpected(u8),
}

/// Encode a CONNECT packet.
pub fn encode_connect(o: &ConnectOptions) -> Result<Vec<u8>, CodecError> {
    let mut buf = BytesMut::with_capacity(64 + o.client_id.len());
    let err = |e: &dyn std::fmt::Debug| CodecError::Encode("CONNECT", format!("{e:?}"));
    match o.version {
        MqttVersion::V311 => {
            let mut c = v4::Connect::new(o.client_id.clone());
            c.keep_alive = o.keep_alive_s;
            c.clean_session = o.clean_session;
            c.last_will = o.will.as_ref().map(|w| {
                v4::LastWill::new(
                    w.topic.clone(),
                    w.payload.clone(),
                    to_v4_qos(w.qos),
                    w.retain,
                )
            });
            if let Some(u) = &o.username {
                c.set_login(u.clone(), o.password.clone().unwrap_or_default());
            }
            c.write(&mut buf).map_err(|e| err(&e))?;
        }
        MqttVersion::V5 => {
            let c = mq5::Connect {
                keep_alive: o.keep_alive_s,
                client_id: o.client_id.clone(),
                clean_start: o.clean_session,
                properties: o.session_expiry_s.map(|s| mq5::ConnectProperties {
                    session_expiry_interval: Some(s),
                    ..mq5::ConnectProperties::new()
                }),
            };
            let login = o
                .username
                .as_ref()
                .map(|u| mq5::Login::new(u.clone(), o.password.clone().unwrap_or_default()));
            let will = o.will.as_ref().map(|w| {
                mq5::LastWill::new(
                    w.topic.clone(),
                    w.payload.clone(),
                    to_v5_qos(w.qos),
                    w.retain,
                    None,
                )
            });
            c.write(&will, &login, &mut buf).map_err(|e| err(&e))?;
        }
    }
    Ok(buf.to_vec())
}

/// Encode a SUBSCRIBE packet for one or more filters.
pub fn encode_subscribe(
    version: MqttVersion,
    pkid: u16,
    filters: &[(String, Qos)],
) -> Result<Vec<u8>, CodecError> {
    let mut buf = BytesMut::with_capacity(32);
    let err = |e: &dyn std::fmt::Debug| CodecError::Encode("SUBSCRIBE", format!("{e:?}"));
    match version {
        MqttVersion::V311 => {
            let mut s = v4::Subscribe::new_many(
                filters
                    .iter()
                    .map(|(f, q)| v4::SubscribeFilter::new(f.clone(), to_v4_qos(*q))),
            );
            s.pkid = pkid;
            s.write(&mut buf).map_err(|e| err(&e))?;
        }
        MqttVersion::V5 => {
            let mut s = mq5::Subscribe::new_many(
                filters
                    .iter()
                    .map(|(f, q)| mq5::Filter::new(f.clone(), to_v5_qos(*q))),
                None,
            );
            s.pkid = pkid;
            s.write(&mut buf).map_err(|e| err(&e))?;
        }
    }
    Ok(buf.to_vec())
}

fn to_v4_qos(q: Qos) -> rumqttc::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::mqttbytes::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::mqttbytes::QoS::ExactlyOnce,
    }
}

fn to_v5_qos(q: Qos) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// A topic encoded once as an MQTT string (2-byte length + UTF-8), reused for every PUBLISH.
pub fn encode_topic(topic: &str) -> Result<Box<[u8]>, CodecError> {
    let mut out = Vec::with_capacity(2 + topic.len());
    encode_topic_into(&mut out, topic)?;
    Ok(out.into_boxed_slice())
}

/// [`encode_topic`] into a reused buffer (cleared first), for topics that change per message.
pub fn encode_topic_into(out: &mut Vec<u8>, topic: &str) -> Result<(), CodecError> {
    let len = u16::try_from(topic.len())
        .map_err(|_| CodecError::Encode("topic", format!("{} bytes is over 65535", topic.len())))?;
    out.clear();
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    Ok(())
}

fn put_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

/// Append a PUBLISH to `out`. `topic` comes from [`encode_topic`]; `pkid` is ignored for QoS 0.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish(
    out: &mut Vec<u8>,
    version: MqttVersion,
    topic: &[u8],
    qos: Qos,
    retain: bool,
    dup: bool,
    pkid: u16,
    payload: &[u8],
) {
    let q = qos as u8;
    out.push(0x30 | (u8::from(dup) << 3) | (q << 1) | u8::from(retain));
    let props = usize::from(version == MqttVersion::V5);
    let pk = if q > 0 { 2 } else { 0 };
    put_remaining_length(out, topic.len() + pk + props + payload.len());
    out.extend_from_slice(topic);
    if q > 0 {
        out.extend_from_slice(&pkid.to_be_bytes());
    }
    if props == 1 {
        out.push(0);
    }
    out.extend_from_slice(payload);
}

/// Append an acknowledgement-type packet (PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70).
pub fn encode_ack(out: &mut Vec<u8>, first_byte: u8, pkid: u16) {
    out.push(first_byte);
    out.push(2);
    out.extend_from_slice(&pkid.to_be_bytes());
}

pub const PUBACK: u8 = 0x40;
pub const PUBREC: u8 = 0x50;
pub const PUBREL: u8 = 0x62;
pub const PUBCOMP: u8 = 0x70;
/// PINGREQ, complete.
pub const PINGREQ: [u8; 2] = [0xC0, 0];
/// DISCONNECT with success, complete (valid for 3.1.1 and 5).
pub const DISCONNECT: [u8; 2] = [0xE0, 0];

/// What a CONNACK refusal code means: the 3.1.1 return code (1-5) or the MQTT 5 reason code
/// (0x80-0x9F), as the specification names it.
pub fn connack_meaning(version: MqttVersion, code: u8) -> &'static str {
    match version {
        MqttVersion::V311 => match code {
            0 => "connection accepted",
            1 => "unacceptable protocol version",
            2 => "identifier rejected",
            3 => "server unavailable",
            4 => "bad user name or password",
            5 => "not authorized",
            _ => "not a valid MQTT 3.1.1 return code",
        },
        MqttVersion::V5 => match code {
            0x00 => "Success",
            0x80 => "Unspecified error",
            0x81 => "Malformed Packet",
            0x82 => "Protocol Error",
            0x83 => "Implementation specific error",
            0x84 => "Unsupported Protocol Version",
            0x85 => "Client Identifier not valid",
            0x86 => "Bad User Name or Password",
            0x87 => "Not authorized",
            0x88 => "Server unavailable",
            0x89 => "Server busy",
            0x8A => "Banned",
            0x8C => "Bad authentication method",
            0x90 => "Topic Name invalid",
            0x95 => "Packet too large",
            0x97 => "Quota exceeded",
            0x99 => "Payload format invalid",
            0x9A => "Retain not supported",
            0x9B => "QoS not supported",
            0x9C => "Use another server",
            0x9D => "Server moved",
            0x9F => "Connection rate exceeded",
            _ => "not a valid MQTT 5 CONNACK reason code",
        },
    }
}

/// What to do about a CONNACK refusal, in a sentence that names the scenario keys to change.
pub fn connack_advice(version: MqttVersion, code: u8) -> &'static str {
    match (version, code) {
        (MqttVersion::V311, 4 | 5) | (MqttVersion::V5, 0x86 | 0x87 | 0x8A | 0x8C) => {
            "the broker refused the credentials: set `broker.username` and `broker.password` to an account the broker accepts (and check its access rules)"
        }
        (MqttVersion::V311, 1) | (MqttVersion::V5, 0x84) => {
            "the broker does not accept this MQTT version: change `broker.protocol` (\"3.1.1\" or 5)"
        }
        (MqttVersion::V311, 2) | (MqttVersion::V5, 0x85) => {
            "the broker rejected the client ids: change `broker.client_id` (length, characters, prefix rules)"
        }
        (MqttVersion::V5, 0x9F | 0x97 | 0x89) => {
            "the broker limits connections: lower the ramp's `connect_rate` or `broker.max_connecting`, or raise the broker's limits"
        }
        (MqttVersion::V5, 0x9C | 0x9D) => "the broker sends clients elsewhere: point `broker.url` at the server it names",
        _ => "check the broker's log for why it refused the connections",
    }
}

/// A packet received from the broker, borrowing from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    ConnAck {
        session_present: bool,
        /// 0 = accepted; otherwise the 3.1.1 return code or the MQTT 5 reason code.
        code: u8,
    },
    Publish {
        qos: u8,
        retain: bool,
        dup: bool,
        pkid: u16,
        topic: &'a [u8],
        payload: &'a [u8],
    },
    PubAck {
        pkid: u16,
        reason: u8,
    },
    PubRec {
        pkid: u16,
        reason: u8,
    },
    PubRel {
        pkid: u16,
    },
    PubComp {
        pkid: u16,
        reason: u8,
    },
    SubAck {
        pkid: u16,
        /// Granted QoS or failure codes, one per filter.
        codes: &'a [u8],
    },
    UnsubAck {
        pkid: u16,
    },
    PingResp,
    Disconnect {
        reason: u8,
    },
    Auth,
}

fn u16_at(b: &[u8], i: usize, what: &'static str) -> Result<u16, CodecError> {
    match (b.get(i), b.get(i + 1)) {
        (Some(&h), Some(&l)) => Ok(u16::from_be_bytes([h, l])),
        _ => Err(CodecError::Malformed(what)),
    }
}

/// Read a variable byte integer at the start of `b`: `(value, bytes used)`, or `None` if incomplete.
fn varint(b: &[u8]) -> Result<Option<(usize, usize)>, CodecError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&byte) = b.get(i) else {
            return Ok(None);
        };
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(CodecError::RemainingLength)
}

/// Skip an MQTT 5 property block starting at `i`; returns the index after it.
fn skip_props(body: &[u8], i: usize, what: &'static str) -> Result<usize, CodecError> {
    let rest = body.get(i..).ok_or(CodecError::Malformed(what))?;
    match varint(rest)? {
        Some((len, used)) => {
            let end = i + used + len;
            if end > body.len() {
                return Err(CodecError::Malformed(what));
            }
            Ok(end)
        }
        None => Err(CodecError::Malformed(what)),
    }
}

/// Parse one packet from the front of `buf`. `Ok(None)`: not complete yet. On success returns the packet
/// and how many bytes it used.
pub fn parse(
    buf: &[u8],
    version: MqttVersion,
) -> Result<Option<(Incoming<'_>, usize)>, CodecError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((remaining, used)) = varint(buf.get(1..).unwrap_or_default())? else {
        return Ok(None);
    };
    if remaining > MAX_INCOMING_PACKET {
        return Err(CodecError::TooLarge(remaining));
    }
    let start = 1 + used;
    let end = start + remaining;
    let Some(body) = buf.get(start..end) else {
        return Ok(None);
    };
    let v5 = version == MqttVersion::V5;
    // acks: pkid, then (MQTT 5) an optional reason code
    let ack = |what| -> Result<(u16, u8), CodecError> {
        let pkid = u16_at(body, 0, what)?;
        let reason = if v5 {
            body.get(2).copied().unwrap_or(0)
        } else {
            0
        };
        Ok((pkid, reason))
    };
    let packet = match first >> 4 {
        2 => {
            let (flags, code) = match (body.first(), body.get(1)) {
                (Some(&f), Some(&c)) => (f, c),
                _ => return Err(CodecError::Malformed("CONNACK")),
            };
            Incoming::ConnAck {
                session_present: flags & 1 == 1,
                code,
            }
        }
        3 => {
            let qos = (first >> 1) & 3;
            if qos == 3 {
                return Err(CodecError::Malformed("PUBLISH"));
            }
            let tlen = usize::from(u16_at(body, 0, "PUBLISH")?);
            let topic = body
                .get(2..2 + tlen)
                .ok_or(CodecError::Malformed("PUBLISH"))?;
            let mut i = 2 + tlen;
            let mut pkid = 0;
            if qos > 0 {
                pkid = u16_at(body, i, "PUBLISH")?;
                i += 2;
            }
            if v5 {
                i = skip_props(body, i, "PUBLISH")?;
            }
            let payload = body.get(i..).ok_or(CodecError::Malformed("PUBLISH"))?;
            Incoming::Publish {
                qos,
                retain: first & 1 == 1,
                dup: first & 8 == 8,
                pkid,
                topic,
                payload,
            }
        }
        4 => {
            let (pkid, reason) = ack("PUBACK")?;
            Incoming::PubAck { pkid, reason }
        }
        5 => {
            let (pkid, reason) = ack("PUBREC")?;
            Incoming::PubRec { pkid, reason }
        }
        6 => Incoming::PubRel {
            pkid: u16_at(body, 0, "PUBREL")?,
        },
        7 => {
            let (pkid, reason) = ack("PUBCOMP")?;
            Incoming::PubComp { pkid, reason }
        }
        9 => {
            let pkid = u16_at(body, 0, "SUBACK")?;
            let i = if v5 {
                skip_props(body, 2, "SUBACK")?
            } else {
                2
            };
            Incoming::SubAck {
                pkid,
                codes: body.get(i..).ok_or(CodecError::Malformed("SUBACK"))?,
            }
        }
        11 => Incoming::UnsubAck {
            pkid: u16_at(body, 0, "UNSUBACK")?,
        },
        13 => Incoming::PingResp,
        14 => Incoming::Disconnect {
            reason: body.first().copied().unwrap_or(0),
        },
        15 if v5 => Incoming::Auth,
        other => return Err(CodecError::Unexpected(other)),
    };
    Ok(Some((packet, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_round_trips_through_our_parser_and_rumqttc() {
        for version in [MqttVersion::V311, MqttVersion::V5] {
            for qos in [Qos::AtMostOnce, Qos::AtLeastOnce, Qos::ExactlyOnce] {
                let topic = encode_topic("a/b/c").unwrap();
                let payload = vec![7u8; 300];
                let mut out = Vec::new();
                encode_publish(&mut out, version, &topic, qos, true, false, 513, &payload);
                let (p, used) = parse(&out, version).unwrap().unwrap();
                assert_eq!(used, out.len());
                match p {
                    Incoming::Publish {
                        qos: q,
                        retain,
                        pkid,
                        topic,
                        payload: pl,
                        ..
                    } => {
                        assert_eq!(q, qos as u8);
                        assert!(retain);
                        assert_eq!(pkid, if qos == Qos::AtMostOnce { 0 } else { 513 });
                        assert_eq!(topic, b"a/b/c");
                        assert_eq!(pl, &payload[..]);
                    }
                    other => panic!("{other:?}"),
                }
                // rumqttc agrees on the bytes
                let mut b = BytesMut::from(&out[..]);
                match version {
                    MqttVersion::V311 => {
                        let pkt = v4::Packet::read(&mut b, 1 << 20).unwrap();
                        assert!(
                            matches!(pkt, v4::Packet::Publish(p) if p.topic == "a/b/c" && p.payload.len() == 300)
                        );
                    }
                    MqttVersion::V5 => {
                        let pkt = mq5::Packet::read(&mut b, Some(1 << 20)).unwrap();
                        assert!(
                            matches!(pkt, mq5::Packet::Publish(p) if p.topic == "a/b/c" && p.payload.len() == 300)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn partial_frames_wait_and_garbage_is_an_error() {
        let mut out = Vec::new();
        encode_ack(&mut out, PUBACK, 9);
        assert_eq!(parse(&out[..3], MqttVersion::V311).unwrap(), None);
        assert_eq!(
            parse(&out, MqttVersion::V311).unwrap(),
            Some((Incoming::PubAck { pkid: 9, reason: 0 }, 4))
        );
        assert!(parse(&[0x40, 0xFF, 0xFF, 0xFF, 0xFF], MqttVersion::V311).is_err());
        assert!(parse(&[0x10, 0], MqttVersion::V311).is_err());
        assert!(parse(&[0x40, 1, 0], MqttVersion::V311).is_err());
        // v5 PUBACK with a reason code
        assert_eq!(
            parse(&[0x40, 3, 0, 5, 0x87], MqttVersion::V5).unwrap(),
            Some((
                Incoming::PubAck {
                    pkid: 5,
                    reason: 0x87
                },
                5
            ))
        );
    }

    #[test]
    fn parser_never_panics_on_junk() {
        let mut rng = crate::telemetry::Rng::new(1);
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 40) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| (rng.next_u64() & 0xFF) as u8).collect();
            let _ = parse(&bytes, MqttVersion::V311);
            let _ = parse(&bytes, MqttVersion::V5);
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let o = ConnectOptions {
            version: MqttVersion::V311,
            client_id: "c".into(),
            keep_alive_s: 30,
            clean_session: true,
            username: Some("u".into()),
            password: Some("hunter2".into()),
            will: None,
            session_expiry_s: None,
        };
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("****"),
            "{shown}"
        );
    }

    #[test]
    fn connect_encodes_for_both_versions() {
        for version in [MqttVersion::V311, MqttVersion::V5] {
            let c = encode_connect(&ConnectOptions {
                version,
                client_id: "dev-1".into(),
                keep_alive_s: 30,
                clean_session: true,
                username: Some("u".into()),
                password: Some("p".into()),
                will: Some(Will {
                    topic: "w".into(),
                    payload: vec![1, 2],
                    qos: Qos::AtLeastOnce,
                    retain: false,
                }),
                session_expiry_s: Some(600),
            })
            .unwrap();
            assert_eq!(c[0], 0x10);
            let level = if version == MqttVersion::V5 { 5 } else { 4 };
            assert_eq!(c[8], level);
            if version == MqttVersion::V5 {
                let mut b = BytesMut::from(&c[..]);
                match mq5::Packet::read(&mut b, Some(1 << 20)).unwrap() {
                    mq5::Packet::Connect(c, _, _) => {
                        assert_eq!(c.properties.unwrap().session_expiry_interval, Some(600));
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }
}
