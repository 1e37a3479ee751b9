//! `Organization`, `ServiceRequest` and `Task`: the agencies, and the
//! referrals and handovers of the case in their state after every event
//! (see the crate docs for the mapping tables).

use serde::Serialize;
use waymark_proto::v1::disclosure_basis::Basis;
use waymark_types::AgencyKind;

use super::Cx;
use super::model::{
    Annotation, CodeableConcept, CodeableReference, Coding, Identifier, Period, Reference,
};
use crate::codes::{self, *};
use crate::history::{Handover, HandoverState, Reason, Referral, ReferralState};
use crate::source::SignedEvent;

/// `Organization`: one agency, known by its agency id only.
#[derive(Debug, Clone, Serialize)]
pub struct Organization {
    /// Derived from the agency id.
    pub id: String,
    /// `urn:waymark:agency|<agency id>`.
    pub identifier: Vec<Identifier>,
    /// The agency kind, when known.
    #[serde(rename = "type", skip_serializing_if = "Vec::is_empty")]
    pub kind: Vec<CodeableConcept>,
}

/// `ServiceRequest`: one referral.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    /// The referral id.
    pub id: String,
    /// `urn:waymark:referral|<id>`.
    pub identifier: Vec<Identifier>,
    /// `active`, `completed` or `revoked`.
    pub status: &'static str,
    /// Always `order`.
    pub intent: &'static str,
    /// `urgent` or `routine`.
    pub priority: &'static str,
    /// The service asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeableReference>,
    /// The person, by case id.
    pub subject: Reference,
    /// When requested.
    pub authored_on: String,
    /// The requesting agency.
    pub requester: Reference,
    /// The agency asked.
    pub performer: Vec<Reference>,
    /// The purpose of the disclosure the request is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason: Vec<CodeableReference>,
    /// The consent the request relies on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supporting_info: Vec<CodeableReference>,
}

/// `Task.restriction`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRestriction {
    /// Until when the task may be done (an offer's expiry).
    pub period: Period,
}

/// `Task`: a handover, or the fulfilment of a referral.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// The handover id, or derived from the referral id.
    pub id: String,
    /// `urn:waymark:handover|<id>` for a handover.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    /// The referral a fulfilment task carries out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub based_on: Vec<Reference>,
    /// FHIR task status.
    pub status: &'static str,
    /// Why it was rejected, failed, cancelled or expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<CodeableReference>,
    /// Always `order`.
    pub intent: &'static str,
    /// `handover` or `referral` (Waymark task kinds).
    pub code: CodeableConcept,
    /// The referral a fulfilment task is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focus: Option<Reference>,
    /// The person, by case id.
    #[serde(rename = "for")]
    pub for_: Reference,
    /// From the offer (or the start of delivery) to its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_period: Option<Period>,
    /// When offered or requested.
    pub authored_on: String,
    /// The last event's time.
    pub last_modified: String,
    /// The offering custodian, or the requesting agency.
    pub requester: Reference,
    /// The agency offered custody.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requested_performer: Vec<CodeableReference>,
    /// The custodian after this handover; the performer of a referral.
    pub owner: Reference,
    /// Why custody should move (the offer's reason).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason: Vec<CodeableReference>,
    /// The free-text detail of a rejection, failure or cancellation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub note: Vec<Annotation>,
    /// The offer's expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restriction: Option<TaskRestriction>,
}

pub(super) fn agency_kind_coding(k: AgencyKind) -> Coding {
    Coding::bare(CS_AGENCY_KIND, k.as_str())
}

/// The agency `id`.
pub(super) fn organization(id: &str, kind: Option<AgencyKind>, uuid: String) -> Organization {
    Organization {
        id: uuid,
        identifier: vec![Identifier::new(ID_AGENCY, id)],
        kind: kind
            .map(|k| CodeableConcept::of(agency_kind_coding(k)))
            .into_iter()
            .collect(),
    }
}

fn purpose_concept(v: i32) -> Option<CodeableConcept> {
    codes::purpose(v).map(|p| {
        CodeableConcept::of(Coding::new(
            CS_PURPOSE,
            p.as_str(),
            codes::purpose_display(p),
        ))
    })
}

fn reason_concept(r: &Reason) -> Option<CodeableReference> {
    let coding: Vec<Coding> = r
        .code
        .and_then(codes::decline_reason)
        .map(|(code, display)| Coding::new(CS_REASON, code, display))
        .into_iter()
        .collect();
    (!coding.is_empty()).then(|| CodeableReference::concept(CodeableConcept { coding, text: None }))
}

fn notes(r: Option<&Reason>) -> Vec<Annotation> {
    r.filter(|r| !r.detail.is_empty())
        .map(|r| Annotation {
            text: r.detail.clone(),
        })
        .into_iter()
        .collect()
}

fn last_time(events: &[&SignedEvent]) -> String {
    events
        .iter()
        .map(|e| e.occurred_at)
        .max()
        .unwrap_or_default()
        .to_string()
}

