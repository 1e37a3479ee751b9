//! Property tests over random event sequences: custody, disclosure bases,
//! withdrawal and replay invariants.

mod common;

use std::collections::BTreeSet;

use common::*;
use proptest::prelude::*;
use waymark_policy::{
    Applied, Body, CaseState, DisclosureBasis, DisclosureQuery, Event, GivenBy, OfferStatus, Party,
    Recipient, RecipientSet, Refusal, Refused, Relied, RuleSet, RuleSets, Service, ServiceReason,
    View, decide_disclosure, replay,
};
use waymark_types::{DataCategory, EventId, LegalBasis, Purpose, Timestamp};

fn agencies() -> Vec<Party> {
    vec![police(), shelter(), ngo(), desk(), labour()]
}

/// One step of a random scenario; indices pick agencies and earlier events.
#[derive(Debug, Clone)]
enum Op {
    Open(usize),
    Offer(usize, usize, i64),
    Answer(usize, usize, u8),
    Grant(usize, u8, u8, u8, i64),
    Withdraw(usize, usize, i64),
    Ack(usize, usize),
    Disclose(usize, usize, u8, u8, u8),
    Refuse(usize, u8, usize),
    Close(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let a = 0usize..5;
    prop_oneof![
        1 => a.clone().prop_map(Op::Open),
        4 => (0usize..12, a.clone(), -1i64..20).prop_map(|(f, t, d)| Op::Offer(f, t, d)),
        5 => (0usize..8, 0usize..8, 0u8..6).prop_map(|(b, o, k)| Op::Answer(b, o, k)),
        3 => (a.clone(), any::<u8>(), any::<u8>(), any::<u8>(), 0i64..30).prop_map(|(b, r, p, c, v)| Op::Grant(b, r, p, c, v)),
        2 => (a.clone(), 0usize..8, -1i64..3).prop_map(|(b, c, d)| Op::Withdraw(b, c, d)),
        2 => (a.clone(), 0usize..8).prop_map(|(b, c)| Op::Ack(b, c)),
        6 => (a.clone(), 0usize..8, any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(f, t, p, c, b)| Op::Disclose(f, t, p, c, b)),
        1 => (a.clone(), 0u8..3, a.clone()).prop_map(|(b, o, t)| Op::Refuse(b, o, t)),
        1 => a.prop_map(Op::Close),
    ]
}

fn pick<T: Copy>(all: &[T], mask: u8) -> Vec<T> {
    all.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << (i % 8)) != 0)
        .map(|(_, x)| *x)
        .collect()
}

const PURPOSES: [Purpose; 4] = [
    Purpose::Assistance,
    Purpose::Protection,
    Purpose::Accommodation,
    Purpose::Return,
];
const CATS: [DataCategory; 5] = [
    DataCategory::CaseCore,
    DataCategory::Identity,
    DataCategory::Assistance,
    DataCategory::Proceedings,
    DataCategory::Safety,
];

