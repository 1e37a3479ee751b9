//! The words consent, disclosure and legal-basis rules are written in.

use crate::token_enum;

token_enum! {
    /// A category of case data. Consent scopes, legal bases and every disclosure
    /// name the categories they cover, so an agency can share what is necessary
    /// and nothing more (OSCE NRM Handbook; Bulgarian NRM SOP measure 1.4).
    pub enum DataCategory("data category") {
        /// The pseudonymous case reference and pathway milestones (status,
        /// dates, which agency holds the case). Holds no personal data.
        CaseCore => "case_core",
        /// Names, date of birth, nationality, identity documents, photographs.
        Identity => "identity",
        /// Addresses, phone numbers, current whereabouts.
        Contact => "contact",
        /// Medical and psychological information, pregnancy, HIV status.
        Health => "health",
        /// Risk assessments and safety plans.
        Safety => "safety",
        /// Assistance and services delivered, accommodation.
        Assistance => "assistance",
        /// Cooperation with police and criminal proceedings. Kept in its own
        /// category because assistance must never depend on it (CETS 197 Art. 12(6)).
        Proceedings => "proceedings",
        /// Residence permits, immigration status, travel documents.
        Residence => "residence",
        /// Employment, training, income support and other reintegration data.
        Reintegration => "reintegration",
    }
}

token_enum! {
    /// Why data is shared. A consent covers a set of purposes; a disclosure names one.
    pub enum Purpose("purpose") {
        /// Identifying a presumed victim (signals, reasonable grounds, conclusive identification).
        Identification => "identification",
        /// Protecting the person's safety.
        Protection => "protection",
        /// Assistance: medical, psychological, legal, material, counselling.
        Assistance => "assistance",
        /// Safe accommodation in a shelter.
        Accommodation => "accommodation",
        /// Voluntary return and reception in the country of origin.
        Return => "return",
        /// Social inclusion and reintegration.
        Reintegration => "reintegration",
        /// Follow-up and monitoring after assistance.
        Monitoring => "monitoring",
        /// Criminal proceedings against traffickers.
        CriminalProceedings => "criminal_proceedings",
    }
}

token_enum! {
    /// A lawful basis for a disclosure other than the person's consent (GDPR
    /// Art. 6(1) and 9(2)). Invoking one always requires a written justification.
    pub enum LegalBasis("legal basis") {
        /// A legal obligation of the disclosing agency (GDPR 6(1)(c)).
        LegalObligation => "legal_obligation",
        /// Protecting the vital interests of the person or another person, for
        /// example an immediate threat to life (GDPR 6(1)(d), 9(2)(c)).
        VitalInterests => "vital_interests",
        /// A task carried out in the public interest or in official authority
        /// (GDPR 6(1)(e)).
        PublicTask => "public_task",
        /// Establishing, exercising or defending legal claims (GDPR 9(2)(f)).
        LegalClaims => "legal_claims",
        /// Substantial public interest set down in law (GDPR 9(2)(g)).
        SubstantialPublicInterest => "substantial_public_interest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in DataCategory::ALL {
            assert!(seen.insert(c.as_str()));
            assert_eq!(c.as_str().parse::<DataCategory>().unwrap(), *c);
        }
        for p in Purpose::ALL {
            assert_eq!(p.as_str().parse::<Purpose>().unwrap(), *p);
        }
        for b in LegalBasis::ALL {
            assert_eq!(b.as_str().parse::<LegalBasis>().unwrap(), *b);
        }
    }

    #[test]
    fn serde_uses_tokens() {
        let json = serde_json::to_string(&DataCategory::Proceedings).unwrap();
        assert_eq!(json, "\"proceedings\"");
        let back: DataCategory = serde_json::from_str(&json).unwrap();
        assert_eq!(back, DataCategory::Proceedings);
        assert!(serde_json::from_str::<Purpose>("\"fun\"").is_err());
    }
}
