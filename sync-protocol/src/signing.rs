//! Operation signing, hash chaining and receipt signatures.
//!
//! Bytes, not JSON values, are signed: the signature covers the UTF-8 bytes of
//! [`SignedOperation::op`] exactly as sent, and the operation hash is the SHA-256 of the same
//! bytes. Nobody re-serialises a signed operation, so no canonical JSON form is needed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ErrorCode;
use crate::wire::{OperationBody, Receipt, SignedOperation};

/// The `prev` of a device's first operation: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The first line of a receipt's signed bytes; a new receipt format gets a new tag.
pub const RECEIPT_TAG: &str = "gridline-receipt/1";

/// Why a signed operation or a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature is not valid base64")]
    BadBase64,
    #[error("signature must be 64 bytes")]
    BadSignatureLength,
    #[error("public key is not a valid Ed25519 key")]
    BadPublicKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("operation text is not a valid operation body: {0}")]
    Unparseable(String),
}

impl VerifyError {
    pub fn code(&self) -> ErrorCode {
        match self {
            VerifyError::Unparseable(_) => ErrorCode::InvalidRequest,
            _ => ErrorCode::BadSignature,
        }
    }
}

/// An operation whose `prev` does not continue the device's chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broken chain at seq {seq}: prev is {found}, expected {expected}")]
pub struct ChainError {
    pub seq: u64,
    pub expected: String,
    pub found: String,
}

impl ChainError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::BrokenChain
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The operation hash: lowercase hex SHA-256 of the UTF-8 bytes of the `op` text.
pub fn op_hash(op_text: &str) -> String {
    sha256_hex(op_text.as_bytes())
}

/// Serialises `body` once and signs the resulting bytes.
pub fn sign_operation(key: &SigningKey, body: &OperationBody) -> SignedOperation {
    // A struct of strings, integers, a timestamp and a JSON value: serialisation cannot fail.
    let op = serde_json::to_string(body).expect("operation bodies always serialise");
    let sig = BASE64.encode(key.sign(op.as_bytes()).to_bytes());
    SignedOperation { op, sig }
}

fn decode_signature(sig: &str) -> Result<Signature, VerifyError> {
    let bytes = BASE64.decode(sig).map_err(|_| VerifyError::BadBase64)?;
    let bytes: [u8; 64] = bytes
        .try_into()
        .map_err(|_| VerifyError::BadSignatureLength)?;
    Ok(Signature::from_bytes(&bytes))
}

/// Verifies the signature over the `op` bytes, then parses them. The signature is checked
/// first so that nothing unsigned is ever parsed.
pub fn verify_operation(
    key: &VerifyingKey,
    signed: &SignedOperation,
) -> Result<OperationBody, VerifyError> {
    let sig = decode_signature(&signed.sig)?;
    key.verify_strict(signed.op.as_bytes(), &sig)
        .map_err(|_| VerifyError::BadSignature)?;
    serde_json::from_str(&signed.op).map_err(|e| VerifyError::Unparseable(e.to_string()))
}

/// Checks that `body.prev` is `expected_prev`: the hash of the device's operation `seq - 1`, or
/// [`GENESIS_HASH`] for `seq` 1.
pub fn check_chain(expected_prev: &str, body: &OperationBody) -> Result<(), ChainError> {
    let expected = if body.seq <= 1 {
        GENESIS_HASH
    } else {
        expected_prev
    };
    if body.prev == expected {
        Ok(())
    } else {
        Err(ChainError {
            seq: body.seq,
            expected: expected.to_owned(),
            found: body.prev.clone(),
        })
    }
}

/// Base64 (standard, padded) of a 32-byte Ed25519 public key, as enrolled.
pub fn encode_public_key(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

/// Parses a public key as sent in `EnrolDeviceRequest::public_key` or `ServerKey::public_key`.
pub fn decode_public_key(b64: &str) -> Result<VerifyingKey, VerifyError> {
    let bytes = BASE64.decode(b64).map_err(|_| VerifyError::BadBase64)?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| VerifyError::BadPublicKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| VerifyError::BadPublicKey)
}

