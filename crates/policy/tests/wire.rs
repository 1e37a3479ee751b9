//! The wire conversion: every body kind round-trips into the policy model,
//! malformed input is reported field by field, nothing panics.

use std::collections::BTreeSet;

use proptest::prelude::*;
use prost::Message as _;
use waymark_policy::wire::{self, Capacity, Header, vocab};
use waymark_policy::{
    Applied, Body, CaseOutcome, CaseState, ConsentMethod, Disclosure, DisclosureBasis, Event,
    GivenBy, Party, Recipient, RecipientSet, Refusal, Refused, RuleSet, RuleSetRef, Service,
    ServiceReason, View, WireError, WireEvent, event_from_proto,
};
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_types::{
    AgencyId, AgencyKind, CaseId, DataCategory, EventId, EventKind, LegalBasis, Purpose, Timestamp,
};

// ---- Fixtures ---------------------------------------------------------------

const EVENT: &str = "0190a3e4-7b1c-7d2e-8f30-1a2b3c4d5e6f";
const CASE: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const OTHER: &str = "0190a3e4-7b1c-7d2e-8f30-000000000001";
const T0: i64 = 1_790_000_000_000;
const LATER: i64 = T0 + 7 * 86_400_000;

fn ts(ms: i64) -> Option<prost_types::Timestamp> {
    Some(wire::timestamp_to_proto(Timestamp(ms)))
}

fn eid(s: &str) -> EventId {
    EventId::parse(s).unwrap()
}

fn agency(s: &str) -> AgencyId {
    AgencyId::new(s).unwrap()
}

fn reference(id: &str) -> Option<pb::EventRef> {
    Some(pb::EventRef {
        event_id: id.to_owned(),
        envelope_hash: vec![7; 32],
    })
}

/// A valid local event with `body`, sent by police under `bg@1`.
fn proto(body: B) -> pb::Event {
    pb::Event {
        event_id: EVENT.to_owned(),
        case_id: CASE.to_owned(),
        sender_id: "bg-police-sofia".to_owned(),
        sender_kind: pb::AgencyKind::Police as i32,
        occurred_at: ts(T0),
        rule_set: "bg@1".to_owned(),
        body: Some(body),
        ..Default::default()
    }
}

/// `e` sent to a shelter under a consent.
fn sent(mut e: pb::Event) -> pb::Event {
    e.recipient_id = "shelter-sofia".to_owned();
    e.recipient_kind = pb::AgencyKind::Shelter as i32;
    e.basis = Some(pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::ConsentId(OTHER.to_owned())),
    });
    e.purpose = pb::Purpose::Accommodation as i32;
    e
}

fn convert(e: &pb::Event) -> Event {
    match event_from_proto(e) {
        Ok(WireEvent::Event(ev)) => ev,
        other => panic!("expected a case event, got {other:?}"),
    }
}

/// The violated field paths, in order.
fn fields(e: &pb::Event) -> Vec<String> {
    match event_from_proto(e) {
        Ok(ok) => panic!("expected violations, got {ok:?}"),
        Err(err) => err.fields().map(str::to_owned).collect(),
    }
}

// ---- Every body kind ----------------------------------------------------------

