//! How the PostgreSQL store connects: TLS by `sslmode` (against the TLS-enabled server of `.ci/services` and a fake server on loopback), the bounded pool with its timeout, the lock timeout, and what reaches the database (an attestation only with a claim that won).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
#![cfg(feature = "postgres")]

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::{
    V0, claim_for, id, postgres_raw, postgres_tls_only_url, postgres_tls_url, postgres_url, unique,
    with_option,
};
use parmana_replay::{
    ClaimOutcome, ExecutionState, PostgresOptions, PostgresReplayStore, ReplayError, ReplayStore,
};

/// A CA certificate whose key was thrown away: it signed nothing the test server presents.
fn untrusted_ca() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/untrusted-ca.pem")
}

fn options(schema: &str) -> PostgresOptions {
    PostgresOptions {
        schema: schema.to_owned(),
        pool_size: 2,
        connect_timeout: Duration::from_secs(10),
        create: true,
    }
}

/// Drops the schemas a test made, over a plain connection, when it ends (even by panic).
struct Schemas(Vec<String>);

impl Drop for Schemas {
    fn drop(&mut self) {
        let Some(url) = postgres_url() else { return };
        if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
            for schema in &self.0 {
                let _ =
                    client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        }
    }
}

/// The test server's URL and a schema of the test's own (`{prefix}_…`), dropped when the
/// returned guard is; `None` without a server.
fn own_schema(prefix: &str) -> Option<(String, String, Schemas)> {
    let url = postgres_url()?;
    let schema = unique(prefix);
    Some((url, schema.clone(), Schemas(vec![schema])))
}

/// Connects, claims and reads back one id: the store works over this URL.
fn round_trip(url: &str, schema: &str) -> Result<(), ReplayError> {
    let store = PostgresReplayStore::connect(url, &options(schema))?;
    let exec = id(&format!("round-trip-{schema}"));
    assert_eq!(
        store.claim(&exec, &claim_for("tls"), V0)?,
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.claim(&exec, &claim_for("tls"), V0)?,
        ClaimOutcome::AlreadyClaimed
    );
    assert!(matches!(store.get(&exec)?, ExecutionState::Claimed(_)));
    Ok(())
}

/// The test TLS URL (`postgres://…@127.0.0.1:PORT/…?sslmode=verify-full&sslrootcert=CA`)
/// with its host and options changed.
fn tls_url_with(host: &str, query: &str) -> String {
    let url = postgres_tls_url().unwrap();
    let (base, _) = url.split_once('?').unwrap();
    assert!(
        base.contains("@127.0.0.1:"),
        "expected the .ci/services TLS URL on 127.0.0.1, got {url}"
    );
    format!(
        "{}?{query}",
        base.replace("@127.0.0.1:", &format!("@{host}:"))
    )
}

/// The CA bundle named by the test TLS URL.
fn test_ca() -> String {
    let url = postgres_tls_url().unwrap();
    url.split(['?', '&'])
        .find_map(|option| option.strip_prefix("sslrootcert="))
        .unwrap()
        .to_owned()
}

#[test]
#[cfg_attr(
    parmana_no_postgres_tls,
    ignore = "no PostgreSQL server over TLS: set PARMANA_TEST_POSTGRES_TLS_URL and PARMANA_TEST_POSTGRES_TLS_ONLY_URL (`source .ci/services`)"
)]
fn verify_full_accepts_the_servers_certificate_by_ip_and_by_name() {
    let Some(url) = postgres_tls_url() else {
        return;
    };
    let schemas = Schemas(vec![unique("tls_ip"), unique("tls_name")]);
    round_trip(&url, &schemas.0[0]).unwrap();
    // The certificate names 127.0.0.1 (an IP SAN) and localhost (a DNS SAN).
    let by_name = tls_url_with(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", test_ca()),
    );
    round_trip(&by_name, &schemas.0[1]).unwrap();
    let store = PostgresReplayStore::connect(&url, &options(&schemas.0[0])).unwrap();
    assert!(format!("{store:?}").contains("verify-full"), "{store:?}");
}

#[test]
#[cfg_attr(
    parmana_no_postgres_tls,
    ignore = "no PostgreSQL server over TLS: set PARMANA_TEST_POSTGRES_TLS_URL and PARMANA_TEST_POSTGRES_TLS_ONLY_URL (`source .ci/services`)"
)]
fn verify_full_refuses_a_certificate_for_another_host_and_verify_ca_accepts_it() {
    let Some(_) = postgres_tls_url() else {
        return;
    };
    let schemas = Schemas(vec![unique("tls_ca")]);
    // Connect to 127.0.0.1 (hostaddr) while naming another host: the certificate does not name it.
    let wrong_host = |mode: &str| {
        tls_url_with(
            "wrong-host.invalid",
            &format!(
                "hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
                test_ca()
            ),
        )
    };
    let error = PostgresReplayStore::connect(&wrong_host("verify-full"), &options("tls_never"))
        .unwrap_err();
    assert_eq!(error.code(), "replay.store_tls_refused", "{error}");
    assert!(
        error.to_string().contains("not valid for name"),
        "the message says why: {error}"
    );
    // verify-ca checks the chain only, so the same connection is accepted.
    round_trip(&wrong_host("verify-ca"), &schemas.0[0]).unwrap();
}

