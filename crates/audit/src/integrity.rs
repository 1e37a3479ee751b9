//! Per-journal integrity with the journal crate's streaming verifier
//! (framing, chain, Merkle roots of checkpoints, batch-verified signatures
//! with the keys valid at each record's time, signed trailer), run on
//! several threads, one journal per thread at a time, and its first failure
//! turned into a located finding.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use waymark_crypto::KeyRing;
use waymark_journal::{VerifyFailure, VerifyProblem, VerifySummary, verify_export};
use waymark_proto::v1::{Envelope, Event};

use crate::finding::{Finding, Location, Severity, rules};
use crate::source::{entry_at_record, has_entry_seq};

/// The verifier's result for one file.
pub(crate) type Verdict = Result<VerifySummary, VerifyFailure>;

/// Verifies every file in `paths` with `threads` workers.
pub(crate) fn verify_all(paths: &[&Path], keys: &KeyRing, threads: usize) -> Vec<Verdict> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<Verdict>>> = Mutex::new(vec![None; paths.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, paths.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    let v = verify_file(path, keys);
                    if let Ok(mut o) = out.lock() {
                        o[i] = Some(v);
                    }
                }
            });
        }
    });
    out.into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            v.unwrap_or_else(|| {
                Err(VerifyFailure {
                    record: 0,
                    seq: None,
                    problem: VerifyProblem::Io("verification did not run".into()),
                })
            })
        })
        .collect()
}

fn verify_file(path: &Path, keys: &KeyRing) -> Verdict {
    let f = File::open(path).map_err(|e| VerifyFailure {
        record: 0,
        seq: None,
        problem: VerifyProblem::Io(e.to_string()),
    })?;
    verify_export(BufReader::with_capacity(1 << 16, f), keys)
}

/// The finding for a failed verification of `agency`'s export at `path`.
pub(crate) fn failure_finding(agency: &str, path: &Path, f: &VerifyFailure) -> Finding {
    use VerifyProblem as P;
    let (rule, mut seq) = match &f.problem {
        P::BadMagic
        | P::Io(_)
        | P::Store(_)
        | P::RecordTooLarge(_)
        | P::RecordUndecodable
        | P::RecordNotCanonical
        | P::EmptyRecord
        | P::EntryUndecodable
        | P::EntryMissingTime
        | P::KindUnspecified
        | P::BadCaseId
        | P::CaseMismatch
        | P::EnvelopeUndecodable
        | P::RecordAfterTrailer => (rules::JOURNAL_MALFORMED, f.seq),
        P::Truncated => (rules::JOURNAL_TRUNCATED, f.seq),
        P::PrevHashMismatch | P::TrailerHashMismatch => (rules::JOURNAL_CHAIN_BROKEN, f.seq),
        P::SeqOutOfOrder { expected, .. } => {
            // Reordered if the expected entry is somewhere else in the file,
            // missing (deleted) if it is nowhere.
            let rule = if has_entry_seq(path, *expected) {
                rules::JOURNAL_ENTRY_REORDERED
            } else {
                rules::JOURNAL_ENTRY_MISSING
            };
            (rule, Some(*expected))
        }
        P::TrailerCountMismatch { trailer, found } if trailer > found => {
            (rules::JOURNAL_TRUNCATED, f.seq)
        }
        P::EnvelopeSignature(_) => (rules::JOURNAL_SIGNATURE_INVALID, f.seq),
        P::CheckpointUndecodable
        | P::CheckpointAgency
        | P::CheckpointMisplaced { .. }
        | P::CheckpointRootMismatch
        | P::CheckpointSignature(_) => (rules::JOURNAL_CHECKPOINT_INVALID, f.seq),
        P::CosignatureUndecodable
        | P::CosignatureWithoutCheckpoint
        | P::CosignatureMismatch
        | P::CosignatureOrder
        | P::CosignatureSignature(_)
        | P::TrailerCosignatureCountMismatch { .. } => (rules::JOURNAL_COSIGNATURE_INVALID, f.seq),
        P::HeaderMissing
        | P::HeaderNotFirst
        | P::UnsupportedVersion(_)
        | P::PartialExport(_)
        | P::BadAgencyId
        | P::BadHeaderKeys(_)
        | P::HeaderMissingExportTime
        | P::HeaderHashMismatch => (rules::JOURNAL_HEADER_INVALID, None),
        P::TrailerCountMismatch { .. }
        | P::TrailerUndecodable
        | P::TrailerSignature(_)
        | P::TrailerCheckpointCountMismatch { .. } => (rules::JOURNAL_TRAILER_INVALID, f.seq),
    };
    let mut loc = Location::journal(agency);
    loc.record = Some(f.record);
    let mut event = None;
    if matches!(
        f.problem,
        P::EnvelopeSignature(_) | P::PrevHashMismatch | P::CaseMismatch
    ) && let Some(e) = entry_at_record(path, f.record)
    {
        seq = Some(e.seq);
        event = event_id_of(&e.envelope);
        loc = loc.with_case(&e.case_id);
    }
    loc.seq = seq;
    if let Some(id) = event {
        loc = loc.with_event(&id);
    }
    Finding::new(
        Severity::Critical,
        rule,
        loc,
        format!(
            "the export fails verification: {}; nothing from this journal is trusted, \
             and checks that need it are skipped",
            f.problem
        ),
    )
}

/// The event id inside an encoded event envelope, if it decodes.
pub(crate) fn event_id_of(envelope: &[u8]) -> Option<String> {
    use prost::Message;
    let env = Envelope::decode(envelope).ok()?;
    Event::decode(env.payload.as_slice())
        .ok()
        .map(|e| e.event_id)
}
