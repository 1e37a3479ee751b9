//! [`run`]: start an agency node's gRPC server in-process, and [`RunningNode`]
//! to observe and stop it. Service `main`s and tests call the same `run`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::admission::AdmissionLayer;
use crate::config::NodeConfig;
use crate::server::{MaxRequestSize, Services, trace_layer};
use crate::shutdown::{Shutdown, ShutdownError};

/// Starting or running the node failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Building the reflection service from the descriptor sets failed.
    #[error("building the gRPC reflection service failed")]
    Reflection(#[source] tonic_reflection::server::Error),
    /// Binding the gRPC listener failed.
    #[error("binding the gRPC listener on {addr} failed")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC TLS settings are unusable.
    #[error("setting up gRPC TLS failed")]
    Tls(#[source] crate::tls::TlsError),
    /// The gRPC server stopped with an error.
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
    /// The shutdown protocol reported a failure (a failed task or hook, or
    /// work abandoned when the grace period ran out).
    #[error("shutting down the node reported a failure")]
    Shutdown(#[source] ShutdownError),
}

/// A started node: the gRPC server is bound and serving.
#[derive(Debug)]
pub struct RunningNode {
    local_addr: SocketAddr,
    health: HealthReporter,
    shutdown: Shutdown,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    config: Arc<NodeConfig>,
}

/// Starts the node's gRPC server: binds `config.grpc.listen`, serves
/// `services` plus health and reflection, and begins the drain when
/// `shutdown` is triggered. Returns once the listener is bound, so
/// [`RunningNode::local_addr`] is the real port even for port 0.
///
/// Call [`RunningNode::wait`] to complete the shutdown protocol.
///
/// # Errors
/// [`RunError::Reflection`] or [`RunError::Bind`]; nothing is left running.
pub async fn run(
    config: &NodeConfig,
    services: Services,
    shutdown: Shutdown,
) -> Result<RunningNode, RunError> {
    let grpc = &config.grpc;
    let (health, health_server) = tonic_health::server::health_reporter();
    let reflection = reflection(services.names())?;
    let names: Vec<&'static str> = services.names().to_vec();
    let listed = names.clone();
    for name in names.iter().copied().chain([""]) {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }

    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(health_server.with_max_request_bytes(grpc.max_request_bytes));
    routes.add_service(reflection.with_max_request_bytes(grpc.max_request_bytes));
    services.install(&mut routes, grpc.max_request_bytes);

    // TLS files are read and checked before the port is bound.
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = crate::tls::server_tls(grpc).map_err(RunError::Tls)? {
        builder = builder
            .tls_config(tls)
            .map_err(|e| RunError::Tls(crate::tls::TlsError::Config(e)))?;
    }
    let listener = tokio::net::TcpListener::bind(grpc.listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: grpc.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| RunError::Bind {
        addr: grpc.listen,
        source,
    })?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    let layers = tower::ServiceBuilder::new()
        .layer(trace_layer())
        .layer(crate::rpc_metrics::RpcMetricsLayer)
        .layer(AdmissionLayer::new(grpc.max_concurrent_requests));
    let router = builder
        .timeout(grpc.request_timeout)
        .layer(layers)
        .add_routes(routes.routes());

    let drain = {
        let (token, health, delay) = (
            shutdown.token().clone(),
            health.clone(),
            config.shutdown.drain_delay,
        );
        async move {
            token.cancelled().await;
            for name in names.iter().copied().chain([""]) {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            tracing::info!(
                drain_delay_ms = delay.as_millis(),
                "health NOT_SERVING; draining"
            );
            tokio::time::sleep(delay).await;
            tracing::info!("listener closed; waiting for in-flight requests");
        }
    };
    let span = tracing::info_span!("grpc_server", %local_addr);
    let server = tokio::spawn(tracing::Instrument::instrument(
        router.serve_with_incoming_shutdown(incoming, drain),
        span,
    ));
    tracing::info!(%local_addr, services = ?listed, "gRPC server listening");
    Ok(RunningNode {
        local_addr,
        health,
        shutdown,
        server,
        config: Arc::new(config.clone()),
    })
}

fn reflection(
    names: &[&'static str],
) -> Result<
    tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer<
        impl tonic_reflection::pb::v1::server_reflection_server::ServerReflection,
    >,
    RunError,
> {
    use tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer as R;
    type HealthSrv =
        tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>;
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(waymark_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(<HealthSrv as NamedService>::NAME)
        .with_service_name(<R<()> as NamedService>::NAME);
    for name in names {
        builder = builder.with_service_name(*name);
    }
    builder.build_v1().map_err(RunError::Reflection)
}

impl RunningNode {
    /// The address the server actually listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The health reporter, for services that want to report their own
    /// status (for example NOT_SERVING while NATS is unreachable).
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// The node's shutdown handle.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Triggers shutdown and completes the protocol; see [`RunningNode::wait`].
    ///
    /// # Errors
    /// As [`RunningNode::wait`].
    pub async fn stop(self) -> Result<(), RunError> {
        self.shutdown.trigger();
        self.wait().await
    }

    /// Waits for shutdown to be triggered (by a signal, [`Shutdown::trigger`]
    /// or a failed task), then completes the protocol: drain delay, drain of
    /// in-flight requests, hooks, tracked tasks, all within
    /// `shutdown.grace_period_ms` after the drain delay.
    ///
    /// # Errors
    /// [`RunError::Serve`] if the server failed, else
    /// [`RunError::Shutdown`] for a failed task or hook or abandoned work.
    pub async fn wait(self) -> Result<(), RunError> {
        let Self {
            shutdown,
            mut server,
            config,
            ..
        } = self;
        let cfg = &config.shutdown;
        let early = tokio::select! {
            () = shutdown.triggered() => None,
            r = &mut server => Some(r),
        };
        let deadline = Instant::now() + cfg.drain_delay + cfg.grace_period;
        let served = match early {
            Some(r) => Some(r),
            None => tokio::time::timeout_at(deadline, &mut server).await.ok(),
        };
        let mut abandoned = Vec::new();
        let serve_error = match served {
            Some(Ok(Ok(()))) => None,
            Some(Ok(Err(e))) => Some(RunError::Serve(e)),
            Some(Err(join)) => {
                tracing::error!(error = %join, "gRPC server task ended abnormally");
                None
            }
            None => {
                server.abort();
                abandoned.push("in-flight gRPC requests".to_owned());
                None
            }
        };
        let finished = shutdown.finish(deadline, cfg.grace_period, abandoned).await;
        if let Some(e) = serve_error {
            return Err(e);
        }
        finished.map_err(RunError::Shutdown)?;
        tracing::info!("node stopped");
        Ok(())
    }
}
