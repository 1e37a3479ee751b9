//! Streaming verification of journal exports and live journals, and import.
//!
//! The verifier (`verifier.rs`) takes export records one at a time and keeps
//! only constant state (chain head, a ≤64-hash Merkle frontier, the last
//! checkpoint and a bounded batch of signatures awaiting batch verification,
//! `verify_sigs.rs`), so memory does not grow with the journal. It reports
//! the FIRST bad record: before reporting a structural problem at record r it
//! settles the pending signatures, all from records before r.
//!
//! Every byte of a file is checked: the reader accepts only records in
//! canonical encoding (minimal varints, exactly one field, no unknown
//! fields: what the exporter writes), and the trailer, signed with the
//! header's key, commits to the header's hash and to the number of entries,
//! checkpoints and cosignatures (see `ExportTrailer` in `journal.proto`).

use std::io::Read;

use prost::Message;
use waymark_crypto::KeyRing;
use waymark_proto::v1::ExportRecord;

use crate::export::{ExportMeta, Item, MAGIC, Records, signed_trailer};
use crate::journal::Journal;
use crate::merkle::Hash;
use crate::store::{Batch, JournalStore, StoreError};

#[path = "verify_problem.rs"]
mod problem;
#[path = "verify_sigs.rs"]
mod sigs;
#[path = "verifier.rs"]
mod verifier;
pub use problem::{VerifyFailure, VerifyProblem};
use verifier::{Accepted, Verifier};

/// Largest record accepted (an entry holds at most a 64 KiB quarantined
/// message plus an envelope; 16 MiB is far above any honest record).
const MAX_RECORD: u64 = 16 << 20;

/// What a verification found, when everything verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifySummary {
    /// Entries verified.
    pub entries: u64,
    /// Checkpoints verified (signature and root).
    pub checkpoints: u64,
    /// Cosignatures matched to their checkpoint.
    pub cosignatures: u64,
    /// Envelope signatures verified.
    pub signatures_checked: u64,
    /// Envelope signatures not checked because the key is not known (other
    /// agencies' events or cosignatures without their keys).
    pub signatures_unchecked: u64,
    /// The last entry's hash.
    pub last_hash: Hash,
    /// The Merkle root over all entries.
    pub root: Hash,
}

/// Reads export records from a byte stream.
struct RecordReader<R> {
    r: R,
}

impl<R: Read> RecordReader<R> {
    /// Reads a length prefix; `None` at a clean end of file. A varint with
    /// redundant trailing zero groups is refused: it is not what was written.
    fn read_varint(&mut self) -> Result<Option<u64>, VerifyProblem> {
        let mut v = 0u64;
        let mut i = 0;
        while i < 10 {
            let mut b = [0u8; 1];
            match self.r.read(&mut b) {
                Ok(0) if i == 0 => return Ok(None),
                Ok(0) => return Err(VerifyProblem::Truncated),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(VerifyProblem::Io(e.to_string())),
            }
            v |= u64::from(b[0] & 0x7f) << (7 * i);
            if b[0] & 0x80 == 0 {
                if i > 0 && b[0] == 0 {
                    return Err(VerifyProblem::RecordNotCanonical);
                }
                return Ok(Some(v));
            }
            i += 1;
        }
        Err(VerifyProblem::RecordUndecodable)
    }

    fn next(&mut self) -> Result<Option<ExportRecord>, VerifyProblem> {
        let Some(len) = self.read_varint()? else {
            return Ok(None);
        };
        if len > MAX_RECORD {
            return Err(VerifyProblem::RecordTooLarge(len));
        }
        let mut buf =
            vec![0u8; usize::try_from(len).map_err(|_| VerifyProblem::RecordTooLarge(len))?];
        self.r.read_exact(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => VerifyProblem::Truncated,
            _ => VerifyProblem::Io(e.to_string()),
        })?;
        let rec =
            ExportRecord::decode(buf.as_slice()).map_err(|_| VerifyProblem::RecordUndecodable)?;
        // Only the canonical encoding is accepted, so that no byte escapes
        // the checks (an unknown or repeated field would be ignored by the
        // decoder, a re-encoded envelope would verify all the same).
        if rec.encoded_len() != buf.len() || rec.encode_to_vec() != buf {
            return Err(VerifyProblem::RecordNotCanonical);
        }
        Ok(Some(rec))
    }
}

