//! The sled-backed [`JournalStore`]: a fsynced write-ahead log as the source
//! of truth, sled as the index rebuilt from it.
//!
//! # Why not sled alone
//! sled 0.34's `flush()` is not a durability barrier on Linux: it writes with
//! `pwrite` and then calls `sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER)`
//! (`pagecache/iobuf.rs`), which neither flushes the device's volatile cache
//! nor the file's metadata (sled#1452); only its 500 ms background flusher
//! and snapshot writes call `sync_all`. Crash testing found recovery gaps in
//! 0.34 (sled#1077), and sled is frozen. Calling `sync_data` on sled's `db`
//! file after `flush()` would fix the first point but still tie custody
//! evidence to sled's internal file layout and recovery code. So:
//!
//! # Design
//! - `<dir>/journal.wal` ([`crate::wal`]): one frame per group commit holding
//!   the whole [`Batch`] (entries, outbox changes, checkpoints, cosignatures),
//!   appended and `fdatasync`ed before [`JournalStore::commit`] returns. This
//!   is the only durability barrier on the append path: one fsync per group.
//! - Commits are pipelined: a commit holds the log lock for its write and
//!   fsync only, and queues its frame's index update before releasing it
//!   (so the queue is in log order). It then takes the apply lock and
//!   applies *every* queued update, unless a later commit already did
//!   (group apply). So the next commits' writes and fsyncs overlap this
//!   index update, and an index update that falls behind catches up several
//!   frames at once. The visible size (what [`JournalStore::size`] reports) moves only after
//!   the index update, so reads see durable data only. After any failed
//!   commit every later commit fails (the file state is unknown until the
//!   store is reopened and the log replayed).
//! - `<dir>/index/` (sled, one tree): what the reads need, written with
//!   plain sled inserts and removals *after* the frames are durable, never
//!   flushed on the append path (sled's background flusher writes it). After
//!   the frames' records it writes `m/head = size | wal_end` of the last
//!   one, the log offset the index holds everything through.
//! - Open: read `m/head`, replay every log frame after `wal_end` into sled
//!   (a torn final frame is cut first, see [`crate::wal`]). If the index is
//!   lost or damaged, delete `index/` and it is rebuilt from the log.
//!
//! # Crash consistency of the index
//! sled is a log-structured store: its writes get increasing log sequence
//! numbers and recovery restores a prefix of them (it stops at the first
//! missing or torn segment). The index is written in frame order, each
//! frame's records before the head record that names it, and only after the
//! frame is durable in our log. So whatever prefix sled recovers, a head
//! naming frame k implies every record of frames up to k, and the index is
//! never ahead of the log. Records of later frames may be partly there;
//! every write is idempotent ("set this key to this value", "remove this
//! key", "set slot s of this entry group", "add seq s to this case unless
//! it is there", see "Why groups and chunks" below), so replaying every
//! frame after the head, in order, brings them to exactly the committed
//! state. (Until 2026-12 each frame was one
//! atomic `apply_batch`, which relies on the same prefix recovery; it also
//! forced two extra device writes per commit, sled rolling its I/O buffer
//! before and after every batch, which the next `fdatasync` waited behind:
//! at 16 appenders that held durable appends to 0.6 of the raw sled loop,
//! see `BENCH.md`.) Readers may see records of a frame that is durable but
//! not yet visible (a seq above [`JournalStore::size`]); never one that is
//! not durable, and never a key naming a seq before that seq's entry
//! record (an apply writes entry records first). The SIGKILL crash test checks the event, case and outbox
//! indexes against the log after every kill.
//!
//! # Index key layout (one sled tree, one-byte prefixes, integers big-endian)
//! | key | value |
//! |---|---|
//! | `e` group:8 (= seq / 16) | the records of up to 16 consecutive entries, each `slot:1 len:2 record`, in slot order (slot = seq % 16); a record is hash:32, n:1, n interior node hashes:32n, case:0/16 (len-prefixed), event:0/16 (len-prefixed), log offset:8, length:4 of the entry bytes |
//! | `c` case:16 first:8 | 64 seqs:8 of entries about the case, ascending, the first being `first` (per-case index: a sealed chunk) |
//! | `c` case:16 `ff`×8 | up to 64 seqs:8 after those of the sealed chunks, ascending (per-case index: the open chunk) |
//! | `n` seq:8 | empty (entries about no case: witnessed checkpoints, capacity, quarantine) |
//! | `i` event:16 | seq:8 (event-id dedup index) |
//! | `o` seq:8 recipient | event:16 (outbox) |
//! | `r` request key | seq:8, value (request record, committed with its entry; `Journal::append_originated_for_request`) |
//! | `k` size:8 | checkpoint envelope |
//! | `w` size:8 witness | cosignature envelope |
//! | `m` `head` | size:8, wal_end:8 |
//! | `m` `version` | `3`, written with every head |
//!
//! Entry bytes are not copied into the index: the record points at them in
//! the log. The log is written once and never rewritten
//! before the end of its last valid frame, and the index only names frames
//! that were synced, so a pointer stays valid for the life of the journal;
//! reads are one positioned read of the log. Keeping a second copy in sled
//! doubled the disk used and, worse, sled 0.34 keeps per-page state in
//! memory that grows with its data: an agency with a million entries needed
//! about 290 MB resident (benchmark P5; index version 1).
//!
//! Why groups and chunks (index version 3): sled 0.34 splits a leaf page at
//! 16 *keys*, whatever their size, and keeps a page-table entry, its log
//! locations and (while cached) its decoded node in memory for every page.
//! One key per entry and one per (case, entry) made about 330,000 pages for
//! a million entries, most of an agency's resident memory after start-up.
//! Sixteen entry records per key and up to 64 seqs per case key cut the
//! keys per entry from three to about 1.1. Both are written by
//! read-modify-write under the apply lock (the only writer), with point
//! reads only, and each write is idempotent: "record of seq s is r"
//! replaces slot s % 16; "s is about case c" appends s to c's open chunk
//! unless s is not above its last seq (then it is there or in a sealed
//! chunk), sealing a full open chunk first. So a frame replayed after a
//! crash rewrites exactly what it wrote before.
//! An index of another version is deleted on open and rebuilt from the log.
//!
//! Merkle nodes live inside the entry record that completed them (node
//! `(l, j)` in entry `(j + 1) << l`), so the tree costs no extra keys and a
//! node read is one point lookup.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use waymark_types::{AgencyId, CaseId, EventId};

