//! The follower: one task per agency that reads every new journal entry once
//! and
//! - indexes the cases it names (for ListCases and ListReferrals),
//! - acknowledges withdrawals automatically: a RECEIVED `ConsentWithdrawn`
//!   addressed to this agency (directly, or forwarded to it) is answered
//!   with a `WithdrawalAcknowledged` back to the withdrawing agency, embedding
//!   `EventRef{withdrawal id, SHA-256 of its envelope}`. Its event id is
//!   derived from the withdrawal's, so after a crash the same acknowledgement
//!   is found again instead of a second one being recorded. Acknowledging
//!   means: this agency stops processing under the consent (its own policy
//!   view refuses new disclosures under it from the effective time);
//! - answers erasure notices: a RECEIVED forward of another agency's
//!   `CaseErased` addressed to this agency makes it erase, attest, pass the
//!   notice on and acknowledge (`erasure.rs`), and every `CaseErased` this
//!   agency originated is applied to its store again (idempotent), so a
//!   crash between journaling the attestation and destroying the key cannot
//!   leave the data behind;
//! - forgets the detached ciphertext of a sealed event once its receipt is
//!   journaled (`sealing.rs`);
//! - wakes inbox streams (`Core::grown`).
//!
//! # Wake-ups
//! Every journal commit, whoever made it (this crate's writes, or the bus
//! journaling received events, receipts and quarantine), bumps `Core::grown`
//! through `Journal::on_grow`, which wakes the follower and every inbox
//! stream at once. The follower also looks every `follow_interval` as a
//! safety net (one atomic load).
//!
//! The cursor is kept in the agency store; every step is idempotent, so
//! redoing entries after a crash is harmless.

use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_types::{CaseId, EventId};

use crate::agency::Core;
use crate::error::ApiError;
use crate::state::decode_event;
use crate::store::derived_id;
use crate::write::{blocking, new_event, read_entries, small};

/// A withdrawal to acknowledge.
struct Ack {
    case: CaseId,
    withdrawal: pb::Event,
    envelope: Vec<u8>,
}

pub(crate) async fn run(core: Arc<Core>) -> Result<(), std::convert::Infallible> {
    let mut grown = core.grown.subscribe();
    let mut cursor = match core.store.cursor() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reading the follower cursor; starting from 0");
            0
        }
    };
    loop {
        match step(&core, cursor).await {
            Ok(c) => cursor = c,
            Err(e) => tracing::warn!(error = %e, "following the journal; retrying"),
        }
        tokio::select! {
            () = core.cancel.cancelled() => return Ok(()),
            r = grown.changed() => if r.is_err() { return Ok(()) },
            () = tokio::time::sleep(core.settings.follow_interval) => {}
        }
    }
}

/// Handles the entries after `cursor`; returns the new cursor.
async fn step(core: &Arc<Core>, cursor: u64) -> Result<u64, ApiError> {
    let size = core.journal.size()?;
    core.grew(size);
    let mut at = cursor;
    while at < size {
        let to = (at + 256).min(size);
        let from = at;
        // Under load the follower is a commit or two behind: those few
        // entries are indexed on this thread (a catch-up after a start on a
        // blocking one).
        let work = read_entries(core, from, to, index).await?;
        for w in work {
            match w {
                Work::Ack(ack) => acknowledge(core, ack).await?,
                Work::Erasure(n) => crate::erasure::on_notice(core, n).await?,
                Work::Erase(case) => {
                    blocking(core, move |c| Ok(c.store.erase(&case).map(|_| ())?)).await?;
                }
            }
        }
        at = to;
        let c = at;
        small(core, |k| Ok(k.store.set_cursor(c)?))?;
    }
    Ok(at)
}

/// What an entry asks of the follower beyond indexing.
enum Work {
    Ack(Ack),
    Erasure(crate::erasure::Notice),
    /// A `CaseErased` this agency originated: apply it to the store again
    /// (durable writes, so on a blocking thread).
    Erase(CaseId),
}

