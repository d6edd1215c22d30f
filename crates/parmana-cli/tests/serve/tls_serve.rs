//! TLS: HTTPS with the certificate and key from files (flags, `PARMANA_TLS_*` and `[server]` in `parmana.toml`), required client certificates, a connection that completes no handshake within the idle timeout closed, and unusable TLS files — a certificate expired or not yet valid included — refused at start.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use crate::harness::{Served, deployment, execution_body, parmana, try_call_with};

/// A calendar day: (year, month, day).
type Day = (i32, u8, u8);

/// A certificate authority made for one test.
pub(crate) struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Authority {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, name);
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A leaf certificate for `names`, for servers or clients: (certificate PEM, key PEM).
    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        self.issue_valid(names, usage, None)
    }

    /// [`issue`](Self::issue), valid from and to the given (year, month, day) when given.
    fn issue_valid(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        window: Option<(Day, Day)>,
    ) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if let Some(((y1, m1, d1), (y2, m2, d2))) = window {
            params.not_before = rcgen::date_time_ymd(y1, m1, d1);
            params.not_after = rcgen::date_time_ymd(y2, m2, d2);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    pub(crate) fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).unwrap();
        path.to_owned()
    }
}

/// A client trusting `ca`, presenting `identity` (certificate PEM, key PEM) when given.
pub(crate) fn client(ca: &Authority, identity: Option<&(String, String)>) -> ureq::Agent {
    client_trusting(&[ca], identity)
}

