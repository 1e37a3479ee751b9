//! A real OTLP/gRPC trace receiver for tests: the
//! `opentelemetry.proto.collector.trace.v1.TraceService/Export` RPC over
//! HTTP/2, as an OpenTelemetry Collector's `otlp` receiver serves it. Every
//! export request is appended, as one JSON line, to a file in the shape the
//! Collector's `file` exporter writes (OTLP/JSON: `{"resourceSpans":[...]}`,
//! ids in hex), and kept in memory for assertions.
//!
//! Why not the Collector itself: no Collector or Jaeger build with an OTLP
//! receiver installs here (no Docker engine, no internet beyond the package
//! registries; the one PyPI wheel that ships `otelcol-contrib` is built with
//! a `filelog` receiver and an `otlphttp` exporter only). The agencies'
//! exporter neither knows nor cares: it speaks the same protocol to this.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio_util::sync::CancellationToken;

/// One received span, flattened for assertions.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the exporting process.
    pub service: String,
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Hex parent span id, empty for a root span.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// Its attributes as `key=value` text (events' attributes included).
    pub attributes: Vec<String>,
}

struct Sink {
    file: Mutex<std::fs::File>,
    spans: Mutex<Vec<ReceivedSpan>>,
}

/// A running receiver; stops when dropped.
pub struct OtlpSink {
    addr: SocketAddr,
    path: PathBuf,
    sink: Arc<Sink>,
    stop: CancellationToken,
}

impl OtlpSink {
    /// Listens on a free port of 127.0.0.1 and writes to `path`.
    ///
    /// # Errors
    /// Binding the port or creating the file failed.
    pub async fn start(path: &Path) -> anyhow::Result<Self> {
        let incoming = tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], 0).into())
            .map_err(|e| anyhow::anyhow!("binding the OTLP receiver: {e}"))?;
        let addr = incoming.local_addr()?;
        let sink = Arc::new(Sink {
            file: Mutex::new(std::fs::File::create(path)?),
            spans: Mutex::new(Vec::new()),
        });
        let stop = CancellationToken::new();
        let (svc, s) = (Receiver(sink.clone()), stop.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(svc))
                .serve_with_incoming_shutdown(incoming, s.cancelled_owned())
                .await;
        });
        Ok(Self {
            addr,
            path: path.to_owned(),
            sink,
            stop,
        })
    }

    /// The endpoint to configure as `telemetry.otlp_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The file the export requests are written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.sink
            .spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Receiver(Arc<Sink>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let req = request.into_inner();
        let line = serde_json::to_string(&req)
            .map_err(|e| tonic::Status::internal(format!("encoding OTLP/JSON: {e}")))?;
        {
            let mut f = self
                .0
                .file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            writeln!(f, "{line}").map_err(|e| tonic::Status::internal(e.to_string()))?;
        }
        let flat = flatten(&req);
        self.0
            .spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(flat);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn flatten(req: &ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let attrs = s
                    .attributes
                    .iter()
                    .chain(s.events.iter().flat_map(|e| e.attributes.iter()))
                    .map(|a| {
                        format!(
                            "{}={}",
                            a.key,
                            text(a.value.as_ref().and_then(|v| v.value.as_ref()))
                        )
                    })
                    .chain(s.events.iter().map(|e| format!("event={}", e.name)))
                    .collect();
                out.push(ReceivedSpan {
                    service: service.clone(),
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent_span_id: hex::encode(&s.parent_span_id),
                    name: s.name.clone(),
                    attributes: attrs,
                });
            }
        }
    }
    out
}