#[test]
#[cfg_attr(
    parmana_no_postgres_tls,
    ignore = "no PostgreSQL server over TLS: set PARMANA_TEST_POSTGRES_TLS_URL and PARMANA_TEST_POSTGRES_TLS_ONLY_URL (`source .ci/services`)"
)]
fn a_certificate_from_an_untrusted_ca_is_refused() {
    let Some(_) = postgres_tls_url() else {
        return;
    };
    let ca = untrusted_ca();
    // `require` with a root certificate checks the chain (libpq's rule), like verify-ca.
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = tls_url_with(
            "127.0.0.1",
            &format!("sslmode={mode}&sslrootcert={}", ca.display()),
        );
        let error = PostgresReplayStore::connect(&url, &options("tls_never")).unwrap_err();
        assert_eq!(error.code(), "replay.store_tls_refused", "{mode}: {error}");
        assert!(
            error.to_string().contains("UnknownIssuer"),
            "{mode}: the message says why: {error}"
        );
        // Refused by the first connection's handshake, not after waiting for the pool.
        assert!(
            !error
                .to_string()
                .contains("no PostgreSQL connection within"),
            "{mode}: {error}"
        );
    }
}

#[test]
#[cfg_attr(
    parmana_no_postgres_tls,
    ignore = "no PostgreSQL server over TLS: set PARMANA_TEST_POSTGRES_TLS_URL and PARMANA_TEST_POSTGRES_TLS_ONLY_URL (`source .ci/services`)"
)]
fn require_and_the_default_mode_encrypt_and_disable_does_not() {
    // The server admits this role only over TLS, so a working store proves the session is encrypted.
    let Some(tls_only) = postgres_tls_only_url() else {
        return;
    };
    let schemas = Schemas(vec![unique("tls_req"), unique("tls_default")]);
    round_trip(&with_option(&tls_only, "sslmode=require"), &schemas.0[0]).unwrap();
    // No sslmode is libpq's default, `prefer`: TLS when the server offers it.
    round_trip(&tls_only, &schemas.0[1]).unwrap();
    let error = PostgresReplayStore::connect(
        &with_option(&tls_only, "sslmode=disable"),
        &options("tls_never"),
    )
    .unwrap_err();
    assert_eq!(error.code(), "replay.store_unavailable", "{error}");
    assert!(error.to_string().contains("pg_hba.conf"), "{error}");
}

#[test]
fn unknown_and_unsupported_options_are_refused_before_connecting() {
    // No server needed: the URL is refused before any connection is tried.
    for url in [
        "postgres://u@127.0.0.1:1/db?sslmode=allow",
        "postgres://u@127.0.0.1:1/db?sslmode=verify-full",
        "postgres://u@127.0.0.1:1/db?sslrootcert=/ca.pem",
        "postgres://u@127.0.0.1:1/db?sslmode=require&sslcert=/client.pem",
        "postgres://u@127.0.0.1:1/db?sslmode=require&no_such_option=1",
        "postgres://u@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ] {
        let error = PostgresReplayStore::connect(url, &options("never")).unwrap_err();
        assert_eq!(
            error.code(),
            "replay.invalid_configuration",
            "{url}: {error}"
        );
    }
    let error = PostgresReplayStore::connect(
        "postgres://u@127.0.0.1:1/db",
        &PostgresOptions {
            connect_timeout: Duration::ZERO,
            ..PostgresOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(error.code(), "replay.invalid_configuration", "{error}");
    // Schema names PostgreSQL reserves, or that are not [a-z_][a-z0-9_]*.
    for schema in ["pg_catalog", "pg_parmana", "Parmana", "9lives", ""] {
        let error = PostgresReplayStore::connect("postgres://u@127.0.0.1:1/db", &options(schema))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            error.code(),
            "replay.invalid_configuration",
            "{schema:?}: {error}"
        );
    }
}

/// A fake server on loopback that answers the client's SSLRequest with `answer`, then closes.
fn fake_server(answer: &'static [u8]) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = [0u8; 8];
        stream.read_exact(&mut request).unwrap();
        // Length 8, then the SSLRequest code 80877103.
        assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
        stream.write_all(answer).unwrap();
    });
    (port, handle)
}

#[test]
fn a_server_without_tls_is_refused_when_tls_is_required() {
    let (port, server) = fake_server(b"N");
    let url = format!("postgres://u@127.0.0.1:{port}/db?sslmode=require");
    let error = PostgresReplayStore::connect(&url, &options("never")).unwrap_err();
    server.join().unwrap();
    assert_eq!(error.code(), "replay.store_tls_refused", "{error}");
    assert!(
        error.to_string().contains("does not support TLS"),
        "{error}"
    );

    // `prefer` goes on without TLS; the fake server then hangs up, which is only unavailable.
    let (port, server) = fake_server(b"N");
    let url = format!("postgres://u@127.0.0.1:{port}/db?sslmode=prefer");
    let error = PostgresReplayStore::connect(&url, &options("never")).unwrap_err();
    server.join().unwrap();
    assert_eq!(error.code(), "replay.store_unavailable", "{error}");
}

