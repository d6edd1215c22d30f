//! Ed25519 keys: key ids, public keys in documents, PEM files, the `Signer` trait, and strict single and batch verification.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use parmana_canon::Digest;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::TrustError;

/// The only key type Parmana accepts, as written in documents.
pub(crate) const KEYTYPE_ED25519: &str = "ed25519";

/// A key id: `sha256:` + hex SHA-256 of the 32 raw public-key bytes.
///
/// ```
/// use parmana_trust::LocalSigningKey;
/// let key = LocalSigningKey::from_seed(&[7; 32]);
/// let id = key.key_id();
/// assert!(id.to_string().starts_with("sha256:"));
/// assert_eq!(id.to_string().parse::<parmana_trust::KeyId>().unwrap(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Digest);

impl KeyId {
    /// The key id of a public key.
    pub fn of(public_key: &PublicKey) -> Self {
        Self(Digest::of(&public_key.to_bytes()))
    }

    /// The digest this id is written as.
    pub const fn digest(&self) -> &Digest {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl FromStr for KeyId {
    type Err = TrustError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<Digest>()
            .map(Self)
            .map_err(|e| TrustError::InvalidKeyId {
                text: s.to_owned(),
                message: e.to_string(),
            })
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

/// A public key as written inside documents: `{"keytype": "ed25519", "public": <base64>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyDocument {
    /// Always `ed25519`.
    pub keytype: String,
    /// Standard base64 (with padding) of the 32 raw public-key bytes.
    pub public: String,
}

impl PublicKey {
    /// A public key from its 32 raw bytes. Refused, in this order: bytes that are not the
    /// encoding of a curve point (`trust.invalid_key`); an encoding other than the point's one
    /// canonical encoding (`trust.non_canonical_public_key`); a small-order point, or one with a
    /// small-order component — not in the prime-order subgroup every key made from a secret is
    /// in (`trust.weak_public_key`: with such a component, a signature checked alone and checked
    /// in a batch could disagree).
    ///
    /// `ed25519-dalek` decodes `y` modulo p and ignores the sign bit when `x = 0`, so up to
    /// four byte strings decode to one point; each would have its own key id. Only the bytes
    /// that decompressing and compressing again gives back are accepted, so one point has one
    /// key id and the threshold rule, which counts keys by their bytes, counts it once.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, TrustError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| TrustError::InvalidKey {
            message: "not a valid Ed25519 public key".to_owned(),
        })?;
        let canonical = key.to_edwards().compress().to_bytes();
        if canonical != *bytes {
            return Err(TrustError::NonCanonicalPublicKey {
                key_id: Digest::of(bytes).to_string(),
                canonical_key_id: Digest::of(&canonical).to_string(),
            });
        }
        if key.is_weak() || !key.to_edwards().is_torsion_free() {
            return Err(TrustError::WeakPublicKey {
                key_id: Digest::of(bytes).to_string(),
            });
        }
        Ok(Self(key))
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key id (`sha256:` + hex SHA-256 of the raw bytes).
    pub fn key_id(&self) -> KeyId {
        KeyId::of(self)
    }

