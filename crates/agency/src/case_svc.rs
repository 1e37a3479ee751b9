//! `waymark.v1.CaseService`: open, read, refuse, forward, close.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};
use waymark_proto::v1 as pb;
use waymark_proto::v1::case_service_server::CaseService;
use waymark_proto::v1::event::Body as B;
use waymark_types::CaseId;

use crate::agency::Core;
use crate::common::{apply_send_to, case_id, case_info, event_id, field_map, journaled};
use crate::error::ApiError;
use crate::state::decode_event;
use crate::views::{case_view, timeline_entry};
use crate::write::{blocking, new_event, record};

/// The CaseService of one agency.
pub(crate) struct CaseSvc(pub(crate) Arc<Core>);

const MAX_PAGE: u32 = 1000;

impl CaseSvc {
    async fn open(&self, r: pb::OpenCaseRequest) -> Result<pb::OpenCaseResponse, ApiError> {
        let core = &self.0;
        let personal = r
            .personal
            .clone()
            .filter(|p| *p != pb::PersonalData::default());
        if r.anonymous && personal.is_some() {
            return Err(ApiError::invalid(
                "personal",
                "must be empty for anonymous intake (anonymous = true)",
            ));
        }
        let body = B::CaseOpened(pb::CaseOpened {
            channel: r.channel,
            presumed_child: r.presumed_child,
            forms: r.forms.clone(),
            anonymous: r.anonymous,
        });
        let c = core.clone();
        let done = record(
            core,
            "OpenCase",
            &r.idempotency_key,
            &r,
            move |id| Ok(new_event(&c, id, CaseId::new(), body)),
            &field_map("body.case_opened", ""),
        )
        .await?;
        let rec = done.recorded;
        let id = event_id("event_id", &rec.event_id)?;
        let seq = rec.journal_seq;
        let case = blocking(core, move |c| {
            let case = c
                .journal
                .entry(seq)?
                .and_then(|b| pb::JournalEntry::decode(b.as_slice()).ok())
                .and_then(|e| decode_event(&e.envelope))
                .filter(|e| e.event_id == id.to_string())
                .and_then(|e| CaseId::parse(&e.case_id).ok())
                .ok_or_else(|| ApiError::Internal("the CaseOpened entry does not decode".into()))?;
            c.store.index_case(&case, seq)?;
            if let Some(p) = personal {
                c.store.put_personal_once(&case, &p.encode_to_vec())?;
            }
            Ok(case)
        })
        .await?;
        Ok(pb::OpenCaseResponse {
            case_id: case.to_string(),
            recorded: Some(rec),
        })
    }

    async fn list(&self, r: pb::ListCasesRequest) -> Result<pb::ListCasesResponse, ApiError> {
        let size = match r.page_size {
            0 => 100,
            n => n.min(MAX_PAGE),
        } as usize;
        let before = if r.page_token.is_empty() {
            u64::MAX
        } else {
            r.page_token
                .parse::<u64>()
                .map_err(|_| ApiError::invalid("page_token", "must come from next_page_token"))?
        };
        blocking(&self.0, move |c| {
            let mut page = c.store.cases_before(before, size + 1)?;
            let next = if page.len() > size {
                page.truncate(size);
                page.last().map(|(s, _)| s.to_string()).unwrap_or_default()
            } else {
                String::new()
            };
            let mut cases = Vec::with_capacity(page.len());
            for (_, case) in page {
                if let Some(info) = c.cases.get(&c.journal, &c.rules, case)? {
                    cases.push(case_view(c, &info)?);
                }
            }
            Ok(pb::ListCasesResponse {
                cases,
                next_page_token: next,
            })
        })
        .await
    }

    async fn timeline(&self, case: CaseId) -> Result<pb::GetCaseTimelineResponse, ApiError> {
        blocking(&self.0, move |c| {
            let mut entries = Vec::new();
            let mut after = 0;
            loop {
                let page = c.journal.case_entries(&case, after, 512)?;
                let Some(last) = page.last().map(|(s, _)| *s) else {
                    break;
                };
                for (seq, bytes) in page {
                    if let Ok(e) = pb::JournalEntry::decode(bytes.as_slice()) {
                        entries.push(timeline_entry(seq, &e));
                    }
                }
                after = last;
            }
            if entries.is_empty() {
                return Err(ApiError::NotFound {
                    what: "case",
                    id: case.to_string(),
                });
            }
            Ok(pb::GetCaseTimelineResponse { entries })
        })
        .await
    }

    /// Records a local event about a known case.
    async fn local(
        &self,
        rpc: &'static str,
        key: &str,
        request: &impl Message,
        case: CaseId,
        body: B,
        prefix: &'static str,
    ) -> Result<pb::RecordedEvent, ApiError> {
        case_info(&self.0, case).await?;
        let c = self.0.clone();
        let done = record(
            &self.0,
            rpc,
            key,
            request,
            move |id| Ok(new_event(&c, id, case, body)),
            &field_map(prefix, ""),
        )
        .await?;
        Ok(done.recorded)
    }

