//! Table tests: custody handovers and referrals, with the exact texts a
//! caseworker sees.

mod common;

use common::*;
use waymark_policy::{Body, OfferStatus, ReferralStatus, RuleSet, Service, ServiceReason};
use waymark_types::{DataCategory as C, LegalBasis, Purpose};

fn offer(to: &waymark_policy::Party, days: i64) -> Body {
    Body::HandoverOffered {
        to: to.id.clone(),
        expires_at: day(days),
    }
}

fn lawful() -> Option<waymark_policy::Disclosure> {
    Some(legal(
        LegalBasis::VitalInterests,
        JUSTIFICATION,
        Purpose::Protection,
    ))
}

#[test]
fn handover_offer_then_accept_moves_custody() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    let o = c.ok(
        &ngo(),
        Some(&shelter()),
        day(0),
        lawful(),
        offer(&shelter(), 3),
    );
    assert_eq!(c.state.custodian(), Some(&ngo().id));
    c.ok(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::HandoverAccepted { offer: o },
    );
    assert_eq!(c.state.custodian(), Some(&shelter().id));
    assert_eq!(c.state.custody_log().len(), 2);
}

#[test]
fn only_the_custodian_may_offer() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    let v = c.refused(
        &shelter(),
        Some(&police()),
        day(0),
        lawful(),
        offer(&police(), 3),
    );
    assert_refusal(
        &v,
        "custody.not_custodian",
        "Only the agency holding the case may offer a handover; shelter-sofia does not (custodian: ngo-animus). \
         Ask the custodian to do it, or to hand the case over to you first.",
    );
}

#[test]
fn a_second_offer_while_one_is_pending_is_refused() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    c.ok(
        &ngo(),
        Some(&shelter()),
        day(0),
        lawful(),
        offer(&shelter(), 3),
    );
    let v = c.refused(
        &ngo(),
        Some(&police()),
        day(1),
        lawful(),
        offer(&police(), 4),
    );
    assert_refusal(
        &v,
        "custody.offer_pending",
        "Handover offer 00000000-0000-0000-0000-000000000002 to shelter-sofia is still pending until \
         2026-09-24T14:13:20.000Z. Wait for the answer, or cancel that offer before making a new one.",
    );
}

#[test]
fn an_offer_to_oneself_is_refused() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    let v = c.refused(&ngo(), Some(&shelter()), day(0), lawful(), offer(&ngo(), 3));
    assert_refusal(
        &v,
        "custody.offer_to_self",
        "A handover must be offered to another agency; this agency already holds the case.",
    );
    let v = c.refused(&ngo(), Some(&ngo()), day(0), lawful(), offer(&ngo(), 3));
    assert_refusal(
        &v,
        "event.recipient_is_sender",
        "An agency cannot send an event to itself. Leave the recipient empty to record it locally.",
    );
}

#[test]
fn offer_must_go_to_the_named_agency_and_carry_a_basis() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    let v = c.refused(
        &ngo(),
        Some(&police()),
        day(0),
        lawful(),
        offer(&shelter(), 3),
    );
    assert_refusal(
        &v,
        "event.recipient_mismatch",
        "The offer names shelter-sofia but is sent to bg-police-sofia. Send it to the agency offered custody.",
    );
    let v = c.refused(&ngo(), Some(&shelter()), day(0), None, offer(&shelter(), 3));
    assert_refusal(
        &v,
        "disclosure.no_basis",
        "Sending handover_offered to shelter-sofia shares case data (case_core) and needs a basis: cite a \
         consent in force or a legal basis with a justification, and the purpose.",
    );
}

#[test]
fn accepting_an_unknown_offer_is_refused() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::HandoverAccepted { offer: eid(99) },
    );
    assert_refusal(
        &v,
        "custody.offer_unknown",
        "No handover offer 00000000-0000-0000-0000-000000000063 is known for this case. Check the offer id; \
         the offering agency must send the offer before it can be answered.",
    );
}

