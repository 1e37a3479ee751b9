//! Admission control for the gRPC server: at most `grpc.max_concurrent_requests`
//! application requests run at once; one more is refused at once with
//! `RESOURCE_EXHAUSTED` (never queued, so a flood cannot build an unbounded
//! backlog or hold callers past their deadlines). Health checks bypass the
//! limit: an orchestrator asking "are you alive?" during a flood must hear
//! "yes, serving" rather than be shed and restart a healthy, merely busy
//! agency.
//!
//! The permit is held until the handler's response future completes (for a
//! server stream: until the stream is opened), like tower's concurrency
//! limit it replaces.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tonic::body::Body;

/// Path prefix of the standard health service, which is never shed.
const HEALTH: &str = "/grpc.health.v1.Health/";

/// The [`tower::Layer`] of [`Admission`].
#[derive(Debug, Clone)]
pub(crate) struct AdmissionLayer {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl AdmissionLayer {
    /// Admits at most `limit` application requests at once.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            permits: self.permits.clone(),
            limit: self.limit,
        }
    }
}

/// Admission control around the router; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    permits: Arc<Semaphore>,
    limit: usize,
}

type Boxed<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Admission<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
{
    type Response = http::Response<Body>;
    type Error = tower::BoxError;
    type Future = Boxed<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path().starts_with(HEALTH) {
            let answer = self.inner.call(req);
            return Box::pin(async move { answer.await.map_err(Into::into) });
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let answer = self.inner.call(req);
                Box::pin(async move {
                    let r = answer.await;
                    drop(permit);
                    r.map_err(Into::into)
                })
            }
            Err(_) => {
                metrics::counter!("waymark_grpc_shed_total").increment(1);
                let status = tonic::Status::resource_exhausted(format!(
                    "the agency is handling its limit of {} concurrent requests \
                     (grpc.max_concurrent_requests); retry with backoff",
                    self.limit
                ));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