#[test]
fn a_broken_tls_handshake_is_refused() {
    // The fake server agrees to TLS, then answers with something that is not TLS.
    let (port, server) = fake_server(b"SHTTP/1.1 400 Bad Request\r\n\r\n");
    let url = format!("postgres://u@127.0.0.1:{port}/db?sslmode=require");
    let error = PostgresReplayStore::connect(&url, &options("never")).unwrap_err();
    server.join().unwrap();
    assert_eq!(error.code(), "replay.store_tls_refused", "{error}");
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn the_pool_holds_at_most_pool_size_connections() {
    let Some((url, schema, _schemas)) = own_schema("pool") else {
        return;
    };
    let application = unique("parmana_pool");
    let store_url = with_option(&url, &format!("application_name={application}"));
    let store = PostgresReplayStore::connect(&store_url, &options(&schema)).unwrap();
    let mut raw = postgres_raw(&url, "public");
    let count = |raw: &mut postgres::Client| -> i64 {
        raw.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&application],
        )
        .unwrap()
        .get(0)
    };
    let mut most = 0;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|t| {
                let store = &store;
                scope.spawn(move || {
                    for n in 0..40 {
                        let exec = id(&format!("pool-{t}-{n}"));
                        assert_eq!(
                            store.claim(&exec, &claim_for("pool"), V0).unwrap(),
                            ClaimOutcome::Claimed
                        );
                        store.complete(&exec, b"attestation").unwrap();
                    }
                })
            })
            .collect();
        while !workers
            .iter()
            .all(std::thread::ScopedJoinHandle::is_finished)
        {
            most = most.max(count(&mut raw));
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    assert!(most >= 1, "the store's connections were never seen");
    assert!(most <= 2, "{most} connections open with pool_size 2");
    assert_eq!(store.pending().unwrap(), Vec::new());
    assert!(
        parmana_replay::verify_ledger(&store).unwrap().is_intact(),
        "320 completions through 2 connections"
    );
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn a_server_that_stops_accepting_connections_times_out_as_unavailable_and_recovers() {
    let Some(url) = postgres_url() else {
        return;
    };
    let role = unique("role");
    let schema = unique("timeout");
    let mut admin = postgres_raw(&url, "public");
    let database: String = admin
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; GRANT CREATE ON DATABASE {database} TO {role}"
        ))
        .unwrap();
    let store = PostgresReplayStore::connect(
        &with_option(&url, &format!("user={role}")),
        &PostgresOptions {
            schema: schema.clone(),
            pool_size: 1,
            connect_timeout: Duration::from_secs(1),
            create: true,
        },
    )
    .unwrap();
    assert_eq!(
        store
            .claim(&id("before"), &claim_for("before"), V0)
            .unwrap(),
        ClaimOutcome::Claimed
    );

    // The server now refuses the role and ends its sessions: the pool cannot get a connection.
    admin
        .batch_execute(&format!(
            "ALTER ROLE {role} NOLOGIN;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';"
        ))
        .unwrap();
    // The first claim may meet the ended session; the ones after it find no connection in the
    // pool's time and say so, with the server's reason for the last attempt.
    let mut waited_for_the_pool = false;
    for n in 0..3 {
        let error = store
            .claim(&id(&format!("during-{n}")), &claim_for("during"), V0)
            .unwrap_err();
        assert_eq!(error.code(), "replay.store_unavailable", "{error}");
        let message = error.to_string();
        if message.contains("no PostgreSQL connection within") {
            waited_for_the_pool = true;
            assert!(message.contains("is not permitted to log in"), "{error}");
        }
    }
    assert!(waited_for_the_pool, "no checkout waited for the pool");

    // Admitted again: the pool reconnects and nothing acknowledged was lost.
    admin
        .batch_execute(&format!("ALTER ROLE {role} LOGIN"))
        .unwrap();
    assert_eq!(
        store.claim(&id("after"), &claim_for("after"), V0).unwrap(),
        ClaimOutcome::Claimed
    );
    assert!(matches!(
        store.get(&id("before")).unwrap(),
        ExecutionState::Claimed(_)
    ));
    drop(store);
    admin
        .batch_execute(&format!(
            "DROP SCHEMA {schema} CASCADE;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';
             DROP OWNED BY {role}; DROP ROLE {role};"
        ))
        .unwrap();
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn a_claim_waits_for_a_lock_held_elsewhere_at_most_lock_timeout_then_is_refused_unwritten() {
    // A transaction left open on the marks row (a server whose host was lost mid-raise) held
    // every claim of every server until TCP gave up on it: each statement now waits at most
    // `lock_timeout` (the store's default, 30 s, is what this test waits for).
    let Some((url, schema, _schemas)) = own_schema("locks") else {
        return;
    };
    let store = PostgresReplayStore::connect(&url, &options(&schema)).unwrap();
    let warm = id("locks-warm");
    assert_eq!(
        store.claim(&warm, &claim_for("locks"), V0).unwrap(),
        ClaimOutcome::Claimed
    );
    let mut raw = postgres_raw(&url, &schema);
    let mut holding = raw.transaction().unwrap();
    holding
        .batch_execute("SELECT * FROM high_water_marks FOR UPDATE")
        .unwrap();
    let exec = id("locks-held");
    // On a thread, so that a claim that waited for ever fails the test instead of hanging it.
    let (answered, answer) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let (store, exec) = (&store, &exec);
        scope.spawn(move || {
            let _ = answered.send(store.claim(exec, &claim_for("locks"), V0));
        });
        let refused = answer
            .recv_timeout(Duration::from_secs(120))
            .expect("the claim still waits for the lock")
            .unwrap_err();
        assert_eq!(refused.code(), "replay.store_unavailable", "{refused}");
        assert!(refused.to_string().contains("lock"), "{refused}");
    });
    // Nothing was written; once the lock is given back the same id is claimed.
    holding.rollback().unwrap();
    assert!(matches!(store.get(&exec).unwrap(), ExecutionState::Absent));
    assert_eq!(
        store.claim(&exec, &claim_for("locks"), V0).unwrap(),
        ClaimOutcome::Claimed
    );
}

