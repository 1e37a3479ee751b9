//! Fixtures for Waymark's end-to-end tests: agencies with real journals and a
//! real bus, on whatever NATS deployment a test starts (one server or a
//! cluster). The tests themselves are in `tests/tests/`.
//!
//! Everything here talks to real parts; nothing is mocked.

#![forbid(unsafe_code)]

pub mod otlp;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio_util::sync::CancellationToken;
use waymark_bus::{Bus, BusConfig, Directory};
use waymark_crypto::{AgencyKey, TrustedKey, proto_from_timestamp};
use waymark_journal::{Journal, JournalConfig, SledConfig, SledStore};
use waymark_policy::RuleSets;
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body;
use waymark_types::{AgencyId, AgencyKind, CaseId, EventId, Timestamp};

/// One agency taking part in a test: its key, its journal, and (once started) its bus.
pub struct TestAgency {
    /// The agency's id.
    pub id: AgencyId,
    /// The agency's kind.
    pub kind: AgencyKind,
    /// Its signing key.
    pub key: AgencyKey,
    /// Its journal.
    pub journal: Arc<Journal<SledStore>>,
}

impl TestAgency {
    /// Creates an agency with a fresh key and a journal in `dir`.
    ///
    /// # Panics
    /// If the id is invalid or the journal cannot be opened: test setup.
    pub fn new(id: &str, kind: AgencyKind, dir: &Path) -> Self {
        Self::with_key(id, kind, dir, AgencyKey::generate())
    }

    /// Like [`TestAgency::new`] with a given key (e.g. one loaded from a file
    /// by a child process playing this agency).
    ///
    /// # Panics
    /// If the id is invalid or the journal cannot be opened: test setup.
    pub fn with_key(id: &str, kind: AgencyKind, dir: &Path, key: AgencyKey) -> Self {
        let id = AgencyId::new(id).expect("valid agency id");
        let store = SledStore::open(dir, &SledConfig::default()).expect("open sled store");
        let journal = Journal::open(store, JournalConfig::new(id.clone()), Some(key.clone()))
            .expect("open journal");
        Self {
            id,
            kind,
            key,
            journal: Arc::new(journal),
        }
    }

    /// Starts this agency's bus on `js`, with test-friendly timers and
    /// `replicas` copies of each stream.
    pub fn start_bus(
        &self,
        js: &async_nats::jetstream::Context,
        directory: &Arc<Directory>,
        replicas: usize,
    ) -> Bus {
        let mut c = BusConfig::new(self.id.clone(), self.kind);
        c.stream_replicas = replicas;
        c.receipt_timeout = Duration::from_secs(3);
        c.backoff = (Duration::from_millis(20), Duration::from_millis(500));
        c.ack_wait = Duration::from_secs(5);
        Bus::start(
            c,
            js.clone(),
            self.journal.clone(),
            directory.clone(),
            self.key.clone(),
            Arc::new(RuleSets::builtin()),
            CancellationToken::new(),
        )
    }
}

/// The federation directory for `agencies`: every key valid from the epoch.
pub fn directory(agencies: &[&TestAgency]) -> Arc<Directory> {
    let mut dir = Directory::new();
    for a in agencies {
        dir.insert(
            a.id.clone(),
            a.kind,
            [TrustedKey {
                key: a.key.public_key(),
                valid_from: Timestamp(0),
                valid_until: None,
            }],
        );
    }
    Arc::new(dir)
}

fn event(from: &TestAgency, case: CaseId, body: Body) -> pb::Event {
    pb::Event {
        event_id: EventId::new().to_string(),
        case_id: case.to_string(),
        sender_id: from.id.to_string(),
        sender_kind: pb::AgencyKind::Police as i32,
        occurred_at: Some(proto_from_timestamp(Timestamp::now())),
        rule_set: "bg@1".into(),
        body: Some(body),
        ..Default::default()
    }
}

/// A police agency opens `case` (kept in its own journal).
pub fn case_opened(police: &TestAgency, case: CaseId) -> pb::Event {
    event(
        police,
        case,
        Body::CaseOpened(pb::CaseOpened {
            channel: pb::IdentificationChannel::Police as i32,
            ..Default::default()
        }),
    )
}

/// A police agency tells a shelter about an identification signal on `case`,
/// under a legal obligation (no personal data).
pub fn signal_to(police: &TestAgency, shelter: &TestAgency, case: CaseId) -> pb::Event {
    let mut e = event(
        police,
        case,
        Body::SignalReceived(pb::SignalReceived {
            channel: pb::IdentificationChannel::Police as i32,
            ..Default::default()
        }),
    );
    e.recipient_id = shelter.id.to_string();
    e.recipient_kind = pb::AgencyKind::Shelter as i32;
    e.purpose = pb::Purpose::Protection as i32;
    e.basis = Some(pb::DisclosureBasis {
        basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
            basis: pb::LegalBasis::LegalObligation as i32,
            justification: "statutory duty to notify the shelter of a signal".into(),
        })),
    });
    e
}

/// Event ids of the non-receipt events `journal` RECEIVED for `case`, in
/// journal order.
///
/// # Panics
/// On a journal read error or an undecodable entry: the journal is corrupt.
pub fn received_event_ids(journal: &Journal<SledStore>, case: &CaseId) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = journal
            .case_entries(case, after, 1000)
            .expect("read case entries");
        let Some(last) = page.last().map(|p| p.0) else {
            return out;
        };
        for (_, bytes) in page {
            let entry = pb::JournalEntry::decode(bytes.as_slice()).expect("entry decodes");
            if entry.kind != pb::EntryKind::Received as i32 {
                continue;
            }
            let env = pb::Envelope::decode(entry.envelope.as_slice()).expect("envelope decodes");
            let ev = pb::Event::decode(env.payload.as_slice()).expect("event decodes");
            if !matches!(ev.body, Some(Body::Receipt(_))) {
                out.push(ev.event_id);
            }
        }
        after = last;
    }
}

/// Whether the agency's outbox is empty (every sent event has its receipt).
///
/// # Panics
/// On a journal read error.
pub fn outbox_empty(journal: &Journal<SledStore>) -> bool {
    journal.outbox(0, 1).expect("read outbox").is_empty()
}
