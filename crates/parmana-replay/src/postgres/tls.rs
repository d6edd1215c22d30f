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

fn load_roots(path: &PathBuf) -> Result<RootCertStore, ReplayError> {
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(format!("sslrootcert {shown}: {e}")))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|e| invalid(format!("sslrootcert {shown}: {e}")))?;
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
            let options = split_url(&format!(
                "postgres://u@h/db?sslmode=verify-full&sslrootcert={}",
                path.display()
            ))
            .unwrap();
            let error = options.connector().err().unwrap();
            assert_eq!(error.code(), "replay.invalid_configuration", "{error}");
            assert!(error.to_string().contains("sslrootcert"), "{error}");
        }
    }
}
