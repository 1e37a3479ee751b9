//! Witness checks: every checkpoint another agency saw signed (journaled as
//! CHECKPOINT_WITNESSED, cosigned, or quoted in EQUIVOCATION evidence) is
//! compared with the signing agency's export and with every other copy.
//!
//! - Two different roots signed by one agency for one size, anywhere in the
//!   witness evidence: `witness.equivocation`.
//! - The agency's export does not have, at a witnessed size, any root its
//!   witnesses saw (or is shorter than a witnessed size): `witness.rewritten`.
//!   This catches a journal rewritten and re-signed end to end by its own
//!   agency: its new roots are not the ones witnessed.
//! - A cosignature in an export whose witness's own journal has no
//!   CHECKPOINT_WITNESSED entry for it: `witness.cosignature_unjournaled`.
//!
//! # Exports taken at different moments
//! An export is its agency's journal as of its header's `exported_at`
//! (signed, via the trailer's header hash). Journals keep growing while
//! they are exported one after another (or fetched from endpoints at nearly
//! the same moment): a witness's later export may hold a checkpoint the
//! signer signed after its own export, and a signer's later export may
//! carry a cosignature its witness made after the witness's export. Neither
//! is evidence against the earlier export, so "shorter than a witnessed
//! size" counts only checkpoints the signer signed at or before its
//! `exported_at`, and an unjournaled cosignature counts only if it was made
//! at or before the witness's `exported_at`. Each comparison is between two
//! times on the same agency's clock. A root that differs at a size the
//! export has is always reported. Limit: an agency that signs checkpoints
//! dated after its export's time can shorten that export below them
//! unnoticed; the endpoint path bounds this, as the export's time is when
//! the auditor asked for it.
//!
//! Memory: one small record per witnessed checkpoint and per own checkpoint
//! (O(checkpoints × witnesses)), never per entry. Roots at witnessed sizes
//! without an own checkpoint are computed at the end by one more streaming
//! pass over that export, only when needed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::{KeyRing, timestamp_from_proto};
use waymark_journal::merkle::{Frontier, leaf_hash};
use waymark_proto::PAYLOAD_TYPE_CHECKPOINT;
use waymark_proto::v1::{Checkpoint, Cosignature, Envelope, Equivocation, export_record::Record};

use crate::finding::{Finding, Location, Severity, rules};
use crate::keys::Keys;
use crate::source::open_records;

/// Where a witnessed root was seen.
#[derive(Debug, Clone)]
struct Claim {
    root: Vec<u8>,
    /// The checkpoint's own time (the signer's clock), ms, if known.
    signed_at: Option<i64>,
    witness: String,
    seq: Option<u64>,
    what: &'static str,
}

/// Witness evidence collected while the journals stream by.
#[derive(Debug, Default)]
pub(crate) struct Witness {
    /// (agency, size) → claims by witnesses.
    claims: BTreeMap<(String, u64), Vec<Claim>>,
    /// agency → size → root of its own (verified) checkpoints.
    own: HashMap<String, BTreeMap<u64, Vec<u8>>>,
    /// (witness, checkpoint hash) journaled as witnessed.
    journaled: HashSet<(String, Vec<u8>)>,
    /// Cosignatures to match with the witness's journal: (agency, size,
    /// witness, hash, witnessed at ms).
    cosigs: Vec<(String, u64, String, Vec<u8>, i64)>,
    pub(crate) findings: Vec<Finding>,
    /// Checkpoints witnessed (CHECKPOINT_WITNESSED entries) seen.
    pub(crate) witnessed_entries: u64,
}

impl Witness {
    /// A checkpoint record of `agency`'s own export (already verified).
    pub(crate) fn own_checkpoint(&mut self, agency: &str, env: &Envelope) {
        if let Ok(c) = Checkpoint::decode(env.payload.as_slice()) {
            self.own
                .entry(agency.to_owned())
                .or_default()
                .insert(c.size, c.root_hash);
        }
    }

