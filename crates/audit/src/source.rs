//! Export files: discovery, headers, and a streaming record reader. Exports
//! fetched from endpoints are spooled to files first (see
//! [`crate::endpoint`]), so everything below reads files.
//!
//! The journal crate's verifier checks every byte of an export; this reader
//! only walks the records again to give the audit their content (entries,
//! checkpoints, cosignatures), one at a time, so memory does not grow with
//! the file. It trusts nothing it reads: a journal whose verification failed
//! is excluded from the cross-journal analysis.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;
use waymark_journal::MAGIC;
use waymark_proto::v1::{
    Envelope, ExportHeader, ExportRecord, JournalEntry, export_record::Record,
};

use crate::AuditError;

/// Largest record read (as the journal crate's verifier).
const MAX_RECORD: u64 = 16 << 20;

/// One export file found in the audited directory, or fetched from an
/// endpoint and spooled to a file.
#[derive(Debug, Clone)]
pub struct ExportFile {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its header, if the file starts with one.
    pub header: Option<ExportHeader>,
    /// The endpoint URL it was fetched from, if it was.
    pub endpoint: Option<String>,
}

impl ExportFile {
    /// Reads `path`'s size and header.
    ///
    /// # Errors
    /// [`AuditError::Io`] if the file's size cannot be read.
    pub fn read(path: PathBuf) -> Result<Self, AuditError> {
        let bytes = std::fs::metadata(&path)
            .map_err(|e| AuditError::Io {
                path: path.clone(),
                source: e,
            })?
            .len();
        let header = open_records(&path, None)
            .ok()
            .and_then(|mut r| match r.next_record() {
                Ok(Some(Record::Header(h))) => Some(h),
                _ => None,
            });
        Ok(Self {
            path,
            bytes,
            header,
            endpoint: None,
        })
    }

    /// Where it came from, for messages: the endpoint URL or the path.
    pub fn origin(&self) -> String {
        match &self.endpoint {
            Some(url) => url.clone(),
            None => self.path.display().to_string(),
        }
    }
}

/// Lists the `*.wmj` files of `dir` in name order and reads their headers.
///
/// # Errors
/// [`AuditError::Io`] if the directory or a file cannot be read.
pub fn discover(dir: &Path) -> Result<Vec<ExportFile>, AuditError> {
    let io = |e| AuditError::Io {
        path: dir.to_owned(),
        source: e,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wmj") && p.is_file())
        .collect();
    paths.sort();
    paths.into_iter().map(ExportFile::read).collect()
}

/// Counts bytes read, for the progress bar.
pub(crate) struct Counting<R> {
    inner: R,
    counter: Option<Arc<AtomicU64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(c) = &self.counter {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// Opens `path` as a stream of records (after the magic).
///
/// # Errors
/// The file cannot be opened or does not start with the magic.
pub(crate) fn open_records(
    path: &Path,
    counter: Option<Arc<AtomicU64>>,
) -> std::io::Result<Records<Counting<BufReader<File>>>> {
    let mut r = Counting {
        inner: BufReader::with_capacity(1 << 16, File::open(path)?),
        counter,
    };
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(std::io::Error::other("bad magic"));
    }
    Ok(Records { r, index: 0 })
}

/// Export records read one at a time.
pub(crate) struct Records<R> {
    r: R,
    /// Index of the next record (0 = header).
    pub(crate) index: u64,
}

impl<R: Read> Records<R> {
    /// The next record; `None` at the end of the file or on a malformed one
    /// (the verifier reports those precisely).
    pub(crate) fn next_record(&mut self) -> Result<Option<Record>, ()> {
        let mut len = 0u64;
        for i in 0..10 {
            let mut b = [0u8; 1];
            match self.r.read(&mut b) {
                Ok(0) if i == 0 => return Ok(None),
                Ok(1) => {}
                _ => return Err(()),
            }
            len |= u64::from(b[0] & 0x7f) << (7 * i);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        if len > MAX_RECORD {
            return Err(());
        }
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| ())?];
        self.r.read_exact(&mut buf).map_err(|_| ())?;
        let rec = ExportRecord::decode(buf.as_slice()).map_err(|_| ())?;
        self.index += 1;
        Ok(rec.record)
    }
}

/// An entry as the analysis sees it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) recorded_at: i64,
    pub(crate) entry: JournalEntry,
}

/// One item of a journal stream.
#[derive(Debug)]
pub(crate) enum Item {
    Entry(Box<Entry>),
    Checkpoint(Envelope),
    Cosignature(Envelope),
}

impl<R: Read> Records<R> {
    /// The next entry, checkpoint or cosignature; `None` at the end.
    pub(crate) fn next_item(&mut self) -> Option<Item> {
        loop {
            match self.next_record().ok()?? {
                Record::Header(_) | Record::SignedTrailer(_) => {}
                Record::Entry(bytes) => {
                    let Ok(entry) = JournalEntry::decode(bytes.as_slice()) else {
                        continue;
                    };
                    let recorded_at = entry
                        .recorded_at
                        .as_ref()
                        .map_or(0, |t| waymark_crypto::timestamp_from_proto(t).millis());
                    return Some(Item::Entry(Box::new(Entry {
                        seq: entry.seq,
                        recorded_at,
                        entry,
                    })));
                }
                Record::Checkpoint(e) => return Some(Item::Checkpoint(e)),
                Record::Cosignature(e) => return Some(Item::Cosignature(e)),
            }
        }
    }
}

/// Reads the entry at record index `record` of `path`, if it is one.
pub(crate) fn entry_at_record(path: &Path, record: u64) -> Option<JournalEntry> {
    let mut r = open_records(path, None).ok()?;
    loop {
        let at = r.index;
        let rec = r.next_record().ok()??;
        if at == record {
            return match rec {
                Record::Entry(b) => JournalEntry::decode(b.as_slice()).ok(),
                _ => None,
            };
        }
    }
}

/// Whether an entry with `seq` occurs anywhere in `path` (to tell a
/// reordered journal from one with a deleted entry).
pub(crate) fn has_entry_seq(path: &Path, seq: u64) -> bool {
    let Ok(mut r) = open_records(path, None) else {
        return false;
    };
    while let Some(item) = r.next_item() {
        if let Item::Entry(e) = item
            && e.seq == seq
        {
            return true;
        }
    }
    false
}
