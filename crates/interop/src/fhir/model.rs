//! The subset of FHIR R5 the export writes, as typed structs serialised
//! with serde in FHIR's JSON form (camelCase names, absent elements
//! omitted, `resourceType` first). Only the elements Waymark fills are
//! declared; field order is the serialisation order, so output is stable.

use serde::Serialize;

/// `Coding`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coding {
    /// The code system's URI.
    pub system: String,
    /// The code.
    pub code: String,
    /// Human text for the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    /// A coding with a display.
    pub fn new(system: &str, code: impl Into<String>, display: impl Into<String>) -> Self {
        Self {
            system: system.to_owned(),
            code: code.into(),
            display: Some(display.into()),
        }
    }

    /// A coding without display.
    pub fn bare(system: &str, code: impl Into<String>) -> Self {
        Self {
            system: system.to_owned(),
            code: code.into(),
            display: None,
        }
    }
}

/// `CodeableConcept`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CodeableConcept {
    /// Codes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    /// Plain text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl CodeableConcept {
    /// One coding.
    pub fn of(c: Coding) -> Self {
        Self {
            coding: vec![c],
            text: None,
        }
    }

    /// Text only.
    pub fn text(t: impl Into<String>) -> Self {
        Self {
            coding: Vec::new(),
            text: Some(t.into()),
        }
    }
}

/// `Identifier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identifier {
    /// The namespace.
    pub system: String,
    /// The value.
    pub value: String,
}

impl Identifier {
    /// An identifier.
    pub fn new(system: &str, value: impl Into<String>) -> Self {
        Self {
            system: system.to_owned(),
            value: value.into(),
        }
    }
}

/// `Reference`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// Literal reference: the target's `fullUrl` in the bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The target's resource type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Logical reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// Text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// `CodeableReference` (R5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CodeableReference {
    /// By code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concept: Option<CodeableConcept>,
    /// By reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
}

impl CodeableReference {
    /// By code.
    pub fn concept(c: CodeableConcept) -> Self {
        Self {
            concept: Some(c),
            reference: None,
        }
    }

    /// By reference.
    pub fn reference(r: Reference) -> Self {
        Self {
            concept: None,
            reference: Some(r),
        }
    }
}

/// `Period`: RFC 3339 instants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Period {
    /// Start, inclusive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// End.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// `Extension` with a string value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    /// What the extension means (see `codes::EXT_*`).
    pub url: String,
    /// The value.
    pub value_string: String,
}

/// `Annotation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Annotation {
    /// The note.
    pub text: String,
}

/// `Signature` (R5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    /// Key id of the signing key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// Signature type codes.
    #[serde(rename = "type")]
    pub kind: Vec<Coding>,
    /// When signed.
    pub when: String,
    /// The signing agency.
    pub who: Reference,
    /// Media type of what was signed.
    pub target_format: String,
    /// Media type of `data`.
    pub sig_format: String,
    /// Base64 of the signature bytes.
    pub data: String,
}

/// One `Bundle.entry`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// `urn:uuid:<id>`.
    pub full_url: String,
    /// The resource.
    pub resource: Resource,
}

/// `Bundle`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "resourceType", rename = "Bundle")]
pub struct Bundle {
    /// Always `collection`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The history is as of this instant (the newest export's time).
    pub timestamp: String,
    /// The resources (absent when the case shared nothing: JSON arrays are
    /// never empty in FHIR).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<Entry>,
}

/// Any resource the export writes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "resourceType")]
#[allow(clippy::large_enum_variant)]
pub enum Resource {
    /// An agency.
    Organization(super::resources::Organization),
    /// A consent.
    Consent(super::consent::Consent),
    /// A referral.
    ServiceRequest(super::resources::ServiceRequest),
    /// A handover, or the fulfilment of a referral.
    Task(super::resources::Task),
    /// A disclosure or a delivery receipt.
    AuditEvent(super::audit::AuditEvent),
    /// A signed event.
    Provenance(super::provenance::Provenance),
}

impl Resource {
    /// The resource's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Resource::Organization(_) => "Organization",
            Resource::Consent(_) => "Consent",
            Resource::ServiceRequest(_) => "ServiceRequest",
            Resource::Task(_) => "Task",
            Resource::AuditEvent(_) => "AuditEvent",
            Resource::Provenance(_) => "Provenance",
        }
    }
}