use crate::merkle::Hash;
use crate::store::{
    Batch, JournalStore, OutboxItem, RequestRecord, StoreError, StoredCheckpoint,
    StoredCosignature, StoredEntry,
};
use crate::wal::Wal;
use crate::wal_codec;

#[path = "sled_codec.rs"]
mod codec;
use codec::{agency, be, decode_entry, encode_entry, group, key};

/// Settings of the sled store.
#[derive(Debug, Clone)]
pub struct SledConfig {
    /// sled's page cache size in bytes (16 MiB by default). sled 0.34 holds
    /// a few times this once a read has walked many entries (measured with
    /// benchmark P5: an agency whose follower walked 300,000 entries peaked
    /// at 147 MB with 64 MiB, 101 MB with 16 MiB). The journal's hot reads
    /// (event-id dedup, a case's entries, the newest entries) fit easily.
    pub cache_capacity: u64,
    /// How often sled's own background flusher writes the index, in ms. Only
    /// affects how much log is replayed after a crash, never durability.
    pub index_flush_every_ms: u64,
}

impl Default for SledConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 16 << 20,
            index_flush_every_ms: 1000,
        }
    }
}

fn sled_err(step: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { step, source }
}

const HEAD: &[u8] = b"mhead";
const VERSION: &[u8] = b"mversion";
/// The index layout this code writes (see the module docs).
const INDEX_VERSION: &[u8] = b"3";

/// The sled store. See the module docs for the layout.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    /// A read-only handle on the log, for positioned reads of entry bytes.
    reader: std::fs::File,
    /// The log and the size it holds; held for a commit's durable write.
    wal: Mutex<(Wal, u64)>,
    /// Index updates of frames already durable in the log, in log order,
    /// not applied yet. Pushed under the log lock (so in log order), drained
    /// under `apply`.
    queued: Mutex<VecDeque<IndexUpdate>>,
    /// Held while applying index updates: whoever holds it applies every
    /// queued update.
    apply: Mutex<()>,
    /// The size applied to the index: what reads see.
    visible: AtomicU64,
    /// The log offset applied to the index through (frames without entries
    /// change no size, so this, not `visible`, tells whether a frame is
    /// applied).
    applied_end: AtomicU64,
    /// A commit failed; every later one fails until the store is reopened.
    poisoned: AtomicBool,
    dir: PathBuf,
}

