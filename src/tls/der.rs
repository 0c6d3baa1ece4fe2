//! The little DER fleetstorm writes itself: wrapping a SEC1 (`EC PRIVATE KEY`) or PKCS#1
//! (`RSA PRIVATE KEY`) key into PKCS#8, the only form rcgen accepts with the ring backend, so a CA key
//! made by `openssl ecparam -genkey` or `openssl genrsa` signs minted certificates as it is.

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

// INTEGER 0, SEQUENCE { id-ecPublicKey, prime256v1 }
const PKCS8_PREFIX_P256: &[u8] = b"\x02\x01\x00\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07";
// INTEGER 0, SEQUENCE { id-ecPublicKey, secp384r1 }
const PKCS8_PREFIX_P384: &[u8] =
    b"\x02\x01\x00\x30\x10\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x05\x2b\x81\x04\x00\x22";
// INTEGER 0, SEQUENCE { rsaEncryption, NULL }
const PKCS8_PREFIX_RSA: &[u8] =
    b"\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00";

const TAG_SEQUENCE: u8 = 0x30;
const TAG_OCTET_STRING: u8 = 0x04;

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // < 0x80: fits the short form.
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let significant = bytes.get(skip..).unwrap_or(&[]);
    // At most 8 bytes, so the count fits the low 7 bits.
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// `tag`, the DER length of `content`, then `content`.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

fn wrap(prefix: &[u8], inner: &[u8]) -> PrivatePkcs8KeyDer<'static> {
    let mut body = prefix.to_vec();
    body.extend_from_slice(&tlv(TAG_OCTET_STRING, inner));
    PrivatePkcs8KeyDer::from(tlv(TAG_SEQUENCE, &body))
}

/// The PKCS#8 forms `key` may have (one for PKCS#8 and PKCS#1; for SEC1, one per supported curve,
/// since the curve is only known once a parse succeeds).
pub fn pkcs8_candidates(key: &PrivateKeyDer<'_>) -> Vec<PrivatePkcs8KeyDer<'static>> {
    match key {
        PrivateKeyDer::Pkcs8(k) => vec![PrivatePkcs8KeyDer::from(k.secret_pkcs8_der().to_vec())],
        PrivateKeyDer::Sec1(k) => vec![
            wrap(PKCS8_PREFIX_P256, k.secret_sec1_der()),
            wrap(PKCS8_PREFIX_P384, k.secret_sec1_der()),
        ],
        PrivateKeyDer::Pkcs1(k) => vec![wrap(PKCS8_PREFIX_RSA, k.secret_pkcs1_der())],
        _ => Vec::new(),
    }
}

/// An rcgen signing key from any PEM private key form rustls reads (PKCS#8, SEC1, PKCS#1), or `None`
/// when ring does not take it (an unsupported curve or algorithm, or not a key).
pub fn rcgen_key_pair(key: &PrivateKeyDer<'_>) -> Option<rcgen::KeyPair> {
    pkcs8_candidates(key)
        .into_iter()
        .find_map(|k| rcgen::KeyPair::try_from(&PrivateKeyDer::Pkcs8(k)).ok())
}

/// How a key file names its key, for messages.
pub fn key_form(key: &PrivateKeyDer<'_>) -> &'static str {
    match key {
        PrivateKeyDer::Pkcs8(_) => "PKCS#8 `PRIVATE KEY`",
        PrivateKeyDer::Sec1(_) => "SEC1 `EC PRIVATE KEY`",
        PrivateKeyDer::Pkcs1(_) => "PKCS#1 `RSA PRIVATE KEY`",
        _ => "private key",
    }
}

/// Read one TLV from the front of `input`: its tag and content. `None` for a truncated or
/// indefinite-length element.
pub fn read_tlv<'a>(input: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, tail) = rest.split_at_checked(n)?;
        rest = tail;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let (content, tail) = rest.split_at_checked(len)?;
    *input = tail;
    Some((tag, content))
}

const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];

