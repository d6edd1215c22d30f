//! TLS with rustls (the `ring` provider, as everywhere in the workspace): the server certificate and key from PEM files, and optionally required client certificates from a CA file.

use std::path::Path;
use std::sync::Arc;

use parmana_runtime::canon::Timestamp;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use zeroize::Zeroizing;

use crate::error::ServerError;
use crate::settings::TlsFiles;

/// The TLS a server serves: the files it was read from, and the configuration every new
/// handshake takes (axum-server's, swapped whole by a reload; a connection keeps the one it
/// began with).
pub(crate) struct ServedTls {
    files: TlsFiles,
    config: axum_server::tls_rustls::RustlsConfig,
}

impl std::fmt::Debug for ServedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds the private key: only the files are shown.
        f.debug_struct("ServedTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServedTls {
    /// The TLS of `files`, configured as `config` (what [`server_config`] made of them).
    pub(crate) fn new(files: TlsFiles, config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            files,
            config: axum_server::tls_rustls::RustlsConfig::from_config(config),
        }
    }

    /// What the acceptor takes: shared with [`reload`](Self::reload), which swaps its inside.
    pub(crate) fn acceptor_config(&self) -> axum_server::tls_rustls::RustlsConfig {
        self.config.clone()
    }

    /// Reads the files again and puts them in force for the handshakes to come, as the start
    /// reads them (a certificate outside its validity at `now` refused): the end of the new
    /// certificate's validity. Refused files change nothing.
    pub(crate) fn reload(&self, now: Timestamp) -> Result<Timestamp, ServerError> {
        let (config, not_after) = server_config(&self.files, now)?;
        self.config.reload_from_config(config);
        Ok(not_after)
    }
}

/// The largest certificate, key or CA file read, in bytes: a chain or a bundle of CAs fits many
/// times over; a path to something endless (`/dev/zero`) is refused after one byte more.
pub(crate) const MAX_TLS_FILE_BYTES: u64 = 1 << 20;

/// The bytes of a PEM file, at most [`MAX_TLS_FILE_BYTES`].
fn read_pem(path: &Path) -> Result<Vec<u8>, ServerError> {
    let mut bytes = Vec::new();
    read_pem_opened(path, crate::access_files::open, &mut bytes)?;
    Ok(bytes)
}

/// The buffer [`read_private_pem`] reserves: the longest file read, the byte that tells it is
/// longer and room for `read_to_end`'s probe, so that it never grows (a grown buffer leaves the
/// old one, unscrubbed, to the allocator).
const PRIVATE_PEM_BUFFER_BYTES: usize = (1 << 20) + 64;
const _: () = assert!(PRIVATE_PEM_BUFFER_BYTES as u64 > MAX_TLS_FILE_BYTES + 1);

/// [`read_pem`] of the private key (refused where anyone may read it), into one buffer scrubbed
/// from memory when it is dropped. (The DER that rustls decodes from it, and the key it keeps,
/// are rustls' own: they are not scrubbed.)
fn read_private_pem(path: &Path) -> Result<Zeroizing<Vec<u8>>, ServerError> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(PRIVATE_PEM_BUFFER_BYTES));
    read_pem_opened(path, crate::access_files::open_private, &mut bytes)?;
    Ok(bytes)
}

/// Reads the PEM file `open` opens into `bytes`, at most [`MAX_TLS_FILE_BYTES`].
fn read_pem_opened(
    path: &Path,
    open: fn(&Path) -> Result<std::fs::File, String>,
    bytes: &mut Vec<u8>,
) -> Result<(), ServerError> {
    use std::io::Read as _;
    let invalid = |e: std::io::Error| ServerError::TlsInvalid(format!("{}: {e}", path.display()));
    open(path)
        .map_err(|e| ServerError::TlsInvalid(format!("{}: {e}", path.display())))?
        .take(MAX_TLS_FILE_BYTES + 1)
        .read_to_end(bytes)
        .map_err(invalid)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_TLS_FILE_BYTES {
        return Err(ServerError::TlsInvalid(format!(
            "{}: larger than {MAX_TLS_FILE_BYTES} bytes",
            path.display()
        )));
    }
    Ok(())
}

pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let pem = read_pem(path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::TlsInvalid(format!("{}: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(ServerError::TlsInvalid(format!(
            "{}: no certificate in the file",
            path.display()
        )));
    }
    Ok(certificates)
}

