//! The transparency log's signed formats: signed notes against the Go `sumdb/note` vector and the `signed_note` crate (an implementation we did not write), checkpoints, tlog proofs, consistency, and every tampered byte refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use parmana_canon::merkle::{MerkleTree, empty_root};
use parmana_canon::{Digest, Timestamp};
use parmana_trust::{
    Checkpoint, CheckpointCache, Cosignature, CosignerKey, LocalSigningKey, LogSpec, LogVerifier,
    Note, NoteKeyName, NoteVerifierKey, RoleSpec, TlogProof, TrustRootSpec, cosign_checkpoint,
    cosign_note, create_trust_root, open_note, sign_checkpoint, sign_note, verify_cosignatures,
    verify_tlog_proof, verify_tlog_proof_cached, verify_trust_chain,
};
use signed_note::Verifiers as _;

/// The example of golang.org/x/mod/sumdb/note (`note.go`, `note_test.go`): its verifier and
/// signer keys, text, and the signed note Go produces.
const GO_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_SIGNER: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n\
                       \n\
                       \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

/// The Go example's signing key, from its `PRIVATE+KEY+name+id+base64(0x01 ‖ seed)` form.
fn go_signing_key() -> LocalSigningKey {
    let encoded = GO_SIGNER.splitn(5, '+').nth(4).unwrap();
    let bytes = BASE64.decode(encoded).unwrap();
    assert_eq!(bytes[0], 0x01);
    LocalSigningKey::from_seed(&bytes[1..].try_into().unwrap())
}

fn name(text: &str) -> NoteKeyName {
    NoteKeyName::parse(text).unwrap()
}

#[test]
fn go_sumdb_note_vector() {
    let verifier = NoteVerifierKey::parse(GO_VERIFIER).unwrap();
    assert_eq!(verifier.id(), 0xc74f_20a3);
    assert_eq!(verifier.to_string(), GO_VERIFIER);
    let key = go_signing_key();
    assert_eq!(verifier.public_key(), &key.public_key());
    // Ed25519 is deterministic: our note is Go's, byte for byte.
    assert_eq!(
        sign_note(GO_TEXT, &name("PeterNeumann"), &key).unwrap(),
        GO_NOTE
    );
    let opened = open_note(GO_NOTE.as_bytes(), std::slice::from_ref(&verifier)).unwrap();
    assert_eq!(opened.text(), GO_TEXT);
    assert_eq!(opened.verified_by(), std::slice::from_ref(&verifier));
    let changed = GO_NOTE.replace("cryptography", "cryptographY");
    assert_eq!(
        open_note(changed.as_bytes(), &[verifier])
            .unwrap_err()
            .code(),
        "trust.note_bad_signature"
    );
}

/// Our checkpoints open with the `signed_note` crate (cloudflare/azul), and its notes with ours;
/// verifier key strings read both ways.
#[test]
fn interoperates_with_the_signed_note_crate() {
    let key = LocalSigningKey::from_seed(&[9; 32]);
    let ours = NoteVerifierKey::new(name("log.example/parmana"), key.public_key());
    let theirs = signed_note::StandardVerifier::new(&ours.to_string()).unwrap();
    let checkpoint = Checkpoint::new("log.example/parmana", 3, Digest::of(b"root")).unwrap();
    let signed = sign_checkpoint(&checkpoint, ours.name(), &key).unwrap();
    let note = signed_note::Note::from_bytes(signed.as_bytes()).unwrap();
    let list = signed_note::VerifierList::new(vec![Box::new(theirs)]);
    let (verified, unverified) = note.verify(&list).unwrap();
    assert_eq!((verified.len(), unverified.len()), (1, 0));
    assert_eq!(note.text(), checkpoint.to_text().as_bytes());
    assert!(list.verifier("log.example/parmana", ours.id()).is_ok());

    // Their signer (the Go example key), our verifier.
    let signer = signed_note::StandardSigner::new(GO_SIGNER).unwrap();
    let mut theirs = signed_note::Note::new(checkpoint.to_text().as_bytes(), &[]).unwrap();
    theirs.add_sigs(&[&signer]).unwrap();
    let verifier = NoteVerifierKey::parse(GO_VERIFIER).unwrap();
    let opened = LogVerifier::new("log.example/parmana", vec![verifier], 1)
        .open_checkpoint(&theirs.to_bytes())
        .unwrap();
    assert_eq!(opened.checkpoint(), &checkpoint);
}