/// [`client`], trusting each of `authorities`.
fn client_trusting(authorities: &[&Authority], identity: Option<&(String, String)>) -> ureq::Agent {
    let certificates: Vec<Certificate<'_>> = authorities
        .iter()
        .map(|ca| Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .collect();
    let roots = RootCerts::new_with_certs(&certificates);
    let identity = identity.map(|(certificate, key)| {
        ClientCert::new_with_certs(
            &[Certificate::from_pem(certificate.as_bytes()).unwrap()],
            PrivateKey::from_pem(key.as_bytes()).unwrap(),
        )
    });
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A server that stops answering fails its test instead of hanging the run.
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .tls_config(
            TlsConfig::builder()
                .root_certs(roots)
                .client_cert(identity)
                .build(),
        )
        .build()
        .into()
}

/// Whether a new connection of `agent` is served (`GET /healthz`): its TLS handshake is taken.
fn handshakes(served: &Served, agent: &ureq::Agent) -> bool {
    try_call_with(agent, &served.base, "GET", "/healthz", None, None).is_ok()
}

/// Writes the server's certificate and key under `dir/tls/`.
pub(crate) fn server_files(dir: &Path, ca: &Authority) -> (PathBuf, PathBuf) {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let (certificate, key) = ca.issue(
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::write(tls.join("cert.pem"), certificate).unwrap();
    write_private_key(&tls.join("key.pem"), &key);
    (tls.join("cert.pem"), tls.join("key.pem"))
}

/// Writes a private key readable by its owner only (the server refuses one anyone may read).
pub(crate) fn write_private_key(path: &Path, pem: &str) {
    std::fs::write(path, pem).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn https_serves_the_api_to_clients_that_trust_the_certificate_and_nothing_else() {
    let server_ca = Authority::new("server CA");
    // The certificate and key are named in parmana.toml, relative to its directory; a policy
    // answers AuthZEN requests, so the metadata is served.
    let env = deployment(
        "memory",
        "[server]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n\
         [server.authzen]\ndefault_policy = \"documents-access@1.0.0\"\n\
         [[server.authzen.policies]]\npolicy = \"documents-access@1.0.0\"\npermit = [\"allow\"]\n",
    );
    env.release_policy(
        &"documents-access@1.0.0".parse().unwrap(),
        parmana_testkit::DOCUMENTS_ACCESS_POLICY,
    )
    .unwrap();
    server_files(env.root(), &server_ca);
    let served =
        Served::start_with_agent(env.root(), &["--dev-token"], &[], client(&server_ca, None));
    assert!(
        served.base.starts_with("https://127.0.0.1:"),
        "{}",
        served.base
    );
    let token = served.token.as_deref();

    let executed = served.post("/v1/executions", token, &execution_body("tls-0001"));
    assert_eq!(executed.status, 201, "{}", executed.text);
    let stored = served.get("/v1/executions/tls-0001", token);
    assert_eq!(stored.status, 200, "{}", stored.text);
    assert_eq!(stored.json(), executed.json()["attestation"]);
    let discovery = served.get("/.well-known/authzen-configuration", None);
    assert!(
        discovery.json()["access_evaluation_endpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with("https://")),
        "{}",
        discovery.text
    );

    // Nothing is answered to a client that does not trust the certificate, nor over plain HTTP.
    let other_ca = Authority::new("another CA");
    let untrusting = client(&other_ca, None);
    let plain = served.base.replacen("https://", "http://", 1);
    for (what, agent, base) in [
        ("untrusted certificate", &untrusting, served.base.as_str()),
        ("plain HTTP", &client(&server_ca, None), plain.as_str()),
    ] {
        let refused = try_call_with(agent, base, "GET", "/v1/status", token, None);
        assert!(refused.is_err(), "{what}: {refused:?}");
    }
}

#[test]
fn a_connection_that_completes_no_handshake_in_time_is_closed() {
    use std::io::Read;
    let server_ca = Authority::new("server CA");
    let env = deployment(
        "memory",
        "[server]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n",
    );
    server_files(env.root(), &server_ca);
    let served = Served::start_with_agent(
        env.root(),
        // Long enough that a loaded machine's readiness polls complete their handshakes.
        &["--dev-token", "--idle-timeout-ms", "2000"],
        &[],
        client(&server_ca, None),
    );
    // A client that opens a connection and never starts the handshake: closed by the server
    // within 8 s (the idle timeout is 2 s; TLS's own default, 10 s, would not close it in time).
    let address = served.base.trim_start_matches("https://");
    let mut silent = std::net::TcpStream::connect(address).unwrap();
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(8)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = silent.read_to_end(&mut rest);
    assert!(closed.is_ok(), "{closed:?}");
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn client_certificates_are_required_when_a_client_ca_is_named() {
    let server_ca = Authority::new("server CA");
    let client_ca = Authority::new("client CA");
    let stranger_ca = Authority::new("stranger CA");
    let env = deployment("memory", "");
    let (certificate, key) = server_files(env.root(), &server_ca);
    let client_ca_file = client_ca.write(&env.root().join("tls/clients.pem"));
    // A certificate past its date in the client CA file before the CA in force (a CA rotated
    // out, left in the bundle): its dates are not judged, the server starts and takes the
    // clients of the CA in force.
    let (rotated_out, _) = stranger_ca.issue_valid(
        &["old-ca.example"],
        ExtendedKeyUsagePurpose::ClientAuth,
        Some(((2020, 1, 1), (2021, 1, 1))),
    );
    let bundle = format!(
        "{rotated_out}{}",
        std::fs::read_to_string(&client_ca_file).unwrap()
    );
    std::fs::write(&client_ca_file, bundle).unwrap();
    let member = client_ca.issue(&["agent.example"], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = stranger_ca.issue(&["agent.example"], ExtendedKeyUsagePurpose::ClientAuth);
    // Certificate and key by flag, the client CA by variable.
    let served = Served::start_with_agent(
        env.root(),
        &[
            "--dev-token",
            "--tls-cert",
            certificate.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[("PARMANA_TLS_CLIENT_CA", client_ca_file.to_str().unwrap())],
        client(&server_ca, Some(&member)),
    );
    let token = served.token.as_deref();
    let status = served.get("/v1/status", token);
    assert_eq!(status.status, 200, "{}", status.text);

    for (what, identity) in [
        ("no client certificate", None),
        ("a certificate from another CA", Some(&stranger)),
    ] {
        let refused = try_call_with(
            &client(&server_ca, identity),
            &served.base,
            "GET",
            "/v1/status",
            token,
            None,
        );
        assert!(refused.is_err(), "{what}: {refused:?}");
    }
    // The server still serves the member after refusing the others.
    assert_eq!(served.get("/healthz", None).status, 200);
    // Each refusal is logged with its peer and what TLS said, so an operator can see why a
    // client cannot connect.
    let log = served.stderr();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("a TLS handshake failed; the connection is closed"))
        .collect();
    assert_eq!(refusals.len(), 2, "{log}");
    assert!(
        refusals
            .iter()
            .all(|line| line.contains("peer=127.0.0.1:") && line.contains("error=")),
        "{log}"
    );
    assert!(refusals[0].contains("peer sent no certificates"), "{log}");

    // A reload (SIGHUP) reads the client CA file again: from the next handshake the CA now in
    // it is the one taken, the client CA's members are refused, and a client without a
    // certificate still is (the reload keeps them required).
    std::fs::write(&client_ca_file, &stranger_ca.pem).unwrap();
    served.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !served.stderr().contains("TLS files reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload: {}",
            served.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let accepted = |identity| handshakes(&served, &client(&server_ca, identity));
    assert!(accepted(Some(&stranger)), "the CA in the file now");
    assert!(!accepted(Some(&member)), "the CA the file no longer holds");
    assert!(!accepted(None), "no certificate");
}

#[test]
fn unusable_tls_files_refuse_to_start_with_a_typed_error() {
    let server_ca = Authority::new("server CA");
    let env = deployment("memory", "");
    let root = env.root();
    let (certificate, key) = server_files(root, &server_ca);
    let empty = root.join("tls/empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = root.join("tls/missing.pem");
    // Certificates every client would refuse for their dates: expired, and not yet valid.
    let dated = |name: &str, window| {
        let (pem, _) = server_ca.issue_valid(
            &["127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            Some(window),
        );
        let path = root.join(format!("tls/{name}.pem"));
        std::fs::write(&path, pem).unwrap();
        path
    };
    let expired = dated("expired", ((2020, 1, 1), (2021, 1, 1)));
    let early = dated("early", ((2090, 1, 1), (2091, 1, 1)));
    // A valid certificate's key, beside another certificate.
    let (_, other_key) = server_ca.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let other_key_path = root.join("tls/other.key");
    write_private_key(&other_key_path, &other_key);
    let other_key = other_key_path.to_str().unwrap();
    // The server's own key, readable by anyone; and its certificate, kept as a key is.
    let readable_key = root.join("tls/readable.key");
    std::fs::copy(&key, &readable_key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&readable_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let readable_key = readable_key.to_str().unwrap();
    let certificate_as_key = root.join("tls/certificate-as.key");
    write_private_key(
        &certificate_as_key,
        &std::fs::read_to_string(&certificate).unwrap(),
    );
    let certificate_as_key = certificate_as_key.to_str().unwrap();
    let (expired, early) = (expired.to_str().unwrap(), early.to_str().unwrap());
    let certificate = certificate.to_str().unwrap();
    let key = key.to_str().unwrap();
    let empty = empty.to_str().unwrap();
    let missing = missing.to_str().unwrap();
    // (what, TLS arguments, expected code)
    let cases: [(&str, Vec<&str>, &str); 10] = [
        (
            "a private key anyone may read",
            vec!["--tls-cert", certificate, "--tls-key", readable_key],
            "anyone may read this private key",
        ),
        (
            "a key that is not the certificate's",
            vec!["--tls-cert", certificate, "--tls-key", other_key],
            "server.tls_invalid",
        ),
        (
            "an expired certificate",
            vec!["--tls-cert", expired, "--tls-key", key],
            "the certificate is valid from 2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z",
        ),
        (
            "a certificate not yet valid",
            vec!["--tls-cert", early, "--tls-key", key],
            "the certificate is valid from 2090-01-01T00:00:00Z",
        ),
        (
            "missing key file",
            vec!["--tls-cert", certificate, "--tls-key", missing],
            "server.tls_invalid",
        ),
        (
            "no certificate in the file",
            vec!["--tls-cert", empty, "--tls-key", key],
            "server.tls_invalid",
        ),
        (
            "a certificate where the key should be",
            vec!["--tls-cert", certificate, "--tls-key", certificate_as_key],
            "server.tls_invalid",
        ),
        (
            "empty client CA file",
            vec![
                "--tls-cert",
                certificate,
                "--tls-key",
                key,
                "--tls-client-ca",
                empty,
            ],
            "server.tls_invalid",
        ),
        (
            "a certificate without its key",
            vec!["--tls-cert", certificate],
            "cli.usage",
        ),
        (
            "a client CA without a certificate",
            vec!["--tls-client-ca", certificate],
            "cli.usage",
        ),
    ];
    for (what, tls, code) in cases {
        let mut args = vec![
            "--format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dev-token",
        ];
        args.extend(tls);
        let (exit, stdout, stderr) = parmana(root, &args);
        assert_eq!(exit, 2, "{what}: {stderr}");
        assert!(stderr.contains(code), "{what}: {stderr}");
        if code.starts_with("the certificate") {
            assert!(stderr.contains("server.tls_invalid"), "{what}: {stderr}");
        }
        assert!(!stdout.contains("listening on"), "{what}: {stdout}");
    }
}

/// The (year, month, day) `days` from now, by the system clock the server reads.
fn day_from_now(days: i64) -> Day {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = parmana_runtime::canon::Timestamp::from_unix_seconds(
        i64::try_from(now).unwrap() + days * 86_400,
    )
    .unwrap()
    .to_string();
    let small = |range: std::ops::Range<usize>| at[range].parse::<u8>().unwrap();
    (at[0..4].parse().unwrap(), small(5..7), small(8..10))
}

/// A certificate that expires within the warning window is served, with `warning[cli.expires_soon]`
/// naming it at start (a renewed one is taken by a reload) and its expiry on
/// `/metrics` for the alert on it.
#[test]
fn a_certificate_that_expires_soon_is_warned_of_and_measured() {
    let server_ca = Authority::new("server CA");
    let env = deployment("memory", "");
    let tls = env.root().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    // (The day it ends, read once: the test may run across midnight.)
    let (y, m, d) = day_from_now(3);
    let (certificate, key) = server_ca.issue_valid(
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        Some((day_from_now(-1), (y, m, d))),
    );
    std::fs::write(tls.join("cert.pem"), certificate).unwrap();
    write_private_key(&tls.join("key.pem"), &key);
    let served = Served::start_with_agent(
        env.root(),
        &[
            "--dev-token",
            "--tls-cert",
            "tls/cert.pem",
            "--tls-key",
            "tls/key.pem",
        ],
        &[],
        client(&server_ca, None),
    );
    let stderr = served.stderr();
    assert!(
        stderr.contains("warning[cli.expires_soon]: the TLS certificate"),
        "{stderr}"
    );
    let metrics = served.get("/metrics", served.token.as_deref());
    assert_eq!(metrics.status, 200, "{}", metrics.text);
    let expires =
        parmana_runtime::canon::Timestamp::parse(&format!("{y:04}-{m:02}-{d:02}T00:00:00Z"))
            .unwrap();
    assert!(
        metrics.text.lines().any(|line| line
            == format!(
                "parmana_tls_certificate_expiry_timestamp_seconds {}",
                expires.unix_seconds()
            )),
        "{}",
        metrics.text
    );
}

/// A reload reads the TLS files again, as the start does: a renewed certificate (here from
/// another CA, so that which one a handshake presents shows) is presented to the connections
/// that follow, and measured; files refused refuse the reload and change nothing.
#[test]
fn a_reload_takes_a_renewed_certificate_and_refuses_unusable_files() {
    let (first, renewed) = (Authority::new("first CA"), Authority::new("renewed CA"));
    let env = deployment(
        "memory",
        "[server]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n",
    );
    let (certificate, key) = server_files(env.root(), &first);
    let served = Served::start_with_agent(
        env.root(),
        &["--dev-token"],
        &[],
        client_trusting(&[&first, &renewed], None),
    );
    let token = served.token.as_deref();
    // A new connection of a client trusting only `ca` is served.
    let served_to = |ca: &Authority| handshakes(&served, &client(ca, None));
    assert!(served_to(&first) && !served_to(&renewed));
    let (y, m, d) = day_from_now(400);
    let (pem, key_pem) = renewed.issue_valid(
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        Some((day_from_now(-1), (y, m, d))),
    );
    std::fs::write(&certificate, pem).unwrap();
    write_private_key(&key, &key_pem);
    let reloaded = served.post("/v1/admin/reload", token, "");
    assert_eq!(reloaded.status, 200, "{}", reloaded.text);
    assert!(served_to(&renewed) && !served_to(&first));
    let expires =
        parmana_runtime::canon::Timestamp::parse(&format!("{y:04}-{m:02}-{d:02}T00:00:00Z"))
            .unwrap();
    let metrics = served.get("/metrics", token);
    let gauge = format!(
        "parmana_tls_certificate_expiry_timestamp_seconds {}",
        expires.unix_seconds()
    );
    assert!(
        metrics.text.lines().any(|line| line == gauge),
        "{}",
        metrics.text
    );
    // Files that cannot be used: the reload is refused, and the renewed certificate stays —
    // while a new release on disk beside them is taken all the same (TLS files refused hold
    // back no rotation), and the refusal is counted once.
    let release = served.get("/v1/status", token).json()["release_manifest"]["version"]
        .as_u64()
        .unwrap();
    crate::harness::release_sign(
        env.root(),
        &(release + 1).to_string(),
        "2035-01-01T00:00:00Z",
    );
    std::fs::write(&certificate, "not a certificate").unwrap();
    let refused = served.post("/v1/admin/reload", token, "");
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (422, "server.tls_invalid"),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("the environment was reloaded"),
        "{}",
        refused.text
    );
    assert!(served_to(&renewed) && !served_to(&first));
    let status = served.get("/v1/status", token).json();
    assert_eq!(
        status["last_reload"]["code"], "server.tls_invalid",
        "{status}"
    );
    assert_eq!(
        status["release_manifest"]["version"],
        release + 1,
        "{status}"
    );
    let reloads = |outcome| crate::harness::reloads(&served, token, outcome);
    assert_eq!((reloads("ok"), reloads("refused")), (1, 1));
}
