//! Erasure by key destruction (GDPR Art. 17 and 19), and who was told.
//!
//! # Protocol
//! 1. `EraseCase` at agency A: A journals `CaseErased` (its attestation: the
//!    ground, a detail for the auditor, whether it held personal data), then
//!    erases (`LocalStore::erase`: tombstone, per-case key destroyed,
//!    ciphertexts removed). The follower erases again for every `CaseErased`
//!    A journaled, so a crash between the two steps cannot leave the data
//!    behind an attestation.
//! 2. A forwards its `CaseErased` envelope, original signature intact, to
//!    every agency it sent personal data of the case to (the recipients of
//!    its own events with sealed sections), under a legal-obligation basis.
//!    The notice's id is derived from the erasure's and the recipient's, so
//!    a retry sends nothing twice.
//! 3. Agency B, on receiving the notice (its follower): unless it erased the
//!    case already, journals its own `CaseErased` (ground `NOTICE`,
//!    `requested_by` = A's erasure) and erases, then forwards its attestation
//!    to the agencies *it* sent the data to (except A); in every case it
//!    answers A with `ErasureAcknowledged` referring to A's erasure and to
//!    its own attestation. Ids are derived, so a redelivered notice or a
//!    crash repeats nothing.
//! 4. `GetErasureStatus` at A lists who acknowledged and who is outstanding.
//!
//! Journals never held personal data (sealed sections carry only a digest
//! of the detached ciphertext), so they are untouched and verify as before.

use std::collections::BTreeSet;
use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_policy::wire::vocab::agency_kind_to_proto;
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_types::{AgencyId, CaseId, EventId};

use crate::agency::Core;
use crate::common::{Journaled, case_id, case_info, event_id, field_map, find};
use crate::error::ApiError;
use crate::state::decode_event;
use crate::store::derived_id;
use crate::write::{blocking, new_event, record};

const NOTICE_JUSTIFICATION: &str = "Notifying an agency this agency sent personal data of the \
     case to that the data was erased, so that it erases its copy (GDPR Art. 17(2) and Art. 19).";

/// `EraseCase`.
pub(crate) async fn erase(
    core: &Arc<Core>,
    r: pb::EraseCaseRequest,
) -> Result<pb::EraseCaseResponse, ApiError> {
    let case = case_id("case_id", &r.case_id)?;
    match pb::ErasureGround::try_from(r.ground) {
        Ok(pb::ErasureGround::Unspecified) | Err(_) => {
            return Err(ApiError::invalid(
                "ground",
                "required: why the data is erased (e.g. ERASURE_GROUND_PERSON_REQUEST)",
            ));
        }
        Ok(pb::ErasureGround::Notice) => {
            return Err(ApiError::invalid(
                "ground",
                "ERASURE_GROUND_NOTICE is recorded by the agency itself when another agency's \
                 erasure notice arrives; give the ground of this request",
            ));
        }
        Ok(_) => {}
    }
    case_info(core, case).await?;
    let held = blocking(core, move |c| Ok(held_now(c, case)?)).await?;
    let c = core.clone();
    let (ground, detail) = (r.ground, r.detail.clone());
    let done = record(
        core,
        "EraseCase",
        &r.idempotency_key,
        &r,
        move |id| {
            Ok(new_event(
                &c,
                id,
                case,
                B::CaseErased(pb::CaseErased {
                    ground,
                    detail,
                    requested_by: None,
                    held_personal_data: held,
                }),
            ))
        },
        &field_map("body.case_erased", ""),
    )
    .await?;
    blocking(core, move |c| Ok(c.store.erase(&case)?)).await?;
    let erasure = event_id("event_id", &done.recorded.event_id)?;
    let notified = notify_recipients(core, case, erasure, None).await?;
    Ok(pb::EraseCaseResponse {
        recorded: Some(done.recorded),
        notified_agency_ids: notified.iter().map(ToString::to_string).collect(),
    })
}

