//! Writing the export file format of `journal.proto`.
//!
//! Layout: the 8 magic bytes `WMJRNL01`, then varint-length-delimited
//! `ExportRecord`s: the header, every entry in seq order with each checkpoint
//! (and its cosignatures, ordered by witness) right after the entry at which
//! it was signed, and the signed trailer. Streaming: memory does not depend on
//! the journal's length.
//!
//! The trailer ([`ExportTrailer`]) is signed by the exporting agency's key
//! (the journal's own signing key) and authenticates the rest: the header by
//! its SHA-256 (`header_hash`), the entries by the chain ending in
//! `last_entry_hash` and by `entry_count`, the checkpoints and cosignatures by
//! their own signatures and by `checkpoint_count` / `cosignature_count`.

use std::collections::VecDeque;
use std::io::Write;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::{AgencyKey, proto_from_timestamp, sign_envelope};
use waymark_proto::PAYLOAD_TYPE_EXPORT_TRAILER;
use waymark_proto::v1::{
    Envelope, ExportHeader, ExportRecord, ExportTrailer, PublicKey, export_record::Record,
};
use waymark_types::{AgencyKind, Timestamp};

use crate::error::{JournalError, store};
use crate::journal::Journal;
use crate::store::{JournalStore, StoreError, StoredCheckpoint};

/// The 8 bytes every export file starts with.
pub const MAGIC: &[u8; 8] = b"WMJRNL01";

/// Export format version written.
pub const FORMAT_VERSION: u32 = 1;

/// What the header says besides the journal itself.
#[derive(Debug, Clone)]
pub struct ExportMeta {
    /// The exporting agency's kind.
    pub agency_kind: AgencyKind,
    /// Every signing key the agency has used, with validity periods.
    pub keys: Vec<PublicKey>,
    /// When the export is made.
    pub exported_at: Timestamp,
}

/// One item of an export in order: a record, or (last) the trailer still to
/// be signed.
pub(crate) enum Item {
    Record(ExportRecord),
    Trailer(ExportTrailer),
}

/// The records of a journal in export order, read lazily from the store over
/// a fixed size (the journal size when it started).
pub(crate) struct Records<'a, S: JournalStore> {
    store: &'a S,
    header: Option<ExportHeader>,
    header_hash: Vec<u8>,
    size: u64,
    next_seq: u64,
    last_hash: [u8; 32],
    checkpoints: u64,
    cosignatures: u64,
    upcoming: VecDeque<StoredCheckpoint>,
    next_ckpt_from: u64,
    queue: VecDeque<Item>,
    done: bool,
}

fn rec(r: Record) -> Item {
    Item::Record(ExportRecord { record: Some(r) })
}

/// The trailer record: `trailer` signed by the exporting agency's `key`.
pub(crate) fn signed_trailer(key: &AgencyKey, trailer: &ExportTrailer) -> ExportRecord {
    ExportRecord {
        record: Some(Record::SignedTrailer(sign_envelope(
            key,
            PAYLOAD_TYPE_EXPORT_TRAILER,
            trailer.encode_to_vec(),
        ))),
    }
}

fn decode_env(bytes: &[u8]) -> Result<Envelope, JournalError> {
    Envelope::decode(bytes).map_err(|_| JournalError::Store {
        step: "decoding a stored envelope",
        source: StoreError::Corrupt("stored envelope does not decode".into()),
    })
}

impl<'a, S: JournalStore> Records<'a, S> {
    pub(crate) fn new(journal: &'a Journal<S>, meta: &ExportMeta) -> Result<Self, JournalError> {
        let size = journal.size()?;
        Ok(Records {
            store: journal.store(),
            header: Some(ExportHeader {
                format_version: FORMAT_VERSION,
                agency_id: journal.config().agency.to_string(),
                agency_kind: meta.agency_kind.as_str().to_owned(),
                keys: meta.keys.clone(),
                exported_at: Some(proto_from_timestamp(meta.exported_at)),
                first_seq: 1,
            }),
            header_hash: Vec::new(),
            size,
            next_seq: 1,
            last_hash: [0u8; 32],
            checkpoints: 0,
            cosignatures: 0,
            upcoming: VecDeque::new(),
            next_ckpt_from: 0,
            queue: VecDeque::new(),
            done: false,
        })
    }

