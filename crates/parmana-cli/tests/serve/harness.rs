//! Starting `parmana serve` (port 0, address read from its stdout), calling it, and validating every response against `/openapi.json`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

pub(crate) use parmana_testkit::FixtureEnvironment;

/// Signals of the README example (decided by the default rule: escalate).
pub(crate) const README_SIGNALS: &str =
    r#"{"claim_amount":1200,"vip_customer":false,"country":"DE","policy_age_days":400}"#;

/// A running server; killed when dropped.
pub(crate) struct Served {
    child: Child,
    pub(crate) base: String,
    pub(crate) token: Option<String>,
    pub(crate) log: PathBuf,
    /// The client this server is called with (TLS trust and client certificate, if any).
    agent: ureq::Agent,
    _logs: tempfile::TempDir,
}

/// `sha256:` and the hex SHA-256 of a token's bytes, as the tokens file holds it.
pub(crate) fn token_digest(secret: &str) -> String {
    parmana_runtime::canon::Digest::of(secret.as_bytes()).to_string()
}

/// Writes a tokens file with one token per (secret, scopes).
pub(crate) fn tokens_file(dir: &Path, tokens: &[(&str, &[&str])]) -> PathBuf {
    let mut text = String::new();
    for (secret, scopes) in tokens {
        let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
        text.push_str(&format!(
            "[[tokens]]\nname = \"{secret}\"\nsha256 = \"{}\"\nscopes = [{}]\n",
            token_digest(secret),
            scopes.join(", ")
        ));
    }
    let path = dir.join("tokens.toml");
    std::fs::write(&path, text).unwrap();
    path
}

impl Served {
    /// Starts `parmana serve --listen 127.0.0.1:0 ARGS` in `dir` and waits for its address.
    pub(crate) fn start(dir: &Path, args: &[&str]) -> Self {
        Self::start_with_env(dir, args, &[])
    }

