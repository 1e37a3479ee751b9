//! One HTCDS row → what to record at the agency, or why not. Pure: no I/O.

use std::collections::HashMap;

use waymark_proto::v1 as pb;

use super::csv::Record;

/// What one valid row asks the agency to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    /// The row number (the line of the file it starts on; the header is 1).
    pub row: usize,
    /// The HTCDS record id (`cas_Id`).
    pub record_id: String,
    /// How the person came to attention.
    pub channel: pb::IdentificationChannel,
    /// `vic_MajorityStatus` is Minor or Unknown.
    pub presumed_child: bool,
    /// Forms of exploitation, without repeats, in column order.
    pub forms: Vec<pb::ExploitationForm>,
    /// Indicator codes from `vic_MethodsOfControl` (`htcds.control.*`).
    pub indicators: Vec<String>,
    /// Set when the case is closed in the source.
    pub closed: Option<pb::CaseOutcome>,
}

/// Column names, matched ignoring case and surrounding spaces.
pub(crate) mod col {
    pub(crate) const ID: &str = "cas_Id";
    pub(crate) const STATUS: &str = "cas_Status";
    pub(crate) const CLOSURE: &str = "cas_ReasonForCaseClosure";
    pub(crate) const ORG_TYPE: &str = "cas_ReferringOrganisationType";
    pub(crate) const CHANNEL: &str = "wmk_IdentificationChannel";
    pub(crate) const MAJORITY: &str = "vic_MajorityStatus";
    pub(crate) const EXPLOITATION: &str = "vic_TypeOfExploitation";
    pub(crate) const LABOUR: &str = "vic_TypeOfLabourExploitation";
    pub(crate) const SEX: &str = "vic_TypeOfSexExploitation";
    pub(crate) const CONTROL: &str = "vic_MethodsOfControl";
    /// Every column the importer reads.
    pub(crate) const ALL: &[&str] = &[
        ID,
        STATUS,
        CLOSURE,
        ORG_TYPE,
        CHANNEL,
        MAJORITY,
        EXPLOITATION,
        LABOUR,
        SEX,
        CONTROL,
    ];
}

/// A picklist value as HTCDS spells its name or label: case, spaces,
/// `_`, `-` and `/` do not matter ("DomesticWork" = "Domestic Work").
fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '/'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn channel(v: &str) -> Option<pb::IdentificationChannel> {
    use pb::IdentificationChannel as C;
    Some(match norm(v).as_str() {
        "police" => C::Police,
        "border" => C::Border,
        "labourinspection" | "laborinspection" => C::LabourInspection,
        "outreach" => C::Outreach,
        "hotline" => C::Hotline,
        "selfreferral" => C::SelfReferral,
        "consular" => C::Consular,
        "socialservices" => C::SocialServices,
        _ => return None,
    })
}

/// HTCDS `org_Type` of the referring organisation → channel.
fn channel_of_org(v: &str) -> Option<pb::IdentificationChannel> {
    use pb::IdentificationChannel as C;
    Some(match norm(v).as_str() {
        "lawenforcement" => C::Police,
        "immigrationservice" => C::Border,
        "ngo" => C::Outreach,
        "healthserviceorganisation"
        | "centralgovernmentorganisation"
        | "localgovernmentorganisation"
        | "legalservice" => C::SocialServices,
        _ => return None,
    })
}

fn exploitation(v: &str) -> Option<pb::ExploitationForm> {
    use pb::ExploitationForm as F;
    Some(match norm(v).as_str() {
        "sexual" | "sexualexploitation" => F::Sexual,
        "labour" | "labor" | "forcedlabour" | "forcedlabor" => F::Labour,
        "criminalactivities" | "forcedcriminality" => F::CriminalActivities,
        "begging" => F::Begging,
        "marriage" | "forcedmarriage" => F::Marriage,
        "organremoval" => F::OrganRemoval,
        "domesticservitude" => F::DomesticServitude,
        "other" => F::Other,
        _ => return None,
    })
}

