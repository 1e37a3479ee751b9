//! Connecting to an agency, and the one place every call goes through:
//! idempotency key, per-attempt timeout, retries.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

use crate::{Error, RetryPolicy};

/// Files for TLS to the agency: the CA that signed its certificate and,
/// for mutual TLS, this back office's certificate and key (all PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) the agency's certificate must chain to.
    pub ca_file: PathBuf,
    /// This client's certificate chain, for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// This client's private key, for mutual TLS.
    pub client_key_file: Option<PathBuf>,
    /// The name to check the agency's certificate against, when it is not
    /// the host in the URL.
    pub domain: Option<String>,
}

/// How to connect and call.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Longest wait to establish a connection.
    pub connect_timeout: Duration,
    /// Longest wait for one attempt of a unary call (streams are not
    /// limited; a dead connection under a stream is found by keep-alive).
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive ping interval; the connection is dropped when a
    /// ping is not answered within the same time.
    pub keep_alive: Duration,
    /// TLS, or `None` for plaintext (e.g. `waymark up` on one machine).
    pub tls: Option<TlsFiles>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(20),
            tls: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// Connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address is not a valid URI.
    #[error("invalid agency address {address:?}")]
    Address {
        /// As given.
        address: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// A TLS file could not be read.
    #[error("reading the TLS {what} file {}", path.display())]
    TlsFile {
        /// Which file (CA, certificate, key).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A client certificate without its key, or the other way round.
    #[error("mutual TLS needs both a client certificate and its key")]
    TlsIncomplete,
    /// The TLS configuration was refused.
    #[error("configuring TLS")]
    Tls(#[source] tonic::transport::Error),
    /// The agency could not be reached.
    #[error("connecting to {address}")]
    Connect {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Requests that record something: they carry an idempotency key.
pub trait Idempotent {
    /// The key as set (empty when not).
    fn idempotency_key(&self) -> &str;
    /// Sets the key.
    fn set_idempotency_key(&mut self, key: String);
}

/// A fresh idempotency key for one business action (a UUIDv4).
pub fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[derive(Debug)]
struct Settings {
    request_timeout: Duration,
    retry: RetryPolicy,
}

/// A connection to one agency's gRPC API. Cheap to clone; clones share the
/// connection.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    settings: Arc<Settings>,
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|source| ConnectError::TlsFile {
        what,
        path: path.to_owned(),
        source,
    })
}

fn endpoint(address: &str, opts: &ConnectOptions) -> Result<Endpoint, ConnectError> {
    let url = if address.contains("://") {
        address.to_owned()
    } else if opts.tls.is_some() {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    };
    let bad = |source| ConnectError::Address {
        address: address.to_owned(),
        source,
    };
    let mut e = Endpoint::from_shared(url)
        .map_err(bad)?
        .connect_timeout(opts.connect_timeout)
        .http2_keep_alive_interval(opts.keep_alive)
        .keep_alive_timeout(opts.keep_alive)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if let Some(tls) = &opts.tls {
        let mut cfg = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read_file("CA", &tls.ca_file)?));
        match (&tls.client_cert_file, &tls.client_key_file) {
            (Some(cert), Some(key)) => {
                cfg = cfg.identity(Identity::from_pem(
                    read_file("client certificate", cert)?,
                    read_file("client key", key)?,
                ));
            }
            (None, None) => {}
            _ => return Err(ConnectError::TlsIncomplete),
        }
        if let Some(d) = &tls.domain {
            cfg = cfg.domain_name(d.clone());
        }
        e = e.tls_config(cfg).map_err(ConnectError::Tls)?;
    }
    Ok(e)
}

impl Client {
    /// Connects to the agency at `address` (`http://host:port`,
    /// `https://host:port`, or `host:port`, plaintext unless `opts.tls`),
    /// waiting for the connection.
    ///
    /// # Errors
    /// A bad address or TLS file, or the agency not reachable within
    /// `opts.connect_timeout`.
    pub async fn connect(address: &str, opts: ConnectOptions) -> Result<Self, ConnectError> {
        let e = endpoint(address, &opts)?;
        let channel = e.connect().await.map_err(|source| ConnectError::Connect {
            address: address.to_owned(),
            source,
        })?;
        Ok(Self::with_channel(channel, &opts))
    }

    /// Like [`Client::connect`] without waiting: the connection is made on
    /// the first call (and remade after failures), so this succeeds while
    /// the agency is still down.
    ///
    /// # Errors
    /// A bad address or TLS file.
    pub fn connect_lazy(address: &str, opts: ConnectOptions) -> Result<Self, ConnectError> {
        let e = endpoint(address, &opts)?;
        Ok(Self::with_channel(e.connect_lazy(), &opts))
    }

    /// Over an existing channel.
    pub fn with_channel(channel: Channel, opts: &ConnectOptions) -> Self {
        Self {
            channel,
            settings: Arc::new(Settings {
                request_timeout: opts.request_timeout,
                retry: opts.retry.clone(),
            }),
        }
    }

    /// The underlying channel, for generated clients of any service.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.settings.retry
    }

    /// Calls a read-only RPC: `call(channel, request)` per attempt, each
    /// limited to the request timeout, retried on transient failures.
    ///
    /// ```no_run
    /// # async fn f(client: waymark_client::Client) -> Result<(), waymark_client::Error> {
    /// use waymark_proto::waymark::shelter::v1 as shelter;
    /// use shelter::shelter_service_client::ShelterServiceClient;
    /// let capacity = client
    ///     .read(shelter::GetCapacityRequest::default(), |ch, r| async move {
    ///         ShelterServiceClient::new(ch).get_capacity(r).await
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The decoded [`Error`] of the last attempt.
    pub async fn read<Req, Resp, F, Fut>(&self, request: Req, mut call: F) -> Result<Resp, Error>
    where
        Req: Clone,
        F: FnMut(Channel, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let policy = &self.settings.retry;
        let mut attempt = 1;
        loop {
            let fut = call(self.channel.clone(), request.clone());
            let result = match tokio::time::timeout(self.settings.request_timeout, fut).await {
                Ok(Ok(r)) => return Ok(r.into_inner()),
                Ok(Err(status)) => Error::from_status(&status),
                Err(_) => Error::Other {
                    code: Code::DeadlineExceeded,
                    message: format!("no answer within {:?}", self.settings.request_timeout),
                },
            };
            if !policy.should_retry(attempt, &result) {
                return Err(result);
            }
            let pause = policy.backoff(attempt, Some(&result));
            tracing::warn!(attempt, error = %result, ?pause, "transient failure; retrying");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// Calls a recording RPC like [`Client::read`], after giving the request
    /// an idempotency key if it has none (a fresh one per call: one call is
    /// one business action). Every attempt carries the same key, so the
    /// agency records the action once; the answer to a replayed attempt has
    /// `recorded.replayed = true`.
    ///
    /// To stay idempotent across restarts of your own process, set the key
    /// yourself from something stable (your record id and the action).
    ///
    /// # Errors
    /// The decoded [`Error`] of the last attempt.
    pub async fn write<Req, Resp, F, Fut>(&self, mut request: Req, call: F) -> Result<Resp, Error>
    where
        Req: Clone + Idempotent,
        F: FnMut(Channel, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        if request.idempotency_key().is_empty() {
            request.set_idempotency_key(new_key());
        }
        self.read(request, call).await
    }
}
