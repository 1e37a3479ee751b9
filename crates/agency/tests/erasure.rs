//! Personal data sealed to the recipient and erased by key destruction, end
//! to end: real nats-server, real journals and agency stores, real gRPC.
//!
//! Police records a person with a canary name, refers them to the shelter
//! with the canary sealed to the shelter's key; the shelter's API returns it
//! while no journal, store file or broker file holds it in clear. A forged
//! detached ciphertext is quarantined. Police erases: the shelter erases its
//! copy, attests and acknowledges; afterwards nothing returns the canary, no
//! personal data of the case is sent again, and both journals still verify.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic_types::StatusExt;
use waymark_crypto::{proto_from_timestamp, sign_envelope};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1 as pb;
use waymark_testkit::wait_for;
use waymark_types::{EventId, Timestamp};

const T: Duration = Duration::from_secs(30);

/// Files under `root` whose bytes contain `needle`.
fn files_with(root: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(p);
            }
        }
    }
    hits
}

async fn personal(n: &Node, case: &str) -> Result<pb::PersonalData, tonic::Status> {
    n.case()
        .get_personal_data(pb::GetPersonalDataRequest {
            case_id: case.into(),
        })
        .await
        .map(|r| r.into_inner().personal.unwrap_or_default())
}

async fn export(n: &Node) -> Vec<u8> {
    use futures::StreamExt;
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

fn identity_consent() -> pb::ConsentGranted {
    let mut c = consent();
    let scope = c.scope.as_mut().unwrap();
    scope.categories.extend([
        pb::DataCategory::Identity as i32,
        pb::DataCategory::Contact as i32,
    ]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_to_the_recipient_and_erased_everywhere() {
    let f = federation().await;
    let canary = format!("Canary-{}", EventId::new());
    let case = f
        .police
        .case()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: key(),
            channel: pb::IdentificationChannel::Police as i32,
            personal: Some(pb::PersonalData {
                full_name: canary.clone(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .case_id;
    let consent = f
        .police
        .consent()
        .grant_consent(pb::GrantConsentRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            consent: Some(identity_consent()),
        })
        .await
        .unwrap()
        .into_inner()
        .consent_id;
    f.police
        .case()
        .forward_event(pb::ForwardEventRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            event_id: consent.clone(),
            send_to: Some(to_shelter(None, pb::Purpose::Unspecified)),
        })
        .await
        .unwrap();
    let sent = pb::PersonalData {
        full_name: canary.clone(),
        phone: "+359 2 000 0000".into(),
        ..Default::default()
    };
    let referral = |shares: Vec<pb::DataCategory>, to: pb::SendTo| pb::RequestReferralRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        service: pb::ServiceType::Accommodation as i32,
        send_to: Some(pb::SendTo {
            shares: shares.into_iter().map(|c| c as i32).collect(),
            personal: Some(sent.clone()),
            ..to
        }),
        respond_by: None,
        urgent: false,
    };
    let shelter_to = to_shelter(by_consent(&consent), pb::Purpose::Accommodation);

    // Every category of the personal data must be declared (and covered).
    let e = f
        .police
        .referral()
        .request_referral(referral(
            vec![pb::DataCategory::Identity],
            shelter_to.clone(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("CONTACT"), "{}", e.message());
    // An agency without an encryption key in the manifest cannot be sent any.
    let ngo_to = pb::SendTo {
        recipient_id: NGO.into(),
        recipient_kind: pb::AgencyKind::Ngo as i32,
        ..shelter_to.clone()
    };
    let e = f
        .police
        .referral()
        .request_referral(referral(
            vec![pb::DataCategory::Identity, pb::DataCategory::Contact],
            ngo_to,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert_eq!(
        e.get_details_error_info().unwrap().reason,
        "sealing.no_recipient_key"
    );

    let rec = f
        .police
        .referral()
        .request_referral(referral(
            vec![pb::DataCategory::Identity, pb::DataCategory::Contact],
            shelter_to.clone(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(rec.recorded.is_some());
    // The recipient's API answers with the data; nothing else holds it in clear.
    wait_for(T, "the shelter holds the sealed personal data", || async {
        personal(&f.shelter, &case)
            .await
            .is_ok_and(|p| p.full_name == canary && p.phone == sent.phone)
    })
    .await
    .expect("the shelter holds the sealed personal data");
    for n in [&f.police, &f.shelter] {
        let x = export(n).await;
        assert!(
            !x.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "personal data journaled"
        );
    }
    let roots = [
        f.police.dir.path(),
        f.shelter.dir.path(),
        f.ngo.dir.path(),
        f.server.store_dir(),
    ];
    // Positive control: the scan finds clear text where there is some.
    let control = f.shelter.dir.path().join("control");
    std::fs::write(&control, &canary).unwrap();
    assert_eq!(
        files_with(f.shelter.dir.path(), canary.as_bytes()),
        vec![control.clone()]
    );
    std::fs::remove_file(&control).unwrap();
    for r in roots {
        assert!(
            files_with(r, canary.as_bytes()).is_empty(),
            "canary in clear under {}",
            r.display()
        );
    }

    // A forged detached ciphertext (the signed digest does not match) is
    // quarantined with reason sealed_data, never opened or journaled.
    let (_, police_key) = f.keys.iter().find(|(n, _)| n == POLICE).unwrap();
    let forged_id = EventId::new();
    let event = pb::Event {
        event_id: forged_id.to_string(),
        case_id: case.clone(),
        sender_id: POLICE.into(),
        sender_kind: pb::AgencyKind::Police as i32,
        recipient_id: SHELTER.into(),
        recipient_kind: pb::AgencyKind::Shelter as i32,
        occurred_at: Some(proto_from_timestamp(Timestamp::now())),
        rule_set: "coe-cets197@1".into(),
        basis: by_consent(&consent),
        purpose: pb::Purpose::Accommodation as i32,
        shares: vec![pb::DataCategory::Identity as i32],
        sealed: vec![pb::SealedData {
            recipient_key_id: "x25519:00".into(),
            suite: waymark_crypto::seal::SUITE.into(),
            encapsulated_key: vec![1; 32],
            ciphertext: Vec::new(),
            categories: vec![pb::DataCategory::Identity as i32],
            ciphertext_sha256: Sha256::digest(b"the real one").to_vec(),
        }],
        body: Some(pb::event::Body::ReferralRequested(pb::ReferralRequested {
            service: pb::ServiceType::Medical as i32,
            respond_by: None,
            urgent: false,
        })),
    };
    let env = sign_envelope(police_key, PAYLOAD_TYPE_EVENT, event.encode_to_vec());
    let client = async_nats::connect(f.server.url()).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Waymark-Sealed-0",
        base64::engine::general_purpose::STANDARD
            .encode(b"a swapped one")
            .as_str(),
    );
    client
        .publish_with_headers(
            format!("waymark.v1.evt.{POLICE}.{SHELTER}.referral_requested"),
            headers,
            env.encode_to_vec().into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    let counters = f.shelter.agency.bus().counters();
    wait_for(T, "the forged ciphertext is quarantined", || async {
        counters.quarantined_count(waymark_bus::Reason::SealedData) == 1
    })
    .await
    .expect("the forged ciphertext is quarantined");

    // Erasure at police: its copy, then the shelter's.
    let erase = pb::EraseCaseRequest {
        idempotency_key: key(),
        case_id: case.clone(),
        ground: pb::ErasureGround::PersonRequest as i32,
        detail: "request ref 2026/117".into(),
    };
    let bad = pb::EraseCaseRequest {
        ground: pb::ErasureGround::Notice as i32,
        ..erase.clone()
    };
    let e = f.police.case().erase_case(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let done = f
        .police
        .case()
        .erase_case(erase.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.notified_agency_ids, vec![SHELTER.to_owned()]);
    let again = f
        .police
        .case()
        .erase_case(erase)
        .await
        .unwrap()
        .into_inner();
    assert!(again.recorded.unwrap().replayed, "a retry is a replay");
    wait_for(T, "the shelter acknowledges the erasure", || async {
        f.police
            .case()
            .get_erasure_status(pb::GetErasureStatusRequest {
                case_id: case.clone(),
            })
            .await
            .is_ok_and(|s| {
                let s = s.into_inner();
                s.acknowledged_agency_ids == vec![SHELTER.to_owned()]
                    && s.outstanding_agency_ids.is_empty()
            })
    })
    .await
    .expect("the shelter acknowledges the erasure");
    for n in [&f.police, &f.shelter] {
        let e = personal(n, &case).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        assert!(e.message().contains("erased"), "{}", e.message());
    }
    // The shelter attested its own erasure, naming the police erasure.
    let timeline = f
        .shelter
        .case()
        .get_case_timeline(pb::GetCaseTimelineRequest {
            case_id: case.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let attested = timeline
        .entries
        .iter()
        .any(|t| t.event_kind == "case_erased" && t.sender_id == SHELTER);
    assert!(
        attested,
        "the shelter journaled its CaseErased: {timeline:?}"
    );
    // Nothing personal of the case is sent again.
    let e = f
        .police
        .referral()
        .request_referral(referral(
            vec![pb::DataCategory::Identity, pb::DataCategory::Contact],
            shelter_to,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.get_details_error_info().unwrap().reason, "case.erased");
    for r in roots {
        assert!(files_with(r, canary.as_bytes()).is_empty());
    }
    // Journals are untouched: they still verify end to end.
    for n in [&f.police, &f.shelter] {
        let bytes = export(n).await;
        waymark_journal::verify_export(&bytes[..], &f.key_ring())
            .unwrap_or_else(|e| panic!("journal does not verify: {e}"));
    }
    f.stop().await;
}

/// The usual moment for erasure is after closure (the retention period
/// ended): the attestation and its notice are still recorded and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_after_closure_reaches_the_recipient() {
    let f = federation().await;
    let canary = format!("Canary-{}", EventId::new());
    let case = open_case(&f.police).await;
    let consent = f
        .police
        .consent()
        .grant_consent(pb::GrantConsentRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            consent: Some(identity_consent()),
        })
        .await
        .unwrap()
        .into_inner()
        .consent_id;
    f.police
        .case()
        .forward_event(pb::ForwardEventRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            event_id: consent.clone(),
            send_to: Some(to_shelter(None, pb::Purpose::Unspecified)),
        })
        .await
        .unwrap();
    f.police
        .referral()
        .request_referral(pb::RequestReferralRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            service: pb::ServiceType::Accommodation as i32,
            send_to: Some(pb::SendTo {
                shares: vec![pb::DataCategory::Identity as i32],
                personal: Some(pb::PersonalData {
                    full_name: canary.clone(),
                    ..Default::default()
                }),
                ..to_shelter(by_consent(&consent), pb::Purpose::Accommodation)
            }),
            respond_by: None,
            urgent: false,
        })
        .await
        .unwrap();
    wait_for(T, "the shelter holds the sealed name", || async {
        personal(&f.shelter, &case)
            .await
            .is_ok_and(|p| p.full_name == canary)
    })
    .await
    .unwrap();
    f.police
        .case()
        .close_case(pb::CloseCaseRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            outcome: pb::CaseOutcome::Declined as i32,
        })
        .await
        .unwrap();
    let done = f
        .police
        .case()
        .erase_case(pb::EraseCaseRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            ground: pb::ErasureGround::NoLongerNecessary as i32,
            detail: "retention period ended".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.notified_agency_ids, vec![SHELTER.to_owned()]);
    wait_for(T, "the shelter acknowledges the erasure", || async {
        f.police
            .case()
            .get_erasure_status(pb::GetErasureStatusRequest {
                case_id: case.clone(),
            })
            .await
            .is_ok_and(|s| s.into_inner().outstanding_agency_ids.is_empty())
    })
    .await
    .unwrap();
    assert_eq!(
        personal(&f.shelter, &case).await.unwrap_err().code(),
        Code::NotFound
    );
    // Nothing was quarantined on the way.
    for n in [&f.police, &f.shelter] {
        assert_eq!(n.agency.bus().counters().quarantined_total(), 0);
    }
    f.stop().await;
}

/// A recipient that rotated its encryption key still opens what was sealed
/// to its retired key (in transit during the rotation): nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_sealed_to_a_retired_key_still_opens() {
    let f = federation_with(true).await;
    let case = open_case(&f.police).await;
    let consent = f
        .police
        .consent()
        .grant_consent(pb::GrantConsentRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            consent: Some(identity_consent()),
        })
        .await
        .unwrap()
        .into_inner()
        .consent_id;
    f.police
        .case()
        .forward_event(pb::ForwardEventRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            event_id: consent.clone(),
            send_to: Some(to_shelter(None, pb::Purpose::Unspecified)),
        })
        .await
        .unwrap();
    f.police
        .referral()
        .request_referral(pb::RequestReferralRequest {
            idempotency_key: key(),
            case_id: case.clone(),
            service: pb::ServiceType::Accommodation as i32,
            send_to: Some(pb::SendTo {
                shares: vec![pb::DataCategory::Identity as i32],
                personal: Some(pb::PersonalData {
                    full_name: "Sealed Before Rotation".into(),
                    ..Default::default()
                }),
                ..to_shelter(by_consent(&consent), pb::Purpose::Accommodation)
            }),
            respond_by: None,
            urgent: false,
        })
        .await
        .unwrap();
    wait_for(T, "the shelter opens it with its retired key", || async {
        personal(&f.shelter, &case)
            .await
            .is_ok_and(|p| p.full_name == "Sealed Before Rotation")
    })
    .await
    .unwrap();
    assert_eq!(f.shelter.agency.bus().counters().quarantined_total(), 0);
    f.stop().await;
}
