//! TLS for listeners with `ssl: on`: the server certificate and key, the CAs
//! client certificates are checked against, and the client's identity.
//!
//! Everything is read and checked once, when the broker is built, so that a
//! missing file, a key that does not belong to its certificate or a broken
//! CA file is one clear error naming the listener and the file (and
//! `moth --check` reports it) instead of a failure at the first client.
//!
//! rustls is used with the ring provider, passed explicitly
//! (`builder_with_provider`): a process-wide default provider would be
//! ambiguous as soon as a dependency enables another one.

use std::path::{Path, PathBuf};

use crate::config::file_path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::transport::cert_identity;

/// Why a listener's TLS material cannot be used. Each message names the
/// listener and, when there is one, the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file or directory could not be read.
    #[error("listener `{listener}`: cannot read {what} {}: {reason}", file_path(path))]
    Read {
        /// The listener's name in the configuration.
        listener: String,
        /// The setting that names it: `certfile`, `keyfile`, `cafile`, `capath`, ...
        what: &'static str,
        /// The file or directory, as configured.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// A file was read but holds no usable certificate or key.
    #[error("listener `{listener}`: {what} {}: {reason}", file_path(path))]
    Content {
        /// The listener's name in the configuration.
        listener: String,
        /// The setting that names it: `certfile`, `keyfile`, `cafile`, `capath file`, ...
        what: &'static str,
        /// The file, as configured (or found in `capath`).
        path: PathBuf,
        /// What is wrong with its content.
        reason: String,
    },
    /// `keyfile` holds a key that does not belong to `certfile`'s certificate.
    #[error("listener `{listener}`: the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The listener's name in the configuration.
        listener: String,
        /// The `keyfile`.
        key: PathBuf,
        /// The `certfile`.
        cert: PathBuf,
    },
    /// The inline `cadata` holds no usable CA certificate.
    #[error("listener `{listener}`: cadata: {reason}")]
    CaData {
        /// The listener's name in the configuration.
        listener: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The settings do not make a TLS server (`ssl: on` without `certfile`, say).
    #[error("listener `{listener}`: cannot set up TLS: {reason}")]
    Setup {
        /// The listener's name in the configuration.
        listener: String,
        /// What is missing or refused.
        reason: String,
    },
}

/// The one crypto provider of the broker.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the acceptor of a listener from its `ssl` settings: TLS 1.2 and
/// 1.3, the certificate chain of `certfile` with the key of `keyfile`, and
/// client certificates checked against `cafile`/`capath`/`cadata` when
/// one of them is given (optional unless `require_certificate`).
pub(crate) fn acceptor(listener: &str, config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let (Some(certfile), Some(keyfile)) = (&config.certfile, &config.keyfile) else {
        return Err(TlsError::Setup {
            listener: listener.to_owned(),
            reason: "`certfile` and `keyfile` are required with `ssl: on`".into(),
        });
    };
    let certs = read_certs(listener, "certfile", certfile)?;
    let key = read_key(listener, keyfile)?;
    let provider = provider();
    let setup = |reason: String| TlsError::Setup { listener: listener.to_owned(), reason };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| setup(e.to_string()))?;
    let builder = match client_roots(listener, config)? {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if config.require_certificate { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| setup(e.to_string()))?)
        }
    };
    let server = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            TlsError::KeyMismatch { listener: listener.to_owned(), key: keyfile.clone(), cert: certfile.clone() }
        }
        other => TlsError::Content {
            listener: listener.to_owned(),
            what: "certfile",
            path: certfile.clone(),
            reason: other.to_string(),
        },
    })?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// The verified client certificate (DER), for plugins that want more than the CN.
pub(crate) fn client_certificate(connection: &rustls::ServerConnection) -> Option<Arc<[u8]>> {
    connection.peer_certificates()?.first().map(|c| Arc::from(c.as_ref()))
}

/// The identity a verified client certificate gives: its subject CN.
pub(crate) fn client_identity(connection: &rustls::ServerConnection) -> Option<String> {
    let cert = connection.peer_certificates()?.first()?;
    cert_identity::subject_common_name(cert.as_ref())
}

