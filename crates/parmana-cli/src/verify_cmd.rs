//! `parmana verify`: check an attestation offline and print one line per check.

use std::fmt::Write as _;
use std::path::PathBuf;

use parmana_runtime::canon::{canonicalize_value, parse_strict};
use parmana_runtime::trust::{
    AttestationReport, MAX_TLOG_PROOF_BYTES, VerifyOptions, decode_attestation_statement,
    tlog_hash_text,
};
use parmana_runtime::{
    AttestationInclusion, ExecutionError, load_attested_bundle, load_attested_release_manifest,
    load_trust_history, verify_attestation_proof, verify_attestation_with_log,
};

use crate::common::{ClockArgs, TrustRootArgs, read_bounded, read_signals};
use crate::config::Deployment;
use crate::exit::ExitClass;
use crate::report::{Failure, Format, Json, out, outln};
use crate::verify_lines::{self, Input};

const VERIFY_EXAMPLES: &str = concat!(
    "\
Checks: envelope (well-formed DSSE and in-toto statement), signature (every signature by a key of
the trust-root version the attestation names), key_role (a threshold of that version's
attestation-role keys signed), trust_root (the version and digest it names are one of the
verified chain's), fingerprint (recomputed over the predicate), executed_at (before that
version's expiry, and at most 5 minutes after --now), current_trust (whether that version is
superseded and whether the newest version still trusts the signing keys; fails only with
--require-current-trust), and when asked bundle_digest (--policy-bundle: the bundle, signed by
the policy role of the trust-root version the attestation names or, signed again after a
rotation, of the newest, is the one it names), release_manifest (--release-manifest: the
manifest, signed by the release role of the version the attestation names, is the one it names,
lists its policy with its bundle digest, released for its evaluator semantics, and had not
expired when it executed — with --policy-bundle, this says the bundle was released, not only
signed) and signals_digest
(--signals, or signals embedded in the attestation); with both the bundle and the signals,
decision (the bundle's policy, evaluated again over the signals, decides what the attestation
says: a decision the policy did not make for them is not valid, whoever signed it; give your own
copy with --signals, since embedded ones were chosen by whoever signed). When a key that signed the attestation is
revoked as of a checkpoint of the transparency log, a revocation check is added: it passes only
with --proof, for an attestation whose log entry comes before the revocation. The attestation is
valid only if every check passes. --show prints the decoded in-toto statement first (with
--format json, as \"statement\" in the report).

Given JSON Lines (the output of `execute --batch`: more than one line, each a whole attestation
or a batch error line), every attestation is verified (signatures checked in Ed25519 batches)
and one line is printed per input line: `line N: valid|NOT VALID (failed checks), execution ID:
DECISION`, or with --format json `{\"line\",\"valid\",\"checks\",\"predicate\",\"trust\"}`; batch error
lines are reported as `{\"line\":N,\"skipped\":\"batch error\"}`, and a line that could not be read
(over the line limit, or the input failed) as `{\"line\":N,\"valid\":false,\"error\":{\"code\",
\"message\"}}`, a line that is not valid. Exit 0 only when every attestation is valid (7 otherwise).
--policy-bundle, --release-manifest, --signals and --proof apply to a single attestation only.
With --proof, a proof refused makes the attestation not valid: the report says so, and the
message names the refusal.

The whole chain is verified from the pinned root key, without judging any version's expiry at
--now: an attestation made under version 1 still verifies after rotations and after every
version expired, as long as it was executed before its own version expired.

Examples:
  parmana execute --policy claims-approval@1.0.0 --signals signals.json | parmana verify -
  parmana verify attestation.json --policy-bundle policies/claims-approval/1.0.0 --signals signals.json
  parmana verify attestation.json --policy-bundle policies/claims-approval/1.0.0 \\
      --release-manifest release-manifest.json --signals signals.json
  parmana verify attestation.json --trust-root trust/ --require-current-trust
  parmana verify attestation.json --trust-root trust/trust-root.d/1.json
  parmana verify --show attestation.json
  parmana execute --policy claims-approval@1.0.0 --batch requests.jsonl | parmana verify -
  parmana verify attestation.json --proof exec-42.tlog-proof
  parmana --format json verify attestation.json",
    "\n\n",
    crate::exit::exit_codes_help!()
);

