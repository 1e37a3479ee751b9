//! Table tests: consent, legal basis, withdrawal, refusal and the disclosure
//! decision, with the exact texts a caseworker sees.

mod common;

use std::collections::BTreeSet;

use common::*;
use waymark_policy::{
    Body, CaseState, Decision, DisclosureBasis, DisclosureQuery, GivenBy, Recipient, RecipientSet,
    Refusal, Refused, Relied, RuleSet, Service, View, decide_disclosure,
};
use waymark_types::{AgencyKind, DataCategory as C, EventId, LegalBasis, Purpose};

/// A case opened by the NGO with a consent (id 2) to share core, identity and
/// health and assistance data with shelters for accommodation and assistance, days 0 to 60.
fn with_consent(rules: RuleSet) -> (Case, EventId) {
    let mut c = Case::opened_by(&ngo(), rules);
    let id = c.ok(
        &ngo(),
        None,
        day(0),
        None,
        grant(
            &[Recipient::Kind(AgencyKind::Shelter)],
            &[Purpose::Accommodation, Purpose::Assistance],
            &[C::CaseCore, C::Identity, C::Health, C::Assistance],
            day(0),
            Some(day(60)),
            GivenBy::Person,
        ),
    );
    (c, id)
}

fn query(
    to: &waymark_policy::Party,
    purpose: Purpose,
    cats: &[C],
    at_day: i64,
    basis: Option<DisclosureBasis>,
) -> DisclosureQuery {
    DisclosureQuery {
        from: ngo().id,
        from_kind: AgencyKind::Ngo,
        to: to.id.clone(),
        to_kind: to.kind,
        categories: cats.iter().copied().collect(),
        purpose,
        at: day(at_day),
        basis,
    }
}

fn denied(d: Decision) -> waymark_policy::Violation {
    match d {
        Decision::Deny(v) => v,
        Decision::Allow { .. } => panic!("expected a denial"),
    }
}

#[test]
fn a_consent_in_scope_allows_and_the_decision_names_basis_and_rule_set() {
    let (c, id) = with_consent(RuleSet::bg_v1());
    let d = decide_disclosure(
        &c.state,
        &query(&shelter(), Purpose::Accommodation, &[C::Identity], 1, None),
        &c.rules,
    );
    assert_eq!(
        d,
        Decision::Allow {
            basis: Relied::Consent(id),
            rule_set: waymark_policy::RuleSetRef::new("bg", 1)
        }
    );
}

#[test]
fn consent_scope_is_checked_for_recipient_purpose_category_and_time() {
    let (c, id) = with_consent(RuleSet::coe_cets197_v1());
    let b = Some(DisclosureBasis::Consent(id));
    let cases = [
        (
            query(
                &police(),
                Purpose::Accommodation,
                &[C::Identity],
                1,
                b.clone(),
            ),
            "consent.recipient_out_of_scope",
            "Consent 00000000-0000-0000-0000-000000000002 does not cover sharing with bg-police-sofia (police). \
             Ask the person whether they agree to share with this agency, and record that consent.",
        ),
        (
            query(&shelter(), Purpose::Return, &[C::Identity], 1, b.clone()),
            "consent.purpose_out_of_scope",
            "Consent 00000000-0000-0000-0000-000000000002 does not cover the purpose 'return'. Share only for \
             the purposes the person agreed to, or ask for their consent to this purpose.",
        ),
        (
            query(
                &shelter(),
                Purpose::Assistance,
                &[C::Identity, C::Contact, C::Residence],
                1,
                b.clone(),
            ),
            "consent.category_out_of_scope",
            "Consent 00000000-0000-0000-0000-000000000002 does not cover these data categories: contact, \
             residence. Remove them from what you share, or ask the person for consent to share them.",
        ),
        (
            query(
                &shelter(),
                Purpose::Assistance,
                &[C::Identity],
                60,
                b.clone(),
            ),
            "consent.expired",
            "Consent 00000000-0000-0000-0000-000000000002 expired at 2026-11-20T14:13:20.000Z. Ask the person \
             whether they consent again.",
        ),
        (
            query(
                &shelter(),
                Purpose::Assistance,
                &[C::Identity],
                -1,
                b.clone(),
            ),
            "consent.not_yet_valid",
            "Consent 00000000-0000-0000-0000-000000000002 is in force only from 2026-09-21T14:13:20.000Z. Wait \
             until then, or record a new consent.",
        ),
        (
            query(
                &shelter(),
                Purpose::Assistance,
                &[C::Identity],
                1,
                Some(DisclosureBasis::Consent(eid(42))),
            ),
            "consent.unknown",
            "Consent 00000000-0000-0000-0000-00000000002a is not known in this journal. The agency that recorded \
             it must send the consent before sharing data under it.",
        ),
        (
            query(&shelter(), Purpose::Assistance, &[C::Contact], 1, None),
            "disclosure.no_basis",
            "No consent in force covers sharing contact with shelter-sofia for 'assistance' at \
             2026-09-22T14:13:20.000Z, and no legal basis was given. Ask the person for consent, or cite a \
             legal basis with a justification.",
        ),
    ];
    for (q, code, text) in cases {
        let v = denied(decide_disclosure(&c.state, &q, &c.rules));
        assert_refusal(&v, code, text);
        assert_eq!(v.rule_set.to_string(), "coe-cets197@1");
    }
}

