//! Personal data sent to and received from other agencies: sealed with HPKE
//! to the recipient's encryption key from the federation manifest, the
//! ciphertext detached from the signed event (see `waymark_bus::sealing` for
//! why), and kept here only under the case's own key.
//!
//! - Sending ([`seal_personal`]): the `SendTo.personal` of a request is
//!   sealed to the key the manifest lists for the recipient now, bound to
//!   the event id (HPKE associated data); the event carries the section
//!   (key id, suite, encapsulated key, categories, SHA-256 of the
//!   ciphertext) and the ciphertext is kept in the agency store, under the
//!   sender's per-case key, until the recipient's receipt (the relay
//!   publishes it beside the event).
//! - Receiving ([`AgencySealing`]): the bus checks the detached ciphertext
//!   against the signed digest; this module opens it with the agency's key
//!   and keeps the plaintext under the agency's per-case key, before the
//!   event is journaled.
//! - Categories: every field given in `personal` belongs to a data category
//!   (identity, contact, health, residence, assistance for the free-text
//!   notes) that must be listed in `send_to.shares`, so the disclosure basis
//!   is checked against it.

use std::sync::{Arc, Weak};

use prost::Message;
use sha2::{Digest, Sha256};
use waymark_crypto::seal::{SUITE, seal};
use waymark_proto::v1 as pb;
use waymark_types::{AgencyId, CaseId, EventId, Timestamp};

use crate::agency::Core;
use crate::error::ApiError;

/// The ErrorInfo reason when the recipient has no encryption key.
pub(crate) const NO_RECIPIENT_KEY: &str = "sealing.no_recipient_key";
/// The ErrorInfo reason when the case's personal data was erased here.
pub(crate) const CASE_ERASED: &str = "case.erased";

/// The data categories of the fields set in `p`, each with the first field
/// that needs it.
pub(crate) fn categories(p: &pb::PersonalData) -> Vec<(pb::DataCategory, &'static str)> {
    use pb::DataCategory as C;
    let fields: [(bool, C, &'static str); 10] = [
        (!p.full_name.is_empty(), C::Identity, "full_name"),
        (!p.date_of_birth.is_empty(), C::Identity, "date_of_birth"),
        (!p.nationality.is_empty(), C::Identity, "nationality"),
        (!p.languages.is_empty(), C::Identity, "languages"),
        (
            !p.document_numbers.is_empty(),
            C::Identity,
            "document_numbers",
        ),
        (!p.phone.is_empty(), C::Contact, "phone"),
        (!p.address.is_empty(), C::Contact, "address"),
        (!p.health_notes.is_empty(), C::Health, "health_notes"),
        (!p.return_country.is_empty(), C::Residence, "return_country"),
        (!p.notes.is_empty(), C::Assistance, "notes"),
    ];
    let mut out: Vec<(C, &'static str)> = Vec::new();
    for (set, c, f) in fields {
        if set && !out.iter().any(|(k, _)| *k == c) {
            out.push((c, f));
        }
    }
    out
}

/// Seals `personal` for `to` into event `e` (its id and case set), keeping
/// the detached ciphertext in the store. `shares` is the request's.
pub(crate) fn seal_personal(
    core: &Core,
    e: &mut pb::Event,
    to: &AgencyId,
    personal: &pb::PersonalData,
) -> Result<(), ApiError> {
    let case = CaseId::parse(&e.case_id)
        .map_err(|_| ApiError::Internal("sealing for an event without a case".into()))?;
    let id = EventId::parse(&e.event_id)
        .map_err(|_| ApiError::Internal("sealing for an event without an id".into()))?;
    if core.store.erased(&case)?.is_some() {
        return Err(ApiError::precondition(
            CASE_ERASED,
            format!(
                "the personal data of case {case} was erased at this agency; it is not sent again: \
                 send the event without send_to.personal"
            ),
        ));
    }
    let cats = categories(personal);
    for (c, field) in &cats {
        if !e.shares.contains(&(*c as i32)) {
            return Err(ApiError::invalid(
                "send_to.shares",
                format!(
                    "must list {}: send_to.personal.{field} is {} data, and the disclosure basis must cover it",
                    c.as_str_name(),
                    c.as_str_name()
                        .trim_start_matches("DATA_CATEGORY_")
                        .to_lowercase()
                ),
            ));
        }
    }
    let key = core
        .directory
        .encryption_key(to, Timestamp::now())
        .ok_or_else(|| {
            ApiError::precondition(
                NO_RECIPIENT_KEY,
                format!(
                    "{to} has no encryption key valid now in the federation manifest, so personal data \
                     cannot be sealed to it; ask the federation authority to list one"
                ),
            )
        })?
        .clone();
    let sealed = seal(
        &key.public,
        e.event_id.as_bytes(),
        &personal.encode_to_vec(),
    )
    .map_err(|err| ApiError::Internal(format!("sealing to {}: {err}", key.id)))?;
    core.store
        .put_sealed_out(&case, &id, 0, &sealed.ciphertext)?;
    e.sealed = vec![pb::SealedData {
        recipient_key_id: key.id,
        suite: SUITE.to_owned(),
        encapsulated_key: sealed.encapsulated_key,
        ciphertext: Vec::new(),
        categories: cats.iter().map(|(c, _)| *c as i32).collect(),
        ciphertext_sha256: Sha256::digest(&sealed.ciphertext).to_vec(),
    }];
    Ok(())
}

/// The agency's [`waymark_bus::Sealing`].
pub(crate) struct AgencySealing(pub(crate) Weak<Core>);

impl AgencySealing {
    fn core(&self) -> Result<Arc<Core>, String> {
        self.0
            .upgrade()
            .ok_or_else(|| "the agency is shutting down".to_owned())
    }
}

impl waymark_bus::Sealing for AgencySealing {
    fn ciphertexts(&self, event: &pb::Event) -> Result<Vec<Vec<u8>>, String> {
        let core = self.core()?;
        let id = EventId::parse(&event.event_id).map_err(|e| e.to_string())?;
        core.store
            .sealed_out(&id, event.sealed.len())
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                "the sealed data is gone (erased since, or already receipted)".to_owned()
            })
    }

    fn open(&self, event: &pb::Event, index: usize, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        let core = self.core()?;
        let s = &core.settings;
        let Some(current) = &s.encryption_key else {
            return Err(
                "this agency has no encryption key (keys.encryption_key_file is unset)".to_owned(),
            );
        };
        // Data sealed before a rotation names a retired key.
        let named = event.sealed.get(index).map(|x| x.recipient_key_id.as_str());
        let key = s
            .retired_encryption_keys
            .iter()
            .find(|k| Some(k.key_id()) == named)
            .unwrap_or(current);
        waymark_bus::sealing::open_section(key, event, index, ciphertext)
    }

    fn keep(&self, event: &pb::Event, opened: &waymark_bus::Opened) -> Result<(), String> {
        let core = self.core()?;
        let (Ok(case), Ok(id)) = (
            CaseId::parse(&event.case_id),
            EventId::parse(&event.event_id),
        ) else {
            return Err("an event with sealed data but no case".to_owned());
        };
        for (i, p) in opened.0.iter().enumerate() {
            let kept = core
                .store
                .put_received(&case, &id, i, p)
                .map_err(|e| e.to_string())?;
            if !kept {
                tracing::info!(case = %case, event = %id, "sealed data for an erased case dropped");
            }
        }
        Ok(())
    }
}
