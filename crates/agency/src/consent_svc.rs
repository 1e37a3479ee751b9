//! `waymark.v1.ConsentService`: grant, withdraw (with notification), list,
//! withdrawal status, and the disclosure check.
//!
//! # Withdrawal notification
//! The agencies to notify are the policy's: [`CaseState::withdrawal_status`]
//! (the agency that recorded the consent and every party to a disclosure
//! under it, minus this agency). A second `ConsentWithdrawn` for the same
//! consent would be refused (`consent.already_withdrawn`), so the withdrawal
//! is one event, sent to the first agency to notify; every other one gets
//! that same signed event as a `Forwarded`, on a legal-obligation basis
//! (GDPR Art. 7(3) and 19), with an id derived from the withdrawal's so a
//! retry re-sends nothing twice. Receivers acknowledge automatically (see
//! `follow.rs`). An agency whose notification the rules refuse is left out of
//! `notified_agency_ids` (and shows as outstanding in GetWithdrawalStatus).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use waymark_crypto::proto_from_timestamp;
use waymark_policy::wire::vocab::{
    agency_kind_from_proto, agency_kind_to_proto, data_category_from_proto, legal_basis_from_proto,
    purpose_from_proto,
};
use waymark_policy::{
    CaseState, Decision, DisclosureBasis, DisclosureQuery, Relied, RuleSet, WireEvent,
    decide_disclosure, event_from_proto,
};
use waymark_proto::v1 as pb;
use waymark_proto::v1::consent_service_server::ConsentService;
use waymark_proto::v1::event::Body as B;
use waymark_types::{AgencyId, CaseId, EventId, Timestamp};

use crate::agency::Core;
use crate::common::{case_id, case_info, event_id, field_map, find};
use crate::error::ApiError;
use crate::store::derived_id;
use crate::write::{blocking, new_event, record};

/// The ConsentService of one agency.
pub(crate) struct ConsentSvc(pub(crate) Arc<Core>);

/// The justification of a forwarded withdrawal notice.
const NOTICE_JUSTIFICATION: &str = "Notifying an agency that received data under this consent that \
     the person withdrew it (GDPR Art. 7(3) and Art. 19).";

fn rules(core: &Core) -> Result<&RuleSet, ApiError> {
    core.rules
        .get(&core.rule_set)
        .ok_or_else(|| ApiError::Internal(format!("rule set {} vanished", core.rule_set)))
}

impl ConsentSvc {
    async fn grant(
        &self,
        r: pb::GrantConsentRequest,
    ) -> Result<pb::GrantConsentResponse, ApiError> {
        let case = case_id("case_id", &r.case_id)?;
        let mut consent = r
            .consent
            .clone()
            .ok_or_else(|| ApiError::invalid("consent", "required: the consent as obtained"))?;
        if consent.obtained_by_agency_id.is_empty() {
            consent.obtained_by_agency_id = self.0.me.to_string();
        }
        case_info(&self.0, case).await?;
        let c = self.0.clone();
        let done = record(
            &self.0,
            "GrantConsent",
            &r.idempotency_key,
            &r,
            move |id| Ok(new_event(&c, id, case, B::ConsentGranted(consent))),
            &field_map("body.consent_granted", "consent"),
        )
        .await?;
        Ok(pb::GrantConsentResponse {
            consent_id: done.recorded.event_id.clone(),
            recorded: Some(done.recorded),
        })
    }

