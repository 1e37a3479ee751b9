//! gRPC server assembly: the agency's services plus health and reflection,
//! behind the request limits and the per-request tracing span.
//!
//! Layers, outermost first (tonic adds the first two itself):
//! error recovery (tower errors become gRPC statuses), the request timeout
//! (`grpc.request_timeout_ms`, answered `CANCELLED` by tonic), the `rpc`
//! tracing span, admission control (`grpc.max_concurrent_requests`, see
//! `admission.rs`; health checks bypass it), then routing to the service,
//! whose decoder enforces `grpc.max_request_bytes`.
//!
//! Invariants:
//! - Every service goes in through [`Services::add_service`], which applies the
//!   request size limit, so no service can be served with tonic's 4 MiB
//!   default by mistake.
//! - A request over the concurrency limit is answered `RESOURCE_EXHAUSTED` at
//!   once; nothing queues without bound. The limit counts requests until
//!   their response headers are sent, so open streams do not hold a slot.
//!   Health checks are never shed, so a flooded agency still reports
//!   SERVING to its orchestrator.
//! - Spans carry the method path and final gRPC status, never a body or
//!   metadata value (bodies hold case data).

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderMap, Request, Response};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tower::Service;
use tower_http::classify::GrpcFailureClass;
use tower_http::trace::TraceLayer;
use tracing::Span;

/// A tonic server whose largest accepted request can be set. Implemented for
/// every generated Waymark server, health and reflection; implement it for
/// any other service added with [`Services::add_service`].
pub trait MaxRequestSize: Sized {
    /// Sets the largest request message the service decodes, in bytes.
    /// Bigger messages are rejected by tonic with `OUT_OF_RANGE`.
    fn with_max_request_bytes(self, limit: usize) -> Self;
}

macro_rules! max_request_size {
    ($($server:path : $service:path),+ $(,)?) => {$(
        impl<T: $service> MaxRequestSize for $server {
            fn with_max_request_bytes(self, limit: usize) -> Self {
                self.max_decoding_message_size(limit)
            }
        }
    )+};
}

mod impls {
    use super::MaxRequestSize;
    use waymark_proto::waymark::labour::v1::labour_service_server as labour;
    use waymark_proto::waymark::ngo::v1::ngo_service_server as ngo;
    use waymark_proto::waymark::police::v1::police_service_server as police;
    use waymark_proto::waymark::returndesk::v1::return_desk_service_server as returndesk;
    use waymark_proto::waymark::shelter::v1::shelter_service_server as shelter;
    use waymark_proto::waymark::v1::{
        case_service_server as case, consent_service_server as consent,
        handover_service_server as handover, inbox_service_server as inbox,
        journal_service_server as journal, referral_service_server as referral,
    };

    max_request_size!(
        case::CaseServiceServer<T>: case::CaseService,
        consent::ConsentServiceServer<T>: consent::ConsentService,
        handover::HandoverServiceServer<T>: handover::HandoverService,
        inbox::InboxServiceServer<T>: inbox::InboxService,
        journal::JournalServiceServer<T>: journal::JournalService,
        referral::ReferralServiceServer<T>: referral::ReferralService,
        police::PoliceServiceServer<T>: police::PoliceService,
        shelter::ShelterServiceServer<T>: shelter::ShelterService,
        ngo::NgoServiceServer<T>: ngo::NgoService,
        returndesk::ReturnDeskServiceServer<T>: returndesk::ReturnDeskService,
        labour::LabourServiceServer<T>: labour::LabourService,
        tonic_health::pb::health_server::HealthServer<T>: tonic_health::pb::health_server::Health,
        tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer<T>:
            tonic_reflection::pb::v1::server_reflection_server::ServerReflection,
    );
}

type AddFn = Box<dyn FnOnce(&mut RoutesBuilder, usize) + Send>;

