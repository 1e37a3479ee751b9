//! Protobuf enums ↔ domain enums, in one place.
//!
//! prost represents an enum field as a bare `i32`, so a peer running a newer
//! protocol version (or a buggy one) can send any number. Every mapping here
//! is total: `UNSPECIFIED` (0) and numbers this version does not know are
//! errors ([`EnumError`]), never panics and never a silent default.
//!
//! The shared vocabulary ([`AgencyKind`], [`DataCategory`], [`Purpose`],
//! [`LegalBasis`]) maps one to one in both directions. The body enums map
//! into the coarser policy vocabulary ([`Service`], [`ServiceReason`],
//! [`CaseOutcome`], ...) where the rules need them; several proto values then
//! share one policy value, as documented on each mapping.

use waymark_proto::v1 as pb;
use waymark_types::{AgencyKind, DataCategory, LegalBasis, Purpose};

use crate::vocab::{CaseOutcome, ConsentMethod, GivenBy, Refused, Service, ServiceReason};

/// Why a protobuf enum number has no domain value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnumError {
    /// The value is `*_UNSPECIFIED` (0): the field was not set.
    #[error("the value is UNSPECIFIED (0), i.e. not set")]
    Unspecified,
    /// The number is not a value of the enum in this protocol version.
    #[error("{0} is not a value of the enum in this protocol version")]
    Unknown(i32),
}

/// A prost-generated enum of package `waymark.v1`.
pub(crate) trait ProtoEnum: Copy + TryFrom<i32> {
    /// Its full protobuf name, e.g. `waymark.v1.AgencyKind`.
    const NAME: &'static str;
    /// The protobuf name of this value, e.g. `AGENCY_KIND_POLICE`.
    fn str_name(self) -> &'static str;
}

macro_rules! proto_enums {
    ($($t:ident),+ $(,)?) => {$(
        impl ProtoEnum for pb::$t {
            const NAME: &'static str = concat!("waymark.v1.", stringify!($t));
            fn str_name(self) -> &'static str {
                self.as_str_name()
            }
        }
    )+};
}

proto_enums!(
    AgencyKind,
    DataCategory,
    Purpose,
    LegalBasis,
    IdentificationChannel,
    ExploitationForm,
    RefusalScope,
    CaseOutcome,
    ConsentMethod,
    RepresentativeRole,
    ServiceType,
    DeclineReason,
    ReceiptStatus,
    IdentificationOutcome,
    CooperationStatus,
    ProceedingsStage,
    DischargeReason,
    ContactMode,
    RiskLevel,
    ReintegrationMeasure,
    ErasureGround,
);

/// Decodes `v`, treating 0 (`UNSPECIFIED`) as not set.
pub(crate) fn decode<E: ProtoEnum>(v: i32) -> Result<E, EnumError> {
    if v == 0 {
        return Err(EnumError::Unspecified);
    }
    decode_open(v)
}

/// Decodes `v`, accepting 0 (for enums whose `UNSPECIFIED` means "not
/// recorded" or "none" rather than "rejected").
pub(crate) fn decode_open<E: ProtoEnum>(v: i32) -> Result<E, EnumError> {
    E::try_from(v).map_err(|_| EnumError::Unknown(v))
}

/// A description of `err` for field violations on an `E` field.
pub(crate) fn describe<E: ProtoEnum>(err: EnumError) -> String {
    let valid = (1..=64)
        .filter_map(|i| {
            E::try_from(i)
                .ok()
                .map(|e| format!("{} ({i})", e.str_name()))
        })
        .collect::<Vec<_>>()
        .join(", ");
    match err {
        EnumError::Unspecified => format!("required: set a {} value: {valid}", E::NAME),
        EnumError::Unknown(v) => format!(
            "{v} is not a {} value in protocol waymark.v1 as this agency knows it; valid values: \
             {valid}",
            E::NAME
        ),
    }
}

/// Wraps a partial mapping (`None` for `UNSPECIFIED`) into a public one.
fn total<E: ProtoEnum, T>(v: i32, map: fn(E) -> Option<T>) -> Result<T, EnumError> {
    decode::<E>(v).and_then(|e| map(e).ok_or(EnumError::Unspecified))
}