/// HTCDS `vic_TypeOfLabourExploitation` value → form.
fn labour_type(v: &str) -> Option<pb::ExploitationForm> {
    use pb::ExploitationForm as F;
    Some(match norm(v).as_str() {
        "begging" => F::Begging,
        "domesticwork" => F::DomesticServitude,
        "illicitactivities" => F::CriminalActivities,
        "agriculture" | "aquafarming" | "construction" | "hospitality" | "manufacturing"
        | "miningordrilling" | "peddling" | "transportation" | "other" => F::Labour,
        _ => return None,
    })
}

/// HTCDS `vic_TypeOfSexExploitation` values.
fn sex_type(v: &str) -> bool {
    matches!(
        norm(v).as_str(),
        "prostitution" | "pornography" | "remoteinteractiveservices" | "privatesexualservices"
    )
}

/// HTCDS `vic_MethodsOfControl` value names → indicator code segment.
const CONTROL: &[(&str, &str)] = &[
    ("DebtBondage", "debt_bondage"),
    ("TakesEarnings", "takes_earnings"),
    ("RestrictsFinancialAccess", "restricts_financial_access"),
    ("Threats", "threats"),
    ("PsychologicalAbuse", "psychological_abuse"),
    ("PhysicalAbuse", "physical_abuse"),
    ("SexualAbuse", "sexual_abuse"),
    ("FalsePromises", "false_promises"),
    ("PsychoactiveSubstances", "psychoactive_substances"),
    ("RestrictsMovement", "restricts_movement"),
    ("RestrictsMedicalCare", "restricts_medical_care"),
    ("ExcessiveWorkingHours", "excessive_working_hours"),
    ("UsesChildren", "uses_children"),
    ("ThreatOfLawEnforcement", "threat_of_law_enforcement"),
    ("WithholdsNecessities", "withholds_necessities"),
    ("WithholdsDocuments", "withholds_documents"),
    ("Other", "other"),
];

fn control(v: &str) -> Option<String> {
    let n = norm(v);
    CONTROL
        .iter()
        .find(|(name, _)| norm(name) == n)
        .map(|(_, code)| format!("htcds.control.{code}"))
}

fn outcome(v: &str) -> Option<pb::CaseOutcome> {
    use pb::CaseOutcome as O;
    Some(match norm(v).as_str() {
        "reintegrated" => O::Reintegrated,
        "returned" => O::Returned,
        "regularised" | "regularized" => O::Regularised,
        "declined" => O::Declined,
        "lostcontact" => O::LostContact,
        "notavictim" => O::NotAVictim,
        "transferred" => O::Transferred,
        _ => return None,
    })
}

/// The header: column name (normalised) → index.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    index: HashMap<String, usize>,
    width: usize,
}

impl Header {
    /// From the first record.
    ///
    /// # Errors
    /// The header has no `cas_Id` column, or names a column twice.
    pub(crate) fn new(r: &Record) -> Result<Self, String> {
        let mut index = HashMap::new();
        for (i, name) in r.fields.iter().enumerate() {
            if index.insert(name.trim().to_lowercase(), i).is_some() {
                return Err(format!("the header names column {:?} twice", name.trim()));
            }
        }
        let h = Self {
            index,
            width: r.fields.len(),
        };
        if h.col(col::ID).is_none() {
            return Err(format!(
                "the header has no {} column (the HTCDS record id every row needs)",
                col::ID
            ));
        }
        Ok(h)
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.index.get(&name.to_lowercase()).copied()
    }

    /// The row's `cas_Id` as written (empty when missing).
    pub(crate) fn record_id(&self, r: &Record) -> String {
        self.col(col::ID)
            .and_then(|i| r.fields.get(i))
            .map_or_else(String::new, |s| s.trim().to_owned())
    }

    /// Header columns the importer does not read.
    pub(crate) fn ignored(&self, r: &Record) -> Vec<String> {
        r.fields
            .iter()
            .map(|f| f.trim().to_owned())
            .filter(|f| !col::ALL.iter().any(|c| c.eq_ignore_ascii_case(f)))
            .collect()
    }
}

