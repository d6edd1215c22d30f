//! TLS with rustls (the `ring` provider, as everywhere in the workspace): the server certificate and key from PEM files, and optionally required client certificates from a CA file.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::error::ServerError;
use crate::settings::TlsFiles;

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
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
/// certificates required when a client CA is named.
pub(crate) fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
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
    Ok(Arc::new(config))
}
