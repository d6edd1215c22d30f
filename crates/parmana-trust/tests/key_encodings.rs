//! Ed25519 public-key encodings: one table of canonical, non-canonical, off-curve and small-order encodings, each applied to key files, in-document keys and trust roots.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{key, now, pinned, spec};
use parmana_canon::{Digest, parse_strict};
use parmana_trust::*;
use serde_json::{Value, json};

/// What reading an encoding must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Accepted: a valid, canonical, not small-order key.
    Key,
    /// Refused with this code.
    Code(&'static str),
}

const NON_CANONICAL: Expect = Expect::Code("trust.non_canonical_public_key");
const WEAK: Expect = Expect::Code("trust.weak_public_key");
const INVALID: Expect = Expect::Code("trust.invalid_key");

/// The encodings: 32 bytes, little-endian `y` with the sign of `x` in the top bit (RFC 8032
/// §5.1.2). p = 2^255 − 19. `a` and `b` are the `y` of the points of order 8.
const ENCODINGS: &[(&str, &str, Expect)] = &[
    // The base point and its negation (x odd): points of the prime-order subgroup, the
    // canonical encodings of two keys.
    (
        "the base point",
        "5866666666666666666666666666666666666666666666666666666666666666",
        Expect::Key,
    ),
    (
        "the base point, x odd",
        "58666666666666666666666666666666666666666666666666666666666666e6",
        Expect::Key,
    ),
    // Points of large order with a small-order component (not in the prime-order subgroup no
    // key made from a secret leaves): refused, as a signature by one checked alone and in a
    // batch could disagree.
    (
        "y = 3",
        "0300000000000000000000000000000000000000000000000000000000000000",
        WEAK,
    ),
    (
        "y = 3, x odd",
        "0300000000000000000000000000000000000000000000000000000000000080",
        WEAK,
    ),
    (
        "the base point plus a point of order 8",
        "98519eadf35b995233b51b5cd23e9cc5a28b639b5a4af0ec903cb960d81b7819",
        WEAK,
    ),
    // The same two points with y + p: the same keys under other bytes, hence other ids.
    (
        "y = 3 + p",
        "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        NON_CANONICAL,
    ),
    (
        "y = 3 + p, x odd",
        "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        NON_CANONICAL,
    ),
    (
        "y = 18 + p = 2^255 − 1",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        NON_CANONICAL,
    ),
    (
        "y = 18 + p, x odd",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        NON_CANONICAL,
    ),
    // Not on the curve.
    (
        "y = 2",
        "0200000000000000000000000000000000000000000000000000000000000000",
        INVALID,
    ),
    (
        "y = 2 + p",
        "efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        INVALID,
    ),
    // The eight small-order points, canonically encoded.
    (
        "identity: y = 1 (order 1)",
        "0100000000000000000000000000000000000000000000000000000000000000",
        WEAK,
    ),
    (
        "y = p − 1 (order 2)",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        WEAK,
    ),
    (
        "y = 0 (order 4)",
        "0000000000000000000000000000000000000000000000000000000000000000",
        WEAK,
    ),
    (
        "y = 0, x odd (order 4)",
        "0000000000000000000000000000000000000000000000000000000000000080",
        WEAK,
    ),
    (
        "y = a (order 8)",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        WEAK,
    ),
    (
        "y = a, x odd (order 8)",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        WEAK,
    ),
    (
        "y = b (order 8)",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        WEAK,
    ),
    (
        "y = b, x odd (order 8)",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        WEAK,
    ),
    // Small-order points under non-canonical bytes: the encoding is refused first.
    (
        "identity, sign bit set on x = 0",
        "0100000000000000000000000000000000000000000000000000000000000080",
        NON_CANONICAL,
    ),
    (
        "y = p − 1, sign bit set on x = 0",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        NON_CANONICAL,
    ),
    (
        "y = p (≡ 0)",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        NON_CANONICAL,
    ),
    (
        "y = p (≡ 0), x odd",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        NON_CANONICAL,
    ),
    (
        "identity as y = p + 1",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        NON_CANONICAL,
    ),
    (
        "identity as y = p + 1, sign bit set",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        NON_CANONICAL,
    ),
];

fn bytes_of(hex: &str) -> [u8; 32] {
    assert_eq!(hex.len(), 64, "{hex}");
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// SPKI PEM of raw Ed25519 key bytes: the fixed DER prefix of RFC 8410, then the 32 bytes.
fn spki_pem(raw: &[u8; 32]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(raw);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        BASE64.encode(der)
    )
}

