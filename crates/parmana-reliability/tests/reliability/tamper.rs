//! Tamper: every byte of every trust input on disk — `policies/` (bundle manifests and policies; a bundle's `tests/` is not signed, and a test shows an execution never reads it), `trust/root.pub`, `trust/trust-root.json`, `trust/trust-root.d/*.json` and `release-manifest.json` — flipped in turn in a temporary copy: `RuntimeEnvironment::load` or the execution refuses; zero accepted, zero panics.
//!
//! Not trust inputs, so not flipped: `trust/README.md` (documentation) and `trust/keys/*` (the
//! TEST-ONLY signing keys and copies of public keys; a verifier never reads them). A separate
//! test proves it by deleting them and executing anyway. Each byte gets one bit flipped, the
//! bit cycling with the position (bit `p % 8` at position `p`), so every bit position is hit
//! across a file. The one flip that loads is counted apart and checked to be harmless: the
//! last byte of `trust/root.pub`, `\n` → `\v`, whitespace after the PEM footer that decodes to
//! the very same pinned key. Files up to 4 KiB are flipped at every byte; larger ones at 2,048 evenly
//! spread positions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use parmana_reliability::{claims_signals, fixed_clock, fixed_now, triage_signals};
use parmana_replay::MemoryReplayStore;
use parmana_runtime::{
    ExecutionRequest, RuntimeEnvironment, RuntimeEnvironmentConfig, execute_from_signals,
    trust::LocalSigningKey,
};
use parmana_testkit::{FixtureEnvironment, files_under};
use parmana_trust::read_public_key_file;

/// Files larger than this are sampled.
const FULL_FLIP_LIMIT: usize = 4096;
/// Positions sampled in a larger file.
const SAMPLED_POSITIONS: usize = 2048;

/// The trust inputs under `root`, relative paths: every signed file (a bundle's `tests/` holds
/// its test cases, which are run when signing but never signed, so editing them changes nothing
/// an execution reads).
fn trust_inputs(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = files_under(&root.join("policies"))
        .unwrap()
        .into_iter()
        .filter(|file| {
            file.parent()
                .and_then(Path::file_name)
                .is_none_or(|dir| dir != parmana_trust::BUNDLE_TESTS_DIR)
        })
        .collect();
    files.push(root.join("release-manifest.json"));
    files.push(root.join("trust").join("root.pub"));
    files.push(root.join("trust").join("trust-root.json"));
    files.extend(files_under(&root.join("trust").join("trust-root.d")).unwrap());
    files
        .iter()
        .map(|f| f.strip_prefix(root).unwrap().to_path_buf())
        .collect()
}

fn request(policy_id: &str) -> ExecutionRequest {
    let signals = if policy_id == "claims-approval" {
        claims_signals(5)
    } else {
        triage_signals(5)
    };
    parmana_reliability::request_of("tamper-1", policy_id, "1.0.0", signals, false).unwrap()
}

/// Whether the environment under `config` refuses: at load, or when executing the policies the
/// tampered file can affect. `Ok(code)` for a refusal, `Err(())` when something was accepted.
fn outcome(
    config: &RuntimeEnvironmentConfig,
    file: &Path,
    signer: &LocalSigningKey,
) -> Result<&'static str, ()> {
    let environment = match RuntimeEnvironment::load(config, fixed_now()) {
        Ok(environment) => environment,
        Err(error) => return Ok(error.code()),
    };
    let affected: Vec<&str> = match file.strip_prefix("policies") {
        Ok(rest) => vec![rest.iter().next().unwrap().to_str().unwrap()],
        Err(_) => vec!["claims-approval", "patient-triage"],
    };
    let mut code = None;
    for policy_id in affected {
        match execute_from_signals(
            &request(policy_id),
            signer,
            &MemoryReplayStore::new(),
            &environment,
            &fixed_clock(),
        ) {
            Ok(_) => return Err(()),
            Err(error) => code = Some(error.code()),
        }
    }
    code.ok_or(())
}

