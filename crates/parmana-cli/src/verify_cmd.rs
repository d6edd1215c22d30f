//! `parmana verify`: check an attestation offline and print one line per check.

use std::fmt::Write as _;
use std::path::PathBuf;

use parmana_runtime::trust::AttestationReport;
use parmana_runtime::{load_bundle, load_trust_root, verify_attestation};

use crate::common::{ClockArgs, TrustRootArgs, read_file_or_stdin, read_signals};
use crate::config::Deployment;
use crate::exit::ExitClass;
use crate::report::{Failure, Format, Json, out, outln};

const VERIFY_EXAMPLES: &str = concat!(
    "\
Checks: envelope (well-formed DSSE and in-toto statement), signature (every signature by a key of
the trust root), key_role (a threshold of attestation-role keys signed), trust_root (the
attestation names this trust root), fingerprint (recomputed over the predicate), and when asked
bundle_digest (--policy-bundle) and signals_digest (--signals, or signals embedded in the
attestation). The attestation is valid only if every check passes.

Examples:
  parmana execute --policy claims-approval@1.0.0 --signals signals.json | parmana verify -
  parmana verify attestation.json --policy-bundle policies/claims-approval/1.0.0 --signals signals.json
  parmana --format json verify attestation.json",
    "\n\n",
    crate::exit::exit_codes_help!()
);

/// Arguments of `parmana verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = VERIFY_EXAMPLES)]
pub(crate) struct VerifyArgs {
    /// The attestation (the DSSE envelope `parmana execute` prints); `-` reads standard input.
    #[arg(value_name = "ATTESTATION_FILE|-")]
    attestation: PathBuf,
    /// Also check that the attestation binds this signed policy bundle directory
    /// (for example `policies/claims-approval/1.0.0`).
    #[arg(long, value_name = "DIR")]
    policy_bundle: Option<PathBuf>,
    /// Also check that the attestation binds these signals (a JSON file, or inline JSON).
    #[arg(long, value_name = "FILE")]
    signals: Option<String>,
    #[command(flatten)]
    trust: TrustRootArgs,
    #[command(flatten)]
    clock: ClockArgs,
}

/// Runs `parmana verify`.
pub(crate) fn verify(args: &VerifyArgs, format: Format) -> Result<(), Failure> {
    let envelope = read_file_or_stdin(&args.attestation)?;
    // The envelope is one line of JSON; a trailing newline from a pipe is not part of it.
    let envelope = envelope.trim_ascii_end();
    let signals = args.signals.as_deref().map(read_signals).transpose()?;
    let deployment = Deployment::load()?;
    let paths = args.trust.resolve(&deployment);
    let trust_root = load_trust_root(&paths.pinned_root, &paths.trust_root, args.clock.now())
        .map_err(|e| Failure::execution(&e))?;
    args.clock.warn_if_expiring(
        &deployment,
        &format!("the trust root (version {})", trust_root.version()),
        trust_root.expires(),
    )?;
    let bundle = args
        .policy_bundle
        .as_deref()
        .map(|dir| load_bundle(&trust_root, dir))
        .transpose()
        .map_err(|e| Failure::execution(&e))?;
    let report = verify_attestation(envelope, &trust_root, bundle.as_ref(), signals.as_ref());
    match format {
        Format::Human => out!("{}", render_report(&report)),
        Format::Json => outln!("{}", Json(report_json(&report))),
    }
    if report.is_valid() {
        return Ok(());
    }
    let failed: Vec<&str> = report.failures().map(|c| c.check.as_str()).collect();
    Err(Failure::new(
        "cli.verification_failed",
        format!("the attestation is not valid: failed {}", failed.join(", ")),
        ExitClass::VerificationFailed,
    ))
}

/// The report as a table, one row per check.
pub(crate) fn render_report(report: &AttestationReport) -> String {
    let mut out = String::new();
    if let Some(p) = report.predicate() {
        let _ = writeln!(
            out,
            "attestation of execution {:?}: {} (rule {:?}) under {}@{}, executed at {}",
            p.execution_id.as_str(),
            p.decision,
            p.rule_id,
            p.policy.id,
            p.policy.version,
            p.executed_at
        );
    }
    let _ = writeln!(out, "{:<16}{:<8}DETAIL", "CHECK", "RESULT");
    for check in &report.checks {
        let (result, detail) = match check.code {
            _ if check.passed => ("ok", check.detail.clone()),
            Some(code) => ("FAILED", format!("[{code}] {}", check.detail)),
            None => ("FAILED", check.detail.clone()),
        };
        let _ = writeln!(out, "{:<16}{result:<8}{detail}", check.check.as_str());
    }
    let total = report.checks.len();
    let failed = report.failures().count();
    if report.is_valid() {
        let _ = writeln!(out, "valid: all {total} checks passed");
    } else {
        let _ = writeln!(out, "NOT VALID: {failed} of {total} checks failed");
    }
    out
}

/// The report as one JSON object: `{"valid", "checks", "predicate"}`.
pub(crate) fn report_json(report: &AttestationReport) -> serde_json::Value {
    serde_json::json!({
        "valid": report.is_valid(),
        "checks": report.checks,
        "predicate": report.predicate(),
    })
}
