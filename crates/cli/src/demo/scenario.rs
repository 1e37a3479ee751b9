//! The demo slice's story: cases identified by the police, handed over to
//! shelters on the person's consent, with the rules visibly at work.

use prost_types::Timestamp as PbTime;
use waymark_crypto::proto_from_timestamp;
use waymark_policy::wire::vocab::{agency_kind_to_proto, data_category_to_proto, purpose_to_proto};
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body;
use waymark_types::{AgencyKind, CaseId, DataCategory, Purpose, Timestamp};

use super::federation::{Federation, Outcome};

/// Agencies of the slice: one police and two shelters. The return desk, the
/// NGO and the ministry of labour join when the agency services run the demo:
/// their part of the pathway needs events forwarded across several agencies,
/// which the bus does.
pub(crate) const MEMBERS: &[(&str, AgencyKind)] = &[
    ("bg-police-sofia", AgencyKind::Police),
    ("bg-shelter-sofia", AgencyKind::Shelter),
    ("bg-shelter-varna", AgencyKind::Shelter),
];

/// What the demo did with one case, for the summary.
pub(crate) struct CaseReport {
    pub(crate) case: CaseId,
    pub(crate) story: Story,
    pub(crate) custodian: String,
    /// Refusals by the rules that the story provoked on purpose: (rule, reason).
    pub(crate) refusals: Vec<(String, String)>,
    /// Other facts worth showing (withdrawal acknowledgements).
    pub(crate) notes: Vec<String>,
}

/// The five stories the cases cycle through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Story {
    /// The first shelter has no place; the police re-offers to the second.
    Reoffered,
    /// The person refuses disclosure; the handover is refused by the rules.
    Refusal,
    /// The person withdraws consent; the shelter acknowledges.
    Withdrawal,
    /// Treaty guards refuse a short reflection period and proceedings data.
    Guards,
    /// Identified, handed over, admitted, assisted.
    Plain,
}

impl Story {
    /// The story of case number `i`.
    fn of(i: usize) -> Self {
        [
            Self::Reoffered,
            Self::Refusal,
            Self::Withdrawal,
            Self::Guards,
            Self::Plain,
        ][i % 5]
    }

    /// One line for the summary.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Reoffered => "handover rejected, re-offered to another shelter",
            Self::Refusal => {
                "person refuses disclosure: the handover is refused, nothing is shared"
            }
            Self::Withdrawal => "consent withdrawn midway, shelter acknowledges",
            Self::Guards => {
                "rules refuse a short reflection period and proceedings data for assistance"
            }
            Self::Plain => "identified, handed over to a shelter, assisted",
        }
    }
}

const POLICE: usize = 0;
const SHELTER_SOFIA: usize = 1;
const SHELTER_VARNA: usize = 2;
const HOUR: i64 = 3_600_000;

