//! TLS for the PostgreSQL store: the `sslmode` and `sslrootcert` URL options, read here, and the rustls client configuration (ring provider) they select.
//!
//! `tokio-postgres` parses the rest of the URL but knows only `sslmode=disable|prefer|require`
//! and no `sslrootcert`, so both are taken out of the query string before it sees the URL. Any
//! other `ssl…` option is refused rather than ignored; unknown non-TLS options are refused by
//! `tokio-postgres`'s own parser. See `docs/replay-stores.md` for what each mode checks.

use std::path::PathBuf;
use std::sync::Arc;

use postgres::config::SslMode;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::ReplayError;

/// How the store secures its connections (libpq's `sslmode` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS or no connection; the chain must lead to a certificate in `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host of the URL.
    VerifyFull,
}

impl TlsMode {
    /// The option's spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<Self, ReplayError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(invalid(format!(
                    "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }

    /// What `tokio-postgres` is told: whether TLS is tried, and whether it is required.
    pub(crate) fn ssl_mode(self) -> SslMode {
        match self {
            Self::Disable => SslMode::Disable,
            Self::Prefer => SslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => SslMode::Require,
        }
    }
}

/// The TLS settings read from a store URL, and the URL without them.
#[derive(Debug)]
pub(crate) struct TlsOptions {
    /// The effective mode (`require` with `sslrootcert` is `verify-ca`, as in libpq).
    pub(crate) mode: TlsMode,
    /// The CA bundle for `verify-ca` and `verify-full`.
    root_cert: Option<PathBuf>,
    /// The URL with `sslmode` and `sslrootcert` removed, for `tokio-postgres` to parse.
    pub(crate) rest: String,
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query string.
pub(crate) fn split_url(url: &str) -> Result<TlsOptions, ReplayError> {
    // Where the query string starts, found the way tokio-postgres's URL parser finds it: the
    // credentials end at the first `@`, the query starts at the first `?` after them.
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    let (base, query) = match url[after_credentials..].find('?') {
        Some(q) => url.split_at(after_credentials + q),
        None => (url, ""),
    };
    let mut mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.strip_prefix('?').unwrap_or(query).split('&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(raw_key)?;
        match key.as_str() {
            "sslmode" => {
                if mode
                    .replace(TlsMode::parse(&percent_decode(raw_value)?)?)
                    .is_some()
                {
                    return Err(invalid("sslmode is given twice"));
                }
            }
            "sslrootcert" => {
                let path = percent_decode(raw_value)?;
                if path.is_empty() {
                    return Err(invalid("sslrootcert is empty"));
                }
                if path == "system" {
                    return Err(invalid(
                        "sslrootcert=system is not supported: name a PEM file of CA certificates",
                    ));
                }
                if root_cert.replace(PathBuf::from(path)).is_some() {
                    return Err(invalid("sslrootcert is given twice"));
                }
            }
            other if other.starts_with("ssl") || other == "requiressl" => {
                return Err(invalid(format!(
                    "option {other:?} is not supported (supported TLS options: sslmode, sslrootcert)"
                )));
            }
            _ => kept.push(pair),
        }
    }
    let mode = match (mode, &root_cert) {
        (None, None) => TlsMode::Prefer,
        (None | Some(TlsMode::Disable | TlsMode::Prefer), Some(_)) => {
            return Err(invalid(
                "sslrootcert needs sslmode=require, verify-ca or verify-full",
            ));
        }
        (Some(TlsMode::VerifyCa | TlsMode::VerifyFull), None) => {
            return Err(invalid(
                "sslmode=verify-ca and verify-full need sslrootcert=PATH (a PEM file of CA certificates)",
            ));
        }
        // libpq: with a root certificate, `require` verifies the chain like `verify-ca`.
        (Some(TlsMode::Require), Some(_)) => TlsMode::VerifyCa,
        (Some(mode), _) => mode,
    };
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(TlsOptions {
        mode,
        root_cert,
        rest,
    })
}

impl TlsOptions {
    /// The TLS connector for these settings; reads and checks the CA bundle.
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect, ReplayError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS setup: {e}")))?;
        let config = match (self.mode, &self.root_cert) {
            (TlsMode::VerifyFull, Some(path)) => builder
                .with_root_certificates(load_roots(path)?)
                .with_no_client_auth(),
            (TlsMode::VerifyCa, Some(path)) => {
                let full = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(load_roots(path)?),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|e| invalid(format!("TLS setup: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly { full }))
                    .with_no_client_auth()
            }
            (TlsMode::VerifyCa | TlsMode::VerifyFull, None) => {
                return Err(invalid(
                    "sslmode=verify-ca and verify-full need sslrootcert=PATH",
                ));
            }
            // Disable never starts TLS; Prefer and Require encrypt without checking who answers.
            (TlsMode::Disable | TlsMode::Prefer | TlsMode::Require, _) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

/// The hosts of the `postgres://` URL `url` reached over TCP away from the loopback whose
/// identity its TLS settings do not check — `sslmode` absent (`prefer`), `disable`, `prefer` or
/// `require` without `sslrootcert`: a man in the middle can answer for them, and ask for the
/// password in clear. Empty for `verify-ca` and `verify-full`, for Unix sockets and the loopback,
/// and for a URL that does not parse (opening it is refused anyway).
pub(crate) fn hosts_reached_unverified(url: &str) -> Vec<String> {
    let Ok(options) = split_url(url) else {
        return Vec::new();
    };
    if matches!(options.mode, TlsMode::VerifyCa | TlsMode::VerifyFull) {
        return Vec::new();
    }
    let Ok(config) = options.rest.parse::<postgres::Config>() else {
        return Vec::new();
    };
    // Where `hostaddr` is given, the connection goes to it (the host names only what a
    // certificate would be checked against).
    let addresses = config.get_hostaddrs();
    if !addresses.is_empty() {
        return addresses
            .iter()
            .filter(|address| !address.to_canonical().is_loopback())
            .map(ToString::to_string)
            .collect();
    }
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .filter_map(|host| match host {
            postgres::config::Host::Tcp(name) => Some(name.clone()),
            #[cfg(unix)]
            postgres::config::Host::Unix(_) => None,
        })
        .filter(|name| !is_loopback(name))
        .collect();
    hosts.dedup();
    hosts
}

/// Whether `host` names the loopback: `localhost` (which resolvers answer from the hosts file;
/// its subdomains may go to DNS, where whoever is on the path answers) or a loopback address,
/// an IPv4 one written as IPv6 (`::ffff:127.0.0.1`) included.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.to_canonical().is_loopback())
}

/// Whether a connection failure is TLS refusing to go ahead (rather than the server being
/// unreachable): the server offered no TLS where the mode requires it, the handshake failed, or
/// the certificate was not trusted or did not name the host.
pub(crate) fn is_tls_refusal(error: &postgres::Error) -> bool {
    let Some(cause) = std::error::Error::source(error) else {
        return false;
    };
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        return io.get_ref().is_some_and(|inner| {
            inner.is::<rustls::Error>() || inner.is::<rustls::pki_types::InvalidDnsNameError>()
        });
    }
    // tokio-postgres's own refusal under `SslMode::Require` (no source type of its own).
    cause.to_string() == "server does not support TLS"
}

/// The largest `sslrootcert` file read: a bundle of CA certificates (Debian's whole
/// `ca-certificates.crt` is about 220 KiB).
pub(crate) const MAX_ROOT_FILE_BYTES: u64 = 1 << 20;

/// The most certificates taken from an `sslrootcert` file.
pub(crate) const MAX_ROOT_CERTIFICATES: usize = 1_000;

/// The bytes of the `sslrootcert` file at `path`: opened without waiting (a named pipe at the
/// path would hold the open until something writes to it), a regular file only, at most
/// [`MAX_ROOT_FILE_BYTES`] read (`/dev/zero` is refused, not read without end).
fn read_roots_file(path: &PathBuf) -> Result<Vec<u8>, ReplayError> {
    use std::io::Read as _;
    let shown = path.display();
    let file =
        open_without_waiting(path).map_err(|e| invalid(format!("sslrootcert {shown}: {e}")))?;
    let is_file = file
        .metadata()
        .map_err(|e| invalid(format!("sslrootcert {shown}: {e}")))?
        .is_file();
    if !is_file {
        return Err(invalid(format!(
            "sslrootcert {shown} is not a regular file (a named pipe, a device or a directory): \
             it is not read"
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_ROOT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| invalid(format!("sslrootcert {shown}: {e}")))?;
    if bytes.len() as u64 > MAX_ROOT_FILE_BYTES {
        return Err(invalid(format!(
            "sslrootcert {shown} is larger than {MAX_ROOT_FILE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

#[cfg(unix)]
fn open_without_waiting(path: &PathBuf) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    // A regular file reads as it would without the flag.
    let nonblocking = rustix::fs::OFlags::NONBLOCK.bits();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(nonblocking).unwrap_or(0))
        .open(path)
}

#[cfg(not(unix))]
fn open_without_waiting(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

fn load_roots(path: &PathBuf) -> Result<RootCertStore, ReplayError> {
    let shown = path.display();
    let bytes = read_roots_file(path)?;
    // Counted before any is parsed as a certificate (each costs a parse).
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .take(MAX_ROOT_CERTIFICATES + 1)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("sslrootcert {shown}: {e}")))?;
    if certificates.len() > MAX_ROOT_CERTIFICATES {
        return Err(invalid(format!(
            "sslrootcert {shown} holds more than {MAX_ROOT_CERTIFICATES} certificates"
        )));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| invalid(format!("sslrootcert {shown}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(invalid(format!(
            "sslrootcert {shown} holds no PEM certificate"
        )));
    }
    Ok(roots)
}

fn invalid(message: impl Into<String>) -> ReplayError {
    ReplayError::InvalidConfiguration {
        message: message.into(),
    }
}

/// Decodes `%XX` escapes (as tokio-postgres does for URL parameters); the result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, ReplayError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let escaped = (byte == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| invalid("a URL option is not UTF-8 after %-decoding"))
}

/// `verify-ca`: the full WebPKI check, except that a certificate naming another host is
/// accepted. The name is checked only after the chain, so a name error means the chain held.
#[derive(Debug)]
struct ChainOnly {
    full: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.full.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.full.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.full.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.full.supported_verify_schemes()
    }
}

/// `prefer` and `require`: any certificate is accepted (libpq's meaning of these modes), but the
/// handshake signatures are still checked, so the session is encrypted to whoever holds the key
/// of the certificate presented.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

    use super::*;

    fn split(url: &str) -> Result<(TlsMode, Option<String>, String), String> {
        split_url(url)
            .map(|o| (o.mode, o.root_cert.map(|p| p.display().to_string()), o.rest))
            .map_err(|e| e.to_string())
    }

    /// (URL, the hosts reached without checking who answers).
    #[test]
    fn hosts_reached_unverified_are_the_networked_ones_without_verify() {
        let cases: &[(&str, &[&str])] = &[
            ("postgres://u@db.internal/store", &["db.internal"]),
            (
                "postgres://u@db.internal/store?sslmode=prefer",
                &["db.internal"],
            ),
            (
                "postgres://u@db.internal/store?sslmode=require",
                &["db.internal"],
            ),
            (
                "postgres://u@db.internal/store?sslmode=disable",
                &["db.internal"],
            ),
            ("postgres://u@10.0.0.5:5432/store", &["10.0.0.5"]),
            ("postgres://u@[2001:db8::1]:5432/store", &["2001:db8::1"]),
            (
                "postgres://u@a.example,b.example/store",
                &["a.example", "b.example"],
            ),
            (
                "postgres://u@db.internal/store?sslmode=require&sslrootcert=/ca.pem",
                &[],
            ),
            (
                "postgres://u@db.internal/store?sslmode=verify-full&sslrootcert=/ca.pem",
                &[],
            ),
            ("postgres://u@localhost/store", &[]),
            ("postgres://u@api.localhost/store", &["api.localhost"]),
            ("postgres://u@[::ffff:127.0.0.1]:5432/store", &[]),
            ("postgres://u@db.internal/store?hostaddr=127.0.0.1", &[]),
            (
                "postgres://u@localhost/store?hostaddr=10.0.0.7",
                &["10.0.0.7"],
            ),
            ("postgres://u@127.0.0.1:5432/store", &[]),
            ("postgres://u@[::1]:5432/store", &[]),
            ("postgres://u@%2Frun%2Fpostgresql/store", &[]),
            ("postgres://u@/store?host=/run/postgresql", &[]),
            ("postgres://u@db.internal/store?sslmode=bogus", &[]),
        ];
        for (url, expected) in cases {
            assert_eq!(hosts_reached_unverified(url), *expected, "{url}");
        }
    }

    #[test]
    fn modes_and_root_certs_are_taken_out_of_the_url() {
        let base = "postgres://u:p%40ss@db.example:5432/store";
        assert_eq!(
            split(base).unwrap(),
            (TlsMode::Prefer, None, base.to_owned())
        );
        assert_eq!(
            split(&format!("{base}?sslmode=disable")).unwrap(),
            (TlsMode::Disable, None, base.to_owned())
        );
        assert_eq!(
            split(&format!(
                "{base}?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3"
            ))
            .unwrap(),
            (
                TlsMode::VerifyFull,
                Some("/etc/ca.pem".to_owned()),
                format!("{base}?application_name=x&connect_timeout=3")
            )
        );
        // libpq: `require` with a root certificate verifies the chain.
        assert_eq!(
            split(&format!("{base}?sslmode=require&sslrootcert=/ca.pem"))
                .unwrap()
                .0,
            TlsMode::VerifyCa
        );
        assert_eq!(
            split(&format!("{base}?sslmode=verify-ca&sslrootcert=/ca.pem"))
                .unwrap()
                .0,
            TlsMode::VerifyCa
        );
        // A `?` inside the password is not the query string.
        assert_eq!(
            split("postgres://u:a?b@h/db?sslmode=require").unwrap(),
            (TlsMode::Require, None, "postgres://u:a?b@h/db".to_owned())
        );
    }

    #[test]
    fn unsupported_or_contradictory_tls_options_are_refused() {
        let base = "postgres://u@h/db";
        for (query, expected) in [
            ("sslmode=allow", "is not one of"),
            ("sslmode=VERIFY-FULL", "is not one of"),
            ("sslmode=require&sslmode=disable", "twice"),
            ("sslmode=verify-full", "need sslrootcert"),
            ("sslmode=verify-ca", "need sslrootcert"),
            ("sslrootcert=/ca.pem", "needs sslmode"),
            ("sslmode=prefer&sslrootcert=/ca.pem", "needs sslmode"),
            ("sslmode=disable&sslrootcert=/ca.pem", "needs sslmode"),
            ("sslmode=verify-full&sslrootcert=", "empty"),
            ("sslmode=verify-full&sslrootcert=system", "not supported"),
            ("sslmode=require&sslcert=/c.pem", "not supported"),
            ("sslmode=require&sslkey=/k.pem", "not supported"),
            ("sslnegotiation=direct", "not supported"),
            ("sslcrl=/crl.pem", "not supported"),
            ("requiressl=1", "not supported"),
        ] {
            let error = split_url(&format!("{base}?{query}")).unwrap_err();
            assert_eq!(error.code(), "replay.invalid_configuration", "{query}");
            assert!(error.to_string().contains(expected), "{query}: {error}");
        }
    }

    #[test]
    fn root_bundles_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for path in [empty, dir.path().join("missing.pem")] {
            let error = refused_roots(&path);
            assert!(error.contains("sslrootcert"), "{error}");
        }
    }

    /// What a connector is refused with when `path` is its `sslrootcert` (always
    /// `replay.invalid_configuration`).
    fn refused_roots(path: &std::path::Path) -> String {
        let options = split_url(&format!(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert={}",
            path.display()
        ))
        .unwrap();
        let error = options.connector().err().unwrap();
        assert_eq!(error.code(), "replay.invalid_configuration", "{error}");
        error.to_string()
    }

    /// A root bundle is read bounded, as the server's own TLS files are: a file past 1 MiB
    /// (`/dev/zero` is not read without end), a named pipe (not waited on) and a directory are
    /// refused, and so are more than 1,000 certificates. (Linux: `/dev/zero`, and `mknodat`.)
    #[cfg(target_os = "linux")]
    #[test]
    fn root_bundles_are_read_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let large = dir.path().join("large.pem");
        let too_large = usize::try_from(MAX_ROOT_FILE_BYTES).unwrap() + 1;
        std::fs::write(&large, vec![b'-'; too_large]).unwrap();
        let fifo = dir.path().join("fifo.pem");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let many = dir.path().join("many.pem");
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(&many, one.repeat(MAX_ROOT_CERTIFICATES + 1)).unwrap();
        for (path, expected) in [
            (std::path::PathBuf::from("/dev/zero"), "not a regular file"),
            (large, "larger than 1048576 bytes"),
            (fifo, "not a regular file"),
            (dir.path().to_path_buf(), "not a regular file"),
            (many, "more than 1000 certificates"),
        ] {
            let error = refused_roots(&path);
            assert!(error.contains(expected), "{path:?}: {error}");
        }
    }
}
