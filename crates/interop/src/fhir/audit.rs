//! `AuditEvent`: one per disclosure to another agency, one per delivery
//! receipt.

use std::collections::BTreeSet;

use serde::Serialize;
use waymark_proto::v1::{self as pb, disclosure_basis::Basis, event::Body};
use waymark_types::DataCategory;

use super::Cx;
use super::model::{CodeableConcept, Coding, Identifier, Reference};
use crate::codes::{self, *};
use crate::source::{Kind, SignedEvent};

/// `AuditEvent.outcome`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// `0` success, `4` minor failure.
    pub code: Coding,
    /// The quarantine reason token.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<CodeableConcept>,
}

/// `AuditEvent.agent`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditAgent {
    /// DICOM source or destination role.
    #[serde(rename = "type")]
    pub kind: CodeableConcept,
    /// The agency.
    pub who: Reference,
    /// Whether it initiated the event.
    pub requestor: bool,
    /// The consent a disclosure relies on (`urn:uuid:` of the Consent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy: Vec<String>,
}

/// `AuditEvent.source`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditSource {
    /// The agency whose journal holds the event.
    pub observer: Reference,
}

/// `AuditEvent.entity.detail`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    /// What the detail is (Waymark audit-detail code).
    #[serde(rename = "type")]
    pub kind: CodeableConcept,
    /// A text value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    /// A coded value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_codeable_concept: Option<CodeableConcept>,
}

/// `AuditEvent.entity`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntity {
    /// The event or resource concerned.
    pub what: Reference,
    /// Data categories disclosed; receipt facts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<Detail>,
}

/// `AuditEvent`: a disclosure or a delivery receipt.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Derived from the event id.
    pub id: String,
    /// DICOM Export (disclosure) or Import (receipt).
    pub category: Vec<CodeableConcept>,
    /// The Waymark event kind.
    pub code: CodeableConcept,
    /// `R` for a disclosure, `C` for a receipt.
    pub action: &'static str,
    /// `occurred_at`.
    pub occurred_date_time: String,
    /// When journaled.
    pub recorded: String,
    /// For a receipt: journaled or quarantined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Purpose and legal basis of a disclosure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization: Vec<CodeableConcept>,
    /// The person, by case id.
    pub patient: Reference,
    /// Sender and recipient.
    pub agent: Vec<AuditAgent>,
    /// The agency whose journal recorded it.
    pub source: AuditSource,
    /// What was disclosed or receipted.
    pub entity: Vec<AuditEntity>,
}

pub(super) fn event_ref(id: &str) -> Reference {
    Reference {
        identifier: Some(Identifier::new(ID_EVENT, id)),
        ..Reference::default()
    }
}

pub(super) fn kind_concept(k: Kind) -> CodeableConcept {
    CodeableConcept::of(Coding::bare(CS_EVENT_KIND, k.token()))
}

fn dicom(code: &str, display: &str) -> CodeableConcept {
    CodeableConcept::of(Coding::new(CS_DICOM, code, display))
}

fn detail(code: &str) -> CodeableConcept {
    CodeableConcept::of(Coding::bare(CS_DETAIL, code))
}

/// The events `e` answers (`source`) or forwards (`quotation`), by id.
pub(super) fn answered(cx: &Cx<'_>, e: &SignedEvent) -> Vec<(&'static str, String)> {
    let r = |x: &Option<pb::EventRef>| x.as_ref().map(|x| x.event_id.clone());
    let one = match e.event.body.as_ref() {
        Some(Body::ReferralReceived(b)) => r(&b.request),
        Some(Body::ReferralAccepted(b)) => r(&b.request),
        Some(Body::ReferralRejected(b)) => r(&b.request),
        Some(Body::ReferralStarted(b)) => r(&b.request),
        Some(Body::ReferralCompleted(b)) => r(&b.request),
        Some(Body::ReferralFailed(b)) => r(&b.request),
        Some(Body::ReferralCancelled(b)) => r(&b.request),
        Some(Body::HandoverAccepted(b)) => r(&b.offer),
        Some(Body::HandoverRejected(b)) => r(&b.offer),
        Some(Body::HandoverCancelled(b)) => r(&b.offer),
        Some(Body::HandoverExpired(b)) => r(&b.offer),
        Some(Body::ConsentWithdrawn(b)) => Some(b.consent_id.clone()),
        Some(Body::WithdrawalAcknowledged(b)) => r(&b.withdrawal),
        Some(Body::Receipt(b)) => r(&b.event),
        Some(Body::Forwarded(_)) => {
            return cx
                .inner_of(e)
                .map(|i| vec![("quotation", i.event.event_id.clone())])
                .unwrap_or_default();
        }
        _ => None,
    };
    one.into_iter().map(|id| ("source", id)).collect()
}

