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
    /// The encoded data is malformed or claims more than fleetstorm ever writes; refused before
    /// anything is allocated for it.
    #[error("histogram data refused: {0}")]
    Refused(String),
}

/// Serialised V2 header: cookie, payload length, normalising offset, significant digits (4 bytes
/// each), lowest, highest (8 each), integer-to-double ratio (8).
const V2_HEADER_BYTES: usize = 40;
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// The largest V2 payload a histogram with the fixed bounds can need: one zig-zag LEB128 varint (at
/// most 9 bytes) per count. A header claiming more is refused before anything is allocated.
pub const MAX_PAYLOAD_BYTES: usize = 9 * COUNTS_LEN;
/// Buckets of a histogram with the fixed bounds (1 µs .. 1 h, 3 significant figures): 23 half
/// buckets of 1,024 sub-buckets (hdrhistogram's layout; checked by a test against the real type).
pub const COUNTS_LEN: usize = 23 * 1024;
/// Heap bytes of one histogram with the fixed bounds (u64 counts): what each phase x group x metric x
/// basis costs per worker thread once something is recorded there.
pub const HISTOGRAM_BYTES: u64 = (COUNTS_LEN * 8) as u64;
/// The longest base64 text [`decode`] accepts (a compressed payload is smaller than the raw one).
pub const MAX_ENCODED_CHARS: usize = (V2_HEADER_BYTES + 8 + MAX_PAYLOAD_BYTES + 1024) * 4 / 3 + 4;

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

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// Check an uncompressed V2 histogram (cookie included) before hdrhistogram reads it: its header must
/// not claim more payload than is there, nor bounds beyond the fixed ones (hdrhistogram allocates the
/// claimed payload and a counts array for the claimed bounds before reading a byte of it).
fn check_v2(bytes: &[u8]) -> Result<(), HistogramError> {
    let refuse = |m: String| Err(HistogramError::Refused(m));
    let (Some(cookie), Some(claimed), Some(digits), Some(low), Some(high)) = (
        be_u32(bytes, 0),
        be_u32(bytes, 4),
        be_u32(bytes, 12),
        be_u64(bytes, 16),
        be_u64(bytes, 24),
    ) else {
        return refuse(format!(
            "{} bytes is shorter than the {V2_HEADER_BYTES}-byte V2 header",
            bytes.len()
        ));
    };
    if cookie != V2_COOKIE {
        return refuse(format!("unknown cookie {cookie:#010x}"));
    }
    let present = bytes.len().saturating_sub(V2_HEADER_BYTES);
    let claimed = usize::try_from(claimed).unwrap_or(usize::MAX);
    if claimed > present {
        return refuse(format!(
            "the header claims a {claimed}-byte payload but only {present} bytes follow"
        ));
    }
    if claimed > MAX_PAYLOAD_BYTES {
        return refuse(format!(
            "the header claims a {claimed}-byte payload; a histogram with fleetstorm's bounds needs at most {MAX_PAYLOAD_BYTES}"
        ));
    }
    if digits > u32::from(SIGFIG) || low < 1 || high > HIGHEST_US || low > high {
        return refuse(format!(
            "bounds {low}..{high} with {digits} significant figures are not fleetstorm's (1..{HIGHEST_US}, {SIGFIG})"
        ));
    }
    Ok(())
}

/// Inflate a compressed V2 histogram (cookie included) into the uncompressed form, reading at most
/// what an uncompressed histogram with the fixed bounds can be.
fn inflate(bytes: &[u8]) -> Result<Vec<u8>, HistogramError> {
    use std::io::Read as _;
    let Some(len) = be_u32(bytes, 4) else {
        return Err(HistogramError::Refused(
            "compressed histogram shorter than its 8-byte header".into(),
        ));
    };
    let body = bytes.get(8..).unwrap_or_default();
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let Some(body) = body.get(..len) else {
        return Err(HistogramError::Refused(format!(
            "the header claims {len} compressed bytes but only {} follow",
            body.len()
        )));
    };
    let limit = V2_HEADER_BYTES + MAX_PAYLOAD_BYTES;
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| HistogramError::Refused(format!("the compressed payload is corrupt: {e}")))?;
    if out.len() > limit {
        return Err(HistogramError::Refused(format!(
            "the compressed payload inflates to more than the {limit} bytes a histogram with fleetstorm's bounds can need"
        )));
    }
    Ok(out)
}