    /// A cosignature record in `agency`'s export (already verified against
    /// its checkpoint).
    pub(crate) fn cosignature(&mut self, agency: &str, env: &Envelope) {
        let Ok(c) = Cosignature::decode(env.payload.as_slice()) else {
            return;
        };
        self.claim(
            agency,
            c.size,
            Claim {
                root: c.root_hash,
                signed_at: None,
                witness: c.witness_agency_id.clone(),
                seq: None,
                what: "cosignature",
            },
        );
        let at = c
            .witnessed_at
            .as_ref()
            .map_or(i64::MIN, |t| timestamp_from_proto(t).millis());
        self.cosigs.push((
            agency.to_owned(),
            c.size,
            c.witness_agency_id,
            c.checkpoint_hash,
            at,
        ));
    }

    /// A CHECKPOINT_WITNESSED entry of `witness`'s journal (its signature
    /// was checked by the verifier when the signer's keys are known).
    pub(crate) fn witnessed(&mut self, keys: &Keys, witness: &str, seq: u64, envelope: &[u8]) {
        self.witnessed_entries += 1;
        let Ok(env) = Envelope::decode(envelope) else {
            return;
        };
        let Some(c) = signed_checkpoint(keys, &env) else {
            return;
        };
        self.journaled
            .insert((witness.to_owned(), Sha256::digest(&env.payload).to_vec()));
        self.claim(
            &c.agency_id,
            c.size,
            Claim {
                signed_at: c.time.as_ref().map(|t| timestamp_from_proto(t).millis()),
                root: c.root_hash,
                witness: witness.to_owned(),
                seq: Some(seq),
                what: "witnessed checkpoint",
            },
        );
    }

    /// An EQUIVOCATION entry of `witness`'s journal: both checkpoints must
    /// verify with the accused agency's keys to count.
    pub(crate) fn equivocation(&mut self, keys: &Keys, witness: &str, seq: u64, e: &Equivocation) {
        let both =
            [&e.first, &e.second].map(|x| x.as_ref().and_then(|x| signed_checkpoint(keys, x)));
        let [Some(a), Some(b)] = both else {
            self.findings.push(Finding::new(
                Severity::Warning,
                rules::WITNESS_BAD_EVIDENCE,
                Location::entry(witness, seq),
                format!(
                    "equivocation evidence against {} does not hold two checkpoints validly signed by it",
                    e.agency_id
                ),
            ));
            return;
        };
        for c in [a, b] {
            self.claim(
                &c.agency_id,
                c.size,
                Claim {
                    signed_at: c.time.as_ref().map(|t| timestamp_from_proto(t).millis()),
                    root: c.root_hash,
                    witness: witness.to_owned(),
                    seq: Some(seq),
                    what: "equivocation evidence",
                },
            );
        }
    }

    fn claim(&mut self, agency: &str, size: u64, c: Claim) {
        self.claims
            .entry((agency.to_owned(), size))
            .or_default()
            .push(c);
    }

