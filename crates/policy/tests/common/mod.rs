//! Fixtures shared by the table and property tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;

use waymark_policy::{
    Applied, Body, CaseState, ConsentGrant, ConsentMethod, ConsentScope, Disclosure,
    DisclosureBasis, Event, GivenBy, Party, Recipient, RuleSet, View, Violation,
};
use waymark_types::{
    AgencyId, AgencyKind, CaseId, DataCategory, EventId, LegalBasis, Purpose, Timestamp,
};

pub const T0: Timestamp = Timestamp(1_790_000_000_000);
pub const HOUR: i64 = 3_600_000;

pub fn day(n: i64) -> Timestamp {
    T0.plus_days(n)
}

pub fn party(id: &str, kind: AgencyKind) -> Party {
    Party {
        id: AgencyId::new(id).unwrap(),
        kind,
    }
}

pub fn police() -> Party {
    party("bg-police-sofia", AgencyKind::Police)
}
pub fn shelter() -> Party {
    party("shelter-sofia", AgencyKind::Shelter)
}
pub fn ngo() -> Party {
    party("ngo-animus", AgencyKind::Ngo)
}
pub fn desk() -> Party {
    party("iom-returndesk-bg", AgencyKind::ReturnDesk)
}
pub fn labour() -> Party {
    party("bg-labour", AgencyKind::Labour)
}

pub fn eid(n: u128) -> EventId {
    EventId::from_uuid(uuid::Uuid::from_u128(n))
}

pub fn case_id() -> CaseId {
    CaseId::from_uuid(uuid::Uuid::from_u128(0xCA5E))
}

pub fn consent_basis(consent: EventId, purpose: Purpose, shares: &[DataCategory]) -> Disclosure {
    Disclosure {
        purpose,
        basis: DisclosureBasis::Consent(consent),
        shares: shares.iter().copied().collect(),
    }
}

pub fn legal(basis: LegalBasis, justification: &str, purpose: Purpose) -> Disclosure {
    Disclosure {
        purpose,
        basis: DisclosureBasis::Legal {
            basis,
            justification: justification.to_owned(),
        },
        shares: BTreeSet::new(),
    }
}

pub const JUSTIFICATION: &str = "Imminent threat reported by the person's trafficker";

pub fn grant(
    recipients: &[Recipient],
    purposes: &[Purpose],
    categories: &[DataCategory],
    valid_from: Timestamp,
    valid_until: Option<Timestamp>,
    given_by: GivenBy,
) -> Body {
    Body::ConsentGranted(ConsentGrant {
        scope: ConsentScope {
            recipients: recipients.iter().cloned().collect(),
            purposes: purposes.iter().copied().collect(),
            categories: categories.iter().copied().collect(),
            valid_from,
            valid_until,
        },
        method: ConsentMethod::Written,
        given_by,
    })
}

/// A case under test: a state, a rule set, and a counter for event ids.
pub struct Case {
    pub state: CaseState,
    pub rules: RuleSet,
    pub next: u128,
}

impl Case {
    pub fn new(view: View, rules: RuleSet) -> Self {
        Self {
            state: CaseState::new(case_id(), view),
            rules,
            next: 1,
        }
    }

    pub fn auditor() -> Self {
        Self::new(View::Auditor, RuleSet::coe_cets197_v1())
    }

    /// A case opened by `by` at T0 (event id 1).
    pub fn opened_by(by: &Party, rules: RuleSet) -> Self {
        let mut c = Self::new(View::Auditor, rules);
        c.ok(
            by,
            None,
            T0,
            None,
            Body::CaseOpened {
                presumed_child: false,
            },
        );
        c
    }

    pub fn event(
        &mut self,
        sender: &Party,
        recipient: Option<&Party>,
        at: Timestamp,
        disclosure: Option<Disclosure>,
        body: Body,
    ) -> Event {
        let id = eid(self.next);
        self.next += 1;
        Event {
            id,
            case: case_id(),
            sender: sender.clone(),
            recipient: recipient.cloned(),
            at,
            rule_set: self.rules.reference().clone(),
            disclosure,
            body,
        }
    }

    /// Applies an event that must pass; returns its id.
    pub fn ok(
        &mut self,
        sender: &Party,
        recipient: Option<&Party>,
        at: Timestamp,
        disclosure: Option<Disclosure>,
        body: Body,
    ) -> EventId {
        let e = self.event(sender, recipient, at, disclosure, body);
        match self.state.apply(&e, &self.rules) {
            Ok(Applied::Recorded { .. }) => e.id,
            other => panic!("expected {:?} to pass, got {other:?}", e.body.kind()),
        }
    }

    /// Applies an event that must be refused, checks the state is unchanged,
    /// and returns the violation.
    pub fn refused(
        &mut self,
        sender: &Party,
        recipient: Option<&Party>,
        at: Timestamp,
        disclosure: Option<Disclosure>,
        body: Body,
    ) -> Violation {
        let e = self.event(sender, recipient, at, disclosure, body);
        let before = self.state.clone();
        let v = self
            .state
            .apply(&e, &self.rules)
            .expect_err("expected a refusal");
        assert_eq!(self.state, before, "a refused event must not change state");
        assert_eq!(&v.rule_set, self.rules.reference());
        v
    }
}

/// Asserts a violation's code and exact caseworker text.
#[track_caller]
pub fn assert_refusal(v: &Violation, code: &str, text: &str) {
    assert_eq!(v.rule.code(), code, "wrong rule; reason was: {}", v.reason);
    assert_eq!(v.reason, text);
}
