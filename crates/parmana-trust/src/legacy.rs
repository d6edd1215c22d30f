//! Bundles of the original TypeScript tooling: `bundle.manifest.json` + `bundle.sig` over its legacy (non-RFC 8785) canonical form.
//!
//! The legacy canonical form is `JSON.stringify(sortKeysRecursively(value), null, 2)`: object
//! keys in JavaScript enumeration order after sorting (integer-like keys first, ascending
//! numerically, then the rest by UTF-16 code units), two-space indentation, `": "` after keys,
//! no trailing newline, UTF-8. Numbers and strings are written as JavaScript writes them, which
//! is what RFC 8785 specifies for scalars. Only the key order differs from RFC 8785 (which sorts
//! every key by UTF-16 code units, so `"10"` before `"9"`), and only for integer-like keys such as
//! the signal names schema 1.0.0 allows (`vectors/legacy-js/` holds bundles signed by
//! JavaScript itself with such names).
//!
//! `sortKeysRecursively` assigns each key to a fresh object, and assigning `__proto__` sets the
//! object's prototype instead of adding a member: the original's hashes and signature never
//! covered a `__proto__` member. A legacy document holding one is refused (`trust.malformed`)
//! rather than trusted for content nobody signed.

use std::cmp::Ordering;

use parmana_canon::{Digest, parse_strict, to_canonical_vec};
use serde_json::Value;

use crate::bundle::is_safe_relative_path;
use crate::keys::decode_base64;
use crate::{BundleFiles, PublicKey, TrustError};

/// The legacy manifest's file name.
pub(crate) const LEGACY_MANIFEST_FILE: &str = "bundle.manifest.json";

/// The legacy signature's file name.
pub(crate) const LEGACY_SIGNATURE_FILE: &str = "bundle.sig";

const DOCUMENT: &str = "legacy bundle";

/// A legacy bundle whose signature, bundle hash and artifact hashes all verified against the
/// given legacy key, with no file missing or extra. Only [`verify_legacy_bundle`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLegacyBundle {
    policy_id: String,
    policy_version: String,
    bundle_hash: String,
    files: BundleFiles,
}

impl VerifiedLegacyBundle {
    /// The manifest's `policy_id`.
    pub fn policy_id(&self) -> &str {
        &self.policy_id
    }

    /// The manifest's `policy_version` (for example `v1`).
    pub fn policy_version(&self) -> &str {
        &self.policy_version
    }

    /// The manifest's `bundle_hash` (hex SHA-256).
    pub fn bundle_hash(&self) -> &str {
        &self.bundle_hash
    }

    /// The verified artifacts (relative path → raw bytes), `policy.json` among them.
    pub fn files(&self) -> &BundleFiles {
        &self.files
    }
}

/// The key JavaScript cannot hold as an ordinary member of the sorted object.
const PROTO_KEY: &str = "__proto__";

/// The most bytes the legacy form of one document may take. It indents two spaces a level, so a
/// document nested deep grows by as much as 130 times (128 levels): a 60 MiB `policy.json` of
/// nested lists would take about 8 GB. The original tooling's documents take a few kilobytes.
pub const MAX_LEGACY_FORM_BYTES: usize = 64 * 1024 * 1024;

/// The legacy canonical form of a JSON value (see the module documentation); refused
/// (`trust.document_too_large`) as soon as it passes [`MAX_LEGACY_FORM_BYTES`].
pub(crate) fn legacy_canonical_json(value: &Value) -> Result<Vec<u8>, TrustError> {
    let mut out = Vec::new();
    write_legacy(value, 0, legacy_key_order, &mut out)?;
    // Checked before each value as it is written (so that memory stays within about twice the
    // bound), and once more whole: the last value may have passed it.
    check_legacy_size(&out)?;
    Ok(out)
}

fn check_legacy_size(out: &[u8]) -> Result<(), TrustError> {
    if out.len() > MAX_LEGACY_FORM_BYTES {
        return Err(TrustError::DocumentTooLarge {
            path: "the legacy canonical form".to_owned(),
            limit: MAX_LEGACY_FORM_BYTES,
        });
    }
    Ok(())
}

fn indent(out: &mut Vec<u8>, level: usize) {
    out.extend(std::iter::repeat_n(b' ', level * 2));
}