/// Arguments of `parmana verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = VERIFY_EXAMPLES)]
pub(crate) struct VerifyArgs {
    /// The attestation (the DSSE envelope `parmana execute` prints), or JSON Lines of them (what
    /// `parmana execute --batch` prints); `-` reads standard input.
    #[arg(value_name = "ATTESTATION_FILE|-")]
    attestation: PathBuf,
    /// Print the decoded in-toto statement (the predicate and its subject) before the report,
    /// indented (in its canonical form, one line, where indenting would pass 16 MiB); with
    /// `--format json`, include it as `"statement"`.
    #[arg(long)]
    show: bool,
    /// Also check that the attestation binds this signed policy bundle directory
    /// (for example `policies/claims-approval/1.0.0`), and, with the signals (--signals or
    /// embedded), that its policy decides what the attestation says.
    #[arg(long, value_name = "DIR")]
    policy_bundle: Option<PathBuf>,
    /// Also check that the attestation names this signed release manifest (the one in force
    /// when it executed: keep each version), which lists its policy with its bundle digest.
    #[arg(long, value_name = "FILE")]
    release_manifest: Option<PathBuf>,
    /// Also check that the attestation binds these signals (a JSON file, or inline JSON).
    #[arg(long, value_name = "JSON|FILE")]
    signals: Option<String>,
    /// Refuse a trust-root chain whose newest version is older than this
    /// (trust.version_rollback): a chain cut short before a rotation that revoked a key, or
    /// rotated it out, verifies on its own. Take the number from elsewhere than the chain you
    /// were given (the deployment's `GET /v1/status`, its operator, a published release note).
    #[arg(long, value_name = "VERSION")]
    min_trust_root_version: Option<u64>,
    /// Also fail when the trust-root version the attestation was made under has been
    /// superseded, when a key that signed it no longer holds the attestation role in the newest
    /// version, or when the newest version has expired at --now.
    #[arg(long)]
    require_current_trust: bool,
    /// Also check that the attestation is in the transparency log: this `.tlog-proof` (from
    /// `parmana log prove`) must carry the attestation's log entry, included in a checkpoint
    /// signed by the log role of the newest trust-root version (docs/transparency-log.md).
    #[arg(long, value_name = "FILE")]
    proof: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustRootArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Runs `parmana verify`.
pub(crate) fn verify(args: &VerifyArgs, format: Format) -> Result<(), Failure> {
    // Standard input is read once: by one of the attestation, --signals and --proof.
    let from_stdin: Vec<&str> = [
        ("the attestation", args.attestation.as_os_str() == "-"),
        ("--signals", args.signals.as_deref() == Some("-")),
        (
            "--proof",
            args.proof.as_deref().is_some_and(|p| p.as_os_str() == "-"),
        ),
    ]
    .into_iter()
    .filter_map(|(what, reads)| reads.then_some(what))
    .collect();
    if from_stdin.len() > 1 {
        return Err(Failure::new(
            "cli.usage",
            format!(
                "{} cannot all be read from standard input (`-`): it is read once",
                from_stdin.join(" and ")
            ),
            ExitClass::Usage,
        ));
    }
    let input = verify_lines::read_input(&args.attestation)?;
    if matches!(input, Input::Lines(_))
        && (args.policy_bundle.is_some()
            || args.release_manifest.is_some()
            || args.signals.is_some()
            || args.proof.is_some())
    {
        return Err(Failure::new(
            "cli.usage",
            "--policy-bundle, --release-manifest, --signals and --proof apply to a single \
             attestation, not to JSON Lines",
            ExitClass::Usage,
        ));
    }
    let signals = args.signals.as_deref().map(read_signals).transpose()?;
    let deployment = Deployment::load()?;
    let paths = args.trust.resolve(&deployment);
    let history = load_trust_history(&paths.pinned_root, &paths.trust_root)
        .map_err(|e| Failure::execution(&e))?;
    if let Some(floor) = args.min_trust_root_version {
        history
            .check_reaches(floor)
            .map_err(|e| Failure::trust(&e))?;
    }
    let newest = history.newest();
    args.clock.warn_if_expiring(
        &deployment,
        &format!("the newest trust root (version {})", newest.version()),
        newest.expires(),
    )?;
    let options = VerifyOptions {
        now: args.clock.now(),
        require_current_trust: args.require_current_trust,
    };
    let envelope = match input {
        Input::Lines(lines) => {
            return verify_lines::verify_lines(lines, &history, options, args.show, format);
        }
        Input::Single(envelope) => envelope,
    };
    let envelope = envelope.as_slice();
    // The bundle and the release manifest were signed under the version the attestation names
    // (the newest when it names none of the chain's versions: the trust_root check then fails);
    // a bundle, again under the newest after the policy role's keys rotated.
    let bundle = args
        .policy_bundle
        .as_deref()
        .map(|dir| load_attested_bundle(&history, envelope, dir))
        .transpose()
        .map_err(|e| Failure::execution(&e))?;
    let released = args
        .release_manifest
        .as_deref()
        .map(|path| load_attested_release_manifest(&history, envelope, path))
        .transpose()
        .map_err(|e| Failure::execution(&e))?;
    let log = args
        .proof
        .as_deref()
        .map(|path| {
            let proof = read_bounded(path, MAX_TLOG_PROOF_BYTES)?;
            Ok::<_, Failure>(verify_attestation_proof(envelope, &proof, &history))
        })
        .transpose()?;
    // The proven log entry orders the attestation against key revocations (trust-model §6.2).
    let inclusion = log.as_ref().and_then(|log| log.as_ref().ok());
    let report = verify_attestation_with_log(
        envelope,
        &history,
        options,
        bundle.as_ref(),
        signals.as_ref(),
        inclusion,
    );
    let report = match &released {
        Some(released) => report.with_release_manifest_check(released),
        None => report,
    };
    // A proof given and refused makes the attestation not valid, in what is printed as in the
    // exit: a script reading `valid` must not accept what the exit refuses.
    let unproven = match &log {
        Some(Err(e)) => Some(e),
        _ => None,
    };
    match format {
        Format::Human => {
            if args.show {
                out!("{}", statement_text(envelope));
            }
            out!("{}", render_checks(&report));
            if let Some(log) = &log {
                outln!("{}", render_log(log));
            }
            outln!("{}", verdict(&report, unproven));
        }
        Format::Json => {
            let mut json = report_json(&report);
            if args.show {
                json["statement"] = statement_json(envelope);
            }
            if let (Some(log), Some(object)) = (&log, json.as_object_mut()) {
                object.insert("log".to_owned(), log_json(log));
            }
            if unproven.is_some() {
                json["valid"] = serde_json::Value::Bool(false);
            }
            outln!("{}", Json(json));
        }
    }
    // One code for every verification that fails (`cli.verification_failed`, exit 7), a refused
    // proof included: the library's code is in the message and in the report's `log.code`.
    let mut reasons: Vec<String> = Vec::new();
    if !report.is_valid() {
        let failed: Vec<&str> = report.failures().map(|c| c.check.as_str()).collect();
        reasons.push(format!("failed {}", failed.join(", ")));
    }
    if let Some(e) = unproven {
        reasons.push(format!("not proven in the log: [{}] {e}", e.code()));
    }
    if reasons.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        "cli.verification_failed",
        format!("the attestation is not valid: {}", reasons.join("; ")),
        ExitClass::VerificationFailed,
    ))
}

