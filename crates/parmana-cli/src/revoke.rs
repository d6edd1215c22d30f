//! `parmana trust rotate --revoke KEY=CHECKPOINT`: revoking attestation keys as of a signed checkpoint of the transparency log, and carrying the revocations of the version in force into the next.

use std::path::Path;

use parmana_runtime::trust::{
    KeyId, LogSpec, MAX_NOTE_BYTES, MAX_REVOCATION_REASON_CHARS, RevocationSpec, VerifiedTrustRoot,
    read_key_file,
};

use crate::common::read_bounded;
use crate::exit::ExitClass;
use crate::report::Failure;

/// The revocation flags of `parmana trust rotate`.
#[derive(Debug, clap::Args)]
pub(crate) struct RevokeArgs {
    /// Revoke an attestation key as of a signed checkpoint of the transparency log, written
    /// `KEY=CHECKPOINT`: KEY is a key id (`sha256:…`) or a key file (public or private PEM),
    /// CHECKPOINT a checkpoint file (`parmana log checkpoint`) that the log role of the trust
    /// root in force accepts. Attestations of the key whose log entries come before that
    /// checkpoint's size stay valid with `verify --proof`; later ones, and any without a proof,
    /// are refused (docs/trust-model.md §6.2). The new version must name the same log (the log
    /// of the version in force, carried forward, or --log-origin naming it) and must give the
    /// key nothing: no role, no log key, no witness. Repeatable.
    #[arg(long, value_name = "KEY=CHECKPOINT", requires = "revoke_reason")]
    revoke: Vec<String>,
    /// Why the keys of --revoke are revoked (1 to 256 characters), recorded in the trust root.
    #[arg(long, value_name = "TEXT", requires = "revoke")]
    revoke_reason: Option<String>,
}

fn invalid(message: String) -> Failure {
    Failure::new("cli.invalid_revocation", message, ExitClass::Usage)
}

/// The key id of `KEY`: `sha256:…`, or the id of the key in a PEM file.
fn key_id(text: &str) -> Result<KeyId, Failure> {
    if text.starts_with("sha256:") {
        return text.parse().map_err(|e| Failure::trust(&e));
    }
    let path = Path::new(text);
    read_key_file(path)
        .map(|file| file.public_key().key_id())
        .map_err(|e| {
            let mut failure = Failure::trust(&e);
            failure.message = format!("--revoke {text}: {}", failure.message);
            failure
        })
}

impl RevokeArgs {
    /// Refuses a `--revoke-reason` the trust root could not record (`cli.invalid_revocation`):
    /// empty, longer than [`MAX_REVOCATION_REASON_CHARS`] characters, or holding a control
    /// character — checked before anything is read, so that a typo costs no key or checkpoint
    /// read (the trust root's own check would refuse it late, as a malformed document).
    pub(crate) fn check_reason(&self) -> Result<(), Failure> {
        let Some(reason) = self.revoke_reason.as_deref() else {
            return Ok(());
        };
        let chars = reason.chars().count();
        if chars == 0 || chars > MAX_REVOCATION_REASON_CHARS || reason.chars().any(char::is_control)
        {
            return Err(invalid(format!(
                "--revoke-reason is 1 to {MAX_REVOCATION_REASON_CHARS} characters without \
                 control characters (it has {chars})"
            )));
        }
        Ok(())
    }

    /// The revocations of the new version's log `log`: those of `current` (the version in force)
    /// when it names the same log, then one per `--revoke`, each verified against the log role of
    /// `current` (a new revocation of a key replaces the one carried). Revocations of a log the
    /// new version no longer names are not carried: the older version listing them keeps them
    /// in force (`docs/trust-model.md` §6.2).
    pub(crate) fn revocations(
        &self,
        current: &VerifiedTrustRoot,
        log: Option<&LogSpec>,
    ) -> Result<Vec<RevocationSpec>, Failure> {
        let carried: Vec<RevocationSpec> = match (current.log(), log) {
            (Some(role), Some(log)) if role.origin().as_str() == log.origin => role
                .revocations()
                .iter()
                .map(|r| RevocationSpec {
                    keyid: *r.keyid(),
                    tree_size: r.tree_size(),
                    root_hash: r.root_hash(),
                    reason: r.reason().to_owned(),
                })
                .collect(),
            _ => Vec::new(),
        };
        if self.revoke.is_empty() {
            return Ok(carried);
        }
        let Some(log) = log else {
            return Err(invalid(
                "--revoke needs the new version to name a transparency log (not --drop-log)"
                    .to_owned(),
            ));
        };
        let Some(role) = current.log() else {
            return Err(invalid(format!(
                "trust root version {} names no transparency log: no checkpoint orders a revocation",
                current.version()
            )));
        };
        let reason = self.revoke_reason.as_deref().unwrap_or_default();
        let mut revocations = carried;
        for text in &self.revoke {
            let (key, checkpoint) = text
                .split_once('=')
                .ok_or_else(|| invalid(format!("--revoke {text:?}: expected KEY=CHECKPOINT")))?;
            let keyid = key_id(key)?;
            let bytes = read_bounded(Path::new(checkpoint), MAX_NOTE_BYTES)?;
            let verified = role.verifier().open_checkpoint(&bytes).map_err(|e| {
                let mut failure = Failure::trust(&e);
                failure.message = format!("--revoke {text}: {}", failure.message);
                failure
            })?;
            let head = verified.checkpoint();
            if head.origin() != log.origin {
                return Err(invalid(format!(
                    "--revoke {text}: the checkpoint is of log {}, the new version names {}",
                    head.origin(),
                    log.origin
                )));
            }
            revocations.retain(|r| r.keyid != keyid);
            revocations.push(RevocationSpec::at_checkpoint(keyid, head, reason));
        }
        Ok(revocations)
    }
}
