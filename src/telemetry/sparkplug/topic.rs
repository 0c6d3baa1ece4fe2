//! Sparkplug B topic namespace: parse (borrowing) and format (into a caller's buffer).
//!
//! - Edge node: `spBv1.0/{group_id}/{NBIRTH|NDEATH|NDATA|NCMD}/{edge_node_id}`
//! - Device: `spBv1.0/{group_id}/{DBIRTH|DDEATH|DDATA|DCMD}/{edge_node_id}/{device_id}`
//! - Host state: `spBv1.0/STATE/{host_id}` (3.0); the 2.2 form `STATE/{host_id}` is parsed too.
//!
//! An id element is non-empty and contains none of `/`, `+`, `#`.

use thiserror::Error;

/// The Sparkplug namespace element.
pub const NAMESPACE: &str = "spBv1.0";

/// Why a topic is not a Sparkplug B topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TopicError {
    #[error("topic does not start with `spBv1.0/` or `STATE/`")]
    WrongNamespace,
    #[error("unknown Sparkplug message type")]
    UnknownMessageType,
    #[error("wrong number of topic elements for the message type")]
    WrongElementCount,
    #[error("empty id element")]
    EmptyId,
    #[error("id element contains `/`, `+` or `#`")]
    InvalidIdChar,
}

/// Sparkplug message types carried by edge node and device topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    NBirth,
    NDeath,
    NData,
    NCmd,
    DBirth,
    DDeath,
    DData,
    DCmd,
}

impl MessageType {
    /// The topic element (`"NBIRTH"`...).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::NData => "NDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::DData => "DDATA",
            MessageType::DCmd => "DCMD",
        }
    }

    /// Parse a topic element.
    pub fn parse(s: &str) -> Option<MessageType> {
        Some(match s {
            "NBIRTH" => MessageType::NBirth,
            "NDEATH" => MessageType::NDeath,
            "NDATA" => MessageType::NData,
            "NCMD" => MessageType::NCmd,
            "DBIRTH" => MessageType::DBirth,
            "DDEATH" => MessageType::DDeath,
            "DDATA" => MessageType::DData,
            "DCMD" => MessageType::DCmd,
            _ => return None,
        })
    }

    /// True for the `D*` types, whose topics end with a device id.
    pub fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        )
    }
}

/// A parsed Sparkplug topic, borrowing from the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic<'a> {
    /// An edge node or device topic; `device_id` is `Some` exactly for the `D*` message types.
    Edge {
        group_id: &'a str,
        message_type: MessageType,
        edge_node_id: &'a str,
        device_id: Option<&'a str>,
    },
    /// A host application's STATE topic. `legacy`: the 2.2 form `STATE/{host_id}`.
    State { host_id: &'a str, legacy: bool },
}