    /// Reads an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`), as OpenSSL and Node write it.
    pub fn from_pem(pem: &str) -> Result<Self, TrustError> {
        let key =
            VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| TrustError::InvalidKey {
                message: format!("not an Ed25519 SPKI PEM public key: {e}"),
            })?;
        Self::from_bytes(key.as_bytes())
    }

    /// Writes the key as SPKI PEM with `\n` line endings.
    pub fn to_pem(&self) -> Result<String, TrustError> {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| TrustError::InvalidKey {
                message: format!("cannot encode public key: {e}"),
            })
    }

    /// The key as written inside documents.
    pub fn to_document(&self) -> PublicKeyDocument {
        PublicKeyDocument {
            keytype: KEYTYPE_ED25519.to_owned(),
            public: BASE64.encode(self.to_bytes()),
        }
    }

    /// Reads the in-document form; only `ed25519` keys with exactly 32 bytes are accepted.
    pub fn from_document(document: &PublicKeyDocument) -> Result<Self, TrustError> {
        if document.keytype != KEYTYPE_ED25519 {
            return Err(TrustError::InvalidKey {
                message: format!("unsupported keytype {:?}", document.keytype),
            });
        }
        let bytes = decode_base64(&document.public).ok_or_else(|| TrustError::InvalidKey {
            message: "public key is not canonical base64".to_owned(),
        })?;
        let raw: [u8; 32] = bytes.try_into().map_err(|_| TrustError::InvalidKey {
            message: "public key is not 32 bytes".to_owned(),
        })?;
        Self::from_bytes(&raw)
    }

    /// Checks an Ed25519 signature with `verify_strict` (no malleable or small-order forms).
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.0
            .verify_strict(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }

    /// [`verify_signature`](Self::verify_signature) for a signature already known to be 64 bytes.
    pub(crate) fn verify_strict(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.0
            .verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// Refuses a key map in which two ids resolve to one Ed25519 point (compared by the point's
/// canonical encoding), with `trust.duplicate_public_key`. A trust root cannot list such a pair
/// today — [`PublicKey::from_bytes`] accepts only canonical encodings, and a key id must be the
/// digest of its key's bytes — so this check keeps the promise "one point, one id" on its own,
/// should either rule change.
pub(crate) fn check_distinct_points(keys: &BTreeMap<KeyId, PublicKey>) -> Result<(), TrustError> {
    let mut seen: BTreeMap<[u8; 32], KeyId> = BTreeMap::new();
    for (id, key) in keys {
        let point = key.0.to_edwards().compress().to_bytes();
        if let Some(first) = seen.insert(point, *id) {
            return Err(TrustError::DuplicatePublicKey {
                first: first.to_string(),
                second: id.to_string(),
            });
        }
    }
    Ok(())
}

/// Decodes standard base64 with padding, refusing non-canonical encodings (stray bits,
/// missing or extra padding, whitespace): the `STANDARD` engine requires canonical padding and
/// zero trailing bits, so each byte string has exactly one accepted text (tested below).
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

/// Decodes a 64-byte signature written in canonical base64 (see [`decode_base64`]).
pub(crate) fn decode_signature(text: &str) -> Option<[u8; 64]> {
    // 64 bytes are exactly 88 characters; anything else is refused before decoding.
    if text.len() != 88 {
        return None;
    }
    let mut out = [0u8; 66];
    match BASE64.decode_slice(text, &mut out) {
        Ok(64) => {
            let mut sig = [0u8; 64];
            sig.copy_from_slice(&out[..64]);
            Some(sig)
        }
        _ => None,
    }
}

/// Decodes a 32-byte hash written in canonical base64 (see [`decode_base64`]) straight into an
/// array: exactly what `decode_base64` accepts with a 32-byte result, without allocating.
pub(crate) fn decode_hash(text: &str) -> Option<[u8; 32]> {
    // 32 bytes are exactly 44 characters (one `=`); anything else is refused before decoding.
    if text.len() != 44 {
        return None;
    }
    let mut out = [0u8; 33];
    match BASE64.decode_slice(text, &mut out) {
        Ok(32) => {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&out[..32]);
            Some(hash)
        }
        _ => None,
    }
}

/// Encodes standard base64 with padding.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Something that signs messages with one Ed25519 key.
///
/// [`LocalSigningKey`] keeps the key in memory; a hardware or cloud key implements the
/// same trait and every caller keeps working.
pub trait Signer: Send + Sync {
    /// The public key whose private half signs.
    fn public_key(&self) -> PublicKey;

    /// The key id of [`public_key`](Signer::public_key).
    fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// The 64-byte Ed25519 signature of `message`.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TrustError>;