/// What a certificate's basicConstraints says: `Some(true)` for CA:TRUE, `Some(false)` for an
/// extension without cA (or CA:FALSE), `None` when the certificate has no such extension (an X.509 v1
/// certificate, which OpenSSL still accepts as a self-signed CA) or does not parse.
pub fn basic_constraints_ca(cert: &[u8]) -> Option<bool> {
    let mut input = cert;
    let (_, certificate) = read_tlv(&mut input)?;
    let mut certificate = certificate;
    let (_, tbs) = read_tlv(&mut certificate)?;
    let mut tbs = tbs;
    while !tbs.is_empty() {
        let (tag, content) = read_tlv(&mut tbs)?;
        if tag != 0xa3 {
            continue;
        }
        let mut wrapped = content;
        let (_, mut extensions) = read_tlv(&mut wrapped)?;
        while !extensions.is_empty() {
            let (_, mut ext) = read_tlv(&mut extensions)?;
            let (_, oid) = read_tlv(&mut ext)?;
            if oid != OID_BASIC_CONSTRAINTS {
                continue;
            }
            let (mut tag, mut value) = read_tlv(&mut ext)?;
            if tag == 0x01 {
                // critical flag
                (tag, value) = read_tlv(&mut ext)?;
            }
            if tag != TAG_OCTET_STRING {
                return None;
            }
            let (_, mut constraints) = read_tlv(&mut value)?;
            return Some(match read_tlv(&mut constraints) {
                Some((0x01, flag)) => flag.first().is_some_and(|b| *b != 0),
                _ => false,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_short_and_long_forms() {
        assert_eq!(tlv(0x04, &[7; 3]), [0x04, 3, 7, 7, 7]);
        let long = tlv(0x04, &[0; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        assert_eq!(long.len(), 203);
        let longer = tlv(0x04, &[0; 1000]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x03, 0xe8]);
    }

    /// The SEC1 `ECPrivateKey` inside an rcgen PKCS#8 key: the last OCTET STRING's content.
    fn sec1_of(pkcs8: &[u8]) -> Vec<u8> {
        // SEQUENCE { INTEGER 0, SEQUENCE {..}, OCTET STRING { sec1 } } with short lengths below 128
        // and a two-byte or one-byte outer length: find the OCTET STRING after the algorithm.
        let body_start = if pkcs8[1] & 0x80 != 0 {
            2 + usize::from(pkcs8[1] & 0x7f)
        } else {
            2
        };
        let alg_start = body_start + 3; // INTEGER 0
        let alg_len = usize::from(pkcs8[alg_start + 1]);
        let oct = alg_start + 2 + alg_len;
        assert_eq!(pkcs8[oct], 0x04);
        let (len, start) = if pkcs8[oct + 1] & 0x80 != 0 {
            (usize::from(pkcs8[oct + 2]), oct + 3)
        } else {
            (usize::from(pkcs8[oct + 1]), oct + 2)
        };
        pkcs8[start..start + len].to_vec()
    }

    #[test]
    fn a_sec1_p256_key_round_trips_through_pkcs8() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let sec1 = sec1_of(&kp.serialize_der());
        let key = PrivateKeyDer::Sec1(sec1.into());
        let back = rcgen_key_pair(&key).expect("SEC1 P-256 is accepted");
        assert_eq!(back.public_key_raw(), kp.public_key_raw());
        assert_eq!(back.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    }

    #[test]
    fn a_sec1_p384_key_is_found_on_the_second_curve() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let key = PrivateKeyDer::Sec1(sec1_of(&kp.serialize_der()).into());
        let back = rcgen_key_pair(&key).expect("SEC1 P-384 is accepted");
        assert_eq!(back.public_key_raw(), kp.public_key_raw());
    }

    const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tls/testdata");

    fn cert(name: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject as _;
        let path = std::path::Path::new(TESTDATA).join(name);
        rustls_pki_types::CertificateDer::from_pem_file(path)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn basic_constraints_are_read() {
        assert_eq!(basic_constraints_ca(&cert("ec-ca.crt")), Some(true));
        assert_eq!(basic_constraints_ca(&cert("rsa-ca.crt")), Some(true));
        assert_eq!(basic_constraints_ca(&cert("ec-leaf.crt")), Some(false));
        assert_eq!(basic_constraints_ca(b"\x30\x03\x02"), None);
        assert_eq!(basic_constraints_ca(&[]), None);
    }

    #[test]
    fn garbage_is_not_a_key() {
        let key = PrivateKeyDer::Sec1(vec![0x30, 0x03, 0x02, 0x01, 0x01].into());
        assert!(rcgen_key_pair(&key).is_none());
        let key = PrivateKeyDer::Pkcs1(vec![0x30, 0x00].into());
        assert!(rcgen_key_pair(&key).is_none());
    }
}
