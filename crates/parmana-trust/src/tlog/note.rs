//! C2SP `signed-note` with Ed25519 (signature type 0x01): key names, key IDs, verifier keys, signing, parsing and opening notes.
//!
//! A note is a text ending in a newline, a blank line, and one or more lines
//! `— <key name> base64(key ID ‖ signature)`. The key ID of an Ed25519 key is the first four bytes
//! (big-endian) of `SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)`; the verifier key string is
//! `<name>+<key ID as 8 hex digits>+base64(0x01 ‖ public key)`. Signatures of unknown keys (name
//! or key ID differ) are ignored, a failing signature of a known key refuses the whole note, and a
//! note without a verified signature of a known key is refused.

use std::fmt;

use parmana_canon::Digest;

use crate::keys::{decode_base64, encode_base64};
use crate::{PublicKey, Signer, TrustError};

/// The signature type byte of Ed25519 notes.
const ED25519: u8 = 0x01;

/// The em dash and space that open a signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// The largest note read, in bytes (a checkpoint with a hundred signatures is under 16 KiB).
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// The most signature lines a note may carry (the specification asks for at least 16).
pub const MAX_NOTE_SIGNATURES: usize = 100;

fn key_invalid(message: impl Into<String>) -> TrustError {
    TrustError::NoteKeyInvalid {
        message: message.into(),
    }
}

fn malformed(message: impl Into<String>) -> TrustError {
    TrustError::NoteMalformed {
        message: message.into(),
    }
}

/// A note key name: non-empty, without Unicode spaces, `+` or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoteKeyName(String);

impl NoteKeyName {
    /// Checks `name` against the key-name rules, or refuses it with `trust.note_key_invalid`.
    pub fn parse(name: &str) -> Result<Self, TrustError> {
        if name.is_empty() {
            return Err(key_invalid("a key name must not be empty"));
        }
        if let Some(c) = name
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '+')
        {
            return Err(key_invalid(format!(
                "key name {name:?} contains {c:?} (no spaces, `+` or control characters)"
            )));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NoteKeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key ID of the Ed25519 key `key` named `name`: the first four bytes, big-endian, of
/// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)`.
pub fn note_key_id(name: &NoteKeyName, key: &PublicKey) -> u32 {
    typed_key_id(name, ED25519, key)
}

/// The key ID of `key` under `name` for a signature type: the first four bytes of
/// SHA-256(name ‖ 0x0A ‖ type ‖ key), as C2SP signed-note defines it for every type.
pub(crate) fn typed_key_id(name: &NoteKeyName, signature_type: u8, key: &PublicKey) -> u32 {
    let mut preimage = Vec::with_capacity(name.0.len() + 34);
    preimage.extend_from_slice(name.0.as_bytes());
    preimage.push(b'\n');
    preimage.push(signature_type);
    preimage.extend_from_slice(&key.to_bytes());
    let digest = Digest::of(&preimage);
    let [a, b, c, d, ..] = *digest.as_bytes();
    u32::from_be_bytes([a, b, c, d])
}

/// Reads a key string `<name>+<8 lowercase hex digits>+base64(type ‖ 32-byte key)` whose type
/// byte is `signature_type`, and checks that the key ID is the ID of that name and key
/// (`trust.note_key_invalid` otherwise, with `what` naming the kind of key and `wrong_type`
/// saying which type was expected).
pub(crate) fn parse_typed_key(
    text: &str,
    what: &str,
    signature_type: u8,
    wrong_type: &str,
) -> Result<(NoteKeyName, u32, PublicKey), TrustError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hash), Some(encoded)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(key_invalid(format!(
            "{what} is <name>+<key ID>+<base64 key>"
        )));
    };
    let name = NoteKeyName::parse(name)?;
    if hash.len() != 8 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(key_invalid("the key ID must be 8 lowercase hex digits"));
    }
    let id = u32::from_str_radix(hash, 16).map_err(|e| key_invalid(e.to_string()))?;
    let bytes =
        decode_base64(encoded).ok_or_else(|| key_invalid("the key is not canonical base64"))?;
    let Some((&found, raw)) = bytes.split_first() else {
        return Err(key_invalid(wrong_type));
    };
    if found != signature_type {
        return Err(key_invalid(wrong_type));
    }
    let raw: &[u8; 32] = raw
        .try_into()
        .map_err(|_| key_invalid("an Ed25519 key has 32 bytes"))?;
    let key = PublicKey::from_bytes(raw)?;
    let expected = typed_key_id(&name, signature_type, &key);
    if expected != id {
        return Err(key_invalid(format!(
            "key ID {id:08x} is not the ID of this name and key ({expected:08x})"
        )));
    }
    Ok((name, id, key))
}

