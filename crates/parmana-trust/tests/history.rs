//! The verified trust-root history: attestations judged against the version they were made under (after rotations, after expiry, with that version's threshold), chains read from every layout, and the bounds on chains and signature lists.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{key, pinned};
use parmana_canon::{Digest, Timestamp, canonicalize_value, parse_strict, to_canonical_vec};
use parmana_trust::*;
use serde_json::{Value, json};

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// A TEST-ONLY key from a one-byte seed.
fn seeded(seed: u8) -> LocalSigningKey {
    LocalSigningKey::from_seed(&[seed; 32])
}

/// Seeds of the attestation keys the cases use.
const A: u8 = 11;
const B: u8 = 12;

/// One version of a throwaway chain: the seeds of its attestation keys, their threshold, and
/// its expiry. Every version's root role is the fixture key `root-1` (the pinned key).
struct Version {
    attestation: &'static [u8],
    threshold: u64,
    expires: &'static str,
}

const fn version(attestation: &'static [u8], threshold: u64) -> Version {
    Version {
        attestation,
        threshold,
        expires: "2036-01-01T00:00:00Z",
    }
}

fn spec_of(v: &Version) -> TrustRootSpec {
    TrustRootSpec {
        expires: ts(v.expires),
        root: common::role(&key("root-1")),
        policy: common::role(&key("policy")),
        release: common::role(&key("release")),
        attestation: RoleSpec {
            keys: v
                .attestation
                .iter()
                .map(|&s| seeded(s).public_key())
                .collect(),
            threshold: v.threshold,
        },
        log: None,
    }
}

/// The bytes of every version of a chain, version 1 first.
fn chain(versions: &[Version]) -> Vec<Vec<u8>> {
    let root1 = key("root-1");
    let mut bytes = vec![create_trust_root(&spec_of(&versions[0]), &[&root1]).unwrap()];
    for v in &versions[1..] {
        let history = verify_trust_history(&pinned(), &bytes).unwrap();
        bytes.push(rotate_trust_root(history.newest(), &spec_of(v), &[&root1]).unwrap());
    }
    bytes
}

fn history(versions: &[Version]) -> VerifiedTrustHistory {
    verify_trust_history(&pinned(), &chain(versions)).unwrap()
}

fn predicate(root: &VerifiedTrustRoot, executed_at: &str) -> ExecutionPredicate {
    common::small_claim_predicate(root, "exec-history", ts(executed_at))
}

/// An attestation made under `root` at `executed_at`, signed by the keys with these seeds.
fn attestation(root: &VerifiedTrustRoot, signers: &[u8], executed_at: &str) -> Vec<u8> {
    let keys: Vec<LocalSigningKey> = signers.iter().map(|&s| seeded(s)).collect();
    let refs: Vec<&dyn Signer> = keys.iter().map(|k| k as &dyn Signer).collect();
    let predicate = predicate(root, executed_at);
    prepare_attestation(&predicate, root)
        .unwrap()
        .sign_all(&refs, root)
        .unwrap()
}

fn pae(payload: &[u8]) -> Vec<u8> {
    let mut pae = format!("DSSEv1 28 application/vnd.in-toto+json {} ", payload.len()).into_bytes();
    pae.extend_from_slice(payload);
    pae
}

/// The envelope with its statement changed by `mutate` (the fingerprint recomputed), signed
/// again by `signer`: what only the holder of an attestation key can make.
fn re_signed(envelope: &[u8], signer: &LocalSigningKey, mutate: impl Fn(&mut Value)) -> Vec<u8> {
    let outer = parse_strict(envelope).unwrap();
    let payload = B64.decode(outer["payload"].as_str().unwrap()).unwrap();
    let mut statement = parse_strict(&payload).unwrap();
    mutate(&mut statement);
    let mut without_time = statement["predicate"].clone();
    without_time.as_object_mut().unwrap().remove("executed_at");
    statement["subject"][0]["digest"]["sha256"] =
        json!(Digest::of(&canonicalize_value(&without_time).unwrap()).to_hex());
    let payload = to_canonical_vec(&statement).unwrap();
    let sig = signer.sign(&pae(&payload)).unwrap();
    to_canonical_vec(&json!({
        "payload": B64.encode(&payload),
        "payloadType": "application/vnd.in-toto+json",
        "signatures": [{"keyid": signer.key_id().to_string(), "sig": B64.encode(sig)}],
    }))
    .unwrap()
}

