//! Byte layout of the sled index records and keys (see `sled_store.rs`).

use waymark_types::{AgencyId, CaseId, EventId};

use crate::merkle::Hash;
use crate::store::{StoreError, StoredEntry};

pub(super) fn be(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

pub(super) fn key(prefix: u8, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + a.len() + b.len());
    k.push(prefix);
    k.extend_from_slice(a);
    k.extend_from_slice(b);
    k
}

pub(super) fn encode_entry(e: &StoredEntry) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + 1 + 32 * e.nodes.len() + 34 + e.bytes.len());
    v.extend_from_slice(&e.hash);
    v.push(u8::try_from(e.nodes.len()).unwrap_or(u8::MAX));
    for n in &e.nodes {
        v.extend_from_slice(n);
    }
    for id in [
        e.case_id.as_ref().map(CaseId::as_bytes),
        e.event_id.as_ref().map(EventId::as_bytes),
    ] {
        match id {
            Some(b) => {
                v.push(16);
                v.extend_from_slice(b);
            }
            None => v.push(0),
        }
    }
    v.extend_from_slice(&e.bytes);
    v
}

pub(super) fn decode_entry(seq: u64, v: &[u8]) -> Result<StoredEntry, StoreError> {
    let bad = || StoreError::Corrupt(format!("index record of entry {seq} is malformed"));
    let mut r = Reader(v);
    let hash: Hash = r.take(32).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    let n = r.take(1).ok_or_else(bad)?[0] as usize;
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(r.take(32).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
    }
    let mut ids = [None, None];
    for id in &mut ids {
        let len = r.take(1).ok_or_else(bad)?[0] as usize;
        if len != 0 {
            let b: [u8; 16] = r.take(len).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
            *id = Some(uuid::Uuid::from_bytes(b));
        }
    }
    Ok(StoredEntry {
        seq,
        bytes: r.0.to_vec(),
        hash,
        nodes,
        case_id: ids[0].map(CaseId::from_uuid),
        event_id: ids[1].map(EventId::from_uuid),
    })
}

pub(super) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
}

pub(super) fn agency(b: &[u8]) -> Result<AgencyId, StoreError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| AgencyId::new(s).ok())
        .ok_or_else(|| StoreError::Corrupt("malformed agency id in an index key".into()))
}
