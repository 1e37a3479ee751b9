//! The `body` oneof: case, consent, refusal, referral, handover, receipt and
//! forwarded bodies here; the agency pathway bodies in [`super::pathway`].

use prost::Message as _;
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;

use waymark_types::Timestamp;

use super::Capacity;
use super::error::Check;
use super::pathway;
use super::vocab;
use crate::event::{Body, Party};
use crate::vocab::{ConsentGrant, ConsentScope, Recipient, RecipientSet, Refusal};

/// A decoded body: a policy [`Body`], or one of the two the policy does not
/// model.
pub(super) enum Decoded {
    Body(Body),
    Capacity(Capacity),
    Forwarded(Vec<u8>),
}

/// Builds the path of a field of the body member `name`.
#[derive(Clone, Copy)]
pub(super) struct At(pub(super) &'static str);

impl At {
    pub(super) fn f(self, field: &str) -> String {
        format!("body.{}.{field}", self.0)
    }
}

/// The event's recipient as decoded from `recipient_id`/`recipient_kind`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RawRecipient<'a> {
    /// `recipient_id` is empty.
    Missing,
    /// Set but malformed; already reported under its own path.
    Malformed,
    /// A valid recipient.
    Valid(&'a Party),
}

/// What bodies need from the rest of the event.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    /// The recipient, which a handover offer names as the offeree.
    pub(super) recipient: RawRecipient<'a>,
    /// `occurred_at`, if valid (else already reported), the default of a
    /// consent's `valid_from`.
    pub(super) at: Option<Timestamp>,
}

