//! The edge node model's errors (shared by the node and value files).

use thiserror::Error;

use super::payload::DataType;
use super::topic::TopicError;

/// Errors of the edge node model.
#[derive(Debug, Error)]
pub enum SparkplugError {
    #[error("invalid {what} id: {source}")]
    InvalidId {
        what: &'static str,
        source: TopicError,
    },
    #[error("duplicate device id `{0}`")]
    DuplicateId(Box<str>),
    #[error("invalid metric name `{0}` (empty, duplicate, or reserved)")]
    InvalidMetric(Box<str>),
    #[error("data type {0:?} is not simulated by the edge node model")]
    UnsupportedDataType(DataType),
    #[error("value does not fit data type {0:?}")]
    ValueMismatch(DataType),
    #[error("no device with index {0}")]
    NoSuchDevice(usize),
    #[error("no metric with index {0}")]
    NoSuchMetric(usize),
    #[error("not born: publish births (or the device's birth) first")]
    NotBorn,
    #[error("too many metrics for 32-bit aliases")]
    TooManyMetrics,
    #[error("payload does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}