impl<'a> Topic<'a> {
    /// Parse `topic`. Allocates nothing.
    pub fn parse(topic: &'a str) -> Result<Topic<'a>, TopicError> {
        let mut parts = topic.split('/');
        let first = parts.next().unwrap_or_default();
        if first == "STATE" {
            let host_id = parts.next().ok_or(TopicError::WrongElementCount)?;
            if parts.next().is_some() {
                return Err(TopicError::WrongElementCount);
            }
            check_id(host_id)?;
            return Ok(Topic::State {
                host_id,
                legacy: true,
            });
        }
        if first != NAMESPACE {
            return Err(TopicError::WrongNamespace);
        }
        let group_id = parts.next().ok_or(TopicError::WrongElementCount)?;
        let second = parts.next().ok_or(TopicError::WrongElementCount)?;
        if group_id == "STATE" {
            if parts.next().is_none() {
                check_id(second)?;
                return Ok(Topic::State {
                    host_id: second,
                    legacy: false,
                });
            }
            // `STATE` as a group id with more elements: fall through to the edge forms.
            parts = topic.split('/');
            parts.next();
            parts.next();
            parts.next();
        }
        check_id(group_id)?;
        let message_type = MessageType::parse(second).ok_or(TopicError::UnknownMessageType)?;
        let edge_node_id = parts.next().ok_or(TopicError::WrongElementCount)?;
        check_id(edge_node_id)?;
        let device_id = if message_type.is_device() {
            let device_id = parts.next().ok_or(TopicError::WrongElementCount)?;
            check_id(device_id)?;
            Some(device_id)
        } else {
            None
        };
        if parts.next().is_some() {
            return Err(TopicError::WrongElementCount);
        }
        Ok(Topic::Edge {
            group_id,
            message_type,
            edge_node_id,
            device_id,
        })
    }

    /// Clear `out` and write the topic into it.
    pub fn write(&self, out: &mut String) {
        out.clear();
        match *self {
            Topic::Edge {
                group_id,
                message_type,
                edge_node_id,
                device_id,
            } => write_edge(out, group_id, message_type, edge_node_id, device_id),
            Topic::State { host_id, legacy } => {
                if !legacy {
                    out.push_str(NAMESPACE);
                    out.push('/');
                }
                out.push_str("STATE/");
                out.push_str(host_id);
            }
        }
    }
}

/// Clear `out` and write `spBv1.0/{group_id}/{type}/{edge_node_id}[/{device_id}]`. The caller supplies a
/// device id exactly for device message types.
pub fn write_edge(
    out: &mut String,
    group_id: &str,
    message_type: MessageType,
    edge_node_id: &str,
    device_id: Option<&str>,
) {
    out.clear();
    out.reserve(
        NAMESPACE.len()
            + group_id.len()
            + edge_node_id.len()
            + device_id.map_or(0, |d| d.len() + 1)
            + 10,
    );
    out.push_str(NAMESPACE);
    out.push('/');
    out.push_str(group_id);
    out.push('/');
    out.push_str(message_type.as_str());
    out.push('/');
    out.push_str(edge_node_id);
    if let Some(device_id) = device_id {
        out.push('/');
        out.push_str(device_id);
    }
}

/// Check one id element (group, edge node, device, host): non-empty, no `/`, `+`, `#`.
pub fn check_id(id: &str) -> Result<(), TopicError> {
    if id.is_empty() {
        Err(TopicError::EmptyId)
    } else if id.contains(['/', '+', '#']) {
        Err(TopicError::InvalidIdChar)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_every_form() {
        let cases = [
            "spBv1.0/g/NBIRTH/n",
            "spBv1.0/g/NDEATH/n",
            "spBv1.0/g/NDATA/n",
            "spBv1.0/g/NCMD/n",
            "spBv1.0/g/DBIRTH/n/d",
            "spBv1.0/g/DDEATH/n/d",
            "spBv1.0/g/DDATA/n/d",
            "spBv1.0/g/DCMD/n/d",
            "spBv1.0/STATE/host",
            "STATE/host",
            "spBv1.0/STATE/NDATA/n",
        ];
        let mut out = String::new();
        for case in cases {
            let topic = Topic::parse(case).unwrap_or_else(|e| panic!("{case}: {e}"));
            topic.write(&mut out);
            assert_eq!(out, case);
        }
        assert_eq!(
            Topic::parse("spBv1.0/g/DDATA/n/d"),
            Ok(Topic::Edge {
                group_id: "g",
                message_type: MessageType::DData,
                edge_node_id: "n",
                device_id: Some("d"),
            })
        );
    }

    #[test]
    fn rejects_malformed_topics() {
        use TopicError::*;
        let cases = [
            ("spBv2.0/g/NDATA/n", WrongNamespace),
            ("", WrongNamespace),
            ("spBv1.0/g/NFOO/n", UnknownMessageType),
            ("spBv1.0/g/NDATA", WrongElementCount),
            ("spBv1.0/g/NDATA/n/d", WrongElementCount),
            ("spBv1.0/g/DDATA/n", WrongElementCount),
            ("spBv1.0/g/DDATA/n/d/x", WrongElementCount),
            ("spBv1.0//NDATA/n", EmptyId),
            ("spBv1.0/g/NDATA/+", InvalidIdChar),
            ("spBv1.0/STATE/", EmptyId),
            ("STATE/a/b", WrongElementCount),
        ];
        for (topic, err) in cases {
            assert_eq!(Topic::parse(topic), Err(err), "{topic}");
        }
    }
}
