//! Observer-side Sparkplug B conformance checks over a message stream, in arrival order. Pure.
//!
//! Per edge node (group id, edge node id) the validator keeps the current session: the bdSeq of its NBIRTH,
//! the last seq, the aliases born by the NBIRTH and by each device's DBIRTH. A new NBIRTH starts a new
//! session (so does the rebirth after an NCMD). An NDEATH whose bdSeq matches ends the session; one whose
//! bdSeq does not match is a stale will of an earlier session: counted as [`Violation::BdSeqMismatch`] and
//! otherwise ignored, as a host application does.

use std::collections::HashMap;

use prost::Message as _;

use super::node::BD_SEQ;
use super::payload::{metric, Payload};
use super::topic::{MessageType, Topic, NAMESPACE};

/// Kinds of conformance violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// seq is not the previous seq + 1 (mod 256) within a session, or an NBIRTH's seq is not 0.
    SeqGap,
    /// NDATA, DBIRTH, DDATA or DDEATH outside a session (no NBIRTH yet, or after the NDEATH), or DDATA/DDEATH
    /// for a device without a DBIRTH in the session.
    DataBeforeBirth,
    /// NDEATH whose bdSeq differs from the current session's NBIRTH.
    BdSeqMismatch,
    /// Data carrying an alias that the session's NBIRTH (NDATA) or the device's DBIRTH (DDATA) did not declare.
    UnknownAlias,
    /// The payload does not decode, lacks a required field (seq; bdSeq in NBIRTH/NDEATH), or the topic is in
    /// the `spBv1.0` namespace but malformed.
    Malformed,
}

impl Violation {
    pub const ALL: [Violation; 5] = [
        Violation::SeqGap,
        Violation::DataBeforeBirth,
        Violation::BdSeqMismatch,
        Violation::UnknownAlias,
        Violation::Malformed,
    ];

    /// snake_case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Violation::SeqGap => "seq_gap",
            Violation::DataBeforeBirth => "data_before_birth",
            Violation::BdSeqMismatch => "bd_seq_mismatch",
            Violation::UnknownAlias => "unknown_alias",
            Violation::Malformed => "malformed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The set of violations one message produced (each kind at most once per message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Violations(u8);

impl Violations {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, kind: Violation) -> bool {
        self.0 & (1 << kind.index()) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Violation> {
        Violation::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }

    fn insert(&mut self, kind: Violation) {
        self.0 |= 1 << kind.index();
    }
}

#[derive(Debug)]
struct Session {
    bd_seq: u64,
    last_seq: u8,
    /// Sorted aliases declared by the NBIRTH.
    node_aliases: Box<[u64]>,
    /// Device id -> sorted aliases declared by its DBIRTH.
    devices: HashMap<Box<str>, Box<[u64]>>,
}

#[derive(Debug, Default)]
struct NodeTrack {
    session: Option<Session>,
}

/// Stream validator; see the module documentation.
#[derive(Debug, Default)]
pub struct Validator {
    nodes: HashMap<Box<str>, HashMap<Box<str>, NodeTrack>>,
    counts: [u64; 5],
    births: u64,
    deaths: u64,
    wills: u64,
    data: u64,
    ignored: u64,
}

impl Validator {
    pub fn new() -> Validator {
        Validator::default()
    }

