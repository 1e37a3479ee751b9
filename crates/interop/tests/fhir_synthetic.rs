//! The FHIR and Kantara exports of a case that goes through every referral
//! and handover outcome, a consent withdrawal and its acknowledgement, a
//! forward, a legal-basis disclosure and a quarantined delivery, recorded
//! in real journals and exported as agencies export them. The bundle is
//! validated with fhir.resources (FHIR R5); statuses, signatures and the
//! absence of personal data are checked here.

mod common;

use std::path::PathBuf;

use base64::Engine;
use common::{Disclose, Fed, consent_basis, legal_basis, ts};
use prost::Message;
use serde_json::Value;
use waymark_crypto::KeyRing;
use waymark_interop::kantara::{ReceiptOptions, receipt};
use waymark_interop::{Exports, InteropError, fhir};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1::{self as pb, event::Body};
use waymark_types::CaseId;

const POLICE: usize = 0;
const SHELTER: usize = 1;
const RETURNDESK: usize = 2;
/// Stands for a name inside a sealed (encrypted) section.
const SEALED_MARKER: &[u8] = b"SEALED-PERSONAL-DATA-MARKER";

struct Story {
    fed: Fed,
    consent: String,
    referrals: [String; 4],
    handovers: [String; 4],
}

fn public_task() -> Disclose {
    legal_basis(
        pb::LegalBasis::PublicTask,
        "answering the requesting agency",
        pb::Purpose::Assistance,
    )
}

