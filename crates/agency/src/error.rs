//! The one place where failures become gRPC statuses (STYLE §4).
//!
//! | failure | code | details |
//! |---|---|---|
//! | malformed request or event | `INVALID_ARGUMENT` | `BadRequest` field violations, paths of the request |
//! | a rule refuses (policy [`Violation`]) | `FAILED_PRECONDITION` | `ErrorInfo{reason = rule code, domain "waymark", metadata rule_set}`; message = the caseworker text |
//! | the agency's kind may not do it (`event.originator_not_allowed`, `custody.kind_may_not_hold`) | `PERMISSION_DENIED` | the same `ErrorInfo` |
//! | unknown case, consent, referral, handover, event | `NOT_FOUND` | `ResourceInfo` |
//! | too many writes in flight | `RESOURCE_EXHAUSTED` | `RetryInfo` |
//! | the journal or local store refuses writes | `UNAVAILABLE` | |
//! | proof sizes outside the journal | `OUT_OF_RANGE` | `BadRequest` |

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
use waymark_bus::SendError;
use waymark_journal::JournalError;
use waymark_policy::{Rule, Violation};

use crate::store::StoreError;

/// The `ErrorInfo.domain` of every Waymark error.
pub const DOMAIN: &str = "waymark";

/// Why a call failed, before it becomes a [`Status`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: `(field path, description)` pairs.
    #[error("the request is malformed")]
    Invalid(Vec<(String, String)>),
    /// A rule refuses; `code` is the rule's stable id.
    #[error("{message}")]
    Rule {
        /// The rule code, e.g. `custody.not_custodian`.
        code: String,
        /// The rule set applied, if known.
        rule_set: String,
        /// The caseworker text.
        message: String,
        /// True when the agency's kind is what the rule refuses.
        permission: bool,
    },
    /// Something named does not exist here.
    #[error("{what} {id} is not known at this agency")]
    NotFound {
        /// What kind of thing ("case", "consent", ...).
        what: &'static str,
        /// Its id as given.
        id: String,
    },
    /// Backpressure: retry later with the same idempotency key.
    #[error("{0}")]
    Exhausted(String),
    /// The journal or store refuses writes.
    #[error("{0}")]
    Unavailable(String),
    /// Sizes or positions outside the journal.
    #[error("{message}")]
    OutOfRange {
        /// The field at fault.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// Not available in this version.
    #[error("{0}")]
    Unimplemented(String),
    /// A bug or damage on this side.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Checks a protobuf enum field: `INVALID_ARGUMENT` naming `field` when
    /// it is unset (0) or a value this version does not know.
    ///
    /// # Errors
    /// The violation, as `INVALID_ARGUMENT`.
    pub fn required_enum<E: TryFrom<i32>>(field: &str, value: i32) -> Result<(), Self> {
        match (value, E::try_from(value)) {
            (0, _) => Err(Self::invalid(field, "required")),
            (_, Err(_)) => Err(Self::invalid(field, format!("unknown value {value}"))),
            _ => Ok(()),
        }
    }

    /// One malformed field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid(vec![(field.into(), description.into())])
    }

    /// A refusal by a policy [`Violation`].
    pub fn violation(v: &Violation) -> Self {
        Self::Rule {
            code: v.rule.code().to_owned(),
            rule_set: v.rule_set.to_string(),
            message: v.reason.clone(),
            permission: is_permission(v.rule),
        }
    }

    /// A precondition of this service (not a policy rule) that fails.
    pub fn precondition(code: &str, message: impl Into<String>) -> Self {
        Self::Rule {
            code: code.to_owned(),
            rule_set: String::new(),
            message: message.into(),
            permission: false,
        }
    }

    /// Maps a [`SendError`]; `field` maps an event field path to the
    /// request's (or `None` to keep the event's path under `event.`).
    pub fn from_send(e: SendError, field: &dyn Fn(&str) -> Option<String>) -> Self {
        match e {
            SendError::Malformed(w) => Self::Invalid(
                w.into_violations()
                    .into_iter()
                    .map(|v| {
                        let f = field(&v.field).unwrap_or_else(|| format!("event.{}", v.field));
                        (f, v.description)
                    })
                    .collect(),
            ),
            SendError::Refused(detail) => refusal(&detail),
            SendError::Journal(j) => Self::from(j),
            SendError::NotOurs(d) => Self::Internal(format!("event not signable here: {d}")),
            SendError::Task(t) => Self::Internal(format!("journal task failed: {t}")),
        }
    }
}