/// The last line of `verify`'s report: valid, or why not — failed checks, a proof refused.
fn verdict(report: &AttestationReport, unproven: Option<&ExecutionError>) -> String {
    let total = report.checks.len();
    let failed = report.failures().count();
    match (failed, unproven) {
        (0, None) => format!("valid: all {total} checks passed"),
        (0, Some(e)) => format!(
            "NOT VALID: all {total} checks passed, but the attestation is not proven in the log ({})",
            e.code()
        ),
        (_, None) => format!("NOT VALID: {failed} of {total} checks failed"),
        (_, Some(e)) => format!(
            "NOT VALID: {failed} of {total} checks failed, and the attestation is not proven in the log ({})",
            e.code()
        ),
    }
}

/// The log line of `verify --proof`.
fn render_log(log: &Result<AttestationInclusion, ExecutionError>) -> String {
    match log {
        Ok(inclusion) => {
            let head = inclusion.inclusion().checkpoint().checkpoint();
            format!(
                "log: included as entry {} of the checkpoint of size {} of {}",
                inclusion.index(),
                head.size(),
                head.origin()
            )
        }
        Err(e) => format!("log: NOT PROVEN [{}] {e}", e.code()),
    }
}

/// The `log` member of `verify --proof --format json`.
fn log_json(log: &Result<AttestationInclusion, ExecutionError>) -> serde_json::Value {
    match log {
        Ok(inclusion) => {
            let head = inclusion.inclusion().checkpoint().checkpoint();
            serde_json::json!({
                "included": true,
                "index": inclusion.index(),
                "origin": head.origin(),
                "tree_size": head.size(),
                "root": tlog_hash_text(&head.root()),
            })
        }
        Err(e) => {
            serde_json::json!({"included": false, "code": e.code(), "message": e.to_string()})
        }
    }
}

