//! Errors on the wire, as `adapter.proto`'s table says: a core error becomes
//! a status code with `google.rpc` details, and a status becomes the error
//! kind the runtime acts on (retry, back off, give up).

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use yunshu_core::{
    Error,
    error::{FieldViolation, QuotaViolation},
};

/// The status an adapter's error is sent as.
pub fn to_status(error: Error) -> Status {
    let message = error.to_string();
    match error {
        Error::NotFound { .. } => Status::not_found(message),
        Error::AlreadyExists { .. } => Status::already_exists(message),
        Error::Conflict { .. } => Status::aborted(message),
        Error::Throttled { retry_after, .. } => {
            let mut details = ErrorDetails::new();
            details.set_retry_info(retry_after);
            Status::with_error_details(Code::ResourceExhausted, message, details)
        }
        Error::QuotaExceeded { violations } => {
            let mut details = ErrorDetails::new();
            for v in &violations {
                details.add_quota_failure_violation(
                    v.class.as_str(),
                    format!(
                        "requested {}, used {}, limit {}",
                        v.requested, v.used, v.limit
                    ),
                );
            }
            if violations.is_empty() {
                details.add_quota_failure_violation("", "the cloud's quota is full");
            }
            Status::with_error_details(Code::ResourceExhausted, message, details)
        }
        Error::Unavailable { .. } => Status::unavailable(message),
        Error::Unauthorized { .. } => Status::unauthenticated(message),
        Error::PermissionDenied { .. } => Status::permission_denied(message),
        Error::Invalid { violations } => {
            let mut details = ErrorDetails::new();
            for v in violations {
                details.add_bad_request_violation(v.field, v.description);
            }
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        Error::Compacted { .. } | Error::Internal { .. } => Status::internal(message),
    }
}

/// The error a status from `foundation`'s adapter stands for. Messages are
/// kept as the adapter wrote them, prefixed with the foundation where the
/// kind alone would not say whose they are.
pub fn from_status(foundation: &str, status: &Status) -> Error {
    let message = status.message().to_owned();
    let whose = || format!("remote adapter of {foundation}: {message}");
    match status.code() {
        Code::NotFound => Error::NotFound { what: message },
        Code::AlreadyExists => Error::AlreadyExists { what: message },
        Code::Aborted | Code::FailedPrecondition => Error::Conflict { message },
        Code::ResourceExhausted => {
            let details = status.get_error_details();
            match details.quota_failure() {
                Some(q) => Error::QuotaExceeded {
                    violations: q
                        .violations
                        .iter()
                        .filter_map(|v| quota_violation(&v.subject, &v.description))
                        .collect(),
                },
                None => Error::Throttled {
                    what: format!("the remote adapter of {foundation}"),
                    retry_after: details
                        .retry_info()
                        .and_then(|r| r.retry_delay)
                        .filter(|d| *d > Duration::ZERO),
                },
            }
        }
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Error::Unavailable {
            message: whose(),
            source: None,
        },
        Code::Unauthenticated => Error::Unauthorized { message: whose() },
        Code::PermissionDenied => Error::PermissionDenied { message: whose() },
        Code::InvalidArgument => {
            let violations: Vec<FieldViolation> = status
                .get_details_bad_request()
                .map(|b| {
                    b.field_violations
                        .into_iter()
                        .map(|v| FieldViolation::new(v.field, v.description))
                        .collect()
                })
                .unwrap_or_default();
            if violations.is_empty() {
                Error::invalid("", message)
            } else {
                Error::Invalid { violations }
            }
        }
        Code::Unimplemented => Error::invalid(
            "",
            format!("the remote adapter of {foundation} does not support this: {message}"),
        ),
        _ => Error::internal(whose()),
    }
}

/// A quota violation written by [`to_status`]; `None` for a subject that is
/// not a resource class Yunshu knows.
fn quota_violation(subject: &str, description: &str) -> Option<QuotaViolation> {
    let class = subject.parse().ok()?;
    let mut numbers = description
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse::<u64>().ok());
    Some(QuotaViolation {
        class,
        requested: numbers.next().unwrap_or(0),
        used: numbers.next().unwrap_or(0),
        limit: numbers.next().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use yunshu_core::{ErrorKind, resources::ResourceClass};

    use super::*;

    fn round_trip(e: Error) -> Error {
        from_status("vendor-cloud", &to_status(e))
    }

    #[test]
    fn every_kind_survives_the_wire() {
        let cases = [
            (Error::not_found("server s-1"), ErrorKind::NotFound),
            (
                Error::AlreadyExists {
                    what: "bucket b".into(),
                },
                ErrorKind::AlreadyExists,
            ),
            (
                Error::Conflict {
                    message: "bucket b is not empty".into(),
                },
                ErrorKind::Conflict,
            ),
            (
                Error::Unavailable {
                    message: "the cloud answered 503".into(),
                    source: None,
                },
                ErrorKind::Unavailable,
            ),
            (
                Error::Unauthorized {
                    message: "the token was refused".into(),
                },
                ErrorKind::Unauthorized,
            ),
            (
                Error::PermissionDenied {
                    message: "no".into(),
                },
                ErrorKind::PermissionDenied,
            ),
            (Error::internal("a bug"), ErrorKind::Internal),
        ];
        for (e, kind) in cases {
            let back = round_trip(e);
            assert_eq!(back.kind(), kind, "{back}");
        }
    }

    #[test]
    fn throttling_keeps_its_delay_and_quota_its_numbers() {
        let back = round_trip(Error::Throttled {
            what: "nova".into(),
            retry_after: Some(Duration::from_secs(7)),
        });
        match back {
            Error::Throttled { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
            }
            other => panic!("{other:?}"),
        }
        let back = round_trip(Error::QuotaExceeded {
            violations: vec![QuotaViolation {
                class: ResourceClass::Vcpu,
                requested: 16,
                used: 44,
                limit: 48,
            }],
        });
        assert_eq!(
            back.to_string(),
            "quota exceeded: vcpu requested 16, used 44, limit 48"
        );
        let back = round_trip(Error::QuotaExceeded { violations: vec![] });
        assert_eq!(back.kind(), ErrorKind::QuotaExceeded);
    }

    #[test]
    fn field_violations_are_kept_and_unimplemented_is_invalid() {
        let back = round_trip(Error::invalid("spec.image", "is not known on this cloud"));
        match back {
            Error::Invalid { violations } => {
                assert_eq!(violations[0].field, "spec.image");
            }
            other => panic!("{other:?}"),
        }
        let back = from_status("vendor-cloud", &Status::unimplemented("buckets"));
        assert_eq!(back.kind(), ErrorKind::Invalid);
        assert!(back.to_string().contains("vendor-cloud"), "{back}");
    }
}