/// The consent an event relies on, as a reference.
pub(super) fn basis_consent(cx: &mut Cx<'_>, e: &SignedEvent) -> Option<Reference> {
    match e.event.basis.as_ref()?.basis.as_ref()? {
        Basis::ConsentId(id) => Some(cx.consent_ref(id)),
        Basis::Legal(_) => None,
    }
}

/// A referral: its `ServiceRequest` and its fulfilment `Task`.
pub(super) fn referral(cx: &mut Cx<'_>, r: &Referral<'_>) -> (ServiceRequest, Task) {
    use ReferralState as S;
    let ev = &r.request.event;
    let id = ev.event_id.clone();
    let (sr_status, task_status) = match r.state {
        S::Requested => ("active", "requested"),
        S::Received => ("active", "received"),
        S::Accepted => ("active", "accepted"),
        S::InProgress => ("active", "in-progress"),
        S::Completed => ("completed", "completed"),
        S::Rejected => ("revoked", "rejected"),
        S::Failed => ("revoked", "failed"),
        S::Cancelled => ("revoked", "cancelled"),
    };
    let requester = cx.org(&ev.sender_id);
    let performer = cx.org(&ev.recipient_id);
    let sr_ref = Reference {
        reference: Some(super::url_of_event(&id)),
        kind: Some("ServiceRequest".into()),
        identifier: Some(Identifier::new(ID_REFERRAL, id.clone())),
        display: None,
    };
    let sr = ServiceRequest {
        id: id.clone(),
        identifier: vec![Identifier::new(ID_REFERRAL, id.clone())],
        status: sr_status,
        intent: "order",
        priority: if r.body.urgent { "urgent" } else { "routine" },
        code: codes::service_type(r.body.service).map(|(code, display)| {
            CodeableReference::concept(CodeableConcept::of(Coding::new(
                CS_SERVICE_TYPE,
                code,
                display,
            )))
        }),
        subject: cx.person(),
        authored_on: r.request.occurred_at.to_string(),
        requester: requester.clone(),
        performer: vec![performer.clone()],
        reason: purpose_concept(ev.purpose)
            .map(CodeableReference::concept)
            .into_iter()
            .collect(),
        supporting_info: basis_consent(cx, r.request)
            .map(CodeableReference::reference)
            .into_iter()
            .collect(),
    };
    let execution_period = (r.started.is_some() || r.ended.is_some()).then(|| Period {
        start: r.started.map(|t| t.to_string()),
        end: r.ended.map(|t| t.to_string()),
    });
    let task = Task {
        id: super::derived("referral-task", &id).to_string(),
        identifier: Vec::new(),
        based_on: vec![sr_ref.clone()],
        status: task_status,
        status_reason: r.reason.as_ref().and_then(reason_concept),
        intent: "order",
        code: CodeableConcept::of(Coding::new(CS_TASK_KIND, "referral", "Referral fulfilment")),
        focus: Some(sr_ref),
        for_: cx.person(),
        execution_period,
        authored_on: r.request.occurred_at.to_string(),
        last_modified: last_time(&r.events),
        requester,
        requested_performer: Vec::new(),
        owner: performer,
        reason: Vec::new(),
        note: notes(r.reason.as_ref()),
        restriction: None,
    };
    (sr, task)
}

/// A handover as a `Task`.
pub(super) fn handover(cx: &mut Cx<'_>, h: &Handover<'_>) -> Task {
    use HandoverState as S;
    let ev = &h.offer.event;
    let id = ev.event_id.clone();
    let status = match h.state {
        S::Offered => "requested",
        S::Accepted => "completed",
        S::Rejected => "rejected",
        S::Cancelled => "cancelled",
        S::Expired => "failed",
    };
    let from = cx.org(&ev.sender_id);
    let to = cx.org(&ev.recipient_id);
    let status_reason = match h.state {
        S::Expired => Some(CodeableReference::concept(CodeableConcept::of(
            Coding::new(CS_REASON, "expired", "The offer expired unanswered"),
        ))),
        _ => h.reason.as_ref().and_then(reason_concept),
    };
    Task {
        id: id.clone(),
        identifier: vec![Identifier::new(ID_HANDOVER, id)],
        based_on: Vec::new(),
        status,
        status_reason,
        intent: "order",
        code: CodeableConcept::of(Coding::new(CS_TASK_KIND, "handover", "Custody handover")),
        focus: None,
        for_: cx.person(),
        execution_period: Some(Period {
            start: Some(h.offer.occurred_at.to_string()),
            end: h.resolved.map(|t| t.to_string()),
        }),
        authored_on: h.offer.occurred_at.to_string(),
        last_modified: last_time(&h.events),
        requester: from.clone(),
        requested_performer: vec![CodeableReference::reference(to.clone())],
        owner: if h.state == S::Accepted { to } else { from },
        reason: (!h.body.reason.is_empty())
            .then(|| CodeableReference::concept(CodeableConcept::text(h.body.reason.clone())))
            .into_iter()
            .collect(),
        note: notes(h.reason.as_ref()),
        restriction: h
            .body
            .expires_at
            .as_ref()
            .and_then(waymark_policy::wire::timestamp_from_proto)
            .map(|t| TaskRestriction {
                period: Period {
                    start: None,
                    end: Some(t.to_string()),
                },
            }),
    }
}