/// A short stable identifier of a public key: the first 16 hex digits of the SHA-256 of its 32
/// raw bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes())[..16].to_owned()
}

/// `server_time` as it appears in receipt bytes: UTC, whole seconds, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn receipt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The exact bytes a receipt signature covers, lines joined by `\n`, no trailing newline:
///
/// ```text
/// gridline-receipt/1
/// {device_id, lowercase hyphenated}
/// {acked_through, decimal}
/// {last_hash, lowercase hex}
/// {server_time, UTC, whole seconds, e.g. 2025-03-01T08:00:05Z}
/// ```
pub fn receipt_signing_bytes(
    device_id: Uuid,
    acked_through: u64,
    last_hash: &str,
    server_time: OffsetDateTime,
) -> Vec<u8> {
    format!(
        "{RECEIPT_TAG}\n{}\n{acked_through}\n{last_hash}\n{}",
        device_id.hyphenated(),
        receipt_time(server_time)
    )
    .into_bytes()
}

impl Receipt {
    /// The bytes [`Receipt::signature`] covers; see [`receipt_signing_bytes`].
    pub fn signing_bytes(&self) -> Vec<u8> {
        receipt_signing_bytes(
            self.device_id,
            self.acked_through,
            &self.last_hash,
            self.server_time,
        )
    }

    /// Issues a signed receipt (server side). `server_time` is truncated to whole seconds, so
    /// the JSON value and the signed bytes say the same thing.
    pub fn sign(
        key: &SigningKey,
        device_id: Uuid,
        acked_through: u64,
        last_hash: impl Into<String>,
        server_time: OffsetDateTime,
    ) -> Receipt {
        let server_time = server_time
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .expect("0 is a valid nanosecond");
        let mut receipt = Receipt {
            device_id,
            acked_through,
            last_hash: last_hash.into(),
            server_time,
            key_id: key_id(&key.verifying_key()),
            signature: String::new(),
        };
        receipt.signature = BASE64.encode(key.sign(&receipt.signing_bytes()).to_bytes());
        receipt
    }

    /// Verifies the server's signature with its pinned receipt key.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), VerifyError> {
        verify_receipt(key, self)
    }
}

