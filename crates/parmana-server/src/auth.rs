//! Bearer-token authentication: a tokens file of SHA-256 digests with scopes, compared in constant time; `Scope` and the check each route makes; without tokens, the refusal of what a browser would send on a web page's behalf.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, StatusCode, header};
use parmana_runtime::canon::Digest;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ServerError};

/// The largest tokens file read.
const MAX_TOKENS_FILE_BYTES: u64 = 1024 * 1024;

/// The most tokens a tokens file may hold: every request compares the token it presents with
/// each of them.
pub(crate) const MAX_TOKENS: usize = 1024;

/// The longest token a request may present (in bytes), refused before it is hashed: a header
/// may be as long as `max_header_bytes`, and an unauthenticated caller should not choose how
/// much each request hashes.
pub(crate) const MAX_PRESENTED_TOKEN_BYTES: usize = 1024;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `POST /v1/executions`, and AuthZEN requests that carry an execution id.
    Execute,
    /// `POST /v1/evaluations` and AuthZEN evaluations.
    Evaluate,
    /// `GET /v1/executions/{id}` and its `/proof`, `GET /v1/status`, `GET /metrics`, and the
    /// transparency log's routes (`/log/…`) unless the log is public.
    Read,
    /// `POST /v1/verify`.
    Verify,
    /// `POST /v1/admin/reload`.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Self; 5] = [
        Self::Execute,
        Self::Evaluate,
        Self::Read,
        Self::Verify,
        Self::Admin,
    ];

    /// The scope as the tokens file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::Evaluate => "evaluate",
            Self::Read => "read",
            Self::Verify => "verify",
            Self::Admin => "admin",
        }
    }
}

/// One accepted token: a name for logs, the digest of its secret, and its scopes.
#[derive(Debug, Clone)]
struct Token {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

/// The accepted bearer tokens. Only digests are held; a presented token is hashed and
/// compared with every digest in constant time.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
    /// The tokens file they were read from, read again by each reload (none: a dev token).
    file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    sha256: String,
    scopes: Vec<Scope>,
}

impl Tokens {
    /// Reads a tokens file (`docs/server.md`, "Authentication"): TOML with one `[[tokens]]`
    /// table per token — `name`, `sha256` (`sha256:` and the hex digest of the token's UTF-8
    /// bytes) and `scopes`. Refuses an empty file, a malformed digest, a repeated digest and
    /// a token without scopes.
    pub fn load(path: &Path) -> Result<Self, ServerError> {
        use std::io::Read as _;
        let invalid = |message: String| ServerError::TokensInvalid {
            path: path.display().to_string(),
            message,
        };
        let mut text = String::new();
        crate::access_files::open(path)
            .map_err(invalid)?
            .take(MAX_TOKENS_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| invalid(e.to_string()))?;
        if text.len() as u64 > MAX_TOKENS_FILE_BYTES {
            return Err(invalid(format!(
                "larger than {MAX_TOKENS_FILE_BYTES} bytes"
            )));
        }
        let file: TokensFile =
            toml::from_str(&text).map_err(|e| invalid(e.message().trim_end().to_owned()))?;
        let mut tokens = Self::from_entries(file.tokens).map_err(invalid)?;
        tokens.file = Some(path.to_owned());
        Ok(tokens)
    }

