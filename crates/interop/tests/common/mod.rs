//! A small federation of real journals (sled store, fsynced appends, signed
//! trailers) built in-process for the interop tests: every event is signed
//! by its sender, journaled as originated by it and as received by its
//! recipient, and receipted back; the journals are then exported to
//! `<dir>/<agency>.wmj` exactly as agencies export them.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::{AgencyKey, proto_from_timestamp, sign_envelope};
use waymark_journal::{ExportMeta, Journal, JournalConfig, SledConfig, SledStore, export};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1::{self as pb, event::Body};
use waymark_types::{AgencyId, AgencyKind, CaseId, EventId, Timestamp};

/// One agency: its key and its journal.
pub struct Agency {
    pub id: &'static str,
    pub kind: pb::AgencyKind,
    pub key: AgencyKey,
    journal: Journal<SledStore>,
    _dir: tempfile::TempDir,
}

/// The agencies and a clock that moves a minute per event.
pub struct Fed {
    pub agencies: Vec<Agency>,
    pub case: CaseId,
    pub now: Timestamp,
}

/// A signed event as sent.
#[derive(Clone)]
pub struct Sent {
    pub event: pb::Event,
    pub envelope: Vec<u8>,
}

impl Sent {
    pub fn id(&self) -> String {
        self.event.event_id.clone()
    }

    pub fn eref(&self) -> pb::EventRef {
        pb::EventRef {
            event_id: self.id(),
            envelope_hash: Sha256::digest(&self.envelope).to_vec(),
        }
    }
}

/// Disclosure fields of an event.
#[derive(Default, Clone)]
pub struct Disclose {
    pub basis: Option<pb::disclosure_basis::Basis>,
    pub purpose: i32,
    pub shares: Vec<i32>,
    pub sealed: Vec<pb::SealedData>,
}

pub fn consent_basis(id: &str, purpose: pb::Purpose) -> Disclose {
    Disclose {
        basis: Some(pb::disclosure_basis::Basis::ConsentId(id.to_owned())),
        purpose: purpose as i32,
        ..Disclose::default()
    }
}

pub fn legal_basis(b: pb::LegalBasis, why: &str, purpose: pb::Purpose) -> Disclose {
    Disclose {
        basis: Some(pb::disclosure_basis::Basis::Legal(pb::LegalBasisClaim {
            basis: b as i32,
            justification: why.to_owned(),
        })),
        purpose: purpose as i32,
        ..Disclose::default()
    }
}

pub fn ts(t: Timestamp) -> Option<prost_types::Timestamp> {
    Some(proto_from_timestamp(t))
}