/// Turns ops into events, choosing ids of earlier offers and consents. The
/// builder folds its own events so that it can aim most steps at plausible
/// parties (the custodian offers, the offeree answers, disclosures stay in a
/// consent's scope); the properties check them against independent models.
fn build(ops: &[Op], rules: &RuleSet) -> Vec<Event> {
    let ag = agencies();
    let mut c = Case::new(View::Auditor, rules.clone());
    let (mut offers, mut consents) = (Vec::<EventId>::new(), Vec::<EventId>::new());
    let mut out = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        let at = Timestamp(T0.0 + i as i64 * HOUR);
        let e = match *o {
            Op::Open(a) => c.event(
                &ag[a],
                None,
                at,
                None,
                Body::CaseOpened {
                    presumed_child: false,
                },
            ),
            Op::Offer(f, t, d) => {
                let f = if f >= 5 {
                    custodian(&c.state, &ag).unwrap_or(f % 5)
                } else {
                    f
                };
                // Mostly aim at another agency; sometimes (t == f) at oneself.
                let t = if t == f && d % 4 != 0 { (t + 1) % 5 } else { t };
                let e = c.event(
                    &ag[f],
                    Some(&ag[t]),
                    at,
                    Some(legal(
                        LegalBasis::VitalInterests,
                        JUSTIFICATION,
                        Purpose::Protection,
                    )),
                    Body::HandoverOffered {
                        to: ag[t].id.clone(),
                        expires_at: at.plus_millis(d * 6 * HOUR),
                    },
                );
                offers.push(e.id);
                e
            }
            Op::Answer(b, oi, k) => {
                let offer = if oi >= 3 {
                    offers.last()
                } else {
                    offers.get(oi % offers.len().max(1))
                };
                let offer = offer.copied().unwrap_or(eid(9999));
                let b = match c.state.offers().get(&offer) {
                    Some(o) if b >= 5 && k < 4 => ag.iter().position(|a| a.id == o.to.id).unwrap(),
                    Some(o) if b >= 5 => ag.iter().position(|a| a.id == o.from).unwrap(),
                    _ => b % 5,
                };
                let body = match k {
                    0..=2 => Body::HandoverAccepted { offer },
                    3 => Body::HandoverRejected {
                        offer,
                        reason: ServiceReason::NoCapacity,
                    },
                    4 => Body::HandoverCancelled { offer },
                    _ => Body::HandoverExpired { offer },
                };
                c.event(&ag[b], None, at, None, body)
            }
            Op::Grant(b, r, p, cat, valid) => {
                let recipients: Vec<Recipient> = ag
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| r & (1 << i) != 0)
                    .map(|(_, a)| Recipient::Agency(a.id.clone()))
                    .collect();
                let e = c.event(
                    &ag[b],
                    None,
                    at,
                    None,
                    waymark_policy::Body::ConsentGranted(waymark_policy::ConsentGrant {
                        scope: waymark_policy::ConsentScope {
                            recipients: recipients.into_iter().collect(),
                            purposes: pick(&PURPOSES, p).into_iter().collect(),
                            categories: pick(&CATS, cat).into_iter().collect(),
                            valid_from: at,
                            valid_until: (valid > 0).then(|| at.plus_millis(valid * 4 * HOUR)),
                        },
                        method: waymark_policy::ConsentMethod::Written,
                        given_by: GivenBy::Person,
                    }),
                );
                consents.push(e.id);
                e
            }
            Op::Withdraw(b, ci, d) => {
                let consent = consents
                    .get(ci % consents.len().max(1))
                    .copied()
                    .unwrap_or(eid(9998));
                c.event(
                    &ag[b],
                    None,
                    at,
                    None,
                    Body::ConsentWithdrawn {
                        consent,
                        effective_at: at.plus_millis(d * HOUR),
                    },
                )
            }
            Op::Ack(b, ci) => {
                let consent = consents
                    .get(ci % consents.len().max(1))
                    .copied()
                    .unwrap_or(eid(9998));
                c.event(
                    &ag[b],
                    None,
                    at,
                    None,
                    Body::WithdrawalAcknowledged { consent },
                )
            }
            Op::Disclose(f, t, p, cat, basis) => {
                let chosen = consents
                    .get(basis as usize % consents.len().max(1))
                    .and_then(|id| {
                        c.state
                            .consents()
                            .get(id)
                            .map(|k| (*id, k.grant.scope.clone()))
                    });
                if let (true, Some((id, scope))) = (t >= 5, chosen) {
                    // Aim inside the consent's scope (it may still be expired, withdrawn or refused).
                    let to = ag.iter().find(|a| {
                        scope.recipients.iter().any(|r| r.covers(&a.id, a.kind)) && a.id != ag[f].id
                    });
                    let purpose = scope
                        .purposes
                        .iter()
                        .nth(p as usize % scope.purposes.len().max(1))
                        .copied();
                    if let (Some(to), Some(purpose)) = (to, purpose) {
                        let shares: BTreeSet<DataCategory> = scope
                            .categories
                            .iter()
                            .copied()
                            .filter(|x| cat & (1 << (*x as u8 % 8)) != 0)
                            .collect();
                        let kind = if scope.categories.contains(&DataCategory::Assistance) {
                            Body::ServiceDelivered {
                                service: Service::Medical,
                            }
                        } else {
                            Body::SignalReceived
                        };
                        let sender = if matches!(kind, Body::SignalReceived) {
                            police()
                        } else {
                            ag[f].clone()
                        };
                        let sender = if sender.id == to.id {
                            ag[(f + 1) % 5].clone()
                        } else {
                            sender
                        };
                        let e = c.event(
                            &sender,
                            Some(to),
                            at,
                            Some(waymark_policy::Disclosure {
                                purpose,
                                basis: DisclosureBasis::Consent(id),
                                shares,
                            }),
                            kind,
                        );
                        let _ = c.state.apply(&e, rules);
                        out.push(e);
                        continue;
                    }
                }
                let t = t % 5;
                let basis = match basis % 4 {
                    0 => DisclosureBasis::Legal {
                        basis: LegalBasis::VitalInterests,
                        justification: JUSTIFICATION.to_owned(),
                    },
                    1 => DisclosureBasis::Legal {
                        basis: LegalBasis::LegalObligation,
                        justification: if basis & 16 == 0 {
                            "x".to_owned()
                        } else {
                            JUSTIFICATION.to_owned()
                        },
                    },
                    _ => DisclosureBasis::Consent(
                        consents
                            .get(basis as usize % consents.len().max(1))
                            .copied()
                            .unwrap_or(eid(9997)),
                    ),
                };
                let d = waymark_policy::Disclosure {
                    purpose: PURPOSES[p as usize % 4],
                    basis,
                    shares: pick(&CATS, cat).into_iter().collect(),
                };
                c.event(
                    &ag[f],
                    Some(&ag[t]),
                    at,
                    Some(d),
                    Body::ServiceDelivered {
                        service: Service::Medical,
                    },
                )
            }
            Op::Refuse(b, of, t) => {
                let of = [Refused::Assistance, Refused::Referral, Refused::Disclosure][of as usize];
                c.event(
                    &ag[b],
                    None,
                    at,
                    None,
                    Body::RefusalRecorded(Refusal {
                        of,
                        recipients: RecipientSet::Only(
                            [Recipient::Agency(ag[t].id.clone())].into(),
                        ),
                        purposes: Default::default(),
                    }),
                )
            }
            Op::Close(b) => c.event(
                &ag[b],
                None,
                at,
                None,
                Body::CaseClosed {
                    outcome: waymark_policy::CaseOutcome::Other,
                },
            ),
        };
        let _ = c.state.apply(&e, rules);
        out.push(e);
    }
    out
}