/// One proto body per oneof member the policy models, with the policy body it
/// must become.
fn samples() -> Vec<(B, Body)> {
    use pb::*;
    let refs = || reference(OTHER);
    vec![
        (
            B::CaseOpened(CaseOpened {
                channel: IdentificationChannel::Hotline as i32,
                presumed_child: true,
                forms: vec![ExploitationForm::Labour as i32],
                anonymous: true,
            }),
            Body::CaseOpened {
                presumed_child: true,
            },
        ),
        (
            B::ConsentWithdrawn(ConsentWithdrawn {
                consent_id: OTHER.to_owned(),
                effective_at: ts(LATER),
            }),
            Body::ConsentWithdrawn {
                consent: eid(OTHER),
                effective_at: Timestamp(LATER),
            },
        ),
        (
            B::WithdrawalAcknowledged(WithdrawalAcknowledged {
                consent_id: OTHER.to_owned(),
                withdrawal: reference(EVENT),
            }),
            Body::WithdrawalAcknowledged {
                consent: eid(OTHER),
            },
        ),
        (
            B::CaseErased(pb::CaseErased {
                ground: pb::ErasureGround::Notice as i32,
                detail: "request 2026/17".to_owned(),
                requested_by: reference(EVENT),
                held_personal_data: true,
            }),
            Body::CaseErased {
                requested_by: Some(eid(EVENT)),
            },
        ),
        (
            B::CaseErased(pb::CaseErased {
                ground: pb::ErasureGround::PersonRequest as i32,
                ..Default::default()
            }),
            Body::CaseErased { requested_by: None },
        ),
        (
            B::ErasureAcknowledged(pb::ErasureAcknowledged {
                erasure: reference(EVENT),
                attestation: reference(OTHER),
            }),
            Body::ErasureAcknowledged {
                erasure: eid(EVENT),
            },
        ),
        (
            B::RefusalRecorded(RefusalRecorded {
                scope: RefusalScope::Disclosure as i32,
                agency_ids: vec!["ngo-animus".to_owned()],
                purposes: vec![],
            }),
            Body::RefusalRecorded(Refusal {
                of: Refused::Disclosure,
                recipients: RecipientSet::Only([Recipient::Agency(agency("ngo-animus"))].into()),
                purposes: Default::default(),
            }),
        ),
        (
            B::CaseClosed(CaseClosed {
                outcome: CaseOutcome::NotAVictim as i32,
            }),
            Body::CaseClosed {
                outcome: waymark_policy::CaseOutcome::NotIdentified,
            },
        ),
        (
            B::ReferralRequested(ReferralRequested {
                service: ServiceType::Accommodation as i32,
                respond_by: ts(LATER),
                urgent: true,
            }),
            Body::ReferralRequested {
                service: Service::Accommodation,
            },
        ),
        (
            B::ReferralReceived(ReferralReceived { request: refs() }),
            Body::ReferralReceived {
                referral: eid(OTHER),
            },
        ),
        (
            B::ReferralAccepted(ReferralAccepted { request: refs() }),
            Body::ReferralAccepted {
                referral: eid(OTHER),
            },
        ),
        (
            B::ReferralRejected(ReferralRejected {
                request: refs(),
                reason: DeclineReason::NoCapacity as i32,
                detail: "full".to_owned(),
            }),
            Body::ReferralRejected {
                referral: eid(OTHER),
                reason: ServiceReason::NoCapacity,
            },
        ),
        (
            B::ReferralStarted(ReferralStarted { request: refs() }),
            Body::ReferralStarted {
                referral: eid(OTHER),
            },
        ),
        (
            B::ReferralCompleted(ReferralCompleted { request: refs() }),
            Body::ReferralCompleted {
                referral: eid(OTHER),
            },
        ),
        (
            B::ReferralFailed(ReferralFailed {
                request: refs(),
                reason: DeclineReason::ServiceNotOffered as i32,
                detail: String::new(),
            }),
            Body::ReferralFailed {
                referral: eid(OTHER),
                reason: ServiceReason::OutsideMandate,
            },
        ),
        (
            B::ReferralCancelled(ReferralCancelled {
                request: refs(),
                detail: String::new(),
            }),
            Body::ReferralCancelled {
                referral: eid(OTHER),
            },
        ),
        (
            B::HandoverAccepted(HandoverAccepted { offer: refs() }),
            Body::HandoverAccepted { offer: eid(OTHER) },
        ),
        (
            B::HandoverRejected(HandoverRejected {
                offer: refs(),
                reason: DeclineReason::SafetyRisk as i32,
                detail: String::new(),
            }),
            Body::HandoverRejected {
                offer: eid(OTHER),
                reason: ServiceReason::SafetyRisk,
            },
        ),
        (
            B::HandoverCancelled(HandoverCancelled { offer: refs() }),
            Body::HandoverCancelled { offer: eid(OTHER) },
        ),
        (
            B::HandoverExpired(HandoverExpired { offer: refs() }),
            Body::HandoverExpired { offer: eid(OTHER) },
        ),
        (
            B::Receipt(Receipt {
                event: refs(),
                status: ReceiptStatus::Quarantined as i32,
                journal_seq: 42,
                reason: "policy_violation".to_owned(),
            }),
            Body::Receipt {
                of: eid(OTHER),
                quarantined: true,
            },
        ),
        (
            B::SignalReceived(SignalReceived {
                channel: IdentificationChannel::Border as i32,
                indicators: vec!["ilo.deception".to_owned()],
                forms: vec![ExploitationForm::Sexual as i32],
            }),
            Body::SignalReceived,
        ),
        (
            B::ReasonableGroundsDecided(ReasonableGroundsDecided {
                positive: true,
                decided_by_role: "inspector".to_owned(),
            }),
            Body::ReasonableGroundsDecided { positive: true },
        ),
        (
            B::IdentificationConcluded(IdentificationConcluded {
                outcome: IdentificationOutcome::Confirmed as i32,
            }),
            Body::IdentificationConcluded { victim: true },
        ),
        (
            B::ProceedingsStatusRecorded(ProceedingsStatusRecorded {
                cooperation: CooperationStatus::Cooperating as i32,
                stage: ProceedingsStage::Unspecified as i32,
                witness: true,
            }),
            Body::ProceedingsStatusRecorded { cooperating: true },
        ),
        (B::Admitted(Admitted { planned_days: 90 }), Body::Admitted),
        (
            B::Discharged(Discharged {
                reason: DischargeReason::PersonLeft as i32,
            }),
            Body::Discharged {
                reason: ServiceReason::PersonDeclined,
            },
        ),
        (
            B::SafetyPlanAgreed(SafetyPlanAgreed {
                review_by: ts(LATER),
                signed_by_person: true,
            }),
            Body::SafetyPlanAgreed,
        ),
        (
            B::ReflectionPeriodStarted(ReflectionPeriodStarted {
                starts_at: ts(T0),
                ends_at: ts(LATER),
            }),
            Body::ReflectionPeriodStarted {
                starts_at: Timestamp(T0),
                ends_at: Timestamp(LATER),
            },
        ),
        (
            B::ServiceDelivered(ServiceDelivered {
                service: ServiceType::Psychological as i32,
            }),
            Body::ServiceDelivered {
                service: Service::Psychological,
            },
        ),
        (
            B::OutreachContactRecorded(OutreachContactRecorded {
                setting: "street".to_owned(),
            }),
            Body::OutreachContactRecorded,
        ),
        (
            B::HotlineIntakeRecorded(HotlineIntakeRecorded {
                anonymous: true,
                third_party: false,
            }),
            Body::HotlineIntakeRecorded { anonymous: true },
        ),
        (
            B::MonitoringContactRecorded(MonitoringContactRecorded {
                mode: ContactMode::Phone as i32,
                concerns: false,
            }),
            Body::MonitoringContactRecorded,
        ),
        (
            B::ReturnRequested(ReturnRequested {
                requested_by_person: true,
            }),
            Body::ReturnRequested {
                requested_by_person: true,
            },
        ),
        (
            B::ReturnRiskAssessed(ReturnRiskAssessed {
                risk: RiskLevel::Medium as i32,
                child: true,
                best_interests_ok: true,
            }),
            Body::ReturnRiskAssessed {
                best_interests_ok: true,
                child: true,
            },
        ),
        (
            B::TravelDocumentsIssued(TravelDocumentsIssued {
                valid_until: ts(LATER),
            }),
            Body::TravelDocumentsIssued,
        ),
        (
            B::ReturnScheduled(ReturnScheduled {
                departure_at: ts(LATER),
            }),
            Body::ReturnScheduled {
                departure_at: Timestamp(LATER),
            },
        ),
        (
            B::DepartureRecorded(DepartureRecorded { escorted: true }),
            Body::DepartureRecorded,
        ),
        (
            B::ReceptionConfirmed(ReceptionConfirmed {
                partner_id: "iom-ua".to_owned(),
            }),
            Body::ReceptionConfirmed,
        ),
        (
            B::ReintegrationPlanAgreed(ReintegrationPlanAgreed { review_by: None }),
            Body::ReintegrationPlanAgreed,
        ),
        (
            B::ReintegrationMeasureRecorded(ReintegrationMeasureRecorded {
                measure: ReintegrationMeasure::JobReferral as i32,
            }),
            Body::ReintegrationMeasureRecorded,
        ),
        (
            B::MonitoringScheduled(MonitoringScheduled {
                visits: vec![ts(T0).unwrap(), ts(LATER).unwrap()],
            }),
            Body::MonitoringScheduled,
        ),
    ]
}

