//! Two agencies (police A, shelter B) on a real nats-server.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use waymark_bus::{Bus, BusConfig, Directory};
use waymark_crypto::{AgencyKey, TrustedKey, proto_from_timestamp};
use waymark_journal::{Journal, JournalConfig, SledConfig, SledStore};
use waymark_policy::RuleSets;
use waymark_proto::v1 as pb;
use waymark_proto::v1::event::Body as B;
use waymark_types::{AgencyId, AgencyKind, CaseId, EventId, Timestamp};

pub const A: &str = "police-a";
pub const B_: &str = "shelter-b";
/// A third member of the directory; it runs no bus.
pub const C: &str = "ngo-c";

pub fn id(s: &str) -> AgencyId {
    AgencyId::new(s).unwrap()
}

pub struct Keys {
    pub a: AgencyKey,
    pub b: AgencyKey,
    pub c: AgencyKey,
    /// A's retired key: valid only until [`RETIRED_AT`] (revoked after).
    pub a_retired: AgencyKey,
    /// A's next key: valid only from [`NEXT_FROM`] (not yet in force).
    pub a_next: AgencyKey,
    pub dir: Arc<Directory>,
}

/// When A's retired key stopped being valid (ms since the epoch: 2020).
pub const RETIRED_AT: i64 = 1_577_836_800_000;
/// When A's next key becomes valid (ms since the epoch: 2100).
pub const NEXT_FROM: i64 = 4_102_444_800_000;

pub fn keys() -> Keys {
    let (a, b, c) = (
        AgencyKey::generate(),
        AgencyKey::generate(),
        AgencyKey::generate(),
    );
    let (a_retired, a_next) = (AgencyKey::generate(), AgencyKey::generate());
    let mut dir = Directory::new();
    dir.insert(
        id(A),
        AgencyKind::Police,
        [
            TrustedKey {
                key: a_retired.public_key(),
                valid_from: Timestamp(0),
                valid_until: Some(Timestamp(RETIRED_AT)),
            },
            TrustedKey {
                key: a_next.public_key(),
                valid_from: Timestamp(NEXT_FROM),
                valid_until: None,
            },
        ],
    );
    for (n, k, kind) in [
        (A, &a, AgencyKind::Police),
        (B_, &b, AgencyKind::Shelter),
        (C, &c, AgencyKind::Ngo),
    ] {
        dir.insert(
            id(n),
            kind,
            [TrustedKey {
                key: k.public_key(),
                valid_from: Timestamp(0),
                valid_until: None,
            }],
        );
    }
    Keys {
        a,
        b,
        c,
        a_retired,
        a_next,
        dir: Arc::new(dir),
    }
}

pub fn open_journal(dir: &Path, agency: &str, key: &AgencyKey) -> Arc<Journal<SledStore>> {
    let store = SledStore::open(dir, &SledConfig::default()).unwrap();
    Arc::new(Journal::open(store, JournalConfig::new(id(agency)), Some(key.clone())).unwrap())
}

/// Like [`open_journal`], signing a checkpoint after every entry.
pub fn open_journal_checkpointing(
    dir: &Path,
    agency: &str,
    key: &AgencyKey,
) -> Arc<Journal<SledStore>> {
    let store = SledStore::open(dir, &SledConfig::default()).unwrap();
    let mut cfg = JournalConfig::new(id(agency));
    cfg.checkpoint_every_entries = 1;
    Arc::new(Journal::open(store, cfg, Some(key.clone())).unwrap())
}

pub fn config(agency: &str, kind: AgencyKind) -> BusConfig {
    let mut c = BusConfig::new(id(agency), kind);
    c.receipt_timeout = Duration::from_secs(3);
    c.backoff = (Duration::from_millis(20), Duration::from_millis(500));
    c.ack_wait = Duration::from_secs(5);
    c.publish_ack_timeout = Duration::from_secs(2);
    c.checkpoint_interval = Duration::from_millis(300);
    c
}