/// Writes a key string `<name>+<key ID>+base64(type ‖ key)`.
pub(crate) fn write_typed_key(
    f: &mut fmt::Formatter<'_>,
    name: &NoteKeyName,
    id: u32,
    signature_type: u8,
    key: &PublicKey,
) -> fmt::Result {
    let mut typed = vec![signature_type];
    typed.extend_from_slice(&key.to_bytes());
    write!(f, "{name}+{id:08x}+{}", encode_base64(&typed))
}

/// A note verifier key: a key name and the Ed25519 public key it stands for.
///
/// ```
/// use parmana_trust::{LocalSigningKey, NoteKeyName, NoteVerifierKey};
/// let key = NoteVerifierKey::new(NoteKeyName::parse("example.com/log").unwrap(), LocalSigningKey::from_seed(&[1; 32]).public_key());
/// let text = key.to_string();
/// assert!(text.starts_with("example.com/log+"));
/// assert_eq!(NoteVerifierKey::parse(&text).unwrap(), key);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifierKey {
    name: NoteKeyName,
    id: u32,
    key: PublicKey,
}

impl NoteVerifierKey {
    /// The verifier key of `key` under `name`.
    pub fn new(name: NoteKeyName, key: PublicKey) -> Self {
        let id = note_key_id(&name, &key);
        Self { name, id, key }
    }

    /// Reads `<name>+<8 lowercase hex digits>+base64(0x01 ‖ 32-byte key)`, refusing anything else
    /// (another signature type, a key ID that is not the key's, a non-canonical or weak key) with
    /// `trust.note_key_invalid`.
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        let (name, id, key) = parse_typed_key(
            text,
            "a verifier key",
            ED25519,
            "only Ed25519 verifier keys (signature type 0x01) are supported",
        )?;
        Ok(Self { name, id, key })
    }

    /// The key name.
    pub fn name(&self) -> &NoteKeyName {
        &self.name
    }

    /// The key ID.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }
}

impl fmt::Display for NoteVerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_typed_key(f, &self.name, self.id, ED25519, &self.key)
    }
}

/// One signature line of a note, as read (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    name: NoteKeyName,
    id: u32,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// The key name of the line.
    pub fn name(&self) -> &NoteKeyName {
        &self.name
    }

    /// The key ID of the line.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The signature bytes after the key ID.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    pub(crate) fn new(name: NoteKeyName, id: u32, signature: Vec<u8>) -> Self {
        Self {
            name,
            id,
            signature,
        }
    }

    fn line(&self) -> String {
        let mut blob = self.id.to_be_bytes().to_vec();
        blob.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, encode_base64(&blob))
    }

    fn parse(line: &str) -> Result<Self, TrustError> {
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or_else(|| malformed("a signature line starts with an em dash and a space"))?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("a signature line is `— <name> <base64>`"))?;
        let name = NoteKeyName::parse(name).map_err(|e| malformed(e.to_string()))?;
        let blob = decode_base64(encoded)
            .ok_or_else(|| malformed("a signature is not canonical base64"))?;
        let Some((id, signature)) = blob.split_first_chunk::<4>() else {
            return Err(malformed("a signature is shorter than its key ID"));
        };
        if signature.is_empty() {
            return Err(malformed("a signature line carries no signature"));
        }
        Ok(Self {
            name,
            id: u32::from_be_bytes(*id),
            signature: signature.to_vec(),
        })
    }
}

/// A signed note as read: its text (ending in a newline) and its signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

/// Refuses text that is not note text: empty, not ending in a newline, or holding a control
/// character other than the newline.
fn check_text(text: &str) -> Result<(), TrustError> {
    if !text.ends_with('\n') {
        return Err(malformed("the note text must end with a newline"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(malformed(
            "a note holds no control characters but the newline",
        ));
    }
    Ok(())
}

impl Note {
    /// Reads a signed note, refusing anything the format does not allow with
    /// `trust.note_malformed` (over [`MAX_NOTE_BYTES`] or [`MAX_NOTE_SIGNATURES`] included).
    pub fn parse(bytes: &[u8]) -> Result<Self, TrustError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(malformed(format!(
                "{} bytes, more than the {MAX_NOTE_BYTES} allowed",
                bytes.len()
            )));
        }
        let all = std::str::from_utf8(bytes).map_err(|_| malformed("a note is UTF-8"))?;
        check_text(all)?;
        let split = all
            .rfind("\n\n")
            .ok_or_else(|| malformed("no blank line before the signatures"))?;
        let (text, signatures) = (&all[..=split], &all[split + 2..]);
        if signatures.is_empty() {
            return Err(malformed("a note carries at least one signature"));
        }
        let lines: Vec<&str> = signatures
            .strip_suffix('\n')
            .unwrap_or(signatures)
            .split('\n')
            .collect();
        if lines.len() > MAX_NOTE_SIGNATURES {
            return Err(malformed(format!(
                "{} signatures, more than the {MAX_NOTE_SIGNATURES} allowed",
                lines.len()
            )));
        }
        let signatures = lines
            .into_iter()
            .map(NoteSignature::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note text, with its final newline. Not to be trusted before [`open_note`] verified it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    pub(crate) fn push_signature(&mut self, signature: NoteSignature) {
        self.signatures.push(signature);
    }

    /// Keeps only the signature lines `keep` accepts (called once per line, in order).
    pub fn retain_signatures(&mut self, mut keep: impl FnMut(&NoteSignature) -> bool) {
        self.signatures.retain(|line| keep(line));
    }

    /// The note's bytes: text, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for signature in &self.signatures {
            out.push_str(&signature.line());
        }
        out
    }
}