#[test]
fn every_body_kind_converts_with_its_fields() {
    let mut kinds = BTreeSet::new();
    for (body, expected) in samples() {
        let ev = convert(&proto(body));
        assert_eq!(ev.id, eid(EVENT));
        assert_eq!(ev.case, CaseId::parse(CASE).unwrap());
        assert_eq!(
            ev.sender,
            Party {
                id: agency("bg-police-sofia"),
                kind: AgencyKind::Police
            }
        );
        assert_eq!(ev.recipient, None);
        assert_eq!(ev.at, Timestamp(T0));
        assert_eq!(ev.rule_set, RuleSetRef::new("bg", 1));
        assert_eq!(ev.disclosure, None);
        assert_eq!(ev.body, expected);
        kinds.insert(expected.kind());
    }
    // The bodies built from the event's own fields are covered separately.
    kinds.extend([
        EventKind::ConsentGranted,
        EventKind::HandoverOffered,
        EventKind::CapacityUpdated,
    ]);
    let all: BTreeSet<_> = EventKind::ALL.iter().copied().collect();
    assert_eq!(kinds, all, "a body kind has no round-trip sample");
}

#[test]
fn consent_granted_converts_scope_validity_and_representative() {
    let e = proto(B::ConsentGranted(pb::ConsentGranted {
        scope: Some(pb::ConsentScope {
            recipient_ids: vec!["shelter-sofia".to_owned()],
            recipient_kinds: vec![pb::AgencyKind::Ngo as i32],
            purposes: vec![
                pb::Purpose::Accommodation as i32,
                pb::Purpose::Assistance as i32,
            ],
            categories: vec![pb::DataCategory::Identity as i32],
        }),
        valid_from: None,
        valid_until: ts(LATER),
        method: pb::ConsentMethod::OralWitnessed as i32,
        obtained_by_role: "social worker".to_owned(),
        representative: pb::RepresentativeRole::Guardian as i32,
        language: "bg".to_owned(),
        obtained_by_agency_id: "bg-police-sofia".to_owned(),
    }));
    let Body::ConsentGranted(g) = convert(&e).body else {
        panic!("not a consent");
    };
    assert_eq!(
        g.scope.recipients,
        [
            Recipient::Agency(agency("shelter-sofia")),
            Recipient::Kind(AgencyKind::Ngo)
        ]
        .into()
    );
    assert_eq!(
        g.scope.purposes,
        [Purpose::Accommodation, Purpose::Assistance].into()
    );
    assert_eq!(g.scope.categories, [DataCategory::Identity].into());
    // valid_from defaults to occurred_at.
    assert_eq!(g.scope.valid_from, Timestamp(T0));
    assert_eq!(g.scope.valid_until, Some(Timestamp(LATER)));
    assert_eq!(g.method, ConsentMethod::Oral);
    assert_eq!(g.given_by, GivenBy::Representative);
}

#[test]
fn handover_offer_names_the_recipient_as_offeree() {
    let mut e = sent(proto(B::HandoverOffered(pb::HandoverOffered {
        expires_at: ts(LATER),
        reason: "shelter admission".to_owned(),
    })));
    e.basis = None;
    e.purpose = 0;
    let ev = convert(&e);
    assert_eq!(
        ev.body,
        Body::HandoverOffered {
            to: agency("shelter-sofia"),
            expires_at: Timestamp(LATER),
        }
    );
    assert_eq!(ev.recipient.map(|r| r.kind), Some(AgencyKind::Shelter));
}

#[test]
fn a_sent_event_carries_its_disclosure() {
    let mut e = sent(proto(B::ReferralRequested(pb::ReferralRequested {
        service: pb::ServiceType::Accommodation as i32,
        respond_by: None,
        urgent: false,
    })));
    e.shares = vec![
        pb::DataCategory::Identity as i32,
        pb::DataCategory::Contact as i32,
    ];
    e.sealed = vec![pb::SealedData {
        recipient_key_id: "x25519:abcd".to_owned(),
        suite: "DHKEM(X25519, HKDF-SHA256)/HKDF-SHA256/ChaCha20Poly1305".to_owned(),
        encapsulated_key: vec![1; 32],
        ciphertext: Vec::new(),
        categories: vec![pb::DataCategory::Identity as i32],
        ciphertext_sha256: vec![2; 32],
    }];
    let ev = convert(&e);
    assert_eq!(
        ev.recipient,
        Some(Party {
            id: agency("shelter-sofia"),
            kind: AgencyKind::Shelter
        })
    );
    assert_eq!(
        ev.disclosure,
        Some(Disclosure {
            purpose: Purpose::Accommodation,
            basis: DisclosureBasis::Consent(eid(OTHER)),
            shares: [DataCategory::Identity, DataCategory::Contact].into(),
        })
    );

    // A legal basis keeps its justification verbatim, even an empty one:
    // whether it suffices is the policy's decision.
    e.basis = Some(pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
            basis: pb::LegalBasis::VitalInterests as i32,
            justification: String::new(),
        })),
    });
    assert_eq!(
        convert(&e).disclosure.map(|d| d.basis),
        Some(DisclosureBasis::Legal {
            basis: LegalBasis::VitalInterests,
            justification: String::new(),
        })
    );
}

