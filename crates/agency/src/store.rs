//! The agency's own small store, apart from the journal: personal data, the
//! case index, the follower's cursor, and idempotency keys reserved by
//! earlier versions (read only: a request is now recorded by the journal in
//! the commit of its entry, `Journal::append_originated_for_request`).
//!
//! # Why a separate store
//! The journal is append-only evidence; nothing in it can ever be erased.
//! Personal data must be erasable: it is stored here only as ciphertext
//! under a per-case key kept in its own directory (`case_keys.rs`), so
//! erasure is key destruction, whatever sled's log still holds. It lives in
//! its own sled database at `<journal data_dir>/agency/`, never in the
//! journal.
//!
//! # Key layout (one sled tree each, keys are raw bytes)
//! | tree | key | value |
//! |---|---|---|
//! | `idem` | rpc name, `0x00`, idempotency key | JSON [`IdemRecord`]; written by versions before request records, now only read |
//! | `personal` | case id (16 bytes) | `PersonalData` encoding, ChaCha20-Poly1305 under the case's key (`case_keys.rs`), nonce first, case id as associated data |
//! | `received` | case id (16), event id (16), section index (4 BE) | a `PersonalData` encoding another agency sealed to this one, boxed the same way |
//! | `sealed_out` | event id (16), section index (4 BE) | case id (16), then the detached HPKE ciphertext this agency sent, boxed the same way; removed when the recipient's receipt is journaled |
//! | `erased` | case id (16 bytes) | JSON [`Erased`]: the tombstone; nothing personal of the case is stored or sent again |
//! | `cases` | case id (16 bytes) | first journal seq of the case, 8 bytes BE |
//! | `case_order` | first seq (8 bytes BE), case id (16) | empty; newest-first listing |
//! | `meta` | `follow` | follower cursor (journal seq, 8 bytes BE) |
//!
//! # Durability
//! sled 0.34's `flush()` ends with `sync_file_range`, which is not a
//! durability barrier (see the journal's `sled_store` docs, sled#1452). After
//! each flush that must be durable (personal data, erasure tombstones) this
//! module also calls `fdatasync` on sled's `db` file.
//! The case index and the cursor are rebuilt from the journal by the
//! follower, so they are flushed lazily.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use waymark_types::{CaseId, EventId};

use crate::case_keys::CaseKeys;

/// What an idempotency key was first used for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdemRecord {
    /// The event the first call recorded (or reserved).
    pub(crate) event_id: String,
    /// SHA-256 (hex) of the first request's encoding; a different request
    /// under the same key is refused.
    pub(crate) request_hash: String,
    /// Extra results to replay (withdrawal: the notified agencies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) extra: Vec<String>,
}

