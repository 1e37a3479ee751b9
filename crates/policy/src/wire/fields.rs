//! Decoding of single fields: ids, timestamps, enums, event references and
//! rule-set names, each recording a [`FieldViolation`](super::FieldViolation)
//! under its path when it fails.

use std::collections::BTreeSet;

use waymark_proto::v1 as pb;
use waymark_types::{AgencyId, CaseId, EventId, Timestamp};

use super::error::Check;
use super::vocab::{self, ProtoEnum};
use crate::rules::RuleSetRef;

/// Earliest instant a `google.protobuf.Timestamp` may hold (0001-01-01T00:00:00Z).
const MIN_SECONDS: i64 = -62_135_596_800;
/// Latest second a `google.protobuf.Timestamp` may hold (9999-12-31T23:59:59Z).
const MAX_SECONDS: i64 = 253_402_300_799;

/// A `google.protobuf.Timestamp` as a policy [`Timestamp`] (milliseconds;
/// sub-millisecond precision is truncated toward the past).
///
/// Returns `None` when the timestamp is outside the range protobuf defines
/// (years 0001 to 9999) or `nanos` is not in `0..1_000_000_000`.
pub fn timestamp_from_proto(t: &prost_types::Timestamp) -> Option<Timestamp> {
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    Some(Timestamp::from_millis(
        t.seconds * 1000 + i64::from(t.nanos / 1_000_000),
    ))
}

