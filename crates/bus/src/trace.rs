//! W3C trace context (`traceparent`, `tracestate`) in NATS message headers,
//! through the global OpenTelemetry text-map propagator, so one trace spans
//! the sending and the receiving agency.

use std::collections::HashMap;

use async_nats::HeaderMap;
use opentelemetry::propagation::Extractor;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace headers of the current span, to stash until publication.
pub(crate) fn current() -> HashMap<String, String> {
    let cx = tracing::Span::current().context();
    let mut out = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut out));
    out
}

/// Copies stashed trace headers into a message's headers.
pub(crate) fn inject(stash: &HashMap<String, String>, headers: &mut HeaderMap) {
    for (k, v) in stash {
        headers.insert(k.as_str(), v.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Makes `span` a child of the trace context in `headers`, if any.
pub(crate) fn adopt(span: &tracing::Span, headers: Option<&HeaderMap>) {
    if let Some(h) = headers {
        let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(h)));
        let _ = span.set_parent(cx);
    }
}