/// The data categories a disclosure discloses: the body's own and `shares`
/// (for a forward, the forwarded event's).
fn categories(cx: &Cx<'_>, e: &SignedEvent) -> BTreeSet<DataCategory> {
    let subject = if e.kind == Kind::Forwarded {
        match cx.inner_of(e) {
            Some(i) => i,
            None => return BTreeSet::new(),
        }
    } else {
        e
    };
    let mut out: BTreeSet<DataCategory> = subject
        .event
        .shares
        .iter()
        .filter_map(|c| codes::category(*c))
        .collect();
    if let Kind::Event(k) = subject.kind {
        out.insert(k.category());
    }
    out
}

/// The `AuditEvent` of `e`, if it is a disclosure or a receipt.
pub(super) fn audit_event(cx: &mut Cx<'_>, e: &SignedEvent) -> Option<AuditEvent> {
    let ev = &e.event;
    if ev.recipient_id.is_empty() {
        return None;
    }
    let sender = cx.org(&ev.sender_id);
    let recipient = cx.org(&ev.recipient_id);
    let mut a = AuditEvent {
        id: super::derived("AuditEvent", &ev.event_id).to_string(),
        category: Vec::new(),
        code: kind_concept(e.kind),
        action: "R",
        occurred_date_time: e.occurred_at.to_string(),
        recorded: e.recorded_at.to_string(),
        outcome: None,
        authorization: Vec::new(),
        patient: cx.person(),
        agent: Vec::new(),
        source: AuditSource {
            observer: sender.clone(),
        },
        entity: Vec::new(),
    };
    if let Some(Body::Receipt(r)) = &ev.body {
        // The receipt's sender is the agency that received the event.
        let (status, display) = match pb::ReceiptStatus::try_from(r.status) {
            Ok(pb::ReceiptStatus::Journaled) => ("0", "Success"),
            _ => ("4", "Minor failure"),
        };
        a.category = vec![dicom("110107", "Import")];
        a.action = "C";
        a.outcome = Some(Outcome {
            code: Coding::new(CS_AUDIT_OUTCOME, status, display),
            detail: (!r.reason.is_empty())
                .then(|| CodeableConcept::text(r.reason.clone()))
                .into_iter()
                .collect(),
        });
        a.agent = vec![
            AuditAgent {
                kind: dicom("110152", "Destination Role ID"),
                who: sender,
                requestor: false,
                policy: Vec::new(),
            },
            AuditAgent {
                kind: dicom("110153", "Source Role ID"),
                who: recipient,
                requestor: true,
                policy: Vec::new(),
            },
        ];
        if let Some(er) = &r.event {
            a.entity.push(AuditEntity {
                what: event_ref(&er.event_id),
                detail: vec![
                    Detail {
                        kind: detail("journal_seq"),
                        value_string: Some(r.journal_seq.to_string()),
                        value_codeable_concept: None,
                    },
                    Detail {
                        kind: detail("envelope_sha256"),
                        value_string: Some(hex::encode(&er.envelope_hash)),
                        value_codeable_concept: None,
                    },
                ],
            });
            if let Some(x) = cx.record.event(&er.event_id) {
                for what in cx.about(x) {
                    a.entity.push(AuditEntity {
                        what,
                        detail: Vec::new(),
                    });
                }
            }
        }
        return Some(a);
    }
    a.category = vec![dicom("110106", "Export")];
    if let Some(p) = codes::purpose(ev.purpose) {
        a.authorization.push(CodeableConcept::of(Coding::new(
            CS_PURPOSE,
            p.as_str(),
            codes::purpose_display(p),
        )));
    }
    let mut policy = Vec::new();
    match ev.basis.as_ref().and_then(|b| b.basis.as_ref()) {
        Some(Basis::ConsentId(id)) => {
            let r = cx.consent_ref(id);
            policy.extend(r.reference);
        }
        Some(Basis::Legal(l)) => {
            if let Some(b) = codes::legal_basis(l.basis) {
                a.authorization.push(CodeableConcept {
                    coding: vec![Coding::new(
                        CS_LEGAL_BASIS,
                        b.as_str(),
                        codes::legal_basis_display(b),
                    )],
                    text: (!l.justification.is_empty()).then(|| l.justification.clone()),
                });
            }
        }
        None => {}
    }
    a.agent = vec![
        AuditAgent {
            kind: dicom("110153", "Source Role ID"),
            who: sender,
            requestor: true,
            policy,
        },
        AuditAgent {
            kind: dicom("110152", "Destination Role ID"),
            who: recipient,
            requestor: false,
            policy: Vec::new(),
        },
    ];
    let details = categories(cx, e)
        .into_iter()
        .map(|c| Detail {
            kind: detail("data_category"),
            value_string: None,
            value_codeable_concept: Some(CodeableConcept::of(Coding::new(
                CS_DATA_CATEGORY,
                c.as_str(),
                codes::category_display(c),
            ))),
        })
        .collect();
    let disclosed = match cx.inner_of(e) {
        Some(inner) if e.kind == Kind::Forwarded => inner,
        _ => e,
    };
    a.entity.push(AuditEntity {
        what: event_ref(&disclosed.event.event_id),
        detail: details,
    });
    for what in cx.about(disclosed) {
        a.entity.push(AuditEntity {
            what,
            detail: Vec::new(),
        });
    }
    Some(a)
}