/// Version 1 of a trust root that lists `raw` under the digest of its bytes, in the
/// attestation role beside the fixture attestation key, signed by the pinned root key.
fn trust_root_listing(raw: &[u8; 32]) -> Vec<u8> {
    let root1 = key("root-1");
    let document = create_trust_root(&spec(&root1, "2036-01-01T00:00:00Z"), &[&root1]).unwrap();
    let mut body = parse_strict(&document).unwrap()["signed"].clone();
    let id = Digest::of(raw).to_string();
    body["keys"][id.as_str()] = json!({"keytype": "ed25519", "public": BASE64.encode(raw)});
    let attestation = key("attestation").key_id().to_string();
    let keyids: std::collections::BTreeSet<String> = [attestation, id].into();
    body["roles"]["attestation"]["keyids"] = json!(keyids);
    let message = parmana_canon::canonicalize_value(&body).unwrap();
    let sig = BASE64.encode(root1.sign(&message).unwrap());
    serde_json::to_vec(&json!({
        "signed": body,
        "signatures": [{"keyid": root1.key_id().to_string(), "sig": sig}],
    }))
    .unwrap()
}

/// Applies one encoding to every place a public key is read and checks each gives `expect`.
fn check(name: &str, raw: &[u8; 32], expect: Expect) {
    let outcome = |result: Result<PublicKey, TrustError>| match result {
        Ok(key) => {
            assert_eq!(key.to_bytes(), *raw, "{name}: the key keeps its bytes");
            Expect::Key
        }
        Err(e) => Expect::Code(e.code()),
    };
    assert_eq!(
        outcome(PublicKey::from_bytes(raw)),
        expect,
        "{name}: raw bytes"
    );
    let document = PublicKeyDocument {
        keytype: "ed25519".to_owned(),
        public: BASE64.encode(raw),
    };
    assert_eq!(
        outcome(PublicKey::from_document(&document)),
        expect,
        "{name}: in a document"
    );
    let pem = spki_pem(raw);
    assert_eq!(outcome(PublicKey::from_pem(&pem)), expect, "{name}: PEM");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pub");
    std::fs::write(&path, &pem).unwrap();
    assert_eq!(
        outcome(read_public_key_file(&path)),
        expect,
        "{name}: public key file"
    );
    assert_eq!(
        outcome(read_key_file(&path).map(|f| f.public_key())),
        expect,
        "{name}: key file of either kind"
    );
    let chain = [trust_root_listing(raw)];
    let verified = verify_trust_chain(&pinned(), &chain, now(), None);
    match (verified, expect) {
        (Ok(root), Expect::Key) => {
            let id: KeyId = Digest::of(raw).to_string().parse().unwrap();
            assert!(root.has_role(&id, Role::Attestation), "{name}");
        }
        (Err(e), Expect::Code(code)) => assert_eq!(e.code(), code, "{name}: trust root"),
        (other, _) => panic!("{name}: trust root gave {other:?}, expected {expect:?}"),
    }
}

#[test]
fn every_encoding_is_read_the_same_way_everywhere() {
    for (name, hex, expect) in ENCODINGS {
        check(name, &bytes_of(hex), *expect);
    }
    for name in ["root-1", "root-2", "policy", "release", "attestation"] {
        check(name, &key(name).public_key().to_bytes(), Expect::Key);
    }
}

/// The table holds all eight small-order points, each once.
#[test]
fn the_table_covers_the_eight_small_order_points() {
    let weak: std::collections::BTreeSet<&str> = ENCODINGS
        .iter()
        .filter(|(name, _, expect)| *expect == WEAK && name.contains("(order"))
        .map(|(_, hex, _)| *hex)
        .collect();
    assert_eq!(weak.len(), 8);
}

/// A non-canonical encoding of a point is refused, naming the point's canonical key id, before
/// anything else is judged of it: the point would otherwise have two ids, and a holder of its
/// private key two votes. (Every point with a non-canonical encoding but the identity has a
/// small-order component, refused too once canonically encoded.)
#[test]
fn one_point_under_its_two_encodings_is_refused_in_a_trust_root() {
    let row = |name: &str| bytes_of(ENCODINGS.iter().find(|(n, _, _)| *n == name).unwrap().1);
    let listed = row("the base point");
    let (canonical, alias) = (row("y = 3"), row("y = 3 + p"));
    let mut document: Value = parse_strict(&trust_root_listing(&listed)).unwrap();
    let body = &mut document["signed"];
    let alias_id = Digest::of(&alias).to_string();
    body["keys"][alias_id.as_str()] = json!({"keytype": "ed25519", "public": BASE64.encode(alias)});
    let root1 = key("root-1");
    let message = parmana_canon::canonicalize_value(body).unwrap();
    document["signatures"][0]["sig"] = json!(BASE64.encode(root1.sign(&message).unwrap()));
    let err = verify_trust_chain(
        &pinned(),
        &[serde_json::to_vec(&document).unwrap()],
        now(),
        None,
    )
    .unwrap_err();
    assert_eq!(err.code(), "trust.non_canonical_public_key");
    assert_eq!(
        err,
        TrustError::NonCanonicalPublicKey {
            key_id: alias_id,
            canonical_key_id: Digest::of(&canonical).to_string(),
        }
    );
}