    /// The tokens file these were read from (none for a dev token).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn from_entries(entries: Vec<TokenEntry>) -> Result<Self, String> {
        if entries.is_empty() {
            return Err("no [[tokens]] entry".to_owned());
        }
        if entries.len() > MAX_TOKENS {
            return Err(format!(
                "{} [[tokens]] entries, more than {MAX_TOKENS}",
                entries.len()
            ));
        }
        let mut tokens: Vec<Token> = Vec::with_capacity(entries.len());
        let mut names = std::collections::HashSet::with_capacity(entries.len());
        let mut digests = std::collections::HashSet::with_capacity(entries.len());
        for entry in entries {
            let digest: Digest = entry
                .sha256
                .parse()
                .map_err(|e| format!("token {:?}: sha256: {e}", entry.name))?;
            if entry.scopes.is_empty() {
                return Err(format!("token {:?} has no scopes", entry.name));
            }
            // The name is what the logs say of a caller: it names one token.
            if entry.name.trim().is_empty() {
                return Err("a token has an empty name".to_owned());
            }
            if !names.insert(entry.name.clone()) {
                return Err(format!("two tokens are named {:?}", entry.name));
            }
            if !digests.insert(*digest.as_bytes()) {
                return Err(format!("token {:?} repeats another token", entry.name));
            }
            tokens.push(Token {
                name: entry.name,
                digest: *digest.as_bytes(),
                scopes: entry.scopes,
            });
        }
        Ok(Self { tokens, file: None })
    }

    /// A fresh random token holding every scope (for `--dev-token`): the accepted set and the
    /// secret to print.
    pub fn generate_dev_token() -> Result<(Self, String), ServerError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| ServerError::Io {
            action: "generate",
            address: "a random token".to_owned(),
            message: e.to_string(),
        })?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let token = Token {
            name: "dev-token".to_owned(),
            digest: *Digest::of(secret.as_bytes()).as_bytes(),
            scopes: Scope::ALL.to_vec(),
        };
        Ok((
            Self {
                tokens: vec![token],
                file: None,
            },
            secret,
        ))
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token presented, found in constant time over every digest: its name and scopes.
    fn find(&self, presented: &str) -> Option<&Token> {
        let digest = Digest::of(presented.as_bytes());
        let mut found = None;
        for token in &self.tokens {
            // Every digest is compared (no early exit), each comparison in constant time.
            if bool::from(token.digest.ct_eq(digest.as_bytes())) {
                found = Some(token);
            }
        }
        found
    }

    /// Checks the `Authorization: Bearer …` header for `scope`: 401 without a valid token,
    /// 403 when the token lacks the scope. Returns the token's name, for logs.
    #[cfg(test)]
    pub(crate) fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<String, ApiError> {
        self.authorize_noting(headers, scope, |_| {})
    }

    /// [`authorize`](Self::authorize), giving `note` the name of a valid token before its scope
    /// is checked: a `403`'s log line names the caller too.
    pub(crate) fn authorize_noting(
        &self,
        headers: &HeaderMap,
        scope: Scope,
        note: impl FnOnce(&str),
    ) -> Result<String, ApiError> {
        // RFC 6750 §3: a request without a bearer token (none, or another scheme's credentials)
        // is told the scheme alone; one that sends several is `invalid_request`; one whose token
        // was refused, `invalid_token`.
        let unauthorized = |message: &str, error: Option<&str>| {
            let challenge = match error {
                Some(error) => format!("Bearer realm=\"parmana\", error=\"{error}\""),
                None => "Bearer realm=\"parmana\"".to_owned(),
            };
            ApiError::new(StatusCode::UNAUTHORIZED, "server.unauthorized", message)
                .with_header(header::WWW_AUTHENTICATE, &challenge)
        };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(unauthorized("a bearer token is required", None));
        };
        // One credential: with two, which one counts would depend on who reads them (a proxy
        // that appends its own, say).
        if values.next().is_some() {
            return Err(unauthorized(
                "several Authorization headers: send one bearer token",
                Some("invalid_request"),
            ));
        }
        let text = value.to_str().ok();
        // The scheme is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer`, `BEARER`.
        let bearer = text.and_then(|v| {
            v.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .and_then(|_| v.get(7..))
        });
        let Some(presented) = bearer.map(str::trim).filter(|v| !v.is_empty()) else {
            let not_bearer =
                "the Authorization header is not `Bearer TOKEN` (a token is visible ASCII)";
            // Another scheme's credentials are no bearer token at all: the scheme is named.
            let other_scheme = text.is_some() && bearer.is_none();
            return Err(unauthorized(
                not_bearer,
                (!other_scheme).then_some("invalid_token"),
            ));
        };
        if presented.len() > MAX_PRESENTED_TOKEN_BYTES {
            return Err(unauthorized(
                &format!(
                    "the bearer token is longer than {MAX_PRESENTED_TOKEN_BYTES} bytes: none accepted is"
                ),
                Some("invalid_token"),
            ));
        }
        let token = self.find(presented).ok_or_else(|| {
            unauthorized("the bearer token is not accepted", Some("invalid_token"))
        })?;
        note(&token.name);
        if !token.scopes.contains(&scope) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "server.forbidden",
                format!(
                    "the token {:?} lacks the `{}` scope",
                    token.name,
                    scope.as_str()
                ),
            )
            .with_header(header::WWW_AUTHENTICATE, &scope_challenge(scope)));
        }
        Ok(token.name.clone())
    }
}

