//! Revoking an attestation key as of a log checkpoint: one table of attestations before, at and after the revocation, in another log, against a forked checkpoint, with forged proofs, without a proof, and after a later version drops the revocation; the documents that list revocations; and the checkpoint cache that verifies a checkpoint once for many proofs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{key, pinned};
use parmana_canon::merkle::MerkleTree;
use parmana_canon::{Digest, Timestamp};
use parmana_trust::*;

const ORIGIN: &str = "log.example/parmana";
const OTHER_ORIGIN: &str = "other.example/log";
/// The revocation is as of the checkpoint of this size: entries 0 to 5 stay valid.
const REVOKED_AT: u64 = 6;
const REASON: &str = "attestation key compromised";
const NOW: &str = "2026-11-28T21:00:00Z";

fn seeded(seed: u8) -> LocalSigningKey {
    LocalSigningKey::from_seed(&[seed; 32])
}

/// The attestation key revoked in version 2, and the one that replaces it.
fn revoked_key() -> LocalSigningKey {
    seeded(11)
}
fn new_key() -> LocalSigningKey {
    seeded(12)
}
fn log_key() -> LocalSigningKey {
    seeded(30)
}

/// The log: eight entries, `entry 0` … `entry 7`.
fn log_tree() -> MerkleTree {
    let mut tree = MerkleTree::new();
    for i in 0..8 {
        tree.push(format!("entry {i}").as_bytes());
    }
    tree
}

fn checkpoint_of(origin: &str, size: u64, root: Digest) -> String {
    let checkpoint = Checkpoint::new(origin, size, root).unwrap();
    sign_checkpoint(
        &checkpoint,
        &NoteKeyName::parse(origin).unwrap(),
        &log_key(),
    )
    .unwrap()
}

/// The signed checkpoint of the log at `size`.
fn checkpoint(size: u64) -> String {
    checkpoint_of(ORIGIN, size, log_tree().root_at(size).unwrap())
}

fn log_spec(revocations: Vec<RevocationSpec>) -> LogSpec {
    LogSpec {
        revocations,
        ..LogSpec::one_key(ORIGIN, log_key().public_key())
    }
}

fn spec(attestation: &LocalSigningKey, log: LogSpec) -> TrustRootSpec {
    TrustRootSpec {
        expires: Timestamp::parse("2036-01-01T00:00:00Z").unwrap(),
        root: common::role(&key("root-1")),
        policy: common::role(&key("policy")),
        release: common::role(&key("release")),
        attestation: common::role(attestation),
        log: Some(log),
    }
}

/// The revocation of version 2: the revoked key as of the checkpoint of size [`REVOKED_AT`].
fn revocation() -> RevocationSpec {
    let head =
        Checkpoint::new(ORIGIN, REVOKED_AT, log_tree().root_at(REVOKED_AT).unwrap()).unwrap();
    RevocationSpec::at_checkpoint(revoked_key().key_id(), &head, REASON)
}

/// The chain: version 1 with the revoked key; version 2 rotating it out and revoking it; with
/// `dropped`, version 3 listing no revocation.
fn chain(dropped: bool) -> Vec<Vec<u8>> {
    let root = key("root-1");
    let mut specs = vec![
        spec(&revoked_key(), log_spec(vec![])),
        spec(&new_key(), log_spec(vec![revocation()])),
    ];
    if dropped {
        specs.push(spec(&new_key(), log_spec(vec![])));
    }
    let mut bytes = vec![create_trust_root(&specs[0], &[&root]).unwrap()];
    for spec in &specs[1..] {
        let history = verify_trust_history(&pinned(), &bytes).unwrap();
        bytes.push(rotate_trust_root(history.newest(), spec, &[&root]).unwrap());
    }
    bytes
}

fn predicate(root: &VerifiedTrustRoot) -> ExecutionPredicate {
    common::small_claim_predicate(
        root,
        "exec-revoked",
        Timestamp::parse("2026-11-28T20:00:00Z").unwrap(),
    )
}

/// An attestation made under `version` of `history`, signed by `signer`.
fn attestation(history: &VerifiedTrustHistory, version: u64, signer: &LocalSigningKey) -> Vec<u8> {
    let root = history.version(version).unwrap();
    prepare_attestation(&predicate(root), root)
        .unwrap()
        .sign_all(&[signer], root)
        .unwrap()
}

fn options() -> VerifyOptions {
    VerifyOptions {
        now: Timestamp::parse(NOW).unwrap(),
        require_current_trust: false,
    }
}

