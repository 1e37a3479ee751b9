//! Waymark's shared vocabulary.
//!
//! Every other crate speaks in these types: who an agency is ([`AgencyId`],
//! [`AgencyKind`]), which case an event is about ([`CaseId`]), which event it is
//! ([`EventId`], [`EventKind`]), and the words consent and disclosure rules are
//! written in ([`DataCategory`], [`Purpose`], [`LegalBasis`]). Time is a plain
//! [`Timestamp`] so that the pure policy core can take it as an input.
//!
//! # Invariants
//! - No type here can hold personal data. Identifiers are random (`CaseId` is a
//!   UUIDv4) and agency ids are public, subject-safe tokens; that is what lets
//!   them appear in NATS subjects, logs and metrics.
//! - Every enum has a stable wire token (`as_str`) used in subjects, configs and
//!   JSON; tokens never change once released, only new ones are added.
//! - This crate does no I/O and has no async code.

#![forbid(unsafe_code)]

mod agency;
mod event_kind;
mod ids;
mod time;
mod vocab;

pub use agency::{AgencyId, AgencyKind};
pub use event_kind::EventKind;
pub use ids::{CaseId, EventId};
pub use time::Timestamp;
pub use vocab::{DataCategory, LegalBasis, Purpose};

/// A string could not be parsed into one of this crate's types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct ParseError {
    /// Which type was being parsed, e.g. `"agency id"`.
    pub what: &'static str,
    /// The rejected input (never personal data: these are identifiers and tokens).
    pub value: String,
    /// Why it was rejected, phrased for the person who typed it.
    pub reason: &'static str,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, value: &str, reason: &'static str) -> Self {
        // Bound what we echo back: an oversized input must not flood a log line.
        let value: String = value.chars().take(80).collect();
        Self {
            what,
            value,
            reason,
        }
    }
}

/// Implements `as_str`, `Display`, `FromStr`, serde and `ALL` for a fieldless
/// enum from one table of `Variant => "token"` pairs, so the token list exists
/// exactly once.
macro_rules! token_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident ($what:literal) {
        $($(#[$vmeta:meta])* $variant:ident => $token:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable wire token of this value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $token),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::ParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($token => Ok($name::$variant),)+
                    _ => Err($crate::ParseError::new($what, s, "not a known token")),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use token_enum;
