//! The streaming verifier: checks export records one at a time, keeping
//! only constant state (chain head, a ≤64-hash Merkle frontier, the last
//! checkpoint, and a bounded batch of signatures, see `verify_sigs.rs`).

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::{KeyRing, timestamp_from_proto};
use waymark_proto::v1::{
    Checkpoint, Cosignature, EntryKind, Envelope, Event, ExportHeader, ExportRecord, ExportTrailer,
    JournalEntry, export_record::Record,
};
use waymark_proto::{
    PAYLOAD_TYPE_CHECKPOINT, PAYLOAD_TYPE_COSIGNATURE, PAYLOAD_TYPE_EVENT,
    PAYLOAD_TYPE_EXPORT_TRAILER,
};
use waymark_types::{AgencyId, CaseId, EventId, Timestamp};

use super::sigs::PendingSig;
use super::{VerifyFailure, VerifyProblem, VerifySummary};
use crate::export::FORMAT_VERSION;
use crate::merkle::{self, Frontier, Hash};
use crate::store::{StoredCheckpoint, StoredCosignature, StoredEntry};

/// One accepted record, with what a store needs to keep it.
#[derive(Debug)]
pub(crate) enum Accepted {
    Header,
    Entry(StoredEntry),
    Checkpoint(StoredCheckpoint),
    Cosignature(StoredCosignature),
    Trailer,
}

/// The streaming verifier.
pub(crate) struct Verifier<'k> {
    pub(super) others: &'k KeyRing,
    /// The exporting agency's keys, from the header.
    pub(super) own: KeyRing,
    agency: Option<AgencyId>,
    /// The header's `exported_at`: when the trailer was signed.
    exported_at: Option<Timestamp>,
    /// SHA-256 of the header's encoding.
    header_hash: Hash,
    pub(super) record: u64,
    pub(super) seq: u64,
    head: Hash,
    frontier: Frontier,
    last_checkpoint: Option<(u64, Vec<u8>, Vec<u8>)>,
    /// The witness of the previous cosignature of the same checkpoint.
    last_witness: Option<AgencyId>,
    pub(super) pending: Vec<PendingSig>,
    pub(super) summary: VerifySummary,
    trailer_seen: bool,
}

impl<'k> Verifier<'k> {
    pub(crate) fn new(others: &'k KeyRing) -> Self {
        Self {
            others,
            own: KeyRing::new(),
            agency: None,
            exported_at: None,
            header_hash: [0u8; 32],
            record: 0,
            seq: 0,
            head: [0u8; 32],
            frontier: Frontier::new(),
            last_checkpoint: None,
            last_witness: None,
            pending: Vec::new(),
            summary: VerifySummary::default(),
            trailer_seen: false,
        }
    }

    pub(super) fn fail(&mut self, problem: VerifyProblem) -> VerifyFailure {
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

    /// Checks the next record.
    pub(crate) fn push(&mut self, r: ExportRecord) -> Result<Accepted, VerifyFailure> {
        let out = self.push_inner(r);
        self.record += 1;
        out
    }

    /// Checks a live journal's unsigned trailer, in place of the signed
    /// trailer record (verification without the signing key).
    pub(crate) fn push_unsigned_trailer(
        &mut self,
        t: &ExportTrailer,
    ) -> Result<Accepted, VerifyFailure> {
        let out = match self.trailer_seen {
            true => Err(self.fail(VerifyProblem::RecordAfterTrailer)),
            false => self.trailer(t),
        };
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
            Record::Header(h) => self.header(&h),
            Record::Entry(bytes) => self.entry(bytes),
            Record::Checkpoint(env) => self.checkpoint(env),
            Record::Cosignature(env) => self.cosignature(env),
            Record::SignedTrailer(env) => self.signed_trailer(&env),
        }
    }

    fn header(&mut self, h: &ExportHeader) -> Result<Accepted, VerifyFailure> {
        use VerifyProblem as P;
        if self.record != 0 {
            return Err(self.fail(P::HeaderNotFirst));
        }
        if h.format_version != FORMAT_VERSION {
            return Err(self.fail(P::UnsupportedVersion(h.format_version)));
        }
        if h.first_seq != 1 {
            return Err(self.fail(P::PartialExport(h.first_seq)));
        }
        self.agency = Some(AgencyId::new(&h.agency_id).map_err(|_| self.fail(P::BadAgencyId))?);
        self.own
            .insert_public_keys(&h.keys)
            .map_err(|e| self.fail(P::BadHeaderKeys(e)))?;
        self.exported_at = Some(
            h.exported_at
                .as_ref()
                .map(timestamp_from_proto)
                .ok_or_else(|| self.fail(P::HeaderMissingExportTime))?,
        );
        // Records are canonical (the reader checks), so this re-encoding is
        // the header exactly as written.
        self.header_hash = Sha256::digest(h.encode_to_vec()).into();
        Ok(Accepted::Header)
    }

    /// The trailer record: its signature with the header's keys at
    /// `exported_at` first, then what it commits to.
    fn signed_trailer(&mut self, env: &Envelope) -> Result<Accepted, VerifyFailure> {
        use VerifyProblem as P;
        let t = ExportTrailer::decode(env.payload.as_slice())
            .map_err(|_| self.fail(P::TrailerUndecodable))?;
        self.settle()?;
        let at = self
            .exported_at
            .ok_or_else(|| self.fail(P::HeaderMissingExportTime))?;
        let checked = self
            .own
            .verify(env, PAYLOAD_TYPE_EXPORT_TRAILER, at)
            .map_err(|e| self.fail(P::TrailerSignature(e)))?;
        self.summary.signatures_checked += checked.len() as u64;
        self.trailer(&t)
    }

    /// Checks what a trailer commits to (its signature already checked, or
    /// a live journal's own unsigned trailer).
    pub(crate) fn trailer(&mut self, t: &ExportTrailer) -> Result<Accepted, VerifyFailure> {
        use VerifyProblem as P;
        self.settle()?;
        if t.header_hash != self.header_hash {
            // The header is the record that no longer matches.
            return Err(VerifyFailure {
                record: 0,
                seq: None,
                problem: P::HeaderHashMismatch,
            });
        }
        if t.entry_count != self.seq {
            return Err(self.fail(P::TrailerCountMismatch {
                trailer: t.entry_count,
                found: self.seq,
            }));
        }
        if t.last_entry_hash != self.head {
            return Err(self.fail(P::TrailerHashMismatch));
        }
        if t.checkpoint_count != self.summary.checkpoints {
            return Err(self.fail(P::TrailerCheckpointCountMismatch {
                trailer: t.checkpoint_count,
                found: self.summary.checkpoints,
            }));
        }
        if t.cosignature_count != self.summary.cosignatures {
            return Err(self.fail(P::TrailerCosignatureCountMismatch {
                trailer: t.cosignature_count,
                found: self.summary.cosignatures,
            }));
        }
        self.trailer_seen = true;
        Ok(Accepted::Trailer)
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
        self.last_witness = None;
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
        // One cosignature per witness, in witness order: a reordered or
        // repeated cosignature is caught here.
        if self
            .last_witness
            .as_ref()
            .is_some_and(|w| w.as_str() >= witness.as_str())
        {
            return Err(self.fail(P::CosignatureOrder));
        }
        self.last_witness = Some(witness.clone());
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

    pub(super) fn finish(mut self) -> Result<VerifySummary, VerifyFailure> {
        if !self.trailer_seen {
            return Err(self.fail(VerifyProblem::Truncated));
        }
        self.settle()?;
        self.summary.last_hash = self.head;
        self.summary.root = self.frontier.root();
        Ok(self.summary)
    }
}
