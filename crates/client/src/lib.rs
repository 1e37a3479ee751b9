//! A Rust client for agency back-office systems: call your own Waymark
//! agency over gRPC.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use waymark_client::{Client, ConnectOptions};
//! use waymark_proto::v1 as pb;
//!
//! // `waymark up` prints each agency's address.
//! let client = Client::connect("http://127.0.0.1:50051", ConnectOptions::default()).await?;
//! let opened = client
//!     .cases()
//!     .open(pb::OpenCaseRequest {
//!         channel: pb::IdentificationChannel::Police as i32,
//!         forms: vec![pb::ExploitationForm::Labour as i32],
//!         ..Default::default() // idempotency_key: generated, kept across retries
//!     })
//!     .await?;
//! println!("case {}", opened.case_id);
//! # Ok(()) }
//! ```
//!
//! - **Connecting** ([`Client::connect`], [`ConnectOptions`]): plaintext or
//!   TLS (CA file; client certificate and key for mutual TLS), connect and
//!   per-attempt timeouts, HTTP/2 keep-alive.
//! - **Calls**: one handle per service, [`Client::cases`],
//!   [`Client::consents`], [`Client::referrals`], [`Client::handovers`],
//!   [`Client::journal`], [`Client::inbox`], and per agency kind
//!   [`Client::police`], [`Client::shelter`], [`Client::ngo`],
//!   [`Client::returndesk`], [`Client::labour`]; each has `raw()` for the
//!   generated tonic client. [`Client::read`] and [`Client::write`] wrap
//!   any other call the same way.
//! - **Errors** ([`Error`]): the agency's status decoded with its
//!   `google.rpc` details: field violations, rule codes, resources.
//! - **Retries** ([`RetryPolicy`]): a recording call always carries an
//!   idempotency key (yours, or one generated per call) and is retried with
//!   that same key on `UNAVAILABLE`, `RESOURCE_EXHAUSTED` and
//!   `DEADLINE_EXCEEDED` with capped exponential backoff, so the agency
//!   records it once; reads are retried alike. `INVALID_ARGUMENT`,
//!   `FAILED_PRECONDITION` and every other refusal are returned at once.
//! - **Inbox** ([`InboxFollower`]): follows `InboxService.Subscribe`,
//!   persists its cursor in a small file (replaced atomically), resumes
//!   from it after a restart and reconnects when the stream breaks.
//! - **HTCDS import** ([`htcds`]): cases from a CSV in the layout of IOM's
//!   Human Trafficking Case Data Standard, re-runnable without duplicates.
//!
//! Examples (each takes the agency's address; start agencies with
//! `cargo run --release -p waymark-cli -- up`):
//! `cargo run -p waymark-client --example open_and_refer -- ADDR SHELTER_ID`,
//! `... --example follow_inbox -- ADDR CURSOR_FILE`,
//! `... --example import_htcds -- ADDR FILE.csv`.
//!
//! # Invariants
//! - No recording call leaves without an idempotency key, and retries of a
//!   call never change it.
//! - A refusal is never retried.
//! - The inbox cursor on disk only moves forward, and only past items the
//!   caller has finished with.

#![forbid(unsafe_code)]

mod calls;
mod client;
mod error;
pub mod htcds;
mod inbox;
mod retry;

pub use calls::{
    Cases, Consents, Handovers, Inbox, Journal, Labour, Ngo, Police, Referrals, ReturnDesk, Shelter,
};
pub use client::{Client, ConnectError, ConnectOptions, Idempotent, TlsFiles, new_key};
pub use error::{Error, FieldViolation};
pub use inbox::{CursorError, CursorFile, FollowError, InboxFollower};
/// Protobuf well-known types (`Timestamp`, ...) used in the messages.
pub use prost_types;
pub use retry::RetryPolicy;
/// The generated protocol bindings this client speaks.
pub use waymark_proto as proto;