pub fn start(
    js: &async_nats::jetstream::Context,
    agency: &str,
    kind: AgencyKind,
    journal: Arc<Journal<SledStore>>,
    k: &Keys,
    key: &AgencyKey,
) -> Bus {
    start_with(js, config(agency, kind), journal, k, key)
}

pub fn start_with(
    js: &async_nats::jetstream::Context,
    config: BusConfig,
    journal: Arc<Journal<SledStore>>,
    k: &Keys,
    key: &AgencyKey,
) -> Bus {
    Bus::start(
        config,
        js.clone(),
        journal,
        k.dir.clone(),
        key.clone(),
        Arc::new(RuleSets::builtin()),
        CancellationToken::new(),
    )
}

fn base(case: CaseId, body: B) -> pb::Event {
    pb::Event {
        event_id: EventId::new().to_string(),
        case_id: case.to_string(),
        sender_id: A.into(),
        sender_kind: pb::AgencyKind::Police as i32,
        occurred_at: Some(proto_from_timestamp(Timestamp::now())),
        rule_set: "bg@1".into(),
        body: Some(body),
        ..Default::default()
    }
}

/// A opens `case` locally.
pub fn opened(case: CaseId) -> pb::Event {
    base(
        case,
        B::CaseOpened(pb::CaseOpened {
            channel: pb::IdentificationChannel::Police as i32,
            ..Default::default()
        }),
    )
}

/// A tells B about a signal on `case`, under a legal obligation.
pub fn signal(case: CaseId) -> pb::Event {
    let mut e = base(
        case,
        B::SignalReceived(pb::SignalReceived {
            channel: pb::IdentificationChannel::Police as i32,
            ..Default::default()
        }),
    );
    e.recipient_id = B_.into();
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

/// Event ids of B's RECEIVED entries for `case`, in journal order.
pub fn received_ids(j: &Journal<SledStore>, case: &CaseId) -> Vec<String> {
    use prost::Message;
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = j.case_entries(case, after, 1000).unwrap();
        let Some(last) = page.last().map(|p| p.0) else {
            break;
        };
        for (_, b) in page {
            let e = pb::JournalEntry::decode(b.as_slice()).unwrap();
            if e.kind == pb::EntryKind::Received as i32 {
                let env = pb::Envelope::decode(e.envelope.as_slice()).unwrap();
                let ev = pb::Event::decode(env.payload.as_slice()).unwrap();
                if !matches!(ev.body, Some(B::Receipt(_))) {
                    out.push(ev.event_id);
                }
            }
        }
        after = last;
    }
    out
}

pub fn outbox_len(j: &Journal<SledStore>) -> usize {
    j.outbox(0, usize::MAX).unwrap().len()
}

/// Sends `per_case` signals on each of `cases` (after opening them), one task
/// per case; returns the event ids per case in send order.
pub async fn burst(bus: &Arc<Bus>, cases: &[CaseId], per_case: usize) -> Vec<Vec<String>> {
    let mut tasks = Vec::new();
    for &c in cases {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            bus.send(opened(c)).await.unwrap();
            let mut ids = Vec::new();
            for _ in 0..per_case {
                let e = signal(c);
                ids.push(e.event_id.clone());
                bus.send(e).await.unwrap();
            }
            ids
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Logs to the test output, filtered by `RUST_LOG`.
pub fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The journal entries of `kind`, in journal order.
pub fn entries_of_kind(j: &Journal<SledStore>, kind: pb::EntryKind) -> Vec<pb::JournalEntry> {
    use prost::Message;
    (1..=j.size().unwrap())
        .filter_map(|seq| j.entry(seq).unwrap())
        .map(|b| pb::JournalEntry::decode(b.as_slice()).unwrap())
        .filter(|e| e.kind == kind as i32)
        .collect()
}

/// `event` signed by `key`, encoded as an Envelope.
pub fn signed(key: &AgencyKey, event: &pb::Event) -> Vec<u8> {
    use prost::Message;
    waymark_crypto::sign_envelope(
        key,
        waymark_proto::PAYLOAD_TYPE_EVENT,
        event.encode_to_vec(),
    )
    .encode_to_vec()
}