/// A failure of the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("agency store: {step}")]
    Sled {
        /// What the store was doing.
        step: &'static str,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// Syncing the database file failed.
    #[error("agency store: syncing {path}")]
    Sync {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A stored value does not decode.
    #[error("agency store: corrupt value in {0}")]
    Corrupt(&'static str),
    /// A per-case key could not be made, read or destroyed.
    #[error("agency store: per-case key")]
    CaseKey(#[source] crate::case_keys::CaseKeyError),
}

fn sled_err(step: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { step, source }
}

/// The tombstone of an erased case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Erased {
    /// Whether any personal data of the case was held when it was erased.
    pub(crate) held_personal_data: bool,
}

/// The store.
#[derive(Debug, Clone)]
pub(crate) struct LocalStore {
    dir: PathBuf,
    db: sled::Db,
    idem: sled::Tree,
    personal: sled::Tree,
    received: sled::Tree,
    sealed_out: sled::Tree,
    erased: sled::Tree,
    cases: sled::Tree,
    order: sled::Tree,
    meta: sled::Tree,
    keys: CaseKeys,
}

impl LocalStore {
    /// Opens (or creates) the store in `dir`, with the per-case keys in
    /// `keys` (a directory of its own).
    pub(crate) fn open(dir: &Path, keys: &Path) -> Result<Self, StoreError> {
        let keys = CaseKeys::open(keys).map_err(StoreError::CaseKey)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(16 << 20)
            .open()
            .map_err(sled_err("opening"))?;
        let tree = |n: &'static str| db.open_tree(n).map_err(sled_err("opening a tree"));
        Ok(Self {
            dir: dir.to_owned(),
            idem: tree("idem")?,
            personal: tree("personal")?,
            received: tree("received")?,
            sealed_out: tree("sealed_out")?,
            erased: tree("erased")?,
            cases: tree("cases")?,
            order: tree("case_order")?,
            meta: tree("meta")?,
            keys,
            db,
        })
    }

    /// Flushes and then fdatasyncs sled's data file.
    fn durable(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(sled_err("flushing"))?;
        let path = self.dir.join("db");
        std::fs::File::open(&path)
            .and_then(|f| f.sync_data())
            .map_err(|source| StoreError::Sync { path, source })
    }

    /// The key of a request record: the RPC, a NUL, the client's key.
    pub(crate) fn idem_key(rpc: &str, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(rpc.len() + 1 + key.len());
        k.extend_from_slice(rpc.as_bytes());
        k.push(0);
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The reservation of `key` for `rpc` made by a version before request
    /// records moved into the journal (they were reserved here, durably,
    /// before the event was journaled). Only read: new requests are
    /// recorded with their journal entry.
    pub(crate) fn legacy_idem(
        &self,
        rpc: &str,
        key: &str,
    ) -> Result<Option<IdemRecord>, StoreError> {
        match self
            .idem
            .get(Self::idem_key(rpc, key))
            .map_err(sled_err("reading an idempotency key"))?
        {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|_| StoreError::Corrupt("idem")),
            None => Ok(None),
        }
    }

    /// Stores personal data of `case` unless some is stored already:
    /// encrypted under the case's key (made durably first if needed).
    /// Nothing is stored for an erased case.
    pub(crate) fn put_personal_once(&self, case: &CaseId, bytes: &[u8]) -> Result<(), StoreError> {
        if self.erased(case)?.is_some() {
            return Ok(());
        }
        if self
            .personal
            .contains_key(case.as_bytes())
            .map_err(sled_err("reading personal data"))?
        {
            return Ok(());
        }
        let boxed = self
            .keys
            .get_or_create(case)
            .map_err(StoreError::CaseKey)?
            .encrypt(case.as_bytes(), bytes)
            .map_err(|_| StoreError::Corrupt("personal"))?;
        let r = self
            .personal
            .compare_and_swap(case.as_bytes(), None as Option<&[u8]>, Some(boxed))
            .map_err(sled_err("storing personal data"))?;
        if r.is_ok() {
            self.durable()?;
        }
        Ok(())
    }

    /// The personal data stored for `case`, decrypted: what this agency
    /// recorded, then what it received in event order (each a
    /// `PersonalData` encoding; concatenated encodings merge). `None` if there
    /// is none or its key was destroyed (erased).
    pub(crate) fn personal(&self, case: &CaseId) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        let own = self
            .personal
            .get(case.as_bytes())
            .map_err(sled_err("reading personal data"))?;
        let mut boxed: Vec<Vec<u8>> = own.into_iter().map(|v| v.to_vec()).collect();
        for r in self.received.scan_prefix(case.as_bytes()) {
            let (_, v) = r.map_err(sled_err("reading received personal data"))?;
            boxed.push(v.to_vec());
        }
        if boxed.is_empty() {
            return Ok(None);
        }
        let Some(key) = self.keys.get(case).map_err(StoreError::CaseKey)? else {
            return Ok(None);
        };
        boxed
            .iter()
            .map(|b| {
                key.decrypt(case.as_bytes(), b)
                    .map_err(|_| StoreError::Corrupt("personal"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn section_key(prefix: &[u8], event: &EventId, index: usize) -> Vec<u8> {
        let mut k = Vec::with_capacity(prefix.len() + 20);
        k.extend_from_slice(prefix);
        k.extend_from_slice(event.as_bytes());
        k.extend_from_slice(&u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes());
        k
    }

    /// Keeps personal data of `case` that another agency sealed to this one
    /// (section `index` of `event`), under the case's key; durable before it
    /// returns, idempotent. Returns false (and keeps nothing) if the case
    /// was erased here.
    pub(crate) fn put_received(
        &self,
        case: &CaseId,
        event: &EventId,
        index: usize,
        plaintext: &[u8],
    ) -> Result<bool, StoreError> {
        if self.erased(case)?.is_some() {
            return Ok(false);
        }
        let boxed = self
            .keys
            .get_or_create(case)
            .map_err(StoreError::CaseKey)?
            .encrypt(case.as_bytes(), plaintext)
            .map_err(|_| StoreError::Corrupt("received"))?;
        self.received
            .insert(Self::section_key(case.as_bytes(), event, index), boxed)
            .map_err(sled_err("storing received personal data"))?;
        self.durable()?;
        Ok(true)
    }

    /// Keeps the detached ciphertext of section `index` of `event` (about
    /// `case`) this agency is sending, under the case's key, until the
    /// recipient's receipt; durable before it returns.
    pub(crate) fn put_sealed_out(
        &self,
        case: &CaseId,
        event: &EventId,
        index: usize,
        ciphertext: &[u8],
    ) -> Result<(), StoreError> {
        let boxed = self
            .keys
            .get_or_create(case)
            .map_err(StoreError::CaseKey)?
            .encrypt(case.as_bytes(), ciphertext)
            .map_err(|_| StoreError::Corrupt("sealed_out"))?;
        let mut v = case.as_bytes().to_vec();
        v.extend_from_slice(&boxed);
        self.sealed_out
            .insert(Self::section_key(&[], event, index), v)
            .map_err(sled_err("storing sealed data to send"))?;
        self.durable()
    }

    /// The detached ciphertexts of `event`'s first `n` sections, or `None`
    /// when any is gone (receipted and removed, or the case erased).
    pub(crate) fn sealed_out(
        &self,
        event: &EventId,
        n: usize,
    ) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let Some(v) = self
                .sealed_out
                .get(Self::section_key(&[], event, i))
                .map_err(sled_err("reading sealed data to send"))?
            else {
                return Ok(None);
            };
            let (case, boxed) = v.split_at(16.min(v.len()));
            let case = uuid::Uuid::from_slice(case)
                .map(CaseId::from_uuid)
                .map_err(|_| StoreError::Corrupt("sealed_out"))?;
            let Some(key) = self.keys.get(&case).map_err(StoreError::CaseKey)? else {
                return Ok(None);
            };
            out.push(
                key.decrypt(case.as_bytes(), boxed)
                    .map_err(|_| StoreError::Corrupt("sealed_out"))?,
            );
        }
        Ok(Some(out))
    }

    /// Forgets the detached ciphertexts of `event` (its receipt arrived).
    pub(crate) fn forget_sealed_out(&self, event: &EventId) -> Result<(), StoreError> {
        for r in self.sealed_out.scan_prefix(event.as_bytes()) {
            let (k, _) = r.map_err(sled_err("reading sealed data to send"))?;
            self.sealed_out
                .remove(k)
                .map_err(sled_err("removing sealed data sent"))?;
        }
        Ok(())
    }

    /// The tombstone of `case`, if it was erased here.
    pub(crate) fn erased(&self, case: &CaseId) -> Result<Option<Erased>, StoreError> {
        self.erased
            .get(case.as_bytes())
            .map_err(sled_err("reading erasures"))?
            .map(|v| serde_json::from_slice(&v).map_err(|_| StoreError::Corrupt("erased")))
            .transpose()
    }

    /// Erases everything personal of `case` held here: writes the tombstone
    /// (durably, first: from then on nothing personal of the case is stored
    /// or sent), destroys the case's key (the erasure itself: every copy of
    /// every ciphertext under it, in sled's old segments too, becomes
    /// noise), then removes the ciphertexts. Idempotent: a second call
    /// returns the first tombstone and finishes any step a crash cut short.
    pub(crate) fn erase(&self, case: &CaseId) -> Result<Erased, StoreError> {
        let tomb = match self.erased(case)? {
            Some(t) => t,
            None => {
                let held = self
                    .personal
                    .contains_key(case.as_bytes())
                    .map_err(sled_err("reading personal data"))?
                    || self.received.scan_prefix(case.as_bytes()).next().is_some()
                    || self.keys.get(case).map_err(StoreError::CaseKey)?.is_some();
                let t = Erased {
                    held_personal_data: held,
                };
                let v = serde_json::to_vec(&t).map_err(|_| StoreError::Corrupt("erased"))?;
                self.erased
                    .insert(case.as_bytes(), v)
                    .map_err(sled_err("writing an erasure"))?;
                self.durable()?;
                t
            }
        };
        self.keys.destroy(case).map_err(StoreError::CaseKey)?;
        self.personal
            .remove(case.as_bytes())
            .map_err(sled_err("removing erased personal data"))?;
        for r in self.received.scan_prefix(case.as_bytes()) {
            let (k, _) = r.map_err(sled_err("reading received personal data"))?;
            self.received
                .remove(k)
                .map_err(sled_err("removing erased personal data"))?;
        }
        for r in self.sealed_out.iter() {
            let (k, v) = r.map_err(sled_err("reading sealed data to send"))?;
            if v.get(..16) == Some(case.as_bytes().as_slice()) {
                self.sealed_out
                    .remove(k)
                    .map_err(sled_err("removing erased sealed data"))?;
            }
        }
        self.durable()?;
        Ok(tomb)
    }

    /// Notes that `case` has an entry at `seq` (the first one sticks).
    pub(crate) fn index_case(&self, case: &CaseId, seq: u64) -> Result<(), StoreError> {
        let r = self
            .cases
            .compare_and_swap(
                case.as_bytes(),
                None as Option<&[u8]>,
                Some(&seq.to_be_bytes()[..]),
            )
            .map_err(sled_err("indexing a case"))?;
        if r.is_ok() {
            let mut k = seq.to_be_bytes().to_vec();
            k.extend_from_slice(case.as_bytes());
            self.order
                .insert(k, &[][..])
                .map_err(sled_err("indexing a case"))?;
        }
        Ok(())
    }

    /// Up to `limit` cases whose first seq is below `before`, newest first,
    /// with their first seqs.
    pub(crate) fn cases_before(
        &self,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, CaseId)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.order.range(..before.to_be_bytes().to_vec()).rev() {
            let (k, _) = kv.map_err(sled_err("listing cases"))?;
            if k.len() != 24 {
                return Err(StoreError::Corrupt("case_order"));
            }
            let seq = u64::from_be_bytes(
                k[..8]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("case_order"))?,
            );
            let id: [u8; 16] = k[8..]
                .try_into()
                .map_err(|_| StoreError::Corrupt("case_order"))?;
            out.push((seq, CaseId::from_uuid(uuid::Uuid::from_bytes(id))));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The follower's cursor.
    pub(crate) fn cursor(&self) -> Result<u64, StoreError> {
        match self
            .meta
            .get(b"follow")
            .map_err(sled_err("reading the cursor"))?
        {
            None => Ok(0),
            Some(v) => Ok(u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("meta"))?,
            )),
        }
    }

    /// Moves the follower's cursor (not flushed: the follower's work is
    /// idempotent, so redoing some after a crash is harmless).
    pub(crate) fn set_cursor(&self, seq: u64) -> Result<(), StoreError> {
        self.meta
            .insert(b"follow", &seq.to_be_bytes()[..])
            .map_err(sled_err("writing the cursor"))?;
        Ok(())
    }
}

/// A UUIDv7-shaped event id derived from `base` (its 48-bit time) and
/// `parts`, so a retried step finds the event it already journaled (the bus
/// derives receipt ids the same way).
pub(crate) fn derived_id(base: &EventId, domain: &str, parts: &[&[u8]]) -> EventId {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new()
        .chain_update(domain.as_bytes())
        .chain_update(base.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let h = h.finalize();
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&base.as_bytes()[..6]);
    b[6..].copy_from_slice(&h[..10]);
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    EventId::from_uuid(uuid::Uuid::from_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_reservation_is_read_per_rpc_and_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("wm-agency-store-{}", EventId::new()));
        let s = LocalStore::open(&dir, &dir.with_extension("keys")).unwrap();
        let a = IdemRecord {
            event_id: "a".into(),
            request_hash: "h".into(),
            extra: vec![],
        };
        // As the versions before request records wrote them.
        s.idem
            .insert(
                LocalStore::idem_key("OpenCase", "k"),
                serde_json::to_vec(&a).unwrap(),
            )
            .unwrap();
        s.durable().unwrap();
        assert_eq!(s.legacy_idem("OpenCase", "k").unwrap(), Some(a.clone()));
        assert_eq!(
            s.legacy_idem("CloseCase", "k").unwrap(),
            None,
            "scoped per rpc"
        );
        drop(s);
        let s = LocalStore::open(&dir, &dir.with_extension("keys")).unwrap();
        assert_eq!(s.legacy_idem("OpenCase", "k").unwrap(), Some(a));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn cases_list_newest_first() {
        let dir = std::env::temp_dir().join(format!("wm-agency-cases-{}", EventId::new()));
        let s = LocalStore::open(&dir, &dir.with_extension("keys")).unwrap();
        let (c1, c2) = (CaseId::new(), CaseId::new());
        s.index_case(&c1, 1).unwrap();
        s.index_case(&c2, 5).unwrap();
        s.index_case(&c1, 9).unwrap();
        let all = s.cases_before(u64::MAX, 10).unwrap();
        assert_eq!(all, vec![(5, c2), (1, c1)]);
        assert_eq!(s.cases_before(5, 10).unwrap(), vec![(1, c1)]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn derived_ids_are_v7_and_stable() {
        let base = EventId::new();
        let a = derived_id(&base, "x", &[b"shelter"]);
        assert_eq!(a, derived_id(&base, "x", &[b"shelter"]));
        assert_ne!(a, derived_id(&base, "x", &[b"ngo"]));
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(EventId::parse(&a.to_string()).is_ok());
    }

    /// Every file under `dir` holding `needle`.
    fn files_with(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else if std::fs::read(&p)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
                {
                    out.push(p);
                }
            }
        }
        out
    }

    #[test]
    fn personal_data_is_ciphertext_at_rest_and_erased_with_its_key() {
        let root = tempfile::tempdir().unwrap();
        let (dir, keys) = (root.path().join("agency"), root.path().join("case-keys"));
        let canary = format!("Canary-{}", EventId::new());
        let (case, other) = (CaseId::new(), CaseId::new());
        let (ev, out) = (EventId::new(), EventId::new());
        let s = LocalStore::open(&dir, &keys).unwrap();
        s.put_personal_once(&case, canary.as_bytes()).unwrap();
        assert!(s.put_received(&case, &ev, 0, b"received-part").unwrap());
        assert!(
            s.put_received(&case, &ev, 0, b"received-part").unwrap(),
            "idempotent"
        );
        s.put_sealed_out(&case, &out, 0, b"sealed-for-them")
            .unwrap();
        s.put_personal_once(&other, b"someone else").unwrap();
        let mine = |s: &LocalStore| s.personal(&case).unwrap();
        assert_eq!(
            mine(&s).unwrap(),
            vec![canary.as_bytes().to_vec(), b"received-part".to_vec()]
        );
        assert_eq!(
            s.sealed_out(&out, 1).unwrap().unwrap(),
            vec![b"sealed-for-them".to_vec()]
        );
        assert_eq!(s.sealed_out(&out, 2).unwrap(), None, "a missing section");
        drop(s);
        // The scan finds clear text when there is some (positive control).
        std::fs::write(root.path().join("control"), &canary).unwrap();
        assert_eq!(files_with(root.path(), canary.as_bytes()).len(), 1);
        std::fs::remove_file(root.path().join("control")).unwrap();
        for needle in [canary.as_bytes(), b"received-part", b"sealed-for-them"] {
            assert!(files_with(root.path(), needle).is_empty());
        }

        let s = LocalStore::open(&dir, &keys).unwrap();
        assert_eq!(mine(&s).unwrap().len(), 2);
        assert_eq!(s.erased(&case).unwrap(), None);
        let tomb = s.erase(&case).unwrap();
        assert!(tomb.held_personal_data);
        assert_eq!(mine(&s), None);
        assert_eq!(s.sealed_out(&out, 1).unwrap(), None);
        assert_eq!(
            s.personal(&other).unwrap().unwrap(),
            vec![b"someone else".to_vec()]
        );
        assert_eq!(s.erase(&case).unwrap(), tomb, "idempotent");
        // Nothing personal of an erased case is stored again.
        s.put_personal_once(&case, b"again").unwrap();
        assert!(!s.put_received(&case, &EventId::new(), 0, b"again").unwrap());
        assert_eq!(mine(&s), None);
        drop(s);
        let s = LocalStore::open(&dir, &keys).unwrap();
        assert_eq!(mine(&s), None, "erased across restarts");
        assert_eq!(s.erased(&case).unwrap(), Some(tomb));
        assert!(files_with(root.path(), canary.as_bytes()).is_empty());
        // A case that never held personal data is erased too (tombstone).
        assert!(!s.erase(&CaseId::new()).unwrap().held_personal_data);
    }
}