/// A writer of the database who watches what reaches it (here, a trigger on every row an
/// `INSERT` proposes and every `UPDATE` makes — as statement logging would show it) never sees the
/// attestation of a claim that lost: it is sent only once its claim has won, inside the claim's
/// transaction — on the one-statement path (a replay under the marks this store already read) and
/// on the transactional one (a replay that raises the marks). The trigger refuses any attestation
/// but the winner's, so one sent in a transaction later rolled back fails the claim too; the
/// winner's is copied to a table. Before, every attestation went out with its claim, and a
/// replay's signed attestation for an id the runtime refused reached the database.
#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn an_attestation_reaches_the_database_only_with_a_claim_that_won() {
    let Some((url, schema, _schemas)) = own_schema("watched") else {
        return;
    };
    let store = PostgresReplayStore::connect(&url, &options(&schema)).unwrap();
    let mut raw = postgres_raw(&url, &schema);
    let winner = &b"the winner's attestation"[..];
    let winner_hex: String = winner.iter().map(|b| format!("{b:02x}")).collect();
    raw.batch_execute(&format!(
        "CREATE TABLE {schema}.seen (id text, attestation bytea);
         CREATE FUNCTION {schema}.watch() RETURNS trigger AS $$
         BEGIN
           IF NEW.attestation IS NOT NULL AND NEW.attestation <> '\\x{winner_hex}'::bytea THEN
             RAISE EXCEPTION 'an attestation that is not the winner''s reached the database';
           END IF;
           INSERT INTO {schema}.seen VALUES (NEW.id, NEW.attestation);
           RETURN NEW;
         END
         $$ LANGUAGE plpgsql;
         CREATE TRIGGER watch_insert BEFORE INSERT ON {schema}.executions
             FOR EACH ROW EXECUTE FUNCTION {schema}.watch();
         CREATE TRIGGER watch_update BEFORE UPDATE ON {schema}.executions
             FOR EACH ROW EXECUTE FUNCTION {schema}.watch();"
    ))
    .unwrap();
    let exec = id("watched-1");
    let claim = claim_for("watched");
    // (versions, attestation, outcome): the first claim is decided in a transaction (the store
    // has read no marks yet), the replay under the same versions in one statement (it has), the
    // one under newer versions raises the marks, in a transaction.
    let newer = parmana_replay::AcceptedVersions::new(1, 1);
    for (under, attestation, outcome) in [
        (V0, winner, ClaimOutcome::Claimed),
        (V0, b"a replay's attestation", ClaimOutcome::AlreadyClaimed),
        (
            newer,
            b"a raising replay's attestation",
            ClaimOutcome::AlreadyClaimed,
        ),
    ] {
        assert_eq!(
            store
                .claim_completed(&exec, &claim, under, attestation)
                .unwrap(),
            outcome
        );
    }
    let seen: Vec<Vec<u8>> = raw
        .query(
            &format!("SELECT attestation FROM {schema}.seen WHERE attestation IS NOT NULL"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(seen, [b"the winner's attestation".to_vec()]);
    assert!(matches!(
        store.get(&exec).unwrap(),
        ExecutionState::Completed(ref done) if done.attestation() == b"the winner's attestation"
    ));
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn a_store_opened_to_read_is_neither_created_nor_migrated_and_needs_no_ddl_rights() {
    let Some((url, schema, _cleanup)) = own_schema("readonly") else {
        return;
    };
    let reading = PostgresOptions {
        create: false,
        ..options(&schema)
    };
    let mut admin = postgres_raw(&url, "public");
    let schemas_named = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                &[&schema],
            )
            .unwrap()
            .get(0)
    };

    // Not there: refused, and not created.
    let error = PostgresReplayStore::connect(&url, &reading).unwrap_err();
    assert_eq!(error.code(), "replay.store_not_found", "{error}");
    assert_eq!(schemas_named(&mut admin), 0);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let error = PostgresReplayStore::connect(&url, &reading).unwrap_err();
    assert_eq!(error.code(), "replay.store_not_found", "{error}");

    // Made by a store that writes; then read, through a role granted nothing but reading.
    let store = PostgresReplayStore::connect(&url, &options(&schema)).unwrap();
    assert_eq!(
        store.claim(&id("made"), &claim_for("made"), V0).unwrap(),
        ClaimOutcome::Claimed
    );
    drop(store);
    // (Its transactions read-only by default, as an auditor's often are: it is on the primary.)
    let role = unique("reader");
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             ALTER ROLE {role} SET default_transaction_read_only = on;
             GRANT USAGE ON SCHEMA {schema} TO {role};
             GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role};"
        ))
        .unwrap();
    let reader_url = with_option(&url, &format!("user={role}"));
    let reader = PostgresReplayStore::connect(&reader_url, &reading).unwrap();
    assert!(matches!(
        reader.get(&id("made")).unwrap(),
        ExecutionState::Claimed(_)
    ));
    drop(reader);
    // A role that may not use the schema is told so, not that no store is there.
    let stranger = unique("stranger");
    admin
        .batch_execute(&format!("CREATE ROLE {stranger} LOGIN"))
        .unwrap();
    let error =
        PostgresReplayStore::connect(&with_option(&url, &format!("user={stranger}")), &reading)
            .unwrap_err();
    assert_eq!(error.code(), "replay.invalid_configuration", "{error}");
    assert!(error.to_string().contains("USAGE"), "{error}");
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{stranger}';
             DROP ROLE {stranger};"
        ))
        .unwrap();
    // Opened to execute, a store at this build's version needs no right to create (no DDL
    // runs); writing needs the rights to write, and their lack is the role's configuration,
    // not a passing failure.
    let grant_writes = |admin: &mut postgres::Client| {
        admin
            .batch_execute(&format!(
                "ALTER ROLE {role} SET default_transaction_read_only = off;
                 GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA {schema} TO {role};"
            ))
            .unwrap();
    };
    let error = PostgresReplayStore::connect(&reader_url, &options(&schema)).unwrap_err();
    assert_eq!(error.code(), "replay.store_unavailable", "{error}");
    assert!(
        error.to_string().contains("writes"),
        "a read-only session: {error}"
    );
    admin
        .batch_execute(&format!(
            "ALTER ROLE {role} SET default_transaction_read_only = off"
        ))
        .unwrap();
    let writer = PostgresReplayStore::connect(&reader_url, &options(&schema)).unwrap();
    let error = writer
        .claim(&id("denied"), &claim_for("denied"), V0)
        .unwrap_err();
    assert_eq!(error.code(), "replay.invalid_configuration", "{error}");
    assert!(error.to_string().contains("permission denied"), "{error}");
    drop(writer);
    grant_writes(&mut admin);
    let writer = PostgresReplayStore::connect(&reader_url, &options(&schema)).unwrap();
    assert_eq!(
        writer
            .claim(&id("granted"), &claim_for("granted"), V0)
            .unwrap(),
        ClaimOutcome::Claimed
    );
    drop(writer);

    // At an older schema version: refused, and left at it.
    admin
        .batch_execute(&format!(
            "UPDATE {schema}.schema_version SET version = version - 1"
        ))
        .unwrap();
    let older: i64 = admin
        .query_one(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .unwrap()
        .get(0);
    let error = PostgresReplayStore::connect(&url, &reading).unwrap_err();
    assert_eq!(
        error,
        ReplayError::SchemaVersionOutdated {
            found: older,
            current: older + 1
        }
    );
    let after: i64 = admin
        .query_one(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .unwrap()
        .get(0);
    assert_eq!(after, older);
    admin
        .batch_execute(&format!(
            "DROP SCHEMA {schema} CASCADE;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';
             DROP OWNED BY {role}; DROP ROLE {role};"
        ))
        .unwrap();
}

#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn a_store_changed_behind_its_back_is_corrupt_not_unavailable_and_a_keyword_is_a_schema_name() {
    let Some(url) = postgres_url() else {
        return;
    };
    // A schema name the check allows that is also a keyword: quoted wherever it is named.
    let keyword = "user".to_owned();
    let schema = unique("changed");
    let _cleanup = Schemas(vec![schema.clone(), keyword.clone()]);
    drop(Schemas(vec![keyword.clone()]));
    let store = PostgresReplayStore::connect(&url, &options(&keyword)).unwrap();
    assert_eq!(
        store.claim(&id("kw"), &claim_for("kw"), V0).unwrap(),
        ClaimOutcome::Claimed
    );
    drop(store);

    let store = PostgresReplayStore::connect(&url, &options(&schema)).unwrap();
    let mut admin = postgres_raw(&url, &schema);
    let completed = |n: usize| {
        let exec = id(&format!("changed-{n}"));
        assert_eq!(
            store.claim(&exec, &claim_for("changed"), V0).unwrap(),
            ClaimOutcome::Claimed
        );
        store.complete(&exec, b"attestation").unwrap();
    };
    // A row a writer put where the sequencer writes next.
    completed(0);
    admin
        .batch_execute(
            "INSERT INTO ledger (position, kind, execution_id, record)
             SELECT next_position, 'marks', NULL, '\\x00'::bytea FROM ledger_head",
        )
        .unwrap();
    let error = store.sequence(16).unwrap_err();
    assert_eq!(error.code(), "replay.store_corrupt", "{error}");
    // The ledger head gone.
    admin
        .batch_execute("DELETE FROM ledger; DELETE FROM ledger_head")
        .unwrap();
    let error = store.sequence(16).unwrap_err();
    assert_eq!(error.code(), "replay.store_corrupt", "{error}");
    assert!(error.to_string().contains("ledger_head"), "{error}");
    // A table of the store dropped.
    admin.batch_execute("DROP TABLE checkpoints").unwrap();
    let error = store.latest_checkpoint().unwrap_err();
    assert_eq!(error.code(), "replay.store_corrupt", "{error}");
    drop(store);

    // The version row says less than the schema holds (lowered behind the store), or is gone
    // with the tables left: corrupt, not a store to migrate again or make anew beside its ids.
    let schema = unique("versioned");
    let _versioned = Schemas(vec![schema.clone()]);
    drop(PostgresReplayStore::connect(&url, &options(&schema)).unwrap());
    let mut admin = postgres_raw(&url, &schema);
    admin
        .batch_execute("UPDATE schema_version SET version = 1")
        .unwrap();
    let error = PostgresReplayStore::connect(&url, &options(&schema))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(error.code(), "replay.store_corrupt", "lowered: {error}");
    admin.batch_execute("DROP TABLE schema_version").unwrap();
    for create in [false, true] {
        let error = PostgresReplayStore::connect(
            &url,
            &PostgresOptions {
                create,
                ..options(&schema)
            },
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(
            error.code(),
            "replay.store_corrupt",
            "dropped, create {create}: {error}"
        );
    }
}

/// A writer who may create objects in the store's schema (its owner's credentials) defines
/// `array_agg`, `unnest` and `array_position` for the exact types the store passes: PostgreSQL
/// prefers an exact match in any schema of the path over pg_catalog's polymorphic built-in, so
/// an unqualified call would take the writer's — an `array_agg` that drops every marks record,
/// so that a reset of the marks row passes the check made inside each claim; an `unnest` that
/// inserts nothing, an `array_agg` that reports no winner, an `array_position` that files no
/// attestation. The store names pg_catalog's: the one-write claim is decided and stored, and
/// the reset is still refused.
#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn functions_a_writer_defines_in_the_schema_are_not_the_stores() {
    let Some((url, schema, _schemas)) = own_schema("shadow") else {
        return;
    };
    let raised = parmana_replay::AcceptedVersions::new(2, 3);
    let claim = |store: &PostgresReplayStore, name: &str, under| {
        store.claim(&id(name), &claim_for(name), under)
    };
    let first = PostgresReplayStore::connect(&url, &options(&schema)).unwrap();
    first.accept_versions(2, 3).unwrap();
    assert_eq!(
        claim(&first, "before", raised).unwrap(),
        ClaimOutcome::Claimed
    );
    let mut raw = postgres_raw(&url, &schema);
    raw.batch_execute(&format!(
        "CREATE FUNCTION \"{schema}\".keep_none(bytea[], bytea) RETURNS bytea[]
             LANGUAGE sql IMMUTABLE AS 'SELECT $1';
         CREATE AGGREGATE \"{schema}\".array_agg(bytea)
             (sfunc = \"{schema}\".keep_none, stype = bytea[], initcond = '{{}}');
         CREATE FUNCTION \"{schema}\".unnest(bytea[]) RETURNS SETOF bytea
             LANGUAGE sql IMMUTABLE AS 'SELECT NULL::bytea WHERE false';
         CREATE FUNCTION \"{schema}\".unnest(text[]) RETURNS SETOF text
             LANGUAGE sql IMMUTABLE AS 'SELECT NULL::text WHERE false';
         CREATE FUNCTION \"{schema}\".keep_no_text(text[], text) RETURNS text[]
             LANGUAGE sql IMMUTABLE AS 'SELECT $1';
         CREATE AGGREGATE \"{schema}\".array_agg(text)
             (sfunc = \"{schema}\".keep_no_text, stype = text[], initcond = '{{}}');
         CREATE FUNCTION \"{schema}\".array_position(text[], text) RETURNS integer
             LANGUAGE sql IMMUTABLE AS 'SELECT NULL::integer';
         CREATE FUNCTION \"{schema}\".unnest(bigint[]) RETURNS SETOF bigint
             LANGUAGE sql IMMUTABLE AS 'SELECT NULL::bigint WHERE false';"
    ))
    .unwrap();
    // A server started after them (its statements prepared, and so resolved, from now on).
    drop(first);
    let store = PostgresReplayStore::connect(&url, &options(&schema)).unwrap();
    assert_eq!(
        claim(&store, "warm", raised).unwrap(),
        ClaimOutcome::Claimed
    );
    // The one-write claim (the hot path: its rows unnested, the winners aggregated, each
    // attestation found by its id's place) is decided and stored as always.
    assert_eq!(
        store
            .claim_completed(&id("hot"), &claim_for("hot"), raised, b"the attestation")
            .unwrap(),
        ClaimOutcome::Claimed
    );
    match store.get(&id("hot")).unwrap() {
        ExecutionState::Completed(done) => assert_eq!(done.attestation(), b"the attestation"),
        other => panic!("{other:?}"),
    }
    // The sequencer (its records and positions unnested) appends and files them as always.
    let appended = store.sequence(100).unwrap().rows().len();
    assert_eq!(appended, 1, "the completion waiting");
    // (The marks record and the one completed execution; the other two ids are claimed only.)
    let summary = store.ledger_summary().unwrap();
    assert_eq!(
        (summary.records, summary.unsequenced),
        (2, 0),
        "{summary:?}"
    );
    raw.batch_execute("UPDATE high_water_marks SET trust_root = 1, release_manifest = 1")
        .unwrap();
    let refused = claim(&store, "after", parmana_replay::AcceptedVersions::new(1, 1)).unwrap_err();
    assert_eq!(refused.code(), "replay.marks_reset", "{refused}");
    assert_eq!(store.get(&id("after")).unwrap(), ExecutionState::Absent);
}

/// Sessions run read committed whatever the URL (or the server, database or role) defaults to:
/// under serializable, concurrent claims of different ids conflict on the marks row and the
/// claim-time read and fail with serialization errors (`503`) instead of waiting their turn.
#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn sessions_are_read_committed_whatever_the_url_says() {
    let Some((url, schema, _schemas)) = own_schema("isolation") else {
        return;
    };
    let serializable = with_option(
        &url,
        "options=-c%20default_transaction_isolation%3Dserializable",
    );
    let store = PostgresReplayStore::connect(&serializable, &options(&schema)).unwrap();
    let ids: Vec<_> = (0..32).map(|n| id(&format!("iso-{n}"))).collect();
    std::thread::scope(|scope| {
        let claims: Vec<_> = ids
            .iter()
            .map(|exec| {
                let store = &store;
                scope.spawn(move || store.claim(exec, &claim_for("iso"), V0))
            })
            .collect();
        for (n, claim) in claims.into_iter().enumerate() {
            assert_eq!(
                claim.join().unwrap().unwrap(),
                ClaimOutcome::Claimed,
                "iso-{n}"
            );
        }
    });
    // And the session says so.
    let mut raw = postgres_raw(&serializable, &schema);
    let shown: String = raw
        .query_one("SHOW default_transaction_isolation", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        shown, "serializable",
        "the URL's option reaches a plain session"
    );
}

/// An id whose row another transaction holds (its host lost mid-transaction) fails the batch it
/// joins at `lock_timeout`; nothing of that batch was written, so its other claims are then
/// decided on their own and won — before, every claim of the batch was refused with the held
/// id's failure. Only the held ids are refused.
#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn a_batch_that_failed_before_its_commit_decides_its_other_claims_alone() {
    let Some((url, schema, _schemas)) = own_schema("batchfail") else {
        return;
    };
    // A lock waited on for one second, not the default thirty.
    let store = PostgresReplayStore::connect(
        &with_option(&url, "options=-c%20lock_timeout%3D1000"),
        &options(&schema),
    )
    .unwrap();
    assert_eq!(
        store
            .claim_completed(&id("warm"), &claim_for("warm"), V0, b"attestation")
            .unwrap(),
        ClaimOutcome::Claimed
    );
    // Two ids inserted, not committed, by another session: a claim of either waits on it.
    let mut raw = postgres_raw(&url, &schema);
    let mut holding = raw.transaction().unwrap();
    holding
        .batch_execute(
            "INSERT INTO executions (id, request_digest, attestation_inputs, claimed_at)
             VALUES ('blocker', 'd', '\\x00', 't'), ('held', 'd', '\\x00', 't')",
        )
        .unwrap();
    let others: Vec<_> = (0..8).map(|n| id(&format!("other-{n}"))).collect();
    let claim = |exec: &parmana_replay::ExecutionId| {
        store.claim_completed(exec, &claim_for("batch"), V0, b"attestation")
    };
    std::thread::scope(|scope| {
        // The blocker's batch waits on its lock; meanwhile the held id and the others queue,
        // and the next batch takes them together.
        let blocker = scope.spawn(|| claim(&id("blocker")));
        std::thread::sleep(Duration::from_millis(200));
        let held = scope.spawn(|| claim(&id("held")));
        let others: Vec<_> = others
            .iter()
            .map(|exec| scope.spawn(move || claim(exec)))
            .collect();
        for refused in [blocker.join().unwrap(), held.join().unwrap()] {
            let error = refused.unwrap_err();
            assert_eq!(error.code(), "replay.store_unavailable", "{error}");
        }
        for (n, other) in others.into_iter().enumerate() {
            assert_eq!(
                other.join().unwrap().unwrap(),
                ClaimOutcome::Claimed,
                "other-{n}"
            );
        }
    });
    holding.rollback().unwrap();
    for exec in &others {
        assert!(matches!(
            store.get(exec).unwrap(),
            ExecutionState::Completed(_)
        ));
    }
}