    pub(crate) fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_with_agent(dir, args, env, agent().clone())
    }

    /// Like [`Served::start_with_env`], calling the server (readiness included) with `agent`.
    pub(crate) fn start_with_agent(
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        agent: ureq::Agent,
    ) -> Self {
        Self::launch(dir, args, env, agent, |_| {})
    }

    /// Like [`Served::start`], sending the server `signal` the moment it prints its address
    /// (by a system call: no `kill` process to wait for).
    pub(crate) fn start_signalled_on_listening(
        dir: &Path,
        args: &[&str],
        signal: rustix::process::Signal,
    ) -> Self {
        Self::launch(dir, args, &[], agent().clone(), |pid| {
            let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
            rustix::process::kill_process(pid, signal).unwrap();
        })
    }

    fn launch(
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        agent: ureq::Agent,
        on_listening: impl FnOnce(u32),
    ) -> Self {
        let served = Self::launch_unready(dir, args, env, agent, on_listening);
        served.wait_ready();
        served
    }

    /// Started on `dir` with `args`, not waiting for `/readyz` (for a server that must refuse
    /// to become ready).
    pub(crate) fn start_unready(dir: &Path, args: &[&str]) -> Self {
        Self::launch_unready(dir, args, &[], agent().clone(), |_| {})
    }

    fn launch_unready(
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        agent: ureq::Agent,
        on_listening: impl FnOnce(u32),
    ) -> Self {
        let logs = tempfile::tempdir().unwrap();
        let log = logs.path().join("stderr.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_parmana"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PARMANA_") {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().copied());
        let mut child = command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let base = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "no address on stdout: {first:?}; stderr: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_owned();
        on_listening(child.id());
        let token = if args.contains(&"--dev-token") {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            Some(line.trim().strip_prefix("token: ").unwrap().to_owned())
        } else {
            None
        };
        Self {
            child,
            base,
            token,
            log,
            agent,
            _logs: logs,
        }
    }

    fn wait_ready(&self) {
        for _ in 0..400 {
            // A poll that fails (a connection closed at accept while the server still counts
            // the previous poll's, or one that missed a short idle timeout) is not an answer.
            if self
                .try_get("/readyz", None)
                .is_ok_and(|reply| reply.status == 200)
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("the server never became ready: {}", self.stderr());
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal to the server (by its process id).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Whether the process has exited (without waiting).
    pub(crate) fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits for the process to exit; its exit code.
    pub(crate) fn wait(&mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }

    pub(crate) fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.try_get(path, token)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub(crate) fn post(&self, path: &str, token: Option<&str>, body: &str) -> Reply {
        try_call_with(&self.agent, &self.base, "POST", path, token, Some(body))
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// `METHOD path` (any method; a body is sent with `POST` only).
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Reply {
        try_call_with(&self.agent, &self.base, method, path, token, Some(body))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `GET path` with this server's client, returning transport failures.
    pub(crate) fn try_get(&self, path: &str, token: Option<&str>) -> Result<Reply, ureq::Error> {
        try_call_with(&self.agent, &self.base, "GET", path, token, None)
    }

    /// [`post`](Self::post), with a transport error returned instead of failing the test.
    pub(crate) fn try_post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Result<Reply, ureq::Error> {
        try_call_with(&self.agent, &self.base, "POST", path, token, Some(body))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) text: String,
    /// The body as received (tiles are binary; `text` is its lossy UTF-8).
    pub(crate) bytes: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error code of an error body.
    pub(crate) fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A server that stops answering fails its test instead of hanging the run.
            .timeout_global(Some(std::time::Duration::from_secs(120)))
            .build()
            .into()
    })
}

/// Sends one request (no retry) and returns the answer; transport failures panic.
pub(crate) fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    try_call(base, method, path, token, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Like [`call`], returning transport failures.
pub(crate) fn try_call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<Reply, ureq::Error> {
    try_call_with(agent(), base, method, path, token, body)
}

/// Like [`try_call`], with a given client (TLS settings).
pub(crate) fn try_call_with(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<Reply, ureq::Error> {
    let url = format!("{base}{path}");
    let bearer = token.map(|t| format!("Bearer {t}"));
    // Every request carries an id, which every answer must echo (AuthZEN's X-Request-ID, on
    // every route).
    let request_id = format!("req-{}", method.to_ascii_lowercase());
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut request = agent.get(&url).header("X-Request-ID", &request_id);
            if let Some(bearer) = &bearer {
                request = request.header("Authorization", bearer);
            }
            request.call()?
        }
        ("POST", body) => {
            let mut request = agent
                .post(&url)
                .header("Content-Type", "application/json")
                .header("X-Request-ID", &request_id);
            if let Some(bearer) = &bearer {
                request = request.header("Authorization", bearer);
            }
            request.send(body.unwrap_or(""))?
        }
        // Any other method (405 tests): no body.
        (other, _) => {
            let mut request = ureq::http::Request::builder()
                .method(other)
                .uri(&url)
                .header("X-Request-ID", &request_id);
            if let Some(bearer) = &bearer {
                request = request.header("Authorization", bearer);
            }
            agent.run(request.body(()).unwrap())?
        }
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let bytes = response.body_mut().read_to_vec()?;
    let reply = Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    };
    check_against_openapi(base, method, path, &reply);
    // Echoed on every answer but a bare 431 (hyper's, to a head too large to be read: no body).
    if reply.status != 431 || !reply.bytes.is_empty() {
        assert_eq!(
            reply.header("x-request-id"),
            Some(request_id.as_str()),
            "{method} {path}: {} {:?}",
            reply.status,
            reply.headers
        );
    }
    Ok(reply)
}

/// The OpenAPI document the binary generates (the same for every server of this build).
fn openapi() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_parmana"))
            .args(["serve", "--print-openapi"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

/// The OpenAPI path template a concrete path matches (`/v1/executions/{id}`). A last parameter
/// named `{…_path}` (`/log/tile/{tile_path}`) stands for one or more segments.
fn template_of<'d>(doc: &'d Value, path: &str) -> Option<&'d str> {
    let path = path.split('?').next().unwrap_or(path);
    let b: Vec<&str> = path.split('/').collect();
    let templates = || doc["paths"].as_object().into_iter().flat_map(|p| p.keys());
    let exact = templates().map(String::as_str).find(|template| {
        let a: Vec<&str> = template.split('/').collect();
        a.len() == b.len() && a.iter().zip(&b).all(|(t, p)| t.starts_with('{') || t == p)
    });
    exact.or_else(|| {
        templates().map(String::as_str).find(|template| {
            let a: Vec<&str> = template.split('/').collect();
            a.last().is_some_and(|last| last.ends_with("_path}"))
                && b.len() >= a.len()
                && a.iter().zip(&b).all(|(t, p)| t.starts_with('{') || t == p)
        })
    })
}

/// The reply in the bytes of an HTTP/1.1 answer read from a socket (head, blank line, body).
/// One request on a connection of its own, every header as given (and `Connection: close`),
/// the body as it is; the answer checked against `/openapi.json`.
pub(crate) fn raw_exchange(
    served: &Served,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = send_raw(
        served,
        &format!("{method} {path} HTTP/1.1\r\nConnection: close"),
        headers,
        body,
    );
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let reply = crate::harness::reply_of_raw(&answer);
    check_against_openapi(&served.base, method, path, &reply);
    reply
}

/// A connection to `served` on which a request was sent: `first` (the request line and any
/// header before the others, without the line end), every header of `headers`, a
/// `Content-Length` and the body; answers are read with a 30 s timeout.
fn send_raw(
    served: &Served,
    first: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::net::TcpStream {
    let address = served.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{first}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream
}

/// One request (`line`: method and path) on a connection of its own that asks to be kept
/// alive, every header as given, the body as it is; the connection closed by this side once
/// the answer (its `Content-Length`) has arrived — for what the server says of the connection.
pub(crate) fn raw_keep_alive(
    served: &Served,
    line: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let address = served.base.trim_start_matches("http://");
    let mut stream = send_raw(
        served,
        &format!("{line} HTTP/1.1\r\nHost: {address}"),
        headers,
        body,
    );
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let read = stream.read(&mut chunk).unwrap();
        answer.extend_from_slice(&chunk[..read]);
        if read == 0 {
            break;
        }
        if let Some(split) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let reply = reply_of_raw(&answer);
            let length: usize = reply
                .header("content-length")
                .and_then(|length| length.parse().ok())
                .unwrap_or(0);
            if answer.len() >= split + 4 + length {
                return reply;
            }
        }
    }
    reply_of_raw(&answer)
}

pub(crate) fn reply_of_raw(answer: &[u8]) -> Reply {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head: {}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    let bytes = answer[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

/// Checks that `reply`'s status is documented for the operation and that its JSON body
/// validates against the documented schema. Unknown paths must answer 404 `server.not_found`;
/// a documented path asked with an undocumented method, 405 `server.method_not_allowed`.
pub(crate) fn check_against_openapi(_base: &str, method: &str, path: &str, reply: &Reply) {
    let doc = openapi();
    let Some(template) = template_of(doc, path) else {
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (404, "server.not_found"),
            "{method} {path} is not documented: {}",
            reply.text
        );
        return;
    };
    // The headers a client acts on are always sent: `WWW-Authenticate` with every 401 and
    // with a 403 for a missing scope (RFC 6750), `Retry-After` with every 423 and every 503 but
    // the readiness probe's.
    let required = match reply.status {
        401 => Some("www-authenticate"),
        403 if reply.code() == "server.forbidden" => Some("www-authenticate"),
        423 => Some("retry-after"),
        503 if template != "/readyz" => Some("retry-after"),
        _ => None,
    };
    if let Some(header) = required {
        assert!(
            reply.header(header).is_some(),
            "{method} {path} {} without {header}: {}",
            reply.status,
            reply.text
        );
    }
    // What the challenge says: the scheme and realm always; a missing scope names itself.
    if let Some(challenge) = reply.header("www-authenticate") {
        assert!(
            challenge.starts_with(r#"Bearer realm="parmana""#),
            "{method} {path}: {challenge}"
        );
        if reply.status == 403 {
            assert!(
                challenge.contains(r#"error="insufficient_scope", scope=""#),
                "{method} {path}: {challenge}"
            );
        }
    }
    let operation = &doc["paths"][template][method.to_ascii_lowercase()];
    let documented = &operation["responses"][reply.status.to_string()];
    if reply.status == 431 && reply.bytes.is_empty() {
        // Refused by HTTP/1.1's read buffer before it was parsed: no body (as documented).
        assert!(!documented.is_null(), "{method} {path}: 431 not documented");
        return;
    }
    if reply.status == 503 && documented.is_null() {
        // Shedding, timeouts, the end of the shutdown grace and the start (leftovers not yet
        // recovered) can answer any route that does not declare them; nothing else may.
        let code = reply.code();
        assert!(
            [
                "server.overloaded",
                "server.timeout",
                "server.shutting_down",
                "server.not_ready"
            ]
            .contains(&code.as_str()),
            "{method} {path}: an undeclared 503 {code}"
        );
        return;
    }
    if reply.status == 405 && operation.is_null() {
        // A documented path asked with a method it does not take (any path can be): the error
        // body, with `Allow` naming the methods it takes.
        assert_eq!(reply.code(), "server.method_not_allowed", "{method} {path}");
        assert!(reply.header("allow").is_some(), "{method} {path}: no Allow");
        validate(
            doc,
            &json!({"$ref": "#/components/schemas/ErrorBody"}),
            method,
            path,
            reply,
        );
        return;
    }
    assert!(
        !documented.is_null(),
        "{method} {path} answered {} which /openapi.json does not document: {}",
        reply.status,
        reply.text
    );
    // The headers a client acts on are declared where they are sent.
    for header in ["location", "retry-after", "www-authenticate"] {
        if reply.header(header).is_some() {
            let declared = documented["headers"]
                .as_object()
                .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(header)));
            assert!(
                declared,
                "{method} {path} {} sends {header}, which /openapi.json does not declare",
                reply.status
            );
        }
    }
    // A body that is not JSON (text, tiles) comes with the documented media type.
    if let Some(content) = documented["content"].as_object()
        && !content.contains_key("application/json")
        && let Some(media) = content.keys().next()
    {
        let essence = |media: &str| {
            media
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let got = reply.header("content-type").unwrap_or_default();
        assert_eq!(
            essence(got),
            essence(media),
            "{method} {path} {}: content type",
            reply.status
        );
    }
    let schema = &documented["content"]["application/json"]["schema"];
    if schema.is_object() {
        validate(doc, schema, method, path, reply);
    }
}

/// Checks that `reply`'s JSON body validates against `schema` (of the document `doc`).
fn validate(doc: &Value, schema: &Value, method: &str, path: &str, reply: &Reply) {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).unwrap();
    let body = reply.json();
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {}: body does not match /openapi.json: {errors:?}\n{}",
        reply.status,
        reply.text
    );
}

/// A copy of the repository's fixtures with a `parmana.toml` naming `store`.
pub(crate) fn deployment(store: &str, extra: &str) -> FixtureEnvironment {
    let env = FixtureEnvironment::new().unwrap();
    std::fs::write(
        env.root().join("parmana.toml"),
        format!("store = \"{store}\"\n{extra}"),
    )
    .unwrap();
    env
}

/// The metric families the server registers (docs/server.md, "Logs and metrics"). A family is
/// written out only once it has a series, so [`metric_with`] checks a series' family against
/// this list, and [`assert_families_declared`] checks the list against what the server writes.
pub(crate) const METRIC_FAMILIES: [&str; 20] = [
    "parmana_http_requests",
    "parmana_http_request_duration_seconds",
    "parmana_executions",
    "parmana_execution_errors",
    "parmana_runtime_call_duration_seconds",
    "parmana_store_probe_duration_seconds",
    "parmana_store_operation_duration_seconds",
    "parmana_reloads",
    "parmana_requests_shed",
    "parmana_connections_open",
    "parmana_connections_refused",
    "parmana_connections_without_request",
    "parmana_accept_failures",
    "parmana_ready",
    "parmana_environment_version",
    "parmana_environment_expiry_timestamp_seconds",
    "parmana_sequencer_runs",
    "parmana_checkpoint_cosignings",
    "parmana_log_entries",
    "parmana_build_info",
];

/// The family of a series: its name without the labels, `_total` (a counter's) or a
/// histogram's `_count`, `_sum` or `_bucket`.
fn metric_family(series: &str) -> &str {
    let name = series.split('{').next().unwrap_or(series);
    let name = name.strip_suffix("_total").unwrap_or(name);
    ["_count", "_sum", "_bucket"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

/// Every family of `families` is declared (`# TYPE`) in the server's `/metrics` now.
pub(crate) fn assert_families_declared(served: &Served, token: Option<&str>, families: &[&str]) {
    let text = served.get("/metrics", token).text;
    for family in families {
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("# TYPE {family} "))),
            "no metric family {family} in:\n{text}"
        );
    }
}

