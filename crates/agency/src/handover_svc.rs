//! `waymark.v1.HandoverService`: the two-phase custody handover.
//!
//! The custodian offers (a disclosure to the offered agency, so `send_to`
//! carries its basis); the offered agency accepts or rejects, the custodian
//! may cancel. Answers embed an `EventRef` to the offer (its id and the
//! SHA-256 of its envelope as journaled here) and go to the other party.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use waymark_crypto::proto_from_timestamp;
use waymark_policy::OfferStatus;
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_proto::v1::handover_service_server::HandoverService;

use crate::agency::Core;
use crate::common::{
    Process, answer_process, apply_send_to, case_id, case_info, event_id, field_map,
};
use crate::error::ApiError;
use crate::write::{new_event, record};

/// The HandoverService of one agency.
pub(crate) struct HandoverSvc(pub(crate) Arc<Core>);

impl HandoverSvc {
    async fn offer(
        &self,
        r: pb::OfferHandoverRequest,
    ) -> Result<pb::OfferHandoverResponse, ApiError> {
        let case = case_id("case_id", &r.case_id)?;
        case_info(&self.0, case).await?;
        let body = B::HandoverOffered(pb::HandoverOffered {
            expires_at: r.expires_at,
            reason: r.reason.clone(),
        });
        let (c, send_to) = (self.0.clone(), r.send_to.clone());
        let done = record(
            &self.0,
            "OfferHandover",
            &r.idempotency_key,
            &r,
            move |id| {
                let mut e = new_event(&c, id, case, body);
                apply_send_to(&c, &mut e, send_to.as_ref())?;
                Ok(e)
            },
            &field_map("body.handover_offered", ""),
        )
        .await?;
        Ok(pb::OfferHandoverResponse {
            handover_id: done.recorded.event_id.clone(),
            recorded: Some(done.recorded),
        })
    }

    /// Answers (or, with `to_offeree`, cancels) the offer `handover_id`.
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        &self,
        rpc: &'static str,
        key: &str,
        request: &impl prost::Message,
        case_id_s: &str,
        handover_id: &str,
        to_offeree: bool,
        make: impl FnOnce(pb::EventRef) -> B + Send + 'static,
    ) -> Result<pb::RecordedEvent, ApiError> {
        static HANDOVER: Process = Process {
            what: "handover",
            id_field: "handover_id",
            ref_segment: ".offer",
            only_opener: ("custody.not_offerer", "the agency that made the offer"),
            only_recipient: ("custody.not_offeree", "the agency offered custody"),
        };
        let case = case_id("case_id", case_id_s)?;
        let id = event_id("handover_id", handover_id)?;
        let info = case_info(&self.0, case).await?;
        if !info.state.offers().contains_key(&id) {
            return Err(ApiError::NotFound {
                what: "handover",
                id: id.to_string(),
            });
        }
        answer_process(
            &self.0, &HANDOVER, rpc, key, request, case, id, to_offeree, make,
        )
        .await
    }
}

fn view(id: &waymark_types::EventId, o: &waymark_policy::Offer) -> pb::HandoverView {
    let state = match o.status {
        OfferStatus::Pending => pb::HandoverState::Pending,
        OfferStatus::Accepted(_) => pb::HandoverState::Accepted,
        OfferStatus::Rejected(..) => pb::HandoverState::Rejected,
        OfferStatus::Cancelled(_) => pb::HandoverState::Cancelled,
        OfferStatus::Expired(_) => pb::HandoverState::Expired,
    };
    pb::HandoverView {
        handover_id: id.to_string(),
        from_agency_id: o.from.to_string(),
        to_agency_id: o.to.id.to_string(),
        state: state as i32,
        expires_at: Some(proto_from_timestamp(o.expires_at)),
    }
}

#[tonic::async_trait]
impl HandoverService for HandoverSvc {
    async fn offer_handover(
        &self,
        req: Request<pb::OfferHandoverRequest>,
    ) -> Result<Response<pb::OfferHandoverResponse>, Status> {
        Ok(Response::new(self.offer(req.into_inner()).await?))
    }

    async fn accept_handover(
        &self,
        req: Request<pb::AcceptHandoverRequest>,
    ) -> Result<Response<pb::AcceptHandoverResponse>, Status> {
        let r = req.into_inner();
        let rec = self
            .answer(
                "AcceptHandover",
                &r.idempotency_key,
                &r,
                &r.case_id,
                &r.handover_id,
                false,
                |rf| B::HandoverAccepted(pb::HandoverAccepted { offer: Some(rf) }),
            )
            .await?;
        Ok(Response::new(pb::AcceptHandoverResponse {
            recorded: Some(rec),
        }))
    }

    async fn reject_handover(
        &self,
        req: Request<pb::RejectHandoverRequest>,
    ) -> Result<Response<pb::RejectHandoverResponse>, Status> {
        let r = req.into_inner();
        let (reason, detail) = (r.reason, r.detail.clone());
        let rec = self
            .answer(
                "RejectHandover",
                &r.idempotency_key,
                &r,
                &r.case_id,
                &r.handover_id,
                false,
                move |rf| {
                    B::HandoverRejected(pb::HandoverRejected {
                        offer: Some(rf),
                        reason,
                        detail,
                    })
                },
            )
            .await?;
        Ok(Response::new(pb::RejectHandoverResponse {
            recorded: Some(rec),
        }))
    }

    async fn cancel_handover(
        &self,
        req: Request<pb::CancelHandoverRequest>,
    ) -> Result<Response<pb::CancelHandoverResponse>, Status> {
        let r = req.into_inner();
        let rec = self
            .answer(
                "CancelHandover",
                &r.idempotency_key,
                &r,
                &r.case_id,
                &r.handover_id,
                true,
                |rf| B::HandoverCancelled(pb::HandoverCancelled { offer: Some(rf) }),
            )
            .await?;
        Ok(Response::new(pb::CancelHandoverResponse {
            recorded: Some(rec),
        }))
    }

    async fn list_handovers(
        &self,
        req: Request<pb::ListHandoversRequest>,
    ) -> Result<Response<pb::ListHandoversResponse>, Status> {
        let case = case_id("case_id", &req.get_ref().case_id)?;
        let info = case_info(&self.0, case).await?;
        let handovers = info
            .state
            .offers()
            .iter()
            .map(|(id, o)| view(id, o))
            .collect();
        Ok(Response::new(pb::ListHandoversResponse { handovers }))
    }
}
