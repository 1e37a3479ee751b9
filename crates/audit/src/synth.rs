//! Synthetic federation exports for the benchmark (feature `bench`) and the
//! memory test: a police and two shelters, every case opened, its consent
//! forwarded, a handover offered under that consent and accepted, the person
//! admitted, then [`Shape::services`] services delivered by the shelter
//! (long-running cases: many events on one case); every sent event
//! receipted; a checkpoint every 1000 entries cosigned by both other
//! agencies, which journal it as witnessed. The export files are written
//! directly in the format of `journal.proto` (no store, no fsync), so a large
//! federation is built in seconds; the audit verifies them exactly as real
//! exports.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::{AgencyKey, proto_from_timestamp, sign_envelope};
use waymark_journal::MAGIC;
use waymark_journal::merkle::{Frontier, leaf_hash};
use waymark_proto::v1::event::Body;
use waymark_proto::v1::{self as pb, export_record::Record};
use waymark_proto::{
    PAYLOAD_TYPE_CHECKPOINT, PAYLOAD_TYPE_COSIGNATURE, PAYLOAD_TYPE_EVENT,
    PAYLOAD_TYPE_EXPORT_TRAILER,
};
use waymark_types::{CaseId, EventId, Timestamp};

const NAMES: [(&str, pb::AgencyKind, &str); 3] = [
    ("bg-police-sofia", pb::AgencyKind::Police, "police"),
    ("bg-shelter-sofia", pb::AgencyKind::Shelter, "shelter"),
    ("bg-shelter-varna", pb::AgencyKind::Shelter, "shelter"),
];
const HOUR: i64 = 3_600_000;

/// One agency's export being written.
struct Writer {
    id: &'static str,
    kind: pb::AgencyKind,
    key: AgencyKey,
    out: BufWriter<File>,
    seq: u64,
    head: [u8; 32],
    frontier: Frontier,
    checkpoints: u64,
    cosignatures: u64,
    header_hash: Vec<u8>,
    next_checkpoint: u64,
}

fn record(out: &mut impl Write, r: Record) -> std::io::Result<()> {
    let mut buf = Vec::new();
    pb::ExportRecord { record: Some(r) }
        .encode_length_delimited(&mut buf)
        .map_err(std::io::Error::other)?;
    out.write_all(&buf)
}

impl Writer {
    fn entry(
        &mut self,
        kind: pb::EntryKind,
        at: Timestamp,
        envelope: Vec<u8>,
        case: &str,
    ) -> std::io::Result<u64> {
        self.seq += 1;
        let bytes = pb::JournalEntry {
            seq: self.seq,
            prev_hash: self.head.to_vec(),
            recorded_at: Some(proto_from_timestamp(at)),
            kind: kind as i32,
            envelope,
            case_id: case.to_owned(),
            quarantine: None,
            equivocation: None,
        }
        .encode_to_vec();
        self.head = leaf_hash(&bytes);
        self.frontier.push(self.head);
        record(&mut self.out, Record::Entry(bytes))?;
        Ok(self.seq)
    }
}

/// The federation being written.
pub struct Federation {
    w: Vec<Writer>,
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Number of cases.
    pub cases: usize,
    /// Services the shelter records on each case after admission (one event
    /// entry each): 0 for the benchmark's short cases, many to put many
    /// events on few cases.
    pub services: usize,
}

/// Event entries per case without services.
pub const EVENTS_PER_CASE: u64 = 14;

/// Writes a synthetic federation of `cases` short cases into `dir`
/// (`<agency>.wmj`). Returns the number of event entries written.
///
/// # Errors
/// I/O errors.
pub fn write(dir: &Path, cases: usize) -> std::io::Result<u64> {
    write_shape(dir, Shape { cases, services: 0 })
}