/// Runs case number `i` of the story, starting at `t0`.
pub(crate) fn run_case(
    fed: &mut Federation,
    i: usize,
    t0: Timestamp,
) -> anyhow::Result<CaseReport> {
    let case = CaseId::new();
    let mut refusals = Vec::new();
    let mut notes = Vec::new();
    let at = |h: i64| t0.plus_millis(h * HOUR);
    let story = Story::of(i);

    fed.record(
        POLICE,
        ev(
            case,
            Body::CaseOpened(pb::CaseOpened {
                channel: pb::IdentificationChannel::Police as i32,
                forms: vec![pb::ExploitationForm::Labour as i32],
                ..Default::default()
            }),
        ),
        at(0),
    )?
    .expect_recorded()?;

    let first = if i.is_multiple_of(2) || story == Story::Reoffered {
        SHELTER_SOFIA
    } else {
        SHELTER_VARNA
    };
    let consent_ref = forward_consent(fed, case, first, at(1))?;
    let rg = fed.record(
        POLICE,
        disclose(
            to(
                ev(
                    case,
                    Body::ReasonableGroundsDecided(pb::ReasonableGroundsDecided {
                        positive: true,
                        decided_by_role: "anti-trafficking unit officer".into(),
                    }),
                ),
                fed.agencies[first].id.as_str(),
                AgencyKind::Shelter,
            ),
            &consent_ref.event_id,
            Purpose::Protection,
        ),
        at(2),
    )?;
    rg.expect_recorded()?;

    if story == Story::Refusal {
        // The person refuses any disclosure: the handover the caseworker then
        // tries is refused before anything is journaled or sent.
        fed.record(
            POLICE,
            ev(
                case,
                Body::RefusalRecorded(pb::RefusalRecorded {
                    scope: pb::RefusalScope::Disclosure as i32,
                    ..Default::default()
                }),
            ),
            at(3),
        )?
        .expect_recorded()?;
        let s = &fed.agencies[first];
        let attempt = to(
            ev(
                case,
                Body::HandoverOffered(pb::HandoverOffered {
                    expires_at: Some(ts(at(4).plus_days(3))),
                    reason: "admission to a specialised shelter".into(),
                }),
            ),
            s.id.as_str(),
            s.kind,
        );
        if let Outcome::Refused(v) = fed.record(
            POLICE,
            disclose(attempt, &consent_ref.event_id, Purpose::Accommodation),
            at(4),
        )? {
            refusals.push((v.rule.code().to_owned(), v.reason));
        }
        return Ok(report(fed, case, story, refusals, Vec::new()));
    }

    let mut holder = first;
    let mut holder_consent = consent_ref.event_id.clone();
    let offer = offer_handover(fed, case, first, &consent_ref.event_id, at(3))?;
    if story == Story::Reoffered {
        reject(fed, case, first, offer, at(4))?;
        let second = SHELTER_VARNA;
        let consent2 = forward_consent(fed, case, second, at(5))?;
        let offer2 = offer_handover(fed, case, second, &consent2.event_id, at(6))?;
        accept(fed, case, second, offer2, at(7))?;
        holder = second;
        holder_consent = consent2.event_id;
    } else {
        accept(fed, case, first, offer, at(4))?;
    }

    // The shelter admits the person and starts the reflection period.
    let local = |b| ev(case, b);
    fed.record(
        holder,
        local(Body::Admitted(pb::Admitted { planned_days: 90 })),
        at(8),
    )?
    .expect_recorded()?;
    if story == Story::Guards {
        let short = fed.record(
            holder,
            local(Body::ReflectionPeriodStarted(pb::ReflectionPeriodStarted {
                starts_at: Some(ts(at(2))),
                ends_at: Some(ts(at(2).plus_days(14))),
            })),
            at(9),
        )?;
        if let Outcome::Refused(v) = short {
            refusals.push((v.rule.code().to_owned(), v.reason));
        }
    }
    fed.record(
        holder,
        local(Body::ReflectionPeriodStarted(pb::ReflectionPeriodStarted {
            starts_at: Some(ts(at(2))),
            ends_at: Some(ts(at(2).plus_days(30))),
        })),
        at(9),
    )?
    .expect_recorded()?;
    fed.record(
        holder,
        local(Body::ServiceDelivered(pb::ServiceDelivered {
            service: pb::ServiceType::Psychological as i32,
        })),
        at(10),
    )?
    .expect_recorded()?;

    if story == Story::Guards {
        // Police may not push cooperation status into assistance (CETS 197 Art. 12(6)).
        let mut e = to(
            ev(
                case,
                Body::ProceedingsStatusRecorded(pb::ProceedingsStatusRecorded {
                    cooperation: pb::CooperationStatus::Declined as i32,
                    stage: pb::ProceedingsStage::Investigation as i32,
                    witness: false,
                }),
            ),
            fed.agencies[holder].id.as_str(),
            AgencyKind::Shelter,
        );
        e.basis = Some(pb::DisclosureBasis {
            basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
                basis: pb::LegalBasis::LegalObligation as i32,
                justification: "investigation file requires the shelter to be informed".into(),
            })),
        });
        e.purpose = i32::from(purpose_to_proto(Purpose::Assistance));
        if let Outcome::Refused(v) = fed.record(POLICE, e, at(11))? {
            refusals.push((v.rule.code().to_owned(), v.reason));
        }
    }

    if story == Story::Withdrawal {
        let consent_id = holder_consent;
        let holder_agency = &fed.agencies[holder];
        let w_id = consent_id.clone();
        let withdrawal = to(
            ev(
                case,
                Body::ConsentWithdrawn(pb::ConsentWithdrawn {
                    consent_id: consent_id.clone(),
                    effective_at: Some(ts(at(12))),
                }),
            ),
            holder_agency.id.as_str(),
            holder_agency.kind,
        );
        let Outcome::Recorded(w) = fed.record(POLICE, withdrawal, at(12))? else {
            anyhow::bail!("the withdrawal of consent was refused");
        };
        let ack = to(
            ev(
                case,
                Body::WithdrawalAcknowledged(pb::WithdrawalAcknowledged {
                    consent_id,
                    withdrawal: Some(w),
                }),
            ),
            fed.agencies[POLICE].id.as_str(),
            AgencyKind::Police,
        );
        fed.record(holder, ack, at(13))?.expect_recorded()?;
        let status = fed.agencies[POLICE]
            .cases
            .get(&case)
            .and_then(|s| s.withdrawal_status(waymark_types::EventId::parse(&w_id).ok()?));
        if let Some(st) = status {
            notes.push(format!(
                "withdrawal: must acknowledge {:?}, acknowledged {:?}, outstanding {:?}",
                names(&st.required),
                names(&st.acknowledged),
                names(&st.outstanding)
            ));
        }
    }
    Ok(report(fed, case, story, refusals, notes))
}

