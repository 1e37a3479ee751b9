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

/// The index record of `e`, whose bytes lie at `wal_offset` in the log.
pub(super) fn encode_entry(e: &StoredEntry, wal_offset: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + 1 + 32 * e.nodes.len() + 34 + 12);
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
    v.extend_from_slice(&wal_offset.to_be_bytes());
    v.extend_from_slice(
        &u32::try_from(e.bytes.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    v
}

/// An index record decoded: the entry without its bytes, and where its
/// bytes lie in the log (offset, length).
pub(super) fn decode_entry(seq: u64, v: &[u8]) -> Result<(StoredEntry, u64, usize), StoreError> {
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
    let at = be(r.take(8).ok_or_else(bad)?);
    let len: [u8; 4] = r.take(4).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    if !r.0.is_empty() {
        return Err(bad());
    }
    Ok((
        StoredEntry {
            seq,
            bytes: Vec::new(),
            hash,
            nodes,
            case_id: ids[0].map(CaseId::from_uuid),
            event_id: ids[1].map(EventId::from_uuid),
        },
        at,
        u32::from_be_bytes(len) as usize,
    ))
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
