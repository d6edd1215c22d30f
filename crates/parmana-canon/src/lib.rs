//! `parmana-canon`: the bottom layer — strict JSON parsing, RFC 8785 canonical bytes and SHA-256 digests.
//!
//! Everything Parmana hashes or signs passes through this crate:
//!
//! * [`parse_strict`] reads JSON text and refuses anything that could make two
//!   parties disagree about what was signed (duplicate keys, lone surrogates,
//!   numbers beyond ±(2^53−1) not written as their double, numbers that overflow, invalid UTF-8, trailing
//!   data, nesting deeper than [`MAX_DEPTH`]).
//! * [`to_canonical_vec`] and [`canonicalize`] produce RFC 8785 (JCS) bytes; [`RawCanonical`]
//!   holds a value encoded once, copied verbatim into the documents that embed it.
//! * [`reader::Reader`] is the strict pull tokenizer underneath: the same rules, token by
//!   token, for readers that build something other than a `Value`.
//! * [`Digest`] is a SHA-256 content digest written `sha256:<64 lowercase hex>`.
//! * [`merkle`] is RFC 9162 Merkle tree hashing: the transparency log's tree heads and proofs;
//!   [`tile`] names and cuts that tree into C2SP `tlog-tiles` tiles and entry bundles.
//! * [`Timestamp`] is a UTC instant with exactly one text form, `YYYY-MM-DDTHH:MM:SSZ`.
//! * [`PolicyId`], [`PolicyVersion`], [`PolicyRef`] (`id@version`) and [`ExecutionId`] are the
//!   identifiers every layer shares, each with one grammar (see `tests/identifiers/`).
//!
//! ```
//! let canonical = parmana_canon::canonicalize(br#"{"b":1,"a":[1.0E2,true]}"#).unwrap();
//! assert_eq!(canonical, br#"{"a":[100,true],"b":1}"#);
//! let digest = parmana_canon::Digest::of(&canonical);
//! assert!(digest.to_string().starts_with("sha256:"));
//! ```

mod digest;
mod error;
mod exact;
mod id;
mod jcs;
pub mod merkle;
mod parse;
mod raw;
pub mod reader;
pub mod tile;
mod time;

pub use digest::{Digest, DigestParseError};
pub use error::{CanonError, Location, MAX_QUOTED_CHARS, bounded_display, excerpt};
pub use id::{
    ExecutionId, IdError, IdKind, MAX_EXECUTION_ID_LEN, MAX_LABEL_LEN, MAX_POLICY_ID_LEN,
    MAX_POLICY_VERSION_LEN, PolicyId, PolicyRef, PolicyVersion, is_label,
};
pub use jcs::{canonicalize, canonicalize_value, to_canonical_vec};
pub use parse::{MAX_DEPTH, MAX_SAFE_INTEGER, parse_strict};
pub use raw::RawCanonical;
pub use time::Timestamp;