/// The envelope with its signature list replaced.
fn with_signatures(envelope: &[u8], signatures: Value) -> Vec<u8> {
    let mut outer = parse_strict(envelope).unwrap();
    outer["signatures"] = signatures;
    to_canonical_vec(&outer).unwrap()
}

fn options(now: &str, require_current_trust: bool) -> VerifyOptions {
    VerifyOptions {
        now: ts(now),
        require_current_trust,
    }
}

fn failed(report: &AttestationReport) -> Vec<&'static str> {
    report.failures().map(|c| c.check.as_str()).collect()
}

fn first_code(report: &AttestationReport) -> Option<&'static str> {
    report.failures().next().and_then(|c| c.code)
}

/// One attestation verified against a history: what fails, with which code, and where it
/// stands.
struct Case {
    name: &'static str,
    versions: Vec<Version>,
    made_under: u64,
    signers: &'static [u8],
    require_current_trust: bool,
    failed: &'static [&'static str],
    code: Option<&'static str>,
    superseded: bool,
    trusted: &'static [bool],
}

fn check(case: &Case) {
    let history = history(&case.versions);
    let root = history.version(case.made_under).unwrap();
    let envelope = attestation(root, case.signers, parmana_testkit::NOW);
    let report = verify_attestation_in_history(
        &envelope,
        &history,
        options(parmana_testkit::NOW, case.require_current_trust),
        None,
        None,
    );
    assert_eq!(failed(&report), case.failed, "{}: {report:#?}", case.name);
    assert_eq!(first_code(&report), case.code, "{}", case.name);
    let standing = report.trust_standing().unwrap();
    assert_eq!(standing.version, case.made_under, "{}", case.name);
    assert_eq!(
        standing.newest_version,
        history.newest().version(),
        "{}",
        case.name
    );
    assert_eq!(standing.superseded, case.superseded, "{}", case.name);
    let trusted: Vec<bool> = standing
        .signing_keys
        .iter()
        .map(|k| k.trusted_by_newest)
        .collect();
    assert_eq!(trusted, case.trusted, "{}", case.name);
    // The attestation's own version is the one its bundle is verified under.
    assert_eq!(
        history.attestation_trust_root(&envelope).version(),
        case.made_under,
        "{}",
        case.name
    );
}