    /// The key that authenticates the claims a runtime signing with this key records in a
    /// replay store ([`ClaimKey`]). The default derives it with one signature each call; a
    /// signer that keeps it (as [`LocalSigningKey`] does) returns the same key.
    fn claim_key(&self) -> Result<ClaimKey, TrustError> {
        ClaimKey::derive(self)
    }

    /// The key in memory this signer signs with, if it is one (a [`LocalSigningKey`] is its
    /// own): [`sign_checked`] then signs with that key itself — the signature is computed by
    /// this crate, from the secret whose public half the document names, and is not verified
    /// again — whatever [`sign`](Signer::sign) would answer. Every other signer's signature (a
    /// hardware or remote key's, the default) is verified first.
    fn local_key(&self) -> Option<&LocalSigningKey> {
        None
    }
}

/// The signature of `message` by `signer`, which the document names by `key`: made by this
/// crate where the signer is a key in memory whose public half is `key`
/// ([`Signer::local_key`]), else asked of the signer and verified under `key` (one Ed25519
/// verification), so that a hardware or remote key answering another key's signature (a key
/// version rotated under a cached public key, a fault) is refused as `trust.signing_failed`
/// before the signature goes into a document. Every signature this crate puts in a document (an
/// attestation, a checkpoint, a cosignature, a signed document, the claim key's derivation) is
/// made by it.
pub fn sign_checked(
    signer: &(impl Signer + ?Sized),
    key: &PublicKey,
    message: &[u8],
) -> Result<[u8; 64], TrustError> {
    if let Some(local) = signer.local_key()
        && local.public_key() == *key
    {
        return local.sign(message);
    }
    let signature = signer.sign(message)?;
    if !key.verify_strict(message, &signature) {
        return Err(TrustError::SigningFailed {
            message: format!(
                "the signer for key {} answered with a signature that does not verify under it",
                key.key_id()
            ),
        });
    }
    Ok(signature)
}

/// The message [`check_signer`] has a signer sign (twice).
const SIGNER_CHECK_MESSAGE: &[u8] =
    b"parmana: a signer's check before a runtime uses it (never a document)";

/// Checks a signer before a runtime uses it (`RuntimeBuilder::build`): its key id is its public
/// key's, its signature of one fixed message verifies under that key, and signing that message
/// again gives the same bytes. Ed25519 as RFC 8032 defines it is deterministic, and the key that authenticates the
/// runtime's claims ([`ClaimKey`]) is derived from a signature, so a signer that randomizes
/// (hedged signing) would leave every claim it made unrecoverable. A signer failing a check is
/// `trust.signing_failed`; an error its `sign` returns is passed on as it is.
pub fn check_signer(signer: &(impl Signer + ?Sized)) -> Result<(), TrustError> {
    if signer.key_id() != signer.public_key().key_id() {
        return Err(TrustError::SigningFailed {
            message: format!(
                "the signer names key {} but its public key is {}",
                signer.key_id(),
                signer.public_key().key_id()
            ),
        });
    }
    let first = signer.sign(SIGNER_CHECK_MESSAGE)?;
    if !signer
        .public_key()
        .verify_strict(SIGNER_CHECK_MESSAGE, &first)
    {
        return Err(TrustError::SigningFailed {
            message: format!(
                "the signer for key {} signs with another key: its signature does not verify \
                 under the key it names",
                signer.key_id()
            ),
        });
    }
    if signer.sign(SIGNER_CHECK_MESSAGE)? != first {
        return Err(TrustError::SigningFailed {
            message: format!(
                "the signer for key {} is not deterministic: two signatures of one message \
                 differ (Ed25519 as RFC 8032 defines it; the key that authenticates claims is \
                 derived from a signature)",
                signer.key_id()
            ),
        });
    }
    Ok(())
}

