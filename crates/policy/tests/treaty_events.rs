//! Table tests: treaty guards (each names its article), originators, rule
//! sets, case lifecycle and replay, with the exact texts a caseworker sees.

mod common;

use common::*;
use waymark_policy::{
    Applied, Body, CaseOutcome, CaseState, Event, RuleSet, RuleSetRef, RuleSets, View, replay,
    replay_journal,
};
use waymark_types::{LegalBasis, Purpose};

fn desk_case(rules: RuleSet, child: bool) -> Case {
    let mut c = Case::new(View::Auditor, rules);
    c.ok(
        &police(),
        None,
        day(0),
        None,
        Body::CaseOpened {
            presumed_child: child,
        },
    );
    c
}

fn schedule(c: &mut Case, at: i64, depart: i64) -> Result<(), waymark_policy::Violation> {
    let e = c.event(
        &desk(),
        None,
        day(at),
        None,
        Body::ReturnScheduled {
            departure_at: day(depart),
        },
    );
    c.state.apply(&e, &c.rules).map(|_| ())
}

#[test]
fn cets197_art13_reflection_period_is_at_least_30_days() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    let v = c.refused(
        &shelter(),
        None,
        day(1),
        None,
        Body::ReflectionPeriodStarted {
            starts_at: day(1),
            ends_at: day(30),
        },
    );
    assert_refusal(
        &v,
        "treaty.art13_reflection_too_short",
        "The recovery and reflection period must last at least 30 days from its start and from the \
         reasonable-grounds decision (CETS 197 Art. 13, rule set coe-cets197@1). Set its end to \
         2026-10-22T14:13:20.000Z or later.",
    );
    c.ok(
        &shelter(),
        None,
        day(1),
        None,
        Body::ReflectionPeriodStarted {
            starts_at: day(1),
            ends_at: day(31),
        },
    );
}

#[test]
fn cets197_art13_reflection_period_counts_from_reasonable_grounds() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    c.ok(
        &police(),
        None,
        day(5),
        None,
        Body::ReasonableGroundsDecided { positive: true },
    );
    // Started (backdated) on day 0: 30 days from its start, but only 25 from the decision.
    let v = c.refused(
        &shelter(),
        None,
        day(5),
        None,
        Body::ReflectionPeriodStarted {
            starts_at: day(0),
            ends_at: day(30),
        },
    );
    assert_eq!(v.rule.code(), "treaty.art13_reflection_too_short");
    assert!(
        v.reason
            .contains("Set its end to 2026-10-26T14:13:20.000Z or later."),
        "{}",
        v.reason
    );
}

#[test]
fn cets197_art10_2_no_return_before_identification_is_concluded() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    let v = c.refused(
        &desk(),
        None,
        day(40),
        None,
        Body::ReturnScheduled {
            departure_at: day(50),
        },
    );
    assert_refusal(
        &v,
        "treaty.art10_2_identification_pending",
        "Identification has not been concluded, as far as this journal shows, so no return may be scheduled \
         (CETS 197 Art. 10(2)) unless the person asks for return themselves. Wait for the police's \
         identification decision (identification_concluded), or record the person's own request for return.",
    );
    // The person's own request for return lifts this guard.
    c.ok(
        &desk(),
        None,
        day(40),
        None,
        Body::ReturnRequested {
            requested_by_person: true,
        },
    );
    schedule(&mut c, 40, 41).unwrap();
}

#[test]
fn cets197_art13_no_return_inside_the_reflection_period() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    c.ok(
        &police(),
        None,
        day(1),
        None,
        Body::ReasonableGroundsDecided { positive: true },
    );
    c.ok(
        &police(),
        None,
        day(10),
        None,
        Body::IdentificationConcluded { victim: true },
    );
    let v = c.refused(
        &desk(),
        None,
        day(10),
        None,
        Body::ReturnScheduled {
            departure_at: day(20),
        },
    );
    assert_refusal(
        &v,
        "treaty.art13_return_in_reflection_period",
        "The recovery and reflection period runs until 2026-10-22T14:13:20.000Z; no return may take place \
         before then (CETS 197 Art. 13) unless the person asks for it. Choose a departure on or after \
         2026-10-22T14:13:20.000Z, or record the person's own request for return.",
    );
    // The protection ends exactly 30 days after the decision.
    schedule(&mut c, 10, 31).unwrap();
}

