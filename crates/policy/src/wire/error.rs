//! [`WireError`]: every field of a protobuf event that could not be decoded.

use std::fmt;

/// One field of a protobuf message that is missing or malformed.
///
/// Mirrors `google.rpc.BadRequest.FieldViolation`: services copy `field` and
/// `description` into one, one to one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldViolation {
    /// The field's path as protobuf names it, relative to `waymark.v1.Event`:
    /// field names joined by `.`, repeated elements indexed from 0, e.g.
    /// `sender_id`, `basis.legal.basis`, `shares[1]`,
    /// `body.handover_offered.expires_at`. The body's members are prefixed
    /// with the oneof's name, `body`, so a missing body is reported as `body`.
    pub field: String,
    /// What is wrong and how to fix it, for the developer of the sending back
    /// office. Never contains personal data beyond a truncated echo of a
    /// malformed identifier.
    pub description: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// A protobuf event could not be converted into the policy model because one
/// or more fields are missing or malformed.
///
/// Holds **every** violation found, in field order, never an empty list.
/// Services turn it into gRPC `INVALID_ARGUMENT` with a `google.rpc.BadRequest`
/// listing [`WireError::violations`]; the bus quarantines the message with
/// reason [`WireError::QUARANTINE_REASON`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event: {}", Summary(&self.violations))]
pub struct WireError {
    violations: Vec<FieldViolation>,
}

impl WireError {
    /// The reason token a bus quarantine entry records for an event that
    /// fails conversion (see `waymark.v1.Quarantine.reason`).
    pub const QUARANTINE_REASON: &'static str = "malformed";

    /// Every violation found, in the order the fields were checked.
    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    /// The violations, by value.
    pub fn into_violations(self) -> Vec<FieldViolation> {
        self.violations
    }

    /// The paths of the violated fields, in order (a field may repeat when it
    /// breaks more than one rule).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.violations.iter().map(|v| v.field.as_str())
    }
}

struct Summary<'a>(&'a [FieldViolation]);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// Collects violations while a message is decoded.
///
/// Convention used throughout the converter: a decoding step returns `None`
/// only after pushing at least one violation (or when a violation for the
/// same input was already pushed elsewhere, which the step documents), so a
/// value assembled from `Some`s is complete exactly when no violation was
/// pushed.
#[derive(Debug, Default)]
pub(crate) struct Check {
    violations: Vec<FieldViolation>,
}

impl Check {
    /// Records that `field` is missing or malformed.
    pub(crate) fn fail(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// `value` if nothing was violated, else every violation.
    pub(crate) fn finish<T>(self, value: Option<T>) -> Result<T, WireError> {
        match (value, self.violations.is_empty()) {
            (Some(v), true) => Ok(v),
            (_, false) => Err(WireError {
                violations: self.violations,
            }),
            // Breaks the convention above; report it rather than panic.
            (None, true) => Err(WireError {
                violations: vec![FieldViolation {
                    field: String::new(),
                    description: "the event could not be converted (internal error in the \
                                  wire converter; please report it)"
                        .to_owned(),
                }],
            }),
        }
    }
}
