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
//! - Transport: what a relay round has due for one recipient is published as
//!   one [`batch`] message (`EventBatch`, subject token `batch`) instead of
//!   one message per event, because the broker syncs every message it stores;
//!   the inbox unpacks it and handles each event as above, and acks the
//!   message once all of them are durable. A lone event travels alone.
//! - The inbox pipelines: a batch's stateless checks (signature, subject,
//!   shape) run, in parallel, while the previous batch journals; the stateful
//!   checks and the journal step run one batch at a time, in stream order,
//!   and a batch's entries and receipts are staged and made durable by one
//!   commit.
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
//! # Threads
//! A send checks, signs and stages its append on the caller's (async)
//! thread when the case view is cached, and waits for the commit without a
//! thread of its own: one send per batch leads the commit on a blocking
//! thread ([`waymark_journal::Journal::progress`]), the others wait on a
//! `Notify` the journal wakes at every commit step. The relay is woken from
//! the thread that saw the commit durable. Each thread hand-off costs a
//! wake-up of a sleeping thread, which on a busy two-core host was a large
//! part of both an event's latency and an agency's CPU (`BENCHMARKS.md`).
//!
//! Personal data travels sealed to the recipient and detached from the
//! signed event, never journaled: see [`sealing`].
//!
//! Modules: [`batch`], [`subjects`], [`provision`], [`directory`], [`quarantine`], [`sealing`],
//! [`config`], [`error`]; internal: relay, inbox, witness (checkpoints),
//! check (verification and policy), state (case-state cache), trace (W3C
//! context in NATS headers), meter (metrics: outbox depth, receipts pending,
//! delivery latency, journal size, checkpoint lag).

#![forbid(unsafe_code)]

pub mod batch;
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
