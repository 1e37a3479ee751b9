//! A Kantara Initiative Consent Receipt (v1.1.0, 2018-02-20) for the
//! person concerned, from a consent grant in the verified exports.
//!
//! The receipt names the person by case id only (`piiPrincipalId`), the
//! agency that obtained the consent as PII controller, and the consent's
//! scope as one service whose purposes are the scope's purposes, each with
//! the scope's data categories. Fields the journal does not hold (the
//! controller's contact, address, e-mail and phone, which v1.1 requires)
//! come from [`ReceiptOptions`] or are left out and listed in
//! [`Receipt::missing`]; the jurisdiction and policy URL default to the rule
//! set the consent was granted under.

use base64::Engine;
use serde::Serialize;
use waymark_policy::wire::timestamp_from_proto;
use waymark_proto::v1::event::Body;
use waymark_types::DataCategory;

use crate::InteropError;
use crate::codes::{self, POLICY_RULE_SET};
use crate::source::CaseRecord;

/// The `version` of the receipts written.
pub const VERSION: &str = "KI-CR-v1.1.0";

/// What the issuing agency adds that the journal does not hold.
#[derive(Debug, Clone, Default)]
pub struct ReceiptOptions {
    /// `jurisdiction`; defaults to `rule set <rule set>`.
    pub jurisdiction: Option<String>,
    /// `policyUrl`; defaults to `urn:waymark:rule-set:<rule set>`.
    pub policy_url: Option<String>,
    /// The controller's contact point (a role or office, not a person's name).
    pub contact: Option<String>,
    /// The controller's street address.
    pub address: Option<String>,
    /// The controller's address country (ISO 3166-1 alpha-2).
    pub country: Option<String>,
    /// The controller's e-mail.
    pub email: Option<String>,
    /// The controller's phone.
    pub phone: Option<String>,
}

/// `piiControllers[].address`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Street address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    /// Country.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_country: Option<String>,
}

/// `piiControllers[]`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PiiController {
    /// The agency id.
    pub pii_controller: String,
    /// Always false: the agency is controller in its own right.
    pub on_behalf: bool,
    /// Contact point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// E-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// `services[].purposes[]`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Purpose {
    /// The purpose, in words.
    pub purpose: String,
    /// The Waymark purpose token.
    pub purpose_category: Vec<String>,
    /// Always `EXPLICIT`.
    pub consent_type: &'static str,
    /// The scope's data categories (`token - description`).
    pub pii_category: Vec<String>,
    /// When the consent ends.
    pub termination: String,
    /// Whether data goes to other agencies.
    pub third_party_disclosure: bool,
    /// The recipients: agency ids and `any <kind>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub third_party_name: Option<String>,
}

/// `services[]`.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// What the consent is for.
    pub service: String,
    /// One per purpose of the scope.
    pub purposes: Vec<Purpose>,
}

/// A Kantara Consent Receipt v1.1 in its JSON shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentReceipt {
    /// [`VERSION`].
    pub version: &'static str,
    /// The jurisdiction.
    pub jurisdiction: String,
    /// Seconds since the Unix epoch of the grant's `occurred_at`.
    pub consent_timestamp: i64,
    /// How consent was obtained, by what role of which agency.
    pub collection_method: String,
    /// The consent id.
    #[serde(rename = "consentReceiptID")]
    pub consent_receipt_id: String,
    /// Base64 of the Ed25519 key that signed the grant, when the obtaining
    /// agency signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The language the information was given in (BCP 47).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The case id.
    pub pii_principal_id: String,
    /// The agency that obtained the consent.
    pub pii_controllers: Vec<PiiController>,
    /// The policy the consent was given under.
    pub policy_url: String,
    /// The scope.
    pub services: Vec<Service>,
    /// Always true: everything about a presumed victim is sensitive.
    pub sensitive: bool,
    /// The scope's data categories (tokens).
    pub spi_cat: Vec<String>,
}

/// A receipt and what it lacks.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The receipt.
    pub receipt: ConsentReceipt,
    /// Fields v1.1 requires that neither the journal nor the options gave
    /// (`piiControllers[0].contact`, ...).
    pub missing: Vec<&'static str>,
}

impl Receipt {
    /// The receipt as pretty-printed JSON, ending in a newline.
    ///
    /// # Errors
    /// Never in practice; serde_json's error otherwise.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(&self.receipt)?;
        s.push('\n');
        Ok(s)
    }
}