/// A secret key that authenticates the claims a runtime records in a replay store
/// (`docs/trust-model.md` §8.1): a claim carries an HMAC-SHA256 tag of its recorded inputs under
/// this key, and recovery completes — signs — only a claim whose tag it can make again. Whoever
/// can write the store but holds no attestation key cannot make one.
///
/// It is derived from the attestation key itself: the SHA-256 of the key's Ed25519 signature of
/// one fixed canonical message ([`CLAIM_KEY_PURPOSE`]), deterministic, so every process holding
/// the key derives the same (a server holding the same attestation keys recovers what another
/// one claimed; one with other keys refuses such a claim, which that server's keys complete),
/// and never published
/// (the key signs nothing else of that shape: attestations are DSSE, every document has its own
/// `_type`). Its `Debug` output shows nothing of it.
/// The bytes are scrubbed from memory when it is dropped (it is as secret as the signing key for
/// what it authenticates), so it is `Clone` and not `Copy`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ClaimKey([u8; 32]);

/// The message whose signature a [`ClaimKey`] is derived from (signed as its canonical bytes).
pub const CLAIM_KEY_PURPOSE: &str =
    "parmana: authenticate the claims this key's runtime records in a replay store";

impl ClaimKey {
    /// Derives the claim key of `signer` (one signature, made through [`sign_checked`]: a key in
    /// memory signs itself, any other signer's answer is verified).
    pub fn derive(signer: &(impl Signer + ?Sized)) -> Result<Self, TrustError> {
        let message = parmana_canon::canonicalize_value(&serde_json::json!({
            "purpose": CLAIM_KEY_PURPOSE,
            "version": 1,
        }))
        .map_err(|e| TrustError::SigningFailed {
            message: e.to_string(),
        })?;
        // Checked as every signature is: a signer answering another key's signature would tag
        // claims that the key it names could never authenticate again (`recover`).
        // The signature is the key's seed (whoever holds it derives the key): scrubbed once used.
        let signature = Zeroizing::new(sign_checked(signer, &signer.public_key(), &message)?);
        Ok(Self(*Digest::of(signature.as_slice()).as_bytes()))
    }

    /// The tag of `inputs` (the canonical bytes a claim records).
    pub fn tag(&self, inputs: &[u8]) -> Digest {
        Digest::hmac(&self.0, inputs)
    }
}

impl fmt::Debug for ClaimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimKey(..)")
    }
}

/// An Ed25519 private key held in memory. Its `Debug` output shows only the key id.
pub struct LocalSigningKey {
    key: SigningKey,
    public: PublicKey,
    /// Computed once: every execution asks for it several times (role checks, signing).
    key_id: KeyId,
    /// Derived once, on first use: every execution tags its claim with it.
    claim_key: std::sync::OnceLock<ClaimKey>,
}

impl LocalSigningKey {
    /// The key whose 32-byte secret seed is `seed` (deterministic; for tests and fixtures).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_signing_key(SigningKey::from_bytes(seed))
    }

    fn from_signing_key(key: SigningKey) -> Self {
        let public = PublicKey(key.verifying_key());
        Self {
            key,
            public,
            key_id: public.key_id(),
            claim_key: std::sync::OnceLock::new(),
        }
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, TrustError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| TrustError::SigningFailed {
            message: format!("operating system randomness unavailable: {e}"),
        })?;
        let key = Self::from_seed(&seed);
        seed.zeroize();
        Ok(key)
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), as written by
    /// `openssl genpkey -algorithm ed25519` or Node's `crypto`.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, TrustError> {
        let key = SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| TrustError::InvalidKey {
            message: "not an Ed25519 PKCS#8 PEM private key".to_owned(),
        })?;
        Ok(Self::from_signing_key(key))
    }

    /// The key as PKCS#8 v1 PEM (the form OpenSSL writes), `\n` line endings. It is the secret:
    /// the text is scrubbed from memory when the value is dropped.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, TrustError> {
        let mut pair = KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        let pem = pair.to_pkcs8_pem(LineEnding::LF);
        // `KeypairBytes` scrubs itself when dropped (the `ed25519` crate's `zeroize` feature,
        // turned on in the workspace); scrubbed here too, whatever the features of a build.
        pair.secret_key.zeroize();
        let pem = pem.map_err(|_| TrustError::InvalidKey {
            message: "cannot encode private key".to_owned(),
        })?;
        // `pem` scrubs its own bytes when dropped; the copy handed out does too.
        Ok(Zeroizing::new(pem.as_str().to_owned()))
    }

    /// Reads a PKCS#8 PEM private key file.
    pub fn read_pem_file(path: &Path) -> Result<Self, TrustError> {
        Self::from_pkcs8_pem(&read_pem_text(path)?)
    }

    /// Writes the key as PKCS#8 PEM to a new file, readable only by its owner on Unix (mode
    /// 0600), whole and durably ([`create_file_durably`](crate::create_file_durably)): a key
    /// whose id was printed survives a crash. A file already at `path` — another key, perhaps
    /// the only copy of one — is never replaced (`io.error`, its kind `AlreadyExists`).
    pub fn write_pem_file(&self, path: &Path) -> Result<(), TrustError> {
        let pem = self.to_pkcs8_pem()?;
        crate::create_file_durably(path, pem.as_bytes(), 0o600)
            .map_err(|e| TrustError::io(path, &e))
    }
}