impl SledStore {
    /// Opens or creates the store in `dir`, replaying the log into the index.
    ///
    /// # Errors
    /// I/O or sled failures, or [`StoreError::Corrupt`] if the log is damaged
    /// anywhere but its final frame or disagrees with the index.
    pub fn open(dir: &Path, config: &SledConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            step: "creating the journal directory",
            source,
        })?;
        let open_index = || {
            sled::Config::new()
                .path(dir.join("index"))
                .cache_capacity(config.cache_capacity)
                .flush_every_ms(Some(config.index_flush_every_ms))
                .open()
                .map_err(sled_err("opening the sled index"))
        };
        let mut db = open_index()?;
        let head = db.get(HEAD).map_err(sled_err("reading the index head"))?;
        let version = db
            .get(VERSION)
            .map_err(sled_err("reading the index version"))?;
        if head.is_some() && version.as_deref() != Some(INDEX_VERSION) {
            // An index of another layout: rebuilt from the log, the truth.
            drop(db);
            std::fs::remove_dir_all(dir.join("index")).map_err(|source| StoreError::Io {
                step: "removing an index of an older layout",
                source,
            })?;
            db = open_index()?;
        }
        let (size, wal_end) = match db.get(HEAD).map_err(sled_err("reading the index head"))? {
            Some(v) if v.len() == 16 => (be(&v[..8]), be(&v[8..])),
            Some(_) => return Err(StoreError::Corrupt("index head record is malformed".into())),
            None => (0, 0),
        };
        let wal_path = dir.join("journal.wal");
        let (wal, frames) = Wal::open(&wal_path, wal_end)?;
        let reader = std::fs::File::open(&wal_path).map_err(|source| StoreError::Io {
            step: "opening the log for reading",
            source,
        })?;
        let store = Self {
            reader,
            db,
            wal: Mutex::new((wal, size)),
            queued: Mutex::new(VecDeque::new()),
            apply: Mutex::new(()),
            visible: AtomicU64::new(size),
            applied_end: AtomicU64::new(wal_end),
            poisoned: AtomicBool::new(false),
            dir: dir.to_owned(),
        };
        let mut size = size;
        for frame in frames {
            let body = frame.body(&store.reader)?;
            let batch = wal_codec::decode(&body)?;
            size = check_continues(&batch, size)?;
            let update = index_update(&batch, size, frame.end, &body)?;
            store.apply(vec![update])?;
        }
        store.lock(&store.wal)?.1 = size;
        store.visible.store(size, Ordering::Release);
        store
            .applied_end
            .store(store.lock(&store.wal)?.0.end(), Ordering::Release);
        Ok(store)
    }

    /// The index record of entry `seq` (without its bytes) and where its
    /// bytes lie in the log.
    fn record(&self, seq: u64) -> Result<Option<(StoredEntry, u64, usize)>, StoreError> {
        let v = self
            .db
            .get(group_key(seq))
            .map_err(sled_err("reading an entry"))?;
        let Some(v) = v else { return Ok(None) };
        group::find(&v, slot(seq))
            .map_err(|()| StoreError::Corrupt(format!("index group of entry {seq} is malformed")))?
            .map(|r| decode_entry(seq, r))
            .transpose()
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of log written (the end of the last frame).
    #[cfg(feature = "bench")]
    pub(crate) fn log_len(&self) -> u64 {
        self.wal.lock().map_or(0, |w| w.0.end())
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> Result<MutexGuard<'a, T>, StoreError> {
        m.lock()
            .map_err(|_| StoreError::Corrupt("a commit panicked; reopen the store".into()))
    }

    fn check_poisoned(&self) -> Result<(), StoreError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(StoreError::Corrupt(
                "an earlier commit failed; reopen the store".into(),
            ));
        }
        Ok(())
    }

    /// Passes `r` through; if it is an error, poisons the store.
    fn or_poison<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if r.is_err() {
            self.poisoned.store(true, Ordering::Release);
        }
        r
    }

    /// Applies `updates` (consecutive frames, in log order) with plain sled
    /// writes, in order, the head record (`m/head`, `m/version`) of the last
    /// frame after everything else. Not one atomic sled batch: see "Crash
    /// consistency" in the module docs for why the order is enough.
    fn apply(&self, updates: Vec<IndexUpdate>) -> Result<(), StoreError> {
        let mut head = Vec::new();
        // Entry records first, so that a concurrent reader that finds a seq
        // through any other key (case, event, outbox) finds its record.
        // Records of consecutive seqs share a group: each group is read and
        // written once per call, not once per entry.
        let mut groups: Vec<(u64, Vec<u8>)> = Vec::new();
        for (seq, record) in updates.iter().flat_map(|u| &u.entries) {
            let g = seq / GROUP;
            if groups.last().is_none_or(|(last, _)| *last != g) {
                let v = self
                    .db
                    .get(group_key(*seq))
                    .map_err(sled_err("reading the index"))?;
                groups.push((g, v.map(|v| v.to_vec()).unwrap_or_default()));
            }
            if let Some((_, v)) = groups.last_mut() {
                group::set(v, slot(*seq), record).map_err(|()| {
                    StoreError::Corrupt(format!("index group of entry {seq} is malformed"))
                })?;
            }
        }
        for (g, v) in groups {
            self.put(group_key(g * GROUP), v)?;
        }
        for op in updates.into_iter().flat_map(|u| u.ops) {
            match op {
                Op::Put(k, v) if k.as_slice() == HEAD || k.as_slice() == VERSION => {
                    head.push((k, v));
                }
                Op::Put(k, v) => self.put(k, v)?,
                Op::Remove(k) => {
                    self.db.remove(k).map_err(sled_err("writing the index"))?;
                }
                // Case keys are read-modify-write, in seq order.
                Op::Case(case, seq) => self.index_case(&case, seq)?,
            }
        }
        // Later frames' head records overwrite earlier ones: the last wins.
        for (k, v) in head {
            self.put(k, v)?;
        }
        Ok(())
    }

    fn put(&self, k: Vec<u8>, v: Vec<u8>) -> Result<(), StoreError> {
        self.db
            .insert(k, v)
            .map(drop)
            .map_err(sled_err("writing the index"))
    }

    /// Adds `seq` to `case`'s seq list: to its open chunk (one point read,
    /// no scan on the append path) while that has room, else the open chunk
    /// is sealed under its first seq and a new one opened. A no-op for a
    /// seq not above the open chunk's last (a replayed frame: seqs are
    /// indexed in increasing order, and sled keeps a prefix of the writes).
    fn index_case(&self, case: &CaseId, seq: u64) -> Result<(), StoreError> {
        let open = key(b'c', case.as_bytes(), &OPEN_CHUNK);
        let current = self
            .db
            .get(&open)
            .map_err(sled_err("reading the case index"))?;
        let Some(v) = current else {
            return self.put(open, seq.to_be_bytes().to_vec());
        };
        let seqs = chunk_seqs(&v)?;
        let (Some(first), Some(last)) = (seqs.first(), seqs.last()) else {
            return Err(StoreError::Corrupt("case index chunk is empty".into()));
        };
        if seq <= *last {
            return Ok(());
        }
        if seqs.len() < CHUNK {
            let mut v = v.to_vec();
            v.extend_from_slice(&seq.to_be_bytes());
            return self.put(open, v);
        }
        // Sealed first, then reopened: a crash between the two leaves the
        // full open chunk, and the replay seals it again (same key, same
        // value) before reopening.
        self.put(key(b'c', case.as_bytes(), &first.to_be_bytes()), v.to_vec())?;
        self.put(open, seq.to_be_bytes().to_vec())
    }
}