#[test]
fn attestations_verify_under_the_version_they_were_made_under() {
    let cases = [
        Case {
            name: "rotated, attestation key unchanged",
            versions: vec![version(&[A], 1), version(&[A], 1)],
            made_under: 1,
            signers: &[A],
            require_current_trust: false,
            failed: &[],
            code: None,
            superseded: true,
            trusted: &[true],
        },
        Case {
            name: "rotated, attestation key unchanged, current trust required",
            versions: vec![version(&[A], 1), version(&[A], 1)],
            made_under: 1,
            signers: &[A],
            require_current_trust: true,
            failed: &["current_trust"],
            code: Some("trust.superseded"),
            superseded: true,
            trusted: &[true],
        },
        Case {
            name: "rotated, attestation key rotated out",
            versions: vec![version(&[A], 1), version(&[B], 1)],
            made_under: 1,
            signers: &[A],
            require_current_trust: false,
            failed: &[],
            code: None,
            superseded: true,
            trusted: &[false],
        },
        Case {
            name: "rotated, attestation key rotated out, current trust required",
            versions: vec![version(&[A], 1), version(&[B], 1)],
            made_under: 1,
            signers: &[A],
            require_current_trust: true,
            failed: &["current_trust"],
            code: Some("trust.key_no_longer_trusted"),
            superseded: true,
            trusted: &[false],
        },
        Case {
            name: "made under the newest version, current trust required",
            versions: vec![version(&[A], 1), version(&[B], 1)],
            made_under: 2,
            signers: &[B],
            require_current_trust: true,
            failed: &[],
            code: None,
            superseded: false,
            trusted: &[true],
        },
        Case {
            name: "threshold 1 then 2: one signature under version 1",
            versions: vec![version(&[A, B], 1), version(&[A, B], 2)],
            made_under: 1,
            signers: &[A],
            require_current_trust: false,
            failed: &[],
            code: None,
            superseded: true,
            trusted: &[true],
        },
        Case {
            name: "threshold 1 then 2: one signature under version 2",
            versions: vec![version(&[A, B], 1), version(&[A, B], 2)],
            made_under: 2,
            signers: &[A],
            require_current_trust: false,
            failed: &["key_role"],
            code: Some("trust.threshold_not_met"),
            superseded: false,
            trusted: &[true],
        },
        Case {
            name: "threshold 2 then 1: one signature under version 1",
            versions: vec![version(&[A, B], 2), version(&[A, B], 1)],
            made_under: 1,
            signers: &[A],
            require_current_trust: false,
            failed: &["key_role"],
            code: Some("trust.threshold_not_met"),
            superseded: true,
            trusted: &[true],
        },
        Case {
            name: "threshold 2 then 1: two signatures under version 1",
            versions: vec![version(&[A, B], 2), version(&[A, B], 1)],
            made_under: 1,
            signers: &[A, B],
            require_current_trust: false,
            failed: &[],
            code: None,
            superseded: true,
            trusted: &[true, true],
        },
        Case {
            name: "threshold 2 then 1: one signature under version 2",
            versions: vec![version(&[A, B], 2), version(&[A, B], 1)],
            made_under: 2,
            signers: &[A],
            require_current_trust: false,
            failed: &[],
            code: None,
            superseded: false,
            trusted: &[true],
        },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn expiry_is_judged_at_executed_at_and_the_clock_only_bounds_the_future() {
    let short = |attestation: &'static [u8], expires: &'static str| Version {
        attestation,
        threshold: 1,
        expires,
    };
    let versions = [
        short(&[A], "2027-01-01T00:00:00Z"),
        short(&[A], "2028-01-01T00:00:00Z"),
    ];
    let bytes = chain(&versions);
    let history = verify_trust_history(&pinned(), &bytes).unwrap();
    // Every version has expired in 2030: the chain is still verifiable, but not in force.
    let later = "2030-01-01T00:00:00Z";
    assert_eq!(
        verify_trust_chain(&pinned(), &bytes, ts(later), None)
            .unwrap_err()
            .code(),
        "trust.expired"
    );
    let (v1, v2) = (history.version(1).unwrap(), history.version(2).unwrap());
    let made_under_1 = attestation(v1, &[A], parmana_testkit::NOW);
    let made_under_2 = attestation(v2, &[A], parmana_testkit::NOW);
    // Executed at NOW, when version 1 was valid: valid in 2030 without backdating the clock.
    let verify = |envelope: &[u8], now: &str, strict: bool| {
        verify_attestation_in_history(envelope, &history, options(now, strict), None, None)
    };
    assert!(verify(&made_under_1, later, false).is_valid());
    let lenient = verify(&made_under_2, later, false);
    assert!(lenient.is_valid(), "{lenient:#?}");
    assert!(lenient.trust_standing().unwrap().newest_expired);
    // Current trust required: version 1 is superseded, version 2 has expired at the clock.
    assert_eq!(
        first_code(&verify(&made_under_1, later, true)),
        Some("trust.superseded")
    );
    let strict = verify(&made_under_2, later, true);
    assert_eq!(failed(&strict), ["current_trust"]);
    assert_eq!(first_code(&strict), Some("trust.expired"));
    assert!(verify(&made_under_2, parmana_testkit::NOW, true).is_valid());
    // Building refuses an attestation its trust root could never verify.
    assert_eq!(
        prepare_attestation(&predicate(v1, "2027-01-01T00:00:00Z"), v1)
            .unwrap_err()
            .code(),
        "trust.executed_after_expiry"
    );
    // Executed at or after its own version's expiry (a later version was still valid then):
    // refused, against the history and against that version alone.
    for executed_at in ["2027-01-01T00:00:00Z", "2027-06-01T00:00:00Z"] {
        let late = re_signed(&made_under_1, &seeded(A), |s| {
            s["predicate"]["executed_at"] = json!(executed_at);
        });
        let report = verify(&late, later, false);
        assert_eq!(failed(&report), ["executed_at"], "{executed_at}");
        assert_eq!(first_code(&report), Some("trust.executed_after_expiry"));
        let alone = verify_attestation(&late, v1, None, None);
        assert_eq!(first_code(&alone), Some("trust.executed_after_expiry"));
    }
    // The clock bounds executed_at from above, with a tolerance of 5 minutes.
    let at = ts(parmana_testkit::NOW).unix_seconds();
    let clock = |offset: i64| {
        Timestamp::from_unix_seconds(at + offset)
            .unwrap()
            .to_string()
    };
    let tolerance = EXECUTED_AT_TOLERANCE_SECONDS;
    for (now, expected) in [
        (clock(0), None),
        (clock(-tolerance), None),
        (clock(-tolerance - 1), Some("trust.executed_in_future")),
        (clock(-3_600), Some("trust.executed_in_future")),
    ] {
        let report = verify(&made_under_2, &now, false);
        assert_eq!(first_code(&report), expected, "now {now}");
        if expected.is_some() {
            assert_eq!(failed(&report), ["executed_at"], "now {now}");
        }
    }
}

#[test]
fn an_attestation_naming_no_version_of_the_chain_fails() {
    let history = history(&[version(&[A], 1), version(&[A], 1)]);
    let good = attestation(history.newest(), &[A], parmana_testkit::NOW);
    let other_digest = Digest::of(b"another trust root").to_string();
    for (name, version, digest) in [
        ("a version the chain does not hold", json!(3), None),
        (
            "version 1 with another digest",
            json!(1),
            Some(other_digest.clone()),
        ),
        (
            "version 2 with another digest",
            json!(2),
            Some(other_digest),
        ),
    ] {
        let forged = re_signed(&good, &seeded(A), |s| {
            s["predicate"]["trust_root"]["version"] = version.clone();
            if let Some(digest) = &digest {
                s["predicate"]["trust_root"]["digest"] = json!(digest);
            }
        });
        let report = verify_attestation_in_history(
            &forged,
            &history,
            options(parmana_testkit::NOW, false),
            None,
            None,
        );
        assert_eq!(failed(&report), ["trust_root", "current_trust"], "{name}");
        assert_eq!(first_code(&report), Some("trust.digest_mismatch"), "{name}");
        assert!(report.trust_standing().is_none(), "{name}");
        assert_eq!(
            history.attestation_trust_root(&forged).version(),
            2,
            "{name}: the newest"
        );
    }
}

#[test]
fn batch_verification_in_a_history_equals_single_verification() {
    let history = history(&[version(&[A], 1), version(&[A, B], 2)]);
    let (v1, v2) = (history.version(1).unwrap(), history.version(2).unwrap());
    let under_1 = attestation(v1, &[A], parmana_testkit::NOW);
    let under_2 = attestation(v2, &[A, B], parmana_testkit::NOW);
    let one_of_two = attestation(v2, &[B], parmana_testkit::NOW);
    let sig = parse_strict(&under_1).unwrap()["signatures"][0].clone();
    let twice = with_signatures(&under_1, json!([sig.clone(), sig]));
    let mut flipped = parse_strict(&under_2).unwrap();
    flipped["signatures"][1]["sig"] = json!(B64.encode([7u8; 64]));
    let flipped = to_canonical_vec(&flipped).unwrap();
    let envelopes: Vec<Vec<u8>> = vec![
        under_1.clone(),
        under_2,
        one_of_two,
        twice,
        flipped,
        b"not json".to_vec(),
        under_1,
    ];
    let slices: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
    for strict in [false, true] {
        let options = options(parmana_testkit::NOW, strict);
        let single: Vec<AttestationReport> = slices
            .iter()
            .map(|e| verify_attestation_in_history(e, &history, options, None, None))
            .collect();
        assert_eq!(
            verify_attestations_in_history(&slices, &history, options),
            single
        );
        let valid: Vec<bool> = single.iter().map(AttestationReport::is_valid).collect();
        assert_eq!(
            valid,
            [!strict, true, false, false, false, false, !strict],
            "strict {strict}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a chain from disk

/// What a file of a layout holds.
#[derive(Clone, Copy)]
enum Content {
    /// Version N of the three-version chain.
    V(usize),
    /// Another document of version 3 (another expiry).
    Other3,
    /// Not a trust root at all.
    Text(&'static str),
    /// One byte more than a trust-root file may hold.
    Oversized,
}

struct Layout {
    name: &'static str,
    files: &'static [(&'static str, Content)],
    path: &'static str,
    expected: Result<u64, &'static str>,
}

/// The usual layout of a trust directory holding three versions.
const TRUST_DIR: &[(&str, Content)] = &[
    ("trust/trust-root.json", Content::V(3)),
    ("trust/trust-root.d/1.json", Content::V(1)),
    ("trust/trust-root.d/2.json", Content::V(2)),
];

#[test]
fn a_chain_is_read_from_a_current_file_a_directory_or_any_version() {
    use Content::{Other3, Oversized, Text, V};
    let three = [version(&[A], 1), version(&[A], 1), version(&[A], 1)];
    let bytes = chain(&three);
    let mut other3 = spec_of(&three[2]);
    other3.expires = ts("2035-01-01T00:00:00Z");
    let two = verify_trust_history(&pinned(), &bytes[..2]).unwrap();
    let other3 = rotate_trust_root(two.newest(), &other3, &[&key("root-1")]).unwrap();
    let layouts = [
        Layout {
            name: "the current file, its history beside it",
            files: TRUST_DIR,
            path: "trust/trust-root.json",
            expected: Ok(3),
        },
        Layout {
            name: "the trust directory",
            files: TRUST_DIR,
            path: "trust",
            expected: Ok(3),
        },
        Layout {
            name: "version 1's file",
            files: TRUST_DIR,
            path: "trust/trust-root.d/1.json",
            expected: Ok(3),
        },
        // As one of its files: the version in force beside it is read too (else version 2
        // would be the newest, and what version 3 revoked would verify again).
        Layout {
            name: "the trust-root.d directory",
            files: TRUST_DIR,
            path: "trust/trust-root.d",
            expected: Ok(3),
        },
        Layout {
            name: "the trust-root.d directory, a trailing slash",
            files: TRUST_DIR,
            path: "trust/trust-root.d/",
            expected: Ok(3),
        },
        Layout {
            name: "a copy of the current version in trust-root.d",
            files: &[
                ("trust/trust-root.json", V(3)),
                ("trust/trust-root.d/1.json", V(1)),
                ("trust/trust-root.d/2.json", V(2)),
                ("trust/trust-root.d/3.json", V(3)),
            ],
            path: "trust/trust-root.d/3.json",
            expected: Ok(3),
        },
        Layout {
            name: "a directory of numbered files",
            files: &[
                ("chain/1.json", V(1)),
                ("chain/2.json", V(2)),
                ("chain/3.json", V(3)),
            ],
            path: "chain",
            expected: Ok(3),
        },
        Layout {
            name: "one of a directory of numbered files",
            files: &[
                ("chain/1.json", V(1)),
                ("chain/2.json", V(2)),
                ("chain/3.json", V(3)),
            ],
            path: "chain/2.json",
            expected: Ok(3),
        },
        Layout {
            name: "version 1 alone",
            files: &[("trust/trust-root.d/1.json", V(1))],
            path: "trust/trust-root.d/1.json",
            expected: Ok(1),
        },
        Layout {
            name: "a version newer than the current file in trust-root.d",
            files: &[
                ("trust/trust-root.json", V(2)),
                ("trust/trust-root.d/1.json", V(1)),
                ("trust/trust-root.d/2.json", V(2)),
                ("trust/trust-root.d/3.json", V(3)),
            ],
            path: "trust/trust-root.json",
            expected: Err("trust.unexpected_version"),
        },
        Layout {
            name: "a current file older than trust-root.d",
            files: &[
                ("trust/trust-root.json", V(1)),
                ("trust/trust-root.d/1.json", V(1)),
                ("trust/trust-root.d/2.json", V(2)),
            ],
            path: "trust",
            expected: Err("trust.unexpected_version"),
        },
        Layout {
            name: "another document under the current version's number",
            files: &[
                ("trust/trust-root.json", V(3)),
                ("trust/trust-root.d/1.json", V(1)),
                ("trust/trust-root.d/2.json", V(2)),
                ("trust/trust-root.d/3.json", Other3),
            ],
            path: "trust/trust-root.json",
            expected: Err("trust.unexpected_version"),
        },
        Layout {
            name: "a gap in trust-root.d",
            files: &[
                ("trust/trust-root.json", V(3)),
                ("trust/trust-root.d/1.json", V(1)),
                ("trust/trust-root.d/3.json", V(3)),
            ],
            path: "trust/trust-root.json",
            expected: Err("trust.malformed"),
        },
        Layout {
            name: "a stray file in trust-root.d",
            files: &[
                ("trust/trust-root.json", V(2)),
                ("trust/trust-root.d/1.json", V(1)),
                ("trust/trust-root.d/notes.txt", Text("x")),
            ],
            path: "trust/trust-root.json",
            expected: Err("trust.unsafe_path"),
        },
        Layout {
            name: "an oversized current file",
            files: &[
                ("trust/trust-root.json", Oversized),
                ("trust/trust-root.d/1.json", V(1)),
            ],
            path: "trust/trust-root.json",
            expected: Err("trust.document_too_large"),
        },
        Layout {
            name: "an empty directory",
            files: &[("empty/", Text(""))],
            path: "empty",
            expected: Err("trust.malformed"),
        },
    ];
    for layout in &layouts {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in layout.files {
            let file = dir.path().join(path);
            if path.ends_with('/') {
                std::fs::create_dir_all(file).unwrap();
                continue;
            }
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            let data = match content {
                V(n) => bytes[n - 1].clone(),
                Other3 => other3.clone(),
                Text(text) => text.as_bytes().to_vec(),
                Oversized => vec![b' '; MAX_TRUST_ROOT_BYTES + 1],
            };
            std::fs::write(file, data).unwrap();
        }
        let loaded = load_trust_history(
            &common::repo().join("trust/root.pub"),
            &dir.path().join(layout.path),
        )
        .map(|history| history.newest().version())
        .map_err(|e| e.code());
        assert_eq!(loaded, layout.expected, "{}", layout.name);
    }
    // A link to `trust-root.d` named otherwise is `trust-root.d` too: the version in force
    // beside it is read.
    #[cfg(unix)]
    {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in TRUST_DIR {
            let V(n) = content else { unreachable!() };
            let file = dir.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, &bytes[n - 1]).unwrap();
        }
        let link = dir.path().join("archive");
        std::os::unix::fs::symlink(dir.path().join("trust/trust-root.d"), &link).unwrap();
        // And a `trust-root.d` beside a current file that links to an archive named otherwise:
        // the current file beside the name given is read.
        let other = dir.path().join("elsewhere");
        std::fs::create_dir_all(other.join("trust")).unwrap();
        std::fs::rename(
            dir.path().join("trust/trust-root.d"),
            other.join("versions"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            other.join("versions"),
            dir.path().join("trust/trust-root.d"),
        )
        .unwrap();
        for path in [
            link.clone(),
            link.join("."),
            link.join("1.json"),
            dir.path().join("trust/trust-root.d"),
            dir.path().join("trust/trust-root.d/2.json"),
        ] {
            let loaded = load_trust_history(&common::repo().join("trust/root.pub"), &path)
                .map(|history| history.newest().version())
                .map_err(|e| e.code());
            assert_eq!(loaded, Ok(3), "{}", path.display());
        }
    }
}

#[test]
fn chains_longer_than_the_bound_are_refused_before_any_check() {
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=MAX_TRUST_CHAIN_VERSIONS + 1 {
        std::fs::write(dir.path().join(format!("{n}.json")), b"{}").unwrap();
    }
    assert_eq!(
        read_trust_chain(dir.path()).unwrap_err().code(),
        "trust.chain_too_long"
    );
    let too_many = vec![Vec::new(); MAX_TRUST_CHAIN_VERSIONS + 1];
    assert_eq!(
        verify_trust_history(&pinned(), &too_many)
            .unwrap_err()
            .code(),
        "trust.chain_too_long"
    );
}

// ---------------------------------------------------------------------------------------------
// Signature lists

/// A signed document with its `signatures` replaced.
fn document_with(bytes: &[u8], signatures: Value) -> Vec<u8> {
    let mut document = parse_strict(bytes).unwrap();
    document["signatures"] = signatures;
    serde_json::to_vec(&document).unwrap()
}

fn entry(keyid: &KeyId, sig: &[u8]) -> Value {
    json!({"keyid": keyid.to_string(), "sig": B64.encode(sig)})
}

#[test]
fn repeated_or_surplus_trust_root_signatures_are_refused_before_verification() {
    let v1 = common::chain_bytes()[0].clone();
    let first = parse_strict(&v1).unwrap()["signatures"][0].clone();
    let root1 = key("root-1");
    let bad = entry(&root1.key_id(), &[9u8; 64]);
    let policy_sig = {
        let signed = canonicalize_value(&parse_strict(&v1).unwrap()["signed"]).unwrap();
        entry(
            &key("policy").key_id(),
            &key("policy").sign(&signed).unwrap(),
        )
    };
    let same_bytes_other_id = {
        let mut other = first.clone();
        other["keyid"] = json!(key("policy").key_id().to_string());
        other
    };
    let copies = |value: &Value, n: usize| Value::Array(vec![value.clone(); n]);
    for (name, signatures, code) in [
        (
            "50,000 copies",
            copies(&first, 50_000),
            "trust.too_many_signatures",
        ),
        (
            "one signature twice",
            copies(&first, 2),
            "trust.duplicate_signature",
        ),
        // Were it verified first, this would be trust.bad_signature.
        (
            "a bad signature twice",
            copies(&bad, 2),
            "trust.duplicate_signature",
        ),
        (
            "the same bytes under another key id",
            json!([first, same_bytes_other_id]),
            "trust.duplicate_signature",
        ),
        // Version 1 may carry one signature per key of the pinned key and its root role (both
        // root-1 here); a valid extra signature by another key is one too many.
        (
            "a signature more than the keys that may sign",
            json!([first, policy_sig]),
            "trust.too_many_signatures",
        ),
        (
            "a bad signature more than the keys that may sign",
            json!([bad, policy_sig]),
            "trust.too_many_signatures",
        ),
    ] {
        let document = document_with(&v1, signatures);
        assert_eq!(
            verify_trust_history(&pinned(), &[document])
                .unwrap_err()
                .code(),
            code,
            "{name}"
        );
    }
    // A rotation carries one signature per key of both root roles: root-1 and root-2.
    assert!(verify_trust_history(&pinned(), &common::chain_bytes()).is_ok());
}

#[test]
fn repeated_or_surplus_bundle_and_release_signatures_are_refused() {
    let root = common::trust_root();
    let mut files = common::signed_test_bundle();
    let manifest = files[BUNDLE_MANIFEST_FILE].clone();
    let first = parse_strict(&manifest).unwrap()["signatures"][0].clone();
    files.insert(
        BUNDLE_MANIFEST_FILE.to_owned(),
        document_with(&manifest, json!([first.clone(), first])),
    );
    assert_eq!(
        verify_bundle(&root, &files).unwrap_err().code(),
        "trust.duplicate_signature"
    );
    let mut files = common::test_bundle_files();
    let two = sign_bundle(
        &common::demo_ref(),
        &files,
        &[&key("policy"), &key("release")],
    )
    .unwrap();
    files.insert(BUNDLE_MANIFEST_FILE.to_owned(), two);
    assert_eq!(
        verify_bundle(&root, &files).unwrap_err().code(),
        "trust.too_many_signatures"
    );
    let release = std::fs::read(common::repo().join(RELEASE_MANIFEST_FILE)).unwrap();
    let first = parse_strict(&release).unwrap()["signatures"][0].clone();
    let twice = document_with(&release, json!([first.clone(), first]));
    assert_eq!(
        verify_release_manifest(&root, &twice, common::now(), None)
            .unwrap_err()
            .code(),
        "trust.duplicate_signature"
    );
}

#[test]
fn repeated_or_surplus_attestation_signatures_are_refused_before_verification() {
    let root = common::trust_root();
    let history = verify_trust_history(&pinned(), &common::chain_bytes()).unwrap();
    let golden =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/attestation.json"))
            .unwrap();
    let first = parse_strict(&golden).unwrap()["signatures"][0].clone();
    let bad = entry(&key("attestation").key_id(), &[9u8; 64]);
    let payload = B64
        .decode(parse_strict(&golden).unwrap()["payload"].as_str().unwrap())
        .unwrap();
    let by_policy = entry(
        &key("policy").key_id(),
        &key("policy").sign(&pae(&payload)).unwrap(),
    );
    let copies = |value: &Value, n: usize| Value::Array(vec![value.clone(); n]);
    for (name, signatures, check, code) in [
        // 100,000 copies are ~15 MB: refused by size before the JSON is read.
        (
            "100,000 copies",
            copies(&first, 100_000),
            "envelope",
            "trust.document_too_large",
        ),
        // 5,000 copies fit in MAX_ENVELOPE_BYTES: refused by count before any is verified.
        (
            "5,000 copies",
            copies(&first, 5_000),
            "envelope",
            "trust.too_many_signatures",
        ),
        (
            "one signature twice",
            copies(&first, 2),
            "envelope",
            "trust.duplicate_signature",
        ),
        (
            "a bad signature twice",
            copies(&bad, 2),
            "envelope",
            "trust.duplicate_signature",
        ),
        // The attestation role has one key: two signatures are one too many, refused before
        // either is verified (else the bad one would be trust.bad_signature).
        (
            "two signatures for a role of one key",
            json!([first, by_policy]),
            "signature",
            "trust.too_many_signatures",
        ),
        (
            "a bad signature and another for a role of one key",
            json!([bad, by_policy]),
            "signature",
            "trust.too_many_signatures",
        ),
    ] {
        let envelope = with_signatures(&golden, signatures);
        let reports = [
            verify_attestation(&envelope, &root, None, None),
            verify_attestation_in_history(
                &envelope,
                &history,
                options(parmana_testkit::NOW, false),
                None,
                None,
            ),
        ];
        for report in reports
            .iter()
            .chain(&verify_attestations(&[&envelope], &root))
        {
            assert!(!report.is_valid(), "{name}");
            let failure = report.failures().next().unwrap();
            assert_eq!(
                (failure.check.as_str(), failure.code),
                (check, Some(code)),
                "{name}"
            );
        }
    }
}

/// A version larger than a trust-root file is read within (`MAX_TRUST_ROOT_BYTES`) is never
/// made, first or rotated: written, every later reader of the chain would refuse it. About 4,000
/// attestation keys pass the bound; 3,000 do not.
#[test]
fn a_version_past_the_file_bound_is_never_made() {
    let root1 = key("root-1");
    let spec_with = |count: u32| {
        let mut spec = spec_of(&version(&[A], 1));
        spec.attestation.keys = (0..count)
            .map(|n| {
                let mut seed = [9u8; 32];
                seed[..4].copy_from_slice(&n.to_le_bytes());
                LocalSigningKey::from_seed(&seed).public_key()
            })
            .collect();
        spec
    };
    let first = create_trust_root(&spec_with(3_000), &[&root1]).unwrap();
    assert!(first.len() <= MAX_TRUST_ROOT_BYTES, "{}", first.len());
    let refused = create_trust_root(&spec_with(4_000), &[&root1]).unwrap_err();
    assert_eq!(refused.code(), "trust.document_too_large", "{refused}");
    let history = verify_trust_history(&pinned(), &[first]).unwrap();
    let refused = rotate_trust_root(history.newest(), &spec_with(4_000), &[&root1]).unwrap_err();
    assert_eq!(refused.code(), "trust.document_too_large", "{refused}");
}

/// A chain's files are read within [`MAX_TRUST_CHAIN_BYTES`] in all: seventeen numbered files of
/// the largest size one may have pass it, and the file that would is refused before it is read
/// (the files are not JSON: nothing is parsed first).
#[test]
fn a_chain_past_its_byte_bound_is_refused_before_it_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let files = MAX_TRUST_CHAIN_BYTES / MAX_TRUST_ROOT_BYTES + 1;
    for n in 1..=files {
        std::fs::write(
            dir.path().join(format!("{n}.json")),
            vec![b' '; MAX_TRUST_ROOT_BYTES],
        )
        .unwrap();
    }
    let refused = read_trust_chain(dir.path()).unwrap_err();
    assert_eq!(refused.code(), "trust.document_too_large", "{refused}");
    assert!(
        refused.to_string().contains("the trust-root chain at"),
        "{refused}"
    );
}