/// How a case's attestation is proven in the log.
enum Proof {
    /// No proof.
    None,
    /// The inclusion proof of entry `index` in the log's checkpoint of `size`.
    Entry { index: u64, size: u64 },
    /// The same, in a log of another origin signed by the same key.
    OtherLog { index: u64, size: u64 },
    /// Entry `index` of a forked log (other entries) whose checkpoint has `size`.
    Forked { index: u64, size: u64 },
    /// The proof of entry `index` presented as entry `claimed`.
    ForgedIndex { index: u64, claimed: u64, size: u64 },
    /// The proof of entry `index` with its checkpoint's size changed to `claimed`.
    ForgedSize { index: u64, size: u64, claimed: u64 },
}

/// The verified inclusion a proof gives, or the code refusing the proof itself.
fn inclusion(proof: &Proof) -> Result<Option<VerifiedInclusion>, &'static str> {
    let tree = log_tree();
    let verifier = LogVerifier::new(
        ORIGIN,
        vec![NoteVerifierKey::new(
            NoteKeyName::parse(ORIGIN).unwrap(),
            log_key().public_key(),
        )],
        1,
    );
    let forged = |index: u64, claimed: u64, size: u64, note: String| {
        let proof = TlogProof::new(claimed, tree.inclusion_proof(index, size).unwrap(), note);
        verify_tlog_proof(&proof, format!("entry {index}").as_bytes(), &verifier)
            .map(Some)
            .map_err(|e| e.code())
    };
    let (leaf, tree, index, size, note, verifier) = match *proof {
        Proof::None => return Ok(None),
        Proof::Entry { index, size } => (
            "entry",
            tree,
            index,
            size,
            checkpoint(size),
            verifier.clone(),
        ),
        Proof::OtherLog { index, size } => {
            let note = checkpoint_of(OTHER_ORIGIN, size, tree.root_at(size).unwrap());
            let other = LogVerifier::new(
                OTHER_ORIGIN,
                vec![NoteVerifierKey::new(
                    NoteKeyName::parse(OTHER_ORIGIN).unwrap(),
                    log_key().public_key(),
                )],
                1,
            );
            ("entry", tree, index, size, note, other)
        }
        Proof::Forked { index, size } => {
            let mut forked = MerkleTree::new();
            for i in 0..8 {
                forked.push(format!("forked entry {i}").as_bytes());
            }
            let note = checkpoint_of(ORIGIN, size, forked.root_at(size).unwrap());
            ("forked entry", forked, index, size, note, verifier.clone())
        }
        Proof::ForgedIndex {
            index,
            claimed,
            size,
        } => return forged(index, claimed, size, checkpoint(size)),
        Proof::ForgedSize {
            index,
            size,
            claimed,
        } => {
            let note =
                checkpoint(size).replacen(&format!("\n{size}\n"), &format!("\n{claimed}\n"), 1);
            return forged(index, index, size, note);
        }
    };
    let proof = TlogProof::new(index, tree.inclusion_proof(index, size).unwrap(), note);
    verify_tlog_proof(&proof, format!("{leaf} {index}").as_bytes(), &verifier)
        .map(Some)
        .map_err(|e| e.code())
}

