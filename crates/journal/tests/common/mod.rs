//! Helpers shared by the journal's integration tests.
#![allow(dead_code, unreachable_pub)]

use prost::Message;
use waymark_crypto::{AgencyKey, KeyRing, TrustedKey, proto_from_timestamp, sign_envelope};
use waymark_journal::{ExportMeta, Journal, JournalConfig, SledConfig, SledStore};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1::{Event, PublicKey};
use waymark_types::{AgencyId, AgencyKind, CaseId, EventId, Timestamp};

pub fn agency(s: &str) -> AgencyId {
    AgencyId::new(s).unwrap()
}

/// A signed event envelope, encoded.
pub fn event(
    key: &AgencyKey,
    sender: &str,
    recipient: &str,
    case: Option<CaseId>,
) -> (EventId, Vec<u8>) {
    let id = EventId::new();
    let ev = Event {
        event_id: id.to_string(),
        case_id: case.map(|c| c.to_string()).unwrap_or_default(),
        sender_id: sender.into(),
        recipient_id: recipient.into(),
        ..Event::default()
    };
    (
        id,
        sign_envelope(key, PAYLOAD_TYPE_EVENT, ev.encode_to_vec()).encode_to_vec(),
    )
}

/// Opens the sled store in `dir`. A test may reopen a directory right after
/// dropping its store; sled releases its file lock when its background
/// flusher thread has ended, which on a loaded machine can be a moment
/// later, so a lock conflict is retried for a few seconds.
pub fn open_store(dir: &std::path::Path) -> SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(dir, &SledConfig::default()) {
            Ok(s) => return s,
            Err(e)
                if std::time::Instant::now() < deadline
                    && format!("{e:?}").contains("acquire lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("opening the sled store: {e:?}"),
        }
    }
}

/// Opens the journal in `dir` (see [`open_store`]).
pub fn open(dir: &std::path::Path, key: &AgencyKey) -> Journal<SledStore> {
    let store = open_store(dir);
    let mut cfg = JournalConfig::new(agency("police-a"));
    cfg.checkpoint_every_entries = 5;
    Journal::open(store, cfg, Some(key.clone())).unwrap()
}

pub fn meta(key: &AgencyKey) -> ExportMeta {
    ExportMeta {
        agency_kind: AgencyKind::Police,
        keys: vec![PublicKey {
            key_id: key.key_id().to_string(),
            ed25519: key.public_key().to_bytes().to_vec(),
            valid_from: Some(proto_from_timestamp(Timestamp::from_millis(0))),
            valid_until: None,
        }],
        exported_at: Timestamp::from_millis(1_000_000),
    }
}

pub fn ring(keys: &[&AgencyKey]) -> KeyRing {
    let mut r = KeyRing::new();
    for k in keys {
        r.insert(TrustedKey {
            key: k.public_key(),
            valid_from: Timestamp::from_millis(0),
            valid_until: None,
        });
    }
    r
}