/// The rustls server configuration of `files`: HTTP/1.1 over TLS 1.2 or 1.3, client
/// certificates required when a client CA is named; and the end of the server certificate's
/// validity. A certificate outside its validity window at `now` is refused: every client would
/// refuse it, while `/readyz` sent traffic to the server.
pub(crate) fn server_config(
    files: &TlsFiles,
    now: Timestamp,
) -> Result<(Arc<rustls::ServerConfig>, Timestamp), ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.certificate)?;
    let leaf = chain.first().map_or(&[][..], |leaf| leaf.as_ref());
    let (not_before, not_after) = validity(leaf).ok_or_else(|| {
        ServerError::TlsInvalid(format!(
            "{}: the certificate's validity cannot be read",
            files.certificate.display()
        ))
    })?;
    if now < not_before || now >= not_after {
        return Err(ServerError::TlsInvalid(format!(
            "{}: the certificate is valid from {not_before} to {not_after}, not now ({now})",
            files.certificate.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(&read_private_pem(&files.key)?)
        .map_err(|e| ServerError::TlsInvalid(format!("{}: {e}", files.key.display())))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::TlsInvalid(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates(ca)? {
                roots
                    .add(certificate)
                    .map_err(|e| ServerError::TlsInvalid(format!("{}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ServerError::TlsInvalid(format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::TlsInvalid(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), not_after))
}

/// The validity window (`notBefore`, `notAfter`) of a DER certificate (RFC 5280 §4.1.2.5), every
/// step bounds-checked; `None` when the bytes are not a certificate laid out as RFC 5280 says.
pub(crate) fn validity(der: &[u8]) -> Option<(Timestamp, Timestamp)> {
    const SEQUENCE: u8 = 0x30;
    let expect = |bytes, tag| match element(bytes) {
        Some((found, value, rest)) if found == tag => Some((value, rest)),
        _ => None,
    };
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    // `version` is `[0] EXPLICIT`, absent for version 1.
    let fields = match element(tbs)? {
        (0xA0, _, rest) => rest,
        _ => tbs,
    };
    let (_serial, rest) = expect(fields, 0x02)?;
    let (_signature, rest) = expect(rest, SEQUENCE)?;
    let (_issuer, rest) = expect(rest, SEQUENCE)?;
    let (window, _) = expect(rest, SEQUENCE)?;
    let (before_tag, before, rest) = element(window)?;
    let (after_tag, after, _) = element(rest)?;
    Some((time(before_tag, before)?, time(after_tag, after)?))
}

/// One DER element: its tag, its contents and what follows it (single-byte tags; definite
/// lengths of at most four bytes, as a certificate's are).
fn element(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (length, rest) = rest.split_at_checked(count)?;
        let length = length
            .iter()
            .fold(0_usize, |length, byte| (length << 8) | usize::from(*byte));
        (length, rest)
    };
    let (contents, rest) = rest.split_at_checked(length)?;
    Some((tag, contents, rest))
}

/// A `Time` (RFC 5280 §4.1.2.5): `UTCTime` `YYMMDDHHMMSSZ` (years 1950–2049) or
/// `GeneralizedTime` `YYYYMMDDHHMMSSZ`.
fn time(tag: u8, contents: &[u8]) -> Option<Timestamp> {
    let digits = std::str::from_utf8(contents).ok()?.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match (tag, digits.len()) {
        (0x17, 12) => {
            let century = if digits.get(..2)? >= "50" { "19" } else { "20" };
            format!("{century}{digits}")
        }
        (0x18, 14) => digits.to_owned(),
        _ => return None,
    };
    let part = |range: std::ops::Range<usize>| full.get(range);
    Timestamp::parse(&format!(
        "{}-{}-{}T{}:{}:{}Z",
        part(0..4)?,
        part(4..6)?,
        part(6..8)?,
        part(8..10)?,
        part(10..12)?,
        part(12..14)?
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A DER element of `tag` around `contents` (short or long form length).
    fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match u8::try_from(contents.len()) {
            Ok(short) if short < 0x80 => out.push(short),
            _ => {
                let length = u32::try_from(contents.len()).unwrap().to_be_bytes();
                let skip = length.iter().take_while(|b| **b == 0).count();
                out.push(0x80 | u8::try_from(4 - skip).unwrap());
                out.extend(&length[skip..]);
            }
        }
        out.extend(contents);
        out
    }

    /// A certificate's outer layers around a validity window, with or without `version`, with
    /// an issuer long enough to need a long-form length.
    fn certificate(with_version: bool, before: (u8, &str), after: (u8, &str)) -> Vec<u8> {
        let mut tbs = Vec::new();
        if with_version {
            tbs.extend(der(0xA0, &der(0x02, &[2])));
        }
        tbs.extend(der(0x02, &[1]));
        tbs.extend(der(0x30, &der(0x06, &[1, 2, 3])));
        tbs.extend(der(0x30, &vec![b'n'; 300]));
        let mut window = der(before.0, before.1.as_bytes());
        window.extend(der(after.0, after.1.as_bytes()));
        tbs.extend(der(0x30, &window));
        tbs.extend(der(0x30, b"subject and the rest"));
        let mut whole = der(0x30, &tbs);
        whole.extend(der(0x30, b"signature algorithm"));
        der(0x30, &whole)
    }

    #[test]
    fn a_certificates_validity_is_read_in_both_time_forms() {
        let at = |text: &str| Timestamp::parse(text).unwrap();
        for with_version in [true, false] {
            let read = validity(&certificate(
                with_version,
                (0x17, "491231235959Z"),
                (0x18, "20991231235959Z"),
            ));
            assert_eq!(
                read,
                Some((at("2049-12-31T23:59:59Z"), at("2099-12-31T23:59:59Z")))
            );
            // UTCTime years from 50 are the 1900s (RFC 5280).
            let read = validity(&certificate(
                with_version,
                (0x17, "500101000000Z"),
                (0x17, "260101000000Z"),
            ));
            assert_eq!(
                read,
                Some((at("1950-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z")))
            );
        }
    }

    #[test]
    fn anything_else_is_no_validity() {
        let good = certificate(true, (0x17, "250101000000Z"), (0x17, "260101000000Z"));
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![0x30],
            vec![0x30, 0x85, 1, 2, 3, 4, 5],
            good[..good.len() / 2].to_vec(),
            certificate(true, (0x17, "2501010000Z"), (0x17, "260101000000Z")),
            certificate(true, (0x17, "250101000000"), (0x17, "260101000000Z")),
            certificate(true, (0x18, "250101000000Z"), (0x17, "260101000000Z")),
            certificate(true, (0x17, "25010100000xZ"), (0x17, "260101000000Z")),
            certificate(true, (0x17, "251301000000Z"), (0x17, "260101000000Z")),
            certificate(true, (0x04, "250101000000Z"), (0x17, "260101000000Z")),
        ];
        for (n, bytes) in cases.iter().enumerate() {
            assert_eq!(validity(bytes), None, "case {n}");
        }
        assert!(validity(&good).is_some());
    }

    /// The private key's file is read into the one buffer reserved for it (scrubbed when
    /// dropped), which never grows: its capacity is the reserved one also at the longest file.
    #[test]
    fn the_private_key_is_read_without_reallocating() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let longest = usize::try_from(MAX_TLS_FILE_BYTES).unwrap();
        for length in [100, longest] {
            std::fs::write(&path, vec![b'\n'; length]).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let read = read_private_pem(&path).unwrap();
            assert_eq!(read.len(), length);
            assert_eq!(read.capacity(), PRIVATE_PEM_BUFFER_BYTES, "{length}");
        }
        std::fs::write(&path, vec![b'\n'; longest + 1]).unwrap();
        assert!(matches!(
            read_private_pem(&path),
            Err(ServerError::TlsInvalid(_))
        ));
    }

    #[test]
    fn a_pem_file_past_its_limit_is_refused_after_one_byte_more() {
        let dir = tempfile::tempdir().unwrap();
        let huge = dir.path().join("huge.pem");
        // A hole: it takes no disk, and reading it all would take a gigabyte of memory.
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        let Err(ServerError::TlsInvalid(message)) = certificates(&huge) else {
            panic!("a gigabyte certificate file was read");
        };
        assert!(message.ends_with("larger than 1048576 bytes"), "{message}");
        let at_limit = dir.path().join("at-limit.pem");
        std::fs::File::create(&at_limit)
            .unwrap()
            .set_len(MAX_TLS_FILE_BYTES)
            .unwrap();
        assert_eq!(read_pem(&at_limit).unwrap().len(), 1 << 20);
        let Err(ServerError::TlsInvalid(message)) = certificates(&at_limit) else {
            panic!("zeros are no certificate");
        };
        assert!(message.ends_with("no certificate in the file"), "{message}");
    }

    /// A TLS file anyone may write is not read: whoever wrote a CA into it could present a
    /// client certificate the server accepts (`access_files`).
    #[cfg(unix)]
    #[test]
    fn a_tls_file_anyone_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("clients-ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o666)).unwrap();
        let Err(ServerError::TlsInvalid(message)) = read_pem(&ca) else {
            panic!("a world-writable CA file was read");
        };
        assert!(message.contains("anyone may write it"), "{message}");
    }
}
