//! From what an S3 or admin server answered to Yunshu's error kinds.
//!
//! [`classify`] is the one pure mapping, from HTTP status, S3/IAM/RGW error
//! code and `Retry-After` to an [`Error`]; [`from_sdk`] and the admin
//! clients feed it. Messages are built from what Yunshu asked ("create
//! bucket ys-health-docs-…") and the server's error *code*; the server's free
//! text is left out, so nothing a server echoes can leak into logs.

use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use yunshu_core::Error;

/// Maps a server's answer to an error. `what` says what was attempted, e.g.
/// `create bucket ys-health-docs-1a2b3c4d`; it must hold no secret.
pub fn classify(
    status: u16,
    code: Option<&str>,
    retry_after: Option<Duration>,
    what: &str,
) -> Error {
    let code = code.filter(|c| !c.is_empty());
    let shown = code.map_or_else(
        || format!("HTTP {status}"),
        |c| format!("{c} (HTTP {status})"),
    );
    match code {
        Some("QuotaExceeded") => return Error::QuotaExceeded { violations: vec![] },
        Some(
            "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "TooManyRequests"
            | "RequestLimitExceeded",
        ) => {
            return Error::Throttled {
                what: what.to_owned(),
                retry_after,
            };
        }
        Some(
            "NoSuchBucket" | "NoSuchKey" | "NoSuchUser" | "NoSuchEntity" | "NoSuchBucketPolicy"
            | "NoSuchTagSet" | "NoSuchTagSetError" | "NoSuchKeyError" | "NotFound",
        ) => {
            return Error::not_found(what);
        }
        Some(
            "BucketAlreadyExists"
            | "BucketAlreadyOwnedByYou"
            | "UserAlreadyExists"
            | "EntityAlreadyExists"
            | "KeyExists",
        ) => {
            return Error::AlreadyExists {
                what: what.to_owned(),
            };
        }
        Some("BucketNotEmpty") => {
            return Error::Conflict {
                message: format!("{what}: the bucket is not empty"),
            };
        }
        Some(
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "InvalidToken"
            | "AuthorizationHeaderMalformed",
        ) => {
            return Error::Unauthorized {
                message: format!("{what}: the server rejected the credentials: {shown}"),
            };
        }
        _ => {}
    }
    match status {
        404 => Error::not_found(what),
        409 => Error::Conflict {
            message: format!("{what}: {shown}"),
        },
        401 => Error::Unauthorized {
            message: format!("{what}: {shown}"),
        },
        403 => Error::PermissionDenied {
            message: format!("{what}: {shown}"),
        },
        429 => Error::Throttled {
            what: what.to_owned(),
            retry_after,
        },
        503 => Error::Throttled {
            what: what.to_owned(),
            retry_after,
        },
        400 | 405 | 411 | 413 | 414 | 416 => {
            Error::invalid(what.to_owned(), format!("the server refused it: {shown}"))
        }
        501 => Error::internal(format!("{what}: the server does not implement it: {shown}")),
        500..=599 => Error::Unavailable {
            message: format!("{what}: server error {shown}"),
            source: None,
        },
        _ => Error::internal(format!("{what}: unexpected answer {shown}")),
    }
}

/// Parses a `Retry-After` header given in seconds.
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Maps an aws-sdk-s3 error. Transport failures and timeouts are
/// `Unavailable` with the SDK error attached as the source.
pub fn from_sdk<E>(err: SdkError<E, HttpResponse>, what: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            let raw = se.raw();
            classify(
                raw.status().as_u16(),
                se.err().code(),
                retry_after(raw.headers().get("retry-after")),
                what,
            )
        }
        SdkError::ResponseError(re) => {
            let raw = re.raw();
            let status = raw.status().as_u16();
            if raw.status().is_success() {
                Error::Internal {
                    message: format!("{what}: the server's answer could not be read"),
                    source: Some(Box::new(err)),
                }
            } else {
                classify(
                    status,
                    None,
                    retry_after(raw.headers().get("retry-after")),
                    what,
                )
            }
        }
        SdkError::TimeoutError(_) => Error::unavailable(format!("{what}: timed out"), err),
        SdkError::DispatchFailure(_) => {
            Error::unavailable(format!("{what}: the server could not be reached"), err)
        }
        _ => Error::Internal {
            message: format!("{what}: the request could not be built"),
            source: Some(Box::new(err)),
        },
    }
}

/// The S3 error code of an SDK error, if the server sent one.
pub fn sdk_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    err.as_service_error().and_then(ProvideErrorMetadata::code)
}

/// The HTTP status of an SDK error, if a response came back.
pub fn sdk_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

#[cfg(test)]
mod tests {
    use yunshu_core::ErrorKind;

    use super::*;

    fn kind(status: u16, code: Option<&str>) -> ErrorKind {
        classify(status, code, None, "do it").kind()
    }

    #[test]
    fn maps_status_and_code_to_kinds() {
        use ErrorKind::*;
        let cases: &[(u16, Option<&str>, ErrorKind)] = &[
            (404, Some("NoSuchBucket"), NotFound),
            (404, None, NotFound),
            (404, Some("NoSuchKey"), NotFound),
            (404, Some("NoSuchUser"), NotFound),
            (404, Some("NoSuchEntity"), NotFound),
            (409, Some("BucketAlreadyExists"), AlreadyExists),
            (409, Some("BucketAlreadyOwnedByYou"), AlreadyExists),
            (409, Some("UserAlreadyExists"), AlreadyExists),
            (409, Some("EntityAlreadyExists"), AlreadyExists),
            (409, Some("BucketNotEmpty"), Conflict),
            (409, Some("OperationAborted"), Conflict),
            (403, Some("QuotaExceeded"), QuotaExceeded),
            (403, Some("AccessDenied"), PermissionDenied),
            (403, None, PermissionDenied),
            (403, Some("InvalidAccessKeyId"), Unauthorized),
            (403, Some("SignatureDoesNotMatch"), Unauthorized),
            (401, None, Unauthorized),
            (503, Some("SlowDown"), Throttled),
            (503, None, Throttled),
            (429, None, Throttled),
            (400, Some("Throttling"), Throttled),
            (500, Some("InternalError"), Unavailable),
            (502, None, Unavailable),
            (504, None, Unavailable),
            (400, Some("InvalidBucketName"), Invalid),
            (501, Some("NotImplemented"), Internal),
            (302, None, Internal),
        ];
        for (status, code, want) in cases {
            assert_eq!(kind(*status, *code), *want, "{status} {code:?}");
        }
    }

    #[test]
    fn throttling_keeps_retry_after() {
        let e = classify(
            503,
            Some("SlowDown"),
            retry_after(Some(" 7 ")),
            "put object",
        );
        match e {
            Error::Throttled { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
            }
            other => panic!("expected Throttled, got {other:?}"),
        }
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }

    #[test]
    fn messages_say_what_and_code_only() {
        let e = classify(
            403,
            Some("AccessDenied"),
            None,
            "get bucket ys-a-b-12345678",
        );
        assert_eq!(
            e.to_string(),
            "permission denied: get bucket ys-a-b-12345678: AccessDenied (HTTP 403)"
        );
    }
}