fn story() -> Story {
    let mut f = Fed::new(&[
        ("bg-police-sofia", pb::AgencyKind::Police),
        ("bg-shelter-sofia", pb::AgencyKind::Shelter),
        ("bg-iom-sofia", pb::AgencyKind::Returndesk),
    ]);
    f.send(
        POLICE,
        None,
        Body::CaseOpened(pb::CaseOpened {
            channel: pb::IdentificationChannel::Police as i32,
            ..Default::default()
        }),
        Disclose::default(),
    );
    let t = f.now;
    let grant = f.send(
        POLICE,
        Some(SHELTER),
        Body::ConsentGranted(pb::ConsentGranted {
            scope: Some(pb::ConsentScope {
                recipient_ids: vec!["bg-iom-sofia".into()],
                recipient_kinds: vec![pb::AgencyKind::Shelter as i32],
                purposes: vec![
                    pb::Purpose::Accommodation as i32,
                    pb::Purpose::Assistance as i32,
                ],
                categories: vec![
                    pb::DataCategory::CaseCore as i32,
                    pb::DataCategory::Identity as i32,
                    pb::DataCategory::Health as i32,
                ],
            }),
            valid_from: ts(t),
            valid_until: ts(t.plus_days(180)),
            method: pb::ConsentMethod::Written as i32,
            obtained_by_role: "social worker".into(),
            representative: 0,
            language: "bg".into(),
            obtained_by_agency_id: "bg-police-sofia".into(),
        }),
        Disclose::default(),
    );
    let consent = grant.id();
    // The shelter passes the grant on to the return desk.
    f.send(
        SHELTER,
        Some(RETURNDESK),
        Body::Forwarded(pb::Forwarded {
            envelope: grant.envelope.clone(),
        }),
        Disclose::default(),
    );
    let request = |f: &mut Fed, to: usize, d: Disclose| {
        f.send(
            POLICE,
            Some(to),
            Body::ReferralRequested(pb::ReferralRequested {
                service: pb::ServiceType::Accommodation as i32,
                respond_by: None,
                urgent: true,
            }),
            d,
        )
    };
    let mut sealed = consent_basis(&consent, pb::Purpose::Accommodation);
    sealed.shares = vec![pb::DataCategory::Identity as i32];
    sealed.sealed = vec![pb::SealedData {
        recipient_key_id: "x25519:0011".into(),
        suite: "DHKEM(X25519, HKDF-SHA256)/HKDF-SHA256/ChaCha20Poly1305".into(),
        // The marker stands in for sealed bytes: the export must not carry
        // any part of a sealed section.
        encapsulated_key: SEALED_MARKER.to_vec(),
        ciphertext: Vec::new(),
        categories: vec![pb::DataCategory::Identity as i32],
        ciphertext_sha256: vec![9; 32],
    }];
    // A: completed.
    let a = request(&mut f, SHELTER, sealed);
    let r = Some(a.eref());
    f.send(
        SHELTER,
        Some(POLICE),
        Body::ReferralReceived(pb::ReferralReceived { request: r.clone() }),
        public_task(),
    );
    f.send(
        SHELTER,
        Some(POLICE),
        Body::ReferralAccepted(pb::ReferralAccepted { request: r.clone() }),
        public_task(),
    );
    f.send(
        SHELTER,
        Some(POLICE),
        Body::ReferralStarted(pb::ReferralStarted { request: r.clone() }),
        public_task(),
    );
    f.send(
        SHELTER,
        Some(POLICE),
        Body::ReferralCompleted(pb::ReferralCompleted { request: r }),
        public_task(),
    );
    // B: rejected.
    let b = request(
        &mut f,
        SHELTER,
        consent_basis(&consent, pb::Purpose::Accommodation),
    );
    f.send(
        SHELTER,
        Some(POLICE),
        Body::ReferralRejected(pb::ReferralRejected {
            request: Some(b.eref()),
            reason: pb::DeclineReason::NoCapacity as i32,
            detail: "no free place this week".into(),
        }),
        public_task(),
    );
    // C: cancelled by the requester.
    let c = request(
        &mut f,
        SHELTER,
        consent_basis(&consent, pb::Purpose::Accommodation),
    );
    f.send(
        POLICE,
        Some(SHELTER),
        Body::ReferralCancelled(pb::ReferralCancelled {
            request: Some(c.eref()),
            detail: "placed elsewhere".into(),
        }),
        consent_basis(&consent, pb::Purpose::Accommodation),
    );
    // D: to the return desk on a legal basis; accepted, then failed.
    let d = request(
        &mut f,
        RETURNDESK,
        legal_basis(
            pb::LegalBasis::VitalInterests,
            "immediate risk in the current location",
            pb::Purpose::Protection,
        ),
    );
    let r = Some(d.eref());
    f.send(
        RETURNDESK,
        Some(POLICE),
        Body::ReferralAccepted(pb::ReferralAccepted { request: r.clone() }),
        public_task(),
    );
    f.send(
        RETURNDESK,
        Some(POLICE),
        Body::ReferralFailed(pb::ReferralFailed {
            request: r,
            reason: pb::DeclineReason::LostContact as i32,
            detail: String::new(),
        }),
        public_task(),
    );
    // Handovers: rejected, expired, cancelled, accepted.
    let offer = |f: &mut Fed| {
        let at = f.now;
        f.send(
            POLICE,
            Some(SHELTER),
            Body::HandoverOffered(pb::HandoverOffered {
                expires_at: ts(at.plus_days(3)),
                reason: "shelter admission".into(),
            }),
            consent_basis(&consent, pb::Purpose::Accommodation),
        )
    };
    let h1 = offer(&mut f);
    f.send(
        SHELTER,
        Some(POLICE),
        Body::HandoverRejected(pb::HandoverRejected {
            offer: Some(h1.eref()),
            reason: pb::DeclineReason::SafetyRisk as i32,
            detail: "risk to other residents".into(),
        }),
        public_task(),
    );
    let h2 = offer(&mut f);
    f.send(
        POLICE,
        None,
        Body::HandoverExpired(pb::HandoverExpired {
            offer: Some(h2.eref()),
        }),
        Disclose::default(),
    );
    let h3 = offer(&mut f);
    f.send(
        POLICE,
        Some(SHELTER),
        Body::HandoverCancelled(pb::HandoverCancelled {
            offer: Some(h3.eref()),
        }),
        consent_basis(&consent, pb::Purpose::Accommodation),
    );
    let h4 = offer(&mut f);
    f.send(
        SHELTER,
        Some(POLICE),
        Body::HandoverAccepted(pb::HandoverAccepted {
            offer: Some(h4.eref()),
        }),
        public_task(),
    );
    // Withdrawal, acknowledged by the shelter.
    let at = f.now.plus_millis(60_000);
    let w = f.send(
        POLICE,
        Some(SHELTER),
        Body::ConsentWithdrawn(pb::ConsentWithdrawn {
            consent_id: consent.clone(),
            effective_at: ts(at.plus_millis(3_600_000)),
        }),
        legal_basis(
            pb::LegalBasis::LegalObligation,
            "recipients must learn of the withdrawal",
            pb::Purpose::Assistance,
        ),
    );
    f.send(
        SHELTER,
        Some(POLICE),
        Body::WithdrawalAcknowledged(pb::WithdrawalAcknowledged {
            consent_id: consent.clone(),
            withdrawal: Some(w.eref()),
        }),
        public_task(),
    );
    // A disclosure the return desk quarantines.
    let q = f.sign(
        POLICE,
        Some(RETURNDESK),
        Body::ReferralRequested(pb::ReferralRequested {
            service: pb::ServiceType::VoluntaryReturn as i32,
            respond_by: None,
            urgent: false,
        }),
        consent_basis(&consent, pb::Purpose::Return),
    );
    f.deliver(&q, Some("policy_violation"));
    Story {
        fed: f,
        consent,
        referrals: [a.id(), b.id(), c.id(), d.id()],
        handovers: [h1.id(), h2.id(), h3.id(), h4.id()],
    }
}

