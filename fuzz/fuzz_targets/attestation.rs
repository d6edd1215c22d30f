//! Fuzz target: attestation envelope verification against the fixture trust root never panics, and never accepts anything the TEST-ONLY attestation key did not sign.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use parmana_canon::Timestamp;
use parmana_trust::{PublicKey, VerifiedTrustRoot, verify_trust_chain};

static TRUST_ROOT: LazyLock<VerifiedTrustRoot> = LazyLock::new(|| {
    let pinned = PublicKey::from_pem(include_str!("../../trust/root.pub")).expect("pinned key");
    let chain = vec![
        include_bytes!("../../trust/trust-root.d/1.json").to_vec(),
        include_bytes!("../../trust/trust-root.json").to_vec(),
    ];
    let now = Timestamp::parse("2026-11-28T22:00:00Z").expect("timestamp");
    verify_trust_chain(&pinned, &chain, now, None).expect("fixture trust chain")
});

fuzz_target!(|data: &[u8]| {
    let report = parmana_trust::verify_attestation(data, &TRUST_ROOT, None, None);
    if report.is_valid() {
        // Only a genuine signature can pass: the payload must then parse as a predicate.
        assert!(report.predicate().is_some());
    }
});