/// A threshold counts keys, not entries of the verifier's list: one key listed twice, or under
/// two names (signing the note once under each), is one signer.
#[test]
fn a_key_listed_twice_meets_no_threshold_of_two() {
    let key = LocalSigningKey::from_seed(&[11; 32]);
    let origin = name("log.example/parmana");
    let checkpoint = Checkpoint::new("log.example/parmana", 3, Digest::of(b"root")).unwrap();
    let verifier = NoteVerifierKey::new(origin.clone(), key.public_key());
    let signed = sign_checkpoint(&checkpoint, &origin, &key).unwrap();
    let twice = LogVerifier::new(
        "log.example/parmana",
        vec![verifier.clone(), verifier.clone()],
        2,
    );
    assert_eq!(
        twice
            .open_checkpoint(signed.as_bytes())
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("trust.threshold_not_met")
    );
    // Under a second name too, the note signed once under each.
    let alias = name("alias.example/log");
    let both = parmana_trust::cosign_note(&signed, &alias, &key).unwrap();
    let named_twice = LogVerifier::new(
        "log.example/parmana",
        vec![verifier, NoteVerifierKey::new(alias, key.public_key())],
        2,
    );
    assert_eq!(
        named_twice
            .open_checkpoint(both.as_bytes())
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("trust.threshold_not_met")
    );
    // Two keys meet it.
    let second = LocalSigningKey::from_seed(&[12; 32]);
    let cosigned = parmana_trust::cosign_note(&signed, &origin, &second).unwrap();
    let two = LogVerifier::new(
        "log.example/parmana",
        vec![
            NoteVerifierKey::new(origin.clone(), key.public_key()),
            NoteVerifierKey::new(origin, second.public_key()),
        ],
        2,
    );
    assert!(two.open_checkpoint(cosigned.as_bytes()).is_ok());
}

#[test]
fn verifier_keys_are_refused_unless_exact() {
    let key = LocalSigningKey::from_seed(&[3; 32]).public_key();
    let good = NoteVerifierKey::new(name("a.example"), key).to_string();
    let (head, encoded) = good.rsplit_once('+').unwrap();
    let mut typed = BASE64.decode(encoded).unwrap();
    typed[0] = 0x04;
    let cosignature = format!("{head}+{}", BASE64.encode(&typed));
    let cases: Vec<(String, &str)> = vec![
        (
            good.replacen("a.example", "b.example", 1),
            "wrong name for the key ID",
        ),
        (good.to_uppercase(), "upper case"),
        (cosignature, "signature type 0x04"),
        (format!("{head}+{}", &encoded[..40]), "short key"),
        (
            good.replacen("a.example", "a example", 1),
            "space in the name",
        ),
        ("+00000000+AQ==".to_owned(), "empty name"),
        ("a.example+0000000+AQ==".to_owned(), "7 hex digits"),
        ("a.example".to_owned(), "no parts"),
    ];
    for (text, why) in cases {
        let err = NoteVerifierKey::parse(&text).unwrap_err();
        assert!(
            ["trust.note_key_invalid", "trust.invalid_key"].contains(&err.code()),
            "{why}: {err}"
        );
    }
}