/// The `WWW-Authenticate` challenge of a `403` for a scope the token lacks (RFC 6750 §3).
pub(crate) fn scope_challenge(scope: Scope) -> String {
    format!(
        "Bearer realm=\"parmana\", error=\"insufficient_scope\", scope=\"{}\"",
        scope.as_str()
    )
}

/// Without authentication (`--insecure-no-auth`, on loopback only), a web page open in a browser
/// on the same machine could still reach the server: a cross-site request (a form, or `fetch` in
/// `no-cors` mode, which needs no preflight) or a name its owner rebound to 127.0.0.1 (DNS
/// rebinding, which also lets the page read the answers). So a request that shows either is
/// refused (403 `server.untrusted_origin`) before anything is read: a `Host` that is not a loopback
/// address or `localhost` (with any port), an `Origin` that is not `http(s)://` one of those,
/// `Sec-Fetch-Site: cross-site`. Clients that are not browsers send none of them but `Host`.
pub(crate) fn refuse_browser_requests(headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = |what: &str| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "server.untrusted_origin",
            format!(
                "without authentication (--insecure-no-auth) the server answers only requests to \
                 a loopback host from no other site: {what}"
            ),
        ))
    };
    for value in headers.get_all(header::HOST) {
        if !value.to_str().is_ok_and(is_loopback_authority) {
            return refused("the Host header is not a loopback address or localhost");
        }
    }
    for value in headers.get_all(header::ORIGIN) {
        let loopback = value.to_str().ok().is_some_and(|origin| {
            ["http://", "https://"].iter().any(|scheme| {
                origin
                    .get(..scheme.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
                    && is_loopback_authority(&origin[scheme.len()..])
            })
        });
        if !loopback {
            return refused("the request comes from a page of another origin (Origin)");
        }
    }
    for value in headers.get_all("sec-fetch-site") {
        if value.as_bytes().eq_ignore_ascii_case(b"cross-site") {
            return refused("the request comes from another site's page (Sec-Fetch-Site)");
        }
    }
    Ok(())
}

