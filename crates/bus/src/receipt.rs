//! Receipts: the recipient's signed proof that it journaled (or quarantined)
//! an event, sent back through its own outbox.
//!
//! A receipt's event id is derived from the receipted event's id, this
//! agency and the status, shaped as a UUIDv7 (the receipted event's 48-bit
//! time, then hash bits, version 7, RFC 9562 variant). So a redelivered event
//! finds the receipt already issued (and it is published again), and a crash
//! between journaling an event and journaling its receipt is repaired on the
//! redelivery.

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::{proto_from_timestamp, sign_envelope};
use waymark_journal::{JournalError, Staged};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1::event::Body as B;
use waymark_proto::v1::{Event as PbEvent, EventRef, Receipt, ReceiptStatus};
use waymark_types::{EventId, Timestamp};

use crate::Ctx;

/// The id of this agency's receipt for `event` with `status`.
pub(crate) fn receipt_id(ctx: &Ctx, event: &EventId, status: ReceiptStatus) -> EventId {
    let h = Sha256::new()
        .chain_update(b"waymark.v1.receipt-id")
        .chain_update(event.as_bytes())
        .chain_update(ctx.config.agency.as_str().as_bytes())
        .chain_update((status as i32).to_be_bytes())
        .finalize();
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&event.as_bytes()[..6]);
    b[6..].copy_from_slice(&h[..10]);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    EventId::from_uuid(uuid::Uuid::from_bytes(b))
}

/// Makes sure a receipt for `original` (received as `envelope`) exists:
/// stages a new one (journaled and queued once the caller's wait for it, or
/// for a later staged append, returned; see
/// [`Journal::stage_originated`](waymark_journal::Journal::stage_originated)),
/// or asks the relay to publish the existing one again.
pub(crate) fn ensure(
    ctx: &Ctx,
    original: &PbEvent,
    envelope: &[u8],
    journal_seq: u64,
    status: ReceiptStatus,
    reason: &str,
) -> Result<Option<Staged>, JournalError> {
    if matches!(original.body, Some(B::Receipt(_))) {
        return Ok(None);
    }
    let Ok(orig_id) = EventId::parse(&original.event_id) else {
        return Ok(None);
    };
    let id = receipt_id(ctx, &orig_id, status);
    if let Some(seq) = ctx.journal.event_seq(&id)? {
        if let Ok(mut r) = ctx.republish.lock() {
            r.push(seq);
        }
        return Ok(None);
    }
    let me = &ctx.config.agency;
    let ev = PbEvent {
        event_id: id.to_string(),
        case_id: original.case_id.clone(),
        sender_id: me.to_string(),
        sender_kind: waymark_policy::wire::vocab::agency_kind_to_proto(ctx.config.kind) as i32,
        recipient_id: original.sender_id.clone(),
        recipient_kind: original.sender_kind,
        occurred_at: Some(proto_from_timestamp(Timestamp::now())),
        rule_set: original.rule_set.clone(),
        body: Some(B::Receipt(Receipt {
            event: Some(EventRef {
                event_id: original.event_id.clone(),
                envelope_hash: Sha256::digest(envelope).to_vec(),
            }),
            status: status as i32,
            journal_seq,
            reason: reason.to_owned(),
        })),
        ..PbEvent::default()
    };
    let env = sign_envelope(&ctx.key, PAYLOAD_TYPE_EVENT, ev.encode_to_vec());
    ctx.journal
        .stage_originated(&env.encode_to_vec(), Timestamp::now())
        .map(Some)
}
