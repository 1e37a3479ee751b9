//! The common gRPC services every Waymark agency serves, over one agency's
//! bus, journal and policy view: `waymark.v1.CaseService`, `ConsentService`,
//! `ReferralService`, `HandoverService`, `InboxService` and `JournalService`.
//!
//! A service binary (or `waymark up`) starts an [`Agency`] and serves
//! [`Agency::services`] with `waymark_node::run`, adding its own
//! agency-specific services, which record their events through the same
//! [`Recorder`]:
//!
//! ```no_run
//! # async fn f(config: waymark_node::NodeConfig, shutdown: waymark_node::Shutdown,
//! #     js: async_nats::jetstream::Context, dir: std::sync::Arc<waymark_bus::Directory>,
//! #     key: waymark_crypto::AgencyKey) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use waymark_agency::{Agency, AgencySettings};
//! let rules = Arc::new(waymark_policy::RuleSets::builtin());
//! let agency = Agency::start(AgencySettings::from_node(&config), js, dir, key, rules, &shutdown)?;
//! let node = waymark_node::run(&config, agency.services(), shutdown).await?;
//! node.wait().await?;
//! # Ok(()) }
//! ```
//!
//! # Writes
//! validate the request → look up the idempotency key (an earlier call's
//! answer) → build the `waymark.v1.Event` (body; recipient, purpose, basis
//! and shares from `SendTo`) → `Bus::send_for_request` (sign, policy check
//! in this agency's view before anything is journaled, durable append with
//! the key's request record, outbox) → `RecordedEvent`. See
//! [`write`](crate::Recorder) for the idempotency contract.
//!
//! # Invariants
//! - Nothing personal is journaled or sent in clear: `OpenCase.personal` goes
//!   to the agency store as ciphertext under a per-case key kept in its own
//!   directory (`case_keys.rs`: destroying the key erases the data), and
//!   `SendTo.personal` is sealed with HPKE to the recipient's encryption key
//!   with its ciphertext detached from the signed event, so no journal ever
//!   holds it (`sealing.rs`); received personal data is kept under the
//!   receiver's own per-case key.
//! - Erasure destroys the per-case key, journals a `CaseErased`
//!   attestation, and notifies every agency the data was sent to, which
//!   erases its copy and acknowledges (`erasure.rs`); afterwards nothing
//!   personal of the case is stored or sent again.
//! - A recording call answers only after the journal entry is durable; a
//!   retry with the same idempotency key records nothing new.
//! - Answers that refer to an earlier event embed `EventRef{event_id,
//!   SHA-256 of its envelope as journaled here}`.
//! - Every failure becomes a status in one place ([`ApiError`]), with
//!   `BadRequest` field violations or `ErrorInfo{reason = rule code}`.
//! - Every stream is fed through a bounded channel (backpressure, no drops)
//!   and ends when the agency shuts down.
//! - Withdrawals notify every agency the policy says must acknowledge, and a
//!   received withdrawal is acknowledged automatically (`follow.rs`).
//!
//! # Storage
//! The journal (crate `waymark-journal`) lives in the configured data
//! directory; this crate's own sled store (idempotency keys, personal data,
//! case index, follower cursor) in `agency/` inside it; see `store.rs`. The
//! per-case keys of personal data in `case-keys/` beside it.

#![forbid(unsafe_code)]

mod agency;
mod case_keys;
mod case_svc;
mod common;
mod consent_svc;
mod erasure;
mod error;
mod follow;
mod handover_svc;
mod inbox_svc;
mod journal_svc;
pub mod process;
mod referral_svc;
mod sealing;
mod state;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod views;
mod write;

pub use agency::{Agency, AgencySettings, StartError};
pub use error::{ApiError, DOMAIN};
pub use store::StoreError;
pub use write::{MAX_IDEMPOTENCY_KEY, Recorded, Recorder};
