//! Writing the export file format of `journal.proto`.
//!
//! Layout: the 8 magic bytes `WMJRNL01`, then varint-length-delimited
//! `ExportRecord`s: the header, every entry in seq order with each checkpoint
//! (and its cosignatures) right after the entry at which it was signed, and
//! the trailer. Streaming: memory does not depend on the journal's length.

use std::collections::VecDeque;
use std::io::Write;

use prost::Message;
use waymark_crypto::proto_from_timestamp;
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

/// The records of a journal in export order, read lazily from the store over
/// a fixed size (the journal size when it started).
pub(crate) struct Records<'a, S: JournalStore> {
    store: &'a S,
    header: Option<ExportHeader>,
    size: u64,
    next_seq: u64,
    last_hash: [u8; 32],
    upcoming: VecDeque<StoredCheckpoint>,
    next_ckpt_from: u64,
    queue: VecDeque<ExportRecord>,
    done: bool,
}

fn rec(r: Record) -> ExportRecord {
    ExportRecord { record: Some(r) }
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
            size,
            next_seq: 1,
            last_hash: [0u8; 32],
            upcoming: VecDeque::new(),
            next_ckpt_from: 0,
            queue: VecDeque::new(),
            done: false,
        })
    }

    fn fill(&mut self) -> Result<(), JournalError> {
        if let Some(h) = self.header.take() {
            self.queue.push_back(rec(Record::Header(h)));
            return Ok(());
        }
        if self.next_seq > self.size {
            self.queue.push_back(rec(Record::Trailer(ExportTrailer {
                entry_count: self.size,
                last_entry_hash: self.last_hash.to_vec(),
            })));
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
                self.queue
                    .push_back(rec(Record::Checkpoint(decode_env(&c.envelope)?)));
                for cs in self
                    .store
                    .cosignatures(c.size)
                    .map_err(store("reading cosignatures to export"))?
                {
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
    type Item = Result<ExportRecord, JournalError>;

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
/// call) to `w`. Returns the number of entries written.
///
/// # Errors
/// Store read failures or [`JournalError::ExportWrite`].
pub fn export<S: JournalStore, W: Write>(
    journal: &Journal<S>,
    mut w: W,
    meta: &ExportMeta,
) -> Result<u64, JournalError> {
    w.write_all(MAGIC).map_err(JournalError::ExportWrite)?;
    let mut entries = 0u64;
    let mut buf = Vec::new();
    for r in Records::new(journal, meta)? {
        let r = r?;
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
