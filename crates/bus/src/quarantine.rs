//! Quarantine: why a bus message was refused, how it is recorded and counted.
//!
//! A refused message is acknowledged on the bus (redelivering it cannot make
//! it valid), journaled as QUARANTINED with a reason token and a detail free
//! of personal data (ids, tokens and rule names only), counted in the
//! `waymark_bus_quarantined_total{reason}` metric and in [`Counters`], and
//! never applied. When its sender is authentic (the signature verified) the
//! sender also gets a receipt with status QUARANTINED and the reason.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use waymark_proto::v1::Quarantine;
use waymark_types::{AgencyId, EventId};

/// Most bytes of a refused message kept in the journal.
pub const MAX_KEPT: usize = 64 * 1024;

/// Why a message was quarantined. Tokens are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The signature does not verify, or is missing or duplicated.
    BadSignature,
    /// The signing key belongs to no member of the directory.
    UnknownSender,
    /// The key was not valid when the event says it was signed.
    RevokedKey,
    /// Subject, signer, `sender_id`, `recipient_id` or kind token disagree.
    SubjectMismatch,
    /// The rules refuse the event.
    PolicyViolation,
    /// Bytes that do not decode, or an event whose fields are malformed.
    Malformed,
    /// Larger than the configured limit.
    Oversized,
    /// An envelope that is not an event.
    WrongPayloadType,
    /// A receipt for an event this agency never sent to its signer, or whose
    /// envelope hash differs from the journaled one.
    ReceiptMismatch,
    /// Sealed personal data that is missing, altered, inline in the signed
    /// event, or does not open with this agency's encryption key.
    SealedData,
}

impl Reason {
    /// The stable token journaled in `Quarantine.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadSignature => "bad_signature",
            Reason::UnknownSender => "unknown_sender",
            Reason::RevokedKey => "revoked_key",
            Reason::SubjectMismatch => "subject_mismatch",
            Reason::PolicyViolation => "policy_violation",
            Reason::Malformed => "malformed",
            Reason::Oversized => "oversized",
            Reason::WrongPayloadType => "wrong_payload_type",
            Reason::ReceiptMismatch => "receipt_mismatch",
            Reason::SealedData => "sealed_data",
        }
    }
}

/// A refusal with its reason and a detail for the auditor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason.
    pub reason: Reason,
    /// Detail without personal data.
    pub detail: String,
    /// Set once the sender's signature verified: who to send the QUARANTINED
    /// receipt to, and for which event.
    pub authentic: Option<Authentic>,
}

/// A verified sender of a refused event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentic {
    /// The refused event.
    pub event_id: EventId,
    /// Its verified sender.
    pub sender: AgencyId,
}

impl Rejection {
    /// A rejection of an unauthenticated message.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        let mut detail: String = detail.into();
        if detail.len() > 2000 {
            let mut cut = 2000;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
        Self {
            reason,
            detail,
            authentic: None,
        }
    }

    /// Marks the sender as verified.
    pub fn authentic(mut self, event_id: EventId, sender: AgencyId) -> Self {
        self.authentic = Some(Authentic { event_id, sender });
        self
    }
}

/// The journal record of a refused message.
pub fn record(rejection: &Rejection, subject: &str, message: &[u8]) -> Quarantine {
    let truncated = message.len() > MAX_KEPT;
    let claimed_sender = match crate::subjects::parse(subject) {
        Some(crate::subjects::Subject::Event { sender, .. }) => sender.to_string(),
        _ => String::new(),
    };
    Quarantine {
        reason: rejection.reason.as_str().to_owned(),
        detail: rejection.detail.clone(),
        subject: subject.chars().take(256).collect(),
        message_hash: Sha256::digest(message).to_vec(),
        message: message[..message.len().min(MAX_KEPT)].to_vec(),
        truncated,
        claimed_sender,
    }
}

/// In-process counters of quarantined messages and deduplicated deliveries,
/// for tests and health endpoints (the metrics exporter has the same).
#[derive(Debug, Default)]
pub struct Counters {
    quarantined: Mutex<BTreeMap<&'static str, u64>>,
    duplicates: Mutex<u64>,
    equivocations: Mutex<u64>,
}

impl Counters {
    pub(crate) fn quarantined(&self, reason: Reason) {
        metrics::counter!("waymark_bus_quarantined_total", "reason" => reason.as_str())
            .increment(1);
        if let Ok(mut m) = self.quarantined.lock() {
            *m.entry(reason.as_str()).or_default() += 1;
        }
    }

    pub(crate) fn duplicate(&self) {
        metrics::counter!("waymark_bus_duplicates_total").increment(1);
        if let Ok(mut d) = self.duplicates.lock() {
            *d += 1;
        }
    }

    pub(crate) fn equivocation(&self) {
        metrics::counter!("waymark_bus_equivocations_total").increment(1);
        if let Ok(mut d) = self.equivocations.lock() {
            *d += 1;
        }
    }

    /// Messages quarantined with `reason` since start.
    pub fn quarantined_count(&self, reason: Reason) -> u64 {
        self.quarantined
            .lock()
            .map(|m| m.get(reason.as_str()).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Messages quarantined for any reason since start.
    pub fn quarantined_total(&self) -> u64 {
        self.quarantined
            .lock()
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// Deliveries of an already journaled event since start.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.lock().map(|d| *d).unwrap_or(0)
    }

    /// Equivocations detected since start.
    pub fn equivocations(&self) -> u64 {
        self.equivocations.lock().map(|d| *d).unwrap_or(0)
    }
}