/// Writes a synthetic federation of the given [`Shape`] into `dir`
/// (`<agency>.wmj`). Returns the number of event entries written.
///
/// # Errors
/// I/O errors.
pub fn write_shape(dir: &Path, shape: Shape) -> std::io::Result<u64> {
    let cases = shape.cases;
    let now = Timestamp::now();
    let mut fed = Federation { w: Vec::new() };
    for (id, kind, token) in NAMES {
        let key = AgencyKey::generate();
        let header = pb::ExportHeader {
            format_version: 1,
            agency_id: id.into(),
            agency_kind: token.into(),
            keys: vec![pb::PublicKey {
                key_id: key.key_id().to_string(),
                ed25519: key.public_key().as_bytes().to_vec(),
                valid_from: Some(proto_from_timestamp(Timestamp::from_millis(0))),
                valid_until: None,
            }],
            exported_at: Some(proto_from_timestamp(now)),
            first_seq: 1,
        };
        let mut out = BufWriter::new(File::create(dir.join(format!("{id}.wmj")))?);
        out.write_all(MAGIC)?;
        let header_hash = Sha256::digest(header.encode_to_vec()).to_vec();
        record(&mut out, Record::Header(header))?;
        fed.w.push(Writer {
            id,
            kind,
            key,
            out,
            seq: 0,
            head: [0; 32],
            frontier: Frontier::new(),
            checkpoints: 0,
            cosignatures: 0,
            header_hash,
            next_checkpoint: 1000,
        });
    }
    let start = now.plus_millis(-(cases as i64 + 2) * 5 * HOUR);
    let mut events = 0;
    for i in 0..cases {
        events += fed.case(i, start.plus_millis(i as i64 * 5 * HOUR), shape.services)?;
        for a in 0..3 {
            if fed.w[a].seq >= fed.w[a].next_checkpoint {
                fed.w[a].next_checkpoint = fed.w[a].seq + 1000;
                fed.checkpoint(
                    a,
                    start.plus_millis(i as i64 * 5 * HOUR + 4 * HOUR + HOUR / 2),
                )?;
            }
        }
    }
    for w in &mut fed.w {
        let t = pb::ExportTrailer {
            entry_count: w.seq,
            last_entry_hash: w.head.to_vec(),
            checkpoint_count: w.checkpoints,
            cosignature_count: w.cosignatures,
            header_hash: w.header_hash.clone(),
        };
        let env = sign_envelope(&w.key, PAYLOAD_TYPE_EXPORT_TRAILER, t.encode_to_vec());
        record(&mut w.out, Record::SignedTrailer(env))?;
        w.out.flush()?;
    }
    Ok(events)
}

impl Federation {
    fn event(
        &self,
        from: usize,
        to: Option<usize>,
        case: &str,
        at: Timestamp,
        body: Body,
    ) -> (String, Vec<u8>) {
        let id = EventId::new().to_string();
        let e = pb::Event {
            event_id: id.clone(),
            case_id: case.into(),
            sender_id: self.w[from].id.into(),
            sender_kind: self.w[from].kind as i32,
            recipient_id: to.map(|t| self.w[t].id.into()).unwrap_or_default(),
            recipient_kind: to.map_or(0, |t| self.w[t].kind as i32),
            occurred_at: Some(proto_from_timestamp(at)),
            rule_set: "coe-cets197@1".into(),
            body: Some(body),
            ..Default::default()
        };
        let env = sign_envelope(&self.w[from].key, PAYLOAD_TYPE_EVENT, e.encode_to_vec());
        (id, env.encode_to_vec())
    }

    /// Journals `env` at its sender and, with a receipt, at its recipient.
    fn send(
        &mut self,
        from: usize,
        to: Option<usize>,
        case: &str,
        at: Timestamp,
        env: (String, Vec<u8>),
    ) -> std::io::Result<pb::EventRef> {
        let r = pb::EventRef {
            event_id: env.0,
            envelope_hash: Sha256::digest(&env.1).to_vec(),
        };
        self.w[from].entry(pb::EntryKind::Originated, at, env.1.clone(), case)?;
        if let Some(to) = to {
            let seq = self.w[to].entry(pb::EntryKind::Received, at, env.1, case)?;
            let receipt = Body::Receipt(pb::Receipt {
                event: Some(r.clone()),
                status: pb::ReceiptStatus::Journaled as i32,
                journal_seq: seq,
                reason: String::new(),
            });
            let rc = self.event(to, Some(from), case, at, receipt);
            self.w[to].entry(pb::EntryKind::Originated, at, rc.1.clone(), case)?;
            self.w[from].entry(pb::EntryKind::Received, at, rc.1, case)?;
        }
        Ok(r)
    }