    async fn forward(&self, r: pb::ForwardEventRequest) -> Result<pb::RecordedEvent, ApiError> {
        let case = case_id("case_id", &r.case_id)?;
        let target = event_id("event_id", &r.event_id)?;
        case_info(&self.0, case).await?;
        let j = journaled(&self.0, target, case, "event").await?;
        // A forward of a forward passes on the original signed event.
        let envelope = match &j.event.body {
            Some(B::Forwarded(f)) => f.envelope.clone(),
            _ => j.envelope,
        };
        let c = self.0.clone();
        let send_to = r.send_to.clone();
        let done = record(
            &self.0,
            "ForwardEvent",
            &r.idempotency_key,
            &r,
            move |id| {
                let mut e = new_event(&c, id, case, B::Forwarded(pb::Forwarded { envelope }));
                apply_send_to(&c, &mut e, send_to.as_ref())?;
                Ok(e)
            },
            &field_map("body.forwarded", "event_id"),
        )
        .await?;
        Ok(done.recorded)
    }
}

#[tonic::async_trait]
impl CaseService for CaseSvc {
    async fn open_case(
        &self,
        req: Request<pb::OpenCaseRequest>,
    ) -> Result<Response<pb::OpenCaseResponse>, Status> {
        Ok(Response::new(self.open(req.into_inner()).await?))
    }

    async fn get_case(
        &self,
        req: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        let case = case_id("case_id", &req.get_ref().case_id)?;
        let info = case_info(&self.0, case).await?;
        let view = blocking(&self.0, move |c| case_view(c, &info)).await?;
        Ok(Response::new(pb::GetCaseResponse { case: Some(view) }))
    }

    async fn list_cases(
        &self,
        req: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        Ok(Response::new(self.list(req.into_inner()).await?))
    }

    async fn get_case_timeline(
        &self,
        req: Request<pb::GetCaseTimelineRequest>,
    ) -> Result<Response<pb::GetCaseTimelineResponse>, Status> {
        let case = case_id("case_id", &req.get_ref().case_id)?;
        Ok(Response::new(self.timeline(case).await?))
    }

    async fn get_personal_data(
        &self,
        req: Request<pb::GetPersonalDataRequest>,
    ) -> Result<Response<pb::GetPersonalDataResponse>, Status> {
        let case = case_id("case_id", &req.get_ref().case_id)?;
        let (parts, erased) = blocking(&self.0, move |c| {
            Ok((c.store.personal(&case)?, c.store.erased(&case)?))
        })
        .await?;
        let Some(parts) = parts else {
            return Err(ApiError::NotFound {
                what: if erased.is_some() {
                    "personal data (erased) of case"
                } else {
                    "personal data of case"
                },
                id: case.to_string(),
            }
            .into());
        };
        // What this agency recorded, then what it received, in order: later
        // values win, lists are merged without repeats.
        let mut personal = pb::PersonalData::default();
        for p in parts {
            personal
                .merge(p.as_slice())
                .map_err(|_| ApiError::Internal("stored personal data does not decode".into()))?;
        }
        for list in [&mut personal.languages, &mut personal.document_numbers] {
            let mut seen = std::collections::HashSet::new();
            list.retain(|v| seen.insert(v.clone()));
        }
        Ok(Response::new(pb::GetPersonalDataResponse {
            personal: Some(personal),
        }))
    }

    async fn erase_case(
        &self,
        req: Request<pb::EraseCaseRequest>,
    ) -> Result<Response<pb::EraseCaseResponse>, Status> {
        Ok(Response::new(
            crate::erasure::erase(&self.0, req.into_inner()).await?,
        ))
    }

    async fn get_erasure_status(
        &self,
        req: Request<pb::GetErasureStatusRequest>,
    ) -> Result<Response<pb::GetErasureStatusResponse>, Status> {
        let case = case_id("case_id", &req.get_ref().case_id)?;
        Ok(Response::new(crate::erasure::status(&self.0, case).await?))
    }

    async fn record_refusal(
        &self,
        req: Request<pb::RecordRefusalRequest>,
    ) -> Result<Response<pb::RecordRefusalResponse>, Status> {
        let r = req.into_inner();
        let case = case_id("case_id", &r.case_id)?;
        let body = B::RefusalRecorded(pb::RefusalRecorded {
            scope: r.scope,
            agency_ids: r.agency_ids.clone(),
            purposes: r.purposes.clone(),
        });
        let rec = self
            .local(
                "RecordRefusal",
                &r.idempotency_key,
                &r,
                case,
                body,
                "body.refusal_recorded",
            )
            .await?;
        Ok(Response::new(pb::RecordRefusalResponse {
            recorded: Some(rec),
        }))
    }

    async fn forward_event(
        &self,
        req: Request<pb::ForwardEventRequest>,
    ) -> Result<Response<pb::ForwardEventResponse>, Status> {
        let rec = self.forward(req.into_inner()).await?;
        Ok(Response::new(pb::ForwardEventResponse {
            recorded: Some(rec),
        }))
    }

    async fn close_case(
        &self,
        req: Request<pb::CloseCaseRequest>,
    ) -> Result<Response<pb::CloseCaseResponse>, Status> {
        let r = req.into_inner();
        let case = case_id("case_id", &r.case_id)?;
        let body = B::CaseClosed(pb::CaseClosed { outcome: r.outcome });
        let rec = self
            .local(
                "CloseCase",
                &r.idempotency_key,
                &r,
                case,
                body,
                "body.case_closed",
            )
            .await?;
        Ok(Response::new(pb::CloseCaseResponse {
            recorded: Some(rec),
        }))
    }
}