fn read_file(listener: &str, what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        listener: listener.to_owned(),
        what,
        path: path.to_owned(),
        reason: io_reason(&e),
    })
}

fn read_certs(listener: &str, what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(listener, what, path)?;
    let content =
        |reason: String| TlsError::Content { listener: listener.to_owned(), what, path: path.to_owned(), reason };
    let certs = parse_certs(&bytes).map_err(content)?;
    if certs.is_empty() {
        return Err(content("no PEM certificate (`-----BEGIN CERTIFICATE-----`) found".into()));
    }
    Ok(certs)
}

fn parse_certs(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>().map_err(|e| pem_reason(&e))
}

fn read_key(listener: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(listener, "keyfile", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Content {
        listener: listener.to_owned(),
        what: "keyfile",
        path: path.to_owned(),
        reason: match e {
            pem::Error::NoItemsFound => "no PEM private key (PKCS#8, PKCS#1 or SEC1) found".into(),
            other => pem_reason(&other),
        },
    })
}

/// The CAs for client certificates, `None` when none is configured.
fn client_roots(listener: &str, config: &TlsConfig) -> Result<Option<RootCertStore>, TlsError> {
    if config.cafile.is_none() && config.capath.is_none() && config.cadata.is_none() {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    let mut add = |certs: Vec<CertificateDer<'static>>, what: &'static str, path: &Path| {
        for cert in certs {
            roots.add(cert).map_err(|e| TlsError::Content {
                listener: listener.to_owned(),
                what,
                path: path.to_owned(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        Ok::<(), TlsError>(())
    };
    if let Some(cafile) = &config.cafile {
        add(read_certs(listener, "cafile", cafile)?, "cafile", cafile)?;
    }
    // hbmqtt's documented example names a capath that does not exist beside
    // a cafile, and hbmqtt starts: with another CA source, a missing capath
    // is a warning. As the only one, it stays an error: a listener that
    // checks client certificates must have something to check them against.
    let other_ca = config.cafile.is_some() || config.cadata.is_some();
    let capath = config.capath.as_ref().filter(|p| {
        let missing = other_ca && !p.exists();
        if missing {
            tracing::warn!(listener, capath = %crate::config::file_path(p),
                "capath does not exist; the other CA settings (cafile, cadata) are used");
        }
        !missing
    });
    if let Some(capath) = capath {
        let entries = std::fs::read_dir(capath).map_err(|e| TlsError::Read {
            listener: listener.to_owned(),
            what: "capath",
            path: capath.clone(),
            reason: io_reason(&e),
        })?;
        let mut files: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        files.sort();
        let mut found = 0;
        for file in files {
            // OpenSSL-style CA directories hold other files too; only
            // certificates count, but a broken certificate is an error.
            let bytes = read_file(listener, "capath file", &file)?;
            let certs = parse_certs(&bytes).map_err(|reason| TlsError::Content {
                listener: listener.to_owned(),
                what: "capath file",
                path: file.clone(),
                reason,
            })?;
            found += certs.len();
            add(certs, "capath file", &file)?;
        }
        if found == 0 {
            return Err(TlsError::Content {
                listener: listener.to_owned(),
                what: "capath",
                path: capath.clone(),
                reason: "no PEM certificate found in this directory".into(),
            });
        }
    }
    if let Some(cadata) = &config.cadata {
        let caerr = |reason: String| TlsError::CaData { listener: listener.to_owned(), reason };
        let certs = parse_certs(cadata.as_bytes()).map_err(caerr)?;
        if certs.is_empty() {
            return Err(caerr("no PEM certificate found".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| caerr(format!("not a usable CA certificate: {e}")))?;
        }
    }
    Ok(Some(roots))
}

fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "malformed PEM: a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "malformed PEM: bad BEGIN line".into(),
        pem::Error::Base64Decode(why) => format!("malformed PEM: bad base64 ({why})"),
        other => format!("malformed PEM: {other:?}"),
    }
}

/// The text of an I/O error without Rust's ` (os error N)` suffix.
fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}
