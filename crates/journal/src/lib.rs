//! Waymark's per-agency journal.
//!
//! Purpose: keep, for years, verifiable evidence of everything an agency
//! recorded, sent and received, so that an auditor or a court can check who
//! was responsible for a person and on what basis data moved.
//!
//! # Invariants
//! - Entries are append-only and gapless from seq 1. Entry n is stored as its
//!   exact JournalEntry encoding (the entry bytes); signed event envelopes
//!   inside are kept byte for byte, never re-encoded.
//! - `entry_hash(n) = SHA-256(0x00 || entry_bytes(n))` is both the RFC 9162
//!   Merkle leaf hash and the hash-chain link: entry n+1's `prev_hash`.
//! - An append returns only after its entry is on stable storage (a real
//!   fdatasync), group-committed with concurrent appends ([`journal`]).
//! - Journaling an originated event and queuing it in the outbox, and
//!   journaling a receipt and removing the outbox item it completes, are each
//!   one atomic commit. Received events are deduplicated by event id
//!   atomically with the append. An item that is not receipted leaves the
//!   outbox through [`Journal::complete_outbox`], in the same group commit.
//! - Checkpoints are signed RFC 9162 tree heads over durable entries only.
//! - Verification ([`verify`]) and proof checking ([`merkle`]) never panic on
//!   hostile input and report the first bad position.
//!
//! Storage is behind [`JournalStore`]; [`SledStore`] (a fsynced write-ahead
//! log plus a sled index, see its module docs for why) is the implementation,
//! and [`conformance::run`] is the suite any replacement must pass.

#![forbid(unsafe_code)]

#[cfg(feature = "bench")]
pub mod bench;
pub mod conformance;
mod error;
pub mod export;
pub mod journal;
pub mod merkle;
mod sled_store;
pub mod store;
pub mod verify;
mod wal;
mod wal_codec;

pub use error::JournalError;
pub use export::{ExportMeta, MAGIC, export};
pub use journal::{Appended, Journal, JournalConfig, Progress, Staged};
pub use sled_store::{SledConfig, SledStore};
pub use store::{Batch, JournalStore, OutboxItem, RequestRecord, StoreError};
pub use verify::{
    VerifyFailure, VerifyProblem, VerifySummary, import, verify_export, verify_journal,
};