#[test]
fn notes_are_refused_unless_well_formed() {
    let key = LocalSigningKey::from_seed(&[4; 32]);
    let verifier = NoteVerifierKey::new(name("n.example"), key.public_key());
    let good = sign_note("text\n", verifier.name(), &key).unwrap();
    let other = LocalSigningKey::from_seed(&[5; 32]);
    let stranger = sign_note("text\n", &name("m.example"), &other).unwrap();
    let stranger_line = stranger.split_once("\n\n").unwrap().1;
    let cases: Vec<(String, &str)> = vec![
        ("text\n\n".to_owned(), "trust.note_malformed"),
        ("text\n".to_owned(), "trust.note_malformed"),
        (good.replace('\n', "\r\n"), "trust.note_malformed"),
        (good.replace("\u{2014}", "-"), "trust.note_malformed"),
        (good.trim_end().to_owned(), "trust.note_malformed"),
        (
            format!("te\u{7}xt\n\n{stranger_line}"),
            "trust.note_malformed",
        ),
        // Only a stranger signed: unknown signatures are ignored, none verified.
        (stranger.clone(), "trust.note_unverified"),
        // A stranger's line beside ours is ignored.
        (format!("{good}{stranger_line}"), "ok"),
        (
            format!("{}{}", good, good.split_once("\n\n").unwrap().1.repeat(100)),
            "trust.note_malformed",
        ),
    ];
    for (text, expected) in cases {
        let got = open_note(text.as_bytes(), std::slice::from_ref(&verifier))
            .map(|_| "ok")
            .unwrap_or_else(|e| e.code());
        assert_eq!(got, expected, "{text:?}");
    }
    assert_eq!(
        sign_note("no newline", verifier.name(), &key)
            .unwrap_err()
            .code(),
        "trust.note_malformed"
    );
}

#[test]
fn checkpoint_text_is_read_exactly() {
    let root = BASE64.encode(empty_root().as_bytes());
    let ok = |text: &str| Checkpoint::parse_text(text).map(|c| c.to_text());
    let cases: Vec<(String, bool)> = vec![
        (format!("o\n0\n{root}\n"), true),
        (format!("o\n18446744073709551615\n{root}\n"), true),
        (format!("o\n5\n{root}\next one\next two\n"), true),
        (format!("o\n05\n{root}\n"), false),
        (format!("o\n18446744073709551616\n{root}\n"), false),
        (format!("o\n+5\n{root}\n"), false),
        (format!("\n5\n{root}\n"), false),
        (format!("o\n5\n{root}"), false),
        (format!("o\n5\n{root}\n\n"), false),
        (format!("o\n5\n{}\n", &root[..40]), false),
        (format!("o\n5\n{}\n", root.trim_end_matches('=')), false),
        ("o\n5\n".to_owned(), false),
    ];
    for (text, accepted) in cases {
        match ok(&text) {
            Ok(again) => {
                assert!(accepted, "{text:?} accepted");
                assert_eq!(again, text, "round trip");
            }
            Err(e) => {
                assert!(!accepted, "{text:?}: {e}");
                assert_eq!(e.code(), "trust.checkpoint_malformed");
            }
        }
    }
}

const ORIGIN: &str = "log.example/parmana";

fn entry(i: u64) -> Vec<u8> {
    format!("{{\"position\":{i}}}").into_bytes()
}

fn log(entries: impl Iterator<Item = Vec<u8>>) -> MerkleTree {
    let mut tree = MerkleTree::new();
    entries.for_each(|e| tree.push(&e));
    tree
}

fn signed_head(tree: &MerkleTree, size: u64, key: &LocalSigningKey) -> String {
    let checkpoint = Checkpoint::new(ORIGIN, size, tree.root_at(size).unwrap()).unwrap();
    sign_checkpoint(&checkpoint, &name(ORIGIN), key).unwrap()
}

/// The log of [`ORIGIN`] with the one key `verifier`.
fn one_key(verifier: &NoteVerifierKey) -> LogVerifier {
    LogVerifier::new(ORIGIN, vec![verifier.clone()], 1)
}

fn log_key() -> (LocalSigningKey, NoteVerifierKey) {
    let key = LocalSigningKey::from_seed(&[7; 32]);
    let verifier = NoteVerifierKey::new(name(ORIGIN), key.public_key());
    (key, verifier)
}

