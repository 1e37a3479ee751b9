//! Gathering one case's signed events from verified exports: one copy per
//! event id, each checked on its own (see the parent module).

use std::collections::BTreeMap;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::KeyId;
use waymark_policy::wire::{WireEvent, event_from_proto, timestamp_from_proto};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1::{EntryKind, Envelope, Event, JournalEntry};
use waymark_types::{AgencyKind, Timestamp};

use super::{Exports, Kind, SignedEvent, Skipped};
use crate::codes;

/// Which copy of an event is used: lower is better.
const OWN_COPY: u8 = 0;
const RECEIVED_COPY: u8 = 1;
const FORWARDED_COPY: u8 = 2;

pub(super) struct Gather<'a> {
    pub(super) exports: &'a Exports,
    pub(super) case: String,
    /// event id → (copy rank, event).
    pub(super) best: BTreeMap<String, (u8, SignedEvent)>,
    pub(super) skipped: Vec<Skipped>,
    pub(super) agencies: BTreeMap<String, Option<AgencyKind>>,
    pub(super) public_keys: BTreeMap<String, [u8; 32]>,
}

/// Where an envelope was read.
struct At<'a> {
    journal: &'a str,
    seq: u64,
    recorded_at: Timestamp,
}

impl Gather<'_> {
    fn skip(&mut self, at: &At<'_>, event_id: &str, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            journal: at.journal.to_owned(),
            seq: at.seq,
            event_id: event_id.to_owned(),
            reason: reason.into(),
        });
    }

    pub(super) fn entry(&mut self, journal: &str, e: JournalEntry) {
        let kind = EntryKind::try_from(e.kind).unwrap_or(EntryKind::Unspecified);
        let rank = match kind {
            EntryKind::Originated => OWN_COPY,
            EntryKind::Received => RECEIVED_COPY,
            _ => return,
        };
        let at = At {
            journal,
            seq: e.seq,
            recorded_at: e
                .recorded_at
                .as_ref()
                .and_then(timestamp_from_proto)
                .unwrap_or_default(),
        };
        let Some(ev) = self.signed(&at, &e.envelope, rank) else {
            return;
        };
        let placed = if rank == OWN_COPY {
            ev.event.sender_id == journal
        } else {
            ev.event.recipient_id == journal
        };
        if !placed {
            let id = ev.event.event_id.clone();
            self.skip(
                &at,
                &id,
                "the event is not addressed to or from this journal",
            );
            return;
        }
        if let Some(inner) = forwarded_envelope(&ev)
            && let Some(inner) = self.signed(&at, &inner, FORWARDED_COPY)
        {
            self.keep(FORWARDED_COPY, inner, &at);
        }
        self.keep(rank, ev, &at);
    }

    /// Decodes and checks one envelope of the case.
    fn signed(&mut self, at: &At<'_>, bytes: &[u8], rank: u8) -> Option<SignedEvent> {
        let Ok(env) = Envelope::decode(bytes) else {
            self.skip(at, "", "the envelope does not decode");
            return None;
        };
        let Ok(event) = Event::decode(env.payload.as_slice()) else {
            self.skip(at, "", "the event does not decode");
            return None;
        };
        let id = event.event_id.clone();
        if event.case_id != self.case {
            self.skip(at, &id, "the event is about another case");
            return None;
        }
        let wire = match event_from_proto(&event) {
            Ok(w) => w,
            Err(e) => {
                self.skip(at, &id, format!("malformed event: {e}"));
                return None;
            }
        };
        let kind = match &wire {
            WireEvent::Event(e) => Kind::Event(e.body.kind()),
            WireEvent::Forwarded { .. } => Kind::Forwarded,
            WireEvent::Capacity { .. } => return None,
        };
        if rank == FORWARDED_COPY && kind == Kind::Forwarded {
            self.skip(at, &id, "a forward of a forward is not followed");
            return None;
        }
        let occurred_at = wire_time(&wire);
        let by_sender = !env.signatures.is_empty()
            && env
                .signatures
                .iter()
                .all(|s| self.exports.owners.get(&s.key_id) == Some(&event.sender_id));
        if !by_sender {
            self.skip(
                at,
                &id,
                format!(
                    "not signed by a key of its sender {} listed in these exports",
                    event.sender_id
                ),
            );
            return None;
        }
        if let Err(e) = self
            .exports
            .keys
            .verify(&env, PAYLOAD_TYPE_EVENT, occurred_at)
        {
            self.skip(at, &id, format!("signature does not verify: {e}"));
            return None;
        }
        for s in &env.signatures {
            if let Ok(kid) = KeyId::parse(&s.key_id)
                && let Some(k) = self.exports.keys.get(&kid)
            {
                self.public_keys.insert(s.key_id.clone(), k.key.to_bytes());
            }
        }
        Some(SignedEvent {
            kind,
            occurred_at,
            signatures: env.signatures,
            envelope_sha256: Sha256::digest(bytes).into(),
            journal: at.journal.to_owned(),
            seq: at.seq,
            recorded_at: at.recorded_at,
            event,
        })
    }

    fn keep(&mut self, rank: u8, ev: SignedEvent, at: &At<'_>) {
        for (id, k) in [
            (&ev.event.sender_id, ev.event.sender_kind),
            (&ev.event.recipient_id, ev.event.recipient_kind),
        ] {
            if !id.is_empty() {
                let slot = self.agencies.entry(id.clone()).or_insert(None);
                if slot.is_none() {
                    *slot = codes::agency_kind(k);
                }
            }
        }
        let id = ev.event.event_id.clone();
        if let Some((have_rank, have)) = self.best.get(&id) {
            let better = rank < *have_rank;
            if have.envelope_sha256 != ev.envelope_sha256 {
                // Two different signed copies of one event id: the better
                // copy is kept, the other listed.
                let (left, kept) = if better {
                    ((have.journal.clone(), have.seq), (at.journal, at.seq))
                } else {
                    (
                        (at.journal.to_owned(), at.seq),
                        (have.journal.as_str(), have.seq),
                    )
                };
                let reason = format!(
                    "another copy with different signed bytes is in {} entry {}; kept that one",
                    kept.0, kept.1
                );
                self.skipped.push(Skipped {
                    journal: left.0,
                    seq: left.1,
                    event_id: id.clone(),
                    reason,
                });
            }
            if !better {
                return;
            }
        }
        self.best.insert(id, (rank, ev));
    }
}

/// The inner envelope of a forward.
fn forwarded_envelope(ev: &SignedEvent) -> Option<Vec<u8>> {
    match &ev.event.body {
        Some(waymark_proto::v1::event::Body::Forwarded(f)) => Some(f.envelope.clone()),
        _ => None,
    }
}
fn wire_time(w: &WireEvent) -> Timestamp {
    match w {
        WireEvent::Event(e) => e.at,
        WireEvent::Capacity { header, .. } | WireEvent::Forwarded { header, .. } => header.at,
    }
}