#[test]
fn capacity_updates_have_no_case() {
    let mut e = proto(B::CapacityUpdated(pb::CapacityUpdated {
        total_places: 12,
        free_places: 3,
        accepts_children: true,
    }));
    e.case_id.clear();
    e.sender_id = "shelter-sofia".to_owned();
    e.sender_kind = pb::AgencyKind::Shelter as i32;
    let Ok(WireEvent::Capacity { header, capacity }) = event_from_proto(&e) else {
        panic!("expected a capacity update");
    };
    assert_eq!(
        capacity,
        Capacity {
            total_places: 12,
            free_places: 3,
            accepts_children: true
        }
    );
    assert_eq!(header.id, eid(EVENT));
    assert_eq!(header.sender.kind, AgencyKind::Shelter);
}

fn envelope(payload_type: &str, signatures: usize) -> Vec<u8> {
    pb::Envelope {
        payload_type: payload_type.to_owned(),
        payload: proto(B::Admitted(pb::Admitted { planned_days: 1 })).encode_to_vec(),
        signatures: (0..signatures)
            .map(|_| pb::Signature {
                key_id: "ed25519:00".to_owned(),
                sig: vec![0; 64],
            })
            .collect(),
    }
    .encode_to_vec()
}

#[test]
fn forwarded_events_are_returned_whole() {
    let inner = envelope(waymark_proto::PAYLOAD_TYPE_EVENT, 1);
    let e = sent(proto(B::Forwarded(pb::Forwarded {
        envelope: inner.clone(),
    })));
    let Ok(WireEvent::Forwarded {
        header,
        case,
        envelope,
    }) = event_from_proto(&e)
    else {
        panic!("expected a forward");
    };
    assert_eq!(envelope, inner);
    assert_eq!(case, CaseId::parse(CASE).unwrap());
    let expected_recipient = Party {
        id: agency("shelter-sofia"),
        kind: AgencyKind::Shelter,
    };
    assert_eq!(
        header,
        Header {
            id: eid(EVENT),
            sender: Party {
                id: agency("bg-police-sofia"),
                kind: AgencyKind::Police,
            },
            recipient: Some(expected_recipient),
            at: Timestamp(T0),
            rule_set: RuleSetRef::new("bg", 1),
            disclosure: Some(Disclosure {
                purpose: Purpose::Accommodation,
                basis: DisclosureBasis::Consent(eid(OTHER)),
                shares: BTreeSet::new(),
            }),
        }
    );
}

#[test]
fn converted_events_feed_the_policy_core() {
    let open = convert(&proto(B::CaseOpened(pb::CaseOpened {
        channel: pb::IdentificationChannel::Police as i32,
        ..Default::default()
    })));
    let rules = RuleSet::bg_v1();
    let mut state = CaseState::new(open.case, View::Auditor);
    assert_eq!(
        state.apply(&open, &rules),
        Ok(Applied::Recorded { disclosure: None })
    );
    assert_eq!(state.custodian(), Some(&agency("bg-police-sofia")));
}

// ---- Malformed input ------------------------------------------------------------

fn referral_accepted() -> pb::Event {
    proto(B::ReferralAccepted(pb::ReferralAccepted {
        request: reference(OTHER),
    }))
}

fn case_opened() -> pb::Event {
    proto(B::CaseOpened(pb::CaseOpened {
        channel: pb::IdentificationChannel::Police as i32,
        ..Default::default()
    }))
}

fn offer() -> pb::Event {
    let mut e = proto(B::HandoverOffered(pb::HandoverOffered {
        expires_at: ts(LATER),
        reason: String::new(),
    }));
    e.recipient_id = "shelter-sofia".to_owned();
    e.recipient_kind = pb::AgencyKind::Shelter as i32;
    e
}

fn consent() -> pb::ConsentGranted {
    pb::ConsentGranted {
        scope: Some(pb::ConsentScope {
            recipient_ids: vec!["shelter-sofia".to_owned()],
            recipient_kinds: vec![],
            purposes: vec![pb::Purpose::Accommodation as i32],
            categories: vec![pb::DataCategory::Identity as i32],
        }),
        valid_until: ts(LATER),
        method: pb::ConsentMethod::Written as i32,
        ..Default::default()
    }
}

fn with(mut e: pb::Event, f: impl FnOnce(&mut pb::Event)) -> pb::Event {
    f(&mut e);
    e
}

fn body_mut(e: &mut pb::Event) -> &mut B {
    e.body.as_mut().unwrap()
}