/// The report's checks as a table, one row per check (after the attestation's summary line).
fn render_checks(report: &AttestationReport) -> String {
    let mut out = String::new();
    if let Some(p) = report.predicate() {
        let _ = writeln!(
            out,
            "attestation of execution {:?}: {} (rule {:?}) under {}@{}, executed at {}",
            p.execution_id.as_str(),
            crate::report::printable(&p.decision),
            p.rule_id,
            p.policy.id,
            p.policy.version,
            p.executed_at
        );
    }
    // Each name followed by a space at least (`release_manifest` is 16 characters).
    let width = report
        .checks
        .iter()
        .map(|check| check.check.as_str().len() + 1)
        .fold(16, usize::max);
    let _ = writeln!(out, "{:<width$}{:<8}DETAIL", "CHECK", "RESULT");
    for check in &report.checks {
        let (result, detail) = match check.code {
            _ if check.passed => ("ok", check.detail.clone()),
            Some(code) => ("FAILED", format!("[{code}] {}", check.detail)),
            None => ("FAILED", check.detail.clone()),
        };
        let detail = crate::report::printable(&detail);
        let _ = writeln!(out, "{:<width$}{result:<8}{detail}", check.check.as_str());
    }
    out
}

/// The report as one JSON object: `{"valid", "checks", "predicate", "trust"}` (`trust`: the
/// version the attestation was made under, the newest version, whether it is superseded, and
/// whether the newest version still trusts each signing key; `null` when the attestation names
/// no version of the chain).
pub(crate) fn report_json(report: &AttestationReport) -> serde_json::Value {
    serde_json::json!({
        "valid": report.is_valid(),
        "checks": report.checks,
        "predicate": report.predicate(),
        "trust": report.trust_standing(),
    })
}

/// The decoded in-toto statement, or `null` when the envelope does not decode.
pub(crate) fn statement_json(envelope: &[u8]) -> serde_json::Value {
    decode_attestation_statement(envelope).unwrap_or(serde_json::Value::Null)
}

/// The most bytes of a statement shown indented by `--show`. Indenting costs two spaces a level
/// on every line, so a forged payload nested 128 levels deep grows about 130 times (a 3 MiB
/// payload would print some 400 MB): past this, the statement is shown in its canonical form,
/// one line no longer than the payload.
pub(crate) const MAX_INDENTED_STATEMENT_BYTES: usize = 16 * 1024 * 1024;