fn positions(len: usize) -> Vec<usize> {
    if len <= FULL_FLIP_LIMIT {
        (0..len).collect()
    } else {
        (0..SAMPLED_POSITIONS)
            .map(|k| k * len / SAMPLED_POSITIONS)
            .collect()
    }
}

#[derive(Debug, Default)]
struct Tally {
    flipped: u64,
    accepted: Vec<String>,
    equivalent: Vec<String>,
    panics: Vec<String>,
    codes: BTreeMap<&'static str, u64>,
}

/// Flips every selected byte of the files in `work` (one worker's share) inside its own copy.
fn flip_files(files: &[PathBuf]) -> Tally {
    let fixture = FixtureEnvironment::new().unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let config = fixture.config();
    let mut tally = Tally::default();
    for relative in files {
        let path = fixture.root().join(relative);
        let original = std::fs::read(&path).unwrap();
        let pinned_key = read_public_key_file(&path).ok();
        for position in positions(original.len()) {
            let mut bytes = original.clone();
            bytes[position] ^= 1 << (position % 8);
            std::fs::write(&path, &bytes).unwrap();
            let result = catch_unwind(AssertUnwindSafe(|| outcome(&config, relative, &signer)));
            tally.flipped += 1;
            let at = format!("{}@{position}", relative.display());
            match result {
                Ok(Ok(code)) => *tally.codes.entry(code).or_default() += 1,
                // The pinned key is PEM: whitespace after the footer is not part of the key. A
                // flip there that still decodes to the very same key changed no trust content.
                Ok(Err(()))
                    if relative == Path::new("trust/root.pub")
                        && read_public_key_file(&path).ok() == pinned_key =>
                {
                    tally.equivalent.push(at);
                }
                Ok(Err(())) => tally.accepted.push(at),
                Err(_) => tally.panics.push(at),
            }
        }
        std::fs::write(&path, &original).unwrap();
    }
    tally
}

