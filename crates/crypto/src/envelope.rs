//! DSSE pre-authentication encoding and envelope signing.

use waymark_proto::v1::{Envelope, Signature};

use crate::keys::AgencyKey;

/// DSSE's pre-authentication encoding, the bytes every signature covers:
///
/// `"DSSEv1" SP LEN(payload_type) SP payload_type SP LEN(payload) SP payload`
///
/// with SP one space and LEN the byte length in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` as `payload_type` and wraps both in an [`Envelope`] with one
/// signature. The payload bytes are kept exactly as given.
pub fn sign_envelope(key: &AgencyKey, payload_type: &str, payload: Vec<u8>) -> Envelope {
    let sig = key.sign(&pae(payload_type, &payload));
    Envelope {
        payload_type: payload_type.to_owned(),
        payload,
        signatures: vec![Signature {
            key_id: key.key_id().as_str().to_owned(),
            sig: sig.to_bytes().to_vec(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the DSSE protocol specification
    /// (secure-systems-lab/dsse, protocol.md, "Test vectors").
    #[test]
    fn pae_matches_dsse_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn pae_of_empty_values() {
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn envelope_keeps_payload_verbatim() {
        let key = AgencyKey::generate();
        let payload = vec![0, 1, 2, 255];
        let env = sign_envelope(&key, "t", payload.clone());
        assert_eq!(env.payload, payload);
        assert_eq!(env.signatures.len(), 1);
        assert_eq!(env.signatures[0].key_id, key.key_id().as_str());
    }
}