#[test]
fn cets197_art13_a_longer_recorded_period_protects_longer() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    c.ok(
        &police(),
        None,
        day(1),
        None,
        Body::ReasonableGroundsDecided { positive: true },
    );
    c.ok(
        &shelter(),
        None,
        day(1),
        None,
        Body::ReflectionPeriodStarted {
            starts_at: day(1),
            ends_at: day(91),
        },
    );
    c.ok(
        &police(),
        None,
        day(10),
        None,
        Body::IdentificationConcluded { victim: true },
    );
    assert_eq!(
        schedule(&mut c, 10, 60).unwrap_err().rule.code(),
        "treaty.art13_return_in_reflection_period"
    );
    c.ok(
        &desk(),
        None,
        day(11),
        None,
        Body::ReturnRequested {
            requested_by_person: true,
        },
    );
    schedule(&mut c, 11, 60).unwrap();
}

#[test]
fn cets197_art16_7_no_child_return_without_best_interests_assessment() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), true);
    c.ok(
        &police(),
        None,
        day(1),
        None,
        Body::IdentificationConcluded { victim: true },
    );
    // Even the child's own request does not replace the assessment.
    c.ok(
        &desk(),
        None,
        day(1),
        None,
        Body::ReturnRequested {
            requested_by_person: true,
        },
    );
    let v = c.refused(
        &desk(),
        None,
        day(40),
        None,
        Body::ReturnScheduled {
            departure_at: day(50),
        },
    );
    assert_refusal(
        &v,
        "treaty.art16_7_child_best_interests",
        "The person is a child or presumed a child, and no best-interests risk assessment is recorded. A child \
         may not be returned unless a risk and security assessment finds return in the child's best interests \
         (CETS 197 Art. 16(7)). Record a favourable assessment first, or plan an alternative.",
    );
    c.ok(
        &desk(),
        None,
        day(41),
        None,
        Body::ReturnRiskAssessed {
            best_interests_ok: false,
            child: true,
        },
    );
    let v = c.refused(
        &desk(),
        None,
        day(42),
        None,
        Body::ReturnScheduled {
            departure_at: day(50),
        },
    );
    assert_refusal(
        &v,
        "treaty.art16_7_child_best_interests",
        "The person is a child or presumed a child, and the latest assessment (2026-11-01T14:13:20.000Z) found \
         return not in the child's best interests. A child may not be returned unless a risk and security \
         assessment finds return in the child's best interests (CETS 197 Art. 16(7)). Record a favourable \
         assessment first, or plan an alternative.",
    );
    c.ok(
        &desk(),
        None,
        day(43),
        None,
        Body::ReturnRiskAssessed {
            best_interests_ok: true,
            child: true,
        },
    );
    schedule(&mut c, 43, 50).unwrap();
}

#[test]
fn an_assessment_that_finds_a_child_makes_the_case_a_child_case() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    c.ok(
        &police(),
        None,
        day(1),
        None,
        Body::IdentificationConcluded { victim: true },
    );
    c.ok(
        &desk(),
        None,
        day(40),
        None,
        Body::ReturnRiskAssessed {
            best_interests_ok: false,
            child: true,
        },
    );
    assert!(c.state.presumed_child());
    assert_eq!(
        schedule(&mut c, 40, 50).unwrap_err().rule.code(),
        "treaty.art16_7_child_best_interests"
    );
}

