//! Waymark's reliable, authenticated delivery over NATS JetStream.
//!
//! Purpose: agencies must never lose, duplicate or accept a forged referral,
//! consent or handover, whatever the broker does. The broker is a transport
//! only; custody evidence is the two signed journals and the receipt linking
//! them.
//!
//! # Delivery state machine (one event, sender A, recipient B)
//! ```text
//!  A: send() ── policy (A's view) ── sign ── append_originated ──▶ OUTBOX (durable)
//!  A relay: OUTBOX ── publish (Nats-Msg-Id = event id) ──▶ SENT ──(receipt timeout)──▶ re-send
//!  B inbox: message ── checks (check.rs) ──┬─ ok ──▶ append_received (dedup) ─▶ receipt ─▶ B OUTBOX
//!                                          └─ bad ─▶ append_quarantined (+ QUARANTINED receipt if authentic)
//!           ack the NATS message only after the journal append is durable
//!  B relay: receipt ── publish ── PubAck ──▶ receipt leaves B's outbox (receipts are not receipted)
//!  A inbox: receipt ── checks ── append_received(completes = event) ──▶ OUTBOX item removed atomically
//! ```
//! - A JetStream ack never counts as delivery; only the recipient's signed
//!   receipt, journaled by the sender, does.
//! - Per (case, recipient) the relay keeps one event in flight (stop and
//!   wait): event k+1 is published only after event k's receipt is journaled,
//!   so B journals a case's events in A's order even if the broker loses,
//!   reorders or replays messages (stream deleted, server killed).
//! - Failures: publish error → exponential backoff, re-provision if the
//!   stream is gone; PubAcks lost with a dying broker → one
//!   `publish_ack_timeout` per publish batch (acks are awaited together),
//!   the unacked items stay queued and go again; lost message or receipt → re-send after the receipt
//!   timeout; B sees the duplicate (journal dedup by event id) and re-sends
//!   the receipt it already issued (receipt ids are derived from the event
//!   id, so the same receipt is found again, also after a crash between the
//!   two appends); journal failure at B → the message is not acked and comes
//!   again; bad input → quarantined, acked, counted, never applied.
//!
//! Personal data travels sealed to the recipient and detached from the
//! signed event, never journaled: see [`sealing`].
//!
//! Modules: [`subjects`], [`provision`], [`directory`], [`quarantine`], [`sealing`],
//! [`config`], [`error`]; internal: relay, inbox, witness (checkpoints),
//! check (verification and policy), state (case-state cache), trace (W3C
//! context in NATS headers), meter (metrics: outbox depth, receipts pending,
//! delivery latency, journal size, checkpoint lag).

#![forbid(unsafe_code)]

mod bus;
mod check;
pub mod config;
pub mod directory;
pub mod error;
mod inbox;
mod meter;
pub mod provision;
pub mod quarantine;
mod receipt;
mod relay;
pub mod sealing;
mod state;
pub mod subjects;
mod trace;
mod witness;

pub use bus::{Bus, Sent};
pub use config::BusConfig;
pub use directory::{Directory, Member};
pub use error::{BusError, SendError};
pub use quarantine::{Counters, Reason, Rejection};
pub use sealing::{Opened, Sealing};

pub(crate) use bus::Ctx;