struct Fields<'a> {
    header: &'a Header,
    record: &'a Record,
}

impl Fields<'_> {
    fn get(&self, name: &str) -> &str {
        self.header
            .col(name)
            .and_then(|i| self.record.fields.get(i))
            .map_or("", |s| s.trim())
    }

    /// A multi-select picklist: values separated by `;`.
    fn multi(&self, name: &str) -> impl Iterator<Item = &str> {
        self.get(name)
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// Maps one record; `Err` is the reason the row is rejected (it names the
/// column and value at fault).
pub(crate) fn map(
    header: &Header,
    r: &Record,
    default_channel: Option<pb::IdentificationChannel>,
) -> Result<CaseRow, String> {
    if r.fields.len() != header.width {
        return Err(format!(
            "has {} fields, the header has {}",
            r.fields.len(),
            header.width
        ));
    }
    let f = Fields { header, record: r };
    let record_id = f.get(col::ID).to_owned();
    if record_id.is_empty() {
        return Err(format!(
            "{} is empty: every row needs its record id",
            col::ID
        ));
    }
    if record_id.chars().count() > 256 {
        return Err(format!("{} is longer than 256 characters", col::ID));
    }
    let bad = |column: &str, v: &str, want: &str| format!("{column}: {v:?} is not {want}");

    let explicit = f.get(col::CHANNEL);
    let org = f.get(col::ORG_TYPE);
    let channel = if !explicit.is_empty() {
        channel(explicit).ok_or_else(|| {
            bad(
                col::CHANNEL,
                explicit,
                "a channel (Police, Border, LabourInspection, Outreach, Hotline, SelfReferral, \
                 Consular, SocialServices)",
            )
        })?
    } else if !org.is_empty() {
        channel_of_org(org).ok_or_else(|| {
            bad(
                col::ORG_TYPE,
                org,
                "an HTCDS organisation type that implies a channel (LawEnforcement, \
                 ImmigrationService, NGO, HealthServiceOrganisation, \
                 Central/LocalGovernmentOrganisation, LegalService); set wmk_IdentificationChannel",
            )
        })?
    } else {
        default_channel.ok_or_else(|| {
            format!(
                "no identification channel: set {} or {}, or pass a default channel",
                col::CHANNEL,
                col::ORG_TYPE
            )
        })?
    };

    let majority = f.get(col::MAJORITY);
    let presumed_child = match norm(majority).as_str() {
        "" | "adult" => false,
        // CETS 197 Art. 10(3): when the age is uncertain, presume a child.
        "minor" | "child" | "unknown" => true,
        _ => return Err(bad(col::MAJORITY, majority, "Adult, Minor or Unknown")),
    };

    let mut forms = Vec::new();
    let mut add = |form: pb::ExploitationForm| {
        if !forms.contains(&form) {
            forms.push(form);
        }
    };
    for v in f.multi(col::EXPLOITATION) {
        add(exploitation(v).ok_or_else(|| {
            bad(
                col::EXPLOITATION,
                v,
                "a form of exploitation (Sexual, Labour, CriminalActivities, Begging, \
                 ForcedMarriage, OrganRemoval, DomesticServitude, Other)",
            )
        })?);
    }
    for v in f.multi(col::LABOUR) {
        add(labour_type(v)
            .ok_or_else(|| bad(col::LABOUR, v, "an HTCDS type of labour exploitation"))?);
    }
    for v in f.multi(col::SEX) {
        if !sex_type(v) {
            return Err(bad(col::SEX, v, "an HTCDS type of sex exploitation"));
        }
        add(pb::ExploitationForm::Sexual);
    }

    let mut indicators = Vec::new();
    for v in f.multi(col::CONTROL) {
        let code = control(v).ok_or_else(|| bad(col::CONTROL, v, "an HTCDS method of control"))?;
        if !indicators.contains(&code) {
            indicators.push(code);
        }
    }

    let status = f.get(col::STATUS);
    let reason = f.get(col::CLOSURE);
    let closed = match norm(status).as_str() {
        "" | "active" | "followup" => None,
        "closedreferred" => Some(pb::CaseOutcome::Transferred),
        "closed" => Some(outcome(reason).ok_or_else(|| {
            bad(
                col::CLOSURE,
                reason,
                "an outcome Waymark records for a closed case (Reintegrated, Returned, \
                 Regularised, Declined, LostContact, NotAVictim, Transferred)",
            )
        })?),
        _ => {
            return Err(bad(
                col::STATUS,
                status,
                "Active, FollowUp, Closed or ClosedReferred",
            ));
        }
    };

    Ok(CaseRow {
        row: r.line,
        record_id,
        channel,
        presumed_child,
        forms,
        indicators,
        closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cols: &[&str]) -> (Header, Record) {
        let r = Record {
            line: 1,
            fields: cols.iter().map(|s| (*s).to_owned()).collect(),
        };
        (Header::new(&r).unwrap(), r)
    }

    fn row(line: usize, f: &[&str]) -> Record {
        Record {
            line,
            fields: f.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn maps_htcds_values_and_labels() {
        let (h, _) = header(&[
            "cas_Id",
            "CAS_STATUS",
            "cas_ReasonForCaseClosure",
            "cas_ReferringOrganisationType",
            "vic_MajorityStatus",
            "vic_TypeOfLabourExploitation",
            "vic_TypeOfSexExploitation",
            "vic_MethodsOfControl",
        ]);
        let r = map(
            &h,
            &row(
                2,
                &[
                    "R-1",
                    "Closed",
                    "Lost contact",
                    "LawEnforcement",
                    "Unknown",
                    "Domestic Work; Agriculture; Construction",
                    "Prostitution",
                    "DebtBondage;Withholds Documents",
                ],
            ),
            None,
        )
        .unwrap();
        assert_eq!(r.channel, pb::IdentificationChannel::Police);
        assert!(r.presumed_child);
        assert_eq!(
            r.forms,
            vec![
                pb::ExploitationForm::DomesticServitude,
                pb::ExploitationForm::Labour,
                pb::ExploitationForm::Sexual
            ]
        );
        assert_eq!(
            r.indicators,
            vec![
                "htcds.control.debt_bondage",
                "htcds.control.withholds_documents"
            ]
        );
        assert_eq!(r.closed, Some(pb::CaseOutcome::LostContact));
    }

    #[test]
    fn bad_values_are_named_with_their_column() {
        let (h, _) = header(&[
            "cas_Id",
            "wmk_IdentificationChannel",
            "vic_TypeOfExploitation",
        ]);
        let e = map(&h, &row(3, &["R-2", "Carrier pigeon", "Labour"]), None).unwrap_err();
        assert!(
            e.starts_with("wmk_IdentificationChannel: \"Carrier pigeon\""),
            "{e}"
        );
        let e = map(&h, &row(4, &["R-3", "Hotline", "Labour;Juggling"]), None).unwrap_err();
        assert!(e.contains("vic_TypeOfExploitation: \"Juggling\""), "{e}");
        let e = map(&h, &row(5, &["", "Hotline", ""]), None).unwrap_err();
        assert!(e.starts_with("cas_Id is empty"), "{e}");
        let e = map(&h, &row(6, &["R-4", ""]), None).unwrap_err();
        assert_eq!(e, "has 2 fields, the header has 3");
        let e = map(&h, &row(7, &["R-5", "", ""]), None).unwrap_err();
        assert!(e.starts_with("no identification channel"), "{e}");
        let ok = map(
            &h,
            &row(8, &["R-6", "", ""]),
            Some(pb::IdentificationChannel::Outreach),
        )
        .unwrap();
        assert_eq!(ok.channel, pb::IdentificationChannel::Outreach);
    }

    #[test]
    fn the_header_needs_a_record_id() {
        let r = row(1, &["cas_Status"]);
        assert!(Header::new(&r).unwrap_err().contains("cas_Id"));
        let r = row(1, &["cas_Id", "CAS_ID"]);
        assert!(Header::new(&r).unwrap_err().contains("twice"));
    }
}