#[test]
fn bg_requires_a_risk_assessment_for_adults_too() {
    let mut c = desk_case(RuleSet::bg_v1(), false);
    c.ok(
        &police(),
        None,
        day(1),
        None,
        Body::IdentificationConcluded { victim: true },
    );
    let v = c.refused(
        &desk(),
        None,
        day(40),
        None,
        Body::ReturnScheduled {
            departure_at: day(50),
        },
    );
    assert_refusal(
        &v,
        "return.risk_assessment_required",
        "Under rule set bg@1 a return may be scheduled only after a return risk assessment that finds it \
         safe. Record the assessment first.",
    );
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    c.ok(
        &police(),
        None,
        day(1),
        None,
        Body::IdentificationConcluded { victim: true },
    );
    schedule(&mut c, 40, 50).unwrap();
}

#[test]
fn departure_needs_a_scheduled_return() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    let v = c.refused(&desk(), None, day(1), None, Body::DepartureRecorded);
    assert_refusal(
        &v,
        "return.not_scheduled",
        "No return has been scheduled for this case, so a departure cannot be recorded. Schedule the return \
         first; the scheduling checks identification, reflection and risk assessment.",
    );
}

#[test]
fn agency_kinds_originate_only_their_own_events() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    let v = c.refused(
        &ngo(),
        None,
        day(1),
        None,
        Body::ReasonableGroundsDecided { positive: true },
    );
    assert_refusal(
        &v,
        "event.originator_not_allowed",
        "A ngo agency may not record reasonable_grounds_decided: only police agencies may. Ask the responsible \
         agency to record it.",
    );
    let v = c.refused(
        &police(),
        None,
        day(1),
        None,
        Body::ReturnScheduled {
            departure_at: day(50),
        },
    );
    assert_eq!(v.rule.code(), "event.originator_not_allowed");
}

#[test]
fn events_name_their_rule_set_and_replay_uses_it() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    let e = c.event(&police(), None, day(1), None, Body::SignalReceived);
    let v = c.state.apply(&e, &RuleSet::bg_v1()).unwrap_err();
    assert_refusal(
        &v,
        "rules.mismatch",
        "This event was made under rule set coe-cets197@1 but is being checked under bg@1. Check it under the \
         rule set it names.",
    );
    let unknown = Event {
        rule_set: RuleSetRef::new("bg", 9),
        ..e.clone()
    };
    let opened = c.state.clone();
    let r = replay(case_id(), View::Auditor, [&unknown], &RuleSets::builtin());
    assert_refusal(
        &r.violations[0].1,
        "rules.unknown",
        "This event was made under rule set bg@9, which this system does not know. Install that rule-set \
         version to check it; it was not evaluated under another version.",
    );
    assert!(opened.is_known());
}

#[test]
fn lifecycle_rules() {
    let mut c = Case::auditor();
    let v = c.refused(&police(), None, day(0), None, Body::SignalReceived);
    assert_refusal(
        &v,
        "case.not_opened",
        "Case 00000000-0000-0000-0000-00000000ca5e has not been opened in this journal, so signal_received \
         cannot be recorded. Open the case first, or ask the agency that holds it to send it to you.",
    );
    c.ok(
        &police(),
        None,
        day(0),
        None,
        Body::CaseOpened {
            presumed_child: false,
        },
    );
    let v = c.refused(
        &ngo(),
        None,
        day(0),
        None,
        Body::CaseClosed {
            outcome: CaseOutcome::Declined,
        },
    );
    assert_eq!(v.rule.code(), "custody.not_custodian");
    let consent = c.ok(
        &police(),
        None,
        day(0),
        None,
        grant(
            &[waymark_policy::Recipient::Kind(
                waymark_types::AgencyKind::Shelter,
            )],
            &[Purpose::Protection],
            &[waymark_types::DataCategory::CaseCore],
            day(0),
            None,
            waymark_policy::GivenBy::Person,
        ),
    );
    c.ok(
        &police(),
        None,
        day(1),
        None,
        Body::CaseClosed {
            outcome: CaseOutcome::Declined,
        },
    );
    let v = c.refused(&police(), None, day(2), None, Body::SignalReceived);
    assert_refusal(
        &v,
        "case.closed",
        "Case 00000000-0000-0000-0000-00000000ca5e was closed by bg-police-sofia at 2026-09-22T14:13:20.000Z. \
         After closure only consent withdrawals, refusals, erasures, acknowledgements, receipts and referral \
         cancellations can be recorded. Open a new case if the person needs support again.",
    );
    // The person's rights continue after closure.
    c.ok(
        &police(),
        None,
        day(2),
        None,
        Body::ConsentWithdrawn {
            consent,
            effective_at: day(2),
        },
    );
    let v = c.refused(
        &police(),
        Some(&shelter()),
        day(2),
        Some(legal(
            LegalBasis::VitalInterests,
            JUSTIFICATION,
            Purpose::Protection,
        )),
        Body::SignalReceived,
    );
    assert_eq!(v.rule.code(), "case.closed");
}