    async fn withdraw(
        &self,
        r: pb::WithdrawConsentRequest,
    ) -> Result<pb::WithdrawConsentResponse, ApiError> {
        let core = &self.0;
        let case = case_id("case_id", &r.case_id)?;
        let consent = event_id("consent_id", &r.consent_id)?;
        let info = case_info(core, case).await?;
        if !info.state.consents().contains_key(&consent) {
            return Err(ApiError::NotFound {
                what: "consent",
                id: consent.to_string(),
            });
        }
        let c = core.clone();
        let effective_at = r.effective_at;
        let done = record(
            core,
            "WithdrawConsent",
            &r.idempotency_key,
            &r,
            move |id| {
                let mut e = new_event(
                    &c,
                    id,
                    case,
                    B::ConsentWithdrawn(pb::ConsentWithdrawn {
                        consent_id: consent.to_string(),
                        effective_at: None,
                    }),
                );
                let at = e.occurred_at.unwrap_or_default();
                if let Some(B::ConsentWithdrawn(w)) = &mut e.body {
                    w.effective_at = Some(effective_at.unwrap_or(at));
                }
                let first = to_notify(&c, info.state.clone(), &e)?.into_iter().next();
                if let Some(to) = first {
                    let kind = c
                        .directory
                        .kind(&to)
                        .map_or(0, |k| agency_kind_to_proto(k) as i32);
                    e.recipient_id = to.to_string();
                    e.recipient_kind = kind;
                }
                Ok(e)
            },
            &field_map("body.consent_withdrawn", ""),
        )
        .await?;
        let withdrawal = event_id("event_id", &done.recorded.event_id)?;
        let info = case_info(core, case).await?;
        let required = info
            .state
            .withdrawal_status(consent)
            .map(|s| s.required)
            .unwrap_or_default();
        let j = blocking(core, move |c| find(c, withdrawal, case))
            .await?
            .ok_or_else(|| ApiError::Internal("the withdrawal is not in the journal".into()))?;
        let mut notified = Vec::new();
        for to in required {
            if j.event.recipient_id == to.as_str() {
                notified.push(to.to_string());
                continue;
            }
            match self.notify(case, withdrawal, &j.envelope, &to).await {
                Ok(()) => notified.push(to.to_string()),
                Err(e) => tracing::warn!(agency = %to, error = %e, "withdrawal notice refused"),
            }
        }
        Ok(pb::WithdrawConsentResponse {
            recorded: Some(done.recorded),
            notified_agency_ids: notified,
        })
    }

    /// Forwards the withdrawal envelope to `to` (idempotent by derived id).
    async fn notify(
        &self,
        case: CaseId,
        withdrawal: EventId,
        envelope: &[u8],
        to: &AgencyId,
    ) -> Result<(), ApiError> {
        let core = &self.0;
        let id = derived_id(
            &withdrawal,
            "waymark.v1.withdrawal-notice",
            &[to.as_str().as_bytes()],
        );
        let mut e = new_event(
            core,
            id,
            case,
            B::Forwarded(pb::Forwarded {
                envelope: envelope.to_vec(),
            }),
        );
        e.recipient_id = to.to_string();
        e.recipient_kind = core
            .directory
            .kind(to)
            .map_or(0, |k| agency_kind_to_proto(k) as i32);
        e.purpose = pb::Purpose::Protection as i32;
        e.basis = Some(pb::DisclosureBasis {
            basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
                basis: pb::LegalBasis::LegalObligation as i32,
                justification: NOTICE_JUSTIFICATION.into(),
            })),
        });
        let sent = core
            .bus
            .send(e)
            .await
            .map_err(|e| ApiError::from_send(e, &|_| None))?;
        core.grew(sent.seq);
        Ok(())
    }
}

/// Who a withdrawal event `e` obliges to acknowledge: the policy's answer
/// after applying `e` to a copy of the state.
fn to_notify(core: &Core, mut state: CaseState, e: &pb::Event) -> Result<Vec<AgencyId>, ApiError> {
    let Ok(WireEvent::Event(w)) = event_from_proto(e) else {
        // Malformed: the bus reports every field; nobody to notify yet.
        return Ok(Vec::new());
    };
    let Some(B::ConsentWithdrawn(body)) = &e.body else {
        return Ok(Vec::new());
    };
    let consent = EventId::parse(&body.consent_id)
        .map_err(|_| ApiError::invalid("consent_id", "malformed"))?;
    state
        .apply(&w, rules(core)?)
        .map_err(|v| ApiError::violation(&v))?;
    Ok(state
        .withdrawal_status(consent)
        .map(|s| s.required.into_iter().collect())
        .unwrap_or_default())
}

fn consent_view(
    core: &Core,
    info: &crate::state::CaseInfo,
    now: Timestamp,
) -> Vec<pb::ConsentView> {
    let case = info.state.case();
    let mut out = Vec::new();
    for (id, c) in info.state.consents() {
        let grant = find(core, *id, case)
            .ok()
            .flatten()
            .and_then(|j| match j.event.body {
                Some(B::ConsentGranted(g)) => Some(g),
                _ => None,
            });
        let withdrawn = c.withdrawal.as_ref().map(|w| w.effective_at);
        let in_force = now >= c.in_force_from()
            && withdrawn.is_none_or(|w| now < w)
            && c.grant.scope.valid_until.is_none_or(|u| now < u);
        out.push(pb::ConsentView {
            consent_id: id.to_string(),
            granted_by_agency_id: c.recorded_by.to_string(),
            consent: grant,
            withdrawn_from: withdrawn.map(proto_from_timestamp),
            in_force,
        });
    }
    out
}

#[tonic::async_trait]
impl ConsentService for ConsentSvc {
    async fn grant_consent(
        &self,
        req: Request<pb::GrantConsentRequest>,
    ) -> Result<Response<pb::GrantConsentResponse>, Status> {
        Ok(Response::new(self.grant(req.into_inner()).await?))
    }

