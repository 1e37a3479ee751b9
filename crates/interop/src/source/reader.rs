//! Reading the records of an export file (after verification: this reader
//! does not check what the verifier checks).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use prost::Message;
use waymark_journal::MAGIC;
use waymark_proto::v1::{ExportHeader, ExportRecord, JournalEntry, export_record::Record};

use crate::InteropError;

/// Largest record read (as the journal crate's verifier).
const MAX_RECORD: u64 = 16 << 20;

/// Reads the header (first record) of an export.
pub(super) fn read_header(path: &Path) -> Result<ExportHeader, InteropError> {
    let mut r = open_records(path)?;
    match r.next().map_err(|source| InteropError::Io {
        path: path.to_owned(),
        source,
    })? {
        Some(Record::Header(h)) => Ok(h),
        _ => Err(InteropError::BadHeader {
            path: path.to_owned(),
            reason: "the first record is not a header".into(),
        }),
    }
}

/// Calls `f` with every journal entry of an (already verified) export.
pub(super) fn for_each_entry(
    path: &Path,
    mut f: impl FnMut(JournalEntry),
) -> Result<(), InteropError> {
    let io = |source| InteropError::Io {
        path: path.to_owned(),
        source,
    };
    let mut r = open_records(path)?;
    while let Some(rec) = r.next().map_err(io)? {
        if let Record::Entry(bytes) = rec {
            let e =
                JournalEntry::decode(bytes.as_slice()).map_err(|e| io(std::io::Error::other(e)))?;
            f(e);
        }
    }
    Ok(())
}

fn open_records(path: &Path) -> Result<Records<BufReader<File>>, InteropError> {
    let io = |source| InteropError::Io {
        path: path.to_owned(),
        source,
    };
    let mut r = BufReader::with_capacity(1 << 16, File::open(path).map_err(io)?);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(io)?;
    if &magic != MAGIC {
        return Err(InteropError::BadHeader {
            path: path.to_owned(),
            reason: "not a Waymark journal export (bad magic)".into(),
        });
    }
    Ok(Records { r })
}

/// Export records, one at a time.
struct Records<R> {
    r: R,
}

impl<R: Read> Records<R> {
    fn next(&mut self) -> std::io::Result<Option<Record>> {
        let mut len = 0u64;
        for i in 0..10 {
            let mut b = [0u8; 1];
            if self.r.read(&mut b)? == 0 {
                if i == 0 {
                    return Ok(None);
                }
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            len |= u64::from(b[0] & 0x7f) << (7 * i);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        if len > MAX_RECORD {
            return Err(std::io::Error::other("record too large"));
        }
        let mut buf = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
        self.r.read_exact(&mut buf)?;
        let rec = ExportRecord::decode(buf.as_slice()).map_err(std::io::Error::other)?;
        Ok(rec.record)
    }
}