/// Indexes entries `from+1..=to` and forgets receipted sealed data (point
/// writes, not flushed); returns the withdrawals to acknowledge, the erasure
/// notices to act on and this agency's own erasures to apply again.
fn index(c: &Core, from: u64, to: u64) -> Result<Vec<Work>, ApiError> {
    let mut acks = Vec::new();
    for seq in from + 1..=to {
        let Some(bytes) = c.journal.entry(seq)? else {
            continue;
        };
        let Ok(entry) = pb::JournalEntry::decode(bytes.as_slice()) else {
            continue;
        };
        let Ok(case) = CaseId::parse(&entry.case_id) else {
            continue;
        };
        c.store.index_case(&case, seq)?;
        let originated = entry.kind == pb::EntryKind::Originated as i32;
        if !originated && entry.kind != pb::EntryKind::Received as i32 {
            continue;
        }
        let Some(ev) = decode_event(&entry.envelope) else {
            continue;
        };
        if originated {
            if matches!(ev.body, Some(B::CaseErased(_))) {
                acks.push(Work::Erase(case));
            }
            continue;
        }
        if let Some(B::Receipt(r)) = &ev.body
            && let Some(id) = r
                .event
                .as_ref()
                .and_then(|r| EventId::parse(&r.event_id).ok())
        {
            c.store.forget_sealed_out(&id)?;
        }
        let (inner, envelope) = match &ev.body {
            Some(B::Forwarded(f)) => match decode_event(&f.envelope) {
                Some(i) => (i, f.envelope.clone()),
                None => continue,
            },
            _ => (ev.clone(), entry.envelope.clone()),
        };
        let for_me = ev.recipient_id == c.me.as_str() && inner.sender_id != c.me.as_str();
        if matches!(inner.body, Some(B::ConsentWithdrawn(_))) && for_me {
            acks.push(Work::Ack(Ack {
                case,
                withdrawal: inner,
                envelope,
            }));
        } else if matches!(inner.body, Some(B::CaseErased(_)))
            && matches!(ev.body, Some(B::Forwarded(_)))
            && for_me
        {
            acks.push(Work::Erasure(crate::erasure::Notice {
                case,
                erasure: inner,
                envelope,
            }));
        }
    }
    Ok(acks)
}

async fn acknowledge(core: &Arc<Core>, a: Ack) -> Result<(), ApiError> {
    let Ok(w_id) = EventId::parse(&a.withdrawal.event_id) else {
        return Ok(());
    };
    let Some(B::ConsentWithdrawn(w)) = &a.withdrawal.body else {
        return Ok(());
    };
    let id = derived_id(
        &w_id,
        "waymark.v1.withdrawal-ack",
        &[core.me.as_str().as_bytes()],
    );
    let mut e = new_event(
        core,
        id,
        a.case,
        B::WithdrawalAcknowledged(pb::WithdrawalAcknowledged {
            consent_id: w.consent_id.clone(),
            withdrawal: Some(pb::EventRef {
                event_id: w_id.to_string(),
                envelope_hash: Sha256::digest(&a.envelope).to_vec(),
            }),
        }),
    );
    e.recipient_id = a.withdrawal.sender_id.clone();
    e.recipient_kind = a.withdrawal.sender_kind;
    match core.bus.send(e).await {
        Ok(sent) => {
            core.grew(sent.seq);
            tracing::info!(withdrawal = %w_id, ack = %id, "withdrawal acknowledged");
            Ok(())
        }
        Err(err) => match ApiError::from_send(err, &|_| None) {
            e @ (ApiError::Unavailable(_) | ApiError::Exhausted(_) | ApiError::Internal(_)) => {
                Err(e)
            }
            refused => {
                tracing::warn!(withdrawal = %w_id, error = %refused, "withdrawal not acknowledged: refused");
                Ok(())
            }
        },
    }
}