/// The key suffix of a case's open chunk: after every sealed chunk's.
const OPEN_CHUNK: [u8; 8] = [0xff; 8];
/// Entry records per `e` key.
const GROUP: u64 = 16;
/// Seqs per `c` key at most.
const CHUNK: usize = 64;

fn group_key(seq: u64) -> Vec<u8> {
    key(b'e', &(seq / GROUP).to_be_bytes(), &[])
}

fn slot(seq: u64) -> u8 {
    // Lossless: below GROUP (16).
    (seq % GROUP) as u8
}

/// The seqs of a case chunk.
fn chunk_seqs(v: &[u8]) -> Result<Vec<u64>, StoreError> {
    if v.is_empty() || !v.len().is_multiple_of(8) || v.len() > 8 * CHUNK {
        return Err(StoreError::Corrupt("case index chunk is malformed".into()));
    }
    Ok(v.chunks_exact(8).map(be).collect())
}

/// One index write of a frame.
#[derive(Debug)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
    /// Entry `seq` is about the case.
    Case(CaseId, u64),
}

/// The index writes of one log frame, and the size it brings the journal to.
#[derive(Debug)]
struct IndexUpdate {
    size: u64,
    /// The end of its frame in the log.
    end: u64,
    /// The writes, in order.
    /// The index records of its entries: (seq, record).
    entries: Vec<(u64, Vec<u8>)>,
    ops: Vec<Op>,
}

