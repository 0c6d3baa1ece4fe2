//! Commands, device side: the stamp a command carries (and its reply echoes), and what a device of a
//! group with `commands:` does with them: subscribe to its command topic after CONNACK (not again when
//! a persistent session is still there), and answer each command of this run on its reply topic. No
//! allocation per command: the reply is the command's payload, written into the thread's write buffer.

use crate::metrics::{Counter, Metric, Recorder};
use crate::mqtt::codec;
use crate::scenario::template::TemplateVars;
use crate::scenario::{Commands, MqttVersion, Qos};

/// Bytes of a command stamp.
pub const STAMP_LEN: usize = 40;
const MAGIC: [u8; 4] = *b"FSC1";

/// What a command carries, echoed verbatim by the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandStamp {
    /// The group the command was sent to.
    pub group: u32,
    /// The run it belongs to (the run's start, µs): commands a broker kept from an earlier run are not
    /// this run's.
    pub run: u64,
    /// Command number in the group's schedule.
    pub seq: u64,
    pub intended_us: u64,
    pub sent_us: u64,
}

impl CommandStamp {
    /// The wire form: `FSC1`, then group (u32), run, seq, intended, sent (u64), big-endian.
    pub fn encode(&self) -> [u8; STAMP_LEN] {
        let mut out = [0u8; STAMP_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.group.to_be_bytes());
        for (i, v) in [self.run, self.seq, self.intended_us, self.sent_us]
            .into_iter()
            .enumerate()
        {
            out[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// Read a stamp; `None` when the payload is not one.
    pub fn decode(payload: &[u8]) -> Option<CommandStamp> {
        if payload.len() != STAMP_LEN || payload.get(..4)? != MAGIC {
            return None;
        }
        let u64_at = |i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(payload.get(i..i + 8)?.try_into().ok()?))
        };
        Some(CommandStamp {
            group: u32::from_be_bytes(payload.get(4..8)?.try_into().ok()?),
            run: u64_at(8)?,
            seq: u64_at(16)?,
            intended_us: u64_at(24)?,
            sent_us: u64_at(32)?,
        })
    }
}

/// The command side of one device.
#[derive(Debug)]
pub struct DeviceCommands {
    group: u32,
    /// The device's command topic (its subscription filter).
    topic: String,
    reply_topic: Box<[u8]>,
    qos: Qos,
    /// The highest command number received, so a redelivered command is counted once.
    last_seq: Option<u64>,
    /// SUBSCRIBE `(pkid, sent at)` waiting for its SUBACK.
    pending_suback: Option<(u16, u64)>,
}

/// What a command PUBLISH needs from the connection it arrived on.
pub struct Arrival<'a> {
    pub rec: &'a Recorder,
    pub version: MqttVersion,
    /// CONNACK of the current connection (µs): a command sent before it was queued while offline.
    pub connack_us: u64,
    /// A packet id for a QoS 1/2 reply from the connection's protocol state (`None`: none free).
    pub take_pkid: &'a mut dyn FnMut(Qos) -> Option<u16>,
    pub out: &'a mut Vec<u8>,
}

impl DeviceCommands {
    /// For a device of a group with commands; `None` otherwise (or when a topic does not encode).
    pub fn new(spec: &Commands, group: usize, vars: &TemplateVars<'_>) -> Option<DeviceCommands> {
        Some(DeviceCommands {
            group: u32::try_from(group).ok()?,
            topic: spec.topic.render(vars),
            reply_topic: codec::encode_topic(&spec.reply_topic.render(vars)).ok()?,
            qos: spec.qos,
            last_seq: None,
            pending_suback: None,
        })
    }

    /// After CONNACK: append the SUBSCRIBE to the command topic, unless the broker kept the session
    /// (and with it the subscription).
    pub fn on_connected(
        &mut self,
        out: &mut Vec<u8>,
        version: MqttVersion,
        pkid: u16,
        now_us: u64,
        session_kept: bool,
    ) {
        if session_kept {
            return;
        }
        let filters = [(self.topic.clone(), self.qos)];
        if let Ok(sub) = codec::encode_subscribe(version, pkid, &filters) {
            out.extend_from_slice(&sub);
            self.pending_suback = Some((pkid, now_us));
        }
    }

    /// A SUBACK arrived: the subscription latency, if it was ours.
    pub fn on_suback(&mut self, rec: &Recorder, g: usize, pkid: u16, done_us: u64) {
        if let Some((p, sent)) = self.pending_suback {
            if p == pkid {
                self.pending_suback = None;
                rec.latency(Metric::Suback, g, sent, sent, done_us);
            }
        }
    }

    /// A PUBLISH arrived: if it is a command of this run for this group, append the reply (the
    /// command's stamp, echoed) and count an offline delivery. The PUBLISH itself is acknowledged by the
    /// caller like any other.
    pub fn on_publish(&mut self, a: Arrival<'_>, g: usize, payload: &[u8]) {
        let Some(stamp) = CommandStamp::decode(payload) else {
            return;
        };
        if stamp.group != self.group || stamp.run != a.rec.timeline().start_us {
            return;
        }
        let first_time = self.last_seq.is_none_or(|s| stamp.seq > s);
        if first_time {
            self.last_seq = Some(stamp.seq);
            // Sent (not just intended) before this connection existed: the broker kept it while the
            // device was offline. The actual send time keeps a late commander from counting here.
            if stamp.sent_us < a.connack_us {
                a.rec
                    .count(Counter::CommandsOfflineDelivered, g, stamp.intended_us);
            }
        }
        let pkid = if self.qos == Qos::AtMostOnce {
            0
        } else {
            match (a.take_pkid)(self.qos) {
                Some(p) => p,
                // every packet id in flight: no reply (the commander counts it unanswered)
                None => return,
            }
        };
        codec::encode_publish(
            a.out,
            a.version,
            &self.reply_topic,
            self.qos,
            false,
            false,
            pkid,
            payload,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_and_refuses_other_payloads() {
        let s = CommandStamp {
            group: 3,
            run: 1_700_000_000_000_000,
            seq: 42,
            intended_us: 1_700_000_000_100_000,
            sent_us: 1_700_000_000_100_250,
        };
        let bytes = s.encode();
        assert_eq!(CommandStamp::decode(&bytes), Some(s));
        assert_eq!(CommandStamp::decode(&bytes[..39]), None);
        let mut other = bytes;
        other[0] = b'{';
        assert_eq!(CommandStamp::decode(&other), None);
        assert_eq!(CommandStamp::decode(b"{\"seq\":1}"), None);
    }
}
