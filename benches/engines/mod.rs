//! The engines under comparison, behind the same calls, and the differential check they must pass.
//!
//! Shared by the `peers` bench and the `peers_agree` test (`#[path]`-included, so that the library
//! itself never uses the peer engines: they are optional dependencies behind the `peers` feature,
//! which both targets require).

pub(crate) mod cedar;
pub(crate) mod parmana;
pub(crate) mod rego;

use std::collections::BTreeMap;

use parmana_benches::spec::{Outcome, PolicySpec, SignalSet, signals_to_json};

use cedar::CedarEngine;
use parmana::ParmanaEngine;
use rego::RegoEngine;
pub(crate) use rego::RegoMode;

/// What a passing differential check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Agreement {
    /// Signal sets decided.
    pub sets: usize,
    /// How often each rule id (and `default`) decided.
    pub reached: BTreeMap<String, usize>,
}

/// Runs every engine (regorus in each of `rego_modes`), from typed signals and from JSON text, over
/// `sets`, and fails on the first signal set where any of them disagrees with the reference
/// evaluator on decision or rule id.
pub(crate) fn check_agreement(
    spec: &PolicySpec,
    sets: &[SignalSet],
    rego_modes: &[RegoMode],
) -> Result<Agreement, String> {
    let ours = ParmanaEngine::new(spec)?;
    let cedar = CedarEngine::new(spec)?;
    let mut regos = rego_modes
        .iter()
        .map(|mode| RegoEngine::new(spec, *mode))
        .collect::<Result<Vec<_>, _>>()?;
    let mut reached = BTreeMap::new();
    for (index, signals) in sets.iter().enumerate() {
        let expected = spec.decide(signals).map_err(|e| e.to_string())?;
        let json = signals_to_json(signals);
        let mut seen: Vec<(&str, Result<Outcome<'_>, String>)> = Vec::new();
        let validated = ours.typed_signals(signals)?;
        seen.push((
            "parmana typed",
            ours.decide(&validated).map(|d| parmana::outcome(&d)),
        ));
        seen.push((
            "parmana json",
            ours.decide_json(&json).map(|d| parmana::outcome(&d)),
        ));
        let request = cedar.typed_request(signals)?;
        seen.push(("cedar typed", cedar.decide(&request)));
        seen.push(("cedar json", cedar.decide_json(&json)));
        let input = RegoEngine::typed_input(signals)?;
        let mut results = Vec::new();
        for rego in &mut regos {
            results.push((rego.mode().typed_label(), rego.decide(input.clone())));
            results.push((rego.mode().json_label(), rego.decide_json(&json)));
        }
        for (engine, result) in &results {
            seen.push((
                engine,
                result
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(rego::outcome),
            ));
        }
        for (engine, got) in seen {
            match got {
                Ok(outcome) if outcome == expected => {}
                Ok(outcome) => {
                    return Err(format!(
                        "{engine} disagrees on signal set #{index} {json}: {outcome}, expected {expected}"
                    ));
                }
                Err(error) => {
                    return Err(format!(
                        "{engine} failed on signal set #{index} {json}: {error}"
                    ));
                }
            }
        }
        *reached.entry(expected.rule_id.to_owned()).or_insert(0) += 1;
    }
    Ok(Agreement {
        sets: sets.len(),
        reached,
    })
}