#[test]
fn every_entry_proves_its_inclusion_and_no_other() {
    let (key, verifier) = log_key();
    let tree = log((0..11).map(entry));
    let head = signed_head(&tree, 11, &key);
    for index in 0..11 {
        let proof = TlogProof::new(
            index,
            tree.inclusion_proof(index, 11).unwrap(),
            head.clone(),
        );
        let text = proof.to_text();
        let read = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(read, proof);
        let verified = verify_tlog_proof(&read, &entry(index), &one_key(&verifier)).unwrap();
        assert_eq!(verified.index(), index);
        assert_eq!(verified.checkpoint().checkpoint().size(), 11);
        let other = verify_tlog_proof(&read, &entry(index + 1), &one_key(&verifier));
        assert_eq!(other.unwrap_err().code(), "trust.tlog_not_included");
        // The proof is at most 32·⌈log2 n⌉ bytes of hashes.
        assert!(read.hashes().len() <= 4);
    }
    let proof = TlogProof::parse(
        TlogProof::new(2, tree.inclusion_proof(2, 11).unwrap(), head.clone())
            .to_text()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        verify_tlog_proof(
            &proof,
            &entry(2),
            &LogVerifier::new("other.example/log", vec![verifier], 1)
        )
        .unwrap_err()
        .code(),
        "trust.checkpoint_origin_mismatch"
    );
}

/// Every byte of a proof file flipped (each of three ways) is refused, never accepted — and
/// refused alike through a [`CheckpointCache`] that has already verified the good proof, whose
/// shortcuts (a checkpoint equal to a remembered one, interior nodes remembered from the good
/// path) then apply: a checkpoint one byte off is opened in full, a flipped hash meets the
/// remembered nodes but still misses the root.
#[test]
fn no_tampered_proof_file_is_accepted() {
    let (key, verifier) = log_key();
    let tree = log((0..6).map(entry));
    let head = signed_head(&tree, 6, &key);
    let text = TlogProof::new(4, tree.inclusion_proof(4, 6).unwrap(), head).to_text();
    let verify = |bytes: &[u8]| {
        TlogProof::parse(bytes).and_then(|p| verify_tlog_proof(&p, &entry(4), &one_key(&verifier)))
    };
    let mut cache = CheckpointCache::new(one_key(&verifier));
    let mut verify_cached = |bytes: &[u8]| {
        TlogProof::parse(bytes).and_then(|p| verify_tlog_proof_cached(&p, &entry(4), &mut cache))
    };
    verify(text.as_bytes()).unwrap();
    verify_cached(text.as_bytes()).unwrap();
    let mut codes = std::collections::BTreeSet::new();
    for position in 0..text.len() {
        for mask in [0x01u8, 0x20, 0x80] {
            let mut bytes = text.clone().into_bytes();
            bytes[position] ^= mask;
            let refusal = verify(&bytes).map(|_| ()).unwrap_err();
            assert_eq!(
                verify_cached(&bytes).map(|_| ()),
                Err(refusal.clone()),
                "flipping {mask:#04x} at byte {position}"
            );
            codes.insert(refusal.code());
        }
        // The good proof still verifies through the cache after each refusal.
        verify_cached(text.as_bytes()).unwrap();
    }
    // Proof lines, hashes, the checkpoint's text and its signature are all reached.
    for code in [
        "trust.tlog_proof_malformed",
        "trust.tlog_not_included",
        "trust.note_bad_signature",
    ] {
        assert!(codes.contains(code), "{code} not reached: {codes:?}");
    }
}

/// A log that rewrites an entry after a witness saw a checkpoint cannot prove the new
/// checkpoint consistent with the old one, even signed by its own key.
#[test]
fn a_rewritten_log_is_caught_by_consistency() {
    let (key, verifier) = log_key();
    let open = |tree: &MerkleTree, size: u64| {
        one_key(&verifier)
            .open_checkpoint(signed_head(tree, size, &key).as_bytes())
            .unwrap()
    };
    let honest = log((0..10).map(entry));
    let old = open(&honest, 6);
    let new = open(&honest, 10);
    new.check_extends(&old, &honest.consistency_proof(6, 10).unwrap())
        .unwrap();

    let rewritten = log((0..10).map(|i| if i == 3 { b"forged".to_vec() } else { entry(i) }));
    let forged = open(&rewritten, 10);
    for proof in [
        rewritten.consistency_proof(6, 10).unwrap(),
        honest.consistency_proof(6, 10).unwrap(),
    ] {
        assert_eq!(
            forged.check_extends(&old, &proof).unwrap_err().code(),
            "trust.tlog_inconsistent"
        );
    }
    // A smaller "new" checkpoint (history cut off) is refused too.
    let shorter = open(&honest, 4);
    assert_eq!(
        shorter.check_extends(&old, &[]).unwrap_err().code(),
        "trust.tlog_inconsistent"
    );
}