/// `GetErasureStatus`.
pub(crate) async fn status(
    core: &Arc<Core>,
    case: CaseId,
) -> Result<pb::GetErasureStatusResponse, ApiError> {
    case_info(core, case).await?;
    let me = core.me.clone();
    let (own, acked) = blocking(core, move |c| {
        let mut own = None;
        let mut acked = BTreeSet::new();
        for (seq, entry, ev) in case_events(c, case)? {
            match &ev.body {
                Some(B::CaseErased(_)) if ev.sender_id == me.as_str() && own.is_none() => {
                    own = Some((seq, ev.event_id.clone(), entry.envelope.clone()));
                }
                Some(B::ErasureAcknowledged(a))
                    if entry.kind == pb::EntryKind::Received as i32
                        && own
                            .as_ref()
                            .zip(a.erasure.as_ref())
                            .is_some_and(|((_, id, _), r)| &r.event_id == id) =>
                {
                    acked.insert(ev.sender_id.clone());
                }
                _ => {}
            }
        }
        Ok((own, acked))
    })
    .await?;
    let Some((_, id, _)) = own else {
        return Err(ApiError::NotFound {
            what: "erasure of case",
            id: case.to_string(),
        });
    };
    let erasure = event_id("event_id", &id)?;
    let recorded = crate::write::lookup(core, erasure, true)
        .await?
        .ok_or_else(|| ApiError::Internal("the erasure is not in the journal".into()))?;
    let requester = requester(core, case, erasure).await?;
    let told = blocking(core, move |c| recipients(c, case)).await?;
    let (acknowledged, outstanding): (Vec<_>, Vec<_>) = told
        .into_iter()
        .filter(|a| Some(a) != requester.as_ref())
        .map(|a| a.to_string())
        .partition(|a| acked.contains(a));
    Ok(pb::GetErasureStatusResponse {
        recorded: Some(recorded),
        acknowledged_agency_ids: acknowledged,
        outstanding_agency_ids: outstanding,
    })
}

/// Whether this agency holds personal data of `case` now.
fn held_now(c: &Core, case: CaseId) -> Result<bool, crate::store::StoreError> {
    Ok(c.store.personal(&case)?.is_some())
}

/// Every event entry of `case` in this journal, in order, with its event.
fn case_events(
    c: &Core,
    case: CaseId,
) -> Result<Vec<(u64, pb::JournalEntry, pb::Event)>, ApiError> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = c.journal.case_entries(&case, after, 512)?;
        let Some(last) = page.last().map(|(s, _)| *s) else {
            return Ok(out);
        };
        for (seq, bytes) in page {
            let Ok(entry) = pb::JournalEntry::decode(bytes.as_slice()) else {
                continue;
            };
            if entry.kind != pb::EntryKind::Originated as i32
                && entry.kind != pb::EntryKind::Received as i32
            {
                continue;
            }
            if let Some(ev) = decode_event(&entry.envelope) {
                out.push((seq, entry, ev));
            }
        }
        after = last;
    }
}

/// The agencies this agency sent personal data of `case` to: recipients of
/// its own events with sealed sections, in first-sent order.
fn recipients(c: &Core, case: CaseId) -> Result<Vec<AgencyId>, ApiError> {
    let mut out: Vec<AgencyId> = Vec::new();
    for (_, entry, ev) in case_events(c, case)? {
        if entry.kind == pb::EntryKind::Originated as i32
            && !ev.sealed.is_empty()
            && let Ok(to) = AgencyId::new(&ev.recipient_id)
            && !out.contains(&to)
        {
            out.push(to);
        }
    }
    Ok(out)
}

/// The agency whose notice `erasure` (this agency's) acted on, if any.
async fn requester(
    core: &Arc<Core>,
    case: CaseId,
    erasure: EventId,
) -> Result<Option<AgencyId>, ApiError> {
    let own = blocking(core, move |c| find(c, erasure, case)).await?;
    let Some(Journaled { event, .. }) = own else {
        return Ok(None);
    };
    let Some(B::CaseErased(e)) = &event.body else {
        return Ok(None);
    };
    let Some(r) = e
        .requested_by
        .as_ref()
        .and_then(|r| EventId::parse(&r.event_id).ok())
    else {
        return Ok(None);
    };
    let asked = blocking(core, move |c| find(c, r, case)).await?;
    Ok(asked.and_then(|j| AgencyId::new(&j.event.sender_id).ok()))
}

/// Forwards this agency's erasure `erasure` of `case` to every agency it
/// sent personal data of the case to, except `except`. Returns the agencies
/// notified (a notice the rules refuse is logged and left out).
async fn notify_recipients(
    core: &Arc<Core>,
    case: CaseId,
    erasure: EventId,
    except: Option<&AgencyId>,
) -> Result<Vec<AgencyId>, ApiError> {
    let own = blocking(core, move |c| find(c, erasure, case))
        .await?
        .ok_or_else(|| ApiError::Internal("the erasure is not in the journal".into()))?;
    let told = blocking(core, move |c| recipients(c, case)).await?;
    let mut notified = Vec::new();
    for to in told.into_iter().filter(|a| Some(a) != except) {
        let id = derived_id(
            &erasure,
            "waymark.v1.erasure-notice",
            &[to.as_str().as_bytes()],
        );
        let mut e = new_event(
            core,
            id,
            case,
            B::Forwarded(pb::Forwarded {
                envelope: own.envelope.clone(),
            }),
        );
        e.recipient_id = to.to_string();
        e.recipient_kind = core
            .directory
            .kind(&to)
            .map_or(0, |k| agency_kind_to_proto(k) as i32);
        e.purpose = pb::Purpose::Protection as i32;
        e.basis = Some(pb::DisclosureBasis {
            basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
                basis: pb::LegalBasis::LegalObligation as i32,
                justification: NOTICE_JUSTIFICATION.into(),
            })),
        });
        match core.bus.send(e).await {
            Ok(sent) => {
                core.grew(sent.seq);
                notified.push(to);
            }
            Err(err) => match ApiError::from_send(err, &|_| None) {
                e @ (ApiError::Unavailable(_) | ApiError::Exhausted(_) | ApiError::Internal(_)) => {
                    return Err(e);
                }
                refused => {
                    tracing::warn!(agency = %to, error = %refused, "erasure notice refused");
                }
            },
        }
    }
    Ok(notified)
}