/// The index update of `batch`, whose frame `body` ends the log at
/// `wal_end`.
fn index_update(
    batch: &Batch,
    size: u64,
    wal_end: u64,
    body: &[u8],
) -> Result<IndexUpdate, StoreError> {
    let body_start = wal_end - body.len() as u64;
    let spans = wal_codec::entry_spans(body)?;
    if spans.len() != batch.entries.len() {
        return Err(StoreError::Corrupt(
            "a log frame's entries and their byte spans disagree".into(),
        ));
    }
    let mut entries = Vec::with_capacity(batch.entries.len());
    let mut ops: Vec<Op> = Vec::with_capacity(3 * batch.entries.len() + 2);
    for (e, (at, len)) in batch.entries.iter().zip(spans) {
        if len != e.bytes.len() {
            return Err(StoreError::Corrupt(format!(
                "entry {} is {} bytes but its span in the log is {len}",
                e.seq,
                e.bytes.len()
            )));
        }
        entries.push((e.seq, encode_entry(e, body_start + at as u64)));
        match &e.case_id {
            Some(c) => ops.push(Op::Case(*c, e.seq)),
            None => ops.push(Op::Put(key(b'n', &e.seq.to_be_bytes(), &[]), Vec::new())),
        }
        if let Some(ev) = &e.event_id {
            ops.push(Op::Put(
                key(b'i', ev.as_bytes(), &[]),
                e.seq.to_be_bytes().to_vec(),
            ));
        }
    }
    let mut put = |k: Vec<u8>, v: &[u8]| ops.push(Op::Put(k, v.to_vec()));
    for o in &batch.outbox_add {
        put(
            key(b'o', &o.seq.to_be_bytes(), o.recipient.as_str().as_bytes()),
            o.event_id.as_bytes(),
        );
    }
    for c in &batch.checkpoints {
        put(key(b'k', &c.size.to_be_bytes(), &[]), &c.envelope);
    }
    for c in &batch.cosignatures {
        put(
            key(b'w', &c.size.to_be_bytes(), c.witness.as_str().as_bytes()),
            &c.envelope,
        );
    }
    for r in &batch.requests {
        let mut v = Vec::with_capacity(8 + r.value.len());
        v.extend_from_slice(&r.seq.to_be_bytes());
        v.extend_from_slice(&r.value);
        put(key(b'r', &r.key, &[]), &v);
    }
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&size.to_be_bytes());
    head[8..].copy_from_slice(&wal_end.to_be_bytes());
    put(HEAD.to_vec(), &head);
    put(VERSION.to_vec(), INDEX_VERSION);
    // Removals last: an item queued and removed in one frame ends removed.
    for (seq, r) in &batch.outbox_remove {
        ops.push(Op::Remove(key(
            b'o',
            &seq.to_be_bytes(),
            r.as_str().as_bytes(),
        )));
    }
    Ok(IndexUpdate {
        size,
        end: wal_end,
        entries,
        ops,
    })
}