#[test]
fn an_offer_expires_at_its_expiry_instant() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    let o = c.ok(
        &ngo(),
        Some(&shelter()),
        day(0),
        lawful(),
        offer(&shelter(), 3),
    );
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(3),
        None,
        Body::HandoverAccepted { offer: o },
    );
    assert_refusal(
        &v,
        "custody.offer_expired",
        "Handover offer 00000000-0000-0000-0000-000000000002 expired at 2026-09-24T14:13:20.000Z; an acceptance \
         at 2026-09-24T14:13:20.000Z is too late and custody stays with ngo-animus. Ask ngo-animus for a new offer.",
    );
    // One millisecond earlier is in time.
    c.ok(
        &shelter(),
        Some(&ngo()),
        day(3).plus_millis(-1),
        None,
        Body::HandoverAccepted { offer: o },
    );
    assert_eq!(c.state.custodian(), Some(&shelter().id));
}

#[test]
fn a_lapsed_offer_must_be_recorded_as_expired_before_a_new_offer() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    let o = c.ok(
        &ngo(),
        Some(&shelter()),
        day(0),
        lawful(),
        offer(&shelter(), 3),
    );
    assert_eq!(c.state.expired_offers(day(2)), vec![]);
    assert_eq!(c.state.expired_offers(day(3)), vec![o]);
    let v = c.refused(
        &ngo(),
        Some(&police()),
        day(4),
        lawful(),
        offer(&police(), 6),
    );
    assert_refusal(
        &v,
        "custody.offer_expiry_unrecorded",
        "Handover offer 00000000-0000-0000-0000-000000000002 to shelter-sofia lapsed at 2026-09-24T14:13:20.000Z \
         but its expiry has not been recorded. Record that it expired, then make the new offer.",
    );
    let v = c.refused(
        &ngo(),
        None,
        day(2),
        None,
        Body::HandoverExpired { offer: o },
    );
    assert_refusal(
        &v,
        "custody.offer_not_yet_expired",
        "Handover offer 00000000-0000-0000-0000-000000000002 is open until 2026-09-24T14:13:20.000Z; it cannot \
         be recorded as expired at 2026-09-23T14:13:20.000Z. Cancel it instead if it is no longer wanted.",
    );
    c.ok(
        &ngo(),
        None,
        day(4),
        None,
        Body::HandoverExpired { offer: o },
    );
    assert!(matches!(
        c.state.offers()[&o].status,
        OfferStatus::Expired(_)
    ));
    c.ok(
        &ngo(),
        Some(&police()),
        day(4),
        lawful(),
        offer(&police(), 6),
    );
}

#[test]
fn answers_come_from_the_right_party_and_only_once() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    let o = c.ok(
        &ngo(),
        Some(&shelter()),
        day(0),
        lawful(),
        offer(&shelter(), 3),
    );
    let v = c.refused(
        &police(),
        Some(&ngo()),
        day(1),
        None,
        Body::HandoverAccepted { offer: o },
    );
    assert_refusal(
        &v,
        "custody.not_offeree",
        "Handover offer 00000000-0000-0000-0000-000000000002 was made to shelter-sofia, so only shelter-sofia \
         can answer it.",
    );
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::HandoverCancelled { offer: o },
    );
    assert_refusal(
        &v,
        "custody.not_offerer",
        "Handover offer 00000000-0000-0000-0000-000000000002 was made by ngo-animus, so only ngo-animus can \
         cancel it.",
    );
    c.ok(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::HandoverRejected {
            offer: o,
            reason: ServiceReason::NoCapacity,
        },
    );
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::HandoverAccepted { offer: o },
    );
    assert_refusal(
        &v,
        "custody.offer_not_pending",
        "Handover offer 00000000-0000-0000-0000-000000000002 was already rejected at 2026-09-22T14:13:20.000Z. \
         Ask the custodian for a new offer if needed.",
    );
    assert_eq!(c.state.custodian(), Some(&ngo().id));
}

#[test]
fn declining_custody_for_lack_of_police_cooperation_is_refused() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    let o = c.ok(
        &ngo(),
        Some(&shelter()),
        day(0),
        lawful(),
        offer(&shelter(), 3),
    );
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::HandoverRejected {
            offer: o,
            reason: ServiceReason::NoCooperationWithPolice,
        },
    );
    assert_refusal(
        &v,
        "treaty.art12_6_assistance_not_conditional",
        "You cannot decline custody because the person does not cooperate with police: assistance must never \
         depend on cooperation (CETS 197 Art. 12(6), Directive 2011/36/EU Art. 11(3)). Choose the actual \
         reason, or continue the support.",
    );
}