#[test]
fn legal_bases_depend_on_agency_kind_and_need_a_justification() {
    let (c, _) = with_consent(RuleSet::coe_cets197_v1());
    let obligation = |j: &str| {
        Some(DisclosureBasis::Legal {
            basis: LegalBasis::LegalObligation,
            justification: j.to_owned(),
        })
    };
    let v = denied(decide_disclosure(
        &c.state,
        &query(
            &police(),
            Purpose::Protection,
            &[C::Identity],
            1,
            obligation(JUSTIFICATION),
        ),
        &c.rules,
    ));
    assert_refusal(
        &v,
        "disclosure.legal_basis_not_permitted",
        "Under rule set coe-cets197@1 a ngo agency may not share data on the legal basis 'legal_obligation'. \
         Ask the person for consent, or ask an agency that holds that legal basis.",
    );
    let mut q = query(
        &shelter(),
        Purpose::Protection,
        &[C::Identity],
        1,
        obligation("   because   "),
    );
    q.from = police().id;
    q.from_kind = AgencyKind::Police;
    let v = denied(decide_disclosure(&c.state, &q, &c.rules));
    assert_refusal(
        &v,
        "disclosure.justification_missing",
        "Sharing on the legal basis 'legal_obligation' needs a written justification of at least 20 \
         characters explaining why it applies (without personal data).",
    );
    q.basis = obligation(JUSTIFICATION);
    assert!(decide_disclosure(&c.state, &q, &c.rules).is_allowed());
}

#[test]
fn proceedings_data_is_never_shared_for_assistance() {
    let (mut c, id) = with_consent(RuleSet::coe_cets197_v1());
    let v = denied(decide_disclosure(
        &c.state,
        &query(&shelter(), Purpose::Assistance, &[C::Proceedings], 1, None),
        &c.rules,
    ));
    let text = "Data about cooperation with police or criminal proceedings may not be shared for 'assistance': \
                assistance must never depend on cooperation (CETS 197 Art. 12(6), Directive 2011/36/EU \
                Art. 11(3)). Remove the proceedings category; if it must be shared, share it separately for \
                criminal proceedings on its own basis.";
    assert_refusal(
        &v,
        "treaty.art12_6_assistance_separate_from_proceedings",
        text,
    );
    // The same rule applies to an event: a service record sent with proceedings data.
    let v = c.refused(
        &ngo(),
        Some(&shelter()),
        day(1),
        Some(consent_basis(id, Purpose::Assistance, &[C::Proceedings])),
        Body::ServiceDelivered {
            service: Service::Legal,
        },
    );
    assert_refusal(
        &v,
        "treaty.art12_6_assistance_separate_from_proceedings",
        text,
    );
}