/// The decoded in-toto statement as indented JSON with sorted members, under a `statement:`
/// heading (or why it does not decode), with what a terminal would act on escaped
/// ([`printable`](crate::report::printable)). Decoding verifies nothing: the report that follows
/// it says whether the attestation is valid.
pub(crate) fn statement_text(envelope: &[u8]) -> String {
    statement_text_within(envelope, MAX_INDENTED_STATEMENT_BYTES)
}

/// [`statement_text`], indented only while that takes at most `limit` bytes: past it, the
/// canonical form under a heading that says why.
fn statement_text_within(envelope: &[u8], limit: usize) -> String {
    let pretty = decode_attestation_statement(envelope)
        .map_err(|e| format!("[{}] {e}", e.code()))
        .and_then(|statement| {
            // Sorted members whatever `serde_json`'s features (see `sign_document`).
            let canonical =
                canonicalize_value(&statement).map_err(|e| format!("[{}] {e}", e.code()))?;
            let sorted = parse_strict(&canonical).map_err(|e| format!("[{}] {e}", e.code()))?;
            let mut indented = WithinLimit {
                bytes: Vec::new(),
                limit,
            };
            match serde_json::to_writer_pretty(&mut indented, &sorted) {
                Ok(()) => String::from_utf8(indented.bytes)
                    .map(|text| ("statement:\n", text))
                    .map_err(|e| e.to_string()),
                // Past the limit (the only error a `Vec` gives): the canonical form, one line.
                Err(_) => String::from_utf8(canonical)
                    .map(|text| {
                        (
                            "statement (canonical form: indented, it passes the limit on what \
                             --show prints):\n",
                            text,
                        )
                    })
                    .map_err(|e| e.to_string()),
            }
        });
    match pretty {
        // JSON escapes only C0 controls: a C1 control (U+009B, the 8-bit CSI) or a direction
        // override in a forged statement's strings would reach the terminal raw and could
        // rewrite the verdict printed after it. Escaped line by line, keeping the layout.
        Ok((heading, text)) => {
            let mut shown = String::with_capacity(text.len() + heading.len() + 1);
            shown.push_str(heading);
            for line in text.lines() {
                shown.push_str(&crate::report::printable(line));
                shown.push('\n');
            }
            shown
        }
        Err(why) => format!(
            "statement: not decoded: {}\n",
            crate::report::printable(&why)
        ),
    }
}

/// A buffer refusing to grow past `limit` bytes: the indented statement stops there.
struct WithinLimit {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for WithinLimit {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.limit {
            return Err(std::io::Error::other(
                "past the limit on what --show prints",
            ));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    /// An unsigned envelope carrying `payload` (`--show` decodes without verifying).
    fn envelope(payload: &str) -> Vec<u8> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(payload);
        let zeros = "0".repeat(64);
        let sig = base64::engine::general_purpose::STANDARD.encode([0u8; 64]);
        format!(
            r#"{{"payload":"{encoded}","payloadType":"application/vnd.in-toto+json","signatures":[{{"keyid":"sha256:{zeros}","sig":"{sig}"}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_statement_indented_past_the_limit_is_shown_in_its_canonical_form() {
        // 120 levels deep, then 2,000 zeros: each zero, indented, takes a line of 242 bytes.
        let depth = 120;
        let payload = format!(
            "{{\"deep\":{}{}{}}}",
            "[".repeat(depth),
            vec!["0"; 2000].join(","),
            "]".repeat(depth)
        );
        let limit = 64 * 1024;
        let shown = statement_text_within(&envelope(&payload), limit);
        assert!(
            shown.starts_with("statement (canonical form"),
            "{}",
            &shown[..80]
        );
        assert!(shown.len() < payload.len() + 200, "{} bytes", shown.len());
        assert!(shown.contains(&payload), "the canonical form whole");

        // A shallow statement within the limit is indented as before.
        let shown = statement_text_within(&envelope(r#"{"b":[1,2],"a":"x"}"#), limit);
        assert_eq!(
            shown,
            "statement:\n{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    2\n  ]\n}\n"
        );
    }
}