/// The agency's gRPC services, collected before the node starts. Health and
/// reflection are added by [`crate::run`]; do not add them here.
#[derive(Default)]
pub struct Services {
    adds: Vec<AddFn>,
    names: Vec<&'static str>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("names", &self.names)
            .finish()
    }
}

impl Services {
    /// No services (the node then serves health and reflection only).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a generated tonic server, e.g. `CaseServiceServer::new(case)`.
    /// Its health status starts SERVING and it is listed by reflection.
    ///
    /// # Panics
    /// When a service with the same name was already added.
    #[must_use]
    pub fn add_service<S>(mut self, svc: S) -> Self
    where
        S: MaxRequestSize
            + Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        assert!(
            !self.names.contains(&S::NAME),
            "gRPC service {} added twice",
            S::NAME
        );
        self.names.push(S::NAME);
        self.adds.push(Box::new(move |routes, limit| {
            routes.add_service(svc.with_max_request_bytes(limit));
        }));
        self
    }

    /// The fully qualified names of the added services.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Adds every service to `routes` with the request size limit.
    pub(crate) fn install(self, routes: &mut RoutesBuilder, max_request_bytes: usize) {
        for add in self.adds {
            add(routes, max_request_bytes);
        }
    }
}

/// The concrete type of [`trace_layer`].
pub(crate) type RpcTraceLayer = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::GrpcErrorsAsFailures>,
    fn(&Request<Body>) -> Span,
    (),
    fn(&Response<Body>, Duration, &Span),
    (),
    fn(Option<&HeaderMap>, Duration, &Span),
    fn(GrpcFailureClass, Duration, &Span),
>;

/// The per-request tracing layer: one `rpc` span per call with the method
/// path, recording the final `grpc.code`.
pub(crate) fn trace_layer() -> RpcTraceLayer {
    TraceLayer::new_for_grpc()
        .make_span_with(rpc_span as fn(&Request<Body>) -> Span)
        .on_request(())
        .on_response(on_response as fn(&Response<Body>, Duration, &Span))
        .on_body_chunk(())
        .on_eos(on_eos as fn(Option<&HeaderMap>, Duration, &Span))
        .on_failure(on_failure as fn(GrpcFailureClass, Duration, &Span))
}

fn rpc_span(req: &Request<Body>) -> Span {
    tracing::info_span!("rpc", method = %req.uri().path(), grpc.code = tracing::field::Empty)
}

fn on_response<B>(res: &Response<B>, latency: Duration, span: &Span) {
    // Trailers-only responses (errors before any message) carry the status
    // in the headers; other responses end with it in the trailers.
    if let Some(code) = grpc_code(res.headers()) {
        finished(code, latency, span);
    }
}

fn on_eos(trailers: Option<&HeaderMap>, stream_duration: Duration, span: &Span) {
    finished(
        trailers.and_then(grpc_code).unwrap_or(0),
        stream_duration,
        span,
    );
}

fn on_failure(class: GrpcFailureClass, latency: Duration, _span: &Span) {
    // Status codes are logged by `finished`; this only sees errors raised by
    // a layer before a response existed.
    if let GrpcFailureClass::Error(error) = class {
        tracing::warn!(%error, latency_ms = latency.as_millis(), "rpc rejected");
    }
}

fn grpc_code(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

fn finished(code: i32, latency: Duration, span: &Span) {
    span.record("grpc.code", code);
    let code_name = tonic::Code::from_i32(code);
    let ms = latency.as_millis();
    match code_name {
        tonic::Code::Ok => tracing::debug!(code = ?code_name, latency_ms = ms, "rpc finished"),
        tonic::Code::Unknown
        | tonic::Code::Internal
        | tonic::Code::Unavailable
        | tonic::Code::DataLoss => {
            tracing::warn!(code = ?code_name, latency_ms = ms, "rpc failed");
        }
        _ => tracing::info!(code = ?code_name, latency_ms = ms, "rpc finished"),
    }
}