/// Writes `value` in the legacy form with object keys in `order` (always [`legacy_key_order`]
/// outside the tests, which compare it with RFC 8785's order).
fn write_legacy(
    value: &Value,
    level: usize,
    order: fn(&str, &str) -> Ordering,
    out: &mut Vec<u8>,
) -> Result<(), TrustError> {
    // Checked before each value is written: what one value adds before the next check is its
    // indentation (at most 258 bytes) and, for a scalar, its own canonical text.
    check_legacy_size(out)?;
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.extend_from_slice(b"[\n");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b",\n");
                }
                indent(out, level + 1);
                write_legacy(item, level + 1, order, out)?;
            }
            out.push(b'\n');
            indent(out, level);
            out.push(b']');
        }
        Value::Object(map) if !map.is_empty() => {
            if map.contains_key(PROTO_KEY) {
                return Err(TrustError::malformed(
                    DOCUMENT,
                    "a \"__proto__\" member: the original tooling's canonical form drops it, so no legacy hash or signature covers it",
                ));
            }
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| order(a, b));
            out.extend_from_slice(b"{\n");
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b",\n");
                }
                indent(out, level + 1);
                out.extend_from_slice(&to_canonical_vec(key.as_str())?);
                out.extend_from_slice(b": ");
                write_legacy(&map[key.as_str()], level + 1, order, out)?;
            }
            out.push(b'\n');
            indent(out, level);
            out.push(b'}');
        }
        Value::Array(_) => out.extend_from_slice(b"[]"),
        Value::Object(_) => out.extend_from_slice(b"{}"),
        scalar => out.extend_from_slice(&to_canonical_vec(scalar)?),
    }
    Ok(())
}

/// JavaScript array-index keys ("0", "1", … up to 2^32 − 2, no leading zeros).
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|n| *n != u32::MAX)
}