/// A pooled connection whose session the server ended (a restart, `pg_terminate_backend`, an
/// idle session's timeout) is handed out once more; the batch it fails wrote nothing, so its
/// claim is decided again on a new connection and stored — before, it was refused with
/// `replay.store_unavailable`.
#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn a_claim_on_a_pooled_connection_the_server_ended_is_decided_again() {
    let Some((url, schema, _schemas)) = own_schema("ended") else {
        return;
    };
    // Two claims: the first reads the marks, the second goes the one-statement way and leaves
    // its connection, statements prepared, in the pool. One claim alone leaves it unprepared:
    // the next claim's first use of it is to prepare them, which fails as the connection is
    // found lost (then decided again as well; it was refused with `replay.store_unavailable`).
    for (case, warm) in [
        ("prepared", &["warm-1", "warm-2"][..]),
        ("unprepared", &["warm-3"][..]),
    ] {
        let application = unique("parmana_ended");
        let store = PostgresReplayStore::connect(
            &with_option(&url, &format!("application_name={application}")),
            &PostgresOptions {
                pool_size: 1,
                ..options(&schema)
            },
        )
        .unwrap();
        for warm in warm {
            assert_eq!(
                store
                    .claim_completed(&id(warm), &claim_for(warm), V0, b"attestation")
                    .unwrap(),
                ClaimOutcome::Claimed,
                "{case}"
            );
        }
        let mut admin = postgres_raw(&url, "public");
        let ended: i64 = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = $1) AS ended",
                &[&application],
            )
            .unwrap()
            .get(0);
        assert_eq!(ended, 1, "{case}: the pool's one connection");
        // `pg_terminate_backend` only signals the backend: until it has ended, it may still run
        // the claim's statements and die at the commit, whose outcome the store then cannot know
        // and answers as it is (unavailable) — not the case tested here (a CI run under load met
        // it).
        let mut gone = false;
        for _ in 0..500 {
            let left: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[&application],
                )
                .unwrap()
                .get(0);
            if left == 0 {
                gone = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(gone, "{case}: the backend never ended");
        let exec = id(&format!("after-the-end-{case}"));
        assert_eq!(
            store
                .claim_completed(&exec, &claim_for("after"), V0, b"attestation")
                .unwrap(),
            ClaimOutcome::Claimed,
            "{case}"
        );
        assert!(
            matches!(store.get(&exec).unwrap(), ExecutionState::Completed(_)),
            "{case}"
        );
    }
}