// ---- Shared vocabulary: one to one, both directions. ------------------------

/// `waymark.v1.AgencyKind` → [`AgencyKind`].
///
/// # Errors
/// [`EnumError`] for `AGENCY_KIND_UNSPECIFIED` or an unknown number.
pub fn agency_kind_from_proto(v: i32) -> Result<AgencyKind, EnumError> {
    total(v, agency_kind)
}

/// [`AgencyKind`] → `waymark.v1.AgencyKind`.
pub fn agency_kind_to_proto(k: AgencyKind) -> pb::AgencyKind {
    match k {
        AgencyKind::Police => pb::AgencyKind::Police,
        AgencyKind::Shelter => pb::AgencyKind::Shelter,
        AgencyKind::Ngo => pb::AgencyKind::Ngo,
        AgencyKind::ReturnDesk => pb::AgencyKind::Returndesk,
        AgencyKind::Labour => pb::AgencyKind::Labour,
    }
}

pub(crate) fn agency_kind(k: pb::AgencyKind) -> Option<AgencyKind> {
    Some(match k {
        pb::AgencyKind::Unspecified => return None,
        pb::AgencyKind::Police => AgencyKind::Police,
        pb::AgencyKind::Shelter => AgencyKind::Shelter,
        pb::AgencyKind::Ngo => AgencyKind::Ngo,
        pb::AgencyKind::Returndesk => AgencyKind::ReturnDesk,
        pb::AgencyKind::Labour => AgencyKind::Labour,
    })
}

/// `waymark.v1.DataCategory` → [`DataCategory`].
///
/// # Errors
/// [`EnumError`] for `DATA_CATEGORY_UNSPECIFIED` or an unknown number.
pub fn data_category_from_proto(v: i32) -> Result<DataCategory, EnumError> {
    total(v, data_category)
}

/// [`DataCategory`] → `waymark.v1.DataCategory`.
pub fn data_category_to_proto(c: DataCategory) -> pb::DataCategory {
    use DataCategory as C;
    match c {
        C::CaseCore => pb::DataCategory::CaseCore,
        C::Identity => pb::DataCategory::Identity,
        C::Contact => pb::DataCategory::Contact,
        C::Health => pb::DataCategory::Health,
        C::Safety => pb::DataCategory::Safety,
        C::Assistance => pb::DataCategory::Assistance,
        C::Proceedings => pb::DataCategory::Proceedings,
        C::Residence => pb::DataCategory::Residence,
        C::Reintegration => pb::DataCategory::Reintegration,
    }
}

pub(crate) fn data_category(c: pb::DataCategory) -> Option<DataCategory> {
    use pb::DataCategory as P;
    Some(match c {
        P::Unspecified => return None,
        P::CaseCore => DataCategory::CaseCore,
        P::Identity => DataCategory::Identity,
        P::Contact => DataCategory::Contact,
        P::Health => DataCategory::Health,
        P::Safety => DataCategory::Safety,
        P::Assistance => DataCategory::Assistance,
        P::Proceedings => DataCategory::Proceedings,
        P::Residence => DataCategory::Residence,
        P::Reintegration => DataCategory::Reintegration,
    })
}

/// `waymark.v1.Purpose` → [`Purpose`].
///
/// # Errors
/// [`EnumError`] for `PURPOSE_UNSPECIFIED` or an unknown number.
pub fn purpose_from_proto(v: i32) -> Result<Purpose, EnumError> {
    total(v, purpose)
}

/// [`Purpose`] → `waymark.v1.Purpose`.
pub fn purpose_to_proto(p: Purpose) -> pb::Purpose {
    match p {
        Purpose::Identification => pb::Purpose::Identification,
        Purpose::Protection => pb::Purpose::Protection,
        Purpose::Assistance => pb::Purpose::Assistance,
        Purpose::Accommodation => pb::Purpose::Accommodation,
        Purpose::Return => pb::Purpose::Return,
        Purpose::Reintegration => pb::Purpose::Reintegration,
        Purpose::Monitoring => pb::Purpose::Monitoring,
        Purpose::CriminalProceedings => pb::Purpose::CriminalProceedings,
    }
}