/// Verifies `receipt.signature` over [`Receipt::signing_bytes`] with the server's key.
pub fn verify_receipt(key: &VerifyingKey, receipt: &Receipt) -> Result<(), VerifyError> {
    let sig = decode_signature(&receipt.signature)?;
    key.verify_strict(&receipt.signing_bytes(), &sig)
        .map_err(|_| VerifyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::op_types;
    use time::macros::datetime;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn body(seq: u64, prev: &str) -> OperationBody {
        OperationBody {
            op_id: Uuid::now_v7(),
            device_id: Uuid::from_u128(7),
            seq,
            prev: prev.to_owned(),
            op_type: op_types::CASE_COMMENT_V1.into(),
            queued_at: datetime!(2025-03-01 08:00:00.123 UTC),
            payload: serde_json::json!({"case_id": Uuid::nil(), "comment_id": Uuid::nil(), "text": "hi"}),
        }
    }

    #[test]
    fn sign_then_verify_returns_the_body() {
        let k = key(1);
        let b = body(1, GENESIS_HASH);
        let signed = sign_operation(&k, &b);
        assert_eq!(verify_operation(&k.verifying_key(), &signed).unwrap(), b);
        assert_eq!(op_hash(&signed.op), sha256_hex(signed.op.as_bytes()));
        assert_eq!(op_hash(&signed.op).len(), 64);
    }

    #[test]
    fn tampering_with_any_single_byte_fails() {
        let k = key(1);
        let signed = sign_operation(&k, &body(3, &"a".repeat(64)));
        let vk = k.verifying_key();
        let bytes = signed.op.as_bytes();
        for i in 0..bytes.len() {
            let mut tampered = bytes.to_vec();
            // Stay within printable ASCII so the text remains valid UTF-8.
            tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
            let op = String::from_utf8(tampered).unwrap();
            let t = SignedOperation {
                op,
                sig: signed.sig.clone(),
            };
            assert_eq!(
                verify_operation(&vk, &t),
                Err(VerifyError::BadSignature),
                "byte {i}"
            );
        }
    }

    #[test]
    fn wrong_key_and_malformed_signatures_fail() {
        let signed = sign_operation(&key(1), &body(1, GENESIS_HASH));
        let other = key(2).verifying_key();
        assert_eq!(
            verify_operation(&other, &signed),
            Err(VerifyError::BadSignature)
        );
        let vk = key(1).verifying_key();
        let bad_b64 = SignedOperation {
            sig: "!!!".into(),
            ..signed.clone()
        };
        assert_eq!(verify_operation(&vk, &bad_b64), Err(VerifyError::BadBase64));
        let short = SignedOperation {
            sig: BASE64.encode([0u8; 10]),
            ..signed.clone()
        };
        assert_eq!(
            verify_operation(&vk, &short),
            Err(VerifyError::BadSignatureLength)
        );
        let mut sig = BASE64.decode(&signed.sig).unwrap();
        sig[0] ^= 1;
        let flipped = SignedOperation {
            sig: BASE64.encode(sig),
            ..signed
        };
        assert_eq!(
            verify_operation(&vk, &flipped),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn a_signed_non_body_is_unparseable() {
        let k = key(1);
        let text = r#"{"hello":"world"}"#.to_owned();
        let sig = BASE64.encode(k.sign(text.as_bytes()).to_bytes());
        let err =
            verify_operation(&k.verifying_key(), &SignedOperation { op: text, sig }).unwrap_err();
        assert!(matches!(err, VerifyError::Unparseable(_)));
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
    }

    #[test]
    fn chain_links_each_op_to_the_previous_hash() {
        let k = key(1);
        let first = sign_operation(&k, &body(1, GENESIS_HASH));
        check_chain(GENESIS_HASH, &body(1, GENESIS_HASH)).unwrap();
        let h1 = op_hash(&first.op);
        check_chain(&h1, &body(2, &h1)).unwrap();
        let err = check_chain(&h1, &body(2, GENESIS_HASH)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BrokenChain);
        assert_eq!(err.expected, h1);
        // seq 1 must point at genesis whatever the caller passes.
        assert!(check_chain(&h1, &body(1, &h1)).is_err());
    }

    #[test]
    fn receipt_bytes_are_the_documented_string() {
        let bytes = receipt_signing_bytes(
            Uuid::parse_str("0190f1c2-3b4a-7c5d-8e6f-0123456789ab").unwrap(),
            42,
            &"ab".repeat(32),
            datetime!(2025-03-01 16:00:05.987 +08:00),
        );
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!(
                "gridline-receipt/1\n0190f1c2-3b4a-7c5d-8e6f-0123456789ab\n42\n{}\n2025-03-01T08:00:05Z",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn receipts_verify_and_survive_json() {
        let server = key(9);
        let r = Receipt::sign(
            &server,
            Uuid::now_v7(),
            17,
            "cd".repeat(32),
            datetime!(2025-03-01 08:00:05.5 UTC),
        );
        assert_eq!(r.server_time, datetime!(2025-03-01 08:00:05 UTC));
        assert_eq!(r.key_id, key_id(&server.verifying_key()));
        let json = serde_json::to_string(&r).unwrap();
        let back: Receipt = serde_json::from_str(&json).unwrap();
        back.verify(&server.verifying_key()).unwrap();
        let forged = Receipt {
            acked_through: 18,
            ..back.clone()
        };
        assert_eq!(
            forged.verify(&server.verifying_key()),
            Err(VerifyError::BadSignature)
        );
        assert!(back.verify(&key(1).verifying_key()).is_err());
    }

    #[test]
    fn public_keys_round_trip() {
        let vk = key(3).verifying_key();
        assert_eq!(decode_public_key(&encode_public_key(&vk)).unwrap(), vk);
        assert_eq!(
            decode_public_key(&BASE64.encode([1u8; 31])),
            Err(VerifyError::BadPublicKey)
        );
    }
}

/// The test vectors published in `PROTOCOL.md`, so other implementations can check themselves.
#[cfg(test)]
mod protocol_vectors {
    use super::*;

    const OP: &str = r#"{"op_id":"0190f1c2-3b4a-7c5d-8e6f-0123456789ab","device_id":"0190f1c0-0000-7000-8000-000000000001","seq":1,"prev":"0000000000000000000000000000000000000000000000000000000000000000","type":"case.comment@1","queued_at":"2025-03-01T08:00:00Z","payload":{"case_id":"0190f1c1-0000-7000-8000-000000000002","comment_id":"0190f1c2-0000-7000-8000-000000000003","text":"Bin emptied, still smells"}}"#;
    const SIG: &str =
        "nO7vB6iltBNue8Pju1GQ76gGF5B0arl/IJdp1nZ1eJo0l/j7oN6C4DiiHTf49ttBZb1zZ/Fp58m9PHgLR5ERAQ==";
    const HASH: &str = "3b648a068df4257ed87a83ac130279ce10786d4053cd3f99fa06384b53e58518";
    const RECEIPT_SIG: &str =
        "9aQNExyNzzkE9Oxy573Odtcg+A6cjwqQJsrmfNonTZqcE2QtcwtWbT4Kr2c3YIp4doWnkfl04OB+7Ublf3bxDQ==";

    /// The second operation of the same device, chained to the first: an on-site verification.
    const OP2: &str = r#"{"op_id":"0190f1c3-5a6b-7c7d-8e8f-0123456789ac","device_id":"0190f1c0-0000-7000-8000-000000000001","seq":2,"prev":"3b648a068df4257ed87a83ac130279ce10786d4053cd3f99fa06384b53e58518","type":"case.verify@1","queued_at":"2025-03-02T09:41:00Z","payload":{"case_id":"0190f1c1-0000-7000-8000-000000000002","comment":"Garbage is there","found":true,"location":{"accuracy_m":5.0,"lat":31.2305,"lon":121.4736},"photos":[{"captured_at":"2025-03-02T09:39:51Z","role":"verification","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","size":1822113}],"verification_id":"0190f1c3-0000-7000-8000-000000000004","verified_at":"2025-03-02T09:40:00Z"}}"#;
    const SIG2: &str =
        "lzbLWQOoCDdJ7F3Q3BGI03S/POFXFWUZw/Fuhg/hVTlDtl1XVplvTGFPsk4iposzCchzPrgJSw/jsBeP3vDoAQ==";
    const HASH2: &str = "dfa80260f3103b028a4f27bc0008034e0d4557c2519bb37207d7a21df3326260";

    /// The third, chained to the second: a read receipt from the inbox.
    const OP3: &str = r#"{"op_id":"0190f1c4-1c2d-7e3f-8a4b-0123456789ad","device_id":"0190f1c0-0000-7000-8000-000000000001","seq":3,"prev":"dfa80260f3103b028a4f27bc0008034e0d4557c2519bb37207d7a21df3326260","type":"notice.read@1","queued_at":"2025-03-03T08:15:02Z","payload":{"notice_id":"0190f1b8-0000-7000-8000-000000000005","read_at":"2025-03-03T08:15:00Z"}}"#;
    const SIG3: &str =
        "kwlLR6Az7tRzPkEfgaIDAq7qkD3YZVhtO/czucS8m+Wbu8YXeXlXjzAVKwGIBAW1lREPnx9/yoVgmuId6nB8DQ==";
    const HASH3: &str = "71bfaa0fd84e7bfdee65566510f120837f40e03a1ed846b68313a457d59a7e2e";

    /// The fourth to sixth, each chained to the one before: a round for a plan's occurrence,
    /// its checklist and its track.
    const PLAN_ROUND: [(&str, &str, &str); 3] = [
        (
            r#"{"op_id":"0190f1c5-2d3e-7f4a-8b5c-0123456789ae","device_id":"0190f1c0-0000-7000-8000-000000000001","seq":4,"prev":"71bfaa0fd84e7bfdee65566510f120837f40e03a1ed846b68313a457d59a7e2e","type":"round.start@2","queued_at":"2025-03-04T01:05:02Z","payload":{"kind":"periodic","occurrence_at":"2025-03-04T01:00:00Z","plan_id":"0190f1a0-0000-7000-8000-000000000006","round_id":"0190f1c5-0000-7000-8000-000000000007","started_at":"2025-03-04T01:05:00Z","zone_id":"0190e000-0000-7000-8000-0000000000aa"}}"#,
            "6t01X1ETBjJPv3ynIBvHC98879PwwJDcGUB/KqxvHzrMK5VfQp/9CKpWaR5XCzDada67VjrBbAEhlYdLMQ0FDg==",
            "45d045e4f4bfb0387de3a6b8344363f2b9c4117f78f454cba22b73cf148aeeff",
        ),
        (
            r#"{"op_id":"0190f1c6-3e4f-7a5b-8c6d-0123456789af","device_id":"0190f1c0-0000-7000-8000-000000000001","seq":5,"prev":"45d045e4f4bfb0387de3a6b8344363f2b9c4117f78f454cba22b73cf148aeeff","type":"round.checklist@1","queued_at":"2025-03-04T01:40:03Z","payload":{"completed_at":"2025-03-04T01:40:00Z","responses":[{"item_id":"covers","location":{"accuracy_m":6.5,"lat":25.0389,"lon":102.7183},"note":"Cover cracked","photos":[{"captured_at":"2025-03-04T01:31:10Z","role":"before","sha256":"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","size":1733205}],"result":"fail"},{"item_id":"litter","photos":[],"result":"pass"}],"round_id":"0190f1c5-0000-7000-8000-000000000007"}}"#,
            "HhAB3T3eKXvys0492uH/9YukuAwWlcBBzbIWjW9+6m3g2kITfNXWR+BypJKIObbI4TjEBFx5OzxGLcwNeygPAg==",
            "87535a93f57ac4bce0665f5fa0d40f2512bccceaa5dc66b9eff670cfcdf18cd0",
        ),
        (
            r#"{"op_id":"0190f1c7-4f5a-7b6c-8d7e-0123456789b0","device_id":"0190f1c0-0000-7000-8000-000000000001","seq":6,"prev":"87535a93f57ac4bce0665f5fa0d40f2512bccceaa5dc66b9eff670cfcdf18cd0","type":"round.track@1","queued_at":"2025-03-04T01:52:00Z","payload":{"points":3,"polyline":"clywCkd}qR{@kC_DgE","round_id":"0190f1c5-0000-7000-8000-000000000007"}}"#,
            "WCnP0U4QhpMJckn4mkRIe33ixk2+uyZdc84XW5/G/N+Kw9ufgfuTeF05RIJ1najk1//T70FS8di7oMQMAIQBAQ==",
            "dc0257ab4cae16bf0d8f2f0ead166a98b4d9ba271eb981392d173a26cc547d5d",
        ),
    ];
    /// The case the checklist's failed `covers` item raises.
    const FINDING: &str = "e6df4c69-ef98-8034-96ae-ffdd9fb05e1c";

    #[test]
    fn the_plan_round_vectors_chain_to_the_third_and_parse() {
        use crate::ops::Operation;
        let doc = include_str!("../PROTOCOL.md");
        let device = SigningKey::from_bytes(&[1u8; 32]);
        let mut prev = HASH3;
        let mut ops = Vec::new();
        for (op, sig, hash) in PLAN_ROUND {
            for needle in [op, sig, hash] {
                assert!(doc.contains(needle), "PROTOCOL.md lacks {needle}");
            }
            let signed = SignedOperation {
                op: op.into(),
                sig: sig.into(),
            };
            let body = verify_operation(&device.verifying_key(), &signed).unwrap();
            assert_eq!(sign_operation(&device, &body), signed);
            assert_eq!(op_hash(op), hash);
            assert!(check_chain(prev, &body).is_ok());
            ops.push(Operation::from_body(&body).unwrap());
            prev = hash;
        }
        let [Operation::RoundStartV2(start), Operation::RoundChecklistV1(checklist), Operation::RoundTrackV1(track)] =
            &ops[..]
        else {
            panic!("round.start@2, round.checklist@1, round.track@1: {ops:?}");
        };
        assert!(start.plan_id.is_some() && start.occurrence_at.is_some());
        assert_eq!(checklist.round_id, start.round_id);
        assert!(doc.contains(FINDING), "PROTOCOL.md lacks {FINDING}");
        assert_eq!(
            crate::plan::finding_case_id(start.round_id, "covers").to_string(),
            FINDING
        );
        assert_eq!(
            track.decode().unwrap(),
            [(25.0389, 102.7183), (25.0392, 102.719), (25.04, 102.72)]
        );
    }

    #[test]
    fn the_read_receipt_vector_chains_to_the_second_and_parses() {
        let doc = include_str!("../PROTOCOL.md");
        for needle in [OP3, SIG3, HASH3] {
            assert!(doc.contains(needle), "PROTOCOL.md lacks {needle}");
        }
        let device = SigningKey::from_bytes(&[1u8; 32]);
        let signed = SignedOperation {
            op: OP3.into(),
            sig: SIG3.into(),
        };
        let body = verify_operation(&device.verifying_key(), &signed).unwrap();
        assert_eq!(sign_operation(&device, &body), signed);
        assert_eq!(op_hash(OP3), HASH3);
        assert!(check_chain(HASH2, &body).is_ok());
        assert!(matches!(
            crate::ops::Operation::from_body(&body),
            Ok(crate::ops::Operation::NoticeReadV1(_))
        ));
    }

    #[test]
    fn the_verification_vector_chains_to_the_first_and_parses() {
        let doc = include_str!("../PROTOCOL.md");
        for needle in [OP2, SIG2, HASH2] {
            assert!(doc.contains(needle), "PROTOCOL.md lacks {needle}");
        }
        let device = SigningKey::from_bytes(&[1u8; 32]);
        let signed = SignedOperation {
            op: OP2.into(),
            sig: SIG2.into(),
        };
        let body = verify_operation(&device.verifying_key(), &signed).unwrap();
        assert_eq!(sign_operation(&device, &body), signed);
        assert_eq!(op_hash(OP2), HASH2);
        assert!(check_chain(HASH, &body).is_ok());
        assert!(crate::ops::Operation::from_body(&body).is_ok());
    }

    #[test]
    fn vectors_match_protocol_md() {
        let doc = include_str!("../PROTOCOL.md");
        for needle in [OP, SIG, HASH, RECEIPT_SIG] {
            assert!(doc.contains(needle), "PROTOCOL.md lacks {needle}");
        }
        let device = SigningKey::from_bytes(&[1u8; 32]);
        assert_eq!(
            encode_public_key(&device.verifying_key()),
            "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w="
        );
        let signed = SignedOperation {
            op: OP.into(),
            sig: SIG.into(),
        };
        let body = verify_operation(&device.verifying_key(), &signed).unwrap();
        assert_eq!(sign_operation(&device, &body), signed);
        assert_eq!(op_hash(OP), HASH);

        let server = SigningKey::from_bytes(&[2u8; 32]);
        assert_eq!(
            encode_public_key(&server.verifying_key()),
            "gTl3Dqh9F19Wo1Rmw0x+zMuNipG07jeiXfYPW4/Js5Q="
        );
        let receipt = Receipt::sign(
            &server,
            body.device_id,
            1,
            HASH,
            time::macros::datetime!(2025-03-01 09:30:12 UTC),
        );
        assert_eq!(receipt.key_id, "6a3803d5f059902a");
        assert_eq!(receipt.signature, RECEIPT_SIG);
    }
}