impl Signer for LocalSigningKey {
    fn public_key(&self) -> PublicKey {
        self.public
    }

    fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn claim_key(&self) -> Result<ClaimKey, TrustError> {
        if let Some(key) = self.claim_key.get() {
            return Ok(key.clone());
        }
        let key = ClaimKey::derive(self)?;
        Ok(self.claim_key.get_or_init(|| key).clone())
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TrustError> {
        use ed25519_dalek::Signer as _;
        Ok(self.key.sign(message).to_bytes())
    }

    fn local_key(&self) -> Option<&LocalSigningKey> {
        Some(self)
    }
}

impl fmt::Debug for LocalSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LocalSigningKey({}, private key redacted)",
            self.key_id()
        )
    }
}

/// Reads an SPKI PEM public key file — a regular file ([`open_regular_file`](crate::open_regular_file):
/// the pinned root key is read again at every reload of a server).
pub fn read_public_key_file(path: &Path) -> Result<PublicKey, TrustError> {
    PublicKey::from_pem(&read_pem_text_from(path, crate::open_regular_file)?)
}

/// What a key file holds: a public key (SPKI PEM) or a private key (PKCS#8 PEM).
#[derive(Debug)]
pub enum KeyFile {
    /// A public key (`-----BEGIN PUBLIC KEY-----`).
    Public(PublicKey),
    /// A private key (`-----BEGIN PRIVATE KEY-----`) and, through it, its public half (boxed:
    /// it is six times the size of a public key).
    Private(Box<LocalSigningKey>),
}

impl KeyFile {
    /// The public key, read or derived from the private key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Public(key) => *key,
            Self::Private(key) => key.public_key(),
        }
    }
}

/// Reads a key file that may hold either a public or a private key, told apart by the PEM
/// label. A public key keeps the code of its refusal (`trust.non_canonical_public_key`,
/// `trust.weak_public_key`, `trust.invalid_key`); anything else must be a PKCS#8 private key.
pub fn read_key_file(path: &Path) -> Result<KeyFile, TrustError> {
    let text = read_pem_text(path)?;
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        return PublicKey::from_pem(&text).map(KeyFile::Public);
    }
    LocalSigningKey::from_pkcs8_pem(&text)
        .map(|key| KeyFile::Private(Box::new(key)))
        .map_err(|_| TrustError::InvalidKey {
            message: "not an Ed25519 SPKI public key or PKCS#8 private key (PEM)".to_owned(),
        })
}

/// A key file longer than this is not a key: PEM Ed25519 keys are about 120 bytes.
pub(crate) const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The buffer [`read_pem_text`] reserves: the longest file it reads and the byte that tells it
/// is longer, with room for `read_to_end`'s probe — it never grows (a grown buffer leaves the
/// old one, unscrubbed, to the allocator).
const PEM_BUFFER_BYTES: usize = 64 * 1024 + 64;
const _: () = assert!(PEM_BUFFER_BYTES as u64 > MAX_KEY_FILE_BYTES + 1);

