//! Scale-out on PostgreSQL, each test in a database of its own: three servers race the same execution ids, the three requests for each id released together — exactly one `201` per id, the others `409 runtime.replay_detected` naming it, every server reading back the winner's attestation, the ledger intact with exactly one execution per id; a server stopping while another integrator holds the ledger waits for it, leaving nothing unsequenced; and the integrator's lock held from outside while completions wait turns `/readyz` false, until it is let go.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Served, deployment, execution_body, parmana};

/// A database of its own on the CI server (`PARMANA_TEST_POSTGRES_URL`), dropped when the test
/// ends: runs and tests never see each other's ids, claims or ledger.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create(prefix: &str) -> Self {
        let admin = std::env::var("PARMANA_TEST_POSTGRES_URL").unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("{prefix}_{}_{nanos}", std::process::id());
        postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        // The database is the URL's path: `postgres://user@host:port/DATABASE?options`.
        let authority = admin.find("://").unwrap() + 3;
        let path = authority + admin[authority..].find('/').unwrap();
        let query = admin[path..].find('?').map_or(admin.len(), |q| path + q);
        let url = format!("{}/{name}{}", &admin[..path], &admin[query..]);
        Self { admin, name, url }
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `parmana --format json ledger verify` of the deployment at `root`.
fn ledger(root: &std::path::Path) -> Value {
    let (code, stdout, stderr) = parmana(root, &["--format", "json", "ledger", "verify"]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "needs PostgreSQL: set PARMANA_TEST_POSTGRES_URL (source .ci/services)"
)]
fn three_servers_on_one_postgres_answer_each_id_exactly_once() {
    let database = Database::create("scale");
    let env = deployment(&database.url, "");
    let servers: Vec<Served> = (0..3)
        .map(|_| Served::start(env.root(), &["--dev-token"]))
        .collect();
    let targets: Vec<(String, String)> = servers
        .iter()
        .map(|s| (s.base.clone(), s.token.clone().unwrap()))
        .collect();
    let ids: Vec<String> = (0..20).map(|n| format!("scale-{n}")).collect();
    // The three requests for an id leave together: each server's thread waits for the others
    // before every id.
    let together = Arc::new(Barrier::new(targets.len()));
    let racers: Vec<_> = targets
        .into_iter()
        .map(|(base, token)| {
            let (ids, together) = (ids.clone(), Arc::clone(&together));
            std::thread::spawn(move || {
                ids.iter()
                    .map(|id| {
                        together.wait();
                        let reply = crate::harness::call(
                            &base,
                            "POST",
                            "/v1/executions",
                            Some(&token),
                            Some(&execution_body(id)),
                        );
                        (id.clone(), reply)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = racers.into_iter().flat_map(|r| r.join().unwrap()).collect();
    for id in &ids {
        let replies: Vec<_> = results
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, r)| r)
            .collect();
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [201, 409, 409], "{id}: {statuses:?}");
        let location = format!("/v1/executions/{id}");
        for reply in &replies {
            assert_eq!(reply.header("location"), Some(location.as_str()), "{id}");
            if reply.status == 409 {
                assert_eq!(reply.code(), "runtime.replay_detected", "{id}");
            }
        }
        // Every server reads back the winner's attestation.
        let winner = replies.iter().find(|r| r.status == 201).unwrap();
        let attestation = winner.json()["attestation"].clone();
        for served in &servers {
            let stored = served.get(&location, served.token.as_deref());
            assert_eq!(stored.status, 200, "{id}: {}", stored.text);
            assert_eq!(stored.json(), attestation, "{id}");
        }
        let file = env.root().join("attestation.json");
        std::fs::write(&file, attestation.to_string()).unwrap();
        let (code, _, stderr) = parmana(env.root(), &["verify", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{id}: {stderr}");
    }
    // One execution per id in the ledger, and nothing else; once the servers stop (each
    // sequences what it completed), every one of them integrated.
    for mut served in servers {
        served.signal("TERM");
        assert_eq!(served.wait(), Some(0), "{}", served.stderr());
    }
    let report = ledger(env.root());
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(
        (&report["executions"], &report["unsequenced"]),
        (&Value::from(20), &Value::from(0)),
        "{report}"
    );
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "needs PostgreSQL: set PARMANA_TEST_POSTGRES_URL (source .ci/services)"
)]
fn a_server_stopping_while_another_integrator_holds_the_ledger_waits_for_it() {
    // When a whole deployment stops at once, one server's last completions can commit after
    // another's integrator read the ledger: the final pass of the last server to stop used to
    // find the ledger held (`Busy`) and leave them unsequenced until the next start.
    let database = Database::create("final_pass");
    let env = deployment(&database.url, "");
    let mut served = Served::start(env.root(), &["--dev-token"]);
    // Another integrator: the sequencer's advisory lock of the store's schema, held by a
    // session of its own.
    let mut other = database.client();
    other
        .batch_execute("SELECT pg_advisory_lock(1886220654, hashtext('parmana'))")
        .unwrap();
    let reply = served.post(
        "/v1/executions",
        served.token.as_deref(),
        &execution_body("final-1"),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    served.signal("TERM");
    // The server does not leave while the ledger is held (it waits up to five seconds: watched
    // for a quarter of a second, so that a stalled machine still lets go well within them)...
    let left_early = (0..10).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        served.has_exited()
    });
    assert!(!left_early, "{}", served.stderr());
    // ...and integrates its completion once the other integrator lets go.
    other
        .batch_execute("SELECT pg_advisory_unlock(1886220654, hashtext('parmana'))")
        .unwrap();
    assert_eq!(served.wait(), Some(0), "{}", served.stderr());
    let report = ledger(env.root());
    assert_eq!(
        (&report["executions"], &report["unsequenced"]),
        (&Value::from(1), &Value::from(0)),
        "{report}"
    );
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "needs PostgreSQL: set PARMANA_TEST_POSTGRES_URL (source .ci/services)"
)]
fn the_integrators_lock_held_while_completions_wait_turns_readyz_false() {
    // Any role that may connect can take the sequencer's advisory lock and keep every
    // completion out of the log: ten cadences of that (at least 10 s) while this server's
    // completions wait, and `/readyz` says so; once the lock is let go and a run integrates,
    // ready again.
    let database = Database::create("held_lock");
    let env = deployment(&database.url, "");
    let served = Served::start(
        env.root(),
        &["--dev-token", "--sequence-interval-ms", "200"],
    );
    let mut other = database.client();
    other
        .batch_execute("SELECT pg_advisory_lock(1886220654, hashtext('parmana'))")
        .unwrap();
    let reply = served.post(
        "/v1/executions",
        served.token.as_deref(),
        &execution_body("held-1"),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    let readyz = |served: &Served| {
        let reply = served.get("/readyz", None);
        (reply.status, reply.text)
    };
    let started = std::time::Instant::now();
    let mut not_ready = None;
    while started.elapsed() < Duration::from_secs(60) {
        let (status, text) = readyz(&served);
        if status == 503 {
            not_ready = Some(text);
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let text = not_ready.unwrap_or_else(|| panic!("still ready: {}", served.stderr()));
    assert!(
        text.contains("integrator lock has been held by another session"),
        "{text}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "not ready after {:?}: too soon",
        started.elapsed()
    );
    other
        .batch_execute("SELECT pg_advisory_unlock(1886220654, hashtext('parmana'))")
        .unwrap();
    let ready_again = (0..200).any(|_| {
        let ready = readyz(&served).0 == 200;
        if !ready {
            std::thread::sleep(Duration::from_millis(50));
        }
        ready
    });
    assert!(ready_again, "{}", served.stderr());
}
