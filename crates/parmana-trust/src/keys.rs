//! Ed25519 keys: key ids, public keys in documents, PEM files, and the `Signer` / `Verifier` traits.

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

use crate::TrustError;

/// The only key type Parmana accepts, as written in documents.
pub const KEYTYPE_ED25519: &str = "ed25519";

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
            .map_err(|e| TrustError::malformed("key id", format!("{s:?}: {e}")))
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
    /// A public key from its 32 raw bytes. Points that are not on the curve, and weak
    /// (small-order) keys, are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, TrustError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| TrustError::InvalidKey {
            message: "not a valid Ed25519 public key".to_owned(),
        })?;
        if key.is_weak() {
            return Err(TrustError::InvalidKey {
                message: "weak (small-order) Ed25519 public key".to_owned(),
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
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// Decodes standard base64 with padding, refusing non-canonical encodings (stray bits, whitespace).
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = BASE64.decode(text).ok()?;
    (BASE64.encode(&bytes) == text).then_some(bytes)
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
}

/// Something that checks Ed25519 signatures made by one key.
pub trait Verifier {
    /// The key id of the key this verifier checks.
    fn key_id(&self) -> KeyId;

    /// `true` when `signature` is a valid strict Ed25519 signature of `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

impl Verifier for PublicKey {
    fn key_id(&self) -> KeyId {
        KeyId::of(self)
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verify_signature(message, signature)
    }
}

/// An Ed25519 private key held in memory. Its `Debug` output shows only the key id.
pub struct LocalSigningKey {
    key: SigningKey,
    public: PublicKey,
}

impl LocalSigningKey {
    /// The key whose 32-byte secret seed is `seed` (deterministic; for tests and fixtures).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let public = PublicKey(key.verifying_key());
        Self { key, public }
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, TrustError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| TrustError::SigningFailed {
            message: format!("operating system randomness unavailable: {e}"),
        })?;
        let key = Self::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> KeyId {
        self.public.key_id()
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), as written by
    /// `openssl genpkey -algorithm ed25519` or Node's `crypto`.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, TrustError> {
        let key = SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| TrustError::InvalidKey {
            message: "not an Ed25519 PKCS#8 PEM private key".to_owned(),
        })?;
        let public = PublicKey(key.verifying_key());
        Ok(Self { key, public })
    }

    /// The key as PKCS#8 v1 PEM (the form OpenSSL writes), `\n` line endings. Treat it as secret.
    pub fn to_pkcs8_pem(&self) -> Result<String, TrustError> {
        let pair = KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        let pem = pair
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| TrustError::InvalidKey {
                message: "cannot encode private key".to_owned(),
            })?;
        Ok(pem.as_str().to_owned())
    }

    /// Reads a PKCS#8 PEM private key file.
    pub fn read_pem_file(path: &Path) -> Result<Self, TrustError> {
        Self::from_pkcs8_pem(&read_pem_text(path)?)
    }

    /// Writes the key as PKCS#8 PEM, readable only by its owner on Unix (mode 0600).
    pub fn write_pem_file(&self, path: &Path) -> Result<(), TrustError> {
        use std::io::Write as _;
        let pem = self.to_pkcs8_pem()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| TrustError::io(path, &e))?;
        file.write_all(pem.as_bytes())
            .map_err(|e| TrustError::io(path, &e))
    }
}

impl Signer for LocalSigningKey {
    fn public_key(&self) -> PublicKey {
        self.public
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TrustError> {
        use ed25519_dalek::Signer as _;
        Ok(self.key.sign(message).to_bytes())
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

/// Reads an SPKI PEM public key file.
pub fn read_public_key_file(path: &Path) -> Result<PublicKey, TrustError> {
    PublicKey::from_pem(&read_pem_text(path)?)
}

/// Reads a PEM file: a file that cannot be read is `trust.io`; one that is not text is not a
/// key (`trust.invalid_key`).
fn read_pem_text(path: &Path) -> Result<String, TrustError> {
    let bytes = std::fs::read(path).map_err(|e| TrustError::io(path, &e))?;
    String::from_utf8(bytes).map_err(|_| TrustError::InvalidKey {
        message: format!("{} is not PEM text", path.display()),
    })
}

/// Writes a public key as SPKI PEM.
pub fn write_public_key_file(key: &PublicKey, path: &Path) -> Result<(), TrustError> {
    std::fs::write(path, key.to_pem()?).map_err(|e| TrustError::io(path, &e))
}
