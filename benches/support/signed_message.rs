//! The bytes an attestation's signature covers — DSSE's PAE of its payload — rebuilt from the specification for the Ed25519 floor rows (shared by the runtime bench and the instruction-count driver).

use parmana_runtime::canon::parse_strict;
use parmana_runtime::trust::PublicKey;

/// DSSE's PAE of `envelope`'s payload (docs/trust-model.md §6), built here from the specification,
/// after checking that the envelope's own signature by `signer` verifies over it — so these are
/// exactly the bytes an attestation signs.
pub(crate) fn signed_message(envelope: &[u8], signer: &PublicKey) -> Vec<u8> {
    let parsed = parse_strict(envelope).unwrap();
    let decode = |text: &serde_json::Value| {
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            text.as_str().unwrap(),
        )
        .unwrap()
    };
    let payload = decode(&parsed["payload"]);
    let mut message =
        format!("DSSEv1 28 application/vnd.in-toto+json {} ", payload.len()).into_bytes();
    message.extend_from_slice(&payload);
    let own_signature = decode(&parsed["signatures"][0]["sig"]);
    assert!(signer.verify_signature(&message, &own_signature));
    message
}