/// The trust root's `log` role names the origin and keys; a checkpoint needs its threshold of
/// distinct log keys, and a trust root without the role has no log.
#[test]
fn the_log_role_of_the_trust_root() {
    let root = LocalSigningKey::from_seed(&[1; 32]);
    let other = LocalSigningKey::from_seed(&[2; 32]);
    let (log_a, log_b) = (
        LocalSigningKey::from_seed(&[10; 32]),
        LocalSigningKey::from_seed(&[11; 32]),
    );
    let role = |k: &LocalSigningKey| RoleSpec {
        keys: vec![k.public_key()],
        threshold: 1,
    };
    let spec = |log: Option<LogSpec>| TrustRootSpec {
        expires: Timestamp::parse("2036-01-01T00:00:00Z").unwrap(),
        root: role(&root),
        policy: role(&other),
        release: role(&other),
        attestation: role(&other),
        log,
    };
    let now = Timestamp::parse("2026-11-28T21:00:00Z").unwrap();
    let load = |spec: &TrustRootSpec| {
        let v1 = create_trust_root(spec, &[&root]).unwrap();
        verify_trust_chain(&root.public_key(), &[v1], now, None)
    };
    assert!(load(&spec(None)).unwrap().log().is_none());
    // Witnesses: listed with a threshold of 1 to their number, each with a valid name.
    let witness = LocalSigningKey::from_seed(&[12; 32]);
    let with_witnesses = |witnesses: Vec<(&str, &LocalSigningKey)>, witness_threshold| {
        spec(Some(LogSpec {
            witnesses: witnesses
                .into_iter()
                .map(|(n, k)| (n.to_owned(), k.public_key()))
                .collect(),
            witness_threshold,
            ..LogSpec::one_key(ORIGIN, log_a.public_key())
        }))
    };
    let witnessed = load(&with_witnesses(vec![("witness.example/w1", &witness)], 1)).unwrap();
    let (witnesses, required) = witnessed.log().unwrap().witnesses();
    assert_eq!((witnesses.len(), required), (1, 1));
    assert_eq!(witnesses[0].name().as_str(), "witness.example/w1");
    let bare = sign_checkpoint(
        &Checkpoint::new(ORIGIN, 0, empty_root()).unwrap(),
        &name(ORIGIN),
        &log_a,
    )
    .unwrap();
    let verifier = witnessed.log().unwrap().verifier();
    assert_eq!(
        verifier
            .open_checkpoint(bare.as_bytes())
            .unwrap_err()
            .code(),
        "trust.threshold_not_met"
    );
    let cosigned = cosign_checkpoint(&bare, witnesses[0].name(), &witness, 1).unwrap();
    verifier.open_checkpoint(cosigned.as_bytes()).unwrap();
    for (witnesses, threshold, code) in [
        (
            vec![("witness.example/w1", &witness)],
            0,
            "trust.invalid_threshold",
        ),
        (
            vec![("witness.example/w1", &witness)],
            2,
            "trust.invalid_threshold",
        ),
        (vec![("w 1", &witness)], 1, "trust.malformed"),
        (
            vec![("w1", &witness), ("w2", &witness)],
            1,
            "trust.malformed",
        ),
        // A witness is not the log: not one of its keys (the log would meet the witness
        // threshold alone), nor named as the log signs.
        (vec![("w1", &log_a)], 1, "trust.malformed"),
        (vec![(ORIGIN, &witness)], 1, "trust.malformed"),
    ] {
        let got = create_trust_root(&with_witnesses(witnesses, threshold), &[&root])
            .and_then(|v1| verify_trust_chain(&root.public_key(), &[v1], now, None));
        assert_eq!(got.unwrap_err().code(), code);
    }
    let two_of_two = spec(Some(LogSpec {
        keys: vec![log_a.public_key(), log_b.public_key()],
        threshold: 2,
        ..LogSpec::one_key(ORIGIN, log_a.public_key())
    }));
    let trust = load(&two_of_two).unwrap();
    let log_role = trust.log().unwrap();
    assert_eq!(
        (log_role.origin().as_str(), log_role.threshold()),
        (ORIGIN, 2)
    );
    assert!(log_role.holds(&log_a.key_id()) && !log_role.holds(&other.key_id()));
    let verifier = log_role.verifier();
    let checkpoint = Checkpoint::new(ORIGIN, 0, empty_root()).unwrap();
    let once = sign_checkpoint(&checkpoint, &name(ORIGIN), &log_a).unwrap();
    let err = verifier.open_checkpoint(once.as_bytes()).unwrap_err();
    assert_eq!(err.code(), "trust.threshold_not_met");
    let twice = cosign_note(&once, &name(ORIGIN), &log_b).unwrap();
    assert_eq!(
        verifier
            .open_checkpoint(twice.as_bytes())
            .unwrap()
            .checkpoint(),
        &checkpoint
    );
    // The same key twice is one key.
    let same = cosign_note(&once, &name(ORIGIN), &log_a).unwrap();
    assert_eq!(
        verifier
            .open_checkpoint(same.as_bytes())
            .unwrap_err()
            .code(),
        "trust.threshold_not_met"
    );

    for (log, code) in [
        (
            LogSpec::one_key("a log", log_a.public_key()),
            "trust.malformed",
        ),
        (
            LogSpec {
                threshold: 2,
                ..LogSpec::one_key(ORIGIN, log_a.public_key())
            },
            "trust.invalid_threshold",
        ),
        (
            LogSpec {
                keys: vec![],
                ..LogSpec::one_key(ORIGIN, log_a.public_key())
            },
            "trust.invalid_threshold",
        ),
    ] {
        let bytes = create_trust_root(&spec(Some(log)), &[&root]);
        let got = bytes.and_then(|v1| verify_trust_chain(&root.public_key(), &[v1], now, None));
        assert_eq!(got.unwrap_err().code(), code);
    }
}