/// Decodes the body.
pub(super) fn decode(c: &mut Check, b: &B, cx: Ctx<'_>) -> Option<Decoded> {
    let body = match b {
        B::CaseOpened(m) => {
            let at = At("case_opened");
            let channel = c.enumerated(
                &at.f("channel"),
                m.channel,
                vocab::set::<pb::IdentificationChannel>,
            );
            let forms = c.enum_set(&at.f("forms"), &m.forms, vocab::set::<pb::ExploitationForm>);
            let _ = (channel?, forms?);
            Body::CaseOpened {
                presumed_child: m.presumed_child,
            }
        }
        B::ConsentGranted(m) => Body::ConsentGranted(consent_granted(c, m, cx.at)?),
        B::ConsentWithdrawn(m) => {
            let at = At("consent_withdrawn");
            let consent = c.event_id(&at.f("consent_id"), &m.consent_id);
            let effective_at = c.time(
                &at.f("effective_at"),
                m.effective_at.as_ref(),
                "when the withdrawal takes effect, not before occurred_at",
            );
            Body::ConsentWithdrawn {
                consent: consent?,
                effective_at: effective_at?,
            }
        }
        B::WithdrawalAcknowledged(m) => {
            let at = At("withdrawal_acknowledged");
            let consent = c.event_id(&at.f("consent_id"), &m.consent_id);
            let withdrawal = c.event_ref(&at.f("withdrawal"), m.withdrawal.as_ref());
            let _ = withdrawal?;
            Body::WithdrawalAcknowledged { consent: consent? }
        }
        B::CaseErased(m) => {
            let at = At("case_erased");
            let on_notice = c.enumerated(&at.f("ground"), m.ground, vocab::erasure_ground);
            let requested_by = match &m.requested_by {
                None => None,
                Some(r) => Some(c.event_ref(&at.f("requested_by"), Some(r))?),
            };
            let on_notice = on_notice?;
            if on_notice != requested_by.is_some() {
                c.fail(
                    at.f("requested_by"),
                    "set exactly when ground is ERASURE_GROUND_NOTICE: the other agency's \
                     CaseErased this erasure acted on",
                );
                return None;
            }
            Body::CaseErased { requested_by }
        }
        B::ErasureAcknowledged(m) => {
            let at = At("erasure_acknowledged");
            let erasure = c.event_ref(&at.f("erasure"), m.erasure.as_ref());
            let attestation = c.event_ref(&at.f("attestation"), m.attestation.as_ref());
            let _ = attestation?;
            Body::ErasureAcknowledged { erasure: erasure? }
        }
        B::RefusalRecorded(m) => {
            let at = At("refusal_recorded");
            let of = c.enumerated(&at.f("scope"), m.scope, vocab::refused);
            let agencies = c.agency_ids(&at.f("agency_ids"), &m.agency_ids);
            let purposes = c.enum_set(&at.f("purposes"), &m.purposes, vocab::purpose);
            let agencies = agencies?;
            Body::RefusalRecorded(Refusal {
                of: of?,
                recipients: if agencies.is_empty() {
                    RecipientSet::All
                } else {
                    RecipientSet::Only(agencies.into_iter().map(Recipient::Agency).collect())
                },
                purposes: purposes?.into_iter().collect(),
            })
        }
        B::CaseClosed(m) => Body::CaseClosed {
            outcome: c.enumerated(
                &At("case_closed").f("outcome"),
                m.outcome,
                vocab::case_outcome,
            )?,
        },
        B::ReferralRequested(m) => {
            let at = At("referral_requested");
            let service = c.enumerated(&at.f("service"), m.service, vocab::service);
            let respond_by = c.opt_time(&at.f("respond_by"), m.respond_by.as_ref());
            let _ = respond_by?;
            Body::ReferralRequested { service: service? }
        }
        B::ReferralReceived(m) => Body::ReferralReceived {
            referral: c.event_ref(&At("referral_received").f("request"), m.request.as_ref())?,
        },
        B::ReferralAccepted(m) => Body::ReferralAccepted {
            referral: c.event_ref(&At("referral_accepted").f("request"), m.request.as_ref())?,
        },
        B::ReferralRejected(m) => {
            let at = At("referral_rejected");
            let referral = c.event_ref(&at.f("request"), m.request.as_ref());
            let reason = c.enumerated(&at.f("reason"), m.reason, vocab::decline_reason);
            Body::ReferralRejected {
                referral: referral?,
                reason: reason?,
            }
        }
        B::ReferralStarted(m) => Body::ReferralStarted {
            referral: c.event_ref(&At("referral_started").f("request"), m.request.as_ref())?,
        },
        B::ReferralCompleted(m) => Body::ReferralCompleted {
            referral: c.event_ref(&At("referral_completed").f("request"), m.request.as_ref())?,
        },
        B::ReferralFailed(m) => {
            let at = At("referral_failed");
            let referral = c.event_ref(&at.f("request"), m.request.as_ref());
            let reason = c.enumerated(&at.f("reason"), m.reason, vocab::decline_reason);
            Body::ReferralFailed {
                referral: referral?,
                reason: reason?,
            }
        }
        B::ReferralCancelled(m) => Body::ReferralCancelled {
            referral: c.event_ref(&At("referral_cancelled").f("request"), m.request.as_ref())?,
        },
        B::HandoverOffered(m) => {
            let at = At("handover_offered");
            let expires_at = c.time(
                &at.f("expires_at"),
                m.expires_at.as_ref(),
                "when the offer lapses if not accepted",
            );
            let to = match cx.recipient {
                RawRecipient::Missing => {
                    c.fail(
                        "recipient_id",
                        "required for handover_offered: the offer is sent to the agency offered \
                         custody, named in recipient_id (with recipient_kind)",
                    );
                    None
                }
                // Already reported under `recipient_id`.
                RawRecipient::Malformed => None,
                RawRecipient::Valid(party) => Some(party.id.clone()),
            };
            Body::HandoverOffered {
                to: to?,
                expires_at: expires_at?,
            }
        }
        B::HandoverAccepted(m) => Body::HandoverAccepted {
            offer: c.event_ref(&At("handover_accepted").f("offer"), m.offer.as_ref())?,
        },
        B::HandoverRejected(m) => {
            let at = At("handover_rejected");
            let offer = c.event_ref(&at.f("offer"), m.offer.as_ref());
            let reason = c.enumerated(&at.f("reason"), m.reason, vocab::decline_reason);
            Body::HandoverRejected {
                offer: offer?,
                reason: reason?,
            }
        }
        B::HandoverCancelled(m) => Body::HandoverCancelled {
            offer: c.event_ref(&At("handover_cancelled").f("offer"), m.offer.as_ref())?,
        },
        B::HandoverExpired(m) => Body::HandoverExpired {
            offer: c.event_ref(&At("handover_expired").f("offer"), m.offer.as_ref())?,
        },
        B::Receipt(m) => {
            let at = At("receipt");
            let of = c.event_ref(&at.f("event"), m.event.as_ref());
            let quarantined = c.enumerated(&at.f("status"), m.status, vocab::quarantined);
            if quarantined == Some(true) && m.reason.is_empty() {
                c.fail(
                    at.f("reason"),
                    "required when status is RECEIPT_STATUS_QUARANTINED: the quarantine reason \
                     token (e.g. \"policy_violation\", \"malformed\")",
                );
                return None;
            }
            Body::Receipt {
                of: of?,
                quarantined: quarantined?,
            }
        }
        B::CapacityUpdated(m) => {
            return Some(Decoded::Capacity(Capacity {
                total_places: m.total_places,
                free_places: m.free_places,
                accepts_children: m.accepts_children,
            }));
        }
        B::Forwarded(m) => return forwarded(c, m, cx.recipient),
        other => pathway::decode(c, other)?,
    };
    Some(Decoded::Body(body))
}

