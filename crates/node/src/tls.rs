//! gRPC transport security: TLS (rustls, TLS 1.3 and 1.2) with a client
//! certificate **required** when `grpc.tls_*` are set.
//!
//! Invariants:
//! - All three files or none (the config schema refuses anything else), so a
//!   node never serves TLS without checking clients: a back-office system
//!   proves who it is with a certificate issued by `grpc.tls_client_ca_file`,
//!   and the handshake fails for a client with no certificate or one from
//!   another CA, before any gRPC byte is read.
//! - With TLS on, the listener speaks only TLS: a plaintext client fails.
//! - Files are read once at start; a bad file stops the node before it binds.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::GrpcConfig;

/// Setting up gRPC TLS failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("reading {file} for gRPC TLS failed")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate, key or client CA was refused (not PEM, a key that
    /// does not match the certificate, ...).
    #[error("the gRPC TLS certificate, key or client CA is unusable")]
    Config(#[source] tonic::transport::Error),
}

/// The server's TLS settings, or `None` for plaintext (no `grpc.tls_*` set).
///
/// # Errors
/// [`TlsError::Read`] for an unreadable file.
pub fn server_tls(grpc: &GrpcConfig) -> Result<Option<ServerTlsConfig>, TlsError> {
    let (Some(cert), Some(key), Some(ca)) = (
        &grpc.tls_cert_file,
        &grpc.tls_key_file,
        &grpc.tls_client_ca_file,
    ) else {
        return Ok(None);
    };
    let identity = Identity::from_pem(read(cert)?, read(key)?);
    // A client CA root makes tonic require a client certificate (it is
    // optional only with `client_auth_optional(true)`, never set here).
    Ok(Some(
        ServerTlsConfig::new()
            .identity(identity)
            .client_ca_root(Certificate::from_pem(read(ca)?)),
    ))
}

fn read(file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read {
        file: file.to_owned(),
        source,
    })
}