#[test]
fn malformed_fields_are_reported_by_path() {
    #[allow(clippy::type_complexity)]
    let table: Vec<(&str, pb::Event, &[&str])> = vec![
        (
            "bad uuid",
            with(case_opened(), |e| e.event_id = "not-a-uuid".into()),
            &["event_id"],
        ),
        (
            "missing event id",
            with(case_opened(), |e| e.event_id.clear()),
            &["event_id"],
        ),
        (
            "uppercase case id",
            with(case_opened(), |e| e.case_id = CASE.to_uppercase()),
            &["case_id"],
        ),
        (
            "unhyphenated case id",
            with(case_opened(), |e| e.case_id = CASE.replace('-', "")),
            &["case_id"],
        ),
        (
            "missing case id",
            with(case_opened(), |e| e.case_id.clear()),
            &["case_id"],
        ),
        (
            "sender id breaks a subject",
            with(case_opened(), |e| e.sender_id = "bg.police".into()),
            &["sender_id"],
        ),
        (
            "unspecified sender kind",
            with(case_opened(), |e| e.sender_kind = 0),
            &["sender_kind"],
        ),
        (
            "unknown sender kind",
            with(case_opened(), |e| e.sender_kind = 999),
            &["sender_kind"],
        ),
        (
            "missing timestamp",
            with(case_opened(), |e| e.occurred_at = None),
            &["occurred_at"],
        ),
        (
            "negative nanos",
            with(case_opened(), |e| {
                e.occurred_at = Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: -1,
                });
            }),
            &["occurred_at"],
        ),
        (
            "timestamp beyond year 9999",
            with(case_opened(), |e| {
                e.occurred_at = Some(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                });
            }),
            &["occurred_at"],
        ),
        (
            "missing rule set",
            with(case_opened(), |e| e.rule_set.clear()),
            &["rule_set"],
        ),
        (
            "rule set without version",
            with(case_opened(), |e| e.rule_set = "bg".into()),
            &["rule_set"],
        ),
        (
            "rule set version 0",
            with(case_opened(), |e| e.rule_set = "bg@0".into()),
            &["rule_set"],
        ),
        (
            "rule set version with leading zero",
            with(case_opened(), |e| e.rule_set = "bg@01".into()),
            &["rule_set"],
        ),
        (
            "uppercase rule set id",
            with(case_opened(), |e| e.rule_set = "BG@1".into()),
            &["rule_set"],
        ),
        (
            "missing body",
            with(case_opened(), |e| e.body = None),
            &["body"],
        ),
        (
            "unspecified body enum",
            with(case_opened(), |e| {
                if let B::CaseOpened(m) = body_mut(e) {
                    m.channel = 0;
                }
            }),
            &["body.case_opened.channel"],
        ),
        (
            "unknown enum in a repeated field",
            with(case_opened(), |e| {
                if let B::CaseOpened(m) = body_mut(e) {
                    m.forms = vec![1, 999];
                }
            }),
            &["body.case_opened.forms[1]"],
        ),
        (
            "31-byte envelope hash",
            with(referral_accepted(), |e| {
                if let B::ReferralAccepted(m) = body_mut(e) {
                    m.request.as_mut().unwrap().envelope_hash = vec![0; 31];
                }
            }),
            &["body.referral_accepted.request.envelope_hash"],
        ),
        (
            "missing event ref",
            with(referral_accepted(), |e| {
                if let B::ReferralAccepted(m) = body_mut(e) {
                    m.request = None;
                }
            }),
            &["body.referral_accepted.request"],
        ),
        (
            "event ref with a bad id and no hash",
            with(referral_accepted(), |e| {
                if let B::ReferralAccepted(m) = body_mut(e) {
                    m.request = Some(pb::EventRef {
                        event_id: "x".into(),
                        envelope_hash: vec![],
                    });
                }
            }),
            &[
                "body.referral_accepted.request.event_id",
                "body.referral_accepted.request.envelope_hash",
            ],
        ),
        (
            "recipient without kind",
            with(case_opened(), |e| e.recipient_id = "shelter-sofia".into()),
            &["recipient_kind"],
        ),
        (
            "recipient with unknown kind",
            with(case_opened(), |e| {
                e.recipient_id = "shelter-sofia".into();
                e.recipient_kind = 6;
            }),
            &["recipient_kind"],
        ),
        (
            "kind without recipient",
            with(case_opened(), |e| e.recipient_kind = 2),
            &["recipient_kind"],
        ),
        (
            "basis without purpose",
            with(sent(case_opened()), |e| e.purpose = 0),
            &["purpose"],
        ),
        (
            "purpose without basis",
            with(sent(case_opened()), |e| e.basis = None),
            &["basis"],
        ),
        (
            "unknown purpose",
            with(sent(case_opened()), |e| e.purpose = 999),
            &["purpose"],
        ),
        (
            "malformed consent id",
            with(sent(case_opened()), |e| {
                e.basis = Some(pb::DisclosureBasis {
                    basis: Some(pb::disclosure_basis::Basis::ConsentId(EVENT.to_uppercase())),
                });
            }),
            &["basis.consent_id"],
        ),
        (
            "unspecified legal basis",
            with(sent(case_opened()), |e| {
                e.basis = Some(pb::DisclosureBasis {
                    basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
                        basis: 0,
                        justification: "an imminent threat to the person's life".into(),
                    })),
                });
            }),
            &["basis.legal.basis"],
        ),
        (
            "unknown shared category",
            with(sent(case_opened()), |e| e.shares = vec![2, 999]),
            &["shares[1]"],
        ),
        (
            "shares without a basis",
            with(case_opened(), |e| e.shares = vec![2]),
            &["shares"],
        ),
        (
            "sealed category not declared in shares",
            with(sent(case_opened()), |e| {
                e.shares = vec![pb::DataCategory::Identity as i32];
                e.sealed = vec![pb::SealedData {
                    recipient_key_id: "k".into(),
                    suite: "s".into(),
                    encapsulated_key: vec![1],
                    ciphertext: Vec::new(),
                    categories: vec![
                        pb::DataCategory::Identity as i32,
                        pb::DataCategory::Health as i32,
                    ],
                    ciphertext_sha256: vec![3; 32],
                }];
            }),
            &["sealed[0].categories[1]"],
        ),
        (
            "empty sealed section without recipient",
            with(case_opened(), |e| {
                e.sealed = vec![pb::SealedData::default()]
            }),
            &[
                "sealed",
                "sealed[0].recipient_key_id",
                "sealed[0].suite",
                "sealed[0].encapsulated_key",
                "sealed[0].ciphertext_sha256",
                "sealed[0].categories",
            ],
        ),
        (
            "sealed ciphertext inline, in the signed event",
            with(sent(case_opened()), |e| {
                e.shares = vec![pb::DataCategory::Identity as i32];
                e.sealed = vec![pb::SealedData {
                    recipient_key_id: "k".into(),
                    suite: "s".into(),
                    encapsulated_key: vec![1],
                    ciphertext: vec![1; 40],
                    categories: vec![pb::DataCategory::Identity as i32],
                    ciphertext_sha256: vec![3; 32],
                }];
            }),
            &["sealed[0].ciphertext"],
        ),
        (
            "erasure on notice without the notice",
            with(case_opened(), |e| {
                e.body = Some(B::CaseErased(pb::CaseErased {
                    ground: pb::ErasureGround::Notice as i32,
                    ..Default::default()
                }));
            }),
            &["body.case_erased.requested_by"],
        ),
        (
            "erasure acknowledgement without references",
            with(case_opened(), |e| {
                e.body = Some(B::ErasureAcknowledged(pb::ErasureAcknowledged::default()));
            }),
            &[
                "body.erasure_acknowledged.erasure",
                "body.erasure_acknowledged.attestation",
            ],
        ),
        (
            "offer without expiry",
            with(offer(), |e| {
                if let B::HandoverOffered(m) = body_mut(e) {
                    m.expires_at = None;
                }
            }),
            &["body.handover_offered.expires_at"],
        ),
        (
            "offer without recipient",
            with(offer(), |e| {
                e.recipient_id.clear();
                e.recipient_kind = 0;
            }),
            &["recipient_id"],
        ),
        (
            "offer to a malformed recipient is reported once",
            with(offer(), |e| e.recipient_id = "Shelter".into()),
            &["recipient_id"],
        ),
        (
            "consent without scope and validity",
            proto(B::ConsentGranted(pb::ConsentGranted {
                method: 7,
                ..Default::default()
            })),
            &[
                "body.consent_granted.scope",
                "body.consent_granted.valid_until",
                "body.consent_granted.method",
            ],
        ),
        (
            "consent with bad scope entries",
            proto(B::ConsentGranted(pb::ConsentGranted {
                scope: Some(pb::ConsentScope {
                    recipient_ids: vec!["ok-agency".into(), "NOT OK".into()],
                    recipient_kinds: vec![0],
                    purposes: vec![999],
                    categories: vec![1],
                }),
                representative: 9,
                obtained_by_agency_id: "x".into(),
                ..consent()
            })),
            &[
                "body.consent_granted.scope.recipient_ids[1]",
                "body.consent_granted.scope.recipient_kinds[0]",
                "body.consent_granted.scope.purposes[0]",
                "body.consent_granted.representative",
                "body.consent_granted.obtained_by_agency_id",
            ],
        ),
        (
            "withdrawal without effective time",
            proto(B::ConsentWithdrawn(pb::ConsentWithdrawn {
                consent_id: OTHER.into(),
                effective_at: None,
            })),
            &["body.consent_withdrawn.effective_at"],
        ),
        (
            "refusal with unknown scope and bad agency",
            proto(B::RefusalRecorded(pb::RefusalRecorded {
                scope: 4,
                agency_ids: vec!["-x".into()],
                purposes: vec![0],
            })),
            &[
                "body.refusal_recorded.scope",
                "body.refusal_recorded.agency_ids[0]",
                "body.refusal_recorded.purposes[0]",
            ],
        ),
        (
            "quarantine receipt without reason",
            proto(B::Receipt(pb::Receipt {
                event: reference(OTHER),
                status: pb::ReceiptStatus::Quarantined as i32,
                journal_seq: 1,
                reason: String::new(),
            })),
            &["body.receipt.reason"],
        ),
        (
            "reflection period without dates",
            proto(B::ReflectionPeriodStarted(
                pb::ReflectionPeriodStarted::default(),
            )),
            &[
                "body.reflection_period_started.starts_at",
                "body.reflection_period_started.ends_at",
            ],
        ),
        (
            "malformed monitoring visit",
            proto(B::MonitoringScheduled(pb::MonitoringScheduled {
                visits: vec![
                    ts(T0).unwrap(),
                    prost_types::Timestamp {
                        seconds: 0,
                        nanos: 1_000_000_000,
                    },
                ],
            })),
            &["body.monitoring_scheduled.visits[1]"],
        ),
        (
            "unknown cooperation status",
            proto(B::ProceedingsStatusRecorded(
                pb::ProceedingsStatusRecorded {
                    cooperation: 999,
                    stage: 0,
                    witness: false,
                },
            )),
            &["body.proceedings_status_recorded.cooperation"],
        ),
        (
            "capacity update naming a case",
            with(
                proto(B::CapacityUpdated(pb::CapacityUpdated::default())),
                |_| {},
            ),
            &["case_id"],
        ),
        (
            "forward without recipient, of garbage",
            proto(B::Forwarded(pb::Forwarded {
                envelope: vec![0xff, 0xff, 0xff],
            })),
            &["recipient_id", "body.forwarded.envelope"],
        ),
        (
            "forward of a checkpoint",
            sent(proto(B::Forwarded(pb::Forwarded {
                envelope: envelope(waymark_proto::PAYLOAD_TYPE_CHECKPOINT, 1),
            }))),
            &["body.forwarded.envelope"],
        ),
        (
            "forward of an unsigned envelope",
            sent(proto(B::Forwarded(pb::Forwarded {
                envelope: envelope(waymark_proto::PAYLOAD_TYPE_EVENT, 0),
            }))),
            &["body.forwarded.envelope"],
        ),
        (
            "everything wrong at once",
            pb::Event {
                event_id: "x".into(),
                sender_kind: 999,
                recipient_id: "a".into(),
                purpose: 1,
                ..Default::default()
            },
            &[
                "event_id",
                "case_id",
                "sender_id",
                "sender_kind",
                "recipient_id",
                "recipient_kind",
                "occurred_at",
                "rule_set",
                "basis",
                "body",
            ],
        ),
    ];
    for (name, event, expected) in table {
        assert_eq!(fields(&event), expected, "{name}");
    }
}

