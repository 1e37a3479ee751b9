//! An in-process federation for the demo slice: one journal, key and policy
//! view per agency, with direct delivery between them.
//!
//! Delivery here follows the protocol's receiver steps (verify the signature
//! with the sender's key, decode with the wire layer, check the policy in the
//! receiver's own view, journal as received, answer with a signed receipt that
//! completes the sender's outbox item) but hands bytes over in memory. The
//! `bus` crate does the same over NATS JetStream; `waymark demo` switches to
//! it with the agency services.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::{AgencyKey, KeyRing, TrustedKey, proto_from_timestamp, sign_envelope};
use waymark_journal::{Journal, JournalConfig, SledConfig, SledStore};
use waymark_policy::wire::vocab::agency_kind_to_proto;
use waymark_policy::wire::{WireEvent, event_from_proto};
use waymark_policy::{CaseState, RuleSet, View, Violation};
use waymark_proto::PAYLOAD_TYPE_EVENT;
use waymark_proto::v1 as pb;
use waymark_types::{AgencyId, AgencyKind, CaseId, EventId, Timestamp};

/// One agency of the demo federation.
pub(crate) struct Agency {
    pub(crate) id: AgencyId,
    pub(crate) kind: AgencyKind,
    pub(crate) key: AgencyKey,
    pub(crate) journal: Journal<SledStore>,
    pub(crate) cases: HashMap<CaseId, CaseState>,
}

/// What happened to a recorded event.
pub(crate) enum Outcome {
    /// Journaled (and delivered, when it had a recipient). Carries the event's
    /// reference for answers that must embed it.
    Recorded(pb::EventRef),
    /// Refused by the rules before anything was journaled or sent.
    Refused(Violation),
}

/// The agencies, their public keys and the rules they apply.
pub(crate) struct Federation {
    pub(crate) agencies: Vec<Agency>,
    pub(crate) keys: KeyRing,
    pub(crate) rules: RuleSet,
}

impl Federation {
    /// Creates (or reopens) every agency's key and journal under `dir`.
    pub(crate) fn open(dir: &Path, members: &[(&str, AgencyKind)]) -> anyhow::Result<Self> {
        let mut agencies = Vec::new();
        let mut keys = KeyRing::new();
        for (id, kind) in members {
            let id = AgencyId::new(id)?;
            let key_path = dir.join("keys").join(format!("{id}.key"));
            std::fs::create_dir_all(dir.join("keys"))?;
            let key = if key_path.exists() {
                AgencyKey::load(&key_path)?
            } else {
                let key = AgencyKey::generate();
                key.save(&key_path)?;
                key
            };
            keys.insert(TrustedKey {
                key: key.public_key(),
                valid_from: Timestamp::from_millis(0),
                valid_until: None,
            });
            let store = SledStore::open(
                &dir.join("journals").join(id.as_str()),
                &SledConfig::default(),
            )
            .with_context(|| format!("opening the journal of {id}"))?;
            let journal = Journal::open(store, JournalConfig::new(id.clone()), Some(key.clone()))?;
            agencies.push(Agency {
                id,
                kind: *kind,
                key,
                journal,
                cases: HashMap::new(),
            });
        }
        Ok(Self {
            agencies,
            keys,
            rules: RuleSet::coe_cets197_v1(),
        })
    }

    /// Index of an agency by id.
    pub(crate) fn index(&self, id: &str) -> usize {
        self.agencies
            .iter()
            .position(|a| a.id.as_str() == id)
            .unwrap_or(usize::MAX)
    }