/// The receipt of consent `consent_id` of `record`'s case.
///
/// # Errors
/// [`InteropError::UnknownConsent`] if no verified `consent_granted` with
/// that id is in the record.
pub fn receipt(
    record: &CaseRecord,
    consent_id: &str,
    opts: &ReceiptOptions,
) -> Result<Receipt, InteropError> {
    let unknown = || InteropError::UnknownConsent {
        case: record.case,
        consent: consent_id.to_owned(),
    };
    let grant = record.event(consent_id).ok_or_else(unknown)?;
    let Some(Body::ConsentGranted(g)) = &grant.event.body else {
        return Err(unknown());
    };
    let ev = &grant.event;
    let scope = g.scope.clone().unwrap_or_default();
    let controller = if g.obtained_by_agency_id.is_empty() {
        ev.sender_id.clone()
    } else {
        g.obtained_by_agency_id.clone()
    };
    let mut method = codes::consent_method(g.method)
        .map_or("method not recorded", |(_, d)| d)
        .to_owned();
    if !g.obtained_by_role.is_empty() {
        method.push_str(&format!(
            "; obtained by a {} of {controller}",
            g.obtained_by_role
        ));
    }
    if let Some(rep) = codes::representative(g.representative) {
        method.push_str(&format!("; given by the person's {rep} on their behalf"));
    }
    let withdrawal = record.events.iter().find_map(|e| match &e.event.body {
        Some(Body::ConsentWithdrawn(w)) if w.consent_id == consent_id => Some(
            w.effective_at
                .as_ref()
                .and_then(timestamp_from_proto)
                .unwrap_or(e.occurred_at),
        ),
        _ => None,
    });
    let until = g.valid_until.as_ref().and_then(timestamp_from_proto);
    let termination = match (withdrawal, until) {
        (Some(w), _) => format!("withdrawn with effect from {w}"),
        (None, Some(u)) => format!("ends at {u}, or earlier if withdrawn"),
        (None, None) => "ends when withdrawn".to_owned(),
    };
    let mut cats: Vec<DataCategory> = scope
        .categories
        .iter()
        .filter_map(|c| codes::category(*c))
        .collect();
    cats.sort();
    cats.dedup();
    let mut recipients: Vec<String> = scope.recipient_ids.clone();
    recipients.sort();
    recipients.dedup();
    let mut kinds: Vec<_> = scope
        .recipient_kinds
        .iter()
        .filter_map(|k| codes::agency_kind(*k))
        .collect();
    kinds.sort();
    kinds.dedup();
    recipients.extend(kinds.iter().map(|k| format!("any {k}")));
    let mut purposes: Vec<_> = scope
        .purposes
        .iter()
        .filter_map(|p| codes::purpose(*p))
        .collect();
    purposes.sort();
    purposes.dedup();
    let pii_category: Vec<String> = cats
        .iter()
        .map(|c| format!("{} - {}", c.as_str(), codes::category_display(*c)))
        .collect();
    let third_party_name = (!recipients.is_empty()).then(|| recipients.join(", "));
    let public_key = (ev.sender_id == controller)
        .then(|| grant.signatures.first())
        .flatten()
        .and_then(|s| record.public_keys.get(&s.key_id))
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k));
    let address = (opts.address.is_some() || opts.country.is_some()).then(|| Address {
        street_address: opts.address.clone(),
        address_country: opts.country.clone(),
    });
    let mut missing = Vec::new();
    for (field, given) in [
        ("piiControllers[0].contact", opts.contact.is_some()),
        ("piiControllers[0].address", address.is_some()),
        ("piiControllers[0].email", opts.email.is_some()),
        ("piiControllers[0].phone", opts.phone.is_some()),
    ] {
        if !given {
            missing.push(field);
        }
    }
    let receipt = ConsentReceipt {
        version: VERSION,
        jurisdiction: opts
            .jurisdiction
            .clone()
            .unwrap_or_else(|| format!("rule set {}", ev.rule_set)),
        consent_timestamp: grant.occurred_at.millis().div_euclid(1000),
        collection_method: method,
        consent_receipt_id: consent_id.to_owned(),
        public_key,
        language: (!g.language.is_empty()).then(|| g.language.clone()),
        pii_principal_id: record.case.to_string(),
        pii_controllers: vec![PiiController {
            pii_controller: controller,
            on_behalf: false,
            contact: opts.contact.clone(),
            address,
            email: opts.email.clone(),
            phone: opts.phone.clone(),
        }],
        policy_url: opts
            .policy_url
            .clone()
            .unwrap_or_else(|| format!("{POLICY_RULE_SET}{}", ev.rule_set)),
        services: vec![Service {
            service: "Sharing of case data between the agencies of the referral mechanism"
                .to_owned(),
            purposes: purposes
                .iter()
                .map(|p| Purpose {
                    purpose: codes::purpose_display(*p).to_owned(),
                    purpose_category: vec![p.as_str().to_owned()],
                    consent_type: "EXPLICIT",
                    pii_category: pii_category.clone(),
                    termination: termination.clone(),
                    third_party_disclosure: !recipients.is_empty(),
                    third_party_name: third_party_name.clone(),
                })
                .collect(),
        }],
        sensitive: true,
        spi_cat: cats.iter().map(|c| c.as_str().to_owned()).collect(),
    };
    Ok(Receipt { receipt, missing })
}