fn resources(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect()
}

fn by_id<'a>(bundle: &'a Value, kind: &str, id: &str) -> &'a Value {
    resources(bundle)
        .into_iter()
        .find(|r| r["resourceType"] == kind && r["id"] == id)
        .unwrap_or_else(|| panic!("no {kind}/{id}"))
}

fn of_type<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    resources(bundle)
        .into_iter()
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

fn write(dir: &std::path::Path, name: &str, json: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, json).unwrap();
    p
}

#[test]
fn every_outcome_maps_and_validates_with_fhir_resources() {
    let s = story();
    let tmp = tempfile::tempdir().unwrap();
    let exports_dir = tmp.path().join("exports");
    s.fed.export(&exports_dir, &[]);
    let exports = Exports::open_dir(&exports_dir).unwrap();
    let record = exports.case(&s.fed.case).unwrap();
    assert!(record.skipped.is_empty(), "{:#?}", record.skipped);
    let json = fhir::case_bundle(&record).to_json().unwrap();
    let path = write(tmp.path(), "bundle.json", &json);
    let report = common::validate(&[path]);
    assert!(report.contains("\"fhir_version\": \"5.0.0\""), "{report}");

    // Deterministic: the same exports give the same bytes.
    let again = Exports::open_dir(&exports_dir).unwrap();
    let json2 = fhir::case_bundle(&again.case(&s.fed.case).unwrap())
        .to_json()
        .unwrap();
    assert_eq!(json, json2);

    // No personal data: the sealed ciphertext never appears, in any form.
    let b64 = base64::engine::general_purpose::STANDARD;
    for needle in [
        String::from_utf8_lossy(SEALED_MARKER).into_owned(),
        b64.encode(SEALED_MARKER),
        hex::encode(SEALED_MARKER),
    ] {
        assert!(!json.contains(&needle), "{needle} leaked");
    }

    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["resourceType"], "Bundle");
    assert_eq!(v["type"], "collection");
    let [a, b, c, d] = &s.referrals;
    for (id, sr, task) in [
        (a, "completed", "completed"),
        (b, "revoked", "rejected"),
        (c, "revoked", "cancelled"),
        (d, "revoked", "failed"),
    ] {
        let r = by_id(&v, "ServiceRequest", id);
        assert_eq!(r["status"], sr, "{r}");
        assert_eq!(r["intent"], "order");
        let t = of_type(&v, "Task")
            .into_iter()
            .find(|t| t["basedOn"][0]["identifier"]["value"] == id.as_str())
            .unwrap();
        assert_eq!(t["status"], task, "{t}");
    }
    let rejected = of_type(&v, "Task")
        .into_iter()
        .find(|t| t["status"] == "rejected" && t["basedOn"].is_array())
        .unwrap();
    assert_eq!(
        rejected["statusReason"]["concept"]["coding"][0]["code"],
        "no_capacity"
    );
    assert_eq!(rejected["note"][0]["text"], "no free place this week");
    assert_eq!(by_id(&v, "ServiceRequest", a)["priority"], "urgent");
    assert_eq!(
        by_id(&v, "ServiceRequest", a)["supportingInfo"][0]["reference"]["reference"],
        format!("urn:uuid:{}", s.consent)
    );
    // The quarantined request is a ServiceRequest too (it was sent), and its
    // receipt says it was not journaled.
    let receipts: Vec<_> = of_type(&v, "AuditEvent")
        .into_iter()
        .filter(|a| a["code"]["coding"][0]["code"] == "receipt")
        .collect();
    assert!(receipts.iter().any(|r| r["outcome"]["code"]["code"] == "4"
        && r["outcome"]["detail"][0]["text"] == "policy_violation"));
    assert!(
        receipts
            .iter()
            .filter(|r| r["outcome"]["code"]["code"] == "0")
            .count()
            > 10
    );

    let [h1, h2, h3, h4] = &s.handovers;
    for (id, status) in [
        (h1, "rejected"),
        (h2, "failed"),
        (h3, "cancelled"),
        (h4, "completed"),
    ] {
        let t = by_id(&v, "Task", id);
        assert_eq!(t["status"], status, "{t}");
        let owner = t["owner"]["identifier"]["value"].as_str().unwrap();
        let want = if status == "completed" {
            "bg-shelter-sofia"
        } else {
            "bg-police-sofia"
        };
        assert_eq!(owner, want, "custodian after handover {status}");
        assert_eq!(t["owner"]["identifier"]["system"], "urn:waymark:agency");
    }
    assert_eq!(
        by_id(&v, "Task", h2)["statusReason"]["concept"]["coding"][0]["code"],
        "expired"
    );

    let consent = by_id(&v, "Consent", &s.consent);
    assert_eq!(consent["status"], "inactive");
    assert_eq!(consent["decision"], "permit");
    let p = &consent["provision"][0];
    let codes = |x: &Value| -> Vec<String> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c["code"]
                    .as_str()
                    .unwrap_or_else(|| c["coding"][0]["code"].as_str().unwrap())
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(codes(&p["purpose"]), ["assistance", "accommodation"]);
    assert_eq!(codes(&p["code"]), ["case_core", "identity", "health"]);
    assert_eq!(p["purpose"][0]["system"], "urn:waymark:codesystem:purpose");

    // Organizations by identifier, one per agency.
    let orgs: Vec<_> = of_type(&v, "Organization")
        .into_iter()
        .map(|o| o["identifier"][0]["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        orgs,
        ["bg-iom-sofia", "bg-police-sofia", "bg-shelter-sofia"]
    );

    // Every Provenance signature is the envelope's and verifies over the
    // signed payload with the sender's key.
    let mut ring = KeyRing::new();
    for a in &s.fed.agencies {
        ring.insert(waymark_crypto::TrustedKey {
            key: a.key.public_key(),
            valid_from: waymark_types::Timestamp::from_millis(0),
            valid_until: None,
        });
    }
    let provenances = of_type(&v, "Provenance");
    assert!(provenances.len() > 20);
    for p in &provenances {
        let ext = &p["extension"][0];
        assert_eq!(ext["url"], "urn:waymark:extension:envelope-sha256");
        let sig = &p["signature"][0];
        assert_eq!(sig["targetFormat"], PAYLOAD_TYPE_EVENT);
        let data = b64.decode(sig["data"].as_str().unwrap()).unwrap();
        assert_eq!(data.len(), 64);
        assert!(!p["target"].as_array().unwrap().is_empty());
    }
    // Check one signature end to end against the journaled envelope.
    let grant = record.event(&s.consent).unwrap();
    let prov = provenances
        .iter()
        .find(|p| p["activity"]["coding"][0]["code"] == "consent_granted")
        .unwrap();
    let sig = &prov["signature"][0];
    let env = pb::Envelope {
        payload_type: PAYLOAD_TYPE_EVENT.into(),
        payload: grant.event.encode_to_vec(),
        signatures: vec![pb::Signature {
            key_id: sig["extension"][0]["valueString"].as_str().unwrap().into(),
            sig: b64.decode(sig["data"].as_str().unwrap()).unwrap(),
        }],
    };
    ring.verify(&env, PAYLOAD_TYPE_EVENT, grant.occurred_at)
        .unwrap();
}

