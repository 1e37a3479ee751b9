//! Read models: the policy state and journal entries as protocol views, and
//! the one-line timeline summaries (ids, kinds and enum tokens only: never
//! personal data, never free text from a body).

use prost::Message;
use waymark_bus::subjects::SubjectKind;
use waymark_crypto::proto_from_timestamp;
use waymark_policy::wire::vocab::agency_kind_to_proto;
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;

use crate::agency::Core;
use crate::error::ApiError;
use crate::state::{CaseInfo, decode_event};

/// The CaseView of `info` (reads the closing event for its exact outcome).
pub(crate) fn case_view(core: &Core, info: &CaseInfo) -> Result<pb::CaseView, ApiError> {
    let st = &info.state;
    let outcome = match st.closure() {
        Some(c) => match core.journal.event_seq(&c.event)? {
            Some(seq) => core
                .journal
                .entry(seq)?
                .and_then(|b| pb::JournalEntry::decode(b.as_slice()).ok())
                .and_then(|e| decode_event(&e.envelope))
                .and_then(|e| match e.body {
                    Some(B::CaseClosed(c)) => Some(c.outcome),
                    _ => None,
                })
                .unwrap_or(0),
            None => 0,
        },
        None => 0,
    };
    let custodian = st.custodian();
    Ok(pb::CaseView {
        case_id: st.case().to_string(),
        status: if st.closure().is_some() {
            pb::CaseStatus::Closed
        } else {
            pb::CaseStatus::Open
        } as i32,
        custodian_id: custodian.map(ToString::to_string).unwrap_or_default(),
        custodian_kind: custodian
            .and_then(|c| core.directory.kind(c))
            .map_or(0, |k| agency_kind_to_proto(k) as i32),
        presumed_child: st.presumed_child(),
        pending_handover_id: st
            .pending_handover()
            .map(|(id, _)| id.to_string())
            .unwrap_or_default(),
        reflection_ends_at: st
            .pathway()
            .reflection
            .map(|(_, end)| proto_from_timestamp(end)),
        identification_concluded: st.pathway().identification.is_some(),
        outcome,
        entry_count: info.entries,
        updated_at: info.updated_at,
    })
}

/// An enum value's token: `CASE_OUTCOME_RETURNED` → `returned`.
fn token(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// The kind token of an event body.
pub(crate) fn kind_token(e: &pb::Event) -> &'static str {
    SubjectKind::of_event(e).map_or("unknown", SubjectKind::as_str)
}

/// The timeline line of one journal entry.
pub(crate) fn timeline_entry(seq: u64, entry: &pb::JournalEntry) -> pb::TimelineEntry {
    let mut t = pb::TimelineEntry {
        seq,
        recorded_at: entry.recorded_at,
        entry_kind: entry.kind,
        ..Default::default()
    };
    if entry.kind == pb::EntryKind::Quarantined as i32 {
        let q = entry.quarantine.clone().unwrap_or_default();
        t.event_kind = "quarantined".into();
        t.sender_id = q.claimed_sender.clone();
        t.summary = format!(
            "input quarantined ({}) claiming to come from {}",
            q.reason,
            if q.claimed_sender.is_empty() {
                "an unknown sender"
            } else {
                &q.claimed_sender
            }
        );
        return t;
    }
    let Some(e) = decode_event(&entry.envelope) else {
        t.summary = "entry without an event".into();
        return t;
    };
    t.event_id = e.event_id.clone();
    t.event_kind = kind_token(&e).to_owned();
    t.sender_id = e.sender_id.clone();
    t.recipient_id = e.recipient_id.clone();
    t.summary = summary(&e);
    t
}

/// One line for a caseworker.
pub(crate) fn summary(e: &pb::Event) -> String {
    let what = kind_token(e).replace('_', " ");
    let mut s = format!("{what} by {}", e.sender_id);
    if !e.recipient_id.is_empty() {
        s.push_str(&format!(" to {}", e.recipient_id));
    }
    let detail = match &e.body {
        Some(B::CaseClosed(c)) => pb::CaseOutcome::try_from(c.outcome)
            .ok()
            .map(|o| format!("outcome {}", token(o.as_str_name(), "CASE_OUTCOME_"))),
        Some(B::ReferralRequested(r)) => pb::ServiceType::try_from(r.service)
            .ok()
            .map(|v| format!("service {}", token(v.as_str_name(), "SERVICE_TYPE_"))),
        Some(B::ConsentWithdrawn(w)) => Some(format!("consent {}", w.consent_id)),
        Some(B::WithdrawalAcknowledged(w)) => Some(format!("consent {}", w.consent_id)),
        Some(B::CaseErased(x)) => Some(match &x.requested_by {
            Some(r) => format!("on notice {}", r.event_id),
            None => pb::ErasureGround::try_from(x.ground).map_or_else(
                |_| "ground unknown".to_owned(),
                |g| format!("ground {}", token(g.as_str_name(), "ERASURE_GROUND_")),
            ),
        }),
        Some(B::ErasureAcknowledged(a)) => a
            .erasure
            .as_ref()
            .map(|r| format!("erasure {}", r.event_id)),
        Some(B::HandoverOffered(h)) => h
            .expires_at
            .map(|t| format!("expires {}", waymark_crypto::timestamp_from_proto(&t))),
        Some(B::HandoverAccepted(pb::HandoverAccepted { offer: Some(r) }))
        | Some(B::HandoverCancelled(pb::HandoverCancelled { offer: Some(r) })) => {
            Some(format!("offer {}", r.event_id))
        }
        Some(B::Receipt(r)) => r.event.as_ref().map(|x| format!("for {}", x.event_id)),
        Some(B::Forwarded(f)) => decode_event(&f.envelope).map(|i| {
            format!(
                "{} signed by {}",
                kind_token(&i).replace('_', " "),
                i.sender_id
            )
        }),
        _ => None,
    };
    if let Some(d) = detail {
        s.push_str(", ");
        s.push_str(&d);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_carry_no_free_text() {
        let e = pb::Event {
            sender_id: "police-a".into(),
            recipient_id: "shelter-b".into(),
            body: Some(B::HandoverRejected(pb::HandoverRejected {
                offer: None,
                reason: pb::DeclineReason::Other as i32,
                detail: "Maria Ivanova has no place".into(),
            })),
            ..Default::default()
        };
        let s = summary(&e);
        assert_eq!(s, "handover rejected by police-a to shelter-b");
        assert!(!s.contains("Maria"));
    }
}