/// One row: which key signs, under which version, how it is proven, whether version 3 drops
/// the revocation, and the outcome — the `revocation` check's code (`Some("ok")` when it
/// passes, `None` when it is absent) or the code refusing the proof.
struct Case {
    name: &'static str,
    signer: fn() -> LocalSigningKey,
    made_under: u64,
    proof: Proof,
    dropped: bool,
    expected: Result<Option<&'static str>, &'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "entry well before the revocation, proven against an older checkpoint",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::Entry { index: 2, size: 4 },
        dropped: false,
        expected: Ok(Some("ok")),
    },
    Case {
        name: "the last entry before the revocation, proven against its own checkpoint",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::Entry { index: 5, size: 6 },
        dropped: false,
        expected: Ok(Some("ok")),
    },
    Case {
        name: "an entry before the revocation, proven against a later checkpoint",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::Entry { index: 5, size: 8 },
        dropped: false,
        expected: Ok(Some("ok")),
    },
    Case {
        name: "the entry at the revocation's size",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::Entry { index: 6, size: 8 },
        dropped: false,
        expected: Ok(Some("trust.key_revoked")),
    },
    Case {
        name: "an entry after the revocation",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::Entry { index: 7, size: 8 },
        dropped: false,
        expected: Ok(Some("trust.key_revoked")),
    },
    Case {
        name: "no proof: nothing orders the signature against the revocation",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::None,
        dropped: false,
        expected: Ok(Some("trust.key_revoked_unproven")),
    },
    Case {
        name: "an early entry of another log",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::OtherLog { index: 1, size: 4 },
        dropped: false,
        expected: Ok(Some("trust.key_revoked")),
    },
    Case {
        name: "a forked log's checkpoint at the revocation's size (another root)",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::Forked { index: 1, size: 6 },
        dropped: false,
        expected: Ok(Some("trust.tlog_inconsistent")),
    },
    Case {
        name: "a proof of entry 7 presented as entry 3",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::ForgedIndex {
            index: 7,
            claimed: 3,
            size: 8,
        },
        dropped: false,
        expected: Err("trust.tlog_not_included"),
    },
    Case {
        name: "a checkpoint whose size is changed after signing",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::ForgedSize {
            index: 5,
            size: 8,
            claimed: 6,
        },
        dropped: false,
        expected: Err("trust.note_bad_signature"),
    },
    Case {
        name: "a later version no longer lists the revocation: still revoked",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::Entry { index: 7, size: 8 },
        dropped: true,
        expected: Ok(Some("trust.key_revoked")),
    },
    Case {
        name: "a later version no longer lists the revocation: still needs a proof",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::None,
        dropped: true,
        expected: Ok(Some("trust.key_revoked_unproven")),
    },
    Case {
        name: "a later version no longer lists the revocation: early entries stay valid",
        signer: revoked_key,
        made_under: 1,
        proof: Proof::Entry { index: 0, size: 8 },
        dropped: true,
        expected: Ok(Some("ok")),
    },
    Case {
        name: "the new key is not revoked: no revocation check",
        signer: new_key,
        made_under: 2,
        proof: Proof::None,
        dropped: false,
        expected: Ok(None),
    },
];

fn check(case: &Case) {
    let history = verify_trust_history(&pinned(), &chain(case.dropped)).unwrap();
    let envelope = attestation(&history, case.made_under, &(case.signer)());
    let inclusion = match inclusion(&case.proof) {
        Ok(inclusion) => inclusion,
        Err(code) => {
            assert_eq!(Err(code), case.expected, "{}", case.name);
            return;
        }
    };
    let report = verify_attestation_with_log(
        &envelope,
        &history,
        options(),
        None,
        None,
        inclusion.as_ref(),
    );
    let revocation = report
        .checks
        .iter()
        .find(|c| c.check == AttestationCheckKind::Revocation);
    let got = revocation.map(|c| c.code.unwrap_or("ok"));
    assert_eq!(Ok(got), case.expected, "{}: {:?}", case.name, report.checks);
    // Every other check passes: the revocation check alone decides.
    let others_pass = report
        .checks
        .iter()
        .filter(|c| c.check != AttestationCheckKind::Revocation)
        .all(|c| c.passed);
    assert!(others_pass, "{}: {:?}", case.name, report.checks);
    assert_eq!(
        report.is_valid(),
        matches!(got, None | Some("ok")),
        "{}",
        case.name
    );
    // Without an inclusion, the report is that of the history alone and of a batch.
    if inclusion.is_none() {
        let plain = verify_attestation_in_history(&envelope, &history, options(), None, None);
        assert_eq!(plain, report, "{}", case.name);
        let batch = verify_attestations_in_history(&[envelope.as_slice()], &history, options());
        assert_eq!(batch, vec![report], "{}", case.name);
    }
}

#[test]
fn revoked_keys_are_judged_by_the_log_position_of_each_attestation() {
    for case in CASES {
        check(case);
    }
}

#[test]
fn a_trust_root_lists_revocations_in_its_log_role() {
    let history = verify_trust_history(&pinned(), &chain(true)).unwrap();
    let listed: Vec<&Revocation> = history.revocations_of(revoked_key().key_id()).collect();
    assert_eq!(listed.len(), 1);
    let only = listed[0];
    assert_eq!(
        (
            only.version(),
            only.origin().as_str(),
            only.tree_size(),
            only.reason()
        ),
        (2, ORIGIN, REVOKED_AT, REASON)
    );
    assert_eq!(only.root_hash(), log_tree().root_at(REVOKED_AT).unwrap());
    assert_eq!(history.revocations_of(new_key().key_id()).count(), 0);
    // Versions without revocations carry no `revocations` member: their bytes are those they
    // had before revocations existed.
    let bytes = chain(true);
    for (version, document) in bytes.iter().enumerate() {
        let text = String::from_utf8_lossy(document);
        assert_eq!(
            text.contains("revocations"),
            version == 1,
            "version {}",
            version + 1
        );
    }
    // The single-version check applies that version's own revocations.
    let v2 = history.version(2).unwrap();
    let envelope = attestation(&history, 2, &new_key());
    assert!(verify_attestation(&envelope, v2, None, None).is_valid());
}