/// Reads a PEM file, at most [`MAX_KEY_FILE_BYTES`] of it (plus one byte to tell that it is
/// longer): a file that cannot be read is `trust.io`; one that is too long or not text is not
/// a key (`trust.invalid_key`). The text may be a private key: it is read into one buffer
/// reserved whole beforehand (no reallocation leaves a copy behind) and scrubbed when dropped,
/// refused or not.
///
/// A private key named on the command line may come through a pipe (`--key <(vault read …)`),
/// so any file opens here; [`read_public_key_file`] takes regular files only.
fn read_pem_text(path: &Path) -> Result<Zeroizing<String>, TrustError> {
    read_pem_text_from(path, |path| std::fs::File::open(path))
}

/// [`read_pem_text`] of the file `open` opens.
fn read_pem_text_from(
    path: &Path,
    open: fn(&Path) -> std::io::Result<std::fs::File>,
) -> Result<Zeroizing<String>, TrustError> {
    use std::io::Read as _;
    let mut bytes = Zeroizing::new(Vec::with_capacity(PEM_BUFFER_BYTES));
    open(path)
        .and_then(|file| file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| TrustError::io(path, &e))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_KEY_FILE_BYTES {
        return Err(TrustError::InvalidKey {
            message: format!(
                "{} is longer than {MAX_KEY_FILE_BYTES} bytes: not a key file",
                path.display()
            ),
        });
    }
    // The bytes move into the string, no copy made; refused, they are scrubbed.
    String::from_utf8(std::mem::take(&mut *bytes))
        .map(Zeroizing::new)
        .map_err(|e| {
            e.into_bytes().zeroize();
            TrustError::InvalidKey {
                message: format!("{} is not PEM text", path.display()),
            }
        })
}

/// Writes a public key as SPKI PEM, whole and durably.
pub fn write_public_key_file(key: &PublicKey, path: &Path) -> Result<(), TrustError> {
    crate::replace_file_durably(path, key.to_pem()?.as_bytes(), None)
        .map_err(|e| TrustError::io(path, &e))
}

/// The encodings of the eight small-order points of Ed25519, sign bit cleared: `y` = 0, 1,
/// p−1, the two order-8 values, and the non-canonical p and p+1 (`y` + p below 2^255). A
/// signature whose `R` is one of them is refused by `verify_strict` but not by batch
/// verification; the unit test checks each decodes to a small-order point.
const SMALL_ORDER_Y: [[u8; 32]; 7] = [
    [0; 32],
    {
        let mut y = [0; 32];
        y[0] = 1;
        y
    },
    {
        let mut y = [0xff; 32];
        y[0] = 0xec;
        y[31] = 0x7f;
        y
    },
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    {
        let mut y = [0xff; 32];
        y[0] = 0xed;
        y[31] = 0x7f;
        y
    },
    {
        let mut y = [0xff; 32];
        y[0] = 0xee;
        y[31] = 0x7f;
        y
    },
];

/// Whether `R` (the first half of a signature) encodes a small-order point.
fn has_small_order_r(signature: &[u8; 64]) -> bool {
    let mut y = [0u8; 32];
    y.copy_from_slice(&signature[..32]);
    y[31] &= 0x7f;
    SMALL_ORDER_Y.contains(&y)
}

/// One signature to check in a batch: key, message, signature.
pub(crate) type BatchItem<'a> = (PublicKey, &'a [u8], &'a [u8; 64]);

