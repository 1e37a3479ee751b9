//! Transport batches: several events for one recipient in one broker message.
//!
//! # Why
//! With `sync_interval: always` the broker fsyncs every message it stores
//! before it acknowledges it, one after the other in the stream. An event
//! costs two such messages (the event, then its receipt), so on one disk the
//! broker's syncs, not our journals, bounded end-to-end throughput: at 512
//! cases a message waited about 60 ms from publish to delivery while the
//! broker's CPU was mostly idle. The relay therefore packs what one round has
//! due for one recipient into one [`EventBatch`] message.
//!
//! # What does not change
//! - Every event is still its own signed envelope, byte for byte; the batch
//!   is unsigned transport. The recipient unpacks it and handles each item
//!   exactly as a message of its own (verified, checked, journaled,
//!   receipted or quarantined on its own), under the batch's subject.
//! - Lane order: the relay has at most one event per (case, recipient) lane
//!   in flight, so two events of one lane are never in one batch.
//! - Delivery is still proven only by receipts. The broker message is acked
//!   when every item in it is durable, and nak'ed (all of it comes again)
//!   otherwise; items already journaled are deduplicated by event id.
//! - A batch's `Nats-Msg-Id` is a digest of its event ids, so the broker
//!   drops a re-publish of the same batch; a batch re-formed with other
//!   items is stored again and deduplicated by the recipient.
//!
//! # Limits
//! A batch holds at most [`MAX_EVENTS`] items and only the headers an event
//! carries alone (`traceparent`, `tracestate`, `Waymark-Sealed-<i>`); a
//! message on a batch subject that is not such a batch is quarantined whole
//! as `malformed`. The sender keeps a batch under half of
//! `max_message_bytes`; an event bigger than that travels alone.

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use bytes::Bytes;
use prost::Message as _;
use sha2::{Digest, Sha256};
use std::str::FromStr;
use waymark_proto::v1::{BatchedEvent, EventBatch};
use waymark_types::EventId;

/// Most events in one batch (sender and recipient).
pub const MAX_EVENTS: usize = 1024;

/// Most headers one batched event may carry (trace context and sealed
/// sections).
const MAX_HEADERS: usize = 66;

/// One event of a batch, as it would travel alone.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The signed envelope bytes.
    pub envelope: Bytes,
    /// Its message headers (trace context, sealed sections).
    pub headers: HeaderMap,
}

/// Encodes `items` (in journal order) as an [`EventBatch`].
pub(crate) fn encode<'a>(items: impl IntoIterator<Item = (&'a Bytes, &'a HeaderMap)>) -> Vec<u8> {
    EventBatch {
        events: items
            .into_iter()
            .map(|(envelope, headers)| BatchedEvent {
                envelope: envelope.to_vec(),
                headers: headers
                    .iter()
                    .filter_map(|(k, v)| v.first().map(|v| (k.to_string(), v.as_str().to_owned())))
                    .collect(),
            })
            .collect(),
    }
    .encode_to_vec()
}

/// The `Nats-Msg-Id` of a batch of these events.
pub(crate) fn message_id<'a>(ids: impl IntoIterator<Item = &'a EventId>) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.to_string().as_bytes());
        h.update(b"\n");
    }
    let d = h.finalize();
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("batch-{hex}")
}

/// Whether `name` is a header an event may carry inside a batch.
fn allowed(name: &str) -> bool {
    name == "traceparent"
        || name == "tracestate"
        || name
            .strip_prefix("Waymark-Sealed-")
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

/// Decodes a batch; the error (for the quarantine record, no personal data)
/// says why the message is not one.
pub(crate) fn decode(payload: &[u8]) -> Result<Vec<Item>, String> {
    let batch = EventBatch::decode(payload).map_err(|_| "not an EventBatch encoding".to_owned())?;
    if batch.events.is_empty() {
        return Err("an empty EventBatch".into());
    }
    if batch.events.len() > MAX_EVENTS {
        return Err(format!(
            "{} events in one batch > limit {MAX_EVENTS}",
            batch.events.len()
        ));
    }
    batch
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            if e.headers.len() > MAX_HEADERS {
                return Err(format!("batched event {i}: {} headers", e.headers.len()));
            }
            let mut headers = HeaderMap::new();
            for (k, v) in e.headers {
                if !allowed(&k) {
                    return Err(format!("batched event {i}: header {k:.40?} is not allowed"));
                }
                let (Ok(name), Ok(value)) = (HeaderName::from_str(&k), HeaderValue::from_str(&v))
                else {
                    return Err(format!("batched event {i}: invalid header {k:.40?}"));
                };
                headers.insert(name, value);
            }
            Ok(Item {
                envelope: Bytes::from(e.envelope),
                headers,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_envelopes_and_headers() {
        let mut h1 = HeaderMap::new();
        h1.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        h1.insert("Waymark-Sealed-0", "c2VhbGVk");
        let h2 = HeaderMap::new();
        let (e1, e2) = (Bytes::from_static(b"one"), Bytes::from_static(b"two"));
        let bytes = encode([(&e1, &h1), (&e2, &h2)]);
        let items = decode(&bytes).expect("a batch");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].envelope, e1);
        assert_eq!(items[1].envelope, e2);
        assert_eq!(
            items[0]
                .headers
                .get("Waymark-Sealed-0")
                .map(HeaderValue::as_str),
            Some("c2VhbGVk")
        );
        assert!(items[0].headers.get("traceparent").is_some());
        assert!(items[1].headers.get("traceparent").is_none());
    }

    #[test]
    fn malformed_batches_are_refused_with_a_reason() {
        assert!(
            decode(b"\xff\xff\xff")
                .unwrap_err()
                .contains("not an EventBatch")
        );
        assert!(decode(&[]).unwrap_err().contains("empty"));
        let mut bad = HeaderMap::new();
        bad.insert("Nats-Msg-Id", "x");
        let e = Bytes::from_static(b"e");
        assert!(
            decode(&encode([(&e, &bad)]))
                .unwrap_err()
                .contains("not allowed")
        );
        let mut sneaky = HeaderMap::new();
        sneaky.insert("Waymark-Sealed-", "x");
        assert!(
            decode(&encode([(&e, &sneaky)]))
                .unwrap_err()
                .contains("not allowed")
        );
        let many = EventBatch {
            events: (0..=MAX_EVENTS)
                .map(|_| BatchedEvent {
                    envelope: b"e".to_vec(),
                    headers: Default::default(),
                })
                .collect(),
        };
        assert!(decode(&many.encode_to_vec()).unwrap_err().contains("limit"));
        let crlf = EventBatch {
            events: vec![BatchedEvent {
                envelope: b"e".to_vec(),
                headers: [("traceparent".to_owned(), "a\r\nb".to_owned())].into(),
            }],
        };
        assert!(
            decode(&crlf.encode_to_vec())
                .unwrap_err()
                .contains("invalid header")
        );
    }

    #[test]
    fn message_ids_depend_on_the_events_only() {
        let (a, b) = (EventId::new(), EventId::new());
        assert_eq!(message_id([&a, &b]), message_id([&a, &b]));
        assert_ne!(message_id([&a, &b]), message_id([&a]));
        assert!(message_id([&a]).starts_with("batch-"));
    }
}