/// `at` is the event's `occurred_at` (`None` if malformed, already reported).
fn consent_granted(
    c: &mut Check,
    m: &pb::ConsentGranted,
    at_event: Option<Timestamp>,
) -> Option<ConsentGrant> {
    let at = At("consent_granted");
    let scope = match &m.scope {
        None => {
            c.fail(
                at.f("scope"),
                "required: the recipients (by id or kind), purposes and data categories the \
                 person consented to",
            );
            None
        }
        Some(s) => {
            let ids = c.agency_ids(&at.f("scope.recipient_ids"), &s.recipient_ids);
            let kinds = c.enum_set(
                &at.f("scope.recipient_kinds"),
                &s.recipient_kinds,
                vocab::agency_kind,
            );
            let purposes = c.enum_set(&at.f("scope.purposes"), &s.purposes, vocab::purpose);
            let categories = c.enum_set(
                &at.f("scope.categories"),
                &s.categories,
                vocab::data_category,
            );
            Some((ids, kinds, purposes, categories))
        }
    };
    let valid_from = c.opt_time(&at.f("valid_from"), m.valid_from.as_ref());
    let valid_until = c.time(
        &at.f("valid_until"),
        m.valid_until.as_ref(),
        "the end of validity; consent is never open-ended",
    );
    let method = c.enumerated(&at.f("method"), m.method, vocab::consent_method);
    let given_by = c.open_enum::<pb::RepresentativeRole>(&at.f("representative"), m.representative);
    if !m.obtained_by_agency_id.is_empty() {
        c.agency_id(&at.f("obtained_by_agency_id"), &m.obtained_by_agency_id);
    }
    let (ids, kinds, purposes, categories) = scope?;
    let recipients = ids?
        .into_iter()
        .map(Recipient::Agency)
        .chain(kinds?.into_iter().map(Recipient::Kind))
        .collect();
    Some(ConsentGrant {
        scope: ConsentScope {
            recipients,
            purposes: purposes?,
            categories: categories?,
            // "Defaults to occurred_at when unset."
            valid_from: match valid_from? {
                Some(t) => t,
                None => at_event?,
            },
            valid_until: Some(valid_until?),
        },
        method: method?,
        given_by: vocab::given_by(given_by?),
    })
}

fn forwarded(c: &mut Check, m: &pb::Forwarded, recipient: RawRecipient<'_>) -> Option<Decoded> {
    let field = At("forwarded").f("envelope");
    if recipient == RawRecipient::Missing {
        c.fail(
            "recipient_id",
            "required for forwarded: a forwarded event is passed on to the agency named in \
             recipient_id (with recipient_kind)",
        );
    }
    if m.envelope.is_empty() {
        c.fail(
            field,
            "required: the original waymark.v1.Envelope encoding, byte for byte as its originator \
             signed it",
        );
        return None;
    }
    match pb::Envelope::decode(m.envelope.as_slice()) {
        Err(e) => c.fail(
            field,
            format!("not a waymark.v1.Envelope encoding ({e}); forward the envelope bytes exactly as journaled"),
        ),
        Ok(env) if env.payload_type != waymark_proto::PAYLOAD_TYPE_EVENT => c.fail(
            field,
            format!(
                "the envelope carries {:?}; only an envelope of type {:?} (a signed event) can be \
                 forwarded",
                env.payload_type.chars().take(80).collect::<String>(),
                waymark_proto::PAYLOAD_TYPE_EVENT
            ),
        ),
        Ok(env) if env.signatures.is_empty() => c.fail(
            field,
            "the envelope has no signature; forward the originator's signed envelope unchanged",
        ),
        Ok(_) => return Some(Decoded::Forwarded(m.envelope.clone())),
    }
    None
}