impl Fed {
    /// `agencies`: (id, kind).
    pub fn new(agencies: &[(&'static str, pb::AgencyKind)]) -> Self {
        let agencies = agencies
            .iter()
            .map(|(id, kind)| {
                let dir = tempfile::tempdir().unwrap();
                let key = AgencyKey::generate();
                let store = SledStore::open(dir.path(), &SledConfig::default()).unwrap();
                let cfg = JournalConfig::new(AgencyId::new(id).unwrap());
                let journal = Journal::open(store, cfg, Some(key.clone())).unwrap();
                Agency {
                    id,
                    kind: *kind,
                    key,
                    journal,
                    _dir: dir,
                }
            })
            .collect();
        Self {
            agencies,
            case: CaseId::new(),
            // 2026-03-02T09:00:00Z
            now: Timestamp::from_utc(2026, 3, 2, (9, 0, 0), 0).unwrap(),
        }
    }

    pub fn tick(&mut self) -> Timestamp {
        self.now = self.now.plus_millis(60_000);
        self.now
    }

    /// Signs `body` from `from` to `to` at the next tick.
    pub fn sign(&mut self, from: usize, to: Option<usize>, body: Body, d: Disclose) -> Sent {
        let at = self.tick();
        let f = &self.agencies[from];
        let event = pb::Event {
            event_id: EventId::new().to_string(),
            case_id: self.case.to_string(),
            sender_id: f.id.into(),
            sender_kind: f.kind as i32,
            recipient_id: to.map(|t| self.agencies[t].id.into()).unwrap_or_default(),
            recipient_kind: to.map_or(0, |t| self.agencies[t].kind as i32),
            occurred_at: ts(at),
            rule_set: "coe-cets197@1".into(),
            basis: d.basis.map(|b| pb::DisclosureBasis { basis: Some(b) }),
            purpose: d.purpose,
            shares: d.shares,
            sealed: d.sealed,
            body: Some(body),
        };
        let envelope =
            sign_envelope(&f.key, PAYLOAD_TYPE_EVENT, event.encode_to_vec()).encode_to_vec();
        Sent { event, envelope }
    }

    /// Journals `s` at its sender and, if sent, at its recipient, which
    /// receipts it (`quarantine`: the recipient quarantines it instead).
    pub fn deliver(&mut self, s: &Sent, quarantine: Option<&str>) {
        let from = self.index(&s.event.sender_id);
        let at = self.now;
        self.agencies[from]
            .journal
            .append_originated(&s.envelope, at)
            .unwrap();
        if s.event.recipient_id.is_empty() {
            return;
        }
        let to = self.index(&s.event.recipient_id);
        let (status, seq, reason) = match quarantine {
            None => {
                let seq = self.agencies[to]
                    .journal
                    .append_received(&s.envelope, at, None)
                    .unwrap()
                    .seq();
                (pb::ReceiptStatus::Journaled, seq, String::new())
            }
            Some(r) => {
                let q = pb::Quarantine {
                    reason: r.into(),
                    detail: "refused by the recipient's policy".into(),
                    subject: "waymark.v1.evt".into(),
                    message_hash: Sha256::digest(&s.envelope).to_vec(),
                    message: s.envelope.clone(),
                    truncated: false,
                    claimed_sender: s.event.sender_id.clone(),
                };
                let seq = self.agencies[to]
                    .journal
                    .append_quarantined(q, at)
                    .unwrap()
                    .seq();
                (pb::ReceiptStatus::Quarantined, seq, r.to_owned())
            }
        };
        let receipt = self.sign(
            to,
            Some(from),
            Body::Receipt(pb::Receipt {
                event: Some(s.eref()),
                status: status as i32,
                journal_seq: seq,
                reason,
            }),
            Disclose::default(),
        );
        let at = self.now;
        self.agencies[to]
            .journal
            .append_originated(&receipt.envelope, at)
            .unwrap();
        let done = EventId::parse(&s.id()).unwrap();
        self.agencies[from]
            .journal
            .append_received(&receipt.envelope, at, Some(done))
            .unwrap();
    }

    /// Signs and delivers.
    pub fn send(&mut self, from: usize, to: Option<usize>, body: Body, d: Disclose) -> Sent {
        let s = self.sign(from, to, body, d);
        self.deliver(&s, None);
        s
    }

    pub fn index(&self, id: &str) -> usize {
        self.agencies.iter().position(|a| a.id == id).unwrap()
    }

    /// Exports the journals of `which` (all when empty) into `dir`.
    pub fn export(&self, dir: &Path, which: &[usize]) -> Vec<PathBuf> {
        std::fs::create_dir_all(dir).unwrap();
        let mut out = Vec::new();
        for (i, a) in self.agencies.iter().enumerate() {
            if !which.is_empty() && !which.contains(&i) {
                continue;
            }
            let path = dir.join(format!("{}.wmj", a.id));
            let meta = ExportMeta {
                agency_kind: kind_of(a.kind),
                keys: vec![pb::PublicKey {
                    key_id: a.key.key_id().to_string(),
                    ed25519: a.key.public_key().to_bytes().to_vec(),
                    valid_from: ts(Timestamp::from_millis(0)),
                    valid_until: None,
                }],
                exported_at: self.now.plus_millis(3_600_000),
            };
            export(&a.journal, std::fs::File::create(&path).unwrap(), &meta).unwrap();
            out.push(path);
        }
        out
    }
}

fn kind_of(k: pb::AgencyKind) -> AgencyKind {
    match k {
        pb::AgencyKind::Police => AgencyKind::Police,
        pb::AgencyKind::Shelter => AgencyKind::Shelter,
        pb::AgencyKind::Ngo => AgencyKind::Ngo,
        pb::AgencyKind::Returndesk => AgencyKind::ReturnDesk,
        _ => AgencyKind::Labour,
    }
}

/// The pinned Python of the repository (`bash .ci/install-python`).
pub fn python() -> PathBuf {
    let p = waymark_testkit::workspace_root().join(".tools/venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `bash .ci/install-python` (the README's test command does)",
        p.display()
    );
    p
}

/// Runs the fhir.resources validator on `bundles`; panics with its report.
pub fn validate(bundles: &[PathBuf]) -> String {
    let script = waymark_testkit::workspace_root().join("crates/interop/tests/validate_fhir.py");
    let out = Command::new(python())
        .arg(script)
        .args(bundles)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "fhir.resources rejects the bundle ({}):\n{}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
