//! The identifiers every layer shares — `PolicyId`, `PolicyVersion`, `PolicyRef` (`id@version`) and `ExecutionId` — each with one grammar, built only by its parser.
//!
//! They live in the bottom layer because they are, like [`Digest`](crate::Digest) and
//! [`Timestamp`](crate::Timestamp), text with exactly one accepted form that appears inside
//! canonical documents (bundles, release manifests, attestations, claims). Every layer parses
//! them here and maps an [`IdError`] to its own stable code, so the grammar cannot drift apart.

use std::fmt;
use std::str::FromStr;

/// The longest policy id, in bytes (all of them ASCII).
pub const MAX_POLICY_ID_LEN: usize = 128;

/// The longest policy version, in bytes (all of them ASCII).
pub const MAX_POLICY_VERSION_LEN: usize = 64;

/// The longest execution id, in bytes (all of them ASCII).
pub const MAX_EXECUTION_ID_LEN: usize = 128;

/// The longest label — a decision name or a rule id — in bytes (all of them ASCII).
pub const MAX_LABEL_LEN: usize = 128;

/// Whether `name` is a label, a decision name or a rule id as a policy declares it and an
/// attestation records it: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most [`MAX_LABEL_LEN`] characters.
/// The policy compiler refuses any other; an attestation verifier refuses a predicate naming
/// one.
pub fn is_label(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_LABEL_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Which kind of identifier was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A [`PolicyId`].
    PolicyId,
    /// A [`PolicyVersion`].
    PolicyVersion,
    /// A [`PolicyRef`], `id@version`.
    PolicyRef,
    /// An [`ExecutionId`].
    ExecutionId,
}

impl IdKind {
    /// The name of the kind, as messages write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::PolicyId => "policy id",
            Self::PolicyVersion => "policy version",
            Self::PolicyRef => "policy reference",
            Self::ExecutionId => "execution id",
        }
    }
}

/// Why a text is not a valid identifier of its kind.
///
/// Each layer maps it to its own stable code (`replay.invalid_execution_id`,
/// `runtime.invalid_policy_reference`, a policy diagnostic, …); on its own its code is
/// `canon.invalid_identifier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid {}: {reason}", kind.name())]
pub struct IdError {
    /// The kind of identifier that was expected.
    pub kind: IdKind,
    /// What is wrong, one short clause (for example "it is empty").
    pub reason: &'static str,
}

impl IdError {
    /// The stable code of this refusal when no layer maps it: `canon.invalid_identifier`.
    pub fn code(&self) -> &'static str {
        "canon.invalid_identifier"
    }
}

/// A policy id: `[a-z0-9][a-z0-9._-]*`, without `..`, at most 128 characters.
///
/// Safe as one path segment: it cannot be empty, `.`, `..`, absolute or contain a separator.
///
/// ```
/// use parmana_canon::PolicyId;
/// assert_eq!(PolicyId::parse("claims-approval").unwrap().as_str(), "claims-approval");
/// assert!(PolicyId::parse("Claims").is_err());
/// assert!(PolicyId::parse("a..b").is_err());
/// assert!(PolicyId::parse("../etc").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(Box<str>);

impl PolicyId {
    /// Checks `text` against the grammar and wraps it.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        check_policy_id(text)?;
        Ok(Self(text.into()))
    }

    /// Whether `text` is a valid policy id.
    pub fn is_valid(text: &str) -> bool {
        check_policy_id(text).is_ok()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_policy_id(text: &str) -> Result<(), IdError> {
    let error = |reason| {
        Err(IdError {
            kind: IdKind::PolicyId,
            reason,
        })
    };
    let mut bytes = text.bytes();
    match bytes.next() {
        None => return error("it is empty"),
        Some(b'a'..=b'z' | b'0'..=b'9') => {}
        Some(_) => return error("it must start with a lowercase letter or a digit"),
    }
    if text.len() > MAX_POLICY_ID_LEN {
        return error("it is longer than 128 characters");
    }
    if !bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.')) {
        return error("only a-z, 0-9, '-', '_' and '.' are allowed");
    }
    if text.contains("..") {
        return error("it must not contain '..'");
    }
    Ok(())
}

/// A policy version: `[A-Za-z0-9][A-Za-z0-9.+-]*`, without `..`, at most 64 characters —
/// semantic versions (`1.0.0`, `2.1.0-rc.1`) and the original tooling's `v<N>`.
///
/// Schema 2.0.0 policy documents additionally require [`is_semver`](Self::is_semver).
///
/// ```
/// use parmana_canon::PolicyVersion;
/// assert!(PolicyVersion::parse("1.0.0").unwrap().is_semver());
/// assert!(!PolicyVersion::parse("v2").unwrap().is_semver());
/// assert!(PolicyVersion::parse("1..0").is_err());
/// assert!(PolicyVersion::parse("-1").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyVersion(Box<str>);

impl PolicyVersion {
    /// Checks `text` against the grammar and wraps it.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        check_policy_version(text)?;
        Ok(Self(text.into()))
    }

    /// Whether `text` is a valid policy version.
    pub fn is_valid(text: &str) -> bool {
        check_policy_version(text).is_ok()
    }

    /// The version as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this version is a semantic version `MAJOR.MINOR.PATCH` (no leading zeros),
    /// optionally followed by `-prerelease` of `[0-9A-Za-z.-]` with no empty part.
    pub fn is_semver(&self) -> bool {
        is_semver(&self.0)
    }
}