pub(crate) fn purpose(p: pb::Purpose) -> Option<Purpose> {
    use pb::Purpose as P;
    Some(match p {
        P::Unspecified => return None,
        P::Identification => Purpose::Identification,
        P::Protection => Purpose::Protection,
        P::Assistance => Purpose::Assistance,
        P::Accommodation => Purpose::Accommodation,
        P::Return => Purpose::Return,
        P::Reintegration => Purpose::Reintegration,
        P::Monitoring => Purpose::Monitoring,
        P::CriminalProceedings => Purpose::CriminalProceedings,
    })
}

/// `waymark.v1.LegalBasis` → [`LegalBasis`].
///
/// # Errors
/// [`EnumError`] for `LEGAL_BASIS_UNSPECIFIED` or an unknown number.
pub fn legal_basis_from_proto(v: i32) -> Result<LegalBasis, EnumError> {
    total(v, legal_basis)
}

/// [`LegalBasis`] → `waymark.v1.LegalBasis`.
pub fn legal_basis_to_proto(b: LegalBasis) -> pb::LegalBasis {
    use LegalBasis as B;
    match b {
        B::LegalObligation => pb::LegalBasis::LegalObligation,
        B::VitalInterests => pb::LegalBasis::VitalInterests,
        B::PublicTask => pb::LegalBasis::PublicTask,
        B::LegalClaims => pb::LegalBasis::LegalClaims,
        B::SubstantialPublicInterest => pb::LegalBasis::SubstantialPublicInterest,
    }
}

pub(crate) fn legal_basis(b: pb::LegalBasis) -> Option<LegalBasis> {
    use pb::LegalBasis as P;
    Some(match b {
        P::Unspecified => return None,
        P::LegalObligation => LegalBasis::LegalObligation,
        P::VitalInterests => LegalBasis::VitalInterests,
        P::PublicTask => LegalBasis::PublicTask,
        P::LegalClaims => LegalBasis::LegalClaims,
        P::SubstantialPublicInterest => LegalBasis::SubstantialPublicInterest,
    })
}

// ---- Body enums: into the policy's coarser vocabulary. ----------------------

pub(crate) fn refused(s: pb::RefusalScope) -> Option<Refused> {
    Some(match s {
        pb::RefusalScope::Unspecified => return None,
        pb::RefusalScope::Assistance => Refused::Assistance,
        pb::RefusalScope::Referral => Refused::Referral,
        pb::RefusalScope::Disclosure => Refused::Disclosure,
    })
}

/// Regularised and transferred have no policy counterpart: `Other`.
pub(crate) fn case_outcome(o: pb::CaseOutcome) -> Option<CaseOutcome> {
    use pb::CaseOutcome as P;
    Some(match o {
        P::Unspecified => return None,
        P::Reintegrated => CaseOutcome::Reintegrated,
        P::Returned => CaseOutcome::Returned,
        P::Declined => CaseOutcome::Declined,
        P::LostContact => CaseOutcome::ContactLost,
        P::NotAVictim => CaseOutcome::NotIdentified,
        P::Regularised | P::Transferred => CaseOutcome::Other,
    })
}

pub(crate) fn consent_method(m: pb::ConsentMethod) -> Option<ConsentMethod> {
    Some(match m {
        pb::ConsentMethod::Unspecified => return None,
        pb::ConsentMethod::Written => ConsentMethod::Written,
        pb::ConsentMethod::OralWitnessed => ConsentMethod::Oral,
        pb::ConsentMethod::Electronic => ConsentMethod::Electronic,
    })
}

/// `UNSPECIFIED` means the person consented for themselves; any
/// representative role means the representative consented on the person's
/// behalf (the proto cannot express "person together with representative").
pub(crate) fn given_by(r: pb::RepresentativeRole) -> GivenBy {
    match r {
        pb::RepresentativeRole::Unspecified => GivenBy::Person,
        pb::RepresentativeRole::Parent
        | pb::RepresentativeRole::Guardian
        | pb::RepresentativeRole::LegalRepresentative => GivenBy::Representative,
    }
}

