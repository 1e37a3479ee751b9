//! NATS subjects: the only place they are built or parsed.
//!
//! | subject | published by | meaning |
//! |---|---|---|
//! | `waymark.v1.evt.<sender>.<recipient>.<kind>` | the sender | one signed event for one recipient; `<kind>` is [`EventKind::as_str`] of the body, or [`FORWARDED`] |
//! | `waymark.v1.evt.<sender>.<recipient>.batch` | the sender | an `EventBatch`: several signed events for one recipient ([`crate::batch`]) |
//! | `waymark.v1.ckpt.<agency>` | the agency | a `CheckpointAnnouncement` of its journal |
//! | `waymark.v1.cosig.<witness>.<agency>` | the witness | a signed `Cosignature` of one of `<agency>`'s checkpoints |
//!
//! Tokens are agency ids ([`AgencyId`] excludes `.`, `*`, `>` and whitespace)
//! and fixed kind tokens, so no subject can carry personal data, and NATS
//! permissions can pin an agency to its own sender token.

use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_types::{AgencyId, EventKind};

/// Kind token of a forwarded event. `waymark_types::EventKind` has no
/// `Forwarded` variant (the policy treats a forward as a wrapper, not a
/// fact), so the bus owns this token.
pub const FORWARDED: &str = "forwarded";

/// Kind token of a transport batch ([`crate::batch`]); no event kind is
/// spelled this way.
pub const BATCH: &str = "batch";

const EVT: &str = "waymark.v1.evt";
const CKPT: &str = "waymark.v1.ckpt";
const COSIG: &str = "waymark.v1.cosig";

/// The kind token of an event subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    /// A fact of this kind.
    Event(EventKind),
    /// Another agency's signed event, forwarded whole.
    Forwarded,
    /// Several events in one `EventBatch` message ([`crate::batch`]).
    Batch,
}

impl SubjectKind {
    /// The subject token.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Event(k) => k.as_str(),
            SubjectKind::Forwarded => FORWARDED,
            SubjectKind::Batch => BATCH,
        }
    }

    /// Parses a subject token.
    pub fn parse(s: &str) -> Option<Self> {
        if s == FORWARDED {
            return Some(SubjectKind::Forwarded);
        }
        if s == BATCH {
            return Some(SubjectKind::Batch);
        }
        s.parse().ok().map(SubjectKind::Event)
    }

    /// The kind of an event's body, or `None` when no body is set.
    pub fn of_event(e: &pb::Event) -> Option<Self> {
        e.body.as_ref().map(kind_of_body)
    }
}

/// A parsed subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An event from `sender` to `recipient`.
    Event {
        /// Sender token.
        sender: AgencyId,
        /// Recipient token.
        recipient: AgencyId,
        /// Kind token.
        kind: SubjectKind,
    },
    /// A checkpoint announcement of `agency`.
    Checkpoint {
        /// The announcing agency.
        agency: AgencyId,
    },
    /// A cosignature by `witness` of a checkpoint of `agency`.
    Cosignature {
        /// The witnessing agency.
        witness: AgencyId,
        /// The agency whose checkpoint it is.
        agency: AgencyId,
    },
}

/// The subject of an event from `sender` to `recipient`.
pub fn event(sender: &AgencyId, recipient: &AgencyId, kind: SubjectKind) -> String {
    format!("{EVT}.{sender}.{recipient}.{}", kind.as_str())
}

/// Everything addressed to `me` (an inbox consumer's filter).
pub fn inbox_filter(me: &AgencyId) -> String {
    format!("{EVT}.*.{me}.*")
}

/// All event subjects (the event stream's subject).
pub fn all_events() -> String {
    format!("{EVT}.>")
}

/// The checkpoint subject of `agency`.
pub fn checkpoint(agency: &AgencyId) -> String {
    format!("{CKPT}.{agency}")
}

/// Every agency's checkpoints (a witness consumer's filter).
pub fn all_checkpoints() -> String {
    format!("{CKPT}.*")
}

/// All checkpoint subjects (the checkpoint stream's first subject).
pub fn all_checkpoints_stream() -> String {
    format!("{CKPT}.>")
}