fn check_policy_version(text: &str) -> Result<(), IdError> {
    let error = |reason| {
        Err(IdError {
            kind: IdKind::PolicyVersion,
            reason,
        })
    };
    let mut bytes = text.bytes();
    match bytes.next() {
        None => return error("it is empty"),
        Some(b) if b.is_ascii_alphanumeric() => {}
        Some(_) => return error("it must start with a letter or a digit"),
    }
    if text.len() > MAX_POLICY_VERSION_LEN {
        return error("it is longer than 64 characters");
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')) {
        return error("only A-Z, a-z, 0-9, '.', '+' and '-' are allowed");
    }
    if text.contains("..") {
        return error("it must not contain '..'");
    }
    Ok(())
}

fn is_semver(version: &str) -> bool {
    let (core, pre) = match version.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (version, None),
    };
    let numeric = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part.len() == 1 || !part.starts_with('0'))
    };
    let mut parts = core.split('.');
    let core_ok = (0..3).all(|_| parts.next().is_some_and(numeric)) && parts.next().is_none();
    core_ok
        && pre.is_none_or(|pre| {
            !pre.is_empty()
                && pre.split('.').all(|part| {
                    !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        })
}

/// A reference to one release of a policy, written `id@version` (`claims-approval@1.0.0`):
/// how release manifests, the command line and requests name a policy.
///
/// ```
/// use parmana_canon::PolicyRef;
/// let r: PolicyRef = "claims-approval@1.0.0".parse().unwrap();
/// assert_eq!((r.id().as_str(), r.version().as_str()), ("claims-approval", "1.0.0"));
/// assert_eq!(r.to_string(), "claims-approval@1.0.0");
/// assert!(PolicyRef::parse("claims-approval").is_err());
/// assert!(PolicyRef::parse("a@b@c").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyRef {
    id: PolicyId,
    version: PolicyVersion,
}

impl PolicyRef {
    /// Parses `id@version`: exactly one `@`, a valid id before it and a valid version after it.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let Some((id, version)) = text.split_once('@') else {
            return Err(IdError {
                kind: IdKind::PolicyRef,
                reason: "it is not ID@VERSION (for example claims-approval@1.0.0)",
            });
        };
        Ok(Self {
            id: PolicyId::parse(id)?,
            version: PolicyVersion::parse(version)?,
        })
    }

    /// The reference to `version` of `id`.
    pub fn new(id: PolicyId, version: PolicyVersion) -> Self {
        Self { id, version }
    }

    /// The policy id.
    pub fn id(&self) -> &PolicyId {
        &self.id
    }

    /// The policy version.
    pub fn version(&self) -> &PolicyVersion {
        &self.version
    }
}

/// An execution id: 1 to 128 printable ASCII characters without spaces (bytes `0x21..=0x7E`).
///
/// ```
/// use parmana_canon::ExecutionId;
/// assert_eq!(ExecutionId::parse("exec-2026-0001").unwrap().as_str(), "exec-2026-0001");
/// assert!(ExecutionId::parse("has space").is_err());
/// assert!(ExecutionId::parse("").is_err());
/// assert!(ExecutionId::parse(&"x".repeat(129)).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(Box<str>);

impl ExecutionId {
    /// Checks `text` against the grammar and wraps it.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        check_execution_id(text)?;
        Ok(Self(text.into()))
    }

    /// Whether `text` is a valid execution id.
    pub fn is_valid(text: &str) -> bool {
        check_execution_id(text).is_ok()
    }

    /// The id spelled as the UUID `uuid` in its hyphenated lowercase form
    /// (`0190c3f0-7d6e-7f1a-8000-000000000000`): always valid, so no check can fail.
    pub fn from_uuid(uuid: u128) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(36);
        for (index, shift) in (0..32).rev().map(|nibble| nibble * 4).enumerate() {
            if matches!(index, 8 | 12 | 16 | 20) {
                text.push('-');
            }
            let digit = usize::try_from((uuid >> shift) & 0xf).unwrap_or(0);
            text.push(char::from(HEX[digit]));
        }
        Self(text.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_execution_id(text: &str) -> Result<(), IdError> {
    let error = |reason| {
        Err(IdError {
            kind: IdKind::ExecutionId,
            reason,
        })
    };
    if text.is_empty() {
        return error("it is empty");
    }
    let printable = |b: &u8| (0x21..=0x7e).contains(b);
    if text.len() > MAX_EXECUTION_ID_LEN {
        // Longer than 128 bytes: 128 characters only if they are ASCII (a look at one byte
        // past the limit tells).
        if text
            .bytes()
            .take(MAX_EXECUTION_ID_LEN + 1)
            .all(|b| printable(&b))
        {
            return error("it is longer than 128 characters");
        }
        return error("only printable ASCII characters other than space are allowed");
    }
    if !text.bytes().all(|b| printable(&b)) {
        return error("only printable ASCII characters other than space are allowed");
    }
    Ok(())
}

/// `Display`, `Debug`, `FromStr`, `AsRef<str>` and serde (as a JSON string, checked when read)
/// for the single-text identifiers.
macro_rules! text_identifier {
    ($name:ident) => {
        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), &*self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_identifier!(PolicyId);
text_identifier!(PolicyVersion);
text_identifier!(ExecutionId);

impl FromStr for PolicyRef {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.version)
    }
}

impl fmt::Debug for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyRef(\"{}@{}\")", self.id, self.version)
    }
}

impl serde::Serialize for PolicyRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PolicyRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}
