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

/// A group of entry records: `slot:1 len:2 record` items in slot order.
pub(super) mod group {
    /// The items of `v`: (slot, start, end of its record).
    fn items(v: &[u8]) -> Result<Vec<(u8, usize, usize)>, ()> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < v.len() {
            let head = v.get(at..at + 3).ok_or(())?;
            let slot = head[0];
            let len = usize::from(u16::from_be_bytes([head[1], head[2]]));
            let end = at + 3 + len;
            if end > v.len() || out.last().is_some_and(|(s, _, _)| *s >= slot) {
                return Err(());
            }
            out.push((slot, at + 3, end));
            at = end;
        }
        Ok(out)
    }

    /// The record in `slot`, if any; `Err` if the group is malformed.
    pub(in super::super) fn find(v: &[u8], slot: u8) -> Result<Option<&[u8]>, ()> {
        Ok(items(v)?
            .into_iter()
            .find(|(s, _, _)| *s == slot)
            .map(|(_, a, b)| &v[a..b]))
    }

    /// Sets the record in `slot` (replacing one already there); `Err` if
    /// the group is malformed or the record longer than 65,535 bytes.
    pub(in super::super) fn set(v: &mut Vec<u8>, slot: u8, record: &[u8]) -> Result<(), ()> {
        let len = u16::try_from(record.len()).map_err(|_| ())?;
        let items = items(v)?;
        let (from, to) = match items.iter().find(|(s, _, _)| *s >= slot) {
            Some((s, a, b)) if *s == slot => (a - 3, *b),
            Some((_, a, _)) => (a - 3, a - 3),
            None => (v.len(), v.len()),
        };
        let mut item = Vec::with_capacity(3 + record.len());
        item.push(slot);
        item.extend_from_slice(&len.to_be_bytes());
        item.extend_from_slice(record);
        v.splice(from..to, item);
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::{find, set};

        #[test]
        fn slots_are_set_in_any_order_replaced_and_found() {
            let mut v = Vec::new();
            set(&mut v, 3, b"three").unwrap();
            set(&mut v, 0, b"zero").unwrap();
            set(&mut v, 15, b"").unwrap();
            set(&mut v, 7, b"seven").unwrap();
            set(&mut v, 3, b"THREE!").unwrap();
            assert_eq!(find(&v, 0).unwrap(), Some(&b"zero"[..]));
            assert_eq!(find(&v, 3).unwrap(), Some(&b"THREE!"[..]));
            assert_eq!(find(&v, 7).unwrap(), Some(&b"seven"[..]));
            assert_eq!(find(&v, 15).unwrap(), Some(&b""[..]));
            assert_eq!(find(&v, 4).unwrap(), None);
            let again = v.clone();
            set(&mut v, 7, b"seven").unwrap();
            assert_eq!(v, again, "setting a slot to what it holds changes nothing");
        }

        #[test]
        fn malformed_groups_are_errors() {
            assert!(
                find(&[1, 0, 5, b'a'], 1).is_err(),
                "record runs past the end"
            );
            assert!(find(&[2, 0, 0, 1, 0, 0], 1).is_err(), "slots out of order");
            assert!(find(&[2, 0], 2).is_err(), "torn item header");
            let mut v = vec![1, 0, 9];
            assert!(set(&mut v, 1, b"x").is_err());
            assert!(set(&mut Vec::new(), 0, &vec![0; 70_000]).is_err());
        }
    }
}
