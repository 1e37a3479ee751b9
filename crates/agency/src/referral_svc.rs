//! `waymark.v1.ReferralService`: request a service from another agency,
//! answer requests, list referrals with what is overdue now.
//!
//! Every answer embeds an `EventRef` to the request (its id and the SHA-256
//! of its envelope as journaled here) and goes to the other party: answers
//! to the requester, a cancellation to the performer. Overdue: an unanswered
//! referral (requested or received) past its due time, which is the
//! request's `respond_by` when set, else the rule set's deadline.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use waymark_crypto::{proto_from_timestamp, timestamp_from_proto};
use waymark_policy::ReferralStatus;
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_proto::v1::referral_service_server::ReferralService;
use waymark_types::{CaseId, Timestamp};

use crate::agency::Core;
use crate::common::{
    Process, answer_process, apply_send_to, case_id, case_info, event_id, field_map, find,
};
use crate::error::ApiError;
use crate::state::CaseInfo;
use crate::write::{blocking, new_event, record};

/// The ReferralService of one agency.
pub(crate) struct ReferralSvc(pub(crate) Arc<Core>);

fn state_of(s: ReferralStatus) -> pb::ReferralState {
    match s {
        ReferralStatus::Requested => pb::ReferralState::Requested,
        ReferralStatus::Received => pb::ReferralState::Received,
        ReferralStatus::Accepted => pb::ReferralState::Accepted,
        ReferralStatus::Rejected(_) => pb::ReferralState::Rejected,
        ReferralStatus::InProgress => pb::ReferralState::InProgress,
        ReferralStatus::Completed => pb::ReferralState::Completed,
        ReferralStatus::Failed(_) => pb::ReferralState::Failed,
        ReferralStatus::Cancelled => pb::ReferralState::Cancelled,
    }
}

impl ReferralSvc {
    async fn request(
        &self,
        r: pb::RequestReferralRequest,
    ) -> Result<pb::RequestReferralResponse, ApiError> {
        let case = case_id("case_id", &r.case_id)?;
        if let Some(t) = &r.respond_by
            && timestamp_from_proto(t) <= Timestamp::now()
        {
            return Err(ApiError::invalid("respond_by", "must be in the future"));
        }
        case_info(&self.0, case).await?;
        let body = B::ReferralRequested(pb::ReferralRequested {
            service: r.service,
            respond_by: r.respond_by,
            urgent: r.urgent,
        });
        let (c, send_to) = (self.0.clone(), r.send_to.clone());
        let done = record(
            &self.0,
            "RequestReferral",
            &r.idempotency_key,
            &r,
            move |id| {
                let mut e = new_event(&c, id, case, body);
                apply_send_to(&c, &mut e, send_to.as_ref())?;
                Ok(e)
            },
            &field_map("body.referral_requested", ""),
        )
        .await?;
        Ok(pb::RequestReferralResponse {
            referral_id: done.recorded.event_id.clone(),
            recorded: Some(done.recorded),
        })
    }

    /// Records an answer (or, with `to_performer`, a cancellation) to the
    /// referral `target`, with the body `make` builds from the request's ref.
    async fn answer(
        &self,
        rpc: &'static str,
        key: &str,
        request: &impl prost::Message,
        target: Option<&pb::ReferralTarget>,
        to_performer: bool,
        make: impl FnOnce(pb::EventRef) -> B + Send + 'static,
    ) -> Result<pb::RecordedEvent, ApiError> {
        static REFERRAL: Process = Process {
            what: "referral",
            id_field: "referral.referral_id",
            ref_segment: ".request",
            only_opener: ("referral.not_requester", "the agency that requested it"),
            only_recipient: ("referral.not_performer", "the agency asked to perform it"),
        };
        let t = target
            .ok_or_else(|| ApiError::invalid("referral", "required: case_id and referral_id"))?;
        let case = case_id("referral.case_id", &t.case_id)?;
        let id = event_id("referral.referral_id", &t.referral_id)?;
        let info = case_info(&self.0, case).await?;
        if !info.state.referrals().contains_key(&id) {
            return Err(ApiError::NotFound {
                what: "referral",
                id: id.to_string(),
            });
        }
        answer_process(
            &self.0,
            &REFERRAL,
            rpc,
            key,
            request,
            case,
            id,
            to_performer,
            make,
        )
        .await
    }

    fn views(
        c: &Core,
        info: &CaseInfo,
        now: Timestamp,
        overdue_only: bool,
    ) -> Vec<pb::ReferralView> {
        let case = info.state.case();
        let mut out = Vec::new();
        for (id, r) in info.state.referrals() {
            let req = find(c, *id, case).ok().flatten();
            let (service, respond_by) = match req.as_ref().and_then(|j| j.event.body.as_ref()) {
                Some(B::ReferralRequested(q)) => {
                    (q.service, q.respond_by.map(|t| timestamp_from_proto(&t)))
                }
                _ => (0, None),
            };
            let due = respond_by.unwrap_or(r.answer_due);
            let overdue = r.status.is_unanswered() && now >= due;
            if overdue_only && !overdue {
                continue;
            }
            out.push(pb::ReferralView {
                case_id: case.to_string(),
                referral_id: id.to_string(),
                requester_id: r.requester.id.to_string(),
                performer_id: r.performer.id.to_string(),
                service,
                state: state_of(r.status) as i32,
                respond_by: Some(proto_from_timestamp(due)),
                overdue,
            });
        }
        out
    }

