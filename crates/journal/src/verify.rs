//! Streaming verification of journal exports and live journals, and import.
//!
//! [`Verifier`] takes export records one at a time and keeps only constant
//! state (chain head, a ≤64-hash Merkle frontier, the last checkpoint and a
//! bounded batch of signatures awaiting batch verification), so memory does
//! not grow with the journal. It reports the FIRST bad record: before
//! reporting a structural problem at record r it settles the pending
//! signatures, all from records before r.

use std::io::Read;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::{KeyRing, VerifyError, timestamp_from_proto};
use waymark_proto::v1::{
    Checkpoint, Cosignature, EntryKind, Envelope, Event, ExportRecord, JournalEntry,
    export_record::Record,
};
use waymark_proto::{PAYLOAD_TYPE_CHECKPOINT, PAYLOAD_TYPE_COSIGNATURE, PAYLOAD_TYPE_EVENT};
use waymark_types::{AgencyId, CaseId, EventId, Timestamp};

use crate::export::{ExportMeta, FORMAT_VERSION, MAGIC, Records};
use crate::journal::Journal;
use crate::merkle::{self, Frontier, Hash};
use crate::store::{
    Batch, JournalStore, StoreError, StoredCheckpoint, StoredCosignature, StoredEntry,
};

#[path = "verify_problem.rs"]
mod problem;
pub use problem::{VerifyFailure, VerifyProblem};

/// Largest record accepted (an entry holds at most a 64 KiB quarantined
/// message plus an envelope; 16 MiB is far above any honest record).
const MAX_RECORD: u64 = 16 << 20;
/// Signatures verified per batch equation.
const SIG_BATCH: usize = 64;

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

/// One accepted record, with what a store needs to keep it.
#[derive(Debug)]
pub(crate) enum Accepted {
    Header,
    Entry(StoredEntry),
    Checkpoint(StoredCheckpoint),
    Cosignature(StoredCosignature),
    Trailer,
}

struct PendingSig {
    record: u64,
    seq: Option<u64>,
    env: Envelope,
    payload_type: &'static str,
    at: Timestamp,
    own: bool,
    problem: fn(VerifyError) -> VerifyProblem,
}

/// The streaming verifier.
pub(crate) struct Verifier<'k> {
    others: &'k KeyRing,
    own: KeyRing,
    agency: Option<AgencyId>,
    record: u64,
    seq: u64,
    head: Hash,
    frontier: Frontier,
    last_checkpoint: Option<(u64, Vec<u8>, Vec<u8>)>,
    pending: Vec<PendingSig>,
    summary: VerifySummary,
    trailer_seen: bool,
}

impl<'k> Verifier<'k> {
    pub(crate) fn new(others: &'k KeyRing) -> Self {
        Self {
            others,
            own: KeyRing::new(),
            agency: None,
            record: 0,
            seq: 0,
            head: [0u8; 32],
            frontier: Frontier::new(),
            last_checkpoint: None,
            pending: Vec::new(),
            summary: VerifySummary::default(),
            trailer_seen: false,
        }
    }

    fn fail(&mut self, problem: VerifyProblem) -> VerifyFailure {
        // An earlier bad signature wins over this later problem.
        if let Err(f) = self.settle() {
            return f;
        }
        VerifyFailure {
            record: self.record,
            seq: (self.seq > 0).then_some(self.seq),
            problem,
        }
    }

