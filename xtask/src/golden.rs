//! `cargo xtask golden`: a fixed set of executions with the fixture keys and a fixed clock, written under `golden/`.
//!
//! The requests are in `xtask/golden-requests.jsonl` (hand-written). Each becomes
//! `golden/<name>.attestation.json` (the envelope bytes, exactly as returned) or
//! `golden/<name>.refusal.json` (`{"class", "code", "message"}`). All requests run in order
//! against one memory store, so a repeated execution id shows a replay refusal. The output is
//! byte-identical on every run and machine; tests fail when `golden/` is stale and when a
//! committed attestation no longer verifies. It also writes the trust layer's known answer
//! ([`KNOWN_ANSWER`]), which the trust crate's tests read and nothing else writes.

use std::collections::BTreeMap;
use std::path::Path;

use parmana_runtime::canon::{Timestamp, parse_strict, to_canonical_vec};
use parmana_runtime::replay::MemoryReplayStore;
use parmana_runtime::trust::LocalSigningKey;
use parmana_runtime::{
    ExecutionRequest, FixedClock, RuntimeEnvironment, RuntimeEnvironmentConfig,
    execute_from_signals, parse_execution_id, parse_policy_ref,
};
use serde_json::json;

/// The instant every golden execution happens at.
pub(crate) const GOLDEN_TIME: &str = "2026-11-28T21:00:00Z";

/// Runs the golden requests and returns file name → bytes.
pub(crate) fn generate(root: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let now = Timestamp::parse(GOLDEN_TIME).map_err(|e| e.to_string())?;
    let clock = FixedClock(now);
    let environment =
        RuntimeEnvironment::load(&RuntimeEnvironmentConfig::standard_layout(root), now)
            .map_err(|e| format!("loading the fixture environment: {e}"))?;
    let signer = LocalSigningKey::read_pem_file(&root.join("trust/keys/attestation.pem"))
        .map_err(|e| e.to_string())?;
    let store = MemoryReplayStore::new();
    let requests = std::fs::read_to_string(root.join("xtask/golden-requests.jsonl"))
        .map_err(|e| format!("xtask/golden-requests.jsonl: {e}"))?;
    let mut out = BTreeMap::new();
    for (index, line) in requests
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let spec = parse_strict(line.as_bytes()).map_err(|e| format!("line {}: {e}", index + 1))?;
        let field = |name: &str| {
            spec[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("line {}: missing string {name:?}", index + 1))
        };
        let name = field("name")?;
        if [".attestation.json", ".refusal.json"]
            .iter()
            .any(|kind| out.contains_key(&format!("{name}{kind}")))
        {
            return Err(format!(
                "line {}: the name {name:?} is used twice",
                index + 1
            ));
        }
        let policy = field("policy")?;
        let execution_id = field("execution_id")?;
        let include_signals = spec["include_signals"].as_bool().unwrap_or(false);
        let outcome = parse_execution_id(&execution_id)
            .and_then(|id| Ok((id, parse_policy_ref(&policy)?)))
            .and_then(|(id, policy)| {
                let request = ExecutionRequest::new(id, policy, spec["signals"].clone())
                    .with_signals_included(include_signals);
                execute_from_signals(&request, &signer, &store, &environment, &clock)
            });
        match outcome {
            Ok(attestation) => {
                out.insert(
                    format!("{name}.attestation.json"),
                    attestation.into_envelope(),
                );
            }
            Err(error) => {
                let class = error.class().as_str();
                let report =
                    json!({"class": class, "code": error.code(), "message": error.to_string()});
                let bytes = to_canonical_vec(&report).map_err(|e| e.to_string())?;
                out.insert(format!("{name}.refusal.json"), bytes);
            }
        }
    }
    Ok(out)
}

/// Where the trust layer's known answer is kept, from the workspace root.
pub(crate) const KNOWN_ANSWER: &str = "crates/parmana-trust/tests/golden/attestation.json";

/// The known answer's inputs, all but the trust root, from the workspace root (written by hand;
/// the trust crate's tests read them too).
pub(crate) const KNOWN_ANSWER_INPUTS: &str =
    "crates/parmana-trust/tests/golden/attestation.inputs.json";