#[test]
fn withdrawal_is_never_retroactive_and_spares_earlier_disclosures() {
    let (mut c, id) = with_consent(RuleSet::coe_cets197_v1());
    let sent = c.ok(
        &ngo(),
        Some(&shelter()),
        day(1),
        Some(consent_basis(id, Purpose::Accommodation, &[C::Identity])),
        Body::ReferralRequested {
            service: Service::Accommodation,
        },
    );
    let v = c.refused(
        &ngo(),
        None,
        day(5),
        None,
        Body::ConsentWithdrawn {
            consent: id,
            effective_at: day(4),
        },
    );
    assert_refusal(
        &v,
        "consent.withdrawal_retroactive",
        "A withdrawal takes effect from when it is recorded, never earlier (GDPR Art. 7(3)): \
         2026-09-25T14:13:20.000Z is before 2026-09-26T14:13:20.000Z. Record it as effective now; sharing \
         that already happened stays lawful.",
    );
    c.ok(
        &ngo(),
        None,
        day(5),
        None,
        Body::ConsentWithdrawn {
            consent: id,
            effective_at: day(5),
        },
    );
    // The earlier disclosure stays recorded, and stays lawful at its time.
    assert_eq!(c.state.disclosures()[0].event, sent);
    let earlier = query(
        &shelter(),
        Purpose::Accommodation,
        &[C::Identity],
        1,
        Some(DisclosureBasis::Consent(id)),
    );
    assert!(decide_disclosure(&c.state, &earlier, &c.rules).is_allowed());
    let later = query(
        &shelter(),
        Purpose::Accommodation,
        &[C::Identity],
        5,
        Some(DisclosureBasis::Consent(id)),
    );
    assert_refusal(
        &denied(decide_disclosure(&c.state, &later, &c.rules)),
        "consent.withdrawn",
        "The person withdrew consent 00000000-0000-0000-0000-000000000002 with effect from \
         2026-09-26T14:13:20.000Z (recorded by ngo-animus). Do not share under it; a new consent or a legal \
         basis is needed.",
    );
    let v = c.refused(
        &ngo(),
        None,
        day(6),
        None,
        Body::ConsentWithdrawn {
            consent: id,
            effective_at: day(6),
        },
    );
    assert_refusal(
        &v,
        "consent.already_withdrawn",
        "Consent 00000000-0000-0000-0000-000000000002 was already withdrawn by ngo-animus at \
         2026-09-26T14:13:20.000Z, effective 2026-09-26T14:13:20.000Z. Nothing more to record.",
    );
}

#[test]
fn withdrawal_status_lists_who_must_acknowledge() {
    let (mut c, id) = with_consent(RuleSet::coe_cets197_v1());
    let other_shelter = party("shelter-plovdiv", AgencyKind::Shelter);
    for to in [shelter(), other_shelter.clone()] {
        c.ok(
            &ngo(),
            Some(&to),
            day(1),
            Some(consent_basis(id, Purpose::Assistance, &[C::Health])),
            Body::ServiceDelivered {
                service: Service::Medical,
            },
        );
    }
    assert!(
        c.state.withdrawal_status(id).is_none(),
        "nothing to acknowledge before a withdrawal"
    );
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(2),
        None,
        Body::WithdrawalAcknowledged { consent: id },
    );
    assert_refusal(
        &v,
        "consent.not_withdrawn",
        "Consent 00000000-0000-0000-0000-000000000002 has not been withdrawn in this journal, so there is \
         nothing to acknowledge. The withdrawal must arrive first.",
    );
    c.ok(
        &ngo(),
        None,
        day(3),
        None,
        Body::ConsentWithdrawn {
            consent: id,
            effective_at: day(3),
        },
    );
    c.ok(
        &shelter(),
        Some(&ngo()),
        day(4),
        None,
        Body::WithdrawalAcknowledged { consent: id },
    );
    let s = c.state.withdrawal_status(id).unwrap();
    assert_eq!(
        s.required,
        BTreeSet::from([shelter().id, other_shelter.id.clone()])
    );
    assert_eq!(s.acknowledged, BTreeSet::from([shelter().id]));
    assert_eq!(s.outstanding, BTreeSet::from([other_shelter.id]));
}