/// Cosignatures (C2SP `tlog-cosignature`, type 0x04): the signed message, the timestamp, the
/// key ID; a tampered cosignature refuses the note; unknown cosigners are ignored; a log verifier
/// that requires witnesses counts distinct ones.
#[test]
fn witness_cosignatures() {
    let (key, verifier) = log_key();
    let tree = log((0..3).map(entry));
    let head = signed_head(&tree, 3, &key);
    let (w1, w2) = (
        LocalSigningKey::from_seed(&[21; 32]),
        LocalSigningKey::from_seed(&[22; 32]),
    );
    let c1 = CosignerKey::new(name("witness.example/w1"), w1.public_key());
    let c2 = CosignerKey::new(name("witness.example/w2"), w2.public_key());
    assert_eq!(CosignerKey::parse(&c1.to_string()).unwrap(), c1);
    // A note verifier key (type 0x01) is not a cosigner key (type 0x04), and the other way round.
    assert_eq!(
        CosignerKey::parse(&verifier.to_string())
            .unwrap_err()
            .code(),
        "trust.note_key_invalid"
    );
    assert_eq!(
        NoteVerifierKey::parse(&c1.to_string()).unwrap_err().code(),
        "trust.note_key_invalid"
    );

    let once = cosign_checkpoint(&head, c1.name(), &w1, 1_795_000_000).unwrap();
    let note = Note::parse(once.as_bytes()).unwrap();
    let line = &note.signatures()[1];
    assert_eq!((line.name(), line.id()), (c1.name(), c1.id()));
    assert_eq!(&line.signature()[..8], &1_795_000_000u64.to_be_bytes());
    // The signature covers "cosignature/v1\ntime T\n" and the checkpoint text.
    let message = format!("cosignature/v1\ntime 1795000000\n{}", note.text());
    assert!(
        w1.public_key()
            .verify_signature(message.as_bytes(), &line.signature()[8..])
    );
    let verified = verify_cosignatures(&note, &[c1.clone(), c2.clone()], 1).unwrap();
    assert_eq!(
        verified,
        vec![Cosignature {
            cosigner: c1.clone(),
            timestamp: 1_795_000_000
        }]
    );
    assert_eq!(
        verify_cosignatures(&note, &[c1.clone(), c2.clone()], 2)
            .unwrap_err()
            .code(),
        "trust.threshold_not_met"
    );
    // Another time in the line than the one signed: the known cosigner's line fails.
    let mut blob = line.signature().to_vec();
    blob[7] ^= 1;
    let forged_line = format!(
        "\u{2014} witness.example/w1 {}\n",
        BASE64.encode([c1.id().to_be_bytes().as_slice(), &blob].concat())
    );
    let forged = format!("{head}{forged_line}");
    let forged_note = Note::parse(forged.as_bytes()).unwrap();
    assert_eq!(
        verify_cosignatures(&forged_note, std::slice::from_ref(&c1), 1)
            .unwrap_err()
            .code(),
        "trust.note_bad_signature"
    );

    // The log verifier that requires 2 of 2 witnesses.
    let required = one_key(&verifier).with_witnesses(vec![c1.clone(), c2.clone()], 2);
    assert_eq!(
        required
            .open_checkpoint(head.as_bytes())
            .unwrap_err()
            .code(),
        "trust.threshold_not_met"
    );
    assert_eq!(
        required
            .open_checkpoint(once.as_bytes())
            .unwrap_err()
            .code(),
        "trust.threshold_not_met"
    );
    let again = cosign_checkpoint(&once, c1.name(), &w1, 1_795_000_100).unwrap();
    assert_eq!(
        required
            .open_checkpoint(again.as_bytes())
            .unwrap_err()
            .code(),
        "trust.threshold_not_met"
    );
    let twice = cosign_checkpoint(&once, c2.name(), &w2, 1_795_000_000).unwrap();
    let opened = required.open_checkpoint(twice.as_bytes()).unwrap();
    assert_eq!(opened.checkpoint().size(), 3);
    // Without the requirement, cosignatures are unknown signatures and ignored.
    required
        .log_only()
        .open_checkpoint(head.as_bytes())
        .unwrap();
}