/// Decode what [`encode`] produced, into a histogram with the fixed bounds. Hostile input is refused
/// before it costs memory: the text is capped at [`MAX_ENCODED_CHARS`], the payload at what the fixed
/// bounds can need, and headers claiming more than is there are errors.
pub fn decode(text: &str) -> Result<LatencyHistogram, HistogramError> {
    let text = text.trim();
    if text.len() > MAX_ENCODED_CHARS {
        return Err(HistogramError::Refused(format!(
            "{} characters of base64; a histogram with fleetstorm's bounds needs at most {MAX_ENCODED_CHARS}",
            text.len()
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    let raw = match be_u32(&bytes, 0) {
        Some(V2_COMPRESSED_COOKIE) => inflate(&bytes)?,
        _ => bytes,
    };
    check_v2(&raw)?;
    let read: LatencyHistogram = Deserializer::new()
        .deserialize(&mut raw.as_slice())
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

    #[test]
    fn fixed_size_constants_match_the_real_histogram() {
        let h = new_histogram().unwrap();
        assert_eq!(h.distinct_values(), COUNTS_LEN);
        // A histogram holding every bucket once encodes within the payload bound.
        let mut full = new_histogram().unwrap();
        let mut v = 1;
        while v <= HIGHEST_US {
            full.record_n(v, (i64::MAX as u64) / COUNTS_LEN as u64)
                .unwrap();
            v = full.next_non_equivalent(v);
        }
        assert_eq!(decode(&encode(&full).unwrap()).unwrap(), full);
    }

    fn header(cookie: u32, payload: u32, digits: u32, low: u64, high: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(cookie.to_be_bytes());
        b.extend(payload.to_be_bytes());
        b.extend(0u32.to_be_bytes());
        b.extend(digits.to_be_bytes());
        b.extend(low.to_be_bytes());
        b.extend(high.to_be_bytes());
        b.extend(1.0f64.to_be_bytes());
        b
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn hostile_headers_are_refused_before_allocating() {
        // 40 bytes claiming a 4 GiB payload.
        let h = header(V2_COOKIE, u32::MAX, 3, 1, HIGHEST_US);
        assert_eq!(h.len(), V2_HEADER_BYTES);
        let e = decode(&b64(&h)).unwrap_err().to_string();
        assert!(e.contains("4294967295-byte payload"), "{e}");
        // Bounds that would make hdrhistogram allocate a huge counts array.
        let e = decode(&b64(&header(V2_COOKIE, 0, 5, 1, u64::MAX / 4)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("significant figures"), "{e}");
        // The same 4 GiB claim inside a valid zlib stream.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &h).unwrap();
        let inner = z.finish().unwrap();
        let mut c = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        c.extend(u32::try_from(inner.len()).unwrap().to_be_bytes());
        c.extend(&inner);
        let e = decode(&b64(&c)).unwrap_err().to_string();
        assert!(e.contains("payload"), "{e}");
        // A compressed length longer than the data.
        let mut c2 = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        c2.extend(u32::MAX.to_be_bytes());
        let e = decode(&b64(&c2)).unwrap_err().to_string();
        assert!(e.contains("compressed bytes"), "{e}");
        // A zip bomb: a tiny stream inflating far past the bound.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let mut big = header(V2_COOKIE, 64 << 20, 3, 1, HIGHEST_US);
        big.resize(64 << 20, 0);
        std::io::Write::write_all(&mut z, &big).unwrap();
        let inner = z.finish().unwrap();
        let mut c3 = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        c3.extend(u32::try_from(inner.len()).unwrap().to_be_bytes());
        c3.extend(&inner);
        let e = decode(&b64(&c3)).unwrap_err().to_string();
        assert!(e.contains("inflates to more"), "{e}");
        // Over-long text.
        let e = decode(&"A".repeat(MAX_ENCODED_CHARS + 4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("characters of base64"), "{e}");
    }
}