#[test]
fn offer_lifetime_is_bounded_per_rule_set() {
    // 10 days is within coe-cets197@1's 14 days ...
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    c.ok(
        &ngo(),
        Some(&shelter()),
        day(0),
        lawful(),
        offer(&shelter(), 10),
    );
    // ... but beyond bg@1's 7 days.
    let mut c = Case::opened_by(&ngo(), RuleSet::bg_v1());
    let v = c.refused(
        &ngo(),
        Some(&shelter()),
        day(0),
        lawful(),
        offer(&shelter(), 10),
    );
    assert_refusal(
        &v,
        "custody.offer_lifetime_too_long",
        "Under rule set bg@1 a handover offer may stay open for at most 7 days; choose an expiry no later \
         than 2026-09-28T14:13:20.000Z.",
    );
    let v = c.refused(
        &ngo(),
        Some(&shelter()),
        day(0),
        lawful(),
        offer(&shelter(), 0),
    );
    assert_refusal(
        &v,
        "custody.offer_expiry_invalid",
        "The offer's expiry (2026-09-21T14:13:20.000Z) must be later than the offer itself \
         (2026-09-21T14:13:20.000Z).",
    );
}

#[test]
fn custody_only_for_kinds_the_rule_set_allows() {
    let mut p = RuleSet::coe_cets197_v1().params().clone();
    p.reference = waymark_policy::RuleSetRef::new("test-no-police-custody", 1);
    p.custodian_kinds.remove(&waymark_types::AgencyKind::Police);
    let rules = RuleSet::new(p).unwrap();
    let mut c = Case::opened_by(&ngo(), rules);
    let v = c.refused(
        &ngo(),
        Some(&police()),
        day(0),
        lawful(),
        offer(&police(), 3),
    );
    assert_refusal(
        &v,
        "custody.kind_may_not_hold",
        "Under rule set test-no-police-custody@1 a police agency may not hold a case, so custody cannot be \
         offered to bg-police-sofia. Refer the person to it for a service instead.",
    );
    let v = c.refused(
        &police(),
        None,
        day(0),
        None,
        Body::CaseOpened {
            presumed_child: false,
        },
    );
    assert_eq!(v.rule.code(), "case.already_opened");
}

#[test]
fn a_case_cannot_close_with_an_open_offer() {
    let mut c = Case::opened_by(&ngo(), RuleSet::coe_cets197_v1());
    c.ok(
        &ngo(),
        Some(&shelter()),
        day(0),
        lawful(),
        offer(&shelter(), 3),
    );
    let v = c.refused(
        &ngo(),
        None,
        day(1),
        None,
        Body::CaseClosed {
            outcome: waymark_policy::CaseOutcome::Declined,
        },
    );
    assert_refusal(
        &v,
        "custody.close_with_pending_offer",
        "Handover offer 00000000-0000-0000-0000-000000000002 is still open. Cancel it, or record that it \
         expired, before closing the case.",
    );
}

fn referral_case(rules: RuleSet) -> (Case, waymark_types::EventId) {
    let mut c = Case::opened_by(&ngo(), rules);
    let consent = c.ok(
        &ngo(),
        None,
        day(0),
        None,
        grant(
            &[waymark_policy::Recipient::Kind(
                waymark_types::AgencyKind::Shelter,
            )],
            &[Purpose::Accommodation],
            &[C::CaseCore, C::Identity, C::Health],
            day(0),
            None,
            waymark_policy::GivenBy::Person,
        ),
    );
    let r = c.ok(
        &ngo(),
        Some(&shelter()),
        day(0),
        Some(consent_basis(
            consent,
            Purpose::Accommodation,
            &[C::Identity, C::Health],
        )),
        Body::ReferralRequested {
            service: Service::Accommodation,
        },
    );
    (c, r)
}

#[test]
fn referral_happy_path_follows_fhir_task_states() {
    let (mut c, r) = referral_case(RuleSet::coe_cets197_v1());
    for body in [
        Body::ReferralReceived { referral: r },
        Body::ReferralAccepted { referral: r },
        Body::ReferralStarted { referral: r },
        Body::ReferralCompleted { referral: r },
    ] {
        c.ok(&shelter(), Some(&ngo()), day(1), None, body);
    }
    assert_eq!(c.state.referrals()[&r].status, ReferralStatus::Completed);
    assert_eq!(
        c.state.custodian(),
        Some(&ngo().id),
        "a referral never moves custody"
    );
}

