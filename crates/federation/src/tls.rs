//! Certificates for gRPC mutual TLS: a CA, server certificates for agency
//! nodes and client certificates for back-office systems (`waymark keys
//! tls`, the TLS tests).
//!
//! Keys are ECDSA P-256 (rcgen with ring, like rustls here). A CA
//! certificate may only sign certificates (path length 0); a server
//! certificate carries its DNS names / IP addresses and the server-auth
//! purpose only; a client certificate carries its name as common name and
//! the client-auth purpose only, so neither can stand in for the other.
//! Private keys are written once, mode 0600, never overwritten.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Making or writing a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsGenError {
    /// rcgen refused the parameters or the CA files.
    #[error("generating the certificate ({step})")]
    Generate {
        /// What was being done.
        step: &'static str,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// A file could not be read or written (an existing one is never
    /// overwritten).
    #[error("{file}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// The certificate.
    pub cert: String,
    /// The private key (secret).
    pub key: String,
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn failed(step: &'static str) -> impl FnOnce(rcgen::Error) -> TlsGenError {
    move |source| TlsGenError::Generate { step, source }
}

fn params(
    sans: Vec<String>,
    common_name: &str,
    days: u64,
) -> Result<CertificateParams, TlsGenError> {
    let mut p = CertificateParams::new(sans).map_err(failed("subject names"))?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    let now = SystemTime::now();
    p.not_before = OffsetDateTime::from(now - DAY);
    p.not_after = OffsetDateTime::from(now + DAY * u32::try_from(days).unwrap_or(u32::MAX));
    Ok(p)
}

/// A new self-signed CA named `name`, valid for `days`.
///
/// # Errors
/// [`TlsGenError::Generate`].
pub fn new_ca(name: &str, days: u64) -> Result<CertPair, TlsGenError> {
    let mut p = params(Vec::new(), name, days)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().map_err(failed("CA key"))?;
    let cert = p.self_signed(&key).map_err(failed("self-signing the CA"))?;
    Ok(CertPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn issue(
    ca: &CertPair,
    mut p: CertificateParams,
    purpose: ExtendedKeyUsagePurpose,
) -> Result<CertPair, TlsGenError> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(failed("reading the CA key"))?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert, ca_key).map_err(failed("reading the CA certificate"))?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![purpose];
    p.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(failed("key"))?;
    let cert = p.signed_by(&key, &issuer).map_err(failed("signing"))?;
    Ok(CertPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A server certificate for `names` (DNS names or IP addresses; the first
/// is also the common name), signed by `ca`, valid for `days`.
///
/// # Errors
/// [`TlsGenError::Generate`] (an invalid name, an unusable CA).
pub fn issue_server(ca: &CertPair, names: &[String], days: u64) -> Result<CertPair, TlsGenError> {
    let cn = names.first().map_or("waymark", String::as_str);
    let p = params(names.to_vec(), cn, days)?;
    issue(ca, p, ExtendedKeyUsagePurpose::ServerAuth)
}

/// A client certificate for the back-office system `name`, signed by `ca`,
/// valid for `days`.
///
/// # Errors
/// [`TlsGenError::Generate`].
pub fn issue_client(ca: &CertPair, name: &str, days: u64) -> Result<CertPair, TlsGenError> {
    let p = params(Vec::new(), name, days)?;
    issue(ca, p, ExtendedKeyUsagePurpose::ClientAuth)
}

/// Reads `<dir>/<stem>.crt` and `<dir>/<stem>.key`.
///
/// # Errors
/// [`TlsGenError::Io`].
pub fn read_pair(dir: &Path, stem: &str) -> Result<CertPair, TlsGenError> {
    let read = |file: PathBuf| {
        std::fs::read_to_string(&file).map_err(|source| TlsGenError::Io { file, source })
    };
    Ok(CertPair {
        cert: read(dir.join(format!("{stem}.crt")))?,
        key: read(dir.join(format!("{stem}.key")))?,
    })
}

/// Writes `<dir>/<stem>.crt` (0644) and `<dir>/<stem>.key` (0600); neither
/// may exist. Returns both paths.
///
/// # Errors
/// [`TlsGenError::Io`], also when a file already exists.
pub fn write_pair(
    dir: &Path,
    stem: &str,
    pair: &CertPair,
) -> Result<(PathBuf, PathBuf), TlsGenError> {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::create_dir_all(dir).map_err(|source| TlsGenError::Io {
        file: dir.to_owned(),
        source,
    })?;
    for (file, text, mode) in [(&key, &pair.key, 0o600), (&cert, &pair.cert, 0o644)] {
        let io = |source| TlsGenError::Io {
            file: file.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(file)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    Ok((cert, key))
}

/// The certificate files of a local federation serving gRPC over TLS.
#[derive(Debug, Clone)]
pub struct LocalTls {
    /// The CA (also the client CA of every agency).
    pub ca_cert: PathBuf,
    /// The agencies' server certificate (`localhost`, `127.0.0.1`).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// The launcher's own client certificate (health checks, the demo).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

/// Name of the launcher's client certificate.
pub const LAUNCHER_CLIENT: &str = "waymark-launcher";

/// The certificates of a local federation in `dir`, made on first use: a CA
/// (`ca.*`), one server certificate for `localhost` / `127.0.0.1` that every
/// agency on this machine serves (`server.*`), and the launcher's client
/// certificate (`waymark-launcher.*`). Back-office clients get their own
/// with `waymark keys tls client --ca DIR`.
///
/// # Errors
/// [`TlsGenError`].
pub fn ensure_local(dir: &Path) -> Result<LocalTls, TlsGenError> {
    let exists = |stem: &str| dir.join(format!("{stem}.crt")).exists();
    if !exists("ca") {
        write_pair(dir, "ca", &new_ca("Waymark local federation CA", 3650)?)?;
    }
    let ca = read_pair(dir, "ca")?;
    if !exists("server") {
        let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        write_pair(dir, "server", &issue_server(&ca, &names, 3650)?)?;
    }
    if !exists(LAUNCHER_CLIENT) {
        write_pair(
            dir,
            LAUNCHER_CLIENT,
            &issue_client(&ca, LAUNCHER_CLIENT, 3650)?,
        )?;
    }
    let file = |stem: &str, ext: &str| dir.join(format!("{stem}.{ext}"));
    Ok(LocalTls {
        ca_cert: file("ca", "crt"),
        server_cert: file("server", "crt"),
        server_key: file("server", "key"),
        client_cert: file(LAUNCHER_CLIENT, "crt"),
        client_key: file(LAUNCHER_CLIENT, "key"),
    })
}

/// A lazily connected channel to `addr`, over TLS with the launcher's
/// client certificate when `tls` is set.
///
/// # Errors
/// An unreadable certificate file or unusable TLS settings.
pub fn launcher_channel(addr: SocketAddr, tls: Option<&LocalTls>) -> anyhow::Result<Channel> {
    let Some(t) = tls else {
        return Ok(Channel::from_shared(format!("http://{addr}"))?.connect_lazy());
    };
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let cfg = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&t.ca_cert)?))
        .identity(Identity::from_pem(
            read(&t.client_cert)?,
            read(&t.client_key)?,
        ))
        .domain_name("localhost");
    Ok(Channel::from_shared(format!("https://{addr}"))?
        .tls_config(cfg)?
        .connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_is_made_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let ca = new_ca("Test CA", 30).unwrap();
        let server = issue_server(&ca, &["localhost".into(), "127.0.0.1".into()], 30).unwrap();
        let client = issue_client(&ca, "backoffice", 30).unwrap();
        assert!(server.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(server.cert, client.cert);
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_pair(dir.path(), "server", &server).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            write_pair(dir.path(), "server", &server).is_err(),
            "overwrote"
        );
        assert_eq!(read_pair(dir.path(), "server").unwrap().cert, server.cert);
    }
}
