//! Property: any single-byte change (header included), deleted record
//! (entry, checkpoint, cosignature, header or trailer), reordering or
//! truncation of an export is detected, and located at the damaged record or
//! the record right after it (the first one that commits to the damaged
//! one), with the few exceptions the format implies, each asserted
//! precisely: a deleted checkpoint or cosignature with nothing after it to
//! notice is caught by the signed trailer's counts; a header altered into
//! another consistent header is caught where a later record contradicts it.

mod common;

use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use prost::Message;
use waymark_crypto::{AgencyKey, KeyRing, sign_envelope};
use waymark_journal::{VerifyFailure, VerifyProblem, export, verify_export};
use waymark_proto::PAYLOAD_TYPE_COSIGNATURE;
use waymark_proto::v1::{Checkpoint, Cosignature, Envelope, ExportRecord, export_record::Record};
use waymark_types::{CaseId, Timestamp};

struct Fixture {
    file: Vec<u8>,
    /// The witnesses' keys: an auditor verifies with the federation's keys.
    ring: KeyRing,
    /// What each record holds.
    kinds: Vec<Kind>,
    /// Byte offset where each record (its length prefix) starts; the last
    /// element is the file length.
    starts: Vec<usize>,
}

fn record_starts(file: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pos = 8;
    while pos < file.len() {
        starts.push(pos);
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let b = file[pos];
            pos += 1;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        pos += len;
    }
    starts.push(file.len());
    starts
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Header,
    Entry,
    Checkpoint,
    Cosignature,
    Trailer,
}

/// Two witnesses cosign a checkpoint (stored in witness order).
fn cosign(
    j: &waymark_journal::Journal<waymark_journal::SledStore>,
    ckpt: &Envelope,
    witnesses: &[(&str, &AgencyKey)],
) {
    let cp = Checkpoint::decode(ckpt.payload.as_slice()).unwrap();
    for (id, key) in witnesses {
        let cosig = Cosignature {
            witness_agency_id: (*id).into(),
            checkpoint_hash: sha2::Digest::finalize(sha2::Digest::chain_update(
                sha2::Sha256::default(),
                &ckpt.payload,
            ))
            .to_vec(),
            agency_id: "police-a".into(),
            size: cp.size,
            root_hash: cp.root_hash.clone(),
            witnessed_at: cp.time,
        };
        let env = sign_envelope(key, PAYLOAD_TYPE_COSIGNATURE, cosig.encode_to_vec());
        let keys: Vec<&AgencyKey> = witnesses.iter().map(|(_, k)| *k).collect();
        j.add_cosignature(&env, &ring(&keys)).unwrap();
    }
}

/// Random journals: a few shapes, built once (proptest then mutates them).
fn fixtures() -> &'static Vec<Fixture> {
    static F: OnceLock<Vec<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        [3usize, 9, 23]
            .iter()
            .map(|&n| {
                let dir = tempfile::tempdir().unwrap();
                let key = AgencyKey::generate();
                let (ngo, shelter) = (AgencyKey::generate(), AgencyKey::generate());
                let witnesses = [("ngo-c", &ngo), ("shelter-b", &shelter)];
                let j = open(dir.path(), &key);
                let case = CaseId::new();
                for i in 0..n {
                    let (_, env) = event(
                        &key,
                        "police-a",
                        if i % 2 == 0 { "shelter-b" } else { "" },
                        Some(case),
                    );
                    j.append_originated(&env, Timestamp::from_millis(i as i64))
                        .unwrap();
                    if let Some(c) = j
                        .maybe_checkpoint(Timestamp::from_millis(i as i64))
                        .unwrap()
                    {
                        // Every other checkpoint is cosigned by both witnesses.
                        if i % 2 == 0 {
                            cosign(&j, &c, &witnesses);
                        }
                    }
                }
                let last = j
                    .checkpoint_now(Timestamp::from_millis(99))
                    .unwrap()
                    .unwrap();
                cosign(&j, &last, &witnesses[1..]);
                let mut file = Vec::new();
                export(&j, &mut file, &meta(&key)).unwrap();
                let ring = ring(&[&ngo, &shelter]);
                let s = verify_export(file.as_slice(), &ring).unwrap();
                assert_eq!(s.signatures_unchecked, 0);
                assert!(s.cosignatures >= 1);
                let starts = record_starts(&file);
                let kinds = (0..starts.len() - 1)
                    .map(|i| {
                        let mut r = &file[starts[i]..starts[i + 1]];
                        let rec = ExportRecord::decode_length_delimited(&mut r).unwrap();
                        match rec.record.unwrap() {
                            Record::Header(_) => Kind::Header,
                            Record::Entry(_) => Kind::Entry,
                            Record::Checkpoint(_) => Kind::Checkpoint,
                            Record::Cosignature(_) => Kind::Cosignature,
                            Record::SignedTrailer(_) => Kind::Trailer,
                        }
                    })
                    .collect();
                Fixture {
                    file,
                    ring,
                    kinds,
                    starts,
                }
            })
            .collect()
    })
}