#[test]
fn kantara_receipt_names_the_case_and_the_controller_only() {
    let s = story();
    let tmp = tempfile::tempdir().unwrap();
    s.fed.export(tmp.path(), &[]);
    let exports = Exports::open_dir(tmp.path()).unwrap();
    let record = exports.case(&s.fed.case).unwrap();
    let r = receipt(&record, &s.consent, &ReceiptOptions::default()).unwrap();
    assert_eq!(
        r.missing,
        [
            "piiControllers[0].contact",
            "piiControllers[0].address",
            "piiControllers[0].email",
            "piiControllers[0].phone"
        ]
    );
    let v: Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    assert_eq!(v["version"], "KI-CR-v1.1.0");
    assert_eq!(v["piiPrincipalId"], s.fed.case.to_string());
    assert_eq!(v["consentReceiptID"], s.consent);
    assert_eq!(v["sensitive"], true);
    assert_eq!(v["language"], "bg");
    assert_eq!(v["jurisdiction"], "rule set coe-cets197@1");
    assert_eq!(v["policyUrl"], "urn:waymark:rule-set:coe-cets197@1");
    assert_eq!(v["piiControllers"][0]["piiController"], "bg-police-sofia");
    assert!(v["consentTimestamp"].is_i64());
    assert!(v["publicKey"].is_string());
    assert_eq!(
        v["spiCat"],
        serde_json::json!(["case_core", "identity", "health"])
    );
    let purposes = v["services"][0]["purposes"].as_array().unwrap();
    assert_eq!(purposes.len(), 2);
    assert_eq!(purposes[0]["purposeCategory"][0], "assistance");
    assert_eq!(purposes[0]["consentType"], "EXPLICIT");
    assert_eq!(purposes[0]["thirdPartyDisclosure"], true);
    assert_eq!(purposes[0]["thirdPartyName"], "bg-iom-sofia, any shelter");
    assert!(
        purposes[0]["termination"]
            .as_str()
            .unwrap()
            .starts_with("withdrawn with effect from")
    );
    assert!(
        v["collectionMethod"]
            .as_str()
            .unwrap()
            .contains("social worker of bg-police-sofia")
    );

    let opts = ReceiptOptions {
        jurisdiction: Some("BG".into()),
        policy_url: Some("https://example.invalid/privacy".into()),
        contact: Some("data protection officer".into()),
        address: Some("1 Example Street, Sofia".into()),
        country: Some("BG".into()),
        email: Some("dpo@example.invalid".into()),
        phone: Some("+359 2 000 0000".into()),
    };
    let r = receipt(&record, &s.consent, &opts).unwrap();
    assert!(r.missing.is_empty());
    let v: Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    assert_eq!(v["jurisdiction"], "BG");
    assert_eq!(v["piiControllers"][0]["address"]["addressCountry"], "BG");

    // A referral id is not a consent.
    let err = receipt(&record, &s.referrals[0], &opts).unwrap_err();
    assert!(matches!(err, InteropError::UnknownConsent { .. }), "{err}");
}