/// A proxy on loopback in front of the server at `upstream` that drops the `options` parameter
/// from the startup message of each connection from the `from`-th on (0: all), as PgBouncer does
/// with `ignore_startup_parameters = options`, and relays the rest both ways. For URLs with
/// `sslmode=disable` (the startup message in the clear). Its port.
fn options_dropping_proxy(upstream: std::net::SocketAddr, from: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { continue };
            std::thread::spawn(move || relay_dropping_options(client, upstream, n >= from));
        }
    });
    port
}

fn relay_dropping_options(
    mut client: std::net::TcpStream,
    upstream: std::net::SocketAddr,
    drop_options: bool,
) -> std::io::Result<()> {
    let mut length = [0u8; 4];
    client.read_exact(&mut length)?;
    let mut body = vec![0u8; usize::try_from(u32::from_be_bytes(length)).unwrap() - 4];
    client.read_exact(&mut body)?;
    // The protocol version, then `name\0value\0` pairs, then `\0`.
    let (version, pairs) = body.split_at(4);
    let mut kept = version.to_vec();
    let fields: Vec<&[u8]> = pairs.split(|byte| *byte == 0).collect();
    for pair in fields.chunks(2) {
        if let [name, value] = pair
            && !name.is_empty()
            && !(drop_options && *name == b"options")
        {
            kept.extend_from_slice(name);
            kept.push(0);
            kept.extend_from_slice(value);
            kept.push(0);
        }
    }
    kept.push(0);
    let mut server = std::net::TcpStream::connect(upstream)?;
    server.write_all(&u32::try_from(kept.len() + 4).unwrap().to_be_bytes())?;
    server.write_all(&kept)?;
    let (mut from_client, mut to_server) = (client.try_clone()?, server.try_clone()?);
    std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_server));
    std::io::copy(&mut server, &mut client)?;
    Ok(())
}

