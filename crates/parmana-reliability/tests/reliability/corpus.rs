//! The hostile-request corpus: every file in `tests/corpus/` is one bad request and the error code (and class) it must be refused with; the store must be unchanged afterwards and the execution id not consumed.
//!
//! A case file is `{"description", "request": {"execution_id", "policy_id", "policy_version",
//! and one of "signals" (a JSON value), "signals_text" (text parsed strictly) or "signals_hex"
//! (raw bytes)}, "expect": {"code", "class"}}`. Anywhere in `request`, `{"$repeat": T, "times": N}`
//! stands for the string T repeated N times (10 MiB strings are generated, not stored), and
//! `signals_text` may be a list of such parts, concatenated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use parmana_canon::parse_strict;
use parmana_reliability::{fixed_clock, fixed_now, request_of, stream_request};
use parmana_replay::{
    AcceptedVersions, ExecutionId, ExecutionState, LedgerSnapshot, ReplayStore, SqliteReplayStore,
};
use parmana_runtime::{
    ErrorClass, ExecutionError, RuntimeEnvironment, Signals, execute_from_signals,
    trust::LocalSigningKey,
};
use parmana_testkit::FixtureEnvironment;
use serde_json::{Map, Value};

/// Everything a refused request must leave untouched.
#[derive(Debug, PartialEq)]
struct StoreState {
    pending: Vec<ExecutionId>,
    ledger: LedgerSnapshot,
    versions: AcceptedVersions,
}

fn state(store: &dyn ReplayStore) -> StoreState {
    StoreState {
        pending: store.pending().unwrap(),
        ledger: store.ledger_snapshot().unwrap(),
        versions: store.accepted_versions().unwrap(),
    }
}

/// Replaces every `{"$repeat": T, "times": N}` by T repeated N times.
fn expand(value: &Value) -> Value {
    match value {
        Value::Object(map) if map.contains_key("$repeat") => {
            let text = map["$repeat"].as_str().unwrap();
            let times = usize::try_from(map["times"].as_u64().unwrap()).unwrap();
            Value::String(text.repeat(times))
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), expand(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(expand).collect()),
        other => other.clone(),
    }
}

/// A text field: a string, a `$repeat`, or a list of those concatenated.
fn text(value: &Value) -> String {
    match expand(value) {
        Value::String(s) => s,
        Value::Array(parts) => parts.iter().map(text).collect(),
        other => panic!("not a text field: {other}"),
    }
}

fn class_name(class: ErrorClass) -> &'static str {
    class.as_str()
}

fn submit(
    request: &Map<String, Value>,
    signer: &LocalSigningKey,
    store: &dyn ReplayStore,
    environment: &RuntimeEnvironment,
) -> Result<(), ExecutionError> {
    let execution_id = text(&request["execution_id"]);
    let policy_id = text(&request["policy_id"]);
    let policy_version = text(&request["policy_version"]);
    let built = if let Some(signals_text) = request.get("signals_text") {
        request_of(
            &execution_id,
            &policy_id,
            &policy_version,
            Signals::from_json(text(signals_text))?,
            false,
        )?
    } else if let Some(hex) = request.get("signals_hex") {
        let hex = hex.as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        request_of(
            &execution_id,
            &policy_id,
            &policy_version,
            Signals::from_json(bytes)?,
            false,
        )?
    } else {
        request_of(
            &execution_id,
            &policy_id,
            &policy_version,
            expand(&request["signals"]),
            false,
        )?
    };
    execute_from_signals(&built, signer, store, environment, &fixed_clock()).map(|_| ())
}

/// Runs one case; returns what is wrong with the outcome, if anything.
fn check(
    path: &Path,
    signer: &LocalSigningKey,
    store: &dyn ReplayStore,
    environment: &RuntimeEnvironment,
) -> Result<(), String> {
    let case = parse_strict(&std::fs::read(path).unwrap()).unwrap();
    let request = case["request"].as_object().unwrap();
    let expected_code = case["expect"]["code"].as_str().unwrap();
    let expected_class = case["expect"]["class"].as_str().unwrap();
    let before = state(store);
    match submit(request, signer, store, environment) {
        Ok(()) => return Err("accepted".to_owned()),
        Err(error) => {
            if error.code() != expected_code || class_name(error.class()) != expected_class {
                return Err(format!(
                    "refused with {} ({}), expected {expected_code} ({expected_class}): {}",
                    error.code(),
                    class_name(error.class()),
                    error.to_string().chars().take(200).collect::<String>()
                ));
            }
        }
    }
    if state(store) != before {
        return Err("the store changed".to_owned());
    }
    if let Ok(id) = ExecutionId::parse(&text(&request["execution_id"]))
        && store.get(&id).unwrap() != ExecutionState::Absent
    {
        return Err(format!("execution id {id} was consumed"));
    }
    Ok(())
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // Every file is a case: a misnamed one would be skipped, not run.
    for file in &files {
        assert!(
            file.extension().is_some_and(|e| e == "json"),
            "{}: not a .json case",
            file.display()
        );
    }
    files.sort();
    files
}

#[test]
fn every_bad_request_is_refused_with_its_code_and_the_store_unchanged() {
    let fixture = FixtureEnvironment::new().unwrap();
    let environment = fixture.load_at(fixed_now()).unwrap();
    let signer = fixture.attestation_signer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteReplayStore::open(dir.path().join("corpus.sqlite")).unwrap();
    // A store with history, so that "unchanged" covers a non-empty ledger and accepted versions.
    for n in 0..3 {
        let request = stream_request(&format!("history-{n}"), n, n).unwrap();
        execute_from_signals(&request, &signer, &store, &environment, &fixed_clock()).unwrap();
    }

    let files = corpus_files();
    assert!(files.len() >= 60, "the corpus has {} cases", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| {
            check(path, &signer, &store, &environment)
                .err()
                .map(|why| format!("{}: {why}", path.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Not consumed means usable: every well-formed id of the corpus still executes once (but
    // `.` and `..`, well formed as ids but refused for a new execution, which their cases check).
    let mut reused = 0;
    for path in &files {
        let case = parse_strict(&std::fs::read(path).unwrap()).unwrap();
        let id = text(&case["request"]["execution_id"]);
        if ExecutionId::parse(&id).is_ok() {
            let good = stream_request(&id, 0, 7).unwrap();
            match execute_from_signals(&good, &signer, &store, &environment, &fixed_clock()) {
                Ok(_) => reused += 1,
                Err(error) => assert!(
                    matches!(id.as_str(), "." | "..")
                        && error.code() == "runtime.invalid_execution_id",
                    "{id}: {error}"
                ),
            }
        }
    }
    eprintln!(
        "corpus: {} bad requests refused with their codes; {reused} ids still usable",
        files.len()
    );
}