fn custodian(state: &CaseState, ag: &[Party]) -> Option<usize> {
    let c = state.custodian()?;
    ag.iter().position(|a| &a.id == c)
}

fn scenario() -> impl Strategy<Value = (Vec<Op>, bool)> {
    // Most scenarios start with an opening so that the rest has something to act on.
    (prop::collection::vec(op(), 1..40), any::<bool>()).prop_map(|(mut ops, bg)| {
        ops.insert(0, Op::Open(2));
        (ops, bg)
    })
}

fn rules_for(bg: bool) -> RuleSet {
    if bg {
        RuleSet::bg_v1()
    } else {
        RuleSet::coe_cets197_v1()
    }
}

/// Independent reference check that a consent covered a disclosure at `at`.
fn consent_covered(state: &CaseState, id: EventId, e: &Event) -> bool {
    let Some(c) = state.consents().get(&id) else {
        return false;
    };
    let to = e.recipient.as_ref().unwrap();
    let s = &c.grant.scope;
    let from = s.valid_from.max(c.recorded_at);
    e.at >= from
        && s.valid_until.is_none_or(|u| e.at < u)
        && c.withdrawal.as_ref().is_none_or(|w| e.at < w.effective_at)
        && s.recipients.iter().any(|r| r.covers(&to.id, to.kind))
        && s.purposes.contains(&e.disclosure.as_ref().unwrap().purpose)
        && e.categories().is_subset(&s.categories)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn custody_is_single_and_moves_only_by_accepting_a_pending_offer((ops, bg) in scenario()) {
        let rules = rules_for(bg);
        let mut state = CaseState::new(case_id(), View::Auditor);
        // Reference model: who holds custody.
        let mut holder: Option<String> = None;
        for e in build(&ops, &rules) {
            let before = state.clone();
            match state.apply(&e, &rules) {
                Err(_) => prop_assert_eq!(&state, &before, "a refused event changed the state"),
                Ok(Applied::Duplicate) => prop_assert_eq!(&state, &before),
                Ok(Applied::Recorded { .. }) => match &e.body {
                    Body::CaseOpened { .. } => holder = Some(e.sender.id.to_string()),
                    Body::HandoverAccepted { offer } => {
                        let o = &before.offers()[offer];
                        prop_assert_eq!(o.status, OfferStatus::Pending, "accepted offer was not pending");
                        prop_assert!(e.at < o.expires_at, "accepted at or after expiry");
                        prop_assert_eq!(&o.to.id, &e.sender.id, "accepted by someone not offered");
                        prop_assert_eq!(Some(o.from.to_string()), holder.clone(), "offer not made by the custodian");
                        holder = Some(e.sender.id.to_string());
                    }
                    _ => prop_assert_eq!(state.custodian(), before.custodian(), "custody moved without a handover"),
                },
            }
            prop_assert_eq!(state.custodian().map(|c| c.to_string()), holder.clone());
            prop_assert!(state.offers().values().filter(|o| o.is_open()).count() <= 1, "two open offers");
        }
    }

    #[test]
    fn no_disclosure_without_a_basis_in_force((ops, bg) in scenario()) {
        let rules = rules_for(bg);
        let mut state = CaseState::new(case_id(), View::Auditor);
        for e in build(&ops, &rules) {
            let before = state.clone();
            if let Ok(Applied::Recorded { disclosure }) = state.apply(&e, &rules) {
                let Some(d) = &e.disclosure else { continue };
                let relied = disclosure.expect("a disclosure that passed names its basis");
                match (&relied, &d.basis) {
                    (Relied::Consent(id), DisclosureBasis::Consent(named)) => {
                        prop_assert_eq!(id, named);
                        prop_assert!(consent_covered(&before, *id, &e), "consent not in force or out of scope");
                    }
                    (Relied::Legal(b) | Relied::LegalOverridingRefusal(b), DisclosureBasis::Legal { basis, justification }) => {
                        prop_assert_eq!(b, basis);
                        prop_assert!(rules.may_invoke(e.sender.kind, *b));
                        prop_assert!(justification.trim().len() >= rules.params().min_justification_chars);
                        if matches!(relied, Relied::LegalOverridingRefusal(_)) {
                            prop_assert!(rules.params().vital_interests_override_refusal);
                        }
                    }
                    other => prop_assert!(false, "basis mismatch {:?}", other),
                }
                prop_assert!(!(waymark_policy::is_assistance_purpose(d.purpose) && e.categories().contains(&DataCategory::Proceedings)));
            }
        }
    }

    #[test]
    fn later_events_never_change_earlier_disclosures((ops, bg) in scenario()) {
        let rules = rules_for(bg);
        let mut state = CaseState::new(case_id(), View::Auditor);
        for e in build(&ops, &rules) {
            let earlier = state.disclosures().to_vec();
            let _ = state.apply(&e, &rules);
            // The record of earlier disclosures is append-only ...
            prop_assert_eq!(&state.disclosures()[..earlier.len()], &earlier[..]);
            // ... and each is still lawful at its own time (withdrawals, refusals and
            // closures only act from their own time on).
            for d in &earlier {
                let basis = match &d.basis {
                    Relied::Consent(id) => DisclosureBasis::Consent(*id),
                    Relied::Legal(b) | Relied::LegalOverridingRefusal(b) => DisclosureBasis::Legal { basis: *b, justification: JUSTIFICATION.to_owned() },
                };
                let q = DisclosureQuery { from: d.from.id.clone(), from_kind: d.from.kind, to: d.to.id.clone(), to_kind: d.to.kind, categories: d.categories.clone(), purpose: d.purpose, at: d.at, basis: Some(basis) };
                let again = decide_disclosure(&state, &q, &rules);
                prop_assert!(again.is_allowed(), "{:?} no longer allowed: {:?}", d, again);
            }
        }
    }

    #[test]
    fn withdrawal_status_is_consistent((ops, bg) in scenario()) {
        let rules = rules_for(bg);
        let r = replay(case_id(), View::Auditor, &build(&ops, &rules), &RuleSets::builtin());
        for (id, c) in r.state.consents() {
            match r.state.withdrawal_status(*id) {
                None => prop_assert!(c.withdrawal.is_none()),
                Some(s) => {
                    let out: BTreeSet<_> = s.required.difference(&s.acknowledged).cloned().collect();
                    prop_assert_eq!(s.outstanding, out);
                    for d in r.state.disclosures().iter().filter(|d| d.basis == Relied::Consent(*id)) {
                        prop_assert!(s.required.contains(&d.to.id) || c.withdrawal.as_ref().unwrap().by == d.to.id);
                    }
                }
            }
        }
    }

    #[test]
    fn replay_is_deterministic_and_matches_incremental_application((ops, bg) in scenario()) {
        let rules = rules_for(bg);
        let events = build(&ops, &rules);
        let sets = RuleSets::builtin();
        let a = replay(case_id(), View::Auditor, &events, &sets);
        let b = replay(case_id(), View::Auditor, &events, &sets);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.state.fingerprint(), b.state.fingerprint());
        let mut inc = CaseState::new(case_id(), View::Auditor);
        for e in &events { let _ = inc.apply(e, &rules); }
        prop_assert_eq!(&inc, &a.state);
        // Replaying only the accepted events gives the same state and no violations.
        let refused: BTreeSet<EventId> = a.violations.iter().map(|(id, _)| *id).collect();
        let accepted: Vec<&Event> = events.iter().filter(|e| !refused.contains(&e.id)).collect();
        let c = replay(case_id(), View::Auditor, accepted, &sets);
        prop_assert!(c.violations.is_empty(), "{:?}", c.violations);
        prop_assert_eq!(&c.state, &a.state);
        // Every violation names the rule set its event was made under.
        for (_, v) in &a.violations { prop_assert_eq!(&v.rule_set, rules.reference()); }
    }
}