#[test]
fn a_child_consent_needs_a_representative() {
    let mut c = Case::new(View::Auditor, RuleSet::coe_cets197_v1());
    c.ok(
        &ngo(),
        None,
        day(0),
        None,
        Body::CaseOpened {
            presumed_child: true,
        },
    );
    let body = |by| {
        grant(
            &[Recipient::Kind(AgencyKind::Shelter)],
            &[Purpose::Accommodation],
            &[C::CaseCore],
            day(0),
            None,
            by,
        )
    };
    let v = c.refused(&ngo(), None, day(0), None, body(GivenBy::Person));
    assert_refusal(
        &v,
        "consent.child_needs_representative",
        "The person is a child or presumed a child (CETS 197 Art. 10(3)-(4)): consent must be given by, or \
         together with, their guardian or legal representative. Record who gave it.",
    );
    c.ok(
        &ngo(),
        None,
        day(0),
        None,
        body(GivenBy::PersonWithRepresentative),
    );
    c.ok(&ngo(), None, day(0), None, body(GivenBy::Representative));
}

#[test]
fn malformed_consents_are_refused() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    let v = c.refused(
        &ngo(),
        None,
        day(0),
        None,
        grant(
            &[],
            &[Purpose::Assistance],
            &[C::CaseCore],
            day(0),
            None,
            GivenBy::Person,
        ),
    );
    assert_refusal(
        &v,
        "consent.empty_scope",
        "A consent must name at least one recipient agency (or kind), one purpose and one data category. \
         Record exactly what the person agreed to.",
    );
    let v = c.refused(
        &ngo(),
        None,
        day(2),
        None,
        grant(
            &[Recipient::Agency(shelter().id)],
            &[Purpose::Assistance],
            &[C::CaseCore],
            day(0),
            Some(day(1)),
            GivenBy::Person,
        ),
    );
    assert_refusal(
        &v,
        "consent.invalid_period",
        "The consent would end before it starts (in force from 2026-09-23T14:13:20.000Z). Check the validity dates.",
    );
    let v = c.refused(
        &ngo(),
        Some(&police()),
        day(0),
        None,
        grant(
            &[Recipient::Agency(shelter().id)],
            &[Purpose::Assistance],
            &[C::CaseCore],
            day(0),
            None,
            GivenBy::Person,
        ),
    );
    assert_refusal(
        &v,
        "consent.forward_out_of_scope",
        "This consent does not cover bg-police-sofia, so it cannot be sent there. Send it only to agencies \
         the person agreed to share with.",
    );
}

#[test]
fn a_receiver_needs_the_consent_before_data_shared_under_it() {
    // The shelter's own journal: it has not received the consent yet.
    let (mut sender, id) = with_consent(RuleSet::coe_cets197_v1());
    let grant_event = {
        // Rebuild the consent event exactly as the NGO journaled it (id 2).
        let e = sender.event(
            &ngo(),
            None,
            day(0),
            None,
            grant(
                &[Recipient::Kind(AgencyKind::Shelter)],
                &[Purpose::Accommodation, Purpose::Assistance],
                &[C::CaseCore, C::Identity, C::Health, C::Assistance],
                day(0),
                Some(day(60)),
                GivenBy::Person,
            ),
        );
        waymark_policy::Event { id, ..e }
    };
    let referral = sender.event(
        &ngo(),
        Some(&shelter()),
        day(1),
        Some(consent_basis(id, Purpose::Accommodation, &[C::Identity])),
        Body::ReferralRequested {
            service: Service::Accommodation,
        },
    );
    let mut receiver = CaseState::new(case_id(), View::Agency(shelter().id));
    let v = receiver.apply(&referral, &sender.rules).unwrap_err();
    assert_refusal(
        &v,
        "consent.unknown",
        "Consent 00000000-0000-0000-0000-000000000002 is not known in this journal. The agency that recorded it \
         must send the consent before sharing data under it.",
    );
    assert!(
        !receiver.is_known(),
        "a refused event does not introduce the case"
    );
    // Once the NGO forwards the consent grant (same event), the referral is accepted.
    receiver.apply(&grant_event, &sender.rules).unwrap();
    assert_eq!(receiver.introduced_by(), Some(&ngo().id));
    receiver.apply(&referral, &sender.rules).unwrap();
    assert_eq!(
        receiver.custodian(),
        None,
        "custody is not known in the shelter's journal"
    );
}