    fn case(&mut self, i: usize, t0: Timestamp, services: usize) -> std::io::Result<u64> {
        let (p, s) = (0, 1 + i % 2);
        let case = CaseId::new().to_string();
        let at = |h: i64| t0.plus_millis(h * HOUR);
        let opened = Body::CaseOpened(pb::CaseOpened {
            channel: pb::IdentificationChannel::Police as i32,
            ..Default::default()
        });
        let e = self.event(p, None, &case, at(0), opened);
        self.send(p, None, &case, at(0), e)?;
        let grant = Body::ConsentGranted(pb::ConsentGranted {
            scope: Some(pb::ConsentScope {
                recipient_ids: vec![],
                recipient_kinds: vec![pb::AgencyKind::Shelter as i32],
                purposes: vec![
                    pb::Purpose::Accommodation as i32,
                    pb::Purpose::Protection as i32,
                ],
                categories: vec![
                    pb::DataCategory::CaseCore as i32,
                    pb::DataCategory::Identity as i32,
                ],
            }),
            valid_from: Some(proto_from_timestamp(at(1))),
            valid_until: Some(proto_from_timestamp(at(1).plus_days(365))),
            method: pb::ConsentMethod::Written as i32,
            obtained_by_role: "liaison".into(),
            representative: 0,
            language: "bg".into(),
            obtained_by_agency_id: self.w[p].id.into(),
        });
        let e = self.event(p, Some(s), &case, at(1), grant);
        let consent = self.send(p, Some(s), &case, at(1), e)?;
        let offer = Body::HandoverOffered(pb::HandoverOffered {
            expires_at: Some(proto_from_timestamp(at(2).plus_days(3))),
            reason: "admission".into(),
        });
        let (id, env) = self.event(p, Some(s), &case, at(2), offer);
        let mut ev = pb::Event::decode(
            pb::Envelope::decode(env.as_slice())
                .map_err(std::io::Error::other)?
                .payload
                .as_slice(),
        )
        .map_err(std::io::Error::other)?;
        ev.basis = Some(pb::DisclosureBasis {
            basis: Some(pb::disclosure_basis::Basis::ConsentId(consent.event_id)),
        });
        ev.purpose = pb::Purpose::Accommodation as i32;
        let env =
            sign_envelope(&self.w[p].key, PAYLOAD_TYPE_EVENT, ev.encode_to_vec()).encode_to_vec();
        let offer = self.send(p, Some(s), &case, at(2), (id, env))?;
        let accept = Body::HandoverAccepted(pb::HandoverAccepted { offer: Some(offer) });
        let e = self.event(s, Some(p), &case, at(3), accept);
        self.send(s, Some(p), &case, at(3), e)?;
        let e = self.event(
            s,
            None,
            &case,
            at(4),
            Body::Admitted(pb::Admitted { planned_days: 90 }),
        );
        self.send(s, None, &case, at(4), e)?;
        // Spread over 20 minutes after admission (up to 1.2 million services),
        // before the checkpoint at half past.
        let step = (20 * 60_000 / services.max(1) as i64).max(1);
        for k in 0..services {
            let t = at(4).plus_millis((k as i64 + 1) * step);
            let body = Body::ServiceDelivered(pb::ServiceDelivered {
                service: [
                    pb::ServiceType::Medical,
                    pb::ServiceType::Psychological,
                    pb::ServiceType::Legal,
                    pb::ServiceType::Material,
                ][k % 4] as i32,
            });
            let e = self.event(s, None, &case, t, body);
            self.send(s, None, &case, t, e)?;
        }
        Ok(EVENTS_PER_CASE + services as u64)
    }

    /// Agency `a` signs a checkpoint; the others journal and cosign it.
    fn checkpoint(&mut self, a: usize, at: Timestamp) -> std::io::Result<()> {
        let c = pb::Checkpoint {
            agency_id: self.w[a].id.into(),
            size: self.w[a].seq,
            root_hash: self.w[a].frontier.root().to_vec(),
            time: Some(proto_from_timestamp(at)),
        };
        let env = sign_envelope(&self.w[a].key, PAYLOAD_TYPE_CHECKPOINT, c.encode_to_vec());
        record(&mut self.w[a].out, Record::Checkpoint(env.clone()))?;
        self.w[a].checkpoints += 1;
        for w in 0..3 {
            if w == a {
                continue;
            }
            let cs = pb::Cosignature {
                witness_agency_id: self.w[w].id.into(),
                checkpoint_hash: Sha256::digest(&env.payload).to_vec(),
                agency_id: c.agency_id.clone(),
                size: c.size,
                root_hash: c.root_hash.clone(),
                witnessed_at: Some(proto_from_timestamp(at)),
            };
            let cenv = sign_envelope(&self.w[w].key, PAYLOAD_TYPE_COSIGNATURE, cs.encode_to_vec());
            record(&mut self.w[a].out, Record::Cosignature(cenv))?;
            self.w[a].cosignatures += 1;
        }
        for w in 0..3 {
            if w != a {
                self.w[w].entry(
                    pb::EntryKind::CheckpointWitnessed,
                    at,
                    env.encode_to_vec(),
                    "",
                )?;
            }
        }
        Ok(())
    }
}