/// Signs `text` (note text, ending in a newline) with `signer` as note key `name`, returning the
/// signed note.
///
/// ```
/// use parmana_trust::{LocalSigningKey, NoteKeyName, NoteVerifierKey, open_note, sign_note};
/// let key = LocalSigningKey::from_seed(&[1; 32]);
/// let name = NoteKeyName::parse("example.com/log").unwrap();
/// let note = sign_note("hello\n", &name, &key).unwrap();
/// let verifier = NoteVerifierKey::new(name, key.public_key());
/// assert_eq!(open_note(note.as_bytes(), &[verifier]).unwrap().text(), "hello\n");
/// ```
pub fn sign_note(
    text: &str,
    name: &NoteKeyName,
    signer: &dyn Signer,
) -> Result<String, TrustError> {
    check_text(text)?;
    let key = signer.public_key();
    let signature = NoteSignature {
        name: name.clone(),
        id: note_key_id(name, &key),
        signature: crate::keys::sign_checked(signer, &key, text.as_bytes())?.to_vec(),
    };
    Ok(Note {
        text: text.to_owned(),
        signatures: vec![signature],
    }
    .to_text())
}

/// Adds the signature of `signer`, as note key `name`, to the signed note `note` (a cosignature
/// of the same text by another key, for a log whose `log` role needs several).
pub fn cosign_note(
    note: &str,
    name: &NoteKeyName,
    signer: &dyn Signer,
) -> Result<String, TrustError> {
    let mut note = Note::parse(note.as_bytes())?;
    if note.signatures.len() >= MAX_NOTE_SIGNATURES {
        return Err(malformed(format!(
            "a note carries at most {MAX_NOTE_SIGNATURES} signatures"
        )));
    }
    let key = signer.public_key();
    note.signatures.push(NoteSignature {
        name: name.clone(),
        id: note_key_id(name, &key),
        signature: crate::keys::sign_checked(signer, &key, note.text.as_bytes())?.to_vec(),
    });
    Ok(note.to_text())
}

/// A note whose signatures by known keys all verified, and at least one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    note: Note,
    verified_by: Vec<NoteVerifierKey>,
}

impl VerifiedNote {
    /// The verified text.
    pub fn text(&self) -> &str {
        &self.note.text
    }

    /// The note as read.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The known keys whose signatures verified, each key once (one key listed twice, or under
    /// two names, is one key: a threshold counts it once), in the order of `verifiers`.
    pub fn verified_by(&self) -> &[NoteVerifierKey] {
        &self.verified_by
    }
}

/// Reads and verifies a signed note against `verifiers`: a signature whose name and key ID match
/// a verifier must verify (`trust.note_bad_signature` otherwise), the others are ignored, and at
/// least one must have verified (`trust.note_unverified`).
pub fn open_note(bytes: &[u8], verifiers: &[NoteVerifierKey]) -> Result<VerifiedNote, TrustError> {
    let note = Note::parse(bytes)?;
    let mut verified = vec![false; verifiers.len()];
    for signature in &note.signatures {
        for (known, seen) in verifiers.iter().zip(verified.iter_mut()) {
            if known.name != signature.name || known.id != signature.id {
                continue;
            }
            if !known
                .key
                .verify_signature(note.text.as_bytes(), &signature.signature)
            {
                return Err(TrustError::NoteBadSignature {
                    name: signature.name.to_string(),
                });
            }
            *seen = true;
        }
    }
    let mut verified_by: Vec<NoteVerifierKey> = Vec::new();
    for (known, _) in verifiers.iter().zip(&verified).filter(|(_, seen)| **seen) {
        if !verified_by.iter().any(|kept| kept.key == known.key) {
            verified_by.push(known.clone());
        }
    }
    if verified_by.is_empty() {
        return Err(TrustError::NoteUnverified);
    }
    Ok(VerifiedNote { note, verified_by })
}
