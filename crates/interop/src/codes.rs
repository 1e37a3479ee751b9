//! The vocabulary of the exports: identifier systems, Waymark code systems,
//! the external codes used, and the tables from Waymark's enums to codes.
//!
//! Waymark codes are Waymark's own stable tokens (the snake_case names the
//! protocol and the `waymark-types` crate already use, e.g. `case_core`,
//! `referral_requested`), each set under its own URN code system below, so
//! a consumer can map them to its own terminology with a ConceptMap.

use waymark_policy::wire::vocab;
use waymark_proto::v1 as pb;
use waymark_types::{AgencyKind, DataCategory, LegalBasis, Purpose};

/// Identifier system of agencies (`Organization.identifier`); the value is
/// the agency id, e.g. `bg-police-sofia`.
pub const ID_AGENCY: &str = "urn:waymark:agency";
/// Identifier system of cases; the value is the case id. The person is known
/// to the exports by this pseudonymous id only.
pub const ID_CASE: &str = "urn:waymark:case";
/// Identifier system of signed events; the value is the event id.
pub const ID_EVENT: &str = "urn:waymark:event";
/// Identifier system of referrals (the id of their `referral_requested`).
pub const ID_REFERRAL: &str = "urn:waymark:referral";
/// Identifier system of handovers (the id of their `handover_offered`).
pub const ID_HANDOVER: &str = "urn:waymark:handover";
/// Identifier system of consents (the id of their `consent_granted`).
pub const ID_CONSENT: &str = "urn:waymark:consent";
/// Identifier system of agency signing keys (`ed25519:<hex>` key ids).
pub const ID_KEY: &str = "urn:waymark:key";

/// Code system of event kinds (`referral_requested`, `forwarded`, ...).
pub const CS_EVENT_KIND: &str = "urn:waymark:codesystem:event-kind";
/// Code system of agency kinds (`police`, `shelter`, `ngo`, `returndesk`,
/// `labour`).
pub const CS_AGENCY_KIND: &str = "urn:waymark:codesystem:agency-kind";
/// Code system of purposes (`accommodation`, `return`, ...).
pub const CS_PURPOSE: &str = "urn:waymark:codesystem:purpose";
/// Code system of data categories (`case_core`, `identity`, ...).
pub const CS_DATA_CATEGORY: &str = "urn:waymark:codesystem:data-category";
/// Code system of legal bases (`vital_interests`, ...).
pub const CS_LEGAL_BASIS: &str = "urn:waymark:codesystem:legal-basis";
/// Code system of service types (`accommodation`, `voluntary_return`, ...).
pub const CS_SERVICE_TYPE: &str = "urn:waymark:codesystem:service-type";
/// Code system of decline reasons (`no_capacity`, ...), plus `expired` for
/// a handover offer that lapsed.
pub const CS_REASON: &str = "urn:waymark:codesystem:reason";
/// Code system of the kinds of `Task` exported (`handover`, `referral`).
pub const CS_TASK_KIND: &str = "urn:waymark:codesystem:task-kind";
/// Code system of `AuditEvent.entity.detail` types (`data_category`,
/// `journal_seq`, `envelope_sha256`).
pub const CS_DETAIL: &str = "urn:waymark:codesystem:audit-detail";

/// URL of the extension on `Provenance.signature` holding the signing key's
/// id (`ed25519:<hex>`), to look the key up in an export header.
pub const EXT_KEY_ID: &str = "urn:waymark:extension:signature-key-id";
/// URL of the extension on `Provenance` holding the lowercase hex SHA-256 of
/// the signed envelope, as journaled (the hash two-party links embed).
pub const EXT_ENVELOPE_SHA256: &str = "urn:waymark:extension:envelope-sha256";
/// Prefix of `Provenance.policy`: followed by the event's rule set
/// (`urn:waymark:rule-set:coe-cets197@1`).
pub const POLICY_RULE_SET: &str = "urn:waymark:rule-set:";

/// `Provenance.signature.sigFormat`: a raw 64-byte Ed25519 signature over
/// the DSSE pre-authentication encoding of the event payload.
pub const SIG_FORMAT: &str = "application/vnd.waymark.dsse-ed25519-signature";

/// ASTM E1762 signature types (`Signature.type`).
pub const CS_SIGNATURE_TYPE: &str = "urn:iso-astm:E1762-95:2013";
/// Provenance agent types.
pub const CS_PROVENANCE_AGENT: &str =
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
/// DICOM codes used by audit messages (Export, Import, source and
/// destination roles).
pub const CS_DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// Audit event outcomes.
pub const CS_AUDIT_OUTCOME: &str = "http://terminology.hl7.org/CodeSystem/audit-event-outcome";
/// Consent actions (`disclose`).
pub const CS_CONSENT_ACTION: &str = "http://terminology.hl7.org/CodeSystem/consentaction";
/// HL7 v3 participation types (`IRCP`, information recipient).
pub const CS_V3_PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

/// Display text of a purpose.
pub fn purpose_display(p: Purpose) -> &'static str {
    match p {
        Purpose::Identification => "Identifying a presumed victim",
        Purpose::Protection => "Protecting the person's safety",
        Purpose::Assistance => "Medical, psychological, legal and material assistance",
        Purpose::Accommodation => "Safe accommodation",
        Purpose::Return => "Voluntary return and reception in the country of origin",
        Purpose::Reintegration => "Social inclusion and reintegration",
        Purpose::Monitoring => "Follow-up after assistance",
        Purpose::CriminalProceedings => "Criminal proceedings against traffickers",
    }
}

