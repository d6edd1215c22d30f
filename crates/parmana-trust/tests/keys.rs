//! Keys: key ids, PEM files, interoperability with OpenSSL and Node, and no private key in output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use parmana_canon::Digest;
use parmana_trust::*;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn key_id_is_sha256_of_the_raw_public_key() {
    let key = LocalSigningKey::from_seed(&[9; 32]);
    let raw = key.public_key().to_bytes();
    assert_eq!(key.key_id().to_string(), Digest::of(&raw).to_string());
    assert_eq!(key.public_key().key_id(), key.key_id());
    let document = key.public_key().to_document();
    assert_eq!(document.keytype, "ed25519");
    assert_eq!(
        PublicKey::from_document(&document).unwrap(),
        key.public_key()
    );
}

#[test]
fn pem_round_trips_and_generation_differs() {
    let key = LocalSigningKey::generate().unwrap();
    let again = LocalSigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    assert_eq!(again.sign(b"m").unwrap(), key.sign(b"m").unwrap());
    let public = PublicKey::from_pem(&key.public_key().to_pem().unwrap()).unwrap();
    assert_eq!(public, key.public_key());
    assert_ne!(
        LocalSigningKey::generate().unwrap().public_key(),
        key.public_key()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    key.write_pem_file(&path).unwrap();
    assert_eq!(
        LocalSigningKey::read_pem_file(&path).unwrap().public_key(),
        key.public_key()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Another key is never written over the first (perhaps its only copy).
    let other = LocalSigningKey::generate().unwrap();
    assert!(other.write_pem_file(&path).is_err());
    assert_eq!(
        LocalSigningKey::read_pem_file(&path).unwrap().public_key(),
        key.public_key()
    );
}

#[test]
fn private_keys_never_appear_in_debug_or_errors() {
    let key = LocalSigningKey::from_seed(&[42; 32]);
    let pem = key.to_pkcs8_pem().unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let debug = format!("{key:?}");
    assert!(debug.contains(&key.key_id().to_string()));
    assert!(!debug.contains(&body[16..]), "{debug}");
    assert!(!debug.contains("2a2a2a"), "{debug}");
    assert!(!debug.contains("42, 42"), "{debug}");
    // A broken PEM: the error must not echo the key material back.
    let broken = pem.replace("-----END PRIVATE KEY-----", "");
    let err = LocalSigningKey::from_pkcs8_pem(&broken).unwrap_err();
    assert_eq!(err.code(), "trust.invalid_key");
    assert!(!err.to_string().contains(&body[16..]));
    assert!(!format!("{err:?}").contains(&body[16..]));
}

#[test]
fn bad_public_keys_are_refused() {
    for public in [
        "AAAA",                                         // too short
        "S8CrLMmcFmrrSznegBYnK2fbrcWaV9suQ9zlHySGEXh=", // stray bits: not canonical base64
        " S8CrLMmcFmrrSznegBYnK2fbrcWaV9suQ9zlHySGEXg=",
    ] {
        let document = PublicKeyDocument {
            keytype: "ed25519".to_owned(),
            public: public.to_owned(),
        };
        assert_eq!(
            PublicKey::from_document(&document).unwrap_err().code(),
            "trust.invalid_key",
            "{public}"
        );
    }
    // Small-order and non-canonical encodings have codes of their own (tests/key_encodings.rs).
    let identity = PublicKeyDocument {
        keytype: "ed25519".to_owned(),
        public: "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
    };
    assert_eq!(
        PublicKey::from_document(&identity).unwrap_err().code(),
        "trust.weak_public_key"
    );
    let rsa = PublicKeyDocument {
        keytype: "rsa".to_owned(),
        public: common::key("policy").public_key().to_document().public,
    };
    assert!(PublicKey::from_document(&rsa).is_err());
    assert!(
        PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .is_err()
    );
}

#[test]
fn verification_is_strict() {
    let key = LocalSigningKey::from_seed(&[3; 32]);
    let sig = key.sign(b"message").unwrap();
    let public = key.public_key();
    assert!(public.verify_signature(b"message", &sig));
    assert!(!public.verify_signature(b"messagf", &sig));
    assert!(!public.verify_signature(b"message", &sig[..63]));
    // S + L (the group order) is a malleated signature that non-strict verifiers may accept.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut malleated = sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(malleated[32 + i]) + u16::from(L[i]) + carry;
        malleated[32 + i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    assert!(!public.verify_signature(b"message", &malleated));
}

#[test]
fn openssl_keys_load_here_and_ours_load_in_openssl() {
    if !common::tool_present("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    std::fs::write(d("msg"), b"interop message").unwrap();

    // Their key, our signature, their verification.
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(d("theirs.pem")));
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(d("theirs.pem"))
        .arg("-out")
        .arg(d("theirs.pub")));
    let theirs = LocalSigningKey::read_pem_file(&d("theirs.pem")).unwrap();
    assert_eq!(
        read_public_key_file(&d("theirs.pub")).unwrap(),
        theirs.public_key()
    );
    std::fs::write(d("our.sig"), theirs.sign(b"interop message").unwrap()).unwrap();
    run(Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
        .arg(d("theirs.pub"))
        .arg("-in")
        .arg(d("msg"))
        .arg("-sigfile")
        .arg(d("our.sig")));

    // Our key, their signature, our verification.
    let ours = LocalSigningKey::from_seed(&[5; 32]);
    ours.write_pem_file(&d("ours.pem")).unwrap();
    write_public_key_file(&ours.public_key(), &d("ours.pub")).unwrap();
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(d("ours.pem"))
        .arg("-out")
        .arg(d("derived.pub")));
    assert_eq!(
        std::fs::read(d("derived.pub")).unwrap(),
        std::fs::read(d("ours.pub")).unwrap(),
        "OpenSSL derives the same SPKI PEM from our private key"
    );
    run(Command::new("openssl")
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(d("ours.pem"))
        .arg("-in")
        .arg(d("msg"))
        .arg("-out")
        .arg(d("their.sig")));
    let sig = std::fs::read(d("their.sig")).unwrap();
    assert!(ours.public_key().verify_signature(b"interop message", &sig));
    assert_eq!(
        sig,
        ours.sign(b"interop message").unwrap(),
        "Ed25519 is deterministic"
    );
}

#[test]
fn node_keys_load_here_and_ours_load_in_node() {
    if !common::tool_present("node") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = LocalSigningKey::from_seed(&[6; 32]);
    ours.write_pem_file(&dir.path().join("ours.pem")).unwrap();
    let script = r#"
const crypto = require('crypto');
const fs = require('fs');
const dir = process.argv[1];
const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
fs.writeFileSync(dir + '/node.pem', privateKey.export({ type: 'pkcs8', format: 'pem' }));
fs.writeFileSync(dir + '/node.pub', publicKey.export({ type: 'spki', format: 'pem' }));
const ours = crypto.createPrivateKey(fs.readFileSync(dir + '/ours.pem'));
fs.writeFileSync(dir + '/ours-by-node.pub', crypto.createPublicKey(ours).export({ type: 'spki', format: 'pem' }));
fs.writeFileSync(dir + '/node.sig', crypto.sign(null, Buffer.from('from node'), ours));
"#;
    run(Command::new("node").arg("-e").arg(script).arg(dir.path()));
    let node_key = LocalSigningKey::read_pem_file(&dir.path().join("node.pem")).unwrap();
    assert_eq!(
        read_public_key_file(&dir.path().join("node.pub")).unwrap(),
        node_key.public_key()
    );
    assert_eq!(
        read_public_key_file(&dir.path().join("ours-by-node.pub")).unwrap(),
        ours.public_key()
    );
    let sig = std::fs::read(dir.path().join("node.sig")).unwrap();
    assert!(ours.public_key().verify_signature(b"from node", &sig));
    assert!(Path::new(&dir.path().join("node.pem")).is_file());
}

#[test]
fn fixture_keys_are_distinct_and_root_pub_is_root_1() {
    let names = ["root-1", "root-2", "policy", "release", "attestation"];
    let ids: std::collections::BTreeSet<_> =
        names.iter().map(|n| common::key(n).key_id()).collect();
    assert_eq!(ids.len(), names.len());
    assert_eq!(common::pinned(), common::key("root-1").public_key());
}

/// Key files are read bounded: 64 KiB is the most a key file may be (a PEM key is ~120 bytes),
/// so a huge file (sparse here: no disk used) is refused without being read whole.
#[test]
fn key_files_longer_than_64_kib_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pem = common::key("policy").public_key().to_pem().unwrap();
    let padded = dir.path().join("padded.pub");
    // Trailing whitespace up to exactly 64 KiB still reads; one byte more does not.
    let mut text = pem.clone().into_bytes();
    text.resize(64 * 1024, b'\n');
    std::fs::write(&padded, &text).unwrap();
    assert_eq!(
        read_public_key_file(&padded).unwrap(),
        common::key("policy").public_key()
    );
    text.push(b'\n');
    std::fs::write(&padded, &text).unwrap();
    assert_eq!(
        read_public_key_file(&padded).unwrap_err().code(),
        "trust.invalid_key"
    );
    let huge = dir.path().join("huge.pem");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(3 << 29)
        .unwrap();
    for err in [
        read_public_key_file(&huge).unwrap_err(),
        LocalSigningKey::read_pem_file(&huge).unwrap_err(),
        read_key_file(&huge).unwrap_err(),
    ] {
        assert_eq!(err.code(), "trust.invalid_key", "{err}");
    }
}

/// `read_key_file` tells the two kinds apart by their PEM label and keeps the code of a
/// refused public key.
#[test]
fn key_files_of_either_kind_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let key = common::key("policy");
    let private = dir.path().join("k.pem");
    let public = dir.path().join("k.pub");
    key.write_pem_file(&private).unwrap();
    write_public_key_file(&key.public_key(), &public).unwrap();
    assert!(matches!(
        read_key_file(&private).unwrap(),
        KeyFile::Private(_)
    ));
    assert!(matches!(
        read_key_file(&public).unwrap(),
        KeyFile::Public(_)
    ));
    for path in [&private, &public] {
        assert_eq!(read_key_file(path).unwrap().public_key(), key.public_key());
    }
    std::fs::write(&public, "not a key\n").unwrap();
    assert_eq!(
        read_key_file(&public).unwrap_err().code(),
        "trust.invalid_key"
    );
    assert_eq!(
        read_key_file(&dir.path().join("missing"))
            .unwrap_err()
            .code(),
        "trust.io"
    );
}