/// A policy [`Timestamp`] as a `google.protobuf.Timestamp`.
pub fn timestamp_to_proto(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // In 0..1_000_000_000, so the conversion cannot fail.
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// `s` in quotes, cut to 80 characters, for echoing in a description.
fn echo(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    format!("{cut:?}")
}

impl Check {
    /// A required, non-empty string.
    pub(crate) fn present<'a>(&mut self, field: &str, s: &'a str, what: &str) -> Option<&'a str> {
        if s.is_empty() {
            self.fail(field, format!("required: {what}"));
            return None;
        }
        Some(s)
    }

    /// A required event id (lowercase hyphenated UUID).
    pub(crate) fn event_id(&mut self, field: &str, s: &str) -> Option<EventId> {
        let s = self.present(field, s, "an event id, a lowercase hyphenated UUID")?;
        EventId::parse(s)
            .map_err(|e| self.fail(field, e.to_string()))
            .ok()
    }

    /// A required case id (lowercase hyphenated UUID).
    pub(crate) fn case_id(&mut self, field: &str, s: &str) -> Option<CaseId> {
        let s = self.present(field, s, "the case id, a lowercase hyphenated UUID")?;
        CaseId::parse(s)
            .map_err(|e| self.fail(field, e.to_string()))
            .ok()
    }

    /// A required agency id.
    pub(crate) fn agency_id(&mut self, field: &str, s: &str) -> Option<AgencyId> {
        let s = self.present(field, s, "an agency id such as \"bg-police-sofia\"")?;
        AgencyId::new(s)
            .map_err(|e| self.fail(field, e.to_string()))
            .ok()
    }

    /// A required timestamp; `hint` says what it means.
    pub(crate) fn time(
        &mut self,
        field: &str,
        t: Option<&prost_types::Timestamp>,
        hint: &str,
    ) -> Option<Timestamp> {
        match t {
            None => {
                self.fail(
                    field,
                    format!("required: {hint} (google.protobuf.Timestamp)"),
                );
                None
            }
            Some(t) => self.valid_time(field, t),
        }
    }

    /// An optional timestamp: `Some(None)` when unset, `None` when malformed.
    pub(crate) fn opt_time(
        &mut self,
        field: &str,
        t: Option<&prost_types::Timestamp>,
    ) -> Option<Option<Timestamp>> {
        match t {
            None => Some(None),
            Some(t) => self.valid_time(field, t).map(Some),
        }
    }

    fn valid_time(&mut self, field: &str, t: &prost_types::Timestamp) -> Option<Timestamp> {
        let ts = timestamp_from_proto(t);
        if ts.is_none() {
            self.fail(
                field,
                format!(
                    "not a valid google.protobuf.Timestamp (seconds {}, nanos {}): seconds must lie \
                     between 0001-01-01 and 9999-12-31 UTC and nanos in 0..999999999",
                    t.seconds, t.nanos
                ),
            );
        }
        ts
    }

    /// A required enum: `UNSPECIFIED` and unknown numbers are violations;
    /// `map` returns `None` only for `UNSPECIFIED`.
    pub(crate) fn enumerated<E: ProtoEnum, T>(
        &mut self,
        field: &str,
        v: i32,
        map: fn(E) -> Option<T>,
    ) -> Option<T> {
        let e = vocab::decode::<E>(v)
            .map_err(|err| self.fail(field, vocab::describe::<E>(err)))
            .ok()?;
        let t = map(e);
        if t.is_none() {
            self.fail(field, vocab::describe::<E>(vocab::EnumError::Unspecified));
        }
        t
    }

    /// An enum whose `UNSPECIFIED` is a valid value ("not recorded", "none").
    pub(crate) fn open_enum<E: ProtoEnum>(&mut self, field: &str, v: i32) -> Option<E> {
        vocab::decode_open::<E>(v)
            .map_err(|err| self.fail(field, vocab::describe::<E>(err)))
            .ok()
    }

    /// A repeated enum; every element required, reported as `field[i]`.
    pub(crate) fn enum_set<E: ProtoEnum, T: Ord>(
        &mut self,
        field: &str,
        vs: &[i32],
        map: fn(E) -> Option<T>,
    ) -> Option<BTreeSet<T>> {
        let items: Vec<_> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| self.enumerated(&format!("{field}[{i}]"), *v, map))
            .collect();
        items.into_iter().collect()
    }

    /// A repeated agency id, reported as `field[i]`.
    pub(crate) fn agency_ids(&mut self, field: &str, ids: &[String]) -> Option<BTreeSet<AgencyId>> {
        let items: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, s)| self.agency_id(&format!("{field}[{i}]"), s))
            .collect();
        items.into_iter().collect()
    }

    /// A required `EventRef`, as the referenced event's id. The envelope hash
    /// is checked for shape (32 bytes) but not kept: the policy links events
    /// by id, the journal and auditor by hash.
    pub(crate) fn event_ref(&mut self, field: &str, r: Option<&pb::EventRef>) -> Option<EventId> {
        let Some(r) = r else {
            self.fail(
                field,
                "required: an EventRef naming the event answered (its event_id and the SHA-256 of \
                 its envelope as journaled)",
            );
            return None;
        };
        let id = self.event_id(&format!("{field}.event_id"), &r.event_id);
        let hash_ok = r.envelope_hash.len() == 32;
        if !hash_ok {
            self.fail(
                format!("{field}.envelope_hash"),
                format!(
                    "must be the 32-byte SHA-256 of the referenced envelope, got {} bytes",
                    r.envelope_hash.len()
                ),
            );
        }
        id.filter(|_| hash_ok)
    }

    /// A required rule-set name, `<id>@<version>`.
    pub(crate) fn rule_set(&mut self, field: &str, s: &str) -> Option<RuleSetRef> {
        let s = self.present(
            field,
            s,
            "the rule set applied, as \"<id>@<version>\" (e.g. \"coe-cets197@1\")",
        )?;
        let parsed = s.split_once('@').and_then(|(id, version)| {
            let id_ok = !id.is_empty()
                && id.len() <= 48
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            let version_ok = !version.is_empty()
                && version.bytes().all(|b| b.is_ascii_digit())
                && !version.starts_with('0');
            let version = version.parse::<u32>().ok().filter(|_| version_ok)?;
            id_ok.then(|| RuleSetRef::new(id, version))
        });
        if parsed.is_none() {
            self.fail(
                field,
                format!(
                    "{} is not \"<id>@<version>\": the id is 1 to 48 lowercase letters, digits and \
                     '-', the version a decimal number from 1 without leading zeros (e.g. \
                     \"coe-cets197@1\")",
                    echo(s)
                ),
            );
        }
        parsed
    }
}