/// A received erasure notice: another agency's `CaseErased` for `case`,
/// forwarded to this agency, with its envelope.
pub(crate) struct Notice {
    pub(crate) case: CaseId,
    pub(crate) erasure: pb::Event,
    pub(crate) envelope: Vec<u8>,
}

/// The follower's part of the protocol (step 3): erase, attest, pass on,
/// acknowledge. Idempotent.
pub(crate) async fn on_notice(core: &Arc<Core>, n: Notice) -> Result<(), ApiError> {
    let Ok(theirs) = EventId::parse(&n.erasure.event_id) else {
        return Ok(());
    };
    let case = n.case;
    let from = n.erasure.sender_id.clone();
    let me = core.me.clone();
    let existing = blocking(core, move |c| {
        Ok(case_events(c, case)?.into_iter().find(|(_, _, ev)| {
            ev.sender_id == me.as_str() && matches!(ev.body, Some(B::CaseErased(_)))
        }))
    })
    .await?;
    let (ours, our_envelope) = match existing {
        Some((_, entry, ev)) => (ev.event_id.clone(), entry.envelope),
        None => {
            let id = derived_id(
                &theirs,
                "waymark.v1.erasure",
                &[core.me.as_str().as_bytes()],
            );
            let held = blocking(core, move |c| Ok(held_now(c, case)?)).await?;
            let e = new_event(
                core,
                id,
                case,
                B::CaseErased(pb::CaseErased {
                    ground: pb::ErasureGround::Notice as i32,
                    detail: String::new(),
                    requested_by: Some(pb::EventRef {
                        event_id: theirs.to_string(),
                        envelope_hash: Sha256::digest(&n.envelope).to_vec(),
                    }),
                    held_personal_data: held,
                }),
            );
            let sent = core
                .bus
                .send(e)
                .await
                .map_err(|e| ApiError::from_send(e, &|_| None))?;
            core.grew(sent.seq);
            blocking(core, move |c| Ok(c.store.erase(&case)?)).await?;
            let sender = AgencyId::new(&from).ok();
            notify_recipients(core, case, id, sender.as_ref()).await?;
            let j = blocking(core, move |c| find(c, id, case))
                .await?
                .ok_or_else(|| ApiError::Internal("the erasure is not in the journal".into()))?;
            (id.to_string(), j.envelope)
        }
    };
    blocking(core, move |c| Ok(c.store.erase(&case)?)).await?;
    let ack_id = derived_id(
        &theirs,
        "waymark.v1.erasure-ack",
        &[core.me.as_str().as_bytes()],
    );
    let mut e = new_event(
        core,
        ack_id,
        case,
        B::ErasureAcknowledged(pb::ErasureAcknowledged {
            erasure: Some(pb::EventRef {
                event_id: theirs.to_string(),
                envelope_hash: Sha256::digest(&n.envelope).to_vec(),
            }),
            attestation: Some(pb::EventRef {
                event_id: ours,
                envelope_hash: Sha256::digest(&our_envelope).to_vec(),
            }),
        }),
    );
    e.recipient_id = from;
    e.recipient_kind = n.erasure.sender_kind;
    match core.bus.send(e).await {
        Ok(sent) => {
            core.grew(sent.seq);
            tracing::info!(erasure = %theirs, ack = %ack_id, "erasure acknowledged");
            Ok(())
        }
        Err(err) => match ApiError::from_send(err, &|_| None) {
            e @ (ApiError::Unavailable(_) | ApiError::Exhausted(_) | ApiError::Internal(_)) => {
                Err(e)
            }
            refused => {
                tracing::warn!(erasure = %theirs, error = %refused, "erasure not acknowledged: refused");
                Ok(())
            }
        },
    }
}