/// Whether `authority` (`host[:port]`) names a loopback address or `localhost`.
fn is_loopback_authority(authority: &str) -> bool {
    // The port follows the `]` of an IPv6 literal, or the host's first `:` (an IPv6 address
    // appears only bracketed).
    let (host, port, bracketed) = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((host, "")) => (host, None, true),
            Some((host, after)) => match after.strip_prefix(':') {
                Some(port) => (host, Some(port), true),
                None => return false,
            },
            None => return false,
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port), false),
            None => (authority, None, false),
        },
    };
    let port_ok = port.is_none_or(|digits| {
        (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    });
    let host_ok = if bracketed {
        host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback())
    } else {
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn tokens_file(text: &str) -> Result<Tokens, ServerError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, text).unwrap();
        Tokens::load(&path)
    }

    /// A tokens file anyone may write is not read (at start or on a reload): whoever wrote it
    /// could add a token of their own.
    #[cfg(unix)]
    #[test]
    fn a_tokens_file_anyone_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(
            &path,
            format!(
                "[[tokens]]\nname = \"ci\"\nsha256 = \"sha256:{}\"\nscopes = [\"read\"]\n",
                "ab".repeat(32)
            ),
        )
        .unwrap();
        assert!(Tokens::load(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let refused = Tokens::load(&path).unwrap_err();
        assert_eq!(refused.code(), "server.tokens_invalid");
        assert!(
            refused.to_string().contains("anyone may write it"),
            "{refused}"
        );
    }

    /// Without authentication, what a browser would send for another site's page (or for a
    /// rebound name) is refused; what other clients send is not.
    #[test]
    fn browser_requests_are_refused_without_authentication() {
        let check = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(
                    axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            refuse_browser_requests(&headers).map_err(|e| e.code)
        };
        for accepted in [
            &[][..],
            &[("host", "127.0.0.1:8080")],
            &[("host", "127.9.9.9")],
            &[("host", "LOCALHOST:1")],
            &[("host", "[::1]:8080")],
            &[("host", "[::1]")],
            &[("host", "localhost"), ("origin", "http://localhost:3000")],
            &[("host", "localhost"), ("origin", "HTTPS://127.0.0.1")],
            &[("host", "localhost"), ("sec-fetch-site", "same-origin")],
            &[("host", "localhost"), ("sec-fetch-site", "none")],
        ] {
            assert_eq!(check(accepted), Ok(()), "{accepted:?}");
        }
        for refused in [
            &[("host", "attacker.example:8080")][..],
            &[("host", "127.0.0.1.attacker.example")],
            &[("host", "localhost.attacker.example")],
            &[("host", "10.0.0.1:8080")],
            &[("host", "0.0.0.0:8080")],
            &[("host", "[::ffff:127.0.0.1]:8080")],
            &[("host", "127.0.0.1:")],
            &[("host", "127.0.0.1:80:80")],
            &[("host", "[::1]x")],
            &[("host", "")],
            &[("host", "localhost"), ("origin", "null")],
            &[
                ("host", "localhost"),
                ("origin", "https://attacker.example"),
            ],
            &[
                ("host", "localhost"),
                ("origin", "http://localhost.attacker.example"),
            ],
            &[("host", "localhost"), ("origin", "file://")],
            &[("host", "localhost"), ("sec-fetch-site", "cross-site")],
            &[("host", "localhost"), ("host", "attacker.example")],
        ] {
            assert_eq!(
                check(refused),
                Err("server.untrusted_origin".to_owned()),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn tokens_are_checked_by_digest_and_scope() {
        let reader = Digest::of(b"reader-secret");
        let tokens = tokens_file(&format!(
            "[[tokens]]\nname = \"reader\"\nsha256 = \"{reader}\"\nscopes = [\"read\"]\n"
        ))
        .unwrap();
        assert_eq!(tokens.len(), 1);
        // (header, scope asked, expected code or the token name)
        for (header, scope, expected) in [
            (Some("Bearer reader-secret"), Scope::Read, "reader"),
            (
                Some("Bearer reader-secret"),
                Scope::Execute,
                "server.forbidden",
            ),
            (Some("Bearer wrong"), Scope::Read, "server.unauthorized"),
            (None, Scope::Read, "server.unauthorized"),
            (Some("Basic abc"), Scope::Read, "server.unauthorized"),
            (Some("Bearer "), Scope::Read, "server.unauthorized"),
            // The scheme in any case (RFC 9110 §11.1); the token as it is.
            (Some("bearer reader-secret"), Scope::Read, "reader"),
            (Some("BEARER reader-secret"), Scope::Read, "reader"),
            (Some("BeArEr reader-secret"), Scope::Read, "reader"),
            (
                Some("Bearer READER-SECRET"),
                Scope::Read,
                "server.unauthorized",
            ),
            (
                Some("Bearerreader-secret"),
                Scope::Read,
                "server.unauthorized",
            ),
            (Some("Bear"), Scope::Read, "server.unauthorized"),
            (
                Some("Bearé reader-secret"),
                Scope::Read,
                "server.unauthorized",
            ),
        ] {
            let got = match tokens.authorize(&headers(header), scope) {
                Ok(name) => name,
                Err(error) => error.code,
            };
            assert_eq!(got, expected, "{header:?} {scope:?}");
        }
    }

    /// A refusal says why as RFC 6750 §3 asks (`invalid_token` for a token presented and
    /// refused, `insufficient_scope` with the scope); several `Authorization` headers and a
    /// token past the length bound are refused before any token is looked for.
    #[test]
    fn refusals_carry_their_bearer_challenge() {
        let reader = Digest::of(b"reader-secret");
        let tokens = tokens_file(&format!(
            "[[tokens]]\nname = \"reader\"\nsha256 = \"{reader}\"\nscopes = [\"read\"]\n"
        ))
        .unwrap();
        let long = format!("Bearer {}", "a".repeat(MAX_PRESENTED_TOKEN_BYTES + 1));
        let invalid = r#"Bearer realm="parmana", error="invalid_token""#;
        let several = r#"Bearer realm="parmana", error="invalid_request""#;
        // (Authorization headers, scope, status, challenge, words of the message)
        type Case<'a> = (Vec<&'a [u8]>, Scope, u16, &'a str, &'a str);
        let cases: [Case<'_>; 9] = [
            (
                vec![],
                Scope::Read,
                401,
                r#"Bearer realm="parmana""#,
                "required",
            ),
            (
                vec![b"Bearer wrong"],
                Scope::Read,
                401,
                invalid,
                "not accepted",
            ),
            (
                vec![b"Basic abc"],
                Scope::Read,
                401,
                r#"Bearer realm="parmana""#,
                "not `Bearer TOKEN`",
            ),
            (
                vec![b"Bearer   "],
                Scope::Read,
                401,
                invalid,
                "not `Bearer TOKEN`",
            ),
            (
                vec![b"Bearer \xc3\xa9"],
                Scope::Read,
                401,
                invalid,
                "visible ASCII",
            ),
            (
                vec![long.as_bytes()],
                Scope::Read,
                401,
                invalid,
                "longer than 1024 bytes",
            ),
            (
                vec![b"Bearer reader-secret", b"Bearer wrong"],
                Scope::Read,
                401,
                several,
                "several",
            ),
            (
                vec![b"Bearer wrong", b"Bearer reader-secret"],
                Scope::Read,
                401,
                several,
                "several",
            ),
            (
                vec![b"Bearer reader-secret"],
                Scope::Execute,
                403,
                r#"Bearer realm="parmana", error="insufficient_scope", scope="execute""#,
                "lacks the `execute` scope",
            ),
        ];
        for (values, scope, status, challenge, words) in cases {
            let mut headers = HeaderMap::new();
            for value in &values {
                headers.append(
                    header::AUTHORIZATION,
                    HeaderValue::from_bytes(value).unwrap(),
                );
            }
            let refused = tokens.authorize(&headers, scope).unwrap_err();
            let sent: Vec<_> = refused
                .headers
                .iter()
                .filter(|(name, _)| *name == header::WWW_AUTHENTICATE)
                .map(|(_, value)| value.to_str().unwrap())
                .collect();
            assert_eq!(refused.status.as_u16(), status, "{values:?}");
            assert_eq!(sent, [challenge], "{values:?}");
            assert!(
                refused.message.contains(words),
                "{values:?}: {}",
                refused.message
            );
        }
    }

    /// At most [`MAX_TOKENS`] tokens: each request is compared with every one.
    #[test]
    fn a_tokens_file_holds_at_most_its_bound() {
        let file = |count: usize| {
            (0..count)
                .map(|n| {
                    let digest = Digest::of(format!("secret-{n}").as_bytes());
                    format!(
                        "[[tokens]]\nname = \"t{n}\"\nsha256 = \"{digest}\"\nscopes = [\"read\"]\n"
                    )
                })
                .collect::<String>()
        };
        assert_eq!(tokens_file(&file(MAX_TOKENS)).unwrap().len(), MAX_TOKENS);
        let refused = tokens_file(&file(MAX_TOKENS + 1)).unwrap_err().to_string();
        assert!(refused.contains("more than 1024"), "{refused}");
    }

    #[test]
    fn malformed_token_files_are_refused() {
        let digest = Digest::of(b"x");
        let other = Digest::of(b"y");
        for text in [
            String::new(),
            "tokens = []\n".to_owned(),
            "[[tokens]]\nname = \"a\"\nsha256 = \"sha256:00\"\nscopes = [\"read\"]\n".to_owned(),
            format!("[[tokens]]\nname = \"a\"\nsha256 = \"{digest}\"\nscopes = []\n"),
            format!("[[tokens]]\nname = \"a\"\nsha256 = \"{digest}\"\nscopes = [\"root\"]\n"),
            format!(
                "[[tokens]]\nname = \"a\"\nsha256 = \"{digest}\"\nscopes = [\"read\"]\nextra = 1\n"
            ),
            format!(
                "[[tokens]]\nname = \"a\"\nsha256 = \"{digest}\"\nscopes = [\"read\"]\n\
                 [[tokens]]\nname = \"b\"\nsha256 = \"{digest}\"\nscopes = [\"admin\"]\n"
            ),
            // A name says which token called, in every log line: never empty, never twice.
            format!("[[tokens]]\nname = \" \"\nsha256 = \"{digest}\"\nscopes = [\"read\"]\n"),
            format!(
                "[[tokens]]\nname = \"a\"\nsha256 = \"{digest}\"\nscopes = [\"read\"]\n\
                 [[tokens]]\nname = \"a\"\nsha256 = \"{other}\"\nscopes = [\"admin\"]\n"
            ),
        ] {
            let error = tokens_file(&text).unwrap_err();
            assert_eq!(error.code(), "server.tokens_invalid", "{text}");
        }
    }

    #[test]
    fn a_dev_token_holds_every_scope() {
        let (tokens, secret) = Tokens::generate_dev_token().unwrap();
        assert_eq!(secret.len(), 64);
        let bearer = format!("Bearer {secret}");
        for scope in Scope::ALL {
            assert!(tokens.authorize(&headers(Some(&bearer)), scope).is_ok());
        }
    }
}
