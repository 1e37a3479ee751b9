//! Encoding of a [`Batch`] as a write-ahead log frame body (private protobuf
//! messages, so the format is self-describing and extensible).

use waymark_types::{AgencyId, CaseId, EventId};

use crate::store::{
    Batch, OutboxItem, RequestRecord, StoreError, StoredCheckpoint, StoredCosignature, StoredEntry,
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
    /// Added with request records; frames written before have none.
    #[prost(message, repeated, tag = "6")]
    requests: Vec<WalRequest>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WalRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(uint64, tag = "2")]
    seq: u64,
    #[prost(bytes = "vec", tag = "3")]
    value: Vec<u8>,
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
        requests: b
            .requests
            .iter()
            .map(|r| WalRequest {
                key: r.key.clone(),
                seq: r.seq,
                value: r.value.clone(),
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
    for r in w.requests {
        b.requests.push(RequestRecord {
            key: r.key,
            seq: r.seq,
            value: r.value,
        });
    }
    Ok(b)
}

/// Where each entry's bytes lie inside an encoded frame body, in entry
/// order: `(offset in body, length)`. The index points at these spans of the
/// log instead of keeping a second copy of every entry.
///
/// # Errors
/// [`StoreError::Corrupt`] if `body` is not a well-formed encoding.
pub(crate) fn entry_spans(body: &[u8]) -> Result<Vec<(usize, usize)>, StoreError> {
    let bad = || StoreError::Corrupt("a log frame body does not parse".into());
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let k = varint(body, &mut at).ok_or_else(bad)?;
        if k >> 3 == 1 && k & 7 == 2 {
            let len = usize::try_from(varint(body, &mut at).ok_or_else(bad)?).map_err(|_| bad())?;
            let end = at
                .checked_add(len)
                .filter(|e| *e <= body.len())
                .ok_or_else(bad)?;
            let mut p = at;
            // An entry whose bytes are empty has no field 2 (never written,
            // but parsed consistently).
            let mut span = (end, 0);
            while p < end {
                let k = varint(body, &mut p).ok_or_else(bad)?;
                if k >> 3 == 2 && k & 7 == 2 {
                    let l = usize::try_from(varint(body, &mut p).ok_or_else(bad)?)
                        .map_err(|_| bad())?;
                    span = (p, l);
                    p = p.checked_add(l).filter(|e| *e <= end).ok_or_else(bad)?;
                } else {
                    skip(body, &mut p, k & 7).ok_or_else(bad)?;
                }
            }
            out.push(span);
            at = end;
        } else {
            skip(body, &mut at, k & 7).ok_or_else(bad)?;
        }
    }
    Ok(out)
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

fn skip(b: &[u8], at: &mut usize, wire: u64) -> Option<()> {
    let n = match wire {
        0 => {
            varint(b, at)?;
            0
        }
        1 => 8,
        2 => usize::try_from(varint(b, at)?).ok()?,
        5 => 4,
        _ => return None,
    };
    *at = at.checked_add(n).filter(|e| *e <= b.len())?;
    Some(())
}

#[cfg(test)]
mod span_tests {
    use super::*;
    use crate::store::{Batch, StoredEntry};

    #[test]
    fn spans_point_at_each_entrys_bytes() {
        let entry = |seq: u64, bytes: Vec<u8>| StoredEntry {
            seq,
            bytes,
            hash: [seq as u8; 32],
            nodes: vec![[9; 32]; seq as usize % 3],
            case_id: None,
            event_id: None,
        };
        let b = Batch {
            entries: vec![
                entry(1, vec![1; 300]),
                entry(2, b"two".to_vec()),
                entry(3, vec![7; 70_000]),
            ],
            ..Batch::default()
        };
        let body = encode(&b);
        let spans = entry_spans(&body).unwrap();
        assert_eq!(spans.len(), 3);
        for (e, (at, len)) in b.entries.iter().zip(spans) {
            assert_eq!(&body[at..at + len], e.bytes.as_slice());
        }
        assert!(entry_spans(&body[..body.len() - 1]).is_err());
    }
}
