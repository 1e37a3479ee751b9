//! `Consent`: a consent grant in its state after every event (see the
//! crate docs for the mapping).

use serde::Serialize;
use waymark_types::AgencyKind;

use super::Cx;
use super::model::{CodeableConcept, Coding, Identifier, Period, Reference};
use super::resources::agency_kind_coding;
use crate::codes::{self, *};
use crate::history::Consent as WmConsent;

/// `Consent.provision.actor`.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentActor {
    /// `IRCP` (information recipient), with the agency kind for a kind.
    pub role: CodeableConcept,
    /// The recipient agency, when named by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
}

/// `Consent.provision`.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentProvision {
    /// Who may receive.
    pub actor: Vec<ConsentActor>,
    /// `disclose`.
    pub action: Vec<CodeableConcept>,
    /// Purposes allowed.
    pub purpose: Vec<Coding>,
    /// Data categories allowed.
    pub code: Vec<CodeableConcept>,
}

/// `Consent`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Consent {
    /// The consent id.
    pub id: String,
    /// `urn:waymark:consent|<id>`.
    pub identifier: Vec<Identifier>,
    /// `active`, or `inactive` once withdrawn.
    pub status: &'static str,
    /// The person, by case id.
    pub subject: Reference,
    /// The day it was given.
    pub date: String,
    /// Validity: from `valid_from` to `valid_until`, or to the withdrawal's
    /// effect if earlier.
    pub period: Period,
    /// The person; a representative who consented for them.
    pub grantor: Vec<Reference>,
    /// Recipient agencies named by id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grantee: Vec<Reference>,
    /// The agency that obtained it.
    pub controller: Vec<Reference>,
    /// Always `permit`.
    pub decision: &'static str,
    /// What is permitted.
    pub provision: Vec<ConsentProvision>,
}

/// A consent.
pub(super) fn consent(cx: &mut Cx<'_>, c: &WmConsent<'_>) -> Consent {
    use waymark_policy::wire::timestamp_from_proto as ts;
    let ev = &c.grant.event;
    let scope = c.body.scope.clone().unwrap_or_default();
    let from = c
        .body
        .valid_from
        .as_ref()
        .and_then(ts)
        .unwrap_or(c.grant.occurred_at);
    let until = c.body.valid_until.as_ref().and_then(ts);
    let end = match (until, c.withdrawal.as_ref().map(|w| w.effective_at)) {
        (Some(u), Some(w)) => Some(u.min(w)),
        (u, w) => u.or(w),
    };
    let obtained_by = if c.body.obtained_by_agency_id.is_empty() {
        ev.sender_id.clone()
    } else {
        c.body.obtained_by_agency_id.clone()
    };
    let mut grantor = vec![cx.person()];
    if let Some(role) = codes::representative(c.body.representative) {
        grantor.push(Reference {
            kind: Some("RelatedPerson".into()),
            display: Some(format!("the person's {role}, consenting on their behalf")),
            ..Reference::default()
        });
    }
    let ircp = || Coding::new(CS_V3_PARTICIPATION, "IRCP", "information recipient");
    let mut ids = scope.recipient_ids.clone();
    ids.sort();
    ids.dedup();
    let mut actor = Vec::new();
    let mut grantee = Vec::new();
    for id in &ids {
        let r = cx.org(id);
        grantee.push(r.clone());
        actor.push(ConsentActor {
            role: CodeableConcept::of(ircp()),
            reference: Some(r),
        });
    }
    let mut kinds: Vec<AgencyKind> = scope
        .recipient_kinds
        .iter()
        .filter_map(|k| codes::agency_kind(*k))
        .collect();
    kinds.sort();
    kinds.dedup();
    for k in kinds {
        actor.push(ConsentActor {
            role: CodeableConcept {
                coding: vec![ircp(), agency_kind_coding(k)],
                text: Some(format!("any agency of kind {k}")),
            },
            reference: None,
        });
    }
    let mut purposes: Vec<_> = scope
        .purposes
        .iter()
        .filter_map(|p| codes::purpose(*p))
        .collect();
    purposes.sort();
    purposes.dedup();
    let mut cats: Vec<_> = scope
        .categories
        .iter()
        .filter_map(|c| codes::category(*c))
        .collect();
    cats.sort();
    cats.dedup();
    Consent {
        id: ev.event_id.clone(),
        identifier: vec![Identifier::new(ID_CONSENT, ev.event_id.clone())],
        status: if c.withdrawal.is_some() {
            "inactive"
        } else {
            "active"
        },
        subject: cx.person(),
        date: c.grant.occurred_at.to_string().chars().take(10).collect(),
        period: Period {
            start: Some(from.to_string()),
            end: end.map(|t| t.to_string()),
        },
        grantor,
        grantee,
        controller: vec![cx.org(&obtained_by)],
        decision: "permit",
        provision: vec![ConsentProvision {
            actor,
            action: vec![CodeableConcept::of(Coding::new(
                CS_CONSENT_ACTION,
                "disclose",
                "Disclose",
            ))],
            purpose: purposes
                .into_iter()
                .map(|p| Coding::new(CS_PURPOSE, p.as_str(), codes::purpose_display(p)))
                .collect(),
            code: cats
                .into_iter()
                .map(|c| {
                    CodeableConcept::of(Coding::new(
                        CS_DATA_CATEGORY,
                        c.as_str(),
                        codes::category_display(c),
                    ))
                })
                .collect(),
        }],
    }
}