/// C2SP `tlog-witness` `add-checkpoint` bodies: the specification's example reads and writes back
/// byte for byte; every malformed body is refused with one code.
#[test]
fn add_checkpoint_bodies_are_read_exactly() {
    let example = "old 20852014\n\
        PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
        jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
        5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
        /6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
        \n\
        example.com/behind-the-sofa\n\
        20852163\n\
        CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
        \n\
        \u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
    let request = parmana_trust::AddCheckpoint::parse(example.as_bytes()).unwrap();
    assert_eq!(request.old_size(), 20_852_014);
    assert_eq!(request.proof().len(), 4);
    assert!(
        request
            .checkpoint()
            .starts_with("example.com/behind-the-sofa\n")
    );
    assert_eq!(request.to_text(), example);
    let hash = "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n";
    let too_many = format!("old 1\n{}\ncp\n", hash.repeat(64));
    let oversized = format!(
        "old 1\n\n{}",
        "x".repeat(parmana_trust::MAX_ADD_CHECKPOINT_BYTES)
    );
    for body in [
        "",
        "old 1",
        "old\n\ncp\n",
        "old -1\n\ncp\n",
        "old 01\n\ncp\n",
        "old 1 \n\ncp\n",
        "Old 1\n\ncp\n",
        "old 1\n\n",
        "old 1\nnot base64\n\ncp\n",
        "old 1\nAAAA\n\ncp\n",
        "old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=",
        "old 18446744073709551616\n\ncp\n",
        too_many.as_str(),
        oversized.as_str(),
    ] {
        let error = parmana_trust::AddCheckpoint::parse(body.as_bytes()).unwrap_err();
        assert_eq!(error.code(), "trust.witness_request_malformed", "{body:?}");
    }
    assert_eq!(
        parmana_trust::AddCheckpoint::parse(&[b'o', b'l', b'd', b' ', b'1', b'\n', b'\n', 0xff])
            .unwrap_err()
            .code(),
        "trust.witness_request_malformed"
    );
    // 63 proof lines are the most allowed.
    let most = format!("old 1\n{}\ncp\n", hash.repeat(63));
    assert_eq!(
        parmana_trust::AddCheckpoint::parse(most.as_bytes())
            .unwrap()
            .proof()
            .len(),
        63
    );
}
