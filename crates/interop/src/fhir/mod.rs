//! A case's history as a FHIR R5 `Bundle` of type `collection`.
//!
//! [`case_bundle`] maps the verified signed events of one case
//! ([`CaseRecord`]) to resources, as the crate docs' tables say. It is pure
//! and deterministic: the same exports give byte-identical JSON.
//!
//! Every resource's `fullUrl` is `urn:uuid:<id>`, and `id` is that UUID:
//! the Waymark id itself for things Waymark names (a referral's
//! `ServiceRequest`, a handover's `Task`, a `Consent`), otherwise a UUIDv8
//! derived from the Waymark name ([`derived`]). References inside the bundle
//! are literal (`urn:uuid:`) and also carry the Waymark identifier, so they
//! resolve in the bundle and make sense outside it. The person is never a
//! resource: `subject`, `for` and `patient` are logical references to a
//! `Patient` by the case id (`urn:waymark:case`).

mod audit;
mod consent;
pub mod model;
mod provenance;
mod resources;

use std::collections::BTreeMap;

use prost::Message;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use waymark_proto::v1::{Envelope, Event, event::Body};
use waymark_types::{AgencyKind, EventKind};

pub use audit::AuditEvent;
pub use consent::Consent;
pub use model::{Bundle, Entry, Resource};
pub use provenance::Provenance;
pub use resources::{Organization, ServiceRequest, Task};

use self::model::{Identifier, Reference};
use crate::codes::{ID_AGENCY, ID_CASE, ID_CONSENT, ID_HANDOVER, ID_REFERRAL};
use crate::history::History;
use crate::source::{CaseRecord, Kind, SignedEvent};

/// The UUID of a resource Waymark has no UUID for: a version-8 UUID (RFC
/// 9562 §5.8) made of the first 16 bytes of
/// SHA-256(`"waymark-interop/fhir/" + kind + "/" + key`), e.g.
/// `derived("Provenance", event_id)`, `derived("Organization", agency_id)`.
pub fn derived(kind: &str, key: &str) -> Uuid {
    let h = Sha256::digest(format!("waymark-interop/fhir/{kind}/{key}"));
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    Uuid::from_bytes(b)
}

fn urn(id: impl std::fmt::Display) -> String {
    format!("urn:uuid:{id}")
}

/// The `fullUrl` of the resource whose id is a Waymark event id.
pub(crate) fn url_of_event(id: &str) -> String {
    urn(id)
}

/// What a Waymark thing an event is about.
enum Thing {
    Referral(String),
    Handover(String),
    Consent(String),
}

/// The building context: the record, its history, the agencies referenced.
pub(crate) struct Cx<'a> {
    record: &'a CaseRecord,
    history: &'a History<'a>,
    orgs: BTreeMap<String, Option<AgencyKind>>,
}

impl<'a> Cx<'a> {
    /// A reference to the agency `id`, which gets an `Organization`.
    pub(crate) fn org(&mut self, id: &str) -> Reference {
        let kind = self.record.agencies.get(id).copied().flatten();
        self.orgs.insert(id.to_owned(), kind);
        Reference {
            reference: Some(urn(derived("Organization", id))),
            kind: Some("Organization".into()),
            identifier: Some(Identifier::new(ID_AGENCY, id)),
            display: None,
        }
    }

    /// The person, by case id (no resource).
    pub(crate) fn person(&self) -> Reference {
        Reference {
            kind: Some("Patient".into()),
            identifier: Some(Identifier::new(ID_CASE, self.record.case.to_string())),
            ..Reference::default()
        }
    }

    /// A reference to the consent `id`: literal when it is in the bundle.
    pub(crate) fn consent_ref(&self, id: &str) -> Reference {
        Reference {
            reference: self.history.consents.contains_key(id).then(|| urn(id)),
            kind: Some("Consent".into()),
            identifier: Some(Identifier::new(ID_CONSENT, id)),
            display: None,
        }
    }