    /// Signs `event` as agency `from`, checks it against `from`'s view of the
    /// rules, journals it, and delivers it to its recipient if it has one.
    pub(crate) fn record(
        &mut self,
        from: usize,
        mut event: pb::Event,
        at: Timestamp,
    ) -> anyhow::Result<Outcome> {
        let sender = &self.agencies[from];
        event.event_id = EventId::new().to_string();
        event.sender_id = sender.id.to_string();
        event.sender_kind = i32::from(agency_kind_to_proto(sender.kind));
        event.occurred_at = Some(proto_from_timestamp(at));
        event.rule_set = self.rules.reference().to_string();
        let envelope =
            sign_envelope(&sender.key, PAYLOAD_TYPE_EVENT, event.encode_to_vec()).encode_to_vec();

        if let Err(v) = self.apply(from, &event)? {
            return Ok(Outcome::Refused(v));
        }
        self.agencies[from]
            .journal
            .append_originated(&envelope, at)?;
        let reference = pb::EventRef {
            event_id: event.event_id.clone(),
            envelope_hash: Sha256::digest(&envelope).to_vec(),
        };
        if !event.recipient_id.is_empty() {
            self.deliver(from, &envelope, at)?;
        }
        Ok(Outcome::Recorded(reference))
    }

    /// The receiver's side: verify, decode, check, journal, answer with a receipt.
    fn deliver(&mut self, from: usize, envelope: &[u8], at: Timestamp) -> anyhow::Result<()> {
        let env = pb::Envelope::decode(envelope)?;
        self.keys
            .verify(&env, PAYLOAD_TYPE_EVENT, at)
            .context("verifying the sender's signature")?;
        let event = pb::Event::decode(env.payload.as_slice())?;
        let to = self.index(&event.recipient_id);
        if to == usize::MAX {
            bail!("unknown recipient {}", event.recipient_id);
        }
        if let Err(v) = self.apply(to, &event)? {
            bail!(
                "{} refused an event from {}: {v}",
                self.agencies[to].id,
                self.agencies[from].id
            );
        }
        let receipt_for = self.agencies[to]
            .journal
            .append_received(envelope, at, None)?;
        let receipt = pb::Event {
            case_id: event.case_id.clone(),
            recipient_id: event.sender_id.clone(),
            recipient_kind: event.sender_kind,
            body: Some(pb::event::Body::Receipt(pb::Receipt {
                event: Some(pb::EventRef {
                    event_id: event.event_id.clone(),
                    envelope_hash: Sha256::digest(envelope).to_vec(),
                }),
                status: pb::ReceiptStatus::Journaled as i32,
                journal_seq: receipt_for.seq(),
                reason: String::new(),
            })),
            ..Default::default()
        };
        self.send_receipt(to, from, receipt, &event.event_id, at)
    }

    /// A receipt is signed by the receiver and completes the sender's outbox
    /// item when the sender journals it. Receipts are not themselves receipted.
    fn send_receipt(
        &mut self,
        to: usize,
        from: usize,
        mut receipt: pb::Event,
        original: &str,
        at: Timestamp,
    ) -> anyhow::Result<()> {
        let receiver = &self.agencies[to];
        receipt.event_id = EventId::new().to_string();
        receipt.sender_id = receiver.id.to_string();
        receipt.sender_kind = i32::from(agency_kind_to_proto(receiver.kind));
        receipt.occurred_at = Some(proto_from_timestamp(at));
        receipt.rule_set = self.rules.reference().to_string();
        let envelope = sign_envelope(&receiver.key, PAYLOAD_TYPE_EVENT, receipt.encode_to_vec())
            .encode_to_vec();
        if let Err(v) = self.apply(to, &receipt)? {
            bail!("receipt refused at its sender: {v}");
        }
        self.agencies[to].journal.append_originated(&envelope, at)?;
        if let Err(v) = self.apply(from, &receipt)? {
            bail!("receipt refused at its recipient: {v}");
        }
        let original = EventId::parse(original)?;
        self.agencies[from]
            .journal
            .append_received(&envelope, at, Some(original))?;
        Ok(())
    }

    /// Applies an event to agency `at`'s view of its case.
    fn apply(&mut self, at: usize, event: &pb::Event) -> anyhow::Result<Result<(), Violation>> {
        let decoded = match event_from_proto(event)? {
            WireEvent::Event(e) => e,
            other => bail!("the demo does not send {:?} events", other.id()),
        };
        let agency = &mut self.agencies[at];
        let state = agency
            .cases
            .entry(decoded.case)
            .or_insert_with(|| CaseState::new(decoded.case, View::Agency(agency.id.clone())));
        Ok(state.apply(&decoded, &self.rules).map(|_| ()))
    }
}