#[test]
fn violations_explain_themselves() {
    let e = with(case_opened(), |e| {
        e.sender_kind = 999;
        e.occurred_at = None;
    });
    let err: WireError = event_from_proto(&e).unwrap_err();
    let v = err.violations();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].field, "sender_kind");
    assert_eq!(
        v[0].description,
        "999 is not a waymark.v1.AgencyKind value in protocol waymark.v1 as this agency knows it; \
         valid values: AGENCY_KIND_POLICE (1), AGENCY_KIND_SHELTER (2), AGENCY_KIND_NGO (3), \
         AGENCY_KIND_RETURNDESK (4), AGENCY_KIND_LABOUR (5)"
    );
    assert_eq!(
        v[1].description,
        "required: when the fact happened, by the sender's clock (google.protobuf.Timestamp)"
    );
    assert!(
        err.to_string()
            .starts_with("malformed event: sender_kind: 999 is not"),
        "{err}"
    );
    assert!(err.to_string().contains("; occurred_at: required"), "{err}");
    assert_eq!(WireError::QUARANTINE_REASON, "malformed");

    let e = with(case_opened(), |e| e.case_id = CASE.to_uppercase());
    let err = event_from_proto(&e).unwrap_err();
    assert_eq!(
        err.violations()[0].description,
        format!(
            "invalid case id {:?}: must be a lowercase hyphenated UUID (36 characters)",
            CASE.to_uppercase()
        )
    );
}