#[test]
fn malformed_revocations_are_refused() {
    let root = key("root-1");
    let load = |spec: &TrustRootSpec| {
        create_trust_root(spec, &[&root])
            .and_then(|v1| verify_trust_history(&pinned(), &[v1]))
            .map(|_| ())
            .map_err(|e| e.code())
    };
    let with = |revocations: Vec<RevocationSpec>| spec(&new_key(), log_spec(revocations));
    assert_eq!(load(&with(vec![revocation()])), Ok(()));
    let reason = |text: &str| RevocationSpec {
        reason: text.to_owned(),
        ..revocation()
    };
    for (name, spec, code) in [
        (
            "the revoked key holds the attestation role",
            spec(&revoked_key(), log_spec(vec![revocation()])),
            "trust.malformed",
        ),
        (
            "one key revoked twice",
            with(vec![revocation(), revocation()]),
            "trust.malformed",
        ),
        ("an empty reason", with(vec![reason("")]), "trust.malformed"),
        (
            "a reason with a control character",
            with(vec![reason("line\nbreak")]),
            "trust.malformed",
        ),
        (
            "a reason too long",
            with(vec![reason(&"x".repeat(MAX_REVOCATION_REASON_CHARS + 1))]),
            "trust.malformed",
        ),
    ] {
        assert_eq!(load(&spec), Err(code), "{name}");
    }
    assert_eq!(
        load(&with(vec![reason(
            &"x".repeat(MAX_REVOCATION_REASON_CHARS)
        )])),
        Ok(())
    );
    // A later version may not give the attestation role back to a key an earlier one revoked
    // (even without listing the revocation again): the whole chain is refused.
    let mut bytes = chain(false);
    let history = verify_trust_history(&pinned(), &bytes).unwrap();
    bytes.push(
        rotate_trust_root(
            history.newest(),
            &spec(&revoked_key(), log_spec(vec![])),
            &[&root],
        )
        .unwrap(),
    );
    assert_eq!(
        verify_trust_history(&pinned(), &bytes)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("trust.malformed")
    );
}

#[test]
fn the_checkpoint_cache_verifies_each_checkpoint_once_and_answers_alike() {
    let verifier = LogVerifier::new(
        ORIGIN,
        vec![NoteVerifierKey::new(
            NoteKeyName::parse(ORIGIN).unwrap(),
            log_key().public_key(),
        )],
        1,
    );
    let mut cache = CheckpointCache::new(verifier.clone());
    let tree = log_tree();
    let note = checkpoint(8);
    for index in 0..8 {
        let proof = TlogProof::new(index, tree.inclusion_proof(index, 8).unwrap(), note.clone());
        let entry = format!("entry {index}");
        assert_eq!(
            verify_tlog_proof_cached(&proof, entry.as_bytes(), &mut cache),
            verify_tlog_proof(&proof, entry.as_bytes(), &verifier)
        );
        // A wrong entry fails alike through the cache.
        assert_eq!(
            verify_tlog_proof_cached(&proof, b"another entry", &mut cache).map_err(|e| e.code()),
            Err("trust.tlog_not_included")
        );
    }
    assert_eq!(cache.len(), 1);
    // A tampered checkpoint is refused and not remembered; the good one still opens.
    let tampered = note.replacen("\n8\n", "\n7\n", 1);
    assert_eq!(
        cache
            .open_checkpoint(tampered.as_bytes())
            .map_err(|e| e.code()),
        Err("trust.note_bad_signature")
    );
    assert_eq!(cache.len(), 1);
    // Bounded: many distinct checkpoints keep at most the capacity.
    let more = (0..CHECKPOINT_CACHE_CAPACITY as u64 + 4)
        .map(|i| checkpoint_of(ORIGIN, 100 + i, Digest::of(format!("root {i}").as_bytes())));
    for note in more {
        cache.open_checkpoint(note.as_bytes()).unwrap();
    }
    assert_eq!(cache.len(), CHECKPOINT_CACHE_CAPACITY);
}
