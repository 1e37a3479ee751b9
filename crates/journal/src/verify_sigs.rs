//! Signatures awaiting verification: queued as records are read and
//! verified in batches of [`SIG_BATCH`] with one Ed25519 batch equation,
//! reporting the first bad one by record.

use waymark_crypto::VerifyError;
use waymark_proto::v1::Envelope;
use waymark_types::Timestamp;

use super::verifier::Verifier;
use super::{VerifyFailure, VerifyProblem};

/// Signatures verified per batch equation.
const SIG_BATCH: usize = 64;

/// A signature to verify, with where it was read.
pub(super) struct PendingSig {
    record: u64,
    seq: Option<u64>,
    env: Envelope,
    payload_type: &'static str,
    at: Timestamp,
    own: bool,
    problem: fn(VerifyError) -> VerifyProblem,
}

impl Verifier<'_> {
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

    pub(super) fn queue_sig(
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
}