#[test]
fn nothing_is_made_up_for_events_whose_signer_is_unknown() {
    let s = story();
    let tmp = tempfile::tempdir().unwrap();
    // Only the shelter's and the return desk's journals: the police key is
    // not in any header, so the police's events cannot be checked.
    s.fed.export(tmp.path(), &[SHELTER, RETURNDESK]);
    let exports = Exports::open_dir(tmp.path()).unwrap();
    let record = exports.case(&s.fed.case).unwrap();
    assert!(!record.skipped.is_empty());
    assert!(
        record
            .skipped
            .iter()
            .all(|k| k.reason.contains("bg-police-sofia"))
    );
    assert!(
        record
            .events
            .iter()
            .all(|e| e.event.sender_id != "bg-police-sofia")
    );
    let json = fhir::case_bundle(&record).to_json().unwrap();
    let v: Value = serde_json::from_str(&json).unwrap();
    // No request, offer or consent was verified: none is invented from the
    // answers the shelter signed.
    for kind in ["ServiceRequest", "Task", "Consent"] {
        assert!(of_type(&v, kind).is_empty(), "{kind} made up");
    }
    assert!(!of_type(&v, "AuditEvent").is_empty());
    let path = write(tmp.path(), "partial.json", &json);
    common::validate(&[path]);
}

#[test]
fn an_altered_export_is_refused_and_unknown_cases_are_errors() {
    let s = story();
    let tmp = tempfile::tempdir().unwrap();
    let paths = s.fed.export(tmp.path(), &[]);
    let exports = Exports::open_dir(tmp.path()).unwrap();
    let err = exports.case(&CaseId::new()).unwrap_err();
    assert!(matches!(err, InteropError::UnknownCase(_)), "{err}");

    let mut bytes = std::fs::read(&paths[1]).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&paths[1], bytes).unwrap();
    let err = Exports::open_dir(tmp.path()).unwrap_err();
    assert!(matches!(err, InteropError::Unverified { .. }), "{err}");
}
