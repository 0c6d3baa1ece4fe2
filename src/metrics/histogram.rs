//! Latency histograms: fixed bounds (1 µs .. 1 h, 3 significant figures) so recording never
//! reallocates and any two histograms merge exactly; V2+DEFLATE base64 for transport and reports.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Highest trackable latency: one hour in µs.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant figures kept.
pub const SIGFIG: u8 = 3;

/// A latency histogram in µs.
pub type LatencyHistogram = Histogram<u64>;

#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("histogram creation failed: {0:?}")]
    Create(hdrhistogram::CreationError),
    #[error("histograms have different bounds: {0:?}")]
    Add(hdrhistogram::AdditionError),
    #[error("histogram serialisation failed: {0:?}")]
    Serialize(hdrhistogram::serialization::V2DeflateSerializeError),
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram is not valid V2 data: {0:?}")]
    Deserialize(hdrhistogram::serialization::DeserializeError),
}

/// A new, empty latency histogram with the fixed bounds.
pub fn new_histogram() -> Result<LatencyHistogram, HistogramError> {
    Histogram::new_with_bounds(1, HIGHEST_US, SIGFIG).map_err(HistogramError::Create)
}

/// Record a latency, clamped into the trackable range (0 µs counts as 1 µs; over an hour as an hour).
#[inline]
pub fn record(h: &mut LatencyHistogram, latency_us: u64) {
    h.saturating_record(latency_us.clamp(1, HIGHEST_US));
}

/// Encode as base64 of HdrHistogram V2 + DEFLATE (the format HdrHistogram's own tools read).
pub fn encode(h: &LatencyHistogram) -> Result<String, HistogramError> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .map_err(HistogramError::Serialize)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// Decode what [`encode`] produced, into a histogram with the fixed bounds.
pub fn decode(text: &str) -> Result<LatencyHistogram, HistogramError> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim())?;
    let read: LatencyHistogram = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(HistogramError::Deserialize)?;
    let mut h = new_histogram()?;
    h.add(&read).map_err(HistogramError::Add)?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_and_merge_adds() {
        let mut a = new_histogram().unwrap();
        let mut b = new_histogram().unwrap();
        for v in [0u64, 1, 10, 999, 1_000_000, u64::MAX] {
            record(&mut a, v);
        }
        for v in 1..=1000u64 {
            record(&mut b, v * 37);
        }
        let a2 = decode(&encode(&a).unwrap()).unwrap();
        assert_eq!(a, a2);
        let mut merged = a2.clone();
        merged.add(&b).unwrap();
        assert_eq!(merged.len(), a.len() + b.len());
        assert_eq!(a.max(), a.highest_equivalent(HIGHEST_US));
        assert!(decode("not base64!").is_err());
        assert!(decode("AAAA").is_err());
    }
}
