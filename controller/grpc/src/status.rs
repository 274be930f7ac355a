//! The one place core errors become gRPC statuses, with `google.rpc`
//! details: field violations for bad input, quota failures, retry info.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use yunshu_core::{Error, error::FieldViolation};

/// Maps a core error to a status. Messages never carry secrets: core errors
/// are built without them.
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
        Error::Unavailable { .. } => Status::unavailable(message),
        Error::Unauthorized { .. } => Status::unauthenticated(message),
        Error::PermissionDenied { .. } => Status::permission_denied(message),
        Error::Invalid { violations } => invalid(&violations),
        Error::QuotaExceeded { violations } => {
            let mut details = ErrorDetails::new();
            for v in &violations {
                details.add_quota_failure_violation(v.class.as_str(), v.to_string());
            }
            Status::with_error_details(Code::ResourceExhausted, message, details)
        }
        Error::Compacted { .. } => Status::out_of_range(message),
        Error::Internal { .. } => {
            tracing::error!(error = %message, "internal error");
            Status::internal(message)
        }
    }
}

/// Maps the error of an action a foundation carried out for the caller
/// (a reboot, counting a bucket's objects, issuing or revoking
/// credentials). The foundation refusing Yunshu's own credentials or
/// permissions is not the caller's fault and must not read as if their
/// token were bad, so it becomes UNAVAILABLE, naming what an admin must
/// fix; every other error maps as [`to_status`].
pub fn from_foundation(error: Error) -> Status {
    match error {
        Error::Unauthorized { .. } | Error::PermissionDenied { .. } => {
            tracing::error!(error = %error, "a foundation refused Yunshu's credentials");
            Status::unavailable(format!(
                "the foundation refused Yunshu's own credentials ({error}); an admin must fix the foundation's credentials"
            ))
        }
        other => to_status(other),
    }
}

/// `INVALID_ARGUMENT` naming every field and the rule it broke.
pub fn invalid(violations: &[FieldViolation]) -> Status {
    let message = format!(
        "invalid request: {}",
        violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// Shorthand: a single-field `INVALID_ARGUMENT`.
pub fn invalid_field(field: &str, description: impl Into<String>) -> Status {
    invalid(&[FieldViolation::new(field, description)])
}

#[cfg(test)]
mod tests {
    use yunshu_core::{error::QuotaViolation, resources::ResourceClass};

    use super::*;

    #[test]
    fn a_foundation_refusing_yunshu_is_not_the_callers_fault() {
        for e in [
            Error::Unauthorized {
                message: "the access key is not known".into(),
            },
            Error::PermissionDenied {
                message: "the role may not create users".into(),
            },
        ] {
            let status = from_foundation(e);
            assert_eq!(status.code(), Code::Unavailable);
            assert!(
                status.message().contains("Yunshu's own credentials"),
                "{}",
                status.message()
            );
        }
        let status = from_foundation(Error::NotFound {
            what: "bucket b".into(),
        });
        assert_eq!(status.code(), Code::NotFound);
    }

    #[test]
    fn quota_failures_carry_details() {
        let status = to_status(Error::QuotaExceeded {
            violations: vec![QuotaViolation {
                class: ResourceClass::Vcpu,
                requested: 16,
                used: 44,
                limit: 48,
            }],
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "quota exceeded: vcpu requested 16, used 44, limit 48"
        );
        let qf = status
            .get_details_quota_failure()
            .expect("quota failure details");
        assert_eq!(qf.violations[0].subject, "vcpu");
    }

    #[test]
    fn invalid_names_every_field() {
        let status = invalid(&[
            FieldViolation::new("instance.spec.vcpu", "must be at least 1"),
            FieldViolation::new("instance_id", "must be a DNS label"),
        ]);
        assert_eq!(status.code(), Code::InvalidArgument);
        let br = status
            .get_details_bad_request()
            .expect("bad request details");
        assert_eq!(br.field_violations.len(), 2);
        assert_eq!(br.field_violations[1].field, "instance_id");
    }
}
