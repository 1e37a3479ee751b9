//! `Provenance`: one signed event that produced or changed a resource,
//! carrying the event's envelope signature.

use base64::Engine;
use serde::Serialize;
use waymark_proto::PAYLOAD_TYPE_EVENT;

use super::Cx;
use super::audit::{answered, event_ref, kind_concept};
use super::model::{CodeableConcept, CodeableReference, Coding, Extension, Reference, Signature};
use crate::codes::{self, *};
use crate::source::SignedEvent;

/// `Provenance.agent`.
#[derive(Debug, Clone, Serialize)]
pub struct ProvenanceAgent {
    /// `author`.
    #[serde(rename = "type")]
    pub kind: CodeableConcept,
    /// The signing agency.
    pub who: Reference,
}

/// `Provenance.entity`.
#[derive(Debug, Clone, Serialize)]
pub struct ProvenanceEntity {
    /// `source` (an answered event) or `quotation` (a forwarded one).
    pub role: &'static str,
    /// The event, by id.
    pub what: Reference,
}

/// `Provenance`: one signed event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// Derived from the event id.
    pub id: String,
    /// SHA-256 of the signed envelope.
    pub extension: Vec<Extension>,
    /// The resources the event produced or changed.
    pub target: Vec<Reference>,
    /// `occurred_at`.
    pub occurred_date_time: String,
    /// When the journal the copy was read from recorded it.
    pub recorded: String,
    /// The rule set the event was made under.
    pub policy: Vec<String>,
    /// The purpose of a disclosure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization: Vec<CodeableReference>,
    /// The Waymark event kind.
    pub activity: CodeableConcept,
    /// The person, by case id.
    pub patient: Reference,
    /// The signing agency.
    pub agent: Vec<ProvenanceAgent>,
    /// Events this one answers or forwards.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entity: Vec<ProvenanceEntity>,
    /// The envelope's signatures.
    pub signature: Vec<Signature>,
}

/// The `Provenance` of `e`, targeting `targets` (not empty).
pub(super) fn provenance(cx: &mut Cx<'_>, e: &SignedEvent, target: Vec<Reference>) -> Provenance {
    let ev = &e.event;
    let who = cx.org(&ev.sender_id);
    let b64 = base64::engine::general_purpose::STANDARD;
    Provenance {
        id: super::derived("Provenance", &ev.event_id).to_string(),
        extension: vec![Extension {
            url: EXT_ENVELOPE_SHA256.into(),
            value_string: hex::encode(e.envelope_sha256),
        }],
        target,
        occurred_date_time: e.occurred_at.to_string(),
        recorded: e.recorded_at.to_string(),
        policy: vec![format!("{POLICY_RULE_SET}{}", ev.rule_set)],
        authorization: codes::purpose(ev.purpose)
            .map(|p| {
                CodeableReference::concept(CodeableConcept::of(Coding::new(
                    CS_PURPOSE,
                    p.as_str(),
                    codes::purpose_display(p),
                )))
            })
            .into_iter()
            .collect(),
        activity: kind_concept(e.kind),
        patient: cx.person(),
        agent: vec![ProvenanceAgent {
            kind: CodeableConcept::of(Coding::new(CS_PROVENANCE_AGENT, "author", "Author")),
            who: who.clone(),
        }],
        entity: answered(cx, e)
            .into_iter()
            .map(|(role, id)| ProvenanceEntity {
                role,
                what: event_ref(&id),
            })
            .collect(),
        signature: e
            .signatures
            .iter()
            .map(|s| Signature {
                extension: vec![Extension {
                    url: EXT_KEY_ID.into(),
                    value_string: s.key_id.clone(),
                }],
                kind: vec![Coding::new(
                    CS_SIGNATURE_TYPE,
                    "1.2.840.10065.1.12.1.1",
                    "Author's Signature",
                )],
                when: e.occurred_at.to_string(),
                who: who.clone(),
                target_format: PAYLOAD_TYPE_EVENT.into(),
                sig_format: SIG_FORMAT.into(),
                data: b64.encode(&s.sig),
            })
            .collect(),
    }
}