/// The test server's URL through a proxy dropping the startup options from the `from`-th
/// connection on.
fn through_options_dropping_proxy(url: &str, from: usize) -> String {
    let config: postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("{other:?}"),
    };
    let port = config.get_ports()[0];
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .unwrap()
        .next()
        .unwrap();
    let proxy = options_dropping_proxy(upstream, from);
    url.replacen(&format!("{host}:{port}"), &format!("127.0.0.1:{proxy}"), 1)
}

/// A session that does not run with what the store set in its startup options — a connection
/// pooler between them dropped the `options` parameter, so that durability, isolation and the
/// store's names would rest on the server's defaults — is refused
/// (`replay.invalid_configuration`): at open, and on a pooled connection opened later (every
/// operation then refused, nothing written). Each session the store opens has PostgreSQL 14's
/// `idle_session_timeout` turned off: an idle pooled session is not ended under it.
#[test]
fn a_session_without_the_stores_settings_is_refused() {
    let Some((url, schema, _schemas)) = own_schema("dropped_options") else {
        return;
    };
    // (The test server's URL says `sslmode=disable`: the proxy reads the startup message.)
    assert!(url.contains("sslmode=disable"), "{url}");
    // Every connection without them: the store does not open.
    let error =
        PostgresReplayStore::connect(&through_options_dropping_proxy(&url, 0), &options(&schema))
            .map(|_| ())
            .unwrap_err();
    assert_eq!(error.code(), "replay.invalid_configuration", "{error}");
    assert!(
        error
            .to_string()
            .contains("a connection pooler between the store and PostgreSQL dropped them")
            && error.to_string().contains("search_path"),
        "{error}"
    );
    // The first with them (the store opens), the pool's without: refused, nothing claimed.
    let store = PostgresReplayStore::connect(
        &through_options_dropping_proxy(&url, 1),
        &PostgresOptions {
            connect_timeout: Duration::from_secs(2),
            ..options(&schema)
        },
    )
    .unwrap();
    let error = store
        .claim(&id("dropped-1"), &claim_for("dropped-1"), V0)
        .unwrap_err();
    assert_eq!(error.code(), "replay.invalid_configuration", "{error}");
    let mut raw = crate::common::postgres_raw(&url, &schema);
    let claimed: i64 = raw
        .query_one("SELECT count(*) FROM executions", &[])
        .unwrap()
        .get(0);
    assert_eq!(claimed, 0);
    // Directly: accepted. An `idle_session_timeout` of a second (the URL's here; a server's,
    // database's or role's alike) does not end the store's idle pooled session under it
    // (PostgreSQL 14+, which has the setting): a read after two idle seconds is answered on it.
    let version: i32 = raw
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int",
            &[],
        )
        .unwrap()
        .get(0);
    if version < 140_000 {
        return;
    }
    let timed_out = with_option(&url, "options=-c%20idle_session_timeout%3D1000");
    let store = PostgresReplayStore::connect(
        &timed_out,
        &PostgresOptions {
            pool_size: 1,
            ..options(&schema)
        },
    )
    .unwrap();
    assert_eq!(
        store
            .claim(&id("direct-1"), &claim_for("direct-1"), V0)
            .unwrap(),
        ClaimOutcome::Claimed
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(matches!(
        store.get(&id("direct-1")).unwrap(),
        ExecutionState::Claimed(_)
    ));
}