#[test]
fn event_shape_rules() {
    let mut c = desk_case(RuleSet::coe_cets197_v1(), false);
    let v = c.refused(
        &police(),
        None,
        day(1),
        Some(legal(
            LegalBasis::PublicTask,
            JUSTIFICATION,
            Purpose::Identification,
        )),
        Body::SignalReceived,
    );
    assert_refusal(
        &v,
        "event.basis_without_recipient",
        "This event names a disclosure basis but no recipient. Name the agency it is sent to, or remove the \
         basis to record it locally.",
    );
    let v = c.refused(
        &shelter(),
        None,
        day(1),
        None,
        Body::CapacityUpdated { free_places: 3 },
    );
    assert_refusal(
        &v,
        "event.not_case_event",
        "A capacity_updated event is about the agency, not a case; it cannot be recorded on a case.",
    );
    let e = c.event(&police(), None, day(1), None, Body::SignalReceived);
    c.state.apply(&e, &c.rules).unwrap();
    assert_eq!(c.state.apply(&e, &c.rules), Ok(Applied::Duplicate));
    let altered = Event {
        body: Body::ReasonableGroundsDecided { positive: false },
        ..e.clone()
    };
    let v = c.state.apply(&altered, &c.rules).unwrap_err();
    assert_refusal(
        &v,
        "event.id_reused",
        "Event id 00000000-0000-0000-0000-000000000004 was already used for a different event. Every event \
         needs a new id; report this to your system administrator.",
    );
    let other_case = Event {
        case: waymark_types::CaseId::from_uuid(uuid::Uuid::from_u128(7)),
        id: eid(500),
        ..e
    };
    assert_eq!(
        c.state
            .apply(&other_case, &c.rules)
            .unwrap_err()
            .rule
            .code(),
        "event.wrong_case"
    );
}