    /// Verifies the pending signatures; reports the first bad one.
    pub(crate) fn settle(&mut self) -> Result<(), VerifyFailure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let mut result: Result<(), VerifyFailure> = Ok(());
        for own in [true, false] {
            let ring = if own { &self.own } else { self.others };
            let group: Vec<&PendingSig> = pending.iter().filter(|p| p.own == own).collect();
            let items: Vec<_> = group
                .iter()
                .map(|p| (&p.env, p.payload_type, p.at))
                .collect();
            if let Err(e) = ring.verify_batch(&items) {
                let p = group[e.position];
                let f = VerifyFailure {
                    record: p.record,
                    seq: p.seq,
                    problem: (p.problem)(e.error),
                };
                result = match result {
                    Err(prev) if prev.record <= f.record => Err(prev),
                    _ => Err(f),
                };
            }
        }
        if result.is_ok() {
            self.summary.signatures_checked += pending
                .iter()
                .map(|p| p.env.signatures.len() as u64)
                .sum::<u64>();
        }
        result
    }

    fn queue_sig(
        &mut self,
        env: Envelope,
        payload_type: &'static str,
        at: Timestamp,
        own: bool,
        problem: fn(VerifyError) -> VerifyProblem,
    ) -> Result<(), VerifyFailure> {
        if !own {
            let ring = self.others;
            let known = !env.signatures.is_empty()
                && env.signatures.iter().all(|s| {
                    waymark_crypto::KeyId::parse(&s.key_id).is_ok_and(|id| ring.get(&id).is_some())
                });
            if !known {
                self.summary.signatures_unchecked += env.signatures.len().max(1) as u64;
                return Ok(());
            }
        }
        let seq = (self.seq > 0).then_some(self.seq);
        self.pending.push(PendingSig {
            record: self.record,
            seq,
            env,
            payload_type,
            at,
            own,
            problem,
        });
        if self.pending.len() >= SIG_BATCH {
            self.settle()?;
        }
        Ok(())
    }

    /// Checks the next record.
    pub(crate) fn push(&mut self, r: ExportRecord) -> Result<Accepted, VerifyFailure> {
        let out = self.push_inner(r);
        self.record += 1;
        out
    }

    fn push_inner(&mut self, r: ExportRecord) -> Result<Accepted, VerifyFailure> {
        use VerifyProblem as P;
        if self.trailer_seen {
            return Err(self.fail(P::RecordAfterTrailer));
        }
        let Some(r) = r.record else {
            return Err(self.fail(P::EmptyRecord));
        };
        if self.record == 0 && !matches!(r, Record::Header(_)) {
            return Err(self.fail(P::HeaderMissing));
        }
        match r {
            Record::Header(h) => {
                if self.record != 0 {
                    return Err(self.fail(P::HeaderNotFirst));
                }
                if h.format_version != FORMAT_VERSION {
                    return Err(self.fail(P::UnsupportedVersion(h.format_version)));
                }
                if h.first_seq != 1 {
                    return Err(self.fail(P::PartialExport(h.first_seq)));
                }
                self.agency =
                    Some(AgencyId::new(&h.agency_id).map_err(|_| self.fail(P::BadAgencyId))?);
                self.own
                    .insert_public_keys(&h.keys)
                    .map_err(|e| self.fail(P::BadHeaderKeys(e)))?;
                Ok(Accepted::Header)
            }
            Record::Entry(bytes) => self.entry(bytes),
            Record::Checkpoint(env) => self.checkpoint(env),
            Record::Cosignature(env) => self.cosignature(env),
            Record::Trailer(t) => {
                if t.entry_count != self.seq {
                    return Err(self.fail(P::TrailerCountMismatch {
                        trailer: t.entry_count,
                        found: self.seq,
                    }));
                }
                if t.last_entry_hash != self.head {
                    return Err(self.fail(P::TrailerHashMismatch));
                }
                self.settle()?;
                self.trailer_seen = true;
                Ok(Accepted::Trailer)
            }
        }
    }

    fn entry(&mut self, bytes: Vec<u8>) -> Result<Accepted, VerifyFailure> {
        use VerifyProblem as P;
        let expected = self.seq + 1;
        let e =
            JournalEntry::decode(bytes.as_slice()).map_err(|_| self.fail(P::EntryUndecodable))?;
        if e.seq != expected {
            return Err(self.fail(P::SeqOutOfOrder {
                expected,
                found: e.seq,
            }));
        }
        self.seq = expected;
        if e.prev_hash != self.head {
            return Err(self.fail(P::PrevHashMismatch));
        }
        let at = e
            .recorded_at
            .as_ref()
            .map(timestamp_from_proto)
            .ok_or_else(|| self.fail(P::EntryMissingTime))?;
        let kind = EntryKind::try_from(e.kind).unwrap_or(EntryKind::Unspecified);
        let (mut case_id, mut event_id) = (None, None);
        if !e.case_id.is_empty() {
            case_id = Some(CaseId::parse(&e.case_id).map_err(|_| self.fail(P::BadCaseId))?);
        }
        match kind {
            EntryKind::Unspecified => return Err(self.fail(P::KindUnspecified)),
            EntryKind::Originated | EntryKind::Received => {
                let env = Envelope::decode(e.envelope.as_slice())
                    .map_err(|_| self.fail(P::EnvelopeUndecodable))?;
                let ev = Event::decode(env.payload.as_slice())
                    .map_err(|_| self.fail(P::EnvelopeUndecodable))?;
                event_id = Some(
                    EventId::parse(&ev.event_id).map_err(|_| self.fail(P::EnvelopeUndecodable))?,
                );
                if ev.case_id != e.case_id {
                    return Err(self.fail(P::CaseMismatch));
                }
                let own = kind == EntryKind::Originated;
                self.queue_sig(env, PAYLOAD_TYPE_EVENT, at, own, P::EnvelopeSignature)?;
            }
            EntryKind::CheckpointWitnessed => {
                let env = Envelope::decode(e.envelope.as_slice())
                    .map_err(|_| self.fail(P::EnvelopeUndecodable))?;
                self.queue_sig(
                    env,
                    PAYLOAD_TYPE_CHECKPOINT,
                    at,
                    false,
                    P::EnvelopeSignature,
                )?;
            }
            EntryKind::Quarantined | EntryKind::Equivocation => {}
        }
        let hash = merkle::leaf_hash(&bytes);
        let nodes = self.frontier.push(hash);
        self.head = hash;
        self.summary.entries += 1;
        Ok(Accepted::Entry(StoredEntry {
            seq: expected,
            bytes,
            hash,
            nodes,
            case_id,
            event_id,
        }))
    }

    fn checkpoint(&mut self, env: Envelope) -> Result<Accepted, VerifyFailure> {
        use VerifyProblem as P;
        let c = Checkpoint::decode(env.payload.as_slice())
            .map_err(|_| self.fail(P::CheckpointUndecodable))?;
        if Some(c.agency_id.as_str()) != self.agency.as_ref().map(AgencyId::as_str) {
            return Err(self.fail(P::CheckpointAgency));
        }
        if c.size != self.seq {
            return Err(self.fail(P::CheckpointMisplaced {
                size: c.size,
                after_entry: self.seq,
            }));
        }
        if c.root_hash != self.frontier.root() {
            return Err(self.fail(P::CheckpointRootMismatch));
        }
        let at = c
            .time
            .as_ref()
            .map(timestamp_from_proto)
            .ok_or_else(|| self.fail(P::CheckpointUndecodable))?;
        let bytes = env.encode_to_vec();
        let hash = Sha256::digest(&env.payload).to_vec();
        self.last_checkpoint = Some((c.size, hash, c.root_hash));
        self.queue_sig(
            env,
            PAYLOAD_TYPE_CHECKPOINT,
            at,
            true,
            P::CheckpointSignature,
        )?;
        self.summary.checkpoints += 1;
        Ok(Accepted::Checkpoint(StoredCheckpoint {
            size: c.size,
            envelope: bytes,
        }))
    }

    fn cosignature(&mut self, env: Envelope) -> Result<Accepted, VerifyFailure> {
        use VerifyProblem as P;
        let c = Cosignature::decode(env.payload.as_slice())
            .map_err(|_| self.fail(P::CosignatureUndecodable))?;
        let Some((size, hash, root)) = self.last_checkpoint.clone() else {
            return Err(self.fail(P::CosignatureWithoutCheckpoint));
        };
        if c.size != size || c.checkpoint_hash != hash || c.root_hash != root || c.size != self.seq
        {
            return Err(self.fail(P::CosignatureMismatch));
        }
        let witness = AgencyId::new(&c.witness_agency_id)
            .map_err(|_| self.fail(P::CosignatureUndecodable))?;
        let at = c
            .witnessed_at
            .as_ref()
            .map(timestamp_from_proto)
            .ok_or_else(|| self.fail(P::CosignatureUndecodable))?;
        let bytes = env.encode_to_vec();
        self.queue_sig(
            env,
            PAYLOAD_TYPE_COSIGNATURE,
            at,
            false,
            P::CosignatureSignature,
        )?;
        self.summary.cosignatures += 1;
        Ok(Accepted::Cosignature(StoredCosignature {
            size,
            witness,
            envelope: bytes,
        }))
    }

    fn finish(mut self) -> Result<VerifySummary, VerifyFailure> {
        if !self.trailer_seen {
            return Err(self.fail(VerifyProblem::Truncated));
        }
        self.settle()?;
        self.summary.last_hash = self.head;
        self.summary.root = self.frontier.root();
        Ok(self.summary)
    }
}

/// Reads export records from a byte stream.
struct RecordReader<R> {
    r: R,
}

impl<R: Read> RecordReader<R> {
    fn read_varint(&mut self) -> Result<Option<u64>, VerifyProblem> {
        let mut v = 0u64;
        for i in 0..10 {
            let mut b = [0u8; 1];
            match self.r.read(&mut b) {
                Ok(0) if i == 0 => return Ok(None),
                Ok(0) => return Err(VerifyProblem::Truncated),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return self.read_varint(),
                Err(e) => return Err(VerifyProblem::Io(e.to_string())),
            }
            v |= u64::from(b[0] & 0x7f) << (7 * i);
            if b[0] & 0x80 == 0 {
                return Ok(Some(v));
            }
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
        ExportRecord::decode(buf.as_slice())
            .map(Some)
            .map_err(|_| VerifyProblem::RecordUndecodable)
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
/// the header's keys), and other agencies' signatures whose keys are in
/// `others`. Memory is independent of the file's length.
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
/// writing a file. `meta.keys` must hold the agency's own public keys.
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
    for r in records {
        let r = r.map_err(|e| v.fail(VerifyProblem::Store(e.to_string())))?;
        v.push(r)?;
    }
    v.finish()
}