    /// Compares the evidence with the exports. `present` maps each verified
    /// agency to its export path, entry count and `exported_at` (ms).
    pub(crate) fn finish(
        mut self,
        present: &HashMap<String, (&Path, u64, i64)>,
        witnesses_present: &HashSet<String>,
    ) -> Vec<Finding> {
        let mut need: HashMap<String, BTreeSet<u64>> = HashMap::new();
        for (agency, size) in self.claims.keys() {
            let own = self.own.get(agency).and_then(|m| m.get(size));
            if present.contains_key(agency) && own.is_none() {
                need.entry(agency.clone()).or_default().insert(*size);
            }
        }
        let computed: HashMap<String, HashMap<u64, Vec<u8>>> = need
            .into_iter()
            .filter_map(|(a, sizes)| {
                let (path, _, _) = present.get(&a)?;
                Some((a, roots_at(path, &sizes)))
            })
            .collect();
        let mut out = std::mem::take(&mut self.findings);
        for ((agency, size), claims) in &self.claims {
            let roots: BTreeSet<&Vec<u8>> = claims.iter().map(|c| &c.root).collect();
            let loc = Location::entry(agency, *size);
            let who = |c: &Claim| match c.seq {
                Some(s) => format!("{} by {} #{s}", c.what, c.witness),
                None => format!("{} by {}", c.what, c.witness),
            };
            if roots.len() > 1 {
                let list: Vec<String> = claims
                    .iter()
                    .map(|c| format!("{} root {}", who(c), short(&c.root)))
                    .collect();
                out.push(Finding::new(
                    Severity::Critical,
                    rules::WITNESS_EQUIVOCATION,
                    loc.clone(),
                    format!(
                        "{agency} signed {} different roots for size {size}: {}",
                        roots.len(),
                        list.join("; ")
                    ),
                ));
            }
            let Some((_, entries, exported_at)) = present.get(agency) else {
                continue;
            };
            // Only checkpoints signed by the time of the export bind its length.
            let binding = claims
                .iter()
                .find(|c| c.signed_at.is_none_or(|t| t <= *exported_at));
            let export_root = self
                .own
                .get(agency)
                .and_then(|m| m.get(size))
                .or_else(|| computed.get(agency).and_then(|m| m.get(size)));
            let message = match (export_root, binding) {
                (_, Some(b)) if size > entries => Some(format!(
                    "witnesses saw {agency} commit to {size} entries, but its export has only {entries}: \
                     history was removed ({})",
                    who(b)
                )),
                (_, None) if size > entries => None,
                (Some(r), _) if !roots.contains(r) => Some(format!(
                    "{agency}'s export has root {} at size {size}, but its witnesses saw {}: \
                     the journal was rewritten after it was witnessed",
                    short(r),
                    claims
                        .iter()
                        .map(|c| format!("{} ({})", short(&c.root), who(c)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                _ => None,
            };
            if let Some(m) = message {
                out.push(Finding::new(
                    Severity::Critical,
                    rules::WITNESS_REWRITTEN,
                    loc,
                    m,
                ));
            }
        }
        for (agency, size, witness, hash, at) in &self.cosigs {
            // A cosignature made after the witness's export is not in it.
            let before_export = present.get(witness).is_none_or(|w| *at <= w.2);
            if witnesses_present.contains(witness)
                && before_export
                && !self.journaled.contains(&(witness.clone(), hash.clone()))
            {
                out.push(Finding::new(
                    Severity::Error,
                    rules::WITNESS_UNJOURNALED,
                    Location::entry(agency, *size),
                    format!(
                        "{agency}'s checkpoint of size {size} carries a cosignature by {witness}, \
                         but {witness}'s journal has no CHECKPOINT_WITNESSED entry for it"
                    ),
                ));
            }
        }
        out
    }
}

/// The checkpoint in `env` if its signatures are by keys of the agency it
/// names and verify at its time.
fn signed_checkpoint(keys: &Keys, env: &Envelope) -> Option<Checkpoint> {
    let c = Checkpoint::decode(env.payload.as_slice()).ok()?;
    let at = timestamp_from_proto(c.time.as_ref()?);
    if !keys.signed_by(env, &c.agency_id) {
        return None;
    }
    let ring: &KeyRing = &keys.ring;
    ring.verify(env, PAYLOAD_TYPE_CHECKPOINT, at).ok()?;
    Some(c)
}

/// Merkle roots of `path`'s entries at each of `sizes`.
fn roots_at(path: &Path, sizes: &BTreeSet<u64>) -> HashMap<u64, Vec<u8>> {
    let mut out = HashMap::new();
    let Ok(mut r) = open_records(path, None) else {
        return out;
    };
    let mut f = Frontier::new();
    let last = sizes.last().copied().unwrap_or(0);
    while f.size() < last {
        match r.next_record() {
            Ok(Some(Record::Entry(bytes))) => {
                f.push(leaf_hash(&bytes));
                if sizes.contains(&f.size()) {
                    out.insert(f.size(), f.root().to_vec());
                }
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    out
}

/// The first 8 bytes of a hash in hex.
pub(crate) fn short(h: &[u8]) -> String {
    hex::encode(&h[..h.len().min(8)])
}