/// Verifies many signatures at once; `true` only if every one of them verifies.
///
/// `true` implies each would pass [`PublicKey::verify_signature`] (the strict checks batch
/// verification lacks are done here: keys are never small-order nor have a small-order
/// component — [`PublicKey::from_bytes`] refuses them —, `S` must be canonical — the batch
/// refuses other values —, and a small-order `R` makes the whole batch `false`; an `R` with a
/// small-order component is the residual trust-model.md §6 documents). `false` says nothing about which one failed: callers
/// verify one by one to find out.
pub(crate) fn verify_batch(items: &[BatchItem<'_>]) -> bool {
    if items.iter().any(|(_, _, sig)| has_small_order_r(sig)) {
        return false;
    }
    let messages: Vec<&[u8]> = items.iter().map(|(_, message, _)| *message).collect();
    let signatures: Vec<Signature> = items
        .iter()
        .map(|(_, _, sig)| Signature::from_bytes(sig))
        .collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|(key, _, _)| key.0).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What holds key material is scrubbed when dropped: checked on the types, so that a
    /// change handing out a plain `String` or a `Copy` key does not compile.
    #[test]
    fn key_material_is_scrubbed_when_dropped() {
        fn scrubbed<T: ZeroizeOnDrop>(_: &T) {}
        let key = LocalSigningKey::from_seed(&[3; 32]);
        scrubbed(&key.to_pkcs8_pem().unwrap());
        scrubbed(&Signer::claim_key(&key).unwrap());
        scrubbed(&key.key);
    }

    /// A key file is read into the one buffer reserved for it, which never grows: the text
    /// handed out is that buffer (its capacity the reserved one), also at the longest file read.
    #[test]
    fn a_key_file_is_read_without_reallocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let key = LocalSigningKey::from_seed(&[4; 32]);
        let pem = key.to_pkcs8_pem().unwrap();
        for padding in [0, usize::try_from(MAX_KEY_FILE_BYTES).unwrap() - pem.len()] {
            let mut text = pem.to_string();
            text.push_str(&"\n".repeat(padding));
            std::fs::write(&path, &text).unwrap();
            let read = read_pem_text(&path).unwrap();
            assert_eq!(read.as_str(), text);
            assert_eq!(read.capacity(), PEM_BUFFER_BYTES, "{padding}");
            assert_eq!(
                LocalSigningKey::read_pem_file(&path).unwrap().key_id(),
                key.key_id()
            );
        }
        std::fs::write(&path, "\n".repeat(PEM_BUFFER_BYTES)).unwrap();
        assert!(matches!(
            read_pem_text(&path),
            Err(TrustError::InvalidKey { .. })
        ));
    }

    #[test]
    fn small_order_encodings_are_small_order_points() {
        for y in SMALL_ORDER_Y {
            for sign in [0, 0x80] {
                let mut bytes = y;
                bytes[31] |= sign;
                let weak = VerifyingKey::from_bytes(&bytes).map(|k| k.is_weak());
                // Every listed encoding that decodes is a small-order point (p, p+1 with the
                // sign bit may not decode at all; then verify_strict refuses R too).
                assert!(weak.unwrap_or(true), "{bytes:02x?}");
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&bytes);
                assert!(has_small_order_r(&sig));
            }
        }
        let key = LocalSigningKey::from_seed(&[9; 32]);
        let sig = Signer::sign(&key, b"m").unwrap();
        assert!(!has_small_order_r(&sig));
    }

    /// One point under two ids is refused, whatever the ids; distinct points pass.
    #[test]
    fn two_ids_of_one_point_are_refused() {
        let a = LocalSigningKey::from_seed(&[1; 32]).public_key();
        let b = LocalSigningKey::from_seed(&[2; 32]).public_key();
        let alias: KeyId = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let distinct: BTreeMap<KeyId, PublicKey> = [(a.key_id(), a), (b.key_id(), b)].into();
        assert!(check_distinct_points(&distinct).is_ok());
        assert!(check_distinct_points(&BTreeMap::new()).is_ok());
        let aliased: BTreeMap<KeyId, PublicKey> =
            [(a.key_id(), a), (b.key_id(), b), (alias, a)].into();
        let err = check_distinct_points(&aliased).unwrap_err();
        assert_eq!(err.code(), "trust.duplicate_public_key");
        let (first, second) = if alias < a.key_id() {
            (alias, a.key_id())
        } else {
            (a.key_id(), alias)
        };
        assert_eq!(
            err,
            TrustError::DuplicatePublicKey {
                first: first.to_string(),
                second: second.to_string(),
            }
        );
    }

    #[test]
    fn a_batch_of_valid_signatures_verifies_and_one_bad_one_fails_it() {
        let keys: Vec<LocalSigningKey> = (0..3u8)
            .map(|i| LocalSigningKey::from_seed(&[i; 32]))
            .collect();
        let messages: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; usize::from(i) * 7]).collect();
        let sigs: Vec<[u8; 64]> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| Signer::sign(&keys[i % 3], m).unwrap())
            .collect();
        let items: Vec<BatchItem<'_>> = messages
            .iter()
            .zip(&sigs)
            .enumerate()
            .map(|(i, (m, sig))| (keys[i % 3].public_key(), m.as_slice(), sig))
            .collect();
        assert!(verify_batch(&items));
        assert!(verify_batch(&items[..1]));
        assert!(verify_batch(&[]));
        let mut wrong = items.clone();
        wrong[2].0 = keys[0].public_key();
        assert!(!verify_batch(&wrong));
        let mut wrong = items.clone();
        wrong[4].1 = b"other";
        assert!(!verify_batch(&wrong));
    }

    /// The STANDARD engine alone refuses every non-canonical spelling.
    #[test]
    fn base64_has_one_spelling_per_value() {
        for (text, ok) in [
            ("", true),
            ("AA==", true),
            ("AB==", false),
            ("AA", false),
            ("AA=", false),
            ("AA===", false),
            ("AAE=", true),
            ("AAF=", false),
            ("AAEC", true),
            (" AAEC", false),
            ("AAEC\n", false),
            ("AA-_", false),
        ] {
            assert_eq!(decode_base64(text).is_some(), ok, "{text:?}");
            if let Some(bytes) = decode_base64(text) {
                assert_eq!(encode_base64(&bytes), text);
            }
        }
        let sig = [7u8; 64];
        let text = encode_base64(&sig);
        assert_eq!(decode_signature(&text), Some(sig));
        assert_eq!(decode_signature(&encode_base64(&[7u8; 63])), None);
        assert_eq!(decode_signature(&encode_base64(&[7u8; 65])), None);
        let mut stray = text.into_bytes();
        stray[85] = b'9';
        assert_eq!(decode_signature(std::str::from_utf8(&stray).unwrap()), None);
    }

    /// `decode_hash` accepts exactly the texts `decode_base64` decodes to 32 bytes: a hash's
    /// text, every one-character change of it, and the texts of 31, 33 and 0 bytes.
    #[test]
    fn decode_hash_is_decode_base64_of_32_bytes() {
        let text = encode_base64(&[0x5a; 32]);
        let mut cases = vec![
            text.clone(),
            encode_base64(&[1; 31]),
            encode_base64(&[1; 33]),
            String::new(),
            format!("{text}\n"),
            format!(" {text}"),
            text[..43].to_owned(),
        ];
        for i in 0..text.len() {
            for c in [
                'A', 'B', 'Z', 'a', 'z', '0', '9', '+', '/', '=', '-', '_', ' ', 'é',
            ] {
                let mut changed: Vec<char> = text.chars().collect();
                changed[i] = c;
                cases.push(changed.into_iter().collect());
            }
        }
        let mut accepted = 0;
        for case in &cases {
            let expected = decode_base64(case).and_then(|b| <[u8; 32]>::try_from(b).ok());
            assert_eq!(decode_hash(case), expected, "{case:?}");
            accepted += usize::from(expected.is_some());
        }
        // Both sides are exercised: changes to other alphabet characters stay canonical, while
        // non-alphabet characters, moved padding and stray bits in the last character do not.
        let refused = cases.len() - accepted;
        assert!(
            accepted > 100 && refused > 100,
            "{accepted} accepted, {refused} refused"
        );
    }
}