fn is_permission(rule: Rule) -> bool {
    matches!(rule, Rule::OriginatorNotAllowed | Rule::KindMayNotHold)
}

/// Reads the bus's refusal text back into a rule. The bus formats a
/// [`Violation`] as `"{rule:?} under {rule_set}: {reason}"`; other refusals
/// (unknown rule set, a bad forwarded envelope) are free text.
fn refusal(detail: &str) -> ApiError {
    for r in Rule::ALL {
        let name = format!("{r:?} under ");
        if let Some(rest) = detail.strip_prefix(&name)
            && let Some((rule_set, reason)) = rest.split_once(": ")
        {
            return ApiError::Rule {
                code: r.code().to_owned(),
                rule_set: rule_set.to_owned(),
                message: reason.to_owned(),
                permission: is_permission(*r),
            };
        }
    }
    let code = if detail.starts_with("unknown rule set") {
        Rule::RuleSetUnknown.code()
    } else {
        "forward.refused"
    };
    ApiError::precondition(code, detail)
}

impl From<JournalError> for ApiError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::OutOfRange(m) => Self::OutOfRange {
                field: "tree_size",
                message: m,
            },
            e @ (JournalError::Failed(_) | JournalError::Store { .. }) => {
                Self::Unavailable(format!("the journal is not accepting requests: {e}"))
            }
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(format!("the agency store failed: {e}"))
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Invalid(v) => {
                let msg = v
                    .iter()
                    .map(|(f, d)| format!("{f}: {d}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                let fv: Vec<FieldViolation> = v
                    .into_iter()
                    .map(|(f, d)| FieldViolation::new(f, d))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    msg,
                    ErrorDetails::with_bad_request(fv),
                )
            }
            ApiError::Rule {
                code,
                rule_set,
                message,
                permission,
            } => {
                let c = if permission {
                    Code::PermissionDenied
                } else {
                    Code::FailedPrecondition
                };
                let mut meta = std::collections::HashMap::new();
                if !rule_set.is_empty() {
                    meta.insert("rule_set".to_owned(), rule_set);
                }
                Status::with_error_details(
                    c,
                    message,
                    ErrorDetails::with_error_info(code, DOMAIN, meta),
                )
            }
            ApiError::NotFound { what, id } => {
                let msg = format!("{what} {id} is not known at this agency");
                Status::with_error_details(
                    Code::NotFound,
                    msg.clone(),
                    ErrorDetails::with_resource_info(what, id, "", msg),
                )
            }
            ApiError::Exhausted(m) => Status::with_error_details(
                Code::ResourceExhausted,
                m,
                ErrorDetails::with_retry_info(Some(Duration::from_millis(200))),
            ),
            ApiError::Unavailable(m) => {
                tracing::warn!(error = %m, "answering UNAVAILABLE");
                Status::unavailable(m)
            }
            ApiError::OutOfRange { field, message } => Status::with_error_details(
                Code::OutOfRange,
                message.clone(),
                ErrorDetails::with_bad_request_violation(field, message),
            ),
            ApiError::Unimplemented(m) => Status::unimplemented(m),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal(m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_refusals_read_back_into_rules() {
        let e = refusal("NotCustodian under bg@1: Only the agency holding the case may close it.");
        match e {
            ApiError::Rule {
                code,
                rule_set,
                message,
                permission,
            } => {
                assert_eq!(code, "custody.not_custodian");
                assert_eq!(rule_set, "bg@1");
                assert!(message.starts_with("Only the agency"));
                assert!(!permission);
            }
            other => panic!("{other:?}"),
        }
        let s = Status::from(refusal("OriginatorNotAllowed under bg@1: no"));
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(
            s.get_details_error_info().unwrap().reason,
            "event.originator_not_allowed"
        );
        let s = Status::from(refusal("inner envelope: bad_signature (x)"));
        assert_eq!(s.code(), Code::FailedPrecondition);
    }

    #[test]
    fn backpressure_and_journal_failures_have_their_codes() {
        let s = Status::from(ApiError::Exhausted("busy".into()));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.get_details_retry_info().is_some());
        let s = Status::from(ApiError::from(JournalError::Failed("fsync".into())));
        assert_eq!(s.code(), Code::Unavailable);
    }
}