/// A role without `CREATE` on the database that owns a schema made beforehand creates the store
/// in it (PostgreSQL checks that right before `IF NOT EXISTS`: the schema is not made again).
#[test]
fn a_role_owning_a_schema_made_beforehand_creates_the_store_in_it() {
    let Some((url, schema, _schemas)) = own_schema("premade") else {
        return;
    };
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let role = unique("owner");
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; CREATE SCHEMA \"{schema}\" AUTHORIZATION {role}"
        ))
        .unwrap();
    let opened = PostgresReplayStore::connect(
        &with_option(&url, &format!("user={role}")),
        &options(&schema),
    )
    .map(|store| store.claim(&id("premade-1"), &claim_for("premade-1"), V0));
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';
             DROP SCHEMA \"{schema}\" CASCADE; DROP ROLE {role};"
        ))
        .unwrap();
    assert_eq!(opened.unwrap().unwrap(), ClaimOutcome::Claimed);
}

/// A session whose transactions are read-only by default (`default_transaction_read_only`, set
/// for a role or database, or through the URL) refuses every write: its configuration
/// (`replay.invalid_configuration`), not a passing failure a caller would retry for ever. It
/// still reads.
#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
)]
fn a_read_only_session_is_refused_as_configuration() {
    let Some((url, schema, _schemas)) = own_schema("readonly") else {
        return;
    };
    let writable = PostgresReplayStore::connect(&url, &options(&schema)).unwrap();
    assert_eq!(
        writable
            .claim(&id("written"), &claim_for("ro"), V0)
            .unwrap(),
        ClaimOutcome::Claimed
    );
    let read_only = PostgresReplayStore::connect(
        &with_option(&url, "options=-c%20default_transaction_read_only%3Don"),
        &PostgresOptions {
            create: false,
            ..options(&schema)
        },
    )
    .unwrap();
    let refused = read_only
        .claim(&id("refused"), &claim_for("ro"), V0)
        .unwrap_err();
    assert_eq!(refused.code(), "replay.invalid_configuration", "{refused}");
    assert!(
        refused
            .to_string()
            .contains("needs a session that may write"),
        "{refused}"
    );
    assert!(matches!(
        read_only.get(&id("written")).unwrap(),
        ExecutionState::Claimed(_)
    ));
}