/// The subject of `witness`'s cosignature of a checkpoint of `agency`.
pub fn cosignature(witness: &AgencyId, agency: &AgencyId) -> String {
    format!("{COSIG}.{witness}.{agency}")
}

/// Cosignatures of `agency`'s checkpoints, by any witness.
pub fn cosignatures_for(agency: &AgencyId) -> String {
    format!("{COSIG}.*.{agency}")
}

/// All cosignature subjects (the checkpoint stream's second subject).
pub fn all_cosignatures() -> String {
    format!("{COSIG}.>")
}

/// The subjects `me` may publish on: its own sender token of events, its
/// own checkpoints, its own cosignatures. The broker's per-agency
/// permissions (`waymark keys nats`) are built from exactly this list.
pub fn published_by(me: &AgencyId) -> [String; 3] {
    [
        format!("{EVT}.{me}.>"),
        checkpoint(me),
        format!("{COSIG}.{me}.>"),
    ]
}

/// The reply-inbox prefix of `me`'s NATS connection (`_INBOX_<me>`): every
/// JetStream API reply and pull delivery to `me` arrives under it, so the
/// broker lets `me` subscribe there and nowhere else.
pub fn inbox_prefix(me: &AgencyId) -> String {
    format!("_INBOX_{me}")
}

/// Parses any Waymark subject; `None` if it is not one this crate builds.
pub fn parse(s: &str) -> Option<Subject> {
    let t: Vec<&str> = s.split('.').collect();
    let agency = |x: &str| AgencyId::new(x).ok();
    match t.as_slice() {
        ["waymark", "v1", "evt", sender, recipient, kind] => Some(Subject::Event {
            sender: agency(sender)?,
            recipient: agency(recipient)?,
            kind: SubjectKind::parse(kind)?,
        }),
        ["waymark", "v1", "ckpt", a] => Some(Subject::Checkpoint { agency: agency(a)? }),
        ["waymark", "v1", "cosig", w, a] => Some(Subject::Cosignature {
            witness: agency(w)?,
            agency: agency(a)?,
        }),
        _ => None,
    }
}

