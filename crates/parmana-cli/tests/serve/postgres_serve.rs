//! Scale-out: three servers on one PostgreSQL race the same execution ids — exactly one `201` per id, the others `409`, the ledger intact, every attestation verifying.

use crate::harness::{Served, deployment, execution_body, parmana};

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "needs PostgreSQL: set PARMANA_TEST_POSTGRES_URL (source .ci/services)"
)]
fn three_servers_on_one_postgres_answer_each_id_exactly_once() {
    let url = std::env::var("PARMANA_TEST_POSTGRES_URL").unwrap();
    // A fresh schema-free namespace: ids unique to this run.
    let run = format!("{}", std::process::id());
    let env = deployment(&url, "");
    let servers: Vec<Served> = (0..3)
        .map(|_| Served::start(env.root(), &["--dev-token"]))
        .collect();
    let targets: Vec<(String, String)> = servers
        .iter()
        .map(|s| (s.base.clone(), s.token.clone().unwrap()))
        .collect();
    let ids: Vec<String> = (0..20).map(|n| format!("scale-{run}-{n}")).collect();
    let mut racers = Vec::new();
    for (base, token) in targets {
        let ids = ids.clone();
        racers.push(std::thread::spawn(move || {
            ids.iter()
                .map(|id| {
                    let reply = crate::harness::call(
                        &base,
                        "POST",
                        "/v1/executions",
                        Some(&token),
                        Some(&execution_body(id)),
                    );
                    (id.clone(), reply.status, reply.text)
                })
                .collect::<Vec<_>>()
        }));
    }
    let results: Vec<(String, u16, String)> =
        racers.into_iter().flat_map(|r| r.join().unwrap()).collect();
    for id in &ids {
        let statuses: Vec<u16> = results
            .iter()
            .filter(|(i, _, _)| i == id)
            .map(|(_, s, _)| *s)
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{id}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            2,
            "{id}: {statuses:?}"
        );
    }
    for (_, status, text) in results.iter().filter(|(_, s, _)| *s == 201) {
        let attestation =
            serde_json::from_str::<serde_json::Value>(text).unwrap()["attestation"].to_string();
        let file = env.root().join("attestation.json");
        std::fs::write(&file, attestation).unwrap();
        let (code, _, stderr) = parmana(env.root(), &["verify", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{status}: {stderr}");
    }
    let (code, _, stderr) = parmana(env.root(), &["ledger", "verify"]);
    assert_eq!(code, 0, "{stderr}");
}