#[test]
fn mappings_that_decide_meaning() {
    let risk = |risk: pb::RiskLevel, child: bool, best_interests_ok: bool| {
        convert(&proto(B::ReturnRiskAssessed(pb::ReturnRiskAssessed {
            risk: risk as i32,
            child,
            best_interests_ok,
        })))
        .body
    };
    let ok = |best_interests_ok, child| Body::ReturnRiskAssessed {
        best_interests_ok,
        child,
    };
    // An adult's assessment: the risk level decides.
    assert_eq!(risk(pb::RiskLevel::Low, false, false), ok(true, false));
    assert_eq!(risk(pb::RiskLevel::High, false, true), ok(false, false));
    // A child's: the risk level and the best-interests finding.
    assert_eq!(risk(pb::RiskLevel::Low, true, false), ok(false, true));
    assert_eq!(risk(pb::RiskLevel::High, true, true), ok(false, true));

    // A refusal limited to some purposes is enforced for all (fails closed).
    let refusal = convert(&proto(B::RefusalRecorded(pb::RefusalRecorded {
        scope: pb::RefusalScope::Assistance as i32,
        agency_ids: vec![],
        purposes: vec![pb::Purpose::CriminalProceedings as i32],
    })));
    assert_eq!(
        refusal.body,
        Body::RefusalRecorded(Refusal {
            of: Refused::Assistance,
            recipients: RecipientSet::All,
            purposes: [Purpose::CriminalProceedings].into(),
        })
    );

    // Outcomes without a policy counterpart become Other.
    let closed = |o: pb::CaseOutcome| {
        convert(&proto(B::CaseClosed(pb::CaseClosed { outcome: o as i32 }))).body
    };
    assert_eq!(
        closed(pb::CaseOutcome::Regularised),
        Body::CaseClosed {
            outcome: CaseOutcome::Other
        }
    );
}

// ---- Vocabulary -------------------------------------------------------------------

#[test]
fn shared_vocabulary_round_trips_and_every_proto_value_maps() {
    for k in AgencyKind::ALL {
        let p = vocab::agency_kind_to_proto(*k);
        assert_eq!(vocab::agency_kind_from_proto(p as i32), Ok(*k));
    }
    for c in DataCategory::ALL {
        let p = vocab::data_category_to_proto(*c);
        assert_eq!(vocab::data_category_from_proto(p as i32), Ok(*c));
    }
    for u in Purpose::ALL {
        let p = vocab::purpose_to_proto(*u);
        assert_eq!(vocab::purpose_from_proto(p as i32), Ok(*u));
    }
    for b in LegalBasis::ALL {
        let p = vocab::legal_basis_to_proto(*b);
        assert_eq!(vocab::legal_basis_from_proto(p as i32), Ok(*b));
    }
    // Every number the proto enums define maps, except UNSPECIFIED; every
    // other number is Unknown; the mappings are one to one.
    fn check<T: Ord + std::fmt::Debug>(
        valid: impl Fn(i32) -> bool,
        from: impl Fn(i32) -> Result<T, vocab::EnumError>,
        count: usize,
    ) {
        assert_eq!(from(0), Err(vocab::EnumError::Unspecified));
        let mut seen = BTreeSet::new();
        for v in -5..200 {
            match from(v) {
                Ok(t) => {
                    assert!(valid(v) && v != 0, "{v}");
                    assert!(seen.insert(t), "two values map to one");
                }
                Err(vocab::EnumError::Unknown(n)) => assert!(!valid(n) && n == v, "{v}"),
                Err(vocab::EnumError::Unspecified) => assert_eq!(v, 0),
            }
        }
        assert_eq!(seen.len(), count);
        assert_eq!(from(i32::MAX), Err(vocab::EnumError::Unknown(i32::MAX)));
    }
    check(
        |v| pb::AgencyKind::try_from(v).is_ok(),
        vocab::agency_kind_from_proto,
        AgencyKind::ALL.len(),
    );
    check(
        |v| pb::DataCategory::try_from(v).is_ok(),
        vocab::data_category_from_proto,
        DataCategory::ALL.len(),
    );
    check(
        |v| pb::Purpose::try_from(v).is_ok(),
        vocab::purpose_from_proto,
        Purpose::ALL.len(),
    );
    check(
        |v| pb::LegalBasis::try_from(v).is_ok(),
        vocab::legal_basis_from_proto,
        LegalBasis::ALL.len(),
    );
}

