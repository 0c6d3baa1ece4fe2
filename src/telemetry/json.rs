//! Allocation-free JSON pieces for the payload encoder, and the stamp reader observers use.

/// Powers of ten for the fixed-point writer (`decimals` is capped at 9).
const POW10: [u64; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// Largest scaled magnitude written as a number: 2^53, above which `f64` no longer holds every integer.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// Append `value` with exactly `decimals` digits after the point (rounded half away from zero), e.g.
/// `-3.14159, 2` → `-3.14`. `decimals` above 9 are treated as 9. Writes `null` for NaN, infinities and
/// magnitudes whose scaled value exceeds 2^53 (about 9e15 / 10^decimals), which no profile produces.
pub fn write_fixed(out: &mut Vec<u8>, value: f64, decimals: u8) {
    let decimals = usize::from(decimals.min(9));
    let scale = POW10[decimals];
    let scaled = (value * scale as f64).round();
    if !scaled.is_finite() || scaled.abs() > MAX_EXACT {
        out.extend_from_slice(b"null");
        return;
    }
    // Exact: |scaled| <= 2^53 is an integer. -0.0 becomes 0, so no "-0.00".
    let scaled = scaled as i64;
    if scaled < 0 {
        out.push(b'-');
    }
    let magnitude = scaled.unsigned_abs();
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(digits.format(magnitude / scale).as_bytes());
    if decimals > 0 {
        out.push(b'.');
        let fraction = digits.format(magnitude % scale).as_bytes();
        for _ in fraction.len()..decimals {
            out.push(b'0');
        }
        out.extend_from_slice(fraction);
    }
}

/// Append a signed integer.
pub fn write_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Append an unsigned integer.
pub fn write_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Append `s` as a quoted JSON string, escaping `"`, `\` and control characters.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The stamp every payload carries, read back by observers to compute end-to-end latency and loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp<'a> {
    /// The publishing device's id (its MQTT client id).
    pub device_id: &'a str,
    /// Per-device sequence number.
    pub seq: u64,
    /// Intended send time, µs since the Unix epoch.
    pub intended_at_us: u64,
    /// Actual send time, µs since the Unix epoch (equal to the intended time when the payload has none).
    pub sent_at_us: u64,
}

/// Read the stamp of a JSON payload written by [`DeviceTelemetry::encode_json`](super::DeviceTelemetry).
///
/// A fast scan of our own format, not a JSON parser: the payload must start exactly with
/// `{"device":"…","seq":N,"ts_us":N` and be one complete, balanced object. Returns `None` on anything else,
/// including truncated payloads and device ids that needed escaping (they cannot be borrowed unescaped).
/// Never allocates, never panics.
pub fn read_stamp(payload: &[u8]) -> Option<Stamp<'_>> {
    let rest = payload.strip_prefix(b"{\"device\":\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest.get(end) != Some(&b'"') {
        return None;
    }
    let device_id = std::str::from_utf8(&rest[..end]).ok()?;
    let rest = rest[end + 1..].strip_prefix(b",\"seq\":")?;
    let (seq, rest) = read_u64(rest)?;
    let rest = rest.strip_prefix(b",\"ts_us\":")?;
    let (intended_at_us, rest) = read_u64(rest)?;
    let (sent_at_us, rest) = match rest.strip_prefix(b",\"sent_us\":") {
        Some(r) => read_u64(r)?,
        None => (intended_at_us, rest),
    };
    match rest.first() {
        Some(b'}') if rest.len() == 1 => {}
        Some(b',') if closes_object(&rest[1..]) => {}
        _ => return None,
    }
    Some(Stamp {
        device_id,
        seq,
        intended_at_us,
        sent_at_us,
    })
}

/// A JSON unsigned integer at the start of `bytes` (no sign, no leading zeros, no fraction or exponent) and
/// what follows it.
fn read_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || (len > 1 && bytes[0] == b'0') {
        return None;
    }
    let mut value: u64 = 0;
    for &b in &bytes[..len] {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    let rest = &bytes[len..];
    if matches!(rest.first(), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((value, rest))
}

/// Whether `bytes`, read from inside the top-level object, closes it exactly at its last byte: a cheap check
/// that the payload was not truncated (braces and brackets balanced outside strings).
fn closes_object(bytes: &[u8]) -> bool {
    let mut depth: usize = 1;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1 == bytes.len();
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(value: f64, decimals: u8) -> String {
        let mut out = Vec::new();
        write_fixed(&mut out, value, decimals);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn fixed_point_table() {
        let cases: &[(f64, u8, &str)] = &[
            (21.534, 2, "21.53"),
            (21.536, 2, "21.54"),
            (45.2, 2, "45.20"),
            (0.0, 2, "0.00"),
            (-0.0, 2, "0.00"),
            (-0.004, 2, "0.00"),
            (-0.005, 3, "-0.005"),
            (-3.14659, 2, "-3.15"),
            (-12.5, 0, "-13"),
            (12.5, 0, "13"),
            (0.05, 1, "0.1"),
            (1013.25, 2, "1013.25"),
            (0.001, 3, "0.001"),
            (0.92, 3, "0.920"),
            (9.999, 2, "10.00"),
            (-9.999, 2, "-10.00"),
            (123456.0, 0, "123456"),
            (1.5, 12, "1.500000000"),
            (f64::NAN, 2, "null"),
            (f64::INFINITY, 2, "null"),
            (f64::NEG_INFINITY, 0, "null"),
            (1e20, 0, "null"),
            (9e15, 0, "9000000000000000"),
            (-9e15, 0, "-9000000000000000"),
        ];
        for &(value, decimals, expected) in cases {
            assert_eq!(
                fixed(value, decimals),
                expected,
                "{value} with {decimals} decimals"
            );
        }
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}e\u{7f}é");
        assert_eq!(out, b"\"a\\\"b\\\\c\\nd\\u0001e\x7f\xc3\xa9\"");
    }

    #[test]
    fn integers_reject_leading_zeros_overflow_and_fractions() {
        assert_eq!(read_u64(b"0,"), Some((0, &b","[..])));
        assert_eq!(
            read_u64(b"18446744073709551615}"),
            Some((u64::MAX, &b"}"[..]))
        );
        assert_eq!(read_u64(b"18446744073709551616}"), None);
        assert_eq!(read_u64(b"01,"), None);
        assert_eq!(read_u64(b"1.5,"), None);
        assert_eq!(read_u64(b"-1,"), None);
        assert_eq!(read_u64(b""), None);
    }
}