#[test]
fn accepted_may_be_reached_directly_from_requested() {
    let (mut c, r) = referral_case(RuleSet::coe_cets197_v1());
    c.ok(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::ReferralAccepted { referral: r },
    );
}

#[test]
fn referral_overdue_deadline_depends_on_rule_set() {
    let (c, r) = referral_case(RuleSet::coe_cets197_v1());
    assert!(c.state.overdue_referrals(day(5).plus_millis(-1)).is_empty());
    assert_eq!(c.state.overdue_referrals(day(5))[0].referral, r);
    let (mut c, r) = referral_case(RuleSet::bg_v1());
    assert_eq!(c.state.overdue_referrals(day(2))[0].due, day(2));
    c.ok(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::ReferralAccepted { referral: r },
    );
    assert!(
        c.state.overdue_referrals(day(30)).is_empty(),
        "answered referrals are not overdue"
    );
}

#[test]
fn referral_steps_are_refused_out_of_order_or_by_the_wrong_agency() {
    let (mut c, r) = referral_case(RuleSet::coe_cets197_v1());
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::ReferralCompleted { referral: r },
    );
    assert_refusal(
        &v,
        "referral.invalid_transition",
        "Referral 00000000-0000-0000-0000-000000000003 is requested; you can complete it only while it is \
         in progress.",
    );
    let v = c.refused(
        &police(),
        Some(&ngo()),
        day(1),
        None,
        Body::ReferralAccepted { referral: r },
    );
    assert_refusal(
        &v,
        "referral.not_performer",
        "Only shelter-sofia, the agency asked to provide the service, may accept referral \
         00000000-0000-0000-0000-000000000003.",
    );
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::ReferralCancelled { referral: r },
    );
    assert_refusal(
        &v,
        "referral.not_requester",
        "Only ngo-animus, the agency that made the referral, may cancel referral \
         00000000-0000-0000-0000-000000000003.",
    );
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::ReferralAccepted { referral: eid(77) },
    );
    assert_refusal(
        &v,
        "referral.unknown",
        "No referral 00000000-0000-0000-0000-00000000004d is known for this case. Check the referral id; the \
         requesting agency's referral must arrive before it can be answered.",
    );
    c.ok(
        &ngo(),
        Some(&shelter()),
        day(1),
        None,
        Body::ReferralCancelled { referral: r },
    );
    assert_eq!(c.state.referrals()[&r].status, ReferralStatus::Cancelled);
}

#[test]
fn no_cooperation_with_police_is_never_a_reason_to_end_assistance() {
    let (mut c, r) = referral_case(RuleSet::coe_cets197_v1());
    let police_reason = ServiceReason::NoCooperationWithPolice;
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::ReferralRejected {
            referral: r,
            reason: police_reason,
        },
    );
    assert_refusal(
        &v,
        "treaty.art12_6_assistance_not_conditional",
        "You cannot decline a referral because the person does not cooperate with police: assistance must \
         never depend on cooperation (CETS 197 Art. 12(6), Directive 2011/36/EU Art. 11(3)). Choose the \
         actual reason, or continue the support.",
    );
    c.ok(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::ReferralAccepted { referral: r },
    );
    let v = c.refused(
        &shelter(),
        Some(&ngo()),
        day(2),
        None,
        Body::ReferralFailed {
            referral: r,
            reason: police_reason,
        },
    );
    assert_refusal(
        &v,
        "treaty.art12_6_assistance_not_conditional",
        "You cannot end a service because the person does not cooperate with police: assistance must never \
         depend on cooperation (CETS 197 Art. 12(6), Directive 2011/36/EU Art. 11(3)). Choose the actual \
         reason, or continue the support.",
    );
    let v = c.refused(
        &shelter(),
        None,
        day(2),
        None,
        Body::Discharged {
            reason: police_reason,
        },
    );
    assert_refusal(
        &v,
        "treaty.art12_6_assistance_not_conditional",
        "You cannot end the stay because the person does not cooperate with police: assistance must \
         never depend on cooperation (CETS 197 Art. 12(6), Directive 2011/36/EU Art. 11(3)). Choose the \
         actual reason, or continue the support.",
    );
    c.ok(
        &shelter(),
        None,
        day(2),
        None,
        Body::Discharged {
            reason: ServiceReason::GoalsAchieved,
        },
    );
}