    async fn list(
        &self,
        r: pb::ListReferralsRequest,
    ) -> Result<pb::ListReferralsResponse, ApiError> {
        let only: Option<CaseId> = if r.case_id.is_empty() {
            None
        } else {
            Some(case_id("case_id", &r.case_id)?)
        };
        if let Some(case) = only {
            case_info(&self.0, case).await?;
        }
        let overdue_only = r.overdue_only;
        blocking(&self.0, move |c| {
            let now = Timestamp::now();
            let cases = match only {
                Some(case) => vec![case],
                None => c
                    .store
                    .cases_before(u64::MAX, usize::MAX)?
                    .into_iter()
                    .map(|(_, k)| k)
                    .collect(),
            };
            let mut referrals = Vec::new();
            for case in cases {
                if let Some(info) = c.cases.get(&c.journal, &c.rules, case)? {
                    referrals.extend(Self::views(c, &info, now, overdue_only));
                }
            }
            Ok(pb::ListReferralsResponse { referrals })
        })
        .await
    }
}

#[tonic::async_trait]
impl ReferralService for ReferralSvc {
    async fn request_referral(
        &self,
        req: Request<pb::RequestReferralRequest>,
    ) -> Result<Response<pb::RequestReferralResponse>, Status> {
        Ok(Response::new(self.request(req.into_inner()).await?))
    }

    async fn mark_referral_received(
        &self,
        req: Request<pb::MarkReferralReceivedRequest>,
    ) -> Result<Response<pb::MarkReferralReceivedResponse>, Status> {
        let r = req.into_inner();

        let rec = self
            .answer(
                "MarkReferralReceived",
                &r.idempotency_key,
                &r,
                r.referral.as_ref(),
                false,
                move |rf| B::ReferralReceived(pb::ReferralReceived { request: Some(rf) }),
            )
            .await?;
        Ok(Response::new(pb::MarkReferralReceivedResponse {
            recorded: Some(rec),
        }))
    }

    async fn accept_referral(
        &self,
        req: Request<pb::AcceptReferralRequest>,
    ) -> Result<Response<pb::AcceptReferralResponse>, Status> {
        let r = req.into_inner();

        let rec = self
            .answer(
                "AcceptReferral",
                &r.idempotency_key,
                &r,
                r.referral.as_ref(),
                false,
                move |rf| B::ReferralAccepted(pb::ReferralAccepted { request: Some(rf) }),
            )
            .await?;
        Ok(Response::new(pb::AcceptReferralResponse {
            recorded: Some(rec),
        }))
    }

    async fn reject_referral(
        &self,
        req: Request<pb::RejectReferralRequest>,
    ) -> Result<Response<pb::RejectReferralResponse>, Status> {
        let r = req.into_inner();
        let (reason, detail) = (r.reason, r.detail.clone());
        let rec = self
            .answer(
                "RejectReferral",
                &r.idempotency_key,
                &r,
                r.referral.as_ref(),
                false,
                move |rf| {
                    B::ReferralRejected(pb::ReferralRejected {
                        request: Some(rf),
                        reason,
                        detail,
                    })
                },
            )
            .await?;
        Ok(Response::new(pb::RejectReferralResponse {
            recorded: Some(rec),
        }))
    }

    async fn start_referral(
        &self,
        req: Request<pb::StartReferralRequest>,
    ) -> Result<Response<pb::StartReferralResponse>, Status> {
        let r = req.into_inner();

        let rec = self
            .answer(
                "StartReferral",
                &r.idempotency_key,
                &r,
                r.referral.as_ref(),
                false,
                move |rf| B::ReferralStarted(pb::ReferralStarted { request: Some(rf) }),
            )
            .await?;
        Ok(Response::new(pb::StartReferralResponse {
            recorded: Some(rec),
        }))
    }

    async fn complete_referral(
        &self,
        req: Request<pb::CompleteReferralRequest>,
    ) -> Result<Response<pb::CompleteReferralResponse>, Status> {
        let r = req.into_inner();

        let rec = self
            .answer(
                "CompleteReferral",
                &r.idempotency_key,
                &r,
                r.referral.as_ref(),
                false,
                move |rf| B::ReferralCompleted(pb::ReferralCompleted { request: Some(rf) }),
            )
            .await?;
        Ok(Response::new(pb::CompleteReferralResponse {
            recorded: Some(rec),
        }))
    }

    async fn fail_referral(
        &self,
        req: Request<pb::FailReferralRequest>,
    ) -> Result<Response<pb::FailReferralResponse>, Status> {
        let r = req.into_inner();
        let (reason, detail) = (r.reason, r.detail.clone());
        let rec = self
            .answer(
                "FailReferral",
                &r.idempotency_key,
                &r,
                r.referral.as_ref(),
                false,
                move |rf| {
                    B::ReferralFailed(pb::ReferralFailed {
                        request: Some(rf),
                        reason,
                        detail,
                    })
                },
            )
            .await?;
        Ok(Response::new(pb::FailReferralResponse {
            recorded: Some(rec),
        }))
    }

    async fn cancel_referral(
        &self,
        req: Request<pb::CancelReferralRequest>,
    ) -> Result<Response<pb::CancelReferralResponse>, Status> {
        let r = req.into_inner();
        let detail = r.detail.clone();
        let rec = self
            .answer(
                "CancelReferral",
                &r.idempotency_key,
                &r,
                r.referral.as_ref(),
                true,
                move |rf| {
                    B::ReferralCancelled(pb::ReferralCancelled {
                        request: Some(rf),
                        detail,
                    })
                },
            )
            .await?;
        Ok(Response::new(pb::CancelReferralResponse {
            recorded: Some(rec),
        }))
    }

    async fn list_referrals(
        &self,
        req: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        Ok(Response::new(self.list(req.into_inner()).await?))
    }
}