    /// Feed one received message: its topic, payload, and whether it was the broker-delivered will.
    /// Returns the violations it produced (already counted).
    pub fn observe(&mut self, topic: &str, payload: &[u8], was_will: bool) -> Violations {
        let mut found = Violations::default();
        let parsed = match Topic::parse(topic) {
            Ok(parsed) => parsed,
            Err(_) => {
                if topic.split('/').next() == Some(NAMESPACE) {
                    found.insert(Violation::Malformed);
                } else {
                    self.ignored += 1;
                }
                return self.count(found);
            }
        };
        let Topic::Edge {
            group_id,
            message_type,
            edge_node_id,
            device_id,
        } = parsed
        else {
            self.ignored += 1;
            return found;
        };
        if matches!(message_type, MessageType::NCmd | MessageType::DCmd) {
            self.ignored += 1;
            return found;
        }
        let Ok(decoded) = Payload::decode(payload) else {
            found.insert(Violation::Malformed);
            return self.count(found);
        };
        let Some(track) = track(&mut self.nodes, group_id, edge_node_id) else {
            return found;
        };
        match message_type {
            MessageType::NBirth => {
                self.births += 1;
                let (Some(seq), Some(bd_seq)) = (decoded.seq, bd_seq_of(&decoded)) else {
                    found.insert(Violation::Malformed);
                    return self.count(found);
                };
                if seq != 0 {
                    found.insert(Violation::SeqGap);
                }
                track.session = Some(Session {
                    bd_seq,
                    last_seq: (seq & 0xFF) as u8,
                    node_aliases: aliases_of(&decoded),
                    devices: HashMap::new(),
                });
            }
            MessageType::NDeath => {
                self.deaths += 1;
                if was_will {
                    self.wills += 1;
                }
                let Some(bd_seq) = bd_seq_of(&decoded) else {
                    found.insert(Violation::Malformed);
                    return self.count(found);
                };
                match &track.session {
                    Some(session) if session.bd_seq != bd_seq => {
                        found.insert(Violation::BdSeqMismatch);
                    }
                    _ => track.session = None,
                }
            }
            MessageType::NData | MessageType::DBirth | MessageType::DData | MessageType::DDeath => {
                match message_type {
                    MessageType::DBirth => self.births += 1,
                    MessageType::DDeath => self.deaths += 1,
                    _ => self.data += 1,
                }
                let Some(seq) = decoded.seq.and_then(|s| u8::try_from(s).ok()) else {
                    found.insert(Violation::Malformed);
                    return self.count(found);
                };
                let Some(session) = track.session.as_mut() else {
                    found.insert(Violation::DataBeforeBirth);
                    return self.count(found);
                };
                if seq != session.last_seq.wrapping_add(1) {
                    found.insert(Violation::SeqGap);
                }
                session.last_seq = seq;
                let device_id = device_id.unwrap_or_default();
                match message_type {
                    MessageType::NData => {
                        if !all_declared(&decoded, &session.node_aliases) {
                            found.insert(Violation::UnknownAlias);
                        }
                    }
                    MessageType::DBirth => {
                        let aliases = aliases_of(&decoded);
                        match session.devices.get_mut(device_id) {
                            Some(known) => *known = aliases,
                            None => {
                                session.devices.insert(Box::from(device_id), aliases);
                            }
                        }
                    }
                    MessageType::DData => match session.devices.get(device_id) {
                        None => found.insert(Violation::DataBeforeBirth),
                        Some(aliases) => {
                            if !all_declared(&decoded, aliases) {
                                found.insert(Violation::UnknownAlias);
                            }
                        }
                    },
                    _ => {
                        if session.devices.remove(device_id).is_none() {
                            found.insert(Violation::DataBeforeBirth);
                        }
                    }
                }
            }
            MessageType::NCmd | MessageType::DCmd => {}
        }
        self.count(found)
    }

    /// Violations of `kind` so far.
    pub fn violations(&self, kind: Violation) -> u64 {
        self.counts.get(kind.index()).copied().unwrap_or(0)
    }

    /// All violations so far.
    pub fn total_violations(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// NBIRTH + DBIRTH messages seen.
    pub fn births(&self) -> u64 {
        self.births
    }

    /// NDEATH + DDEATH messages seen.
    pub fn deaths(&self) -> u64 {
        self.deaths
    }

    /// NDEATH messages that were broker-delivered wills.
    pub fn wills(&self) -> u64 {
        self.wills
    }

    /// NDATA + DDATA messages seen.
    pub fn data(&self) -> u64 {
        self.data
    }

    /// Messages not subject to checks (commands, STATE, topics outside Sparkplug).
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    fn count(&mut self, found: Violations) -> Violations {
        for kind in found.iter() {
            if let Some(c) = self.counts.get_mut(kind.index()) {
                *c += 1;
            }
        }
        found
    }
}

/// The node's track, created on first sight (allocates only then).
fn track<'a>(
    nodes: &'a mut HashMap<Box<str>, HashMap<Box<str>, NodeTrack>>,
    group_id: &str,
    edge_node_id: &str,
) -> Option<&'a mut NodeTrack> {
    if !nodes.contains_key(group_id) {
        nodes.insert(Box::from(group_id), HashMap::new());
    }
    let group = nodes.get_mut(group_id)?;
    if !group.contains_key(edge_node_id) {
        group.insert(Box::from(edge_node_id), NodeTrack::default());
    }
    group.get_mut(edge_node_id)
}

fn bd_seq_of(payload: &Payload) -> Option<u64> {
    payload
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(BD_SEQ))
        .and_then(|m| match m.value {
            Some(metric::Value::LongValue(v)) => Some(v),
            Some(metric::Value::IntValue(v)) => Some(u64::from(v)),
            _ => None,
        })
}

fn aliases_of(payload: &Payload) -> Box<[u64]> {
    let mut aliases: Vec<u64> = payload.metrics.iter().filter_map(|m| m.alias).collect();
    aliases.sort_unstable();
    aliases.dedup();
    aliases.into_boxed_slice()
}

fn all_declared(payload: &Payload, declared: &[u64]) -> bool {
    payload
        .metrics
        .iter()
        .filter_map(|m| m.alias)
        .all(|a| declared.binary_search(&a).is_ok())
}