fn refuse(c: &mut Case, of: Refused, at: i64) {
    c.ok(
        &ngo(),
        None,
        day(at),
        None,
        Body::RefusalRecorded(Refusal {
            of,
            recipients: RecipientSet::Only([Recipient::Kind(AgencyKind::Shelter)].into()),
            purposes: Default::default(),
        }),
    );
}

#[test]
fn a_refusal_of_disclosure_blocks_sharing_until_a_newer_consent() {
    let (mut c, id) = with_consent(RuleSet::coe_cets197_v1());
    refuse(&mut c, Refused::Disclosure, 2);
    let q = query(
        &shelter(),
        Purpose::Assistance,
        &[C::Identity],
        3,
        Some(DisclosureBasis::Consent(id)),
    );
    let text = "The person refused to have their data shared with shelter-sofia (recorded by ngo-animus at \
                2026-09-23T14:13:20.000Z). Do not share. If the person changes their mind, record their new \
                consent first.";
    assert_refusal(
        &denied(decide_disclosure(&c.state, &q, &c.rules)),
        "refusal.disclosure_refused",
        text,
    );
    // Before the refusal the same sharing was fine: refusals are not retroactive.
    let q1 = DisclosureQuery {
        at: day(1),
        ..q.clone()
    };
    assert!(decide_disclosure(&c.state, &q1, &c.rules).is_allowed());
    // The person changes their mind: a newer consent lifts the refusal for sharing under it.
    let newer = c.ok(
        &ngo(),
        None,
        day(4),
        None,
        grant(
            &[Recipient::Agency(shelter().id)],
            &[Purpose::Assistance],
            &[C::Identity],
            day(4),
            None,
            GivenBy::Person,
        ),
    );
    let q2 = query(&shelter(), Purpose::Assistance, &[C::Identity], 5, None);
    assert_eq!(
        decide_disclosure(&c.state, &q2, &c.rules),
        Decision::Allow {
            basis: Relied::Consent(newer),
            rule_set: c.rules.reference().clone()
        }
    );
}

#[test]
fn vital_interests_override_a_refusal_of_disclosure_only_where_the_rule_set_says_so() {
    let vital = Some(DisclosureBasis::Legal {
        basis: LegalBasis::VitalInterests,
        justification: JUSTIFICATION.to_owned(),
    });
    // Baseline: a capable person's refusal stands.
    let (mut c, _) = with_consent(RuleSet::coe_cets197_v1());
    refuse(&mut c, Refused::Disclosure, 2);
    let q = query(
        &shelter(),
        Purpose::Protection,
        &[C::Safety],
        3,
        vital.clone(),
    );
    assert_refusal(
        &denied(decide_disclosure(&c.state, &q, &c.rules)),
        "refusal.disclosure_refused",
        "The person refused to have their data shared with shelter-sofia (recorded by ngo-animus at \
         2026-09-23T14:13:20.000Z). Do not share. If the person changes their mind, record their new consent \
         first.",
    );
    // bg@1 (Bulgarian NRM SOP): life and safety risks must be shared.
    let (mut c, _) = with_consent(RuleSet::bg_v1());
    refuse(&mut c, Refused::Disclosure, 2);
    assert_eq!(
        decide_disclosure(&c.state, &q, &c.rules),
        Decision::Allow {
            basis: Relied::LegalOverridingRefusal(LegalBasis::VitalInterests),
            rule_set: c.rules.reference().clone()
        }
    );
    let other = DisclosureQuery {
        basis: Some(DisclosureBasis::Legal {
            basis: LegalBasis::VitalInterests,
            justification: JUSTIFICATION.to_owned(),
        }),
        ..query(&shelter(), Purpose::Assistance, &[C::Identity], 3, None)
    };
    assert!(decide_disclosure(&c.state, &other, &c.rules).is_allowed());
    let by_consent = query(&shelter(), Purpose::Assistance, &[C::Identity], 3, None);
    assert_refusal(
        &denied(decide_disclosure(&c.state, &by_consent, &c.rules)),
        "refusal.disclosure_refused",
        "The person refused to have their data shared with shelter-sofia (recorded by ngo-animus at \
         2026-09-23T14:13:20.000Z). Do not share. Only an immediate risk to life or safety (vital interests, \
         with a justification) may still be shared. If the person changes their mind, record their new \
         consent first.",
    );
}