/// Index of the record containing byte `pos` (None for the magic).
fn record_of(f: &Fixture, pos: usize) -> Option<u64> {
    if pos < 8 {
        return None;
    }
    Some(f.starts.iter().rposition(|s| *s <= pos).unwrap() as u64)
}

/// Whether a failure caused by damage to the header is located as well as
/// the format allows: at the header or the record right after it, or where a
/// later record contradicts a header altered into another valid one (a
/// checkpoint naming the real agency; the trailer's signature no longer valid
/// under the altered keys or export time).
fn header_damage_located(err: &VerifyFailure) -> bool {
    err.record <= 1
        || matches!(
            err.problem,
            VerifyProblem::CheckpointAgency | VerifyProblem::TrailerSignature(_)
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_byte_change_is_detected_and_located(which in 0usize..3, pos in any::<prop::sample::Index>(), x in 1u8..=255) {
        let f = &fixtures()[which];
        let pos = pos.index(f.file.len());
        let mut bad = f.file.clone();
        bad[pos] ^= x;
        let err = match verify_export(bad.as_slice(), &f.ring) {
            Err(err) => err,
            // A cosignature whose key id was changed to one the auditor does
            // not know is not accepted as authentic: it is reported unchecked
            // (the fixture's ring knows every witness, so nothing else is).
            Ok(s) => {
                let r = record_of(f, pos).unwrap_or(0) as usize;
                prop_assert!(f.kinds[r] == Kind::Cosignature && s.signatures_unchecked > 0,
                    "byte {} in {:?} record {} not detected", pos, f.kinds[r], r);
                return Ok(());
            }
        };
        match record_of(f, pos) {
            None => prop_assert_eq!(err.record, 0),
            Some(0) => prop_assert!(header_damage_located(&err), "byte {} of the header reported at {}: {}", pos, err.record, err),
            Some(r) => prop_assert!(err.record == r || err.record == r + 1,
                "byte {} in record {} reported at {}: {}", pos, r, err.record, err),
        }
    }

    #[test]
    fn deleting_any_record_is_detected_and_located(which in 0usize..3, a in any::<prop::sample::Index>()) {
        let f = &fixtures()[which];
        let n = f.starts.len() - 1;
        let del = a.index(n);
        let mut bad = f.file[..8].to_vec();
        for i in (0..n).filter(|i| *i != del) {
            bad.extend_from_slice(&f.file[f.starts[i]..f.starts[i + 1]]);
        }
        let err = verify_export(bad.as_slice(), &f.ring).expect_err("a deleted record must be detected");
        let at_place = err.record == del as u64 || err.record == del as u64 + 1;
        // The trailer of the damaged file is its record n - 2.
        let by_count = err.record == n as u64 - 2 && match f.kinds[del] {
            Kind::Checkpoint => matches!(err.problem, VerifyProblem::TrailerCheckpointCountMismatch { .. }),
            Kind::Cosignature => matches!(err.problem, VerifyProblem::TrailerCosignatureCountMismatch { .. }),
            _ => false,
        };
        prop_assert!(at_place || by_count, "deleted {:?} record {} reported at {}: {}", f.kinds[del], del, err.record, err);
    }

    #[test]
    fn reordering_records_is_detected_and_located(which in 0usize..3, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let f = &fixtures()[which];
        let n = f.starts.len() - 1;
        let (ra, rb) = (a.index(n), b.index(n));
        let rec = |i: usize| &f.file[f.starts[i]..f.starts[i + 1]];
        if rec(ra) == rec(rb) {
            return Ok(());
        }
        let mut bad = f.file[..8].to_vec();
        for i in 0..n {
            let i2 = if i == ra { rb } else if i == rb { ra } else { i };
            bad.extend_from_slice(rec(i2));
        }
        let err = verify_export(bad.as_slice(), &f.ring).expect_err("must be detected");
        let first = ra.min(rb) as u64;
        prop_assert!(err.record == first || err.record == first + 1, "records {} and {} swapped, reported at {}: {}", ra, rb, err.record, err);
    }

    #[test]
    fn truncation_is_detected_and_located(which in 0usize..3, cut in any::<prop::sample::Index>()) {
        let f = &fixtures()[which];
        let cut = cut.index(f.file.len());
        let err = verify_export(&f.file[..cut], &f.ring).expect_err("a cut file must be detected");
        // Located at the record the cut falls in (the first one missing).
        prop_assert_eq!(err.record, record_of(f, cut).unwrap_or(0), "cut at {}: {}", cut, err);
    }
}