#[test]
fn a_local_view_is_introduced_to_a_case_by_the_first_event_it_receives() {
    let rules = RuleSet::coe_cets197_v1();
    let mut ngo_side = Case::opened_by(&ngo(), rules.clone());
    let offer = ngo_side.event(
        &ngo(),
        Some(&shelter()),
        day(0),
        Some(legal(
            LegalBasis::VitalInterests,
            JUSTIFICATION,
            Purpose::Protection,
        )),
        Body::HandoverOffered {
            to: shelter().id,
            expires_at: day(3),
        },
    );
    ngo_side.state.apply(&offer, &rules).unwrap();
    let mut shelter_side = CaseState::new(case_id(), View::Agency(shelter().id));
    // The shelter never saw the opening: custody is unknown, the offer is taken on trust.
    shelter_side.apply(&offer, &rules).unwrap();
    assert_eq!(shelter_side.custodian(), None);
    let accept = ngo_side.event(
        &shelter(),
        Some(&ngo()),
        day(1),
        None,
        Body::HandoverAccepted { offer: offer.id },
    );
    shelter_side.apply(&accept, &rules).unwrap();
    ngo_side.state.apply(&accept, &rules).unwrap();
    assert_eq!(shelter_side.custodian(), Some(&shelter().id));
    assert_eq!(ngo_side.state.custodian(), Some(&shelter().id));
    // The auditor merges both journals (each event appears in both) and agrees.
    let opening = ngo_side.state.opening().unwrap().event;
    let merged: Vec<Event> = [opening, offer.id, offer.id, accept.id, accept.id]
        .iter()
        .map(|id| {
            if *id == opening {
                Event {
                    id: opening,
                    case: case_id(),
                    sender: ngo(),
                    recipient: None,
                    at: day(0),
                    rule_set: rules.reference().clone(),
                    disclosure: None,
                    body: Body::CaseOpened {
                        presumed_child: false,
                    },
                }
            } else if *id == offer.id {
                offer.clone()
            } else {
                accept.clone()
            }
        })
        .collect();
    let r = &replay_journal(&View::Auditor, &merged, &RuleSets::builtin())[&case_id()];
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.state.custodian(), Some(&shelter().id));
    // A local agency cannot itself act as custodian of a case it only heard of.
    let mut police_side = CaseState::new(case_id(), View::Agency(police().id));
    let own = ngo_side.event(
        &police(),
        Some(&desk()),
        day(2),
        Some(legal(
            LegalBasis::VitalInterests,
            JUSTIFICATION,
            Purpose::Protection,
        )),
        Body::HandoverOffered {
            to: desk().id,
            expires_at: day(3),
        },
    );
    assert_eq!(
        police_side.apply(&own, &rules).unwrap_err().rule.code(),
        "case.not_opened"
    );
}

/// An agency that learned of a case through a handover never saw its
/// opening: the person's age is unknown there, so they are presumed a child
/// (CETS 197 Art. 10(3)) and no return is scheduled without a favourable
/// best-interests assessment, even at the person's own request.
#[test]
fn cets197_art10_3_age_unknown_in_a_local_view_is_presumed_child_for_return() {
    let rules = RuleSet::coe_cets197_v1();
    let mut shelter_side = Case::opened_by(&shelter(), rules.clone());
    let offer = shelter_side.event(
        &shelter(),
        Some(&desk()),
        day(0),
        Some(legal(
            LegalBasis::VitalInterests,
            JUSTIFICATION,
            Purpose::Return,
        )),
        Body::HandoverOffered {
            to: desk().id,
            expires_at: day(3),
        },
    );
    shelter_side.state.apply(&offer, &rules).unwrap();
    let mut desk_side = Case {
        state: CaseState::new(case_id(), View::Agency(desk().id)),
        rules: rules.clone(),
        next: shelter_side.next,
    };
    desk_side.state.apply(&offer, &rules).unwrap();
    desk_side.ok(
        &desk(),
        None,
        day(1),
        None,
        Body::ReturnRequested {
            requested_by_person: true,
        },
    );
    let v = desk_side.refused(
        &desk(),
        None,
        day(2),
        None,
        Body::ReturnScheduled {
            departure_at: day(10),
        },
    );
    assert_refusal(
        &v,
        "treaty.art16_7_child_best_interests",
        "The person's age is unknown to this agency (it has not seen the case's opening), so they are presumed a \
         child (CETS 197 Art. 10(3)), and no best-interests risk assessment is recorded. A child may not be \
         returned unless a risk and security assessment finds return in the child's best interests (CETS 197 \
         Art. 16(7)). Record a favourable assessment first, or plan an alternative.",
    );
    desk_side.ok(
        &desk(),
        None,
        day(3),
        None,
        Body::ReturnRiskAssessed {
            best_interests_ok: true,
            child: false,
        },
    );
    desk_side.ok(
        &desk(),
        None,
        day(4),
        None,
        Body::ReturnScheduled {
            departure_at: day(10),
        },
    );
}
