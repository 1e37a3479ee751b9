//! The agency's errors as a Rust enum, decoded from the gRPC status and its
//! `google.rpc` details (see `proto/waymark/v1/requests.proto`).
//!
//! | status | variant | from the details |
//! |---|---|---|
//! | `INVALID_ARGUMENT` | [`Error::InvalidArgument`] | `BadRequest` field violations |
//! | `FAILED_PRECONDITION` | [`Error::FailedPrecondition`] | `ErrorInfo.reason` = the rule code, `metadata.rule_set` |
//! | `NOT_FOUND` | [`Error::NotFound`] | `ResourceInfo` (what, id) |
//! | `PERMISSION_DENIED` | [`Error::PermissionDenied`] | `ErrorInfo.reason` when a rule refused |
//! | `RESOURCE_EXHAUSTED` | [`Error::ResourceExhausted`] | `RetryInfo.retry_delay` |
//! | `UNAVAILABLE`, or the connection failed mid-call | [`Error::Unavailable`] | |
//! | anything else (`DEADLINE_EXCEEDED`, `INTERNAL`, ...) | [`Error::Other`] | |

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// One malformed field of a request, as the agency named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `idempotency_key` or
    /// `send_to.recipient_id`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// Why a call to the agency failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request is malformed; fix the named fields. Never retried.
    #[error("invalid request: {}", fields(.violations, .message))]
    InvalidArgument {
        /// The agency's message.
        message: String,
        /// The fields at fault.
        violations: Vec<FieldViolation>,
    },
    /// A rule refuses (no consent, not the custodian, a treaty guard, ...).
    /// Never retried: the same request would be refused again.
    #[error("refused by rule {rule}: {message}")]
    FailedPrecondition {
        /// The rule's stable code, e.g. `consent.withdrawn`.
        rule: String,
        /// The caseworker text.
        message: String,
        /// The rule set applied (`<id>@<version>`), when the agency said.
        rule_set: Option<String>,
    },
    /// The case, consent, referral, handover or event is not known at this
    /// agency.
    #[error("not found: {message}")]
    NotFound {
        /// The agency's message.
        message: String,
        /// What kind of thing (`case`, `consent`, ...), when the agency said.
        resource_type: Option<String>,
        /// Its id as given, when the agency said.
        resource_name: Option<String>,
    },
    /// This agency's kind may not do this (or the caller may not).
    #[error("permission denied{}: {message}", .rule.as_deref().map(|r| format!(" by rule {r}")).unwrap_or_default())]
    PermissionDenied {
        /// The rule code, when a rule refused.
        rule: Option<String>,
        /// The agency's message.
        message: String,
    },
    /// Backpressure: too much in flight. Retried with the same key.
    #[error("the agency is busy: {message}")]
    ResourceExhausted {
        /// The agency's message.
        message: String,
        /// How long the agency asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The agency cannot be reached or its journal refuses writes for now.
    /// Retried with the same key.
    #[error("the agency is unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
    },
    /// Any other status.
    #[error("{code:?}: {message}")]
    Other {
        /// The gRPC code.
        code: Code,
        /// The message.
        message: String,
    },
}