    /// The verified inner event of a forward, if it is in the record.
    pub(crate) fn inner_of(&self, e: &SignedEvent) -> Option<&'a SignedEvent> {
        let Some(Body::Forwarded(f)) = &e.event.body else {
            return None;
        };
        let env = Envelope::decode(f.envelope.as_slice()).ok()?;
        let inner = Event::decode(env.payload.as_slice()).ok()?;
        self.record.event(&inner.event_id)
    }

    fn thing(&self, e: &SignedEvent) -> Option<Thing> {
        let r = |x: &Option<waymark_proto::v1::EventRef>| {
            x.as_ref().map(|x| x.event_id.clone()).unwrap_or_default()
        };
        let own = || e.event.event_id.clone();
        Some(match e.event.body.as_ref()? {
            Body::ReferralRequested(_) => Thing::Referral(own()),
            Body::ReferralReceived(b) => Thing::Referral(r(&b.request)),
            Body::ReferralAccepted(b) => Thing::Referral(r(&b.request)),
            Body::ReferralRejected(b) => Thing::Referral(r(&b.request)),
            Body::ReferralStarted(b) => Thing::Referral(r(&b.request)),
            Body::ReferralCompleted(b) => Thing::Referral(r(&b.request)),
            Body::ReferralFailed(b) => Thing::Referral(r(&b.request)),
            Body::ReferralCancelled(b) => Thing::Referral(r(&b.request)),
            Body::HandoverOffered(_) => Thing::Handover(own()),
            Body::HandoverAccepted(b) => Thing::Handover(r(&b.offer)),
            Body::HandoverRejected(b) => Thing::Handover(r(&b.offer)),
            Body::HandoverCancelled(b) => Thing::Handover(r(&b.offer)),
            Body::HandoverExpired(b) => Thing::Handover(r(&b.offer)),
            Body::ConsentGranted(_) => Thing::Consent(own()),
            Body::ConsentWithdrawn(b) => Thing::Consent(b.consent_id.clone()),
            Body::WithdrawalAcknowledged(b) => Thing::Consent(b.consent_id.clone()),
            _ => return None,
        })
    }

    /// The resources of the bundle that `e` (or, for a forward, the
    /// forwarded event) is about.
    pub(crate) fn about(&self, e: &SignedEvent) -> Vec<Reference> {
        if e.kind == Kind::Forwarded {
            return self.inner_of(e).map(|i| self.about(i)).unwrap_or_default();
        }
        let h = self.history;
        match self.thing(e) {
            Some(Thing::Referral(id)) if h.referrals.contains_key(&id) => vec![
                Reference {
                    reference: Some(urn(&id)),
                    kind: Some("ServiceRequest".into()),
                    identifier: Some(Identifier::new(ID_REFERRAL, id.clone())),
                    display: None,
                },
                Reference {
                    reference: Some(urn(derived("referral-task", &id))),
                    kind: Some("Task".into()),
                    ..Reference::default()
                },
            ],
            Some(Thing::Handover(id)) if h.handovers.contains_key(&id) => vec![Reference {
                reference: Some(urn(&id)),
                kind: Some("Task".into()),
                identifier: Some(Identifier::new(ID_HANDOVER, id)),
                display: None,
            }],
            Some(Thing::Consent(id)) if h.consents.contains_key(&id) => vec![self.consent_ref(&id)],
            _ => Vec::new(),
        }
    }
}

/// The history of `record`'s case as a FHIR R5 `collection` bundle.
///
/// Entries: `Organization`s (by agency id), then `Consent`s,
/// `ServiceRequest`s and `Task`s in the order they were created, then the
/// `AuditEvent`s and `Provenance`s of the events in event order.
pub fn case_bundle(record: &CaseRecord) -> Bundle {
    let history = History::of(record);
    let mut cx = Cx {
        record,
        history: &history,
        orgs: BTreeMap::new(),
    };
    let by_time = |e: &SignedEvent| (e.occurred_at, e.event.event_id.clone());
    let mut consents: Vec<_> = history.consents.values().collect();
    consents.sort_by_key(|c| by_time(c.grant));
    let mut referrals: Vec<_> = history.referrals.values().collect();
    referrals.sort_by_key(|r| by_time(r.request));
    let mut handovers: Vec<_> = history.handovers.values().collect();
    handovers.sort_by_key(|h| by_time(h.offer));

    let mut main = Vec::new();
    for c in consents {
        main.push(Resource::Consent(consent::consent(&mut cx, c)));
    }
    let mut tasks = Vec::new();
    for r in referrals {
        let (sr, task) = resources::referral(&mut cx, r);
        main.push(Resource::ServiceRequest(sr));
        tasks.push(Resource::Task(task));
    }
    for h in handovers {
        tasks.push(Resource::Task(resources::handover(&mut cx, h)));
    }
    main.extend(tasks);
    let mut audits = Vec::new();
    let mut provenances = Vec::new();
    for e in &record.events {
        // What the event created or changed: a forward, a receipt or a
        // withdrawal acknowledgement changes no resource, only discloses.
        let changes = !matches!(
            e.kind,
            Kind::Forwarded | Kind::Event(EventKind::Receipt | EventKind::WithdrawalAcknowledged)
        );
        let mut target = if changes { cx.about(e) } else { Vec::new() };
        if let Some(a) = audit::audit_event(&mut cx, e) {
            target.push(Reference {
                reference: Some(urn(&a.id)),
                kind: Some("AuditEvent".into()),
                ..Reference::default()
            });
            audits.push(Resource::AuditEvent(a));
        }
        if !target.is_empty() {
            provenances.push(Resource::Provenance(provenance::provenance(
                &mut cx, e, target,
            )));
        }
    }
    let mut entry: Vec<Entry> = cx
        .orgs
        .iter()
        .map(|(id, kind)| {
            let uuid = derived("Organization", id);
            Entry {
                full_url: urn(uuid),
                resource: Resource::Organization(resources::organization(
                    id,
                    *kind,
                    uuid.to_string(),
                )),
            }
        })
        .collect();
    for r in main.into_iter().chain(audits).chain(provenances) {
        entry.push(Entry {
            full_url: urn(r.id()),
            resource: r,
        });
    }
    Bundle {
        kind: "collection".into(),
        timestamp: record.as_of.to_string(),
        entry,
    }
}

impl Resource {
    /// The resource's id.
    pub fn id(&self) -> &str {
        match self {
            Resource::Organization(r) => &r.id,
            Resource::Consent(r) => &r.id,
            Resource::ServiceRequest(r) => &r.id,
            Resource::Task(r) => &r.id,
            Resource::AuditEvent(r) => &r.id,
            Resource::Provenance(r) => &r.id,
        }
    }
}

impl Bundle {
    /// The bundle as pretty-printed FHIR JSON, ending in a newline.
    ///
    /// # Errors
    /// Never in practice (every field serialises); serde_json's error
    /// otherwise.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }
}
