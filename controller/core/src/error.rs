//! The error type shared by every Yunshu crate, with a small `Copy` kind the
//! runtime acts on and a `&'static str` category for metric labels and event
//! reasons.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use crate::resources::ResourceClass;

/// A `Result` with Yunshu's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is; the runtime decides retries,
/// status codes and conditions from this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The object or cloud resource does not exist.
    NotFound,
    /// An object with that name already exists (for another request).
    AlreadyExists,
    /// A concurrent change or a reused request id with a different request.
    Conflict,
    /// The backend asked us to slow down.
    Throttled,
    /// The backend could not be reached or answered with a server error.
    Unavailable,
    /// Credentials were missing or rejected.
    Unauthorized,
    /// The caller is known but may not do this.
    PermissionDenied,
    /// The request is malformed; field violations say where.
    Invalid,
    /// A quota would be exceeded.
    QuotaExceeded,
    /// A watch asked for history that was compacted away; relist and rewatch.
    Compacted,
    /// A bug or an unexpected state.
    Internal,
}

impl ErrorKind {
    /// A short, stable, lower-case name for metric labels and event reasons.
    pub const fn category(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Conflict => "conflict",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::Unauthorized => "unauthorized",
            Self::PermissionDenied => "permission_denied",
            Self::Invalid => "invalid",
            Self::QuotaExceeded => "quota_exceeded",
            Self::Compacted => "compacted",
            Self::Internal => "internal",
        }
    }

    /// Whether repeating the same call later may succeed.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Unavailable | Self::Conflict)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.category())
    }
}

/// One field of a request that broke a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldViolation {
    /// The field's path, e.g. `spec.vcpu`.
    pub field: String,
    /// The rule it broke, in words.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field` described by `description`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// One resource class over its quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaViolation {
    /// The class over quota.
    pub class: ResourceClass,
    /// What the request asked for.
    pub requested: u64,
    /// What the department already uses.
    pub used: u64,
    /// The department's limit.
    pub limit: u64,
}

impl fmt::Display for QuotaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requested {}, used {}, limit {}",
            self.class, self.requested, self.used, self.limit
        )
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Yunshu's error: what failed, with context, and the source attached.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named thing does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The named thing exists already.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists.
        what: String,
    },
    /// A conflicting change.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicted.
        message: String,
    },
    /// The backend throttled us.
    #[error("throttled by {what}")]
    Throttled {
        /// Who throttled.
        what: String,
        /// How long the backend asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The backend is unreachable or failing.
    #[error("{message}")]
    Unavailable {
        /// What failed, in words that hold no secret.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Source>,
    },
    /// Credentials were missing or rejected.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// Why, without any secret.
        message: String,
    },
    /// The caller may not do this.
    #[error("permission denied: {message}")]
    PermissionDenied {
        /// Why.
        message: String,
    },
    /// Bad input.
    #[error("invalid request: {}", display_violations(.violations))]
    Invalid {
        /// Every field that broke a rule.
        violations: Vec<FieldViolation>,
    },
    /// Over quota.
    #[error("quota exceeded: {}", display_quota(.violations))]
    QuotaExceeded {
        /// Every class over its limit.
        violations: Vec<QuotaViolation>,
    },
    /// The watch start revision was compacted.
    #[error(
        "revision {requested} was compacted (compacted up to {compacted}); relist and watch again"
    )]
    Compacted {
        /// The revision that was asked for.
        requested: i64,
        /// The store's compaction revision.
        compacted: i64,
    },
    /// Anything else.
    #[error("{message}")]
    Internal {
        /// What went wrong.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Source>,
    },
}

fn display_violations(v: &[FieldViolation]) -> String {
    v.iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

fn display_quota(v: &[QuotaViolation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The kind of this error.
    pub const fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Throttled { .. } => ErrorKind::Throttled,
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::Unauthorized { .. } => ErrorKind::Unauthorized,
            Self::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Self::Invalid { .. } => ErrorKind::Invalid,
            Self::QuotaExceeded { .. } => ErrorKind::QuotaExceeded,
            Self::Compacted { .. } => ErrorKind::Compacted,
            Self::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// A `NotFound` error for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    /// An `Unavailable` error with its source.
    pub fn unavailable(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// An `Internal` error with no source.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// An `Invalid` error for a single field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid {
            violations: vec![FieldViolation::new(field, description)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_message_is_exact() {
        let e = Error::QuotaExceeded {
            violations: vec![QuotaViolation {
                class: ResourceClass::Vcpu,
                requested: 16,
                used: 44,
                limit: 48,
            }],
        };
        assert_eq!(
            e.to_string(),
            "quota exceeded: vcpu requested 16, used 44, limit 48"
        );
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(e.kind().category(), "quota_exceeded");
    }

    #[test]
    fn invalid_names_field_and_rule() {
        let e = Error::invalid("spec.vcpu", "must be at least 1");
        assert_eq!(
            e.to_string(),
            "invalid request: spec.vcpu: must be at least 1"
        );
    }
}
