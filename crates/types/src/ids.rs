//! Random identifiers for cases and events.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::ParseError;

/// The pseudonymous reference to one person's case, shared by every agency that
/// works on it. A random UUIDv4: it carries no information about the person,
/// the agency or the time, so it may appear in journals and on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseId(Uuid);

/// The identifier of one signed event, a UUIDv7 (time-ordered, so journals and
/// outboxes sort naturally). It is also the `Nats-Msg-Id` the event is
/// published with, and it names the consent, referral or handover an event
/// creates: a consent's id is the id of its `ConsentGranted` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Uuid);

macro_rules! uuid_id {
    ($name:ident, $what:literal, $version:expr, $new_doc:literal) => {
        impl $name {
            #[doc = $new_doc]
            pub fn new() -> Self {
                Self($version)
            }

            /// Wraps an existing UUID (as read from the wire).
            pub const fn from_uuid(u: Uuid) -> Self {
                Self(u)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 raw bytes, for compact storage keys.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Parses the hyphenated form.
            ///
            /// # Errors
            /// Returns a [`ParseError`] if `s` is not a hyphenated UUID.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                // Only the canonical hyphenated, lowercase form: one id, one spelling.
                if s.len() != 36 || s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(ParseError::new(
                        $what,
                        s,
                        "must be a lowercase hyphenated UUID (36 characters)",
                    ));
                }
                Uuid::parse_str(s).map(Self).map_err(|_| {
                    ParseError::new(
                        $what,
                        s,
                        "must be a lowercase hyphenated UUID (36 characters)",
                    )
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(CaseId, "case id", Uuid::new_v4(), "A fresh random case id.");
uuid_id!(
    EventId,
    "event id",
    Uuid::now_v7(),
    "A fresh time-ordered event id."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let c = CaseId::new();
        assert_eq!(c.to_string().parse::<CaseId>().unwrap(), c);
        let e = EventId::new();
        assert_eq!(e.to_string().parse::<EventId>().unwrap(), e);
    }

    #[test]
    fn only_the_canonical_spelling_parses() {
        let c = CaseId::new().to_string();
        assert!(c.to_uppercase().parse::<CaseId>().is_err());
        assert!(c.replace('-', "").parse::<CaseId>().is_err());
        assert!("not-a-case".parse::<CaseId>().is_err());
    }

    #[test]
    fn event_ids_are_time_ordered() {
        let a = EventId::new();
        let b = EventId::new();
        assert!(a < b);
    }
}