#[test]
fn every_flipped_byte_of_every_trust_input_is_refused() {
    let started = Instant::now();
    let fixture = FixtureEnvironment::new().unwrap();
    let files = trust_inputs(fixture.root());
    assert_eq!(files.len(), 8, "{files:?}");
    let total_bytes: usize = files
        .iter()
        .map(|f| std::fs::metadata(fixture.root().join(f)).unwrap().len() as usize)
        .sum();
    // The untampered environment executes both policies (otherwise every refusal is vacuous).
    let signer = fixture.attestation_signer().unwrap();
    for file in [
        Path::new("release-manifest.json"),
        Path::new("policies/claims-approval"),
        Path::new("policies/patient-triage"),
    ] {
        assert!(
            outcome(&fixture.config(), file, &signer).is_err(),
            "the fixtures must execute"
        );
    }
    // Two workers (the machine has two cores), each with its own copy.
    let (even, odd): (Vec<_>, Vec<_>) = files
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let shares = [even, odd].map(|share| share.into_iter().map(|(_, f)| f).collect::<Vec<_>>());
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| scope.spawn(|| flip_files(share)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total = Tally::default();
    for tally in tallies {
        total.flipped += tally.flipped;
        total.accepted.extend(tally.accepted);
        total.equivalent.extend(tally.equivalent);
        total.panics.extend(tally.panics);
        for (code, n) in tally.codes {
            *total.codes.entry(code).or_default() += n;
        }
    }
    assert!(total.panics.is_empty(), "panicked at {:?}", total.panics);
    assert!(
        total.accepted.is_empty(),
        "accepted after flipping {:?}",
        total.accepted
    );
    assert_eq!(
        total.flipped as usize,
        files
            .iter()
            .map(
                |f| positions(std::fs::metadata(fixture.root().join(f)).unwrap().len() as usize)
                    .len()
            )
            .sum::<usize>()
    );
    eprintln!(
        "tamper: {} files, {total_bytes} bytes, {} bytes flipped, 0 accepted, 0 panics, \
         {} flips decoding to the same pinned key ({:?}), in {:.1} s; refusals by code: {:?}",
        files.len(),
        total.flipped,
        total.equivalent.len(),
        total.equivalent,
        started.elapsed().as_secs_f64(),
        total.codes
    );
}

#[test]
fn deleting_or_adding_a_trust_input_is_refused() {
    let fixture = FixtureEnvironment::new().unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let config = fixture.config();
    let mut cases = 0;
    for relative in trust_inputs(fixture.root()) {
        let path = fixture.root().join(&relative);
        let original = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let refused = outcome(&config, &relative, &signer);
        assert!(refused.is_ok(), "accepted without {}", relative.display());
        std::fs::write(&path, &original).unwrap();
        cases += 1;
    }
    // An unlisted file inside each bundle directory, and a gap in the trust-root chain.
    for policy in ["claims-approval", "patient-triage"] {
        let extra = fixture
            .root()
            .join("policies")
            .join(policy)
            .join("1.0.0")
            .join("extra.json");
        std::fs::write(&extra, b"{}").unwrap();
        assert!(
            outcome(&config, &Path::new("policies").join(policy), &signer).is_ok(),
            "{policy}: extra file accepted"
        );
        std::fs::remove_file(&extra).unwrap();
        cases += 1;
    }
    let gap = fixture
        .root()
        .join("trust")
        .join("trust-root.d")
        .join("3.json");
    std::fs::write(
        &gap,
        std::fs::read(fixture.root().join("trust").join("trust-root.json")).unwrap(),
    )
    .unwrap();
    assert!(outcome(&config, Path::new("trust/trust-root.d/3.json"), &signer).is_ok());
    std::fs::remove_file(&gap).unwrap();
    cases += 1;
    assert!(
        outcome(&config, Path::new("release-manifest.json"), &signer).is_err(),
        "restored fixtures execute"
    );
    eprintln!("tamper: {cases} deleted or added files refused");
}

#[test]
fn the_excluded_files_are_not_trust_inputs() {
    let fixture = FixtureEnvironment::new().unwrap();
    let signer = fixture.attestation_signer().unwrap();
    std::fs::remove_dir_all(fixture.root().join("trust").join("keys")).unwrap();
    std::fs::remove_file(fixture.root().join("trust").join("README.md")).unwrap();
    // Load and execute both policies without them: they are not read by a verifier.
    assert!(
        outcome(
            &fixture.config(),
            Path::new("release-manifest.json"),
            &signer
        )
        .is_err()
    );
}

/// A bundle's test cases are not signed: editing, adding or deleting one changes no outcome (the
/// bundle and the release still verify), which is what lets a test be added to a released policy.
#[test]
fn editing_a_bundles_test_cases_changes_nothing_an_execution_reads() {
    let request = request("claims-approval");
    let attested = |fixture: &FixtureEnvironment| {
        let environment = RuntimeEnvironment::load(&fixture.config(), fixed_now()).unwrap();
        execute_from_signals(
            &request,
            &fixture.attestation_signer().unwrap(),
            &MemoryReplayStore::new(),
            &environment,
            &fixed_clock(),
        )
        .unwrap()
        .into_envelope()
    };
    let fixture = FixtureEnvironment::new().unwrap();
    let tests = fixture.root().join("policies/claims-approval/1.0.0/tests");
    std::fs::write(tests.join("small-approve.json"), b"{\"edited\": true}").unwrap();
    std::fs::remove_file(tests.join("fraud-deny.json")).unwrap();
    std::fs::write(tests.join("added.json"), b"[]").unwrap();
    // The very attestation an untouched copy gives (same request, clock and key: Ed25519 is
    // deterministic), byte for byte.
    assert_eq!(
        attested(&fixture),
        attested(&FixtureEnvironment::new().unwrap())
    );
}
