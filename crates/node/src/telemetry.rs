//! Telemetry: logs (text or JSON) through `tracing`, OpenTelemetry traces over
//! OTLP/gRPC when an endpoint is configured, and a Prometheus endpoint when a
//! metrics address is configured.
//!
//! Process-wide (a global subscriber and recorder), so [`init`] belongs in a
//! service's `main` (see [`crate::main_with`]), never in [`crate::run`]:
//! in-process tests start many nodes in one process.
//!
//! Invariants: nothing is exported unless configured; the default is local
//! logs only. The W3C trace-context propagator is always installed, so the
//! bus carries `traceparent` in NATS headers whenever a span is sampled and
//! one trace spans the sending and the receiving agency. Metric labels are
//! the agency id (global) and bounded tokens (method, code, reason); spans
//! carry method paths and ids of no person (see `server.rs`).

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{AgencyConfig, LogFormat, TelemetryConfig};

/// Histogram buckets (seconds) of every `*_seconds` metric: gRPC calls of a
/// few milliseconds up to deliveries that waited out receipt timeouts.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Setting up telemetry failed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter did not parse (config validation normally catches it).
    #[error("parsing the log filter failed")]
    Filter(#[source] tracing_subscriber::filter::ParseError),
    /// Building the OTLP span exporter failed.
    #[error("building the OTLP exporter for {endpoint} failed")]
    Otlp {
        /// The configured endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// Installing the global `tracing` subscriber failed (one is already set).
    #[error("installing the global tracing subscriber failed")]
    Subscriber(#[source] tracing_subscriber::util::TryInitError),
    /// Installing the Prometheus recorder or binding its listener failed.
    #[error("starting the Prometheus metrics endpoint failed")]
    Metrics(#[source] metrics_exporter_prometheus::BuildError),
}

/// Keeps exporters alive; [`TelemetryGuard::shutdown`] flushes pending spans.
#[derive(Debug)]
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes and stops the trace exporter (if any). Errors are logged: at
    /// exit there is nobody left to return them to.
    pub fn shutdown(mut self) {
        if let Some(provider) = self.tracer.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "flushing traces at exit failed");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber and, when configured, the OTLP exporter
/// and the Prometheus endpoint. Call once per process, inside the runtime.
///
/// # Errors
/// [`TelemetryError`] naming the step that failed.
pub fn init(
    config: &TelemetryConfig,
    agency: &AgencyConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::builder()
        .parse(&config.log_filter)
        .map_err(TelemetryError::Filter)?;
    let fmt = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let tracer = match &config.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|source| TelemetryError::Otlp {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            let resource = Resource::builder()
                .with_service_name(format!("waymark-{}", agency.kind))
                .with_attribute(KeyValue::new("waymark.agency.id", agency.id.to_string()))
                .with_attribute(KeyValue::new(
                    "waymark.agency.country",
                    agency.country.clone(),
                ))
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };
    let otel = tracer
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("waymark")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(TelemetryError::Subscriber)?;

    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );

    if let Some(addr) = config.metrics_listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .add_global_label("agency", agency.id.to_string())
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".to_owned()),
                LATENCY_BUCKETS,
            )
            .map_err(TelemetryError::Metrics)?
            .install()
            .map_err(TelemetryError::Metrics)?;
        tracing::info!(%addr, "Prometheus metrics endpoint listening");
    }
    Ok(TelemetryGuard { tracer })
}