#[test]
fn timestamps_convert_at_millisecond_precision() {
    for ms in [
        0,
        1,
        -1,
        T0,
        T0 + 999,
        -62_135_596_800_000,
        253_402_300_799_999,
    ] {
        let p = wire::timestamp_to_proto(Timestamp(ms));
        assert!((0..1_000_000_000).contains(&p.nanos));
        assert_eq!(wire::timestamp_from_proto(&p), Some(Timestamp(ms)));
    }
    let sub_ms = prost_types::Timestamp {
        seconds: 1,
        nanos: 1_999_999,
    };
    assert_eq!(wire::timestamp_from_proto(&sub_ms), Some(Timestamp(1_001)));
}

// ---- Nothing panics -------------------------------------------------------------

/// Events close to valid, with fields drawn from valid and invalid values.
fn near_valid() -> impl Strategy<Value = pb::Event> {
    let id = prop_oneof![
        Just(EVENT.to_owned()),
        Just(String::new()),
        Just(EVENT.to_uppercase()),
        "[0-9a-fA-F-]{0,40}",
        any::<String>(),
    ];
    let agency = prop_oneof![
        Just("bg-police-sofia".to_owned()),
        Just(String::new()),
        "[a-z.*> -]{0,50}",
    ];
    let num = prop_oneof![0..12i32, any::<i32>()];
    let time = proptest::option::of(
        (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    );
    let reference = proptest::option::of(
        (id.clone(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(
            |(event_id, envelope_hash)| pb::EventRef {
                event_id,
                envelope_hash,
            },
        ),
    );
    let body = prop_oneof![
        Just(None),
        (num.clone(), proptest::collection::vec(num.clone(), 0..3)).prop_map(|(c, f)| Some(
            B::CaseOpened(pb::CaseOpened {
                channel: c,
                forms: f,
                ..Default::default()
            })
        )),
        reference
            .clone()
            .prop_map(|r| Some(B::HandoverAccepted(pb::HandoverAccepted { offer: r }))),
        (reference, num.clone(), any::<String>()).prop_map(|(r, s, reason)| Some(B::Receipt(
            pb::Receipt {
                event: r,
                status: s,
                journal_seq: 0,
                reason,
            }
        ))),
        time.clone()
            .prop_map(|t| Some(B::HandoverOffered(pb::HandoverOffered {
                expires_at: t,
                reason: String::new(),
            }))),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|envelope| Some(B::Forwarded(pb::Forwarded { envelope }))),
        (num.clone(), num.clone(), num.clone()).prop_map(|(r, s, p)| Some(B::RefusalRecorded(
            pb::RefusalRecorded {
                scope: r,
                agency_ids: vec![],
                purposes: vec![s, p],
            }
        ))),
        Just(Some(B::CapacityUpdated(pb::CapacityUpdated::default()))),
    ];
    (
        (
            id.clone(),
            id,
            agency.clone(),
            num.clone(),
            agency,
            num.clone(),
        ),
        (time, "[a-z@0-9]{0,8}", num.clone()),
        (
            proptest::collection::vec(num.clone(), 0..3),
            proptest::option::of(num),
            body,
        ),
    )
        .prop_map(
            |(
                (event_id, case_id, sender_id, sender_kind, recipient_id, recipient_kind),
                (occurred_at, rule_set, purpose),
                (shares, legal, body),
            )| pb::Event {
                event_id,
                case_id,
                sender_id,
                sender_kind,
                recipient_id,
                recipient_kind,
                occurred_at,
                rule_set,
                basis: legal.map(|b| pb::DisclosureBasis {
                    basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
                        basis: b,
                        justification: String::new(),
                    })),
                }),
                purpose,
                shares,
                sealed: vec![],
                body,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(e) = pb::Event::decode(bytes.as_slice()) {
            let _ = event_from_proto(&e);
        }
    }

    #[test]
    fn mutated_valid_events_never_panic(
        seed in 0..samples().len(),
        cut in 0usize..400,
        flip in any::<u8>(),
    ) {
        // Corrupt one byte of a valid encoding, or truncate it.
        let mut bytes = sent(proto(samples().swap_remove(seed).0)).encode_to_vec();
        let at = cut % bytes.len();
        bytes[at] ^= flip;
        if let Ok(e) = pb::Event::decode(bytes.as_slice()) {
            let _ = event_from_proto(&e);
        }
        if let Ok(e) = pb::Event::decode(&bytes[..at]) {
            let _ = event_from_proto(&e);
        }
    }

    #[test]
    fn near_valid_events_convert_or_explain(e in near_valid()) {
        match event_from_proto(&e) {
            Ok(_) => {}
            Err(err) => {
                prop_assert!(!err.violations().is_empty());
                for v in err.violations() {
                    prop_assert!(!v.field.is_empty() && !v.description.is_empty(), "{v:?}");
                }
            }
        }
    }
}