#[test]
fn a_refusal_of_referral_blocks_referrals() {
    let (mut c, id) = with_consent(RuleSet::bg_v1());
    refuse(&mut c, Refused::Referral, 1);
    let v = c.refused(
        &ngo(),
        Some(&shelter()),
        day(2),
        Some(consent_basis(id, Purpose::Accommodation, &[])),
        Body::ReferralRequested {
            service: Service::Accommodation,
        },
    );
    assert_refusal(
        &v,
        "refusal.referral_refused",
        "The person refused referral to shelter-sofia (recorded by ngo-animus at 2026-09-22T14:13:20.000Z). Do \
         not refer; if the person changes their mind, record their new consent to this referral first.",
    );
    // Other sharing with the shelter is not a referral and is not blocked.
    c.ok(
        &ngo(),
        Some(&shelter()),
        day(2),
        Some(consent_basis(id, Purpose::Assistance, &[])),
        Body::ServiceDelivered {
            service: Service::Medical,
        },
    );
}

#[test]
fn a_refusal_of_assistance_blocks_assistance_sharing_only() {
    let (mut c, id) = with_consent(RuleSet::bg_v1());
    refuse(&mut c, Refused::Assistance, 1);
    let v = c.refused(
        &ngo(),
        Some(&shelter()),
        day(2),
        Some(consent_basis(id, Purpose::Accommodation, &[])),
        Body::ReferralRequested {
            service: Service::Accommodation,
        },
    );
    assert_refusal(
        &v,
        "refusal.assistance_refused",
        "The person refused assistance (recorded by ngo-animus at 2026-09-22T14:13:20.000Z), so nothing may be \
         shared with shelter-sofia for the purpose 'accommodation'. Assistance is given only with the person's \
         agreement (CETS 197 Art. 12(7)); if they change their mind, record their new consent first.",
    );
    let safety = query(
        &shelter(),
        Purpose::Protection,
        &[C::Safety],
        2,
        Some(DisclosureBasis::Legal {
            basis: LegalBasis::VitalInterests,
            justification: JUSTIFICATION.to_owned(),
        }),
    );
    assert!(decide_disclosure(&c.state, &safety, &c.rules).is_allowed());
}

#[test]
fn a_refusal_limited_to_some_purposes_blocks_only_those() {
    let (mut c, id) = with_consent(RuleSet::coe_cets197_v1());
    // The person refuses disclosure for accommodation only.
    c.ok(
        &ngo(),
        None,
        day(2),
        None,
        Body::RefusalRecorded(Refusal {
            of: Refused::Disclosure,
            recipients: RecipientSet::All,
            purposes: [Purpose::Accommodation].into(),
        }),
    );
    let for_accommodation = query(
        &shelter(),
        Purpose::Accommodation,
        &[C::Identity],
        3,
        Some(DisclosureBasis::Consent(id)),
    );
    assert_refusal(
        &denied(decide_disclosure(&c.state, &for_accommodation, &c.rules)),
        "refusal.disclosure_refused",
        "The person refused to have their data shared with shelter-sofia (recorded by ngo-animus at \
         2026-09-23T14:13:20.000Z). Do not share. If the person changes their mind, record their new \
         consent first.",
    );
    // Assistance was not refused: the same consent still allows it.
    let for_assistance = query(
        &shelter(),
        Purpose::Assistance,
        &[C::Identity],
        3,
        Some(DisclosureBasis::Consent(id)),
    );
    assert!(decide_disclosure(&c.state, &for_assistance, &c.rules).is_allowed());
}
