//! The operator's error: what failed (a Kubernetes call, a store call, a
//! conversion), with the source attached and a core [`ErrorKind`] the error
//! policy acts on.

use yunshu_core::ErrorKind;

/// A `Result` with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a reconcile, the lease loop or the operator failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("failed to {action} through the Kubernetes API: {source}")]
    Kube {
        /// What the call was for, e.g. "apply the status of foundation kunpeng-1".
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A store or admission call failed.
    #[error("failed to {action}: {source}")]
    Store {
        /// What the call was for, e.g. "write foundation kunpeng-1 to the store".
        action: String,
        /// The store's error.
        #[source]
        source: yunshu_core::Error,
    },
}

impl Error {
    /// A failed Kubernetes call.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source,
        }
    }

    /// A failed store call.
    pub fn store(action: impl Into<String>, source: yunshu_core::Error) -> Self {
        Self::Store {
            action: action.into(),
            source,
        }
    }

    /// The kind of failure, for retries, metrics and event reasons.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Kube { source, .. } => kube_error_kind(source),
            Self::Store { source, .. } => source.kind(),
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

/// The kind of a Kubernetes client error: API answers by HTTP status,
/// transport failures as `Unavailable`, anything else `Internal`.
pub fn kube_error_kind(error: &kube::Error) -> ErrorKind {
    match error {
        kube::Error::Api(status) => status_kind(status.code, &status.reason),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Internal,
    }
}

/// Maps an HTTP status code and the API's `reason` word to an error kind.
pub fn status_kind(code: u16, reason: &str) -> ErrorKind {
    match code {
        400 | 422 => ErrorKind::Invalid,
        401 => ErrorKind::Unauthorized,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        409 if reason == "AlreadyExists" => ErrorKind::AlreadyExists,
        409 => ErrorKind::Conflict,
        // `Gone`: the resourceVersion asked for is older than the API keeps.
        410 => ErrorKind::Compacted,
        429 => ErrorKind::Throttled,
        500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// Whether a Kubernetes error is an API answer with this HTTP status.
pub(crate) fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_kinds() {
        assert_eq!(status_kind(404, "NotFound"), ErrorKind::NotFound);
        assert_eq!(status_kind(409, "Conflict"), ErrorKind::Conflict);
        assert_eq!(status_kind(409, "AlreadyExists"), ErrorKind::AlreadyExists);
        assert_eq!(status_kind(410, "Expired"), ErrorKind::Compacted);
        assert_eq!(status_kind(422, "Invalid"), ErrorKind::Invalid);
        assert_eq!(status_kind(429, "TooManyRequests"), ErrorKind::Throttled);
        assert_eq!(status_kind(403, "Forbidden"), ErrorKind::PermissionDenied);
        assert_eq!(status_kind(401, "Unauthorized"), ErrorKind::Unauthorized);
        assert_eq!(
            status_kind(503, "ServiceUnavailable"),
            ErrorKind::Unavailable
        );
        assert_eq!(status_kind(302, ""), ErrorKind::Internal);
    }

    #[test]
    fn conflicts_and_outages_are_retried_but_invalid_input_is_not() {
        let conflict = Error::kube(
            "apply a status",
            kube::Error::Api(
                kube::core::Status::failure("conflict", "Conflict")
                    .with_code(409)
                    .boxed(),
            ),
        );
        assert!(conflict.is_retryable());
        let invalid = Error::store(
            "admit an instance",
            yunshu_core::Error::invalid("spec.vcpu", "must be at least 1"),
        );
        assert!(!invalid.is_retryable());
        assert!(
            invalid
                .to_string()
                .contains("spec.vcpu: must be at least 1"),
            "{invalid}"
        );
    }
}