/// The kind of a body (the `body` oneof member that is set).
pub fn kind_of_body(b: &B) -> SubjectKind {
    use EventKind as K;
    let k = match b {
        B::CaseOpened(_) => K::CaseOpened,
        B::ConsentGranted(_) => K::ConsentGranted,
        B::ConsentWithdrawn(_) => K::ConsentWithdrawn,
        B::WithdrawalAcknowledged(_) => K::WithdrawalAcknowledged,
        B::CaseErased(_) => K::CaseErased,
        B::ErasureAcknowledged(_) => K::ErasureAcknowledged,
        B::RefusalRecorded(_) => K::RefusalRecorded,
        B::CaseClosed(_) => K::CaseClosed,
        B::ReferralRequested(_) => K::ReferralRequested,
        B::ReferralReceived(_) => K::ReferralReceived,
        B::ReferralAccepted(_) => K::ReferralAccepted,
        B::ReferralRejected(_) => K::ReferralRejected,
        B::ReferralStarted(_) => K::ReferralStarted,
        B::ReferralCompleted(_) => K::ReferralCompleted,
        B::ReferralFailed(_) => K::ReferralFailed,
        B::ReferralCancelled(_) => K::ReferralCancelled,
        B::HandoverOffered(_) => K::HandoverOffered,
        B::HandoverAccepted(_) => K::HandoverAccepted,
        B::HandoverRejected(_) => K::HandoverRejected,
        B::HandoverCancelled(_) => K::HandoverCancelled,
        B::HandoverExpired(_) => K::HandoverExpired,
        B::Receipt(_) => K::Receipt,
        B::SignalReceived(_) => K::SignalReceived,
        B::ReasonableGroundsDecided(_) => K::ReasonableGroundsDecided,
        B::IdentificationConcluded(_) => K::IdentificationConcluded,
        B::ProceedingsStatusRecorded(_) => K::ProceedingsStatusRecorded,
        B::CapacityUpdated(_) => K::CapacityUpdated,
        B::Admitted(_) => K::Admitted,
        B::Discharged(_) => K::Discharged,
        B::SafetyPlanAgreed(_) => K::SafetyPlanAgreed,
        B::ReflectionPeriodStarted(_) => K::ReflectionPeriodStarted,
        B::ServiceDelivered(_) => K::ServiceDelivered,
        B::OutreachContactRecorded(_) => K::OutreachContactRecorded,
        B::HotlineIntakeRecorded(_) => K::HotlineIntakeRecorded,
        B::MonitoringContactRecorded(_) => K::MonitoringContactRecorded,
        B::ReturnRequested(_) => K::ReturnRequested,
        B::ReturnRiskAssessed(_) => K::ReturnRiskAssessed,
        B::TravelDocumentsIssued(_) => K::TravelDocumentsIssued,
        B::ReturnScheduled(_) => K::ReturnScheduled,
        B::DepartureRecorded(_) => K::DepartureRecorded,
        B::ReceptionConfirmed(_) => K::ReceptionConfirmed,
        B::ReintegrationPlanAgreed(_) => K::ReintegrationPlanAgreed,
        B::ReintegrationMeasureRecorded(_) => K::ReintegrationMeasureRecorded,
        B::MonitoringScheduled(_) => K::MonitoringScheduled,
        B::Forwarded(_) => return SubjectKind::Forwarded,
    };
    SubjectKind::Event(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> AgencyId {
        AgencyId::new(s).unwrap()
    }

    #[test]
    fn round_trips() {
        let (p, s) = (a("bg-police-sofia"), a("shelter-varna"));
        for kind in EventKind::ALL
            .iter()
            .map(|k| SubjectKind::Event(*k))
            .chain([SubjectKind::Forwarded])
        {
            let subj = event(&p, &s, kind);
            assert_eq!(
                parse(&subj),
                Some(Subject::Event {
                    sender: p.clone(),
                    recipient: s.clone(),
                    kind
                })
            );
        }
        assert_eq!(
            parse(&checkpoint(&p)),
            Some(Subject::Checkpoint { agency: p.clone() })
        );
        assert_eq!(
            parse(&cosignature(&s, &p)),
            Some(Subject::Cosignature {
                witness: s,
                agency: p
            })
        );
    }

    #[test]
    fn rejects_foreign_and_malformed_subjects() {
        for s in [
            "",
            "waymark.v1.evt.a1.b1",
            "waymark.v1.evt.A1.b1.receipt",
            "waymark.v1.evt.a1.b1.no_such_kind",
            "waymark.v2.ckpt.a1",
            "waymark.v1.ckpt.a1.extra",
            "waymark.v1.evt.a1.b1.receipt.x",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }

    #[test]
    fn filters_match_the_builders() {
        let me = a("shelter-varna");
        assert_eq!(inbox_filter(&me), "waymark.v1.evt.*.shelter-varna.*");
        assert_eq!(all_checkpoints(), "waymark.v1.ckpt.*");
        assert_eq!(cosignatures_for(&me), "waymark.v1.cosig.*.shelter-varna");
        assert_eq!(inbox_prefix(&me), "_INBOX_shelter-varna");
        let own = published_by(&me);
        assert_eq!(
            own,
            [
                "waymark.v1.evt.shelter-varna.>",
                "waymark.v1.ckpt.shelter-varna",
                "waymark.v1.cosig.shelter-varna.>"
            ]
        );
    }

    /// What an agency publishes is inside its own permissions: every event
    /// it sends, its checkpoints and its cosignatures start with a prefix of
    /// [`published_by`]; another agency's never do.
    #[test]
    fn published_by_covers_exactly_the_own_subjects() {
        let (me, other) = (a("shelter-varna"), a("bg-police-sofia"));
        let covered = |who: &AgencyId, subject: &str| {
            published_by(who).iter().any(|p| match p.strip_suffix('>') {
                Some(prefix) => subject.starts_with(prefix),
                None => subject == p,
            })
        };
        let kind = SubjectKind::Event(EventKind::Receipt);
        for s in [
            event(&me, &other, kind),
            checkpoint(&me),
            cosignature(&me, &other),
        ] {
            assert!(covered(&me, &s), "{s}");
            assert!(!covered(&other, &s), "{s}");
        }
    }
}