    async fn withdraw_consent(
        &self,
        req: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::WithdrawConsentResponse>, Status> {
        Ok(Response::new(self.withdraw(req.into_inner()).await?))
    }

    async fn list_consents(
        &self,
        req: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let case = case_id("case_id", &req.get_ref().case_id)?;
        let info = case_info(&self.0, case).await?;
        let consents = blocking(&self.0, move |c| {
            Ok(consent_view(c, &info, Timestamp::now()))
        })
        .await?;
        Ok(Response::new(pb::ListConsentsResponse { consents }))
    }

    async fn get_withdrawal_status(
        &self,
        req: Request<pb::GetWithdrawalStatusRequest>,
    ) -> Result<Response<pb::GetWithdrawalStatusResponse>, Status> {
        let r = req.into_inner();
        let case = case_id("case_id", &r.case_id)?;
        let consent = event_id("consent_id", &r.consent_id)?;
        let info = case_info(&self.0, case).await?;
        if !info.state.consents().contains_key(&consent) {
            return Err(ApiError::NotFound {
                what: "consent",
                id: consent.to_string(),
            }
            .into());
        }
        let s = info
            .state
            .withdrawal_status(consent)
            .ok_or(ApiError::NotFound {
                what: "withdrawal of consent",
                id: consent.to_string(),
            })?;
        let ids = |s: std::collections::BTreeSet<AgencyId>| {
            s.into_iter().map(|a| a.to_string()).collect()
        };
        Ok(Response::new(pb::GetWithdrawalStatusResponse {
            required_agency_ids: ids(s.required),
            acknowledged_agency_ids: ids(s.acknowledged),
            outstanding_agency_ids: ids(s.outstanding),
        }))
    }

    async fn check_disclosure(
        &self,
        req: Request<pb::CheckDisclosureRequest>,
    ) -> Result<Response<pb::CheckDisclosureResponse>, Status> {
        let r = req.into_inner();
        let core = &self.0;
        let case = case_id("case_id", &r.case_id)?;
        let to = AgencyId::new(&r.recipient_id)
            .map_err(|_| ApiError::invalid("recipient_id", "must be an agency id"))?;
        let to_kind = match r.recipient_kind {
            0 => core.directory.kind(&to).ok_or(ApiError::NotFound {
                what: "agency",
                id: to.to_string(),
            })?,
            k => agency_kind_from_proto(k)
                .map_err(|e| ApiError::invalid("recipient_kind", e.to_string()))?,
        };
        let category = data_category_from_proto(r.category)
            .map_err(|e| ApiError::invalid("category", e.to_string()))?;
        let purpose = purpose_from_proto(r.purpose)
            .map_err(|e| ApiError::invalid("purpose", e.to_string()))?;
        let basis = match r.legal {
            None => None,
            Some(l) => Some(DisclosureBasis::Legal {
                basis: legal_basis_from_proto(l.basis)
                    .map_err(|e| ApiError::invalid("legal.basis", e.to_string()))?,
                justification: l.justification,
            }),
        };
        let info = case_info(core, case).await?;
        let q = DisclosureQuery {
            from: core.me.clone(),
            from_kind: core.kind,
            to,
            to_kind,
            categories: [category].into(),
            purpose,
            at: Timestamp::now(),
            basis,
        };
        let d = decide_disclosure(&info.state, &q, rules(core)?);
        let rule_set = d.rule_set().to_string();
        let resp = match d {
            Decision::Allow { basis, .. } => {
                let (consent_id, rule, reason) = match basis {
                    Relied::Consent(id) => (
                        id.to_string(),
                        "consent.in_force",
                        format!("Allowed: consent {id} is in force and covers it."),
                    ),
                    Relied::Legal(b) => (
                        String::new(),
                        "disclosure.legal_basis",
                        format!("Allowed on the legal basis {b}."),
                    ),
                    Relied::LegalOverridingRefusal(b) => (
                        String::new(),
                        "refusal.overridden",
                        format!("Allowed on the legal basis {b}, overriding the person's refusal."),
                    ),
                };
                pb::CheckDisclosureResponse {
                    allowed: true,
                    consent_id,
                    rule: rule.into(),
                    reason,
                    rule_set,
                }
            }
            Decision::Deny(v) => pb::CheckDisclosureResponse {
                allowed: false,
                consent_id: String::new(),
                rule: v.rule.code().into(),
                reason: v.reason,
                rule_set,
            },
        };
        Ok(Response::new(resp))
    }
}
