//! What travels on the wire: W3C trace context from sender to receiver, and
//! nothing personal in subjects or headers (inspected raw in the streams).

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::*;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use waymark_bus::provision::{CHECKPOINT_STREAM, EVENT_STREAM};
use waymark_bus::subjects::{self, Subject};
use waymark_testkit::{NatsServer, TestDir, connect, wait_for};
use waymark_types::{AgencyKind, CaseId, EventId};

/// One global OpenTelemetry pipeline per test binary (the bus's tasks run on
/// runtime threads, so a thread-local subscriber would not see them).
fn exporter() -> InMemorySpanExporter {
    static PIPELINE: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    PIPELINE
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            let tracer = provider.tracer("waymark-bus-tests");
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            let subscriber = tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(tracer));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            (exporter, provider)
        })
        .0
        .clone()
}

struct Pair {
    _server: NatsServer,
    js: async_nats::jetstream::Context,
    a: Arc<waymark_bus::Bus>,
    _b: waymark_bus::Bus,
    _dirs: (TestDir, TestDir),
}

/// A and B running; sends `opened` then one signal on a new case inside a
/// back-office span, and waits for the receipt. Returns the span's trace id,
/// the signal's id and the case.
async fn deliver_one() -> (Pair, opentelemetry::trace::TraceId, EventId, CaseId) {
    let server = NatsServer::start().unwrap();
    let (_c, js) = connect(&server).await.unwrap();
    let k = keys();
    let (da, db) = (TestDir::new("a").unwrap(), TestDir::new("b").unwrap());
    let a = Arc::new(start(
        &js,
        A,
        AgencyKind::Police,
        open_journal_checkpointing(da.path(), A, &k.a),
        &k,
        &k.a,
    ));
    let jb = open_journal(db.path(), B_, &k.b);
    let b = start(&js, B_, AgencyKind::Shelter, jb.clone(), &k, &k.b);
    let case = CaseId::new();
    let request = tracing::info_span!("backoffice.request");
    let trace_id = request.context().span().span_context().trace_id();
    a.send(opened(case))
        .instrument(request.clone())
        .await
        .unwrap();
    let sent = a.send(signal(case)).instrument(request).await.unwrap();
    wait_for(Duration::from_secs(60), "the receipt at A", || async {
        outbox_len(a.journal()) == 0
    })
    .await
    .unwrap();
    assert_eq!(received_ids(&jb, &case), vec![sent.event_id.to_string()]);
    let pair = Pair {
        _server: server,
        js,
        a,
        _b: b,
        _dirs: (da, db),
    };
    (pair, trace_id, sent.event_id, case)
}

/// Every message of `stream`, raw.
async fn raw_messages(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let mut s = js.get_stream(stream).await.unwrap();
    let last = s.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        out.push(s.get_raw_message(seq).await.unwrap());
    }
    out
}

fn is_traceparent(v: &str) -> bool {
    let p: Vec<&str> = v.split('-').collect();
    p.len() == 4
        && [2, 32, 16, 2]
            .iter()
            .zip(&p)
            .all(|(n, x)| x.len() == *n && x.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_travels_from_sender_to_receiver() {
    let exporter = exporter();
    let (pair, trace_id, event_id, _case) = deliver_one().await;

    // On the wire: the signal carries the sender's traceparent.
    let msgs = raw_messages(&pair.js, EVENT_STREAM).await;
    let m = msgs
        .iter()
        .find(|m| {
            m.headers.get("Nats-Msg-Id").map(|v| v.as_str()) == Some(event_id.to_string().as_str())
        })
        .expect("the signal is in the stream");
    let tp = m.headers.get("traceparent").expect("a traceparent header");
    assert!(is_traceparent(tp.as_str()), "{tp}");
    assert_eq!(
        tp.as_str().split('-').nth(1),
        Some(trace_id.to_string().as_str())
    );

    // At the receiver: the receive span belongs to the sender's trace, as a
    // child of the sender's send span.
    let spans = exporter.get_finished_spans().unwrap();
    let in_trace = |name: &str| {
        spans
            .iter()
            .filter(|s| s.name == name && s.span_context.trace_id() == trace_id)
            .collect::<Vec<_>>()
    };
    let sends = in_trace("waymark.bus.send");
    let receives = in_trace("waymark.bus.receive");
    assert_eq!(sends.len(), 2, "opened and signal were sent in the trace");
    assert!(
        receives.iter().any(|r| sends
            .iter()
            .any(|s| r.parent_span_id == s.span_context.span_id())),
        "no receive span is a child of a send span: {receives:?}"
    );
    drop(pair.a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_and_headers_carry_no_personal_data() {
    exporter();
    let (pair, _trace, event_id, case) = deliver_one().await;
    // Let at least one checkpoint and cosignature be published too.
    wait_for(Duration::from_secs(60), "a cosignature", || async {
        raw_messages(&pair.js, CHECKPOINT_STREAM)
            .await
            .iter()
            .any(|m| m.subject.starts_with("waymark.v1.cosig."))
    })
    .await
    .unwrap();
    let personal = [case.to_string(), "statutory duty".to_owned()];
    let mut seen_event = false;
    for stream in [EVENT_STREAM, CHECKPOINT_STREAM] {
        for m in raw_messages(&pair.js, stream).await {
            let subject = m.subject.to_string();
            // Subjects: only the fixed prefix, agency ids and a kind token.
            match subjects::parse(&subject) {
                Some(Subject::Event {
                    sender, recipient, ..
                }) => {
                    assert!([A, B_].contains(&sender.as_str()), "{subject}");
                    assert!([A, B_].contains(&recipient.as_str()), "{subject}");
                }
                Some(Subject::Checkpoint { .. } | Subject::Cosignature { .. }) => {}
                None => panic!("not a Waymark subject: {subject}"),
            }
            // Headers: the message id and the trace context, nothing else.
            for (name, values) in m.headers.iter() {
                let name: &str = name.as_ref();
                assert!(
                    ["Nats-Msg-Id", "traceparent", "tracestate"].contains(&name),
                    "header {name} on {subject}"
                );
                for v in values {
                    let v = v.as_str();
                    match name {
                        "traceparent" => assert!(is_traceparent(v), "{v}"),
                        "tracestate" => assert!(v.is_empty(), "tracestate {v}"),
                        _ if stream == EVENT_STREAM => {
                            EventId::parse(v).unwrap_or_else(|_| panic!("msg id {v}"));
                        }
                        _ => assert!(
                            v.starts_with("ckpt-") || v.starts_with("cosig-"),
                            "msg id {v}"
                        ),
                    }
                    for p in &personal {
                        assert!(!v.contains(p.as_str()), "{p} in header {name}");
                    }
                }
            }
            for p in &personal {
                assert!(!subject.contains(p.as_str()), "{p} in {subject}");
            }
            seen_event |= m.headers.get("Nats-Msg-Id").map(|v| v.as_str())
                == Some(event_id.to_string().as_str());
        }
    }
    assert!(seen_event, "the signal was inspected");
}