/// The trust layer's known answer: the attestation `parmana_trust::build_attestation` makes of
/// [`KNOWN_ANSWER_INPUTS`] under the fixture trust root, with the fixture attestation key. The
/// trust crate's tests build the same and compare (`known_answer_matches_the_golden_file`), and
/// check it with the OpenSSL command line.
pub(crate) fn known_answer(root: &Path) -> Result<Vec<u8>, String> {
    use parmana_trust::{ExecutionPredicate, build_attestation, load_trust_chain};
    let inputs = std::fs::read(root.join(KNOWN_ANSWER_INPUTS))
        .map_err(|e| format!("{KNOWN_ANSWER_INPUTS}: {e}"))?;
    let mut inputs = parse_strict(&inputs).map_err(|e| format!("{KNOWN_ANSWER_INPUTS}: {e}"))?;
    let now = Timestamp::parse(
        inputs["executed_at"]
            .as_str()
            .ok_or_else(|| format!("{KNOWN_ANSWER_INPUTS}: no executed_at"))?,
    )
    .map_err(|e| e.to_string())?;
    let trust_root = load_trust_chain(
        &root.join("trust/root.pub"),
        &root.join("trust/trust-root.json"),
        now,
        None,
    )
    .map_err(|e| format!("the fixture trust root: {e}"))?;
    inputs["trust_root"] =
        json!({"version": trust_root.version(), "digest": trust_root.digest().to_string()});
    let predicate: ExecutionPredicate =
        serde_json::from_value(inputs).map_err(|e| format!("{KNOWN_ANSWER_INPUTS}: {e}"))?;
    let signer = LocalSigningKey::read_pem_file(&root.join("trust/keys/attestation.pem"))
        .map_err(|e| e.to_string())?;
    build_attestation(&predicate, &signer, &trust_root).map_err(|e| e.to_string())
}

/// Rewrites `golden/` with freshly generated records (and removes stale ones), and the trust
/// layer's known answer ([`KNOWN_ANSWER`]).
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let known = known_answer(root)?;
    std::fs::write(root.join(KNOWN_ANSWER), known).map_err(|e| format!("{KNOWN_ANSWER}: {e}"))?;
    let files = generate(root)?;
    let dir = root.join("golden");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !files.contains_key(&name) {
            std::fs::remove_file(entry.path()).map_err(|e| e.to_string())?;
        }
    }
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("{name}: {e}"))?;
    }
    let attestations = files.keys().filter(|n| is_attestation(n)).count();
    println!(
        "wrote {attestations} attestations and {} refusals under golden/, and {KNOWN_ANSWER}",
        files.len() - attestations
    );
    Ok(())
}

/// Whether a golden file is an attestation, and so must verify.
pub(crate) fn is_attestation(name: &str) -> bool {
    name.ends_with(".attestation.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tidy::workspace_root;
    use parmana_runtime::{load_bundle, load_trust_root, verify_attestation};
    use serde_json::Value;

    fn committed() -> BTreeMap<String, Vec<u8>> {
        let dir = workspace_root().join("golden");
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(name, _)| name.ends_with(".json"))
            .map(|(name, path)| (name, std::fs::read(path).unwrap()))
            .collect()
    }

    #[test]
    fn golden_records_are_fresh() {
        let fresh = generate(&workspace_root()).unwrap();
        let committed = committed();
        assert_eq!(
            fresh.keys().collect::<Vec<_>>(),
            committed.keys().collect::<Vec<_>>(),
            "golden/ is stale: run `cargo xtask golden`"
        );
        for (name, bytes) in &fresh {
            assert!(
                committed[name] == *bytes,
                "golden/{name} is stale: run `cargo xtask golden`"
            );
        }
        assert!(
            fresh.keys().any(|n| is_attestation(n))
                && fresh.keys().any(|n| n.ends_with(".refusal.json"))
        );
        assert!(
            known_answer(&workspace_root()).unwrap()
                == std::fs::read(workspace_root().join(KNOWN_ANSWER)).unwrap(),
            "{KNOWN_ANSWER} is stale: run `cargo xtask golden`"
        );
    }

    #[test]
    fn every_committed_golden_attestation_still_verifies() {
        let root = workspace_root();
        let now = Timestamp::parse(GOLDEN_TIME).unwrap();
        let trust_root = load_trust_root(
            &root.join("trust/root.pub"),
            &root.join("trust/trust-root.json"),
            now,
        )
        .unwrap();
        let mut verified = 0;
        for (name, bytes) in committed() {
            if !is_attestation(&name) {
                continue;
            }
            let report = verify_attestation(&bytes, &trust_root, None, None);
            assert!(report.is_valid(), "golden/{name}: {report:#?}");
            let predicate = report.predicate().unwrap();
            let bundle_dir = root
                .join("policies")
                .join(predicate.policy.id.as_str())
                .join(predicate.policy.version.as_str());
            let bundle = load_bundle(&trust_root, &bundle_dir).unwrap();
            assert!(
                verify_attestation(
                    &bytes,
                    &trust_root,
                    Some(&bundle),
                    predicate.signals.as_ref()
                )
                .is_valid(),
                "golden/{name} with its bundle"
            );
            verified += 1;
        }
        assert!(verified >= 10, "only {verified} golden attestations");
    }

    #[test]
    fn refusal_records_name_their_codes() {
        let committed = committed();
        let code_of = |name: &str| -> Value {
            serde_json::from_slice::<Value>(&committed[name]).unwrap()["code"].clone()
        };
        assert_eq!(
            code_of("refused-replay.refusal.json"),
            "runtime.replay_detected"
        );
        assert_eq!(
            code_of("refused-missing-signal.refusal.json"),
            "policy.signal_missing"
        );
        assert_eq!(
            code_of("refused-path-traversal.refusal.json"),
            "runtime.invalid_policy_reference"
        );
    }
}