/// Counselling and identification have no policy counterpart (`Other`);
/// reintegration support maps to `Employment`, the policy's nearest service.
pub(crate) fn service(s: pb::ServiceType) -> Option<Service> {
    use pb::ServiceType as P;
    Some(match s {
        P::Unspecified => return None,
        P::Accommodation => Service::Accommodation,
        P::Medical => Service::Medical,
        P::Psychological => Service::Psychological,
        P::Legal => Service::Legal,
        P::Material => Service::Material,
        P::Interpretation => Service::Interpretation,
        P::Education => Service::Education,
        P::VoluntaryReturn => Service::Return,
        P::Reintegration => Service::Employment,
        P::Counselling | P::Identification => Service::Other,
    })
}

/// "Service not offered" is the policy's `OutsideMandate`; lost contact has
/// no counterpart (`Other`).
pub(crate) fn decline_reason(r: pb::DeclineReason) -> Option<ServiceReason> {
    use pb::DeclineReason as P;
    Some(match r {
        P::Unspecified => return None,
        P::NoCapacity => ServiceReason::NoCapacity,
        P::ServiceNotOffered => ServiceReason::OutsideMandate,
        P::NotEligible => ServiceReason::NotEligible,
        P::SafetyRisk => ServiceReason::SafetyRisk,
        P::PersonDeclined => ServiceReason::PersonDeclined,
        P::LostContact | P::Other => ServiceReason::Other,
    })
}

/// Moving on is `GoalsAchieved`; transfer and departure for return are
/// `TransferredElsewhere`; the person leaving is `PersonDeclined` ("declined
/// or left").
pub(crate) fn discharge_reason(r: pb::DischargeReason) -> Option<ServiceReason> {
    use pb::DischargeReason as P;
    Some(match r {
        P::Unspecified => return None,
        P::MovedOn => ServiceReason::GoalsAchieved,
        P::Transferred | P::Return => ServiceReason::TransferredElsewhere,
        P::PersonLeft => ServiceReason::PersonDeclined,
        P::Safety => ServiceReason::SafetyRisk,
    })
}

/// Whether a receipt reports quarantine.
pub(crate) fn quarantined(s: pb::ReceiptStatus) -> Option<bool> {
    match s {
        pb::ReceiptStatus::Unspecified => None,
        pb::ReceiptStatus::Journaled => Some(false),
        pb::ReceiptStatus::Quarantined => Some(true),
    }
}

/// Whether identification confirmed the person as a victim.
pub(crate) fn victim(o: pb::IdentificationOutcome) -> Option<bool> {
    match o {
        pb::IdentificationOutcome::Unspecified => None,
        pb::IdentificationOutcome::Confirmed => Some(true),
        pb::IdentificationOutcome::NotConfirmed => Some(false),
    }
}

/// Whether a return risk level allows return: low and medium ("conditions
/// attached") do, high ("return not advised") does not.
pub(crate) fn return_safe(r: pb::RiskLevel) -> Option<bool> {
    match r {
        pb::RiskLevel::Unspecified => None,
        pb::RiskLevel::Low | pb::RiskLevel::Medium => Some(true),
        pb::RiskLevel::High => Some(false),
    }
}

/// For enums that are only validated (the policy keeps nothing of them):
/// [`decode`] has already rejected `UNSPECIFIED` and unknown numbers.
pub(crate) fn set<E: ProtoEnum>(_: E) -> Option<()> {
    Some(())
}

/// An erasure ground; `None` for `UNSPECIFIED`. Whether it was requested
/// here or by another agency's notice (`NOTICE`).
pub(crate) fn erasure_ground(g: pb::ErasureGround) -> Option<bool> {
    match g {
        pb::ErasureGround::Unspecified => None,
        pb::ErasureGround::Notice => Some(true),
        pb::ErasureGround::PersonRequest
        | pb::ErasureGround::ConsentWithdrawn
        | pb::ErasureGround::NoLongerNecessary
        | pb::ErasureGround::Order => Some(false),
    }
}
