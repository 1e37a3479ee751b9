//! Encoding of a [`Batch`] as a write-ahead log frame body (private protobuf
//! messages, so the format is self-describing and extensible).

use waymark_types::{AgencyId, CaseId, EventId};

use crate::store::{
    Batch, OutboxItem, StoreError, StoredCheckpoint, StoredCosignature, StoredEntry,
};

#[derive(Clone, PartialEq, prost::Message)]
struct WalBatch {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<WalEntry>,
    #[prost(message, repeated, tag = "2")]
    outbox_add: Vec<WalOutbox>,
    #[prost(message, repeated, tag = "3")]
    outbox_remove: Vec<WalOutbox>,
    #[prost(message, repeated, tag = "4")]
    checkpoints: Vec<WalBlob>,
    #[prost(message, repeated, tag = "5")]
    cosignatures: Vec<WalBlob>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WalEntry {
    #[prost(uint64, tag = "1")]
    seq: u64,
    #[prost(bytes = "vec", tag = "2")]
    bytes: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    hash: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    nodes: Vec<Vec<u8>>,
    #[prost(bytes = "vec", tag = "5")]
    case_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    event_id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WalOutbox {
    #[prost(uint64, tag = "1")]
    seq: u64,
    #[prost(string, tag = "2")]
    recipient: String,
    #[prost(bytes = "vec", tag = "3")]
    event_id: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WalBlob {
    #[prost(uint64, tag = "1")]
    size: u64,
    #[prost(string, tag = "2")]
    witness: String,
    #[prost(bytes = "vec", tag = "3")]
    envelope: Vec<u8>,
}

pub(crate) fn encode(b: &Batch) -> Vec<u8> {
    let w = WalBatch {
        entries: b
            .entries
            .iter()
            .map(|e| WalEntry {
                seq: e.seq,
                bytes: e.bytes.clone(),
                hash: e.hash.to_vec(),
                nodes: e.nodes.iter().map(|n| n.to_vec()).collect(),
                case_id: e.case_id.map(|c| c.as_bytes().to_vec()).unwrap_or_default(),
                event_id: e
                    .event_id
                    .map(|c| c.as_bytes().to_vec())
                    .unwrap_or_default(),
            })
            .collect(),
        outbox_add: b
            .outbox_add
            .iter()
            .map(|o| WalOutbox {
                seq: o.seq,
                recipient: o.recipient.to_string(),
                event_id: o.event_id.as_bytes().to_vec(),
            })
            .collect(),
        outbox_remove: b
            .outbox_remove
            .iter()
            .map(|(seq, r)| WalOutbox {
                seq: *seq,
                recipient: r.to_string(),
                event_id: Vec::new(),
            })
            .collect(),
        checkpoints: b
            .checkpoints
            .iter()
            .map(|c| WalBlob {
                size: c.size,
                witness: String::new(),
                envelope: c.envelope.clone(),
            })
            .collect(),
        cosignatures: b
            .cosignatures
            .iter()
            .map(|c| WalBlob {
                size: c.size,
                witness: c.witness.to_string(),
                envelope: c.envelope.clone(),
            })
            .collect(),
    };
    prost::Message::encode_to_vec(&w)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("log frame: {what}"))
}

fn uuid16(b: &[u8]) -> Result<Option<uuid::Uuid>, StoreError> {
    if b.is_empty() {
        return Ok(None);
    }
    let a: [u8; 16] = b.try_into().map_err(|_| corrupt("id is not 16 bytes"))?;
    Ok(Some(uuid::Uuid::from_bytes(a)))
}

fn agency(s: &str) -> Result<AgencyId, StoreError> {
    AgencyId::new(s).map_err(|_| corrupt("bad agency id"))
}

pub(crate) fn decode(body: &[u8]) -> Result<Batch, StoreError> {
    let w: WalBatch = prost::Message::decode(body).map_err(|_| corrupt("undecodable batch"))?;
    let mut b = Batch::default();
    for e in w.entries {
        b.entries.push(StoredEntry {
            seq: e.seq,
            hash: e
                .hash
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("entry hash length"))?,
            nodes: e
                .nodes
                .iter()
                .map(|n| {
                    n.as_slice()
                        .try_into()
                        .map_err(|_| corrupt("node hash length"))
                })
                .collect::<Result<_, _>>()?,
            case_id: uuid16(&e.case_id)?.map(CaseId::from_uuid),
            event_id: uuid16(&e.event_id)?.map(EventId::from_uuid),
            bytes: e.bytes,
        });
    }
    for o in w.outbox_add {
        let ev = uuid16(&o.event_id)?.ok_or_else(|| corrupt("outbox item without event id"))?;
        b.outbox_add.push(OutboxItem {
            seq: o.seq,
            recipient: agency(&o.recipient)?,
            event_id: EventId::from_uuid(ev),
        });
    }
    for o in w.outbox_remove {
        b.outbox_remove.push((o.seq, agency(&o.recipient)?));
    }
    for c in w.checkpoints {
        b.checkpoints.push(StoredCheckpoint {
            size: c.size,
            envelope: c.envelope,
        });
    }
    for c in w.cosignatures {
        b.cosignatures.push(StoredCosignature {
            size: c.size,
            witness: agency(&c.witness)?,
            envelope: c.envelope,
        });
    }
    Ok(b)
}