fn check_continues(batch: &Batch, size: u64) -> Result<u64, StoreError> {
    let mut next = size + 1;
    for e in &batch.entries {
        if e.seq != next {
            return Err(StoreError::BadBatch(format!(
                "entry seq {} where {next} was expected",
                e.seq
            )));
        }
        next += 1;
    }
    Ok(next - 1)
}

impl JournalStore for SledStore {
    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        self.commit_pipelined(batch, &mut || {})
    }

    fn commit_pipelined(&self, batch: &Batch, durable: &mut dyn FnMut()) -> Result<(), StoreError> {
        let end = {
            let mut log = self.lock(&self.wal)?;
            self.check_poisoned()?;
            let size = check_continues(batch, log.1)?;
            let body = wal_codec::encode(batch);
            let end = self.or_poison(log.0.append(&body))?;
            log.1 = size;
            // Queued under the log lock: the queue is in log order.
            let update = self.or_poison(index_update(batch, size, end, &body))?;
            self.lock(&self.queued)?.push_back(update);
            end
        };
        // Durable: the next commit may write and sync while this one's index
        // update waits for, or takes, the apply lock.
        durable();
        let _apply = self.lock(&self.apply)?;
        if self.applied_end.load(Ordering::Acquire) >= end {
            // Applied by a commit that drained the queue after ours.
            return Ok(());
        }
        // An earlier update may have failed meanwhile; nothing may be
        // applied on top of the gap.
        self.check_poisoned()?;
        let updates: Vec<IndexUpdate> = self.lock(&self.queued)?.drain(..).collect();
        let Some((size, through)) = updates.last().map(|u| (u.size, u.end)) else {
            return Err(StoreError::Corrupt(
                "a commit's index update was neither queued nor applied".into(),
            ));
        };
        self.or_poison(self.apply(updates))?;
        self.visible.store(size, Ordering::Release);
        self.applied_end.store(through, Ordering::Release);
        Ok(())
    }

    fn size(&self) -> Result<u64, StoreError> {
        Ok(self.visible.load(Ordering::Acquire))
    }

    fn entry(&self, seq: u64) -> Result<Option<StoredEntry>, StoreError> {
        let Some((mut e, at, len)) = self.record(seq)? else {
            return Ok(None);
        };
        let mut bytes = vec![0u8; len];
        std::os::unix::fs::FileExt::read_exact_at(&self.reader, &mut bytes, at).map_err(
            |source| StoreError::Io {
                step: "reading an entry from the log",
                source,
            },
        )?;
        e.bytes = bytes;
        Ok(Some(e))
    }

    fn node(&self, level: u32, index: u64) -> Result<Hash, StoreError> {
        let missing = || StoreError::Corrupt(format!("Merkle node ({level}, {index}) is missing"));
        let seq = index
            .checked_add(1)
            .and_then(|i| i.checked_shl(level))
            .filter(|s| level < 64 && (s >> level) == index + 1)
            .ok_or_else(missing)?;
        // The hashes are in the index record: no read of the log.
        let (e, _, _) = self.record(seq)?.ok_or_else(missing)?;
        if level == 0 {
            return Ok(e.hash);
        }
        e.nodes.get(level as usize - 1).copied().ok_or_else(missing)
    }

    fn case_seqs(&self, case: &CaseId, after: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        let prefix = key(b'c', case.as_bytes(), &[]);
        let first = after.saturating_add(1);
        // The usual read is a catch-up from a recent seq: when the open
        // chunk starts at or before it, everything after it is there (the
        // sealed chunks hold only smaller seqs), so one point read answers.
        let open = self
            .db
            .get(key(b'c', case.as_bytes(), &OPEN_CHUNK))
            .map_err(sled_err("reading the case index"))?;
        match open {
            None => return Ok(Vec::new()),
            Some(v) => {
                let seqs = chunk_seqs(&v)?;
                if seqs.first().is_some_and(|s| *s <= first) {
                    return Ok(seqs
                        .into_iter()
                        .filter(|s| *s >= first)
                        .take(limit)
                        .collect());
                }
            }
        }
        let at = key(b'c', case.as_bytes(), &first.to_be_bytes());
        // From the chunk covering `first` (it may hold seqs past `after`).
        let start = match self.db.range(prefix.clone()..=at.clone()).next_back() {
            Some(kv) => kv.map_err(sled_err("reading the case index"))?.0.to_vec(),
            None => at,
        };
        let mut out = Vec::new();
        for kv in self.db.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv.map_err(sled_err("reading the case index"))?;
            if !k.starts_with(&prefix) {
                break;
            }
            // Ascending and without repeats: while a full open chunk is
            // being sealed, a reader can see it both sealed and still open.
            let from = out.last().map_or(first, |l: &u64| l + 1);
            let room = limit - out.len();
            out.extend(
                chunk_seqs(&v)?
                    .into_iter()
                    .filter(|s| *s >= from)
                    .take(room),
            );
        }
        Ok(out)
    }

    fn uncased_seqs(&self, after: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        let start = key(b'n', &after.saturating_add(1).to_be_bytes(), &[]);
        let mut out = Vec::new();
        for kv in self.db.range(start..b"o".to_vec()).take(limit) {
            let (k, _) = kv.map_err(sled_err("reading the index of entries without a case"))?;
            out.push(be(&k[1..9]));
        }
        Ok(out)
    }

    fn event_seq(&self, event: &EventId) -> Result<Option<u64>, StoreError> {
        let v = self
            .db
            .get(key(b'i', event.as_bytes(), &[]))
            .map_err(sled_err("reading the event index"))?;
        match v {
            Some(v) if v.len() == 8 => Ok(Some(be(&v))),
            Some(_) => Err(StoreError::Corrupt("event index value is malformed".into())),
            None => Ok(None),
        }
    }

    fn request_record(&self, k: &[u8]) -> Result<Option<RequestRecord>, StoreError> {
        let v = self
            .db
            .get(key(b'r', k, &[]))
            .map_err(sled_err("reading a request record"))?;
        match v {
            Some(v) if v.len() >= 8 => Ok(Some(RequestRecord {
                key: k.to_vec(),
                seq: be(&v[..8]),
                value: v[8..].to_vec(),
            })),
            Some(_) => Err(StoreError::Corrupt("request record is malformed".into())),
            None => Ok(None),
        }
    }

    fn outbox(&self, after: u64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let start = key(b'o', &after.saturating_add(1).to_be_bytes(), &[]);
        let mut out = Vec::new();
        for kv in self.db.range(start..b"p".to_vec()).take(limit) {
            let (k, v) = kv.map_err(sled_err("reading the outbox"))?;
            let ev: [u8; 16] = v
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("outbox value is malformed".into()))?;
            out.push(OutboxItem {
                seq: be(&k[1..9]),
                recipient: agency(&k[9..])?,
                event_id: EventId::from_uuid(uuid::Uuid::from_bytes(ev)),
            });
        }
        Ok(out)
    }

    fn outbox_contains(&self, seq: u64, recipient: &AgencyId) -> Result<bool, StoreError> {
        self.db
            .contains_key(key(b'o', &seq.to_be_bytes(), recipient.as_str().as_bytes()))
            .map_err(sled_err("reading the outbox"))
    }

    fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let mut out = Vec::new();
        for kv in self
            .db
            .range(key(b'k', &from.to_be_bytes(), &[])..b"l".to_vec())
            .take(limit)
        {
            let (k, v) = kv.map_err(sled_err("reading checkpoints"))?;
            out.push(StoredCheckpoint {
                size: be(&k[1..9]),
                envelope: v.to_vec(),
            });
        }
        Ok(out)
    }

    fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let last = self.db.range(b"k".to_vec()..b"l".to_vec()).next_back();
        let Some(kv) = last else { return Ok(None) };
        let (k, v) = kv.map_err(sled_err("reading checkpoints"))?;
        Ok(Some(StoredCheckpoint {
            size: be(&k[1..9]),
            envelope: v.to_vec(),
        }))
    }

    fn cosignatures(&self, size: u64) -> Result<Vec<StoredCosignature>, StoreError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(key(b'w', &size.to_be_bytes(), &[])) {
            let (k, v) = kv.map_err(sled_err("reading cosignatures"))?;
            out.push(StoredCosignature {
                size,
                witness: agency(&k[9..])?,
                envelope: v.to_vec(),
            });
        }
        Ok(out)
    }
}