fn legacy_key_order(a: &str, b: &str) -> Ordering {
    match (array_index(a), array_index(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

fn sha256_hex_of_legacy(value: &Value) -> Result<String, TrustError> {
    Ok(Digest::of(&legacy_canonical_json(value)?).to_hex())
}

/// Names the file a malformed document came from.
fn in_file(path: &str, error: TrustError) -> TrustError {
    match error {
        TrustError::Malformed { document, message } => TrustError::Malformed {
            document,
            message: format!("{path}: {message}"),
        },
        TrustError::DocumentTooLarge { limit, .. } => TrustError::DocumentTooLarge {
            path: format!("{path} (its legacy canonical form)"),
            limit,
        },
        other => other,
    }
}

fn field<'a>(map: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, TrustError> {
    map.get(name).and_then(Value::as_str).ok_or_else(|| {
        TrustError::malformed(DOCUMENT, format!("manifest field {name} is not a string"))
    })
}

/// Verifies a legacy bundle held in memory against the legacy signing key.
///
/// Checks (all must pass): the manifest and the signature are there; the manifest parses
/// strictly, is an object with `manifest_version` `"1"` and no `__proto__` key anywhere
/// (`trust.malformed`: the legacy form drops it, so nothing signed it); `bundle.sig` is one
/// canonical base64 Ed25519 signature (optionally followed by CR/LF line ends) that verifies
/// (`verify_strict`) over the legacy canonical form of the whole manifest — checked before any
/// artifact is read, so that a directory nobody signed costs the manifest's legacy form alone;
/// `bundle_hash` is the hex SHA-256 of the legacy canonical form of the manifest with
/// `bundle_hash` set to `""`; every artifact exists, parses strictly, holds no `__proto__` key,
/// and its `hash` is the hex SHA-256 of its legacy canonical form; `policy.json` is among the
/// artifacts; no file is unlisted. A legacy form past [`MAX_LEGACY_FORM_BYTES`] is refused
/// (`trust.document_too_large`, naming its file).
pub fn verify_legacy_bundle(
    files: &BundleFiles,
    legacy_key: &PublicKey,
) -> Result<VerifiedLegacyBundle, TrustError> {
    let bad = |message: String| TrustError::malformed(DOCUMENT, message);
    let get = |name: &str| {
        files
            .get(name)
            .ok_or_else(|| TrustError::BundleFileMissing {
                path: name.to_owned(),
            })
    };
    let manifest_bytes = get(LEGACY_MANIFEST_FILE)?;
    let signature_bytes = get(LEGACY_SIGNATURE_FILE)?;
    // Bounded as a Parmana bundle's manifest is, before it is parsed.
    if manifest_bytes.len() > crate::MAX_BUNDLE_MANIFEST_BYTES {
        return Err(TrustError::DocumentTooLarge {
            path: LEGACY_MANIFEST_FILE.to_owned(),
            limit: crate::MAX_BUNDLE_MANIFEST_BYTES,
        });
    }
    let manifest = parse_strict(manifest_bytes).map_err(|e| bad(format!("manifest: {e}")))?;
    let Value::Object(map) = &manifest else {
        return Err(bad("manifest is not a JSON object".to_owned()));
    };
    if field(map, "manifest_version")? != "1" {
        return Err(bad("manifest_version is not \"1\"".to_owned()));
    }
    // The signature first: a directory nobody signed costs the manifest's legacy form only,
    // never its artifacts' (each read and hashed below).
    let mut end = signature_bytes.len();
    while end > 0 && matches!(signature_bytes[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    let signature = std::str::from_utf8(&signature_bytes[..end])
        .ok()
        .and_then(decode_base64)
        .filter(|s| s.len() == 64)
        .ok_or_else(|| bad("bundle.sig is not 64 bytes of canonical base64".to_owned()))?;
    let signed = legacy_canonical_json(&manifest).map_err(|e| in_file(LEGACY_MANIFEST_FILE, e))?;
    if !legacy_key.verify_signature(&signed, &signature) {
        return Err(TrustError::BadSignature {
            document: DOCUMENT.to_owned(),
            keyid: legacy_key.key_id().to_string(),
        });
    }
    let policy_id = field(map, "policy_id")?.to_owned();
    let policy_version = field(map, "policy_version")?.to_owned();
    let bundle_hash = field(map, "bundle_hash")?.to_owned();
    let mut unhashed = manifest.clone();
    if let Value::Object(m) = &mut unhashed {
        m.insert("bundle_hash".to_owned(), Value::String(String::new()));
    }
    let computed = sha256_hex_of_legacy(&unhashed).map_err(|e| in_file(LEGACY_MANIFEST_FILE, e))?;
    if computed != bundle_hash {
        return Err(TrustError::DigestMismatch {
            subject: "bundle_hash".to_owned(),
            expected: bundle_hash,
            found: computed,
        });
    }
    let Some(Value::Array(artifacts)) = map.get("artifacts") else {
        return Err(bad("artifacts is not a list".to_owned()));
    };
    let mut verified = BundleFiles::new();
    for artifact in artifacts {
        let Value::Object(entry) = artifact else {
            return Err(bad("an artifact is not an object".to_owned()));
        };
        let path = field(entry, "path")?;
        let hash = field(entry, "hash")?;
        if !is_safe_relative_path(path)
            || path == LEGACY_MANIFEST_FILE
            || path == LEGACY_SIGNATURE_FILE
        {
            return Err(TrustError::UnsafePath {
                path: path.to_owned(),
                message: "not a safe artifact path".to_owned(),
            });
        }
        let bytes = get(path)?;
        let parsed = parse_strict(bytes).map_err(|e| bad(format!("{path}: {e}")))?;
        let found = sha256_hex_of_legacy(&parsed).map_err(|e| in_file(path, e))?;
        if found != hash {
            return Err(TrustError::DigestMismatch {
                subject: path.to_owned(),
                expected: hash.to_owned(),
                found,
            });
        }
        if verified.insert(path.to_owned(), bytes.clone()).is_some() {
            return Err(bad(format!("artifact {path} listed twice")));
        }
    }
    if !verified.contains_key(crate::POLICY_FILE) {
        return Err(bad("policy.json is not among the artifacts".to_owned()));
    }
    if let Some(extra) = files.keys().find(|p| {
        p.as_str() != LEGACY_MANIFEST_FILE
            && p.as_str() != LEGACY_SIGNATURE_FILE
            && !verified.contains_key(p.as_str())
    }) {
        return Err(TrustError::BundleFileUnexpected {
            path: extra.clone(),
            hint: crate::durable::interrupted_write_hint(extra),
        });
    }
    Ok(VerifiedLegacyBundle {
        policy_id,
        policy_version,
        bundle_hash,
        files: verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_canonical_form_sorts_like_javascript() {
        let value = parmana_canon::parse_strict(
            br#"{"b":1,"a":{"10":true,"2":null,"x":[],"y":{},"\u00e9":"\u2028","\ud83d\ude00":1.5e3,"Z":-0.0}}"#,
        )
        .unwrap();
        let text = String::from_utf8(legacy_canonical_json(&value).unwrap()).unwrap();
        let expected = "{\n  \"a\": {\n    \"2\": null,\n    \"10\": true,\n    \"Z\": 0,\n    \"x\": [],\n    \"y\": {},\n    \"\u{e9}\": \"\u{2028}\",\n    \"\u{1f600}\": 1500\n  },\n  \"b\": 1\n}";
        assert_eq!(text, expected);
    }

    /// Keys in the order Node.js 20 printed `JSON.stringify(sortKeysRecursively(o), null, 2)`
    /// for an object with these keys: array indexes (up to 2^32 − 2) in numeric order, then the
    /// rest by UTF-16 code units (`"𝄞"`, a surrogate pair, before `"ｆ"`, U+FF46).
    const JAVASCRIPT_ORDER: &[&str] = &[
        "0",
        "9",
        "10",
        "4294967294",
        "",
        "\u{0}",
        "-1",
        "01",
        "1.5",
        "4294967295",
        "A",
        "a.b",
        "constructor",
        "\u{e9}",
        "\u{1d11e}",
        "\u{ff46}",
    ];

    #[test]
    fn key_order_matches_javascript() {
        let mut keys = JAVASCRIPT_ORDER.to_vec();
        keys.reverse();
        keys.sort_by(|a, b| legacy_key_order(a, b));
        assert_eq!(keys, JAVASCRIPT_ORDER);
        // RFC 8785 orders the same keys otherwise: "10" before "9", "" first.
        keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        assert_eq!(&keys[..5], ["", "\u{0}", "-1", "0", "01"]);
        assert!(keys.iter().position(|k| *k == "10") < keys.iter().position(|k| *k == "9"));
    }

    fn js_vector(path: &str) -> Value {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/legacy-js");
        parse_strict(&std::fs::read(root.join(path)).unwrap()).unwrap()
    }

    /// The artifact hash JavaScript wrote for a policy whose signal names are integer-like is
    /// the hash of the JavaScript key order; the same text in RFC 8785's key order hashes
    /// differently, so verification depends on getting the order right.
    #[test]
    fn javascript_key_order_is_what_the_original_hashed() {
        let policy = js_vector("legacy-names/v1/policy.json");
        let manifest = js_vector("legacy-names/v1/bundle.manifest.json");
        let signed = manifest["artifacts"][0]["hash"].as_str().unwrap();
        assert_eq!(sha256_hex_of_legacy(&policy).unwrap(), signed);
        let mut rfc_order = Vec::new();
        write_legacy(
            &policy,
            0,
            |a, b| a.encode_utf16().cmp(b.encode_utf16()),
            &mut rfc_order,
        )
        .unwrap();
        assert_ne!(Digest::of(&rfc_order).to_hex(), signed);
        let text = String::from_utf8(legacy_canonical_json(&policy).unwrap()).unwrap();
        let nine = text.find("\"9\": {").unwrap();
        assert!(nine < text.find("\"10\": {").unwrap());
        assert!(text.find("\"4294967294\": {").unwrap() < text.find("\"\": {").unwrap());
    }

    #[test]
    fn a_proto_member_is_refused_at_any_depth() {
        for text in [
            r#"{"__proto__": {"type": "number"}}"#,
            r#"{"signals": {"ok": {}, "__proto__": 1}}"#,
            r#"[{"a": [{"__proto__": null}]}]"#,
        ] {
            let value = parse_strict(text.as_bytes()).unwrap();
            let err = legacy_canonical_json(&value).unwrap_err();
            assert_eq!(err.code(), "trust.malformed", "{text}");
        }
        // As a value, or inside a longer key, it is ordinary text.
        let value = parse_strict(br#"{"signal": "__proto__", "__proto__x": 1}"#).unwrap();
        assert!(legacy_canonical_json(&value).is_ok());
    }
}