/// Guards against vacuous properties: the generator must reach the
/// interesting paths (accepted handovers, consent-based disclosures, refused
/// disclosures, withdrawals) often enough.
#[test]
fn the_generator_reaches_the_interesting_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut accepted, mut by_consent, mut by_law, mut denied, mut withdrawn) = (0, 0, 0, 0, 0);
    for _ in 0..200 {
        let (ops, bg) = scenario().new_tree(&mut runner).unwrap().current();
        let rules = rules_for(bg);
        let mut state = CaseState::new(case_id(), View::Auditor);
        for e in build(&ops, &rules) {
            match (state.apply(&e, &rules), &e.body) {
                (Ok(_), Body::HandoverAccepted { .. }) => accepted += 1,
                (Ok(_), Body::ConsentWithdrawn { .. }) => withdrawn += 1,
                (
                    Ok(Applied::Recorded {
                        disclosure: Some(Relied::Consent(_)),
                    }),
                    _,
                ) => by_consent += 1,
                (
                    Ok(Applied::Recorded {
                        disclosure: Some(_),
                    }),
                    _,
                ) => by_law += 1,
                (Err(_), Body::ServiceDelivered { .. }) => denied += 1,
                _ => {}
            }
        }
    }
    let counts = (accepted, by_consent, by_law, denied, withdrawn);
    eprintln!("accepted handovers, consent and legal disclosures, denied, withdrawals: {counts:?}");
    assert!(
        accepted > 20 && by_consent > 20 && by_law > 20 && denied > 20 && withdrawn > 10,
        "{counts:?}"
    );
}