fn fields(v: &[FieldViolation], message: &str) -> String {
    if v.is_empty() {
        return message.to_owned();
    }
    v.iter()
        .map(|f| format!("{}: {}", f.field, f.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The gRPC code this error came from.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::NotFound { .. } => Code::NotFound,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::Unavailable { .. } => Code::Unavailable,
            Self::Other { code, .. } => *code,
        }
    }

    /// The rule code of a refusal (`FAILED_PRECONDITION`, or
    /// `PERMISSION_DENIED` by a rule).
    pub fn rule(&self) -> Option<&str> {
        match self {
            Self::FailedPrecondition { rule, .. } => Some(rule),
            Self::PermissionDenied { rule, .. } => rule.as_deref(),
            _ => None,
        }
    }

    /// The field violations of an `INVALID_ARGUMENT` (empty otherwise).
    pub fn violations(&self) -> &[FieldViolation] {
        match self {
            Self::InvalidArgument { violations, .. } => violations,
            _ => &[],
        }
    }

    /// True when trying again later, with the same idempotency key, may
    /// succeed: `UNAVAILABLE`, `RESOURCE_EXHAUSTED` and `DEADLINE_EXCEEDED`.
    /// A refusal (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, ...) is final.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::ResourceExhausted { .. }
                | Self::Other {
                    code: Code::DeadlineExceeded,
                    ..
                }
        )
    }

    /// Decodes a status and its `google.rpc` details.
    pub fn from_status(s: &Status) -> Self {
        let message = s.message().to_owned();
        match s.code() {
            Code::InvalidArgument => Self::InvalidArgument {
                violations: s
                    .get_details_bad_request()
                    .map(|b| {
                        b.field_violations
                            .into_iter()
                            .map(|v| FieldViolation {
                                field: v.field,
                                description: v.description,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                message,
            },
            Code::FailedPrecondition => {
                let info = s.get_details_error_info();
                Self::FailedPrecondition {
                    rule: info
                        .as_ref()
                        .map_or_else(|| "unknown".to_owned(), |i| i.reason.clone()),
                    rule_set: info.and_then(|i| i.metadata.get("rule_set").cloned()),
                    message,
                }
            }
            Code::NotFound => {
                let info = s.get_details_resource_info();
                Self::NotFound {
                    resource_type: info.as_ref().map(|i| i.resource_type.clone()),
                    resource_name: info.map(|i| i.resource_name),
                    message,
                }
            }
            Code::PermissionDenied => Self::PermissionDenied {
                rule: s.get_details_error_info().map(|i| i.reason),
                message,
            },
            Code::ResourceExhausted => Self::ResourceExhausted {
                retry_after: s.get_details_retry_info().and_then(|r| r.retry_delay),
                message,
            },
            Code::Unavailable => Self::Unavailable { message },
            // A status the agency sent is parsed from trailers and has no
            // source; one with a source was made here from a transport
            // failure (connection reset mid-call, broken HTTP/2 stream).
            // The agency may or may not have done the work: the same
            // idempotency key makes trying again safe.
            Code::Unknown | Code::Internal if std::error::Error::source(s).is_some() => {
                Self::Unavailable {
                    message: format!("the connection failed during the call: {message}"),
                }
            }
            code => Self::Other { code, message },
        }
    }
}

impl From<Status> for Error {
    fn from(s: Status) -> Self {
        Self::from_status(&s)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn decodes_field_violations_and_rule_codes() {
        let s = Status::with_error_details(
            Code::InvalidArgument,
            "idempotency_key: required",
            ErrorDetails::with_bad_request_violation("idempotency_key", "required"),
        );
        let e = Error::from(s);
        assert_eq!(e.violations()[0].field, "idempotency_key");
        assert!(!e.is_transient());
        assert_eq!(e.to_string(), "invalid request: idempotency_key: required");

        let meta = HashMap::from([("rule_set".to_owned(), "bg@1".to_owned())]);
        let s = Status::with_error_details(
            Code::FailedPrecondition,
            "Only the custodian may close it.",
            ErrorDetails::with_error_info("custody.not_custodian", "waymark", meta),
        );
        match Error::from(s) {
            Error::FailedPrecondition {
                rule,
                rule_set,
                message,
            } => {
                assert_eq!(rule, "custody.not_custodian");
                assert_eq!(rule_set.as_deref(), Some("bg@1"));
                assert!(message.starts_with("Only"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transient_codes_are_the_retryable_ones() {
        let s = Status::with_error_details(
            Code::ResourceExhausted,
            "busy",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(200))),
        );
        match Error::from(s) {
            e @ Error::ResourceExhausted { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_millis(200)));
                assert!(e.is_transient());
            }
            other => panic!("{other:?}"),
        }
        assert!(Error::from(Status::unavailable("down")).is_transient());
        assert!(Error::from(Status::deadline_exceeded("slow")).is_transient());
        assert!(!Error::from(Status::failed_precondition("no")).is_transient());
        assert!(!Error::from(Status::not_found("x")).is_transient());
        // A server-sent UNKNOWN (no source) stays UNKNOWN and final; one
        // made here from a transport failure is UNAVAILABLE.
        assert!(!Error::from(Status::unknown("?")).is_transient());
        let broken = Status::from_error(Box::new(std::io::Error::other("connection reset")));
        assert!(Error::from(broken).is_transient());
    }
}
