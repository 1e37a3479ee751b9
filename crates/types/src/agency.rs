//! Agencies: who takes part in the referral mechanism.

use std::fmt;
use std::str::FromStr;

use crate::{ParseError, token_enum};

token_enum! {
    /// The five kinds of agency in a national referral mechanism. The kind decides
    /// which pathway events an agency may originate (see [`crate::EventKind::originators`]).
    pub enum AgencyKind("agency kind") {
        /// Police or border police: identification signals, reasonable-grounds
        /// decisions, conclusive identification, cooperation and proceedings.
        Police => "police",
        /// A shelter: admission, accommodation, services, safety plans, the
        /// recovery and reflection period.
        Shelter => "shelter",
        /// A non-governmental organisation: outreach, hotline intake (including
        /// anonymous intake), assistance and monitoring contacts.
        Ngo => "ngo",
        /// An IOM return desk: voluntary return, risk and best-interests
        /// assessment, travel documents, departure and reception.
        ReturnDesk => "returndesk",
        /// A ministry of labour and social policy: reintegration plans and
        /// measures, monitoring, case closure.
        Labour => "labour",
    }
}

/// The public identifier of one agency, e.g. `bg-police-sofia`.
///
/// Agency ids appear in NATS subjects, metrics and logs, so the format is
/// strict: 2 to 48 characters, lowercase ASCII letters, digits and `-`,
/// starting with a letter and not ending with `-`. That excludes the subject
/// separators and wildcards (`.`, `*`, `>`) and whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyId(String);

impl AgencyId {
    /// Longest accepted id, in bytes.
    pub const MAX_LEN: usize = 48;

    /// Parses and validates an agency id.
    ///
    /// # Errors
    /// Returns a [`ParseError`] naming the violated rule.
    pub fn new(s: &str) -> Result<Self, ParseError> {
        let err = |reason| Err(ParseError::new("agency id", s, reason));
        if s.len() < 2 || s.len() > Self::MAX_LEN {
            return err("must be 2 to 48 characters long");
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return err("must start with a lowercase letter");
        }
        if s.ends_with('-') {
            return err("must not end with '-'");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return err("may contain only lowercase letters, digits and '-'");
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as a string slice; safe to use as one NATS subject token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AgencyId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl serde::Serialize for AgencyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AgencyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_subject_safe_ids() {
        for ok in ["bg-police-sofia", "ngo1", "iom-returndesk-bg", "ab"] {
            assert_eq!(AgencyId::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_ids_that_could_break_a_subject() {
        for bad in [
            "",
            "a",
            "Police",
            "bg.police",
            "bg*",
            "bg>",
            "bg police",
            "-bg",
            "bg-",
            "1bg",
        ] {
            assert!(AgencyId::new(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(AgencyId::new(&"a".repeat(49)).is_err());
    }

    #[test]
    fn kind_tokens_round_trip() {
        for k in AgencyKind::ALL {
            assert_eq!(k.as_str().parse::<AgencyKind>().unwrap(), *k);
        }
        assert!("army".parse::<AgencyKind>().is_err());
    }
}
