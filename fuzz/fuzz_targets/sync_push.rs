//! Sync request decoding, as the server does it: the push body (`PushRequest` through the
//! server's JSON extractor), each operation's signature check, and the signed text's decoding
//! into a typed, validated operation. Nothing may panic; an operation that decodes must
//! re-encode into one that decodes again.

#![no_main]

use gridline_sync::signing::verify_operation;
use gridline_sync::{Operation, OperationBody, PushRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    if let Ok(req) = gridline_server::routes::extract::parse_json::<PushRequest>(data) {
        for signed in &req.operations {
            let _ = verify_operation(&key, signed);
            decode_operation(&signed.op);
        }
    }
    // The signed text on its own: a random signature never verifies, so feed the decoding
    // that follows a valid one directly.
    if let Ok(text) = std::str::from_utf8(data) {
        decode_operation(text);
    }
});

fn decode_operation(text: &str) {
    let Ok(body) = serde_json::from_str::<OperationBody>(text) else {
        return;
    };
    let Ok(op) = Operation::from_body(&body) else {
        return;
    };
    let again = OperationBody {
        op_type: op.op_type().to_owned(),
        payload: op.payload(),
        ..body
    };
    if let Err(e) = Operation::from_body(&again) {
        panic!("{op:?} re-encoded does not decode: {e}");
    }
}