/// The value of the metric line `series` (`name{labels}`, whole), read with `token`; 0 when
/// that line is absent (a labelled series appears once counted) — but its family must be one
/// the server registers ([`METRIC_FAMILIES`]), so that a misspelt or renamed metric fails
/// instead of reading 0.
/// How many reloads `served` counted with `outcome` (`ok` or `refused`).
pub(crate) fn reloads(served: &Served, token: Option<&str>, outcome: &str) -> u64 {
    metric_with(
        served,
        token,
        &format!("parmana_reloads_total{{outcome=\"{outcome}\"}}"),
    )
}

pub(crate) fn metric_with(served: &Served, token: Option<&str>, series: &str) -> u64 {
    metric_exported(served, token, series)
        .unwrap_or_else(|| panic!("{series} is not exported (a series exported at 0 is)"))
}

/// [`metric_with`] for a series made when first counted (one labelled by an error code, a
/// route, a status): 0 while it is not exported.
pub(crate) fn metric_or_zero(served: &Served, token: Option<&str>, series: &str) -> u64 {
    metric_exported(served, token, series).unwrap_or(0)
}

/// The value of `series` on `/metrics`, if exported.
fn metric_exported(served: &Served, token: Option<&str>, series: &str) -> Option<u64> {
    let family = metric_family(series);
    assert!(
        METRIC_FAMILIES.contains(&family),
        "{series}: no metric family {family} is registered"
    );
    let text = served.get("/metrics", token).text;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

/// An execution body for the README signals.
pub(crate) fn execution_body(id: &str) -> String {
    format!(
        r#"{{"policy":"claims-approval@1.0.0","signals":{README_SIGNALS},"execution_id":"{id}"}}"#
    )
}

/// Signs the release manifest of the deployment at `root` anew with its release key
/// (`parmana release sign --force`): every bundle under `policies/`, as `version`, expiring at
/// `expires`.
pub(crate) fn release_sign(root: &Path, version: &str, expires: &str) {
    let args = parmana_testkit::release_sign_args(version, expires);
    let (code, _, stderr) = parmana(root, &[&args[..], &["--force"]].concat());
    assert_eq!(code, 0, "release {version}: {stderr}");
}

/// Runs `parmana ARGS` in `dir` (no PARMANA_* variables): exit code and stdout.
pub(crate) fn parmana(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parmana"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PARMANA_") {
            command.env_remove(name);
        }
    }
    let out = command.args(args).current_dir(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Polls (bounded: 2,400 × 25 ms) until `done` holds; whether it did.
pub(crate) fn eventually(mut done: impl FnMut() -> bool) -> bool {
    (0..2_400).any(|_| {
        let now = done();
        if !now {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        now
    })
}