/// Display text of a data category.
pub fn category_display(c: DataCategory) -> &'static str {
    match c {
        DataCategory::CaseCore => "Pseudonymous case reference and pathway milestones",
        DataCategory::Identity => {
            "Names, date of birth, nationality, identity documents, photographs"
        }
        DataCategory::Contact => "Addresses, phone numbers, whereabouts",
        DataCategory::Health => "Medical and psychological information",
        DataCategory::Safety => "Risk assessments and safety plans",
        DataCategory::Assistance => "Assistance and services delivered, accommodation",
        DataCategory::Proceedings => "Cooperation with police and criminal proceedings",
        DataCategory::Residence => "Residence permits, immigration status, travel documents",
        DataCategory::Reintegration => "Employment, training, income support",
    }
}

/// Display text of a legal basis.
pub fn legal_basis_display(b: LegalBasis) -> &'static str {
    match b {
        LegalBasis::LegalObligation => "Legal obligation (GDPR 6(1)(c))",
        LegalBasis::VitalInterests => "Vital interests (GDPR 6(1)(d), 9(2)(c))",
        LegalBasis::PublicTask => "Public task (GDPR 6(1)(e))",
        LegalBasis::LegalClaims => "Legal claims (GDPR 9(2)(f))",
        LegalBasis::SubstantialPublicInterest => "Substantial public interest (GDPR 9(2)(g))",
    }
}

/// A known purpose, from its wire number.
pub fn purpose(v: i32) -> Option<Purpose> {
    vocab::purpose_from_proto(v).ok()
}

/// A known data category, from its wire number.
pub fn category(v: i32) -> Option<DataCategory> {
    vocab::data_category_from_proto(v).ok()
}

/// A known agency kind, from its wire number.
pub fn agency_kind(v: i32) -> Option<AgencyKind> {
    vocab::agency_kind_from_proto(v).ok()
}

/// A known legal basis, from its wire number.
pub fn legal_basis(v: i32) -> Option<LegalBasis> {
    vocab::legal_basis_from_proto(v).ok()
}

/// The Waymark token of a protobuf enum value name: `prefix` removed,
/// lowercase (`SERVICE_TYPE_VOLUNTARY_RETURN` → `voluntary_return`).
fn token(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// Token and display of a service type; `None` when unset or unknown.
pub fn service_type(v: i32) -> Option<(String, &'static str)> {
    use pb::ServiceType as S;
    let s = S::try_from(v).ok().filter(|s| *s != S::Unspecified)?;
    let display = match s {
        S::Unspecified => return None,
        S::Accommodation => "Safe accommodation",
        S::Medical => "Medical care",
        S::Psychological => "Psychological support",
        S::Legal => "Legal counselling and representation",
        S::Material => "Material assistance",
        S::Interpretation => "Interpretation and translation",
        S::Counselling => "Counselling and information on rights",
        S::Education => "Education for children",
        S::VoluntaryReturn => "Assisted voluntary return",
        S::Reintegration => "Reintegration support",
        S::Identification => "Identification interview",
    };
    Some((token(s.as_str_name(), "SERVICE_TYPE_"), display))
}

/// Token and display of a decline reason; `None` when unset or unknown.
pub fn decline_reason(v: i32) -> Option<(String, &'static str)> {
    use pb::DeclineReason as D;
    let r = D::try_from(v).ok()?;
    let display = match r {
        D::Unspecified => return None,
        D::NoCapacity => "No capacity",
        D::ServiceNotOffered => "Service not offered by this agency",
        D::NotEligible => "Not eligible under the agency's mandate",
        D::SafetyRisk => "Safety risk",
        D::PersonDeclined => "The person declined",
        D::LostContact => "Contact lost",
        D::Other => "Other reason",
    };
    Some((token(r.as_str_name(), "DECLINE_REASON_"), display))
}

/// Token and human description of how a consent was obtained.
pub fn consent_method(v: i32) -> Option<(String, &'static str)> {
    use pb::ConsentMethod as M;
    let m = M::try_from(v).ok()?;
    let display = match m {
        M::Unspecified => return None,
        M::Written => "written consent, signed on paper kept by the obtaining agency",
        M::OralWitnessed => "oral consent given in front of a witness",
        M::Electronic => "consent given electronically by the person",
    };
    Some((token(m.as_str_name(), "CONSENT_METHOD_"), display))
}

/// Human name of a representative role; `None` when the person consented
/// for themselves.
pub fn representative(v: i32) -> Option<&'static str> {
    use pb::RepresentativeRole as R;
    match R::try_from(v).ok()? {
        R::Unspecified => None,
        R::Parent => Some("parent"),
        R::Guardian => Some("legal guardian"),
        R::LegalRepresentative => Some("legal representative"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_waymark_tokens() {
        assert_eq!(
            service_type(pb::ServiceType::VoluntaryReturn as i32)
                .unwrap()
                .0,
            "voluntary_return"
        );
        assert_eq!(
            decline_reason(pb::DeclineReason::NoCapacity as i32)
                .unwrap()
                .0,
            "no_capacity"
        );
        assert_eq!(service_type(0), None);
        assert_eq!(service_type(999), None);
        assert_eq!(decline_reason(0), None);
        assert_eq!(representative(0), None);
        assert_eq!(
            consent_method(pb::ConsentMethod::OralWitnessed as i32)
                .unwrap()
                .0,
            "oral_witnessed"
        );
    }
}
