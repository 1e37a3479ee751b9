//! Per-method gRPC metrics, a tower layer next to the `rpc` tracing span:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `waymark_grpc_requests_total` | counter | `method` (`/pkg.Service/Method`), `code` (`OK`, `INVALID_ARGUMENT`, ...) |
//! | `waymark_grpc_request_duration_seconds` | histogram | `method` |
//!
//! A call ends when its status is known: in the response headers for a
//! trailers-only answer (errors before any message), else in the trailers at
//! the end of the body; a body dropped before its trailers (the client went
//! away) counts as `CANCELLED`. Streams are timed over their whole life.
//!
//! Invariants: labels are bounded. A path the server does not serve is
//! answered `UNIMPLEMENTED` and counted as `method="other"`, so clients
//! cannot mint series; no metadata or body value is ever read.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Code;
use tonic::body::Body;
use tower::{BoxError, Layer, Service};

const REQUESTS: &str = "waymark_grpc_requests_total";
const DURATION: &str = "waymark_grpc_request_duration_seconds";

/// Adds [`RpcMetrics`] around a service.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

/// Counts and times every call of the wrapped service.
#[derive(Debug, Clone)]
pub(crate) struct RpcMetrics<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for RpcMetrics<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let call = Call {
            method: req.uri().path().to_owned(),
            start: Instant::now(),
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            match fut.await {
                Ok(res) => match grpc_code(res.headers()) {
                    Some(code) => {
                        call.finish(code);
                        Ok(res)
                    }
                    None => {
                        let (parts, body) = res.into_parts();
                        let body = Metered {
                            inner: body,
                            call: Some(call),
                        };
                        Ok(Response::from_parts(parts, Body::new(body)))
                    }
                },
                Err(e) => {
                    // Raised by a layer (load shedding) before any response.
                    let code = if e.is::<tower::load_shed::error::Overloaded>() {
                        Code::ResourceExhausted
                    } else {
                        Code::Unknown
                    };
                    call.finish(code as i32);
                    Err(e)
                }
            }
        })
    }
}

struct Call {
    method: String,
    start: Instant,
}

impl Call {
    fn finish(self, code: i32) {
        let code = Code::from_i32(code);
        let method = if code == Code::Unimplemented || self.method.len() > 200 {
            "other".to_owned()
        } else {
            self.method
        };
        metrics::counter!(REQUESTS, "method" => method.clone(), "code" => code_label(code))
            .increment(1);
        metrics::histogram!(DURATION, "method" => method)
            .record(self.start.elapsed().as_secs_f64());
    }
}

/// A response body that records its call when the trailers pass.
struct Metered {
    inner: Body,
    call: Option<Call>,
}

impl HttpBody for Metered {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(|t| grpc_code(t).unwrap_or(0)),
            Poll::Ready(Some(Err(s))) => Some(s.code() as i32),
            Poll::Ready(None) => Some(0),
            Poll::Pending => None,
        };
        if let Some(code) = code
            && let Some(call) = self.call.take()
        {
            call.finish(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(Code::Cancelled as i32);
        }
    }
}

fn grpc_code(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The canonical name of a status code (as in the gRPC spec).
fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