fn drive<R: Read>(
    r: R,
    others: &KeyRing,
    mut sink: impl FnMut(Accepted, &mut Verifier<'_>) -> Result<(), VerifyFailure>,
) -> Result<VerifySummary, VerifyFailure> {
    let mut v = Verifier::new(others);
    let mut rr = RecordReader { r };
    let mut magic = [0u8; 8];
    if rr.r.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(VerifyFailure {
            record: 0,
            seq: None,
            problem: VerifyProblem::BadMagic,
        });
    }
    loop {
        match rr.next() {
            Ok(Some(rec)) => {
                let a = v.push(rec)?;
                sink(a, &mut v)?;
            }
            Ok(None) => break,
            Err(p) => return Err(v.fail(p)),
        }
    }
    v.finish()
}

/// Verifies an export file as it reads it: framing, chain, Merkle roots and
/// signatures of checkpoints, the exporting agency's event signatures (with
/// the header's keys), other agencies' signatures whose keys are in
/// `others`, and the signed trailer (with the header's keys, at the header's
/// `exported_at`), which authenticates the header and the record counts.
/// Memory is independent of the file's length.
///
/// # Errors
/// The first bad record, located ([`VerifyFailure`]).
pub fn verify_export<R: Read>(r: R, others: &KeyRing) -> Result<VerifySummary, VerifyFailure> {
    drive(r, others, |_, _| Ok(()))
}

/// Verifies an export and writes it into an empty store, committing only
/// verified records, in bounded batches (memory independent of length). The
/// result is a read-only replica: it has entries, indexes, checkpoints and
/// cosignatures, but no outbox (delivery state is not part of an export).
/// On error the store holds a verified prefix and should be discarded.
///
/// # Errors
/// The first bad record, or [`VerifyProblem::Store`] if the store fails or
/// is not empty.
pub fn import<R: Read, S: JournalStore>(
    r: R,
    store: &S,
    others: &KeyRing,
) -> Result<VerifySummary, VerifyFailure> {
    let store_fail = |e: StoreError| VerifyFailure {
        record: 0,
        seq: None,
        problem: VerifyProblem::Store(e.to_string()),
    };
    if store.size().map_err(store_fail)? != 0 {
        return Err(store_fail(StoreError::BadBatch(
            "import needs an empty store".into(),
        )));
    }
    let mut batch = Batch::default();
    let commit = |b: &mut Batch, v: &mut Verifier<'_>| -> Result<(), VerifyFailure> {
        v.settle()?;
        store.commit(b).map_err(store_fail)?;
        *b = Batch::default();
        Ok(())
    };
    let summary = drive(r, others, |a, v| {
        match a {
            Accepted::Entry(e) => batch.entries.push(e),
            Accepted::Checkpoint(c) => batch.checkpoints.push(c),
            Accepted::Cosignature(c) => batch.cosignatures.push(c),
            Accepted::Header => {}
            Accepted::Trailer => return commit(&mut batch, v),
        }
        if batch.entries.len() >= 1024 {
            commit(&mut batch, v)
        } else {
            Ok(())
        }
    })?;
    Ok(summary)
}

/// Verifies a live journal exactly as its export would be verified, without
/// writing a file. `meta.keys` must hold the agency's own public keys. If
/// the journal has its signing key the trailer is signed and verified as in
/// an export; otherwise (a replica) what the trailer commits to is checked,
/// without a signature.
///
/// # Errors
/// The first bad record ([`VerifyFailure`]); record numbers are those the
/// export file would have.
pub fn verify_journal<S: JournalStore>(
    journal: &Journal<S>,
    meta: &ExportMeta,
    others: &KeyRing,
) -> Result<VerifySummary, VerifyFailure> {
    let mut v = Verifier::new(others);
    let records = Records::new(journal, meta).map_err(|e| VerifyFailure {
        record: 0,
        seq: None,
        problem: VerifyProblem::Store(e.to_string()),
    })?;
    for item in records {
        match item.map_err(|e| v.fail(VerifyProblem::Store(e.to_string())))? {
            Item::Record(r) => v.push(r)?,
            Item::Trailer(t) => match journal.signer() {
                Some(key) => v.push(signed_trailer(key, &t))?,
                None => v.push_unsigned_trailer(&t)?,
            },
        };
    }
    v.finish()
}