fn names(set: &std::collections::BTreeSet<waymark_types::AgencyId>) -> Vec<&str> {
    set.iter().map(|a| a.as_str()).collect()
}

fn report(
    fed: &Federation,
    case: CaseId,
    story: Story,
    refusals: Vec<(String, String)>,
    notes: Vec<String>,
) -> CaseReport {
    let custodian = fed.agencies[POLICE]
        .cases
        .get(&case)
        .and_then(|s| s.custodian().map(ToString::to_string))
        .unwrap_or_else(|| "-".into());
    CaseReport {
        case,
        story,
        custodian,
        refusals,
        notes,
    }
}

fn forward_consent(
    fed: &mut Federation,
    case: CaseId,
    shelter: usize,
    at: Timestamp,
) -> anyhow::Result<pb::EventRef> {
    let s = &fed.agencies[shelter];
    let e = to(
        ev(case, Body::ConsentGranted(consent(at))),
        s.id.as_str(),
        s.kind,
    );
    fed.record(POLICE, e, at)?.expect_recorded()
}

fn offer_handover(
    fed: &mut Federation,
    case: CaseId,
    shelter: usize,
    consent: &str,
    at: Timestamp,
) -> anyhow::Result<pb::EventRef> {
    let s = &fed.agencies[shelter];
    let e = to(
        ev(
            case,
            Body::HandoverOffered(pb::HandoverOffered {
                expires_at: Some(ts(at.plus_days(3))),
                reason: "admission to a specialised shelter".into(),
            }),
        ),
        s.id.as_str(),
        s.kind,
    );
    fed.record(POLICE, disclose(e, consent, Purpose::Accommodation), at)?
        .expect_recorded()
}

fn accept(
    fed: &mut Federation,
    case: CaseId,
    shelter: usize,
    offer: pb::EventRef,
    at: Timestamp,
) -> anyhow::Result<()> {
    let e = to(
        ev(
            case,
            Body::HandoverAccepted(pb::HandoverAccepted { offer: Some(offer) }),
        ),
        "bg-police-sofia",
        AgencyKind::Police,
    );
    fed.record(shelter, e, at)?.expect_recorded().map(|_| ())
}

fn reject(
    fed: &mut Federation,
    case: CaseId,
    shelter: usize,
    offer: pb::EventRef,
    at: Timestamp,
) -> anyhow::Result<()> {
    let e = to(
        ev(
            case,
            Body::HandoverRejected(pb::HandoverRejected {
                offer: Some(offer),
                reason: pb::DeclineReason::NoCapacity as i32,
                detail: "no free place this week".into(),
            }),
        ),
        "bg-police-sofia",
        AgencyKind::Police,
    );
    fed.record(shelter, e, at)?.expect_recorded().map(|_| ())
}

fn consent(at: Timestamp) -> pb::ConsentGranted {
    use DataCategory as C;
    pb::ConsentGranted {
        scope: Some(pb::ConsentScope {
            recipient_ids: vec![],
            recipient_kinds: vec![i32::from(agency_kind_to_proto(AgencyKind::Shelter))],
            purposes: [
                Purpose::Protection,
                Purpose::Accommodation,
                Purpose::Assistance,
            ]
            .into_iter()
            .map(|p| i32::from(purpose_to_proto(p)))
            .collect(),
            categories: [
                C::CaseCore,
                C::Identity,
                C::Contact,
                C::Safety,
                C::Assistance,
            ]
            .into_iter()
            .map(|c| i32::from(data_category_to_proto(c)))
            .collect(),
        }),
        valid_from: Some(ts(at)),
        valid_until: Some(ts(at.plus_days(365))),
        method: pb::ConsentMethod::Written as i32,
        obtained_by_role: "police social liaison".into(),
        representative: pb::RepresentativeRole::Unspecified as i32,
        language: "bg".into(),
        obtained_by_agency_id: "bg-police-sofia".into(),
    }
}

fn ev(case: CaseId, body: Body) -> pb::Event {
    pb::Event {
        case_id: case.to_string(),
        body: Some(body),
        ..Default::default()
    }
}

fn to(mut e: pb::Event, recipient: &str, kind: AgencyKind) -> pb::Event {
    e.recipient_id = recipient.to_owned();
    e.recipient_kind = i32::from(agency_kind_to_proto(kind));
    e
}

fn disclose(mut e: pb::Event, consent: &str, purpose: Purpose) -> pb::Event {
    e.basis = Some(pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::ConsentId(consent.to_owned())),
    });
    e.purpose = i32::from(purpose_to_proto(purpose));
    e
}

fn ts(t: Timestamp) -> PbTime {
    proto_from_timestamp(t)
}

impl Outcome {
    fn expect_recorded(self) -> anyhow::Result<pb::EventRef> {
        match self {
            Outcome::Recorded(r) => Ok(r),
            Outcome::Refused(v) => {
                anyhow::bail!("the rules refused a step the story expects to pass: {v}")
            }
        }
    }
}
