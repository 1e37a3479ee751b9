//! The common services end to end: real nats-server, real journals, real
//! gRPC over TCP between a police, a shelter and an NGO agency.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;
use waymark_proto::v1 as pb;
use waymark_testkit::wait_for;

const T: Duration = Duration::from_secs(20);

async fn custodian(n: &Node, case: &str) -> String {
    n.case()
        .get_case(pb::GetCaseRequest {
            case_id: case.into(),
        })
        .await
        .map(|r| r.into_inner().case.unwrap().custodian_id)
        .unwrap_or_default()
}

/// Open → consent → offer to the shelter → the shelter's inbox shows it →
/// accept → both views name the shelter; idempotent retry; personal data;
/// export and inclusion proof verify; withdrawal notifies and is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_withdrawal_idempotency_and_journal() {
    let f = federation().await;
    let open = pb::OpenCaseRequest {
        idempotency_key: key(),
        channel: pb::IdentificationChannel::Police as i32,
        personal: Some(pb::PersonalData {
            full_name: "Test Person".into(),
            nationality: "BG".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let first = f
        .police
        .case()
        .open_case(open.clone())
        .await
        .unwrap()
        .into_inner();
    let size = f.police.size();
    let again = f
        .police
        .case()
        .open_case(open.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!first.recorded.as_ref().unwrap().replayed);
    assert!(
        again.recorded.as_ref().unwrap().replayed,
        "a retry is a replay"
    );
    assert_eq!(again.case_id, first.case_id);
    assert_eq!(
        again.recorded.as_ref().unwrap().event_id,
        first.recorded.as_ref().unwrap().event_id
    );
    assert_eq!(f.police.size(), size, "a retry records nothing");
    // The answer names the entry as journaled, first time (known from the
    // append) and on a retry (read back) alike.
    let (r1, r2) = (first.recorded.unwrap(), again.recorded.unwrap());
    let bytes = f
        .police
        .agency
        .journal()
        .entry(r1.journal_seq)
        .unwrap()
        .unwrap();
    let leaf = waymark_journal::merkle::leaf_hash(&bytes).to_vec();
    assert_eq!(r1.entry_hash, leaf);
    assert_eq!((r2.journal_seq, &r2.entry_hash), (r1.journal_seq, &leaf));
    let mut other = open.clone();
    other.presumed_child = true;
    let e = f.police.case().open_case(other).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "same key, different request"
    );
    let case = first.case_id;

    // Personal data stays at the agency, never in the journal.
    let p = f
        .police
        .case()
        .get_personal_data(pb::GetPersonalDataRequest {
            case_id: case.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .personal
        .unwrap();
    assert_eq!(p.full_name, "Test Person");
    let export = export_bytes(&f.police).await;
    assert!(
        !export.windows(11).any(|w| w == b"Test Person"),
        "personal data journaled"
    );

    let consent_id = consent_at_shelter(&f, &case).await;
    // Personal data for another agency must declare its categories in
    // shares (so that the basis is checked against them); the full sealing
    // path is in tests/erasure.rs.
    let mut with_personal = to_shelter(by_consent(&consent_id), pb::Purpose::Accommodation);
    with_personal.personal = Some(pb::PersonalData {
        full_name: "X".into(),
        ..Default::default()
    });
    let e = f
        .police
        .handover()
        .offer_handover(pb::OfferHandoverRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            send_to: Some(with_personal),
            expires_at: Some(in_days(3)),
            reason: "admission".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("IDENTITY"), "{}", e.message());

    let mut inbox = f
        .shelter
        .inbox()
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let offer = f
        .police
        .handover()
        .offer_handover(pb::OfferHandoverRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            send_to: Some(to_shelter(
                by_consent(&consent_id),
                pb::Purpose::Accommodation,
            )),
            expires_at: Some(in_days(3)),
            reason: "admission to a shelter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let seen = tokio::time::timeout(T, async {
        while let Some(item) = inbox.next().await {
            let item = item.unwrap();
            if item
                .event
                .as_ref()
                .is_some_and(|e| e.event_id == offer.handover_id)
            {
                return item;
            }
        }
        panic!("inbox ended");
    })
    .await
    .expect("the offer reaches the shelter's inbox");
    assert_eq!(seen.entry_kind, pb::EntryKind::Received as i32);
    assert!(matches!(
        seen.event.unwrap().body,
        Some(pb::event::Body::HandoverOffered(_))
    ));

    let acc = f
        .shelter
        .handover()
        .accept_handover(pb::AcceptHandoverRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            handover_id: offer.handover_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(acc.recorded.is_some());
    assert_eq!(custodian(&f.shelter, &case).await, SHELTER);
    wait_for(T, "police sees the shelter as custodian", || async {
        custodian(&f.police, &case).await == SHELTER
    })
    .await
    .unwrap();
    let hs = f
        .police
        .handover()
        .list_handovers(pb::ListHandoversRequest {
            case_id: case.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .handovers;
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0].state, pb::HandoverState::Accepted as i32);

    // The police is no longer custodian: closing is a rule violation.
    let e = f
        .police
        .case()
        .close_case(pb::CloseCaseRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            outcome: pb::CaseOutcome::Declined as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    let info = e.get_details_error_info().unwrap();
    assert_eq!(info.reason, "custody.not_custodian");
    assert_eq!(info.domain, "waymark");

    // Timeline: one line per entry, no personal data.
    let tl = f
        .police
        .case()
        .get_case_timeline(pb::GetCaseTimelineRequest {
            case_id: case.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(
        tl.iter()
            .any(|t| t.event_kind == "handover_offered" && t.recipient_id == SHELTER)
    );
    assert!(tl.iter().all(|t| !t.summary.contains("Test Person")));

    // Withdrawal: the shelter received data under the consent, so it is
    // notified and acknowledges by itself.
    let w = f
        .police
        .consent()
        .withdraw_consent(pb::WithdrawConsentRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            consent_id: consent_id.clone(),
            effective_at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.notified_agency_ids, vec![SHELTER.to_owned()]);
    wait_for(T, "the shelter acknowledges the withdrawal", || async {
        let s = f
            .police
            .consent()
            .get_withdrawal_status(pb::GetWithdrawalStatusRequest {
                case_id: case.clone(),
                consent_id: consent_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        s.acknowledged_agency_ids == vec![SHELTER.to_owned()] && s.outstanding_agency_ids.is_empty()
    })
    .await
    .unwrap();
    let cs = f
        .police
        .consent()
        .list_consents(pb::ListConsentsRequest {
            case_id: case.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .consents;
    assert!(cs[0].withdrawn_from.is_some());

    // Journal: the export verifies, an inclusion proof verifies against the root.
    let export = export_bytes(&f.police).await;
    let summary = waymark_journal::verify_export(export.as_slice(), &f.key_ring()).unwrap();
    assert!(summary.entries >= 5);
    let size = f.police.size();
    let p = f
        .police
        .journal()
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            seq: 2,
            tree_size: size,
        })
        .await
        .unwrap()
        .into_inner();
    let root = f.police.agency.journal().root(size).unwrap();
    let proof = p.proof.unwrap();
    waymark_journal::merkle::verify_inclusion(
        &p.entry_hash,
        proof.leaf_index,
        proof.tree_size,
        &proof.hashes,
        &root,
    )
    .unwrap();
    let entries: Vec<_> = f
        .police
        .journal()
        .get_entries(pb::GetEntriesRequest {
            from_seq: 2,
            to_seq: 3,
            case_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert_eq!(
        entries
            .iter()
            .map(|e| e.as_ref().unwrap().seq)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    f.stop().await;
}

async fn export_bytes(n: &Node) -> Vec<u8> {
    let mut s = n
        .journal()
        .export_journal(pb::ExportJournalRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend(c.unwrap().chunk);
    }
    out
}

/// A referral with a short deadline is listed as overdue until answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_overdue_and_answers() {
    let f = federation().await;
    let case = open_case(&f.police).await;
    let legal = Some(pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
            basis: pb::LegalBasis::LegalObligation as i32,
            justification: "statutory duty to refer a presumed victim for accommodation".into(),
        })),
    });
    let due = waymark_types::Timestamp::now().plus_millis(1500);
    let r = f
        .police
        .referral()
        .request_referral(pb::RequestReferralRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            service: pb::ServiceType::Accommodation as i32,
            send_to: Some(to_shelter(legal, pb::Purpose::Protection)),
            respond_by: Some(ts(due)),
            urgent: true,
        })
        .await
        .unwrap()
        .into_inner();
    let overdue = |n: &'static str| {
        let node = if n == "police" { &f.police } else { &f.shelter };
        async move {
            node.referral()
                .list_referrals(pb::ListReferralsRequest {
                    case_id: String::new(),
                    overdue_only: true,
                })
                .await
                .unwrap()
                .into_inner()
                .referrals
        }
    };
    assert!(
        overdue("police").await.is_empty(),
        "not overdue before respond_by"
    );
    wait_for(T, "the referral is overdue at the police", || async {
        overdue("police")
            .await
            .iter()
            .any(|v| v.referral_id == r.referral_id && v.overdue)
    })
    .await
    .unwrap();
    wait_for(T, "the shelter knows the referral", || async {
        f.shelter
            .referral()
            .list_referrals(pb::ListReferralsRequest {
                case_id: case.clone(),
                overdue_only: false,
            })
            .await
            .is_ok_and(|v| v.into_inner().referrals.len() == 1)
    })
    .await
    .unwrap();
    let target = Some(pb::ReferralTarget {
        case_id: case.clone(),
        referral_id: r.referral_id.clone(),
    });
    f.shelter
        .referral()
        .accept_referral(pb::AcceptReferralRequest {
            idempotency_key: key(),
            referral: target.clone(),
        })
        .await
        .unwrap();
    wait_for(T, "the police sees the acceptance", || async {
        let all = f
            .police
            .referral()
            .list_referrals(pb::ListReferralsRequest {
                case_id: case.clone(),
                overdue_only: false,
            })
            .await
            .unwrap()
            .into_inner()
            .referrals;
        all.len() == 1 && all[0].state == pb::ReferralState::Accepted as i32 && !all[0].overdue
    })
    .await
    .unwrap();
    // Only the performer answers: the police accepting is a rule violation.
    let e = f
        .police
        .referral()
        .accept_referral(pb::AcceptReferralRequest {
            idempotency_key: key(),
            referral: target,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.get_details_error_info()
            .unwrap()
            .reason
            .starts_with("referral.")
    );
    f.stop().await;
}

/// Each error code with its details.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_codes_and_details() {
    let f = federation().await;
    // INVALID_ARGUMENT: malformed case id, with the field named.
    let e = f
        .police
        .case()
        .get_case(pb::GetCaseRequest {
            case_id: "not-a-case".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let br = e.get_details_bad_request().unwrap();
    assert_eq!(br.field_violations[0].field, "case_id");
    // INVALID_ARGUMENT from the event's shape, mapped to the request field.
    let e = f
        .police
        .case()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: key(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.get_details_bad_request()
            .unwrap()
            .field_violations
            .iter()
            .any(|v| v.field == "channel"),
        "{e:?}"
    );
    // Missing idempotency key.
    let e = f
        .police
        .case()
        .open_case(pb::OpenCaseRequest {
            channel: pb::IdentificationChannel::Police as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.get_details_bad_request().unwrap().field_violations[0].field,
        "idempotency_key"
    );
    // NOT_FOUND: unknown case, unknown handover.
    let unknown = uuid::Uuid::new_v4().to_string();
    let e = f
        .police
        .case()
        .get_case(pb::GetCaseRequest {
            case_id: unknown.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let case = open_case(&f.police).await;
    let e = f
        .police
        .handover()
        .cancel_handover(pb::CancelHandoverRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            handover_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // FAILED_PRECONDITION: a disclosure without a basis, nothing journaled.
    let size = f.police.size();
    let e = f
        .police
        .handover()
        .offer_handover(pb::OfferHandoverRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            send_to: Some(to_shelter(None, pb::Purpose::Unspecified)),
            expires_at: Some(in_days(3)),
            reason: "admission".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert_eq!(
        e.get_details_error_info().unwrap().reason,
        "disclosure.no_basis"
    );
    assert_eq!(f.police.size(), size, "a refused call journals nothing");
    // CheckDisclosure answers the same question without recording.
    let d = f
        .police
        .consent()
        .check_disclosure(pb::CheckDisclosureRequest {
            case_id: case.clone(),
            recipient_id: SHELTER.into(),
            recipient_kind: pb::AgencyKind::Shelter as i32,
            category: pb::DataCategory::CaseCore as i32,
            purpose: pb::Purpose::Accommodation as i32,
            legal: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!d.allowed);
    assert!(
        d.rule.starts_with("disclosure.") || d.rule.starts_with("consent."),
        "{d:?}"
    );
    // PERMISSION_DENIED: NGOs may not hold custody under the NGO's rule set.
    let e = f
        .ngo
        .case()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: key(),
            channel: pb::IdentificationChannel::Outreach as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(
        e.get_details_error_info().unwrap().reason,
        "custody.kind_may_not_hold"
    );
    // PERMISSION_DENIED through the shared write path: a shelter may not
    // record a police-only event.
    let rec = f.shelter.agency.recorder();
    let shelter_case = open_case(&f.shelter).await;
    let c = waymark_types::CaseId::parse(&shelter_case).unwrap();
    let req = pb::GetCaseRequest {
        case_id: shelter_case.clone(),
    };
    let r2 = rec.clone();
    let err = rec
        .record(
            "Signal",
            &key(),
            &req,
            move |id| {
                Ok(r2.event(
                    id,
                    c,
                    pb::event::Body::ReasonableGroundsDecided(pb::ReasonableGroundsDecided {
                        positive: true,
                        decided_by_role: "officer".into(),
                    }),
                ))
            },
            &|_| None,
        )
        .await
        .unwrap_err();
    let s = tonic::Status::from(err);
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert_eq!(
        s.get_details_error_info().unwrap().reason,
        "event.originator_not_allowed"
    );
    let _ = req.encode_to_vec();
    f.stop().await;
}

/// A client that restarts from its cursor gets exactly the later items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_resumes_from_a_cursor() {
    let f = federation().await;
    let case = open_case(&f.police).await;
    let consent = consent_at_shelter(&f, &case).await;
    let legal = || {
        Some(pb::DisclosureBasis {
            basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
                basis: pb::LegalBasis::LegalObligation as i32,
                justification: "statutory duty to refer a presumed victim for assistance".into(),
            })),
        })
    };
    let police = &f.police;
    let refer = |n: i32| {
        let case = case.clone();
        async move {
            police
                .referral()
                .request_referral(pb::RequestReferralRequest {
                    idempotency_key: key(),
                    case_id: case,
                    service: n,
                    send_to: Some(to_shelter(legal(), pb::Purpose::Protection)),
                    respond_by: None,
                    urgent: false,
                })
                .await
                .unwrap()
                .into_inner()
                .referral_id
        }
    };
    let r1 = refer(pb::ServiceType::Medical as i32).await;
    // First session: read up to r1 and remember its cursor, then go away.
    let mut s = f
        .shelter
        .inbox()
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut first = Vec::new();
    let cursor = tokio::time::timeout(T, async {
        while let Some(i) = s.next().await {
            let i = i.unwrap();
            let id = i.event.as_ref().unwrap().event_id.clone();
            first.push(id.clone());
            if id == r1 {
                return i.cursor;
            }
        }
        panic!("inbox ended");
    })
    .await
    .unwrap();
    drop(s);
    assert!(
        first.len() >= 2,
        "the consent forward and the referral: {first:?}"
    );
    let _ = consent;
    let r2 = refer(pb::ServiceType::Legal as i32).await;
    let r3 = refer(pb::ServiceType::Psychological as i32).await;
    // Second session from the cursor: exactly the later items, in order.
    let mut s = f
        .shelter
        .inbox()
        .subscribe(pb::SubscribeRequest {
            after_cursor: cursor,
            include_quarantined: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut later = Vec::new();
    tokio::time::timeout(T, async {
        while let Some(i) = s.next().await {
            let i = i.unwrap();
            assert!(i.cursor > cursor);
            let e = i.event.unwrap();
            if !matches!(e.body, Some(pb::event::Body::Receipt(_))) {
                later.push(e.event_id);
            }
            if later.len() == 2 {
                return;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(later, vec![r2, r3]);
    assert!(!first.iter().any(|x| later.contains(x)));
    f.stop().await;
}