    fn fill(&mut self) -> Result<(), JournalError> {
        if let Some(h) = self.header.take() {
            // prost's encoding is deterministic: these are the bytes written.
            self.header_hash = Sha256::digest(h.encode_to_vec()).to_vec();
            self.queue.push_back(rec(Record::Header(h)));
            return Ok(());
        }
        if self.next_seq > self.size {
            self.queue.push_back(Item::Trailer(ExportTrailer {
                entry_count: self.size,
                last_entry_hash: self.last_hash.to_vec(),
                checkpoint_count: self.checkpoints,
                cosignature_count: self.cosignatures,
                header_hash: std::mem::take(&mut self.header_hash),
            }));
            self.done = true;
            return Ok(());
        }
        let seq = self.next_seq;
        let e = self
            .store
            .entry(seq)
            .map_err(store("reading an entry to export"))?
            .ok_or_else(|| JournalError::Store {
                step: "reading an entry to export",
                source: StoreError::Corrupt(format!("entry {seq} is missing")),
            })?;
        self.last_hash = e.hash;
        self.queue.push_back(rec(Record::Entry(e.bytes)));
        if self.upcoming.is_empty() && self.next_ckpt_from <= seq {
            let page = self
                .store
                .checkpoints(seq, 256)
                .map_err(store("reading checkpoints to export"))?;
            self.next_ckpt_from = page.last().map_or(u64::MAX, |c| c.size + 1);
            self.upcoming
                .extend(page.into_iter().filter(|c| c.size <= self.size));
        }
        while self.upcoming.front().is_some_and(|c| c.size <= seq) {
            let Some(c) = self.upcoming.pop_front() else {
                break;
            };
            if c.size == seq {
                self.checkpoints += 1;
                self.queue
                    .push_back(rec(Record::Checkpoint(decode_env(&c.envelope)?)));
                for cs in self
                    .store
                    .cosignatures(c.size)
                    .map_err(store("reading cosignatures to export"))?
                {
                    self.cosignatures += 1;
                    self.queue
                        .push_back(rec(Record::Cosignature(decode_env(&cs.envelope)?)));
                }
            }
        }
        self.next_seq += 1;
        Ok(())
    }
}

impl<S: JournalStore> Iterator for Records<'_, S> {
    type Item = Result<Item, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.queue.is_empty()
            && !self.done
            && let Err(e) = self.fill()
        {
            self.done = true;
            return Some(Err(e));
        }
        self.queue.pop_front().map(Ok)
    }
}

/// Writes a full export of `journal` (entries 1..=size at the time of the
/// call) to `w`, ending with a trailer signed by the journal's signing key
/// (which `meta.keys` should list, valid at `meta.exported_at`, for the
/// export to verify). Returns the number of entries written.
///
/// # Errors
/// [`JournalError::NoExportKey`] (before anything is written) if the journal
/// was opened without a signing key; store read failures or
/// [`JournalError::ExportWrite`].
pub fn export<S: JournalStore, W: Write>(
    journal: &Journal<S>,
    mut w: W,
    meta: &ExportMeta,
) -> Result<u64, JournalError> {
    let key = journal.signer().ok_or(JournalError::NoExportKey)?;
    w.write_all(MAGIC).map_err(JournalError::ExportWrite)?;
    let mut entries = 0u64;
    let mut buf = Vec::new();
    for item in Records::new(journal, meta)? {
        let r = match item? {
            Item::Record(r) => r,
            Item::Trailer(t) => signed_trailer(key, &t),
        };
        if matches!(r.record, Some(Record::Entry(_))) {
            entries += 1;
        }
        buf.clear();
        r.encode_length_delimited(&mut buf)
            .map_err(|e| JournalError::ExportWrite(std::io::Error::other(e)))?;
        w.write_all(&buf).map_err(JournalError::ExportWrite)?;
    }
    w.flush().map_err(JournalError::ExportWrite)?;
    Ok(entries)
}
